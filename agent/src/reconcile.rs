//! One reconcile pass: observe → diff → plan → apply → observe again →
//! report (design §5). The same pass serves `--check` (stops after the plan),
//! `--once` and the daemon.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use crate::apply::apply;
use crate::desired::DesiredState;
use crate::kernel::sysctl::Sysctls;
use crate::kernel::{Netlink, Result};
use crate::lanstate::{self, LanStore};
use crate::managers;
use crate::observe::{observe, Observed};
use crate::plan::{link_owner, plan, Plan, PlanOptions};
use crate::ports::{self, PortStore};
use crate::report::{PassKind, PassReport};
use crate::uplink::RolledBack;

/// The kernel handles a pass works with.
pub struct Reconciler {
    netlink: Netlink,
    sysctls: Sysctls,
    /// Indexes of the links kvmnet owned at the last observation, so that
    /// kernel events can be filtered to what concerns us.
    owned: Mutex<HashSet<u32>>,
    /// Guest port memory; without it bridges are recreated without ports.
    ports: Option<PortStore>,
    /// What bridged networks' bridges carry; without it a bridge deleted by
    /// hand is recreated without the host's LAN addresses.
    lans: Option<LanStore>,
    /// Bridged networks whose uplink take-over was rolled back.
    rolled_back: RolledBack,
}

impl Reconciler {
    /// Connects to the network namespace of the calling thread.
    pub fn connect() -> Result<Reconciler> {
        Ok(Reconciler {
            netlink: Netlink::connect()?,
            sysctls: Sysctls::new(),
            owned: Mutex::default(),
            ports: None,
            lans: None,
            rolled_back: RolledBack::default(),
        })
    }

    /// Keeps state under `state_dir`: the guest ports of each bridge, to
    /// re-attach them when the bridge is recreated.
    pub fn with_state_dir(mut self, state_dir: &Path) -> Reconciler {
        self.ports = Some(PortStore::new(state_dir));
        self.lans = Some(LanStore::new(state_dir));
        self
    }

    /// Like [`Reconciler::remember_ports`], for the LAN records.
    fn remember_lans(&self, desired: &DesiredState, observed: &mut Observed, save: bool) {
        let Some(store) = &self.lans else {
            return;
        };
        let saved = store.load().unwrap_or_else(|e| {
            tracing::warn!("cannot read the bridged networks' LAN records: {e}");
            Default::default()
        });
        let learned = lanstate::learn(&saved, desired, &observed.kernel);
        if save && learned != saved {
            if let Err(e) = store.save(&saved, &learned) {
                tracing::warn!("cannot save the bridged networks' LAN records: {e}");
            }
        }
        observed.lans = learned;
    }

    /// Fills in the remembered guest ports, updated from what `observed`
    /// shows; `save` (converging passes only) writes the update back.
    fn remember_ports(&self, desired: &DesiredState, observed: &mut Observed, save: bool) {
        let Some(store) = &self.ports else {
            return;
        };
        // The memory is an aid: a pass goes on without it.
        let remembered = store.load().unwrap_or_else(|e| {
            tracing::warn!("cannot read the guest port memory: {e}");
            Default::default()
        });
        let learned = ports::learn(&remembered, desired, &observed.kernel);
        if save && learned != remembered {
            if let Err(e) = store.save(&learned) {
                tracing::warn!("cannot save the guest port memory: {e}");
            }
        }
        observed.ports = learned;
    }

    /// Kernel writes made so far.
    pub fn writes(&self) -> u64 {
        self.netlink.writes() + self.sysctls.writes()
    }

    pub async fn observe(&self, desired: &DesiredState) -> Result<Observed> {
        let observed = observe(&self.netlink, &self.sysctls, desired).await?;
        let owned = observed
            .kernel
            .links
            .iter()
            .filter(|l| link_owner(l).is_some())
            .map(|l| l.index)
            .collect();
        *self.owned.lock().unwrap_or_else(|e| e.into_inner()) = owned;
        Ok(observed)
    }

    /// Whether `index` was a link of kvmnet's at the last observation.
    pub fn owns_link(&self, index: u32) -> bool {
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&index)
    }

    fn plan(desired: &DesiredState, observed: &Observed) -> Plan {
        // A rejected file without a last good copy keeps its networks:
        // nothing is pruned meanwhile.
        plan(
            desired,
            observed,
            PlanOptions {
                prune: desired.complete,
            },
        )
    }

    /// Drift audit: changes nothing.
    pub async fn check(&self, desired: &DesiredState) -> Result<PassReport> {
        let mut observed = self.observe(desired).await?;
        self.remember_ports(desired, &mut observed, false);
        self.remember_lans(desired, &mut observed, false);
        let plan = Self::plan(desired, &observed);
        let mut report = PassReport::build(PassKind::Check, desired, &plan, &[], None, 0);
        report.warnings = managers::uplink_warnings(desired, &observed.kernel);
        Ok(report)
    }

    /// Converges, then verifies against a second observation.
    pub async fn converge(&self, desired: &DesiredState) -> Result<PassReport> {
        let writes_before = self.writes();
        let mut observed = self.observe(desired).await?;
        self.remember_ports(desired, &mut observed, true);
        self.remember_lans(desired, &mut observed, true);
        let mut plan = Self::plan(desired, &observed);
        self.rolled_back.hold(&mut plan, desired);
        let warnings = managers::uplink_warnings(desired, &observed.kernel);
        if plan.steps.is_empty() {
            let mut report =
                PassReport::build(PassKind::Converge, desired, &plan, &[], Some(&plan), 0);
            report.warnings = warnings;
            return Ok(report);
        }
        let outcomes = apply(&self.netlink, &self.sysctls, &observed.kernel, &plan.steps).await;
        self.rolled_back.record(&plan, &outcomes, desired);
        let mut after = self.observe(desired).await?;
        self.remember_ports(desired, &mut after, true);
        self.remember_lans(desired, &mut after, true);
        let verify = Self::plan(desired, &after);
        let writes = self.writes() - writes_before;
        let mut report = PassReport::build(
            PassKind::Converge,
            desired,
            &plan,
            &outcomes,
            Some(&verify),
            writes,
        );
        report.warnings = warnings;
        Ok(report)
    }
}
