//! Under faults: an agent killed at any point of a pass, two agents at once,
//! damaged state files, a config directory emptied or rewritten under the
//! daemon, and no `nft`. Each ends converged, without destroying anything
//! by accident and without signalling anything that is not kvmnet's.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kvmnet_e2e::{wait_for, AgentEnv, Netns, Signal};

const WAIT: Duration = Duration::from_secs(20);

/// `count` NAT networks `n00`.. with DHCP (so each runs a dnsmasq), one file
/// each.
fn write_nat_networks(env: &AgentEnv, count: usize) {
    for i in 0..count {
        env.write_config(&format!("n{i:02}.toml"), &nat_network(i));
    }
}

fn nat_network(i: usize) -> String {
    format!(
        "[networks.n{i:02}]\nmode = \"nat\"\nbridge = {{ stp = false }}\n\
         [[networks.n{i:02}.ip]]\naddress = \"10.77.{i}.1/24\"\n\
         dhcp.ranges = [{{ start = \"10.77.{i}.10\", end = \"10.77.{i}.99\" }}]\n"
    )
}

/// The dnsmasq processes running `env`'s configuration of each network,
/// found by their command line (not by pid files), children of another
/// such process aside.
fn dnsmasq_by_network(env: &AgentEnv) -> BTreeMap<String, Vec<i32>> {
    let run = env.run_dir().join("dnsmasq");
    let prefix = format!("--conf-file={}/", run.display());
    let mut found: BTreeMap<String, Vec<(i32, i32)>> = BTreeMap::new();
    for pid in env.host().pids() {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.first().is_some_and(|a| a.ends_with("dnsmasq")) {
            continue;
        }
        let Some(network) = args.iter().find_map(|a| {
            a.strip_prefix(&prefix)?
                .strip_suffix(".conf")
                .map(str::to_string)
        }) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        found.entry(network).or_default().push((pid, parent));
    }
    found
        .into_iter()
        .map(|(network, procs)| {
            let pids = procs
                .iter()
                .filter(|(_, parent)| !procs.iter().any(|(p, _)| p == parent))
                .map(|(pid, _)| *pid)
                .collect();
            (network, pids)
        })
        .collect()
}

/// Bridges named `kv-*` with the alias kvmnet marks its own with, and those
/// without it.
fn kv_bridges(host: &Netns) -> (Vec<String>, Vec<String>) {
    let json: serde_json::Value =
        serde_json::from_str(&host.ip_ok(&["-j", "-d", "link", "show", "type", "bridge"])).unwrap();
    let mut owned = Vec::new();
    let mut unowned = Vec::new();
    for link in json.as_array().unwrap() {
        let name = link["ifname"].as_str().unwrap().to_string();
        if !name.starts_with("kv-") {
            continue;
        }
        let network = name.trim_start_matches("kv-");
        if link["ifalias"].as_str() == Some(&format!("kvmnet:{network}")) {
            owned.push(name);
        } else {
            unowned.push(name);
        }
    }
    (owned, unowned)
}

/// Every one of `count` networks converged: exactly one dnsmasq each,
/// recorded in its pid file, every bridge owned, and a check finds nothing.
#[track_caller]
fn assert_converged(env: &AgentEnv, count: usize, context: &str) {
    let dnsmasq = dnsmasq_by_network(env);
    assert_eq!(dnsmasq.len(), count, "{context}: {dnsmasq:?}");
    for (network, pids) in &dnsmasq {
        assert_eq!(pids.len(), 1, "{context}: {network} runs {pids:?}");
        let pid_file = env.run_dir().join(format!("dnsmasq/{network}.pid"));
        let recorded = std::fs::read_to_string(&pid_file).unwrap_or_default();
        assert_eq!(recorded.trim(), pids[0].to_string(), "{context}: {network}");
    }
    let (owned, unowned) = kv_bridges(env.host());
    assert!(unowned.is_empty(), "{context}: unowned {unowned:?}");
    assert_eq!(owned.len(), count, "{context}: {owned:?}");
    let check = env.run(&["--check"]);
    assert_eq!(check.code(), Some(0), "{context}\n{check}");
}

/// Kills the agent started with `args` after `delay`; whether it finished
/// first does not matter.
fn kill_after(env: &AgentEnv, args: &[&str], delay: Duration) {
    let agent = env.spawn(args);
    std::thread::sleep(delay);
    agent.signal(Signal::SIGKILL);
    drop(agent);
}

const NETWORKS: usize = 30;

/// How long a whole first pass over the networks takes here, to spread the
/// kill points over all of it.
fn timed_pass() -> Duration {
    let timing = AgentEnv::new();
    write_nat_networks(&timing, NETWORKS);
    let started = Instant::now();
    timing.run(&["--once"]).assert_success();
    let pass = started.elapsed();
    assert_converged(&timing, NETWORKS, "uninterrupted");
    pass
}

/// Kill points, in percent of a whole pass.
const KILL_POINTS: [u32; 8] = [1, 4, 10, 20, 35, 50, 70, 90];

#[test]
fn once_killed_anywhere_in_a_pass_is_converged_by_the_next_once() {
    let pass = timed_pass();
    for percent in KILL_POINTS {
        let env = AgentEnv::new();
        write_nat_networks(&env, NETWORKS);
        let at = pass * percent / 100;
        kill_after(&env, &["--once"], at);
        let context = format!("killed at {at:?} ({percent}% of {pass:?})");
        let once = env.run(&["--once"]);
        assert_eq!(once.code(), Some(0), "{context}\n{once}");
        assert_converged(&env, NETWORKS, &context);
    }
}

#[test]
fn the_daemon_killed_mid_pass_is_converged_by_the_next_daemon() {
    let pass = timed_pass();
    let converge_with_daemon = |env: &AgentEnv, context: &str| {
        // The killed daemon's `nft monitor` dies with it.
        wait_for("no nft monitor left behind", WAIT, || {
            !env.host().pids().iter().any(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.starts_with(b"nft\0monitor"))
            })
        });
        let status = env.run_dir().join("status.json");
        let _ = std::fs::remove_file(&status);
        // --wait: the restart must not race the kernel releasing the killed
        // daemon's lock; a lock that is never released still fails below.
        let daemon = env.spawn(&["--interval", "1h", "--wait"]);
        let deadline = Instant::now() + WAIT;
        while !std::fs::read_to_string(&status)
            .is_ok_and(|s| s.contains("\"result\": \"converged\""))
        {
            assert!(
                Instant::now() < deadline,
                "{context}: no converged pass after the restart\n{}\n{}\nlock held by: {}",
                std::fs::read_to_string(&status).unwrap_or_default(),
                daemon.stderr(),
                lock_holders(&env.run_dir().join("kvmnet.lock"))
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_converged(env, NETWORKS, context);
        daemon.stop(WAIT).assert_success();
    };
    for percent in KILL_POINTS {
        let env = AgentEnv::new();
        write_nat_networks(&env, NETWORKS);
        let at = pass * percent / 100;
        kill_after(&env, &["--interval", "1h"], at);
        converge_with_daemon(&env, &format!("killed at {at:?} ({percent}% of {pass:?})"));
        if percent != 50 {
            continue;
        }
        // Killed in a pass that changes every network's DHCP range (and so
        // restarts every dnsmasq).
        for i in 0..NETWORKS {
            let text = nat_network(i).replace(".99\"", ".199\"");
            env.write_config(&format!("n{i:02}.toml"), &text);
        }
        kill_after(&env, &["--interval", "1h"], at);
        converge_with_daemon(&env, &format!("range change killed at {at:?}"));
        let conf = std::fs::read_to_string(env.run_dir().join("dnsmasq/n07.conf")).unwrap();
        assert!(
            conf.contains("10.77.7.199"),
            "the range change landed: {conf}"
        );
    }
}

#[test]
fn a_bridge_left_without_its_alias_is_adopted_by_its_mac_and_a_foreign_one_is_not() {
    let env = AgentEnv::new();
    write_nat_networks(&env, 1);
    env.run(&["--once"]).assert_success();
    let host = env.host();
    let before = ifindex(host, "kv-n00");
    // What a kill between the creating request and the alias leaves: a
    // bare bridge, down, with the network's MAC and no alias.
    host.ip_ok(&["addr", "flush", "dev", "kv-n00"]);
    host.ip_ok(&["link", "set", "kv-n00", "down", "alias", ""]);
    assert_eq!(kv_bridges(host).1, ["kv-n00"]);
    let once = env.run(&["--once"]);
    once.assert_success();
    assert!(
        once.stdout()
            .contains("done: set alias \"kvmnet:n00\" on kv-n00"),
        "{once}"
    );
    assert_eq!(ifindex(host, "kv-n00"), before, "adopted, not recreated");
    assert_converged(&env, 1, "after the adoption");

    // Somebody else's bridge of that name (the kernel's random MAC).
    host.ip_ok(&["link", "del", "kv-n00"]);
    host.ip_ok(&["link", "add", "kv-n00", "type", "bridge"]);
    let once = env.run(&["--once"]);
    once.assert_code(1);
    assert!(
        once.stdout()
            .contains("bridge name kv-n00 is taken by a bridge kvmnet does not own"),
        "{once}"
    );
    assert_eq!(kv_bridges(host).1, ["kv-n00"], "never taken");
}

#[test]
fn a_second_converging_agent_is_refused_and_read_only_commands_work_beside_it() {
    let env = AgentEnv::new();
    write_nat_networks(&env, 2);
    let status = env.run_dir().join("status.json");
    let daemon = env.spawn(&["--interval", "1h"]);
    wait_for("the daemon's first pass", WAIT, || status.exists());

    let second = env.run(&["--once"]);
    second.assert_code(1);
    assert!(
        second.stderr().contains(&format!(
            "another kvmnet-agent (pid {}) is converging",
            daemon.pid()
        )),
        "{second}"
    );
    let second_daemon = env.run(&["--interval", "1h"]);
    second_daemon.assert_code(1);
    assert!(
        second_daemon.stderr().contains("another kvmnet-agent"),
        "{second_daemon}"
    );

    env.run(&["--check"]).assert_code(0);
    env.run(&["show"]).assert_success();
    env.run(&["leases"]).assert_success();
    env.run(&["validate"]).assert_success();

    // --wait: waits for the holder, then converges.
    let mut waiting = env.spawn(&["--once", "--wait"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        waiting.is_running(),
        "--wait must wait: {}",
        waiting.stderr()
    );
    daemon.stop(WAIT).assert_success();
    wait_for("the waiting agent to finish", WAIT, || {
        !waiting.is_running()
    });
    waiting.stop(WAIT).assert_success();

    let third = env.run(&["--once", "--output", "json"]);
    third.assert_success();
    let report = third.json();
    assert_eq!(report["writes"], 0, "{third}");
    assert_converged(&env, 2, "after the agents");
}

#[test]
fn a_garbled_or_foreign_pid_file_is_repaired_and_nothing_foreign_signalled() {
    let env = AgentEnv::new();
    write_nat_networks(&env, 2);
    env.run(&["--once"]).assert_success();
    let before = dnsmasq_by_network(&env);
    let pid_file = |n: &str| env.run_dir().join(format!("dnsmasq/{n}.pid"));

    std::fs::write(pid_file("n00"), "not a pid\n").unwrap();
    // A process that is not ours, its pid in a pid file: never signalled.
    let mut bystander = env.host().spawn("sleep", &["600"]);
    std::fs::write(pid_file("n01"), format!("{}\n", bystander.pid())).unwrap();

    let check = env.run(&["--check"]);
    check.assert_code(2);
    assert!(check.stdout().contains("pid-file"), "{check}");
    let once = env.run(&["--once"]);
    once.assert_success();
    assert!(
        once.stdout()
            .contains("write the pid file of n00's dnsmasq"),
        "{once}"
    );
    assert_eq!(
        dnsmasq_by_network(&env),
        before,
        "the same processes, adopted"
    );
    assert!(bystander.is_running(), "a foreign process was signalled");
    assert_converged(&env, 2, "after the pid files were repaired");

    // Without any pid file, and the network removed: its dnsmasq is still
    // recognised, and stopped.
    std::fs::remove_file(pid_file("n01")).unwrap();
    env.remove_config("n01.toml");
    env.run(&["--once"]).assert_success();
    assert!(!dnsmasq_by_network(&env).contains_key("n01"));
    assert!(bystander.is_running());
}

#[test]
fn a_killed_dnsmasq_start_leaves_no_orphan() {
    // The pid file is written after dnsmasq starts: a crash in between
    // leaves a running dnsmasq without one. The next pass adopts it.
    let env = AgentEnv::new();
    write_nat_networks(&env, 1);
    env.run(&["--once"]).assert_success();
    std::fs::remove_file(env.run_dir().join("dnsmasq/n00.pid")).unwrap();
    let once = env.run(&["--once"]);
    once.assert_success();
    assert!(!once.stdout().contains("port 53"), "{once}");
    assert_converged(&env, 1, "after a lost pid file");
}

#[test]
fn a_garbled_ports_file_is_reported_in_every_report_and_left_for_repair() {
    let env = AgentEnv::new();
    write_nat_networks(&env, 1);
    env.run(&["--once"]).assert_success();
    let ports = env.state_dir().join("ports.json");
    std::fs::write(&ports, "{\"n00\": [\"vnet").unwrap();
    for args in [
        &["--once", "--output", "json"][..],
        &["--check", "--output", "json"],
    ] {
        let out = env.run(args);
        out.assert_success();
        let report = out.json();
        let warnings = report["warnings"].to_string();
        assert!(
            warnings.contains("cannot read the guest port memory")
                && warnings.contains("ports.json"),
            "{out}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&ports).unwrap(),
        "{\"n00\": [\"vnet",
        "left as it is for repair"
    );
    assert_converged(&env, 1, "with a garbled ports file");
}

const BRIDGED: &str = r#"
[networks.lan]
mode = "bridge"
uplink = "eno1"
bridge = { name = "br0", stp = false }
probe = { timeout = "500ms" }
"#;

#[test]
fn a_garbled_lan_record_is_reported_and_fails_the_take_over_it_would_guide() {
    let env = AgentEnv::new();
    let lan = Netns::new("lan");
    kvmnet_e2e::veth(env.host(), "eno1", &lan, "lan0");
    lan.add_addr("lan0", "10.78.0.1/24");
    let host = env.host();
    host.add_addr("eno1", "10.78.0.10/24");
    host.ip_ok(&["route", "add", "default", "via", "10.78.0.1", "dev", "eno1"]);
    env.write_config("lan.toml", BRIDGED);
    env.run(&["--once"]).assert_success();
    let record = env.state_dir().join("lan/lan.json");
    assert!(record.exists());
    // A second address on the LAN: the record changes, the first version is
    // kept as the previous one.
    host.add_addr("br0", "10.78.0.11/24");
    env.run(&["--once"]).assert_success();
    assert!(std::fs::read_to_string(&record)
        .unwrap()
        .contains("10.78.0.11"));

    // Damaged while the bridge holds the addresses: said, and rewritten
    // from the kernel.
    std::fs::write(&record, "{\"uplink\": \"eno1\", \"addre").unwrap();
    let once = env.run(&["--once", "--output", "json"]);
    once.assert_success();
    let report = once.json();
    assert!(
        report["warnings"]
            .to_string()
            .contains("lan.json is damaged"),
        "{once}"
    );
    assert!(std::fs::read_to_string(&record)
        .unwrap()
        .contains("10.78.0.10"));

    // Damaged, then the bridge deleted by hand (the LAN address goes with
    // it): the network fails loudly instead of taking eno1 over without it.
    std::fs::write(&record, "garbage").unwrap();
    host.ip_ok(&["link", "del", "br0"]);
    let once = env.run(&["--once", "--output", "json"]);
    once.assert_code(1);
    let report = once.json();
    assert!(
        report["warnings"]
            .to_string()
            .contains("lan.json is damaged"),
        "{once}"
    );
    let errors = report["networks"][0]["errors"].to_string();
    assert!(errors.contains("does not take eno1 over"), "{once}");
    assert!(!host.ip(&["link", "show", "br0"]).success(), "no take-over");

    // Its previous version, put back, brings the host's first address back.
    let previous = env.state_dir().join("lan/lan.json.prev");
    std::fs::copy(&previous, &record).unwrap();
    env.run(&["--once"]).assert_success();
    let br0 = host.ip_ok(&["addr", "show", "br0"]);
    assert!(br0.contains("10.78.0.10/24"), "{br0}");
}

#[test]
fn an_emptied_config_directory_removes_nothing_without_allow_empty() {
    let env = AgentEnv::new();
    write_nat_networks(&env, 3);
    env.run(&["--once"]).assert_success();
    // A zero-length file is rejected, not "no networks".
    std::fs::write(env.config_dir().join("n00.toml"), "").unwrap();
    let rejected = env.run(&["--once"]);
    rejected.assert_code(1);
    assert!(
        rejected.stdout().contains("the file is empty"),
        "{rejected}"
    );
    assert_eq!(kv_bridges(env.host()).0.len(), 3, "{rejected}");
    assert_eq!(dnsmasq_by_network(&env).len(), 3, "{rejected}");

    for i in 0..3 {
        env.remove_config(&format!("n{i:02}.toml"));
    }
    let refused = env.run(&["--once"]);
    refused.assert_code(1);
    assert!(
        refused
            .stderr()
            .contains("is empty; refusing to remove 3 network(s)")
            && refused.stderr().contains("--allow-empty"),
        "{refused}"
    );
    assert_eq!(kv_bridges(env.host()).0.len(), 3, "{refused}");
    assert_eq!(dnsmasq_by_network(&env).len(), 3, "{refused}");

    env.run(&["--once", "--allow-empty"]).assert_success();
    assert_eq!(kv_bridges(env.host()), (vec![], vec![]));
    assert!(dnsmasq_by_network(&env).is_empty());
}

fn ifindex(host: &Netns, link: &str) -> Option<u64> {
    let out = host.ip(&["-j", "link", "show", link]);
    let json: serde_json::Value = serde_json::from_str(&out.stdout()).ok()?;
    json[0]["ifindex"].as_u64()
}

#[test]
fn a_config_directory_removed_and_recreated_is_followed_and_removes_nothing() {
    let env = AgentEnv::new();
    write_nat_networks(&env, 2);
    let status = env.run_dir().join("status.json");
    let daemon = env.spawn(&["--interval", "1h"]);
    let converged =
        || std::fs::read_to_string(&status).is_ok_and(|s| s.contains("\"result\": \"converged\""));
    wait_for("the first pass", WAIT, converged);
    let before: Vec<_> = ["kv-n00", "kv-n01"]
        .iter()
        .map(|l| ifindex(env.host(), l))
        .collect();

    let dir = env.config_dir();
    let saved: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::create_dir(&dir).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for (name, bytes) in &saved {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    // A later edit, within a second.
    std::thread::sleep(Duration::from_millis(300));
    env.write_config("n02.toml", &nat_network(2));
    wait_for(
        "the edit in the recreated directory applied",
        Duration::from_secs(1),
        || ifindex(env.host(), "kv-n02").is_some(),
    );
    let after: Vec<_> = ["kv-n00", "kv-n01"]
        .iter()
        .map(|l| ifindex(env.host(), l))
        .collect();
    assert_eq!(after, before, "no bridge was deleted and recreated");
    wait_for("converged", WAIT, converged);
    let out = daemon.stop(WAIT);
    assert!(
        out.stderr().contains("refusing to remove 2 network(s)"),
        "{out}"
    );
    assert!(
        !out.stderr().contains("result=\"done\" \"repaired: delete"),
        "{out}"
    );
    assert_converged(&env, 3, "after the directory came back");
}

#[test]
fn files_rewritten_in_place_never_remove_a_network() {
    let env = AgentEnv::new();
    write_nat_networks(&env, 2);
    let status = env.run_dir().join("status.json");
    let daemon = env.spawn(&["--interval", "1h"]);
    let converged =
        || std::fs::read_to_string(&status).is_ok_and(|s| s.contains("\"result\": \"converged\""));
    wait_for("the first pass", WAIT, converged);
    let before = ifindex(env.host(), "kv-n00");
    let path = env.config_dir().join("n00.toml");
    let text = nat_network(0);
    let end = Instant::now() + Duration::from_secs(10);
    let mut rewrites = 0;
    while Instant::now() < end {
        // Truncate, then write: a reader may see the file empty.
        std::fs::write(&path, &text).unwrap();
        rewrites += 1;
        assert_eq!(
            ifindex(env.host(), "kv-n00"),
            before,
            "after {rewrites} rewrites"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for("converged at the end", WAIT, converged);
    assert_eq!(ifindex(env.host(), "kv-n00"), before);
    daemon.stop(WAIT).assert_success();
    assert_converged(&env, 2, "after the rewrites");
}

#[test]
fn without_nft_forwarding_stays_off_and_the_networks_fail() {
    let env = AgentEnv::new();
    write_nat_networks(&env, 2);
    let host = env.host();
    let ip_forward = || host.exec_ok("cat", &["/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(
        ip_forward().trim(),
        "0",
        "a new namespace starts without forwarding"
    );
    // A PATH with what the agent and the harness run, but no nft.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["ip", "dnsmasq"] {
        let found = which(tool);
        std::os::unix::fs::symlink(&found, bin.path().join(tool)).unwrap();
    }
    let mut once = env.command(&["--once", "--output", "json"]);
    once.env("PATH", bin.path());
    let out = once.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(ip_forward().trim(), "0", "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for network in report["networks"].as_array().unwrap() {
        assert_eq!(network["state"], "failed", "{stdout}");
        assert!(network["errors"].to_string().contains("nft"), "{stdout}");
    }
    // With nft back, it converges and turns forwarding on.
    env.run(&["--once"]).assert_success();
    assert_eq!(ip_forward().trim(), "1");
}

fn which(tool: &str) -> std::path::PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} not found on PATH"))
}

#[test]
fn healthz_says_the_loop_passes_and_readyz_that_the_last_pass_converged() {
    let env = AgentEnv::new();
    write_nat_networks(&env, 1);
    let daemon = env.spawn(&["--interval", "1h", "--metrics-listen", "127.0.0.1:9477"]);
    // busybox wget exits 0 on 200 only.
    let ok = |path: &str| {
        env.host()
            .exec(
                "busybox",
                &["wget", "-qO-", &format!("http://127.0.0.1:9477{path}")],
            )
            .success()
    };
    wait_for("healthz and readyz ok", WAIT, || {
        ok("/healthz") && ok("/readyz")
    });

    // A typo in one file: that network is not converged, the loop is fine.
    env.write_config("n00.toml", &nat_network(0).replace("\"nat\"", "\"nta\""));
    wait_for("readyz failing on the typo", WAIT, || !ok("/readyz"));
    assert!(ok("/healthz"), "a typo is not ill health");
    env.write_config("n00.toml", &nat_network(0));
    wait_for("readyz ok again", WAIT, || ok("/readyz"));

    // Passes that end without a report (refused: the directory is empty).
    env.remove_config("n00.toml");
    wait_for("healthz failing", WAIT, || !ok("/healthz"));
    assert!(!ok("/readyz"));
    let metrics = env.host().exec_ok(
        "busybox",
        &["wget", "-qO-", "http://127.0.0.1:9477/metrics"],
    );
    assert!(
        metrics.contains("network=\"n00\""),
        "n00 is still there: {metrics}"
    );
    daemon.stop(WAIT).assert_success();

    // Removed for good (--allow-empty): reported once, then its series go.
    let status = env.run_dir().join("status.json");
    let _ = std::fs::remove_file(&status);
    let daemon = env.spawn(&[
        "--interval",
        "1h",
        "--allow-empty",
        "--metrics-listen",
        "127.0.0.1:9477",
    ]);
    wait_for("the pass that removes n00", WAIT, || {
        !kv_bridges(env.host()).0.contains(&"kv-n00".to_string()) && status.exists()
    });
    // Any pass after that one no longer knows n00.
    std::fs::remove_file(&status).unwrap();
    daemon.signal(Signal::SIGHUP);
    wait_for("a later pass", WAIT, || status.exists());
    let metrics = env.host().exec_ok(
        "busybox",
        &["wget", "-qO-", "http://127.0.0.1:9477/metrics"],
    );
    assert!(!metrics.contains("network=\"n00\""), "{metrics}");
    assert!(ok("/healthz") && ok("/readyz"));
    daemon.stop(WAIT).assert_success();
}

/// The processes that have `lock` open, for a failure message.
fn lock_holders(lock: &Path) -> String {
    let mut holders = Vec::new();
    for process in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == lock))
        {
            let cmdline = std::fs::read(process.path().join("cmdline")).unwrap_or_default();
            holders.push(format!(
                "{} ({})",
                process.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    holders.join(", ")
}
