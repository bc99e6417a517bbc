//! DHCP and DNS with real dnsmasq: guests (vm namespaces on the bridge) take
//! leases with busybox udhcpc and resolve names with busybox nslookup.

use std::time::Duration;

use kvmnet_e2e::{dhcp_lease, resolve, wait_for_value, AgentEnv, CmdOutput, Netns, Signal};

/// Three networks, one per mode that routes differently. STP off: a new
/// port forwards at once, so the first DHCP request is not lost.
const NETWORKS: &str = r#"
[networks.nat]
mode = "nat"
bridge = { name = "kvd-nat", stp = false }
dns = { domain = "nat.test", hosts = [{ ip = "192.168.60.200", names = ["svc"] }] }
[[networks.nat.ip]]
address = "192.168.60.1/24"
dhcp.ranges = [{ start = "192.168.60.100", end = "192.168.60.150" }]
dhcp.hosts = [{ mac = "52:54:00:00:60:10", ip = "192.168.60.10", name = "fixed" }]

[networks.routed]
mode = "route"
bridge = { name = "kvd-route", stp = false }
[[networks.routed.ip]]
address = "192.168.61.1/24"
dhcp.ranges = [{ start = "192.168.61.100", end = "192.168.61.150" }]

[networks.iso]
mode = "isolated"
bridge = { name = "kvd-iso", stp = false }
[[networks.iso.ip]]
address = "192.168.62.1/24"
dhcp.ranges = [{ start = "192.168.62.100", end = "192.168.62.150" }]
"#;

const STATIC_MAC: &str = "52:54:00:00:60:10";

/// Whether `pid` runs (a zombie, not yet reaped by init, does not).
fn running(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

fn writes(out: &CmdOutput) -> u64 {
    out.json()["writes"].as_u64().unwrap()
}

#[test]
fn guests_get_static_and_dynamic_leases_routes_per_mode_and_names() {
    let env = AgentEnv::new();
    env.write_config("nets.toml", NETWORKS);
    env.run(&["--once"]).assert_success();
    env.run(&["--check"]).assert_code(0);

    let fixed = env.guest("kvd-nat", Some(STATIC_MAC));
    let lease = dhcp_lease(&fixed, "eth0", None).expect("static guest gets a lease");
    assert_eq!(lease.ip, "192.168.60.10");
    assert_eq!(lease.router.as_deref(), Some("192.168.60.1"));
    assert_eq!(lease.dns.as_deref(), Some("192.168.60.1"));

    let dynamic = env.guest("kvd-nat", Some("52:54:00:00:60:99"));
    let lease = dhcp_lease(&dynamic, "eth0", None).expect("dynamic guest gets a lease");
    let last: u8 = lease
        .ip
        .strip_prefix("192.168.60.")
        .unwrap()
        .parse()
        .unwrap();
    assert!((100..=150).contains(&last), "{lease:?} outside the range");
    assert_eq!(lease.router.as_deref(), Some("192.168.60.1"));

    let routed = env.guest("kvd-route", None);
    let lease = dhcp_lease(&routed, "eth0", None).expect("routed guest gets a lease");
    assert!(lease.ip.starts_with("192.168.61.1"), "{lease:?}");
    assert_eq!(lease.router.as_deref(), Some("192.168.61.1"));

    let isolated = env.guest("kvd-iso", None);
    let lease = dhcp_lease(&isolated, "eth0", None).expect("isolated guest gets a lease");
    assert!(lease.ip.starts_with("192.168.62.1"), "{lease:?}");
    assert_eq!(lease.router, None, "isolated: no default route offered");

    // Names, asked through the bridge address.
    dynamic.add_addr("eth0", &format!("{}/24", lease_ip(&dynamic)));
    assert_eq!(
        resolve(&dynamic, "fixed", "192.168.60.1"),
        ["192.168.60.10"]
    );
    assert_eq!(
        resolve(&dynamic, "fixed.nat.test", "192.168.60.1"),
        ["192.168.60.10"]
    );
    assert_eq!(resolve(&dynamic, "svc", "192.168.60.1"), ["192.168.60.200"]);

    // Both leases of the nat network, the static one marked.
    let text = env.run(&["leases", "nat"]);
    text.assert_success();
    let stdout = text.stdout();
    let row = |ip: &str| {
        stdout
            .lines()
            .find(|l| l.contains(ip))
            .unwrap_or_else(|| panic!("no lease of {ip} in\n{stdout}"))
            .to_string()
    };
    assert!(row("192.168.60.10/24").contains(STATIC_MAC));
    assert!(row("192.168.60.10/24").trim_end().ends_with("yes"));
    assert!(row("52:54:00:00:60:99").trim_end().ends_with("no"));
    let rows = env.run(&["leases", "nat", "--output", "json"]).json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let fixed_row = rows.iter().find(|r| r["mac"] == STATIC_MAC).unwrap();
    assert_eq!(fixed_row["ip"], "192.168.60.10/24");
    assert_eq!(fixed_row["static"], true);
    assert_eq!(fixed_row["protocol"], "ipv4");
    assert!(rows.iter().any(|r| r["static"] == false));
}

/// The address a guest holds by DHCP now (asks again: same lease).
fn lease_ip(vm: &Netns) -> String {
    dhcp_lease(vm, "eth0", None).expect("lease").ip
}

#[test]
fn killed_dnsmasq_is_reported_restarted_and_the_guest_keeps_its_address() {
    let env = AgentEnv::new();
    env.write_config("nets.toml", NETWORKS);
    env.run(&["--once"]).assert_success();
    let vm = env.guest("kvd-nat", Some("52:54:00:00:60:55"));
    let first = dhcp_lease(&vm, "eth0", None).expect("lease");
    let pid = env.dnsmasq_pid("nat");
    env.host().exec_ok("kill", &["-KILL", &pid.to_string()]);

    let check = env.run(&["--check"]);
    check.assert_code(2);
    assert!(
        check.stdout().contains("+ dnsmasq nat on kvd-nat: missing"),
        "{check}"
    );
    let show = env.run(&["show", "nat"]);
    show.assert_success();
    let text = show.stdout();
    assert!(text.contains("): drifted"), "{show}");
    assert!(text.contains("not running"), "{show}");
    let once = env.run(&["--once"]);
    once.assert_success();
    assert!(
        once.stdout().contains("done: start dnsmasq of nat"),
        "{once}"
    );
    let restarted = env.dnsmasq_pid("nat");
    assert_ne!(restarted, pid);
    let show = env.run(&["show", "nat"]);
    assert!(
        show.stdout()
            .contains(&format!("running (pid {restarted})")),
        "{show}"
    );
    let leases = std::fs::read_to_string(env.state_dir().join("dnsmasq/nat.leases")).unwrap();
    assert!(leases.contains(&first.ip), "lease file lost: {leases}");
    let renewed = dhcp_lease(&vm, "eth0", Some(&first.ip)).expect("renewed lease");
    assert_eq!(renewed.ip, first.ip);
}

#[test]
fn hosts_change_reloads_range_change_restarts_and_a_second_pass_adopts() {
    let env = AgentEnv::new();
    env.write_config("nets.toml", NETWORKS);
    env.run(&["--once"]).assert_success();
    let pid = env.dnsmasq_pid("nat");

    // Adoption: same process, nothing written.
    let again = env.run(&["--once", "--output", "json"]);
    again.assert_success();
    assert_eq!(writes(&again), 0, "{again}");
    assert_eq!(env.dnsmasq_pid("nat"), pid);

    // A new reservation: SIGHUP, same process, served at once.
    let moved = NETWORKS.replace("ip = \"192.168.60.10\"", "ip = \"192.168.60.20\"");
    env.write_config("nets.toml", &moved);
    let reload = env.run(&["--once"]);
    reload.assert_success();
    assert!(reload.stdout().contains("send SIGHUP"), "{reload}");
    assert_eq!(
        env.dnsmasq_pid("nat"),
        pid,
        "a hosts change must not restart"
    );
    let vm = env.guest("kvd-nat", Some(STATIC_MAC));
    assert_eq!(
        dhcp_lease(&vm, "eth0", None).expect("lease").ip,
        "192.168.60.20"
    );

    // A new range: a new process.
    env.write_config(
        "nets.toml",
        &moved.replace("192.168.60.150", "192.168.60.160"),
    );
    let restart = env.run(&["--once"]);
    restart.assert_success();
    assert!(
        restart.stdout().contains("~ dnsmasq nat on kvd-nat config"),
        "{restart}"
    );
    assert_ne!(env.dnsmasq_pid("nat"), pid, "a range change restarts");
    env.run(&["--check"]).assert_code(0);

    // Removing the network stops its dnsmasq and removes its files.
    let new_pid = env.dnsmasq_pid("nat");
    let without_nat = &NETWORKS[NETWORKS.find("[networks.routed]").unwrap()..];
    env.write_config("nets.toml", without_nat);
    let check = env.run(&["--check"]);
    check.assert_code(2);
    assert!(
        check
            .stdout()
            .contains("- dnsmasq nat: not in the desired state"),
        "a stray instance is drift: {check}"
    );
    let once = env.run(&["--once"]);
    once.assert_success();
    assert!(
        once.stdout().contains(&format!(
            "done: stop dnsmasq of nat (pid {new_pid}) and remove its files"
        )),
        "{once}"
    );
    assert!(!env.run_dir().join("dnsmasq/nat.conf").exists());
    assert!(!env.state_dir().join("dnsmasq/nat.leases").exists());
    assert!(!running(new_pid), "dnsmasq of a removed network still runs");
}

#[test]
fn daemon_restarts_an_adopted_and_its_own_dnsmasq_when_killed_and_logs_its_lines() {
    let env = AgentEnv::new();
    env.write_config("nets.toml", NETWORKS);
    env.run(&["--once"]).assert_success();
    let adopted = env.dnsmasq_pid("nat");
    // A long interval: the restarts below must come from the exit watch.
    let daemon = env.spawn(&["--interval", "1h"]);
    let status = env.run_dir().join("status.json");
    let wait = Duration::from_secs(10);
    wait_for_value("first pass", wait, || status.exists().then_some(()));
    let restarted = |old: i32| {
        wait_for_value(&format!("dnsmasq {old} replaced"), wait, || {
            let pid = std::fs::read_to_string(env.run_dir().join("dnsmasq/nat.pid")).ok()?;
            let pid: i32 = pid.trim().parse().ok()?;
            // Started, not starting: a kill during the start is a failed
            // start (retried with backoff), not an exit.
            let log = std::fs::read_to_string(env.state_dir().join("dnsmasq/nat.log")).ok()?;
            let started = log.contains(&format!("dnsmasq[{pid}]: started"));
            (pid != old && running(pid) && started).then_some(pid)
        })
    };
    env.host().exec_ok("kill", &["-KILL", &adopted.to_string()]);
    let own = restarted(adopted);
    env.host().exec_ok("kill", &["-KILL", &own.to_string()]);
    let again = restarted(own);
    // A restart for a new range: an exit the daemon caused, not reported.
    env.write_config(
        "nets.toml",
        &NETWORKS.replace("192.168.60.150", "192.168.60.160"),
    );
    restarted(again);
    let prom = env.state_dir().join("kvmnet.prom");
    wait_for_value("dnsmasq exits in the metrics", wait, || {
        let text = std::fs::read_to_string(&prom).ok()?;
        text.contains("kvmnet_dnsmasq_exits_total{network=\"nat\"} 2\n")
            .then_some(())
    });

    daemon.signal(Signal::SIGTERM);
    let out = daemon.stop(wait);
    let log = out.stderr();
    assert_eq!(
        log.matches("dnsmasq exited").count(),
        2,
        "each kill, and only a kill, is noticed: {out}"
    );
    assert!(log.contains("dnsmasq exit"), "exit triggers a pass: {out}");
    assert!(
        log.lines()
            .any(|l| l.contains("network=\"nat\"") && l.contains("]: started, version")),
        "dnsmasq's lines are forwarded with the network: {out}"
    );
}

#[test]
fn a_port_held_by_another_process_is_reported_plainly() {
    let env = AgentEnv::new();
    env.write_config("nets.toml", NETWORKS);
    // A DNS server of someone else's, on every address of the host.
    let _squatter = env.host().spawn("busybox", &["nc", "-l", "-p", "53"]);
    wait_for_value("the squatter listening", Duration::from_secs(5), || {
        let listening = env.host().exec("busybox", &["netstat", "-ltn"]).stdout();
        listening.contains(":53 ").then_some(())
    });
    let out = env.run(&["--once"]);
    out.assert_code(1);
    assert!(
        out.stdout().contains(
            "FAILED: nat: port 53 (DNS) on 192.168.60.1 is already held by another process"
        ),
        "{out}"
    );
}
