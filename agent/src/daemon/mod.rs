//! The daemon: a level-triggered control loop, like a Kubernetes controller.
//! Every trigger (file change, kernel event, timer, SIGHUP) leads to the same
//! idempotent pass over all networks; one pass at a time; triggers that
//! arrive during a pass are coalesced into one more pass; a failed pass is
//! retried with capped exponential backoff.

pub mod http;

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use notify::{EventKind, RecursiveMode, Watcher};
use serde::Serialize;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::config::lastgood::LastGood;
use crate::config::load;
use crate::core::fs::{write_atomic, PRIVATE, READABLE};
use crate::core::lock::{AgentLock, Wait};
use crate::core::StepResult;
use crate::core::ALIAS_PREFIX;
use crate::kernel::events::{self, KernelEvent};
use crate::reconcile::Reconciler;
use crate::report::metrics::Metrics;
use crate::report::PassReport;

/// Triggers are collected until none has come for this long: a bridge
/// deletion is a burst of netlink messages within microseconds.
const QUIET_KERNEL: Duration = Duration::from_millis(10);
/// Editors, Ansible and git-sync write files and renames in bursts a few
/// milliseconds apart.
const QUIET_FILES: Duration = Duration::from_millis(40);
/// A steady stream of triggers still gets a pass this often.
const QUIET_MAX: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Beyond three intervals without a pass end, `/healthz` fails.
const STALE_SLACK: Duration = Duration::from_secs(60);

pub struct DaemonConfig {
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Serve `/metrics` and `/healthz` here.
    pub metrics_listen: Option<SocketAddr>,
    pub run_dir: PathBuf,
    pub interval: Duration,
    /// Converge even when the config directory declares no networks.
    pub allow_empty: bool,
    /// Wait for another agent's lock instead of exiting.
    pub wait: Wait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Files,
    Kernel,
    /// A dnsmasq instance exited.
    Dnsmasq,
}

/// Runs until SIGTERM or SIGINT. Networks stay up when the daemon stops, like
/// libvirt's networks when libvirtd stops; the next start adopts them.
pub async fn run(config: DaemonConfig) -> Result<(), String> {
    let _lock = AgentLock::acquire(&config.run_dir, config.wait)?;
    let reconciler = Arc::new(
        Reconciler::connect(&config.run_dir, &config.state_dir).map_err(|e| e.to_string())?,
    );
    let (tx, mut triggers) = mpsc::unbounded_channel();
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    // A pass runs at least every interval (a failing one sooner); one that
    // has not ended long after that means the loop is stuck.
    metrics
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .set_stale_after(config.interval * 3 + STALE_SLACK);
    let _dnsmasq_logs = watch_dnsmasq(&reconciler, tx.clone(), Arc::clone(&metrics));
    let mut config_watch = ConfigWatch::new(&config.config_dir, tx.clone())?;
    spawn_firewall_events(tx.clone());
    spawn_kernel_events(tx, Arc::clone(&reconciler))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    if let Some(addr) = config.metrics_listen {
        let bound = http::serve(addr, Arc::clone(&metrics))
            .await
            .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
        info!(address = %bound, "serving /metrics and /healthz");
    }
    info!(config_dir = %config.config_dir.display(), interval = %humantime::format_duration(config.interval), "kvmnet-agent started");
    let mut first = true;
    // WatchdogSec: a ping from this loop at half the period, so a pass that
    // hangs stops the pings and systemd restarts the agent.
    let mut watchdog = watchdog_period().map(|period| tokio::time::interval(period / 2));

    let mut last_files: Option<Vec<(PathBuf, Vec<u8>)>> = None;
    let mut backoff = BACKOFF_MIN;
    let mut reason = "start";
    loop {
        let converged = pass(&reconciler, &config, reason, &mut last_files, &metrics).await;
        if std::mem::take(&mut first) {
            sd_notify("READY=1");
        }
        let delay = match converged {
            Ok(true) => {
                backoff = BACKOFF_MIN;
                config.interval
            }
            Ok(false) | Err(()) => {
                let delay = backoff.min(config.interval);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                info!(retry_in = %humantime::format_duration(delay), "pass did not converge; retrying");
                delay
            }
        };
        // Wait for the next reason to run a pass; a file event that changed
        // no content is not one, and keeps the timer running.
        let deadline = tokio::time::Instant::now() + delay;
        let next = loop {
            break tokio::select! {
                _ = tokio::time::sleep_until(deadline) => Some("timer"),
                Some(trigger) = triggers.recv() => {
                    let burst = collect_burst(trigger, &mut triggers).await;
                    if burst.files {
                        config_watch.follow_recreated();
                    }
                    if burst.dnsmasq {
                        Some("dnsmasq exit")
                    } else if burst.kernel {
                        Some("kernel event")
                    } else if burst.files && Some(read_files(&config.config_dir)) == last_files {
                        continue;
                    } else {
                        Some("config change")
                    }
                }
                _ = watchdog_tick(&mut watchdog) => {
                    sd_notify("WATCHDOG=1");
                    continue;
                }
                _ = sighup.recv() => Some("SIGHUP"),
                _ = sigterm.recv() => None,
                _ = sigint.recv() => None,
            };
        };
        match next {
            Some(r) => reason = r,
            None => break,
        }
    }
    info!("kvmnet-agent stopping; networks stay up");
    Ok(())
}

/// The kinds of trigger seen in one burst.
#[derive(Debug, Default)]
struct Burst {
    files: bool,
    kernel: bool,
    dnsmasq: bool,
}

impl Burst {
    fn add(&mut self, trigger: Trigger) {
        match trigger {
            Trigger::Files => self.files = true,
            Trigger::Kernel => self.kernel = true,
            Trigger::Dnsmasq => self.dnsmasq = true,
        }
    }
}

/// Collects the triggers of one burst, up to a quiet moment.
async fn collect_burst(first: Trigger, triggers: &mut mpsc::UnboundedReceiver<Trigger>) -> Burst {
    let mut burst = Burst::default();
    burst.add(first);
    let give_up = tokio::time::Instant::now() + QUIET_MAX;
    loop {
        let quiet = if burst.files {
            QUIET_FILES
        } else {
            QUIET_KERNEL
        };
        let until = (tokio::time::Instant::now() + quiet).min(give_up);
        match tokio::time::timeout_at(until, triggers.recv()).await {
            Ok(Some(t)) => burst.add(t),
            Ok(None) | Err(_) => return burst,
        }
    }
}

/// One pass: returns Ok(true) when converged.
async fn pass(
    reconciler: &Reconciler,
    config: &DaemonConfig,
    reason: &str,
    last_files: &mut Option<Vec<(PathBuf, Vec<u8>)>>,
    metrics: &Mutex<Metrics>,
) -> Result<bool, ()> {
    let started = Instant::now();
    let last_good = LastGood::new(&config.state_dir);
    // Read before loading: a file written in between then differs from
    // what is remembered, and its event brings another pass. Read after,
    // it would match, and the pass that loaded the old content would stand.
    let files = read_files(&config.config_dir);
    let resolved = match last_good.load_dir(&config.config_dir) {
        Ok(resolved) => resolved,
        Err(e) => {
            // Never "no files, delete everything": skip the pass.
            error!(error = %e, "cannot read the config directory; nothing is changed");
            return pass_failed(metrics, e.to_string());
        }
    };
    *last_files = Some(files);
    let desired = &resolved.desired;
    for d in desired.diagnostics() {
        error!(file = %d.file.display(), position = %d.position(), error = %d.message, "config error; the file's networks keep their last good version, if any");
    }
    if !config.allow_empty {
        let files = resolved.present.len();
        match reconciler
            .refuse_empty(desired, &config.config_dir, files)
            .await
        {
            Ok(None) => {}
            Ok(Some(why)) => {
                error!("{why}");
                return pass_failed(metrics, why);
            }
            Err(e) => {
                error!(error = %e, "pass failed");
                return pass_failed(metrics, e.to_string());
            }
        }
    }
    let report = match reconciler.converge(desired).await {
        Ok(report) => report,
        Err(e) => {
            error!(error = %e, "pass failed");
            return pass_failed(metrics, e.to_string());
        }
    };
    log_report(&report);
    if let Err(e) = last_good.record(&resolved) {
        warn!(error = %e, "cannot record the last good files");
    }
    let elapsed = started.elapsed();
    info!(
        reason,
        result = report.result,
        writes = report.writes,
        duration_ms = elapsed.as_millis() as u64,
        "pass done"
    );
    if let Err(e) = write_status(&config.run_dir, &report, elapsed) {
        warn!(error = %e, "cannot write status.json");
    }
    let text = {
        let mut m = metrics.lock().unwrap_or_else(|e| e.into_inner());
        m.record(&report, elapsed);
        m.render()
    };
    if let Err(e) = write_atomic(
        &config.state_dir.join("kvmnet.prom"),
        text.as_bytes(),
        READABLE,
    ) {
        warn!(error = %e, "cannot write the metrics textfile");
    }
    release_free_memory();
    Ok(report.exit_code() == 0)
}

/// A pass that ended without a report: `/healthz` says why.
fn pass_failed(metrics: &Mutex<Metrics>, why: String) -> Result<bool, ()> {
    metrics
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pass_failed(why);
    Err(())
}

/// A pass allocates and frees megabytes (listings, rendered rules, files);
/// glibc keeps freed memory mapped unless asked. Between passes the daemon
/// idles, so give it back: RSS then stays what the daemon really holds.
fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// One structured event per drift item and per repair; the message is the
/// same line the text report shows.
fn log_report(report: &PassReport) {
    let host = [(None, &report.host.drift, &report.host.repairs, &Vec::new())];
    let networks = report
        .networks
        .iter()
        .map(|n| (Some(n.name.as_str()), &n.drift, &n.repairs, &n.errors));
    for (network, drift, repairs, errors) in networks.chain(host) {
        for d in drift {
            warn!(
                network,
                resource = %d.resource,
                object = %d.object,
                change = ?d.change,
                field = d.field.as_deref(),
                wanted = d.wanted.as_deref(),
                found = d.found.as_deref(),
                "drift: {d}"
            );
        }
        for o in repairs {
            match &o.result {
                StepResult::Done => {
                    info!(network, action = %o.action, result = "done", "repaired: {}", o.action)
                }
                StepResult::Failed(e) => {
                    error!(network, action = %o.action, result = "failed", error = %e, "repair failed: {e}")
                }
                StepResult::Skipped(why) => {
                    warn!(network, action = %o.action, result = "skipped", reason = %why, "repair skipped: {}", o.action)
                }
            }
        }
        for e in errors {
            error!(network, error = %e, "network failed: {e}");
        }
    }
    for w in &report.warnings {
        warn!(warning = %w, "warning: {w}");
    }
}

#[derive(Serialize)]
struct Status<'a> {
    /// Seconds since the epoch of the end of the pass.
    time: u64,
    duration_ms: u64,
    #[serde(flatten)]
    report: &'a PassReport,
}

/// `<run-dir>/status.json`, replaced atomically.
fn write_status(run_dir: &Path, report: &PassReport, elapsed: Duration) -> std::io::Result<()> {
    let status = Status {
        time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        duration_ms: elapsed.as_millis() as u64,
        report,
    };
    let text = serde_json::to_string_pretty(&status).map_err(std::io::Error::other)? + "\n";
    write_atomic(&run_dir.join("status.json"), text.as_bytes(), PRIVATE)
}

/// systemd's watchdog period (`WatchdogSec=` sets WATCHDOG_USEC), when it
/// is meant for this process.
fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The next watchdog ping is due; never without a watchdog.
async fn watchdog_tick(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Tells systemd (Type=notify) a state: READY=1 after the first pass,
/// WATCHDOG=1 while the loop runs.
fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => return warn!(error = %e, "sd_notify: no socket"),
    };
    let bytes = path.as_encoded_bytes();
    // "@name" is an abstract socket.
    let result = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
        }
        None => socket.send_to(state.as_bytes(), Path::new(&path)),
    };
    if let Err(e) = result {
        warn!(error = %e, state, "sd_notify failed");
    }
}

/// The contents of the config files, to tell a real change from a touch
/// (a file past `MAX_FILE_BYTES` by its first bytes past the limit: it is
/// refused anyway).
fn read_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    load::config_files(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let mut bytes = Vec::new();
            if let Ok(file) = std::fs::File::open(&p) {
                let _ = file.take(load::MAX_FILE_BYTES + 1).read_to_end(&mut bytes);
            }
            (p, bytes)
        })
        .collect()
}

/// Watches the config directory and its parent (so that a deleted and
/// recreated directory, or a ConfigMap/git-sync `..data` swap, is seen).
struct ConfigWatch {
    watcher: notify::RecommendedWatcher,
    dir: PathBuf,
    /// Device and inode of the directory being watched: a directory deleted
    /// and made again is another inode, which the old watch does not see.
    watched: Option<(u64, u64)>,
}

impl ConfigWatch {
    fn new(dir: &Path, tx: mpsc::UnboundedSender<Trigger>) -> Result<ConfigWatch, String> {
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = match &event {
                    Ok(e) => !matches!(e.kind, EventKind::Access(_)),
                    Err(_) => true,
                };
                if relevant {
                    let _ = tx.send(Trigger::Files);
                }
            })
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        if let Some(parent) = dir.parent().filter(|p| p.exists()) {
            watcher
                .watch(parent, RecursiveMode::NonRecursive)
                .map_err(|e| format!("cannot watch {}: {e}", parent.display()))?;
        }
        let mut watch = ConfigWatch {
            watcher,
            dir: dir.to_path_buf(),
            watched: None,
        };
        watch.follow_recreated();
        Ok(watch)
    }

    /// Watches the directory now at the path if it is not the one watched.
    /// Recursive: git-sync and ConfigMaps keep the files in a subdirectory
    /// behind symlinks.
    fn follow_recreated(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let current = std::fs::metadata(&self.dir)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if current == self.watched {
            return;
        }
        // The old watch went with the deleted directory; notify may still
        // list it.
        let _ = self.watcher.unwatch(&self.dir);
        self.watched = None;
        if current.is_some() {
            match self.watcher.watch(&self.dir, RecursiveMode::Recursive) {
                Ok(()) => self.watched = current,
                Err(e) => {
                    warn!(dir = %self.dir.display(), error = %e, "cannot watch the config directory; changes are seen at the next timed pass")
                }
            }
        }
    }
}

/// A dnsmasq exit (one the daemon started, or an adopted one, watched by
/// pidfd) triggers a pass that restarts it if it is still wanted. Its log
/// lines are forwarded while the returned watcher lives.
fn watch_dnsmasq(
    reconciler: &Reconciler,
    tx: mpsc::UnboundedSender<Trigger>,
    metrics: Arc<Mutex<Metrics>>,
) -> Option<notify::RecommendedWatcher> {
    reconciler.on_dnsmasq_exit(Arc::new(move |network: &str| {
        warn!(network, "dnsmasq exited");
        metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dnsmasq_exited(network);
        let _ = tx.send(Trigger::Dnsmasq);
    }));
    reconciler
        .follow_dnsmasq_logs()
        .inspect_err(|e| warn!(error = %e, "dnsmasq's log lines stay in their files only"))
        .ok()
}

/// Forwards kernel events that concern kvmnet's links and routes.
fn spawn_kernel_events(
    tx: mpsc::UnboundedSender<Trigger>,
    reconciler: Arc<Reconciler>,
) -> Result<(), String> {
    let mut events = events::subscribe().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if concerns_us(&event, &reconciler) && tx.send(Trigger::Kernel).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// Forwards changes to our nftables table (`nft flush ruleset` included).
fn spawn_firewall_events(tx: mpsc::UnboundedSender<Trigger>) {
    let mut events = crate::firewall::monitor::spawn();
    tokio::spawn(async move {
        while events.recv().await.is_some() {
            if tx.send(Trigger::Kernel).is_err() {
                break;
            }
        }
    });
}

/// Links marked as ours (or ours at the last observation), ports joining
/// them (to remember guest ports), addresses on them, and our routes.
fn concerns_us(event: &KernelEvent, reconciler: &Reconciler) -> bool {
    match event {
        KernelEvent::Link {
            index,
            alias,
            master,
            ..
        } => {
            alias
                .as_deref()
                .is_some_and(|a| a.starts_with(ALIAS_PREFIX))
                || reconciler.owns_link(*index)
                || master.is_some_and(|m| reconciler.owns_link(m))
        }
        KernelEvent::Address { index } | KernelEvent::FloodEntry { index } => {
            reconciler.owns_link(*index)
        }
        KernelEvent::Route { oif, protocol } => {
            *protocol == crate::kernel::RTPROT_KVMNET
                || oif.is_some_and(|i| reconciler.owns_link(i))
        }
    }
}
