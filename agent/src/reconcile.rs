//! One reconcile pass: observe → diff → plan → apply → observe again →
//! report (design §5). The same pass serves `--check` (stops after the plan),
//! `--once` and the daemon.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use crate::apply::apply;
use crate::desired::DesiredState;
use crate::firewall::{Audit, Firewall};
use crate::kernel::sysctl::Sysctls;
use crate::kernel::{Netlink, Result};
use crate::observe::{observe, Observed};
use crate::plan::{link_owner, plan, Plan, PlanOptions};
use crate::report::{PassKind, PassReport};

/// The kernel handles a pass works with.
pub struct Reconciler {
    netlink: Netlink,
    sysctls: Sysctls,
    /// Indexes of the links kvmnet owned at the last observation, so that
    /// kernel events can be filtered to what concerns us.
    owned: Mutex<HashSet<u32>>,
    firewall: Firewall,
}

impl Reconciler {
    /// Connects to the network namespace of the calling thread.
    pub fn connect() -> Result<Reconciler> {
        Ok(Reconciler {
            netlink: Netlink::connect()?,
            sysctls: Sysctls::new(),
            owned: Mutex::default(),
            firewall: Firewall::new(),
        })
    }

    /// Kernel writes made so far.
    pub fn writes(&self) -> u64 {
        self.netlink.writes() + self.sysctls.writes() + self.firewall.writes()
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
        let observed = self.observe(desired).await?;
        let mut plan = Self::plan(desired, &observed);
        let audit = self.audit_firewall(desired, &plan).await;
        merge(&mut plan, &audit);
        let mut report = PassReport::build(PassKind::Check, desired, &plan, &[], None, 0);
        report.warnings = audit.warnings;
        Ok(report)
    }

    /// Converges, then verifies against a second observation.
    pub async fn converge(&self, desired: &DesiredState) -> Result<PassReport> {
        let writes_before = self.writes();
        let observed = self.observe(desired).await?;
        let mut plan = Self::plan(desired, &observed);
        let audit = self.audit_firewall(desired, &plan).await;
        if plan.steps.is_empty() && audit.drift.is_empty() {
            merge(&mut plan, &audit);
            let mut report =
                PassReport::build(PassKind::Converge, desired, &plan, &[], Some(&plan), 0);
            report.warnings = audit.warnings;
            return Ok(report);
        }
        let mut outcomes = apply(&self.netlink, &self.sysctls, &observed.kernel, &plan.steps).await;
        outcomes.extend(self.firewall.repair(&audit).await);
        let mut verify = Self::plan(desired, &self.observe(desired).await?);
        let verify_audit = self.audit_firewall(desired, &verify).await;
        merge(&mut verify, &verify_audit);
        merge(&mut plan, &audit);
        let writes = self.writes() - writes_before;
        let mut report = PassReport::build(
            PassKind::Converge,
            desired,
            &plan,
            &outcomes,
            Some(&verify),
            writes,
        );
        report.warnings = verify_audit.warnings;
        Ok(report)
    }

    /// The firewall's audit, leaving alone the networks the plan cannot converge.
    async fn audit_firewall(&self, desired: &DesiredState, plan: &Plan) -> Audit {
        let failed: BTreeSet<&str> = plan.failures.iter().map(|f| f.network.as_str()).collect();
        self.firewall.audit(desired, &failed).await
    }
}

/// Adds the firewall's drift and failures to a plan's, for the report.
fn merge(plan: &mut Plan, audit: &Audit) {
    plan.drift.extend(audit.drift.iter().cloned());
    plan.failures.extend(audit.failures.iter().cloned());
}
