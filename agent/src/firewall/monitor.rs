//! Changes to our table, as they happen: `nft flush ruleset` makes no
//! rtnetlink event, so the daemon runs `nft monitor` as one more trigger,
//! restarted whenever it dies, with capped exponential backoff.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tracing::warn;

use super::{nft, FAMILY, TABLE};

/// Wait before restarting a monitor that died, doubled at each failure in
/// a row up to the maximum: a monitor that cannot run (no nft, no
/// permission) is not retried, with a pass each time, every second.
const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(60);

/// Sends `()` for every transaction that changed our table, other than
/// kvmnet's own, until the receiver is dropped.
pub fn spawn() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut delay = RESTART_MIN;
        loop {
            let started = Instant::now();
            let why = match watch(&tx).await {
                Ok(()) => return,
                Err(why) => why,
            };
            // One that ran for a while died of something new: start over.
            if started.elapsed() > RESTART_MAX {
                delay = RESTART_MIN;
            }
            warn!(error = %why, retry_in = %humantime::format_duration(delay), "nft monitor stopped; restarting it");
            tokio::time::sleep(delay).await;
            delay = next_delay(delay);
            // A flush while it was down would go unseen: run a pass.
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_delay(delay: Duration) -> Duration {
    (delay * 2).min(RESTART_MAX)
}

/// Runs one `nft monitor`; `Ok` when the receiver is gone, `Err` when the
/// monitor ends.
async fn watch(tx: &mpsc::UnboundedSender<()>) -> Result<(), String> {
    let mut command = Command::new("nft");
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
    // It dies with the agent, `kill -9` included: a restarted agent starts
    // its own, and killed agents leave no monitors behind.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = command
        .env("LC_ALL", "C")
        .arg("monitor")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run nft monitor: {e}"))?;
    let stdout = child.stdout.take().ok_or("nft monitor has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // Events of one transaction come first, then "# new generation N by
    // process PID (nft)".
    let mut touched = false;
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| format!("reading nft monitor: {e}"))?
    {
        if let Some(pid) = generation_writer(&line) {
            if std::mem::take(&mut touched) && !nft::is_our_write(pid) && tx.send(()).is_err() {
                return Ok(());
            }
        } else {
            touched |= concerns_us(&line);
        }
    }
    let status = child.wait().await.map_err(|e| e.to_string())?;
    Err(format!("nft monitor exited ({status})"))
}

/// The pid in `# new generation 9 by process 15805 (nft)`; 0 when the line
/// names no process (a kernel-side change), which is never ours.
fn generation_writer(line: &str) -> Option<u32> {
    let rest = line.strip_prefix("# new generation ")?;
    Some(
        rest.split_once(" by process ")
            .and_then(|(_, p)| p.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
    )
}

/// `delete table inet kvmnet`, `add rule inet kvmnet forward ...`
fn concerns_us(line: &str) -> bool {
    let ours = format!(" {FAMILY} {TABLE}");
    line.match_indices(&ours)
        .any(|(i, _)| matches!(line[i + ours.len()..].chars().next(), None | Some(' ')))
}

#[cfg(test)]
mod tests {
    use super::{concerns_us, generation_writer, next_delay, RESTART_MAX, RESTART_MIN};

    #[test]
    fn restarts_back_off_up_to_a_cap() {
        let delays: Vec<u64> = std::iter::successors(Some(RESTART_MIN), |d| Some(next_delay(*d)))
            .take(8)
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(next_delay(RESTART_MAX), RESTART_MAX);
    }

    #[test]
    fn generation_lines_name_the_writer() {
        assert_eq!(
            generation_writer("# new generation 9 by process 15805 (nft)"),
            Some(15805)
        );
        assert_eq!(generation_writer("# new generation 10"), Some(0));
        assert_eq!(generation_writer("delete table inet kvmnet"), None);
    }

    #[test]
    fn only_our_table_concerns_us() {
        assert!(concerns_us("delete table inet kvmnet"));
        assert!(concerns_us(
            "add rule inet kvmnet forward jump guest_input comment \"kvmnet\""
        ));
        assert!(!concerns_us("add table ip filter"));
        assert!(!concerns_us("delete table inet kvmnet2"));
        assert!(!concerns_us("# new generation 9 by process 15805 (nft)"));
    }
}
