//! Networks across hosts: three host namespaces joined by an underlay
//! namespace (a bridge), each running the agent with the same file; a guest
//! namespace on each host.

use std::time::{Duration, Instant};

use kvmnet_e2e::{
    attach_to_bridge, dhcp_lease, ping_ok, veth, wait_for, wait_for_value, AgentEnv, DhcpLease,
    Netns, Signal, Underlay,
};

/// A NAT network over the three hosts 10.200.0.1-3; the first holds its
/// layer 3. STP off: a new port forwards at once.
const FLEET: &str = r#"
[networks.fleet]
mode = "nat"
bridge = { name = "kvo", stp = false }
overlay.gateway = "10.200.0.1"
overlay.vxlan = { vni = 4242, peers = ["10.200.0.1", "10.200.0.2", "10.200.0.3"] }
[[networks.fleet.ip]]
address = "192.168.70.1/24"
dhcp.ranges = [{ start = "192.168.70.100", end = "192.168.70.150" }]
"#;

const WAIT: Duration = Duration::from_secs(10);

/// `count` hosts on one underlay, the i-th (from 1) at 10.200.0.i, each
/// with `config` written.
fn fleet(underlay: &Underlay, count: u8, config: &str) -> Vec<AgentEnv> {
    (1..=count)
        .map(|i| {
            let env = AgentEnv::new();
            underlay.join(env.host(), "eth0", &format!("10.200.0.{i}/24"));
            env.write_config("fleet.toml", config);
            env
        })
        .collect()
}

/// A guest on `host`'s bridge kvo with `mac`, configured from its lease.
fn guest(host: &AgentEnv, mac: &str) -> (Netns, String, DhcpLease) {
    let vm = Netns::new("vm");
    let port = attach_to_bridge(host.host(), "kvo", &vm, "eth0");
    vm.ip_ok(&["link", "set", "eth0", "address", mac]);
    let lease = dhcp_lease(&vm, "eth0", None).expect("a lease over the overlay");
    configure(&vm, &lease);
    (vm, port, lease)
}

fn configure(vm: &Netns, lease: &DhcpLease) {
    vm.add_addr("eth0", &format!("{}/24", lease.ip));
    let router = lease.router.as_deref().expect("a router offered");
    vm.ip_ok(&["route", "replace", "default", "via", router]);
}

fn has_address(host: &Netns, address: &str) -> bool {
    host.ip_ok(&["-o", "addr", "show", "dev", "kvo"])
        .contains(address)
}

fn dnsmasq_runs(env: &AgentEnv) -> bool {
    env.run_dir().join("dnsmasq/fleet.pid").exists()
}

/// The remote peers of vx-fleet's flood entries.
fn flood_remotes(host: &Netns) -> Vec<String> {
    let out = host
        .exec("bridge", &["fdb", "show", "dev", "vx-fleet"])
        .assert_success()
        .stdout();
    let mut remotes: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with("00:00:00:00:00:00 dst "))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    remotes.sort();
    remotes
}

#[test]
fn guests_on_three_hosts_share_the_gateways_dhcp_routing_and_nat() {
    let underlay = Underlay::new();
    let hosts = fleet(&underlay, 3, FLEET);
    // A LAN behind the gateway host, reached through its NAT.
    let lan = Netns::new("lan");
    veth(hosts[0].host(), "lan0", &lan, "eth0");
    hosts[0].host().add_addr("lan0", "10.250.0.1/24");
    lan.add_addr("eth0", "10.250.0.2/24");
    for h in &hosts {
        h.run(&["--once"]).assert_success();
    }
    for h in &hosts {
        h.run(&["--check"]).assert_code(0);
    }

    // Layer 3 on the gateway only; the bridge MTU leaves room for VXLAN.
    assert!(has_address(hosts[0].host(), "192.168.70.1/24"));
    assert!(dnsmasq_runs(&hosts[0]));
    let conf = std::fs::read_to_string(hosts[0].run_dir().join("dnsmasq/fleet.conf")).unwrap();
    assert!(
        conf.contains("dhcp-option=option:mtu,1450"),
        "DHCP offers the overlay's MTU: {conf}"
    );
    for h in &hosts[1..] {
        assert!(
            !has_address(h.host(), "inet "),
            "no address off the gateway"
        );
        assert!(!dnsmasq_runs(h), "no dnsmasq off the gateway");
        let rules = h.host().exec("nft", &["list", "table", "inet", "kvmnet"]);
        assert!(
            !rules.stdout().contains("fleet"),
            "no firewall rules off the gateway: {rules}"
        );
    }
    for h in &hosts {
        let link = h.host().ip_ok(&["-d", "link", "show", "kvo"]);
        assert!(link.contains("mtu 1450"), "{link}");
        let vx = h.host().ip_ok(&["-d", "link", "show", "vx-fleet"]);
        assert!(
            vx.contains("vxlan id 4242") && vx.contains("master kvo"),
            "{vx}"
        );
    }
    assert_eq!(flood_remotes(hosts[1].host()), ["10.200.0.1", "10.200.0.3"]);

    let (vm1, _, lease1) = guest(&hosts[0], "52:54:00:00:70:01");
    let (vm2, _, lease2) = guest(&hosts[1], "52:54:00:00:70:02");
    let (vm3, port3, lease3) = guest(&hosts[2], "52:54:00:00:70:03");
    for lease in [&lease1, &lease2, &lease3] {
        assert!(lease.ip.starts_with("192.168.70.1"), "{lease:?}");
        assert_eq!(lease.router.as_deref(), Some("192.168.70.1"));
    }
    for target in ["192.168.70.1", &lease1.ip, &lease3.ip, "10.250.0.2"] {
        assert!(ping_ok(&vm2, target), "guest on host 2 reaches {target}");
    }
    assert!(ping_ok(&vm3, &lease1.ip));

    // The guest on host 3 moves to host 2: same MAC, same address.
    hosts[2].host().ip_ok(&["link", "del", &port3]);
    attach_to_bridge(hosts[1].host(), "kvo", &vm3, "eth0");
    vm3.ip_ok(&["link", "set", "eth0", "address", "52:54:00:00:70:03"]);
    configure(&vm3, &lease3);
    for target in ["192.168.70.1", &lease1.ip, &lease2.ip, "10.250.0.2"] {
        assert!(ping_ok(&vm3, target), "moved guest reaches {target}");
    }
    assert!(ping_ok(&vm1, &lease3.ip), "the moved guest is reached");

    // The gateway moves to host 2: address, dnsmasq and rules follow.
    let moved = FLEET.replace(
        "overlay.gateway = \"10.200.0.1\"",
        "overlay.gateway = \"10.200.0.2\"",
    );
    for h in &hosts {
        h.write_config("fleet.toml", &moved);
        h.run(&["--once"]).assert_success();
    }
    assert!(!has_address(hosts[0].host(), "inet "));
    assert!(!dnsmasq_runs(&hosts[0]));
    assert!(has_address(hosts[1].host(), "192.168.70.1/24"));
    assert!(dnsmasq_runs(&hosts[1]));
    for h in &hosts {
        h.run(&["--check"]).assert_code(0);
    }
    // The leases stay on the old gateway: each guest asks the new one for
    // its address again, as after a reboot (without it configured, or
    // dnsmasq's ping check would find it taken), and gets it.
    for (vm, lease) in [(&vm1, &lease1), (&vm2, &lease2), (&vm3, &lease3)] {
        vm.ip_ok(&["addr", "flush", "dev", "eth0"]);
        // dnsmasq pings an address before offering it: a few seconds.
        let renewed = wait_for_value("a lease from the new gateway", WAIT * 3, || {
            dhcp_lease(vm, "eth0", Some(&lease.ip))
        });
        assert_eq!(renewed.ip, lease.ip);
        configure(vm, &renewed);
        assert!(
            ping_ok(vm, "192.168.70.1"),
            "{} reaches the gateway",
            lease.ip
        );
    }
    // Out through the new gateway's NAT, onto its underlay.
    assert!(ping_ok(&vm1, "10.200.0.3"));
}

#[test]
fn faults_are_reported_and_repaired_and_a_removed_peer_loses_only_its_entry() {
    let underlay = Underlay::new();
    // Host 2 of the fleet: not the gateway.
    let env = AgentEnv::new();
    underlay.join(env.host(), "eth0", "10.200.0.2/24");
    env.write_config("fleet.toml", FLEET);
    env.run(&["--once"]).assert_success();
    let h = env.host();

    type Fault = (&'static str, &'static [&'static str], &'static str);
    let faults: [Fault; 3] = [
        (
            "ip",
            &["link", "del", "vx-fleet"],
            "+ vxlan vx-fleet: missing",
        ),
        (
            "bridge",
            &[
                "fdb",
                "del",
                "00:00:00:00:00:00",
                "dev",
                "vx-fleet",
                "dst",
                "10.200.0.3",
                "self",
            ],
            "+ fdb 10.200.0.3 on vx-fleet: missing",
        ),
        ("ip", &["link", "del", "kvo"], "+ bridge kvo: missing"),
    ];
    let in_sync = |h: &Netns| {
        h.ip(&["-d", "link", "show", "vx-fleet"])
            .stdout()
            .contains("master kvo state")
            && flood_remotes(h) == ["10.200.0.1", "10.200.0.3"]
    };
    // `show` lists the peers and whether each flood entry is there.
    let peer_line = |show: &str, peer: &str| -> String {
        show.lines()
            .find(|l| l.contains(" peer ") && l.contains(peer))
            .unwrap_or_else(|| panic!("no peer {peer} in {show}"))
            .to_string()
    };
    let show = env.run(&["show", "fleet"]).assert_success().stdout();
    assert!(
        show.contains("VXLAN vx-fleet (VNI 4242) up, port of kvo; this host: layer 2"),
        "{show}"
    );
    assert!(
        peer_line(&show, "10.200.0.2").ends_with("this host"),
        "{show}"
    );
    assert!(
        peer_line(&show, "10.200.0.3").ends_with("flood entry present"),
        "{show}"
    );
    for (program, args, drift) in faults {
        h.exec_ok(program, args);
        let check = env.run(&["--check"]);
        check.assert_code(2);
        assert!(check.stdout().contains(drift), "{drift}: {check}");
        if drift.starts_with("+ fdb") {
            let show = env.run(&["show", "fleet"]).stdout();
            let line = peer_line(&show, "10.200.0.3");
            assert!(
                line.starts_with(" *") && line.ends_with("flood entry missing"),
                "{show}"
            );
        }
        env.run(&["--once"]).assert_success();
        assert!(in_sync(h), "{drift} repaired by --once");
    }

    let mut daemon = env.spawn(&["--interval", "1h"]);
    wait_for("the daemon's first pass", WAIT, || {
        env.run_dir().join("status.json").exists()
    });
    let mut slowest = Duration::ZERO;
    for (program, args, drift) in faults {
        h.exec_ok(program, args);
        let start = Instant::now();
        wait_for(&format!("the daemon repairs {drift}"), WAIT, || in_sync(h));
        slowest = slowest.max(start.elapsed());
    }
    eprintln!("slowest repair by the daemon: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "repairs take under a second: {slowest:?}"
    );

    // A peer leaves the file: only its flood entry goes.
    let index = |h: &Netns| h.ip_ok(&["-o", "link", "show", "vx-fleet"]);
    let before = index(h);
    env.write_config("fleet.toml", &FLEET.replace(", \"10.200.0.3\"]", "]"));
    wait_for("10.200.0.3's flood entry removed", WAIT, || {
        flood_remotes(h) == ["10.200.0.1"]
    });
    assert_eq!(
        index(h).split(':').next(),
        before.split(':').next(),
        "vx-fleet kept (same ifindex)"
    );
    assert!(daemon.is_running(), "{}", daemon.stderr());
    daemon.signal(Signal::SIGTERM);
    daemon.stop(WAIT).assert_success();
}
