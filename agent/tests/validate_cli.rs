//! `kvmnet-agent validate` as Ansible runs it: `validate: "kvmnet-agent
//! validate %s"` hands over one temporary file whose name has no extension
//! (`tmpk3x9_q` from lineinfile/blockinfile, `source` under a hidden
//! `~/.ansible/tmp/ansible-tmp-*/` directory from template/copy). The format
//! then comes from the contents, or from `--format`. Exit 0 accepts the
//! file, anything else makes Ansible keep the old one and show stderr.

use std::path::Path;
use std::process::Output;

const VALID_YAML: &str =
    "networks:\n  web:\n    mode: nat\n    ip:\n      - address: 192.168.60.1/24\n";
const INVALID_YAML: &str = "networks:\n  web:\n    mode: nat\n    ip:\n      - address: 192.168.60.1/24\n        dhcp: { ranges: [{ start: 192.168.60.9, end: 192.168.61.2 }] }\n";
const VALID_TOML: &str =
    "[networks.web]\nmode = \"nat\"\nip = [{ address = \"192.168.60.1/24\" }]\n";
const INVALID_TOML: &str = "[networks.web]\nmode = \"nat\"\nbridge.name = \"virbr-much-too-long\"\nip = [{ address = \"192.168.60.1/24\" }]\n";

fn validate(args: &[&str], file: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kvmnet-agent"))
        .arg("validate")
        .args(args)
        .arg(file)
        .output()
        .expect("run kvmnet-agent validate")
}

/// A temporary file named like Python's tempfile.mkstemp() names them.
fn ansible_tmpfile(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().prefix("tmp").tempfile().unwrap();
    assert!(file.path().extension().is_none());
    std::fs::write(file.path(), text).unwrap();
    file
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn valid_files_without_extension_exit_0() {
    for content in [VALID_YAML, VALID_TOML] {
        let file = ansible_tmpfile(content);
        let out = validate(&[], file.path());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with("ok: 1 network(s) in 1 file(s)"));
    }
}

#[test]
fn invalid_files_without_extension_exit_1_with_located_message_on_stderr() {
    for (content, line_col, message) in [
        (
            INVALID_YAML,
            ":6:",
            "DHCP range end 192.168.61.2 is outside the subnet 192.168.60.0/24",
        ),
        (
            INVALID_TOML,
            ":3:15",
            "invalid bridge name \"virbr-much-too-long\"",
        ),
    ] {
        let file = ansible_tmpfile(content);
        let out = validate(&[], file.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(out.stdout.is_empty());
        let position = format!("{}{line_col}", file.path().display());
        assert!(stderr.contains(&position), "no {position} in:\n{stderr}");
        assert!(stderr.contains(message), "no {message:?} in:\n{stderr}");
    }
}

#[test]
fn template_source_under_a_hidden_directory() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir
        .path()
        .join(".ansible/tmp/ansible-tmp-1732790000.1-42-1");
    std::fs::create_dir_all(&tmp).unwrap();
    let source = tmp.join("source");
    std::fs::write(&source, VALID_TOML).unwrap();
    assert_eq!(validate(&[], &source).status.code(), Some(0));
    std::fs::write(&source, INVALID_YAML).unwrap();
    assert_eq!(validate(&[], &source).status.code(), Some(1));
}

#[test]
fn format_flag_overrides_the_contents() {
    let file = ansible_tmpfile(VALID_YAML);
    assert_eq!(
        validate(&["--format", "yaml"], file.path()).status.code(),
        Some(0)
    );
    // Read as TOML, YAML is a syntax error, reported as one.
    let out = validate(&["--format", "toml"], file.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("{}:1:", file.path().display())));
}

#[test]
fn unreadable_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = validate(&[], &dir.path().join("tmpgone"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read file"));
}

#[test]
fn json_output_carries_the_positions() {
    let file = ansible_tmpfile(INVALID_TOML);
    let out = validate(&["--output", "json"], file.path());
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"][0]["line"], 3);
    assert_eq!(report["errors"][0]["column"], 15);
}

#[test]
fn format_flag_leaves_telling_extensions_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.toml"), VALID_TOML).unwrap();
    let out = validate(&["--format", "yaml"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// `validate -` reads the file from standard input (`kvmnet-agent validate -
/// < file`, or piped from a template engine).
#[test]
fn a_dash_validates_standard_input() {
    use std::io::Write;
    for (content, code) in [(VALID_YAML, 0), (VALID_TOML, 0), (INVALID_YAML, 1)] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kvmnet-agent"))
            .args(["validate", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kvmnet-agent validate -");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(content.as_bytes()).expect("write stdin");
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
        if code == 0 {
            assert!(text(&out.stdout).starts_with("ok: 1 network(s) in 1 file(s)"));
        } else {
            assert!(
                text(&out.stderr).contains("<stdin>:6:"),
                "{}",
                text(&out.stderr)
            );
        }
    }
}

/// Each subcommand's help lists its own options, not the daemon's.
#[test]
fn validate_help_shows_no_daemon_option() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvmnet-agent"))
        .args(["validate", "--help"])
        .output()
        .expect("run kvmnet-agent validate --help");
    let help = text(&out.stdout);
    assert!(help.contains("--format"), "{help}");
    for daemon_option in [
        "--interval",
        "--log-format",
        "--metrics-listen",
        "--color",
        "--once",
    ] {
        assert!(!help.contains(daemon_option), "{daemon_option} in:\n{help}");
    }
}

/// `kvmnet-agent` alone prints its help rather than starting the daemon.
#[test]
fn no_arguments_print_help_and_start_nothing() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvmnet-agent"))
        .output()
        .expect("run kvmnet-agent");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("Usage: kvmnet-agent"),
        "{}",
        text(&out.stderr)
    );
}
