//! DHCP on a subnet: ranges, reservations, lease times, netboot.

use super::*;

pub(super) fn check_dhcp(r: &mut Reporter, at: &KeyPath, cidr: IpNet, dhcp: &DhcpConfig) {
    let bridge_addr = cidr.addr();
    if let Some(bootp) = &dhcp.bootp {
        check_bootp(r, &at.key("bootp"), cidr, bootp);
    }
    if dhcp.ranges.is_empty() && dhcp.hosts.is_empty() {
        r.error(
            at,
            Target::Key,
            "dhcp has no ranges and no hosts, so it would hand out no address",
        )
        .hint("add ranges = [{ start = ..., end = ... }] or hosts, or remove dhcp");
    }
    let mut good_ranges: Vec<(usize, IpAddr, IpAddr)> = Vec::new();
    for (i, range) in dhcp.ranges.iter().enumerate() {
        let rat = at.key("ranges").index(i);
        let start_ok = check_in_subnet(r, &rat.key("start"), "DHCP range start", range.start, cidr);
        let end_ok = check_in_subnet(r, &rat.key("end"), "DHCP range end", range.end, cidr);
        if !(start_ok && end_ok) {
            continue;
        }
        if range.start > range.end {
            r.error(
                &rat,
                Target::Value,
                format!("DHCP range {} - {} is reversed", range.start, range.end),
            )
            .hint(format!(
                "start = \"{}\", end = \"{}\"",
                range.end, range.start
            ));
            continue;
        }
        if range.start <= bridge_addr && bridge_addr <= range.end {
            r.error(
                &rat,
                Target::Value,
                format!(
                    "DHCP range {} - {} includes the bridge's own address {bridge_addr}",
                    range.start, range.end
                ),
            )
            .hint("start the range after the bridge's address");
        }
        if let Some((j, ..)) = good_ranges
            .iter()
            .find(|(_, s, e)| range.start <= *e && *s <= range.end)
        {
            r.error(
                &rat,
                Target::Value,
                format!(
                    "DHCP range {} - {} overlaps range [{j}]",
                    range.start, range.end
                ),
            );
        }
        good_ranges.push((i, range.start, range.end));
    }

    let mut seen_mac = HashMap::new();
    let mut seen_ip = HashMap::new();
    let mut seen_name = HashMap::new();
    for (i, host) in dhcp.hosts.iter().enumerate() {
        let hat = at.key("hosts").index(i);
        if check_in_subnet(r, &hat.key("ip"), "DHCP host address", host.ip, cidr)
            && host.ip == bridge_addr
        {
            r.error(
                &hat.key("ip"),
                Target::Value,
                format!("DHCP host address {} is the bridge's own address", host.ip),
            );
        }
        if host.mac.is_none() && host.name.is_none() && host.duid.is_none() {
            r.error(
                &hat,
                Target::Value,
                "a DHCP host needs a mac or a name to be matched by",
            )
            .hint("add mac = \"52:54:00:...\" (IPv4) or name = \"...\"");
        }
        if host.ip.is_ipv6() && host.name.is_none() && host.duid.is_none() {
            r.error(
                &hat,
                Target::Value,
                "an IPv6 DHCP host needs a name or a duid",
            )
            .hint("DHCPv6 clients are matched by name or DUID; their MAC is not part of DHCPv6");
        }
        if let Some(duid) = &host.duid {
            if host.ip.is_ipv4() {
                r.error(
                    &hat.key("duid"),
                    Target::Key,
                    "a DUID identifies DHCPv6 clients: an IPv4 host is matched by mac",
                );
            } else if let Err(why) = check_duid(duid) {
                r.error(
                    &hat.key("duid"),
                    Target::Value,
                    format!("invalid DUID {duid:?}: {why}"),
                );
            }
        }
        check_lease(r, &hat.key("lease"), host.lease);
        if let Some(mac) = host.mac {
            if mac.is_multicast() || mac.is_zero() {
                r.error(
                    &hat.key("mac"),
                    Target::Value,
                    format!("{mac} is not a unicast MAC address"),
                );
            }
            if let Some(first) = seen_mac.insert(mac, i) {
                r.error(
                    &hat.key("mac"),
                    Target::Value,
                    format!("MAC {mac} is reserved twice (also hosts[{first}])"),
                );
            }
        }
        if let Some(first) = seen_ip.insert(host.ip, i) {
            r.error(
                &hat.key("ip"),
                Target::Value,
                format!(
                    "address {} is reserved twice (also hosts[{first}])",
                    host.ip
                ),
            );
        }
        if let Some(name) = &host.name {
            if let Err(why) = check_hostname(name) {
                r.error(
                    &hat.key("name"),
                    Target::Value,
                    format!("invalid host name {name:?}: {why}"),
                );
            }
            if let Some(first) = seen_name.insert(name.to_ascii_lowercase(), i) {
                r.error(
                    &hat.key("name"),
                    Target::Value,
                    format!("host name {name:?} is reserved twice (also hosts[{first}])"),
                );
            }
        }
    }

    check_lease(r, &at.key("lease"), dhcp.lease);
}

/// dnsmasq raises any shorter lease to 2m, so a shorter one would be a lie.
pub(super) fn check_lease(r: &mut Reporter, at: &KeyPath, lease: Option<LeaseTime>) {
    if let Some(LeaseTime::Finite(d)) = lease {
        if d.as_secs() < MIN_LEASE_SECS {
            r.error(
                at,
                Target::Value,
                format!(
                    "lease time {} is shorter than dnsmasq's minimum of 2m",
                    humantime::format_duration(d)
                ),
            )
            .hint("a lease of at least 2m, e.g. \"1h\", or \"infinite\"");
        }
    }
}

pub(super) fn check_bootp(r: &mut Reporter, at: &KeyPath, cidr: IpNet, bootp: &BootpConfig) {
    if cidr.addr().is_ipv6() {
        r.error(
            at,
            Target::Key,
            "a boot file is offered on IPv4 subnets only",
        );
    }
    if bootp.file.is_empty() || bootp.file.contains([',', '\n', '\r', '\0']) {
        r.error(
            &at.key("file"),
            Target::Value,
            format!(
                "boot file {:?} must be a non-empty name without commas",
                bootp.file
            ),
        );
    }
    if let Some(server) = bootp.server {
        if !server.is_ipv4() || server.is_unspecified() || server.is_multicast() {
            r.error(
                &at.key("server"),
                Target::Value,
                format!("{server} cannot be a TFTP server: a unicast IPv4 address is expected"),
            );
        }
    }
}

/// A DUID: 2 to 130 octets of one or two hex digits, separated by colons.
pub(super) fn check_duid(duid: &str) -> Result<(), String> {
    let octets: Vec<&str> = duid.split(':').collect();
    if !(2..=130).contains(&octets.len()) {
        return Err("a DUID has 2 to 130 octets".into());
    }
    if let Some(bad) = octets
        .iter()
        .find(|o| !(1..=2).contains(&o.len()) || !o.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(format!("{bad:?} is not a hex octet"));
    }
    Ok(())
}

/// A name reserved in an IPv4 and an IPv6 subnet is one guest with one line
/// in dnsmasq's hosts file, and so one lease time.
pub(super) fn check_dual_stack_hosts(r: &mut Reporter, at: &KeyPath, net: &Network) {
    let mut leases: HashMap<String, (usize, usize, Option<LeaseTime>)> = HashMap::new();
    for (i, ip) in net.ip.iter().enumerate() {
        let Some(dhcp) = &ip.dhcp else { continue };
        for (j, host) in dhcp.hosts.iter().enumerate() {
            let Some(name) = &host.name else { continue };
            match leases.get(&name.to_ascii_lowercase()) {
                Some(&(fi, fj, lease)) if lease != host.lease => {
                    r.error(
                        &at.key("ip").index(i).key("dhcp").key("hosts").index(j),
                        Target::Value,
                        format!(
                            "host {name:?} has another lease time in ip[{fi}].dhcp.hosts[{fj}]: one guest has one lease time"
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    leases.insert(name.to_ascii_lowercase(), (i, j, host.lease));
                }
            }
        }
    }
}
