//! Observation: what the kernel holds now, read in one dump per object type
//! plus the few sysctls kvmnet manages.

use crate::config::desired::{DesiredState, HostLink};
use crate::kernel::sysctl::Sysctls;
use crate::kernel::{Netlink, Result, Snapshot};
use crate::net::wanted::{sysctl_keys, SysctlValues};

/// The observed state a plan is made against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub kernel: Snapshot,
    pub sysctls: SysctlValues,
}

/// Observes the kernel objects and the sysctls that `desired` involves.
pub async fn observe(
    netlink: &Netlink,
    sysctls: &Sysctls,
    desired: &DesiredState,
) -> Result<Observed> {
    let kernel = netlink.snapshot().await?;
    let mut values = SysctlValues::new();
    for key in sysctl_keys(desired) {
        let value = sysctls.read(&key)?;
        values.insert(key, value);
    }
    Ok(Observed {
        kernel,
        sysctls: values,
    })
}

/// The host's links with their addresses, from which each overlay network
/// finds this host's peer address and underlay.
pub fn host_links(snapshot: &Snapshot) -> Vec<HostLink> {
    snapshot
        .links
        .iter()
        .map(|l| HostLink {
            name: l.name.clone(),
            mtu: l.mtu,
            addresses: snapshot.addresses_of(l.index).map(|a| a.address).collect(),
        })
        .collect()
}
