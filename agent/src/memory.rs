//! What the agent remembers between passes in its state directory, beyond
//! what the kernel shows: the guest ports of each bridge ([`crate::ports`])
//! and the LAN configuration of bridged networks ([`crate::lanstate`]).
//! Both are aids: a pass goes on without them, with a warning in the log.

use std::path::Path;

use crate::desired::DesiredState;
use crate::lanstate::{self, LanStore};
use crate::observe::Observed;
use crate::ports::{self, PortStore};

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

    /// Fills in `observed.ports`, `observed.lans` and `observed.damaged_lans`,
    /// updated from what `observed` shows; `save` (converging passes only)
    /// writes the updates. Returns the warnings for the report: a state file
    /// that cannot be read is said in every report, never taken as empty.
    pub fn recall(
        &self,
        desired: &DesiredState,
        observed: &mut Observed,
        save: bool,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        let (remembered, readable) = match self.ports.load() {
            Ok(ports) => (ports, true),
            Err(e) => {
                warnings.push(format!(
                    "cannot read the guest port memory: {e}; guests of a recreated bridge are not re-attached \
                     and the file is left as it is: repair or delete it"
                ));
                (Default::default(), false)
            }
        };
        let learned = ports::learn(&remembered, desired, &observed.kernel);
        // A damaged file is not overwritten: what it held may still be
        // recovered by hand.
        if save && readable && learned != remembered {
            if let Err(e) = self.ports.save(&learned) {
                warnings.push(format!("cannot save the guest port memory: {e}"));
            }
        }
        observed.ports = learned;

        let (saved, damaged) = self.lans.load().unwrap_or_else(|e| {
            warnings.push(format!(
                "cannot read the bridged networks' LAN records: {e}"
            ));
            Default::default()
        });
        let learned = lanstate::learn(&saved, desired, &observed.kernel);
        if save && learned != saved {
            if let Err(e) = self.lans.save(&saved, &learned) {
                warnings.push(format!(
                    "cannot save the bridged networks' LAN records: {e}"
                ));
            }
        }
        // A damaged record rewritten from the kernel (its bridge is there) is
        // repaired; the warning stays for this pass.
        warnings.extend(damaged.values().cloned());
        observed.damaged_lans = damaged
            .into_iter()
            .filter(|(name, _)| !learned.contains_key(name))
            .collect();
        observed.lans = learned;
        warnings
    }
}
