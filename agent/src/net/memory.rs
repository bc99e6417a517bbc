//! What the agent remembers between passes in its state directory, beyond
//! what the kernel shows: the guest ports of each bridge ([`crate::net::ports`])
//! and the LAN configuration of bridged networks ([`crate::net::bridged::lan`]).
//! Memory is not observation: it is read, updated from what the kernel
//! shows (pure), and written back by converging passes only. A memory that
//! cannot be read is reported in the pass's warnings, never taken silently
//! as empty.

use std::path::Path;

use crate::config::desired::DesiredState;
use crate::kernel::Snapshot;
use crate::net::bridged::lan::{self, DamagedLans, LanStore, SavedLans};
use crate::net::ports::{self, PortStore, RememberedPorts};

/// What the agent remembers of the networks, as a plan reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Remembered {
    /// The guest ports of each network's bridge.
    pub ports: RememberedPorts,
    /// What the bridges of bridged networks carried.
    pub lans: SavedLans,
    /// LAN records that exist but cannot be read, of networks whose bridge
    /// does not hold the LAN now (so they cannot be learned again).
    pub damaged_lans: DamagedLans,
}

/// One recall: the memory as read, as updated from the kernel, and what
/// could not be read.
#[derive(Debug, Clone, Default)]
pub struct Recall {
    read: Remembered,
    /// A guest port memory that cannot be read is not overwritten: what it
    /// held may still be recovered by hand.
    ports_readable: bool,
    pub learned: Remembered,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Memory {
    ports: PortStore,
    lans: LanStore,
}

impl Memory {
    pub fn new(state_dir: &Path) -> Memory {
        Memory {
            ports: PortStore::new(state_dir),
            lans: LanStore::new(state_dir),
        }
    }

    /// Reads the memory and updates it from what `kernel` shows.
    pub fn recall(&self, desired: &DesiredState, kernel: &Snapshot) -> Recall {
        let mut warnings = Vec::new();
        let (ports, ports_readable) = match self.ports.load() {
            Ok(ports) => (ports, true),
            Err(e) => {
                warnings.push(format!(
                    "cannot read the guest port memory: {e}; guests are not re-attached to a recreated bridge, \
                     and the file is left as it is: repair or delete it"
                ));
                (Default::default(), false)
            }
        };
        let (lans, damaged) = self.lans.load().unwrap_or_else(|e| {
            warnings.push(format!(
                "cannot read the bridged networks' LAN records: {e}; a bridge deleted by hand does not get the host's LAN addresses back"
            ));
            Default::default()
        });
        // Said in every report while it lasts; a record learned again from
        // the bridge that holds the LAN replaces the damaged file.
        warnings.extend(damaged.values().cloned());
        let learned_lans = lan::learn(&lans, desired, kernel);
        let damaged_lans = damaged
            .into_iter()
            .filter(|(name, _)| !learned_lans.contains_key(name))
            .collect();
        let learned = Remembered {
            ports: ports::learn(&ports, desired, kernel),
            lans: learned_lans,
            damaged_lans,
        };
        Recall {
            read: Remembered {
                ports,
                lans,
                damaged_lans: DamagedLans::new(),
            },
            ports_readable,
            learned,
            warnings,
        }
    }

    /// Writes what `recall` learned, where it differs from what was read.
    /// Returns what could not be written.
    pub fn save(&self, recall: &Recall) -> Vec<String> {
        let mut warnings = Vec::new();
        let (read, learned) = (&recall.read, &recall.learned);
        if recall.ports_readable && learned.ports != read.ports {
            if let Err(e) = self.ports.save(&learned.ports) {
                warnings.push(format!("cannot save the guest port memory: {e}"));
            }
        }
        if learned.lans != read.lans {
            if let Err(e) = self.lans.save(&read.lans, &learned.lans) {
                warnings.push(format!(
                    "cannot save the bridged networks' LAN records: {e}"
                ));
            }
        }
        warnings
    }
}
