//! The checked-in JSON Schema is what the code generates.

use std::path::Path;

#[test]
fn checked_in_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/kvmnet.schema.json");
    let generated = kvmnet::config::model::json_schema();
    if std::env::var_os("KVMNET_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "schema/kvmnet.schema.json is out of date: run `KVMNET_BLESS=1 cargo test -p kvmnet --test schema` and commit it"
    );
}

#[test]
fn yaml_examples_point_at_the_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("# yaml-language-server: $schema=../schema/kvmnet.schema.json\n"),
                "{} must start with the yaml-language-server schema line",
                path.display()
            );
        }
    }
}

/// The schema's interface name pattern refuses what validation refuses
/// (the corpus's hostile names among them), and accepts what it accepts.
#[test]
fn schema_and_validation_agree_on_interface_names() {
    let schema: serde_json::Value =
        serde_json::from_str(&kvmnet::config::model::json_schema()).unwrap();
    for pointer in [
        "/$defs/BridgeConfig/properties/name/pattern",
        "/$defs/Network/properties/uplink/pattern",
    ] {
        let pattern = schema.pointer(pointer).and_then(|p| p.as_str());
        let pattern = regex::Regex::new(pattern.unwrap_or_else(|| panic!("no {pointer}"))).unwrap();
        for name in [
            "kv,up0",
            "kv*",
            "up*",
            "kv%d",
            "kv\"a",
            "virbr 1",
            "kv\nport=0",
            "virbr-16-bytes-x",
            ".",
            "..",
            "",
            "eno1:0",
            "a/b",
            "virbr-ßßßß",
        ] {
            assert!(!pattern.is_match(name), "{pointer} accepts {name:?}");
            assert!(
                kvmnet::config::validate::check_ifname(name).is_err(),
                "{name:?}"
            );
        }
        for name in [
            "virbr-nat",
            "eno1",
            "br0.100",
            "kv_a-b.c",
            "...",
            ".x",
            "123456789012345",
        ] {
            assert!(pattern.is_match(name), "{pointer} refuses {name:?}");
            assert!(
                kvmnet::config::validate::check_ifname(name).is_ok(),
                "{name:?}"
            );
        }
    }
}
