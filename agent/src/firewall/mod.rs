//! The firewall: kvmnet's nftables rules, kept in one table of
//! its own, `inet kvmnet`, and replaced as a whole in one `nft` transaction.
//!
//! A pass has three parts, like the other subsystems': [`Firewall::observe`]
//! lists the table and the other tables' base chains (or, while the ruleset
//! generation shows nothing changed, lists nothing), [`plan`] renders the
//! wanted table and diffs (pure), and [`Firewall::apply`] writes it.
//! Rendering ([`render`]), diffing ([`diff`]) and the coexistence check
//! ([`coexist`]) are pure; [`nft`] is the only module that runs `nft`.
//! Rules are typed values of the `nftables` crate's schema, built in the
//! form `nft -j list` prints them, so that what is wanted and what is
//! listed compare as plain values.

pub mod coexist;
pub mod diff;
pub mod generation;
#[cfg(test)]
mod golden;
pub mod monitor;
pub mod nft;
pub mod render;
pub mod text;

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::desired::{DesiredNetwork, DesiredState};
use crate::config::model::Mode;
use crate::core::fs::write_atomic;
use crate::core::{Drift, Failure, LeaveAlone, Outcome, StepResult};
use coexist::BaseChain;
use generation::GenerationKey;
use nft::NftError;

/// The table family: `inet` holds IPv4 and IPv6 rules (NAT too, kernel ≥ 5.2).
pub const FAMILY: &str = "inet";
/// The table kvmnet owns; it never lists, flushes or edits another.
pub const TABLE: &str = "kvmnet";
/// The comment of rules that belong to no network (jumps between our chains).
pub const STRUCTURAL: &str = "kvmnet";

/// A chain of our table, without its handle. Base chains have a type, hook,
/// priority and policy; regular chains are only reached by jumps.
pub type Chain = nftables::schema::Chain<'static>;

/// A rule of our table, without its handle: chain, comment and statements.
pub type Rule = nftables::schema::Rule<'static>;

/// The comment that marks a rule as `network`'s (like the links' alias).
pub fn rule_comment(network: &str) -> String {
    crate::core::owner_alias(network)
}

/// The network a rule's comment names, if any.
pub fn comment_network(comment: &str) -> Option<&str> {
    comment.strip_prefix(crate::core::ALIAS_PREFIX)
}

/// The network `rule` belongs to, from its comment.
pub fn rule_network(rule: &Rule) -> Option<&str> {
    rule.comment.as_deref().and_then(comment_network)
}

/// The contents of our table: chains in creation order, rules in order.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
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

/// Our table as `nft` lists it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listed {
    /// The chains and rules the typed schema reads (all of kvmnet's own).
    pub table: Table,
    /// Chains and rules it cannot read: added by hand with an expression or
    /// statement the `nftables` crate does not know. Always drift.
    pub unparseable: Vec<Unparseable>,
}

/// A chain or rule of our table that the typed schema cannot read, as
/// listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Unparseable {
    /// `chain` or `rule`.
    pub kind: String,
    /// The chain: the object's own name, or the chain the rule is in.
    pub chain: String,
    pub comment: Option<String>,
    /// The object's body in `nft -j` form.
    pub listed: Value,
}

impl Unparseable {
    /// The network its comment names, if any.
    pub fn network(&self) -> Option<&str> {
        self.comment.as_deref().and_then(comment_network)
    }
}

/// What observing the firewall found.
#[derive(Debug)]
pub struct Observed {
    /// Our table, or why it could not be listed.
    pub table: Result<TableState, NftError>,
    /// Every base chain of every table, or why they could not be listed.
    pub base_chains: Result<Vec<BaseChain>, NftError>,
}

/// Our table, listed or known.
#[derive(Debug)]
pub enum TableState {
    /// Not listed: the ruleset generation has not moved since a listing
    /// found exactly the table wanted for the desired state and networks
    /// left alone that [`Firewall::observe`] was given.
    Wanted,
    /// As listed; `None` when the table does not exist.
    Listed(Option<Listed>),
}

/// The one write that converges our table.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Put this table in place of whatever is there.
    Replace(Table),
    /// No network needs rules: the table goes.
    Delete,
}

impl Action {
    /// What the outcome of the write reports.
    pub fn describe(&self) -> String {
        match self {
            Action::Replace(table) => {
                format!(
                    "replace table {FAMILY} {TABLE} ({} rules)",
                    table.rules.len()
                )
            }
            Action::Delete => format!("delete table {FAMILY} {TABLE}"),
        }
    }
}

/// The firewall's part of a pass: drift, the write that repairs it, and
/// warnings about other tables.
#[derive(Debug, Clone, Default)]
pub struct FirewallPlan {
    pub drift: Vec<Drift>,
    /// At most one: the whole table is replaced in one transaction. None
    /// when in sync, or when the table could not be listed.
    pub action: Option<Action>,
    /// Networks whose rules could not be checked (nft failed).
    pub failures: Vec<Failure>,
    pub warnings: Vec<String>,
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

    /// Lists our table and the other tables' base chains (two `nft` runs,
    /// in parallel), or none when the ruleset generation shows that the
    /// table is the one [`plan`] will want for `desired` and `leave_alone`.
    pub async fn observe(&self, desired: &DesiredState, leave_alone: &LeaveAlone) -> Observed {
        // Read before listing: a change in between leaves the remembered
        // key older than the listing, which costs one listing more, never a
        // stale answer.
        let key = generation::current().ok();
        if let Some(known) = key.as_ref().and_then(|key| self.known(key)) {
            // Without the listed table, networks left alone get no rules:
            // the digests then differ whenever such rules exist, and the
            // table is listed.
            let wanted = wanted(desired, leave_alone, None);
            let present = (!wanted.chains.is_empty()).then_some(&wanted);
            if digest(present) == known.table_digest {
                return Observed {
                    table: Ok(TableState::Wanted),
                    base_chains: Ok(known.chains),
                };
            }
        }

        let (table, base_chains) = tokio::join!(self.nft.table(), self.nft.base_chains());
        if let (Some(key), Ok(listed), Ok(chains)) = (key, &table, &base_chains) {
            // A listing with unparseable objects equals no wanted table: not
            // remembered, so the next pass lists again.
            if listed.as_ref().is_none_or(|l| l.unparseable.is_empty()) {
                self.remember(Known {
                    key,
                    table_digest: digest(listed.as_ref().map(|l| &l.table)),
                    chains: chains.clone(),
                });
            }
        }
        Observed {
            table: table.map(TableState::Listed),
            base_chains,
        }
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
                let _ = write_atomic(&self.known_path, &bytes, crate::core::fs::PRIVATE);
            }
            *current = Some(known);
        }
    }

    /// Writes the plan's table: one outcome, or none when nothing differs
    /// (an in-sync pass makes no write).
    pub async fn apply(&self, plan: &FirewallPlan) -> Vec<Outcome> {
        let Some(action) = &plan.action else {
            return Vec::new();
        };
        let result = match self.nft.write(action).await {
            Ok(()) => StepResult::Done,
            Err(e) => StepResult::Failed(e.to_string()),
        };
        vec![Outcome {
            network: None,
            action: action.describe(),
            result,
        }]
    }
}

/// The networks whose rules the pass renders: all but those left alone.
fn live<'a>(desired: &'a DesiredState, leave_alone: &LeaveAlone) -> Vec<&'a DesiredNetwork> {
    desired
        .networks
        .values()
        .filter(|n| !leave_alone.contains(n.name.as_str()))
        .collect()
}

/// Drift, the write that repairs it, failures and warnings, from what
/// [`Firewall::observe`] found for the same `desired` and `leave_alone`.
/// Networks left alone cannot be converged (their bridge name is taken...):
/// their rules stay as they are.
pub fn plan(desired: &DesiredState, observed: &Observed, leave_alone: &LeaveAlone) -> FirewallPlan {
    let live = live(desired, leave_alone);
    let bridges = |pred: fn(Mode) -> bool| -> Vec<&str> {
        live.iter()
            .filter(|n| pred(n.spec.mode))
            .map(|n| n.bridge.as_str())
            .collect()
    };
    let mut plan = FirewallPlan {
        warnings: match &observed.base_chains {
            Ok(chains) => coexist::warnings(
                chains,
                &bridges(Mode::forwards),
                &bridges(render::has_rules),
            ),
            Err(e) => vec![format!("cannot check other tables for drop policies: {e}")],
        },
        ..FirewallPlan::default()
    };
    match &observed.table {
        Ok(TableState::Wanted) => {}
        Ok(TableState::Listed(listed)) => {
            let wanted = wanted(desired, leave_alone, listed.as_ref().map(|l| &l.table));
            plan.drift = diff::diff(&wanted, listed.as_ref());
            if !plan.drift.is_empty() {
                plan.action = Some(if wanted.chains.is_empty() {
                    Action::Delete
                } else {
                    Action::Replace(wanted)
                });
            }
        }
        Err(e) => {
            plan.failures = live
                .iter()
                .filter(|n| render::has_rules(n.spec.mode))
                .map(|n| Failure {
                    network: n.name.clone(),
                    message: format!("cannot observe its firewall rules: {e}"),
                })
                .collect();
        }
    }
    plan
}

/// The table kvmnet wants: the rules of the networks not left alone, plus
/// the listed rules of networks it must leave alone: those in
/// `leave_alone`, and, while some file is rejected without a last good
/// copy, networks the files do not name. (Only rules the typed schema
/// reads are kept: an unparseable one was added by hand, never by kvmnet.)
pub fn wanted(desired: &DesiredState, leave_alone: &LeaveAlone, listed: Option<&Table>) -> Table {
    let mut rules = render::rules(live(desired, leave_alone));
    let ours: BTreeSet<String> = render::chains()
        .into_iter()
        .map(|c| c.name.into_owned())
        .collect();
    let kept = listed.into_iter().flat_map(|t| &t.rules).filter(|r| {
        let Some(network) = rule_network(r) else {
            return false;
        };
        let left_alone = match desired.networks.get(network) {
            Some(_) => leave_alone.contains(network),
            None => !desired.complete,
        };
        left_alone && ours.contains(r.chain.as_ref())
    });
    rules.extend(kept.cloned());
    render::table(rules)
}

#[cfg(test)]
mod tests {

    use nftables::stmt::Statement;

    use super::*;
    use crate::testutil::desired;

    fn foreign_rule(network: &str) -> Rule {
        Rule {
            table: TABLE.into(),
            chain: render::GUEST_CROSS.into(),
            comment: Some(rule_comment(network).into()),
            expr: vec![Statement::Accept(None)].into(),
            ..Rule::default()
        }
    }

    const NAT: &str =
        "[networks.a]\nmode = \"nat\"\n[[networks.a.ip]]\naddress = \"192.168.10.1/24\"\n";

    #[test]
    fn digest_is_the_diffs_view_chain_order_free_rule_order_bound() {
        let state = desired(NAT);
        let table = wanted(&state, &LeaveAlone::new(), None);

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
        let observed = Table {
            chains: render::chains(),
            rules: vec![foreign_rule("gone")],
        };
        let t = wanted(&state, &LeaveAlone::new(), Some(&observed));
        assert!(t.rules.iter().all(|r| rule_network(r) != Some("gone")));

        state.complete = false;
        let t = wanted(&state, &LeaveAlone::new(), Some(&observed));
        assert!(t.rules.contains(&foreign_rule("gone")));
    }

    #[test]
    fn a_failed_network_keeps_the_rules_it_has() {
        let state = desired(NAT);
        let observed = Table {
            chains: render::chains(),
            rules: vec![foreign_rule("a")],
        };
        let leave_alone = LeaveAlone::from(["a".to_string()]);
        let t = wanted(&state, &leave_alone, Some(&observed));
        assert_eq!(t.rules.last(), Some(&foreign_rule("a")));
        assert_eq!(
            t.rules
                .iter()
                .filter(|r| rule_network(r) == Some("a"))
                .count(),
            1
        );
        assert_eq!(wanted(&state, &leave_alone, None), Table::default());
    }

    fn listed(table: Table) -> Result<TableState, NftError> {
        Ok(TableState::Listed(Some(Listed {
            table,
            unparseable: Vec::new(),
        })))
    }

    fn failed() -> NftError {
        NftError {
            op: "nft -j list".into(),
            detail: "Operation not permitted".into(),
        }
    }

    #[test]
    fn plan_writes_only_on_drift_and_never_after_a_failed_listing() {
        let state = desired(NAT);
        let none = LeaveAlone::new();
        let wanted_table = wanted(&state, &none, None);
        let plan_of = |table, base_chains| plan(&state, &Observed { table, base_chains }, &none);

        let in_sync = plan_of(listed(wanted_table.clone()), Ok(Vec::new()));
        assert!(in_sync.drift.is_empty() && in_sync.action.is_none());
        let known = plan_of(Ok(TableState::Wanted), Ok(Vec::new()));
        assert!(known.drift.is_empty() && known.action.is_none());

        let missing = plan_of(Ok(TableState::Listed(None)), Ok(Vec::new()));
        assert_eq!(missing.drift.len(), 1);
        assert_eq!(missing.action, Some(Action::Replace(wanted_table.clone())));

        let unreadable = plan_of(Err(failed()), Err(failed()));
        assert!(unreadable.action.is_none() && unreadable.drift.is_empty());
        assert_eq!(unreadable.failures.len(), 1);
        assert_eq!(unreadable.failures[0].network, "a");
        assert!(unreadable.warnings[0].starts_with("cannot check other tables"));

        // The last network left alone: nothing to render, its rules stay.
        let leave_alone = LeaveAlone::from(["a".to_string()]);
        let kept = plan(
            &state,
            &Observed {
                table: listed(wanted_table),
                base_chains: Ok(Vec::new()),
            },
            &leave_alone,
        );
        assert!(kept.action.is_none(), "{:?}", kept.drift);
    }

    #[test]
    fn no_network_with_rules_deletes_the_table() {
        let state = desired("[networks.o]\nmode = \"open\"\n");
        let stale = wanted(&desired(NAT), &LeaveAlone::new(), None);
        let p = plan(
            &state,
            &Observed {
                table: listed(stale),
                base_chains: Ok(Vec::new()),
            },
            &LeaveAlone::new(),
        );
        assert_eq!(p.action, Some(Action::Delete));
        assert_eq!(p.action.unwrap().describe(), "delete table inet kvmnet");
    }
}
