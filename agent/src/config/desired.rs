//! The desired state of the host: every valid network with its defaults
//! resolved, and the files that were rejected.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::config::diagnostic::Diagnostic;
use crate::config::model::{MacAddr, Mode, Network};

/// A validated network with its defaults resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredNetwork {
    pub name: String,
    /// The file that defines it.
    pub file: PathBuf,
    /// The bridge's interface name (given, or derived from the network name).
    pub bridge: String,
    /// The bridge's MAC (given, or derived from the network name).
    pub mac: MacAddr,
    pub spec: Network,
    /// Its file is currently rejected; this is the last good version of it.
    pub last_good: bool,
    /// This host's part of the network's overlay, if it has one (resolved
    /// by [`DesiredState::on_host`]).
    pub overlay: Option<HostOverlay>,
}

/// This host's part of an overlay network.
#[derive(Debug, Clone, PartialEq)]
pub struct HostOverlay {
    /// The VXLAN device's interface name (derived from the network name).
    pub device: String,
    /// This host's peer address: the tunnel's source.
    pub local: Option<IpAddr>,
    /// The underlay interface: `overlay.vxlan.dev`, or the one holding
    /// `local`.
    pub dev: Option<String>,
    /// The other peers: one flood entry each.
    pub remotes: Vec<IpAddr>,
    /// The MTU of the VXLAN device (and of the bridge).
    pub mtu: Option<u32>,
    /// This host holds layer 3 (`overlay.gateway` is its peer address).
    pub gateway: bool,
    /// Why the network cannot run here, said plainly.
    pub problem: Option<String>,
}

/// A link of the host as the overlay derivation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLink {
    pub name: String,
    pub mtu: u32,
    pub addresses: Vec<IpAddr>,
}

impl DesiredNetwork {
    pub fn new(name: &str, file: &Path, spec: Network) -> DesiredNetwork {
        DesiredNetwork {
            name: name.to_string(),
            file: file.to_path_buf(),
            bridge: spec
                .bridge
                .name
                .clone()
                .unwrap_or_else(|| default_bridge_name(name)),
            mac: spec.bridge.mac.unwrap_or_else(|| default_mac(name)),
            overlay: spec.overlay.as_ref().map(|_| HostOverlay {
                device: default_vxlan_name(name),
                local: None,
                dev: None,
                remotes: Vec::new(),
                mtu: None,
                gateway: false,
                problem: Some("this host's links were not observed".into()),
            }),
            spec,
            last_good: false,
        }
    }

    /// Resolves the overlay's part on a host with `links`: the host finds
    /// itself as the peer address it holds. On a peer other than the
    /// gateway the network only extends layer 2: no address, no routes, no
    /// dnsmasq and no firewall rules (mode open without addresses).
    fn on_host(&self, links: &[HostLink]) -> DesiredNetwork {
        let mut net = self.clone();
        let (Some(overlay), Some(spec)) = (&mut net.overlay, &self.spec.overlay) else {
            return net;
        };
        let vxlan = &spec.vxlan;
        let holder = |ip: &IpAddr| links.iter().find(|l| l.addresses.contains(ip));
        let Some((local, holding)) = vxlan.peers.iter().find_map(|p| Some((*p, holder(p)?))) else {
            let peers: Vec<String> = vxlan.peers.iter().map(IpAddr::to_string).collect();
            overlay.problem = Some(format!(
                "this host holds none of the overlay's peer addresses ({}): it is not a peer of this network; add its underlay address to overlay.vxlan.peers, or do not deploy this file here",
                peers.join(", ")
            ));
            return net;
        };
        overlay.local = Some(local);
        overlay.remotes = vxlan
            .peers
            .iter()
            .copied()
            .filter(|p| *p != local)
            .collect();
        overlay.gateway = spec.gateway == Some(local);
        let dev = vxlan.dev.as_deref().unwrap_or(&holding.name);
        overlay.dev = Some(dev.to_string());
        overlay.problem = None;
        let wanted = vxlan.mtu.or(self.spec.bridge.mtu);
        match links.iter().find(|l| l.name == dev) {
            None => {
                overlay.problem = Some(format!(
                    "underlay interface {dev} (overlay.vxlan.dev) does not exist"
                ))
            }
            Some(underlay) => {
                let fits = underlay.mtu.saturating_sub(vxlan.overhead());
                match wanted {
                    Some(mtu) if mtu > fits => {
                        overlay.problem = Some(format!(
                            "MTU {mtu} does not fit the underlay: {dev} has MTU {}, and VXLAN over IPv{} takes {} bytes of it, leaving at most {fits}; lower the MTU or raise {dev}'s",
                            underlay.mtu,
                            if local.is_ipv4() { 4 } else { 6 },
                            vxlan.overhead()
                        ))
                    }
                    _ => overlay.mtu = Some(wanted.unwrap_or(fits)),
                }
            }
        }
        net.spec.bridge.mtu = overlay.mtu.or(wanted);
        if !overlay.gateway {
            // The gateway's bridge keeps the network's MAC, so that guests'
            // ARP caches stay valid when the gateway moves; the others get
            // one of their own: two bridges with one MAC on one segment
            // would each take the other's frames.
            net.mac = default_mac(&format!("{}@{local}", self.name));
        }
        if spec.gateway.is_some() && !overlay.gateway {
            let spec = &mut net.spec;
            spec.mode = Mode::Open;
            spec.ip.clear();
            spec.dns = None;
            spec.nat = None;
            spec.routes.clear();
            spec.port_forwards.clear();
            spec.uplink = None;
        }
        net
    }
}

/// A file whose networks are not applied, with the reasons.
#[derive(Debug, Clone)]
pub struct RejectedFile {
    pub path: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
    /// The networks it names, when it parsed at all.
    pub networks: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    pub networks: BTreeMap<String, DesiredNetwork>,
    pub rejected: Vec<RejectedFile>,
    /// Every network the files define is known (no file rejected, or each
    /// rejected file runs from its last good copy): removing what kvmnet owns
    /// for other networks is safe.
    pub complete: bool,
}

impl DesiredState {
    /// The desired state on a host with `links`: each overlay network
    /// resolved to this host's part of it (see [`DesiredNetwork::on_host`]).
    pub fn on_host(&self, links: &[HostLink]) -> DesiredState {
        DesiredState {
            networks: self
                .networks
                .iter()
                .map(|(name, net)| (name.clone(), net.on_host(links)))
                .collect(),
            rejected: self.rejected.clone(),
            complete: self.complete,
        }
    }

    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.rejected.iter().flat_map(|r| &r.diagnostics)
    }
}

/// The default bridge name: `kv-<name>`, or when that exceeds the 15 bytes
/// of an interface name, a prefix of the name and a hash that keeps it unique.
pub fn default_bridge_name(network: &str) -> String {
    interface_name("kv", network)
}

/// The VXLAN device of an overlay network: `vx-<name>`, shortened like
/// [`default_bridge_name`].
pub fn default_vxlan_name(network: &str) -> String {
    interface_name("vx", network)
}

fn interface_name(prefix: &str, network: &str) -> String {
    let full = format!("{prefix}-{network}");
    if full.len() <= 15 {
        return full;
    }
    let start: String = network.chars().take(6).collect();
    format!("{prefix}-{start}-{:05x}", fnv1a(network) & 0xfffff)
}

/// The default bridge MAC: in QEMU/libvirt's 52:54:00 range, from a hash of
/// the network name, so that it is stable across restarts without state.
pub fn default_mac(network: &str) -> MacAddr {
    let h = fnv1a(network).to_be_bytes();
    MacAddr([0x52, 0x54, 0x00, h[5], h[6], h[7]])
}

/// FNV-1a, 64 bit: a stable hash (std's hasher may change between releases).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bridge_names_fit_and_differ() {
        assert_eq!(default_bridge_name("default"), "kv-default");
        let a = default_bridge_name("a-very-long-network-name");
        let b = default_bridge_name("a-very-long-network-name-2");
        assert!(a.len() <= 15 && b.len() <= 15);
        assert_ne!(a, b);
        assert!(a.starts_with("kv-a-very"));
    }

    fn overlay_network(text: &str) -> DesiredNetwork {
        let file: crate::config::model::NetworksFile = toml::from_str(text).unwrap();
        let (name, spec) = file.networks.into_iter().next().unwrap();
        DesiredNetwork::new(&name, Path::new("n.toml"), spec)
    }

    const FLEET: &str = r#"
[networks.fleet]
mode = "nat"
overlay.gateway = "10.0.0.1"
overlay.vxlan = { vni = 42, peers = ["10.0.0.1", "10.0.0.2", "10.0.0.3"] }
port_forwards = [{ proto = "tcp", port = 8080, to = "192.168.50.10:80" }]
[[networks.fleet.ip]]
address = "192.168.50.1/24"
dhcp.ranges = [{ start = "192.168.50.10", end = "192.168.50.200" }]
"#;

    fn host(address: &str, mtu: u32) -> Vec<HostLink> {
        vec![
            HostLink {
                name: "lo".into(),
                mtu: 65536,
                addresses: vec!["127.0.0.1".parse().unwrap()],
            },
            HostLink {
                name: "eth0".into(),
                mtu,
                addresses: vec![address.parse().unwrap()],
            },
        ]
    }

    #[test]
    fn the_gateway_peer_keeps_layer_3_and_gets_the_underlay_mtu() {
        let net = overlay_network(FLEET).on_host(&host("10.0.0.1", 1500));
        let o = net.overlay.as_ref().unwrap();
        assert_eq!(o.problem, None);
        assert_eq!(o.device, "vx-fleet");
        assert_eq!(o.local, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(o.dev.as_deref(), Some("eth0"));
        assert_eq!(
            o.remotes,
            [
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "10.0.0.3".parse().unwrap()
            ]
        );
        assert!(o.gateway);
        assert_eq!(o.mtu, Some(1450));
        assert_eq!(net.spec.bridge.mtu, Some(1450));
        assert_eq!(net.spec.mode, Mode::Nat);
        assert_eq!(net.spec.ip.len(), 1);
        assert_eq!(net.spec.port_forwards.len(), 1);
        assert_eq!(net.mac, default_mac("fleet"));
    }

    #[test]
    fn other_peers_only_extend_layer_2() {
        let net = overlay_network(FLEET).on_host(&host("10.0.0.3", 9000));
        let o = net.overlay.as_ref().unwrap();
        assert!(!o.gateway);
        assert_eq!(o.mtu, Some(8950));
        assert_eq!(net.spec.mode, Mode::Open);
        assert!(net.spec.ip.is_empty() && net.spec.port_forwards.is_empty());
        assert_ne!(net.mac, default_mac("fleet"), "a MAC of its own");
        assert!(net.spec.dns.is_none() && net.spec.nat.is_none());
    }

    #[test]
    fn an_ipv6_underlay_takes_70_bytes() {
        let text = FLEET
            .replace(
                "overlay.gateway = \"10.0.0.1\"",
                "overlay.gateway = \"fd00::1\"",
            )
            .replace(
                "\"10.0.0.1\", \"10.0.0.2\", \"10.0.0.3\"",
                "\"fd00::1\", \"fd00::2\"",
            );
        let o = overlay_network(&text)
            .on_host(&host("fd00::2", 1500))
            .overlay
            .unwrap();
        assert_eq!((o.mtu, o.problem), (Some(1430), None));
        assert_eq!(o.remotes, ["fd00::1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn a_host_holding_no_peer_address_is_told_plainly() {
        let net = overlay_network(FLEET).on_host(&host("10.0.0.9", 1500));
        let problem = net.overlay.unwrap().problem.unwrap();
        assert!(
            problem.contains(
                "holds none of the overlay's peer addresses (10.0.0.1, 10.0.0.2, 10.0.0.3)"
            ),
            "{problem}"
        );
        // Nothing is guessed: the network keeps its layer 3 (and fails).
        assert_eq!(net.spec.mode, Mode::Nat);
    }

    #[test]
    fn a_wanted_mtu_beyond_the_underlay_is_a_problem() {
        let text = FLEET.replace("vni = 42,", "vni = 42, mtu = 1480,");
        let o = overlay_network(&text)
            .on_host(&host("10.0.0.2", 1500))
            .overlay
            .unwrap();
        let problem = o.problem.unwrap();
        assert!(
            problem.contains("MTU 1480 does not fit the underlay: eth0 has MTU 1500, and VXLAN over IPv4 takes 50 bytes of it, leaving at most 1450"),
            "{problem}"
        );
        let text = FLEET.replace("vni = 42,", "vni = 42, dev = \"wg0\",");
        let o = overlay_network(&text)
            .on_host(&host("10.0.0.2", 1500))
            .overlay
            .unwrap();
        assert_eq!(
            o.problem.as_deref(),
            Some("underlay interface wg0 (overlay.vxlan.dev) does not exist")
        );
    }

    #[test]
    fn default_mac_is_stable_and_unicast() {
        let mac = default_mac("default");
        assert_eq!(mac, default_mac("default"));
        assert_ne!(mac, default_mac("other"));
        assert!(!mac.is_multicast());
        assert_eq!(&mac.0[..3], &[0x52, 0x54, 0x00]);
    }
}
