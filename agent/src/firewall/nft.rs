//! I/O with `nft`: list our table and the base chains of all tables, and
//! replace our table in one transaction. Documents are the `nftables`
//! crate's typed schema, but `nft` runs here, not through the crate's
//! helper: `nft`'s own error text goes into our errors (the helper drops
//! stderr), and the pid of each writer is recorded for the monitor.

use std::collections::VecDeque;
use std::fmt;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use nftables::schema::{NfCmd, NfListObject, NfObject, Nftables};
use nftables::types::NfFamily;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::coexist::BaseChain;
use super::{Action, Listed, Unparseable, FAMILY, TABLE};

/// A failed `nft` call: what was tried and what nft said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftError {
    pub op: String,
    pub detail: String,
}

impl fmt::Display for NftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.detail)
    }
}

impl std::error::Error for NftError {}

/// Pids of the latest `nft` processes that wrote our table, so that the
/// monitor can tell our own changes from others' (a generation's "by process
/// PID" line): a repair must not trigger the next pass.
static WRITERS: Mutex<VecDeque<u32>> = Mutex::new(VecDeque::new());
const WRITERS_KEPT: usize = 16;

/// Whether `pid` is one of the latest `nft` processes kvmnet ran to write.
pub fn is_our_write(pid: u32) -> bool {
    WRITERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&pid)
}

fn record_writer(pid: u32) {
    let mut writers = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
    if writers.len() == WRITERS_KEPT {
        writers.pop_front();
    }
    writers.push_back(pid);
}

/// Runs `nft`, counting the transactions it commits.
#[derive(Debug, Default)]
pub struct Nft {
    writes: AtomicU64,
}

impl Nft {
    /// Transactions committed so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Our table, `None` when it does not exist (never created, or gone
    /// with `nft flush ruleset` or an nftables service restart).
    pub async fn table(&self) -> Result<Option<Listed>, NftError> {
        let op = format!("nft -j list table {FAMILY} {TABLE}");
        match run(&["-j", "list", "table", FAMILY, TABLE], None).await {
            Ok(stdout) => parse_listing(&stdout)
                .map(Some)
                .map_err(|detail| NftError { op, detail }),
            // nft's own "No such file or directory" (no such table), not the
            // same words of an nft that cannot be run at all.
            Err(RunError::Failed(stderr)) if stderr.contains("No such file or directory") => {
                Ok(None)
            }
            Err(e) => Err(NftError {
                op,
                detail: e.to_string(),
            }),
        }
    }

    /// Every base chain of every table, with hook and policy only: rules of
    /// other tables are neither read nor parsed.
    pub async fn base_chains(&self) -> Result<Vec<BaseChain>, NftError> {
        let op = "nft -j list chains".to_string();
        let stdout = run(&["-j", "list", "chains"], None)
            .await
            .map_err(|e| NftError {
                op: op.clone(),
                detail: e.to_string(),
            })?;
        parse_base_chains(&stdout).map_err(|detail| NftError { op, detail })
    }

    /// Replaces or deletes our table in one atomic transaction.
    pub async fn write(&self, action: &Action) -> Result<(), NftError> {
        let op = format!("{} (nft -j -f -)", action.describe());
        let input = serde_json::to_string(&transaction(action)).map_err(|e| NftError {
            op: op.clone(),
            detail: format!("cannot serialize the transaction: {e}"),
        })?;
        let result = run(&["-j", "-f", "-"], Some(input.as_bytes())).await;
        self.writes.fetch_add(1, Ordering::Relaxed);
        result.map(drop).map_err(|e| NftError {
            op,
            detail: e.to_string(),
        })
    }
}

/// Why a run of `nft` gave no output.
#[derive(Debug)]
enum RunError {
    /// nft could not be run, or talked to.
    NotRun(String),
    /// nft ran and failed: its stderr.
    Failed(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::NotRun(why) | RunError::Failed(why) => f.write_str(why),
        }
    }
}

/// Runs `nft args`, feeding `stdin`; stdout, or stderr on failure.
async fn run(args: &[&str], stdin: Option<&[u8]>) -> Result<String, RunError> {
    let mut child = Command::new("nft")
        // Its errors are matched ("No such file or directory"): in English.
        .env("LC_ALL", "C")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| RunError::NotRun(format!("cannot run nft (install nftables): {e}")))?;
    if let (Some(_), Some(pid)) = (stdin, child.id()) {
        // Only writes get input: recorded before nft can commit.
        record_writer(pid);
    }
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .await
            .map_err(|e| RunError::NotRun(format!("cannot write to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| RunError::NotRun(format!("cannot wait for nft: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(RunError::Failed(if stderr.is_empty() {
            format!("nft failed ({})", out.status)
        } else {
            stderr
        }))
    }
}

/// The transaction that makes our table exactly what `action` says: "add
/// table" then "delete table" deletes it whether it existed or not, all in
/// one commit, so the kernel never holds half a ruleset.
pub fn transaction(action: &Action) -> Nftables<'static> {
    let table = || {
        NfListObject::Table(nftables::schema::Table {
            family: NfFamily::INet,
            name: TABLE.into(),
            handle: None,
        })
    };
    let add = |object| NfObject::CmdObject(NfCmd::Add(object));
    let mut commands = vec![add(table()), NfObject::CmdObject(NfCmd::Delete(table()))];
    if let Action::Replace(wanted) = action {
        commands.push(add(table()));
        commands.extend(
            wanted
                .chains
                .iter()
                .cloned()
                .map(NfListObject::Chain)
                .map(add),
        );
        commands.extend(
            wanted
                .rules
                .iter()
                .cloned()
                .map(NfListObject::Rule)
                .map(add),
        );
    }
    Nftables {
        objects: commands.into(),
    }
}

/// An `nft -j` listing with its objects untyped.
#[derive(Deserialize)]
struct Untyped {
    nftables: Vec<Value>,
}

/// Our table from `nft -j list table inet kvmnet`, chains and rules without
/// their handles. A chain or rule the typed schema cannot read (one added by
/// hand with an expression it does not know) makes the whole document
/// unreadable to it: the objects are then read one by one, and those are
/// kept as [`Unparseable`].
pub fn parse_listing(listing: &str) -> Result<Listed, String> {
    let unexpected = |e: serde_json::Error| format!("unexpected output of nft: {e}");
    let mut listed = Listed::default();
    match serde_json::from_str::<Nftables<'static>>(listing) {
        Ok(document) => {
            for object in document.objects.iter() {
                add_object(&mut listed, object);
            }
        }
        Err(_) => {
            let document: Untyped = serde_json::from_str(listing).map_err(unexpected)?;
            for object in document.nftables {
                match NfObject::<'static>::deserialize(&object) {
                    Ok(typed) => add_object(&mut listed, &typed),
                    Err(_) => listed.unparseable.extend(unparseable(object)),
                }
            }
        }
    }
    Ok(listed)
}

/// Chains and rules go into the table; other objects (sets added by hand,
/// the metainfo) are not ours to diff.
fn add_object(listed: &mut Listed, object: &NfObject<'static>) {
    match object {
        NfObject::ListObject(NfListObject::Chain(chain)) => {
            listed.table.chains.push(nftables::schema::Chain {
                handle: None,
                ..chain.clone()
            })
        }
        NfObject::ListObject(NfListObject::Rule(rule)) => {
            listed.table.rules.push(nftables::schema::Rule {
                handle: None,
                index: None,
                ..rule.clone()
            })
        }
        _ => {}
    }
}

/// A chain or rule object the typed schema could not read.
fn unparseable(object: Value) -> Option<Unparseable> {
    let Value::Object(object) = object else {
        return None;
    };
    let (kind, body) = object.into_iter().next()?;
    let chain_key = match kind.as_str() {
        "chain" => "name",
        "rule" => "chain",
        _ => return None,
    };
    Some(Unparseable {
        chain: str_of(&body, chain_key).unwrap_or_default(),
        comment: str_of(&body, "comment"),
        kind,
        listed: body,
    })
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Base chains from `nft -j list chains`.
/// Other tables' chains are read untyped: one the typed schema cannot read
/// (a netdev chain on several devices lists `dev` as an array) must not hide
/// the others.
pub fn parse_base_chains(listing: &str) -> Result<Vec<BaseChain>, String> {
    let document: Untyped =
        serde_json::from_str(listing).map_err(|e| format!("unexpected output of nft: {e}"))?;
    Ok(document
        .nftables
        .iter()
        .filter_map(|o| o.get("chain"))
        .filter_map(|c| {
            Some(BaseChain {
                family: str_of(c, "family")?,
                table: str_of(c, "table")?,
                name: str_of(c, "name")?,
                hook: str_of(c, "hook")?,
                policy: str_of(c, "policy").unwrap_or_else(|| "accept".into()),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use nftables::stmt::{JumpTarget, Statement};
    use nftables::types::NfChainPolicy;

    use super::*;
    use crate::firewall::{render, rule_comment, Chain, Rule, Table};

    #[test]
    fn listing_parses_into_chains_and_rules_without_handles() {
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "kvmnet", "handle": 1}},
            {"chain": {"family": "inet", "table": "kvmnet", "name": "forward", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
            {"chain": {"family": "inet", "table": "kvmnet", "name": "guest_input", "handle": 2}},
            {"rule": {"family": "inet", "table": "kvmnet", "chain": "forward", "handle": 4, "comment": "kvmnet", "expr": [{"jump": {"target": "guest_input"}}]}},
            {"rule": {"family": "inet", "table": "kvmnet", "chain": "guest_input", "handle": 5, "expr": [{"drop": null}]}}]}"#;
        let listed = parse_listing(listing).unwrap();
        assert!(listed.unparseable.is_empty());
        let table = listed.table;
        assert_eq!(table.chains.len(), 2);
        assert_eq!(table.chains[0].policy, Some(NfChainPolicy::Drop));
        assert_eq!(table.chains[0].handle, None);
        assert_eq!(table.chains[1].hook, None);
        assert_eq!(
            table.rules[0].expr.to_vec(),
            vec![Statement::Jump(JumpTarget {
                target: "guest_input".into()
            })]
        );
        assert_eq!(table.rules[0].handle, None);
        assert_eq!(
            table.rules[1].comment, None,
            "a rule added by hand may have no comment"
        );
        assert!(parse_listing("Error").is_err());
    }

    #[test]
    fn a_rule_the_schema_cannot_read_is_kept_apart_in_its_chain_and_the_rest_is_read() {
        // `meta day` is a key nft knows and the nftables crate does not.
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "kvmnet", "handle": 1}},
            {"chain": {"family": "inet", "table": "kvmnet", "name": "guest_input", "handle": 2}},
            {"rule": {"family": "inet", "table": "kvmnet", "chain": "guest_input", "handle": 3, "comment": "kvmnet:nat", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "day"}}, "right": "Monday"}}, {"drop": null}]}},
            {"rule": {"family": "inet", "table": "kvmnet", "chain": "guest_input", "handle": 4, "expr": [{"drop": null}]}}]}"#;
        let listed = parse_listing(listing).unwrap();
        assert_eq!(listed.table.chains.len(), 1);
        assert_eq!(listed.table.rules.len(), 1);
        assert_eq!(listed.unparseable.len(), 1);
        let rule = &listed.unparseable[0];
        assert_eq!(
            (rule.kind.as_str(), rule.chain.as_str(), rule.network()),
            ("rule", "guest_input", Some("nat"))
        );
        assert_eq!(rule.listed["expr"][0]["match"]["right"], "Monday");
    }

    #[test]
    fn base_chains_skip_regular_chains() {
        let listing = r#"{"nftables": [{"metainfo": {}},
            {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
            {"chain": {"family": "ip", "table": "filter", "name": "DOCKER", "handle": 2}},
            {"chain": {"family": "netdev", "table": "ingress", "name": "in", "handle": 1, "dev": ["eth0", "eth1"], "type": "filter", "hook": "ingress", "prio": 0, "policy": "accept"}}]}"#;
        let chains = parse_base_chains(listing).unwrap();
        assert_eq!(
            chains[0],
            BaseChain {
                family: "ip".into(),
                table: "filter".into(),
                name: "FORWARD".into(),
                hook: "forward".into(),
                policy: "drop".into(),
            }
        );
        assert_eq!(chains.len(), 2, "{chains:?}");
    }

    #[test]
    fn transaction_deletes_if_exists_then_recreates() {
        let delete = serde_json::to_value(transaction(&Action::Delete)).unwrap();
        assert_eq!(delete["nftables"].as_array().unwrap().len(), 2, "{delete}");
        let chain: Chain = render::chains()
            .into_iter()
            .find(|c| c.name == render::GUEST_INPUT)
            .unwrap();
        let rule = Rule {
            table: TABLE.into(),
            chain: render::GUEST_INPUT.into(),
            comment: Some(rule_comment("nat").into()),
            expr: vec![Statement::Accept(None)].into(),
            ..Rule::default()
        };
        let t = serde_json::to_value(transaction(&Action::Replace(Table {
            chains: vec![chain],
            rules: vec![rule],
        })))
        .unwrap();
        let commands = t["nftables"].as_array().unwrap();
        assert_eq!(commands.len(), 5);
        assert_eq!(commands[0]["add"]["table"]["name"], TABLE);
        assert!(commands[1]["delete"]["table"].is_object());
        assert_eq!(commands[3]["add"]["chain"]["name"], "guest_input");
        assert_eq!(commands[4]["add"]["rule"]["comment"], "kvmnet:nat");
        assert_eq!(
            commands[4]["add"]["rule"]["expr"][0],
            serde_json::json!({"accept": null})
        );
    }
}
