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

/// A LAN with a gateway (10.77.0.1) and a peer (10.77.0.2), and a host whose
/// `eno1` is on it with a static address and a default route.
struct Lan {
    env: AgentEnv,
    lan: Netns,
}

const BRIDGED: &str = r#"
[networks.lan]
mode = "bridge"
uplink = "eno1"
bridge = { name = "br0", stp = false }
probe = { timeout = "500ms" }
"#;

impl Lan {
    fn new(gateway: bool) -> Lan {
        let env = AgentEnv::new();
        let lan = Netns::new("lan");
        kvmnet_e2e::veth(env.host(), "eno1", &lan, "lan0");
        if gateway {
            lan.add_addr("lan0", "10.77.0.1/24");
        }
        lan.add_addr("lan0", "10.77.0.2/24");
        let host = env.host();
        host.add_addr("eno1", "10.77.0.10/24");
        host.ip_ok(&[
            "route",
            "add",
            "default",
            "via",
            "10.77.0.1",
            "dev",
            "eno1",
            "metric",
            "100",
        ]);
        env.write_config("lan.toml", BRIDGED);
        Lan { env, lan }
    }

    fn host(&self) -> &Netns {
        self.env.host()
    }

    /// The host's addresses and routes (all tables) as `ip -j` shows them,
    /// without the link-level fields that a bridge port change touches.
    fn l3_state(&self) -> String {
        let h = self.host();
        let addrs: serde_json::Value =
            serde_json::from_str(&h.ip_ok(&["-j", "addr", "show"])).unwrap();
        let addrs: Vec<_> = addrs
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["ifname"].clone(), l["addr_info"].clone()))
            .collect();
        let routes = h.ip_ok(&["-j", "route", "show", "table", "all"]);
        let routes6 = h.ip_ok(&["-j", "-6", "route", "show", "table", "all"]);
        format!("{addrs:?}\n{routes}\n{routes6}")
    }
}

#[test]
fn bridged_network_puts_guests_on_the_lan_and_keeps_the_host_there() {
    let t = Lan::new(true);
    let host = t.host();
    let once = t.env.run(&["--once"]);
    once.assert_success();
    assert_eq!(master_of(host, "eno1").as_deref(), Some("br0"));
    let br0 = host.ip_ok(&["addr", "show", "br0"]);
    assert!(br0.contains("inet 10.77.0.10/24"), "{br0}");
    let eno1_mac = |link: &str| -> String {
        let j: serde_json::Value =
            serde_json::from_str(&host.ip_ok(&["-j", "link", "show", link])).unwrap();
        j[0]["address"].as_str().unwrap().to_string()
    };
    assert_eq!(
        eno1_mac("br0"),
        eno1_mac("eno1"),
        "br0 has the uplink's MAC"
    );
    let default = host.ip_ok(&["route", "show", "default"]);
    assert!(
        default.contains("via 10.77.0.1 dev br0") && default.contains("metric 100"),
        "{default}"
    );
    assert!(ping_ok(host, "10.77.0.2"), "host reaches the peer");
    assert!(ping_ok(host, "10.77.0.1"), "host reaches the gateway");

    let vm = Netns::new("vm");
    attach_to_bridge(host, "br0", &vm, "eth0");
    vm.add_addr("eth0", "10.77.0.50/24");
    assert!(ping_ok(&vm, "10.77.0.2"), "VM reaches the peer");
    assert!(ping_ok(&t.lan, "10.77.0.50"), "the peer reaches the VM");
    assert!(ping_ok(&vm, "10.77.0.10"), "VM reaches the host");

    let again = t.env.run(&["--once", "--output", "json"]);
    again.assert_success();
    let report = again.json();
    assert_eq!(report["writes"], 0, "in sync: no write\n{again}");
    t.env.run(&["--check"]).assert_code(0);
    let show = t.env.run(&["show", "lan"]);
    show.assert_success();
    let text = show.stdout();
    assert!(
        text.contains("uplink     eno1 enslaved                    eno1 enslaved"),
        "{text}"
    );
    assert!(
        text.contains("LAN addresses on the bridge (moved from eno1): 10.77.0.10/24"),
        "{text}"
    );
    assert!(
        text.contains("0.0.0.0/0 via 10.77.0.1 metric 100"),
        "{text}"
    );
    assert!(!text.contains(" * "), "nothing differs: {text}");
}

#[test]
fn failed_probe_rolls_back_to_the_exact_previous_state() {
    let t = Lan::new(false);
    let before = t.l3_state();
    let once = t.env.run(&["--once"]);
    once.assert_code(1);
    assert!(
        once.stdout()
            .contains("rolled back: gateway 10.77.0.1 did not answer ARP on br0 within 500ms"),
        "{once}"
    );
    assert_eq!(t.l3_state(), before);
    assert_eq!(master_of(t.host(), "eno1"), None);
    assert!(
        !t.host().ip(&["link", "show", "br0"]).success(),
        "br0 is deleted"
    );
    assert!(
        ping_ok(t.host(), "10.77.0.2"),
        "host still reaches the peer"
    );
}

#[test]
fn removing_the_bridged_network_gives_eno1_its_addresses_and_routes_back() {
    let t = Lan::new(true);
    let before = t.l3_state();
    t.env.run(&["--once"]).assert_success();
    assert_ne!(t.l3_state(), before);
    t.env.remove_config("lan.toml");
    // The last network: removing every network is asked for explicitly.
    let once = t.env.run(&["--once", "--allow-empty"]);
    once.assert_success();
    assert!(once.stdout().contains("removed"), "{once}");
    assert_eq!(t.l3_state(), before);
    assert!(
        !t.host().ip(&["link", "show", "br0"]).success(),
        "br0 is deleted"
    );
    assert!(ping_ok(t.host(), "10.77.0.2"), "host reaches the peer");
}

#[test]
fn bridged_bridge_deleted_by_hand_gets_its_guest_port_back() {
    let t = Lan::new(true);
    let host = t.host();
    t.env.run(&["--once"]).assert_success();
    let vm = Netns::new("vm");
    let port = attach_to_bridge(host, "br0", &vm, "eth0");
    vm.add_addr("eth0", "10.77.0.50/24");
    t.env.run(&["--once"]).assert_success();

    host.ip_ok(&["link", "del", "br0"]);
    let repair = t.env.run(&["--once"]);
    repair.assert_success();
    assert_eq!(master_of(host, &port).as_deref(), Some("br0"));
    assert_eq!(master_of(host, "eno1").as_deref(), Some("br0"));
    wait_for(
        "the VM to reach the peer again",
        Duration::from_secs(10),
        || ping_ok(&vm, "10.77.0.2"),
    );
}

#[test]
fn an_unmanaged_bridge_is_observed_and_reported_never_changed() {
    let env = AgentEnv::new();
    let host = env.host();
    let lan = Netns::new("lan");
    kvmnet_e2e::veth(host, "eno1", &lan, "lan0");
    // Made by someone else (NetworkManager, networkd, by hand).
    host.sh_ok("ip link add br0 type bridge && ip link set eno1 master br0 && ip link set br0 up");
    env.write_config(
        "lan.toml",
        "[networks.lan]\nmode = \"bridge\"\nuplink = \"eno1\"\nbridge = { name = \"br0\", managed = false }\n",
    );
    let once = env.run(&["--once"]);
    once.assert_success();
    assert!(once.stdout().contains(", 0 write(s)"), "{once}");

    host.ip_ok(&["link", "set", "br0", "down"]);
    let check = env.run(&["--check"]);
    check.assert_code(2);
    assert!(
        check
            .stdout()
            .contains("~ bridge br0 state: wanted up, found down"),
        "{check}"
    );
    let once = env.run(&["--once"]);
    once.assert_code(1);
    assert!(
        once.stdout().contains(", 0 write(s)"),
        "reported, never changed: {once}"
    );
    let link = host.ip_ok(&["link", "show", "br0"]);
    assert!(link.contains("state DOWN"), "{link}");
    assert!(!link.contains("alias"), "{link}");
}

#[test]
fn daemon_learns_a_guest_port_from_its_event_and_reattaches_it() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    // A long interval: learning and repair must come from kernel events.
    let _daemon = env.spawn(&["--interval", "1h"]);
    let host = env.host();
    let wait = Duration::from_secs(10);
    wait_for("virbr-nat created", wait, || {
        host.ip(&["link", "show", "virbr-nat"]).success()
    });
    let vm = Netns::new("vm");
    let port = attach_to_bridge(host, "virbr-nat", &vm, "eth0");
    let memory = env.state_dir().join("ports.json");
    wait_for("the port remembered", wait, || {
        std::fs::read_to_string(&memory).is_ok_and(|m| m.contains(&port))
    });
    host.ip_ok(&["link", "del", "virbr-nat"]);
    wait_for("the port enslaved to the recreated bridge", wait, || {
        host.ip(&["link", "show", "virbr-nat"]).success()
            && master_of(host, &port).as_deref() == Some("virbr-nat")
    });
}

#[test]
fn renaming_the_bridge_moves_the_uplink_over_in_one_pass() {
    let t = Lan::new(true);
    t.env.run(&["--once"]).assert_success();
    t.env
        .write_config("lan.toml", &BRIDGED.replace("\"br0\"", "\"br-lan\""));
    let once = t.env.run(&["--once"]);
    once.assert_success();
    let host = t.host();
    assert_eq!(master_of(host, "eno1").as_deref(), Some("br-lan"));
    assert!(
        !host.ip(&["link", "show", "br0"]).success(),
        "br0 is deleted"
    );
    let default = host.ip_ok(&["route", "show", "default"]);
    assert!(
        default.contains("via 10.77.0.1 dev br-lan metric 100"),
        "{default}"
    );
    assert!(ping_ok(host, "10.77.0.2"), "host reaches the peer");
}

#[test]
fn a_dynamic_uplink_address_is_refused_and_nothing_changes() {
    let env = AgentEnv::new();
    let host = env.host();
    let lan = Netns::new("lan");
    kvmnet_e2e::veth(host, "eno1", &lan, "lan0");
    // With lifetimes, as a DHCP client sets it: not permanent.
    host.ip_ok(&[
        "addr",
        "add",
        "10.77.0.10/24",
        "dev",
        "eno1",
        "valid_lft",
        "3600",
        "preferred_lft",
        "3600",
    ]);
    env.write_config("lan.toml", BRIDGED);
    let once = env.run(&["--once"]);
    once.assert_code(1);
    assert!(
        once.stdout()
            .contains("uplink eno1 has dynamic address(es) 10.77.0.10/24"),
        "{once}"
    );
    assert!(once.stdout().contains(", 0 write(s)"), "{once}");
    assert_eq!(master_of(host, "eno1"), None);
}
