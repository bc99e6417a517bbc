//! What the kernel should hold for a desired network: its bridge's
//! attributes, its routes, the sysctls a pass reads. Pure derivations,
//! shared by observe, plan and bridged mode.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::desired::{DesiredNetwork, DesiredState};
use crate::config::model::Mode;
use crate::kernel::sysctl::Sysctl;
use crate::kernel::BridgeAttrs;

/// A route kvmnet wants on a network's bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedRoute {
    pub destination: IpNet,
    pub gateway: IpAddr,
    /// Normalised as the kernel reports it: 0 (IPv4) or 1024 (IPv6) when unset.
    pub metric: u32,
}

pub fn sysctl_keys(desired: &DesiredState) -> Vec<Sysctl> {
    let mut keys = vec![Sysctl::IpForward, Sysctl::Ipv6Forwarding];
    for net in desired
        .networks
        .values()
        .filter(|n| n.spec.mode != Mode::Bridge)
    {
        keys.push(Sysctl::DisableIpv6(net.bridge.clone()));
        keys.push(Sysctl::AcceptRa(net.bridge.clone()));
    }
    keys
}

pub fn wanted_routes(net: &DesiredNetwork) -> Vec<WantedRoute> {
    net.spec
        .routes
        .iter()
        .map(|r| WantedRoute {
            destination: r.to.0.trunc(),
            gateway: r.via,
            metric: r.metric.unwrap_or(if r.via.is_ipv4() { 0 } else { 1024 }),
        })
        .collect()
}

/// The bridge attributes the kernel will hold for `net` (with STP on it
/// keeps the forward delay within 2s to 30s: libvirt's "stp on, delay 0"
/// means 2s).
pub fn wanted_bridge_attrs(net: &DesiredNetwork) -> BridgeAttrs {
    let forward_delay_cs =
        u32::try_from(net.spec.bridge.delay.0.as_millis() / 10).unwrap_or(u32::MAX);
    BridgeAttrs {
        stp: net.spec.bridge.stp,
        forward_delay_cs,
    }
    .effective()
}

pub fn is_ipv6_link_local(addr: IpAddr) -> bool {
    matches!(addr, IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
}

/// Sysctl values as observed: `None` when the sysctl does not exist.
pub type SysctlValues = HashMap<Sysctl, Option<u32>>;
