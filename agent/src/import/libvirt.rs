//! libvirt's network XML (`virsh net-dumpxml`) to a kvmnet network, pure.
//!
//! Every element and attribute is either carried over exactly, ignored
//! because it is libvirt's bookkeeping (uuid, connections), or refused with
//! its path and the reason; `lossy` turns refusals into warnings and drops
//! what they name. The format is libvirt's formatnetwork documentation.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use roxmltree::{Document, Node};

use crate::config::model::{
    BootpConfig, BridgeConfig, Cidr, DhcpConfig, DhcpHost, DhcpRange, DnsConfig, DnsHost,
    DnsmasqConfig, Forwarder, HumanDuration, IpConfig, LeaseTime, MacAddr, Mode, NatConfig,
    Network, PortRange, Proto, SrvRecord, StaticRoute, TxtRecord,
};

/// The namespace of `<dnsmasq:options>`.
const DNSMASQ_NS: &str = "http://libvirt.org/schemas/network/dnsmasq/1.0";

/// Something that cannot be carried over exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Where, as an XPath: `/network/forward[@mode='hostdev']`.
    pub path: String,
    pub why: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.why)
    }
}

/// One converted network.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub name: String,
    pub network: Network,
    /// What `lossy` dropped.
    pub dropped: Vec<Refusal>,
}

/// Converts one `<network>` document. Without `lossy`, any refusal fails
/// the whole network, and all refusals are returned at once.
pub fn convert(xml: &str, lossy: bool) -> Result<Imported, Vec<Refusal>> {
    let doc = Document::parse(xml).map_err(|e| {
        vec![Refusal {
            path: "/".into(),
            why: format!("not well-formed XML: {e}"),
        }]
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "network" {
        return Err(vec![Refusal {
            path: format!("/{}", root.tag_name().name()),
            why: "not a libvirt network (the root element is not <network>)".into(),
        }]);
    }
    let mut c = Converter::default();
    let network = c.network(root);
    let Some(name) = c.name.clone() else {
        c.refuse("/network/name", "a network needs a name");
        return Err(c.refusals);
    };
    if lossy || c.refusals.is_empty() {
        Ok(Imported {
            name,
            network,
            dropped: c.refusals,
        })
    } else {
        Err(c.refusals)
    }
}

#[derive(Default)]
struct Converter {
    name: Option<String>,
    refusals: Vec<Refusal>,
}

/// The elements of `node`.
fn children<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(Node::is_element)
}

/// `parent/name`, or `parent/name[i]` (1-based) when `node` has same-named
/// siblings, as XPath counts them.
fn path_of(parent: &str, node: Node) -> String {
    let name = node.tag_name().name();
    let same = |n: &Node| n.is_element() && n.tag_name().name() == name;
    let siblings = node
        .parent()
        .map(|p| p.children().filter(same).count())
        .unwrap_or(1);
    if siblings > 1 {
        let index = node.prev_siblings().filter(same).count();
        format!("{parent}/{name}[{index}]")
    } else {
        format!("{parent}/{name}")
    }
}

fn yes_no(value: &str) -> Option<bool> {
    match value {
        "yes" | "on" => Some(true),
        "no" | "off" => Some(false),
        _ => None,
    }
}

impl Converter {
    fn refuse(&mut self, path: &str, why: impl Into<String>) {
        self.refusals.push(Refusal {
            path: path.to_string(),
            why: why.into(),
        });
    }

    /// Refuses every attribute of `node` not in `known`.
    fn only_attrs(&mut self, at: &str, node: Node, known: &[&str]) {
        for attr in node.attributes() {
            if !known.contains(&attr.name()) {
                self.refuse(
                    &format!("{at}/@{}", attr.name()),
                    format!("attribute {} is not supported", attr.name()),
                );
            }
        }
    }

    /// Parses a required attribute.
    fn attr<T: std::str::FromStr>(&mut self, at: &str, node: Node, name: &str) -> Option<T> {
        match node.attribute(name) {
            None => {
                self.refuse(at, format!("attribute {name} is required"));
                None
            }
            Some(text) => self.parse(&format!("{at}/@{name}"), text),
        }
    }

    /// Parses an optional attribute.
    fn opt_attr<T: std::str::FromStr>(&mut self, at: &str, node: Node, name: &str) -> Option<T> {
        let text = node.attribute(name)?;
        self.parse(&format!("{at}/@{name}"), text)
    }

    fn parse<T: std::str::FromStr>(&mut self, at: &str, text: &str) -> Option<T> {
        let parsed = text.trim().parse().ok();
        if parsed.is_none() {
            self.refuse(at, format!("{text:?} is not a valid value here"));
        }
        parsed
    }

    fn flag(&mut self, at: &str, node: Node, name: &str) -> Option<bool> {
        let text = node.attribute(name)?;
        let value = yes_no(text);
        if value.is_none() {
            self.refuse(
                &format!("{at}/@{name}"),
                format!("{text:?} is not yes or no"),
            );
        }
        value
    }

    fn network(&mut self, root: Node) -> Network {
        let at = "/network";
        for attr in root.attributes() {
            match attr.name() {
                // How many guests are attached now: state, not configuration.
                "connections" => {}
                "ipv6" if attr.value() == "no" => {}
                "ipv6" => self.refuse(
                    "/network/@ipv6",
                    "guest-to-guest IPv6 without an IPv6 address is not supported",
                ),
                other => self.refuse(
                    &format!("{at}/@{other}"),
                    format!("attribute {other} is not supported"),
                ),
            }
        }
        self.name = children(root)
            .find(|n| n.has_tag_name("name"))
            .and_then(|n| n.text())
            .map(|t| t.trim().to_string());
        // An unsupported forward mode, dropped (lossy), leaves an isolated
        // network.
        let (mode, uplink, nat) = children(root)
            .find(|n| n.has_tag_name("forward"))
            .and_then(|f| self.forward(f))
            .unwrap_or((Mode::Isolated, None, None));
        let mut network = Network {
            mode,
            bridge: BridgeConfig::default(),
            uplink,
            ip: Vec::new(),
            dns: None,
            nat,
            routes: Vec::new(),
            port_forwards: Vec::new(),
            probe: None,
            overlay: None,
            dnsmasq: None,
        };
        let mut dns = DnsConfig::default();
        let mut dns_set = false;
        for node in children(root) {
            let path = path_of(at, node);
            let tag = node.tag_name();
            if tag.namespace() == Some(DNSMASQ_NS) {
                self.dnsmasq_options(&path, node, &mut network);
                continue;
            }
            match tag.name() {
                // libvirt's identity of its object; kvmnet names networks.
                "name" | "uuid" | "forward" => {}
                "bridge" => self.bridge(&path, node, &mut network),
                "mac" => network.bridge.mac = self.attr::<MacAddr>(&path, node, "address"),
                "mtu" => network.bridge.mtu = self.attr(&path, node, "size"),
                "domain" => {
                    self.only_attrs(&path, node, &["name", "localOnly"]);
                    dns.domain = self.attr(&path, node, "name");
                    dns.local_only = self.flag(&path, node, "localOnly").unwrap_or(false);
                    dns_set = true;
                }
                "dns" => {
                    self.dns(&path, node, &mut dns);
                    dns_set = true;
                }
                "ip" => {
                    if let Some(ip) = self.ip(&path, node) {
                        network.ip.push(ip);
                    }
                }
                "route" => {
                    if let Some(route) = self.route(&path, node) {
                        network.routes.push(route);
                    }
                }
                other => self.refuse(&path, format!("<{other}> is not supported by kvmnet")),
            }
        }
        if network.mode == Mode::Bridge {
            if network.bridge.mac.is_some() {
                self.refuse("/network/mac", "an existing bridge keeps its own MAC");
                network.bridge.mac = None;
            }
        } else if dns_set {
            network.dns = Some(dns);
        }
        network
    }

    /// `<forward>`: mode, uplink and NAT settings.
    fn forward(&mut self, node: Node) -> Option<(Mode, Option<String>, Option<NatConfig>)> {
        let mode_text = node.attribute("mode").unwrap_or("nat");
        let at = format!("/network/forward[@mode='{mode_text}']");
        let mode = match mode_text {
            "nat" => Mode::Nat,
            "route" => Mode::Route,
            "open" => Mode::Open,
            "bridge" => Mode::Bridge,
            other => {
                self.refuse(&at, format!("{other} forwarding is not supported"));
                return None;
            }
        };
        self.only_attrs(&at, node, &["mode", "dev"]);
        let dev = node.attribute("dev").map(str::to_string);
        if dev.is_some() && !matches!(mode, Mode::Nat | Mode::Route) {
            self.refuse(
                &format!("{at}/@dev"),
                format!("forward dev is supported for nat and route, not {mode_text}"),
            );
        }
        let mut nat = None;
        for child in children(node) {
            let path = path_of(&at, child);
            match child.tag_name().name() {
                "nat" if mode == Mode::Nat => nat = Some(self.nat(&path, child)),
                // libvirt lists the dev again as the pool's one interface.
                "interface" if dev.is_some() && child.attribute("dev") == dev.as_deref() => {}
                "interface" if mode == Mode::Bridge => self.refuse(
                    &path,
                    "a pool of host interfaces (macvtap) is not supported: kvmnet bridges",
                ),
                other => self.refuse(&path, format!("<{other}> is not supported here")),
            }
        }
        let uplink = dev.filter(|_| matches!(mode, Mode::Nat | Mode::Route));
        Some((mode, uplink, nat))
    }

    fn nat(&mut self, at: &str, node: Node) -> NatConfig {
        self.only_attrs(at, node, &["ipv6"]);
        let mut nat = NatConfig {
            ipv6: self.flag(at, node, "ipv6").unwrap_or(false),
            ..NatConfig::default()
        };
        for child in children(node) {
            let path = path_of(at, child);
            match child.tag_name().name() {
                "port" => {
                    self.only_attrs(&path, child, &["start", "end"]);
                    if let (Some(start), Some(end)) = (
                        self.attr::<u16>(&path, child, "start"),
                        self.attr::<u16>(&path, child, "end"),
                    ) {
                        nat.ports = PortRange { start, end };
                    }
                }
                "address" => self.refuse(
                    &path,
                    "a range of source addresses for NAT is not supported (kvmnet masquerades)",
                ),
                other => self.refuse(&path, format!("<{other}> is not supported here")),
            }
        }
        nat
    }

    fn bridge(&mut self, at: &str, node: Node, network: &mut Network) {
        self.only_attrs(at, node, &["name", "stp", "delay", "macTableManager"]);
        network.bridge.name = node.attribute("name").map(str::to_string);
        if let Some(stp) = self.flag(at, node, "stp") {
            network.bridge.stp = stp;
        }
        if let Some(secs) = self.opt_attr::<u64>(at, node, "delay") {
            network.bridge.delay = HumanDuration(Duration::from_secs(secs));
        }
        if node
            .attribute("macTableManager")
            .is_some_and(|m| m != "kernel")
        {
            self.refuse(
                &format!("{at}/@macTableManager"),
                "only the kernel's MAC table management is supported",
            );
        }
        if network.mode == Mode::Bridge {
            // An existing bridge of the host: kvmnet only observes it, and
            // libvirt ignores stp and delay for it too.
            network.bridge.managed = false;
            network.bridge.stp = BridgeConfig::default().stp;
            network.bridge.delay = HumanDuration::default();
        }
    }

    fn dns(&mut self, at: &str, node: Node, dns: &mut DnsConfig) {
        self.only_attrs(at, node, &["enable", "forwardPlainNames"]);
        if let Some(enable) = self.flag(at, node, "enable") {
            dns.enable = enable;
        }
        if let Some(plain) = self.flag(at, node, "forwardPlainNames") {
            dns.forward_plain_names = plain;
        }
        for child in children(node) {
            let path = path_of(at, child);
            match child.tag_name().name() {
                "forwarder" => {
                    if let Some(f) = self.forwarder(&path, child) {
                        dns.forwarders.push(f);
                    }
                }
                "host" => {
                    self.only_attrs(&path, child, &["ip"]);
                    let names: Vec<String> = children(child)
                        .filter(|n| n.has_tag_name("hostname"))
                        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
                        .collect();
                    if let Some(ip) = self.attr::<IpAddr>(&path, child, "ip") {
                        dns.hosts.push(DnsHost { ip, names });
                    }
                }
                "srv" => {
                    if let Some(srv) = self.srv(&path, child) {
                        dns.srv.push(srv);
                    }
                }
                "txt" => {
                    self.only_attrs(&path, child, &["name", "value"]);
                    if let (Some(name), Some(value)) = (
                        self.attr::<String>(&path, child, "name"),
                        self.attr::<String>(&path, child, "value"),
                    ) {
                        dns.txt.push(TxtRecord { name, value });
                    }
                }
                other => self.refuse(&path, format!("<{other}> is not supported here")),
            }
        }
    }

    fn forwarder(&mut self, at: &str, node: Node) -> Option<Forwarder> {
        self.only_attrs(at, node, &["addr", "port", "domain"]);
        let addr = self.opt_attr::<IpAddr>(at, node, "addr");
        let port = self.opt_attr::<u16>(at, node, "port");
        let domain = node.attribute("domain").map(str::to_string);
        if addr.is_none() && (port.is_some() || domain.is_none()) {
            self.refuse(at, "a forwarder needs an addr, or a domain alone");
            return None;
        }
        Some(Forwarder { domain, addr, port })
    }

    fn srv(&mut self, at: &str, node: Node) -> Option<SrvRecord> {
        let known = [
            "service", "protocol", "domain", "target", "port", "priority", "weight",
        ];
        self.only_attrs(at, node, &known);
        let protocol = match node.attribute("protocol") {
            Some("tcp") => Proto::Tcp,
            Some("udp") => Proto::Udp,
            other => {
                self.refuse(
                    &format!("{at}/@protocol"),
                    format!("protocol {other:?} is not tcp or udp"),
                );
                return None;
            }
        };
        Some(SrvRecord {
            service: self.attr(at, node, "service")?,
            protocol,
            domain: node.attribute("domain").map(str::to_string),
            target: node.attribute("target").map(str::to_string),
            port: self.opt_attr(at, node, "port"),
            priority: self.opt_attr(at, node, "priority"),
            weight: self.opt_attr(at, node, "weight"),
        })
    }

    /// `<ip>`: address with netmask, prefix or the classful default.
    fn ip(&mut self, at: &str, node: Node) -> Option<IpConfig> {
        let known = ["address", "netmask", "prefix", "family", "localPtr"];
        self.only_attrs(at, node, &known);
        let addr: IpAddr = self.attr(at, node, "address")?;
        let prefix = match (node.attribute("prefix"), node.attribute("netmask")) {
            (Some(_), _) => self.opt_attr::<u8>(at, node, "prefix")?,
            (None, Some(mask)) => match mask.parse::<IpAddr>().ok().and_then(|m| {
                ipnet::ipv4_mask_to_prefix(match m {
                    IpAddr::V4(v4) => v4,
                    IpAddr::V6(_) => return None,
                })
                .ok()
            }) {
                Some(p) => p,
                None => {
                    self.refuse(
                        &format!("{at}/@netmask"),
                        format!("{mask:?} is not an IPv4 netmask"),
                    );
                    return None;
                }
            },
            (None, None) => classful_prefix(addr),
        };
        let Ok(cidr) = IpNet::new(addr, prefix) else {
            self.refuse(at, format!("prefix /{prefix} does not fit {addr}"));
            return None;
        };
        let mut ip = IpConfig {
            address: Cidr(cidr),
            dhcp: None,
            local_ptr: self.flag(at, node, "localPtr").unwrap_or(false),
            tftp_root: None,
        };
        for child in children(node) {
            let path = path_of(at, child);
            match child.tag_name().name() {
                "tftp" => {
                    self.only_attrs(&path, child, &["root"]);
                    ip.tftp_root = self.attr(&path, child, "root");
                }
                "dhcp" => ip.dhcp = Some(self.dhcp(&path, child)),
                other => self.refuse(&path, format!("<{other}> is not supported here")),
            }
        }
        Some(ip)
    }

    fn dhcp(&mut self, at: &str, node: Node) -> DhcpConfig {
        let mut dhcp = DhcpConfig::default();
        let mut range_leases: Vec<(String, Option<LeaseTime>)> = Vec::new();
        for child in children(node) {
            let path = path_of(at, child);
            match child.tag_name().name() {
                "range" => {
                    self.only_attrs(&path, child, &["start", "end"]);
                    let lease = self.lease_child(&path, child);
                    if let (Some(start), Some(end)) = (
                        self.attr::<IpAddr>(&path, child, "start"),
                        self.attr::<IpAddr>(&path, child, "end"),
                    ) {
                        dhcp.ranges.push(DhcpRange { start, end });
                        range_leases.push((path, lease));
                    }
                }
                "host" => {
                    if let Some(host) = self.dhcp_host(&path, child) {
                        dhcp.hosts.push(host);
                    }
                }
                "bootp" => {
                    self.only_attrs(&path, child, &["file", "server"]);
                    if let Some(file) = self.attr(&path, child, "file") {
                        let server = self.opt_attr(&path, child, "server");
                        dhcp.bootp = Some(BootpConfig { file, server });
                    }
                }
                other => self.refuse(&path, format!("<{other}> is not supported here")),
            }
        }
        // kvmnet has one lease time per subnet; libvirt one per range.
        if let Some((_, first)) = range_leases.first() {
            dhcp.lease = *first;
            for (path, lease) in &range_leases[1..] {
                if lease != first {
                    self.refuse(
                        path,
                        "ranges of one subnet with different lease times are not supported",
                    );
                }
            }
        }
        dhcp
    }

    fn dhcp_host(&mut self, at: &str, node: Node) -> Option<DhcpHost> {
        self.only_attrs(at, node, &["mac", "id", "name", "ip"]);
        let duid = match node.attribute("id") {
            Some(id) => Some(self.duid(&format!("{at}/@id"), id)?),
            None => None,
        };
        Some(DhcpHost {
            mac: self.opt_attr(at, node, "mac"),
            duid,
            name: node.attribute("name").map(str::to_string),
            ip: self.attr(at, node, "ip")?,
            lease: self.lease_child(at, node),
        })
    }

    /// libvirt writes DUIDs with octets of one or two hex digits; kvmnet
    /// with two.
    fn duid(&mut self, at: &str, id: &str) -> Option<String> {
        let octets: Option<Vec<String>> = id
            .split(':')
            .map(|o| {
                u8::from_str_radix(o, 16)
                    .ok()
                    .filter(|_| !o.is_empty() && o.len() <= 2)
            })
            .map(|o| o.map(|b| format!("{b:02x}")))
            .collect();
        if octets.is_none() {
            self.refuse(at, format!("{id:?} is not a DUID of hex octets"));
        }
        octets.map(|o| o.join(":"))
    }

    /// `<lease expiry unit>` inside a range or host. dnsmasq raises a lease
    /// under two minutes to two minutes, so that is what guests see under
    /// libvirt, and what kvmnet writes.
    fn lease_child(&mut self, at: &str, node: Node) -> Option<LeaseTime> {
        let lease = children(node).find(|n| n.has_tag_name("lease"))?;
        let at = format!("{at}/lease");
        self.only_attrs(&at, lease, &["expiry", "unit"]);
        let expiry: u64 = self.attr(&at, lease, "expiry")?;
        let unit = match lease.attribute("unit").unwrap_or("minutes") {
            "seconds" => 1,
            "minutes" => 60,
            "hours" => 3600,
            other => {
                self.refuse(
                    &at,
                    format!("unit {other:?} is not seconds, minutes or hours"),
                );
                return None;
            }
        };
        if expiry == 0 {
            return Some(LeaseTime::Infinite);
        }
        let secs = expiry.saturating_mul(unit).max(120);
        Some(LeaseTime::Finite(Duration::from_secs(secs)))
    }

    fn route(&mut self, at: &str, node: Node) -> Option<StaticRoute> {
        let known = [
            "address", "prefix", "netmask", "gateway", "metric", "family",
        ];
        self.only_attrs(at, node, &known);
        let addr: IpAddr = self.attr(at, node, "address")?;
        let prefix = match node.attribute("netmask") {
            Some(mask) => match mask.parse::<std::net::Ipv4Addr>() {
                Ok(m) => ipnet::ipv4_mask_to_prefix(m).ok()?,
                Err(_) => {
                    self.refuse(at, format!("{mask:?} is not an IPv4 netmask"));
                    return None;
                }
            },
            None => self
                .opt_attr(at, node, "prefix")
                .unwrap_or_else(|| classful_prefix(addr)),
        };
        let Ok(to) = IpNet::new(addr, prefix) else {
            self.refuse(at, format!("prefix /{prefix} does not fit {addr}"));
            return None;
        };
        Some(StaticRoute {
            to: Cidr(to),
            via: self.attr(at, node, "gateway")?,
            metric: self.opt_attr(at, node, "metric"),
        })
    }

    fn dnsmasq_options(&mut self, at: &str, node: Node, network: &mut Network) {
        if node.tag_name().name() != "options" {
            self.refuse(at, "only <dnsmasq:options> is supported in this namespace");
            return;
        }
        for child in children(node) {
            let path = path_of(at, child);
            if child.tag_name().name() != "option" {
                self.refuse(&path, "not a dnsmasq:option");
            } else if let Some(value) = self.attr::<String>(&path, child, "value") {
                network
                    .dnsmasq
                    .get_or_insert_with(DnsmasqConfig::default)
                    .options
                    .push(value);
            }
        }
    }
}

/// libvirt's default prefix of an address without netmask or prefix: the
/// IPv4 class (A /8, B /16, C /24), /64 for IPv6.
fn classful_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(v4) => match v4.octets()[0] {
            0..=127 => 8,
            128..=191 => 16,
            _ => 24,
        },
        IpAddr::V6(_) => 64,
    }
}
