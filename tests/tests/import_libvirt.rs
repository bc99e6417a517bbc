//! Networks imported from libvirt converge, and their dnsmasq runs with the
//! configuration recorded in `tests/golden/import/` (regenerate with
//! `KVMNET_BLESS=1` and review the diff). The fixtures are the agent's
//! (`agent/tests/libvirt/good/`); their conversion is tested there.

use std::path::{Path, PathBuf};

use kvmnet_e2e::AgentEnv;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../agent/tests/libvirt/good/{name}.xml"))
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("golden/import/{name}"))
}

/// A file of the instance with the test's directories and the account
/// dnsmasq runs as (the machine's) replaced by placeholders.
fn instance_file(env: &AgentEnv, network: &str, ext: &str) -> String {
    let path = env.run_dir().join(format!("dnsmasq/{network}.{ext}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = text
        .replace(env.run_dir().to_str().unwrap(), "<run-dir>")
        .replace(env.state_dir().to_str().unwrap(), "<state-dir>");
    text.lines()
        .map(|l| match l.split_once('=') {
            Some(("user" | "group", _)) => format!("{}=<account>\n", l.split('=').next().unwrap()),
            _ => format!("{l}\n"),
        })
        .collect()
}

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

#[test]
fn imported_networks_converge_and_run_the_recorded_dnsmasq_configuration() {
    let env = AgentEnv::new();
    // A representative set: NAT as libvirt installs it, IPv6 by SLAAC,
    // every DNS setting, an isolated network, raw dnsmasq options.
    let cases = [
        ("default", "default"),
        ("ipv6-nat-slaac", "nat6"),
        ("dns-full", "dns-full"),
        ("isolated", "isolated"),
        ("dnsmasq-options", "raw"),
    ];
    for (file, _) in cases {
        let out = env.run(&["import-libvirt", fixture(file).to_str().unwrap()]);
        out.assert_success();
        env.write_config(&format!("{file}.toml"), &out.stdout());
    }
    env.run(&["validate"]).assert_success();
    // Still libvirt's bridge (README, "Coming from libvirt", step 2): the
    // check says so and nothing is changed.
    let h = env.host();
    h.ip_ok(&["link", "add", "virbr0", "type", "bridge"]);
    let check = env.run(&["--check"]);
    assert_ne!(check.code(), Some(0), "{check}");
    assert!(
        check
            .stdout()
            .contains("bridge name virbr0 is taken by a bridge kvmnet does not own"),
        "{check}"
    );
    assert!(!h.ip_ok(&["-d", "link", "show", "virbr0"]).contains("alias"));
    // libvirt's network stopped (step 3): kvmnet takes the name over.
    h.ip_ok(&["link", "del", "virbr0"]);
    env.run(&["--once"]).assert_success();
    assert!(h
        .ip_ok(&["-d", "link", "show", "virbr0"])
        .contains("alias kvmnet:default"));
    env.run(&["--check"]).assert_code(0);
    for (file, network) in cases {
        for ext in ["conf", "hostsfile", "addnhosts"] {
            let actual = instance_file(&env, network, ext);
            assert_recorded(&golden(&format!("{file}.{ext}")), &actual);
        }
    }
}
