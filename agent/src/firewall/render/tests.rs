//! Rendering per mode: which rules each network gets, as `nft list` text.

use super::*;
use crate::config::desired::DesiredState;
use crate::firewall::text;

fn desired(text: &str) -> DesiredState {
    let state = crate::testutil::desired(text);
    assert!(state.rejected.is_empty(), "{:?}", state.rejected);
    state
}

/// The rules of the file's networks in `chain`, as text without comments.
fn chain(toml: &str, chain: &str) -> Vec<String> {
    let state = desired(toml);
    rules(state.networks.values())
        .into_iter()
        .filter(|r| r.chain == chain)
        .map(|r| text::rule(&Rule { comment: None, ..r }))
        .collect()
}

const NAT: &str = r#"
[networks.nat]
mode = "nat"
uplink = "eno1"
bridge = { name = "virbr-nat" }
[[networks.nat.ip]]
address = "192.168.10.1/24"
"#;

const REJECT: &str = "reject";

#[test]
fn nat_matches_libvirt() {
    assert_eq!(
        chain(NAT, GUEST_CROSS),
        [r#"iifname "virbr-nat" oifname "virbr-nat" accept"#]
    );
    assert_eq!(
        chain(NAT, GUEST_INPUT),
        [
            r#"iifname "eno1" oifname "virbr-nat" ip daddr 192.168.10.0/24 ct state established,related accept"#.to_string(),
            format!(r#"oifname "virbr-nat" {REJECT}"#),
        ]
    );
    assert_eq!(
        chain(NAT, GUEST_OUTPUT),
        [
            r#"iifname "virbr-nat" ip saddr 192.168.10.0/24 oifname "eno1" accept"#.to_string(),
            format!(r#"iifname "virbr-nat" {REJECT}"#),
        ]
    );
    assert_eq!(
        chain(NAT, POSTROUTING),
        [
            r#"ip saddr 192.168.10.0/24 ip daddr 224.0.0.0/24 oifname "eno1" return"#,
            r#"ip saddr 192.168.10.0/24 ip daddr 255.255.255.255 oifname "eno1" return"#,
            r#"meta l4proto tcp ip saddr 192.168.10.0/24 ip daddr != 192.168.10.0/24 oifname "eno1" masquerade to :1024-65535"#,
            r#"meta l4proto udp ip saddr 192.168.10.0/24 ip daddr != 192.168.10.0/24 oifname "eno1" masquerade to :1024-65535"#,
            r#"ip saddr 192.168.10.0/24 ip daddr != 192.168.10.0/24 oifname "eno1" masquerade"#,
        ]
    );
    assert_eq!(
        chain(NAT, INPUT),
        [
            r#"iifname "virbr-nat" meta l4proto { tcp, udp } th dport 53 accept"#,
            r#"iifname "virbr-nat" udp dport 67 accept"#,
        ]
    );
    assert!(chain(NAT, PREROUTING).is_empty());
}

#[test]
fn nat_ports_and_no_uplink() {
    let toml = NAT.replace("uplink = \"eno1\"\n", "").replace(
        "[[networks.nat.ip]]",
        "nat = { ports = \"2000-3000\" }\n[[networks.nat.ip]]",
    );
    let post = chain(&toml, POSTROUTING);
    assert_eq!(
        post[2],
        "meta l4proto tcp ip saddr 192.168.10.0/24 ip daddr != 192.168.10.0/24 masquerade to :2000-3000"
    );
    assert_eq!(
        chain(&toml, GUEST_OUTPUT)[0],
        r#"iifname "virbr-nat" ip saddr 192.168.10.0/24 accept"#
    );
}

#[test]
fn ipv6_is_routed_in_nat_mode_unless_nat_ipv6() {
    let toml = format!("{NAT}[[networks.nat.ip]]\naddress = \"fd10::1/64\"\n");
    let input = chain(&toml, GUEST_INPUT);
    assert!(
        input.contains(
            &r#"iifname "eno1" oifname "virbr-nat" ip6 daddr fd10::/64 accept"#.to_string()
        ),
        "{input:?}"
    );
    assert!(!chain(&toml, POSTROUTING).iter().any(|r| r.contains("ip6")));
    assert!(
        chain(&toml, INPUT).contains(&r#"iifname "virbr-nat" udp dport 547 accept"#.to_string())
    );

    let masq = toml.replace(
        "uplink = \"eno1\"",
        "uplink = \"eno1\"\nnat = { ipv6 = true }",
    );
    let post = chain(&masq, POSTROUTING);
    assert!(
        post.contains(
            &r#"ip6 saddr fd10::/64 ip6 daddr != fd10::/64 oifname "eno1" masquerade"#.to_string()
        ),
        "{post:?}"
    );
    assert!(
        post.contains(
            &r#"ip6 saddr fd10::/64 ip6 daddr ff02::/16 oifname "eno1" return"#.to_string()
        ),
        "{post:?}"
    );
    assert!(chain(&masq, GUEST_INPUT)
        .iter()
        .any(|r| r.contains("ip6 daddr fd10::/64 ct state established,related accept")));
}

#[test]
fn route_accepts_inbound_without_conntrack_and_never_masquerades() {
    let toml = NAT.replace("mode = \"nat\"", "mode = \"route\"");
    assert_eq!(
        chain(&toml, GUEST_INPUT)[0],
        r#"iifname "eno1" oifname "virbr-nat" ip daddr 192.168.10.0/24 accept"#
    );
    assert!(chain(&toml, POSTROUTING).is_empty());
}

#[test]
fn isolated_rejects_everything_but_the_bridge_itself() {
    let toml = NAT
        .replace("mode = \"nat\"", "mode = \"isolated\"")
        .replace("uplink = \"eno1\"\n", "");
    assert_eq!(
        chain(&toml, GUEST_INPUT),
        [format!(r#"oifname "virbr-nat" {REJECT}"#)]
    );
    assert_eq!(
        chain(&toml, GUEST_OUTPUT),
        [format!(r#"iifname "virbr-nat" {REJECT}"#)]
    );
    assert_eq!(chain(&toml, GUEST_CROSS).len(), 1);
    assert!(chain(&toml, POSTROUTING).is_empty());
    assert_eq!(chain(&toml, INPUT).len(), 2, "DHCP and DNS still served");
}

#[test]
fn open_and_bridge_get_nothing_and_no_table() {
    for mode in ["open", "bridge"] {
        let toml = format!("[networks.n]\nmode = \"{mode}\"\n");
        let state = desired(&toml);
        assert_eq!(
            table(rules(state.networks.values())),
            Table::default(),
            "{mode}"
        );
    }
}

#[test]
fn port_forwards_dnat_forward_and_reach_from_the_host() {
    let toml = format!(
        "{NAT}{}",
        r#"
[[networks.nat.port_forwards]]
proto = "tcp"
port = 8080
to = "192.168.10.10:80"
from = "10.12.17.0/24"
[[networks.nat.port_forwards]]
proto = "udp"
port = "5000-5001"
to = "192.168.10.10:6000"
[[networks.nat.port_forwards]]
proto = "tcp"
port = "7000-7010"
to = "192.168.10.11"
"#
    );
    assert_eq!(
        chain(&toml, PREROUTING),
        [
            r#"iifname != "virbr-nat" ip saddr 10.12.17.0/24 fib daddr type local tcp dport 8080 dnat ip to 192.168.10.10:80"#,
            r#"iifname != "virbr-nat" fib daddr type local udp dport 5000 dnat ip to 192.168.10.10:6000"#,
            r#"iifname != "virbr-nat" fib daddr type local udp dport 5001 dnat ip to 192.168.10.10:6001"#,
            r#"iifname != "virbr-nat" fib daddr type local tcp dport 7000-7010 dnat ip to 192.168.10.11"#,
        ]
    );
    assert_eq!(
        chain(&toml, OUTPUT)[0],
        "ip saddr 10.12.17.0/24 ip daddr != 127.0.0.0/8 fib daddr type local tcp dport 8080 dnat ip to 192.168.10.10:80"
    );
    let input = chain(&toml, GUEST_INPUT);
    // Accepted before the reject of everything else into the bridge.
    assert_eq!(
        input[..3],
        [
            r#"oifname "virbr-nat" ip daddr 192.168.10.10 tcp dport 80 ct status dnat accept"#,
            r#"oifname "virbr-nat" ip daddr 192.168.10.10 udp dport 6000-6001 ct status dnat accept"#,
            r#"oifname "virbr-nat" ip daddr 192.168.10.11 tcp dport 7000-7010 ct status dnat accept"#,
        ]
    );
    assert_eq!(
        input.last().unwrap(),
        &format!(r#"oifname "virbr-nat" {REJECT}"#)
    );
}

#[test]
fn every_rule_names_its_network_and_the_forward_chain_jumps_in_libvirt_order() {
    let toml = format!(
        "{NAT}{}",
        NAT.replace("networks.nat", "networks.other")
            .replace("virbr-nat", "virbr-o")
            .replace("192.168.10", "192.168.11")
    );
    let state = desired(&toml);
    let t = table(rules(state.networks.values()));
    assert_eq!(t.chains, chains());
    let jumps: Vec<String> = t.rules_in(FORWARD).map(text::rule).collect();
    assert_eq!(
        jumps,
        [
            "jump guest_cross comment \"kvmnet\"",
            "jump guest_input comment \"kvmnet\"",
            "jump guest_output comment \"kvmnet\""
        ]
    );
    for r in t.rules.iter().filter(|r| r.chain != FORWARD) {
        let network = crate::firewall::rule_network(r).expect("a network's comment");
        assert!(state.networks.contains_key(network), "{r:?}");
    }
}

/// Validation refuses these names first; render refuses them again rather
/// than let nft read `iifname "kv*"` as a wildcard over every bridge.
#[test]
fn unsafe_interface_names_get_no_rules() {
    let network = |text: &str| {
        let file: crate::config::model::NetworksFile = toml::from_str(text).unwrap();
        let (name, spec) = file.networks.into_iter().next().unwrap();
        DesiredNetwork::new(&name, std::path::Path::new("t.toml"), spec)
    };
    for (from, to) in [
        ("virbr-nat", "kv*"),
        ("virbr-nat", "kv,up0"),
        ("eno1", "up*"),
        ("eno1", "eth%d"),
    ] {
        let net = network(&NAT.replace(from, to));
        assert!(rules([&net]).is_empty(), "{to}");
    }
    assert!(!rules([&network(NAT)]).is_empty());
}
