//! Hostile input and exposure, against the real agent: a config file
//! linked to a secret elsewhere, a file nested to hurt the parser, a flood
//! of idle and trickling metrics clients under a low open-files limit, and
//! a careless umask.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kvmnet_e2e::{wait_for, AgentEnv, Background, Netns};

const NAT: &str = r#"
[networks.nat-network]
mode = "nat"
bridge = { name = "virbr-nat" }
[[networks.nat-network.ip]]
address = "192.168.10.1/24"
dhcp.ranges = [{ start = "192.168.10.2", end = "192.168.10.99" }]
"#;

const ISOLATED: &str = r#"
[networks.iso]
mode = "isolated"
bridge = { name = "virbr-iso" }
[[networks.iso.ip]]
address = "192.168.30.1/24"
"#;

const WAIT: Duration = Duration::from_secs(10);

/// `cmd` run under `prefix` (`prlimit ...`, `sh -c 'umask ...'`).
fn wrapped(prefix: &[&str], cmd: &Command) -> Command {
    let mut wrapper = Command::new(prefix[0]);
    wrapper
        .args(&prefix[1..])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    wrapper
}

fn exists(env: &AgentEnv, link: &str) -> bool {
    env.host().ip(&["link", "show", link]).success()
}

fn status(env: &AgentEnv) -> String {
    std::fs::read_to_string(env.run_dir().join("status.json")).unwrap_or_default()
}

#[test]
fn a_symlink_to_a_secret_outside_the_directory_is_refused_unread() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    // A root-only file elsewhere, in the shape of /etc/shadow: parsing it
    // would quote its line in the error ("invalid type: string ...").
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("shadow");
    let marker = format!("kvmnet-secret-{}", std::process::id());
    std::fs::write(&secret, format!("root:$6${marker}:19000:0:99999:7:::\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&secret, env.config_dir().join("evil.yaml")).unwrap();

    let validate = env.run(&["validate"]);
    validate.assert_code(1);
    let said = validate.stderr() + &validate.stdout();
    assert!(
        said.contains("evil.yaml") && said.contains("outside the config directory"),
        "{validate}"
    );
    let once = env.run(&["--once", "--output", "json"]);
    let mut daemon = env.spawn(&["--interval", "1h"]);
    wait_for("status.json names evil.yaml", WAIT, || {
        status(&env).contains("evil.yaml")
    });
    assert!(exists(&env, "virbr-nat"), "the good file still applies");
    assert!(daemon.is_running(), "{}", daemon.stderr());
    for (what, text) in [
        ("validate", said),
        ("--once", once.stdout() + &once.stderr()),
        ("status.json", status(&env)),
        ("the daemon's log", daemon.stderr()),
    ] {
        assert!(!text.contains(&marker), "{what} shows the secret:\n{text}");
    }
}

#[test]
fn a_mebibyte_of_nesting_is_refused_at_once_and_repairs_stay_fast() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    let _daemon = env.spawn(&["--interval", "1h"]);
    wait_for("virbr-nat created", WAIT, || exists(&env, "virbr-nat"));

    // 1 MiB of `[`: 17 s for 200 KB before the scan that stops at level 65.
    let deep = env.config_dir().join("deep.yaml");
    std::fs::write(&deep, "[".repeat(1 << 20)).unwrap();
    let started = Instant::now();
    let validate = env.run(&["validate", deep.to_str().unwrap()]);
    let took = started.elapsed();
    validate.assert_code(1);
    assert!(
        validate.stderr().contains("nest deeper than 64 levels"),
        "{validate}"
    );
    assert!(took < Duration::from_secs(1), "validate took {took:?}");

    wait_for("deep.yaml reported", WAIT, || {
        status(&env).contains("deep.yaml")
    });
    // Every pass reads the file again: the repair must not wait on it.
    env.host().ip_ok(&["link", "del", "virbr-nat"]);
    let started = Instant::now();
    wait_for("virbr-nat repaired", WAIT, || exists(&env, "virbr-nat"));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "repair took {took:?}");
}

/// Opens up to `count` TCP connections to `addr` from inside `ns` (a thread
/// that joined its network namespace; the sockets stay there). Once the
/// listener's backlog is full, connecting times out: it stops trying then.
fn connect_in(ns: &Netns, addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let path = PathBuf::from("/run/netns").join(ns.name());
    std::thread::spawn(move || {
        let netns = File::open(&path).expect("open the namespace");
        nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut open = Vec::new();
        let mut failed_in_a_row = 0;
        while open.len() < count && failed_in_a_row < 10 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                Ok(stream) => {
                    open.push(stream);
                    failed_in_a_row = 0;
                }
                Err(_) => failed_in_a_row += 1,
            }
        }
        open
    })
    .join()
    .expect("connecting thread")
}

/// The agent's open-files limit set to 1024 (soft and hard, so that raising
/// the soft one cannot help): 1,100 idle connections and a client sending
/// one byte every 2 s neither starve the passes nor fill the log.
#[test]
fn idle_and_trickling_metrics_clients_cannot_starve_the_passes() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // This test process holds the 1,100 connections itself.
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    assert!(
        hard > 1200,
        "hard open-files limit {hard} is too low for this test"
    );

    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    let addr: SocketAddr = "127.0.0.1:9477".parse().unwrap();
    let agent = env.command(&["--interval", "1h", "--metrics-listen", "127.0.0.1:9477"]);
    let mut daemon = Background::spawn(wrapped(&["prlimit", "--nofile=1024:1024", "--"], &agent));
    wait_for("virbr-nat created", WAIT, || exists(&env, "virbr-nat"));
    let healthz = || {
        env.host()
            .exec(
                "timeout",
                &[
                    "5",
                    "busybox",
                    "wget",
                    "-qO-",
                    "http://127.0.0.1:9477/healthz",
                ],
            )
            .stdout()
    };
    wait_for("healthz ok", WAIT, || healthz() == "ok\n");

    // The trickling client first, so that it holds a slot of its own: one
    // byte every 2 s, each read on its own in time, the request never whole.
    let mut slow = connect_in(env.host(), addr, 1)
        .pop()
        .expect("slow client connects");
    slow.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let trickle = std::thread::spawn(move || {
        let started = Instant::now();
        loop {
            if slow.write_all(b"G").is_err() {
                return started.elapsed();
            }
            match slow.read(&mut [0u8; 64]) {
                Ok(0) => return started.elapsed(),
                Ok(_) => panic!("an answer to a request never completed"),
                // 2 s without an answer: time for the next byte.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return started.elapsed(),
            }
            if started.elapsed() > Duration::from_secs(20) {
                return started.elapsed();
            }
        }
    });
    let idle = connect_in(env.host(), addr, 1100);
    assert!(idle.len() > 100, "only {} connections opened", idle.len());

    // Passes converge while the connections are held: a repair, and a new file.
    env.host().ip_ok(&["link", "del", "virbr-nat"]);
    wait_for("virbr-nat repaired", WAIT, || exists(&env, "virbr-nat"));
    env.write_config("iso.toml", ISOLATED);
    wait_for("virbr-iso created", WAIT, || exists(&env, "virbr-iso"));
    assert!(
        !status(&env).contains("Too many open files"),
        "{}",
        status(&env)
    );

    let closed = trickle.join().expect("trickling client");
    assert!(closed < Duration::from_secs(10), "closed after {closed:?}");

    drop(idle);
    wait_for("healthz answers again", WAIT, || healthz() == "ok\n");
    assert!(daemon.is_running(), "{}", daemon.stderr());
    let log = daemon.stderr();
    assert!(
        log.lines().count() < 200 && log.len() < 64 * 1024,
        "{} log lines:\n{}",
        log.lines().count(),
        log.lines().take(50).collect::<Vec<_>>().join("\n")
    );
}

/// Every file and directory under `dir`, with its mode.
fn modes_under(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(modes_under(&path));
        }
        out.push((path, meta.mode() & 0o7777));
    }
    out
}

/// Also: the soft open-files limit is raised to the hard one.
#[test]
fn under_umask_000_nothing_the_agent_writes_is_writable_by_others() {
    let env = AgentEnv::new();
    env.write_config("nat.toml", NAT);
    let agent = env.command(&["--interval", "1h"]);
    // Started with a soft open-files limit below the hard one, too.
    let mut daemon = Background::spawn(wrapped(
        &[
            "prlimit",
            "--nofile=1024:4096",
            "--",
            "sh",
            "-c",
            "umask 000; exec \"$@\"",
            "sh",
        ],
        &agent,
    ));
    let last_good = env.state_dir().join("last-good");
    let dnsmasq_files = env.run_dir().join("dnsmasq");
    wait_for(
        "status, metrics, last good copy and dnsmasq files",
        WAIT,
        || {
            env.run_dir().join("status.json").exists()
                && env.state_dir().join("kvmnet.prom").exists()
                && last_good.join("nat.toml").exists()
                && dnsmasq_files.join("nat-network.conf").exists()
                && env.state_dir().join("dnsmasq/nat-network.leases").exists()
        },
    );
    assert!(daemon.is_running(), "{}", daemon.stderr());
    // prlimit, sh and ip netns exec each exec the next: the pid is the agent's.
    let proc = PathBuf::from(format!("/proc/{}", daemon.pid()));
    assert_eq!(
        std::fs::read_to_string(proc.join("comm")).unwrap(),
        "kvmnet-agent\n"
    );
    let limits = std::fs::read_to_string(proc.join("limits")).unwrap();
    let open_files = limits.lines().find(|l| l.starts_with("Max open files"));
    let fields: Vec<&str> = open_files.unwrap().split_whitespace().collect();
    assert_eq!(
        fields[3..5],
        ["4096", "4096"],
        "the soft limit raised to the hard one: {limits}"
    );

    let all: Vec<_> = [env.run_dir(), env.state_dir()]
        .iter()
        .flat_map(|d| modes_under(d))
        .collect();
    assert!(all.len() > 8, "{all:?}");
    let writable: Vec<_> = all.iter().filter(|(_, m)| m & 0o022 != 0).collect();
    assert!(
        writable.is_empty(),
        "writable by group or others: {writable:?}"
    );
    let mode = |p: PathBuf| std::fs::metadata(&p).unwrap().mode() & 0o7777;
    assert_eq!(mode(env.run_dir().join("status.json")), 0o600);
    assert_eq!(mode(last_good.clone()), 0o700);
    assert_eq!(mode(last_good.join("nat.toml")), 0o600);
    assert_eq!(mode(env.state_dir().join("kvmnet.prom")), 0o644);
}
