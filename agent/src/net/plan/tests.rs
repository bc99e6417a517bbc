//! Plan tests against a simulated kernel: every example converges in one
//! pass, an in-sync host plans nothing, and each kind of drift is found.
//! One file for the planner's tests, like the planner itself.

use std::net::IpAddr;
use std::path::Path;

use super::*;
use crate::config::desired::HostLink;
use crate::config::load::load_dir;
use crate::kernel::{Address, FdbEntry, Route};
use crate::net::observe::host_links;

fn desired(text: &str) -> DesiredState {
    let state = crate::testutil::desired(text);
    assert!(state.rejected.is_empty(), "{:?}", state.rejected);
    state
}

fn examples() -> DesiredState {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut state = DesiredState::from_loads(load_dir(&dir).unwrap());
    // The bridged example enslaves eno2, which this simulated host lacks.
    state.networks.retain(|_, n| n.spec.mode != Mode::Bridge);
    // This host is the overlay example's gateway.
    state.on_host(&host_links(&examples_host().kernel))
}

/// [`host`] holding the overlay example's gateway address too.
fn examples_host() -> Observed {
    let mut o = host();
    o.kernel.addresses.push(addr(2, "10.10.10.1", 24, false));
    o
}

/// A host with a loopback and an uplink, and the kernel's defaults.
fn host() -> Observed {
    let mut o = Observed::default();
    o.kernel.links.push(link(1, "lo", None, None));
    o.kernel.links.push(link(2, "eno1", None, None));
    o.kernel.addresses.push(addr(2, "10.12.17.200", 24, false));
    o.kernel.routes.push(route(2, "10.12.17.0/24", None, 2));
    o.kernel
        .routes
        .push(route(2, "0.0.0.0/0", Some("10.12.17.1"), 3));
    o.sysctls.insert(Sysctl::IpForward, Some(0));
    o.sysctls.insert(Sysctl::Ipv6Forwarding, Some(0));
    o
}

fn link(index: u32, name: &str, kind: Option<&str>, alias: Option<&str>) -> Link {
    Link {
        index,
        name: name.into(),
        kind: kind.map(Into::into),
        admin_up: true,
        mtu: 1500,
        mac: Some([0, 0xe0, 0x70, 0xe8, 0xfd, index as u8]),
        master: None,
        alias: alias.map(Into::into),
        bridge: None,
        vxlan: None,
        group: 0,
    }
}

fn addr(index: u32, a: &str, prefix_len: u8, ours: bool) -> Address {
    Address {
        index,
        address: a.parse().unwrap(),
        prefix_len,
        protocol: ours.then_some(RTPROT_KVMNET),
        permanent: true,
        flags: 0x80,
        broadcast: None,
    }
}

fn route(oif: u32, dst: &str, gw: Option<&str>, protocol: u8) -> Route {
    Route {
        table: RT_TABLE_MAIN,
        destination: dst.parse().unwrap(),
        gateway: gw.map(|g| g.parse().unwrap()),
        oif: Some(oif),
        protocol,
        metric: 0,
        scope: 0,
        kind: 1,
    }
}

/// Applies steps to the simulated kernel, as the real one would.
fn simulate(o: &mut Observed, steps: &[Step]) {
    for step in steps {
        let index_of = |o: &Observed, name: &str| o.kernel.link_by_name(name).unwrap().index;
        match &step.action {
            Action::CreateBridge {
                name,
                alias,
                settings,
            } => {
                let index = o.kernel.links.iter().map(|l| l.index).max().unwrap_or(0) + 1;
                let mut l = link(index, name, Some("bridge"), Some(alias));
                l.admin_up = false;
                l.mtu = settings.mtu.unwrap_or(1500);
                l.mac = settings.mac;
                l.bridge = Some(BridgeAttrs {
                    stp: settings.stp,
                    forward_delay_cs: settings.forward_delay_cs,
                });
                o.kernel.links.push(l);
                o.sysctls.insert(Sysctl::DisableIpv6(name.clone()), Some(0));
                o.sysctls.insert(Sysctl::AcceptRa(name.clone()), Some(1));
            }
            Action::SetBridge { link, wanted, .. } => {
                let i = index_of(o, link);
                o.kernel
                    .links
                    .iter_mut()
                    .find(|l| l.index == i)
                    .unwrap()
                    .bridge = Some(*wanted);
            }
            Action::SetMtu { link, mtu } => {
                o.kernel
                    .links
                    .iter_mut()
                    .find(|l| l.name == *link)
                    .unwrap()
                    .mtu = *mtu
            }
            Action::SetMac { link, mac } => {
                o.kernel
                    .links
                    .iter_mut()
                    .find(|l| l.name == *link)
                    .unwrap()
                    .mac = Some(mac.0)
            }
            Action::SetAlias { link, alias } => {
                o.kernel
                    .links
                    .iter_mut()
                    .find(|l| l.name == *link)
                    .unwrap()
                    .alias = Some(alias.clone())
            }
            Action::SetUp { link } => {
                o.kernel
                    .links
                    .iter_mut()
                    .find(|l| l.name == *link)
                    .unwrap()
                    .admin_up = true
            }
            Action::SetMaster { link, master } => {
                let m = index_of(o, master);
                o.kernel
                    .links
                    .iter_mut()
                    .find(|l| l.name == *link)
                    .unwrap()
                    .master = Some(m)
            }
            Action::DeleteLink { link } => {
                let i = index_of(o, link);
                o.kernel.links.retain(|l| l.index != i);
                // The kernel releases the ports of a deleted bridge.
                for l in o.kernel.links.iter_mut().filter(|l| l.master == Some(i)) {
                    l.master = None;
                }
                o.kernel.addresses.retain(|a| a.index != i);
                o.kernel.routes.retain(|r| r.oif != Some(i));
            }
            Action::AddAddress {
                link,
                address,
                prefix_len,
            } => {
                let i = index_of(o, link);
                o.kernel.addresses.push(Address {
                    index: i,
                    address: *address,
                    prefix_len: *prefix_len,
                    protocol: Some(RTPROT_KVMNET),
                    permanent: true,
                    flags: 0x80,
                    broadcast: None,
                });
            }
            Action::DeleteAddress {
                link,
                address,
                prefix_len,
            } => {
                let i = index_of(o, link);
                o.kernel.addresses.retain(|a| {
                    !(a.index == i && a.address == *address && a.prefix_len == *prefix_len)
                });
            }
            Action::AddRoute { link, route } => {
                let i = index_of(o, link);
                o.kernel.routes.push(Route {
                    table: RT_TABLE_MAIN,
                    destination: route.destination,
                    gateway: Some(route.gateway),
                    oif: Some(i),
                    protocol: RTPROT_KVMNET,
                    metric: route.metric,
                    scope: 0,
                    kind: 1,
                });
            }
            Action::DeleteRoute {
                destination,
                gateway,
                metric,
                ..
            } => {
                o.kernel.routes.retain(|r| {
                    !(r.protocol == RTPROT_KVMNET
                        && r.destination == *destination
                        && r.gateway == *gateway
                        && r.metric == *metric)
                });
            }
            Action::SetSysctl { key, value } => {
                o.sysctls.insert(key.clone(), Some(*value));
            }
            Action::CreateVxlan {
                name,
                alias,
                vni,
                port,
                local,
                dev,
                mtu,
            } => {
                let index = o.kernel.links.iter().map(|l| l.index).max().unwrap_or(0) + 1;
                let dev = index_of(o, dev);
                let mut l = link(index, name, Some("vxlan"), Some(alias));
                l.admin_up = false;
                l.mtu = mtu.unwrap_or(1450);
                l.vxlan = Some(VxlanAttrs {
                    vni: *vni,
                    port: *port,
                    local: Some(*local),
                    dev: Some(dev),
                    learning: true,
                });
                o.kernel.links.push(l);
            }
            Action::AddFloodRemote { link, peer } => {
                let index = index_of(o, link);
                o.kernel.fdb.push(FdbEntry {
                    index,
                    mac: [0; 6],
                    dst: *peer,
                });
            }
            Action::DeleteFloodRemote { link, peer } => {
                let index = index_of(o, link);
                o.kernel
                    .fdb
                    .retain(|e| !(e.index == index && e.dst == *peer));
            }
            Action::TakeOverUplink(t) => {
                let d = index_of(o, &t.uplink);
                let b = o.kernel.links.iter().map(|l| l.index).max().unwrap_or(0) + 1;
                let mut l = link(b, &t.bridge, Some("bridge"), Some(&t.alias));
                l.mtu = t.settings.mtu.unwrap();
                l.mac = t.settings.mac;
                l.bridge = Some(BridgeAttrs {
                    stp: t.settings.stp,
                    forward_delay_cs: t.settings.forward_delay_cs,
                });
                o.kernel.links.push(l);
                move_all(o, d, b);
                for a in &t.restored_addresses {
                    o.kernel.addresses.push(Address {
                        index: b,
                        ..a.clone()
                    });
                }
                for r in &t.restored_routes {
                    o.kernel.routes.push(Route {
                        oif: Some(b),
                        ..r.clone()
                    });
                }
                o.kernel
                    .links
                    .iter_mut()
                    .find(|l| l.index == d)
                    .unwrap()
                    .master = Some(b);
            }
            Action::GiveBackUplink(g) => {
                let d = index_of(o, &g.uplink);
                let b = index_of(o, &g.bridge);
                move_all(o, b, d);
                o.kernel.links.retain(|l| l.index != b);
                o.kernel
                    .links
                    .iter_mut()
                    .find(|l| l.index == d)
                    .unwrap()
                    .master = None;
            }
        }
    }
}

/// Moves addresses and routes (the kernel's prefix routes follow them).
fn move_all(o: &mut Observed, from: u32, to: u32) {
    for a in o.kernel.addresses.iter_mut().filter(|a| a.index == from) {
        a.index = to;
    }
    for r in o.kernel.routes.iter_mut().filter(|r| r.oif == Some(from)) {
        r.oif = Some(to);
    }
}

const PRUNE: PlanOptions = PlanOptions { prune: true };

/// A plan with nothing remembered.
fn plan(d: &DesiredState, o: &Observed, options: PlanOptions) -> Plan {
    super::plan(d, o, &Remembered::default(), options)
}

/// Converges `o` towards `d` and checks that one pass suffices.
fn converge(d: &DesiredState, o: &mut Observed) -> Plan {
    converge_remembering(d, o, &Remembered::default())
}

/// Converges `o` towards `d`, with `m` remembered, in one pass.
fn converge_remembering(d: &DesiredState, o: &mut Observed, m: &Remembered) -> Plan {
    let p = super::plan(d, o, m, PRUNE);
    simulate(o, &p.steps);
    let again = super::plan(d, o, m, PRUNE);
    assert!(
        again.steps.is_empty() && again.drift.is_empty(),
        "not converged in one pass: {again:#?}"
    );
    p
}

fn actions(p: &Plan) -> Vec<String> {
    p.steps.iter().map(|s| s.action.to_string()).collect()
}

const NAT: &str = r#"
[networks.n]
mode = "nat"
bridge = { name = "virbr-n", mtu = 9000, delay = "2s" }
[[networks.n.ip]]
address = "192.168.10.1/24"
dhcp.ranges = [{ start = "192.168.10.2", end = "192.168.10.254" }]
[[networks.n.routes]]
to = "10.50.0.0/16"
via = "192.168.10.254"
"#;

#[test]
fn every_example_converges_in_one_pass_and_then_plans_nothing() {
    let d = examples();
    assert!(d.networks.len() >= 5);
    let mut o = examples_host();
    let first = converge(&d, &mut o);
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    assert_eq!(o.sysctls[&Sysctl::IpForward], Some(1));
    // The lab example has IPv6 on a routed (nat) network.
    assert_eq!(o.sysctls[&Sysctl::Ipv6Forwarding], Some(1));
}

#[test]
fn creation_is_ordered() {
    let d = desired(NAT);
    let mut o = host();
    let p = converge(&d, &mut o);
    assert_eq!(
        actions(&p),
        [
            "create bridge virbr-n",
            "set net.ipv6.conf.virbr-n.disable_ipv6 = 1",
            "bring virbr-n up",
            "add address 192.168.10.1/24 to virbr-n",
            "add route 10.50.0.0/16 via 192.168.10.254 dev virbr-n metric 0",
            "set net.ipv4.ip_forward = 1",
        ]
    );
    let missing: Vec<String> = p.drift.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        missing,
        [
            "+ bridge virbr-n: missing",
            "~ sysctl net.ipv4.ip_forward value: wanted 1, found 0"
        ]
    );
}

fn in_sync(text: &str) -> (DesiredState, Observed) {
    let d = desired(text);
    let mut o = host();
    converge(&d, &mut o);
    (d, o)
}

fn bridge_mut<'a>(o: &'a mut Observed, name: &str) -> &'a mut Link {
    o.kernel.links.iter_mut().find(|l| l.name == name).unwrap()
}

#[test]
fn each_fault_is_found_and_repaired() {
    type Fault = fn(&mut Observed);
    let faults: [(&str, Fault, &str); 9] = [
        (
            "bridge deleted",
            |o| {
                let i = o.kernel.link_by_name("virbr-n").unwrap().index;
                o.kernel.links.retain(|l| l.index != i);
                o.kernel.addresses.retain(|a| a.index != i);
                o.kernel.routes.retain(|r| r.oif != Some(i));
            },
            "+ bridge virbr-n: missing",
        ),
        (
            "bridge down",
            |o| bridge_mut(o, "virbr-n").admin_up = false,
            "~ bridge virbr-n state: wanted up, found down",
        ),
        (
            "mtu",
            |o| bridge_mut(o, "virbr-n").mtu = 1500,
            "~ bridge virbr-n mtu: wanted 9000, found 1500",
        ),
        (
            "stp off",
            |o| {
                bridge_mut(o, "virbr-n").bridge = Some(BridgeAttrs {
                    stp: false,
                    forward_delay_cs: 200,
                })
            },
            "~ bridge virbr-n stp: wanted on, found off",
        ),
        (
            "mac",
            |o| bridge_mut(o, "virbr-n").mac = Some([2, 0, 0, 0, 0, 1]),
            "~ bridge virbr-n mac",
        ),
        (
            "address removed",
            |o| {
                o.kernel
                    .addresses
                    .retain(|a| a.address != "192.168.10.1".parse::<IpAddr>().unwrap())
            },
            "+ address 192.168.10.1/24 on virbr-n: missing",
        ),
        (
            "address added by hand",
            |o| {
                let i = o.kernel.link_by_name("virbr-n").unwrap().index;
                o.kernel.addresses.push(addr(i, "172.16.0.1", 24, false));
            },
            "- address 172.16.0.1/24 on virbr-n: not in the desired state",
        ),
        (
            "route deleted",
            |o| o.kernel.routes.retain(|r| r.protocol != RTPROT_KVMNET),
            "+ route 10.50.0.0/16 via 192.168.10.254 dev virbr-n: missing",
        ),
        (
            "ip_forward reset",
            |o| {
                o.sysctls.insert(Sysctl::IpForward, Some(0));
            },
            "~ sysctl net.ipv4.ip_forward value: wanted 1, found 0",
        ),
    ];
    for (what, fault, expected) in faults {
        let (d, mut o) = in_sync(NAT);
        fault(&mut o);
        let p = converge(&d, &mut o);
        let drift: Vec<String> = p.drift.iter().map(|d| d.to_string()).collect();
        assert!(
            drift.iter().any(|d| d.starts_with(expected)),
            "{what}: {drift:?}"
        );
        assert!(p.failures.is_empty(), "{what}: {:?}", p.failures);
    }
}

#[test]
fn in_sync_host_plans_nothing() {
    let (d, o) = in_sync(NAT);
    assert_eq!(plan(&d, &o, PRUNE), Plan::default());
}

#[test]
fn ipv6_link_local_addresses_are_not_drift() {
    let (d, mut o) = in_sync(NAT);
    let i = o.kernel.link_by_name("virbr-n").unwrap().index;
    o.kernel
        .addresses
        .push(addr(i, "fe80::5054:ff:fe00:1", 64, false));
    assert!(plan(&d, &o, PRUNE).drift.is_empty());
}

#[test]
fn removed_network_loses_exactly_its_own_objects() {
    let two = format!("{NAT}\n[networks.m]\nmode = \"isolated\"\n[[networks.m.ip]]\naddress = \"192.168.20.1/24\"\n");
    let (_, mut o) = in_sync(&two);
    let before_foreign: Vec<Link> = o
        .kernel
        .links
        .iter()
        .filter(|l| link_owner(l).is_none())
        .cloned()
        .collect();
    let d = desired(NAT);
    let p = converge(&d, &mut o);
    assert_eq!(actions(&p), ["delete link kv-m"]);
    assert_eq!(p.drift[0].network.as_deref(), Some("m"));
    let after_foreign: Vec<Link> = o
        .kernel
        .links
        .iter()
        .filter(|l| link_owner(l).is_none())
        .cloned()
        .collect();
    assert_eq!(before_foreign, after_foreign);
    assert!(o.kernel.link_by_name("virbr-n").is_some());
}

#[test]
fn nothing_is_pruned_while_a_file_is_rejected() {
    let (_, o) = in_sync(NAT);
    let d = DesiredState::default();
    let p = plan(&d, &o, PlanOptions { prune: false });
    assert!(p.steps.is_empty() && p.drift.is_empty());
}

#[test]
fn a_bridge_created_but_not_yet_marked_is_adopted_by_its_mac() {
    let d = desired(NAT);
    let (_, converged) = in_sync(NAT);
    let ours = converged.kernel.link_by_name("virbr-n").unwrap().clone();
    let mut o = converged.clone();
    o.kernel.links.retain(|l| l.name != "virbr-n");
    o.kernel.links.push(Link {
        alias: None,
        ..ours.clone()
    });
    let p = plan(&d, &o, PRUNE);
    assert!(p.failures.is_empty(), "{:?}", p.failures);
    assert_eq!(actions(&p), ["set alias \"kvmnet:n\" on virbr-n"]);

    // Another MAC: somebody else's bridge, never taken.
    let mut foreign = converged;
    foreign.kernel.links.retain(|l| l.name != "virbr-n");
    foreign.kernel.links.push(Link {
        alias: None,
        mac: Some([0x02, 0, 0, 0, 0, 1]),
        ..ours
    });
    let p = plan(&d, &foreign, PRUNE);
    assert!(p.failures[0].message.contains("kvmnet does not own"));
    assert!(p.steps.is_empty());
}

#[test]
fn foreign_link_with_the_bridge_name_fails_that_network_only() {
    let two = format!("{NAT}\n[networks.m]\nmode = \"isolated\"\n[[networks.m.ip]]\naddress = \"192.168.20.1/24\"\n");
    let d = desired(&two);
    let mut o = host();
    o.kernel
        .links
        .push(link(9, "virbr-n", Some("bridge"), None));
    let p = plan(&d, &o, PRUNE);
    assert_eq!(p.failures.len(), 1);
    assert!(
        p.failures[0]
            .message
            .contains("virbr-n is taken by a bridge kvmnet does not own"),
        "{:?}",
        p.failures
    );
    assert!(p.steps.iter().all(|s| s.network.as_deref() != Some("n")));
    assert!(p.steps.iter().any(|s| s.network.as_deref() == Some("m")));
    // Nothing touches the foreign link, and ip_forward is not needed by m.
    assert!(!actions(&p).iter().any(|a| a.contains("ip_forward")));
}

#[test]
fn subnet_in_use_on_a_foreign_device_is_refused() {
    let d = desired(NAT);
    let mut o = host();
    o.kernel.routes.push(route(2, "192.168.10.0/24", None, 2));
    let p = plan(&d, &o, PRUNE);
    assert_eq!(
        p.failures[0].message,
        "192.168.10.0/24 is already in use by eno1 (route 192.168.10.0/24)"
    );
    assert!(p.steps.is_empty());
}

/// Only bridges are ours by alias: kvmnet creates no other kind, so a
/// veth or NIC carrying `kvmnet:<name>` is someone else's.
#[test]
fn a_link_of_another_kind_with_our_alias_is_not_ours() {
    let (d, mut o) = in_sync(NAT);
    bridge_mut(&mut o, "virbr-n").kind = Some("dummy".into());
    o.kernel
        .links
        .push(link(70, "veth-x", Some("veth"), Some("kvmnet:gone")));
    o.kernel
        .links
        .push(link(71, "eth9", None, Some("kvmnet:n")));
    let p = plan(&d, &o, PRUNE);
    assert!(p.steps.is_empty(), "{:?}", actions(&p));
    assert!(p.drift.iter().all(|d| d.resource != Resource::Bridge));
    assert!(
        p.failures[0]
            .message
            .contains("virbr-n is taken by a dummy kvmnet does not own"),
        "{:?}",
        p.failures
    );
}

/// `o` with guest ports vnet0 and vnet1 on virbr-n; returns the bridge's
/// index and the memory of those ports.
fn with_guest_ports(o: &mut Observed) -> (u32, Remembered) {
    let bridge = o.kernel.link_by_name("virbr-n").unwrap().index;
    for (index, name) in [(50, "vnet0"), (51, "vnet1")] {
        let mut port = link(index, name, Some("tun"), None);
        port.master = Some(bridge);
        o.kernel.links.push(port);
    }
    let m = Remembered {
        ports: crate::net::ports::learn(&Default::default(), &desired(NAT), &o.kernel),
        ..Remembered::default()
    };
    (bridge, m)
}

#[test]
fn a_recreated_bridge_gets_its_guest_ports_back() {
    let (d, mut o) = in_sync(NAT);
    let (bridge, m) = with_guest_ports(&mut o);
    assert!(
        super::plan(&d, &o, &m, PRUNE).steps.is_empty(),
        "ports are no drift"
    );
    // Deleted by hand: the kernel releases the ports. vnet1 is then moved
    // to another bridge on purpose, and stays there.
    o.kernel.links.retain(|l| l.index != bridge);
    o.kernel
        .links
        .push(link(60, "br-other", Some("bridge"), None));
    for l in &mut o.kernel.links {
        l.master = match l.name.as_str() {
            "vnet1" => Some(60),
            _ => None,
        };
    }
    let p = converge_remembering(&d, &mut o, &m);
    let a = actions(&p);
    assert_eq!(
        a.last().map(String::as_str),
        Some("enslave vnet0 to virbr-n")
    );
    assert!(!a.iter().any(|a| a.contains("vnet1")), "{a:?}");
    assert!(p
        .drift
        .iter()
        .any(|d| d.to_string() == "+ port vnet0 on virbr-n: missing"));
}

#[test]
fn stray_owned_route_is_removed() {
    let (d, mut o) = in_sync(NAT);
    let i = o.kernel.link_by_name("virbr-n").unwrap().index;
    o.kernel.routes.push(route(
        i,
        "10.99.0.0/16",
        Some("192.168.10.99"),
        RTPROT_KVMNET,
    ));
    let p = converge(&d, &mut o);
    assert_eq!(
        actions(&p),
        ["delete route 10.99.0.0/16 via 192.168.10.99 dev virbr-n metric 0"]
    );
    assert_eq!(p.drift[0].network.as_deref(), Some("n"));
}

/// Protocol 72 marks our routes on our links only.
#[test]
fn a_route_in_our_protocol_on_a_foreign_link_is_left_alone() {
    let (d, mut o) = in_sync(NAT);
    o.kernel
        .routes
        .push(route(2, "10.98.0.0/16", Some("10.12.17.9"), RTPROT_KVMNET));
    let p = plan(&d, &o, PRUNE);
    assert!(
        p.steps.is_empty() && p.drift.is_empty(),
        "{:?}",
        actions(&p)
    );
}

#[test]
fn modes() {
    let isolated = desired(
        "[networks.i]\nmode = \"isolated\"\n[[networks.i.ip]]\naddress = \"192.168.30.1/24\"\n",
    );
    let p = plan(&isolated, &host(), PRUNE);
    assert!(
        !actions(&p).iter().any(|a| a.contains("ip_forward")),
        "isolated needs no forwarding"
    );

    let v6 =
        desired("[networks.r]\nmode = \"route\"\n[[networks.r.ip]]\naddress = \"fd00:1::1/64\"\n");
    let p = plan(&v6, &host(), PRUNE);
    let a = actions(&p);
    assert!(
        a.contains(&"set net.ipv6.conf.kv-r.disable_ipv6 = 0".to_string()),
        "{a:?}"
    );
    assert!(
        a.contains(&"set net.ipv6.conf.kv-r.accept_ra = 0".to_string()),
        "{a:?}"
    );
    assert!(
        a.contains(&"set net.ipv6.conf.all.forwarding = 1".to_string()),
        "{a:?}"
    );

    let bridged = desired("[networks.b]\nmode = \"bridge\"\nbridge = { name = \"br0\" }\n");
    let mut o = host();
    let p = converge(&bridged, &mut o);
    assert_eq!(actions(&p), ["create bridge br0", "bring br0 up"]);
}

const BRIDGED: &str =
    "[networks.b]\nmode = \"bridge\"\nuplink = \"eno1\"\nbridge = { name = \"br0\", stp = false }\n";

#[test]
fn bridged_takes_the_uplink_over_with_its_mac_addresses_and_routes() {
    let d = desired(BRIDGED);
    let mut o = host();
    let p = converge(&d, &mut o);
    assert!(p.failures.is_empty(), "{:?}", p.failures);
    let [step] = &p.steps[..] else {
        panic!("one compound step: {:?}", actions(&p))
    };
    let Action::TakeOverUplink(t) = &step.action else {
        panic!("{step:?}")
    };
    let eno1 = host().kernel.link_by_name("eno1").unwrap().clone();
    assert_eq!(t.settings.mac, eno1.mac);
    assert_eq!(t.settings.mtu, Some(eno1.mtu));
    assert_eq!(t.addresses.len(), 1);
    // The kernel's prefix route follows the address; the default route moves.
    assert_eq!(t.routes.len(), 1);
    assert_eq!(t.routes[0].protocol, 3, "the route keeps its protocol");
    let probe = t.probe.unwrap();
    assert_eq!(probe.target.to_string(), "10.12.17.1");
    assert_eq!(probe.source.to_string(), "10.12.17.200");
    assert_eq!(probe.timeout, std::time::Duration::from_secs(2));
    assert_eq!(
        actions(&p),
        ["enslave uplink eno1 into new bridge br0 and move 1 address(es) and 1 route(s) onto it, then probe gateway 10.12.17.1 by ARP within 2s"]
    );
    // Adopted as is afterwards: nothing to do (converge checked it).
    let br0 = o.kernel.link_by_name("br0").unwrap().index;
    assert_eq!(o.kernel.link_by_name("eno1").unwrap().master, Some(br0));
}

#[test]
fn bridged_probe_options_and_stp_wait() {
    let d = desired(
        "[networks.b]\nmode = \"bridge\"\nuplink = \"eno1\"\nbridge = { name = \"br0\", delay = \"3s\" }\nprobe = { target = \"10.12.17.9\", timeout = \"1s\" }\n",
    );
    let p = plan(&d, &host(), PRUNE);
    let Action::TakeOverUplink(t) = &p.steps[0].action else {
        panic!("{p:?}")
    };
    let probe = t.probe.unwrap();
    assert_eq!(probe.target.to_string(), "10.12.17.9");
    assert!(!probe.gateway);
    // STP on: listening and learning, 2 x 3s, before the bridge forwards.
    assert_eq!(probe.timeout, std::time::Duration::from_secs(7));

    let off = desired(&format!("{BRIDGED}probe.enable = false\n"));
    let p = plan(&off, &host(), PRUNE);
    let Action::TakeOverUplink(t) = &p.steps[0].action else {
        panic!("{p:?}")
    };
    assert_eq!(t.probe, None);
}

#[test]
fn bridged_refuses_dynamic_addresses_unless_told() {
    let mut o = host();
    o.kernel.addresses[0].permanent = false;
    let p = plan(&desired(BRIDGED), &o, PRUNE);
    assert!(p.steps.is_empty());
    assert!(
        p.failures[0]
            .message
            .starts_with("uplink eno1 has dynamic address(es) 10.12.17.200/24 (from a DHCP client"),
        "{:?}",
        p.failures
    );
    let moving = desired(&BRIDGED.replace("stp = false", "stp = false, move_dynamic = true"));
    let p = plan(&moving, &o, PRUNE);
    assert!(p.failures.is_empty(), "{:?}", p.failures);
}

#[test]
fn bridged_take_over_is_refused_while_its_lan_record_is_damaged() {
    let d = desired(BRIDGED);
    let network = d.networks.keys().next().unwrap();
    let mut m = Remembered::default();
    m.damaged_lans.insert(
        network.clone(),
        "the LAN record /var/lib/kvmnet/lan/lan.json is damaged (EOF)".into(),
    );
    let p = super::plan(&d, &host(), &m, PRUNE);
    assert!(p.steps.is_empty(), "{:?}", actions(&p));
    assert!(
        p.failures[0].message.contains("is damaged")
            && p.failures[0].message.contains("does not take eno1 over"),
        "{:?}",
        p.failures
    );
}

#[test]
fn bridged_failures_say_why() {
    let mut o = host();
    o.kernel.links.push(link(9, "br0", Some("bridge"), None));
    let p = plan(&desired(BRIDGED), &o, PRUNE);
    assert!(
        p.failures[0]
            .message
            .contains("taken by a bridge kvmnet does not own"),
        "{p:?}"
    );
    assert!(p.steps.is_empty());

    let p = plan(&desired(&BRIDGED.replace("eno1", "eno9")), &host(), PRUNE);
    assert_eq!(p.failures[0].message, "uplink eno9 does not exist");

    let (d, mut o) = in_sync(BRIDGED);
    o.kernel
        .links
        .iter_mut()
        .find(|l| l.name == "eno1")
        .unwrap()
        .master = None;
    let p = plan(&d, &o, PRUNE);
    assert!(
        p.failures[0]
            .message
            .contains("is not a port of br0 any more"),
        "{p:?}"
    );
    assert!(p.steps.is_empty(), "never guesses: {p:?}");
    // Interrupted between the enslave and the move.
    let (d, mut o) = in_sync(BRIDGED);
    o.kernel.addresses[0].index = 2;
    let p = plan(&d, &o, PRUNE);
    assert!(
        p.failures[0]
            .message
            .starts_with("uplink eno1 is a port of br0 but still has address(es) 10.12.17.200/24"),
        "{p:?}"
    );
    assert!(p.steps.is_empty(), "never guesses: {p:?}");
}

#[test]
fn removing_a_bridged_network_gives_everything_back() {
    let (_, mut o) = in_sync(BRIDGED);
    let p = converge(
        &DesiredState {
            complete: true,
            ..Default::default()
        },
        &mut o,
    );
    assert_eq!(
        actions(&p),
        ["release uplink eno1 from bridge br0, delete br0 and move 1 address(es) and 1 route(s) back onto eno1"]
    );
    let before = host();
    assert_eq!(o.kernel, before.kernel, "the host is as it was");
}

#[test]
fn an_unmanaged_bridge_is_observed_and_reported_never_changed() {
    let d = desired(
        "[networks.b]\nmode = \"bridge\"\nuplink = \"eno1\"\nbridge = { name = \"br0\", managed = false }\n",
    );
    let mut o = host();
    let p = plan(&d, &o, PRUNE);
    assert!(p.steps.is_empty());
    assert!(
        p.failures[0].message.contains("not kvmnet's to create"),
        "{p:?}"
    );

    let mut br0 = link(9, "br0", Some("bridge"), None);
    br0.admin_up = false;
    o.kernel.links.push(br0);
    let p = plan(&d, &o, PRUNE);
    let drift: Vec<String> = p.drift.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        drift,
        [
            "~ bridge br0 state: wanted up, found down",
            "+ port eno1 on br0: missing"
        ]
    );
    assert!(p.steps.is_empty() && p.failures.is_empty(), "{p:?}");

    bridge_mut(&mut o, "br0").admin_up = true;
    bridge_mut(&mut o, "eno1").master = Some(9);
    let p = plan(&d, &o, PRUNE);
    assert!(p.drift.is_empty() && p.steps.is_empty(), "{p:?}");
}

#[test]
fn the_lan_subnet_stays_in_use_once_on_a_bridged_bridge() {
    let (_, o) = in_sync(BRIDGED);
    let both = desired(&format!(
        "{BRIDGED}[networks.n]\nmode = \"nat\"\n[[networks.n.ip]]\naddress = \"10.12.17.1/24\"\n"
    ));
    let p = plan(&both, &o, PRUNE);
    assert_eq!(
        p.failures[0].message,
        "10.12.17.0/24 is already in use by br0 (route 10.12.17.0/24)"
    );
}

#[test]
fn renaming_a_bridged_bridge_moves_the_uplink_over_in_one_pass() {
    let (_, mut o) = in_sync(BRIDGED);
    let renamed = desired(&BRIDGED.replace("br0", "br-lan"));
    let p = converge(&renamed, &mut o);
    assert!(p.failures.is_empty(), "{:?}", p.failures);
    assert_eq!(
        actions(&p),
        [
            "release uplink eno1 from bridge br0, delete br0 and move 1 address(es) and 1 route(s) back onto eno1",
            "enslave uplink eno1 into new bridge br-lan and move 1 address(es) and 1 route(s) onto it, then probe gateway 10.12.17.1 by ARP within 2s",
        ]
    );
}

#[test]
fn a_bridged_bridge_deleted_by_hand_gets_the_lan_configuration_back() {
    let (d, mut o) = in_sync(BRIDGED);
    let m = Remembered {
        lans: crate::net::bridged::lan::learn(&Default::default(), &d, &o.kernel),
        ..Remembered::default()
    };
    let with_bridge = o.kernel.clone();
    // The kernel deletes the bridge's addresses and routes with it.
    let br0 = o.kernel.link_by_name("br0").unwrap().index;
    o.kernel.links.retain(|l| l.index != br0);
    o.kernel.addresses.retain(|a| a.index != br0);
    o.kernel.routes.retain(|r| r.oif != Some(br0));
    o.kernel
        .links
        .iter_mut()
        .find(|l| l.name == "eno1")
        .unwrap()
        .master = None;
    let p = converge_remembering(&d, &mut o, &m);
    assert_eq!(
        actions(&p),
        ["enslave uplink eno1 into new bridge br0 and move 0 address(es) and 0 route(s) onto it, restore the 1 address(es) and 1 route(s) it had before it was deleted, then probe gateway 10.12.17.1 by ARP within 2s"]
    );
    assert_eq!(o.kernel.addresses, with_bridge.addresses);
    // The simulation does not remake the kernel's prefix routes.
    let not_kernel = |k: &Snapshot| -> Vec<Route> {
        k.routes
            .iter()
            .filter(|r| r.protocol != 2)
            .cloned()
            .collect()
    };
    assert_eq!(not_kernel(&o.kernel), not_kernel(&with_bridge));
}

#[test]
fn a_recreated_bridged_bridge_is_in_sync_and_gets_guest_ports_back() {
    let (d, mut o) = in_sync(BRIDGED);
    let br0 = o.kernel.link_by_name("br0").unwrap().index;
    let mut port = link(40, "vnet0", Some("tun"), None);
    port.master = Some(br0);
    o.kernel.links.push(port);
    let m = Remembered {
        ports: crate::net::ports::learn(&Default::default(), &d, &o.kernel),
        ..Remembered::default()
    };
    assert_eq!(m.ports["b"].len(), 1, "the uplink is no guest port");
    assert!(super::plan(&d, &o, &m, PRUNE).steps.is_empty());
    // Down and MAC changed by hand: repaired to the uplink's MAC.
    let l = bridge_mut(&mut o, "br0");
    l.admin_up = false;
    l.mac = Some([2, 0, 0, 0, 0, 1]);
    let a = actions(&converge_remembering(&d, &mut o, &m));
    assert_eq!(a, ["set MAC 00:e0:70:e8:fd:02 on br0", "bring br0 up"]);
}

/// A three-host overlay; the simulated host holds 10.12.17.200, the gateway.
const OVERLAY: &str = r#"
[networks.fleet]
mode = "nat"
overlay.gateway = "10.12.17.200"
overlay.vxlan = { vni = 42, peers = ["10.12.17.200", "10.12.17.201", "10.12.17.202"] }
[[networks.fleet.ip]]
address = "192.168.50.1/24"
dhcp.ranges = [{ start = "192.168.50.10", end = "192.168.50.200" }]
"#;

/// `text`'s desired state as the simulated host `o` sees it.
fn on_host(text: &str, o: &Observed) -> DesiredState {
    desired(text).on_host(&host_links(&o.kernel))
}

fn overlay_in_sync(text: &str) -> (DesiredState, Observed) {
    let mut o = host();
    let d = on_host(text, &o);
    converge(&d, &mut o);
    (d, o)
}

fn drift_lines(p: &Plan) -> Vec<String> {
    p.drift.iter().map(|d| d.to_string()).collect()
}

#[test]
fn the_gateway_peer_builds_bridge_address_and_vxlan_device() {
    let mut o = host();
    let d = on_host(OVERLAY, &o);
    let p = converge(&d, &mut o);
    assert_eq!(
        actions(&p),
        [
            "create bridge kv-fleet",
            "set net.ipv6.conf.kv-fleet.disable_ipv6 = 1",
            "bring kv-fleet up",
            "add address 192.168.50.1/24 to kv-fleet",
            "create VXLAN device vx-fleet (VNI 42, local 10.12.17.200, port 4789, dev eno1)",
            "enslave vx-fleet to kv-fleet",
            "bring vx-fleet up",
            "add flood entry to 10.12.17.201 on vx-fleet",
            "add flood entry to 10.12.17.202 on vx-fleet",
            "set net.ipv4.ip_forward = 1",
        ]
    );
    assert!(drift_lines(&p).contains(&"+ vxlan vx-fleet: missing".to_string()));
    // The underlay's 1500 bytes less 50 of encapsulation, on both.
    for name in ["kv-fleet", "vx-fleet"] {
        assert_eq!(o.kernel.link_by_name(name).unwrap().mtu, 1450, "{name}");
    }
}

#[test]
fn another_peer_extends_layer_2_only() {
    let mut o = host();
    o.kernel.addresses[0].address = "10.12.17.201".parse().unwrap();
    let d = on_host(OVERLAY, &o);
    let p = converge(&d, &mut o);
    let actions = actions(&p);
    assert!(actions.contains(&"add flood entry to 10.12.17.200 on vx-fleet".to_string()));
    assert!(
        !actions
            .iter()
            .any(|a| a.contains("address") || a.contains("ip_forward")),
        "{actions:?}"
    );
}

#[test]
fn a_host_holding_no_peer_address_fails_that_network_only() {
    let mut o = host();
    o.kernel.addresses[0].address = "10.12.17.99".parse().unwrap();
    let text = format!("{OVERLAY}{NAT}");
    let p = plan(&on_host(&text, &o), &o, PRUNE);
    assert_eq!(p.failures.len(), 1);
    assert_eq!(p.failures[0].network, "fleet");
    assert!(
        p.failures[0]
            .message
            .contains("this host holds none of the overlay's peer addresses"),
        "{:?}",
        p.failures
    );
    assert!(p
        .steps
        .iter()
        .all(|s| s.network.as_deref() != Some("fleet")));
}

fn vx(o: &mut Observed) -> &mut Link {
    bridge_mut(o, "vx-fleet")
}

fn attrs(o: &mut Observed) -> &mut VxlanAttrs {
    vx(o).vxlan.as_mut().unwrap()
}

#[test]
fn each_vxlan_fault_is_found_and_repaired() {
    type Fault = fn(&mut Observed);
    let cases: Vec<(&str, Fault, Vec<&str>)> = vec![
        (
            "deleted",
            |o| {
                simulate(
                    o,
                    &[Step {
                        network: None,
                        action: Action::DeleteLink {
                            link: "vx-fleet".into(),
                        },
                    }],
                )
            },
            vec!["+ vxlan vx-fleet: missing"],
        ),
        (
            "down",
            |o| vx(o).admin_up = false,
            vec!["~ vxlan vx-fleet state: wanted up, found down"],
        ),
        (
            "wrong vni",
            |o| attrs(o).vni = 43,
            vec!["~ vxlan vx-fleet vni: wanted 42, found 43"],
        ),
        (
            "wrong port",
            |o| attrs(o).port = 8472,
            vec!["~ vxlan vx-fleet port: wanted 4789, found 8472"],
        ),
        (
            "wrong local",
            |o| attrs(o).local = Some("10.12.17.7".parse().unwrap()),
            vec!["~ vxlan vx-fleet local: wanted 10.12.17.200, found 10.12.17.7"],
        ),
        (
            "out of the bridge",
            |o| vx(o).master = None,
            vec!["~ vxlan vx-fleet master: wanted kv-fleet, found none"],
        ),
        (
            "mtu",
            |o| vx(o).mtu = 1500,
            vec!["~ vxlan vx-fleet mtu: wanted 1450, found 1500"],
        ),
        (
            "flood entry deleted",
            |o| o.kernel.fdb.retain(|e| e.dst.to_string() != "10.12.17.201"),
            vec!["+ fdb 10.12.17.201 on vx-fleet: missing"],
        ),
        (
            "extra flood entry",
            |o| {
                let index = o.kernel.link_by_name("vx-fleet").unwrap().index;
                o.kernel.fdb.push(FdbEntry {
                    index,
                    mac: [0; 6],
                    dst: "10.12.17.9".parse().unwrap(),
                });
            },
            vec!["- fdb 10.12.17.9 on vx-fleet: not in the desired state"],
        ),
    ];
    for (what, fault, expected) in cases {
        let (d, mut o) = overlay_in_sync(OVERLAY);
        fault(&mut o);
        let p = plan(&d, &o, PRUNE);
        assert_eq!(drift_lines(&p), expected, "{what}");
        simulate(&mut o, &p.steps);
        let again = plan(&d, &o, PRUNE);
        assert!(
            again.steps.is_empty() && again.drift.is_empty(),
            "{what}: {again:#?}"
        );
    }
}

#[test]
fn a_peer_added_or_removed_changes_only_the_flood_entries() {
    let (_, mut o) = overlay_in_sync(OVERLAY);
    let text = OVERLAY.replace("\"10.12.17.202\"", "\"10.12.17.203\"");
    let p = converge(&on_host(&text, &o), &mut o);
    assert_eq!(
        actions(&p),
        [
            "delete flood entry to 10.12.17.202 on vx-fleet",
            "add flood entry to 10.12.17.203 on vx-fleet",
        ]
    );
}

#[test]
fn moving_the_gateway_moves_layer_3_in_one_pass() {
    let (_, mut o) = overlay_in_sync(OVERLAY);
    let text = OVERLAY.replace(
        "overlay.gateway = \"10.12.17.200\"",
        "overlay.gateway = \"10.12.17.201\"",
    );
    let p = converge(&on_host(&text, &o), &mut o);
    let actions = actions(&p);
    assert_eq!(actions.len(), 2, "{actions:?}");
    // The network's MAC goes with the gateway; this host's bridge takes its own.
    assert!(actions[0].starts_with("set MAC 52:54:00:"), "{actions:?}");
    assert_eq!(actions[1], "delete address 192.168.50.1/24 from kv-fleet");
}

#[test]
fn removing_the_overlay_deletes_its_vxlan_device_only() {
    let (_, mut o) = overlay_in_sync(OVERLAY);
    let text = OVERLAY.replace("overlay.gateway = \"10.12.17.200\"\n", "").replace(
        "overlay.vxlan = { vni = 42, peers = [\"10.12.17.200\", \"10.12.17.201\", \"10.12.17.202\"] }\n",
        "",
    );
    let p = converge(&on_host(&text, &o), &mut o);
    assert_eq!(
        drift_lines(&p),
        ["- vxlan vx-fleet: not in the desired state"]
    );
    assert_eq!(actions(&p), ["delete link vx-fleet"]);
}

#[test]
fn a_foreign_link_with_the_vxlan_name_fails_the_network() {
    let mut o = host();
    o.kernel
        .links
        .push(link(9, "vx-fleet", Some("vxlan"), None));
    let p = plan(&on_host(OVERLAY, &o), &o, PRUNE);
    assert_eq!(
        p.failures[0].message,
        "VXLAN device name vx-fleet is taken by a vxlan kvmnet does not own; remove that link"
    );
    assert!(p
        .steps
        .iter()
        .all(|s| s.network.as_deref() != Some("fleet")));
}

#[test]
fn host_links_carry_their_addresses() {
    let links = host_links(&host().kernel);
    assert_eq!(
        links[1],
        HostLink {
            name: "eno1".into(),
            mtu: 1500,
            addresses: vec!["10.12.17.200".parse().unwrap()],
        }
    );
}

#[test]
fn a_vxlan_device_left_without_its_alias_is_adopted() {
    let (d, mut o) = overlay_in_sync(OVERLAY);
    let index = o.kernel.link_by_name("vx-fleet").unwrap().index;
    vx(&mut o).alias = None;
    let p = plan(&d, &o, PRUNE);
    assert_eq!(
        drift_lines(&p),
        ["~ vxlan vx-fleet alias: wanted kvmnet:fleet, found none"]
    );
    assert_eq!(actions(&p), ["set alias \"kvmnet:fleet\" on vx-fleet"]);
    // Another VNI: someone else's device, never taken.
    attrs(&mut o).vni = 7;
    let p = plan(&d, &o, PRUNE);
    assert!(p.failures[0]
        .message
        .contains("taken by a vxlan kvmnet does not own"));
    assert_eq!(o.kernel.link_by_name("vx-fleet").unwrap().index, index);
}

#[test]
fn our_vxlan_device_is_never_taken_for_a_bridge() {
    let (_, o) = overlay_in_sync(OVERLAY);
    let text = format!("{OVERLAY}[networks.other]\nmode = \"open\"\nbridge.name = \"vx-fleet\"\n");
    let p = plan(&on_host(&text, &o), &o, PRUNE);
    let failure = p.failures.iter().find(|f| f.network == "other").unwrap();
    assert_eq!(
        failure.message,
        "bridge name vx-fleet is taken by the VXLAN device of network \"fleet\"; rename the bridge (bridge.name)"
    );
    assert!(p
        .steps
        .iter()
        .all(|s| s.network.as_deref() != Some("other")));
}
