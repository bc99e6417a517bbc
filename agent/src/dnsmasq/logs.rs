//! dnsmasq's log: a file per network, `<state-dir>/dnsmasq/<network>.log`,
//! not a pipe of the agent's, so that dnsmasq keeps running (and logging)
//! while the agent restarts. The daemon follows the files with inotify and
//! forwards each line into its own log, tagged with the network. A file is
//! capped at [`LOG_MAX`] bytes: past that it is copied to `<network>.log.1`
//! (replacing the previous copy) and emptied; dnsmasq appends (O_APPEND),
//! so it goes on writing at the new end.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use notify::{EventKind, RecursiveMode, Watcher};

/// The size at which a log file is rotated.
pub const LOG_MAX: u64 = 1024 * 1024;

/// The copy a rotation keeps of `log`.
pub fn rotated(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Rotates `log` when it has grown past `max` bytes: copy, then truncate
/// (lines dnsmasq writes in between are lost, never the file's bound).
/// Returns whether it did.
pub fn cap(log: &Path, max: u64) -> io::Result<bool> {
    let len = match std::fs::metadata(log) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= max {
        return Ok(false);
    }
    std::fs::copy(log, rotated(log))?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(log)?
        .set_len(0)?;
    Ok(true)
}

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
            match cap(&path, LOG_MAX) {
                Ok(true) => *offset = 0,
                Ok(false) => {}
                Err(e) => tracing::warn!(network, error = %e, "cannot rotate {}", path.display()),
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
        assert_eq!(network_of_log(&rotated(&path)), None);
    }

    #[test]
    fn a_log_past_its_cap_is_copied_and_emptied_and_appends_go_on_at_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.log");
        let mut writer = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        writer.write_all(&[b'x'; 100]).unwrap();
        assert!(!cap(&path, 100).unwrap(), "at the cap, kept");
        writer.write_all(b"\n").unwrap();
        assert!(cap(&path, 100).unwrap());
        assert_eq!(std::fs::metadata(rotated(&path)).unwrap().len(), 101);
        writer.write_all(b"after\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"after\n");
    }
}
