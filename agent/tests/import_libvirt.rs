//! `kvmnet-agent import-libvirt` against XML fixtures written in libvirt's
//! documented network format (`tests/libvirt/`): every supported element
//! converts to the recorded file (`good/NAME.toml`), which validates; every
//! unsupported one is refused with its path (`refused/NAME.expected`), or
//! dropped with a warning under `--lossy`. After an intended change,
//! regenerate the recordings with `KVMNET_BLESS=1` and review the diff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn agent(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvmnet-agent"));
    cmd.args(args);
    cmd
}

fn run(args: &[&str]) -> Output {
    agent(args).output().expect("run kvmnet-agent")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new("tests/libvirt").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .map(|p| {
            p.strip_prefix(std::env::current_dir().unwrap())
                .unwrap_or(&p)
                .to_path_buf()
        })
        .collect();
    files.sort();
    files
}

/// Compares `actual` with the recording at `path`, or rewrites it when
/// blessing.
#[track_caller]
fn assert_recorded(path: &Path, actual: &str) {
    if std::env::var_os("KVMNET_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with KVMNET_BLESS=1)", path.display()));
    assert_eq!(actual, want, "{} differs", path.display());
}

/// Writes `text` to a file named `name` and validates it with the agent.
#[track_caller]
fn assert_validates(name: &str, contents: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, contents).unwrap();
    let out = run(&["validate", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{name} does not validate:\n{contents}\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn every_supported_element_converts_to_the_recorded_file_which_validates() {
    let good = fixtures("good");
    assert!(good.len() >= 10, "{good:?}");
    for xml in good {
        let out = run(&["import-libvirt", xml.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            xml.display(),
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr), "", "{}: no warning", xml.display());
        assert!(
            stdout.starts_with(&format!(
                "# Imported from libvirt ({}) by kvmnet-agent import-libvirt.\n",
                xml.display()
            )),
            "{stdout}"
        );
        assert_recorded(&xml.with_extension("toml"), &stdout);
        assert_validates("imported.toml", &stdout);
    }
}

#[test]
fn yaml_output_is_the_same_network_and_validates() {
    let xml = "tests/libvirt/good/dns-full.xml";
    let out = run(&["import-libvirt", "--format", "yaml", xml]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert_recorded(Path::new("tests/libvirt/good/dns-full.yaml"), &yaml);
    assert_validates("imported.yaml", &yaml);
}

#[test]
fn unsupported_elements_are_refused_with_their_path_and_nothing_is_printed() {
    let refused = fixtures("refused");
    assert!(!refused.is_empty());
    for xml in refused {
        let out = run(&["import-libvirt", xml.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", xml.display());
        assert_eq!(text(&out.stdout), "", "{}: nothing printed", xml.display());
        assert_recorded(&xml.with_extension("expected"), &text(&out.stderr));
    }
    let hostdev = text(&run(&["import-libvirt", "tests/libvirt/refused/hostdev.xml"]).stderr);
    assert!(
        hostdev.contains("/network/forward[@mode='hostdev']: hostdev forwarding is not supported"),
        "{hostdev}"
    );
}

#[test]
fn lossy_drops_with_warnings_and_the_rest_validates() {
    let xml = "tests/libvirt/refused/nat-address-bandwidth-portgroup.xml";
    let out = run(&["import-libvirt", "--lossy", xml]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("warning: {xml}: dropped /network/bandwidth: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");
    let toml = text(&out.stdout);
    assert!(toml.contains("[networks.extras]"), "{toml}");
    assert_validates("lossy.toml", &toml);
}

#[test]
fn stdin_is_read_when_no_file_or_dash_is_given() {
    let xml = std::fs::read("tests/libvirt/good/default.xml").unwrap();
    for args in [&["import-libvirt"][..], &["import-libvirt", "-"]] {
        let mut child = agent(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &xml).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with("# Imported from libvirt (stdin)"),
            "{stdout}"
        );
        assert!(stdout.contains("[networks.default]"), "{stdout}");
    }
}

/// `--all` asks virsh: a fake `virsh` on PATH answers from the fixtures.
#[test]
fn all_imports_every_network_virsh_lists() {
    let bin = tempfile::tempdir().unwrap();
    let fixtures = std::fs::canonicalize("tests/libvirt/good").unwrap();
    let script = format!(
        "#!/bin/sh\n\
         case \"$1 $2 $3\" in\n\
         'net-list --all --name') printf 'default\\npxe-lab\\n\\n' ;;\n\
         net-dumpxml*) exec cat \"{}/$2.xml\" ;;\n\
         *) echo \"unexpected: $*\" >&2; exit 1 ;;\n\
         esac\n",
        fixtures.display()
    );
    let virsh = bin.path().join("virsh");
    std::fs::write(&virsh, script).unwrap();
    std::fs::set_permissions(&virsh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = agent(&["import-libvirt", "--all"])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let toml = text(&out.stdout);
    assert!(
        toml.contains("# Imported from libvirt (virsh net-dumpxml default)"),
        "{toml}"
    );
    assert!(
        toml.contains("# Imported from libvirt (virsh net-dumpxml pxe-lab)"),
        "{toml}"
    );
    assert!(toml.contains("[networks.default]") && toml.contains("[networks.pxe-lab]"));
    assert_validates("all.toml", &toml);
}
