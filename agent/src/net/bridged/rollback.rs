//! Carrying out an uplink move (mode bridge): the bridge built around the
//! uplink, the uplink's addresses and routes moved onto it, a connectivity
//! probe, and on any failure an exact rollback to the state saved in the
//! plan. Also the reverse move when a bridged network is removed.
//!
//! Between deleting the uplink's first route and adding the bridge's last
//! one the host has no (or partial) connectivity on the LAN: that window is
//! only the netlink round trips of the moves, made back to back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::desired::DesiredState;
use crate::config::model::Network;
use crate::core::Failure;
use crate::core::{Outcome, StepResult};
use crate::kernel::probe::{ArpProbe, ProbeFrom};
use crate::kernel::{Address, KernelError, LinkRef, Netlink, Route};
use crate::net::bridged::takeover::{GiveBack, ProbeSpec, TakeOver};
use crate::net::plan::{Action, Plan};

/// Take-overs that were rolled back, by network, with the spec they were
/// made for: not retried until that network's spec changes (or the agent
/// restarts), since each attempt costs the host its LAN for up to the probe
/// timeout, and the daemon retries failed passes.
#[derive(Debug, Default)]
pub struct RolledBack {
    held: Mutex<HashMap<String, (Network, String)>>,
}

impl RolledBack {
    /// Replaces the steps of networks whose take-over was rolled back, with
    /// the same spec, by a failure saying why.
    pub fn hold(&self, plan: &mut Plan, desired: &DesiredState) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mut blocked = Vec::new();
        for step in &plan.steps {
            let (Action::TakeOverUplink(_), Some(net)) = (&step.action, &step.network) else {
                continue;
            };
            if let (Some((spec, why)), Some(d)) = (held.get(net), desired.networks.get(net)) {
                if *spec == d.spec {
                    blocked.push(Failure {
                        network: net.clone(),
                        message: format!(
                            "not retried: the last take-over of uplink {} was {why}; change the network's file or restart the agent to try again",
                            d.spec.uplink.as_deref().unwrap_or_default()
                        ),
                    });
                }
            }
        }
        plan.steps.retain(|s| {
            !blocked
                .iter()
                .any(|b| Some(&b.network) == s.network.as_ref())
        });
        plan.failures.extend(blocked);
    }

    /// Records the take-overs of `plan` that `outcomes` (one per step) show
    /// rolled back, and forgets those that succeeded.
    pub fn record(&self, plan: &Plan, outcomes: &[Outcome], desired: &DesiredState) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|net, _| desired.networks.contains_key(net));
        for (step, outcome) in plan.steps.iter().zip(outcomes) {
            let (Action::TakeOverUplink(_), Some(net)) = (&step.action, &step.network) else {
                continue;
            };
            match (&outcome.result, desired.networks.get(net)) {
                (StepResult::Failed(why), Some(d)) if why.starts_with("rolled back") => {
                    held.insert(net.clone(), (d.spec.clone(), why.clone()));
                }
                _ => {
                    held.remove(net);
                }
            }
        }
    }
}

/// Takes the uplink over; on failure the host is as before and the error
/// says "rolled back: <why>".
pub async fn take_over(
    netlink: &Netlink,
    indexes: &mut HashMap<String, u32>,
    t: &TakeOver,
) -> Result<(), String> {
    let d = link(indexes, &t.uplink).map_err(|e| e.to_string())?;
    let b = netlink
        .create_bridge(&t.bridge, &t.alias, &t.settings)
        .await
        .map_err(|e| e.to_string())?;
    indexes.insert(t.bridge.clone(), b);
    let d = LinkRef {
        index: d,
        name: &t.uplink,
    };
    let b = LinkRef {
        index: b,
        name: &t.bridge,
    };
    let failure = match move_onto_bridge(netlink, d, b, t).await {
        Err(e) => Some(e.to_string()),
        Ok(()) => match &t.probe {
            None => None,
            Some(probe) => run_probe(b, t.settings.mac.unwrap_or_default(), probe).await,
        },
    };
    let Some(why) = failure else {
        return Ok(());
    };
    let errors = restore(netlink, d, b, &t.addresses, &t.routes).await;
    indexes.remove(&t.bridge);
    if errors.is_empty() {
        Err(format!("rolled back: {why}"))
    } else {
        Err(format!(
            "{why}; the rollback failed too, check {} and {}: {}",
            t.uplink,
            t.bridge,
            errors.join("; ")
        ))
    }
}

/// Moves everything back onto the uplink and deletes the bridge.
pub async fn give_back(
    netlink: &Netlink,
    indexes: &mut HashMap<String, u32>,
    g: &GiveBack,
) -> Result<(), String> {
    let d = LinkRef {
        index: link(indexes, &g.uplink).map_err(|e| e.to_string())?,
        name: &g.uplink,
    };
    let b = LinkRef {
        index: link(indexes, &g.bridge).map_err(|e| e.to_string())?,
        name: &g.bridge,
    };
    let errors = restore(netlink, d, b, &g.addresses, &g.routes).await;
    indexes.remove(&g.bridge);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn link(indexes: &HashMap<String, u32>, name: &str) -> Result<u32, KernelError> {
    indexes
        .get(name)
        .copied()
        .ok_or_else(|| KernelError::Invalid {
            op: format!("find link {name}"),
            reason: "no such link".into(),
        })
}

async fn move_onto_bridge(
    netlink: &Netlink,
    d: LinkRef<'_>,
    b: LinkRef<'_>,
    t: &TakeOver,
) -> Result<(), KernelError> {
    netlink.set_master(d, Some(b)).await?;
    netlink.set_up(b, true).await?;
    let start = Instant::now();
    for route in &t.routes {
        // Deleting the last IPv4 address flushes the routes too; deleting
        // them first keeps the order the same for both families.
        ignore(netlink.delete_route_as(route).await, libc::ESRCH)?;
    }
    for a in &t.addresses {
        netlink.delete_address(d, a.address, a.prefix_len).await?;
    }
    for a in t.addresses.iter().chain(&t.restored_addresses) {
        netlink.add_address_as(b, a).await?;
    }
    let mut routes: Vec<&Route> = t.routes.iter().chain(&t.restored_routes).collect();
    // On-link routes first: a gateway must be reachable when its route is added.
    routes.sort_by_key(|r| r.gateway.is_some());
    for route in routes {
        netlink.add_route_as(route, b).await?;
    }
    tracing::info!(
        uplink = d.name,
        bridge = b.name,
        window_us = start.elapsed().as_micros() as u64,
        "moved the uplink's addresses and routes onto the bridge"
    );
    Ok(())
}

/// Returns why the probe failed, if it did.
async fn run_probe(b: LinkRef<'_>, mac: [u8; 6], probe: &ProbeSpec) -> Option<String> {
    let from = ProbeFrom {
        index: b.index,
        name: b.name,
        mac,
        source: probe.source,
    };
    let socket = match ArpProbe::open(from, probe.target) {
        Ok(socket) => socket,
        Err(e) => return Some(e.to_string()),
    };
    let timeout = probe.timeout;
    match tokio::task::spawn_blocking(move || socket.run(timeout)).await {
        Ok(Ok(true)) => None,
        Ok(Ok(false)) => Some(format!(
            "{}{} did not answer ARP on {} within {}",
            if probe.gateway { "gateway " } else { "" },
            probe.target,
            b.name,
            humantime::format_duration(probe.timeout)
        )),
        Ok(Err(e)) => Some(e.to_string()),
        Err(e) => Some(format!("ARP probe task failed: {e}")),
    }
}

/// The uplink out of the bridge, the bridge deleted (with whatever is on
/// it), `addresses` and `routes` on the uplink again. Goes on after errors,
/// which it returns: each object restored is one more that works.
async fn restore(
    netlink: &Netlink,
    d: LinkRef<'_>,
    b: LinkRef<'_>,
    addresses: &[Address],
    routes: &[Route],
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut note = |r: Result<(), KernelError>| {
        if let Err(e) = r {
            errors.push(e.to_string());
        }
    };
    note(netlink.set_master(d, None).await);
    note(netlink.delete_link(b).await);
    for a in addresses {
        // Still there when the move failed before deleting it.
        note(ignore(netlink.add_address_as(d, a).await, libc::EEXIST));
    }
    for route in routes {
        note(ignore(netlink.add_route_as(route, d).await, libc::EEXIST));
    }
    errors
}

fn ignore(result: Result<(), KernelError>, errno: i32) -> Result<(), KernelError> {
    match result {
        Err(e) if e.errno() == Some(errno) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::net::plan::Step;
    use crate::testutil::desired;

    const LAN: &str = "[networks.lan]\nmode = \"bridge\"\nuplink = \"eno1\"\n";

    fn take_over_plan() -> Plan {
        let t = TakeOver {
            bridge: "kv-lan".into(),
            alias: "kvmnet:lan".into(),
            settings: crate::kernel::BridgeSettings {
                stp: false,
                forward_delay_cs: 0,
                mtu: None,
                mac: None,
            },
            uplink: "eno1".into(),
            addresses: Vec::new(),
            routes: Vec::new(),
            restored_addresses: Vec::new(),
            restored_routes: Vec::new(),
            probe: None,
        };
        Plan {
            steps: vec![Step {
                network: Some("lan".into()),
                action: Action::TakeOverUplink(Box::new(t)),
            }],
            ..Plan::default()
        }
    }

    fn outcome(result: StepResult) -> Outcome {
        Outcome {
            network: Some("lan".into()),
            action: String::new(),
            result,
        }
    }

    #[test]
    fn a_rolled_back_take_over_is_held_until_the_spec_changes() {
        let d = desired(LAN);
        let held = RolledBack::default();
        let why = "rolled back: gateway 10.0.0.1 did not answer ARP on kv-lan within 2s";
        held.record(
            &take_over_plan(),
            &[outcome(StepResult::Failed(why.into()))],
            &d,
        );

        let mut plan = take_over_plan();
        held.hold(&mut plan, &d);
        assert!(plan.steps.is_empty());
        assert!(
            plan.failures[0].message.contains(why),
            "{:?}",
            plan.failures
        );

        let changed = desired(&format!("{LAN}probe.timeout = \"5s\"\n"));
        let mut plan = take_over_plan();
        held.hold(&mut plan, &changed);
        assert_eq!(plan.steps.len(), 1, "a changed file is tried again");

        held.record(&plan, &[outcome(StepResult::Done)], &changed);
        let mut plan = take_over_plan();
        held.hold(&mut plan, &d);
        assert_eq!(plan.steps.len(), 1, "success forgets");
    }

    #[test]
    fn other_failures_are_retried() {
        let d = desired(LAN);
        let held = RolledBack::default();
        let error = StepResult::Failed("create bridge kv-lan: File exists".into());
        held.record(&take_over_plan(), &[outcome(error)], &d);
        let mut plan = take_over_plan();
        held.hold(&mut plan, &d);
        assert_eq!(plan.steps.len(), 1);
    }
}
