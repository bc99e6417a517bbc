//! Apply: carries out a plan's steps against the kernel, in order. A failed
//! step skips the rest of its network's steps; other networks go on.

use std::collections::{BTreeSet, HashMap};

use crate::core::{Outcome, StepResult};
use crate::kernel::sysctl::{Sysctl, Sysctls};
use crate::kernel::{KernelError, LinkRef, Netlink, RouteSpec, Snapshot, VxlanSettings};
use crate::net::bridged::rollback;
use crate::net::plan::{Action, Step};

/// Runs `steps` against the namespace observed in `snapshot`.
pub async fn apply(
    netlink: &Netlink,
    sysctls: &Sysctls,
    snapshot: &Snapshot,
    steps: &[Step],
) -> Vec<Outcome> {
    let mut indexes: HashMap<String, u32> = snapshot
        .links
        .iter()
        .map(|l| (l.name.clone(), l.index))
        .collect();
    let mut failed: BTreeSet<Option<String>> = BTreeSet::new();
    let mut outcomes = Vec::with_capacity(steps.len());
    let mut rest = steps;
    while let Some(step) = rest.first() {
        let deletions = rest
            .iter()
            .take_while(|s| matches!(s.action, Action::DeleteLink { .. }))
            .count();
        if deletions >= 2 {
            let (batch, tail) = rest.split_at(deletions);
            let group = free_link_group(snapshot);
            outcomes.extend(delete_links(netlink, &mut indexes, &failed, batch, group).await);
            rest = tail;
            continue;
        }
        let result = if is_skipped(&failed, step) {
            skipped()
        } else {
            match run(netlink, sysctls, &mut indexes, &step.action).await {
                Ok(()) => StepResult::Done,
                Err(e) => {
                    failed.insert(step.network.clone());
                    StepResult::Failed(e)
                }
            }
        };
        outcomes.push(outcome(step, result));
        rest = &rest[1..];
    }
    outcomes
}

fn is_skipped(failed: &BTreeSet<Option<String>>, step: &Step) -> bool {
    step.network.is_some() && failed.contains(&step.network)
}

fn skipped() -> StepResult {
    StepResult::Skipped("an earlier step of this network failed".into())
}

fn outcome(step: &Step, result: StepResult) -> Outcome {
    Outcome {
        network: step.network.clone(),
        action: step.action.to_string(),
        result,
    }
}

/// The first link group, from one of kvmnet's own ("kvmn"), that no link
/// of the namespace is in.
fn free_link_group(snapshot: &Snapshot) -> u32 {
    let used: BTreeSet<u32> = snapshot.links.iter().map(|l| l.group).collect();
    (0x6b76_6d6e..)
        .find(|g| !used.contains(g))
        .expect("fewer links than groups")
}

/// Deletes the links of consecutive DeleteLink steps together (a teardown
/// of many networks); if that fails, one by one, so that each error is
/// reported with its own network.
async fn delete_links(
    netlink: &Netlink,
    indexes: &mut HashMap<String, u32>,
    failed: &BTreeSet<Option<String>>,
    steps: &[Step],
    group: u32,
) -> Vec<Outcome> {
    let name = |step: &Step| match &step.action {
        Action::DeleteLink { link } => link.clone(),
        _ => unreachable!("only DeleteLink steps are batched"),
    };
    let mut results: Vec<Option<StepResult>> = steps
        .iter()
        .map(|s| is_skipped(failed, s).then(skipped))
        .collect();
    let names: Vec<String> = steps.iter().map(name).collect();
    let mut together = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if results[i].is_none() {
            match link(indexes, n) {
                Ok(l) => together.push(l),
                Err(e) => results[i] = Some(StepResult::Failed(e.to_string())),
            }
        }
    }
    let all_done = !together.is_empty() && netlink.delete_links(&together, group).await.is_ok();
    for (i, n) in names.iter().enumerate() {
        if results[i].is_some() {
            continue;
        }
        results[i] = Some(if all_done {
            StepResult::Done
        } else {
            match link(indexes, n) {
                Ok(l) => match netlink.delete_link(l).await {
                    Ok(()) => StepResult::Done,
                    Err(e) => StepResult::Failed(e.to_string()),
                },
                Err(e) => StepResult::Failed(e.to_string()),
            }
        });
    }
    for (i, n) in names.iter().enumerate() {
        if results[i] == Some(StepResult::Done) {
            indexes.remove(n);
        }
    }
    steps
        .iter()
        .zip(results)
        .map(|(step, result)| outcome(step, result.expect("every step has a result")))
        .collect()
}

fn link<'a>(indexes: &HashMap<String, u32>, name: &'a str) -> Result<LinkRef<'a>, KernelError> {
    match indexes.get(name) {
        Some(&index) => Ok(LinkRef { index, name }),
        None => Err(KernelError::Invalid {
            op: format!("find link {name}"),
            reason: "no such link".into(),
        }),
    }
}

async fn run(
    netlink: &Netlink,
    sysctls: &Sysctls,
    indexes: &mut HashMap<String, u32>,
    action: &Action,
) -> Result<(), String> {
    match action {
        // Compound actions that report their own rollback.
        Action::TakeOverUplink(t) => rollback::take_over(netlink, indexes, t).await,
        Action::GiveBackUplink(g) => rollback::give_back(netlink, indexes, g).await,
        _ => run_kernel(netlink, sysctls, indexes, action)
            .await
            .map_err(|e| e.to_string()),
    }
}

async fn run_kernel(
    netlink: &Netlink,
    sysctls: &Sysctls,
    indexes: &mut HashMap<String, u32>,
    action: &Action,
) -> Result<(), KernelError> {
    match action {
        Action::CreateBridge {
            name,
            alias,
            settings,
        } => {
            let index = netlink.create_bridge(name, alias, settings).await?;
            indexes.insert(name.clone(), index);
            Ok(())
        }
        Action::SetBridge {
            link: l,
            current,
            wanted,
        } => netlink.set_bridge(link(indexes, l)?, current, wanted).await,
        Action::SetMtu { link: l, mtu } => netlink.set_mtu(link(indexes, l)?, *mtu).await,
        Action::SetMac { link: l, mac } => netlink.set_mac(link(indexes, l)?, mac.0).await,
        Action::SetAlias { link: l, alias } => netlink.set_alias(link(indexes, l)?, alias).await,
        Action::SetUp { link: l } => netlink.set_up(link(indexes, l)?, true).await,
        Action::SetMaster { link: l, master } => {
            netlink
                .set_master(link(indexes, l)?, Some(link(indexes, master)?))
                .await
        }
        Action::DeleteLink { link: l } => {
            netlink.delete_link(link(indexes, l)?).await?;
            indexes.remove(l);
            Ok(())
        }
        Action::CreateVxlan {
            name,
            alias,
            vni,
            port,
            local,
            dev,
            mtu,
        } => {
            let settings = VxlanSettings {
                vni: *vni,
                port: *port,
                local: *local,
                dev: Some(link(indexes, dev)?.index),
                mtu: *mtu,
            };
            let index = netlink.create_vxlan(name, alias, &settings).await?;
            indexes.insert(name.clone(), index);
            Ok(())
        }
        Action::AddFloodRemote { link: l, peer } => {
            netlink.add_flood_remote(link(indexes, l)?, *peer).await
        }
        Action::DeleteFloodRemote { link: l, peer } => {
            netlink.delete_flood_remote(link(indexes, l)?, *peer).await
        }
        Action::AddAddress {
            link: l,
            address,
            prefix_len,
        } => {
            netlink
                .add_address(link(indexes, l)?, *address, *prefix_len)
                .await
        }
        Action::DeleteAddress {
            link: l,
            address,
            prefix_len,
        } => {
            netlink
                .delete_address(link(indexes, l)?, *address, *prefix_len)
                .await
        }
        Action::AddRoute { link: l, route } => {
            let spec = RouteSpec {
                destination: route.destination,
                gateway: Some(route.gateway),
                oif: Some(link(indexes, l)?.index),
                metric: Some(route.metric),
            };
            netlink.add_route(&spec).await
        }
        Action::DeleteRoute {
            link: l,
            destination,
            gateway,
            metric,
        } => {
            let oif = match l {
                Some(l) => Some(link(indexes, l)?.index),
                None => None,
            };
            let spec = RouteSpec {
                destination: *destination,
                gateway: *gateway,
                oif,
                metric: Some(*metric),
            };
            netlink.delete_route(&spec).await
        }
        Action::SetSysctl { key, value } => match sysctls.write(key, *value) {
            // IPv6 disabled on the host: a bridge without IPv6 is what was wanted.
            Err(KernelError::Unavailable { .. }) if ipv6_off_is_fine(key, *value) => Ok(()),
            result => result,
        },
        Action::TakeOverUplink(_) | Action::GiveBackUplink(_) => {
            unreachable!("compound actions are run by `run`")
        }
    }
}

fn ipv6_off_is_fine(key: &Sysctl, value: u32) -> bool {
    matches!(
        (key, value),
        (Sysctl::DisableIpv6(_), 1) | (Sysctl::AcceptRa(_), 0)
    )
}
