//! The desired-state model: what a network file says, typed.
//!
//! Serde reads it from TOML and YAML alike; schemars derives the JSON Schema
//! users point their editors at. Every struct refuses unknown keys, so a typo
//! is an error at its own line instead of a silently ignored setting.
//!
//! Long on purpose: the whole file format in one place, each key with the
//! description the JSON Schema shows.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// The interface names `validate::check_ifname` accepts (but for the
/// reserved lo, all and default): 1 to 15 of letters, digits, '-', '_' and
/// '.', not "." or "..". Without lookahead, which not every JSON Schema
/// validator's regex engine has.
pub const IFNAME_PATTERN: &str = r"^(?:[-A-Za-z0-9_][-A-Za-z0-9_.]{0,14}|\.[-A-Za-z0-9_][-A-Za-z0-9_.]{0,13}|\.\.[-A-Za-z0-9_.]{1,13})$";

/// One desired-state file: a map of network name to network.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "kvmnet networks file")]
pub struct NetworksFile {
    /// The networks this file defines, by name: 1 to 64 letters, digits,
    /// `-`, `_` and `.`, starting with a letter or digit.
    #[serde(default)]
    #[schemars(extend("propertyNames" = { "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$" }))]
    pub networks: BTreeMap<String, Network>,
}

/// One virtual network.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// How guests reach the world: nat, route, isolated, open or bridge.
    pub mode: Mode,
    /// The bridge guests attach to.
    #[serde(default)]
    pub bridge: BridgeConfig,
    /// Host device: forwarding and NAT are restricted to it (nat, route); it is
    /// enslaved into the bridge (bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(IFNAME_PATTERN))]
    pub uplink: Option<String>,
    /// Addresses of the bridge, one subnet each, with optional DHCP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip: Vec<IpConfig>,
    /// The network's DNS service (dnsmasq).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsConfig>,
    /// NAT settings (mode nat only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<NatConfig>,
    /// Static routes to subnets behind a guest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<StaticRoute>,
    /// Ports of the host forwarded to guests (mode nat only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_forwards: Vec<PortForward>,
    /// The connectivity check after the uplink's addresses moved onto the
    /// bridge (mode bridge with uplink); it failing rolls the move back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeConfig>,
    /// Extends the network's layer 2 to other hosts (modes nat, route,
    /// isolated, open): the same file on every host of the overlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<OverlayConfig>,
    /// Settings of the network's dnsmasq that kvmnet does not model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnsmasq: Option<DnsmasqConfig>,
}

/// The escape hatch to dnsmasq, like libvirt's `<dnsmasq:options>`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsmasqConfig {
    /// Raw dnsmasq configuration lines ("option" or "option=value"),
    /// appended to the generated configuration. Unsupported territory: kvmnet
    /// neither checks what they do nor reports their drift beyond a restart.
    /// Options kvmnet sets itself are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A network spanning several hosts: a VXLAN device on each host's bridge,
/// layer 3 (addresses, NAT or routing, port forwards, dnsmasq) on one of them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverlayConfig {
    /// The VXLAN tunnel between the hosts.
    pub vxlan: VxlanConfig,
    /// The peer that holds the network's addresses, its NAT or routing, its
    /// port forwards and its dnsmasq; the other peers only extend layer 2.
    /// Required when the network has ip addresses.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_ip"
    )]
    pub gateway: Option<IpAddr>,
}

/// A VXLAN overlay with head-end replication to a static list of peers.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VxlanConfig {
    /// The VXLAN network identifier, 1 to 16777215, the same on every peer.
    pub vni: u32,
    /// The underlay addresses of every host of the network, this one
    /// included: each host finds itself as the address it holds.
    #[serde(deserialize_with = "de_ips")]
    #[schemars(with = "Vec<String>")]
    pub peers: Vec<IpAddr>,
    /// UDP port of the tunnel (default 4789, IANA's VXLAN port).
    #[serde(default = "default_vxlan_port")]
    pub port: u16,
    /// The underlay interface. Default: the interface holding this host's
    /// peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// MTU of the overlay (VXLAN device and bridge, announced by DHCP).
    /// Default: the underlay's MTU minus the encapsulation (50 bytes over
    /// IPv4, 70 over IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// IANA's VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

fn default_vxlan_port() -> u16 {
    VXLAN_PORT
}

impl VxlanConfig {
    /// Bytes VXLAN adds to each frame: outer IP, UDP, VXLAN and inner
    /// Ethernet headers.
    pub fn overhead(&self) -> u32 {
        if self.peers.iter().any(IpAddr::is_ipv6) {
            70
        } else {
            50
        }
    }
}

fn de_ips<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    #[derive(Deserialize)]
    struct Ip(#[serde(deserialize_with = "de_ip")] IpAddr);
    Ok(Vec::<Ip>::deserialize(d)?
        .into_iter()
        .map(|ip| ip.0)
        .collect())
}

/// Connectivity probe of a bridged network: an ARP request from the bridge
/// that must be answered.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Probe at all (default true). Without a probe a move that cut the host
    /// off is not rolled back.
    #[serde(default = "default_true")]
    pub enable: bool,
    /// IPv4 address that must answer ARP. Default: the uplink's IPv4 default
    /// gateway (no gateway: no probe).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_ip"
    )]
    pub target: Option<IpAddr>,
    /// How long to wait for the answer (default 2s). With STP on, the
    /// bridge's listening and learning time (twice the forward delay) is
    /// added, since the bridge forwards nothing before.
    #[serde(default = "default_probe_timeout")]
    pub timeout: HumanDuration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            enable: true,
            target: None,
            timeout: default_probe_timeout(),
        }
    }
}

fn default_probe_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}

fn de_opt_ip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    de_ip(d).map(Some)
}

/// The forwarding mode of a network (libvirt's `<forward mode=...>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Guests reach out through the host's address (masquerade); nothing reaches in.
    Nat,
    /// Guests' subnet is routed by the host, no NAT.
    Route,
    /// Guests talk to each other and to the host only.
    Isolated,
    /// A bridge with an address and DHCP, and no firewall rules at all.
    Open,
    /// Guests sit on the host's LAN through a bridge enslaving the uplink.
    Bridge,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::Route => "route",
            Mode::Isolated => "isolated",
            Mode::Open => "open",
            Mode::Bridge => "bridge",
        }
    }

    /// Whether the host forwards packets for this network (needs ip_forward).
    pub fn forwards(self) -> bool {
        matches!(self, Mode::Nat | Mode::Route)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bridge of a network.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Interface name: letters, digits, '-', '_' and '.', at most 15 bytes.
    /// Default: derived from the network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(IFNAME_PATTERN))]
    pub name: Option<String>,
    /// Spanning tree protocol.
    #[serde(default = "default_true")]
    pub stp: bool,
    /// STP forward delay (e.g. "2s"), at most 30s. With STP on the kernel
    /// holds it between 2s and 30s, so "0s" means 2s there.
    #[serde(default)]
    pub delay: HumanDuration,
    /// MTU of the bridge (and the MTU DHCP announces): 68 to 65535, at
    /// least 1280 when the network has an IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<u32>,
    /// MAC address of the bridge. Default: derived from the network name;
    /// the uplink's (mode bridge with uplink), so that the LAN's DHCP leases
    /// and ARP caches stay valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Mode bridge with uplink: move the uplink's dynamic addresses too (from
    /// a DHCP client or router advertisements). Off by default: their client
    /// keeps renewing them on the uplink, so they are refused.
    #[serde(default, skip_serializing_if = "is_false")]
    pub move_dynamic: bool,
    /// false: the bridge exists already, made by NetworkManager,
    /// systemd-networkd or by hand (mode bridge only, bridge.name required).
    /// kvmnet only observes and reports it (exists, up, the uplink one of its
    /// ports) and never changes it. Default true.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub managed: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            name: None,
            stp: true,
            delay: HumanDuration::default(),
            mtu: None,
            mac: None,
            move_dynamic: false,
            managed: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// One address of the bridge and its subnet.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpConfig {
    /// The bridge's address with the subnet's prefix length, e.g. "192.168.10.1/24".
    pub address: Cidr,
    /// DHCP service on this subnet. An IPv6 subnet without it still gets
    /// router advertisements: guests configure addresses by SLAAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<DhcpConfig>,
    /// Answer reverse (PTR) queries for this subnet locally, never forwarding
    /// them (libvirt's localPtr). The prefix must end on an octet (IPv4) or a
    /// nibble (IPv6).
    #[serde(default, skip_serializing_if = "is_false")]
    pub local_ptr: bool,
    /// Serve this directory by TFTP on this subnet's address (IPv4 only),
    /// e.g. for PXE boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tftp_root: Option<String>,
}

/// DHCP on one subnet.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DhcpConfig {
    /// Address ranges handed out dynamically.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<DhcpRange>,
    /// Static reservations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<DhcpHost>,
    /// Lease time ("1h", "infinite"). Default: dnsmasq's (1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseTime>,
    /// Release leases the files no longer give their client (its
    /// reservation moved, its address is reserved for another client, or it
    /// lies outside every range) in the running dnsmasq, so that the
    /// client's next DHCP exchange gets the right address. false: report
    /// them as drift only. Default true.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub release_stale: bool,
    /// The boot file DHCP offers (PXE), IPv4 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootp: Option<BootpConfig>,
}

impl Default for DhcpConfig {
    fn default() -> DhcpConfig {
        DhcpConfig {
            ranges: Vec::new(),
            hosts: Vec::new(),
            lease: None,
            release_stale: true,
            bootp: None,
        }
    }
}

/// The boot file of a PXE boot and the server that serves it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BootpConfig {
    /// File name, e.g. "pxelinux.0".
    pub file: String,
    /// TFTP server of the file. Default: this host (the subnet's address).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_ip"
    )]
    pub server: Option<IpAddr>,
}

/// A range of addresses, both ends included.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DhcpRange {
    /// First address handed out, inside the subnet.
    #[serde(deserialize_with = "de_ip")]
    #[schemars(schema_with = "ip_schema")]
    pub start: IpAddr,
    /// Last address handed out (included), not below start.
    #[serde(deserialize_with = "de_ip")]
    #[schemars(schema_with = "ip_schema")]
    pub end: IpAddr,
}

/// A static DHCP reservation, matched by MAC (IPv4), DUID (IPv6) or name.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DhcpHost {
    /// The guest's MAC address (IPv4 reservations match on it). Quote it in
    /// YAML: unquoted, 52:54:00:12:34:56 is a number in YAML 1.1 tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// DHCPv6 client DUID, hex octets separated by colons, e.g.
    /// "00:01:00:01:2c:3d:4e:5f:52:54:00:00:50:10" (IPv6 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duid: Option<String>,
    /// The guest's host name: matched against the name a client sends
    /// (IPv6 reservations need it or a DUID) and served by the network's DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The reserved address, inside the subnet.
    #[serde(deserialize_with = "de_ip")]
    #[schemars(schema_with = "ip_schema")]
    pub ip: IpAddr,
    /// Lease time of this host. Default: the subnet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseTime>,
}

/// The DNS service of a network.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Serve DNS on the bridge (default true). DHCP keeps working without it.
    #[serde(default = "default_true")]
    pub enable: bool,
    /// Local domain: guests' names resolve as NAME.DOMAIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Queries in the domain that no guest or host of the network answers
    /// get NXDOMAIN instead of being forwarded upstream (default true;
    /// libvirt's default is false).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub local_only: bool,
    /// Forward names without a dot upstream (default true). false is
    /// dnsmasq's domain-needed (libvirt's forwardPlainNames='no').
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub forward_plain_names: bool,
    /// Upstream servers: "IP", "IP#PORT", "/DOMAIN/IP" for one domain, or
    /// "/DOMAIN/#" to send that domain to the default servers (dnsmasq's
    /// syntax). Servers for every domain replace the host's resolv.conf;
    /// per-domain ones are added to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarders: Vec<Forwarder>,
    /// Extra names served by this network's DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<DnsHost>,
    /// SRV records served by this network's DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub srv: Vec<SrvRecord>,
    /// TXT records served by this network's DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub txt: Vec<TxtRecord>,
}

/// An SRV record: `_SERVICE._PROTOCOL[.DOMAIN]` pointing at a target.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SrvRecord {
    /// Service name without the underscore, e.g. "ldap".
    pub service: String,
    /// tcp or udp.
    pub protocol: Proto,
    /// Domain of the record. Default: the network's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Host providing the service; "." says the service is not offered.
    /// Without it, the record says so too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Port of the service (needs a target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Priority, lower first (needs a port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// Weight among equal priorities (needs a priority).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
}

/// A TXT record.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TxtRecord {
    /// The DNS name the record is served for.
    pub name: String,
    /// Printable text without double quotes or backslashes.
    pub value: String,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            enable: true,
            domain: None,
            local_only: true,
            forward_plain_names: true,
            forwarders: Vec::new(),
            hosts: Vec::new(),
            srv: Vec::new(),
            txt: Vec::new(),
        }
    }
}

/// A DNS record set: names resolving to one address.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsHost {
    /// The address the names resolve to.
    #[serde(deserialize_with = "de_ip")]
    #[schemars(schema_with = "ip_schema")]
    pub ip: IpAddr,
    /// Host names resolving to ip, at least one.
    #[schemars(length(min = 1))]
    pub names: Vec<String>,
}

/// NAT settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatConfig {
    /// Source ports used for masqueraded TCP/UDP (default 1024-65535).
    #[serde(default = "default_nat_ports")]
    pub ports: PortRange,
    /// Masquerade IPv6 too (default: IPv6 subnets are routed).
    #[serde(default)]
    pub ipv6: bool,
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig {
            ports: default_nat_ports(),
            ipv6: false,
        }
    }
}

fn default_nat_ports() -> PortRange {
    PortRange {
        start: 1024,
        end: 65535,
    }
}

/// A static route to a subnet behind a guest.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticRoute {
    /// Destination subnet, e.g. "10.20.0.0/16".
    pub to: Cidr,
    /// The guest that routes it, inside one of the network's subnets.
    #[serde(deserialize_with = "de_ip")]
    #[schemars(schema_with = "ip_schema")]
    pub via: IpAddr,
    /// Route metric (lower is preferred). Default: 0 (IPv4), 1024 (IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// A port of the host forwarded to a guest.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    /// tcp or udp.
    pub proto: Proto,
    /// Port or range on the host: 8080 or "8000-8010".
    pub port: PortRange,
    /// Guest address and optional port: "192.168.10.10", "192.168.10.10:80".
    pub to: ForwardTarget,
    /// Only connections from this subnet are forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Cidr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

/// Deserializes a keyword enum from a string only. Serde's derived enum
/// also takes maps and sequences (externally tagged variants), and then says
/// things like "expected a YAML tag" or "unit variant" about a typo'd mode.
macro_rules! keyword_enum {
    ($ty:ty, $expecting:literal, $($word:literal => $variant:expr),+) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                const WORDS: &[&str] = &[$($word),+];
                let text = de_str(d, $expecting)?;
                match text.as_str() {
                    $($word => Ok($variant),)+
                    other => Err(de::Error::unknown_variant(other, WORDS)),
                }
            }
        }
    };
}

keyword_enum!(Mode, "one of nat, route, isolated, open, bridge",
    "nat" => Mode::Nat, "route" => Mode::Route, "isolated" => Mode::Isolated,
    "open" => Mode::Open, "bridge" => Mode::Bridge);
keyword_enum!(Proto, "tcp or udp", "tcp" => Proto::Tcp, "udp" => Proto::Udp);

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// Reads a string, saying what it should hold when the value is of another
/// type (serde alone would say "expected a string").
fn de_str<'de, D: Deserializer<'de>>(d: D, expecting: &'static str) -> Result<String, D::Error> {
    struct Visitor(&'static str);
    impl de::Visitor<'_> for Visitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_str(Visitor(expecting))
}

/// Deserializes an IP address with a message that says what is expected.
fn de_ip<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    let text = de_str(d, "an IP address like \"192.168.10.2\" or \"fd00::2\"")?;
    text.parse().map_err(|_| {
        de::Error::custom(format!(
            "invalid IP address {text:?}: expected an IPv4 or IPv6 address like \"192.168.10.2\" or \"fd00::2\""
        ))
    })
}

/// Regular expressions of the schema's patterns (ECMA-262, as editors run
/// them), as macros so that `concat!` can build patterns from them. They
/// refuse what is clearly not an address (`abc`, `192.168.10`, `300.1.1.1`);
/// the agent's parser remains the judge of the finer points of IPv6.
macro_rules! ipv4_re {
    () => {
        r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    };
}
macro_rules! ipv6_re {
    () => {
        concat!(
            r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|",
            ipv4_re!(),
            ")"
        )
    };
}
/// humantime's units, longest first within each unit.
macro_rules! duration_re {
    () => {
        r"\s*(?:[0-9]+(?:\.[0-9]+)?\s*(?:nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y)\s*)+"
    };
}

/// The schema of an IP address field (`deserialize_with = "de_ip"`).
fn ip_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "description": "An IPv4 or IPv6 address, e.g. 192.168.10.2 or fd00::2",
        "pattern": concat!("^(?:", ipv4_re!(), "|", ipv6_re!(), ")$")
    })
}

/// Implements string (de)serialization through `FromStr`/`Display`, and a
/// JSON Schema of type string with a description.
macro_rules! string_type {
    ($ty:ty, $name:literal, $description:literal, $expecting:literal $(, $pattern:expr)?) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = de_str(d, $expecting)?;
                text.parse().map_err(de::Error::custom)
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                #[allow(unused_mut)]
                let mut schema = json_schema!({ "type": "string", "description": $description });
                $(schema.insert("pattern".into(), $pattern.into());)?
                schema
            }
        }
    };
}

/// An address with its prefix length, in CIDR form ("192.168.10.1/24").
/// Host bits are kept: for `ip[].address` they are the bridge's own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Cidr).map_err(|_| {
            if s.parse::<IpAddr>().is_ok() {
                format!("{s:?} has no prefix length: expected CIDR form like \"{s}/24\"")
            } else {
                format!(
                    "invalid CIDR {s:?}: expected an address and prefix length like \"192.168.10.1/24\" or \"fd00::1/64\""
                )
            }
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_type!(
    Cidr,
    "Cidr",
    "An IPv4 or IPv6 address with prefix length, e.g. 192.168.10.1/24",
    "an address with prefix length like \"192.168.10.1/24\"",
    concat!(
        "^(?:",
        ipv4_re!(),
        "/(?:3[0-2]|[12]?[0-9])|",
        ipv6_re!(),
        "/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))$"
    )
);

/// A MAC address, written as six colon-separated hex octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_zero(self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid MAC address {s:?}: expected six hex octets like \"52:54:00:f4:6a:43\"")
        };
        let mut octets = [0u8; 6];
        let mut parts = s.split(':');
        for octet in &mut octets {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(octets))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

string_type!(
    MacAddr,
    "MacAddr",
    "A MAC address, e.g. 52:54:00:f4:6a:43",
    "a MAC address like \"52:54:00:f4:6a:43\"",
    "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"
);

/// A duration in humantime form ("0s", "2s", "1h 30m").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s)
            .map(HumanDuration)
            .map_err(|_| format!("invalid duration {s:?}: expected a number and a unit like \"2s\", \"500ms\" or \"1h 30m\" (units: ms, s, m, h, d)"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

string_type!(
    HumanDuration,
    "Duration",
    "A duration such as 2s, 500ms or 1h 30m",
    "a duration like \"2s\"",
    concat!("^", duration_re!(), "$")
);

/// A DHCP lease time: a duration or "infinite".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseTime {
    Infinite,
    Finite(Duration),
}

impl FromStr for LeaseTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "infinite" {
            return Ok(LeaseTime::Infinite);
        }
        humantime::parse_duration(s).map(LeaseTime::Finite).map_err(|_| {
            format!("invalid lease time {s:?}: expected a duration like \"1h\" or \"12h\" (units: m, h, d), or \"infinite\"")
        })
    }
}

impl fmt::Display for LeaseTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseTime::Infinite => f.write_str("infinite"),
            LeaseTime::Finite(d) => humantime::format_duration(*d).fmt(f),
        }
    }
}

string_type!(
    LeaseTime,
    "LeaseTime",
    "A lease time such as 1h or 12h, or infinite",
    "a lease time like \"1h\" or \"infinite\"",
    concat!("^(?:infinite|", duration_re!(), ")$")
);

/// An upstream DNS server in dnsmasq's `server=` syntax: `IP`, `IP#PORT`,
/// `/DOMAIN/IP[#PORT]` for one domain only, or `/DOMAIN/#` for one domain
/// sent to the default servers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Forwarder {
    pub domain: Option<String>,
    /// None: the default servers (`#`), only with a domain.
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
}

impl FromStr for Forwarder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid DNS forwarder {s:?}: expected \"IP\", \"IP#PORT\", \"/DOMAIN/IP\" or \"/DOMAIN/#\" like \"9.9.9.9\" or \"/corp.example/10.0.0.53\""
            )
        };
        let (domain, server) = match s.strip_prefix('/') {
            Some(rest) => {
                let (domain, server) = rest.split_once('/').ok_or_else(bad)?;
                if domain.is_empty() {
                    return Err(bad());
                }
                (Some(domain.to_string()), server)
            }
            None => (None, s),
        };
        if server == "#" && domain.is_some() {
            return Ok(Forwarder {
                domain,
                addr: None,
                port: None,
            });
        }
        let (addr, port) = match server.split_once('#') {
            Some((addr, port)) => (addr, Some(port.parse().map_err(|_| bad())?)),
            None => (server, None),
        };
        Ok(Forwarder {
            domain,
            addr: Some(addr.parse().map_err(|_| bad())?),
            port,
        })
    }
}

impl fmt::Display for Forwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(domain) = &self.domain {
            write!(f, "/{domain}/")?;
        }
        match self.addr {
            Some(addr) => write!(f, "{addr}")?,
            None => f.write_str("#")?,
        }
        if let Some(port) = self.port {
            write!(f, "#{port}")?;
        }
        Ok(())
    }
}

string_type!(
    Forwarder,
    "Forwarder",
    "An upstream DNS server: IP, IP#PORT, /DOMAIN/IP or /DOMAIN/#",
    "a DNS server like \"9.9.9.9\"",
    concat!(
        "^(?:/[^/]+/#|(?:/[^/]+/)?(?:",
        ipv4_re!(),
        "|",
        ipv6_re!(),
        ")(?:#[0-9]{1,5})?)$"
    )
);

/// Where a forwarded port goes: a guest address and optional port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ForwardTarget {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

impl FromStr for ForwardTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid forward target {s:?}: expected \"IP\" or \"IP:PORT\" like \"192.168.10.10:80\" (IPv6: \"[fd00::10]:80\")"
            )
        };
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(ForwardTarget { addr, port: None });
        }
        let socket: std::net::SocketAddr = s.parse().map_err(|_| bad())?;
        if socket.port() == 0 {
            return Err(format!(
                "invalid forward target {s:?}: port 0 is not a port"
            ));
        }
        Ok(ForwardTarget {
            addr: socket.ip(),
            port: Some(socket.port()),
        })
    }
}

impl fmt::Display for ForwardTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.addr, self.port) {
            (addr, None) => write!(f, "{addr}"),
            (IpAddr::V6(addr), Some(port)) => write!(f, "[{addr}]:{port}"),
            (IpAddr::V4(addr), Some(port)) => write!(f, "{addr}:{port}"),
        }
    }
}

string_type!(
    ForwardTarget,
    "ForwardTarget",
    "A guest address with optional port: 192.168.10.10 or 192.168.10.10:80",
    "a guest address like \"192.168.10.10:80\"",
    concat!(
        "^(?:",
        ipv4_re!(),
        "(?::[0-9]{1,5})?|",
        ipv6_re!(),
        "|\\[",
        ipv6_re!(),
        "\\]:[0-9]{1,5})$"
    )
);

/// A port or an inclusive port range. Written as `8080`, `"8080"` or `"8000-8010"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    /// How many ports the range holds (never 0: a range has start <= end).
    pub fn count(self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    pub fn overlaps(self, other: PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

const PORT_RANGE_EXPECTED: &str = "expected a port 1-65535 or a range like \"8000-8010\"";

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let port = |p: &str| -> Result<u16, String> {
            match p.trim().parse::<u16>() {
                Ok(0) | Err(_) => Err(format!("invalid port {s:?}: {PORT_RANGE_EXPECTED}")),
                Ok(n) => Ok(n),
            }
        };
        let (start, end) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        if start > end {
            return Err(format!(
                "port range {s:?} is reversed: expected the lower port first, like \"{end}-{start}\""
            ));
        }
        Ok(PortRange { start, end })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port 1-65535 or a range like \"8000-8010\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortRange, E> {
                match u16::try_from(v) {
                    Ok(p) if p > 0 => Ok(PortRange { start: p, end: p }),
                    _ => Err(E::custom(format!(
                        "invalid port {v}: {PORT_RANGE_EXPECTED}"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortRange, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl JsonSchema for PortRange {
    fn schema_name() -> Cow<'static, str> {
        "PortRange".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A port (8080) or an inclusive range (\"8000-8010\")",
            "oneOf": [
                { "type": "integer", "minimum": 1, "maximum": 65535 },
                { "type": "string", "pattern": "^[0-9]{1,5}(-[0-9]{1,5})?$" }
            ]
        })
    }
}

/// The JSON Schema of a networks file, as checked in at `schema/kvmnet.schema.json`.
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(NetworksFile);
    // Where the package installs it: editors resolve the modeline's
    // file:///usr/share/kvmnet/kvmnet.schema.json to this.
    schema.insert(
        "$id".into(),
        "file:///usr/share/kvmnet/kvmnet.schema.json".into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip_and_errors() {
        let mac: MacAddr = "52:54:00:F4:6a:43".parse().unwrap();
        assert_eq!(mac.to_string(), "52:54:00:f4:6a:43");
        for bad in [
            "",
            "52:54:00:f4:6a",
            "52:54:00:f4:6a:43:01",
            "5:54:00:f4:6a:43",
            "zz:54:00:f4:6a:43",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn port_range_forms() {
        assert_eq!(
            "80".parse::<PortRange>().unwrap(),
            PortRange { start: 80, end: 80 }
        );
        assert_eq!("1024-65535".parse::<PortRange>().unwrap().count(), 64512);
        assert!("0".parse::<PortRange>().is_err());
        assert!("65536".parse::<PortRange>().is_err());
        assert!("90-80"
            .parse::<PortRange>()
            .unwrap_err()
            .contains("reversed"));
    }

    #[test]
    fn forwarder_forms() {
        let f: Forwarder = "/corp.example/10.0.0.53#5353".parse().unwrap();
        assert_eq!(f.domain.as_deref(), Some("corp.example"));
        assert_eq!(f.port, Some(5353));
        assert_eq!(f.to_string(), "/corp.example/10.0.0.53#5353");
        assert!("//1.1.1.1".parse::<Forwarder>().is_err());
        let default: Forwarder = "/lan.example/#".parse().unwrap();
        assert_eq!(default.addr, None);
        assert_eq!(default.to_string(), "/lan.example/#");
        assert!("#".parse::<Forwarder>().is_err());
        assert!("dns.google".parse::<Forwarder>().is_err());
    }

    #[test]
    fn forward_target_forms() {
        let t: ForwardTarget = "[fd00::10]:80".parse().unwrap();
        assert_eq!(t.port, Some(80));
        assert_eq!(t.to_string(), "[fd00::10]:80");
        assert_eq!("192.168.10.10".parse::<ForwardTarget>().unwrap().port, None);
        assert!("192.168.10.10:0".parse::<ForwardTarget>().is_err());
    }

    #[test]
    fn lease_and_durations() {
        assert_eq!(
            "infinite".parse::<LeaseTime>().unwrap(),
            LeaseTime::Infinite
        );
        assert_eq!(
            "1h".parse::<LeaseTime>().unwrap(),
            LeaseTime::Finite(Duration::from_secs(3600))
        );
        assert_eq!(
            "2s".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(2)
        );
        assert!("2 parsecs".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn cidr_messages_say_what_is_expected() {
        assert!("192.168.10.1"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("no prefix length"));
        assert!("192.168.10.1/33"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("CIDR"));
    }
}
