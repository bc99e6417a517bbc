//! Rendering: a network's dnsmasq configuration, static hosts file and DNS
//! hosts file, as a pure function of the desired network. The configuration
//! text decides whether a change needs a restart; the two hosts files and
//! the upstream servers file are re-read on SIGHUP.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::config::desired::DesiredNetwork;
use crate::config::model::{LeaseTime, Mode, SrvRecord};
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
/// serving DHCP on some subnet, router advertisements on an IPv6 subnet, or
/// DNS (on unless disabled).
pub fn wants_dnsmasq(net: &DesiredNetwork) -> bool {
    let spec = &net.spec;
    let dns = spec.dns.as_ref().is_none_or(|d| d.enable);
    let dhcp = spec.ip.iter().any(|ip| ip.dhcp.is_some());
    let ra = spec.ip.iter().any(|ip| ip.address.0.addr().is_ipv6());
    spec.mode != Mode::Bridge && !spec.ip.is_empty() && (dns || dhcp || ra)
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
        .chain(
            dns.clone()
                .flat_map(|d| d.hosts.iter().flat_map(|h| &h.names)),
        )
        .chain(dns.clone().flat_map(|d| {
            d.srv
                .iter()
                .flat_map(|s| s.domain.iter().chain(s.target.iter().filter(|t| *t != ".")))
        }))
        .chain(dns.flat_map(|d| d.txt.iter().map(|t| &t.name)))
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

/// `servers-file`: the network's forwarders, then the host's nameservers
/// unless a forwarder serves every domain (per-domain forwarders add to the
/// host's, as with libvirt). Never `resolv-file`: dnsmasq watches it with an
/// inotify instance of its own, and the kernel's per-user limit (128 by
/// default) would stop the 129th network's dnsmasq from starting.
fn servers_file(net: &DesiredNetwork, host_resolvers: &[String]) -> String {
    if !forwards_queries(net) {
        return String::new();
    }
    let forwarders = net
        .spec
        .dns
        .as_ref()
        .map(|d| &d.forwarders[..])
        .unwrap_or_default();
    let mut servers: Vec<String> = forwarders.iter().map(ToString::to_string).collect();
    if forwarders.iter().all(|f| f.domain.is_some()) {
        servers.extend(host_resolvers.iter().cloned());
    }
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
            if dns.local_only {
                line(&format!("local=/{domain}/"));
            }
            line("expand-hosts");
        }
        if !dns.forward_plain_names {
            line("domain-needed");
        }
        for ip in spec.ip.iter().filter(|ip| ip.local_ptr) {
            line(&format!("local=/{}/", reverse_zone(ip.address.0)));
        }
        // Upstream servers come from the servers file (none when
        // isolated: no query leaves the network).
        line("no-resolv");
        if forwards_queries(net) {
            line(&format!("servers-file={}", paths.servers.display()));
        }
        for srv in &dns.srv {
            line(&format!(
                "srv-host={}",
                srv_host(srv, dns.domain.as_deref())
            ));
        }
        for txt in &dns.txt {
            line(&format!("txt-record={},\"{}\"", txt.name, txt.value));
        }
    } else {
        line("port=0");
    }
    let mut lease_max: u128 = 0;
    let mut ipv6 = false;
    for ip in &spec.ip {
        let (network, mask) = match ip.address.0 {
            ipnet::IpNet::V4(v4) => (v4.network().to_string(), v4.netmask().to_string()),
            ipnet::IpNet::V6(v6) => {
                ipv6 = true;
                (v6.network().to_string(), v6.prefix_len().to_string())
            }
        };
        let Some(dhcp) = &ip.dhcp else {
            if ip.address.0.addr().is_ipv6() {
                // Router advertisements only: guests configure themselves
                // by SLAAC, as on libvirt's IPv6 subnets without DHCP.
                line(&format!("dhcp-range={network},ra-only,{mask}"));
            }
            continue;
        };
        for range in &dhcp.ranges {
            line(&format!(
                "dhcp-range={},{},{mask},{}",
                range.start,
                range.end,
                lease_time(dhcp.lease)
            ));
        }
        if dhcp.ranges.is_empty() {
            // Static reservations only: dnsmasq serves them on a "static" range.
            line(&format!(
                "dhcp-range={network},static,{mask},{}",
                lease_time(dhcp.lease)
            ));
        }
        // Every address of the subnet, not the ranges plus the hosts: the
        // hosts file is re-read on SIGHUP, and a limit counting its hosts
        // would turn a new reservation into a restart.
        lease_max = lease_max.saturating_add(subnet_size(ip.address.0));
        if let Some(bootp) = &dhcp.bootp {
            match bootp.server {
                Some(server) => line(&format!("dhcp-boot={},,{server}", bootp.file)),
                None => line(&format!("dhcp-boot={}", bootp.file)),
            }
        }
    }
    if lease_max > 0 {
        line("dhcp-no-override");
        line("dhcp-authoritative");
        // dnsmasq reads the limit into a C int.
        line(&format!(
            "dhcp-lease-max={}",
            lease_max.min(i32::MAX as u128)
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
    if ipv6 {
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
    if let Some(tftp_root) = spec.ip.iter().find_map(|ip| ip.tftp_root.as_ref()) {
        line("enable-tftp");
        line(&format!("tftp-root={tftp_root}"));
    }
    if dns.enable {
        line(&format!("addn-hosts={}", paths.addn_hosts.display()));
    }
    if let Some(dnsmasq) = &spec.dnsmasq {
        line("# dnsmasq.options: not modelled by kvmnet");
        for option in &dnsmasq.options {
            line(option);
        }
    }
    c
}

/// `srv-host=_SERVICE._PROTO[.DOMAIN][,TARGET[,PORT[,PRIORITY[,WEIGHT]]]]`.
fn srv_host(srv: &SrvRecord, network_domain: Option<&str>) -> String {
    let mut text = format!("_{}._{}", srv.service, srv.protocol);
    if let Some(domain) = srv.domain.as_deref().or(network_domain) {
        let _ = write!(text, ".{domain}");
    }
    let fields = [
        srv.target.clone(),
        srv.port.map(|p| p.to_string()),
        srv.priority.map(|p| p.to_string()),
        srv.weight.map(|w| w.to_string()),
    ];
    for field in fields.into_iter().map_while(|f| f) {
        let _ = write!(text, ",{field}");
    }
    text
}

/// The reverse DNS zone of a subnet whose prefix ends on an octet (IPv4) or
/// a nibble (IPv6), as validation ensures.
fn reverse_zone(cidr: ipnet::IpNet) -> String {
    let labels: Vec<String> = match cidr.trunc() {
        ipnet::IpNet::V4(v4) => v4.network().octets()[..usize::from(v4.prefix_len() / 8)]
            .iter()
            .rev()
            .map(u8::to_string)
            .collect(),
        ipnet::IpNet::V6(v6) => {
            let nibbles: Vec<u8> = v6
                .network()
                .octets()
                .iter()
                .flat_map(|o| [o >> 4, o & 0xf])
                .take(usize::from(v6.prefix_len() / 4))
                .collect();
            nibbles.iter().rev().map(|n| format!("{n:x}")).collect()
        }
    };
    let suffix = if cidr.addr().is_ipv4() {
        "in-addr.arpa"
    } else {
        "ip6.arpa"
    };
    format!("{}.{suffix}", labels.join("."))
}

fn lease_time(lease: Option<LeaseTime>) -> String {
    match lease {
        None => "1h".to_string(),
        Some(LeaseTime::Infinite) => "infinite".to_string(),
        // dnsmasq takes seconds, or a number with one unit.
        Some(LeaseTime::Finite(d)) => d.as_secs().to_string(),
    }
}

/// Addresses of the subnet of `cidr`.
fn subnet_size(cidr: ipnet::IpNet) -> u128 {
    let host_bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
    1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
}

/// `dhcp-hostsfile`: one line per guest,
/// `[MAC,][id:DUID,][IPv4,][[IPv6],][NAME][,LEASE]`. A name reserved in an
/// IPv4 and an IPv6 subnet is one guest, on one line: on two lines dnsmasq
/// takes the IPv4 address of the name (from addn-hosts) for the IPv6 line
/// and warns of a duplicate address.
fn hosts_file(net: &DesiredNetwork) -> String {
    #[derive(Default)]
    struct Guest {
        mac: Option<String>,
        duid: Option<String>,
        v4: Option<String>,
        v6: Option<String>,
        name: Option<String>,
        lease: Option<LeaseTime>,
    }
    let mut guests: Vec<Guest> = Vec::new();
    let hosts = net
        .spec
        .ip
        .iter()
        .flat_map(|ip| ip.dhcp.iter().flat_map(|d| &d.hosts));
    for host in hosts {
        let same_name = host.name.as_ref().and_then(|name| {
            guests.iter().position(|g| {
                g.name
                    .as_ref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        });
        let i = same_name.unwrap_or_else(|| {
            guests.push(Guest {
                name: host.name.clone(),
                ..Guest::default()
            });
            guests.len() - 1
        });
        let guest = &mut guests[i];
        match host.ip {
            IpAddr::V4(v4) => {
                guest.v4 = Some(v4.to_string());
                guest.mac = host.mac.map(|m| m.to_string());
            }
            // DHCPv6 clients are known by their DUID, not their MAC.
            IpAddr::V6(v6) => {
                guest.v6 = Some(format!("[{v6}]"));
                guest.duid = host.duid.as_ref().map(|d| format!("id:{d}"));
            }
        }
        guest.lease = host.lease.or(guest.lease);
    }
    let mut out = String::new();
    for g in guests {
        let lease = g.lease.map(|l| lease_time(Some(l)));
        let fields: Vec<String> = [g.mac, g.duid, g.v4, g.v6, g.name, lease]
            .into_iter()
            .flatten()
            .collect();
        let _ = writeln!(out, "{}", fields.join(","));
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
    fn ipv6_without_dhcp_gets_ra_domain_forwarders_keep_the_host_resolvers() {
        assert_golden(
            "slaac",
            r#"
[networks.slaac]
mode = "nat"
bridge = { name = "virbr-slaac" }
dns = { domain = "slaac.test", local_only = false, forward_plain_names = false, forwarders = ["/example.com/192.168.1.1", "/lan.example/#"] }
[[networks.slaac.ip]]
address = "192.168.70.1/24"
local_ptr = true
dhcp.ranges = [{ start = "192.168.70.2", end = "192.168.70.254" }]
[[networks.slaac.ip]]
address = "fd00:70::1/64"
local_ptr = true
"#,
        );
    }

    #[test]
    fn pxe_srv_txt_per_host_leases_duid_dual_stack_hosts_and_raw_options() {
        assert_golden(
            "pxe",
            r#"
[networks.pxe]
mode = "route"
bridge = { name = "virbr-pxe" }
dns = { domain = "pxe.test", srv = [{ service = "ldap", protocol = "tcp", target = "dir.pxe.test", port = 389, priority = 10, weight = 5 }, { service = "xmpp", protocol = "udp", domain = "other.test" }], txt = [{ name = "info.pxe.test", value = "lab network" }] }
dnsmasq = { options = ["dhcp-option=option:ntp-server,192.168.80.1", "log-dhcp"] }
[[networks.pxe.ip]]
address = "192.168.80.1/24"
tftp_root = "/srv/tftp"
dhcp.ranges = [{ start = "192.168.80.100", end = "192.168.80.199" }]
dhcp.bootp = { file = "pxelinux.0", server = "192.168.80.2" }
dhcp.lease = "12h"
dhcp.hosts = [{ mac = "52:54:00:00:80:10", name = "web", ip = "192.168.80.10", lease = "5m" }, { mac = "52:54:00:00:80:11", ip = "192.168.80.11", lease = "infinite" }]
[[networks.pxe.ip]]
address = "fd00:80::1/64"
dhcp.ranges = [{ start = "fd00:80::100", end = "fd00:80::1ff" }]
dhcp.hosts = [{ name = "web", ip = "fd00:80::10", lease = "5m" }, { duid = "00:01:00:01:2c:3d:4e:5f:52:54:00:00:80:12", ip = "fd00:80::12" }]
"#,
        );
    }

    /// A reservation more or less is a SIGHUP only if the configuration
    /// file stays the same: nothing in it may count the hosts.
    #[test]
    fn a_new_static_host_changes_the_hosts_files_only() {
        let one = r#"
[networks.n]
mode = "nat"
[[networks.n.ip]]
address = "192.168.90.1/24"
dhcp.ranges = [{ start = "192.168.90.100", end = "192.168.90.199" }]
dhcp.hosts = [{ mac = "52:54:00:00:90:10", ip = "192.168.90.10", name = "a" }]
"#;
        let two = one.replace(
            "name = \"a\" }]",
            "name = \"a\" }, { mac = \"52:54:00:00:90:11\", ip = \"192.168.90.11\", name = \"b\" }]",
        );
        let (before, after) = (
            render_case(one).unwrap().unwrap(),
            render_case(&two).unwrap().unwrap(),
        );
        assert_eq!(before.conf, after.conf);
        assert_ne!(before.hosts, after.hosts);
        assert_ne!(before.addn_hosts, after.addn_hosts);
        let static_only = |hosts: &str| {
            format!("[networks.s]\nmode = \"nat\"\n[[networks.s.ip]]\naddress = \"192.168.91.1/24\"\ndhcp.hosts = [{hosts}]\n")
        };
        let a = "{ mac = \"52:54:00:00:91:10\", ip = \"192.168.91.10\" }";
        let b = "{ mac = \"52:54:00:00:91:11\", ip = \"192.168.91.11\" }";
        assert_eq!(
            render_case(&static_only(a)).unwrap().unwrap().conf,
            render_case(&static_only(&format!("{a}, {b}")))
                .unwrap()
                .unwrap()
                .conf
        );
    }

    /// SRV and TXT names reach dnsmasq's configuration too: the same guard.
    #[test]
    fn srv_and_txt_names_that_could_start_a_directive_are_refused() {
        for dns in [
            r#"srv = [{ service = "ldap", protocol = "tcp", target = "a,b" }]"#,
            r#"srv = [{ service = "ldap", protocol = "tcp", domain = "x\nport=0" }]"#,
            r#"txt = [{ name = "a\nport=0", value = "v" }]"#,
        ] {
            let text = format!("[networks.n]\nmode = \"nat\"\ndns = {{ {dns} }}\n[[networks.n.ip]]\naddress = \"192.168.1.1/24\"\n");
            assert!(render_case(&text).is_err(), "{dns}");
        }
    }

    #[test]
    fn reverse_zones_of_octet_and_nibble_prefixes() {
        let zone = |s: &str| reverse_zone(s.parse().unwrap());
        assert_eq!(zone("192.168.70.1/24"), "70.168.192.in-addr.arpa");
        assert_eq!(zone("10.1.2.3/8"), "10.in-addr.arpa");
        assert_eq!(
            zone("fd00:70::1/64"),
            "0.0.0.0.0.0.0.0.0.7.0.0.0.0.d.f.ip6.arpa"
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
