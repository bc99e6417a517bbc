//! What became of the repairs of a pass, and of the networks that could not
//! be converged: shared by the kernel, firewall and dnsmasq subsystems.

use std::collections::BTreeSet;

use serde::Serialize;

/// What became of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "error", rename_all = "lowercase")]
pub enum StepResult {
    Done,
    Failed(String),
    /// Not tried, because an earlier step of the same network failed.
    Skipped(String),
}

/// A repair and its result. Made by kernel steps here, and by the firewall
/// and DHCP subsystems alike.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The network served; `None` for host-wide repairs.
    #[serde(skip)]
    pub network: Option<String>,
    pub action: String,
    #[serde(flatten)]
    pub result: StepResult,
}

/// A network that cannot be converged, and why. Its objects are left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub network: String,
    pub message: String,
}

/// The networks a pass must leave alone: those it cannot converge (their
/// bridge name is taken, their kernel steps failed...). Every subsystem's
/// plan takes this set and keeps such a network's objects as they are.
pub type LeaveAlone = BTreeSet<String>;

/// The networks named by `failures`.
pub fn leave_alone<'a>(failures: impl IntoIterator<Item = &'a Failure>) -> LeaveAlone {
    failures.into_iter().map(|f| f.network.clone()).collect()
}
