//! I/O with `nft`: list our table and the base chains of all tables, and
//! replace our table in one transaction. `nft`'s own error text goes into
//! our errors (the nftables crate's helpers drop stderr).

use std::collections::VecDeque;
use std::fmt;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::coexist::BaseChain;
use super::{Chain, Hook, Rule, Table, FAMILY, TABLE};

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
    pub async fn table(&self) -> Result<Option<Table>, NftError> {
        let op = format!("nft -j list table {FAMILY} {TABLE}");
        match run(&["-j", "list", "table", FAMILY, TABLE], None).await {
            Ok(stdout) => parse_table(&stdout)
                .map(Some)
                .map_err(|detail| NftError { op, detail }),
            Err(stderr) if stderr.contains("No such file or directory") => Ok(None),
            Err(detail) => Err(NftError { op, detail }),
        }
    }

    /// Every base chain of every table, with hook and policy only: rules of
    /// other tables are neither read nor parsed.
    pub async fn base_chains(&self) -> Result<Vec<BaseChain>, NftError> {
        let op = "nft -j list chains".to_string();
        let stdout = run(&["-j", "list", "chains"], None)
            .await
            .map_err(|detail| NftError {
                op: op.clone(),
                detail,
            })?;
        parse_base_chains(&stdout).map_err(|detail| NftError { op, detail })
    }

    /// Replaces our table with `wanted` (deletes it when `wanted` has no
    /// chains) in one atomic transaction.
    pub async fn replace(&self, wanted: &Table) -> Result<(), NftError> {
        let input = transaction(wanted).to_string();
        let result = run(&["-j", "-f", "-"], Some(input.as_bytes())).await;
        self.writes.fetch_add(1, Ordering::Relaxed);
        result.map(drop).map_err(|detail| NftError {
            op: format!(
                "replace table {FAMILY} {TABLE} with {} rule(s) (nft -j -f -)",
                wanted.rules.len()
            ),
            detail,
        })
    }
}

/// Runs `nft args`, feeding `stdin`; stdout, or stderr on failure.
async fn run(args: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
    let mut child = Command::new("nft")
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
        .map_err(|e| format!("cannot run nft (install nftables): {e}"))?;
    if let (Some(_), Some(pid)) = (stdin, child.id()) {
        // Only writes get input: recorded before nft can commit.
        record_writer(pid);
    }
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .await
            .map_err(|e| format!("cannot write to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("cannot wait for nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if stderr.is_empty() {
            format!("nft failed ({})", out.status)
        } else {
            stderr
        })
    }
}

/// The transaction that makes our table exactly `wanted`: "add table" then
/// "delete table" deletes it whether it existed or not, all in one commit,
/// so the kernel never holds half a ruleset.
pub fn transaction(wanted: &Table) -> Value {
    let table = json!({"table": {"family": FAMILY, "name": TABLE}});
    let mut commands = vec![json!({"add": table}), json!({"delete": table})];
    if !wanted.chains.is_empty() {
        commands.push(json!({"add": table}));
    }
    for chain in &wanted.chains {
        let mut c = json!({"family": FAMILY, "table": TABLE, "name": chain.name});
        if let Some(hook) = &chain.hook {
            c["type"] = json!(hook.kind);
            c["hook"] = json!(hook.hook);
            c["prio"] = json!(hook.prio);
            c["policy"] = json!(hook.policy);
        }
        commands.push(json!({"add": {"chain": c}}));
    }
    for rule in &wanted.rules {
        commands.push(json!({"add": {"rule": {
            "family": FAMILY,
            "table": TABLE,
            "chain": rule.chain,
            "comment": rule.comment,
            "expr": rule.expr,
        }}}));
    }
    json!({ "nftables": commands })
}

/// Objects of an `nft -j` listing.
fn objects(listing: &str) -> Result<Vec<Value>, String> {
    let mut doc: Value =
        serde_json::from_str(listing).map_err(|e| format!("unexpected output of nft: {e}"))?;
    match doc.get_mut("nftables").map(Value::take) {
        Some(Value::Array(objects)) => Ok(objects),
        _ => Err("unexpected output of nft: no \"nftables\" array".into()),
    }
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Our table from `nft -j list table inet kvmnet`.
pub fn parse_table(listing: &str) -> Result<Table, String> {
    let mut table = Table::default();
    for object in objects(listing)? {
        if let Some(c) = object.get("chain") {
            table.chains.push(Chain {
                name: str_of(c, "name").unwrap_or_default(),
                hook: parse_hook(c),
            });
        } else if let Some(r) = object.get("rule") {
            table.rules.push(Rule {
                chain: str_of(r, "chain").unwrap_or_default(),
                comment: str_of(r, "comment").unwrap_or_default(),
                expr: match r.get("expr") {
                    Some(Value::Array(expr)) => expr.clone(),
                    _ => Vec::new(),
                },
            });
        }
    }
    Ok(table)
}

fn parse_hook(chain: &Value) -> Option<Hook> {
    Some(Hook {
        kind: str_of(chain, "type")?,
        hook: str_of(chain, "hook")?,
        prio: chain
            .get("prio")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
        policy: str_of(chain, "policy").unwrap_or_else(|| "accept".into()),
    })
}

/// Base chains from `nft -j list chains`.
pub fn parse_base_chains(listing: &str) -> Result<Vec<BaseChain>, String> {
    Ok(objects(listing)?
        .iter()
        .filter_map(|o| o.get("chain"))
        .filter_map(|c| {
            let hook = parse_hook(c)?;
            Some(BaseChain {
                family: str_of(c, "family")?,
                table: str_of(c, "table")?,
                name: str_of(c, "name")?,
                hook: hook.hook,
                policy: hook.policy,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_parses_into_chains_and_rules() {
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "kvmnet", "handle": 1}},
            {"chain": {"family": "inet", "table": "kvmnet", "name": "forward", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
            {"chain": {"family": "inet", "table": "kvmnet", "name": "guest_input", "handle": 2}},
            {"rule": {"family": "inet", "table": "kvmnet", "chain": "forward", "handle": 4, "comment": "kvmnet", "expr": [{"jump": {"target": "guest_input"}}]}},
            {"rule": {"family": "inet", "table": "kvmnet", "chain": "guest_input", "handle": 5, "expr": [{"drop": null}]}}]}"#;
        let table = parse_table(listing).unwrap();
        assert_eq!(table.chains.len(), 2);
        assert_eq!(table.chains[0].hook.as_ref().unwrap().policy, "drop");
        assert_eq!(table.chains[1].hook, None);
        assert_eq!(
            table.rules[0].expr,
            vec![json!({"jump": {"target": "guest_input"}})]
        );
        assert_eq!(
            table.rules[1].comment, "",
            "a rule added by hand may have no comment"
        );
        assert!(parse_table("Error").is_err());
    }

    #[test]
    fn base_chains_skip_regular_chains() {
        let listing = r#"{"nftables": [{"metainfo": {}},
            {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
            {"chain": {"family": "ip", "table": "filter", "name": "DOCKER", "handle": 2}}]}"#;
        let chains = parse_base_chains(listing).unwrap();
        assert_eq!(
            chains,
            vec![BaseChain {
                family: "ip".into(),
                table: "filter".into(),
                name: "FORWARD".into(),
                hook: "forward".into(),
                policy: "drop".into(),
            }]
        );
    }

    #[test]
    fn transaction_deletes_if_exists_then_recreates() {
        let empty = transaction(&Table::default());
        assert_eq!(empty["nftables"].as_array().unwrap().len(), 2, "{empty}");
        let table = Table {
            chains: vec![Chain {
                name: "guest_input".into(),
                hook: None,
            }],
            rules: vec![Rule {
                chain: "guest_input".into(),
                comment: "kvmnet:nat".into(),
                expr: vec![json!({"accept": null})],
            }],
        };
        let t = transaction(&table);
        let commands = t["nftables"].as_array().unwrap();
        assert_eq!(commands.len(), 5);
        assert!(commands[1]["delete"]["table"].is_object());
        assert_eq!(commands[4]["add"]["rule"]["comment"], "kvmnet:nat");
    }
}
