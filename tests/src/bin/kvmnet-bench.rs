//! Benchmarks of kvmnet-agent against the real kernel, inside throwaway
//! network namespaces, for N NAT networks with DHCP each. Prints a table.
//!
//! ```sh
//! cargo build --release -p kvmnet -p kvmnet-e2e
//! sudo target/release/kvmnet-bench [--sizes 1,50,500] [--tries 5] [--latency-tries 20] [--idle-secs 60] [--overlays 50]
//! ```
//!
//! `--overlays N` (default 50, 0 skips it) also compares the converge time
//! of N overlay networks (VXLAN, 3 peers each, this host the gateway) with
//! that of N plain NAT networks.
//!
//! Namespaces are created and deleted outside the timed parts (a deleted
//! namespace is torn down by the kernel asynchronously and would stall the
//! next measurement).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kvmnet_e2e::{wait_for, AgentEnv, Netns, Signal};

struct Options {
    sizes: Vec<usize>,
    tries: usize,
    latency_tries: usize,
    idle: Duration,
    overlays: usize,
}

fn options() -> Options {
    let mut o = Options {
        sizes: vec![1, 50, 500],
        tries: 5,
        latency_tries: 20,
        idle: Duration::from_secs(60),
        overlays: 50,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--sizes" => {
                o.sizes = value
                    .split(',')
                    .map(|s| s.parse().expect("--sizes 1,50,500"))
                    .collect()
            }
            "--tries" => o.tries = value.parse().expect("--tries N"),
            "--latency-tries" => o.latency_tries = value.parse().expect("--latency-tries N"),
            "--idle-secs" => o.idle = Duration::from_secs(value.parse().expect("--idle-secs N")),
            "--overlays" => o.overlays = value.parse().expect("--overlays N"),
            other => panic!("unknown option {other}; see the doc comment of kvmnet-bench"),
        }
        i += 2;
    }
    o
}

/// Network i: bridge kvb<i>, subnet 10.<i/256>.<i%256>.0/24 with DHCP.
fn network_file(i: usize, mtu: u32) -> String {
    let (a, b) = (i / 256, i % 256);
    format!(
        "[networks.n{i}]\nmode = \"nat\"\nbridge = {{ name = \"kvb{i}\", stp = false, mtu = {mtu} }}\n\
         [[networks.n{i}.ip]]\naddress = \"10.{a}.{b}.1/24\"\n\
         dhcp.ranges = [{{ start = \"10.{a}.{b}.10\", end = \"10.{a}.{b}.250\" }}]\n"
    )
}

/// This host's underlay address and the two other peers of every overlay.
const PEERS: [&str; 3] = ["172.31.0.1", "172.31.0.2", "172.31.0.3"];

/// Network i of [`network_file`] spread over three hosts with VNI i + 1,
/// this host (the first peer) its gateway. Its MTU leaves room for VXLAN.
fn overlay_file(i: usize) -> String {
    let peers = PEERS.map(|p| format!("\"{p}\"")).join(", ");
    format!(
        "{}[networks.n{i}.overlay]\ngateway = \"{}\"\nvxlan = {{ vni = {}, peers = [{peers}] }}\n",
        network_file(i, 1450),
        PEERS[0],
        i + 1
    )
}

/// Median converge times of `n` plain NAT networks and of `n` overlay
/// networks (measured in turns, in alternating order), and the writes of a
/// second pass over the overlays.
fn measure_overlays(o: &Options, n: usize) -> (Duration, Duration, u64) {
    let (mut plain, mut overlay) = (vec![], vec![]);
    let mut noop_writes = 0;
    // Every namespace lives until all is measured: the kernel tears a
    // deleted one down asynchronously, which would stall the next try.
    let mut envs = vec![];
    for t in 0..o.tries * 2 {
        let env = AgentEnv::new();
        let overlays = (t % 2 == 0) == (t % 4 < 2);
        if overlays {
            let h = env.host();
            h.ip_ok(&[
                "link", "add", "under0", "type", "veth", "peer", "name", "under1",
            ]);
            h.set_up("under0");
            h.add_addr("under0", &format!("{}/24", PEERS[0]));
            for i in 0..n {
                env.write_config(&format!("n{i}.toml"), &overlay_file(i));
            }
        } else {
            write_networks(&env, n);
        }
        let (time, writes) = timed(&env, &["--once"]);
        assert!(writes > 0);
        if overlays {
            overlay.push(time);
            let links = env.host().ip_ok(&["-o", "link", "show", "type", "vxlan"]);
            assert_eq!(links.lines().count(), n, "every overlay converged: {links}");
            let (_, writes) = timed(&env, &["--once"]);
            noop_writes = noop_writes.max(writes);
        } else {
            plain.push(time);
        }
        envs.push(env);
    }
    (median(plain), median(overlay), noop_writes)
}

fn write_networks(env: &AgentEnv, n: usize) {
    for i in 0..n {
        env.write_config(&format!("n{i}.toml"), &network_file(i, 1500));
    }
}

fn remove_networks(env: &AgentEnv, n: usize) {
    for i in 0..n {
        env.remove_config(&format!("n{i}.toml"));
    }
}

/// Runs the agent once and returns (wall time, writes from the JSON report).
fn timed(env: &AgentEnv, args: &[&str]) -> (Duration, u64) {
    let mut full = args.to_vec();
    full.extend(["--output", "json"]);
    let start = Instant::now();
    let out = env.run(&full);
    let elapsed = start.elapsed();
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout()).unwrap_or_else(|e| panic!("{e}: {out}"));
    (elapsed, report["writes"].as_u64().unwrap_or(0))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

struct Row {
    n: usize,
    converge: Duration,
    floor: Duration,
    noop: Duration,
    noop_writes: u64,
    check: Duration,
    teardown: Duration,
    teardown_floor: Duration,
    repair: (Duration, Duration),
    file_change: (Duration, Duration),
    rss_kib: u64,
    idle_cpu_percent: f64,
}

fn measure_once_paths(o: &Options, n: usize) -> (Duration, Duration, u64, Duration, Duration) {
    let (mut converge, mut noop, mut check, mut teardown) = (vec![], vec![], vec![], vec![]);
    let mut noop_writes = 0;
    for _ in 0..o.tries {
        let env = AgentEnv::new();
        write_networks(&env, n);
        let (t, writes) = timed(&env, &["--once"]);
        assert!(writes > 0);
        converge.push(t);
        let (t, writes) = timed(&env, &["--once"]);
        noop.push(t);
        noop_writes = noop_writes.max(writes);
        let start = Instant::now();
        env.run(&["--check"]).assert_code(0);
        check.push(start.elapsed());
        remove_networks(&env, n);
        // Removing every network is refused without --allow-empty.
        let (t, writes) = timed(&env, &["--once", "--allow-empty"]);
        assert!(writes > 0, "the teardown removed nothing");
        teardown.push(t);
        // The namespace is deleted here, outside the timed parts.
    }
    (
        median(converge),
        median(noop),
        noop_writes,
        median(check),
        median(teardown),
    )
}

fn link_mtu(ns: &Netns, link: &str) -> Option<u32> {
    let out = ns.ip(&["-o", "link", "show", link]);
    if !out.success() {
        return None;
    }
    let text = out.stdout();
    let rest = &text[text.find(" mtu ")? + 5..];
    rest.split_whitespace().next()?.parse().ok()
}

/// (repair p50, p95), (file change p50, p95), RSS KiB, idle CPU %.
fn measure_daemon(o: &Options, n: usize) -> ((Duration, Duration), (Duration, Duration), u64, f64) {
    let env = AgentEnv::new();
    write_networks(&env, n);
    let mut daemon = env.spawn(&["--interval", "1h"]);
    let status = env.run_dir().join("status.json");
    wait_for("daemon converged", Duration::from_secs(120), || {
        std::fs::read_to_string(&status).is_ok_and(|s| s.contains("\"result\": \"converged\""))
    });
    let h = env.host();
    let last = format!("kvb{}", n - 1);

    let mut repair = vec![];
    for _ in 0..o.latency_tries {
        h.ip_ok(&["link", "del", &last]);
        let start = Instant::now();
        while link_mtu(h, &last) != Some(1500) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "bridge not repaired"
            );
        }
        repair.push(start.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }

    let mut file_change = vec![];
    for t in 0..o.latency_tries {
        let mtu = if t % 2 == 0 { 1400 } else { 1500 };
        let start = Instant::now();
        env.write_config(&format!("n{}.toml", n - 1), &network_file(n - 1, mtu));
        while link_mtu(h, &last) != Some(mtu) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "file change not applied"
            );
        }
        file_change.push(start.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }

    // Idle means no pass running: wait until the pass count holds for 2 s.
    let prom = env.state_dir().join("kvmnet.prom");
    let passes = || {
        std::fs::read_to_string(&prom)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("kvmnet_passes_total ")?.parse::<u64>().ok())
    };
    let (mut seen, mut since) = (passes(), Instant::now());
    while since.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
        let now = passes();
        if now != seen {
            (seen, since) = (now, Instant::now());
        }
    }
    let pid = daemon.pid();
    let rss_kib = proc_status_kib(pid, "VmRSS:");
    let cpu_before = cpu_ticks(pid);
    std::thread::sleep(o.idle);
    let cpu_after = cpu_ticks(pid);
    let ticks_per_sec = 100.0; // USER_HZ
    let idle_cpu = (cpu_after - cpu_before) as f64 / ticks_per_sec / o.idle.as_secs_f64() * 100.0;
    assert!(daemon.is_running(), "{}", daemon.stderr());
    daemon.signal(Signal::SIGTERM);
    let _ = daemon.stop(Duration::from_secs(10));
    (
        (percentile(repair.clone(), 0.5), percentile(repair, 0.95)),
        (
            percentile(file_change.clone(), 0.5),
            percentile(file_change, 0.95),
        ),
        rss_kib,
        idle_cpu,
    )
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field overall, stime the 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// The floor: the same bridges and addresses made by one `ip -batch`, a
/// comparable ruleset by one `nft -f`, and N dnsmasq started concurrently;
/// and for teardown, the bridges deleted by one `ip link del group` (the
/// kernel's fastest way: one unregister batch) after the table.
/// Returns (converge floor, teardown floor).
fn measure_floor(o: &Options, n: usize) -> (Duration, Duration) {
    let (mut times, mut teardowns) = (vec![], vec![]);
    for _ in 0..o.tries {
        let ns = Netns::new("floor");
        let dir = tempfile::tempdir().unwrap();
        let (mut batch, mut nft) = (String::new(), String::from("table inet floor {\n"));
        let _ = writeln!(
            nft,
            " chain forward {{ type filter hook forward priority 0; policy accept;"
        );
        for i in 0..n {
            let (a, b) = (i / 256, i % 256);
            let _ = writeln!(batch, "link add kvb{i} type bridge stp_state 0\nlink set kvb{i} mtu 1500 group 77 up\naddr add 10.{a}.{b}.1/24 dev kvb{i}");
            let _ = writeln!(nft, "  iifname \"kvb{i}\" oifname \"kvb{i}\" accept\n  iifname \"kvb{i}\" ip saddr 10.{a}.{b}.0/24 accept\n  oifname \"kvb{i}\" ip daddr 10.{a}.{b}.0/24 ct state established,related accept\n  iifname \"kvb{i}\" reject\n  oifname \"kvb{i}\" reject");
        }
        nft.push_str(" }\n chain post { type nat hook postrouting priority 100;\n");
        for i in 0..n {
            let (a, b) = (i / 256, i % 256);
            let _ = writeln!(
                nft,
                "  ip saddr 10.{a}.{b}.0/24 ip daddr != 10.{a}.{b}.0/24 masquerade"
            );
        }
        nft.push_str(" }\n}\n");
        let batch_file = dir.path().join("batch");
        let nft_file = dir.path().join("rules.nft");
        std::fs::write(&batch_file, batch).unwrap();
        std::fs::write(&nft_file, nft).unwrap();
        let confs: Vec<PathBuf> = (0..n)
            .map(|i| {
                let (a, b) = (i / 256, i % 256);
                let conf = dir.path().join(format!("d{i}.conf"));
                let text = format!(
                    "strict-order\nno-resolv\nbind-dynamic\nexcept-interface=lo\ninterface=kvb{i}\n\
                     dhcp-range=10.{a}.{b}.10,10.{a}.{b}.250,255.255.255.0\ndhcp-no-override\n\
                     dhcp-authoritative\npid-file={}\ndhcp-leasefile={}\n",
                    dir.path().join(format!("d{i}.pid")).display(),
                    dir.path().join(format!("d{i}.leases")).display()
                );
                std::fs::write(&conf, text).unwrap();
                conf
            })
            .collect();

        let start = Instant::now();
        ns.exec_ok("ip", &["-batch", batch_file.to_str().unwrap()]);
        ns.exec_ok("nft", &["-f", nft_file.to_str().unwrap()]);
        let mut children: Vec<_> = confs
            .iter()
            .map(|conf| {
                ns.command(
                    "dnsmasq",
                    &[&format!("--conf-file={}", conf.display()), "--user=root"],
                )
                .spawn()
                .expect("start dnsmasq")
            })
            .collect();
        for c in &mut children {
            // dnsmasq forks into the background once its sockets are bound.
            c.wait().expect("dnsmasq started");
        }
        times.push(start.elapsed());

        let start = Instant::now();
        ns.exec_ok("nft", &["delete", "table", "inet", "floor"]);
        ns.exec_ok("ip", &["link", "del", "group", "77"]);
        teardowns.push(start.elapsed());
        // Dropping the namespace kills the dnsmasq instances, untimed.
    }
    (median(times), median(teardowns))
}

fn main() {
    kvmnet_e2e::require_root();
    let o = options();
    if std::env::var_os("KVMNET_AGENT_BIN").is_none() {
        let exe = std::env::current_exe().expect("locate kvmnet-bench");
        let bin = exe.with_file_name("kvmnet-agent");
        assert!(
            bin.is_file(),
            "build the agent first: cargo build --release -p kvmnet"
        );
        std::env::set_var("KVMNET_AGENT_BIN", bin);
    }

    let mut rows = vec![];
    for &n in &o.sizes {
        eprintln!("measuring N = {n} ...");
        let (converge, noop, noop_writes, check, teardown) = measure_once_paths(&o, n);
        let (floor, teardown_floor) = measure_floor(&o, n);
        let (repair, file_change, rss_kib, idle_cpu_percent) = measure_daemon(&o, n);
        rows.push(Row {
            n,
            converge,
            floor,
            noop,
            noop_writes,
            check,
            teardown,
            teardown_floor,
            repair,
            file_change,
            rss_kib,
            idle_cpu_percent,
        });
    }

    println!(
        "{:>5} {:>10} {:>9} {:>6} {:>9} {:>6} {:>9} {:>10} {:>10} {:>14} {:>14} {:>8} {:>9}",
        "N",
        "converge",
        "floor",
        "ratio",
        "no-op",
        "writes",
        "check",
        "teardown",
        "td floor",
        "repair p50/95",
        "file p50/95",
        "RSS MiB",
        "idle CPU"
    );
    for r in &rows {
        println!(
            "{:>5} {:>8}ms {:>7}ms {:>6.2} {:>7}ms {:>6} {:>7}ms {:>8}ms {:>8}ms {:>14} {:>14} {:>8.1} {:>8.3}%",
            r.n,
            ms(r.converge),
            ms(r.floor),
            r.converge.as_secs_f64() / r.floor.as_secs_f64(),
            ms(r.noop),
            r.noop_writes,
            ms(r.check),
            ms(r.teardown),
            ms(r.teardown_floor),
            format!("{}/{}ms", ms(r.repair.0), ms(r.repair.1)),
            format!("{}/{}ms", ms(r.file_change.0), ms(r.file_change.1)),
            r.rss_kib as f64 / 1024.0,
            r.idle_cpu_percent
        );
    }
    if o.overlays > 0 {
        let n = o.overlays;
        eprintln!("measuring {n} overlay networks against {n} plain NAT networks ...");
        let (plain, overlay, noop_writes) = measure_overlays(&o, n);
        println!(
            "{n} overlay networks (VXLAN, 3 peers each): converge {} ms against {} ms for {n} plain NAT networks ({:.2}x); writes of a second pass: {noop_writes}",
            ms(overlay),
            ms(plain),
            overlay.as_secs_f64() / plain.as_secs_f64()
        );
    }
    // The agent runs under `ip netns exec`, as an operator would run it in
    // a namespace; its cost is part of every `--once`/`--check` time above.
    let ns = Netns::new("exec");
    let exec: Vec<Duration> = (0..20)
        .map(|_| {
            let start = Instant::now();
            ns.exec_ok("true", &[]);
            start.elapsed()
        })
        .collect();
    println!(
        "`ip netns exec` alone: {} ms (included in converge, no-op, check and teardown)",
        ms(median(exec))
    );
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        if last.n > first.n {
            let per = |r: &Row| r.converge.as_secs_f64() * 1000.0 / r.n as f64;
            println!(
                "converge per network: {:.2} ms at N={}, {:.2} ms at N={}",
                per(first),
                first.n,
                per(last),
                last.n
            );
        }
    }
}
