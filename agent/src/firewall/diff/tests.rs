//! Diff: each kind of drift, with what was wanted and found.

use serde_json::json;

use super::*;
use crate::firewall::{Chain, Hook};

fn rule(chain: &str, network: &str, verdict: &str) -> Rule {
    Rule {
        chain: chain.into(),
        comment: format!("kvmnet:{network}"),
        expr: vec![
            json!({"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": format!("br-{network}")}}),
            json!({ verdict: null }),
        ],
    }
}

fn wanted() -> Table {
    Table {
        chains: vec![
            Chain {
                name: "guest".into(),
                hook: None,
            },
            Chain {
                name: "forward".into(),
                hook: Some(Hook {
                    kind: "filter".into(),
                    hook: "forward".into(),
                    prio: 0,
                    policy: "accept".into(),
                }),
            },
        ],
        rules: vec![
            rule("guest", "a", "accept"),
            rule("guest", "a", "return"),
            rule("guest", "b", "accept"),
        ],
    }
}

#[test]
fn in_sync_is_no_drift() {
    assert!(diff(&wanted(), Some(&wanted())).is_empty());
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
    let d = diff(&Table::default(), Some(&wanted()));
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
    let d = diff(&wanted(), Some(&observed));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].network.as_deref(), Some("b"));
    assert_eq!(d[0].change, Change::Missing);
    assert_eq!(
        d[0].wanted.as_deref(),
        Some("iifname \"br-b\" accept comment \"kvmnet:b\"")
    );

    let mut observed = wanted();
    observed.rules.push(rule("guest", "c", "drop"));
    let d = diff(&wanted(), Some(&observed));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].change, Change::Extra);
    assert_eq!(d[0].network.as_deref(), Some("c"));

    let mut observed = wanted();
    observed.rules[2] = rule("guest", "b", "drop");
    let d = diff(&wanted(), Some(&observed));
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
    let d = diff(&wanted(), Some(&observed));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].field.as_deref(), Some("order"));
}

#[test]
fn chain_missing_extra_and_policy_changed() {
    let mut observed = wanted();
    observed.chains[1].hook.as_mut().unwrap().policy = "drop".into();
    let d = diff(&wanted(), Some(&observed));
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].to_string(),
        "~ firewall chain inet kvmnet forward policy: wanted accept, found drop"
    );

    let mut observed = wanted();
    observed.chains.remove(0);
    observed.rules.clear();
    observed.chains.push(Chain {
        name: "mine".into(),
        hook: None,
    });
    let d: Vec<String> = diff(&wanted(), Some(&observed))
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
