//! One converging agent per state directory: the daemon and `--once` hold an
//! advisory `flock` on `<run-dir>/kvmnet.lock` for as long as they may write.
//! Two writers would otherwise start dnsmasq twice for a network, stop each
//! other's instances and rewrite each other's state files. Read-only commands
//! (`--check`, `show`, `leases`, `validate`) take no lock and run beside the
//! daemon. The lock dies with its process, `kill -9` included: there is no
//! stale lock to clean up.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The lock file's name in the run directory.
pub const LOCK_FILE: &str = "kvmnet.lock";

/// Held while it lives.
#[derive(Debug)]
pub struct AgentLock {
    _file: File,
}

/// What `acquire` may wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    No,
    Yes,
}

impl AgentLock {
    /// Takes the lock of `run_dir`. Without waiting, a lock held by another
    /// agent is an error naming its pid.
    pub fn acquire(run_dir: &Path, wait: Wait) -> Result<AgentLock, String> {
        let path = run_dir.join(LOCK_FILE);
        std::fs::create_dir_all(run_dir)
            .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
        let flags = match wait {
            Wait::No => libc::LOCK_EX | libc::LOCK_NB,
            Wait::Yes => libc::LOCK_EX,
        };
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), flags) } == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Err(held_by(&mut file, &path)),
                _ => return Err(format!("cannot lock {}: {err}", path.display())),
            }
        }
        // The holder's pid, for the message of the next agent that tries.
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(AgentLock { _file: file })
    }
}

fn held_by(file: &mut File, path: &Path) -> String {
    let mut text = String::new();
    let holder = match file.read_to_string(&mut text).ok().map(|_| text.trim()) {
        Some(pid) if !pid.is_empty() => format!("pid {pid}"),
        _ => "another process".to_string(),
    };
    format!(
        "another kvmnet-agent ({holder}) is converging with this run and state directory (it holds {}); \
         wait for it to finish, or pass --wait to wait for it",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = AgentLock::acquire(dir.path(), Wait::No).unwrap();
        // flock locks belong to the open file: a second open in the same
        // process conflicts like another process would.
        let refused = AgentLock::acquire(dir.path(), Wait::No).unwrap_err();
        assert!(
            refused.contains(&format!("pid {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        let _second = AgentLock::acquire(dir.path(), Wait::No).unwrap();
    }

    #[test]
    fn a_waiting_agent_gets_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = AgentLock::acquire(dir.path(), Wait::No).unwrap();
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || AgentLock::acquire(&path, Wait::Yes).map(drop));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "the waiter must wait");
        drop(first);
        waiter.join().unwrap().unwrap();
    }
}
