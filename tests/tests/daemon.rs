//! The daemon against the real kernel: file changes, kernel events and
//! signals drive passes; the networks outlive it.

use std::time::Duration;

use kvmnet_e2e::{wait_for, AgentEnv, Signal};

const NAT: &str = r#"
[networks.nat-network]
mode = "nat"
bridge = { name = "virbr-nat" }
[[networks.nat-network.ip]]
address = "192.168.10.1/24"
"#;

const ISOLATED: &str = r#"
[networks.iso]
mode = "isolated"
bridge = { name = "virbr-iso" }
[[networks.iso.ip]]
address = "192.168.30.1/24"
"#;

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn daemon_converges_repairs_follows_files_and_leaves_networks_up() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    // A long interval: every repair below must come from an event, not the timer.
    let mut daemon = env.spawn(&["--interval", "1h", "--metrics-listen", "127.0.0.1:9477"]);
    let h = env.host();
    let exists = |name: &str| h.ip(&["link", "show", name]).success();
    wait_for("virbr-nat created", WAIT, || exists("virbr-nat"));
    let status = env.run_dir().join("status.json");
    wait_for("status.json written", WAIT, || status.exists());

    // Metrics: the textfile and HTTP (loopback of the test's own namespace).
    let prom = env.state_dir().join("kvmnet.prom");
    wait_for("metrics textfile", WAIT, || prom.exists());
    let http = |path: &str| {
        h.exec(
            "busybox",
            &["wget", "-qO-", &format!("http://127.0.0.1:9477{path}")],
        )
    };
    wait_for("healthz ok", WAIT, || http("/healthz").stdout() == "ok\n");
    let metrics = http("/metrics").stdout();
    // The daemon's own writes trigger one more (no-op) pass, so the gauge
    // of the last pass may already say "in sync": check counters.
    assert!(
        metrics.contains("kvmnet_repairs_total{network=\"nat-network\",result=\"done\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kvmnet_networks{state=\"failed\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kvmnet_drift_total{network=\"nat-network\",resource=\"bridge\"} 1"),
        "{metrics}"
    );

    h.ip_ok(&["link", "del", "virbr-nat"]);
    wait_for("virbr-nat repaired after ip link del", WAIT, || {
        exists("virbr-nat")
    });
    wait_for("address back", WAIT, || {
        h.ip_ok(&["addr", "show", "virbr-nat"])
            .contains("192.168.10.1/24")
    });

    env.write_config("iso.toml", ISOLATED);
    wait_for("virbr-iso created for a new file", WAIT, || {
        exists("virbr-iso")
    });
    env.remove_config("iso.toml");
    wait_for("virbr-iso removed with its file", WAIT, || {
        !exists("virbr-iso")
    });

    // A typo never tears down a working network.
    env.write_config("nat.toml", &NAT.replace("mode = \"nat\"", "mode = \"nta\""));
    wait_for("config error in status.json", WAIT, || {
        let Ok(text) = std::fs::read_to_string(&status) else {
            return false;
        };
        let status: serde_json::Value = serde_json::from_str(&text).unwrap();
        status["config_errors"].as_array().is_some_and(|errors| {
            errors
                .iter()
                .any(|e| e["line"] == 3 && e["file"].as_str().unwrap().ends_with("nat.toml"))
        })
    });
    assert!(exists("virbr-nat"));
    env.write_config("nat.toml", NAT);
    wait_for("fixed file converges", WAIT, || {
        std::fs::read_to_string(&status).is_ok_and(|s| s.contains("\"result\": \"converged\""))
    });

    assert!(daemon.is_running(), "daemon died: {}", daemon.stderr());
    daemon.signal(Signal::SIGTERM);
    let out = daemon.stop(WAIT);
    assert!(out.success(), "{out}");
    assert!(out.stderr().contains("drift"), "drift is logged: {out}");
    assert!(
        exists("virbr-nat"),
        "networks stay up when the daemon stops"
    );
    let again = env.run(&["--once", "--output", "json"]);
    again.assert_success();
    let report = again.json();
    assert_eq!(report["writes"], 0, "{again}");
}

#[test]
fn a_configmap_style_data_symlink_swap_is_picked_up() {
    let env = AgentEnv::new();
    let dir = env.config_dir();
    // Kubernetes ConfigMap / git-sync layout: files behind a `..data` link.
    let version = |name: &str, text: &str| {
        let d = dir.join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("net.toml"), text).unwrap();
    };
    version("..v1", NAT);
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/net.toml", dir.join("net.toml")).unwrap();
    let mut daemon = env.spawn(&["--interval", "1h"]);
    let h = env.host();
    let exists = |name: &str| h.ip(&["link", "show", name]).success();
    wait_for("virbr-nat created", WAIT, || exists("virbr-nat"));

    version("..v2", ISOLATED);
    std::os::unix::fs::symlink("..v2", dir.join("..data.tmp")).unwrap();
    std::fs::rename(dir.join("..data.tmp"), dir.join("..data")).unwrap();
    wait_for("the swap applied", WAIT, || {
        exists("virbr-iso") && !exists("virbr-nat")
    });
    assert!(daemon.is_running(), "{}", daemon.stderr());
}

#[test]
fn restart_adopts_everything_with_zero_writes_and_sighup_runs_a_pass() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    let status = env.run_dir().join("status.json");
    let daemon = env.spawn(&["--interval", "1h"]);
    wait_for("first pass", WAIT, || status.exists());
    daemon.signal(Signal::SIGTERM);
    daemon.stop(WAIT).assert_success();
    std::fs::remove_file(&status).unwrap();

    let daemon = env.spawn(&["--interval", "1h"]);
    let report = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&status).unwrap()).unwrap()
    };
    wait_for("first pass after restart", WAIT, || status.exists());
    assert_eq!(
        report()["writes"],
        0,
        "the restart adopted the running network"
    );
    let first_time = std::fs::metadata(&status).unwrap().modified().unwrap();

    // SIGHUP: reload now, without waiting for the 1h timer.
    daemon.signal(Signal::SIGHUP);
    wait_for("a pass after SIGHUP", WAIT, || {
        std::fs::metadata(&status).is_ok_and(|m| m.modified().unwrap() > first_time)
    });
    let out = daemon.stop(WAIT);
    assert!(
        out.stderr().contains("reason=\"SIGHUP\"") || out.stderr().contains("reason=SIGHUP"),
        "{out}"
    );
}

/// Under systemd (Type=notify, WatchdogSec=): READY=1 after the first pass,
/// then WATCHDOG=1 from the loop at half the period while it waits.
#[test]
fn daemon_tells_systemd_ready_and_pings_the_watchdog() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    let dir = tempfile::tempdir().expect("socket dir");
    let path = dir.path().join("notify");
    // A pathname socket: reachable from the agent in its own namespace.
    let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("socket timeout");
    let path = path.to_str().expect("UTF-8 path").to_owned();
    let _daemon = env.spawn_with_env(
        &["--interval", "1h"],
        &[("NOTIFY_SOCKET", &path), ("WATCHDOG_USEC", "400000")],
    );
    let mut messages = Vec::new();
    let mut buf = [0u8; 256];
    let pings_after_ready = |messages: &[String]| {
        messages
            .iter()
            .skip_while(|m| *m != "READY=1")
            .filter(|m| *m == "WATCHDOG=1")
            .count()
    };
    wait_for("READY=1 and three watchdog pings", WAIT, || {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        pings_after_ready(&messages) >= 3
    });
    assert_eq!(
        messages.iter().filter(|m| *m == "READY=1").count(),
        1,
        "{messages:?}"
    );
}
