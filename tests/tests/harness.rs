//! Smoke test of the harness itself: namespaces, veths, a bridge, traffic,
//! cleanup (also on panic) and the agent runner.

use std::os::unix::fs::PermissionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::Duration;

use kvmnet_e2e::{
    attach_to_bridge, ping_ok, require_root, tcp_connect_ok, tcp_listen, veth, wait_for, AgentEnv,
    Netns,
};

fn netns_exists(name: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

/// Gone, or a zombie nobody has reaped yet (it no longer runs).
fn process_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
    }
}

#[test]
fn vm_on_bridge_reaches_host_both_ways() {
    let host = Netns::new("host");
    let vm = Netns::new("vm");
    let names = [host.name().to_owned(), vm.name().to_owned()];

    host.ip_ok(&["link", "add", "br0", "type", "bridge"]);
    host.set_up("br0");
    host.add_addr("br0", "10.77.0.1/24");
    host.add_addr("br0", "fd77::1/64");
    let port = attach_to_bridge(&host, "br0", &vm, "eth0");
    vm.add_addr("eth0", "10.77.0.2/24");
    vm.add_addr("eth0", "fd77::2/64");

    let ports = host.ip_ok(&["-o", "link", "show", "master", "br0"]);
    assert!(
        ports.contains(&format!("{port}@")),
        "{port} not in br0:\n{ports}"
    );

    for (from, to) in [
        (&vm, "10.77.0.1"),
        (&host, "10.77.0.2"),
        (&vm, "fd77::1"),
        (&host, "fd77::2"),
    ] {
        assert!(ping_ok(from, to), "ping {to} from {}", from.name());
    }

    let _server = tcp_listen(&host, 8080);
    assert!(tcp_connect_ok(&vm, "10.77.0.1", 8080));
    assert!(
        tcp_connect_ok(&vm, "fd77::1", 8080),
        "the listener stays up for a second client"
    );
    assert!(
        !tcp_connect_ok(&vm, "10.77.0.1", 8081),
        "nothing listens on 8081"
    );

    drop((host, vm));
    for name in names {
        assert!(!netns_exists(&name), "{name} still exists");
    }
}

#[test]
fn veth_connects_two_namespaces() {
    let a = Netns::new("a");
    let b = Netns::new("b");
    veth(&a, "to-b", &b, "to-a");
    a.add_addr("to-b", "192.168.77.1/30");
    b.add_addr("to-a", "192.168.77.2/30");
    assert!(ping_ok(&a, "192.168.77.2"));
    assert!(ping_ok(&b, "192.168.77.1"));
}

#[test]
fn panicking_test_still_deletes_its_namespace_and_processes() {
    // Outside the closure, so that without root the failure says so.
    require_root();
    let mut seen = None;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let ns = Netns::new("doomed");
        // Detached, like a daemon the agent would start: only the namespace
        // teardown can find and kill it.
        let pid = ns
            .sh_ok("sleep 600 >/dev/null 2>&1 & echo $!")
            .trim()
            .to_owned();
        assert_eq!(ns.pids(), vec![pid.parse::<i32>().unwrap()]);
        seen = Some((ns.name().to_owned(), pid));
        panic!("deliberate panic inside a test");
    }));
    assert!(result.is_err());
    let (name, pid) = seen.expect("closure ran");
    assert!(!netns_exists(&name), "{name} survived the panic");
    assert!(process_gone(&pid), "process {pid} from {name} survived");
}

#[test]
fn agent_env_runs_the_binary_inside_the_host_namespace() {
    // A stand-in for kvmnet-agent that reports how it was started.
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("fake-agent");
    std::fs::write(
        &bin,
        r#"#!/bin/sh
echo "args: $*"
echo "netns: $(ip netns identify)"
echo "configs: $(ls "$2")"
if [ "$7" = daemon ]; then
    trap 'echo stopping; exit 0' TERM
    echo running
    while :; do sleep 1 & wait $!; done
fi
"#,
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();

    let env = AgentEnv::with_bin(&bin);
    env.write_config("a.toml", "x = 1\n");
    env.write_config("b.yaml", "x: 1\n");
    env.remove_config("b.yaml");

    let out = env.run(&["--once"]);
    out.assert_success();
    let expected = format!(
        "args: --config-dir {} --state-dir {} --run-dir {} --once\nnetns: {}\nconfigs: a.toml\n",
        env.config_dir().display(),
        env.state_dir().display(),
        env.run_dir().display(),
        env.host().name(),
    );
    assert_eq!(out.stdout(), expected, "\n{out}");

    let daemon = env.spawn(&["daemon"]);
    wait_for("fake daemon to start", Duration::from_secs(10), || {
        daemon.stdout().contains("running")
    });
    let stopped = daemon.stop(Duration::from_secs(10));
    stopped.assert_success();
    assert!(stopped.stdout().ends_with("stopping\n"), "\n{stopped}");
}
