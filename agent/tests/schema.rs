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
