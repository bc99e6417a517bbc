//! Addresses, subnets and routes of a network.

use super::*;

/// Whether `addr` is `net`'s network address, or its IPv4 broadcast address.
pub(super) fn is_network_or_broadcast(net: IpNet, addr: IpAddr) -> bool {
    addr == net.network() || (addr.is_ipv4() && addr == net.broadcast())
}

pub(super) fn check_ip(r: &mut Reporter, at: &KeyPath, ip: &IpConfig) {
    let cidr = ip.address.0;
    let addr = cidr.addr();
    let max_prefix = if addr.is_ipv4() { 30 } else { 126 };
    let subnet = cidr.trunc();
    if cidr.prefix_len() == 0 || cidr.prefix_len() > max_prefix {
        r.error(
            &at.key("address"),
            Target::Value,
            format!(
                "prefix length /{} leaves no room for guests",
                cidr.prefix_len()
            ),
        )
        .hint(format!("a prefix from /1 to /{max_prefix}, e.g. /24"));
    } else if is_network_or_broadcast(subnet, addr) {
        let kind = if addr == subnet.network() {
            "network"
        } else {
            "broadcast"
        };
        r.error(
            &at.key("address"),
            Target::Value,
            format!("{addr} is the {kind} address of {subnet}"),
        )
        .hint(format!(
            "the bridge needs a host address, e.g. {}",
            example_host(subnet)
        ));
    }
    if addr.is_loopback() || addr.is_multicast() || addr.is_unspecified() || is_link_local(addr) {
        r.error(&at.key("address"), Target::Value, format!("{addr} cannot be a bridge address (loopback, multicast, link-local or unspecified)"));
    }
    if let Some(dhcp) = &ip.dhcp {
        check_dhcp(r, &at.key("dhcp"), cidr, dhcp);
    }
    let boundary = if addr.is_ipv4() { 8 } else { 4 };
    if ip.local_ptr && cidr.prefix_len() % boundary != 0 {
        r.error(
            &at.key("local_ptr"),
            Target::Value,
            format!(
                "the reverse zone of /{} is not a DNS zone: the prefix must be a multiple of {boundary}",
                cidr.prefix_len()
            ),
        );
    }
    if let Some(root) = &ip.tftp_root {
        if addr.is_ipv6() {
            r.error(
                &at.key("tftp_root"),
                Target::Key,
                "TFTP is served on IPv4 subnets only",
            );
        }
        if !root.starts_with('/') || root.contains([',', '\n', '\r', '\0']) {
            r.error(
                &at.key("tftp_root"),
                Target::Value,
                format!("TFTP root {root:?} is not an absolute path on one line without commas"),
            );
        }
    }
}

pub(super) fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

pub(super) fn example_host(subnet: IpNet) -> IpNet {
    let first = subnet.hosts().next().unwrap_or(subnet.addr());
    IpNet::new(first, subnet.prefix_len()).expect("prefix of an existing net")
}

/// Checks that `addr` is a usable host address of `cidr`'s subnet.
pub(super) fn check_in_subnet(
    r: &mut Reporter,
    at: &KeyPath,
    what: &str,
    addr: IpAddr,
    cidr: IpNet,
) -> bool {
    let subnet = cidr.trunc();
    if !subnet.contains(&addr) {
        r.error(
            at,
            Target::Value,
            format!("{what} {addr} is outside the subnet {subnet}"),
        )
        .hint(format!("an address inside {subnet}"));
        false
    } else if is_network_or_broadcast(subnet, addr) {
        r.error(
            at,
            Target::Value,
            format!("{what} {addr} is not a host address of {subnet}"),
        );
        false
    } else {
        true
    }
}
/// Rules about the set of a network's addresses.
pub(super) fn check_ip_set(r: &mut Reporter, at: &KeyPath, net: &Network) {
    let mut tftp = net
        .ip
        .iter()
        .enumerate()
        .filter(|(_, ip)| ip.tftp_root.is_some());
    if let (Some((first, _)), Some((i, _))) = (tftp.next(), tftp.next()) {
        r.error(
            &at.key("ip").index(i).key("tftp_root"),
            Target::Key,
            format!("a network has one TFTP root (also ip[{first}].tftp_root)"),
        );
    }
    for (i, ip) in net.ip.iter().enumerate() {
        let subnet = ip.address.0.trunc();
        if let Some(j) = net.ip[..i]
            .iter()
            .position(|other| subnets_overlap(other.address.0.trunc(), subnet))
        {
            r.error(
                &at.key("ip").index(i).key("address"),
                Target::Value,
                format!("subnet {subnet} overlaps ip[{j}] of the same network"),
            );
        }
        let family_has_dhcp_before = net.ip[..i].iter().any(|o| {
            o.dhcp.is_some() && o.address.0.addr().is_ipv4() == ip.address.0.addr().is_ipv4()
        });
        if ip.dhcp.is_some() && family_has_dhcp_before {
            let family = if ip.address.0.addr().is_ipv4() {
                "IPv4"
            } else {
                "IPv6"
            };
            r.error(
                &at.key("ip").index(i).key("dhcp"),
                Target::Key,
                format!("only one {family} subnet of a network can have DHCP"),
            );
        }
    }
}

pub(super) fn subnets_overlap(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
pub(super) fn check_routes(r: &mut Reporter, at: &KeyPath, net: &Network) {
    let mut seen = HashMap::new();
    for (i, route) in net.routes.iter().enumerate() {
        let rat = at.key("routes").index(i);
        let to = route.to.0;
        if to.addr() != to.network() {
            r.error(
                &rat.key("to"),
                Target::Value,
                format!("{to} has host bits set"),
            )
            .hint(format!("write the subnet as {}", to.trunc()));
        }
        if to.prefix_len() == 0 {
            r.error(
                &rat.key("to"),
                Target::Value,
                "a default route via a guest would take over the host's default route",
            )
            .hint("route specific subnets");
        }
        if let Some(own) = net
            .ip
            .iter()
            .find(|ip| subnets_overlap(ip.address.0.trunc(), to.trunc()))
        {
            r.error(
                &rat.key("to"),
                Target::Value,
                format!(
                    "{} overlaps the network's own subnet {}",
                    to.trunc(),
                    own.address.0.trunc()
                ),
            );
        }
        match net
            .ip
            .iter()
            .find(|ip| ip.address.0.trunc().contains(&route.via))
        {
            None => {
                r.error(&rat.key("via"), Target::Value, format!("gateway {} is not inside any subnet of this network", route.via))
                    .hint("the gateway is a guest on this network, with an address in one of its ip[] subnets");
            }
            Some(ip) => {
                if route.via == ip.address.0.addr() {
                    r.error(
                        &rat.key("via"),
                        Target::Value,
                        format!("gateway {} is the bridge's own address", route.via),
                    );
                } else {
                    check_in_subnet(r, &rat.key("via"), "gateway", route.via, ip.address.0);
                }
                if route.via.is_ipv4() != to.addr().is_ipv4() {
                    r.error(
                        &rat.key("via"),
                        Target::Value,
                        "gateway and destination are of different address families",
                    );
                }
            }
        }
        if let Some(first) = seen.insert(to.trunc(), i) {
            r.error(
                &rat.key("to"),
                Target::Value,
                format!(
                    "route to {} is given twice (also routes[{first}])",
                    to.trunc()
                ),
            );
        }
    }
}
