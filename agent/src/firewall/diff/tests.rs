//! Diff: each kind of drift, with what was wanted and found.

use nftables::expr::{Expression, Meta, MetaKey, NamedExpression};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfHook};
use serde_json::json;

use super::*;
use crate::firewall::{Chain, Unparseable};

fn rule(chain: &str, network: &str, verdict: Statement<'static>) -> Rule {
    Rule {
        table: TABLE.into(),
        chain: chain.to_string().into(),
        comment: Some(format!("kvmnet:{network}").into()),
        expr: vec![
            Statement::Match(Match {
                left: Expression::Named(NamedExpression::Meta(Meta {
                    key: MetaKey::Iifname,
                })),
                right: Expression::String(format!("br-{network}").into()),
                op: Operator::EQ,
            }),
            verdict,
        ]
        .into(),
        ..Rule::default()
    }
}

fn chain(name: &'static str) -> Chain {
    Chain {
        table: TABLE.into(),
        name: name.into(),
        ..Chain::default()
    }
}

fn wanted() -> Table {
    Table {
        chains: vec![
            chain("guest"),
            Chain {
                _type: Some(NfChainType::Filter),
                hook: Some(NfHook::Forward),
                prio: Some(0),
                policy: Some(NfChainPolicy::Accept),
                ..chain("forward")
            },
        ],
        rules: vec![
            rule("guest", "a", Statement::Accept(None)),
            rule("guest", "a", Statement::Return(None)),
            rule("guest", "b", Statement::Accept(None)),
        ],
    }
}

fn listed(table: Table) -> Listed {
    Listed {
        table,
        unparseable: Vec::new(),
    }
}

#[test]
fn in_sync_is_no_drift() {
    assert!(diff(&wanted(), Some(&listed(wanted()))).is_empty());
    assert!(diff(&Table::default(), None).is_empty());
}

#[test]
fn a_missing_table_is_one_item() {
    let d = diff(&wanted(), None);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].to_string(), "+ firewall table inet kvmnet: missing");
    assert_eq!(d[0].network, None);
}

#[test]
fn a_table_nobody_wants_is_extra_with_its_rules_under_their_networks() {
    let d = diff(&Table::default(), Some(&listed(wanted())));
    assert_eq!(
        d[0].to_string(),
        "- firewall table inet kvmnet: not in the desired state"
    );
    assert_eq!(d.len(), 4);
    assert_eq!(d[3].network.as_deref(), Some("b"));
}

#[test]
fn deleted_added_and_changed_rules() {
    let mut observed = wanted();
    observed.rules.remove(2);
    let d = diff(&wanted(), Some(&listed(observed)));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].network.as_deref(), Some("b"));
    assert_eq!(d[0].change, Change::Missing);
    assert_eq!(
        d[0].wanted.as_deref(),
        Some("iifname \"br-b\" accept comment \"kvmnet:b\"")
    );

    let mut observed = wanted();
    observed
        .rules
        .push(rule("guest", "c", Statement::Drop(None)));
    let d = diff(&wanted(), Some(&listed(observed)));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].change, Change::Extra);
    assert_eq!(d[0].network.as_deref(), Some("c"));

    let mut observed = wanted();
    observed.rules[2] = rule("guest", "b", Statement::Drop(None));
    let d = diff(&wanted(), Some(&listed(observed)));
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].to_string(),
        "~ firewall inet kvmnet guest rule: wanted iifname \"br-b\" accept comment \"kvmnet:b\", found iifname \"br-b\" drop comment \"kvmnet:b\""
    );
}

#[test]
fn reordered_rules_are_drift() {
    let mut observed = wanted();
    observed.rules.swap(0, 1);
    let d = diff(&wanted(), Some(&listed(observed)));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].field.as_deref(), Some("order"));
}

#[test]
fn chain_missing_extra_and_policy_changed() {
    let mut observed = wanted();
    observed.chains[1].policy = Some(NfChainPolicy::Drop);
    let d = diff(&wanted(), Some(&listed(observed)));
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].to_string(),
        "~ firewall chain inet kvmnet forward policy: wanted accept, found drop"
    );

    let mut observed = wanted();
    observed.chains.remove(0);
    observed.rules.clear();
    observed.chains.push(chain("mine"));
    let d: Vec<String> = diff(&wanted(), Some(&listed(observed)))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        d,
        [
            "+ firewall chain inet kvmnet guest: missing",
            "- firewall chain inet kvmnet mine: not in the desired state"
        ]
    );
}

#[test]
fn a_hook_changed_reads_like_nft_list() {
    let mut observed = wanted();
    observed.chains[1].prio = Some(10);
    let d = diff(&wanted(), Some(&listed(observed)));
    assert_eq!(
        d[0].to_string(),
        "~ firewall chain inet kvmnet forward hook: wanted type filter hook forward priority 0 policy accept, found type filter hook forward priority 10 policy accept"
    );
}

#[test]
fn an_unparseable_rule_is_extra_in_its_chain_under_its_network() {
    let mut observed = listed(wanted());
    observed.unparseable.push(Unparseable {
        kind: "rule".into(),
        chain: "guest".into(),
        comment: Some("kvmnet:b".into()),
        listed: json!({"chain": "guest", "comment": "kvmnet:b", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "day"}}, "right": "Monday"}},
            {"drop": null}
        ]}),
    });
    let d = diff(&wanted(), Some(&observed));
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].to_string(),
        "- firewall inet kvmnet guest unparseable rule meta day Monday drop comment \"kvmnet:b\": not in the desired state"
    );
    assert_eq!(d[0].network.as_deref(), Some("b"));

    // Also when no table is wanted at all.
    let d = diff(&Table::default(), Some(&observed));
    assert!(
        d.iter().any(|d| d.object.contains("unparseable rule")),
        "{d:?}"
    );
}
