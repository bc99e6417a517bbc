//! One reconcile pass: observe → diff → plan → apply → observe again →
//! report (design §5). The same pass serves `--check` (stops after the plan),
//! `--once` and the daemon.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Mutex;

use crate::apply::{apply, StepResult};
use crate::desired::DesiredState;
use crate::dnsmasq::{self, DnsPlan};
use crate::firewall::{self, Firewall, FirewallPlan};
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
    /// The networks' dnsmasq instances, under the run and state directories.
    dnsmasq: dnsmasq::Supervisor,
    /// Guest ports and LAN records; without them a recreated bridge gets
    /// neither its guests nor (bridged) the host's LAN addresses back.
    memory: Memory,
    /// Bridged networks whose uplink take-over was rolled back.
    rolled_back: RolledBack,
    /// Our nftables table.
    firewall: Firewall,
}

impl Reconciler {
    /// Connects to the network namespace of the calling thread; dnsmasq's
    /// files live under `run_dir` and `state_dir`.
    pub fn connect(run_dir: &Path, state_dir: &Path) -> Result<Reconciler> {
        Ok(Reconciler {
            netlink: Netlink::connect()?,
            sysctls: Sysctls::new(),
            owned: Mutex::default(),
            dnsmasq: dnsmasq::Supervisor::new(run_dir, state_dir),
            memory: Memory::new(state_dir),
            rolled_back: RolledBack::default(),
            firewall: Firewall::new(run_dir),
        })
    }

    /// Writes made so far: kernel objects, sysctls, dnsmasq files, processes
    /// and signals.
    pub fn writes(&self) -> u64 {
        self.netlink.writes()
            + self.sysctls.writes()
            + self.dnsmasq.writes()
            + self.firewall.writes()
    }

    /// The pids of the running dnsmasq instances of `desired`'s networks.
    pub fn dnsmasq_pids(&self, desired: &DesiredState) -> BTreeMap<String, i32> {
        self.dnsmasq
            .observe(desired.networks.keys().map(String::as_str))
            .into_iter()
            .filter_map(|(network, instance)| Some((network, instance.pid?)))
            .collect()
    }

    /// The daemon's hook: `hook(network)` runs when a dnsmasq exits.
    pub fn on_dnsmasq_exit(&self, hook: dnsmasq::process::ExitHook) {
        self.dnsmasq.on_exit(hook);
    }

    /// The daemon follows dnsmasq's logs while the watcher lives.
    pub fn follow_dnsmasq_logs(&self) -> std::result::Result<notify::RecommendedWatcher, String> {
        self.dnsmasq.follow_logs()
    }

    /// dnsmasq drift and actions; networks the kernel plan cannot converge
    /// keep whatever runs.
    fn dnsmasq_plan(&self, desired: &DesiredState, plan: &Plan) -> DnsPlan {
        let untouched: BTreeSet<String> = plan.failures.iter().map(|f| f.network.clone()).collect();
        self.dnsmasq.plan(desired, &untouched, desired.complete)
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
        Ok(self.check_observed(desired).await?.1)
    }

    /// A drift audit, with the kernel observation it was made against.
    pub async fn check_observed(&self, desired: &DesiredState) -> Result<(Observed, PassReport)> {
        let mut observed = self.observe(desired).await?;
        self.memory.recall(desired, &mut observed, false);
        let mut plan = Self::plan(desired, &observed);
        let (fw, dns) = tokio::join!(self.firewall_plan(desired, &plan), async {
            self.dnsmasq_plan(desired, &plan)
        });
        plan.drift.extend(dns.drift);
        merge(&mut plan, &fw);
        let mut report = PassReport::build(PassKind::Check, desired, &plan, &[], None, 0);
        report.warnings = managers::uplink_warnings(desired, &observed.kernel);
        report.warnings.extend(fw.warnings);
        Ok((observed, report))
    }

    /// Converges, then verifies against a second observation.
    pub async fn converge(&self, desired: &DesiredState) -> Result<PassReport> {
        let writes_before = self.writes();
        let mut observed = self.observe(desired).await?;
        self.memory.recall(desired, &mut observed, true);
        let mut plan = Self::plan(desired, &observed);
        self.rolled_back.hold(&mut plan, desired);
        let mut warnings = managers::uplink_warnings(desired, &observed.kernel);
        // nft runs in its own processes while dnsmasq's files are read.
        let (fw, dns) = tokio::join!(self.firewall_plan(desired, &plan), async {
            self.dnsmasq_plan(desired, &plan)
        });
        plan.drift.extend(dns.drift.iter().cloned());
        if plan.steps.is_empty() && fw.drift.is_empty() && dns.actions.is_empty() {
            merge(&mut plan, &fw);
            warnings.extend(fw.warnings);
            let mut report =
                PassReport::build(PassKind::Converge, desired, &plan, &[], Some(&plan), 0);
            report.warnings = warnings;
            return Ok(report);
        }
        let mut outcomes = apply(&self.netlink, &self.sysctls, &observed.kernel, &plan.steps).await;
        self.rolled_back.record(&plan, &outcomes, desired);
        // The firewall and dnsmasq after the kernel steps: they serve the
        // bridges and their addresses.
        let no_bridge: BTreeSet<String> = outcomes
            .iter()
            .filter(|o| o.result != StepResult::Done)
            .filter_map(|o| o.network.clone())
            .collect();
        let (firewall, dnsmasq) = tokio::join!(
            self.firewall.apply(&fw),
            self.dnsmasq.apply(&dns.actions, &no_bridge)
        );
        outcomes.extend(firewall);
        outcomes.extend(dnsmasq);
        let mut after = self.observe(desired).await?;
        self.memory.recall(desired, &mut after, true);
        let mut verify = Self::plan(desired, &after);
        let (verify_fw, verify_dns) = tokio::join!(self.firewall_plan(desired, &verify), async {
            self.dnsmasq_plan(desired, &verify)
        });
        verify.drift.extend(verify_dns.drift);
        merge(&mut verify, &verify_fw);
        merge(&mut plan, &fw);
        warnings.extend(verify_fw.warnings);
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

    /// The firewall's plan, leaving alone the networks the kernel plan
    /// cannot converge.
    async fn firewall_plan(&self, desired: &DesiredState, plan: &Plan) -> FirewallPlan {
        let leave_alone: BTreeSet<&str> =
            plan.failures.iter().map(|f| f.network.as_str()).collect();
        let observed = self.firewall.observe(desired, &leave_alone).await;
        firewall::plan(desired, &observed, &leave_alone)
    }
}

/// Adds the firewall's drift and failures to a plan's, for the report.
fn merge(plan: &mut Plan, fw: &FirewallPlan) {
    plan.drift.extend(fw.drift.iter().cloned());
    plan.failures.extend(fw.failures.iter().cloned());
}
