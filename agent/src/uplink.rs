//! Carrying out an uplink move (mode bridge): the bridge built around the
//! uplink, the uplink's addresses and routes moved onto it, a connectivity
//! probe, and on any failure an exact rollback to the state saved in the
//! plan. Also the reverse move when a bridged network is removed.
//!
//! Between deleting the uplink's first route and adding the bridge's last
//! one the host has no (or partial) connectivity on the LAN: that window is
//! only the netlink round trips of the moves, made back to back.

use std::collections::HashMap;
use std::time::Instant;

use crate::kernel::probe::{arp_probe, ProbeFrom};
use crate::kernel::{Address, KernelError, LinkRef, Netlink, Route};
use crate::plan::{GiveBack, ProbeSpec, TakeOver};

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
    for a in &t.addresses {
        netlink.add_address_as(b, a).await?;
    }
    for route in &t.routes {
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
    let from_name = b.name.to_string();
    let (index, p) = (b.index, *probe);
    let result = tokio::task::spawn_blocking(move || {
        let from = ProbeFrom {
            index,
            name: &from_name,
            mac,
            source: p.source,
        };
        arp_probe(from, p.target, p.timeout)
    })
    .await;
    match result {
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
