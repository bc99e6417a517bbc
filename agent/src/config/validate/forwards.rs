//! Port forwards of NAT networks.

use super::*;

pub(super) fn check_port_forward(r: &mut Reporter, at: &KeyPath, net: &Network, pf: &PortForward) {
    let addr = pf.to.addr;
    match net
        .ip
        .iter()
        .find(|ip| ip.address.0.trunc().contains(&addr))
    {
        None => {
            r.error(
                &at.key("to"),
                Target::Value,
                format!("{addr} is not inside any subnet of this network"),
            )
            .hint("forward to a guest of this network");
        }
        Some(ip) if addr == ip.address.0.addr() => {
            r.error(
                &at.key("to"),
                Target::Value,
                format!("{addr} is the bridge's own address, not a guest"),
            );
        }
        Some(ip) => {
            check_in_subnet(r, &at.key("to"), "forward target", addr, ip.address.0);
        }
    }
    if let Some(target_port) = pf.to.port {
        if u32::from(target_port) + pf.port.count() - 1 > 65535 {
            r.error(
                &at.key("to"),
                Target::Value,
                format!("ports {} mapped from {target_port} run past 65535", pf.port),
            );
        }
    }
    if let Some(from) = pf.from {
        if from.0.addr().is_ipv4() != addr.is_ipv4() {
            r.error(
                &at.key("from"),
                Target::Value,
                format!("from {from} and to {addr} are of different address families"),
            );
        }
        // A typo'd subnet ("10.12.17.5/24") reads as a single host to some
        // and a subnet to others: say which one is meant.
        if from.0.addr() != from.0.network() {
            r.error(
                &at.key("from"),
                Target::Value,
                format!("{from} has host bits set"),
            )
            .hint(format!(
                "write the subnet as {}, or one host as {}/{}",
                from.0.trunc(),
                from.0.addr(),
                from.0.max_prefix_len()
            ));
        }
    }
}

/// Two forwards of one network for the same host port: the host cannot send
/// a connection to both guests.
pub(super) fn check_forwards_overlap(r: &mut Reporter, at: &KeyPath, net: &Network) {
    let forwards = &net.port_forwards;
    for (i, pf) in forwards.iter().enumerate() {
        let taken = forwards[..i].iter().position(|other| {
            other.proto == pf.proto
                && other.to.addr.is_ipv4() == pf.to.addr.is_ipv4()
                && other.port.overlaps(pf.port)
                && froms_overlap(
                    other.from.map(|c| c.0.trunc()),
                    pf.from.map(|c| c.0.trunc()),
                )
        });
        if let Some(j) = taken {
            r.error(
                &at.key("port_forwards").index(i).key("port"),
                Target::Value,
                format!(
                    "{} port {} is already forwarded by port_forwards[{j}] ({})",
                    pf.proto, pf.port, forwards[j].port
                ),
            )
            .hint(
                "forward each host port once, or restrict the forwards to disjoint `from` subnets",
            );
        }
    }
}
