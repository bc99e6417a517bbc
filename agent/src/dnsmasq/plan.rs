//! Diff and plan for dnsmasq instances: a pure function of the wanted
//! instances (rendered files) and the observed ones. The configuration text
//! decides between a restart and a SIGHUP: only the two hosts files are
//! re-read on SIGHUP, so a change there keeps the process and its leases.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::plan::{Change, Drift, Resource};

use super::render::Rendered;

/// What the agent found of one network's instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedInstance {
    /// The pid of a live dnsmasq running our exact configuration path.
    pub pid: Option<i32>,
    pub conf: Option<String>,
    pub hosts: Option<String>,
    pub addn_hosts: Option<String>,
}

impl ObservedInstance {
    /// Anything of it exists: a process or a file.
    pub fn exists(&self) -> bool {
        self.pid.is_some() || self.conf.is_some() || self.hosts.is_some()
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
}

impl DnsAction {
    pub fn network(&self) -> &str {
        match self {
            DnsAction::Start { network, .. }
            | DnsAction::Restart { network, .. }
            | DnsAction::Reload { network, .. }
            | DnsAction::Stop { network, .. } => network,
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
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsPlan {
    pub drift: Vec<Drift>,
    pub actions: Vec<DnsAction>,
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
    pub untouched: &'a BTreeSet<String>,
    /// Networks in the files (an unwanted instance of one is stopped).
    pub desired: &'a BTreeSet<String>,
    /// Stop instances of networks that are no longer in the files.
    pub prune: bool,
}

pub fn plan(inputs: &Inputs) -> DnsPlan {
    let mut p = DnsPlan::default();
    for (network, files) in inputs.wanted {
        if inputs.untouched.contains(network) {
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
        let hosts = [
            ("dhcp-hosts", &files.hosts, &found.hosts),
            ("dns-hosts", &files.addn_hosts, &found.addn_hosts),
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
            && !inputs.untouched.contains(network)
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
