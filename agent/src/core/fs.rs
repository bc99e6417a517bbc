//! Small file helpers shared by the state and report writers.

use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Files only root reads: the status, last good copies, state records.
pub const PRIVATE: u32 = 0o600;
/// Files other users read: node_exporter's metrics textfile, dnsmasq's
/// files (which dnsmasq re-reads after dropping root; their directory
/// keeps everyone else out).
pub const READABLE: u32 = 0o644;

/// Replaces `path` atomically: readers (node_exporter, `cat status.json`)
/// see the old or the new content, never half of it. The file gets exactly
/// `mode`, whatever the umask and whatever a leftover temporary file had.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".kvmnet-tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    io::Write::write_all(&mut file, bytes)?;
    drop(file);
    std::fs::rename(&tmp, path)
}
