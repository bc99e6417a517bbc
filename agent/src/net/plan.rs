//! Diff and plan: a pure function of the desired and the observed state that
//! yields the drift (what differs, where, wanted, found) and the ordered steps
//! that repair it. No I/O here: every rule is unit-tested without root.
//!
//! Long on purpose: one planner, whose methods share one way of recording
//! drift, steps and failures, walks every kind of kernel object. Bridged
//! mode's take-over is planned in [`crate::net::bridged::takeover`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::desired::{DesiredNetwork, DesiredState, HostOverlay};
use crate::config::model::{MacAddr, Mode};
use crate::core::{link_owner, owner_alias, Change, Drift, Failure, Resource};
use crate::kernel::sysctl::Sysctl;
use crate::kernel::{
    BridgeAttrs, BridgeSettings, Link, Snapshot, VxlanAttrs, RTPROT_KVMNET, RT_TABLE_MAIN,
};
use crate::net::bridged::lan::movable_addresses;
use crate::net::bridged::takeover::{self, GiveBack, TakeOver};
use crate::net::memory::Remembered;
use crate::net::observe::Observed;
use crate::net::wanted::{is_ipv6_link_local, wanted_bridge_attrs, wanted_routes, WantedRoute};

/// One repair. Links are named, not indexed: a bridge created by an earlier
/// step has no index at plan time.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateBridge {
        name: String,
        alias: String,
        settings: BridgeSettings,
    },
    SetBridge {
        link: String,
        current: BridgeAttrs,
        wanted: BridgeAttrs,
    },
    SetMtu {
        link: String,
        mtu: u32,
    },
    SetMac {
        link: String,
        mac: MacAddr,
    },
    /// Marks a link as kvmnet's (IFLA_IFALIAS).
    SetAlias {
        link: String,
        alias: String,
    },
    SetUp {
        link: String,
    },
    /// Enslaves `link` to the bridge `master`.
    SetMaster {
        link: String,
        master: String,
    },
    DeleteLink {
        link: String,
    },
    /// An overlay's VXLAN device, created down and outside any bridge.
    CreateVxlan {
        name: String,
        alias: String,
        vni: u32,
        port: u16,
        local: IpAddr,
        /// The underlay interface.
        dev: String,
        mtu: Option<u32>,
    },
    /// Adds `peer` to the flood list (all-zeros entry) of VXLAN device `link`.
    AddFloodRemote {
        link: String,
        peer: IpAddr,
    },
    DeleteFloodRemote {
        link: String,
        peer: IpAddr,
    },
    AddAddress {
        link: String,
        address: IpAddr,
        prefix_len: u8,
    },
    DeleteAddress {
        link: String,
        address: IpAddr,
        prefix_len: u8,
    },
    AddRoute {
        link: String,
        route: WantedRoute,
    },
    DeleteRoute {
        link: Option<String>,
        destination: IpNet,
        gateway: Option<IpAddr>,
        metric: u32,
    },
    SetSysctl {
        key: Sysctl,
        value: u32,
    },
    /// Mode bridge: build the bridge around the uplink, probe, and roll back
    /// exactly if the probe fails. One action: apply carries it out whole.
    TakeOverUplink(Box<TakeOver>),
    /// Mode bridge, network removed: everything back onto the uplink.
    GiveBackUplink(Box<GiveBack>),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateBridge { name, .. } => write!(f, "create bridge {name}"),
            Action::SetBridge { link, wanted, .. } => write!(
                f,
                "set STP {} and forward delay {}s on {link}",
                if wanted.stp { "on" } else { "off" },
                f64::from(wanted.forward_delay_cs) / 100.0
            ),
            Action::SetMtu { link, mtu } => write!(f, "set MTU {mtu} on {link}"),
            Action::SetMac { link, mac } => write!(f, "set MAC {mac} on {link}"),
            Action::SetAlias { link, alias } => write!(f, "set alias {alias:?} on {link}"),
            Action::SetUp { link } => write!(f, "bring {link} up"),
            Action::SetMaster { link, master } => write!(f, "enslave {link} to {master}"),
            Action::DeleteLink { link } => write!(f, "delete link {link}"),
            Action::CreateVxlan {
                name,
                vni,
                port,
                local,
                dev,
                ..
            } => write!(
                f,
                "create VXLAN device {name} (VNI {vni}, local {local}, port {port}, dev {dev})"
            ),
            Action::AddFloodRemote { link, peer } => {
                write!(f, "add flood entry to {peer} on {link}")
            }
            Action::DeleteFloodRemote { link, peer } => {
                write!(f, "delete flood entry to {peer} on {link}")
            }
            Action::AddAddress {
                link,
                address,
                prefix_len,
            } => write!(f, "add address {address}/{prefix_len} to {link}"),
            Action::DeleteAddress {
                link,
                address,
                prefix_len,
            } => write!(f, "delete address {address}/{prefix_len} from {link}"),
            Action::AddRoute { link, route } => {
                write!(
                    f,
                    "add route {} via {} dev {link} metric {}",
                    route.destination, route.gateway, route.metric
                )
            }
            Action::DeleteRoute {
                link,
                destination,
                gateway,
                metric,
            } => {
                write!(f, "delete route {destination}")?;
                if let Some(gw) = gateway {
                    write!(f, " via {gw}")?;
                }
                if let Some(link) = link {
                    write!(f, " dev {link}")?;
                }
                write!(f, " metric {metric}")
            }
            Action::SetSysctl { key, value } => write!(f, "set {key} = {value}"),
            Action::TakeOverUplink(t) => t.fmt(f),
            Action::GiveBackUplink(g) => g.fmt(f),
        }
    }
}

/// An action and the network it serves (`None`: host-wide).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub network: Option<String>,
    pub action: Action,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub drift: Vec<Drift>,
    pub steps: Vec<Step>,
    pub failures: Vec<Failure>,
}

/// Options of a plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Remove what kvmnet owns for networks no longer in the files. Off when
    /// some file was rejected: its networks must keep running.
    pub prune: bool,
}

/// Diffs `desired` against `observed` and plans the repairs: removals of
/// networks that left the files first (a renamed network may reuse their
/// bridge name), then each desired network, then host-wide settings.
pub fn plan(
    desired: &DesiredState,
    observed: &Observed,
    remembered: &Remembered,
    options: PlanOptions,
) -> Plan {
    let mut p = Planner {
        plan: Plan::default(),
        observed,
        remembered,
        foreign_routes: foreign_routes(&observed.kernel),
    };
    let removed = p.plan_removals(desired, options);
    for network in desired.networks.values() {
        p.plan_network(network, &removed);
    }
    p.plan_host(desired);
    p.plan
}

struct Planner<'a> {
    plan: Plan,
    observed: &'a Observed,
    remembered: &'a Remembered,
    /// (destination, device) of the routes a new subnet must not collide with.
    foreign_routes: Vec<(IpNet, String)>,
}

/// The main table's routes, default routes aside, through links kvmnet does
/// not own, and the LAN's routes on bridged networks' bridges (as foreign as
/// they were on the uplink). Found once per plan: every network is checked
/// against them.
fn foreign_routes(snapshot: &Snapshot) -> Vec<(IpNet, String)> {
    let links: HashMap<u32, &Link> = snapshot.links.iter().map(|l| (l.index, l)).collect();
    // Bridges with an uplink: a port with the bridge's own MAC.
    let bridged: HashSet<u32> = snapshot
        .links
        .iter()
        .filter_map(|port| {
            let bridge = links.get(&port.master?)?;
            (port.mac.is_some() && port.mac == bridge.mac).then_some(bridge.index)
        })
        .collect();
    snapshot
        .routes
        .iter()
        .filter(|r| r.table == RT_TABLE_MAIN && r.destination.prefix_len() != 0)
        .filter_map(|r| {
            let link = links.get(&r.oif?)?;
            let foreign = link_owner(link).is_none() || bridged.contains(&link.index);
            foreign.then(|| (r.destination, link.name.clone()))
        })
        .collect()
}

impl Planner<'_> {
    fn snapshot(&self) -> &Snapshot {
        &self.observed.kernel
    }

    fn drift(
        &mut self,
        network: Option<&str>,
        resource: Resource,
        object: String,
        change: Change,
    ) -> &mut Drift {
        self.plan.drift.push(Drift {
            network: network.map(str::to_string),
            resource,
            object,
            change,
            field: None,
            wanted: None,
            found: None,
        });
        self.plan.drift.last_mut().expect("just pushed")
    }

    fn changed(
        &mut self,
        network: &str,
        resource: Resource,
        object: &str,
        field: &str,
        wanted: String,
        found: String,
    ) {
        let d = self.drift(Some(network), resource, object.to_string(), Change::Changed);
        d.field = Some(field.to_string());
        d.wanted = Some(wanted);
        d.found = Some(found);
    }

    fn step(&mut self, network: Option<&str>, action: Action) {
        self.plan.steps.push(Step {
            network: network.map(str::to_string),
            action,
        });
    }

    /// Adopts `link`, made by a pass of ours killed before it set the
    /// alias, by setting it.
    fn adopt(&mut self, network: &str, resource: Resource, link: &str) {
        self.changed(
            network,
            resource,
            link,
            "alias",
            owner_alias(network),
            "none".into(),
        );
        self.step(
            Some(network),
            Action::SetAlias {
                link: link.to_string(),
                alias: owner_alias(network),
            },
        );
    }

    fn fail(&mut self, network: &str, message: String) {
        self.plan.failures.push(Failure {
            network: network.to_string(),
            message,
        });
    }

    /// Owned links and routes of networks that are no longer desired.
    /// Returns the names of the links that will be deleted.
    fn plan_removals(&mut self, desired: &DesiredState, options: PlanOptions) -> BTreeSet<String> {
        let mut removed = BTreeSet::new();
        let snapshot = self.snapshot();
        let stale: Vec<(String, String, Resource)> = snapshot
            .links
            .iter()
            .filter_map(|l| {
                // Ownership is kind-aware: our links are bridges and the
                // overlays' VXLAN devices.
                let resource = match l.kind.as_deref() {
                    Some("vxlan") => Resource::Vxlan,
                    _ => Resource::Bridge,
                };
                link_owner(l).map(|owner| (owner.to_string(), l.name.clone(), resource))
            })
            .filter(|(owner, name, _)| {
                desired.networks.get(owner).is_none_or(|n| {
                    n.bridge != *name && n.overlay.as_ref().is_none_or(|o| o.device != *name)
                })
            })
            .collect();
        if !options.prune {
            return removed;
        }
        for (owner, name, resource) in stale {
            self.drift(Some(&owner), resource, name.clone(), Change::Extra);
            let snapshot = self.snapshot();
            let give_back = snapshot.link_by_name(&name).and_then(|bridge| {
                takeover::uplink_of(snapshot, bridge)
                    .map(|uplink| takeover::give_back(snapshot, bridge, uplink))
            });
            let action = match give_back {
                Some(g) => Action::GiveBackUplink(Box::new(g)),
                None => Action::DeleteLink { link: name.clone() },
            };
            self.step(Some(&owner), action);
            removed.insert(name);
        }
        // Our routes on our links that stay, that no network wants.
        let wanted: Vec<(String, WantedRoute)> = desired
            .networks
            .values()
            .flat_map(|n| wanted_routes(n).into_iter().map(|r| (n.bridge.clone(), r)))
            .collect();
        let snapshot = self.snapshot();
        let mut extra = Vec::new();
        for route in snapshot
            .routes
            .iter()
            .filter(|r| r.protocol == RTPROT_KVMNET && r.table == RT_TABLE_MAIN)
        {
            // Our protocol number is ours only on our links: someone else
            // may use 72 too, on theirs.
            let Some(link) = route
                .oif
                .and_then(|i| snapshot.link_by_index(i))
                .filter(|l| link_owner(l).is_some())
                .map(|l| l.name.clone())
            else {
                continue;
            };
            if removed.contains(&link) {
                continue;
            }
            let is_wanted = wanted.iter().any(|(bridge, w)| {
                link == *bridge
                    && w.destination == route.destination
                    && Some(w.gateway) == route.gateway
                    && w.metric == route.metric
            });
            if !is_wanted {
                extra.push((link, route.destination, route.gateway, route.metric));
            }
        }
        for (link, destination, gateway, metric) in extra {
            // A route of a network still desired is reported under it.
            let owner = desired
                .networks
                .values()
                .find(|n| n.bridge == link)
                .map(|n| n.name.clone());
            let object = route_object(destination, gateway, Some(&link));
            self.drift(owner.as_deref(), Resource::Route, object, Change::Extra);
            self.step(
                owner.as_deref(),
                Action::DeleteRoute {
                    link: Some(link),
                    destination,
                    gateway,
                    metric,
                },
            );
        }
        removed
    }

    fn plan_network(&mut self, net: &DesiredNetwork, removed: &BTreeSet<String>) {
        let name = net.name.as_str();
        if !net.spec.bridge.managed {
            self.observe_unmanaged(net);
            return;
        }
        if let (Mode::Bridge, Some(uplink)) = (net.spec.mode, &net.spec.uplink) {
            self.plan_bridged(net, uplink, removed);
            return;
        }
        if let Some(message) = self
            .subnet_in_use(net)
            .or_else(|| self.overlay_problem(net))
        {
            self.fail(name, message);
            return;
        }
        let wanted_attrs = wanted_bridge_attrs(net);
        let existing = self.snapshot().link_by_name(&net.bridge).cloned();
        let old_index = existing.as_ref().map(|l| l.index);
        let link = match existing {
            Some(link) if removed.contains(&link.name) => None,
            Some(link) => match link_owner(&link) {
                Some(owner) if link.kind.as_deref() != Some("bridge") => {
                    self.fail(name, format!(
                        "bridge name {} is taken by the VXLAN device of network {owner:?}; rename the bridge (bridge.name)",
                        net.bridge
                    ));
                    return;
                }
                Some(owner) if owner == name => Some(link),
                Some(owner) => {
                    self.fail(name, format!(
                        "bridge name {} is taken by network {owner:?}, which kvmnet still runs (its file was rejected?)",
                        net.bridge
                    ));
                    return;
                }
                None if is_interrupted_create(net, &link) => {
                    self.adopt(name, Resource::Bridge, &net.bridge);
                    Some(link)
                }
                None => {
                    let kind = link.kind.as_deref().unwrap_or("device");
                    self.fail(name, format!(
                        "bridge name {} is taken by a {kind} kvmnet does not own; rename the bridge (bridge.name) or remove that link",
                        net.bridge
                    ));
                    return;
                }
            },
            None => None,
        };

        match &link {
            None => {
                self.drift(
                    Some(name),
                    Resource::Bridge,
                    net.bridge.clone(),
                    Change::Missing,
                );
                let settings = BridgeSettings {
                    stp: wanted_attrs.stp,
                    forward_delay_cs: wanted_attrs.forward_delay_cs,
                    mtu: net.spec.bridge.mtu,
                    mac: Some(net.mac.0),
                };
                self.step(
                    Some(name),
                    Action::CreateBridge {
                        name: net.bridge.clone(),
                        alias: owner_alias(name),
                        settings,
                    },
                );
            }
            Some(link) => self.plan_bridge_attrs(net, link, wanted_attrs),
        }
        self.plan_bridge_sysctls(net, link.is_some());
        self.plan_admin_up(net, link.as_ref());
        self.plan_addresses(net, link.as_ref());
        self.plan_routes(net, link.as_ref());
        if link.is_none() {
            self.plan_port_reattach(net, old_index);
        }
        if let Some(overlay) = &net.overlay {
            self.plan_vxlan(net, overlay, link.as_ref(), removed);
        }
    }

    /// Why an overlay network cannot run on this host: this host's part of
    /// it did not resolve, or its VXLAN device's name is taken.
    fn overlay_problem(&self, net: &DesiredNetwork) -> Option<String> {
        let overlay = net.overlay.as_ref()?;
        if let Some(problem) = &overlay.problem {
            return Some(problem.clone());
        }
        let device = self.snapshot().link_by_name(&overlay.device)?;
        let kind = device.kind.as_deref().unwrap_or("device");
        match link_owner(device) {
            Some(owner) if owner == net.name => None,
            Some(owner) => Some(format!(
                "VXLAN device name {} is taken by network {owner:?}, which kvmnet still runs (its file was rejected?)",
                overlay.device
            )),
            None if self.is_interrupted_vxlan_create(net, device) => None,
            None => Some(format!(
                "VXLAN device name {} is taken by a {kind} kvmnet does not own; remove that link",
                overlay.device
            )),
        }
    }

    /// A VXLAN device kvmnet was killed in the middle of creating (the alias
    /// is a second request): the wanted name, no alias, and this host's VNI,
    /// port and local address, which the kernel gives one device only.
    fn is_interrupted_vxlan_create(&self, net: &DesiredNetwork, device: &Link) -> bool {
        let (Some(spec), Some(overlay), Some(found)) =
            (&net.spec.overlay, &net.overlay, device.vxlan)
        else {
            return false;
        };
        device.kind.as_deref() == Some("vxlan")
            && device.alias.as_deref().is_none_or(str::is_empty)
            && found.vni == spec.vxlan.vni
            && found.port == spec.vxlan.port
            && found.local.is_some()
            && found.local == overlay.local
    }

    /// The overlay's VXLAN device, a port of the bridge, up, with one flood
    /// entry per remote peer. Its VNI, port, local address, underlay and
    /// learning are fixed at creation (the kernel refuses to change them):
    /// a device that differs is recreated. A peer added or removed changes
    /// only the flood entries.
    fn plan_vxlan(
        &mut self,
        net: &DesiredNetwork,
        overlay: &HostOverlay,
        bridge: Option<&Link>,
        removed: &BTreeSet<String>,
    ) {
        let name = net.name.as_str();
        let device = overlay.device.as_str();
        let (Some(spec), Some(local), Some(dev)) =
            (&net.spec.overlay, overlay.local, overlay.dev.clone())
        else {
            return;
        };
        let wanted = VxlanAttrs {
            vni: spec.vxlan.vni,
            port: spec.vxlan.port,
            local: Some(local),
            dev: self.snapshot().link_by_name(&dev).map(|l| l.index),
            learning: true,
        };
        let existing = self
            .snapshot()
            .link_by_name(device)
            .filter(|l| !removed.contains(&l.name))
            .cloned();
        let kept = match existing {
            None => {
                self.drift(Some(name), Resource::Vxlan, device.into(), Change::Missing);
                None
            }
            Some(link) => {
                if link_owner(&link).is_none() {
                    // Created by a pass killed before it set the alias.
                    self.adopt(name, Resource::Vxlan, device);
                }
                let kind = link.kind.as_deref().unwrap_or("device");
                let fits = match (kind, link.vxlan) {
                    ("vxlan", Some(found)) => self.vxlan_differences(name, device, wanted, found),
                    _ => {
                        self.changed(
                            name,
                            Resource::Vxlan,
                            device,
                            "kind",
                            "vxlan".into(),
                            kind.into(),
                        );
                        false
                    }
                };
                if !fits {
                    self.step(
                        Some(name),
                        Action::DeleteLink {
                            link: device.into(),
                        },
                    );
                }
                fits.then_some(link)
            }
        };
        let Some(link) = kept else {
            self.step(
                Some(name),
                Action::CreateVxlan {
                    name: device.into(),
                    alias: owner_alias(name),
                    vni: wanted.vni,
                    port: wanted.port,
                    local,
                    dev,
                    mtu: overlay.mtu,
                },
            );
            self.step(
                Some(name),
                Action::SetMaster {
                    link: device.into(),
                    master: net.bridge.clone(),
                },
            );
            self.step(
                Some(name),
                Action::SetUp {
                    link: device.into(),
                },
            );
            for &peer in &overlay.remotes {
                self.step(
                    Some(name),
                    Action::AddFloodRemote {
                        link: device.into(),
                        peer,
                    },
                );
            }
            return;
        };
        if let Some(mtu) = overlay.mtu.filter(|&m| m != link.mtu) {
            self.changed(
                name,
                Resource::Vxlan,
                device,
                "mtu",
                mtu.to_string(),
                link.mtu.to_string(),
            );
            self.step(
                Some(name),
                Action::SetMtu {
                    link: device.into(),
                    mtu,
                },
            );
        }
        let master = bridge.map(|b| b.index);
        if master.is_none() || link.master != master {
            if master.is_some() {
                let found = link
                    .master
                    .and_then(|m| self.snapshot().link_by_index(m))
                    .map_or("none".to_string(), |m| m.name.clone());
                self.changed(
                    name,
                    Resource::Vxlan,
                    device,
                    "master",
                    net.bridge.clone(),
                    found,
                );
            }
            self.step(
                Some(name),
                Action::SetMaster {
                    link: device.into(),
                    master: net.bridge.clone(),
                },
            );
        }
        if !link.admin_up {
            self.changed(
                name,
                Resource::Vxlan,
                device,
                "state",
                "up".into(),
                "down".into(),
            );
            self.step(
                Some(name),
                Action::SetUp {
                    link: device.into(),
                },
            );
        }
        let found: Vec<IpAddr> = self.snapshot().flood_remotes_of(link.index).collect();
        for &peer in found.iter().filter(|p| !overlay.remotes.contains(p)) {
            self.drift(
                Some(name),
                Resource::Fdb,
                format!("{peer} on {device}"),
                Change::Extra,
            );
            self.step(
                Some(name),
                Action::DeleteFloodRemote {
                    link: device.into(),
                    peer,
                },
            );
        }
        for &peer in overlay.remotes.iter().filter(|p| !found.contains(p)) {
            self.drift(
                Some(name),
                Resource::Fdb,
                format!("{peer} on {device}"),
                Change::Missing,
            );
            self.step(
                Some(name),
                Action::AddFloodRemote {
                    link: device.into(),
                    peer,
                },
            );
        }
    }

    /// Records each attribute of a VXLAN device that differs from the
    /// wanted one; returns whether none does.
    fn vxlan_differences(
        &mut self,
        network: &str,
        device: &str,
        wanted: VxlanAttrs,
        found: VxlanAttrs,
    ) -> bool {
        let show_ip = |ip: Option<IpAddr>| ip.map_or("none".to_string(), |ip| ip.to_string());
        let show_dev = |index: Option<u32>| {
            index
                .map(|i| {
                    self.snapshot()
                        .link_by_index(i)
                        .map_or(format!("index {i}"), |l| l.name.clone())
                })
                .unwrap_or_else(|| "none".to_string())
        };
        let differences = [
            ("vni", wanted.vni.to_string(), found.vni.to_string()),
            ("port", wanted.port.to_string(), found.port.to_string()),
            ("local", show_ip(wanted.local), show_ip(found.local)),
            ("dev", show_dev(wanted.dev), show_dev(found.dev)),
            ("learning", on_off(wanted.learning), on_off(found.learning)),
        ];
        let mut fits = true;
        for (field, wanted, found) in differences {
            if wanted != found {
                self.changed(network, Resource::Vxlan, device, field, wanted, found);
                fits = false;
            }
        }
        fits
    }

    /// `bridge.managed = false`: drift is reported, never repaired (no step).
    fn observe_unmanaged(&mut self, net: &DesiredNetwork) {
        let name = net.name.as_str();
        let Some(b) = self.snapshot().link_by_name(&net.bridge).cloned() else {
            self.drift(
                Some(name),
                Resource::Bridge,
                net.bridge.clone(),
                Change::Missing,
            );
            return self.fail(name, format!(
                "bridge {} does not exist; it is not kvmnet's to create (bridge.managed = false): create it with the tool that manages it",
                net.bridge
            ));
        };
        if b.kind.as_deref() != Some("bridge") {
            let kind = b.kind.as_deref().unwrap_or("device");
            return self.fail(name, format!("{} is a {kind}, not a bridge", net.bridge));
        }
        if !b.admin_up {
            self.changed(
                name,
                Resource::Bridge,
                &net.bridge,
                "state",
                "up".into(),
                "down".into(),
            );
        }
        if let Some(uplink) = &net.spec.uplink {
            let enslaved = self
                .snapshot()
                .link_by_name(uplink)
                .is_some_and(|d| d.master == Some(b.index));
            if !enslaved {
                let object = format!("{uplink} on {}", net.bridge);
                self.drift(Some(name), Resource::Port, object, Change::Missing);
            }
        }
    }

    /// Mode bridge with an uplink: the bridge is built around the uplink
    /// once; afterwards only the bridge's own attributes are kept. Its
    /// addresses and routes are the LAN's (moved from the uplink), not
    /// kvmnet's: they are neither added nor removed.
    fn plan_bridged(&mut self, net: &DesiredNetwork, uplink: &str, removed: &BTreeSet<String>) {
        let name = net.name.as_str();
        let Some(d) = self.snapshot().link_by_name(uplink).cloned() else {
            self.fail(name, format!("uplink {uplink} does not exist"));
            return;
        };
        let existing = self
            .snapshot()
            .link_by_name(&net.bridge)
            .filter(|l| !removed.contains(&l.name))
            .cloned();
        let Some(b) = existing else {
            // The uplink's bridge is removed earlier in this plan (the bridge
            // or the network was renamed): plan from the state after that.
            let releasing = d
                .master
                .and_then(|m| self.snapshot().link_by_index(m))
                .filter(|old| removed.contains(&old.name))
                .filter(|old| {
                    takeover::uplink_of(self.snapshot(), old).is_some_and(|u| u.index == d.index)
                });
            let view = match releasing {
                Some(old) => takeover::after_give_back(self.snapshot(), old, &d),
                None => self.snapshot().clone(),
            };
            let d = view.link_by_index(d.index).cloned().unwrap_or(d);
            if let Some(damage) = self.remembered.damaged_lans.get(name) {
                // Taking over without it would leave the host off its LAN.
                return self.fail(name, format!(
                    "{damage}; kvmnet does not take {uplink} over without it, as the host's LAN addresses and routes would be lost: \
                     restore the record (or delete it to take {uplink} over as it is now)"
                ));
            }
            let saved = self.remembered.lans.get(name);
            match takeover::take_over(net, &view, &d, saved) {
                Ok(t) => {
                    self.drift(
                        Some(name),
                        Resource::Bridge,
                        net.bridge.clone(),
                        Change::Missing,
                    );
                    self.step(Some(name), Action::TakeOverUplink(Box::new(t)));
                    self.plan_port_reattach(net, None);
                }
                Err(message) => self.fail(name, message),
            }
            return;
        };
        let kind = b.kind.as_deref().unwrap_or("device");
        match link_owner(&b) {
            Some(owner) if owner == name => {}
            Some(owner) => {
                return self.fail(name, format!(
                    "bridge name {} is taken by network {owner:?}, which kvmnet still runs (its file was rejected?)",
                    net.bridge
                ));
            }
            None => {
                return self.fail(name, format!(
                    "bridge name {} is taken by a {kind} kvmnet does not own (made by NetworkManager or systemd-networkd?); kvmnet never changes it: rename the bridge (bridge.name) or remove that link",
                    net.bridge
                ));
            }
        }
        if d.master != Some(b.index) {
            return self.fail(name, format!(
                "uplink {uplink} is not a port of {} any more (released by hand?) and the LAN addresses may still be on {}: kvmnet does not guess; move them back onto {uplink} and delete {} to have it built again",
                net.bridge, net.bridge, net.bridge
            ));
        }
        let stranded: Vec<String> = movable_addresses(self.snapshot(), &d)
            .iter()
            .map(|a| format!("{}/{}", a.address, a.prefix_len))
            .collect();
        if !stranded.is_empty() {
            return self.fail(name, format!(
                "uplink {uplink} is a port of {} but still has address(es) {} (a take-over interrupted?), which a bridge port cannot use: kvmnet does not guess; move them and {uplink}'s routes onto {} by hand, or release {uplink} and delete {} to have it taken over again",
                net.bridge, stranded.join(", "), net.bridge, net.bridge
            ));
        }
        let mut wanted = net.clone();
        if let Some(mac) = takeover::wanted_mac(net, &d) {
            wanted.mac = mac;
        }
        self.plan_bridge_attrs(&wanted, &b, wanted_bridge_attrs(net));
        self.plan_admin_up(net, Some(&b));
    }

    /// The bridge up; a bridge found down is drift.
    fn plan_admin_up(&mut self, net: &DesiredNetwork, link: Option<&Link>) {
        if link.is_some_and(|l| l.admin_up) {
            return;
        }
        if link.is_some() {
            self.changed(
                &net.name,
                Resource::Bridge,
                &net.bridge,
                "state",
                "up".into(),
                "down".into(),
            );
        }
        self.step(
            Some(&net.name),
            Action::SetUp {
                link: net.bridge.clone(),
            },
        );
    }

    /// A bridge about to be (re)created gets back the guest ports it had:
    /// remembered ports that still exist and are free, i.e. have no master
    /// or only the old bridge this plan deletes. A port enslaved elsewhere
    /// since then was moved on purpose and is left there.
    fn plan_port_reattach(&mut self, net: &DesiredNetwork, old_index: Option<u32>) {
        let Some(remembered) = self.remembered.ports.get(&net.name) else {
            return;
        };
        let free: Vec<String> = remembered
            .iter()
            .filter_map(|port| self.snapshot().link_by_name(port))
            .filter(|l| l.master.is_none() || l.master == old_index)
            .map(|l| l.name.clone())
            .collect();
        for port in free {
            let object = format!("{port} on {}", net.bridge);
            self.drift(Some(&net.name), Resource::Port, object, Change::Missing);
            self.step(
                Some(&net.name),
                Action::SetMaster {
                    link: port,
                    master: net.bridge.clone(),
                },
            );
        }
    }

    fn plan_bridge_attrs(&mut self, net: &DesiredNetwork, link: &Link, wanted: BridgeAttrs) {
        let name = net.name.as_str();
        let bridge = net.bridge.as_str();
        let current = link.bridge.unwrap_or(BridgeAttrs {
            stp: false,
            forward_delay_cs: 0,
        });
        if current != wanted {
            if current.stp != wanted.stp {
                self.changed(
                    name,
                    Resource::Bridge,
                    bridge,
                    "stp",
                    on_off(wanted.stp),
                    on_off(current.stp),
                );
            }
            if current.forward_delay_cs != wanted.forward_delay_cs {
                self.changed(
                    name,
                    Resource::Bridge,
                    bridge,
                    "delay",
                    centis(wanted.forward_delay_cs),
                    centis(current.forward_delay_cs),
                );
            }
            self.step(
                Some(name),
                Action::SetBridge {
                    link: bridge.to_string(),
                    current,
                    wanted,
                },
            );
        }
        if let Some(mtu) = net.spec.bridge.mtu {
            if link.mtu != mtu {
                self.changed(
                    name,
                    Resource::Bridge,
                    bridge,
                    "mtu",
                    mtu.to_string(),
                    link.mtu.to_string(),
                );
                self.step(
                    Some(name),
                    Action::SetMtu {
                        link: bridge.to_string(),
                        mtu,
                    },
                );
            }
        }
        if link.mac != Some(net.mac.0) {
            let found = link
                .mac
                .map_or("none".to_string(), |m| MacAddr(m).to_string());
            self.changed(
                name,
                Resource::Bridge,
                bridge,
                "mac",
                net.mac.to_string(),
                found,
            );
            self.step(
                Some(name),
                Action::SetMac {
                    link: bridge.to_string(),
                    mac: net.mac,
                },
            );
        }
    }

    /// IPv6 off on bridges without IPv6 (no link-local address, no RA
    /// listening); router advertisements ignored on bridges with IPv6, where
    /// the host is the router.
    fn plan_bridge_sysctls(&mut self, net: &DesiredNetwork, exists: bool) {
        if net.spec.mode == Mode::Bridge {
            return;
        }
        let has_v6 = net.spec.ip.iter().any(|ip| ip.address.0.addr().is_ipv6());
        let mut wanted = vec![(Sysctl::DisableIpv6(net.bridge.clone()), u32::from(!has_v6))];
        if has_v6 {
            wanted.push((Sysctl::AcceptRa(net.bridge.clone()), 0));
        }
        for (key, value) in wanted {
            if !exists {
                // A bridge about to be created starts with the kernel's defaults.
                self.step(Some(&net.name), Action::SetSysctl { key, value });
                continue;
            }
            let found = self.observed.sysctls.get(&key).copied().flatten();
            if found.is_none() {
                // IPv6 disabled on the host: nothing to set.
                continue;
            }
            if found != Some(value) {
                let object = key.to_string();
                self.changed(
                    &net.name,
                    Resource::Sysctl,
                    &object,
                    "value",
                    value.to_string(),
                    show(found),
                );
                self.step(Some(&net.name), Action::SetSysctl { key, value });
            }
        }
    }

    fn plan_addresses(&mut self, net: &DesiredNetwork, link: Option<&Link>) {
        let name = net.name.as_str();
        let wanted: Vec<(IpAddr, u8)> = net
            .spec
            .ip
            .iter()
            .map(|ip| (ip.address.0.addr(), ip.address.0.prefix_len()))
            .collect();
        let found: Vec<(IpAddr, u8)> = match link {
            Some(link) => self
                .snapshot()
                .addresses_of(link.index)
                .filter(|a| !is_ipv6_link_local(a.address))
                .map(|a| (a.address, a.prefix_len))
                .collect(),
            None => Vec::new(),
        };
        for &(address, prefix_len) in found.iter().filter(|a| !wanted.contains(a)) {
            let object = format!("{address}/{prefix_len} on {}", net.bridge);
            self.drift(Some(name), Resource::Address, object, Change::Extra);
            self.step(
                Some(name),
                Action::DeleteAddress {
                    link: net.bridge.clone(),
                    address,
                    prefix_len,
                },
            );
        }
        for &(address, prefix_len) in wanted.iter().filter(|a| !found.contains(a)) {
            if link.is_some() {
                let object = format!("{address}/{prefix_len} on {}", net.bridge);
                self.drift(Some(name), Resource::Address, object, Change::Missing);
            }
            self.step(
                Some(name),
                Action::AddAddress {
                    link: net.bridge.clone(),
                    address,
                    prefix_len,
                },
            );
        }
    }

    fn plan_routes(&mut self, net: &DesiredNetwork, link: Option<&Link>) {
        let snapshot = self.snapshot();
        let missing: Vec<WantedRoute> = wanted_routes(net)
            .into_iter()
            .filter(|w| {
                !link.is_some_and(|link| {
                    snapshot.routes.iter().any(|r| {
                        r.protocol == RTPROT_KVMNET
                            && r.table == RT_TABLE_MAIN
                            && r.oif == Some(link.index)
                            && r.destination == w.destination
                            && r.gateway == Some(w.gateway)
                            && r.metric == w.metric
                    })
                })
            })
            .collect();
        for route in missing {
            if link.is_some() {
                let object =
                    route_object(route.destination, Some(route.gateway), Some(&net.bridge));
                self.drift(Some(&net.name), Resource::Route, object, Change::Missing);
            }
            self.step(
                Some(&net.name),
                Action::AddRoute {
                    link: net.bridge.clone(),
                    route,
                },
            );
        }
    }

    /// libvirt's check: a subnet that a link kvmnet does not own already
    /// routes (a LAN on eno1, a VPN) would make the network unreachable or
    /// hijack that traffic.
    fn subnet_in_use(&self, net: &DesiredNetwork) -> Option<String> {
        for ip in &net.spec.ip {
            let subnet = ip.address.0.trunc();
            for (d, link) in &self.foreign_routes {
                if d.contains(&subnet.network()) || subnet.contains(&d.network()) {
                    return Some(format!("{subnet} is already in use by {link} (route {d})"));
                }
            }
        }
        None
    }

    /// ip_forward for nat and route networks (IPv6 forwarding when one of
    /// them has IPv6). Never turned off: other software may rely on it.
    fn plan_host(&mut self, desired: &DesiredState) {
        let failed: BTreeSet<&str> = self
            .plan
            .failures
            .iter()
            .map(|f| f.network.as_str())
            .collect();
        let forwarding: Vec<&DesiredNetwork> = desired
            .networks
            .values()
            .filter(|n| n.spec.mode.forwards() && !failed.contains(n.name.as_str()))
            .collect();
        let mut wanted = Vec::new();
        if !forwarding.is_empty() {
            wanted.push(Sysctl::IpForward);
        }
        if forwarding
            .iter()
            .any(|n| n.spec.ip.iter().any(|ip| ip.address.0.addr().is_ipv6()))
        {
            wanted.push(Sysctl::Ipv6Forwarding);
        }
        for key in wanted {
            let found = self.observed.sysctls.get(&key).copied().flatten();
            if found != Some(1) {
                let d = self.drift(None, Resource::Sysctl, key.to_string(), Change::Changed);
                d.field = Some("value".into());
                d.wanted = Some("1".into());
                d.found = Some(show(found));
                self.step(None, Action::SetSysctl { key, value: 1 });
            }
        }
    }
}

/// The sysctls a pass reads: host-wide ones and those of desired bridges.
fn route_object(destination: IpNet, gateway: Option<IpAddr>, link: Option<&str>) -> String {
    let mut s = destination.to_string();
    if let Some(gw) = gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(link) = link {
        s.push_str(&format!(" dev {link}"));
    }
    s
}

/// A bridge kvmnet created and could not mark before it was killed: the
/// kernel takes no IFLA_IFALIAS in the request that creates a link, so the
/// alias is a second write. Such a bridge has the network's bridge name, no
/// alias at all, and the MAC kvmnet derives for that network (given in the
/// creating request); it is adopted rather than disowned. A bridge someone
/// else made has another MAC (the kernel's random one, or its first port's).
fn is_interrupted_create(net: &DesiredNetwork, link: &Link) -> bool {
    link.kind.as_deref() == Some("bridge")
        && link.alias.as_deref().is_none_or(str::is_empty)
        && link.mac == Some(net.mac.0)
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

pub fn centis(cs: u32) -> String {
    humantime::format_duration(std::time::Duration::from_millis(u64::from(cs) * 10)).to_string()
}

fn show(value: Option<u32>) -> String {
    value.map_or("absent".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests;
