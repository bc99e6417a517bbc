//! Small file helpers shared by the state and report writers.

use std::io;
use std::path::Path;

/// Replaces `path` atomically: readers (node_exporter, `cat status.json`)
/// see the old or the new content, never half of it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".kvmnet-tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
