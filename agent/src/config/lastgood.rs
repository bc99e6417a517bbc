//! Last-known-good: the last accepted version of each desired-state file,
//! kept in the state directory. When a file is later rejected (a typo, a
//! half-written template), its networks keep running from this copy, and are
//! still repaired, instead of being left unmanaged or torn down. The copy
//! survives agent restarts.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::desired::DesiredState;
use crate::config::load::{self, parse_bytes, DirError, FileLoad, Format};
use crate::core::fs::{write_atomic, PRIVATE};

/// The store: `<state-dir>/last-good/<file name>` (the config directory is
/// flat, so the file name identifies the file).
pub struct LastGood {
    dir: PathBuf,
}

/// The desired state and the texts of the files it accepted, to be saved as
/// last-known-good once applied.
pub struct Resolved {
    pub desired: DesiredState,
    pub accepted: Vec<(PathBuf, Vec<u8>)>,
    /// The files of the directory, accepted or not.
    pub present: Vec<PathBuf>,
}

impl LastGood {
    pub fn new(state_dir: &Path) -> LastGood {
        LastGood {
            dir: state_dir.join("last-good"),
        }
    }

    fn copy_of(&self, file: &Path) -> Option<PathBuf> {
        Some(self.dir.join(file.file_name()?))
    }

    /// Loads and validates the config directory, with last good copies for
    /// rejected files.
    pub fn load_dir(&self, config_dir: &Path) -> Result<Resolved, DirError> {
        Ok(self.resolve(load::load_dir(config_dir)?))
    }

    /// Records what a converging pass applied (see [`LastGood::save`]).
    pub fn record(&self, resolved: &Resolved) -> io::Result<()> {
        self.save(&resolved.accepted, &resolved.present)
    }

    /// Validates `loads`; a rejected file with a last good copy runs from it.
    pub fn resolve(&self, loads: Vec<FileLoad>) -> Resolved {
        let present: Vec<PathBuf> = loads.iter().map(|l| l.path.clone()).collect();
        let accepted_texts: Vec<(PathBuf, Vec<u8>)> = loads
            .iter()
            .filter_map(|l| {
                l.result
                    .as_ref()
                    .ok()
                    .map(|f| (l.path.clone(), f.text.clone().into_bytes()))
            })
            .collect();
        let first = DesiredState::from_loads(loads.clone());
        if first.rejected.is_empty() {
            return Resolved {
                desired: first,
                accepted: accepted_texts,
                present,
            };
        }

        // Substitute the last good copy of each rejected file and validate again.
        let mut substituted = Vec::new();
        let loads: Vec<FileLoad> = loads
            .into_iter()
            .map(|load| {
                let rejected = first.rejected.iter().any(|r| r.path == load.path);
                let copy = self.copy_of(&load.path).and_then(|p| fs::read(p).ok());
                match (rejected, copy) {
                    (true, Some(bytes)) => {
                        substituted.push(load.path.clone());
                        let format = Format::from_path(&load.path);
                        FileLoad {
                            result: parse_bytes(&load.path, &bytes, format),
                            path: load.path,
                        }
                    }
                    _ => load,
                }
            })
            .collect();
        let second = DesiredState::from_loads(loads);
        let mut desired = first.clone();
        desired.networks = second.networks;
        for network in desired.networks.values_mut() {
            network.last_good = substituted.contains(&network.file);
        }
        // Every rejected file runs from its copy: the set of networks is
        // complete and removals are safe again.
        desired.complete = first.rejected.iter().all(|r| substituted.contains(&r.path))
            && second.rejected.is_empty();
        let accepted = accepted_texts
            .into_iter()
            .filter(|(path, _)| {
                desired
                    .networks
                    .values()
                    .any(|n| n.file == *path && !n.last_good)
            })
            .collect();
        Resolved {
            desired,
            accepted,
            present,
        }
    }

    /// Records the accepted files as last good, and forgets the copies of
    /// files that are gone from the directory (their networks were removed on
    /// purpose). Writes only what changed.
    /// The directory is root's alone (0700) and so are the copies (0600),
    /// whatever the umask: they hold the whole network configuration.
    pub fn save(&self, accepted: &[(PathBuf, Vec<u8>)], present: &[PathBuf]) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
        for (path, text) in accepted {
            let Some(copy) = self.copy_of(path) else {
                continue;
            };
            if fs::read(&copy).ok().as_deref() == Some(text.as_slice()) {
                continue;
            }
            write_atomic(&copy, text, PRIVATE)?;
        }
        let names: Vec<_> = present.iter().filter_map(|p| p.file_name()).collect();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if !names.contains(&entry.file_name().as_os_str()) {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::load_dir;
    use std::path::PathBuf;

    const GOOD: &str =
        "[networks.n]\nmode = \"nat\"\n[[networks.n.ip]]\naddress = \"192.168.10.1/24\"\n";

    #[test]
    fn a_broken_file_runs_from_its_last_good_copy() {
        let config = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let store = LastGood::new(state.path());
        let file = config.path().join("n.toml");
        fs::write(&file, GOOD).unwrap();

        let first = store.resolve(load_dir(config.path()).unwrap());
        assert!(first.desired.complete);
        store.record(&first).unwrap();

        fs::write(&file, GOOD.replace("nat", "nta")).unwrap();
        let broken = store.resolve(load_dir(config.path()).unwrap());
        assert_eq!(
            broken.desired.rejected.len(),
            1,
            "the error is still reported"
        );
        assert!(broken.desired.networks["n"].last_good);
        assert!(broken.desired.complete);
        assert!(
            broken.accepted.is_empty(),
            "a last good copy is never overwritten by itself"
        );

        // A new broken file without a copy: nothing may be pruned.
        fs::write(config.path().join("new.toml"), "[networks.x]\nmode = 1\n").unwrap();
        let unknown = store.resolve(load_dir(config.path()).unwrap());
        assert!(!unknown.desired.complete);
        assert!(unknown.desired.networks.contains_key("n"));
    }

    #[test]
    fn copies_of_deleted_files_are_forgotten() {
        let state = tempfile::tempdir().unwrap();
        let store = LastGood::new(state.path());
        let path = PathBuf::from("/etc/kvmnet/networks.d/a.toml");
        store
            .save(&[(path.clone(), GOOD.as_bytes().to_vec())], &[path])
            .unwrap();
        assert!(state.path().join("last-good/a.toml").exists());
        store.save(&[], &[]).unwrap();
        assert!(!state.path().join("last-good/a.toml").exists());
    }
}
