//! Rendering: a network's dnsmasq configuration, static hosts file and DNS
//! hosts file, as a pure function of the desired network. The configuration
//! text decides whether a change needs a restart; the two hosts files and
//! the upstream servers file are re-read on SIGHUP.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::config::desired::DesiredNetwork;
use crate::config::model::{DhcpConfig, LeaseTime, Mode};
use crate::config::validate::{is_safe_dns_name, is_safe_ifname, is_safe_network_name};

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
    /// `servers-file`: upstream DNS servers, re-read on SIGHUP.
    pub servers: String,
}

/// Whether the network runs a dnsmasq: a bridge of ours with an address,
/// serving DHCP on some subnet or DNS (on unless disabled).
pub fn wants_dnsmasq(net: &DesiredNetwork) -> bool {
    let spec = &net.spec;
    let dns = spec.dns.as_ref().is_none_or(|d| d.enable);
    let dhcp = spec.ip.iter().any(|ip| ip.dhcp.is_some());
    spec.mode != Mode::Bridge && !spec.ip.is_empty() && (dns || dhcp)
}

/// The account dnsmasq drops root for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    /// Its primary group: without it dnsmasq takes the group `dip`, which
    /// may not read the run directory.
    pub group: Option<String>,
}

/// Renders the instance of `net`, or `None` when it needs none.
/// `host_resolvers` (the host's nameservers) serve networks without
/// forwarders of their own. An error when a name from the files could
/// start a new directive or line (see `check_names`).
pub fn render(
    net: &DesiredNetwork,
    paths: &InstancePaths,
    run_as: &RunAs,
    host_resolvers: &[String],
) -> Result<Option<Rendered>, String> {
    if !wants_dnsmasq(net) {
        return Ok(None);
    }
    check_names(net)?;
    Ok(Some(Rendered {
        conf: conf(net, paths, run_as),
        hosts: hosts_file(net),
        addn_hosts: addn_hosts_file(net),
        servers: servers_file(net, host_resolvers),
    }))
}

/// The last guard before text reaches dnsmasq (validation refuses all of
/// these first): the bridge must be a safe interface name (`interface=a,b`
/// would serve a second interface) and every domain and host name a plain
/// DNS name (a newline or ',' would add a directive or a host). Refuses,
/// never quotes: dnsmasq has no quoting these fields all honour.
fn check_names(net: &DesiredNetwork) -> Result<(), String> {
    if !is_safe_network_name(&net.name) {
        return Err(format!(
            "refusing to render dnsmasq's configuration for network name {:?}",
            net.name
        ));
    }
    if !is_safe_ifname(&net.bridge) {
        return Err(format!(
            "refusing to render dnsmasq's configuration for bridge name {:?}",
            net.bridge
        ));
    }
    let spec = &net.spec;
    let dns = spec.dns.iter();
    let names = dns
        .clone()
        .flat_map(|d| {
            d.domain
                .iter()
                .chain(d.forwarders.iter().flat_map(|f| &f.domain))
        })
        .chain(dns.flat_map(|d| d.hosts.iter().flat_map(|h| &h.names)))
        .chain(
            spec.ip
                .iter()
                .flat_map(|ip| ip.dhcp.iter().flat_map(|d| &d.hosts))
                .flat_map(|h| &h.name),
        );
    for name in names {
        if !is_safe_dns_name(name) {
            return Err(format!(
                "refusing to render dnsmasq's configuration with the name {name:?}"
            ));
        }
    }
    Ok(())
}

/// Whether the network's DNS forwards queries: not isolated, DNS on.
fn forwards_queries(net: &DesiredNetwork) -> bool {
    net.spec.mode != Mode::Isolated && net.spec.dns.as_ref().is_none_or(|d| d.enable)
}

/// `servers-file`: the network's forwarders, else the host's nameservers.
/// Never `resolv-file`: dnsmasq watches it with an inotify instance of its
/// own, and the kernel's per-user limit (128 by default) would stop the
/// 129th network's dnsmasq from starting.
fn servers_file(net: &DesiredNetwork, host_resolvers: &[String]) -> String {
    if !forwards_queries(net) {
        return String::new();
    }
    let forwarders: Vec<String> = net
        .spec
        .dns
        .as_ref()
        .map(|d| d.forwarders.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let servers = if forwarders.is_empty() {
        host_resolvers
    } else {
        &forwarders[..]
    };
    servers.iter().map(|s| format!("server={s}\n")).collect()
}

/// The `nameserver` addresses of a resolv.conf, in order.
pub fn parse_resolv_conf(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter(|server| is_resolver_address(server))
        .map(str::to_string)
        .collect()
}

/// An address, or a link-local IPv6 one with its scope (`fe80::1%eth0`):
/// nothing else of resolv.conf reaches a `server=` line.
fn is_resolver_address(server: &str) -> bool {
    match server.split_once('%') {
        None => server.parse::<IpAddr>().is_ok(),
        Some((addr, scope)) => addr.parse::<std::net::Ipv6Addr>().is_ok() && is_safe_ifname(scope),
    }
}

fn conf(net: &DesiredNetwork, paths: &InstancePaths, run_as: &RunAs) -> String {
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
    line(&format!("user={}", run_as.user));
    if let Some(group) = &run_as.group {
        line(&format!("group={group}"));
    }
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
        // Upstream servers come from the servers file (none when
        // isolated: no query leaves the network).
        line("no-resolv");
        if forwards_queries(net) {
            line(&format!("servers-file={}", paths.servers.display()));
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
        // The MTU, and for isolated networks a router lifetime of 0: guests
        // take addresses but no default route. Interval 0 keeps the default.
        let mtu = spec
            .bridge
            .mtu
            .map(|m| format!(",mtu:{m}"))
            .unwrap_or_default();
        let lifetime = if isolated { ",0" } else { "" };
        if !mtu.is_empty() || isolated {
            line(&format!("ra-param={}{mtu},0{lifetime}", net.bridge));
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

#[cfg(test)]
mod tests {
    //! Golden files: `agent/tests/golden/dnsmasq/<case>.{conf,hostsfile,addnhosts,servers}`.
    //! After an intended change, regenerate them with `KVMNET_BLESS=1 cargo
    //! test -p kvmnet dnsmasq::render` and review the diff.

    use std::path::{Path, PathBuf};

    use super::*;
    use crate::config::model::NetworksFile;
    use crate::dnsmasq::paths::Dirs;

    fn network(toml_text: &str) -> DesiredNetwork {
        let file: NetworksFile = toml::from_str(toml_text).unwrap();
        let (name, spec) = file.networks.into_iter().next().unwrap();
        DesiredNetwork::new(&name, Path::new("t.toml"), spec)
    }

    fn render_case(toml_text: &str) -> Result<Option<Rendered>, String> {
        let net = network(toml_text);
        let dirs = Dirs::new(Path::new("/run/kvmnet"), Path::new("/var/lib/kvmnet"));
        let run_as = RunAs {
            user: "dnsmasq".into(),
            group: Some("nogroup".into()),
        };
        let host_resolvers = ["192.0.2.53".to_string(), "2001:db8::53".to_string()];
        render(&net, &dirs.instance(&net.name), &run_as, &host_resolvers)
    }

    fn golden_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/dnsmasq")
    }

    #[track_caller]
    fn assert_golden(case: &str, toml_text: &str) {
        let r = render_case(toml_text)
            .unwrap()
            .expect("the network runs dnsmasq");
        let files = [
            ("conf", &r.conf),
            ("hostsfile", &r.hosts),
            ("addnhosts", &r.addn_hosts),
            ("servers", &r.servers),
        ];
        for (ext, text) in files {
            let path = golden_dir().join(format!("{case}.{ext}"));
            if std::env::var_os("KVMNET_BLESS").is_some() {
                std::fs::create_dir_all(golden_dir()).unwrap();
                std::fs::write(&path, text).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (bless with KVMNET_BLESS=1)", path.display()));
            assert_eq!(text, &want, "{} differs", path.display());
        }
    }

    #[test]
    fn nat_with_domain_forwarders_hosts_mtu_and_infinite_leases() {
        assert_golden(
            "nat",
            r#"
[networks.nat-network]
mode = "nat"
bridge = { name = "virbr-nat", mtu = 9000 }
dns = { domain = "nat.test", forwarders = ["9.9.9.9", "/corp.example/10.0.0.53#5353"], hosts = [{ ip = "192.168.10.200", names = ["svc", "svc2"] }] }
[[networks.nat-network.ip]]
address = "192.168.10.1/24"
dhcp.ranges = [{ start = "192.168.10.2", end = "192.168.10.99" }, { start = "192.168.10.150", end = "192.168.10.199" }]
dhcp.hosts = [{ name = "myhost", ip = "192.168.10.10", mac = "52:54:00:f4:6a:43" }, { name = "byname", ip = "192.168.10.11" }]
dhcp.lease = "infinite"
"#,
        );
    }

    #[test]
    fn isolated_offers_no_route_and_forwards_no_query() {
        assert_golden(
            "isolated",
            r#"
[networks.iso]
mode = "isolated"
bridge = { name = "virbr-iso" }
dns = { forwarders = ["9.9.9.9"] }
[[networks.iso.ip]]
address = "192.168.30.1/24"
dhcp.ranges = [{ start = "192.168.30.2", end = "192.168.30.254" }]
dhcp.lease = "2h"
[[networks.iso.ip]]
address = "fd00:30::1/64"
dhcp.ranges = [{ start = "fd00:30::100", end = "fd00:30::1ff" }]
"#,
        );
    }

    #[test]
    fn routed_dual_stack_with_ipv6_reservation_and_mtu() {
        assert_golden(
            "route-ipv6",
            r#"
[networks.routed]
mode = "route"
bridge = { name = "virbr-routed", mtu = 9000 }
[[networks.routed.ip]]
address = "192.168.20.1/24"
dhcp.ranges = [{ start = "192.168.20.2", end = "192.168.20.254" }]
[[networks.routed.ip]]
address = "fd00:20::1/64"
dhcp.ranges = [{ start = "fd00:20::100", end = "fd00:20::1ff" }]
dhcp.hosts = [{ name = "web", ip = "fd00:20::10" }]
"#,
        );
    }

    #[test]
    fn dns_disabled_keeps_dhcp_on_static_hosts_only() {
        assert_golden(
            "dhcp-only",
            r#"
[networks.open]
mode = "open"
dns = { enable = false }
[[networks.open.ip]]
address = "192.168.40.1/24"
dhcp.hosts = [{ mac = "52:54:00:00:40:10", ip = "192.168.40.10" }]
"#,
        );
    }

    #[test]
    fn dns_only_without_dhcp() {
        assert_golden(
            "dns-only",
            r#"
[networks.open]
mode = "open"
[[networks.open.ip]]
address = "192.168.40.1/24"
"#,
        );
    }

    #[test]
    fn no_instance_for_bridge_mode_no_address_or_nothing_to_serve() {
        let bridged =
            "[networks.b]\nmode = \"bridge\"\n[[networks.b.ip]]\naddress = \"192.168.1.2/24\"\n";
        assert_eq!(render_case(bridged), Ok(None));
        assert_eq!(render_case("[networks.n]\nmode = \"nat\"\n"), Ok(None));
        let silent = "[networks.n]\nmode = \"nat\"\ndns = { enable = false }\n[[networks.n.ip]]\naddress = \"192.168.1.1/24\"\n";
        assert_eq!(render_case(silent), Ok(None));
    }

    /// Validation refuses these first; render refuses them again rather
    /// than let one start a directive (`interface=kv,up0` serves up0 too).
    #[test]
    fn names_that_could_start_a_directive_are_refused() {
        let net = |bridge: &str, extra: &str| {
            format!("[networks.n]\nmode = \"nat\"\nbridge.name = {bridge:?}\n{extra}[[networks.n.ip]]\naddress = \"192.168.1.1/24\"\n")
        };
        for bridge in ["kv,up0", "kv*", "kv%d", "kv\"a", "kv a", "kv\nport=0"] {
            let err = render_case(&net(bridge, "")).unwrap_err();
            assert!(err.contains(&format!("{bridge:?}")), "{err}");
        }
        for dns in [
            "dns.domain = \"a\\nport=0\"\n",
            "dns.hosts = [{ ip = \"192.168.1.9\", names = [\"a,b\"] }]\n",
            "dns.forwarders = [\"/a b/1.1.1.1\"]\n",
        ] {
            assert!(render_case(&net("virbr-n", dns)).is_err(), "{dns}");
        }
        let renamed = net("virbr-n", "").replace("networks.n", "networks.\"n\\nport=0\"");
        assert!(render_case(&renamed).is_err());
        assert!(render_case(&net("virbr-n", "dns.domain = \"lab.test\"\n")).is_ok());
    }

    #[test]
    fn resolv_conf_gives_nameservers_in_order() {
        let text = "# generated\nsearch example.com\nnameserver 127.0.0.53\n\
                    nameserver   2001:db8::1\nnameserver fe80::1%eth0\nnameserver bogus\n\
                    nameserver 1.1.1.1,2.2.2.2\nnameserver fe80::2%a,b\nnameserver x%eth0\n\
                    options edns0\nnameserver\n";
        assert_eq!(
            parse_resolv_conf(text),
            ["127.0.0.53", "2001:db8::1", "fe80::1%eth0"]
        );
    }
}
