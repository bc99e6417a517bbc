//! The firewall: kvmnet's nftables rules, kept in one table of
//! its own, `inet kvmnet`, and replaced as a whole in one `nft` transaction.
//!
//! Rendering ([`render`]), diffing ([`diff`]) and the coexistence check
//! ([`coexist`]) are pure; [`nft`] is the only module that runs `nft`.
//! Rules are kept in the JSON form `nft -j list` prints them, so that what
//! is wanted and what is observed compare as plain values.

pub mod coexist;
pub mod diff;
pub mod generation;
pub mod monitor;
pub mod nft;
pub mod render;
pub mod text;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The table family: `inet` holds IPv4 and IPv6 rules (NAT too, kernel ≥ 5.2).
pub const FAMILY: &str = "inet";
/// The table kvmnet owns; it never lists, flushes or edits another.
pub const TABLE: &str = "kvmnet";
/// The comment of rules that belong to no network (jumps between our chains).
pub const STRUCTURAL: &str = "kvmnet";

/// The comment that marks a rule as `network`'s (like the links' alias).
pub fn rule_comment(network: &str) -> String {
    crate::core::owner_alias(network)
}

/// The network a rule's comment names, if any.
pub fn comment_network(comment: &str) -> Option<&str> {
    comment.strip_prefix(crate::core::ALIAS_PREFIX)
}

/// A chain of our table. Base chains have a hook; regular chains are only
/// reached by jumps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub name: String,
    pub hook: Option<Hook>,
}

/// What makes a chain a base chain: type, hook, priority and policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// `filter` or `nat`.
    pub kind: String,
    pub hook: String,
    pub prio: i64,
    pub policy: String,
}

impl Hook {
    /// Text as `nft list` shows it, for reports.
    pub fn describe(&self) -> String {
        format!(
            "type {} hook {} priority {} policy {}",
            self.kind, self.hook, self.prio, self.policy
        )
    }
}

/// One rule: its chain, comment and statements in `nft -j` form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub chain: String,
    pub comment: String,
    pub expr: Vec<Value>,
}

impl Rule {
    /// The network the rule belongs to, from its comment.
    pub fn network(&self) -> Option<&str> {
        comment_network(&self.comment)
    }
}

/// The contents of our table: chains in creation order, rules in order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Table {
    pub chains: Vec<Chain>,
    pub rules: Vec<Rule>,
}

impl Table {
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    pub fn rules_in<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::desired::{DesiredNetwork, DesiredState};
use crate::config::model::Mode;
use crate::core::fs::write_atomic;
use crate::core::{Drift, Failure, LeaveAlone};
use crate::core::{Outcome, StepResult};
use coexist::BaseChain;
use generation::GenerationKey;

/// The firewall's part of a pass: drift, the table that repairs it, and
/// warnings about other tables.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub drift: Vec<Drift>,
    pub wanted: Table,
    pub warnings: Vec<String>,
    /// Networks whose rules could not be checked (nft failed).
    pub failures: Vec<Failure>,
}

/// The firewall subsystem of a reconciler.
#[derive(Debug)]
pub struct Firewall {
    nft: nft::Nft,
    /// What the last listing found, kept in memory and in this file so that
    /// `--once` and `--check` runs profit too.
    known_path: PathBuf,
    known: Mutex<Option<Known>>,
}

/// What a listing found at a ruleset generation: a digest of our table and
/// the other tables' base chains. While the generation holds, a wanted
/// table with that digest is known to be in place without listing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Known {
    key: GenerationKey,
    table_digest: u64,
    chains: Vec<BaseChain>,
}

/// Our table as the diff sees it: chains in any order, rules in order
/// within their chain. An empty wanted table means "no table".
fn digest(table: Option<&Table>) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    if let Some(table) = table {
        let mut chains: Vec<&Chain> = table.chains.iter().collect();
        chains.sort_by(|a, b| a.name.cmp(&b.name));
        for chain in chains {
            let rules: Vec<&Rule> = table.rules_in(&chain.name).collect();
            serde_json::to_string(&(chain, rules))
                .unwrap_or_default()
                .hash(&mut hasher);
        }
    } else {
        "no table".hash(&mut hasher);
    }
    hasher.finish()
}

impl Firewall {
    /// What listings found is remembered under `run_dir` (gone at reboot).
    pub fn new(run_dir: &Path) -> Firewall {
        Firewall {
            nft: nft::Nft::default(),
            known_path: run_dir.join("firewall-known.json"),
            known: Mutex::new(None),
        }
    }

    /// `nft` transactions committed so far.
    pub fn writes(&self) -> u64 {
        self.nft.writes()
    }

    /// Observes our table and the other tables' base chains (two `nft`
    /// runs, in parallel; none when the ruleset generation shows that the
    /// table is the wanted one) and diffs. Networks in `leave_alone` cannot
    /// be converged (their bridge name is taken...): their rules are left as
    /// they are.
    pub async fn audit(&self, desired: &DesiredState, leave_alone: &LeaveAlone) -> Audit {
        let live: Vec<&DesiredNetwork> = desired
            .networks
            .values()
            .filter(|n| !leave_alone.contains(&n.name))
            .collect();
        let bridges = |pred: fn(Mode) -> bool| -> Vec<&str> {
            live.iter()
                .filter(|n| pred(n.spec.mode))
                .map(|n| n.bridge.as_str())
                .collect()
        };
        let warnings = |chains: &[BaseChain]| {
            coexist::warnings(
                chains,
                &bridges(Mode::forwards),
                &bridges(render::has_rules),
            )
        };
        let mut audit = Audit::default();

        // Read before listing: a change in between leaves the remembered
        // key older than the listing, which costs one listing more, never a
        // stale answer.
        let key = generation::current().ok();
        if let Some(known) = key.as_ref().and_then(|key| self.known(key)) {
            // Without the observed table, networks left alone get no rules:
            // the digests then differ whenever such rules exist, and the
            // table is listed.
            let wanted = wanted(desired, &live, None);
            let present = (!wanted.chains.is_empty()).then_some(&wanted);
            if digest(present) == known.table_digest {
                audit.warnings = warnings(&known.chains);
                audit.wanted = wanted;
                return audit;
            }
        }

        let (table, chains) = tokio::join!(self.nft.table(), self.nft.base_chains());
        if let (Some(key), Ok(table), Ok(chains)) = (key, &table, &chains) {
            self.remember(Known {
                key,
                table_digest: digest(table.as_ref()),
                chains: chains.clone(),
            });
        }
        match chains {
            Ok(chains) => audit.warnings = warnings(&chains),
            Err(e) => audit
                .warnings
                .push(format!("cannot check other tables for drop policies: {e}")),
        }
        let observed = match table {
            Ok(table) => table,
            Err(e) => {
                audit.failures = live
                    .iter()
                    .filter(|n| render::has_rules(n.spec.mode))
                    .map(|n| Failure {
                        network: n.name.clone(),
                        message: format!("cannot observe its firewall rules: {e}"),
                    })
                    .collect();
                return audit;
            }
        };
        audit.wanted = wanted(desired, &live, observed.as_ref());
        audit.drift = diff::diff(&audit.wanted, observed.as_ref());
        audit
    }

    fn known(&self, key: &GenerationKey) -> Option<Known> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.is_none() {
            *known = std::fs::read(&self.known_path)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        }
        known.as_ref().filter(|k| &k.key == key).cloned()
    }

    /// Not a write of kvmnet's state: losing the file costs one listing.
    fn remember(&self, known: Known) {
        let mut current = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref() != Some(&known) {
            if let Ok(bytes) = serde_json::to_vec(&known) {
                let _ = write_atomic(&self.known_path, &bytes);
            }
            *current = Some(known);
        }
    }

    /// Replaces our table when the audit found drift: one outcome, or none
    /// when nothing differs (an in-sync pass makes no write).
    pub async fn repair(&self, audit: &Audit) -> Option<Outcome> {
        if audit.drift.is_empty() || !audit.failures.is_empty() {
            return None;
        }
        let action = if audit.wanted.chains.is_empty() {
            format!("delete table {FAMILY} {TABLE}")
        } else {
            format!(
                "replace table {FAMILY} {TABLE} ({} rules)",
                audit.wanted.rules.len()
            )
        };
        let result = match self.nft.replace(&audit.wanted).await {
            Ok(()) => StepResult::Done,
            Err(e) => StepResult::Failed(e.to_string()),
        };
        Some(Outcome {
            network: None,
            action,
            result,
        })
    }
}

/// The table kvmnet wants: the rules of `live` networks, plus the observed
/// rules of networks it must leave alone: failed ones, and, while some file
/// is rejected without a last good copy, networks the files do not name.
pub fn wanted(desired: &DesiredState, live: &[&DesiredNetwork], observed: Option<&Table>) -> Table {
    let mut rules = render::rules(live.iter().copied());
    let ours: BTreeSet<String> = render::chains().into_iter().map(|c| c.name).collect();
    let kept = observed.into_iter().flat_map(|t| &t.rules).filter(|r| {
        let Some(network) = r.network() else {
            return false;
        };
        let left_alone = match desired.networks.get(network) {
            Some(_) => !live.iter().any(|n| n.name == network),
            None => !desired.complete,
        };
        left_alone && ours.contains(&r.chain)
    });
    rules.extend(kept.cloned());
    render::table(rules)
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;
    use crate::testutil::desired;

    fn foreign_rule(network: &str) -> Rule {
        Rule {
            chain: render::GUEST_CROSS.into(),
            comment: rule_comment(network),
            expr: vec![json!({"accept": null})],
        }
    }

    const NAT: &str =
        "[networks.a]\nmode = \"nat\"\n[[networks.a.ip]]\naddress = \"192.168.10.1/24\"\n";

    #[test]
    fn digest_is_the_diffs_view_chain_order_free_rule_order_bound() {
        let state = desired(NAT);
        let live: Vec<&DesiredNetwork> = state.networks.values().collect();
        let table = wanted(&state, &live, None);

        // As `nft list` shows it: chain by chain, in another chain order.
        let mut listed = Table {
            chains: table.chains.iter().rev().cloned().collect(),
            rules: Vec::new(),
        };
        for chain in listed.chains.clone() {
            listed.rules.extend(table.rules_in(&chain.name).cloned());
        }
        assert_eq!(digest(Some(&table)), digest(Some(&listed)));

        let mut reordered = table.clone();
        reordered.rules.reverse();
        assert_ne!(digest(Some(&table)), digest(Some(&reordered)));
        assert_ne!(digest(None), digest(Some(&Table::default())));
    }

    #[test]
    fn rules_of_networks_no_file_names_go_unless_a_file_is_rejected() {
        let mut state = desired(NAT);
        let live: Vec<&DesiredNetwork> = state.networks.values().collect();
        let observed = Table {
            chains: render::chains(),
            rules: vec![foreign_rule("gone")],
        };
        let t = wanted(&state, &live, Some(&observed));
        assert!(t.rules.iter().all(|r| r.network() != Some("gone")));

        state.complete = false;
        let live: Vec<&DesiredNetwork> = state.networks.values().collect();
        let t = wanted(&state, &live, Some(&observed));
        assert!(t.rules.contains(&foreign_rule("gone")));
    }

    #[test]
    fn a_failed_network_keeps_the_rules_it_has() {
        let state = desired(NAT);
        let observed = Table {
            chains: render::chains(),
            rules: vec![foreign_rule("a")],
        };
        let t = wanted(&state, &[], Some(&observed));
        assert_eq!(t.rules.last(), Some(&foreign_rule("a")));
        assert_eq!(
            t.rules.iter().filter(|r| r.network() == Some("a")).count(),
            1
        );
        assert_eq!(wanted(&state, &[], None), Table::default());
    }
}
