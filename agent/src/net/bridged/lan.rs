//! The LAN configuration of each bridged network: the addresses and routes
//! that live on its bridge since the uplink was taken over, kept in
//! `<state-dir>/lan/<network>.json`. If the bridge is deleted by hand, the
//! kernel deletes them with it; the next take-over puts them back from here,
//! so that the host does not stay cut off its LAN.
//!
//! Learning is pure ([`learn`]): the record follows the bridge while it
//! exists (an address or route changed there by hand is the new truth), is
//! kept while it is missing, and is dropped with the network.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::desired::DesiredState;
use crate::config::model::Mode;
use crate::core::fs::{write_atomic, PRIVATE};
use crate::core::link_owner;
use crate::kernel::Link;
use crate::kernel::{Address, Route, Snapshot};
use crate::net::wanted::is_ipv6_link_local;

/// What a bridged network's bridge carried, and for which uplink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLan {
    pub uplink: String,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
}

pub type SavedLans = BTreeMap<String, SavedLan>;

/// Records that exist but cannot be read or parsed: network → why. Never
/// taken as "no record": the take-over they would guide is refused.
pub type DamagedLans = BTreeMap<String, String>;

/// The records after observing `snapshot` (see the module documentation).
pub fn learn(saved: &SavedLans, desired: &DesiredState, snapshot: &Snapshot) -> SavedLans {
    let mut learned: SavedLans = saved
        .iter()
        .filter(|(name, _)| !desired.complete || desired.networks.contains_key(*name))
        .map(|(name, lan)| (name.clone(), lan.clone()))
        .collect();
    for net in desired.networks.values() {
        let (Mode::Bridge, Some(uplink)) = (net.spec.mode, &net.spec.uplink) else {
            continue;
        };
        let bridge = snapshot
            .link_by_name(&net.bridge)
            .filter(|b| link_owner(b) == Some(net.name.as_str()));
        let enslaved = |b: u32| {
            snapshot
                .link_by_name(uplink)
                .is_some_and(|d| d.master == Some(b))
        };
        if let Some(bridge) = bridge.filter(|b| enslaved(b.index)) {
            let lan = SavedLan {
                uplink: uplink.clone(),
                addresses: movable_addresses(snapshot, bridge),
                routes: movable_routes(snapshot, bridge),
            };
            learned.insert(net.name.clone(), lan);
        }
    }
    learned
}

/// The directory of records, one file per network.
#[derive(Debug, Clone)]
pub struct LanStore {
    dir: PathBuf,
}

impl LanStore {
    pub fn new(state_dir: &Path) -> LanStore {
        LanStore {
            dir: state_dir.join("lan"),
        }
    }

    /// The records, and those that are damaged.
    pub fn load(&self) -> io::Result<(SavedLans, DamagedLans)> {
        let mut saved = SavedLans::new();
        let mut damaged = DamagedLans::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((saved, damaged)),
            Err(e) => return Err(context(e, "read", &self.dir)),
        };
        for entry in entries {
            let path = entry.map_err(|e| context(e, "read", &self.dir))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
            match parsed {
                Ok(lan) => {
                    saved.insert(name.to_string(), lan);
                }
                Err(e) => {
                    let previous = self.previous(name);
                    let hint = match previous.exists() {
                        true => format!("; its previous version is {}", previous.display()),
                        false => String::new(),
                    };
                    damaged.insert(
                        name.to_string(),
                        format!("the LAN record {} is damaged ({e}){hint}", path.display()),
                    );
                }
            }
        }
        Ok((saved, damaged))
    }

    /// Writes the records that differ from `old` and deletes those gone.
    pub fn save(&self, old: &SavedLans, new: &SavedLans) -> io::Result<()> {
        for (name, lan) in new {
            if old.get(name) != Some(lan) {
                let path = self.path(name);
                // The version replaced is kept: if the new one is ever
                // damaged, what the host had is still written down. Only a
                // good one: a damaged file never replaces it.
                if old.contains_key(name) {
                    let previous = self.previous(name);
                    std::fs::copy(&path, &previous)
                        .map_err(|e| context(e, "keep the previous version as", &previous))?;
                }
                let text = serde_json::to_vec_pretty(lan).expect("a LAN record serializes");
                write_atomic(&path, &text, PRIVATE).map_err(|e| context(e, "write", &path))?;
            }
        }
        for name in old.keys().filter(|n| !new.contains_key(*n)) {
            for path in [self.path(name), self.previous(name)] {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(context(e, "remove", &path))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn path(&self, network: &str) -> PathBuf {
        self.dir.join(format!("{network}.json"))
    }

    fn previous(&self, network: &str) -> PathBuf {
        self.dir.join(format!("{network}.json.prev"))
    }
}

fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// rtm_protocol of routes the kernel makes itself (prefix routes of
/// addresses): they follow the addresses and are never moved.
const RTPROT_KERNEL: u8 = 2;
/// rtm_protocol of routes learned from router advertisements: the kernel
/// learns them again on the bridge.
const RTPROT_RA: u8 = 9;
/// The local table: the kernel's routes to the host's own addresses.
const RT_TABLE_LOCAL: u32 = 255;

/// The addresses of `link` that move with it: all but IPv6 link-local ones
/// (each link has its own).
pub fn movable_addresses(snapshot: &Snapshot, link: &Link) -> Vec<Address> {
    snapshot
        .addresses_of(link.index)
        .filter(|a| !is_ipv6_link_local(a.address))
        .cloned()
        .collect()
}

/// The routes through `link` that move with it: all but the kernel's own
/// (prefix and local routes, remade with the addresses) and RA-learned ones,
/// on-link routes first.
pub fn movable_routes(snapshot: &Snapshot, link: &Link) -> Vec<Route> {
    let mut routes: Vec<Route> = snapshot
        .routes
        .iter()
        .filter(|r| r.oif == Some(link.index))
        .filter(|r| r.table != RT_TABLE_LOCAL)
        .filter(|r| r.protocol != RTPROT_KERNEL && r.protocol != RTPROT_RA)
        .cloned()
        .collect();
    routes.sort_by_key(|r| r.gateway.is_some());
    routes
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::testutil::{desired, link};

    fn address(index: u32, a: &str) -> Address {
        Address {
            index,
            address: a.parse().unwrap(),
            prefix_len: 24,
            protocol: None,
            permanent: true,
            flags: 0x80,
            broadcast: None,
        }
    }

    const LAN: &str =
        "[networks.lan]\nmode = \"bridge\"\nuplink = \"eno1\"\nbridge.name = \"br0\"\n";

    fn taken_over() -> Snapshot {
        let mut s = Snapshot::default();
        s.links.push(link(2, "eno1", Some(5), None));
        s.links.push(link(5, "br0", None, Some("kvmnet:lan")));
        s.addresses.push(address(5, "10.0.0.10"));
        s
    }

    #[test]
    fn follows_the_bridge_and_survives_its_deletion() {
        let d = desired(LAN);
        let learned = learn(&SavedLans::new(), &d, &taken_over());
        assert_eq!(learned["lan"].uplink, "eno1");
        assert_eq!(learned["lan"].addresses, [address(5, "10.0.0.10")]);

        let mut deleted = taken_over();
        deleted.links.retain(|l| l.name != "br0");
        deleted.links[0].master = None;
        deleted.addresses.clear();
        assert_eq!(learn(&learned, &d, &deleted), learned);

        let complete = DesiredState {
            complete: true,
            ..Default::default()
        };
        assert!(learn(&learned, &complete, &deleted).is_empty());
    }

    #[test]
    fn store_writes_changes_and_removes_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = LanStore::new(dir.path());
        assert_eq!(store.load().unwrap(), Default::default());
        let lans = learn(&SavedLans::new(), &desired(LAN), &taken_over());
        store.save(&SavedLans::new(), &lans).unwrap();
        assert_eq!(store.load().unwrap(), (lans.clone(), DamagedLans::new()));
        store.save(&lans, &SavedLans::new()).unwrap();
        assert_eq!(store.load().unwrap(), Default::default());
    }

    #[test]
    fn a_damaged_record_is_reported_not_taken_as_none_and_its_previous_version_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = LanStore::new(dir.path());
        let first = learn(&SavedLans::new(), &desired(LAN), &taken_over());
        store.save(&SavedLans::new(), &first).unwrap();
        let mut second = first.clone();
        second.get_mut("lan").unwrap().addresses.clear();
        store.save(&first, &second).unwrap();
        let previous = dir.path().join("lan/lan.json.prev");
        let kept: SavedLan = serde_json::from_slice(&std::fs::read(&previous).unwrap()).unwrap();
        assert_eq!(kept, first["lan"]);

        std::fs::write(dir.path().join("lan/lan.json"), "{\"uplink\": ").unwrap();
        let (saved, damaged) = store.load().unwrap();
        assert!(saved.is_empty());
        assert!(
            damaged["lan"].contains("lan.json is damaged")
                && damaged["lan"].contains(&previous.display().to_string()),
            "{damaged:?}"
        );
    }
}
