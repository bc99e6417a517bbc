//! Changes to our table, as they happen: `nft flush ruleset` makes no
//! rtnetlink event, so the daemon runs `nft monitor` as one more trigger,
//! restarted whenever it dies.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tracing::warn;

use super::{nft, FAMILY, TABLE};

/// Wait before restarting a monitor that died.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Sends `()` for every transaction that changed our table, other than
/// kvmnet's own, until the receiver is dropped.
pub fn spawn() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let why = match watch(&tx).await {
                Ok(()) => return,
                Err(why) => why,
            };
            warn!(error = %why, "nft monitor stopped; restarting it");
            tokio::time::sleep(RESTART_DELAY).await;
            // A flush while it was down would go unseen: run a pass.
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Runs one `nft monitor`; `Ok` when the receiver is gone, `Err` when the
/// monitor ends.
async fn watch(tx: &mpsc::UnboundedSender<()>) -> Result<(), String> {
    let mut child = Command::new("nft")
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
    use super::{concerns_us, generation_writer};

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
