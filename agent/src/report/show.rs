//! `show`: desired against observed, per network.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::desired::{DesiredNetwork, DesiredState};
use crate::config::model::{MacAddr, Mode};
use crate::core::{link_owner, Drift};
use crate::dnsmasq::render::wants_dnsmasq;
use crate::kernel::{RTPROT_KVMNET, RT_TABLE_MAIN};
use crate::net::bridged::lan::{movable_addresses, movable_routes};
use crate::net::observe::Observed;
use crate::net::plan::centis;
use crate::net::wanted::{wanted_bridge_attrs, wanted_routes};
use crate::report::PassReport;

#[derive(Debug, Clone, Serialize)]
pub struct NetworkView {
    pub name: String,
    pub mode: Mode,
    pub file: PathBuf,
    pub desired: Side,
    pub observed: Option<Side>,
    pub drift: Vec<Drift>,
    pub errors: Vec<String>,
    /// Mode bridge with an uplink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplink: Option<UplinkView>,
    /// The network's dnsmasq, when it needs one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnsmasq: Option<DnsmasqView>,
    /// An overlay network's VXLAN device and peers on this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlay: Option<OverlayView>,
}

/// This host's part of an overlay: the VXLAN device as found, and each
/// peer with whether its flood entry is there.
#[derive(Debug, Clone, Serialize)]
pub struct OverlayView {
    pub device: String,
    pub vni: u32,
    /// "gateway" (layer 3 here), "layer 2" or "not a peer".
    pub role: &'static str,
    /// "up, port of BRIDGE", "down", "missing"...
    pub state: String,
    pub peers: Vec<PeerView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub address: String,
    /// This host's own address.
    pub local: bool,
    /// Remote peers: whether the device's flood entry to it is there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flood_entry: Option<bool>,
}

/// The network's dnsmasq: wanted running; found running with this pid, or not.
#[derive(Debug, Clone, Serialize)]
pub struct DnsmasqView {
    pub pid: Option<i32>,
}

/// A bridged network's uplink and the LAN configuration moved onto its
/// bridge (which is the LAN's, not kvmnet's: no desired side).
#[derive(Debug, Clone, Serialize)]
pub struct UplinkView {
    pub name: String,
    /// "enslaved" (a port of the bridge), "not enslaved" or "missing".
    pub state: &'static str,
    pub addresses: Vec<String>,
    pub routes: Vec<String>,
}

/// One side of the comparison: what is wanted, or what the kernel holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub bridge: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub up: bool,
    pub stp: bool,
    pub delay: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    pub mac: String,
    pub addresses: Vec<String>,
    pub routes: Vec<String>,
}

/// Views of the desired networks (or of `only`): the kernel side by side,
/// and the drift a check found in everything (kernel, firewall, dnsmasq).
/// `dnsmasq_pids` holds the running instances' pids by network.
pub fn views(
    desired: &DesiredState,
    observed: &Observed,
    check: &PassReport,
    dnsmasq_pids: &BTreeMap<String, i32>,
    only: Option<&str>,
) -> Vec<NetworkView> {
    desired
        .networks
        .values()
        .filter(|n| only.is_none_or(|o| o == n.name))
        .map(|n| {
            let report = check.networks.iter().find(|r| r.name == n.name);
            NetworkView {
                name: n.name.clone(),
                mode: n.spec.mode,
                file: n.file.clone(),
                desired: desired_side(n, observed),
                observed: observed_side(n, observed),
                drift: report.map(|r| r.drift.clone()).unwrap_or_default(),
                errors: report.map(|r| r.errors.clone()).unwrap_or_default(),
                uplink: uplink_view(n, observed),
                dnsmasq: wants_dnsmasq(n).then(|| DnsmasqView {
                    pid: dnsmasq_pids.get(&n.name).copied(),
                }),
                overlay: overlay_view(n, observed),
            }
        })
        .collect()
}

fn uplink_view(n: &DesiredNetwork, observed: &Observed) -> Option<UplinkView> {
    let (Mode::Bridge, Some(name)) = (n.spec.mode, &n.spec.uplink) else {
        return None;
    };
    let snapshot = &observed.kernel;
    let bridge = snapshot.link_by_name(&n.bridge);
    let state = match snapshot.link_by_name(name) {
        None => "missing",
        Some(d) if d.master.is_some() && d.master == bridge.map(|b| b.index) => "enslaved",
        Some(_) => "not enslaved",
    };
    let (addresses, routes) = match bridge {
        Some(b) => (
            movable_addresses(snapshot, b)
                .iter()
                .map(|a| format!("{}/{}", a.address, a.prefix_len))
                .collect(),
            movable_routes(snapshot, b)
                .iter()
                .map(|r| {
                    let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
                    format!(
                        "{}{via} metric {} proto {}",
                        r.destination, r.metric, r.protocol
                    )
                })
                .collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    Some(UplinkView {
        name: name.clone(),
        state,
        addresses,
        routes,
    })
}

fn overlay_view(n: &DesiredNetwork, observed: &Observed) -> Option<OverlayView> {
    let (Some(spec), Some(overlay)) = (&n.spec.overlay, &n.overlay) else {
        return None;
    };
    let snapshot = &observed.kernel;
    let device = snapshot.link_by_name(&overlay.device);
    let state = match device {
        None => "missing".to_string(),
        Some(d) => {
            let master = d
                .master
                .and_then(|m| snapshot.link_by_index(m))
                .map_or("in no bridge".to_string(), |m| {
                    format!("port of {}", m.name)
                });
            format!("{}, {master}", if d.admin_up { "up" } else { "down" })
        }
    };
    let flooded: Vec<std::net::IpAddr> = device
        .map(|d| snapshot.flood_remotes_of(d.index).collect())
        .unwrap_or_default();
    let peers = spec
        .vxlan
        .peers
        .iter()
        .map(|&peer| {
            let local = overlay.local == Some(peer);
            PeerView {
                address: peer.to_string(),
                local,
                flood_entry: (!local).then(|| flooded.contains(&peer)),
            }
        })
        .collect();
    Some(OverlayView {
        device: overlay.device.clone(),
        vni: spec.vxlan.vni,
        role: match (overlay.local, overlay.gateway) {
            (None, _) => "not a peer",
            (Some(_), true) => "gateway",
            (Some(_), false) => "layer 2",
        },
        state,
        peers,
    })
}

fn desired_side(n: &DesiredNetwork, observed: &Observed) -> Side {
    // A bridged network's bridge takes its uplink's MAC.
    let uplink_mac = match (n.spec.mode, &n.spec.uplink, n.spec.bridge.mac) {
        (Mode::Bridge, Some(uplink), None) => {
            observed.kernel.link_by_name(uplink).and_then(|l| l.mac)
        }
        _ => None,
    };
    Side {
        bridge: n.bridge.clone(),
        index: None,
        owner: Some(n.name.clone()),
        up: true,
        stp: n.spec.bridge.stp,
        delay: centis(wanted_bridge_attrs(n).forward_delay_cs),
        mtu: n.spec.bridge.mtu,
        mac: uplink_mac.map_or(n.mac, MacAddr).to_string(),
        addresses: n.spec.ip.iter().map(|ip| ip.address.to_string()).collect(),
        routes: wanted_routes(n)
            .iter()
            .map(|r| format!("{} via {} metric {}", r.destination, r.gateway, r.metric))
            .collect(),
    }
}

fn observed_side(n: &DesiredNetwork, observed: &Observed) -> Option<Side> {
    let snapshot = &observed.kernel;
    let link = snapshot.link_by_name(&n.bridge)?;
    let attrs = link.bridge.unwrap_or(crate::kernel::BridgeAttrs {
        stp: false,
        forward_delay_cs: 0,
    });
    Some(Side {
        bridge: link.name.clone(),
        index: Some(link.index),
        owner: link_owner(link).map(str::to_string),
        up: link.admin_up,
        stp: attrs.stp,
        delay: centis(attrs.forward_delay_cs),
        mtu: Some(link.mtu),
        mac: link.mac.map_or("none".into(), |m| MacAddr(m).to_string()),
        addresses: snapshot
            .addresses_of(link.index)
            .map(|a| format!("{}/{}", a.address, a.prefix_len))
            .collect(),
        routes: snapshot
            .routes
            .iter()
            .filter(|r| {
                r.oif == Some(link.index) && r.protocol == RTPROT_KVMNET && r.table == RT_TABLE_MAIN
            })
            .map(|r| {
                let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
                format!("{}{via} metric {}", r.destination, r.metric)
            })
            .collect(),
    })
}

/// Text of `views`, then the host-wide drift (ip_forward, our nftables
/// table as a whole).
pub fn to_text(views: &[NetworkView], host_drift: &[Drift]) -> String {
    let mut out = String::new();
    for v in views {
        let state = if !v.errors.is_empty() {
            "error"
        } else if v.drift.is_empty() {
            "in sync"
        } else {
            "drifted"
        };
        let _ = writeln!(
            out,
            "network {} (mode {}, {}): {state}",
            v.name,
            v.mode,
            v.file.display()
        );
        let d = &v.desired;
        let row = |out: &mut String, field: &str, wanted: String, found: Option<String>| {
            let found = found.unwrap_or_else(|| "-".into());
            let mark = if wanted == found { ' ' } else { '*' };
            let _ = writeln!(out, " {mark} {field:<10} {wanted:<32} {found}");
        };
        let _ = writeln!(out, "   {:<10} {:<32} observed", "", "desired");
        let o = v.observed.as_ref();
        row(
            &mut out,
            "bridge",
            d.bridge.clone(),
            o.map(|o| o.bridge.clone()),
        );
        row(
            &mut out,
            "owner",
            format!("kvmnet:{}", v.name),
            o.map(|o| {
                o.owner
                    .as_ref()
                    .map_or("(not kvmnet's)".into(), |w| format!("kvmnet:{w}"))
            }),
        );
        row(
            &mut out,
            "state",
            "up".into(),
            o.map(|o| if o.up { "up" } else { "down" }.into()),
        );
        row(&mut out, "stp", on_off(d.stp), o.map(|o| on_off(o.stp)));
        row(
            &mut out,
            "delay",
            d.delay.clone(),
            o.map(|o| o.delay.clone()),
        );
        if let Some(mtu) = d.mtu {
            row(
                &mut out,
                "mtu",
                mtu.to_string(),
                o.and_then(|o| o.mtu).map(|m| m.to_string()),
            );
        }
        row(&mut out, "mac", d.mac.clone(), o.map(|o| o.mac.clone()));
        match &v.uplink {
            Some(u) => {
                row(
                    &mut out,
                    "uplink",
                    format!("{} enslaved", u.name),
                    Some(format!("{} {}", u.name, u.state)),
                );
                let _ = writeln!(
                    out,
                    "   LAN addresses on the bridge (moved from {}): {}",
                    u.name,
                    list(&u.addresses)
                );
                let _ = writeln!(out, "   LAN routes on the bridge: {}", list(&u.routes));
            }
            None => {
                row(
                    &mut out,
                    "addresses",
                    list(&d.addresses),
                    o.map(|o| list(&o.addresses)),
                );
                row(
                    &mut out,
                    "routes",
                    list(&d.routes),
                    o.map(|o| list(&o.routes)),
                );
            }
        }
        if let Some(overlay) = &v.overlay {
            let _ = writeln!(
                out,
                "   overlay    VXLAN {} (VNI {}) {}; this host: {}",
                overlay.device, overlay.vni, overlay.state, overlay.role
            );
            for peer in &overlay.peers {
                let (mark, found) = match peer.flood_entry {
                    None => (' ', "this host"),
                    Some(true) => (' ', "flood entry present"),
                    Some(false) => ('*', "flood entry missing"),
                };
                let _ = writeln!(out, " {mark} {:<10} {:<32} {found}", "peer", peer.address);
            }
        }
        if let Some(dnsmasq) = &v.dnsmasq {
            let (mark, found) = match dnsmasq.pid {
                Some(pid) => (' ', format!("running (pid {pid})")),
                None => ('*', "not running".to_string()),
            };
            let _ = writeln!(out, " {mark} {:<10} {:<32} {found}", "dnsmasq", "running");
        }
        for drift in &v.drift {
            let _ = writeln!(out, "   {drift}");
        }
        for e in &v.errors {
            let _ = writeln!(out, "   error: {e}");
        }
    }
    if !host_drift.is_empty() {
        let _ = writeln!(out, "host:");
        for drift in host_drift {
            let _ = writeln!(out, "   {drift}");
        }
    }
    out
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.into()
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}
