//! Guest port memory: which interfaces (guest taps, veths) were ports of each
//! owned bridge, so that a bridge that has to be recreated (deleted by hand,
//! a kind change) gets its guests back instead of leaving running VMs cut
//! off, as libvirt does until libvirtd restarts.
//!
//! The memory lives in `<state-dir>/ports.json`, not in the kernel: marking
//! the ports themselves (IFLA_IFALIAS) would write to links that belong to
//! QEMU or libvirt and turn every guest start into a write and a drift item.
//! It survives agent restarts. Learning is pure ([`learn`]); the store only
//! reads and writes the file.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::config::desired::DesiredState;
use crate::core::fs::{write_atomic, PRIVATE};
use crate::core::link_owner;
use crate::kernel::Snapshot;

/// Per network, the names of its bridge's ports.
pub type RememberedPorts = BTreeMap<String, BTreeSet<String>>;

/// What the memory should hold after observing `snapshot`: the current ports
/// of every desired network whose owned bridge exists; what was remembered
/// for a network whose bridge is missing (that is when it is needed); nothing
/// for networks that left the files, unless some file is rejected and its
/// networks are unknown (`desired.complete` false).
pub fn learn(
    remembered: &RememberedPorts,
    desired: &DesiredState,
    snapshot: &Snapshot,
) -> RememberedPorts {
    let mut learned = RememberedPorts::new();
    for (name, ports) in remembered {
        if !desired.complete || desired.networks.contains_key(name) {
            learned.insert(name.clone(), ports.clone());
        }
    }
    for net in desired.networks.values() {
        let Some(bridge) = snapshot
            .link_by_name(&net.bridge)
            .filter(|l| link_owner(l) == Some(net.name.as_str()))
        else {
            continue;
        };
        let ports: BTreeSet<String> = snapshot
            .links
            .iter()
            .filter(|l| l.master == Some(bridge.index))
            // Our own ports (an overlay's VXLAN device) are planned as such.
            .filter(|l| link_owner(l).is_none())
            .filter(|l| !is_uplink(net, &l.name))
            .map(|l| l.name.clone())
            .collect();
        if ports.is_empty() {
            learned.remove(&net.name);
        } else {
            learned.insert(net.name.clone(), ports);
        }
    }
    learned
}

/// A bridged network's uplink is enslaved by its own rules, not as a guest.
fn is_uplink(net: &crate::config::desired::DesiredNetwork, link: &str) -> bool {
    net.spec.uplink.as_deref() == Some(link) && net.spec.mode == crate::config::model::Mode::Bridge
}

/// The file holding the memory.
#[derive(Debug, Clone)]
pub struct PortStore {
    path: PathBuf,
}

impl PortStore {
    pub fn new(state_dir: &Path) -> PortStore {
        PortStore {
            path: state_dir.join("ports.json"),
        }
    }

    /// The remembered ports; none when the file does not exist yet.
    pub fn load(&self) -> io::Result<RememberedPorts> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RememberedPorts::new()),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("read {}: {e}", self.path.display()),
            )),
        }
    }

    pub fn save(&self, ports: &RememberedPorts) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(ports).expect("port names serialize");
        write_atomic(&self.path, &text, PRIVATE)
            .map_err(|e| io::Error::new(e.kind(), format!("write {}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::testutil::{desired, link};

    const NAT: &str = "[networks.n]\nmode = \"nat\"\nbridge.name = \"br-n\"\n[[networks.n.ip]]\naddress = \"192.168.50.1/24\"\n";

    fn remembered(net: &str, ports: &[&str]) -> RememberedPorts {
        RememberedPorts::from([(
            net.to_string(),
            ports.iter().map(|p| p.to_string()).collect(),
        )])
    }

    #[test]
    fn learns_the_ports_of_an_owned_bridge() {
        let mut snapshot = Snapshot::default();
        snapshot.links.push(link(5, "br-n", None, Some("kvmnet:n")));
        snapshot.links.push(link(6, "vnet0", Some(5), None));
        snapshot.links.push(link(7, "vnet1", Some(5), None));
        snapshot.links.push(link(8, "eth9", None, None));
        let learned = learn(&RememberedPorts::new(), &desired(NAT), &snapshot);
        assert_eq!(learned, remembered("n", &["vnet0", "vnet1"]));
    }

    #[test]
    fn keeps_the_memory_while_the_bridge_is_missing() {
        let mut snapshot = Snapshot::default();
        snapshot.links.push(link(6, "vnet0", None, None));
        let before = remembered("n", &["vnet0"]);
        assert_eq!(learn(&before, &desired(NAT), &snapshot), before);
    }

    #[test]
    fn a_port_released_from_an_existing_bridge_is_forgotten() {
        let mut snapshot = Snapshot::default();
        snapshot.links.push(link(5, "br-n", None, Some("kvmnet:n")));
        snapshot.links.push(link(6, "vnet0", None, None));
        let learned = learn(&remembered("n", &["vnet0"]), &desired(NAT), &snapshot);
        assert!(learned.is_empty(), "{learned:?}");
    }

    #[test]
    fn forgets_removed_networks_only_when_the_files_are_complete() {
        let before = remembered("gone", &["vnet0"]);
        let complete = desired(NAT);
        assert!(learn(&before, &complete, &Snapshot::default()).is_empty());
        let mut partial = desired(NAT);
        partial.complete = false;
        assert_eq!(learn(&before, &partial, &Snapshot::default()), before);
    }

    #[test]
    fn a_bridge_not_ours_teaches_nothing() {
        let mut snapshot = Snapshot::default();
        snapshot.links.push(link(5, "br-n", None, None));
        snapshot.links.push(link(6, "vnet0", Some(5), None));
        assert!(learn(&RememberedPorts::new(), &desired(NAT), &snapshot).is_empty());
    }

    #[test]
    fn store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = PortStore::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        let ports = remembered("n", &["vnet0"]);
        store.save(&ports).unwrap();
        assert_eq!(store.load().unwrap(), ports);
    }
}
