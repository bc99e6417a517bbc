//! DHCP and DNS: one supervised dnsmasq per network (design §1, §4).
//!
//! `render` (pure) makes each network's files, `plan` (pure) diffs them
//! against the observed instances, `process` (I/O) starts, reloads and stops
//! dnsmasq; `leases` parses its lease file for `kvmnet-agent leases`.

pub mod leases;
pub mod logs;
pub mod paths;
pub mod plan;
pub mod process;
pub mod render;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use crate::apply::{Outcome, StepResult};
use crate::desired::DesiredState;

pub use plan::{DnsAction, DnsPlan};

/// Where the host's nameservers, the upstream of networks without
/// forwarders, are read from.
const RESOLV_CONF: &str = "/etc/resolv.conf";
pub use process::Supervisor;

impl Supervisor {
    /// Observes the instances and plans their repairs. `untouched` networks
    /// (those that cannot be converged) keep whatever runs.
    pub fn plan(
        &self,
        desired: &DesiredState,
        untouched: &BTreeSet<String>,
        prune: bool,
    ) -> DnsPlan {
        let mut wanted = BTreeMap::new();
        let mut bridges = BTreeMap::new();
        // Read once per pass: a change of the host's resolvers is passed on
        // by the next pass (a SIGHUP, no restart).
        let host_resolvers = std::fs::read_to_string(RESOLV_CONF)
            .map(|text| render::parse_resolv_conf(&text))
            .unwrap_or_default();
        // A network render refuses keeps whatever runs, like one that
        // cannot be converged.
        let mut untouched = untouched.clone();
        for net in desired.networks.values() {
            let paths = self.dirs().instance(&net.name);
            match render::render(net, &paths, self.run_as(), &host_resolvers) {
                Ok(Some(files)) => {
                    wanted.insert(net.name.clone(), files);
                    bridges.insert(net.name.clone(), net.bridge.clone());
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(network = %net.name, "dnsmasq: {e}");
                    untouched.insert(net.name.clone());
                }
            }
        }
        let observed = self.observe(desired.networks.keys().map(String::as_str));
        let names: BTreeSet<String> = desired.networks.keys().cloned().collect();
        plan::plan(&plan::Inputs {
            wanted: &wanted,
            bridges: &bridges,
            observed: &observed,
            untouched: &untouched,
            desired: &names,
            prune,
        })
    }

    /// Carries out `actions`, all networks in parallel (a start waits for
    /// dnsmasq to report "started"). Networks in `skip` (an earlier kernel
    /// step failed: no bridge to serve) are skipped.
    pub async fn apply(&self, actions: &[DnsAction], skip: &BTreeSet<String>) -> Vec<Outcome> {
        join_all(actions.iter().map(|action| async move {
            let network = action.network();
            let result = if skip.contains(network) {
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
