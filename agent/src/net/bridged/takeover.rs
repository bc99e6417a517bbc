//! Mode bridge with an uplink: planning the move of the uplink `D` into the
//! bridge `B` (and back), as pure data that apply carries out in one go with
//! a connectivity probe and an exact rollback (see `crate::net::bridged::rollback`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::config::desired::DesiredNetwork;
use crate::config::model::MacAddr;
use crate::kernel::{Address, BridgeSettings, Link, Route, Snapshot};
use crate::net::bridged::lan::SavedLan;

use crate::core::owner_alias;
use crate::net::bridged::lan::{movable_addresses, movable_routes};
use crate::net::wanted::wanted_bridge_attrs;

/// Creating `B` with `D`'s MAC and MTU, enslaving `D` and moving its
/// addresses and routes onto `B`; then probing.
#[derive(Debug, Clone, PartialEq)]
pub struct TakeOver {
    pub bridge: String,
    pub alias: String,
    pub settings: BridgeSettings,
    pub uplink: String,
    /// `D`'s addresses as found, to be recreated on `B` (and on `D` again
    /// by a rollback) exactly.
    pub addresses: Vec<Address>,
    /// `D`'s routes as found, on-link ones first (a gateway must be
    /// reachable when its route is added).
    pub routes: Vec<Route>,
    /// Addresses and routes the bridge carried before it was deleted by
    /// hand (see `crate::net::bridged::lan`), put back on it. A rollback does not put
    /// them on the uplink: it restores the state found.
    pub restored_addresses: Vec<Address>,
    pub restored_routes: Vec<Route>,
    pub probe: Option<ProbeSpec>,
}

/// The reverse: `D` out of `B`, `B` deleted, the addresses and routes on `D`.
#[derive(Debug, Clone, PartialEq)]
pub struct GiveBack {
    pub bridge: String,
    pub uplink: String,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
}

/// An ARP request from `B` that `target` must answer within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    pub target: Ipv4Addr,
    pub source: Ipv4Addr,
    pub timeout: Duration,
    /// The target is the default gateway (not configured).
    pub gateway: bool,
}

impl fmt::Display for ProbeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.gateway { "gateway " } else { "" };
        write!(
            f,
            "{what}{} by ARP within {}",
            self.target,
            humantime::format_duration(self.timeout)
        )
    }
}

impl fmt::Display for TakeOver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "enslave uplink {} into new bridge {} and move {} address(es) and {} route(s) onto it",
            self.uplink,
            self.bridge,
            self.addresses.len(),
            self.routes.len()
        )?;
        if !(self.restored_addresses.is_empty() && self.restored_routes.is_empty()) {
            write!(
                f,
                ", restore the {} address(es) and {} route(s) it had before it was deleted",
                self.restored_addresses.len(),
                self.restored_routes.len()
            )?;
        }
        match &self.probe {
            Some(p) => write!(f, ", then probe {p}"),
            None => write!(f, ", without probe"),
        }
    }
}

impl fmt::Display for GiveBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "release uplink {} from bridge {}, delete {} and move {} address(es) and {} route(s) back onto {}",
            self.uplink,
            self.bridge,
            self.bridge,
            self.addresses.len(),
            self.routes.len(),
            self.uplink
        )
    }
}

/// Plans taking `uplink` into the network's bridge, or says why not.
/// `saved`: what the bridge carried last time, if it existed before.
pub fn take_over(
    net: &DesiredNetwork,
    snapshot: &Snapshot,
    uplink: &Link,
    saved: Option<&SavedLan>,
) -> Result<TakeOver, String> {
    let bridge = &net.bridge;
    let d = &uplink.name;
    if let Some(master) = uplink.master {
        let master = snapshot
            .link_by_index(master)
            .map_or_else(|| format!("index {master}"), |l| l.name.clone());
        return Err(format!(
            "uplink {d} is already enslaved to {master}; release it (ip link set {d} nomaster) for kvmnet to build {bridge}"
        ));
    }
    let Some(mac) = uplink.mac else {
        return Err(format!(
            "uplink {d} has no Ethernet address: only Ethernet devices can be bridge ports"
        ));
    };
    let addresses = movable_addresses(snapshot, uplink);
    let dynamic: Vec<String> = addresses
        .iter()
        .filter(|a| !a.permanent)
        .map(|a| format!("{}/{}", a.address, a.prefix_len))
        .collect();
    if !dynamic.is_empty() && !net.spec.bridge.move_dynamic {
        return Err(format!(
            "uplink {d} has dynamic address(es) {} (from a DHCP client or router advertisements): their client would keep renewing them on {d}, not on {bridge}; run the client on {bridge} instead, or set bridge.move_dynamic = true to move them anyway",
            dynamic.join(", ")
        ));
    }
    let routes = movable_routes(snapshot, uplink);
    let (restored_addresses, restored_routes) = match saved.filter(|s| s.uplink == *d) {
        Some(saved) => lost(snapshot, saved),
        None => (Vec::new(), Vec::new()),
    };
    let attrs = wanted_bridge_attrs(net);
    let settings = BridgeSettings {
        stp: attrs.stp,
        forward_delay_cs: attrs.forward_delay_cs,
        mtu: Some(net.spec.bridge.mtu.unwrap_or(uplink.mtu)),
        mac: Some(net.spec.bridge.mac.map_or(mac, |m| m.0)),
    };
    let all_addresses: Vec<Address> = addresses
        .iter()
        .chain(&restored_addresses)
        .cloned()
        .collect();
    let all_routes: Vec<Route> = routes.iter().chain(&restored_routes).cloned().collect();
    let probe = probe_spec(net, &all_addresses, &all_routes);
    Ok(TakeOver {
        bridge: bridge.clone(),
        alias: owner_alias(&net.name),
        settings,
        uplink: d.clone(),
        addresses,
        routes,
        restored_addresses,
        restored_routes,
        probe,
    })
}

/// What `saved` holds that the host no longer has anywhere.
fn lost(snapshot: &Snapshot, saved: &SavedLan) -> (Vec<Address>, Vec<Route>) {
    let addresses = saved
        .addresses
        .iter()
        .filter(|a| {
            !snapshot
                .addresses
                .iter()
                .any(|b| b.address == a.address && b.prefix_len == a.prefix_len)
        })
        .cloned()
        .collect();
    let routes = saved
        .routes
        .iter()
        .filter(|r| {
            !snapshot.routes.iter().any(|o| {
                o.table == r.table
                    && o.destination == r.destination
                    && o.gateway == r.gateway
                    && o.metric == r.metric
            })
        })
        .cloned()
        .collect();
    (addresses, routes)
}

/// The probe: the configured target, else the IPv4 default gateway; from an
/// address in the target's subnet, else any IPv4 address, else 0.0.0.0 (an
/// RFC 5227 ARP probe, which hosts answer too). With STP on, the bridge
/// forwards only after listening and learning: twice the forward delay.
fn probe_spec(net: &DesiredNetwork, addresses: &[Address], routes: &[Route]) -> Option<ProbeSpec> {
    let config = net.spec.probe.clone().unwrap_or_default();
    if !config.enable {
        return None;
    }
    let (target, gateway) = match config.target {
        Some(IpAddr::V4(t)) => (t, false),
        // Validation refuses IPv6 targets.
        Some(IpAddr::V6(_)) => return None,
        None => {
            let gw = routes.iter().find_map(|r| match r.gateway {
                Some(IpAddr::V4(gw)) if r.destination.prefix_len() == 0 => Some(gw),
                _ => None,
            })?;
            (gw, true)
        }
    };
    let v4: Vec<(Ipv4Addr, u8)> = addresses
        .iter()
        .filter_map(|a| match a.address {
            IpAddr::V4(ip) => Some((ip, a.prefix_len)),
            IpAddr::V6(_) => None,
        })
        .collect();
    let source = v4
        .iter()
        .find(|(ip, len)| ipnet::Ipv4Net::new(*ip, *len).is_ok_and(|n| n.contains(&target)))
        .or(v4.first())
        .map_or(Ipv4Addr::UNSPECIFIED, |(ip, _)| *ip);
    let attrs = wanted_bridge_attrs(net);
    let stp_wait = if attrs.stp {
        Duration::from_millis(u64::from(attrs.forward_delay_cs) * 20)
    } else {
        Duration::ZERO
    };
    Some(ProbeSpec {
        target,
        source,
        timeout: config.timeout.0 + stp_wait,
        gateway,
    })
}

/// The uplink of an owned bridge being removed: its port with the bridge's
/// own MAC (kvmnet gives the bridge its uplink's), so that no state is
/// needed to find it after a restart.
pub fn uplink_of<'a>(snapshot: &'a Snapshot, bridge: &Link) -> Option<&'a Link> {
    let mac = bridge.mac?;
    snapshot
        .links
        .iter()
        .find(|l| l.master == Some(bridge.index) && l.mac == Some(mac))
}

/// Plans moving everything on `bridge` back onto `uplink`.
pub fn give_back(snapshot: &Snapshot, bridge: &Link, uplink: &Link) -> GiveBack {
    GiveBack {
        bridge: bridge.name.clone(),
        uplink: uplink.name.clone(),
        addresses: movable_addresses(snapshot, bridge),
        routes: movable_routes(snapshot, bridge),
    }
}

/// `snapshot` as it will be once `bridge` has given everything back to
/// `uplink` (see [`give_back`]), for planning a take-over after it.
pub fn after_give_back(snapshot: &Snapshot, bridge: &Link, uplink: &Link) -> Snapshot {
    let moved = give_back(snapshot, bridge, uplink);
    let mut after = snapshot.clone();
    after.links.retain(|l| l.index != bridge.index);
    for port in after
        .links
        .iter_mut()
        .filter(|l| l.master == Some(bridge.index))
    {
        port.master = None;
    }
    after.addresses.retain(|a| a.index != bridge.index);
    after.routes.retain(|r| r.oif != Some(bridge.index));
    after
        .addresses
        .extend(moved.addresses.into_iter().map(|a| Address {
            index: uplink.index,
            ..a
        }));
    after.routes.extend(moved.routes.into_iter().map(|r| Route {
        oif: Some(uplink.index),
        ..r
    }));
    after
}

/// The MAC a bridged network's bridge should have.
pub fn wanted_mac(net: &DesiredNetwork, uplink: &Link) -> Option<MacAddr> {
    net.spec.bridge.mac.or(uplink.mac.map(MacAddr))
}
