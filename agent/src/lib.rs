//! kvmnet: a declarative reconcile agent for the virtual networks of a KVM host.
//!
//! Data flows one way: files → desired state → (with the observed state) plan
//! → apply → report. The layers, from the bottom (each imports only from the
//! layers below it; `agent/tests/layers.rs` checks it):
//!
//! - [`kernel`]: netlink, sysctls, the ARP probe; knows nothing of networks.
//! - [`core`]: the shared vocabulary (drift, outcomes, ownership).
//! - [`config`]: the files: model, parse, locate, load, validate, desired
//!   state, last good copies, diagnostics.
//! - [`net`], [`firewall`], [`dnsmasq`]: the three subsystems, each as
//!   observe (I/O) → plan (pure) → apply (I/O).
//! - [`report`]: pass reports, `show`, metrics.
//! - [`reconcile`]: one pass over the three subsystems.
//! - [`daemon`]: the control loop, its triggers and HTTP endpoint.
//! - [`import`]: libvirt's network XML to network files (import-libvirt).
//! - [`cli`]: the command line.

pub mod cli;
pub mod config;
pub(crate) mod core;
pub(crate) mod daemon;
pub(crate) mod dnsmasq;
pub(crate) mod firewall;
pub(crate) mod import;
pub(crate) mod kernel;
pub(crate) mod net;
pub(crate) mod reconcile;
pub(crate) mod report;
#[cfg(test)]
mod testutil;
