//! End-to-end test harness for kvmnet-agent: real kernel, inside network
//! namespaces that the tests create and delete themselves. Nothing here
//! changes the machine's own network namespace or sends traffic outside the
//! test namespaces.
//!
//! All helpers need root and panic with "e2e tests need root" without it.

mod cmd;
mod link;
mod netns;
mod wait;

pub use cmd::{Background, CmdOutput};
pub use link::{attach_to_bridge, veth};
pub use netns::{require_root, Netns};
pub use nix::sys::signal::Signal;
pub use wait::{wait_for, wait_for_value};
