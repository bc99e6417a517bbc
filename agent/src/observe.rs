//! Observation: what the kernel holds now, read in one dump per object type
//! plus the few sysctls kvmnet manages.

use crate::desired::DesiredState;
use crate::kernel::sysctl::Sysctls;
use crate::kernel::{Netlink, Result, Snapshot};
use crate::lanstate::{DamagedLans, SavedLans};
use crate::plan::{sysctl_keys, SysctlValues};
use crate::ports::RememberedPorts;

/// The observed state a plan is made against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub kernel: Snapshot,
    pub sysctls: SysctlValues,
    /// The guest ports remembered for each network (see [`crate::ports`]);
    /// filled in by the reconciler, which owns the memory.
    pub ports: RememberedPorts,
    /// What the bridges of bridged networks carried (see [`crate::lanstate`]);
    /// filled in by the reconciler likewise.
    pub lans: SavedLans,
    /// LAN records that exist but cannot be read, by network.
    pub damaged_lans: DamagedLans,
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
        ports: RememberedPorts::new(),
        lans: SavedLans::new(),
        damaged_lans: DamagedLans::new(),
    })
}
