//! Daemon: dnsmasq's log lines forwarded into the agent's log, tagged with
//! the network. dnsmasq writes to a file, not to a pipe of the agent's, so
//! that it keeps running (and logging) while the agent restarts; the daemon
//! follows the files with inotify.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use notify::{EventKind, RecursiveMode, Watcher};

/// Follows `<dir>/<network>.log` files from their current end: each new
/// complete line is logged once. Keep the watcher alive to keep following.
pub fn follow(dir: &Path) -> Result<notify::RecommendedWatcher, String> {
    let offsets: Mutex<HashMap<PathBuf, u64>> = Mutex::new(initial_offsets(dir));
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if !matches!(event.kind, EventKind::Modify(_) | EventKind::Create(_)) {
            return;
        }
        let mut offsets = offsets.lock().unwrap_or_else(|e| e.into_inner());
        for path in event.paths {
            let Some(network) = network_of_log(&path) else {
                continue;
            };
            let offset = offsets.entry(path.clone()).or_insert(0);
            for line in read_new_lines(&path, offset) {
                // dnsmasq starts each line with "dnsmasq[PID]:".
                tracing::info!(network, "{line}");
            }
        }
    })
    .map_err(|e| format!("cannot follow dnsmasq logs in {}: {e}", dir.display()))?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot follow dnsmasq logs in {}: {e}", dir.display()))?;
    Ok(watcher)
}

/// Lines already in the files are not replayed.
fn initial_offsets(dir: &Path) -> HashMap<PathBuf, u64> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| network_of_log(p).is_some())
        .filter_map(|p| Some((p.clone(), std::fs::metadata(&p).ok()?.len())))
        .collect()
}

fn network_of_log(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".log")
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// Complete lines after `offset`, which moves past them. A file that shrank
/// (removed and made anew) is read from its start.
fn read_new_lines(path: &Path, offset: &mut u64) -> Vec<String> {
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    if len < *offset {
        *offset = 0;
    }
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(*offset)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    // A partial last line waits for its end.
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    *offset += complete as u64;
    String::from_utf8_lossy(&bytes[..complete])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_complete_lines_once_and_restarts_after_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.log");
        let mut file = File::create(&path).unwrap();
        write!(file, "one\ntw").unwrap();
        let mut offset = 0;
        assert_eq!(read_new_lines(&path, &mut offset), ["one"]);
        writeln!(file, "o").unwrap();
        assert_eq!(read_new_lines(&path, &mut offset), ["two"]);
        assert!(read_new_lines(&path, &mut offset).is_empty());
        std::fs::write(&path, "new\n").unwrap();
        assert_eq!(read_new_lines(&path, &mut offset), ["new"]);
        assert_eq!(network_of_log(&path).as_deref(), Some("n"));
        assert_eq!(network_of_log(Path::new("/x/n.leases")), None);
    }
}
