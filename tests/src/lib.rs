//! End-to-end test harness for kvmnet-agent: real kernel, inside network
//! namespaces that the tests create and delete themselves. Nothing here
//! changes the machine's own network namespace or sends traffic outside the
//! test namespaces.
//!
//! ```no_run
//! use kvmnet_e2e::{attach_to_bridge, ping_ok, Netns};
//!
//! let host = Netns::new("host");
//! let vm = Netns::new("vm");
//! host.ip_ok(&["link", "add", "br0", "type", "bridge"]);
//! host.set_up("br0");
//! host.add_addr("br0", "10.0.0.1/24");
//! attach_to_bridge(&host, "br0", &vm, "eth0");
//! vm.add_addr("eth0", "10.0.0.2/24");
//! assert!(ping_ok(&vm, "10.0.0.1"));
//! // Dropping `host` and `vm` kills their processes and deletes them.
//! ```
//!
//! All helpers need root and panic with "e2e tests need root" without it.

mod agent;
mod cmd;
mod dhcp;
mod link;
mod netns;
mod traffic;
mod underlay;
mod wait;

pub use agent::{agent_bin, AgentEnv};
pub use cmd::{Background, CmdOutput};
pub use dhcp::{dhcp_lease, resolve, DhcpLease};
pub use link::{attach_to_bridge, veth};
pub use netns::{require_root, Netns};
pub use nix::sys::signal::Signal;
pub use traffic::{ping_ok, ping_once, tcp_connect_ok, tcp_listen};
pub use underlay::Underlay;
pub use wait::{wait_for, wait_for_value};
