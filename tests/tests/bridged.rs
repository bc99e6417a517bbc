//! Bridges and their guests: guest ports are re-attached when an owned
//! bridge has to be recreated, so running guests keep their connectivity.

use std::time::Duration;

use kvmnet_e2e::{attach_to_bridge, ping_ok, wait_for, AgentEnv, Netns};

// STP off: a re-attached port forwards at once instead of after the
// listening and learning delays, which keeps the test fast.
const NAT: &str = r#"
[networks.nat-network]
mode = "nat"
bridge = { name = "virbr-nat", stp = false }

[[networks.nat-network.ip]]
address = "192.168.10.1/24"
"#;

fn master_of(ns: &Netns, link: &str) -> Option<String> {
    let out = ns.ip_ok(&["-j", "link", "show", link]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    json[0]["master"].as_str().map(str::to_string)
}

#[test]
fn nat_bridge_deleted_by_hand_gets_its_guest_port_back() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    env.run(&["--once"]).assert_success();
    let host = env.host();
    let vm = Netns::new("vm");
    let port = attach_to_bridge(host, "virbr-nat", &vm, "eth0");
    vm.add_addr("eth0", "192.168.10.50/24");
    assert!(ping_ok(&vm, "192.168.10.1"));
    // The pass after the guest started learns its port and changes nothing.
    let learn = env.run(&["--once"]);
    learn.assert_success();
    assert!(learn.stdout().contains(", 0 write(s)"), "{learn}");

    host.ip_ok(&["link", "del", "virbr-nat"]);
    assert_eq!(master_of(host, &port), None);
    let check = env.run(&["--check"]);
    check.assert_code(2);
    assert!(
        check
            .stdout()
            .contains(&format!("+ port {port} on virbr-nat: missing")),
        "{check}"
    );
    let repair = env.run(&["--once"]);
    repair.assert_success();
    assert!(
        repair
            .stdout()
            .contains(&format!("done: enslave {port} to virbr-nat")),
        "{repair}"
    );
    assert_eq!(master_of(host, &port).as_deref(), Some("virbr-nat"));
    wait_for(
        "the VM to reach the bridge again",
        Duration::from_secs(10),
        || ping_ok(&vm, "192.168.10.1"),
    );
    env.run(&["--check"]).assert_code(0);
}

#[test]
fn a_port_released_on_purpose_stays_released() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    env.run(&["--once"]).assert_success();
    let host = env.host();
    let vm = Netns::new("vm");
    let port = attach_to_bridge(host, "virbr-nat", &vm, "eth0");
    env.run(&["--once"]).assert_success();
    host.ip_ok(&["link", "set", &port, "nomaster"]);
    env.run(&["--once"]).assert_success();
    // Now the bridge is recreated: the released port is not taken back.
    host.ip_ok(&["link", "del", "virbr-nat"]);
    let repair = env.run(&["--once"]);
    repair.assert_success();
    assert!(!repair.stdout().contains(&port), "{repair}");
    assert_eq!(master_of(host, &port), None);
}
