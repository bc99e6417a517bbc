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
use crate::managers;
use crate::memory::Memory;
use crate::observe::{observe, Observed};
use crate::plan::{link_owner, plan, Plan, PlanOptions};
use crate::report::{PassKind, PassReport};
use crate::uplink::RolledBack;

/// The kernel handles a pass works with.
pub struct Reconciler {
    netlink: Netlink,
    sysctls: Sysctls,
    /// Indexes of the links kvmnet owned at the last observation, so that
    /// kernel events can be filtered to what concerns us.
    owned: Mutex<HashSet<u32>>,
    /// Guest ports and LAN records; without them a recreated bridge gets
    /// neither its guests nor (bridged) the host's LAN addresses back.
    memory: Option<Memory>,
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
            memory: None,
            rolled_back: RolledBack::default(),
        })
    }

    /// Keeps state under `state_dir` (see [`Memory`]).
    pub fn with_state_dir(mut self, state_dir: &Path) -> Reconciler {
        self.memory = Some(Memory::new(state_dir));
        self
    }

    fn recall(&self, desired: &DesiredState, observed: &mut Observed, save: bool) {
        if let Some(memory) = &self.memory {
            memory.recall(desired, observed, save);
        }
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
        self.recall(desired, &mut observed, false);
        let plan = Self::plan(desired, &observed);
        let mut report = PassReport::build(PassKind::Check, desired, &plan, &[], None, 0);
        report.warnings = managers::uplink_warnings(desired, &observed.kernel);
        Ok(report)
    }

    /// Converges, then verifies against a second observation.
    pub async fn converge(&self, desired: &DesiredState) -> Result<PassReport> {
        let writes_before = self.writes();
        let mut observed = self.observe(desired).await?;
        self.recall(desired, &mut observed, true);
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
        self.recall(desired, &mut after, true);
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
