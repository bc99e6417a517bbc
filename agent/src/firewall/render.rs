//! Rendering: the rules of each mode (README, "Firewall") as a pure
//! function of the desired networks, as typed `nftables` schema values in
//! the very form `nft -j list table inet kvmnet` lists them (a single host
//! as a bare address, a single port as a number), so that wanted and listed
//! rules compare as equal values.
//!
//! The layout follows libvirt's nftables backend: the `forward` base chain
//! jumps to `guest_cross` (bridge to itself), `guest_input` (into guests)
//! and `guest_output` (out of guests), in that order, so that traffic between
//! two networks meets the receiving network's rules before the sender's
//! accept. Within each of these chains a network's rules only match its own
//! bridge, so the order between networks does not matter.

use std::net::IpAddr;

use std::borrow::Cow;
use std::collections::HashSet;

use ipnet::IpNet;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, Range, SetItem, CT,
};
use nftables::schema;
use nftables::stmt::{JumpTarget, Match, NATFamily, Operator, Reject, RejectType, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};

use super::{rule_comment, Chain, Rule, Table, STRUCTURAL, TABLE};
use crate::config::desired::DesiredNetwork;
use crate::config::model::{Mode, PortForward, PortRange, Proto};
use crate::config::validate::is_safe_ifname;

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
    let regular = |name: &'static str| Chain {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: name.into(),
        ..Chain::default()
    };
    let base = |name: &'static str, kind: NfChainType, hook: NfHook, prio: i32| Chain {
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..regular(name)
    };
    vec![
        regular(GUEST_CROSS),
        regular(GUEST_INPUT),
        regular(GUEST_OUTPUT),
        base(FORWARD, NfChainType::Filter, NfHook::Forward, 0),
        base(INPUT, NfChainType::Filter, NfHook::Input, 0),
        // srcnat and dstnat priorities.
        base(POSTROUTING, NfChainType::NAT, NfHook::Postrouting, 100),
        base(PREROUTING, NfChainType::NAT, NfHook::Prerouting, -100),
        base(OUTPUT, NfChainType::NAT, NfHook::Output, -100),
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
        .map(|target| {
            rule(
                FORWARD,
                STRUCTURAL.into(),
                vec![Statement::Jump(JumpTarget {
                    target: target.into(),
                })],
            )
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
    // The last guard (validation refuses these names first): nft reads
    // `iifname "kv*"` as a wildcard, so an unsafe name gets no rule at all.
    if let Some(name) = std::iter::once(&net.bridge)
        .chain(&net.spec.uplink)
        .find(|name| !is_safe_ifname(name))
    {
        tracing::error!(network = %net.name, "firewall: refusing to render rules for interface name {name:?}");
        return Vec::new();
    }
    let comment = rule_comment(&net.name);
    let bridge = net.bridge.as_str();
    let cross = vec![
        eq(meta(MetaKey::Iifname), string(bridge.to_string())),
        eq(meta(MetaKey::Oifname), string(bridge.to_string())),
        accept(),
    ];
    std::iter::once((GUEST_CROSS, cross))
        .chain(into_guests(net))
        .chain(out_of_guests(net))
        .chain(host_services(net))
        .chain(masquerade(net))
        .chain(port_forward_dnat(net))
        .map(|(chain, expr)| rule(chain, comment.clone(), expr))
        .collect()
}

/// A rule of our table as `nft` lists it, without its handle.
fn rule(chain: &'static str, comment: String, expr: Vec<Statement<'static>>) -> Rule {
    schema::Rule {
        family: NfFamily::INet,
        table: TABLE.into(),
        chain: chain.into(),
        expr: expr.into(),
        handle: None,
        index: None,
        comment: Some(comment.into()),
    }
}

type ChainRule = (&'static str, Vec<Statement<'static>>);

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
        let mut expr: Vec<Statement> = net
            .spec
            .uplink
            .iter()
            .map(|d| eq(meta(MetaKey::Iifname), string(d.as_str().to_string())))
            .collect();
        expr.push(eq(meta(MetaKey::Oifname), string(bridge.to_string())));
        expr.push(eq(addr(subnet, "daddr"), prefix(subnet)));
        if forwarding == Forwarding::Nat {
            expr.push(matches(
                Operator::IN,
                ct("state"),
                Expression::List(vec![string("established"), string("related")]),
            ));
        }
        expr.push(accept());
        rules.push((GUEST_INPUT, expr));
    }
    rules.push((
        GUEST_INPUT,
        vec![
            eq(meta(MetaKey::Oifname), string(bridge.to_string())),
            reject(),
        ],
    ));
    rules
}

/// Out of guests: from the subnet, optionally only to the uplink; the rest
/// rejected.
fn out_of_guests(net: &DesiredNetwork) -> Vec<ChainRule> {
    let bridge = net.bridge.as_str();
    let mut rules = Vec::new();
    for subnet in subnets(net).filter(|s| forwarding(net, *s) != Forwarding::None) {
        let mut expr = vec![
            eq(meta(MetaKey::Iifname), string(bridge.to_string())),
            eq(addr(subnet, "saddr"), prefix(subnet)),
        ];
        expr.extend(
            net.spec
                .uplink
                .iter()
                .map(|d| eq(meta(MetaKey::Oifname), string(d.as_str().to_string()))),
        );
        expr.push(accept());
        rules.push((GUEST_OUTPUT, expr));
    }
    rules.push((
        GUEST_OUTPUT,
        vec![
            eq(meta(MetaKey::Iifname), string(bridge.to_string())),
            reject(),
        ],
    ));
    rules
}

/// The host serves DNS, DHCP and DHCPv6 on the bridge.
fn host_services(net: &DesiredNetwork) -> Vec<ChainRule> {
    let iif = || {
        eq(
            meta(MetaKey::Iifname),
            string(net.bridge.as_str().to_string()),
        )
    };
    let mut rules = vec![(
        INPUT,
        vec![
            iif(),
            eq(
                meta(MetaKey::L4proto),
                Expression::Named(NamedExpression::Set(vec![
                    SetItem::Element(string("tcp")),
                    SetItem::Element(string("udp")),
                ])),
            ),
            eq(payload("th", "dport"), Expression::Number(53)),
            accept(),
        ],
    )];
    for (v4, port) in [(true, 67), (false, 547)] {
        if subnets(net).any(|s| s.addr().is_ipv4() == v4) {
            rules.push((
                INPUT,
                vec![
                    iif(),
                    eq(payload("udp", "dport"), Expression::Number(port)),
                    accept(),
                ],
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
                .map(|d| eq(meta(MetaKey::Oifname), string(d.as_str().to_string())))
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
            expr.push(Statement::Return(None));
            rules.push((POSTROUTING, expr));
        }
        for proto in ["tcp", "udp"] {
            let mut expr = vec![
                eq(meta(MetaKey::L4proto), string(proto)),
                from(),
                ne(addr(subnet, "daddr"), prefix(subnet)),
            ];
            expr.extend(out());
            expr.push(Statement::Masquerade(Some(NAT {
                addr: None,
                family: None,
                port: Some(port_value(ports)),
                flags: None,
            })));
            rules.push((POSTROUTING, expr));
        }
        let mut expr = vec![from(), ne(addr(subnet, "daddr"), prefix(subnet))];
        expr.extend(out());
        expr.push(Statement::Masquerade(None));
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
            let mut expr = vec![ne(
                meta(MetaKey::Iifname),
                string(net.bridge.as_str().to_string()),
            )];
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
                ne(payload("ip6", "daddr"), string("::1"))
            };
            let mut expr: Vec<Statement> = from.into_iter().collect();
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
fn forward_accept(bridge: &str, pf: &PortForward) -> Vec<Statement<'static>> {
    let target_ports = match pf.to.port {
        Some(start) => PortRange {
            start,
            end: start + (pf.port.end - pf.port.start),
        },
        None => pf.port,
    };
    vec![
        eq(meta(MetaKey::Oifname), string(bridge.to_string())),
        eq(addr_of(pf.to.addr, "daddr"), string(pf.to.addr.to_string())),
        eq(payload(proto(pf.proto), "dport"), port_value(target_ports)),
        matches(Operator::IN, ct("status"), string("dnat")),
        accept(),
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

fn dnat(to: IpAddr, port: Option<u16>) -> Statement<'static> {
    Statement::DNAT(Some(NAT {
        addr: Some(string(to.to_string())),
        family: Some(if to.is_ipv4() {
            NATFamily::IP
        } else {
            NATFamily::IP6
        }),
        port: port.map(|p| Expression::Number(p.into())),
        flags: None,
    }))
}

fn fib_local() -> Statement<'static> {
    eq(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: HashSet::from([FibFlag::Daddr]),
        })),
        string("local"),
    )
}

fn proto(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

fn string(s: impl Into<Cow<'static, str>>) -> Expression<'static> {
    Expression::String(s.into())
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: key.into(),
        family: None,
        dir: None,
    }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

/// `ip saddr` or `ip6 saddr`, after the subnet's family.
fn addr(net: IpNet, field: &'static str) -> Expression<'static> {
    addr_of(net.addr(), field)
}

fn addr_of(a: IpAddr, field: &'static str) -> Expression<'static> {
    payload(if a.is_ipv4() { "ip" } else { "ip6" }, field)
}

/// A subnet as nft lists it: a bare address for a single host.
fn prefix(net: IpNet) -> Expression<'static> {
    if net.prefix_len() == net.max_prefix_len() {
        string(net.addr().to_string())
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(string(net.network().to_string())),
            len: net.prefix_len().into(),
        }))
    }
}

fn port_value(ports: PortRange) -> Expression<'static> {
    if ports.start == ports.end {
        Expression::Number(ports.start.into())
    } else {
        Expression::Range(Box::new(Range {
            range: [
                Expression::Number(ports.start.into()),
                Expression::Number(ports.end.into()),
            ],
        }))
    }
}

fn matches(
    op: Operator,
    left: Expression<'static>,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    matches(Operator::EQ, left, right)
}

fn ne(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    matches(Operator::NEQ, left, right)
}

fn accept() -> Statement<'static> {
    Statement::Accept(None)
}

/// `reject`: ICMP(v6) port unreachable, like libvirt's REJECT.
fn reject() -> Statement<'static> {
    Statement::Reject(Some(Reject::new(
        Some(RejectType::ICMPX),
        Some(RejectCode::PortUnreach),
    )))
}

#[cfg(test)]
mod tests;
