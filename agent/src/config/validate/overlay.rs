//! VXLAN overlays: the VNI, the peers, the gateway, the MTU.

use super::*;

/// The largest VXLAN network identifier (24 bits).
pub(super) const MAX_VNI: u32 = (1 << 24) - 1;

pub(super) fn check_overlay(
    r: &mut Reporter,
    at: &KeyPath,
    net: &Network,
    overlay: &OverlayConfig,
) {
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
