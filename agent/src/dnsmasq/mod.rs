//! DHCP and DNS: one supervised dnsmasq per network.
//!
//! The same shape as the other subsystems: [`Supervisor::observe_desired`]
//! reads the instances (I/O), [`plan()`] renders each network's files
//! ([`render`]) and diffs them against what runs ([`plan`]; both pure),
//! [`Supervisor::apply`] starts, reloads and stops dnsmasq ([`process`]).
//! [`leases`] parses its lease file for `kvmnet-agent leases`.

pub mod leasediff;
pub mod leases;
pub mod logs;
pub mod paths;
pub mod plan;
pub mod process;
pub mod release;
pub mod render;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::desired::{DesiredNetwork, DesiredState};
use crate::core::{Change, Drift, Failure, LeaveAlone, Outcome, Resource, StepResult};
use leases::Lease;

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
    /// Each desired network's lease file, as read.
    pub leases: BTreeMap<String, LeaseFile>,
    /// When it was read, in seconds since the epoch: leases that expired
    /// by then are not active.
    pub now: u64,
}

/// A network's lease file: its leases and the server's DUID.
#[derive(Debug, Clone, Default)]
pub struct LeaseFile {
    pub leases: Vec<Lease>,
    pub server_duid: Option<String>,
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
    // A network render refuses fails, and keeps whatever runs, like one
    // that cannot be converged.
    let mut leave_alone = leave_alone.clone();
    let mut failures = Vec::new();
    for net in desired.networks.values() {
        let paths = dirs.instance(&net.name);
        match render::render(net, &paths, run_as, &observed.host_resolvers) {
            Ok(Some(files)) => {
                wanted.insert(net.name.clone(), files);
                bridges.insert(net.name.clone(), net.bridge.clone());
            }
            Ok(None) => {}
            Err(e) => {
                failures.push(Failure {
                    network: net.name.clone(),
                    message: format!("its dnsmasq configuration is refused: {e}"),
                });
                leave_alone.insert(net.name.clone());
            }
        }
    }
    let names: BTreeSet<String> = desired.networks.keys().cloned().collect();
    let mut p = plan::plan(&plan::Inputs {
        wanted: &wanted,
        bridges: &bridges,
        observed: &observed.instances,
        leave_alone: &leave_alone,
        desired: &names,
        prune,
    });
    p.failures = failures;
    for net in desired.networks.values() {
        if !wanted.contains_key(&net.name) || !serves_dhcp(net) {
            continue;
        }
        let file = observed.leases.get(&net.name).cloned().unwrap_or_default();
        p.usage.insert(
            net.name.clone(),
            leasediff::usage(net, &file.leases, observed.now),
        );
        if leave_alone.contains(&net.name) {
            continue;
        }
        plan_leases(&mut p, net, &file, observed.now);
    }
    p
}

fn serves_dhcp(net: &DesiredNetwork) -> bool {
    net.spec.ip.iter().any(|ip| ip.dhcp.is_some())
}

/// Stale leases of `net`: drift, and a release each where the subnet's
/// `dhcp.release_stale` allows. Releases follow the network's other
/// actions (a restart first), as apply runs one network's actions in order.
fn plan_leases(p: &mut DnsPlan, net: &DesiredNetwork, file: &LeaseFile, now: u64) {
    for stale in leasediff::stale(net, &file.leases, now) {
        let (wanted, found) = stale.wanted_found();
        p.drift.push(Drift {
            network: Some(net.name.clone()),
            resource: Resource::Lease,
            object: stale.client(),
            change: Change::Changed,
            field: Some("address".into()),
            wanted: Some(wanted),
            found: Some(found),
        });
        let release = net
            .spec
            .ip
            .iter()
            .find(|ip| ip.address.0.contains(&stale.lease.ip))
            .and_then(|ip| ip.dhcp.as_ref())
            .is_none_or(|dhcp| dhcp.release_stale);
        if release {
            p.actions.push(DnsAction::Release {
                network: net.name.clone(),
                bridge: net.bridge.clone(),
                lease: stale.lease,
                server_duid: file.server_duid.clone(),
            });
        }
    }
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
        let leases = desired
            .networks
            .keys()
            .map(|network| {
                let text = std::fs::read_to_string(self.dirs().instance(network).leases)
                    .unwrap_or_default();
                let file = LeaseFile {
                    leases: leases::parse(&text),
                    server_duid: leases::server_duid(&text),
                };
                (network.clone(), file)
            })
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        DnsObserved {
            instances: self.observe(desired.networks.keys().map(String::as_str)),
            host_resolvers,
            leases,
            now,
        }
    }

    /// Carries out `actions`, all networks in parallel (a start waits for
    /// dnsmasq to report "started"). Networks in `leave_alone` (an earlier
    /// kernel step failed: no bridge to serve) are skipped.
    pub async fn apply(&self, actions: &[DnsAction], leave_alone: &LeaveAlone) -> Vec<Outcome> {
        // One network's actions in order (a release after the restart that
        // precedes it), networks in parallel.
        let mut by_network: BTreeMap<&str, Vec<&DnsAction>> = BTreeMap::new();
        for action in actions {
            by_network.entry(action.network()).or_default().push(action);
        }
        let outcomes = join_all(by_network.into_iter().map(|(network, actions)| async move {
            let mut outcomes = Vec::with_capacity(actions.len());
            let mut failed = leave_alone.contains(network);
            for action in actions {
                let result = if failed {
                    StepResult::Skipped("an earlier step of this network failed".into())
                } else {
                    match self.run(action).await {
                        Ok(()) => StepResult::Done,
                        Err(e) => {
                            failed = true;
                            StepResult::Failed(format!("{network}: {e}"))
                        }
                    }
                };
                outcomes.push(Outcome {
                    network: Some(network.to_string()),
                    action: action.to_string(),
                    result,
                });
            }
            outcomes
        }))
        .await;
        outcomes.into_iter().flatten().collect()
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
            DnsAction::StopDuplicate { network, pid } => self.stop_process(network, *pid).await,
            DnsAction::WritePidFile { network, pid } => self.write_pid_file(network, *pid),
            DnsAction::Release {
                network,
                bridge,
                lease,
                server_duid,
            } => {
                self.count_write();
                let lease_file = self.dirs().instance(network).leases;
                release::release(bridge, lease, server_duid.as_deref(), &lease_file).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::testutil::desired;

    #[test]
    fn a_network_render_refuses_fails_and_keeps_what_runs() {
        let mut state =
            desired("[networks.a]\nmode = \"nat\"\n[[networks.a.ip]]\naddress = \"10.0.0.1/24\"\n");
        // Validation refuses such a name; render is the last guard.
        state.networks.get_mut("a").unwrap().bridge = "kv*".into();
        let running = ObservedInstance {
            pid: Some(7),
            ..ObservedInstance::default()
        };
        let observed = DnsObserved {
            instances: BTreeMap::from([("a".to_string(), running)]),
            ..DnsObserved::default()
        };
        let dirs = Dirs::new(Path::new("/run/kvmnet"), Path::new("/var/lib/kvmnet"));
        let run_as = RunAs {
            user: "dnsmasq".into(),
            group: None,
        };
        let p = plan(&state, &observed, &dirs, &run_as, &LeaveAlone::new(), true);
        assert_eq!(p.failures.len(), 1, "{p:?}");
        assert_eq!(p.failures[0].network, "a");
        assert!(p.actions.is_empty(), "what runs is kept: {p:?}");
    }
}
