//! One reconcile pass over the three subsystems, each in the same shape:
//! observe (I/O) → plan (pure) → apply → observe again to verify → report.
//! The same pass serves `--check` (stops after the plans), `--once` and the
//! daemon.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Mutex;

use crate::config::desired::DesiredState;
use crate::core::{leave_alone, link_owner, LeaveAlone, Outcome, StepResult};
use crate::dnsmasq::{self, DnsObserved, DnsPlan};
use crate::firewall::{Firewall, FirewallPlan};
use crate::kernel::sysctl::{Sysctl, Sysctls};
use crate::kernel::{Netlink, Result};
use crate::net::apply::apply;
use crate::net::bridged::managers;
use crate::net::bridged::rollback::RolledBack;
use crate::net::memory::{Memory, Recall};
use crate::net::observe::{host_links, observe, Observed};
use crate::net::plan::{plan, Action, Plan, PlanOptions, Step};
use crate::report::{PassKind, PassReport};

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

/// What a pass observed of the kernel and of dnsmasq, with what the agent
/// remembers.
struct PassObservation {
    kernel: Observed,
    recall: Recall,
    dnsmasq: DnsObserved,
}

/// The three subsystems' plans for one pass.
struct PassPlan {
    /// The kernel plan, with the firewall's and dnsmasq's drift and
    /// failures merged in for the report.
    kernel: Plan,
    firewall: FirewallPlan,
    dnsmasq: DnsPlan,
    warnings: Vec<String>,
}

impl PassPlan {
    fn is_empty(&self) -> bool {
        self.kernel.steps.is_empty()
            && self.firewall.drift.is_empty()
            && self.dnsmasq.actions.is_empty()
    }
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

    /// Changes made so far: kernel objects, sysctls, nft transactions,
    /// dnsmasq's files, starts and signals.
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

    /// Whether `index` was a link of kvmnet's at the last observation.
    pub fn owns_link(&self, index: u32) -> bool {
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&index)
    }

    /// Argo CD's `allowEmpty`, for a pass that would remove every network:
    /// a directory emptied by accident (`rm -rf` and a copy not yet back, a
    /// checkout half done) must not tear the host's networks down. Returns
    /// why the pass is refused, or `None` when `desired` declares networks
    /// or kvmnet runs none. `config_files`: how many files the directory holds.
    pub async fn refuse_empty(
        &self,
        desired: &DesiredState,
        config_dir: &Path,
        config_files: usize,
    ) -> Result<Option<String>> {
        if !desired.networks.is_empty() || !desired.complete {
            return Ok(None);
        }
        let mut running: BTreeSet<String> = self
            .netlink
            .snapshot()
            .await?
            .links
            .iter()
            .filter_map(|l| link_owner(l).map(str::to_string))
            .collect();
        running.extend(
            self.dnsmasq
                .observe([])
                .into_iter()
                .filter(|(_, instance)| instance.exists())
                .map(|(network, _)| network),
        );
        if running.is_empty() {
            return Ok(None);
        }
        let what = if config_files == 0 {
            "is empty"
        } else {
            "declares no networks"
        };
        let names: Vec<&str> = running.iter().map(String::as_str).collect();
        Ok(Some(format!(
            "the config directory {} {what}; refusing to remove {} network(s) ({}); --allow-empty to allow",
            config_dir.display(),
            running.len(),
            names.join(", ")
        )))
    }

    /// Drift audit: changes nothing.
    pub async fn check(&self, desired: &DesiredState) -> Result<PassReport> {
        Ok(self.check_observed(desired).await?.1)
    }

    /// A drift audit, with the kernel observation it was made against.
    pub async fn check_observed(&self, desired: &DesiredState) -> Result<(Observed, PassReport)> {
        let (desired, observation) = self.observe(desired).await?;
        let desired = &desired;
        let plan = self.plan(desired, &observation, false).await;
        let mut report = PassReport::build(PassKind::Check, desired, &plan.kernel, &[], None, 0);
        report.set_dhcp_usage(&plan.dnsmasq.usage);
        report.warnings = plan.warnings;
        Ok((observation.kernel, report))
    }

    /// Converges, then verifies against a second observation.
    pub async fn converge(&self, desired: &DesiredState) -> Result<PassReport> {
        let writes_before = self.writes();
        let (desired, observation) = self.observe(desired).await?;
        let desired = &desired;
        let mut warnings = self.memory.save(&observation.recall);
        warnings.extend(self.dnsmasq.cap_logs());
        let plan = self.plan(desired, &observation, true).await;
        warnings.extend(plan.warnings.iter().cloned());
        if plan.is_empty() {
            let mut report = PassReport::build(
                PassKind::Converge,
                desired,
                &plan.kernel,
                &[],
                Some(&plan.kernel),
                0,
            );
            report.set_dhcp_usage(&plan.dnsmasq.usage);
            report.warnings = warnings;
            return Ok(report);
        }

        // Forwarding is turned on last, once the firewall table is in place:
        // without it, guests' traffic would be forwarded unfiltered and
        // un-NATed (fail closed).
        let (forwarding, steps): (Vec<Step>, Vec<Step>) =
            plan.kernel.steps.iter().cloned().partition(is_forwarding);
        let mut outcomes = apply(
            &self.netlink,
            &self.sysctls,
            &observation.kernel.kernel,
            &steps,
        )
        .await;
        self.rolled_back.record(&plan.kernel, &outcomes, desired);
        // The firewall and dnsmasq after the kernel steps: they serve the
        // bridges and their addresses. A network whose kernel steps failed
        // has no bridge for dnsmasq to serve.
        let no_bridge: LeaveAlone = outcomes
            .iter()
            .filter(|o| o.result != StepResult::Done)
            .filter_map(|o| o.network.clone())
            .collect();
        let (firewall, dnsmasq) = tokio::join!(
            self.firewall.apply(&plan.firewall),
            self.dnsmasq.apply(&plan.dnsmasq.actions, &no_bridge)
        );
        let table_in_place = plan.firewall.failures.is_empty()
            && firewall.iter().all(|o| o.result == StepResult::Done);
        outcomes.extend(firewall);
        outcomes.extend(dnsmasq);
        if table_in_place {
            let kernel = &observation.kernel.kernel;
            outcomes.extend(apply(&self.netlink, &self.sysctls, kernel, &forwarding).await);
        } else {
            outcomes.extend(forwarding.iter().map(|step| Outcome {
                network: step.network.clone(),
                action: step.action.to_string(),
                result: StepResult::Skipped(
                    "the firewall table is not in place; forwarding stays off rather than forward guests' traffic unfiltered"
                        .into(),
                ),
            }));
        }

        let (_, after) = &self.observe(desired).await?;
        warnings.extend(self.memory.save(&after.recall));
        let verify = self.plan(desired, after, false).await;
        let writes = self.writes() - writes_before;
        let mut report = PassReport::build(
            PassKind::Converge,
            desired,
            &plan.kernel,
            &outcomes,
            Some(&verify.kernel),
            writes,
        );
        report.set_dhcp_usage(&verify.dnsmasq.usage);
        report.warnings = warnings;
        Ok(report)
    }

    /// Observes the kernel and dnsmasq, and recalls the memory. Returns the
    /// desired state on this host too: overlay networks resolved against
    /// the links and addresses observed (see [`DesiredState::on_host`]).
    async fn observe(&self, desired: &DesiredState) -> Result<(DesiredState, PassObservation)> {
        let kernel = observe(&self.netlink, &self.sysctls, desired).await?;
        let desired = &desired.on_host(&host_links(&kernel.kernel));
        let owned = kernel
            .kernel
            .links
            .iter()
            .filter(|l| link_owner(l).is_some())
            .map(|l| l.index)
            .collect();
        *self.owned.lock().unwrap_or_else(|e| e.into_inner()) = owned;
        let recall = self.memory.recall(desired, &kernel.kernel);
        let dnsmasq = self.dnsmasq.observe_desired(desired);
        Ok((
            desired.clone(),
            PassObservation {
                kernel,
                recall,
                dnsmasq,
            },
        ))
    }

    /// Plans the three subsystems. The kernel plan decides which networks
    /// cannot be converged; the firewall and dnsmasq leave those alone.
    /// `hold` (the converging plan): bridged take-overs rolled back before
    /// are not tried again.
    async fn plan(&self, desired: &DesiredState, seen: &PassObservation, hold: bool) -> PassPlan {
        // A rejected file without a last good copy keeps its networks:
        // nothing is pruned meanwhile.
        let options = PlanOptions {
            prune: desired.complete,
        };
        let mut kernel = plan(desired, &seen.kernel, &seen.recall.learned, options);
        if hold {
            self.rolled_back.hold(&mut kernel, desired);
        }
        let leave_alone = leave_alone(&kernel.failures);
        let seen_firewall = self.firewall.observe(desired, &leave_alone).await;
        let firewall = crate::firewall::plan(desired, &seen_firewall, &leave_alone);
        let dnsmasq = dnsmasq::plan(
            desired,
            &seen.dnsmasq,
            self.dnsmasq.dirs(),
            self.dnsmasq.run_as(),
            &leave_alone,
            desired.complete,
        );
        let mut warnings = seen.recall.warnings.clone();
        warnings.extend(managers::uplink_warnings(desired, &seen.kernel.kernel));
        warnings.extend(firewall.warnings.iter().cloned());
        kernel.drift.extend(dnsmasq.drift.iter().cloned());
        kernel.drift.extend(firewall.drift.iter().cloned());
        kernel.failures.extend(firewall.failures.iter().cloned());
        kernel.failures.extend(dnsmasq.failures.iter().cloned());
        PassPlan {
            kernel,
            firewall,
            dnsmasq,
            warnings,
        }
    }
}

/// A host-wide forwarding sysctl turned on for nat and route networks.
fn is_forwarding(step: &Step) -> bool {
    matches!(
        step.action,
        Action::SetSysctl {
            key: Sysctl::IpForward | Sysctl::Ipv6Forwarding,
            ..
        }
    )
}
