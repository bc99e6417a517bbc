//! Rendering: the rules of each mode (README, "Firewall") as a pure
//! function of the desired networks, in the JSON form `nft -j list table
//! inet kvmnet` prints them.
//!
//! The layout follows libvirt's nftables backend: the `forward` base chain
//! jumps to `guest_cross` (bridge to itself), `guest_input` (into guests)
//! and `guest_output` (out of guests), in that order, so that traffic between
//! two networks meets the receiving network's rules before the sender's
//! accept. Within each of these chains a network's rules only match its own
//! bridge, so the order between networks does not matter.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Value};

use super::{rule_comment, Chain, Hook, Rule, Table, STRUCTURAL};
use crate::config::desired::DesiredNetwork;
use crate::config::model::{Mode, PortForward, PortRange, Proto};

pub const FORWARD: &str = "forward";
pub const GUEST_CROSS: &str = "guest_cross";
pub const GUEST_INPUT: &str = "guest_input";
pub const GUEST_OUTPUT: &str = "guest_output";
pub const INPUT: &str = "input";
pub const POSTROUTING: &str = "postrouting";
pub const PREROUTING: &str = "prerouting";
pub const OUTPUT: &str = "output";

/// Our chains, in creation order (a jump's target must exist first).
pub fn chains() -> Vec<Chain> {
    let base = |name: &str, kind: &str, hook: &str, prio: i64| Chain {
        name: name.into(),
        hook: Some(Hook {
            kind: kind.into(),
            hook: hook.into(),
            prio,
            policy: "accept".into(),
        }),
    };
    let regular = |name: &str| Chain {
        name: name.into(),
        hook: None,
    };
    vec![
        regular(GUEST_CROSS),
        regular(GUEST_INPUT),
        regular(GUEST_OUTPUT),
        base(FORWARD, "filter", "forward", 0),
        base(INPUT, "filter", "input", 0),
        // srcnat and dstnat priorities.
        base(POSTROUTING, "nat", "postrouting", 100),
        base(PREROUTING, "nat", "prerouting", -100),
        base(OUTPUT, "nat", "output", -100),
    ]
}

/// The rules `networks` need, in their chains' order.
pub fn rules<'a>(networks: impl IntoIterator<Item = &'a DesiredNetwork>) -> Vec<Rule> {
    networks.into_iter().flat_map(network_rules).collect()
}

/// Our table holding `rules` (and the jumps that reach them). Empty (no
/// chains) when there are no rules: then the table should not exist.
pub fn table(rules: Vec<Rule>) -> Table {
    if rules.is_empty() {
        return Table::default();
    }
    let mut all: Vec<Rule> = [GUEST_CROSS, GUEST_INPUT, GUEST_OUTPUT]
        .into_iter()
        .map(|target| Rule {
            chain: FORWARD.into(),
            comment: STRUCTURAL.into(),
            expr: vec![json!({"jump": {"target": target}})],
        })
        .collect();
    all.extend(rules);
    Table {
        chains: chains(),
        rules: all,
    }
}

/// Whether `mode` gets rules at all: `open` and `bridge` get none.
pub fn has_rules(mode: Mode) -> bool {
    matches!(mode, Mode::Nat | Mode::Route | Mode::Isolated)
}

/// How one subnet's traffic leaves: NATed, routed or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forwarding {
    Nat,
    Routed,
    None,
}

fn forwarding(net: &DesiredNetwork, subnet: IpNet) -> Forwarding {
    match net.spec.mode {
        // IPv6 subnets are routed unless nat.ipv6.
        Mode::Nat if subnet.addr().is_ipv4() || net.spec.nat.as_ref().is_some_and(|n| n.ipv6) => {
            Forwarding::Nat
        }
        Mode::Nat | Mode::Route => Forwarding::Routed,
        _ => Forwarding::None,
    }
}

/// One network's rules, each carrying the network's comment.
fn network_rules(net: &DesiredNetwork) -> Vec<Rule> {
    if !has_rules(net.spec.mode) {
        return Vec::new();
    }
    let comment = rule_comment(&net.name);
    let bridge = net.bridge.as_str();
    let cross = vec![
        eq(meta("iifname"), bridge),
        eq(meta("oifname"), bridge),
        verdict("accept"),
    ];
    std::iter::once((GUEST_CROSS, cross))
        .chain(into_guests(net))
        .chain(out_of_guests(net))
        .chain(host_services(net))
        .chain(masquerade(net))
        .chain(port_forward_dnat(net))
        .map(|(chain, expr)| Rule {
            chain: chain.into(),
            comment: comment.clone(),
            expr,
        })
        .collect()
}

type ChainRule = (&'static str, Vec<Value>);

fn subnets(net: &DesiredNetwork) -> impl Iterator<Item = IpNet> + '_ {
    net.spec.ip.iter().map(|ip| ip.address.0.trunc())
}

/// Into guests: port forwards, then replies (nat) or everything (route) to
/// the subnet, optionally only from the uplink; the rest rejected.
fn into_guests(net: &DesiredNetwork) -> Vec<ChainRule> {
    let bridge = net.bridge.as_str();
    let mut rules: Vec<ChainRule> = port_forwards(net)
        .iter()
        .map(|pf| (GUEST_INPUT, forward_accept(bridge, pf)))
        .collect();
    for subnet in subnets(net) {
        let forwarding = forwarding(net, subnet);
        if forwarding == Forwarding::None {
            continue;
        }
        let mut expr: Vec<Value> = net
            .spec
            .uplink
            .iter()
            .map(|d| eq(meta("iifname"), d.as_str()))
            .collect();
        expr.push(eq(meta("oifname"), bridge));
        expr.push(eq(addr(subnet, "daddr"), prefix(subnet)));
        if forwarding == Forwarding::Nat {
            expr.push(json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}));
        }
        expr.push(verdict("accept"));
        rules.push((GUEST_INPUT, expr));
    }
    rules.push((GUEST_INPUT, vec![eq(meta("oifname"), bridge), reject()]));
    rules
}

/// Out of guests: from the subnet, optionally only to the uplink; the rest
/// rejected.
fn out_of_guests(net: &DesiredNetwork) -> Vec<ChainRule> {
    let bridge = net.bridge.as_str();
    let mut rules = Vec::new();
    for subnet in subnets(net).filter(|s| forwarding(net, *s) != Forwarding::None) {
        let mut expr = vec![
            eq(meta("iifname"), bridge),
            eq(addr(subnet, "saddr"), prefix(subnet)),
        ];
        expr.extend(
            net.spec
                .uplink
                .iter()
                .map(|d| eq(meta("oifname"), d.as_str())),
        );
        expr.push(verdict("accept"));
        rules.push((GUEST_OUTPUT, expr));
    }
    rules.push((GUEST_OUTPUT, vec![eq(meta("iifname"), bridge), reject()]));
    rules
}

/// The host serves DNS, DHCP and DHCPv6 on the bridge.
fn host_services(net: &DesiredNetwork) -> Vec<ChainRule> {
    let iif = || eq(meta("iifname"), net.bridge.as_str());
    let mut rules = vec![(
        INPUT,
        vec![
            iif(),
            eq(meta("l4proto"), json!({"set": ["tcp", "udp"]})),
            eq(payload("th", "dport"), 53),
            verdict("accept"),
        ],
    )];
    for (v4, port) in [(true, 67), (false, 547)] {
        if subnets(net).any(|s| s.addr().is_ipv4() == v4) {
            rules.push((
                INPUT,
                vec![iif(), eq(payload("udp", "dport"), port), verdict("accept")],
            ));
        }
    }
    rules
}

/// Masquerade, libvirt's way: never multicast or broadcast; tcp and udp
/// onto the nat.ports range, then everything else.
fn masquerade(net: &DesiredNetwork) -> Vec<ChainRule> {
    let ports = net.spec.nat.as_ref().map_or(
        PortRange {
            start: 1024,
            end: 65535,
        },
        |n| n.ports,
    );
    let mut rules = Vec::new();
    for subnet in subnets(net).filter(|s| forwarding(net, *s) == Forwarding::Nat) {
        let from = || eq(addr(subnet, "saddr"), prefix(subnet));
        let out = || {
            net.spec
                .uplink
                .iter()
                .map(|d| eq(meta("oifname"), d.as_str()))
        };
        let exceptions: &[&str] = if subnet.addr().is_ipv4() {
            &["224.0.0.0/24", "255.255.255.255/32"]
        } else {
            &["ff02::/16"]
        };
        for exception in exceptions {
            let exception: IpNet = exception.parse().expect("a valid constant");
            let mut expr = vec![from(), eq(addr(subnet, "daddr"), prefix(exception))];
            expr.extend(out());
            expr.push(verdict("return"));
            rules.push((POSTROUTING, expr));
        }
        for proto in ["tcp", "udp"] {
            let mut expr = vec![
                eq(meta("l4proto"), proto),
                from(),
                ne(addr(subnet, "daddr"), prefix(subnet)),
            ];
            expr.extend(out());
            expr.push(json!({"masquerade": {"port": port_value(ports)}}));
            rules.push((POSTROUTING, expr));
        }
        let mut expr = vec![from(), ne(addr(subnet, "daddr"), prefix(subnet))];
        expr.extend(out());
        expr.push(json!({"masquerade": null}));
        rules.push((POSTROUTING, expr));
    }
    rules
}

/// Port forwards: DNAT of connections to the host's own addresses, from
/// outside (prerouting) and from the host itself (output).
fn port_forward_dnat(net: &DesiredNetwork) -> Vec<ChainRule> {
    let mut rules = Vec::new();
    for pf in port_forwards(net) {
        for (host_ports, target_port) in dnat_mappings(pf) {
            let from = pf.from.map(|f| eq(addr(f.0, "saddr"), prefix(f.0.trunc())));
            let dport = eq(payload(proto(pf.proto), "dport"), port_value(host_ports));
            let dnat = dnat(pf.to.addr, target_port);

            // Guests reaching the host's address are served by the host:
            // DNAT back into their own bridge would need hairpin NAT.
            let mut expr = vec![ne(meta("iifname"), net.bridge.as_str())];
            expr.extend(from.clone());
            expr.extend([fib_local(), dport.clone(), dnat.clone()]);
            rules.push((PREROUTING, expr));

            // Loopback sources cannot be routed to a guest.
            let loopback = if pf.to.addr.is_ipv4() {
                ne(
                    payload("ip", "daddr"),
                    prefix("127.0.0.0/8".parse().expect("valid")),
                )
            } else {
                ne(payload("ip6", "daddr"), "::1")
            };
            let mut expr: Vec<Value> = from.into_iter().collect();
            expr.extend([loopback, fib_local(), dport, dnat]);
            rules.push((OUTPUT, expr));
        }
    }
    rules
}

/// Port forwards apply in mode nat only (validation refuses others).
fn port_forwards(net: &DesiredNetwork) -> &[PortForward] {
    if net.spec.mode == Mode::Nat {
        &net.spec.port_forwards
    } else {
        &[]
    }
}

/// The accept in `guest_input` for connections DNATed to a guest.
fn forward_accept(bridge: &str, pf: &PortForward) -> Vec<Value> {
    let target_ports = match pf.to.port {
        Some(start) => PortRange {
            start,
            end: start + (pf.port.end - pf.port.start),
        },
        None => pf.port,
    };
    vec![
        eq(meta("oifname"), bridge),
        eq(addr_of(pf.to.addr, "daddr"), pf.to.addr.to_string()),
        eq(payload(proto(pf.proto), "dport"), port_value(target_ports)),
        json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
        verdict("accept"),
    ]
}

/// Host ports and the guest port each maps to (`None`: the same port).
/// nft's `dnat to addr:range` picks any port of the range, so a range moved
/// to other ports becomes one rule per port.
fn dnat_mappings(pf: &PortForward) -> Vec<(PortRange, Option<u16>)> {
    match pf.to.port {
        Some(target) if target != pf.port.start => (pf.port.start..=pf.port.end)
            .map(|p| {
                (
                    PortRange { start: p, end: p },
                    Some(target + (p - pf.port.start)),
                )
            })
            .collect(),
        _ => vec![(pf.port, None)],
    }
}

fn dnat(to: IpAddr, port: Option<u16>) -> Value {
    let family = if to.is_ipv4() { "ip" } else { "ip6" };
    match port {
        Some(port) => json!({"dnat": {"family": family, "addr": to.to_string(), "port": port}}),
        None => json!({"dnat": {"family": family, "addr": to.to_string()}}),
    }
}

fn fib_local() -> Value {
    eq(
        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
        "local",
    )
}

fn proto(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

/// `ip saddr` or `ip6 saddr`, after the subnet's family.
fn addr(net: IpNet, field: &str) -> Value {
    addr_of(net.addr(), field)
}

fn addr_of(a: IpAddr, field: &str) -> Value {
    payload(if a.is_ipv4() { "ip" } else { "ip6" }, field)
}

/// A subnet as nft lists it: a bare address for a single host.
fn prefix(net: IpNet) -> Value {
    if net.prefix_len() == net.max_prefix_len() {
        json!(net.addr().to_string())
    } else {
        json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
    }
}

fn port_value(ports: PortRange) -> Value {
    if ports.start == ports.end {
        json!(ports.start)
    } else {
        json!({"range": [ports.start, ports.end]})
    }
}

fn eq(left: Value, right: impl Into<Value>) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right.into()}})
}

fn ne(left: Value, right: impl Into<Value>) -> Value {
    json!({"match": {"op": "!=", "left": left, "right": right.into()}})
}

fn verdict(v: &str) -> Value {
    json!({ v: null })
}

/// `reject`: ICMP(v6) port unreachable, like libvirt's REJECT.
fn reject() -> Value {
    json!({"reject": {"type": "icmpx", "expr": "port-unreachable"}})
}

#[cfg(test)]
mod tests;
