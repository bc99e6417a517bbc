//! Running dnsmasq: one process per network, in the foreground of its own
//! process group (so that it outlives `--once` and a stopping daemon),
//! dropping root for an unprivileged user. Its stderr goes to a log file in
//! the state directory, capped in size (see `logs`); the agent reads it to
//! tell whether a start worked and, when not, why.
//!
//! Longer than most: starting, adopting, watching, reloading and stopping
//! share the rules for telling our processes from others, kept in one place.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{chown, Gid, Group, Pid, User};
use tokio::time::Instant;

use crate::core::fs::{write_atomic, READABLE};

use super::paths::{Dirs, InstancePaths};
use super::plan::ObservedInstance;
use super::render::{Rendered, RunAs};

/// How long a start may take to report "started", and a stop to finish.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Called with the network's name when an instance the agent watches exits.
pub type ExitHook = Arc<dyn Fn(&str) + Send + Sync>;

/// The dnsmasq instances under one run and state directory.
pub struct Supervisor {
    dirs: Dirs,
    run_as: RunAs,
    /// The group of `run_as`: it may read the run directory, nobody else.
    group: Option<Gid>,
    writes: AtomicU64,
    on_exit: Mutex<Option<ExitHook>>,
    /// Pids whose exit is being watched (daemon only).
    watched: Arc<Mutex<HashSet<i32>>>,
}

impl Supervisor {
    pub fn new(run_dir: &Path, state_dir: &Path) -> Supervisor {
        let (run_as, group) = dnsmasq_user();
        Supervisor {
            dirs: Dirs::new(run_dir, state_dir),
            run_as,
            group,
            writes: AtomicU64::new(0),
            on_exit: Mutex::new(None),
            watched: Arc::default(),
        }
    }

    pub fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    pub fn run_as(&self) -> &RunAs {
        &self.run_as
    }

    /// Files written, processes started and signals sent so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Counts a change made on the instances' behalf (a lease released).
    pub fn count_write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// From now on, every instance observed alive or started is watched, and
    /// `hook` runs when it exits (the daemon's trigger for a pass).
    pub fn on_exit(&self, hook: ExitHook) {
        *self.on_exit.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
    }

    /// The instances of `networks` and every other one found in the run
    /// directory or running with a configuration file of it. Unreadable files
    /// count as missing: they get rewritten.
    ///
    /// A process is ours when its command line names exactly one of our
    /// `--conf-file` paths; the pid file only says which of them was
    /// recorded. So an instance whose pid file was never written (a crash
    /// right after the start) or was damaged is still recognised, and
    /// adopted or stopped; a pid in the pid file that is not such a process
    /// is never signalled.
    pub fn observe<'a>(
        &self,
        networks: impl IntoIterator<Item = &'a str>,
    ) -> BTreeMap<String, ObservedInstance> {
        let mut names: BTreeSet<String> = networks.into_iter().map(str::to_string).collect();
        let mut running = scan_processes(&self.dirs.run);
        names.extend(running.keys().cloned());
        if let Ok(entries) = std::fs::read_dir(&self.dirs.run) {
            for entry in entries.flatten() {
                let file = entry.file_name();
                let file = file.to_string_lossy();
                let stem = Dirs::network_of_conf(&file)
                    .or_else(|| file.strip_suffix(".pid"))
                    .filter(|n| !n.is_empty());
                if let Some(network) = stem {
                    names.insert(network.to_string());
                }
            }
        }
        names
            .into_iter()
            .map(|network| {
                let paths = self.dirs.instance(&network);
                let pid_file = read_pid_file(&paths);
                let mut pids = running.remove(&network).unwrap_or_default();
                // The recorded one, if it runs; else the oldest.
                let pid = pid_file
                    .filter(|p| pids.contains(p))
                    .or_else(|| pids.first().copied());
                pids.retain(|p| Some(*p) != pid);
                if let Some(pid) = pid {
                    self.watch_pid(&network, pid);
                }
                let instance = ObservedInstance {
                    pid,
                    pid_file,
                    duplicates: pids,
                    conf: std::fs::read_to_string(&paths.conf).ok(),
                    hosts: std::fs::read_to_string(&paths.hosts).ok(),
                    addn_hosts: std::fs::read_to_string(&paths.addn_hosts).ok(),
                    servers: std::fs::read_to_string(&paths.servers).ok(),
                };
                (network, instance)
            })
            .collect()
    }

    /// Rotates the instances' logs that grew past their cap (the daemon's
    /// follower does it as they grow; `--once` runs have only their passes).
    pub fn cap_logs(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dirs.state) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .filter_map(|p| {
                super::logs::cap(&p, super::logs::LOG_MAX)
                    .err()
                    .map(|e| format!("cannot rotate {}: {e}", p.display()))
            })
            .collect()
    }

    /// Daemon: follows the instances' logs into the agent's (see `logs`).
    pub fn follow_logs(&self) -> Result<notify::RecommendedWatcher, String> {
        self.prepare_dirs()?;
        super::logs::follow(&self.dirs.state)
    }

    /// Writes the files and starts dnsmasq; returns once it reports
    /// "started", or why it did not.
    pub async fn start(&self, network: &str, files: &Rendered) -> Result<i32, String> {
        let paths = self.dirs.instance(network);
        self.prepare_dirs()?;
        self.write(&paths.conf, &files.conf)?;
        self.write_hosts(&paths, files)?;
        // Small again before the start is read from it.
        super::logs::cap(&paths.log, super::logs::LOG_MAX)
            .map_err(|e| format!("cannot rotate {}: {e}", paths.log.display()))?;
        let log = open_log(&paths.log)?;
        let log_start = log
            .metadata()
            .map_err(|e| format!("{}: {e}", paths.log.display()))?
            .len();
        let mut child = tokio::process::Command::new("dnsmasq")
            // Its messages are matched below ("started, version", "Address
            // already in use"): in English whatever the caller's locale.
            .env("LC_ALL", "C")
            .arg("--keep-in-foreground")
            .arg(conf_arg(&paths))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            // Its own process group: a Ctrl-C of `--once` or a stop of the
            // daemon's service does not reach it.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run dnsmasq: {e}"))?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or("dnsmasq exited at once")?;
        self.write(&paths.pid, &format!("{pid}\n"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        let mut interval = Duration::from_millis(5);
        loop {
            let log_text = read_from(&paths.log, log_start);
            if log_text.contains("started, version") {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let _ = std::fs::remove_file(&paths.pid);
                return Err(explain_exit(&status.to_string(), &log_text, &paths));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "dnsmasq (pid {pid}) did not report \"started\" within {}s; see {}",
                    START_TIMEOUT.as_secs(),
                    paths.log.display()
                ));
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_millis(100));
        }
        self.watch_child(network, pid, child);
        Ok(pid)
    }

    /// Records `pid` as the network's instance, once more its own.
    pub fn write_pid_file(&self, network: &str, pid: i32) -> Result<(), String> {
        let paths = self.dirs.instance(network);
        if !is_our_dnsmasq(pid, &paths) {
            return Err(format!(
                "dnsmasq (pid {pid}) no longer runs {}",
                paths.conf.display()
            ));
        }
        self.write(&paths.pid, &format!("{pid}\n"))
    }

    /// Rewrites the hosts files and makes dnsmasq re-read them.
    pub fn reload(&self, network: &str, pid: i32, files: &Rendered) -> Result<(), String> {
        let paths = self.dirs.instance(network);
        self.write_hosts(&paths, files)?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        kill(Pid::from_raw(pid), Signal::SIGHUP)
            .map_err(|e| format!("cannot send SIGHUP to dnsmasq (pid {pid}): {e}"))
    }

    /// Stops the process group of `pid`: SIGTERM, then SIGKILL after a grace
    /// period. Only a pid that still runs our configuration is signalled.
    pub async fn stop_process(&self, network: &str, pid: i32) -> Result<(), String> {
        let paths = self.dirs.instance(network);
        if !is_our_dnsmasq(pid, &paths) {
            return Ok(());
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        // An exit the agent causes is no reason for another pass.
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pid);
        let group = Pid::from_raw(pid);
        killpg(group, Signal::SIGTERM)
            .or_else(|_| kill(group, Signal::SIGTERM))
            .map_err(|e| format!("cannot stop dnsmasq (pid {pid}): {e}"))?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        // Its TCP children hold the listening sockets too: the ports are
        // free only once the whole group is gone.
        while is_our_dnsmasq(pid, &paths) || group_alive(pid) {
            if Instant::now() >= deadline {
                let _ = killpg(group, Signal::SIGKILL);
                tokio::time::sleep(Duration::from_millis(50)).await;
                if is_our_dnsmasq(pid, &paths) {
                    return Err(format!("dnsmasq (pid {pid}) survives SIGKILL"));
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Stops the instance, if running, and removes its files: leases and
    /// log included, as the network is gone.
    pub async fn remove(&self, network: &str, pid: Option<i32>) -> Result<(), String> {
        if let Some(pid) = pid {
            self.stop_process(network, pid).await?;
        }
        let paths = self.dirs.instance(network);
        for path in [
            &paths.conf,
            &paths.hosts,
            &paths.addn_hosts,
            &paths.servers,
            &paths.pid,
            &paths.leases,
            &paths.log,
            &super::logs::rotated(&paths.log),
        ] {
            match std::fs::remove_file(path) {
                Ok(()) => {
                    self.writes.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
            }
        }
        Ok(())
    }

    /// Run directory readable by the dnsmasq user's group only (dnsmasq
    /// re-reads the hosts files after dropping root); state directory private
    /// to root (dnsmasq opens its lease file and log before dropping root).
    fn prepare_dirs(&self) -> Result<(), String> {
        let run_mode = if self.group.is_some() { 0o750 } else { 0o755 };
        for (dir, mode, group) in [
            (&self.dirs.run, run_mode, self.group),
            (&self.dirs.state, 0o700, None),
        ] {
            // Missing parents are made traversable (the agent's own run and
            // state directories): only the last level is restricted.
            if let Some(parent) = dir.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::DirBuilder::new()
                .mode(mode)
                .create(dir)
                .or_else(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("cannot set permissions of {}: {e}", dir.display()))?;
            if group.is_some() {
                chown(dir.as_path(), None, group)
                    .map_err(|e| format!("cannot set the group of {}: {e}", dir.display()))?;
            }
        }
        self.check_reachable(&self.dirs.run)
    }

    /// dnsmasq re-reads its hosts and servers files after dropping root: every
    /// directory above `dir` must let its user through. Said here, plainly,
    /// rather than as "Permission denied" lines in dnsmasq's log.
    fn check_reachable(&self, dir: &Path) -> Result<(), String> {
        for ancestor in dir.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(ancestor) else {
                continue;
            };
            let mode = meta.permissions().mode();
            let by_group =
                self.group.is_some_and(|g| g.as_raw() == meta.gid()) && mode & 0o010 != 0;
            if mode & 0o001 == 0 && !by_group {
                return Err(format!(
                    "dnsmasq runs as user {} and cannot reach {}: {} (mode {:o}) is not searchable by it; \
                     use a run directory others may traverse (chmod o+x {})",
                    self.run_as.user,
                    dir.display(),
                    ancestor.display(),
                    mode & 0o7777,
                    ancestor.display()
                ));
            }
        }
        Ok(())
    }

    fn write_hosts(&self, paths: &InstancePaths, files: &Rendered) -> Result<(), String> {
        self.write(&paths.hosts, &files.hosts)?;
        self.write(&paths.addn_hosts, &files.addn_hosts)?;
        self.write(&paths.servers, &files.servers)
    }

    fn write(&self, path: &Path, text: &str) -> Result<(), String> {
        write_atomic(path, text.as_bytes(), READABLE)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn hook(&self) -> Option<ExitHook> {
        self.on_exit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Marks `pid` as watched; false when it already was. Its exit is
    /// reported only while it stays marked.
    fn claim(&self, pid: i32) -> bool {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid)
    }

    /// Daemon: a child of ours is reaped, and its exit reported.
    fn watch_child(&self, network: &str, pid: i32, mut child: tokio::process::Child) {
        let Some(hook) = self.hook() else {
            // `--once`: the instance outlives the agent; nothing to watch.
            return;
        };
        self.claim(pid);
        let watched = Arc::clone(&self.watched);
        let network = network.to_string();
        tokio::spawn(async move {
            let _ = child.wait().await;
            // Not when the agent stopped it itself (it unwatched it first).
            if watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&pid)
            {
                hook(&network);
            }
        });
    }

    /// Daemon: an adopted instance (not our child) is watched through a
    /// pidfd, which becomes readable when the process exits.
    fn watch_pid(&self, network: &str, pid: i32) {
        let Some(hook) = self.hook() else { return };
        if !self.claim(pid) {
            return;
        }
        let watched = Arc::clone(&self.watched);
        let network = network.to_string();
        let fd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!(network, pid, error = %e, "cannot watch dnsmasq; its exit is noticed at the next timed pass");
                return;
            }
        };
        tokio::spawn(async move {
            // SAFETY: an OwnedFd stays open, on the same pidfd, as long as
            // the AsyncFd that owns it.
            let registered = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            };
            if let Ok(fd) = registered {
                let _ = fd.readable().await;
            }
            // Not when the agent stopped it itself (it unwatched it first).
            if watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&pid)
            {
                hook(&network);
            }
        });
    }
}

/// Whether a live (not zombie) process of process group `pgid` remains.
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| ProcStat::parse(&stat))
            .is_some_and(|s| s.group == pgid && s.state != 'Z' && s.state != 'X')
    })
}

fn pidfd_open(pid: i32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// The account dnsmasq runs as: `dnsmasq` (Debian's dnsmasq-base creates
/// it), else `nobody`.
fn dnsmasq_user() -> (RunAs, Option<Gid>) {
    let user = ["dnsmasq", "nobody"]
        .into_iter()
        .find_map(|name| User::from_name(name).ok().flatten());
    let Some(user) = user else {
        let run_as = RunAs {
            user: "nobody".into(),
            group: None,
        };
        return (run_as, None);
    };
    let group = Group::from_gid(user.gid).ok().flatten().map(|g| g.name);
    let gid = group.is_some().then_some(user.gid);
    (
        RunAs {
            user: user.name,
            group,
        },
        gid,
    )
}

fn conf_arg(paths: &InstancePaths) -> String {
    format!("--conf-file={}", paths.conf.display())
}

/// The number in the pid file: only a hint of which process was recorded
/// (a reused pid is some other process).
fn read_pid_file(paths: &InstancePaths) -> Option<i32> {
    std::fs::read_to_string(&paths.pid)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
}

/// Every live dnsmasq whose command line names a configuration file of
/// `run_dir` (`--conf-file=<run_dir>/<network>.conf`), by network, pids in
/// ascending order. The children dnsmasq forks to answer DNS over TCP share
/// the command line; they are part of their parent's instance, not more
/// instances.
fn scan_processes(run_dir: &Path) -> BTreeMap<String, Vec<i32>> {
    let mut found: BTreeMap<String, Vec<(i32, Option<i32>)>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if let Some(network) = network_of_cmdline(&cmdline, run_dir) {
            let parent = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| ProcStat::parse(&stat))
                .map(|stat| stat.parent);
            found.entry(network).or_default().push((pid, parent));
        }
    }
    found
        .into_iter()
        .map(|(network, procs)| {
            let mut pids: Vec<i32> = procs
                .iter()
                .filter(|(_, parent)| !procs.iter().any(|(p, _)| Some(*p) == *parent))
                .map(|(pid, _)| *pid)
                .collect();
            pids.sort_unstable();
            (network, pids)
        })
        .collect()
}

/// What kvmnet reads of `/proc/<pid>/stat`.
#[derive(Debug, PartialEq, Eq)]
struct ProcStat {
    state: char,
    parent: i32,
    group: i32,
}

impl ProcStat {
    /// The fields after the command name, which is in parentheses and may
    /// itself hold spaces and ")": state, parent pid, process group.
    fn parse(stat: &str) -> Option<ProcStat> {
        let (_, rest) = stat.rsplit_once(')')?;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let parent = fields.next()?.parse().ok()?;
        let group = fields.next()?.parse().ok()?;
        Some(ProcStat {
            state,
            parent,
            group,
        })
    }
}

/// The network of a dnsmasq command line (NUL-separated) that names a
/// configuration file directly in `run_dir`.
pub(crate) fn network_of_cmdline(cmdline: &[u8], run_dir: &Path) -> Option<String> {
    let mut args = cmdline.split(|b| *b == 0);
    let argv0 = args.next()?;
    if argv0 != b"dnsmasq" && !argv0.ends_with(b"/dnsmasq") {
        return None;
    }
    args.find_map(|arg| {
        let conf = Path::new(std::str::from_utf8(arg.strip_prefix(b"--conf-file=")?).ok()?);
        if conf.parent()? != run_dir {
            return None;
        }
        let network = Dirs::network_of_conf(conf.file_name()?.to_str()?)?;
        // The exact path the agent passes, not a look-alike.
        let exact = format!(
            "--conf-file={}",
            run_dir.join(format!("{network}.conf")).display()
        );
        (exact.as_bytes() == arg).then(|| network.to_string())
    })
}

fn is_our_dnsmasq(pid: i32, paths: &InstancePaths) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    cmdline_matches(&cmdline, &conf_arg(paths))
}

/// A dnsmasq command line (NUL-separated) with exactly `conf_arg` among its
/// arguments. A zombie has an empty command line: not running.
pub(crate) fn cmdline_matches(cmdline: &[u8], conf_arg: &str) -> bool {
    let mut args = cmdline.split(|b| *b == 0);
    let is_dnsmasq = args
        .next()
        .is_some_and(|argv0| argv0 == b"dnsmasq" || argv0.ends_with(b"/dnsmasq"));
    is_dnsmasq && args.any(|a| a == conf_arg.as_bytes())
}

fn open_log(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// The log written since `offset`.
fn read_from(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = File::open(path) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = file.read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Why dnsmasq exited, plainly: a port held by another process is named as
/// such instead of a bare exit code.
pub(crate) fn explain_exit(status: &str, log: &str, paths: &InstancePaths) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let in_use = |l: &&&str| l.contains("Address already in use") || l.contains("Address in use");
    if let Some(line) = lines.iter().find(in_use) {
        let port = if line.contains("DHCPv6") {
            "547 (DHCPv6)"
        } else if line.contains("DHCP") {
            "67 (DHCP)"
        } else {
            "53 (DNS)"
        };
        // "failed to create listening socket for ADDR: ..." names the address.
        let address = line
            .split_once("socket for ")
            .and_then(|(_, rest)| rest.split_once(": "))
            .map_or("the bridge's address", |(addr, _)| addr);
        return format!(
            "port {port} on {address} is already held by another process; stop it, or disable that service of this network ({})",
            line.trim()
        );
    }
    let last = lines.last().map_or_else(
        || format!("no output; see {}", paths.log.display()),
        |l| l.trim().to_string(),
    );
    format!("dnsmasq exited ({status}): {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_must_name_our_exact_config() {
        let arg = "--conf-file=/run/kvmnet/dnsmasq/n.conf";
        let ours =
            b"/usr/sbin/dnsmasq\0--keep-in-foreground\0--conf-file=/run/kvmnet/dnsmasq/n.conf\0";
        assert!(cmdline_matches(ours, arg));
        let other = b"/usr/sbin/dnsmasq\0--conf-file=/run/kvmnet/dnsmasq/n.conf.old\0";
        assert!(!cmdline_matches(other, arg));
        let reused = b"/usr/bin/sleep\0--conf-file=/run/kvmnet/dnsmasq/n.conf\0";
        assert!(!cmdline_matches(reused, arg));
        assert!(!cmdline_matches(b"", arg), "a zombie is not running");
    }

    #[test]
    fn the_parent_pid_is_read_past_a_command_name_with_parentheses() {
        assert_eq!(
            ProcStat::parse("42 (dns) x) S 7 42 42 0").map(|s| s.parent),
            Some(7)
        );
        assert_eq!(
            ProcStat::parse("42 (dns) S 7 40 40 0"),
            Some(ProcStat {
                state: 'S',
                parent: 7,
                group: 40
            })
        );
        assert_eq!(ProcStat::parse("garbage"), None);
    }

    #[test]
    fn a_scanned_command_line_names_its_network_only_in_our_run_directory() {
        let run = Path::new("/run/kvmnet/dnsmasq");
        let ours = b"dnsmasq\0--keep-in-foreground\0--conf-file=/run/kvmnet/dnsmasq/n.conf\0";
        assert_eq!(network_of_cmdline(ours, run).as_deref(), Some("n"));
        for other in [
            &b"dnsmasq\0--conf-file=/run/other/dnsmasq/n.conf\0"[..],
            b"dnsmasq\0--conf-file=/run/kvmnet/dnsmasq/sub/n.conf\0",
            b"dnsmasq\0--conf-file=/run/kvmnet/dnsmasq/n.conf.old\0",
            b"dnsmasq\0--conf-file=/run/kvmnet/dnsmasq/.conf\0",
            b"dnsmasq\0--conf-file=/run/kvmnet//dnsmasq/n.conf\0",
            b"/usr/bin/sleep\0--conf-file=/run/kvmnet/dnsmasq/n.conf\0",
            b"",
        ] {
            assert_eq!(network_of_cmdline(other, run), None, "{other:?}");
        }
    }

    #[test]
    fn a_port_in_use_is_said_plainly() {
        let paths = Dirs::new(Path::new("/run"), Path::new("/var")).instance("n");
        let dns = explain_exit(
            "exit status: 2",
            "\ndnsmasq: failed to create listening socket for 192.168.10.1: Address already in use\n",
            &paths,
        );
        assert!(
            dns.starts_with("port 53 (DNS) on 192.168.10.1 is already held by another process"),
            "{dns}"
        );
        let dhcp = explain_exit(
            "exit status: 2",
            "dnsmasq: failed to bind DHCP server socket: Address already in use\n",
            &paths,
        );
        assert!(
            dhcp.starts_with("port 67 (DHCP) on the bridge's address is already held"),
            "{dhcp}"
        );
        let other = explain_exit("exit status: 1", "dnsmasq: bad option at line 3\n", &paths);
        assert_eq!(
            other,
            "dnsmasq exited (exit status: 1): dnsmasq: bad option at line 3"
        );
    }
}
