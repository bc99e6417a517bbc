//! Validation: everything a careful operator wants caught before it reaches a
//! kernel. All problems are reported at once, each located to line and
//! column; a file with any problem is rejected as a whole.
//!
//! Long on purpose: every rule of the file format stands here, in the order
//! of the format, so that it can be read against docs/configuration.md.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::desired::{DesiredNetwork, DesiredState, RejectedFile};
use crate::config::diagnostic::Diagnostic;
use crate::config::load::{FileLoad, ParsedFile};
use crate::config::locate::{KeyPath, Target};
use crate::config::model::{
    BootpConfig, DhcpConfig, IpConfig, LeaseTime, Mode, Network, OverlayConfig, PortForward,
    PortRange, Proto, SrvRecord, TxtRecord,
};

/// The longest network name: it appears in link aliases, file names and
/// firewall comments.
const MAX_NETWORK_NAME: usize = 64;
/// The kernel's IFNAMSIZ less the terminating NUL.
const MAX_IFNAME: usize = 15;
/// dnsmasq refuses shorter leases.
const MIN_LEASE_SECS: u64 = 120;
/// The kernel's bounds for the STP forward delay.
const MAX_FORWARD_DELAY_SECS: u64 = 30;

impl DesiredState {
    /// Validates loaded files: each file is accepted or rejected as a whole.
    pub fn from_loads(loads: Vec<FileLoad>) -> DesiredState {
        validate(loads)
    }
}

/// Validates loaded files into the desired state.
pub fn validate(loads: Vec<FileLoad>) -> DesiredState {
    let mut rejected = Vec::new();
    let mut accepted = Vec::new();
    for load in loads {
        match load.result {
            Err(diagnostics) => rejected.push(RejectedFile {
                path: load.path,
                diagnostics,
                networks: Vec::new(),
            }),
            Ok(file) => {
                let diagnostics = check_file(&file);
                if diagnostics.is_empty() {
                    accepted.push(file);
                } else {
                    rejected.push(RejectedFile {
                        networks: file.networks.keys().cloned().collect(),
                        path: file.path,
                        diagnostics,
                    });
                }
            }
        }
    }

    let mut conflicts = check_across(&accepted);
    let mut state = DesiredState::default();
    for (i, file) in accepted.into_iter().enumerate() {
        match conflicts.remove(&i) {
            Some(diagnostics) => rejected.push(RejectedFile {
                networks: file.networks.keys().cloned().collect(),
                path: file.path,
                diagnostics,
            }),
            None => {
                for (name, spec) in file.networks {
                    let network = DesiredNetwork::new(&name, &file.path, spec);
                    state.networks.insert(name, network);
                }
            }
        }
    }
    rejected.sort_by(|a, b| a.path.cmp(&b.path));
    state.complete = rejected.is_empty();
    state.rejected = rejected;
    state
}

/// Builds located diagnostics for one file.
struct Reporter<'a> {
    file: &'a ParsedFile,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    fn new(file: &'a ParsedFile) -> Self {
        Reporter {
            file,
            diagnostics: Vec::new(),
        }
    }

    fn error(
        &mut self,
        path: &KeyPath,
        target: Target,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = located(self.file, path, target, message.into());
        self.diagnostics.push(d);
        self.diagnostics.last_mut().expect("just pushed")
    }
}

fn located(file: &ParsedFile, path: &KeyPath, target: Target, message: String) -> Diagnostic {
    let message = format!("{path}: {message}");
    match file.locator.locate(path, target) {
        Some(loc) => Diagnostic::at(&file.path, &file.text, loc, message),
        None => Diagnostic::file_level(&file.path, message),
    }
}

fn position(file: &ParsedFile, path: &KeyPath, target: Target) -> String {
    match file.locator.locate(path, target) {
        Some(l) => format!("{}:{}:{}", file.path.display(), l.line, l.column),
        None => file.path.display().to_string(),
    }
}

fn check_file(file: &ParsedFile) -> Vec<Diagnostic> {
    let mut r = Reporter::new(file);
    for (name, network) in &file.networks {
        check_network(&mut r, name, network);
    }
    r.diagnostics
}

fn check_network(r: &mut Reporter, name: &str, net: &Network) {
    let at = KeyPath::network(name);
    if let Err(why) = check_network_name(name) {
        r.error(
            &at,
            Target::Key,
            format!("invalid network name {name:?}: {why}"),
        )
        .hint("use letters, digits, '-', '_' and '.', starting with a letter or digit");
    }
    check_bridge(r, &at, name, net);
    check_mode_keys(r, &at, net);
    for (i, ip) in net.ip.iter().enumerate() {
        check_ip(r, &at.key("ip").index(i), ip);
    }
    check_ip_set(r, &at, net);
    check_dns(r, &at, net);
    check_routes(r, &at, net);
    for (i, pf) in net.port_forwards.iter().enumerate() {
        check_port_forward(r, &at.key("port_forwards").index(i), net, pf);
    }
    check_forwards_overlap(r, &at, net);
    if let Some(overlay) = &net.overlay {
        check_overlay(r, &at, net, overlay);
    }
    check_dual_stack_hosts(r, &at, net);
    if let Some(dnsmasq) = &net.dnsmasq {
        check_dnsmasq_options(r, &at.key("dnsmasq").key("options"), &dnsmasq.options);
    }
    if let Some(nat) = &net.nat {
        if nat.ipv6 && !net.ip.iter().any(|ip| ip.address.0.addr().is_ipv6()) {
            r.error(
                &at.key("nat").key("ipv6"),
                Target::Value,
                "nat.ipv6 is set but the network has no IPv6 address",
            )
            .hint("add an IPv6 entry to ip[] or remove nat.ipv6");
        }
    }
}

/// Whether `name` is a network name `check_network_name` accepts: it is
/// written into link aliases, file names, firewall comments and dnsmasq's
/// configuration.
pub fn is_safe_network_name(name: &str) -> bool {
    check_network_name(name).is_ok()
}

fn check_network_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_NETWORK_NAME {
        return Err(format!(
            "it is {} bytes long, at most {MAX_NETWORK_NAME} are allowed",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("it must start with a letter or digit".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("it contains {c:?}"));
    }
    Ok(())
}

/// An interface name every consumer takes literally: the kernel
/// (dev_valid_name: at most 15 bytes, not "." or ".."; a '%' would make it a
/// template such as `kv%d`), dnsmasq (`interface=` splits at ',', takes '*'
/// as a wildcard and '"' as a quote) and nft (`iifname "kv*"` is a
/// wildcard). So: letters, digits, '-', '_' and '.' only. Validation,
/// the JSON Schema (`model::IFNAME_PATTERN`) and the renderers of dnsmasq's
/// configuration and of the firewall (a last guard: they refuse, never
/// quote) all apply this one rule.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("it contains {c:?}"));
    }
    if name.len() > MAX_IFNAME {
        return Err(format!(
            "it is {} bytes long, interface names have at most {MAX_IFNAME}",
            name.len()
        ));
    }
    // The last two would collide with /proc/sys/net/ipv6/conf/{all,default}.
    if matches!(name, "." | ".." | "lo" | "all" | "default") {
        return Err(format!("{name:?} is reserved"));
    }
    Ok(())
}

/// Whether `name` is an interface name that is safe everywhere it is
/// written: see `check_ifname`.
pub fn is_safe_ifname(name: &str) -> bool {
    check_ifname(name).is_ok()
}

/// The help of every interface name error.
const IFNAME_HELP: &str = "letters, digits, '-', '_' and '.', at most 15 bytes, like \"virbr-nat\"";

fn check_bridge(r: &mut Reporter, at: &KeyPath, name: &str, net: &Network) {
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

fn check_mode_keys(r: &mut Reporter, at: &KeyPath, net: &Network) {
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

/// The largest VXLAN network identifier (24 bits).
const MAX_VNI: u32 = (1 << 24) - 1;

fn check_overlay(r: &mut Reporter, at: &KeyPath, net: &Network, overlay: &OverlayConfig) {
    let at = at.key("overlay");
    let vxlan = &overlay.vxlan;
    let at_vxlan = at.key("vxlan");
    if net.mode == Mode::Bridge {
        r.error(&at, Target::Key, "mode bridge takes no overlay")
            .hint("an overlay extends a network of mode nat, route, isolated or open to other hosts; a bridged network's guests are on the LAN already");
    }
    if !(1..=MAX_VNI).contains(&vxlan.vni) {
        r.error(
            &at_vxlan.key("vni"),
            Target::Value,
            format!("VNI {} is out of range", vxlan.vni),
        )
        .hint(format!("a VXLAN network identifier from 1 to {MAX_VNI}"));
    }
    if vxlan.port == 0 {
        r.error(&at_vxlan.key("port"), Target::Value, "port 0 is not a port")
            .hint("the peers' UDP port, 4789 by default");
    }
    let at_peers = at_vxlan.key("peers");
    if vxlan.peers.is_empty() {
        r.error(&at_peers, Target::Key, "an overlay needs its peers")
            .hint("list the underlay address of every host of the network, this one included");
    }
    for (i, peer) in vxlan.peers.iter().enumerate() {
        let at_peer = at_peers.index(i);
        if peer.is_unspecified() || peer.is_loopback() || peer.is_multicast() {
            r.error(
                &at_peer,
                Target::Value,
                format!("{peer} cannot be a peer (unspecified, loopback or multicast)"),
            )
            .hint("the unicast underlay address of a host");
        } else if vxlan.peers[..i].contains(peer) {
            r.error(
                &at_peer,
                Target::Value,
                format!("peer {peer} is listed twice"),
            );
        } else if peer.is_ipv6() != vxlan.peers[0].is_ipv6() {
            r.error(
                &at_peer,
                Target::Value,
                format!("peer {peer} is not of the same IP family as {}", vxlan.peers[0]),
            )
            .hint("a VXLAN device tunnels over IPv4 or over IPv6: give every peer's address of one family");
        }
    }
    if let Some(dev) = &vxlan.dev {
        if let Err(why) = check_ifname(dev) {
            r.error(
                &at_vxlan.key("dev"),
                Target::Value,
                format!("invalid underlay interface {dev:?}: {why}"),
            );
        }
    }
    if let Some(mtu) = vxlan.mtu {
        let min = if net.ip.iter().any(|ip| ip.address.0.addr().is_ipv6()) {
            1280
        } else {
            68
        };
        let max = 65535 - vxlan.overhead();
        if !(min..=max).contains(&mtu) {
            r.error(
                &at_vxlan.key("mtu"),
                Target::Value,
                format!("MTU {mtu} is out of range"),
            )
            .hint(format!(
                "an MTU from {min} to {max} (the underlay's MTU less {} bytes of encapsulation)",
                vxlan.overhead()
            ));
        }
        if net.bridge.mtu.is_some_and(|b| b != mtu) {
            r.error(
                &at.key("vxlan").key("mtu"),
                Target::Value,
                format!(
                    "overlay MTU {mtu} differs from bridge.mtu {}",
                    net.bridge.mtu.unwrap_or_default()
                ),
            )
            .hint("the bridge and its VXLAN port have one MTU: set one of the two");
        }
    }
    match overlay.gateway {
        Some(gateway) if !vxlan.peers.contains(&gateway) => {
            r.error(
                &at.key("gateway"),
                Target::Value,
                format!("gateway {gateway} is not one of the peers"),
            )
            .hint("the gateway is the peer holding the network's addresses, NAT and dnsmasq: one of overlay.vxlan.peers");
        }
        Some(_) => {}
        None if !net.ip.is_empty() => {
            r.error(
                &at,
                Target::Key,
                "an overlay with ip addresses needs a gateway",
            )
            .hint("add gateway = \"<peer>\": the one peer that holds the addresses, NAT or routing, port forwards and dnsmasq");
        }
        None => {}
    }
}

/// Whether `addr` is `net`'s network address, or its IPv4 broadcast address.
fn is_network_or_broadcast(net: IpNet, addr: IpAddr) -> bool {
    addr == net.network() || (addr.is_ipv4() && addr == net.broadcast())
}

fn check_ip(r: &mut Reporter, at: &KeyPath, ip: &IpConfig) {
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

fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn example_host(subnet: IpNet) -> IpNet {
    let first = subnet.hosts().next().unwrap_or(subnet.addr());
    IpNet::new(first, subnet.prefix_len()).expect("prefix of an existing net")
}

/// Checks that `addr` is a usable host address of `cidr`'s subnet.
fn check_in_subnet(r: &mut Reporter, at: &KeyPath, what: &str, addr: IpAddr, cidr: IpNet) -> bool {
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

fn check_dhcp(r: &mut Reporter, at: &KeyPath, cidr: IpNet, dhcp: &DhcpConfig) {
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
fn check_lease(r: &mut Reporter, at: &KeyPath, lease: Option<LeaseTime>) {
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

fn check_bootp(r: &mut Reporter, at: &KeyPath, cidr: IpNet, bootp: &BootpConfig) {
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
fn check_duid(duid: &str) -> Result<(), String> {
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
fn check_dual_stack_hosts(r: &mut Reporter, at: &KeyPath, net: &Network) {
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

/// Options kvmnet writes itself, or that would change how the agent runs
/// dnsmasq: `dnsmasq.options` may not set them.
const OWNED_DNSMASQ_OPTIONS: &[&str] = &[
    "addn-hosts",
    "bind-dynamic",
    "bind-interfaces",
    "conf-dir",
    "conf-file",
    "dhcp-authoritative",
    "dhcp-boot",
    "dhcp-host",
    "dhcp-hostsfile",
    "dhcp-lease-max",
    "dhcp-leasefile",
    "dhcp-no-override",
    "dhcp-range",
    "domain",
    "domain-needed",
    "enable-ra",
    "enable-tftp",
    "except-interface",
    "expand-hosts",
    "group",
    "interface",
    "keep-in-foreground",
    "listen-address",
    "local",
    "log-facility",
    "no-daemon",
    "no-resolv",
    "pid-file",
    "port",
    "ra-param",
    "resolv-file",
    "server",
    "servers-file",
    "srv-host",
    "strict-order",
    "tftp-root",
    "txt-record",
    "user",
];

fn check_dnsmasq_options(r: &mut Reporter, at: &KeyPath, options: &[String]) {
    for (i, option) in options.iter().enumerate() {
        let name = option.split('=').next().unwrap_or_default().trim();
        let name = name.strip_prefix("--").unwrap_or(name);
        if option.chars().any(char::is_control) {
            r.error(
                &at.index(i),
                Target::Value,
                "a dnsmasq option is one line without control characters",
            );
        } else if name.is_empty() || name.starts_with('#') {
            r.error(&at.index(i), Target::Value, "an option needs a name");
        } else if OWNED_DNSMASQ_OPTIONS.contains(&name) {
            r.error(
                &at.index(i),
                Target::Value,
                format!("{name} is set by kvmnet from the network's keys"),
            )
            .hint("use the network's own keys (docs/configuration.md)");
        }
    }
}

/// Whether `name` is a DNS name `check_hostname` accepts: nothing in it can
/// end a dnsmasq directive or hosts line (no ',', '/', '#', space or newline).
pub fn is_safe_dns_name(name: &str) -> bool {
    check_hostname(name).is_ok()
}

/// A DNS name: dot-separated labels of letters, digits and inner hyphens.
fn check_hostname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a DNS name has 1 to 253 characters".into());
    }
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label has 1 to 63 characters".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("it contains {c:?}"));
        }
    }
    Ok(())
}

/// Rules about the set of a network's addresses.
fn check_ip_set(r: &mut Reporter, at: &KeyPath, net: &Network) {
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

fn subnets_overlap(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_dns(r: &mut Reporter, at: &KeyPath, net: &Network) {
    let Some(dns) = &net.dns else { return };
    let at = at.key("dns");
    let records = !dns.hosts.is_empty() || !dns.srv.is_empty() || !dns.txt.is_empty();
    if !dns.enable && (dns.domain.is_some() || !dns.forwarders.is_empty() || records) {
        r.error(
            &at.key("enable"),
            Target::Value,
            "DNS is disabled, so domain, forwarders, hosts, srv and txt would have no effect",
        )
        .hint("remove them, or set enable = true");
    }
    if let Some(domain) = &dns.domain {
        if let Err(why) = check_hostname(domain) {
            r.error(
                &at.key("domain"),
                Target::Value,
                format!("invalid domain {domain:?}: {why}"),
            );
        }
    }
    for (i, fwd) in dns.forwarders.iter().enumerate() {
        if let Some(addr) = fwd.addr.filter(|a| a.is_unspecified() || a.is_multicast()) {
            r.error(
                &at.key("forwarders").index(i),
                Target::Value,
                format!("{addr} cannot be a DNS server"),
            );
        }
        if fwd.port == Some(0) {
            r.error(
                &at.key("forwarders").index(i),
                Target::Value,
                "port 0 is not a port",
            );
        }
        if let Some(domain) = &fwd.domain {
            if let Err(why) = check_hostname(domain) {
                r.error(
                    &at.key("forwarders").index(i),
                    Target::Value,
                    format!("invalid domain {domain:?}: {why}"),
                );
            }
        }
    }
    for (i, host) in dns.hosts.iter().enumerate() {
        let hat = at.key("hosts").index(i);
        if host.ip.is_unspecified() || host.ip.is_multicast() {
            r.error(
                &hat.key("ip"),
                Target::Value,
                format!("{} cannot be a host's address", host.ip),
            );
        }
        if host.names.is_empty() {
            r.error(
                &hat.key("names"),
                Target::Value,
                "a DNS host needs at least one name",
            );
        }
        for (j, name) in host.names.iter().enumerate() {
            if let Err(why) = check_hostname(name) {
                r.error(
                    &hat.key("names").index(j),
                    Target::Value,
                    format!("invalid host name {name:?}: {why}"),
                );
            }
        }
    }
    for (i, srv) in dns.srv.iter().enumerate() {
        check_srv(r, &at.key("srv").index(i), srv);
    }
    for (i, txt) in dns.txt.iter().enumerate() {
        check_txt(r, &at.key("txt").index(i), txt);
    }
}

fn check_srv(r: &mut Reporter, at: &KeyPath, srv: &SrvRecord) {
    let service_ok = !srv.service.is_empty()
        && srv.service.len() <= 63
        && srv
            .service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !service_ok {
        r.error(
            &at.key("service"),
            Target::Value,
            format!(
                "invalid service {:?}: 1 to 63 letters, digits and '-', without the leading '_'",
                srv.service
            ),
        );
    }
    for (key, name) in [("domain", &srv.domain), ("target", &srv.target)] {
        let Some(name) = name.as_deref().filter(|n| *n != ".") else {
            continue;
        };
        if let Err(why) = check_hostname(name) {
            r.error(
                &at.key(key),
                Target::Value,
                format!("invalid {key} {name:?}: {why}"),
            );
        }
    }
    let needs = [
        ("port", srv.port.is_some(), "target", srv.target.is_some()),
        (
            "priority",
            srv.priority.is_some(),
            "port",
            srv.port.is_some(),
        ),
        (
            "weight",
            srv.weight.is_some(),
            "priority",
            srv.priority.is_some(),
        ),
    ];
    for (key, set, needed, has) in needs {
        if set && !has {
            r.error(
                &at.key(key),
                Target::Key,
                format!("an SRV record's {key} needs its {needed}"),
            );
        }
    }
}

fn check_txt(r: &mut Reporter, at: &KeyPath, txt: &TxtRecord) {
    if let Err(why) = check_hostname(&txt.name) {
        r.error(
            &at.key("name"),
            Target::Value,
            format!("invalid name {:?}: {why}", txt.name),
        );
    }
    if txt.value.contains(['"', '\\']) || txt.value.chars().any(char::is_control) {
        r.error(
            &at.key("value"),
            Target::Value,
            "a TXT value is printable text without double quotes or backslashes",
        );
    }
}

fn check_routes(r: &mut Reporter, at: &KeyPath, net: &Network) {
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

fn check_port_forward(r: &mut Reporter, at: &KeyPath, net: &Network, pf: &PortForward) {
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
fn check_forwards_overlap(r: &mut Reporter, at: &KeyPath, net: &Network) {
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

/// One thing a network claims that no other network may claim too.
enum Claim {
    Bridge(String),
    Subnet(IpNet),
    Uplink(String),
    /// An uplink a bridge-mode network enslaves: no other network can use it.
    Enslaved(String),
    /// An overlay's VNI on its UDP port: the kernel takes each pair once.
    Vni {
        vni: u32,
        port: u16,
    },
    Forward {
        proto: Proto,
        ipv4: bool,
        ports: PortRange,
        from: Option<IpNet>,
    },
}

struct Claimed<'a> {
    file: usize,
    network: &'a str,
    path: KeyPath,
    claim: Claim,
}

fn claims<'a>(file: usize, name: &'a str, net: &Network) -> Vec<Claimed<'a>> {
    let at = KeyPath::network(name);
    let mut out = Vec::new();
    let mut push = |path: KeyPath, claim| {
        out.push(Claimed {
            file,
            network: name,
            path,
            claim,
        })
    };
    let bridge = net
        .bridge
        .name
        .clone()
        .unwrap_or_else(|| crate::config::desired::default_bridge_name(name));
    push(at.key("bridge").key("name"), Claim::Bridge(bridge));
    if let Some(uplink) = &net.uplink {
        let claim = if net.mode == Mode::Bridge {
            Claim::Enslaved(uplink.clone())
        } else {
            Claim::Uplink(uplink.clone())
        };
        push(at.key("uplink"), claim);
    }
    for (i, ip) in net.ip.iter().enumerate() {
        push(
            at.key("ip").index(i).key("address"),
            Claim::Subnet(ip.address.0.trunc()),
        );
    }
    for (i, route) in net.routes.iter().enumerate() {
        push(
            at.key("routes").index(i).key("to"),
            Claim::Subnet(route.to.0.trunc()),
        );
    }
    if let Some(overlay) = &net.overlay {
        push(
            at.key("overlay").key("vxlan").key("vni"),
            Claim::Vni {
                vni: overlay.vxlan.vni,
                port: overlay.vxlan.port,
            },
        );
    }
    for (i, pf) in net.port_forwards.iter().enumerate() {
        push(
            at.key("port_forwards").index(i).key("port"),
            Claim::Forward {
                proto: pf.proto,
                ipv4: pf.to.addr.is_ipv4(),
                ports: pf.port,
                from: pf.from.map(|c| c.0.trunc()),
            },
        );
    }
    out
}

/// Why two claims of different networks conflict, if they do.
fn conflict(a: &Claimed, b: &Claimed) -> Option<String> {
    match (&a.claim, &b.claim) {
        (Claim::Bridge(x), Claim::Bridge(y)) if x == y => Some(format!(
            "bridge {x:?} is used by network {:?} too",
            a.network
        )),
        (Claim::Uplink(x) | Claim::Enslaved(x), Claim::Bridge(y))
        | (Claim::Bridge(y), Claim::Uplink(x) | Claim::Enslaved(x))
            if x == y =>
        {
            Some(format!(
                "{x:?} is network {:?}'s bridge and the other's uplink",
                a.network
            ))
        }
        (Claim::Enslaved(x), Claim::Uplink(y) | Claim::Enslaved(y))
        | (Claim::Uplink(y), Claim::Enslaved(x))
            if x == y =>
        {
            Some(format!("{x:?} is enslaved into a bridge by network {:?}, so it cannot serve another network", a.network))
        }
        (Claim::Vni { vni: x, port: p }, Claim::Vni { vni: y, port: q }) if x == y && p == q => {
            Some(format!(
                "VNI {y} on port {q} is network {:?}'s overlay too",
                a.network
            ))
        }
        (Claim::Subnet(x), Claim::Subnet(y)) if subnets_overlap(*x, *y) => {
            Some(format!("{y} overlaps {x} of network {:?}", a.network))
        }
        (
            Claim::Forward {
                proto: p1,
                ipv4: v1,
                ports: r1,
                from: f1,
            },
            Claim::Forward {
                proto: p2,
                ipv4: v2,
                ports: r2,
                from: f2,
            },
        ) if p1 == p2 && v1 == v2 && r1.overlaps(*r2) && froms_overlap(*f1, *f2) => Some(format!(
            "{p2} port {r2} is forwarded by network {:?} too ({p1} {r1})",
            a.network
        )),
        _ => None,
    }
}

fn froms_overlap(a: Option<IpNet>, b: Option<IpNet>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => subnets_overlap(a, b),
        _ => true,
    }
}

/// Rules between networks (also of different files): duplicate names, and
/// bridges, uplinks, subnets and forwarded ports claimed twice. Every file
/// involved in a conflict gets a diagnostic.
fn check_across(files: &[ParsedFile]) -> BTreeMap<usize, Vec<Diagnostic>> {
    let mut out: BTreeMap<usize, Vec<Diagnostic>> = BTreeMap::new();
    let mut first_definition: HashMap<&str, usize> = HashMap::new();
    let mut all = Vec::new();
    for (i, file) in files.iter().enumerate() {
        for (name, net) in &file.networks {
            if let Some(&j) = first_definition.get(name.as_str()) {
                let here = KeyPath::network(name);
                for (k, other) in [(i, j), (j, i)] {
                    let d = located(
                        &files[k],
                        &here,
                        Target::Key,
                        format!("network {name:?} is defined in two files"),
                    )
                    .with_note(format!(
                        "also defined at {}",
                        position(&files[other], &here, Target::Key)
                    ));
                    out.entry(k).or_default().push(d);
                }
                continue;
            }
            first_definition.insert(name, i);
            all.extend(claims(i, name, net));
        }
    }
    for (bi, b) in all.iter().enumerate() {
        for a in &all[..bi] {
            if a.network == b.network {
                continue;
            }
            if let Some(why) = conflict(a, b) {
                let d = located(&files[b.file], &b.path, Target::Value, why).with_note(format!(
                    "network {:?} claims it at {}",
                    a.network,
                    position(&files[a.file], &a.path, Target::Value)
                ));
                out.entry(b.file).or_default().push(d);
                if let Some(why_a) = conflict(b, a) {
                    let d =
                        located(&files[a.file], &a.path, Target::Value, why_a).with_note(format!(
                            "network {:?} claims it at {}",
                            b.network,
                            position(&files[b.file], &b.path, Target::Value)
                        ));
                    out.entry(a.file).or_default().push(d);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::parse_bytes;
    use std::path::Path;

    fn state(files: &[(&str, &str)]) -> DesiredState {
        let loads = files
            .iter()
            .map(|(name, text)| FileLoad {
                path: Path::new(name).to_path_buf(),
                result: parse_bytes(Path::new(name), text.as_bytes(), None),
            })
            .collect();
        validate(loads)
    }

    fn errors(text: &str) -> Vec<String> {
        state(&[("n.toml", text)])
            .diagnostics()
            .map(|d| format!("{}: {}", d.position(), d.message))
            .collect()
    }

    const NAT: &str = "[networks.n]\nmode = \"nat\"\n[[networks.n.ip]]\naddress = \"192.168.10.1/24\"\ndhcp.ranges = [{ start = \"192.168.10.2\", end = \"192.168.10.254\" }]\n";

    #[test]
    fn probe_and_move_dynamic_need_a_bridged_uplink() {
        let e = errors("[networks.n]\nmode = \"bridge\"\nbridge.move_dynamic = true\nprobe = { target = \"fd00::1\", timeout = \"0s\" }\n");
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].contains("probe applies to mode bridge with an uplink, this network is mode bridge without uplink"), "{e:?}");
        assert!(
            e[1].contains("move_dynamic applies to mode bridge with an uplink"),
            "{e:?}"
        );
        assert!(e[2].contains("must be an IPv4 address"), "{e:?}");
        assert!(e[3].contains("probe timeout 0s is out of range"), "{e:?}");
        let ok = errors("[networks.n]\nmode = \"bridge\"\nuplink = \"eno1\"\nbridge.move_dynamic = true\nprobe = { target = \"10.0.0.1\", timeout = \"500ms\" }\n");
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn unmanaged_bridges_are_existing_bridged_ones() {
        let e = errors("[networks.n]\nmode = \"nat\"\nbridge.managed = false\n[[networks.n.ip]]\naddress = \"192.168.10.1/24\"\n");
        assert!(
            e[0].contains("bridge.managed = false needs mode bridge, this network is mode nat"),
            "{e:?}"
        );
        let e = errors("[networks.n]\nmode = \"bridge\"\nbridge.managed = false\n");
        assert!(e[0].contains("needs bridge.name"), "{e:?}");
        let e = errors("[networks.n]\nmode = \"bridge\"\nuplink = \"eno1\"\nbridge = { name = \"br0\", managed = false }\nprobe.enable = false\n");
        assert!(e[0].contains("not to one it only observes"), "{e:?}");
        let ok = errors("[networks.n]\nmode = \"bridge\"\nuplink = \"eno1\"\nbridge = { name = \"br0\", managed = false }\n");
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn valid_network_resolves_defaults() {
        let s = state(&[("n.toml", NAT)]);
        assert!(s.rejected.is_empty(), "{:?}", s.rejected);
        let n = &s.networks["n"];
        assert_eq!(n.bridge, "kv-n");
        assert!(n.spec.bridge.stp);
    }

    #[test]
    fn range_outside_subnet_is_located() {
        let errs = errors(&NAT.replace("\"192.168.10.254\"", "\"192.168.11.254\""));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("n.toml:5:"), "{errs:?}");
        assert!(
            errs[0].contains("outside the subnet 192.168.10.0/24"),
            "{errs:?}"
        );
    }

    #[test]
    fn all_errors_at_once() {
        let text = NAT
            .replace("\"192.168.10.254\"", "\"192.168.10.1\"")
            .replace(
                "mode = \"nat\"",
                "mode = \"nat\"\nbridge.mtu = 20\nuplink = \"this-name-is-way-too-long\"",
            );
        let errs = errors(&text);
        assert!(errs.len() >= 3, "{errs:?}");
    }

    #[test]
    fn duplicate_name_across_files_names_both() {
        let s = state(&[("a.toml", NAT), ("b.toml", NAT)]);
        assert!(s.networks.is_empty());
        assert_eq!(s.rejected.len(), 2);
        let text: Vec<String> = s.diagnostics().map(|d| d.to_string()).collect();
        assert!(
            text[0].contains("a.toml:1:") && text[0].contains("b.toml:1:"),
            "{text:?}"
        );
    }

    #[test]
    fn overlapping_subnets_between_networks() {
        let other = NAT
            .replace("networks.n", "networks.m")
            .replace("192.168.10.1/24", "192.168.10.129/25")
            .replace("\"192.168.10.2\"", "\"192.168.10.130\"");
        let s = state(&[("a.toml", NAT), ("b.toml", &other)]);
        let text: Vec<String> = s.diagnostics().map(|d| d.to_string()).collect();
        assert!(
            text.iter().any(|t| t.contains("overlaps 192.168.10.0/24")),
            "{text:?}"
        );
        assert!(s.networks.is_empty());
    }

    #[test]
    fn a_broken_file_does_not_reject_the_others() {
        let other = NAT
            .replace("networks.n", "networks.m")
            .replace("192.168.10.", "192.168.20.");
        let s = state(&[
            ("a.toml", "[networks.x]\nmode = \"nta\"\n"),
            ("b.toml", &other),
        ]);
        assert_eq!(s.rejected.len(), 1);
        assert!(s.networks.contains_key("m"));
    }
}
