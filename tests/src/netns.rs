//! Network namespaces owned by a test: uniquely named, deleted on drop (also
//! when the test panics), with everything that runs inside them killed first.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{geteuid, Pid};

use crate::cmd::{run, Background, CmdOutput};

/// Every namespace name is `kvmt<pid>-<counter><role>`: the pid keeps
/// parallel test binaries apart and tells the sweep whether the creator lives.
const PREFIX: &str = "kvmt";

/// Linux IFNAMSIZ minus the terminating NUL.
const MAX_IFNAME: usize = 15;

static SWEEP: Once = Once::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Panics unless running as root: e2e tests must fail loudly, never pass by
/// skipping.
#[track_caller]
pub fn require_root() {
    assert!(
        geteuid().is_root(),
        "e2e tests need root: they create network namespaces, veth pairs and bridges \
         (run them as root, e.g. `sudo -E cargo test -p kvmnet-e2e`)"
    );
}

/// A network namespace created for one test, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `kvmt<pid>-<n><role>` with `lo` up. `role` (host, vm, lan, ...)
    /// only makes names readable: short, ASCII letters and digits.
    #[track_caller]
    pub fn new(role: &str) -> Netns {
        require_root();
        assert!(
            !role.is_empty() && role.len() <= 8 && role.bytes().all(|b| b.is_ascii_alphanumeric()),
            "namespace role {role:?} must be 1-8 ASCII letters or digits"
        );
        SWEEP.call_once(sweep_leftovers);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}{role}", std::process::id());
        run(ip(&["netns", "add", &name])).assert_success();
        // The guard exists from here on, so a failure below still deletes it.
        let ns = Netns { name };
        ns.set_up("lo");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <ns> program args...`, not yet started: for callers that
    /// need to set up stdin, environment, etc.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = ip(&["netns", "exec", &self.name, program]);
        cmd.args(args);
        cmd
    }

    /// Runs `program` inside the namespace and waits for it.
    #[track_caller]
    pub fn exec(&self, program: &str, args: &[&str]) -> CmdOutput {
        run(self.command(program, args))
    }

    /// Like [`Netns::exec`], panicking with the full output unless it exits 0;
    /// returns stdout.
    #[track_caller]
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> String {
        self.exec(program, args).assert_success().stdout()
    }

    /// Runs a `sh -c` script inside the namespace.
    #[track_caller]
    pub fn sh(&self, script: &str) -> CmdOutput {
        self.exec("sh", &["-c", script])
    }

    #[track_caller]
    pub fn sh_ok(&self, script: &str) -> String {
        self.sh(script).assert_success().stdout()
    }

    /// `ip -n <ns> args...`
    #[track_caller]
    pub fn ip(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = ip(&["-n", &self.name]);
        cmd.args(args);
        run(cmd)
    }

    #[track_caller]
    pub fn ip_ok(&self, args: &[&str]) -> String {
        self.ip(args).assert_success().stdout()
    }

    /// Starts `program` inside the namespace in the background.
    #[track_caller]
    pub fn spawn(&self, program: &str, args: &[&str]) -> Background {
        Background::spawn(self.command(program, args))
    }

    /// Pids of all processes inside the namespace.
    pub fn pids(&self) -> Vec<i32> {
        pids_of(&self.name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[track_caller]
    pub fn set_up(&self, ifname: &str) {
        self.ip_ok(&["link", "set", ifname, "up"]);
    }

    /// Adds an address (`10.0.0.1/24`, `fd00::1/64`) to an interface.
    #[track_caller]
    pub fn add_addr(&self, ifname: &str, cidr: &str) {
        let mut args = vec!["addr", "add", cidr, "dev", ifname];
        if cidr.contains(':') {
            // Skip duplicate address detection: otherwise the address stays
            // tentative for a second or two and traffic to it fails.
            args.push("nodad");
        }
        self.ip_ok(&args);
    }
}

impl Netns {
    /// Gives programs run in the namespace their own /etc/resolv.conf:
    /// `ip netns exec` binds `/etc/netns/<ns>/resolv.conf` over it. Removed
    /// with the namespace.
    #[track_caller]
    pub fn set_resolv_conf(&self, text: &str) {
        let dir = etc_dir(&self.name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = dir.join("resolv.conf");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// The per-namespace /etc of `ip netns exec`.
fn etc_dir(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/etc/netns").join(name)
}

impl Drop for Netns {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(etc_dir(&self.name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                eprintln!("warning: cannot remove /etc/netns/{}: {e}", self.name);
            }
            _ => {}
        }
        // Never panic here: this often runs while a failed test unwinds.
        if let Err(e) = destroy(&self.name) {
            eprintln!(
                "warning: cannot delete network namespace {}: {e}",
                self.name
            );
        }
    }
}

/// Panics unless `name` fits in IFNAMSIZ, with a clearer message than `ip`'s.
#[track_caller]
pub(crate) fn check_ifname(name: &str) {
    assert!(
        !name.is_empty() && name.len() <= MAX_IFNAME,
        "interface name {name:?} must be 1-{MAX_IFNAME} bytes"
    );
}

fn ip(args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    cmd
}

fn pids_of(name: &str) -> Result<Vec<i32>, String> {
    let out = run(ip(&["netns", "pids", name]));
    if !out.success() {
        return Err(out.to_string());
    }
    Ok(out
        .stdout()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Kills everything inside the namespace, then deletes it. Killing comes
/// first because `ip netns del` only removes the name: the namespace, its
/// links and daemons would live on as long as a process is inside.
fn destroy(name: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = pids_of(name)?;
        if pids.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!("processes {pids:?} survive SIGKILL"));
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run(ip(&["netns", "del", name]));
    if out.success() {
        Ok(())
    } else {
        Err(out.to_string())
    }
}

/// Deletes namespaces left behind by test processes that died without
/// running their destructors (SIGKILL, abort, power loss).
fn sweep_leftovers() {
    let me = std::process::id();
    let listed = run(ip(&["netns", "list"]));
    // Lines look like `name` or `name (id: 3)`.
    for name in listed
        .stdout()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let Some(pid) = creator_pid(name) else {
            continue;
        };
        // This runs before this process creates its first namespace, so one
        // carrying our own pid belongs to an earlier process with that pid.
        if pid == me || !alive(pid) {
            if let Err(e) = destroy(name) {
                eprintln!("warning: cannot delete leftover network namespace {name}: {e}");
            }
        }
    }
}

fn creator_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split_once('-')?.0.parse().ok()
}

fn alive(pid: u32) -> bool {
    // EPERM still means the process exists.
    match i32::try_from(pid) {
        Ok(pid) => kill(Pid::from_raw(pid), None) != Err(Errno::ESRCH),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::creator_pid;

    #[test]
    fn creator_pid_parses_only_our_names() {
        assert_eq!(creator_pid("kvmt1234-0host"), Some(1234));
        assert_eq!(creator_pid("kvmt1234-12vm"), Some(1234));
        assert_eq!(creator_pid("kvmtx-0vm"), None);
        assert_eq!(creator_pid("kvmt1234"), None);
        assert_eq!(creator_pid("other-1"), None);
    }
}
