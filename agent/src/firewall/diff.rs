//! Diff: the table kvmnet wants against the one observed, as drift items
//! that say what differs, where, wanted and found. Rules are compared by
//! chain, comment and statements; a rule changed by hand shows as one
//! changed item (wanted and found), a deleted one as missing, an added one
//! as extra. A chain or rule the typed schema cannot read is always extra.

use crate::core::{Change, Drift, Resource};

use super::{rule_network, text, Listed, Rule, Table, FAMILY, TABLE};

/// Drift of `listed` (`None`: no table) against `wanted` (no chains: the
/// table should not exist).
pub fn diff(wanted: &Table, listed: Option<&Listed>) -> Vec<Drift> {
    let mut drift = table_diff(wanted, listed);
    for object in listed.iter().flat_map(|l| &l.unparseable) {
        let found = text::unparseable(object);
        let object_name = match object.kind.as_str() {
            "rule" => format!("{FAMILY} {TABLE} {} unparseable rule {found}", object.chain),
            kind => format!("{kind} {FAMILY} {TABLE} {} (unparseable)", object.chain),
        };
        let mut d = item(object.network(), object_name, Change::Extra);
        d.found = Some(found);
        drift.push(d);
    }
    drift
}

/// The chains and rules the typed schema reads.
fn table_diff(wanted: &Table, listed: Option<&Listed>) -> Vec<Drift> {
    let mut drift = Vec::new();
    let table = format!("table {FAMILY} {TABLE}");
    let Some(observed) = listed.map(|l| &l.table) else {
        if !wanted.chains.is_empty() {
            drift.push(item(None, table, Change::Missing));
        }
        return drift;
    };
    if wanted.chains.is_empty() {
        drift.push(item(None, table, Change::Extra));
        diff_rules(
            &mut drift,
            "",
            &[],
            &observed.rules.iter().collect::<Vec<_>>(),
        );
        return drift;
    }
    for chain in &wanted.chains {
        let object = chain_object(&chain.name);
        let Some(found) = observed.chain(&chain.name) else {
            drift.push(item(None, object, Change::Missing));
            continue;
        };
        if found != chain {
            let hook = |c: &super::Chain| (c._type, c.hook, c.prio, c.dev.clone());
            let (field, wanted, found) = if hook(found) == hook(chain) {
                let policy =
                    |c: &super::Chain| c.policy.as_ref().map_or("accept".into(), text::token);
                ("policy", policy(chain), policy(found))
            } else {
                ("hook", text::chain_hook(chain), text::chain_hook(found))
            };
            drift.push(changed(None, object, field, wanted, found));
        }
        let want: Vec<&Rule> = wanted.rules_in(&chain.name).collect();
        let have: Vec<&Rule> = observed.rules_in(&chain.name).collect();
        diff_rules(&mut drift, &chain.name, &want, &have);
    }
    for chain in &observed.chains {
        if wanted.chain(&chain.name).is_none() {
            drift.push(item(None, chain_object(&chain.name), Change::Extra));
            let have: Vec<&Rule> = observed.rules_in(&chain.name).collect();
            diff_rules(&mut drift, &chain.name, &[], &have);
        }
    }
    drift
}

/// Rules of one chain (all chains when `chain` is empty).
fn diff_rules(drift: &mut Vec<Drift>, chain: &str, want: &[&Rule], have: &[&Rule]) {
    if want == have {
        return;
    }
    let mut missing: Vec<&Rule> = Vec::new();
    let mut extra: Vec<&Rule> = have.to_vec();
    for rule in want {
        match extra.iter().position(|r| r == rule) {
            Some(i) => {
                extra.remove(i);
            }
            None => missing.push(rule),
        }
    }
    if missing.is_empty() && extra.is_empty() {
        // Same rules, another order: accepts and rejects may now swap.
        let show = |rules: &[&Rule]| {
            rules
                .iter()
                .map(|r| text::rule(r))
                .collect::<Vec<_>>()
                .join("; ")
        };
        drift.push(changed(
            None,
            chain_object(chain),
            "order",
            show(want),
            show(have),
        ));
        return;
    }
    // A missing and an extra rule of the same network in the same chain:
    // one rule changed by hand.
    for rule in missing {
        let object = format!("{FAMILY} {TABLE} {} rule", rule.chain);
        let network = rule_network(rule);
        match extra
            .iter()
            .position(|r| r.chain == rule.chain && r.comment == rule.comment)
        {
            Some(i) => {
                let found = extra.remove(i);
                drift.push(changed(
                    network,
                    object,
                    "",
                    text::rule(rule),
                    text::rule(found),
                ));
            }
            None => {
                let mut d = item(
                    network,
                    format!("{object} {}", text::rule(rule)),
                    Change::Missing,
                );
                d.wanted = Some(text::rule(rule));
                drift.push(d);
            }
        }
    }
    for rule in extra {
        let object = format!("{FAMILY} {TABLE} {} rule {}", rule.chain, text::rule(rule));
        let mut d = item(rule_network(rule), object, Change::Extra);
        d.found = Some(text::rule(rule));
        drift.push(d);
    }
}

fn chain_object(chain: &str) -> String {
    format!("chain {FAMILY} {TABLE} {chain}")
}

fn item(network: Option<&str>, object: String, change: Change) -> Drift {
    Drift {
        network: network.map(str::to_string),
        resource: Resource::Firewall,
        object,
        change,
        field: None,
        wanted: None,
        found: None,
    }
}

fn changed(
    network: Option<&str>,
    object: String,
    field: &str,
    wanted: String,
    found: String,
) -> Drift {
    let mut d = item(network, object, Change::Changed);
    d.field = (!field.is_empty()).then(|| field.to_string());
    d.wanted = Some(wanted);
    d.found = Some(found);
    d
}

#[cfg(test)]
mod tests;
