//! The bridge of a network, and which keys each mode accepts.

use super::*;

pub(super) fn check_bridge(r: &mut Reporter, at: &KeyPath, name: &str, net: &Network) {
    let bridge = &net.bridge;
    let at = at.key("bridge");
    if let Some(ifname) = &bridge.name {
        if let Err(why) = check_ifname(ifname) {
            r.error(
                &at.key("name"),
                Target::Value,
                format!("invalid bridge name {ifname:?}: {why}"),
            )
            .hint(IFNAME_HELP);
        }
    }
    let delay = bridge.delay.0;
    if delay.as_secs() > MAX_FORWARD_DELAY_SECS
        || (delay.as_secs() == MAX_FORWARD_DELAY_SECS && delay.subsec_nanos() > 0)
    {
        r.error(
            &at.key("delay"),
            Target::Value,
            format!("forward delay {} is too long", bridge.delay),
        )
        .hint("the kernel accepts at most 30s");
    } else if delay.subsec_nanos() % 10_000_000 != 0 {
        r.error(
            &at.key("delay"),
            Target::Value,
            format!(
                "forward delay {} is finer than the kernel's 10ms steps",
                bridge.delay
            ),
        )
        .hint("use a multiple of 10ms, e.g. \"2s\"");
    }
    if let Some(mtu) = bridge.mtu {
        let min = if net.ip.iter().any(|ip| ip.address.0.addr().is_ipv6()) {
            1280
        } else {
            68
        };
        if !(min..=65535).contains(&mtu) {
            r.error(
                &at.key("mtu"),
                Target::Value,
                format!("MTU {mtu} is out of range"),
            )
            .hint(format!(
                "an MTU from {min} to 65535{}",
                if min == 1280 {
                    " (IPv6 needs at least 1280)"
                } else {
                    ""
                }
            ));
        }
    }
    if let Some(mac) = bridge.mac {
        if mac.is_multicast() || mac.is_zero() {
            r.error(&at.key("mac"), Target::Value, format!("{mac} is not a unicast MAC address"))
                .hint("the first octet must be even and the address not all zeros, e.g. 52:54:00:12:34:56");
        }
    }
    if let Some(uplink) = &net.uplink {
        let bridge_name = bridge
            .name
            .clone()
            .unwrap_or_else(|| crate::config::desired::default_bridge_name(name));
        if *uplink == bridge_name {
            r.error(
                &KeyPath::network(name).key("uplink"),
                Target::Value,
                format!("uplink {uplink:?} is the network's own bridge"),
            );
        }
    }
}

pub(super) fn check_mode_keys(r: &mut Reporter, at: &KeyPath, net: &Network) {
    let mode = net.mode;
    if net.nat.is_some() && mode != Mode::Nat {
        r.error(
            &at.key("nat"),
            Target::Key,
            format!("nat settings have no effect in mode {mode}"),
        )
        .hint("remove the nat key, or use mode = \"nat\"");
    }
    if !net.port_forwards.is_empty() && mode != Mode::Nat {
        let hint = if mode == Mode::Route {
            "port forwards translate the host's address to a guest's; in mode route guests are reachable directly"
        } else {
            "port forwards translate the host's address to a guest's, which only mode nat does"
        };
        r.error(
            &at.key("port_forwards"),
            Target::Key,
            format!("port_forwards need mode nat, this network is mode {mode}"),
        )
        .hint(hint);
    }
    if let Some(uplink) = &net.uplink {
        if matches!(mode, Mode::Isolated | Mode::Open) {
            r.error(
                &at.key("uplink"),
                Target::Key,
                format!("uplink has no effect in mode {mode}"),
            )
            .hint("remove uplink; it applies to modes nat, route and bridge");
        } else if let Err(why) = check_ifname(uplink) {
            r.error(
                &at.key("uplink"),
                Target::Value,
                format!("invalid uplink {uplink:?}: {why}"),
            )
            .hint(IFNAME_HELP);
        }
    }
    let bridged = mode == Mode::Bridge && net.uplink.is_some();
    if net.probe.is_some() && !bridged {
        r.error(
            &at.key("probe"),
            Target::Key,
            format!("probe applies to mode bridge with an uplink, this network is mode {mode}{}", if mode == Mode::Bridge { " without uplink" } else { "" }),
        )
        .hint("remove probe; it checks connectivity after the uplink's addresses moved onto the bridge");
    }
    if net.bridge.move_dynamic && !bridged {
        r.error(
            &at.key("bridge").key("move_dynamic"),
            Target::Key,
            "move_dynamic applies to mode bridge with an uplink",
        )
        .hint("remove bridge.move_dynamic; only an enslaved uplink's addresses are moved");
    }
    if !net.bridge.managed {
        let at_managed = at.key("bridge").key("managed");
        if mode != Mode::Bridge {
            r.error(&at_managed, Target::Value, format!("bridge.managed = false needs mode bridge, this network is mode {mode}"))
                .hint("kvmnet puts addresses, DHCP and firewall rules on the bridges of the other modes, so it must own them");
        } else if net.bridge.name.is_none() {
            r.error(
                &at_managed,
                Target::Value,
                "bridge.managed = false needs bridge.name: the name of the existing bridge",
            )
            .hint("add bridge.name = \"br0\" (the bridge NetworkManager, networkd or you made)");
        }
        if net.probe.is_some() || net.bridge.move_dynamic {
            r.error(&at_managed, Target::Value, "probe and bridge.move_dynamic apply to a bridge kvmnet builds, not to one it only observes")
                .hint("remove probe and bridge.move_dynamic, or bridge.managed");
        }
    }
    if let Some(probe) = &net.probe {
        if probe.target.is_some_and(|t| t.is_ipv6()) {
            r.error(
                &at.key("probe").key("target"),
                Target::Value,
                "the probe is an ARP request: its target must be an IPv4 address",
            );
        }
        if probe.timeout.0.is_zero() || probe.timeout.0 > std::time::Duration::from_secs(60) {
            r.error(
                &at.key("probe").key("timeout"),
                Target::Value,
                format!(
                    "probe timeout {} is out of range: expected more than 0s and at most 60s",
                    probe.timeout
                ),
            );
        }
    }
    match mode {
        Mode::Bridge => {
            let why =
                "in mode bridge guests sit on the host's LAN, whose DHCP and routers serve them";
            if !net.ip.is_empty() {
                r.error(
                    &at.key("ip"),
                    Target::Key,
                    "mode bridge takes no ip addresses",
                )
                .hint(format!(
                    "remove ip: {why}; the uplink's addresses move onto the bridge"
                ));
            }
            if net.dns.is_some() {
                r.error(
                    &at.key("dns"),
                    Target::Key,
                    "mode bridge runs no DNS service",
                )
                .hint(why);
            }
            if !net.routes.is_empty() {
                r.error(
                    &at.key("routes"),
                    Target::Key,
                    "mode bridge takes no routes",
                )
                .hint(why);
            }
        }
        Mode::Nat | Mode::Route if net.ip.is_empty() => {
            r.error(
                at,
                Target::Key,
                format!("mode {mode} needs at least one ip address"),
            )
            .hint("add [[networks.NAME.ip]] with address = \"192.168.100.1/24\"");
        }
        _ => {}
    }
}
