//! The vocabulary every subsystem shares: drift, outcomes and failures,
//! ownership, atomic file writes, and the lock of one converging agent. It imports nothing of the crate but
//! the kernel's link type.

pub mod drift;
pub mod fs;
pub mod lock;
pub mod outcome;
pub mod owner;

pub use drift::{Change, Drift, Resource};
pub use outcome::{leave_alone, Failure, LeaveAlone, Outcome, StepResult};
pub use owner::{link_owner, owner_alias, ALIAS_PREFIX};
