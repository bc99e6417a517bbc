//! Kernel change notifications: rtnetlink multicast groups for links,
//! addresses, routes and forwarding entries, decoded into the little the daemon needs to decide
//! whether a change concerns kvmnet's objects.

use futures_util::StreamExt;
use rtnetlink::constants::{
    RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK,
    RTMGRP_NEIGH,
};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::NeighbourAttribute;
use rtnetlink::packet_route::route::RouteAttribute;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use tokio::sync::mpsc;

use super::error::{KernelError, Result};

/// One change the kernel announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    Link {
        index: u32,
        name: Option<String>,
        alias: Option<String>,
        /// IFLA_MASTER: a port joining (or in) a bridge.
        master: Option<u32>,
    },
    Address {
        index: u32,
    },
    Route {
        oif: Option<u32>,
        protocol: u8,
    },
    /// An all-zeros (flood) forwarding entry of a VXLAN device added or
    /// removed. Other neighbour changes (ARP, learnt MACs) are not events.
    FloodEntry {
        index: u32,
    },
}

/// Subscribes to link, address, route and flood entry changes of the calling thread's
/// network namespace. Events arrive on the returned channel until it is
/// dropped. A socket overrun (ENOBUFS, events lost) cannot be told apart
/// here, which is why the daemon also runs full passes on a timer.
pub fn subscribe() -> Result<mpsc::UnboundedReceiver<KernelEvent>> {
    let op = "subscribe to kernel link, address, route and forwarding entry events";
    let (mut conn, _handle, mut messages) =
        rtnetlink::new_connection().map_err(|source| KernelError::Io {
            op: op.into(),
            source,
        })?;
    let groups = RTMGRP_LINK
        | RTMGRP_IPV4_IFADDR
        | RTMGRP_IPV6_IFADDR
        | RTMGRP_IPV4_ROUTE
        | RTMGRP_IPV6_ROUTE
        | RTMGRP_NEIGH;
    conn.socket_mut()
        .socket_mut()
        .bind(&SocketAddr::new(0, groups))
        .map_err(|source| KernelError::Io {
            op: op.into(),
            source,
        })?;
    tokio::spawn(conn);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((message, _)) = messages.next().await {
            let NetlinkPayload::InnerMessage(inner) = message.payload else {
                continue;
            };
            if let Some(event) = decode(inner) {
                if tx.send(event).is_err() {
                    break;
                }
            }
        }
    });
    Ok(rx)
}

fn decode(message: RouteNetlinkMessage) -> Option<KernelEvent> {
    match message {
        RouteNetlinkMessage::NewLink(m) | RouteNetlinkMessage::DelLink(m) => {
            let mut name = None;
            let mut alias = None;
            let mut master = None;
            for attr in m.attributes {
                match attr {
                    LinkAttribute::IfName(n) => name = Some(n),
                    LinkAttribute::IfAlias(a) => alias = Some(a),
                    LinkAttribute::Controller(i) => master = Some(i),
                    _ => {}
                }
            }
            Some(KernelEvent::Link {
                index: m.header.index,
                name,
                alias,
                master,
            })
        }
        RouteNetlinkMessage::NewAddress(m) | RouteNetlinkMessage::DelAddress(m) => {
            Some(KernelEvent::Address {
                index: m.header.index,
            })
        }
        RouteNetlinkMessage::NewRoute(m) | RouteNetlinkMessage::DelRoute(m) => {
            let oif = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            });
            Some(KernelEvent::Route {
                oif,
                protocol: m.header.protocol.into(),
            })
        }
        RouteNetlinkMessage::NewNeighbour(m) | RouteNetlinkMessage::DelNeighbour(m) => {
            let flood = m.header.family == AddressFamily::Bridge
                && m.attributes.iter().any(
                    |a| matches!(a, NeighbourAttribute::LinkLayerAddress(mac) if *mac == [0; 6]),
                );
            flood.then_some(KernelEvent::FloodEntry {
                index: m.header.ifindex,
            })
        }
        _ => None,
    }
}
