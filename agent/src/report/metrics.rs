//! Prometheus metrics of the daemon, in the text exposition format: written
//! to a textfile for node_exporter's textfile collector after every pass,
//! and optionally served over HTTP (`/metrics`, `/healthz`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::core::StepResult;
use crate::dnsmasq::leasediff::DhcpUsage;
use crate::report::{NetworkState, PassReport};

/// Upper bounds (seconds) of the pass duration histogram.
const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const STATES: [NetworkState; 6] = [
    NetworkState::InSync,
    NetworkState::Drifted,
    NetworkState::Repaired,
    NetworkState::Failed,
    NetworkState::ConfigError,
    NetworkState::Removed,
];

#[derive(Debug, Default)]
pub struct Metrics {
    passes: u64,
    /// (network, resource) → drift items found.
    drift: BTreeMap<(String, String), u64>,
    /// (network, result) → repairs made.
    repairs: BTreeMap<(String, &'static str), u64>,
    buckets: [u64; DURATION_BUCKETS.len()],
    duration_sum: f64,
    last_success: Option<f64>,
    last_result: Option<&'static str>,
    /// Networks by state at the last pass.
    states: BTreeMap<&'static str, u64>,
    config_errors: u64,
    /// network → unexpected dnsmasq exits.
    dnsmasq_exits: BTreeMap<String, u64>,
    /// When the daemon's last pass ended, and why it made no report if it
    /// made none (config directory unreadable, refused, kernel error).
    last_attempt: Option<(Instant, Option<String>)>,
    /// The loop counts as stuck when no pass ends for this long.
    stale_after: Option<Duration>,
    /// network → leases and pool use at the last pass (gauges: networks
    /// gone from the files go with them).
    dhcp: BTreeMap<String, DhcpUsage>,
}

impl Metrics {
    /// Accounts for one converging pass.
    pub fn record(&mut self, report: &PassReport, duration: Duration) {
        self.passes += 1;
        let secs = duration.as_secs_f64();
        self.duration_sum += secs;
        for (bucket, bound) in self.buckets.iter_mut().zip(DURATION_BUCKETS) {
            if secs <= bound {
                *bucket += 1;
            }
        }
        let host = "".to_string();
        let networks = report
            .networks
            .iter()
            .map(|n| (&n.name, &n.drift, &n.repairs));
        for (name, drift, repairs) in
            networks.chain([(&host, &report.host.drift, &report.host.repairs)])
        {
            for d in drift {
                *self
                    .drift
                    .entry((name.clone(), d.resource.to_string()))
                    .or_default() += 1;
            }
            for o in repairs {
                let result = match o.result {
                    StepResult::Done => "done",
                    StepResult::Failed(_) => "failed",
                    StepResult::Skipped(_) => "skipped",
                };
                *self.repairs.entry((name.clone(), result)).or_default() += 1;
            }
        }
        // A removed network is reported once, then its series go.
        let known =
            |name: &String| name.is_empty() || report.networks.iter().any(|n| n.name == *name);
        self.drift.retain(|(name, _), _| known(name));
        self.repairs.retain(|(name, _), _| known(name));
        self.dnsmasq_exits.retain(|name, _| known(name));
        self.last_attempt = Some((Instant::now(), None));
        self.states.clear();
        for n in &report.networks {
            *self.states.entry(state_label(n.state)).or_default() += 1;
        }
        self.dhcp = report
            .networks
            .iter()
            .filter_map(|n| Some((n.name.clone(), n.dhcp?)))
            .collect();
        self.config_errors = report.config_errors.len() as u64;
        self.last_result = Some(report.result);
        if report.exit_code() == 0 {
            self.last_success = Some(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            );
        }
    }

    /// Accounts for a dnsmasq that exited without the agent asking (each is
    /// then restarted by a pass).
    pub fn dnsmasq_exited(&mut self, network: &str) {
        *self.dnsmasq_exits.entry(network.to_string()).or_default() += 1;
    }

    /// A pass that ended without a report: `why`.
    pub fn pass_failed(&mut self, why: String) {
        self.last_attempt = Some((Instant::now(), Some(why)));
    }

    /// `/healthz` then fails when no pass has ended for `after`.
    pub fn set_stale_after(&mut self, after: Duration) {
        self.stale_after = Some(after);
    }

    /// Liveness (`/healthz`): the loop runs passes and they make reports. A
    /// network that fails (a typo in one file) is not the agent's ill health.
    pub fn alive(&self) -> Result<(), String> {
        match &self.last_attempt {
            None => Err("no pass has completed yet".into()),
            Some((_, Some(why))) => Err(format!("last pass failed: {why}")),
            Some((at, None)) => match self.stale_after {
                Some(after) if at.elapsed() > after => {
                    Err(format!("no pass has ended for {}s", at.elapsed().as_secs()))
                }
                _ => Ok(()),
            },
        }
    }

    /// Readiness (`/readyz`): the last pass converged.
    pub fn ready(&self) -> Result<(), String> {
        match (&self.last_attempt, self.last_result) {
            (_, None) => Err("no pass has completed yet".into()),
            (Some((_, Some(why))), _) => Err(format!("last pass failed: {why}")),
            (_, Some("converged")) => Ok(()),
            (_, Some(other)) => Err(format!("last pass: {other}")),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        header(
            w,
            "kvmnet_passes_total",
            "counter",
            "Converging passes run.",
        );
        let _ = writeln!(w, "kvmnet_passes_total {}", self.passes);

        header(
            w,
            "kvmnet_networks",
            "gauge",
            "Networks by state at the last pass.",
        );
        for state in STATES {
            let label = state_label(state);
            let _ = writeln!(
                w,
                "kvmnet_networks{{state=\"{label}\"}} {}",
                self.states.get(label).unwrap_or(&0)
            );
        }

        header(
            w,
            "kvmnet_drift_total",
            "counter",
            "Drift items found, by network and resource (network \"\" is host-wide).",
        );
        for ((network, resource), n) in &self.drift {
            let _ = writeln!(
                w,
                "kvmnet_drift_total{{network=\"{}\",resource=\"{resource}\"}} {n}",
                escape(network)
            );
        }

        header(
            w,
            "kvmnet_repairs_total",
            "counter",
            "Repairs attempted, by network and result (done, failed, skipped).",
        );
        for ((network, result), n) in &self.repairs {
            let _ = writeln!(
                w,
                "kvmnet_repairs_total{{network=\"{}\",result=\"{result}\"}} {n}",
                escape(network)
            );
        }

        header(
            w,
            "kvmnet_dnsmasq_exits_total",
            "counter",
            "dnsmasq instances that exited unasked (each is restarted), by network.",
        );
        for (network, n) in &self.dnsmasq_exits {
            let _ = writeln!(
                w,
                "kvmnet_dnsmasq_exits_total{{network=\"{}\"}} {n}",
                escape(network)
            );
        }

        type Gauge = fn(&DhcpUsage) -> u64;
        let gauges: [(&str, &str, Gauge); 3] = [
            (
                "kvmnet_dhcp_leases",
                "Active DHCP leases, static and dynamic.",
                |u| u.leases,
            ),
            (
                "kvmnet_dhcp_pool_size",
                "Addresses in the dynamic DHCP ranges.",
                |u| u.pool_size,
            ),
            (
                "kvmnet_dhcp_pool_used",
                "Active leases on addresses of the dynamic DHCP ranges.",
                |u| u.pool_used,
            ),
        ];
        for (name, help, value) in gauges {
            header(w, name, "gauge", help);
            for (network, usage) in &self.dhcp {
                let _ = writeln!(
                    w,
                    "{name}{{network=\"{}\"}} {}",
                    escape(network),
                    value(usage)
                );
            }
        }
        header(
            w,
            "kvmnet_config_errors",
            "gauge",
            "Config errors at the last pass (rejected files' problems).",
        );
        let _ = writeln!(w, "kvmnet_config_errors {}", self.config_errors);

        header(
            w,
            "kvmnet_pass_duration_seconds",
            "histogram",
            "Duration of converging passes.",
        );
        for (bound, count) in DURATION_BUCKETS.iter().zip(self.buckets) {
            let _ = writeln!(
                w,
                "kvmnet_pass_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            w,
            "kvmnet_pass_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            self.passes
        );
        let _ = writeln!(w, "kvmnet_pass_duration_seconds_sum {}", self.duration_sum);
        let _ = writeln!(w, "kvmnet_pass_duration_seconds_count {}", self.passes);

        header(
            w,
            "kvmnet_last_success_timestamp_seconds",
            "gauge",
            "End of the last pass that converged (Unix time; 0: none yet).",
        );
        let _ = writeln!(
            w,
            "kvmnet_last_success_timestamp_seconds {}",
            self.last_success.unwrap_or(0.0)
        );
        out
    }
}

fn header(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}");
    let _ = writeln!(w, "# TYPE {name} {kind}");
}

fn state_label(state: NetworkState) -> &'static str {
    match state {
        NetworkState::InSync => "in-sync",
        NetworkState::Drifted => "drifted",
        NetworkState::Repaired => "repaired",
        NetworkState::Failed => "failed",
        NetworkState::ConfigError => "config-error",
        NetworkState::Removed => "removed",
    }
}

/// Label values escape backslash, quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::desired::DesiredState;
    use crate::core::Outcome;
    use crate::core::{Change, Drift, Resource};
    use crate::net::plan::Plan;
    use crate::report::PassKind;

    #[test]
    fn dhcp_gauges_follow_the_last_pass_and_drop_networks_without_dhcp() {
        let desired = crate::testutil::desired(
            "[networks.a]\nmode = \"nat\"\n[[networks.a.ip]]\naddress = \"10.0.0.1/24\"\n",
        );
        let mut report = PassReport::build(
            PassKind::Converge,
            &desired,
            &Plan::default(),
            &[],
            Some(&Plan::default()),
            0,
        );
        let usage = DhcpUsage {
            leases: 3,
            pool_size: 50,
            pool_used: 2,
        };
        report.set_dhcp_usage(&BTreeMap::from([("a".to_string(), usage)]));
        let mut m = Metrics::default();
        m.record(&report, Duration::from_millis(1));
        let text = m.render();
        for line in [
            "kvmnet_dhcp_leases{network=\"a\"} 3\n",
            "kvmnet_dhcp_pool_size{network=\"a\"} 50\n",
            "kvmnet_dhcp_pool_used{network=\"a\"} 2\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        report.set_dhcp_usage(&BTreeMap::new());
        m.record(&report, Duration::from_millis(1));
        assert!(!m.render().contains("kvmnet_dhcp_leases{"));
    }

    #[test]
    fn counts_drift_repairs_and_durations() {
        let plan = Plan {
            drift: vec![Drift {
                network: Some("n".into()),
                resource: Resource::Bridge,
                object: "virbr-n".into(),
                change: Change::Missing,
                field: None,
                wanted: None,
                found: None,
            }],
            ..Plan::default()
        };
        let outcomes = [Outcome {
            network: Some("n".into()),
            action: "create bridge virbr-n".into(),
            result: StepResult::Done,
        }];
        let report = PassReport::build(
            PassKind::Converge,
            &DesiredState::default(),
            &plan,
            &outcomes,
            Some(&Plan::default()),
            2,
        );
        let mut m = Metrics::default();
        m.record(&report, Duration::from_millis(30));
        m.record(&report, Duration::from_millis(3));
        let text = m.render();
        assert!(
            text.contains("kvmnet_drift_total{network=\"n\",resource=\"bridge\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kvmnet_repairs_total{network=\"n\",result=\"done\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kvmnet_pass_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("kvmnet_pass_duration_seconds_bucket{le=\"0.05\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kvmnet_networks{state=\"removed\"} 1\n"),
            "{text}"
        );
        assert!(m.alive().is_ok());
        assert!(m.ready().is_ok());

        // "n" was reported removed; a pass that no longer knows it drops it.
        let later = PassReport::build(
            PassKind::Converge,
            &DesiredState::default(),
            &Plan::default(),
            &[],
            Some(&Plan::default()),
            0,
        );
        m.dnsmasq_exited("n");
        m.record(&later, Duration::from_millis(3));
        let text = m.render();
        assert!(!text.contains("network=\"n\""), "{text}");
    }

    #[test]
    fn health_is_the_loop_passing_readiness_is_convergence() {
        let mut m = Metrics::default();
        assert!(m.alive().is_err() && m.ready().is_err(), "before any pass");
        let failing = Plan {
            failures: vec![crate::core::Failure {
                network: "n".into(),
                message: "typo".into(),
            }],
            ..Plan::default()
        };
        let desired = crate::testutil::desired(
            "[networks.n]\nmode = \"nat\"\n[[networks.n.ip]]\naddress = \"192.168.50.1/24\"\n",
        );
        let report = PassReport::build(
            PassKind::Converge,
            &desired,
            &failing,
            &[],
            Some(&failing),
            0,
        );
        m.record(&report, Duration::from_millis(3));
        assert!(m.alive().is_ok(), "one failed network is not ill health");
        assert!(m.ready().unwrap_err().contains("failed"));
        m.pass_failed("cannot read config directory".into());
        assert!(m
            .alive()
            .unwrap_err()
            .contains("cannot read config directory"));
        assert!(m.ready().is_err());
        m.record(&report, Duration::from_millis(3));
        m.set_stale_after(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        assert!(m.alive().unwrap_err().contains("no pass has ended"));
    }

    #[test]
    fn dnsmasq_exits_are_counted_per_network() {
        let mut m = Metrics::default();
        m.dnsmasq_exited("a");
        m.dnsmasq_exited("a");
        m.dnsmasq_exited("b");
        let text = m.render();
        assert!(
            text.contains("kvmnet_dnsmasq_exits_total{network=\"a\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kvmnet_dnsmasq_exits_total{network=\"b\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
