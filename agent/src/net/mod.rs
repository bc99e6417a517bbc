//! The kernel's part of a network: bridges, addresses, routes, sysctls.
//! [`observe`] reads them (I/O), [`plan`] diffs and plans (pure), [`apply`]
//! carries the plan out. [`memory`] keeps what the kernel forgets when a
//! bridge is deleted (its guest ports, a bridged network's LAN
//! configuration); [`bridged`] holds bridged mode's uplink take-over.

pub mod apply;
pub mod bridged;
pub mod memory;
pub mod observe;
pub mod plan;
pub mod ports;
pub mod wanted;
