//! Writes: each kernel request counts one write in `Netlink::writes`.
//!
//! Link changes are sent as RTM_NEWLINK without NLM_F_CREATE (what
//! `ip link set` does, rtnetlink's `LinkHandle::change`): unlike RTM_SETLINK,
//! it also applies IFLA_LINKINFO data (the bridge attributes).
//!
//! Longer than most: one function per kind of kernel request, each naming
//! its operation for errors.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::{StreamExt, TryStreamExt};
use ipnet::IpNet;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
};
use rtnetlink::packet_route::{
    address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressProtocol},
    link::{BridgeStpState, InfoKind, LinkAttribute, LinkMessage},
    neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
    },
    route::{RouteMessage, RouteProtocol, RouteScope, RouteType},
    AddressFamily, RouteNetlinkMessage,
};
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVxlan,
    RouteMessageBuilder,
};

use super::error::{KernelError, Result};
use super::snapshot::STP_FORWARD_DELAY_CS;
use super::{BridgeAttrs, Link, Netlink, RTPROT_KVMNET};

/// A link named for error messages: "virbr-nat (index 7)".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRef<'a> {
    pub index: u32,
    pub name: &'a str,
}

impl fmt::Display for LinkRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (index {})", self.name, self.index)
    }
}

impl<'a> From<&'a Link> for LinkRef<'a> {
    fn from(link: &'a Link) -> Self {
        LinkRef {
            index: link.index,
            name: &link.name,
        }
    }
}

/// Settings of a bridge to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSettings {
    pub stp: bool,
    /// Centiseconds, as in [`BridgeAttrs::forward_delay_cs`].
    pub forward_delay_cs: u32,
    /// `None`: the kernel's default (1500, then the minimum of the ports').
    pub mtu: Option<u32>,
    /// `None`: a random address chosen by the kernel.
    pub mac: Option<[u8; 6]>,
}

/// Settings of a VXLAN device to create. Learning is always on: the
/// remote guests' MACs are learnt from the traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSettings {
    pub vni: u32,
    pub port: u16,
    /// The tunnel's source address: this host's peer address.
    pub local: IpAddr,
    /// Index of the underlay device; `None`: the route to each peer decides.
    pub dev: Option<u32>,
    /// `None`: the kernel's default (the underlay's MTU less the headers).
    pub mtu: Option<u32>,
}

/// The all-zeros forwarding entry of a VXLAN device towards `dst`, on the
/// device itself (NTF_SELF), not on the bridge it is a port of.
fn flood_entry(link: LinkRef<'_>, dst: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = link.index;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(vec![0; 6]));
    msg.attributes
        .push(NeighbourAttribute::Destination(match dst {
            IpAddr::V4(ip) => NeighbourAddress::Inet(ip),
            IpAddr::V6(ip) => NeighbourAddress::Inet6(ip),
        }));
    msg
}

/// A route kvmnet installs: always in the main table, with protocol
/// [`RTPROT_KVMNET`], unicast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Host bits are ignored: the route is for `destination.trunc()`, which
    /// is what [`super::Route::destination`] reports.
    pub destination: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// `None`: the kernel's default (0 for IPv4, 1024 for IPv6). When
    /// deleting, `None` matches any metric.
    pub metric: Option<u32>,
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.destination.trunc())?;
        if let Some(gateway) = self.gateway {
            write!(f, " via {gateway}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " dev index {oif}")?;
        }
        if let Some(metric) = self.metric {
            write!(f, " metric {metric}")?;
        }
        Ok(())
    }
}

impl Netlink {
    /// Creates bridge `name` marked with `alias` and returns its ifindex.
    ///
    /// The bridge is left administratively down, so that per-device sysctls
    /// (`disable_ipv6`, `accept_ra`) can be set before IPv6 autoconfiguration
    /// starts on it; bring it up with [`Netlink::set_up`].
    ///
    /// Two writes: the creation carries STP, forward delay and MAC; a second
    /// message sets alias and MTU, because at creation the kernel ignores
    /// IFLA_IFALIAS, and takes IFLA_MTU without marking it as set by the user,
    /// so the bridge would fall back to its ports' MTU when the first port
    /// joins (an MTU set afterwards sticks). The MAC given at creation does
    /// stick (the address is marked NET_ADDR_SET). If the second message
    /// fails, the bridge is deleted again (a third write) rather than left
    /// without the alias that marks it as kvmnet's. If the agent dies between
    /// the two, the next pass adopts the bridge by its name, missing alias and
    /// the network's MAC (see `is_interrupted_create` in the plan).
    pub async fn create_bridge(
        &self,
        name: &str,
        alias: &str,
        settings: &BridgeSettings,
    ) -> Result<u32> {
        let op = format!("create bridge {name}");
        // br_dev_newlink applies the IFLA_BR_* attributes through
        // br_changelink, which sets the forward delay before the STP state; a
        // new bridge has STP off, so any delay is accepted, then clamped to
        // 2..=30 s if STP starts (see BridgeAttrs::effective).
        let mut builder = LinkMessageBuilder::<LinkBridge>::new(name)
            .forward_delay(settings.forward_delay_cs)
            .stp_state(stp_state(settings.stp));
        if let Some(mac) = settings.mac {
            builder = builder.address(mac.to_vec());
        }
        self.add_link(&op, builder.build()).await?;
        self.mark_new_link("bridge", name, alias, settings.mtu)
            .await
    }

    /// Creates VXLAN device `name` marked with `alias`, down, and returns
    /// its ifindex. As for bridges (see [`Netlink::create_bridge`]), alias
    /// and MTU are set by a second message.
    pub async fn create_vxlan(
        &self,
        name: &str,
        alias: &str,
        settings: &VxlanSettings,
    ) -> Result<u32> {
        let op = format!("create VXLAN device {name} (VNI {})", settings.vni);
        let mut builder = LinkVxlan::new(name, settings.vni)
            .port(settings.port)
            .learning(true);
        builder = match settings.local {
            IpAddr::V4(local) => builder.local(local),
            IpAddr::V6(local) => builder.local6(local),
        };
        if let Some(dev) = settings.dev {
            builder = builder.dev(dev);
        }
        self.add_link(&op, builder.build()).await?;
        self.mark_new_link("VXLAN device", name, alias, settings.mtu)
            .await
    }

    /// Looks up the link just created as `name` (a `kind` such as "bridge")
    /// and sets its alias and MTU; if that fails, deletes it again (a third
    /// write) rather than leave it without the alias that marks it as
    /// kvmnet's.
    async fn mark_new_link(
        &self,
        kind: &str,
        name: &str,
        alias: &str,
        mtu: Option<u32>,
    ) -> Result<u32> {
        // The ack carries no ifindex; a read by name is not a write.
        let index = self
            .sockets
            .links
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_next()
            .await
            .map_err(|e| KernelError::netlink(format!("look up new {kind} {name}"), e))?
            .map(|m| m.header.index)
            .ok_or_else(|| KernelError::Invalid {
                op: format!("look up new {kind} {name}"),
                reason: "the kernel returned no link".into(),
            })?;
        let link = LinkRef { index, name };

        let mut builder = LinkUnspec::new_with_index(index).alias(alias);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        let op = format!("set alias {alias:?} and MTU on new {kind} {link}");
        if let Err(err) = self.change_link(op, builder.build()).await {
            // Best effort: the original error is the one worth reporting.
            let _ = self.delete_link(link).await;
            return Err(err);
        }
        Ok(index)
    }

    /// Adds `dst` to the all-zeros forwarding entry of VXLAN device `link`
    /// (`bridge fdb append 00:00:00:00:00:00 dev LINK dst DST self`):
    /// broadcast and unknown unicast are then sent to `dst` too.
    pub async fn add_flood_remote(&self, link: LinkRef<'_>, dst: IpAddr) -> Result<()> {
        // NLM_F_APPEND: the all-zeros entry holds one remote per peer; with
        // NLM_F_EXCL (rtnetlink's default) a second remote is refused.
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
        let msg = RouteNetlinkMessage::NewNeighbour(flood_entry(link, dst));
        self.fdb_request(format!("add flood entry to {dst} on {link}"), msg, flags)
            .await
    }

    /// Removes `dst` from the all-zeros forwarding entry of `link`.
    pub async fn delete_flood_remote(&self, link: LinkRef<'_>, dst: IpAddr) -> Result<()> {
        let msg = RouteNetlinkMessage::DelNeighbour(flood_entry(link, dst));
        let flags = NLM_F_REQUEST | NLM_F_ACK;
        self.fdb_request(format!("delete flood entry to {dst} on {link}"), msg, flags)
            .await
    }

    async fn fdb_request(&self, op: String, msg: RouteNetlinkMessage, flags: u16) -> Result<()> {
        self.count_write();
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        let mut handle = self.sockets.links.clone();
        let mut response = handle
            .request(req)
            .map_err(|e| KernelError::netlink(&op, e))?;
        while let Some(message) = response.next().await {
            if let NetlinkPayload::Error(err) = message.payload {
                return Err(KernelError::netlink(
                    &op,
                    rtnetlink::Error::NetlinkError(err),
                ));
            }
        }
        Ok(())
    }

    /// Sets IFLA_IFALIAS; an empty alias removes it. kvmnet marks a link
    /// when it creates it, and a bridge whose creation it was killed in the
    /// middle of (see [`Netlink::create_bridge`]).
    pub async fn set_alias(&self, link: LinkRef<'_>, alias: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(link.index).alias(alias).build();
        self.change_link(format!("set alias {alias:?} on {link}"), msg)
            .await
    }

    /// Sets the administrative state (IFF_UP).
    pub async fn set_up(&self, link: LinkRef<'_>, up: bool) -> Result<()> {
        let builder = LinkUnspec::new_with_index(link.index);
        let (msg, what) = if up {
            (builder.up().build(), "up")
        } else {
            (builder.down().build(), "down")
        };
        self.change_link(format!("set {link} {what}"), msg).await
    }

    pub async fn set_mtu(&self, link: LinkRef<'_>, mtu: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(link.index).mtu(mtu).build();
        self.change_link(format!("set MTU {mtu} on {link}"), msg)
            .await
    }

    pub async fn set_mac(&self, link: LinkRef<'_>, mac: [u8; 6]) -> Result<()> {
        let msg = LinkUnspec::new_with_index(link.index)
            .address(mac.to_vec())
            .build();
        let mac = mac.map(|b| format!("{b:02x}")).join(":");
        self.change_link(format!("set MAC {mac} on {link}"), msg)
            .await
    }

    /// Changes STP and forward delay of a bridge from `current` (as observed)
    /// to `wanted.effective()` (see [`BridgeAttrs::effective`]): a wanted
    /// delay below 2 s with STP on is sent as 2 s, which is what the kernel
    /// would keep anyway, rather than stopping and restarting STP (which
    /// would put the ports through listening and learning again).
    ///
    /// br_changelink applies IFLA_BR_FORWARD_DELAY before IFLA_BR_STP_STATE,
    /// checking the delay against the STP state of that moment, so both go in
    /// one message, except when STP is on and must go off with a delay out
    /// of 2..=30 s: the kernel would refuse the delay (ERANGE) before turning
    /// STP off, so STP is turned off first, in a message of its own.
    pub async fn set_bridge(
        &self,
        link: LinkRef<'_>,
        current: &BridgeAttrs,
        wanted: &BridgeAttrs,
    ) -> Result<()> {
        let wanted = wanted.effective();
        if current.stp && !STP_FORWARD_DELAY_CS.contains(&wanted.forward_delay_cs) {
            let msg = bridge_builder(link.index)
                .stp_state(BridgeStpState::Disabled)
                .build();
            self.change_link(
                format!("turn STP off on {link} before changing its forward delay"),
                msg,
            )
            .await?;
        }
        let msg = bridge_builder(link.index)
            .forward_delay(wanted.forward_delay_cs)
            .stp_state(stp_state(wanted.stp))
            .build();
        let op = format!(
            "set STP {} and forward delay {} cs on {link}",
            if wanted.stp { "on" } else { "off" },
            wanted.forward_delay_cs
        );
        self.change_link(op, msg).await
    }

    /// Enslaves `link` to `master` (a bridge), or releases it with `None`.
    pub async fn set_master(&self, link: LinkRef<'_>, master: Option<LinkRef<'_>>) -> Result<()> {
        let builder = LinkUnspec::new_with_index(link.index);
        let (msg, op) = match master {
            Some(master) => (
                builder.controller(master.index).build(),
                format!("enslave {link} to {master}"),
            ),
            None => (
                builder.nocontroller().build(),
                format!("release {link} from its master"),
            ),
        };
        self.change_link(op, msg).await
    }

    pub async fn delete_link(&self, link: LinkRef<'_>) -> Result<()> {
        self.count_write();
        self.sockets
            .links
            .link()
            .del(link.index)
            .execute()
            .await
            .map_err(|e| KernelError::netlink(format!("delete link {link}"), e))
    }

    /// Deletes `links` in one kernel transaction: each is put in `group`,
    /// then the group is deleted by one RTM_DELLINK. The kernel unregisters
    /// them together and waits for one RCU grace period instead of one per
    /// link (a bridge deletion costs some 20-40 ms otherwise). `group` must
    /// be one no other link of the namespace is in.
    pub async fn delete_links(&self, links: &[LinkRef<'_>], group: u32) -> Result<()> {
        let grouped = links.iter().map(|&link| {
            let msg = LinkUnspec::new_with_index(link.index)
                .link_group(group)
                .build();
            self.change_link(format!("put {link} in link group {group}"), msg)
        });
        futures_util::future::try_join_all(grouped).await?;
        self.count_write();
        let mut request = self.sockets.links.link().del(0);
        request
            .message_mut()
            .attributes
            .push(LinkAttribute::Group(group));
        request
            .execute()
            .await
            .map_err(|e| KernelError::netlink(format!("delete link group {group}"), e))
    }

    /// Adds an address, tagged IFA_PROTO [`RTPROT_KVMNET`] (ignored by
    /// kernels before 6.1, which then report no protocol).
    ///
    /// IPv4 gets the broadcast address of its subnet, as `ip address add`
    /// does (none for /31 and /32). IPv6 gets IFA_F_NODAD: without it the
    /// address stays "tentative" during duplicate address detection, and
    /// indefinitely on a bridge without carrier (no port yet), and cannot be
    /// bound by dnsmasq (EADDRNOTAVAIL) nor used as a source meanwhile. The
    /// subnet belongs to a kvmnet network, so a duplicate cannot exist.
    pub async fn add_address(
        &self,
        link: LinkRef<'_>,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<()> {
        let mut request = self
            .sockets
            .links
            .address()
            .add(link.index, address, prefix_len);
        let msg = request.message_mut();
        msg.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(
                RTPROT_KVMNET,
            )));
        if address.is_ipv6() {
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.count_write();
        request.execute().await.map_err(|e| {
            KernelError::netlink(format!("add address {address}/{prefix_len} to {link}"), e)
        })
    }

    pub async fn delete_address(
        &self,
        link: LinkRef<'_>,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<()> {
        let msg = match address {
            IpAddr::V4(ip) => AddressMessageBuilder::<Ipv4Addr>::new()
                .index(link.index)
                .address(ip, prefix_len)
                .build(),
            IpAddr::V6(ip) => AddressMessageBuilder::<Ipv6Addr>::new()
                .index(link.index)
                .address(ip, prefix_len)
                .build(),
        };
        self.count_write();
        self.sockets
            .links
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(|e| {
                KernelError::netlink(
                    format!("delete address {address}/{prefix_len} from {link}"),
                    e,
                )
            })
    }

    pub async fn add_route(&self, route: &RouteSpec) -> Result<()> {
        let op = format!("add route {route}");
        self.send_route(op, route_message(route, false), RouteChange::Add)
            .await
    }

    /// Deletes a route of ours: the request carries [`RTPROT_KVMNET`], so the
    /// kernel never matches another protocol's route to the same prefix.
    pub async fn delete_route(&self, route: &RouteSpec) -> Result<()> {
        let op = format!("delete route {route}");
        self.send_route(op, route_message(route, true), RouteChange::Delete)
            .await
    }

    async fn send_route(
        &self,
        op: String,
        msg: std::result::Result<RouteMessage, String>,
        change: RouteChange,
    ) -> Result<()> {
        let msg = msg.map_err(|reason| KernelError::Invalid {
            op: op.clone(),
            reason,
        })?;
        self.count_write();
        let routes = self.sockets.links.route();
        let result = match change {
            RouteChange::Add => routes.add(msg).execute().await,
            RouteChange::Delete => routes.del(msg).execute().await,
        };
        result.map_err(|e| KernelError::netlink(op, e))
    }

    /// Sends RTM_NEWLINK with NLM_F_CREATE: a new link.
    async fn add_link(&self, op: &str, msg: LinkMessage) -> Result<()> {
        self.count_write();
        self.sockets
            .links
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| KernelError::netlink(op, e))
    }

    async fn change_link(&self, op: String, msg: LinkMessage) -> Result<()> {
        self.count_write();
        self.sockets
            .links
            .link()
            .change(msg)
            .execute()
            .await
            .map_err(|e| KernelError::netlink(op, e))
    }
}

fn stp_state(stp: bool) -> BridgeStpState {
    if stp {
        BridgeStpState::KernelStp
    } else {
        BridgeStpState::Disabled
    }
}

/// A change message for an existing bridge: IFLA_LINKINFO must name the kind
/// for the kernel to pass the IFLA_INFO_DATA to the bridge driver.
fn bridge_builder(index: u32) -> LinkMessageBuilder<LinkBridge> {
    LinkMessageBuilder::<LinkBridge>::new_with_info_kind(InfoKind::Bridge).index(index)
}

fn route_message(route: &RouteSpec, delete: bool) -> std::result::Result<RouteMessage, String> {
    let destination = route.destination.trunc();
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(destination.addr(), destination.prefix_len())
        .map_err(|e| e.to_string())?
        .protocol(RouteProtocol::from(RTPROT_KVMNET));
    if let Some(gateway) = route.gateway {
        builder = builder.gateway(gateway).map_err(|e| e.to_string())?;
    }
    if let Some(oif) = route.oif {
        builder = builder.output_interface(oif);
    }
    if let Some(metric) = route.metric {
        builder = builder.priority(metric);
    }
    // Scopes as iproute2 sets them: "nowhere" in a delete matches any scope;
    // a route without gateway is on-link (link scope), else universe.
    let scope = if delete {
        RouteScope::NoWhere
    } else if route.gateway.is_none() {
        RouteScope::Link
    } else {
        RouteScope::Universe
    };
    Ok(builder.scope(scope).build())
}

/// Moving objects between links exactly as they were (mode bridge: the
/// uplink's addresses and routes onto the bridge, and back on rollback or
/// removal): same flags, broadcast and protocol for addresses; same table,
/// protocol, scope, type and metric for routes. What kvmnet moves keeps its
/// original owner's marks, so that rolling back leaves nothing different.
impl Netlink {
    pub async fn add_address_as(&self, link: LinkRef<'_>, address: &super::Address) -> Result<()> {
        let a = address.address;
        let mut request = self
            .sockets
            .links
            .address()
            .add(link.index, a, address.prefix_len);
        let msg = request.message_mut();
        // The builder adds a computed broadcast: keep the original's instead.
        msg.attributes
            .retain(|attr| !matches!(attr, AddressAttribute::Broadcast(_)));
        if let Some(brd) = address.broadcast {
            msg.attributes.push(AddressAttribute::Broadcast(brd));
        }
        if let Some(protocol) = address.protocol {
            msg.attributes
                .push(AddressAttribute::Protocol(AddressProtocol::from(protocol)));
        }
        // The header holds the low 8 bits; IFA_FLAGS all of them.
        // IFA_F_PERMANENT is the kernel's to set (an address without
        // lifetimes is permanent), never a request flag.
        let flags = AddressFlags::from_bits_retain(address.flags) - AddressFlags::Permanent;
        msg.header.flags = AddressHeaderFlags::from_bits_retain((flags.bits() & 0xff) as u8);
        msg.attributes.push(AddressAttribute::Flags(flags));
        self.count_write();
        request.execute().await.map_err(|e| {
            KernelError::netlink(
                format!("add address {a}/{} to {link}", address.prefix_len),
                e,
            )
        })
    }

    /// Adds `route` with `oif` as its output link.
    pub async fn add_route_as(&self, route: &super::Route, oif: LinkRef<'_>) -> Result<()> {
        let op = format!("add route {} to {oif}", describe(route));
        let msg = exact_route_message(route, Some(oif.index));
        self.send_route(op, msg, RouteChange::Add).await
    }

    /// Deletes exactly `route` (its protocol, table, gateway, link, metric).
    pub async fn delete_route_as(&self, route: &super::Route) -> Result<()> {
        let op = format!("delete route {}", describe(route));
        let msg = exact_route_message(route, route.oif);
        self.send_route(op, msg, RouteChange::Delete).await
    }
}

#[derive(Debug, Clone, Copy)]
enum RouteChange {
    Add,
    Delete,
}

fn describe(route: &super::Route) -> String {
    let mut s = route.destination.to_string();
    if let Some(gw) = route.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    s.push_str(&format!(
        " table {} proto {} metric {}",
        route.table, route.protocol, route.metric
    ));
    s
}

fn exact_route_message(
    route: &super::Route,
    oif: Option<u32>,
) -> std::result::Result<RouteMessage, String> {
    let d = route.destination;
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(d.addr(), d.prefix_len())
        .map_err(|e| e.to_string())?
        .table_id(route.table)
        .protocol(RouteProtocol::from(route.protocol))
        .scope(RouteScope::from(route.scope))
        .kind(RouteType::from(route.kind))
        .priority(route.metric);
    if let Some(gateway) = route.gateway {
        builder = builder.gateway(gateway).map_err(|e| e.to_string())?;
    }
    if let Some(oif) = oif {
        builder = builder.output_interface(oif);
    }
    Ok(builder.build())
}
