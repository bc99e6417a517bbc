//! What the agent remembers between passes in its state directory, beyond
//! what the kernel shows: the guest ports of each bridge ([`crate::net::ports`])
//! and the LAN configuration of bridged networks ([`crate::net::bridged::lan`]).
//! Both are aids: a pass goes on without them, with a warning in the log.

use std::path::Path;

use crate::config::desired::DesiredState;
use crate::net::bridged::lan::{self, LanStore};
use crate::net::observe::Observed;
use crate::net::ports::{self, PortStore};

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

    /// Fills in `observed.ports` and `observed.lans`, updated from what
    /// `observed` shows; `save` (converging passes only) writes the updates.
    pub fn recall(&self, desired: &DesiredState, observed: &mut Observed, save: bool) {
        let remembered = self.ports.load().unwrap_or_else(|e| {
            tracing::warn!("cannot read the guest port memory: {e}");
            Default::default()
        });
        let learned = ports::learn(&remembered, desired, &observed.kernel);
        if save && learned != remembered {
            if let Err(e) = self.ports.save(&learned) {
                tracing::warn!("cannot save the guest port memory: {e}");
            }
        }
        observed.ports = learned;

        let saved = self.lans.load().unwrap_or_else(|e| {
            tracing::warn!("cannot read the bridged networks' LAN records: {e}");
            Default::default()
        });
        let learned = lan::learn(&saved, desired, &observed.kernel);
        if save && learned != saved {
            if let Err(e) = self.lans.save(&saved, &learned) {
                tracing::warn!("cannot save the bridged networks' LAN records: {e}");
            }
        }
        observed.lans = learned;
    }
}
