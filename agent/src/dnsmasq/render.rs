//! Rendering: a network's dnsmasq configuration, static hosts file and DNS
//! hosts file, as a pure function of the desired network. The configuration
//! text decides whether a change needs a restart; the two hosts files are
//! re-read on SIGHUP.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::desired::DesiredNetwork;
use crate::model::{DhcpConfig, LeaseTime, Mode};

use super::paths::InstancePaths;

/// The files of one dnsmasq instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// `--conf-file`: any change restarts dnsmasq.
    pub conf: String,
    /// `dhcp-hostsfile`: static reservations, re-read on SIGHUP.
    pub hosts: String,
    /// `addn-hosts`: DNS names, re-read on SIGHUP.
    pub addn_hosts: String,
}

/// Whether the network runs a dnsmasq: a bridge of ours with an address,
/// serving DHCP on some subnet or DNS (on unless disabled).
pub fn wants_dnsmasq(net: &DesiredNetwork) -> bool {
    let spec = &net.spec;
    let dns = spec.dns.as_ref().is_none_or(|d| d.enable);
    let dhcp = spec.ip.iter().any(|ip| ip.dhcp.is_some());
    spec.mode != Mode::Bridge && !spec.ip.is_empty() && (dns || dhcp)
}

/// Renders the instance of `net`, or `None` when it needs none. `user` is
/// the account dnsmasq drops its privileges to.
pub fn render(net: &DesiredNetwork, paths: &InstancePaths, user: &str) -> Option<Rendered> {
    if !wants_dnsmasq(net) {
        return None;
    }
    Some(Rendered {
        conf: conf(net, paths, user),
        hosts: hosts_file(net),
        addn_hosts: addn_hosts_file(net),
    })
}

fn conf(net: &DesiredNetwork, paths: &InstancePaths, user: &str) -> String {
    let spec = &net.spec;
    let isolated = spec.mode == Mode::Isolated;
    let dns = spec.dns.clone().unwrap_or_default();
    let mut c = String::new();
    let mut line = |text: &str| {
        c.push_str(text);
        c.push('\n');
    };
    line(&format!(
        "# kvmnet-agent: dnsmasq of network {}. Generated; edits are overwritten.",
        net.name
    ));
    line("strict-order");
    line(&format!("user={user}"));
    // The agent tracks the pid itself; no pid file in /run/dnsmasq.
    line("pid-file=");
    // Logs go to stderr, which the agent sends to its log file.
    line("log-facility=-");
    // Listen on the bridge only, and keep listening when its addresses
    // change (bind-dynamic, unlike bind-interfaces, copes with an IPv6
    // address still in duplicate address detection).
    line("bind-dynamic");
    line(&format!("interface={}", net.bridge));
    line("except-interface=lo");
    if dns.enable {
        if let Some(domain) = &dns.domain {
            line(&format!("domain={domain}"));
            line(&format!("local=/{domain}/"));
            line("expand-hosts");
        }
        if isolated || !dns.forwarders.is_empty() {
            // Isolated: no query leaves the network. Else: the given
            // forwarders, never the host's resolv.conf.
            line("no-resolv");
        }
        if !isolated {
            for f in &dns.forwarders {
                line(&format!("server={f}"));
            }
        }
    } else {
        line("port=0");
    }
    let mut lease_max: u128 = 0;
    let mut dhcp_v6 = false;
    for ip in &spec.ip {
        let Some(dhcp) = &ip.dhcp else { continue };
        let prefix = ip.address.0.prefix_len();
        for range in &dhcp.ranges {
            let mask = match ip.address.0 {
                ipnet::IpNet::V4(v4) => v4.netmask().to_string(),
                ipnet::IpNet::V6(_) => {
                    dhcp_v6 = true;
                    prefix.to_string()
                }
            };
            line(&format!(
                "dhcp-range={},{},{mask},{}",
                range.start,
                range.end,
                lease_time(dhcp)
            ));
            lease_max = lease_max.saturating_add(range_size(range.start, range.end));
        }
        if dhcp.ranges.is_empty() && !dhcp.hosts.is_empty() {
            // Static reservations only: dnsmasq serves them on a "static" range.
            let start = ip.address.0.network();
            let mask = match ip.address.0 {
                ipnet::IpNet::V4(v4) => v4.netmask().to_string(),
                ipnet::IpNet::V6(_) => {
                    dhcp_v6 = true;
                    prefix.to_string()
                }
            };
            line(&format!(
                "dhcp-range={start},static,{mask},{}",
                lease_time(dhcp)
            ));
        }
        lease_max = lease_max.saturating_add(dhcp.hosts.len() as u128);
    }
    if lease_max > 0 {
        line("dhcp-no-override");
        line("dhcp-authoritative");
        line(&format!(
            "dhcp-lease-max={}",
            lease_max.min(u128::from(u32::MAX))
        ));
        line(&format!("dhcp-hostsfile={}", paths.hosts.display()));
        line(&format!("dhcp-leasefile={}", paths.leases.display()));
        if isolated {
            // An empty router option: guests get no default route.
            line("dhcp-option=3");
        }
        if let Some(mtu) = spec.bridge.mtu {
            line(&format!("dhcp-option=option:mtu,{mtu}"));
        }
    }
    if dhcp_v6 {
        line("enable-ra");
        if isolated {
            // Router lifetime 0: guests take addresses but no default route.
            line(&format!("ra-param={},0,0", net.bridge));
        }
    }
    if dns.enable {
        line(&format!("addn-hosts={}", paths.addn_hosts.display()));
    }
    c
}

fn lease_time(dhcp: &DhcpConfig) -> String {
    match dhcp.lease {
        None => "1h".to_string(),
        Some(LeaseTime::Infinite) => "infinite".to_string(),
        // dnsmasq takes seconds, or a number with one unit.
        Some(LeaseTime::Finite(d)) => d.as_secs().to_string(),
    }
}

/// Addresses in `start..=end` (validation ensures start <= end, same family).
fn range_size(start: IpAddr, end: IpAddr) -> u128 {
    let n = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    n(end).saturating_sub(n(start)).saturating_add(1)
}

/// `dhcp-hostsfile`: `MAC,IP[,NAME]` for IPv4, `[IPv6][,NAME]` keyed by
/// name for IPv6 (or `NAME,IP` when there is no MAC).
fn hosts_file(net: &DesiredNetwork) -> String {
    let mut out = String::new();
    for ip in &net.spec.ip {
        let Some(dhcp) = &ip.dhcp else { continue };
        for host in &dhcp.hosts {
            let addr = match host.ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            // DHCPv6 clients are known by their DUID, not their MAC.
            let fields: Vec<String> = match host.mac.filter(|_| host.ip.is_ipv4()) {
                Some(mac) => [Some(mac.to_string()), Some(addr), host.name.clone()]
                    .into_iter()
                    .flatten()
                    .collect(),
                None => [host.name.clone(), Some(addr)]
                    .into_iter()
                    .flatten()
                    .collect(),
            };
            let _ = writeln!(out, "{}", fields.join(","));
        }
    }
    out
}

/// `addn-hosts`: `IP NAME...` for `dns.hosts`, then the named static hosts,
/// so that a reserved guest resolves before it has ever taken a lease.
fn addn_hosts_file(net: &DesiredNetwork) -> String {
    let mut out = String::new();
    if let Some(dns) = &net.spec.dns {
        for host in &dns.hosts {
            let _ = writeln!(out, "{} {}", host.ip, host.names.join(" "));
        }
    }
    for ip in &net.spec.ip {
        for host in ip.dhcp.iter().flat_map(|d| &d.hosts) {
            if let Some(name) = &host.name {
                let _ = writeln!(out, "{} {name}", host.ip);
            }
        }
    }
    out
}
