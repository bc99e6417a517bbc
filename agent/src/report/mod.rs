//! Reports of a pass: per network its state, the drift found, the repairs
//! made and what remains, as human text or JSON.
//!
//! The JSON shape is a documented interface (README, "Reports"): fields are
//! only ever added, never renamed or removed, within `version` 1.

pub mod metrics;
pub mod show;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::desired::DesiredState;
use crate::config::diagnostic::Diagnostic;
use crate::core::Drift;
use crate::core::{Outcome, StepResult};
use crate::dnsmasq::leasediff::DhcpUsage;
use crate::net::plan::Plan;

/// Which kind of pass made the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PassKind {
    /// `--check`: observe and diff, change nothing.
    Check,
    /// `--once` and the daemon: converge.
    Converge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkState {
    /// Nothing differed.
    InSync,
    /// Drift found by a check (nothing was changed).
    Drifted,
    /// Drift found and repaired, verified by a second observation.
    Repaired,
    /// Cannot be converged: an error, a failed repair, or drift that remains.
    Failed,
    /// Its file was rejected; what runs is left as it is, or kept at the
    /// file's last good version.
    ConfigError,
    /// No longer in the files; what kvmnet owned of it was removed.
    Removed,
}

impl NetworkState {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkState::InSync => "in sync",
            NetworkState::Drifted => "drifted",
            NetworkState::Repaired => "repaired",
            NetworkState::Failed => "failed",
            NetworkState::ConfigError => "config error",
            NetworkState::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkReport {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    pub state: NetworkState,
    pub drift: Vec<Drift>,
    pub repairs: Vec<Outcome>,
    /// Drift still found after the repairs (converge passes).
    pub remaining: Vec<Drift>,
    pub errors: Vec<String>,
    /// Leases and pool use, for networks serving DHCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<DhcpUsage>,
}

impl NetworkReport {
    fn new(name: &str, file: Option<PathBuf>) -> NetworkReport {
        NetworkReport {
            name: name.to_string(),
            file,
            state: NetworkState::InSync,
            drift: Vec::new(),
            repairs: Vec::new(),
            remaining: Vec::new(),
            errors: Vec::new(),
            dhcp: None,
        }
    }
}

/// Host-wide drift and repairs (ip_forward...).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostReport {
    pub drift: Vec<Drift>,
    pub repairs: Vec<Outcome>,
    pub remaining: Vec<Drift>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    /// Version of this JSON shape.
    pub version: u32,
    pub kind: PassKind,
    /// check: "in-sync", "drift" or "error"; converge: "converged" or "failed".
    pub result: &'static str,
    pub networks: Vec<NetworkReport>,
    pub host: HostReport,
    pub config_errors: Vec<Diagnostic>,
    /// Kernel writes the pass made (0 when everything was in sync).
    pub writes: u64,
    /// Problems kvmnet does not fix itself, each with what to do by hand
    /// (another table's drop policy on the forward hook, a network manager
    /// managing a bridged network's uplink...).
    pub warnings: Vec<String>,
}

impl PassReport {
    /// Attaches each network's leases and pool use.
    pub fn set_dhcp_usage(&mut self, usage: &BTreeMap<String, DhcpUsage>) {
        for network in &mut self.networks {
            network.dhcp = usage.get(&network.name).copied();
        }
    }

    /// Builds the report of a pass: `outcomes` and `verify` (the plan made
    /// from the second observation) are empty and `None` for a check.
    pub fn build(
        kind: PassKind,
        desired: &DesiredState,
        plan: &Plan,
        outcomes: &[Outcome],
        verify: Option<&Plan>,
        writes: u64,
    ) -> PassReport {
        let mut networks: BTreeMap<String, NetworkReport> = desired
            .networks
            .values()
            .map(|n| {
                let mut report = NetworkReport::new(&n.name, Some(n.file.clone()));
                if n.last_good {
                    report.state = NetworkState::ConfigError;
                    report.errors.push(format!(
                        "{} is rejected; running its last good version",
                        n.file.display()
                    ));
                }
                (n.name.clone(), report)
            })
            .collect();
        for rejected in &desired.rejected {
            for name in &rejected.networks {
                let mut report = NetworkReport::new(name, Some(rejected.path.clone()));
                report.state = NetworkState::ConfigError;
                report.errors = rejected
                    .diagnostics
                    .iter()
                    .map(|d| format!("{}: {}", d.position(), d.message))
                    .collect();
                networks.entry(name.clone()).or_insert(report);
            }
        }
        let mut host = HostReport::default();
        for d in &plan.drift {
            match entry(&mut networks, &d.network) {
                Some(n) => n.drift.push(d.clone()),
                None => host.drift.push(d.clone()),
            }
        }
        for o in outcomes {
            match entry(&mut networks, &o.network) {
                Some(n) => n.repairs.push(o.clone()),
                None => host.repairs.push(o.clone()),
            }
        }
        for f in &plan.failures {
            if let Some(n) = entry(&mut networks, &Some(f.network.clone())) {
                n.errors.push(f.message.clone());
            }
        }
        if let Some(verify) = verify {
            for d in &verify.drift {
                match entry(&mut networks, &d.network) {
                    Some(n) => n.remaining.push(d.clone()),
                    None => host.remaining.push(d.clone()),
                }
            }
        }
        for n in networks.values_mut() {
            n.state = state_of(kind, n, desired.networks.contains_key(&n.name));
        }

        let networks: Vec<NetworkReport> = networks.into_values().collect();
        let config_errors: Vec<Diagnostic> = desired.diagnostics().cloned().collect();
        let failed = networks.iter().any(|n| n.state == NetworkState::Failed)
            || host.repairs.iter().any(|o| o.result != StepResult::Done)
            || !host.remaining.is_empty();
        let result = match kind {
            PassKind::Check if failed || !config_errors.is_empty() => "error",
            PassKind::Check if !plan.drift.is_empty() => "drift",
            PassKind::Check => "in-sync",
            PassKind::Converge if failed || !config_errors.is_empty() => "failed",
            PassKind::Converge => "converged",
        };
        PassReport {
            version: 1,
            kind,
            result,
            networks,
            host,
            config_errors,
            writes,
            warnings: Vec::new(),
        }
    }

    /// The exit code: check exits 0 in sync, 2 on drift, 1 on error; converge
    /// exits 0 when converged, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self.result {
            "in-sync" | "converged" => 0,
            "drift" => 2,
            _ => 1,
        }
    }

    /// `--once --detailed-exitcode`: 0 converged without changing anything,
    /// 2 converged after changing something, 1 failed.
    pub fn detailed_exit_code(&self) -> u8 {
        let changed =
            !self.host.repairs.is_empty() || self.networks.iter().any(|n| !n.repairs.is_empty());
        match self.exit_code() {
            0 if changed => 2,
            code => code,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for n in &self.networks {
            let file = n
                .file
                .as_ref()
                .map(|f| format!(" ({})", f.display()))
                .unwrap_or_default();
            let _ = writeln!(out, "network {}{file}: {}", n.name, n.state.as_str());
            write_items(&mut out, &n.drift, &n.repairs, &n.remaining);
            for e in &n.errors {
                let _ = writeln!(out, "  error: {e}");
            }
        }
        if !(self.host.drift.is_empty()
            && self.host.repairs.is_empty()
            && self.host.remaining.is_empty())
        {
            let _ = writeln!(out, "host:");
            write_items(
                &mut out,
                &self.host.drift,
                &self.host.repairs,
                &self.host.remaining,
            );
        }
        for d in &self.config_errors {
            let _ = write!(out, "{d}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        let drift: usize =
            self.networks.iter().map(|n| n.drift.len()).sum::<usize>() + self.host.drift.len();
        let repairs = self
            .networks
            .iter()
            .flat_map(|n| &n.repairs)
            .chain(&self.host.repairs);
        let failed = repairs
            .clone()
            .filter(|o| matches!(o.result, StepResult::Failed(_)))
            .count();
        let _ = write!(
            out,
            "{}: {} network(s), {drift} drift item(s)",
            self.result,
            self.networks.len()
        );
        if self.kind == PassKind::Converge {
            let _ = write!(
                out,
                ", {} repair(s), {failed} failed, {} write(s)",
                repairs.count(),
                self.writes
            );
        }
        if !self.config_errors.is_empty() {
            let _ = write!(out, ", {} config error(s)", self.config_errors.len());
        }
        out.push('\n');
        out
    }
}

/// The report of `name`'s network, made on first use; `None` for host-wide items.
fn entry<'a>(
    networks: &'a mut BTreeMap<String, NetworkReport>,
    name: &Option<String>,
) -> Option<&'a mut NetworkReport> {
    let name = name.as_ref()?;
    Some(
        networks
            .entry(name.clone())
            .or_insert_with(|| NetworkReport::new(name, None)),
    )
}

fn write_items(out: &mut String, drift: &[Drift], repairs: &[Outcome], remaining: &[Drift]) {
    for d in drift {
        let _ = writeln!(out, "  {d}");
    }
    for o in repairs {
        let _ = match &o.result {
            StepResult::Done => writeln!(out, "    done: {}", o.action),
            StepResult::Failed(e) => writeln!(out, "    FAILED: {e}"),
            StepResult::Skipped(why) => writeln!(out, "    skipped: {} ({why})", o.action),
        };
    }
    for d in remaining {
        let _ = writeln!(out, "  still: {d}");
    }
}

fn state_of(kind: PassKind, n: &NetworkReport, desired: bool) -> NetworkState {
    if n.state == NetworkState::ConfigError {
        return NetworkState::ConfigError;
    }
    let repair_failed = n.repairs.iter().any(|o| o.result != StepResult::Done);
    if !n.errors.is_empty() || repair_failed || !n.remaining.is_empty() {
        return NetworkState::Failed;
    }
    match (kind, n.drift.is_empty(), desired) {
        (_, true, _) => NetworkState::InSync,
        (PassKind::Check, false, _) => NetworkState::Drifted,
        (PassKind::Converge, false, true) => NetworkState::Repaired,
        (PassKind::Converge, false, false) => NetworkState::Removed,
    }
}
