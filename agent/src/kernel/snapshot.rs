//! Observation: one dump per object type, decoded into plain comparable data.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::{
    address::{AddressAttribute, AddressFlags, AddressMessage},
    link::{InfoBridge, InfoData, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteVia},
    AddressFamily,
};
use rtnetlink::RouteMessageBuilder;

use super::error::{KernelError, Result};
use super::Netlink;

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFLA_INFO_KIND: "bridge", "veth", "dummy"...; `None` for devices
    /// without rtnl link ops (physical NICs, `lo`).
    pub kind: Option<String>,
    /// Administrative state (IFF_UP), not carrier.
    pub admin_up: bool,
    pub mtu: u32,
    /// IFLA_ADDRESS when it is 6 bytes long (Ethernet-like devices; `lo`
    /// reports all zeros); `None` for devices without one or with another
    /// length (tunnels).
    pub mac: Option<[u8; 6]>,
    /// Index of the bridge (or bond...) this link is enslaved to.
    pub master: Option<u32>,
    /// IFLA_IFALIAS: kvmnet marks the links it owns with `kvmnet:<network>`.
    pub alias: Option<String>,
    /// Present for bridges only.
    pub bridge: Option<BridgeAttrs>,
    /// Present for VXLAN devices only.
    pub vxlan: Option<VxlanAttrs>,
    /// IFLA_GROUP (0 is the default group).
    pub group: u32,
}

/// The bridge attributes kvmnet manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeAttrs {
    /// STP enabled (IFLA_BR_STP_STATE != 0, kernel or user-space STP).
    pub stp: bool,
    /// IFLA_BR_FORWARD_DELAY in centiseconds (USER_HZ clock ticks), the unit
    /// the kernel reports and accepts: 2 s is 200.
    pub forward_delay_cs: u32,
}

impl BridgeAttrs {
    /// The attributes the kernel ends up with when asked for `self`.
    ///
    /// While STP is on the kernel keeps the forward delay within 2..=30 s: it
    /// clamps the delay when STP starts (br_stp_start) and refuses (ERANGE) an
    /// out-of-range change while STP runs. "STP on, delay 0" (the libvirt and
    /// kvmnet default) therefore reads back as a 2 s delay. Compare observed
    /// attributes with `wanted.effective()`, or such a bridge would look
    /// drifted on every pass.
    pub fn effective(self) -> Self {
        let forward_delay_cs = if self.stp {
            self.forward_delay_cs
                .clamp(*STP_FORWARD_DELAY_CS.start(), *STP_FORWARD_DELAY_CS.end())
        } else {
            self.forward_delay_cs
        };
        Self {
            forward_delay_cs,
            ..self
        }
    }
}

/// The VXLAN attributes kvmnet manages (IFLA_VXLAN_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanAttrs {
    /// IFLA_VXLAN_ID, the VNI.
    pub vni: u32,
    /// IFLA_VXLAN_PORT, the UDP destination port (the kernel's default 8472
    /// when created without one).
    pub port: u16,
    /// IFLA_VXLAN_LOCAL or LOCAL6: the source address of the tunnel.
    pub local: Option<IpAddr>,
    /// IFLA_VXLAN_LINK: index of the underlay device.
    pub dev: Option<u32>,
    /// IFLA_VXLAN_LEARNING: remote MACs are learnt from the data plane.
    pub learning: bool,
}

/// A forwarding entry of a VXLAN device that sends frames for `mac` to the
/// remote tunnel endpoint `dst` (`bridge fdb ... dev vx0 dst 10.0.0.2
/// self`). The all-zeros MAC is the default entry: broadcast, unknown
/// unicast and multicast go to every such `dst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub index: u32,
    pub mac: [u8; 6],
    pub dst: IpAddr,
}

/// Forward delays the kernel accepts while STP is on
/// (BR_MIN_FORWARD_DELAY..=BR_MAX_FORWARD_DELAY: 2 s..=30 s), in centiseconds.
pub(super) const STP_FORWARD_DELAY_CS: std::ops::RangeInclusive<u32> = 200..=3000;

/// An interface address (IPv4 or IPv6, link-local included). Serializable:
/// a bridged network's LAN addresses are kept in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Address {
    pub index: u32,
    pub address: IpAddr,
    pub prefix_len: u8,
    /// IFA_PROTO (Linux >= 6.1): who installed the address; kvmnet uses
    /// [`super::RTPROT_KVMNET`]. `None` when the kernel did not report one.
    pub protocol: Option<u8>,
    /// IFA_F_PERMANENT: configured statically, not learned from DHCP or RA
    /// (those have lifetimes).
    pub permanent: bool,
    /// All IFA_F_* flags (noprefixroute, nodad...), to copy an address exactly
    /// when it moves between links (mode bridge).
    pub flags: u32,
    /// IFA_BROADCAST (IPv4), when set: `ip address add` sets none unless told.
    pub broadcast: Option<Ipv4Addr>,
}

/// A route of any table, IPv4 or IPv6 (serializable like [`Address`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Route {
    /// Routing table id (254 is main, 255 local).
    pub table: u32,
    /// Destination in network form (host bits zero); 0.0.0.0/0 or ::/0 for
    /// a default route.
    pub destination: IpNet,
    /// RTA_GATEWAY, or RTA_VIA for an IPv4 route via an IPv6 next hop.
    /// `None` for on-link and multipath routes (kvmnet creates neither
    /// multipath nor nexthop-object routes, so their next hops are not
    /// decoded).
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// rtm_protocol: 2 kernel, 3 boot, 4 static, 16 dhcp, 72 kvmnet...
    pub protocol: u8,
    /// RTA_PRIORITY; 0 when absent (IPv4 default). The kernel gives IPv6
    /// routes added without a metric 1024.
    pub metric: u32,
    /// rtm_scope: 0 universe, 253 link, 254 host.
    pub scope: u8,
    /// rtm_type: 1 unicast, 2 local, 3 broadcast, 6 blackhole...
    pub kind: u8,
}

/// Everything observed in one pass, in kernel dump order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
    /// Forwarding entries with a remote endpoint (those of VXLAN devices).
    pub fdb: Vec<FdbEntry>,
}

impl Snapshot {
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn link_by_index(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }

    pub fn addresses_of(&self, index: u32) -> impl Iterator<Item = &Address> {
        self.addresses.iter().filter(move |a| a.index == index)
    }

    /// The remote endpoints of `index`'s all-zeros (default) forwarding
    /// entries: where its broadcast and unknown unicast go.
    pub fn flood_remotes_of(&self, index: u32) -> impl Iterator<Item = IpAddr> + '_ {
        self.fdb
            .iter()
            .filter(move |e| e.index == index && e.mac == [0; 6])
            .map(|e| e.dst)
    }
}

impl Netlink {
    /// Observes links, addresses, routes (IPv4 and IPv6) and the forwarding
    /// entries of VXLAN devices: five dumps, one
    /// per object type and family, run concurrently, each on its own socket.
    /// A netlink socket runs one dump at a time (the kernel answers a dump
    /// request with EBUSY while another is unfinished); on one socket
    /// netlink-proto mostly avoids that by draining a dump before sending the
    /// next request, which serialises them, and does not guarantee it for
    /// dumps too large to drain in one poll. No per-object request is made.
    ///
    /// The dumps are not one atomic view: an object changed while they run
    /// may be seen in one and not the other (e.g. an address of a link
    /// created mid-snapshot). The next pass sees a consistent state again.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        // Overlapping snapshots would start a second dump on a busy socket.
        let _serial = self.dump_lock.lock().await;
        let links = async {
            self.sockets
                .links
                .link()
                .get()
                .execute()
                .map_ok(|m| parse_link(&m))
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| KernelError::netlink("dump links", e))
        };
        let addresses = async {
            self.sockets
                .addresses
                .address()
                .get()
                .execute()
                .try_filter_map(|m| async move { Ok(parse_address(&m)) })
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| KernelError::netlink("dump addresses", e))
        };
        let routes_v4 = async {
            let request = RouteMessageBuilder::<Ipv4Addr>::new().build();
            self.sockets
                .routes_v4
                .route()
                .get(request)
                .execute()
                .try_filter_map(|m| async move { Ok(parse_route(&m)) })
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| KernelError::netlink("dump IPv4 routes", e))
        };
        let routes_v6 = async {
            let request = RouteMessageBuilder::<Ipv6Addr>::new().build();
            self.sockets
                .routes_v6
                .route()
                .get(request)
                .execute()
                .try_filter_map(|m| async move { Ok(parse_route(&m)) })
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| KernelError::netlink("dump IPv6 routes", e))
        };
        let fdb = async {
            self.sockets
                .neighbours
                .neighbours()
                .get()
                .set_address_family(AddressFamily::Bridge)
                .execute()
                .try_filter_map(|m| async move { Ok(parse_fdb_remote(&m)) })
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| KernelError::netlink("dump bridge forwarding entries", e))
        };
        let (links, addresses, mut routes, routes_v6, fdb) =
            futures_util::try_join!(links, addresses, routes_v4, routes_v6, fdb)?;
        routes.extend(routes_v6);
        Ok(Snapshot {
            links,
            addresses,
            routes,
            fdb,
        })
    }
}

fn parse_link(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        mtu: 0,
        mac: None,
        master: None,
        alias: None,
        bridge: None,
        vxlan: None,
        group: 0,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(mac) => link.mac = <[u8; 6]>::try_from(mac.as_slice()).ok(),
            LinkAttribute::Controller(master) => link.master = Some(*master),
            LinkAttribute::IfAlias(alias) => link.alias = Some(alias.clone()),
            LinkAttribute::Group(group) => link.group = *group,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(kind) => link.kind = Some(kind.to_string()),
                        LinkInfo::Data(InfoData::Bridge(attrs)) => {
                            link.bridge = Some(parse_bridge(attrs))
                        }
                        LinkInfo::Data(InfoData::Vxlan(attrs)) => {
                            link.vxlan = Some(parse_vxlan(attrs))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn parse_bridge(attrs: &[InfoBridge]) -> BridgeAttrs {
    let mut bridge = BridgeAttrs {
        stp: false,
        forward_delay_cs: 0,
    };
    for attr in attrs {
        match attr {
            InfoBridge::StpState(state) => bridge.stp = u32::from(*state) != 0,
            InfoBridge::ForwardDelay(delay) => bridge.forward_delay_cs = *delay,
            _ => {}
        }
    }
    bridge
}

fn parse_vxlan(attrs: &[InfoVxlan]) -> VxlanAttrs {
    let mut vxlan = VxlanAttrs {
        vni: 0,
        port: 0,
        local: None,
        dev: None,
        learning: false,
    };
    for attr in attrs {
        match attr {
            InfoVxlan::Id(vni) => vxlan.vni = *vni,
            InfoVxlan::Port(port) => vxlan.port = *port,
            InfoVxlan::Local(ip) => vxlan.local = Some(IpAddr::V4(*ip)),
            InfoVxlan::Local6(ip) => vxlan.local = Some(IpAddr::V6(*ip)),
            InfoVxlan::Link(index) => vxlan.dev = Some(*index).filter(|&i| i != 0),
            InfoVxlan::Learning(on) => vxlan.learning = *on,
            _ => {}
        }
    }
    vxlan
}

/// A forwarding entry with a remote endpoint (NDA_DST); `None` for the
/// bridges' own entries, which have none.
fn parse_fdb_remote(msg: &NeighbourMessage) -> Option<FdbEntry> {
    let mut mac = None;
    let mut dst = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(lladdr) => {
                mac = <[u8; 6]>::try_from(lladdr.as_slice()).ok()
            }
            NeighbourAttribute::Destination(address) => dst = remote_address(address),
            _ => {}
        }
    }
    Some(FdbEntry {
        index: msg.header.ifindex,
        mac: mac?,
        dst: dst?,
    })
}

/// NDA_DST of a bridge forwarding entry: 4 or 16 bytes, which the decoder
/// leaves undecoded since the message's family (AF_BRIDGE) is not an IP one.
fn remote_address(address: &NeighbourAddress) -> Option<IpAddr> {
    match address {
        NeighbourAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        NeighbourAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(bytes.as_slice())
                .ok()
                .map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

/// Returns `None` for messages without an address (none seen in practice).
fn parse_address(msg: &AddressMessage) -> Option<Address> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
    // point-to-point links and equal to IFA_LOCAL otherwise. IPv6 sends
    // IFA_LOCAL only for point-to-point addresses. Same rule as iproute2.
    let mut local = None;
    let mut address = None;
    let mut protocol = None;
    let mut broadcast = None;
    // IFA_FLAGS (32 bits) supersedes the 8-bit header field when present.
    let mut flags = u32::from(msg.header.flags.bits());
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Protocol(p) => protocol = Some(u8::from(*p)),
            AddressAttribute::Flags(f) => flags = f.bits(),
            AddressAttribute::Broadcast(ip) => broadcast = Some(*ip),
            _ => {}
        }
    }
    Some(Address {
        index: msg.header.index,
        address: local.or(address)?,
        prefix_len: msg.header.prefix_len,
        protocol,
        permanent: AddressFlags::from_bits_retain(flags).contains(AddressFlags::Permanent),
        flags,
        broadcast,
    })
}

/// Returns `None` for routes of other families (the dump requests one family,
/// so none are expected) and for invalid prefixes.
fn parse_route(msg: &RouteMessage) -> Option<Route> {
    let header = &msg.header;
    let unspecified = match header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut destination = unspecified;
    let mut route = Route {
        table: u32::from(header.table),
        destination: IpNet::new(unspecified, 0).ok()?,
        gateway: None,
        oif: None,
        protocol: header.protocol.into(),
        metric: 0,
        scope: header.scope.into(),
        kind: header.kind.into(),
    };
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(addr) => destination = route_address(addr)?,
            RouteAttribute::Gateway(addr) => route.gateway = route_address(addr),
            RouteAttribute::Via(RouteVia::Inet(ip)) => route.gateway = Some(IpAddr::V4(*ip)),
            RouteAttribute::Via(RouteVia::Inet6(ip)) => route.gateway = Some(IpAddr::V6(*ip)),
            RouteAttribute::Oif(oif) => route.oif = Some(*oif),
            RouteAttribute::Priority(metric) => route.metric = *metric,
            // rtm_table is 8 bits; RTA_TABLE carries the full id (always sent
            // by current kernels, needed for tables > 255).
            RouteAttribute::Table(table) => route.table = *table,
            _ => {}
        }
    }
    route.destination = IpNet::new(destination, header.destination_prefix_length)
        .ok()?
        .trunc();
    Some(route)
}

fn route_address(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}
