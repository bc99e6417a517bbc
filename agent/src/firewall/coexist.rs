//! Coexistence: a base chain of another table on the forward or input hook
//! with policy drop drops what our rules accept (an accept in one table does
//! not overrule a drop in another). Docker's iptables-nft `FORWARD` chain is
//! the classic. kvmnet never touches foreign tables: it warns, with the fix
//! to apply by hand.

use super::{FAMILY, TABLE};

/// A base chain as `nft -j list chains` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseChain {
    pub family: String,
    pub table: String,
    pub name: String,
    pub hook: String,
    pub policy: String,
}

/// Warnings for foreign drop-policy chains that hit our bridges:
/// `forwarding` bridges (nat, route) lose forwarded traffic, `served`
/// bridges (nat, route, isolated) lose DHCP and DNS.
pub fn warnings(chains: &[BaseChain], forwarding: &[&str], served: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for c in chains {
        if (c.family.as_str(), c.table.as_str()) == (FAMILY, TABLE) || c.policy != "drop" {
            continue;
        }
        let (bridges, what) = match c.hook.as_str() {
            "forward" => (forwarding, "forwarded traffic of guests"),
            "input" => (served, "DHCP and DNS requests of guests"),
            _ => continue,
        };
        if bridges.is_empty() {
            continue;
        }
        let fix: Vec<String> = bridges
            .iter()
            .flat_map(|b| {
                let iif = format!(
                    "nft insert rule {} {} {} iifname \"{b}\" accept",
                    c.family, c.table, c.name
                );
                let oif = format!(
                    "nft insert rule {} {} {} oifname \"{b}\" accept",
                    c.family, c.table, c.name
                );
                if c.hook == "forward" {
                    vec![iif, oif]
                } else {
                    vec![iif]
                }
            })
            .collect();
        out.push(format!(
            "chain {} {} {} (hook {}, policy drop) drops {what} on {}; kvmnet leaves other tables alone, fix by hand: {}",
            c.family,
            c.table,
            c.name,
            c.hook,
            bridges.join(", "),
            fix.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(family: &str, table: &str, hook: &str, policy: &str) -> BaseChain {
        BaseChain {
            family: family.into(),
            table: table.into(),
            name: "FORWARD".into(),
            hook: hook.into(),
            policy: policy.into(),
        }
    }

    #[test]
    fn docker_forward_drop_is_reported_with_the_fix() {
        let w = warnings(
            &[chain("ip", "filter", "forward", "drop")],
            &["virbr-nat"],
            &["virbr-nat"],
        );
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("chain ip filter FORWARD (hook forward, policy drop) drops forwarded traffic of guests on virbr-nat"), "{}", w[0]);
        assert!(w[0].contains("nft insert rule ip filter FORWARD iifname \"virbr-nat\" accept; nft insert rule ip filter FORWARD oifname \"virbr-nat\" accept"), "{}", w[0]);
    }

    #[test]
    fn accept_policies_our_own_table_and_unused_hooks_are_fine() {
        let chains = [
            chain("ip", "filter", "forward", "accept"),
            chain("inet", "kvmnet", "forward", "drop"),
            chain("ip", "filter", "output", "drop"),
        ];
        assert!(warnings(&chains, &["virbr-nat"], &["virbr-nat"]).is_empty());
        // Only isolated networks: nothing is forwarded, DHCP still matters.
        let chains = [
            chain("ip", "filter", "forward", "drop"),
            chain("inet", "fw", "input", "drop"),
        ];
        let w = warnings(&chains, &[], &["virbr-iso"]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("DHCP and DNS") && w[0].contains("iifname \"virbr-iso\""),
            "{}",
            w[0]
        );
    }
}
