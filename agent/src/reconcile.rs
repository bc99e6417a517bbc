//! One reconcile pass: observe → diff → plan → apply → observe again →
//! report (design §5). The same pass serves `--check` (stops after the plan),
//! `--once` and the daemon.

use crate::apply::apply;
use crate::desired::DesiredState;
use crate::kernel::sysctl::Sysctls;
use crate::kernel::{Netlink, Result};
use crate::observe::{observe, Observed};
use crate::plan::{plan, Plan, PlanOptions};
use crate::report::{PassKind, PassReport};

/// The kernel handles a pass works with.
pub struct Reconciler {
    netlink: Netlink,
    sysctls: Sysctls,
}

impl Reconciler {
    /// Connects to the network namespace of the calling thread.
    pub fn connect() -> Result<Reconciler> {
        Ok(Reconciler {
            netlink: Netlink::connect()?,
            sysctls: Sysctls::new(),
        })
    }

    /// Kernel writes made so far.
    pub fn writes(&self) -> u64 {
        self.netlink.writes() + self.sysctls.writes()
    }

    pub async fn observe(&self, desired: &DesiredState) -> Result<Observed> {
        observe(&self.netlink, &self.sysctls, desired).await
    }

    fn plan(desired: &DesiredState, observed: &Observed) -> Plan {
        // A rejected file keeps its networks: nothing is pruned meanwhile.
        plan(
            desired,
            observed,
            PlanOptions {
                prune: desired.rejected.is_empty(),
            },
        )
    }

    /// Drift audit: changes nothing.
    pub async fn check(&self, desired: &DesiredState) -> Result<PassReport> {
        let observed = self.observe(desired).await?;
        let plan = Self::plan(desired, &observed);
        Ok(PassReport::build(
            PassKind::Check,
            desired,
            &plan,
            &[],
            None,
            0,
        ))
    }

    /// Converges, then verifies against a second observation.
    pub async fn converge(&self, desired: &DesiredState) -> Result<PassReport> {
        let writes_before = self.writes();
        let observed = self.observe(desired).await?;
        let plan = Self::plan(desired, &observed);
        if plan.steps.is_empty() {
            return Ok(PassReport::build(
                PassKind::Converge,
                desired,
                &plan,
                &[],
                Some(&plan),
                0,
            ));
        }
        let outcomes = apply(&self.netlink, &self.sysctls, &observed.kernel, &plan.steps).await;
        let verify = Self::plan(desired, &self.observe(desired).await?);
        let writes = self.writes() - writes_before;
        Ok(PassReport::build(
            PassKind::Converge,
            desired,
            &plan,
            &outcomes,
            Some(&verify),
            writes,
        ))
    }
}
