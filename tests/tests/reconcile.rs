//! The reconcile core against the real kernel, in a host namespace per test:
//! examples converge, every kind of fault is reported by `--check` and
//! repaired by `--once`, foreign objects are never touched.

use kvmnet_e2e::{AgentEnv, CmdOutput};

const NAT: &str = r#"
[networks.nat-network]
mode = "nat"
bridge = { name = "virbr-nat", stp = true, delay = "2s", mtu = 9000 }

[[networks.nat-network.ip]]
address = "192.168.10.1/24"

[[networks.nat-network.routes]]
to = "10.50.0.0/16"
via = "192.168.10.254"
"#;

const ISOLATED: &str = r#"
[networks.iso]
mode = "isolated"
bridge = { name = "virbr-iso" }
[[networks.iso.ip]]
address = "192.168.30.1/24"
"#;

fn examples_env() -> AgentEnv {
    let env = AgentEnv::new();
    env.write_examples();
    env
}

fn writes(out: &CmdOutput) -> u64 {
    out.json()["writes"].as_u64().unwrap()
}

#[test]
fn examples_converge_then_check_clean_and_a_second_pass_writes_nothing() {
    let env = examples_env();
    let first = env.run(&["--once", "--output", "json"]);
    first.assert_success();
    assert!(writes(&first) > 0);
    for bridge in [
        "virbr0",
        "virbr-nat",
        "virbr-routed",
        "virbr-isolated",
        "virbr-open",
        "virbr-lab",
        "virbr-fleet",
        "vx-fleet",
    ] {
        let link = env.host().ip_ok(&["-d", "link", "show", bridge]);
        assert!(
            link.contains("alias kvmnet:"),
            "{bridge} is not marked as ours: {link}"
        );
    }
    env.run(&["--check"]).assert_code(0);
    let second = env.run(&["--once", "--output", "json"]);
    second.assert_success();
    assert_eq!(writes(&second), 0, "{second}");
}

#[test]
fn every_fault_is_reported_then_repaired() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    env.run(&["--once"]).assert_success();
    let h = env.host();
    let faults: [(&str, &str, &str); 7] = [
        (
            "bridge deleted",
            "ip link del virbr-nat",
            "+ bridge virbr-nat: missing",
        ),
        (
            "bridge down",
            "ip link set virbr-nat down",
            "~ bridge virbr-nat state: wanted up, found down",
        ),
        (
            "mtu changed",
            "ip link set virbr-nat mtu 1500",
            "~ bridge virbr-nat mtu: wanted 9000, found 1500",
        ),
        (
            "address removed",
            "ip addr del 192.168.10.1/24 dev virbr-nat",
            "+ address 192.168.10.1/24 on virbr-nat: missing",
        ),
        (
            "owned route deleted",
            "ip route del 10.50.0.0/16",
            "+ route 10.50.0.0/16 via 192.168.10.254 dev virbr-nat: missing",
        ),
        (
            "ip_forward reset",
            "sysctl -qw net.ipv4.ip_forward=0",
            "~ sysctl net.ipv4.ip_forward value: wanted 1, found 0",
        ),
        (
            "stp off",
            "ip link set virbr-nat type bridge stp_state 0",
            "~ bridge virbr-nat stp: wanted on, found off",
        ),
    ];
    for (what, fault, expected) in faults {
        h.sh_ok(fault);
        let check = env.run(&["--check"]);
        check.assert_code(2);
        assert!(
            check.stdout().contains(expected),
            "{what}: --check does not say {expected:?}: {check}"
        );
        let once = env.run(&["--once"]);
        once.assert_success();
        assert!(once.stdout().contains("    done: "), "{what}: {once}");
        env.run(&["--check"]).assert_code(0);
    }
}

#[test]
fn check_reports_every_drift_item_as_json() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    env.write_config("iso.toml", ISOLATED);
    env.run(&["--once"]).assert_success();
    env.host().sh_ok("ip link del virbr-iso && ip link set virbr-nat mtu 1400 && sysctl -qw net.ipv4.ip_forward=0");
    let check = env.run(&["--check", "--output", "json"]);
    check.assert_code(2);
    let report = check.json();
    assert_eq!(report["result"], "drift");
    let networks = report["networks"].as_array().unwrap();
    let state = |name: &str| networks.iter().find(|n| n["name"] == name).unwrap()["state"].clone();
    assert_eq!(state("iso"), "drifted");
    assert_eq!(state("nat-network"), "drifted");
    assert_eq!(report["host"]["drift"][0]["object"], "net.ipv4.ip_forward");
    assert_eq!(report["writes"], 0);
    // A check changes nothing.
    env.run(&["--check"]).assert_code(2);
}

#[test]
fn foreign_objects_are_never_touched_and_removal_takes_exactly_ours() {
    let env = AgentEnv::new();
    let h = env.host();
    h.sh_ok(
        "ip link add foreign0 type veth peer name foreign1 && ip link set foreign0 up \
         && ip addr add 10.99.0.1/24 dev foreign0 \
         && ip route add 10.98.0.0/16 via 10.99.0.254 proto static \
         && ip link add foreignbr type bridge",
    );
    let foreign = || {
        h.sh_ok("ip -d link show foreign0; ip -d link show foreignbr; ip addr show foreign0; ip route show proto static")
    };
    let before = foreign();
    env.write_config("nat.toml", NAT);
    env.write_config("iso.toml", ISOLATED);
    env.run(&["--once"]).assert_success();
    assert_eq!(foreign(), before);

    env.remove_config("iso.toml");
    let once = env.run(&["--once"]);
    once.assert_success();
    assert!(once.stdout().contains("network iso: removed"), "{once}");
    assert!(
        !h.ip(&["link", "show", "virbr-iso"]).success(),
        "virbr-iso was not removed"
    );
    h.ip_ok(&["link", "show", "virbr-nat"]);
    assert!(h
        .ip_ok(&["route", "show", "proto", "72"])
        .contains("10.50.0.0/16"));
    assert_eq!(foreign(), before);
}

#[test]
fn missing_config_directory_exits_1_and_removes_nothing() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    env.run(&["--once"]).assert_success();
    for args in [["--once"], ["--check"]] {
        let out = env.run(&[args[0], "--config-dir", "/nonexistent/kvmnet"]);
        out.assert_code(1);
        assert!(
            out.stderr()
                .contains("cannot read config directory /nonexistent/kvmnet"),
            "{out}"
        );
    }
    env.host().ip_ok(&["link", "show", "virbr-nat"]);
}

#[test]
fn a_broken_file_prunes_nothing_and_the_others_still_apply() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    env.run(&["--once"]).assert_success();
    env.write_config("nat.toml", &NAT.replace("mode = \"nat\"", "mode = \"nta\""));
    env.write_config("iso.toml", ISOLATED);
    let once = env.run(&["--once"]);
    once.assert_code(1);
    assert!(once.stdout().contains("nat.toml:3:8"), "{once}");
    env.host().ip_ok(&["link", "show", "virbr-nat"]);
    env.host().ip_ok(&["link", "show", "virbr-iso"]);

    // The broken file's network still runs from its last good version, and
    // is repaired like any other.
    env.host().ip_ok(&["link", "del", "virbr-nat"]);
    let once = env.run(&["--once"]);
    once.assert_code(1);
    assert!(
        once.stdout().contains("running its last good version"),
        "{once}"
    );
    env.host().ip_ok(&["link", "show", "virbr-nat"]);
}

#[test]
fn a_taken_bridge_name_or_subnet_fails_that_network_only() {
    let env = AgentEnv::new();
    let h = env.host();
    h.sh_ok("ip link add virbr-nat type bridge && ip link add eno1 type veth peer name eno1p && ip link set eno1 up && ip addr add 192.168.30.5/24 dev eno1");
    env.write_config("nat.toml", NAT);
    env.write_config("iso.toml", ISOLATED);
    env.write_config(
        "ok.toml",
        "[networks.ok]\nmode = \"open\"\n[[networks.ok.ip]]\naddress = \"192.168.40.1/24\"\n",
    );
    let once = env.run(&["--once"]);
    once.assert_code(1);
    let out = once.stdout();
    assert!(
        out.contains("bridge name virbr-nat is taken by a bridge kvmnet does not own"),
        "{once}"
    );
    assert!(
        out.contains("192.168.30.0/24 is already in use by eno1"),
        "{once}"
    );
    assert!(
        out.contains("network ok (") && out.contains("repaired"),
        "{once}"
    );
    let foreign = h.ip_ok(&["-d", "link", "show", "virbr-nat"]);
    assert!(
        !foreign.contains("alias"),
        "the foreign bridge was changed: {foreign}"
    );
    assert!(!h.ip(&["link", "show", "virbr-iso"]).success());
}

/// `--once --detailed-exitcode`, like Terraform's and Puppet's: 2 when the
/// pass changed something, 0 when there was nothing to change, 1 on failure.
#[test]
fn detailed_exitcode_tells_changed_from_unchanged_from_failed() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    let once = || env.run(&["--once", "--detailed-exitcode"]);
    once().assert_code(2);
    once().assert_code(0);
    env.host().ip_ok(&["link", "set", "virbr-nat", "down"]);
    once().assert_code(2);
    once().assert_code(0);
    env.write_config("broken.toml", "[networks.broken]\nmode = \"nta\"\n");
    once().assert_code(1);
    // Without the flag a changing pass that converges exits 0.
    env.remove_config("broken.toml");
    env.host().ip_ok(&["link", "set", "virbr-nat", "down"]);
    env.run(&["--once"]).assert_code(0);
}
