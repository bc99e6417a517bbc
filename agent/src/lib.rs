//! kvmnet: a declarative reconcile agent for the virtual networks of a KVM host.
//!
//! Data flows one way: files → desired state → (with the observed state) plan
//! → apply → report.

pub mod apply;
pub mod cli;
pub mod daemon;
pub mod desired;
pub mod diagnostic;
pub mod dnsmasq;
pub mod files;
pub mod firewall;
pub mod http;
pub mod kernel;
pub mod lanstate;
pub mod lastgood;
pub mod load;
pub mod locate;
pub mod lock;
pub mod managers;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod observe;
pub mod parse;
pub mod plan;
pub mod ports;
pub mod reconcile;
pub mod report;
pub mod show;
#[cfg(test)]
mod testutil;
pub mod uplink;
pub mod validate;
