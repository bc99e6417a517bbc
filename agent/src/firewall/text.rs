//! Rules as text, the way `nft list` shows them, for reports: drift says
//! `wanted oifname "virbr-nat" reject`, not a page of JSON. The text is made
//! from the `nft -j` form of the statements, so that typed rules and rules
//! the typed schema cannot read read alike. Shapes kvmnet does not write (a
//! rule added by hand) fall back to compact JSON.

use serde::Serialize;
use serde_json::Value;

use super::{Chain, Rule, Unparseable};

/// `iifname "virbr-nat" oifname "virbr-nat" accept comment "kvmnet:nat"`
pub fn rule(rule: &Rule) -> String {
    let statements: Vec<Value> = rule.expr.iter().map(json).collect();
    with_comment(&statements, rule.comment.as_deref())
}

/// A chain or rule the typed schema cannot read, as far as it reads.
pub fn unparseable(object: &Unparseable) -> String {
    match object.listed.get("expr") {
        Some(Value::Array(statements)) => with_comment(statements, object.comment.as_deref()),
        _ => object.listed.to_string(),
    }
}

fn with_comment(statements: &[Value], comment: Option<&str>) -> String {
    let mut parts: Vec<String> = statements.iter().map(statement).collect();
    if let Some(comment) = comment.filter(|c| !c.is_empty()) {
        parts.push(format!("comment {comment:?}"));
    }
    parts.join(" ")
}

/// `type filter hook forward priority 0 policy accept`, or `regular chain`.
pub fn chain_hook(chain: &Chain) -> String {
    match (&chain._type, &chain.hook) {
        (Some(kind), Some(hook)) => format!(
            "type {} hook {} priority {} policy {}",
            token(kind),
            token(hook),
            chain.prio.unwrap_or_default(),
            chain.policy.as_ref().map_or("accept".into(), token)
        ),
        _ => "regular chain".into(),
    }
}

/// The word `nft` uses for a typed value (`accept`, `forward`...).
pub fn token(value: &impl Serialize) -> String {
    match json(value) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Typed schema values serialize infallibly (no maps with non-string
/// keys); `null` stands for the impossible failure.
fn json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_default()
}

fn statement(s: &Value) -> String {
    let Some((key, body)) = s.as_object().and_then(|o| o.iter().next()) else {
        return s.to_string();
    };
    match (key.as_str(), body) {
        ("match", m) => {
            let left = expression(&m["left"]);
            let right = match (&m["left"]["meta"]["key"], &m["right"]) {
                // Interface names are quoted, as nft shows them.
                (Value::String(k), Value::String(name)) if k.ends_with("ifname") => {
                    format!("{name:?}")
                }
                (_, right) => expression(right),
            };
            match m["op"].as_str() {
                Some("==") | Some("in") => format!("{left} {right}"),
                Some(op) => format!("{left} {op} {right}"),
                None => s.to_string(),
            }
        }
        ("accept" | "drop" | "return" | "continue", Value::Null) => key.clone(),
        ("jump" | "goto", b) => format!("{key} {}", expression(&b["target"])),
        // nft's default reject (port unreachable, ICMP or ICMPv6) reads "reject".
        ("reject", Value::Null) => "reject".into(),
        ("reject", b) if b["type"] == "icmpx" && b["expr"] == "port-unreachable" => "reject".into(),
        ("reject", b) if b["type"] == "icmpx" => {
            format!("reject with icmpx {}", expression(&b["expr"]))
        }
        ("masquerade", Value::Null) => "masquerade".into(),
        ("masquerade", b) if b.get("port").is_some() => {
            format!("masquerade to :{}", expression(&b["port"]))
        }
        ("dnat", b) => {
            let family = b["family"].as_str().unwrap_or_default();
            let addr = expression(&b["addr"]);
            let addr = if family == "ip6" && b.get("port").is_some() {
                format!("[{addr}]")
            } else {
                addr
            };
            match b.get("port") {
                Some(port) => format!("dnat {family} to {addr}:{}", expression(port)),
                None => format!("dnat {family} to {addr}"),
            }
        }
        _ => s.to_string(),
    }
}

fn expression(e: &Value) -> String {
    match e {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(expression).collect::<Vec<_>>().join(","),
        Value::Object(o) => {
            if let Some(meta) = o.get("meta") {
                let key = expression(&meta["key"]);
                // nft shows interface names quoted and other keys after `meta`.
                return match key.as_str() {
                    "iifname" | "oifname" => key,
                    _ => format!("meta {key}"),
                };
            }
            if let Some(p) = o.get("payload") {
                return format!("{} {}", expression(&p["protocol"]), expression(&p["field"]));
            }
            if let Some(ct) = o.get("ct") {
                return format!("ct {}", expression(&ct["key"]));
            }
            if let Some(fib) = o.get("fib") {
                return format!(
                    "fib {} {}",
                    expression(&fib["flags"]),
                    expression(&fib["result"])
                );
            }
            if let Some(p) = o.get("prefix") {
                return format!("{}/{}", expression(&p["addr"]), expression(&p["len"]));
            }
            if let Some(Value::Array(r)) = o.get("range") {
                if let [a, b] = r.as_slice() {
                    return format!("{}-{}", expression(a), expression(b));
                }
            }
            if let Some(Value::Array(items)) = o.get("set") {
                let items: Vec<String> = items.iter().map(expression).collect();
                return format!("{{ {} }}", items.join(", "));
            }
            e.to_string()
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(expr: Value) -> String {
        rule(&Rule {
            chain: "forward".into(),
            comment: Some("kvmnet:nat".into()),
            expr: serde_json::from_value::<Vec<_>>(expr).unwrap().into(),
            ..Rule::default()
        })
    }

    #[test]
    fn known_shapes_read_like_nft_list() {
        assert_eq!(
            text(json!([
                {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "virbr-nat"}},
                {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "192.168.10.0", "len": 24}}}},
                {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
                {"accept": null}
            ])),
            "oifname \"virbr-nat\" ip daddr 192.168.10.0/24 ct state established,related accept comment \"kvmnet:nat\""
        );
        assert_eq!(
            text(json!([
                {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "192.168.10.0", "len": 24}}}},
                {"masquerade": {"port": {"range": [1024, 65535]}}}
            ])),
            "ip daddr != 192.168.10.0/24 masquerade to :1024-65535 comment \"kvmnet:nat\""
        );
        assert_eq!(
            text(json!([
                {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["tcp", "udp"]}}},
                {"dnat": {"family": "ip6", "addr": "fd00::10", "port": 80}}
            ])),
            "meta l4proto { tcp, udp } dnat ip6 to [fd00::10]:80 comment \"kvmnet:nat\""
        );
    }

    #[test]
    fn unknown_shapes_fall_back_to_json() {
        assert_eq!(
            text(json!([{"counter": {"packets": 0, "bytes": 0}}, {"drop": null}])),
            "{\"counter\":{\"bytes\":0,\"packets\":0}} drop comment \"kvmnet:nat\""
        );
    }

    #[test]
    fn unparseable_rules_read_as_far_as_known_and_chains_as_json() {
        let rule = Unparseable {
            kind: "rule".into(),
            chain: "guest_input".into(),
            comment: None,
            listed: json!({"chain": "guest_input", "expr": [
                {"match": {"op": "==", "left": {"meta": {"key": "day"}}, "right": "Monday"}},
                {"drop": null}
            ]}),
        };
        assert_eq!(unparseable(&rule), "meta day Monday drop");
        let chain = Unparseable {
            kind: "chain".into(),
            listed: json!({"name": "x"}),
            ..rule
        };
        assert_eq!(unparseable(&chain), "{\"name\":\"x\"}");
    }

    #[test]
    fn hooks_read_like_nft_list() {
        let chains = crate::firewall::render::chains();
        assert_eq!(chain_hook(&chains[0]), "regular chain");
        assert_eq!(
            chain_hook(&chains[5]),
            "type nat hook postrouting priority 100 policy accept"
        );
    }
}
