//! Diff and plan for dnsmasq instances: a pure function of the wanted
//! instances (rendered files) and the observed ones. The configuration text
//! decides between a restart and a SIGHUP: only the two hosts files and the
//! servers file are re-read on SIGHUP, so a change there keeps the process
//! and its leases.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::core::{Change, Drift, Failure, LeaveAlone, Resource};

use super::leasediff::DhcpUsage;
use super::leases::Lease;
use super::render::Rendered;

/// What the agent found of one network's instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedInstance {
    /// The pid of a live dnsmasq running our exact configuration path.
    pub pid: Option<i32>,
    /// What the pid file says, when it holds a number: another value than
    /// `pid` (a crash before it was written, a damaged file) is rewritten.
    pub pid_file: Option<i32>,
    /// More live dnsmasq processes running the same configuration path.
    pub duplicates: Vec<i32>,
    pub conf: Option<String>,
    pub hosts: Option<String>,
    pub addn_hosts: Option<String>,
    pub servers: Option<String>,
}

impl ObservedInstance {
    /// Anything of it exists: a process or a file.
    pub fn exists(&self) -> bool {
        self.pid.is_some()
            || !self.duplicates.is_empty()
            || self.conf.is_some()
            || self.hosts.is_some()
    }
}

/// One repair of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsAction {
    /// Write the files and start dnsmasq.
    Start { network: String, files: Rendered },
    /// Write the files, stop the running dnsmasq and start a new one.
    Restart {
        network: String,
        pid: i32,
        files: Rendered,
    },
    /// Rewrite the hosts files and send SIGHUP: same process, same leases.
    Reload {
        network: String,
        pid: i32,
        files: Rendered,
    },
    /// Stop dnsmasq (if running) and remove its files.
    Stop { network: String, pid: Option<i32> },
    /// Stop a second dnsmasq of the same network.
    StopDuplicate { network: String, pid: i32 },
    /// Record the pid of the dnsmasq found running our configuration.
    WritePidFile { network: String, pid: i32 },
    /// Release a stale lease in the running dnsmasq (a DHCPRELEASE sent on
    /// the client's behalf): same process, other leases untouched.
    Release {
        network: String,
        bridge: String,
        lease: Lease,
        /// The server's DUID from the lease file, for IPv6 leases.
        server_duid: Option<String>,
    },
}

impl DnsAction {
    pub fn network(&self) -> &str {
        match self {
            DnsAction::Start { network, .. }
            | DnsAction::Restart { network, .. }
            | DnsAction::Reload { network, .. }
            | DnsAction::Stop { network, .. }
            | DnsAction::StopDuplicate { network, .. }
            | DnsAction::WritePidFile { network, .. }
            | DnsAction::Release { network, .. } => network,
        }
    }
}

impl fmt::Display for DnsAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsAction::Start { network, .. } => write!(f, "start dnsmasq of {network}"),
            DnsAction::Restart { network, pid, .. } => {
                write!(
                    f,
                    "restart dnsmasq of {network} (pid {pid}) with its new configuration"
                )
            }
            DnsAction::Reload { network, pid, .. } => write!(
                f,
                "rewrite the hosts files of {network} and send SIGHUP to dnsmasq (pid {pid})"
            ),
            DnsAction::Stop { network, pid } => match pid {
                Some(pid) => write!(
                    f,
                    "stop dnsmasq of {network} (pid {pid}) and remove its files"
                ),
                None => write!(f, "remove the dnsmasq files of {network}"),
            },
            DnsAction::StopDuplicate { network, pid } => {
                write!(f, "stop a second dnsmasq of {network} (pid {pid})")
            }
            DnsAction::WritePidFile { network, pid } => write!(
                f,
                "write the pid file of {network}'s dnsmasq (pid {pid}, found by its command line)"
            ),
            DnsAction::Release { bridge, lease, .. } => write!(
                f,
                "release the lease of {} on {} in dnsmasq on {bridge}",
                lease
                    .mac
                    .as_deref()
                    .or(lease.client_id.as_deref())
                    .unwrap_or("a client"),
                lease.ip
            ),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsPlan {
    pub drift: Vec<Drift>,
    pub actions: Vec<DnsAction>,
    /// Leases and pool use of each network serving DHCP.
    pub usage: BTreeMap<String, DhcpUsage>,
    /// Networks whose configuration render refused (a name that would
    /// change its meaning in dnsmasq's configuration).
    pub failures: Vec<Failure>,
}

/// What the plan works from.
pub struct Inputs<'a> {
    /// Instances that must run, by network, with their files.
    pub wanted: &'a BTreeMap<String, Rendered>,
    /// The bridge of each wanted network (names the drift object).
    pub bridges: &'a BTreeMap<String, String>,
    pub observed: &'a BTreeMap<String, ObservedInstance>,
    /// Networks whose instance is left as it is, whatever runs: those that
    /// cannot be converged.
    pub leave_alone: &'a LeaveAlone,
    /// Networks in the files (an unwanted instance of one is stopped).
    pub desired: &'a BTreeSet<String>,
    /// Stop instances of networks that are no longer in the files.
    pub prune: bool,
}

pub fn plan(inputs: &Inputs) -> DnsPlan {
    let mut p = DnsPlan::default();
    for (network, found) in inputs.observed {
        if inputs.leave_alone.contains(network) {
            continue;
        }
        for pid in &found.duplicates {
            p.drift.push(drift(
                network,
                format!("{network} (pid {pid})"),
                Change::Extra,
                None,
            ));
            p.actions.push(DnsAction::StopDuplicate {
                network: network.clone(),
                pid: *pid,
            });
        }
    }
    for (network, files) in inputs.wanted {
        if inputs.leave_alone.contains(network) {
            continue;
        }
        let object = inputs
            .bridges
            .get(network)
            .map_or_else(|| network.clone(), |b| format!("{network} on {b}"));
        let found = inputs.observed.get(network).cloned().unwrap_or_default();
        let Some(pid) = found.pid else {
            p.drift.push(drift(network, object, Change::Missing, None));
            p.actions.push(DnsAction::Start {
                network: network.clone(),
                files: files.clone(),
            });
            continue;
        };
        if found.conf.as_deref() != Some(files.conf.as_str()) {
            p.drift.push(drift(
                network,
                object,
                Change::Changed,
                Some((
                    "config",
                    first_difference(&files.conf, found.conf.as_deref()),
                )),
            ));
            p.actions.push(DnsAction::Restart {
                network: network.clone(),
                pid,
                files: files.clone(),
            });
            continue;
        }
        if found.pid_file != Some(pid) {
            p.drift.push(drift(
                network,
                object.clone(),
                Change::Changed,
                Some((
                    "pid-file",
                    (
                        pid.to_string(),
                        found
                            .pid_file
                            .map_or_else(|| "missing or unreadable".into(), |p| p.to_string()),
                    ),
                )),
            ));
            p.actions.push(DnsAction::WritePidFile {
                network: network.clone(),
                pid,
            });
        }
        let hosts = [
            ("dhcp-hosts", &files.hosts, &found.hosts),
            ("dns-hosts", &files.addn_hosts, &found.addn_hosts),
            ("dns-servers", &files.servers, &found.servers),
        ];
        let mut stale = false;
        for (field, wanted, found) in hosts {
            if found.as_deref() != Some(wanted.as_str()) {
                stale = true;
                p.drift.push(drift(
                    network,
                    object.clone(),
                    Change::Changed,
                    Some((field, first_difference(wanted, found.as_deref()))),
                ));
            }
        }
        if stale {
            p.actions.push(DnsAction::Reload {
                network: network.clone(),
                pid,
                files: files.clone(),
            });
        }
    }
    for (network, found) in inputs.observed {
        let unwanted = !inputs.wanted.contains_key(network)
            && !inputs.leave_alone.contains(network)
            && (inputs.prune || inputs.desired.contains(network));
        if unwanted && found.exists() {
            p.drift
                .push(drift(network, network.clone(), Change::Extra, None));
            p.actions.push(DnsAction::Stop {
                network: network.clone(),
                pid: found.pid,
            });
        }
    }
    p
}

fn drift(
    network: &str,
    object: String,
    change: Change,
    detail: Option<(&str, (String, String))>,
) -> Drift {
    let (field, wanted, found) = match detail {
        Some((field, (wanted, found))) => (Some(field.to_string()), Some(wanted), Some(found)),
        None => (None, None, None),
    };
    Drift {
        network: Some(network.to_string()),
        resource: Resource::Dnsmasq,
        object,
        change,
        field,
        wanted,
        found,
    }
}

/// The first line where two texts differ, as (wanted, found), so that a
/// drift item says what changed rather than "the file differs".
fn first_difference(wanted: &str, found: Option<&str>) -> (String, String) {
    let Some(found) = found else {
        return (quote(wanted.lines().next()), "no file".to_string());
    };
    let mut w = wanted.lines();
    let mut f = found.lines();
    loop {
        match (w.next(), f.next()) {
            (None, None) => return ("(same lines)".into(), "(other line ends)".into()),
            (a, b) if a == b => continue,
            (a, b) => return (quote(a), quote(b)),
        }
    }
}

fn quote(line: Option<&str>) -> String {
    match line {
        Some(l) => format!("{l:?}"),
        None => "(end of file)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(conf: &str, hosts: &str) -> Rendered {
        Rendered {
            conf: conf.into(),
            hosts: hosts.into(),
            addn_hosts: String::new(),
            servers: String::new(),
        }
    }

    fn running(pid: i32, f: &Rendered) -> ObservedInstance {
        ObservedInstance {
            pid: Some(pid),
            pid_file: Some(pid),
            duplicates: Vec::new(),
            conf: Some(f.conf.clone()),
            hosts: Some(f.hosts.clone()),
            addn_hosts: Some(f.addn_hosts.clone()),
            servers: Some(f.servers.clone()),
        }
    }

    struct Case {
        wanted: BTreeMap<String, Rendered>,
        observed: BTreeMap<String, ObservedInstance>,
        leave_alone: LeaveAlone,
        desired: BTreeSet<String>,
        prune: bool,
    }

    impl Case {
        fn new() -> Case {
            Case {
                wanted: BTreeMap::new(),
                observed: BTreeMap::new(),
                leave_alone: LeaveAlone::new(),
                desired: BTreeSet::new(),
                prune: true,
            }
        }

        fn want(mut self, network: &str, f: &Rendered) -> Case {
            self.wanted.insert(network.into(), f.clone());
            self.desired.insert(network.into());
            self
        }

        fn found(mut self, network: &str, o: ObservedInstance) -> Case {
            self.observed.insert(network.into(), o);
            self
        }

        fn plan(&self) -> DnsPlan {
            let bridges = self
                .wanted
                .keys()
                .map(|n| (n.clone(), format!("br-{n}")))
                .collect();
            plan(&Inputs {
                wanted: &self.wanted,
                bridges: &bridges,
                observed: &self.observed,
                leave_alone: &self.leave_alone,
                desired: &self.desired,
                prune: self.prune,
            })
        }
    }

    #[test]
    fn in_sync_instance_plans_nothing() {
        let f = files("interface=br-a\n", "52:54:00:00:00:01,10.0.0.10\n");
        let p = Case::new().want("a", &f).found("a", running(7, &f)).plan();
        assert_eq!(p, DnsPlan::default());
    }

    #[test]
    fn dead_instance_is_started_with_its_leases_kept() {
        let f = files("interface=br-a\n", "");
        let dead = ObservedInstance {
            pid: None,
            ..running(7, &f)
        };
        let p = Case::new().want("a", &f).found("a", dead).plan();
        assert_eq!(p.drift.len(), 1);
        assert_eq!(p.drift[0].to_string(), "+ dnsmasq a on br-a: missing");
        assert_eq!(
            p.actions,
            [DnsAction::Start {
                network: "a".into(),
                files: f
            }]
        );
    }

    #[test]
    fn config_change_restarts_and_says_which_line() {
        let old = files("interface=br-a\ndhcp-range=10.0.0.2,10.0.0.99\n", "");
        let new = files("interface=br-a\ndhcp-range=10.0.0.2,10.0.0.199\n", "");
        let p = Case::new()
            .want("a", &new)
            .found("a", running(7, &old))
            .plan();
        assert_eq!(
            p.drift[0].to_string(),
            "~ dnsmasq a on br-a config: wanted \"dhcp-range=10.0.0.2,10.0.0.199\", found \"dhcp-range=10.0.0.2,10.0.0.99\""
        );
        assert!(matches!(p.actions[..], [DnsAction::Restart { pid: 7, .. }]));
    }

    #[test]
    fn hosts_change_reloads_the_same_process() {
        let old = files("interface=br-a\n", "52:54:00:00:00:01,10.0.0.10\n");
        let new = files("interface=br-a\n", "52:54:00:00:00:01,10.0.0.20\n");
        let p = Case::new()
            .want("a", &new)
            .found("a", running(7, &old))
            .plan();
        assert_eq!(p.drift.len(), 1);
        assert_eq!(p.drift[0].field.as_deref(), Some("dhcp-hosts"));
        assert!(matches!(p.actions[..], [DnsAction::Reload { pid: 7, .. }]));
    }

    #[test]
    fn stray_instances_stop_only_when_safe() {
        let f = files("interface=br-old\n", "");
        let case = Case::new().found("old", running(9, &f));
        let p = case.plan();
        assert_eq!(
            p.drift[0].to_string(),
            "- dnsmasq old: not in the desired state"
        );
        assert_eq!(
            p.actions,
            [DnsAction::Stop {
                network: "old".into(),
                pid: Some(9)
            }]
        );
        // A rejected file may still define it: nothing is pruned.
        let keep = Case {
            prune: false,
            ..Case::new().found("old", running(9, &f))
        };
        assert_eq!(keep.plan(), DnsPlan::default());
        // A desired network that no longer wants dnsmasq stops it even then.
        let mut quiet = Case {
            prune: false,
            ..Case::new().found("old", running(9, &f))
        };
        quiet.desired.insert("old".into());
        assert_eq!(quiet.plan().actions.len(), 1);
    }

    #[test]
    fn an_instance_found_without_its_pid_file_is_adopted_and_a_second_one_stopped() {
        let f = files("interface=br-a\n", "");
        let orphan = ObservedInstance {
            pid_file: None,
            duplicates: vec![12],
            ..running(7, &f)
        };
        let p = Case::new().want("a", &f).found("a", orphan).plan();
        assert_eq!(
            p.actions,
            [
                DnsAction::StopDuplicate {
                    network: "a".into(),
                    pid: 12
                },
                DnsAction::WritePidFile {
                    network: "a".into(),
                    pid: 7
                }
            ]
        );
        assert_eq!(
            p.drift[1].to_string(),
            "~ dnsmasq a on br-a pid-file: wanted 7, found missing or unreadable"
        );
    }

    #[test]
    fn networks_left_alone_keep_what_runs() {
        let f = files("interface=br-a\n", "");
        let mut case = Case::new().want("a", &f).found("b", running(9, &f));
        case.leave_alone.insert("a".into());
        case.leave_alone.insert("b".into());
        assert_eq!(case.plan(), DnsPlan::default());
    }
}
