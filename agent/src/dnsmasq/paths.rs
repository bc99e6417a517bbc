//! Where an instance's files live: configuration, hosts files and pid under
//! the run directory (gone at reboot, like the processes), leases and the
//! log under the state directory (they survive a reboot).

use std::path::{Path, PathBuf};

/// The `dnsmasq` subdirectories of the agent's run and state directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    pub run: PathBuf,
    pub state: PathBuf,
}

impl Dirs {
    /// Relative directories are made absolute: dnsmasq changes to `/`, and
    /// adoption matches the exact `--conf-file` path.
    pub fn new(run_dir: &Path, state_dir: &Path) -> Dirs {
        let absolute = |dir: &Path| std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Dirs {
            run: absolute(run_dir).join("dnsmasq"),
            state: absolute(state_dir).join("dnsmasq"),
        }
    }

    pub fn instance(&self, network: &str) -> InstancePaths {
        InstancePaths {
            conf: self.run.join(format!("{network}.conf")),
            hosts: self.run.join(format!("{network}.hostsfile")),
            addn_hosts: self.run.join(format!("{network}.addnhosts")),
            servers: self.run.join(format!("{network}.servers")),
            pid: self.run.join(format!("{network}.pid")),
            leases: self.state.join(format!("{network}.leases")),
            log: self.state.join(format!("{network}.log")),
        }
    }

    /// The network of a configuration file name (`<network>.conf`).
    pub fn network_of_conf(file_name: &str) -> Option<&str> {
        file_name.strip_suffix(".conf").filter(|n| !n.is_empty())
    }
}

/// The files of one network's instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstancePaths {
    pub conf: PathBuf,
    pub hosts: PathBuf,
    pub addn_hosts: PathBuf,
    pub servers: PathBuf,
    pub pid: PathBuf,
    pub leases: PathBuf,
    pub log: PathBuf,
}
