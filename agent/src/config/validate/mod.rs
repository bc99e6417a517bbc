//! Validation: everything a careful operator wants caught before it reaches a
//! kernel. All problems are reported at once, each located to line and
//! column; a file with any problem is rejected as a whole.
//!
//! One submodule per part of the file format, in its order, so that each
//! can be read against its part of docs/configuration.md.

mod across;
mod bridge;
mod dhcp;
mod dns;
mod forwards;
mod ip;
mod names;
mod overlay;
#[cfg(test)]
mod tests;

use across::*;
use bridge::*;
use dhcp::*;
pub use dns::is_safe_dns_name;
use dns::*;
use forwards::*;
use ip::*;
use names::*;
pub use names::{check_ifname, is_safe_ifname, is_safe_network_name};
use overlay::*;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::desired::{DesiredNetwork, DesiredState, RejectedFile};
use crate::config::diagnostic::Diagnostic;
use crate::config::load::{FileLoad, ParsedFile};
use crate::config::locate::{KeyPath, Target};
use crate::config::model::{
    BootpConfig, DhcpConfig, IpConfig, LeaseTime, Mode, Network, OverlayConfig, PortForward,
    PortRange, Proto, SrvRecord, TxtRecord,
};

/// The longest network name: it appears in link aliases, file names and
/// firewall comments.
const MAX_NETWORK_NAME: usize = 64;
/// The kernel's IFNAMSIZ less the terminating NUL.
const MAX_IFNAME: usize = 15;
/// dnsmasq refuses shorter leases.
const MIN_LEASE_SECS: u64 = 120;
/// The kernel's bounds for the STP forward delay.
const MAX_FORWARD_DELAY_SECS: u64 = 30;

impl DesiredState {
    /// Validates loaded files: each file is accepted or rejected as a whole.
    pub fn from_loads(loads: Vec<FileLoad>) -> DesiredState {
        validate(loads)
    }
}

/// Validates loaded files into the desired state.
pub fn validate(loads: Vec<FileLoad>) -> DesiredState {
    let mut rejected = Vec::new();
    let mut accepted = Vec::new();
    for load in loads {
        match load.result {
            Err(diagnostics) => rejected.push(RejectedFile {
                path: load.path,
                diagnostics,
                networks: Vec::new(),
            }),
            Ok(file) => {
                let diagnostics = check_file(&file);
                if diagnostics.is_empty() {
                    accepted.push(file);
                } else {
                    rejected.push(RejectedFile {
                        networks: file.networks.keys().cloned().collect(),
                        path: file.path,
                        diagnostics,
                    });
                }
            }
        }
    }

    let mut conflicts = check_across(&accepted);
    let mut state = DesiredState::default();
    for (i, file) in accepted.into_iter().enumerate() {
        match conflicts.remove(&i) {
            Some(diagnostics) => rejected.push(RejectedFile {
                networks: file.networks.keys().cloned().collect(),
                path: file.path,
                diagnostics,
            }),
            None => {
                for (name, spec) in file.networks {
                    let network = DesiredNetwork::new(&name, &file.path, spec);
                    state.networks.insert(name, network);
                }
            }
        }
    }
    rejected.sort_by(|a, b| a.path.cmp(&b.path));
    state.complete = rejected.is_empty();
    state.rejected = rejected;
    state
}

/// Builds located diagnostics for one file.
struct Reporter<'a> {
    file: &'a ParsedFile,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    fn new(file: &'a ParsedFile) -> Self {
        Reporter {
            file,
            diagnostics: Vec::new(),
        }
    }

    fn error(
        &mut self,
        path: &KeyPath,
        target: Target,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let d = located(self.file, path, target, message.into());
        self.diagnostics.push(d);
        self.diagnostics.last_mut().expect("just pushed")
    }
}

fn located(file: &ParsedFile, path: &KeyPath, target: Target, message: String) -> Diagnostic {
    let message = format!("{path}: {message}");
    match file.locator.locate(path, target) {
        Some(loc) => Diagnostic::at(&file.path, &file.text, loc, message),
        None => Diagnostic::file_level(&file.path, message),
    }
}

fn position(file: &ParsedFile, path: &KeyPath, target: Target) -> String {
    match file.locator.locate(path, target) {
        Some(l) => format!("{}:{}:{}", file.path.display(), l.line, l.column),
        None => file.path.display().to_string(),
    }
}

fn check_file(file: &ParsedFile) -> Vec<Diagnostic> {
    let mut r = Reporter::new(file);
    for (name, network) in &file.networks {
        check_network(&mut r, name, network);
    }
    r.diagnostics
}

fn check_network(r: &mut Reporter, name: &str, net: &Network) {
    let at = KeyPath::network(name);
    if let Err(why) = check_network_name(name) {
        r.error(
            &at,
            Target::Key,
            format!("invalid network name {name:?}: {why}"),
        )
        .hint("use letters, digits, '-', '_' and '.', starting with a letter or digit");
    }
    check_bridge(r, &at, name, net);
    check_mode_keys(r, &at, net);
    for (i, ip) in net.ip.iter().enumerate() {
        check_ip(r, &at.key("ip").index(i), ip);
    }
    check_ip_set(r, &at, net);
    check_dns(r, &at, net);
    check_routes(r, &at, net);
    for (i, pf) in net.port_forwards.iter().enumerate() {
        check_port_forward(r, &at.key("port_forwards").index(i), net, pf);
    }
    check_forwards_overlap(r, &at, net);
    if let Some(overlay) = &net.overlay {
        check_overlay(r, &at, net, overlay);
    }
    check_dual_stack_hosts(r, &at, net);
    if let Some(dnsmasq) = &net.dnsmasq {
        check_dnsmasq_options(r, &at.key("dnsmasq").key("options"), &dnsmasq.options);
    }
    if let Some(nat) = &net.nat {
        if nat.ipv6 && !net.ip.iter().any(|ip| ip.address.0.addr().is_ipv6()) {
            r.error(
                &at.key("nat").key("ipv6"),
                Target::Value,
                "nat.ipv6 is set but the network has no IPv6 address",
            )
            .hint("add an IPv6 entry to ip[] or remove nat.ipv6");
        }
    }
}
