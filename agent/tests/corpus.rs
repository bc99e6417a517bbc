//! The bad-input corpus: every case under `tests/corpus/bad/` (a file, or a
//! directory of files for rules between files) is run through the real
//! `kvmnet-agent validate`, which must exit 1, print nothing on stdout, and
//! print exactly the diagnostics recorded in `<case>.expected` on stderr.
//! The good cases under `tests/corpus/good/` are TOML/YAML twins that must
//! validate and give identical models.
//!
//! `KVMNET_BLESS=1 cargo test -p kvmnet --test corpus` rewrites the
//! expectations; review every change by eye: a wrong position or a vague
//! message is a bug to fix, not to record.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kvmnet::config::desired::DesiredState;
use kvmnet::config::load;

const EXPECTED: &str = "expected";

/// Paths are relative to the package root, the working directory cargo runs
/// tests in, so that the recorded diagnostics do not depend on the checkout.
fn corpus(sub: &str) -> PathBuf {
    Path::new("tests/corpus").join(sub)
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

fn validate(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmnet-agent"))
        .arg("validate")
        .args(args)
        .output()
        .expect("run kvmnet-agent validate")
}

fn expectation_of(case: &Path) -> PathBuf {
    let mut name = case.file_name().unwrap().to_os_string();
    name.push(format!(".{EXPECTED}"));
    case.with_file_name(name)
}

#[test]
fn bad_inputs_fail_with_their_recorded_diagnostics() {
    let update = std::env::var_os("KVMNET_BLESS").is_some();
    let all = entries(&corpus("bad"));
    let cases: Vec<&PathBuf> = all
        .iter()
        .filter(|p| p.extension().is_none_or(|e| e != EXPECTED))
        .collect();
    assert!(cases.len() >= 100, "only {} corpus cases", cases.len());

    // Every expectation belongs to a case (a renamed case leaves none behind).
    for path in all
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == EXPECTED))
    {
        let case = path.with_extension("");
        assert!(case.exists(), "{} has no case", path.display());
    }

    let mut failures = Vec::new();
    for case in cases {
        let output = validate(&[case]);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let expected_path = expectation_of(case);
        if update {
            fs::write(&expected_path, &stderr).unwrap();
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if output.status.code() != Some(1) {
            failures.push(format!(
                "{}: exit {:?}, expected 1\n{stderr}",
                case.display(),
                output.status.code()
            ));
        } else if !output.stdout.is_empty() {
            failures.push(format!(
                "{}: unexpected stdout: {}",
                case.display(),
                String::from_utf8_lossy(&output.stdout)
            ));
        } else if stderr != expected {
            failures.push(format!(
                "{}: diagnostics differ from {}\n--- expected\n{expected}--- got\n{stderr}",
                case.display(),
                expected_path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus case(s) failed (KVMNET_BLESS=1 rewrites the expectations):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn examples_validate() {
    let output = validate(&[Path::new("../examples")]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stderr.is_empty());
}

#[test]
fn good_twins_validate_to_identical_models() {
    let all = entries(&corpus("good"));
    let tomls: Vec<&PathBuf> = all
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(tomls.len() >= 5, "only {} twins", tomls.len());
    assert_eq!(
        tomls.len() * 2,
        all.len(),
        "every good case is a .toml/.yaml pair"
    );
    for toml in tomls {
        let yaml = toml.with_extension("yaml");
        let state = |path: &Path| {
            let state = DesiredState::from_loads(vec![load::load_file(path, None)]);
            let errors: Vec<String> = state.diagnostics().map(|d| d.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{}:\n{}",
                path.display(),
                errors.concat()
            );
            assert!(!state.networks.is_empty(), "{} is empty", path.display());
            state
                .networks
                .into_values()
                .map(|n| (n.name, n.bridge, n.mac, n.spec))
                .collect::<Vec<_>>()
        };
        assert_eq!(state(toml), state(&yaml), "{} and its twin", toml.display());
    }
}
