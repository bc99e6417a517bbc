//! DHCP and DNS: one supervised dnsmasq per network (design §1, §4).
//!
//! The same shape as the other subsystems: [`Supervisor::observe_desired`]
//! reads the instances (I/O), [`plan()`] renders each network's files
//! ([`render`]) and diffs them against what runs ([`plan`]; both pure),
//! [`Supervisor::apply`] starts, reloads and stops dnsmasq ([`process`]).
//! [`leases`] parses its lease file for `kvmnet-agent leases`.

pub mod leases;
pub mod logs;
pub mod paths;
pub mod plan;
pub mod process;
pub mod render;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use crate::config::desired::DesiredState;
use crate::core::{LeaveAlone, Outcome, StepResult};

use paths::Dirs;
use plan::ObservedInstance;
pub use plan::{DnsAction, DnsPlan};
use render::RunAs;

/// Where the host's nameservers, the upstream of networks without
/// forwarders, are read from.
const RESOLV_CONF: &str = "/etc/resolv.conf";
pub use process::Supervisor;

/// What a pass observes of dnsmasq: each network's instance (process and
/// files) and the host's nameservers, the upstream of networks without
/// forwarders.
#[derive(Debug, Clone, Default)]
pub struct DnsObserved {
    pub instances: BTreeMap<String, ObservedInstance>,
    pub host_resolvers: Vec<String>,
}

/// Renders what each network wants and diffs it against `observed`: pure.
/// Networks in `leave_alone` keep whatever runs; with `prune`, instances of
/// networks no longer in the files are stopped.
pub fn plan(
    desired: &DesiredState,
    observed: &DnsObserved,
    dirs: &Dirs,
    run_as: &RunAs,
    leave_alone: &LeaveAlone,
    prune: bool,
) -> DnsPlan {
    let mut wanted = BTreeMap::new();
    let mut bridges = BTreeMap::new();
    for net in desired.networks.values() {
        let paths = dirs.instance(&net.name);
        if let Some(files) = render::render(net, &paths, run_as, &observed.host_resolvers) {
            wanted.insert(net.name.clone(), files);
            bridges.insert(net.name.clone(), net.bridge.clone());
        }
    }
    let names: BTreeSet<String> = desired.networks.keys().cloned().collect();
    plan::plan(&plan::Inputs {
        wanted: &wanted,
        bridges: &bridges,
        observed: &observed.instances,
        leave_alone,
        desired: &names,
        prune,
    })
}

impl Supervisor {
    /// Observes the instances of `desired`'s networks and of any other
    /// network found in the run directory, and the host's nameservers.
    pub fn observe_desired(&self, desired: &DesiredState) -> DnsObserved {
        // Read once per pass: a change of the host's resolvers is passed on
        // by the next pass (a SIGHUP, no restart).
        let host_resolvers = std::fs::read_to_string(RESOLV_CONF)
            .map(|text| render::parse_resolv_conf(&text))
            .unwrap_or_default();
        DnsObserved {
            instances: self.observe(desired.networks.keys().map(String::as_str)),
            host_resolvers,
        }
    }

    /// Carries out `actions`, all networks in parallel (a start waits for
    /// dnsmasq to report "started"). Networks in `leave_alone` (an earlier
    /// kernel step failed: no bridge to serve) are skipped.
    pub async fn apply(&self, actions: &[DnsAction], leave_alone: &LeaveAlone) -> Vec<Outcome> {
        join_all(actions.iter().map(|action| async move {
            let network = action.network();
            let result = if leave_alone.contains(network) {
                StepResult::Skipped("an earlier step of this network failed".into())
            } else {
                match self.run(action).await {
                    Ok(()) => StepResult::Done,
                    Err(e) => StepResult::Failed(format!("{network}: {e}")),
                }
            };
            Outcome {
                network: Some(network.to_string()),
                action: action.to_string(),
                result,
            }
        }))
        .await
    }

    async fn run(&self, action: &DnsAction) -> Result<(), String> {
        match action {
            DnsAction::Start { network, files } => self.start(network, files).await.map(drop),
            DnsAction::Restart {
                network,
                pid,
                files,
            } => {
                self.stop_process(network, *pid).await?;
                self.start(network, files).await.map(drop)
            }
            DnsAction::Reload {
                network,
                pid,
                files,
            } => self.reload(network, *pid, files),
            DnsAction::Stop { network, pid } => self.remove(network, *pid).await,
        }
    }
}
