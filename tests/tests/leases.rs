//! Leases as observed state: a lease the files no longer give its client is
//! drift, released in the running dnsmasq (same pid, other leases kept), and
//! each network's lease count and pool size reach the reports and metrics.

use std::time::Duration;

use kvmnet_e2e::{dhcp_lease, wait_for, wait_for_value, AgentEnv, Netns};

const WAIT: Duration = Duration::from_secs(10);

/// One NAT network, `hosts` its static reservations, `range` its pool.
fn network(bridge: &str, range: (&str, &str), hosts: &str) -> String {
    format!(
        r#"
[networks.pool]
mode = "nat"
bridge = {{ name = "{bridge}", stp = false }}
[[networks.pool.ip]]
address = "192.168.70.1/24"
dhcp.ranges = [{{ start = "{}", end = "{}" }}]
dhcp.hosts = [{hosts}]
"#,
        range.0, range.1
    )
}

fn lease_file(env: &AgentEnv) -> String {
    std::fs::read_to_string(env.state_dir().join("dnsmasq/pool.leases")).unwrap_or_default()
}

/// The network's drift items of resource `lease`, from a JSON report.
fn lease_drift(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["networks"][0]["drift"]
        .as_array()
        .expect("drift list")
        .iter()
        .filter(|d| d["resource"] == "lease")
        .cloned()
        .collect()
}

#[test]
fn a_lease_whose_mac_is_reserved_elsewhere_is_released_in_place() {
    let env = AgentEnv::new();
    let bridge = "kvl-move";
    let range = ("192.168.70.100", "192.168.70.150");
    // 192.168.70.10 starts reserved for a guest that never comes, so that
    // moving the reservation changes the hosts file only (a SIGHUP).
    let reserved = |mac: &str| format!(r#"{{ mac = "{mac}", ip = "192.168.70.10" }}"#);
    env.write_config(
        "pool.toml",
        &network(bridge, range, &reserved("52:54:00:00:70:99")),
    );
    env.run(&["--once"]).assert_success();

    let moved = env.guest(bridge, Some("52:54:00:00:70:01"));
    let other = env.guest(bridge, Some("52:54:00:00:70:02"));
    let old = dhcp_lease(&moved, "eth0", None)
        .expect("a dynamic lease")
        .ip;
    let kept = dhcp_lease(&other, "eth0", None)
        .expect("a dynamic lease")
        .ip;
    let pid = env.dnsmasq_pid("pool");

    // The operator reserves the first guest's MAC to another address.
    env.write_config(
        "pool.toml",
        &network(bridge, range, &reserved("52:54:00:00:70:01")),
    );
    let check = env.run(&["--check", "--output", "json"]);
    check.assert_code(2);
    let drift = lease_drift(&check.json());
    assert_eq!(drift.len(), 1, "{check}");
    assert_eq!(drift[0]["object"], "52:54:00:00:70:01");
    assert_eq!(drift[0]["wanted"], "192.168.70.10");
    assert_eq!(drift[0]["found"], old.as_str());

    let once = env.run(&["--once", "--output", "json"]);
    once.assert_success();
    assert!(
        once.stdout()
            .contains("release the lease of 52:54:00:00:70:01 on"),
        "{once}"
    );
    assert_eq!(env.dnsmasq_pid("pool"), pid, "a release, not a restart");
    wait_for("the stale lease gone from the lease file", WAIT, || {
        !lease_file(&env).contains(&format!(" {old} "))
    });
    assert!(
        lease_file(&env).contains(&format!("52:54:00:00:70:02 {kept} ")),
        "the other guest's lease is untouched: {}",
        lease_file(&env)
    );

    // The guest's next exchange, asking for its old address, gets its
    // reservation.
    let renewed = dhcp_lease(&moved, "eth0", Some(&old)).expect("a lease");
    assert_eq!(renewed.ip, "192.168.70.10");
    env.run(&["--check"]).assert_code(0);
}

#[test]
fn a_lease_outside_a_shrunk_range_is_released_and_renewed_inside_it() {
    let env = AgentEnv::new();
    let bridge = "kvl-shrink";
    env.write_config(
        "pool.toml",
        &network(bridge, ("192.168.70.100", "192.168.70.150"), ""),
    );
    env.run(&["--once"]).assert_success();
    let vm = env.guest(bridge, Some("52:54:00:00:70:11"));
    let old = dhcp_lease(&vm, "eth0", None).expect("a dynamic lease").ip;

    env.write_config(
        "pool.toml",
        &network(bridge, ("192.168.70.200", "192.168.70.210"), ""),
    );
    let check = env.run(&["--check", "--output", "json"]);
    check.assert_code(2);
    let drift = lease_drift(&check.json());
    assert_eq!(drift.len(), 1, "{check}");
    assert_eq!(drift[0]["found"], old.as_str());
    assert_eq!(drift[0]["wanted"], "an address in a DHCP range");

    env.run(&["--once"]).assert_success();
    let renewed = dhcp_lease(&vm, "eth0", Some(&old)).expect("a lease");
    let last: u8 = renewed
        .ip
        .strip_prefix("192.168.70.")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{renewed:?}"));
    assert!((200..=210).contains(&last), "{renewed:?}");
    wait_for("no stale lease left", WAIT, || {
        env.run(&["--check"]).code() == Some(0)
    });
}

#[test]
fn release_stale_false_reports_without_releasing() {
    let env = AgentEnv::new();
    let bridge = "kvl-keep";
    let config = |hosts: &str| {
        network(bridge, ("192.168.70.100", "192.168.70.150"), hosts)
            .replace("dhcp.hosts", "dhcp.release_stale = false\ndhcp.hosts")
    };
    env.write_config("pool.toml", &config(""));
    env.run(&["--once"]).assert_success();
    let vm = env.guest(bridge, Some("52:54:00:00:70:21"));
    let old = dhcp_lease(&vm, "eth0", None).expect("a dynamic lease").ip;
    env.write_config(
        "pool.toml",
        &config(r#"{ mac = "52:54:00:00:70:21", ip = "192.168.70.20" }"#),
    );
    let once = env.run(&["--once", "--output", "json"]);
    assert!(!once.stdout().contains("release the lease"), "{once}");
    assert!(lease_file(&env).contains(&format!(" {old} ")));
    env.run(&["--check"]).assert_code(2);
}

#[test]
fn pool_metrics_count_the_leases_of_three_guests() {
    let env = AgentEnv::new();
    let bridge = "kvl-pool";
    env.write_config(
        "pool.toml",
        &network(
            bridge,
            ("192.168.70.100", "192.168.70.150"),
            r#"{ mac = "52:54:00:00:70:31", ip = "192.168.70.31" }"#,
        ),
    );
    env.run(&["--once"]).assert_success();
    let guests: Vec<Netns> = [
        "52:54:00:00:70:31",
        "52:54:00:00:70:32",
        "52:54:00:00:70:33",
    ]
    .iter()
    .map(|mac| env.guest(bridge, Some(mac)))
    .collect();
    for vm in &guests {
        dhcp_lease(vm, "eth0", None).expect("a lease");
    }

    let report = env.run(&["--check", "--output", "json"]).json();
    let dhcp = &report["networks"][0]["dhcp"];
    assert_eq!(dhcp["leases"], 3, "{report}");
    assert_eq!(dhcp["pool_size"], 51);
    assert_eq!(
        dhcp["pool_used"], 2,
        "the reserved guest is outside the pool"
    );

    let _daemon = env.spawn(&["--interval", "1h"]);
    let prom = env.state_dir().join("kvmnet.prom");
    let text = wait_for_value("metrics written", WAIT, || {
        std::fs::read_to_string(&prom)
            .ok()
            .filter(|t| t.contains("kvmnet_dhcp_leases"))
    });
    for line in [
        "kvmnet_dhcp_leases{network=\"pool\"} 3",
        "kvmnet_dhcp_pool_size{network=\"pool\"} 51",
        "kvmnet_dhcp_pool_used{network=\"pool\"} 2",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let leases = env.run(&["leases", "pool"]);
    assert_eq!(
        leases.stdout().lines().count(),
        2 + 3,
        "header, rule and three leases: {leases}"
    );
}

#[test]
fn leases_lists_reservations_no_guest_has_taken() {
    let env = AgentEnv::new();
    env.write_config(
        "pool.toml",
        &network(
            "kvl-list",
            ("192.168.70.100", "192.168.70.150"),
            r#"{ mac = "52:54:00:00:70:41", ip = "192.168.70.41", name = "later" }"#,
        ),
    );
    env.run(&["--once"]).assert_success();
    let out = env.run(&["leases", "--output", "json"]);
    let rows = out.json();
    let row = &rows[0];
    assert_eq!(row["ip"], "192.168.70.41/24", "{out}");
    assert_eq!(row["hostname"], "later");
    assert_eq!(row["static"], true);
    assert_eq!(row["leased"], false);
    assert_eq!(row["expiry"], "no lease");
}
