//! Running the real `kvmnet-agent` binary inside a host namespace, against
//! private config, state and run directories.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::cmd::{run, Background, CmdOutput};
use crate::link::attach_to_bridge;
use crate::netns::Netns;

/// The `kvmnet-agent` binary under test: `$KVMNET_AGENT_BIN`, else the one
/// cargo built next to this test binary (`target/<profile>/deps/..`). It is
/// not a dependency of this crate, so build it first.
#[track_caller]
pub fn agent_bin() -> PathBuf {
    let bin = match std::env::var_os("KVMNET_AGENT_BIN") {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = std::env::current_exe().expect("locate the test binary");
            // target/<profile>/deps/<test> -> target/<profile>/kvmnet-agent
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test binary in target/<profile>/deps");
            profile_dir.join("kvmnet-agent")
        }
    };
    assert!(
        bin.is_file(),
        "kvmnet-agent not found at {}: build it first with `cargo build -p kvmnet` \
         (same profile as the tests), or point KVMNET_AGENT_BIN at it",
        bin.display()
    );
    bin
}

/// A host namespace plus a temporary directory holding `config/`, `state/`
/// and `run/` for one agent.
#[derive(Debug)]
pub struct AgentEnv {
    // Declared first so it drops first: its processes (agent, dnsmasq) die
    // before their directories are removed.
    host: Netns,
    bin: PathBuf,
    dir: TempDir,
}

impl AgentEnv {
    /// A fresh environment for the built agent (see [`agent_bin`]).
    // No `Default`: creating a namespace is not a default value.
    #[allow(clippy::new_without_default)]
    #[track_caller]
    pub fn new() -> AgentEnv {
        AgentEnv::with_bin(agent_bin())
    }

    /// A fresh environment running `bin` instead of the built agent.
    #[track_caller]
    pub fn with_bin(bin: impl Into<PathBuf>) -> AgentEnv {
        let host = Netns::new("host");
        // 0755 rather than tempfile's 0700, in case a helper such as dnsmasq
        // drops privileges and still has to reach its files.
        let dir = tempfile::Builder::new()
            .prefix("kvmnet-e2e-")
            .permissions(Permissions::from_mode(0o755))
            .tempdir()
            .expect("create agent tempdir");
        for sub in ["config", "state", "run"] {
            std::fs::create_dir(dir.path().join(sub)).expect("create agent dir");
        }
        AgentEnv {
            host,
            bin: bin.into(),
            dir,
        }
    }

    pub fn host(&self) -> &Netns {
        &self.host
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The pid of `network`'s dnsmasq, from the pid file the agent keeps.
    #[track_caller]
    pub fn dnsmasq_pid(&self, network: &str) -> i32 {
        let path = self.run_dir().join(format!("dnsmasq/{network}.pid"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A guest: a new namespace plugged into `bridge` by a veth (`eth0`
    /// inside), with `mac` when given.
    pub fn guest(&self, bridge: &str, mac: Option<&str>) -> Netns {
        let vm = Netns::new("vm");
        attach_to_bridge(self.host(), bridge, &vm, "eth0");
        if let Some(mac) = mac {
            vm.ip_ok(&["link", "set", "eth0", "address", mac]);
        }
        vm
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// Writes `config/<file_name>` atomically (temporary file + rename), so a
    /// watching agent never reads half a file. Returns its path.
    #[track_caller]
    pub fn write_config(&self, file_name: &str, text: &str) -> PathBuf {
        let path = self.config_dir().join(file_name);
        let tmp = self.config_dir().join(format!(".{file_name}.tmp"));
        std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        std::fs::rename(&tmp, &path)
            .unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
        path
    }

    #[track_caller]
    pub fn remove_config(&self, file_name: &str) {
        let path = self.config_dir().join(file_name);
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
    }

    /// Writes every example of `examples/` but the bridged one (its uplink
    /// eno2 is not in the test host; tests/bridged.rs covers that mode), and
    /// makes the host the overlay example's gateway: it holds 10.10.10.1.
    #[track_caller]
    pub fn write_examples(&self) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for entry in std::fs::read_dir(dir).expect("read examples/") {
            let path = entry.expect("an example").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("UTF-8 name");
            if !name.starts_with("bridged") {
                let text = std::fs::read_to_string(&path).expect("read an example");
                self.write_config(name, &text);
            }
        }
        let h = &self.host;
        h.ip_ok(&[
            "link", "add", "under0", "type", "veth", "peer", "name", "under1",
        ]);
        h.set_up("under0");
        h.add_addr("under0", "10.10.10.1/24");
    }

    /// The agent command inside the host namespace:
    /// `kvmnet-agent --config-dir .. --state-dir .. --run-dir .. <args>`.
    pub fn command(&self, args: &[&str]) -> Command {
        let dirs =
            [self.config_dir(), self.state_dir(), self.run_dir()].map(|d| path_str(&d).to_owned());
        // The only place that decides where the global options go: before
        // the subcommand, where clap accepts them whether global or not.
        let mut argv = vec![
            "--config-dir",
            &dirs[0],
            "--state-dir",
            &dirs[1],
            "--run-dir",
            &dirs[2],
        ];
        argv.extend_from_slice(args);
        self.host.command(path_str(&self.bin), &argv)
    }

    /// Runs the agent to completion (`--once`, `--check`, `validate`, ...).
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> CmdOutput {
        run(self.command(args))
    }

    /// Starts the agent as a daemon; it is killed when the guard drops.
    #[track_caller]
    pub fn spawn(&self, args: &[&str]) -> Background {
        Background::spawn(self.command(args))
    }

    /// Starts the agent as a daemon with extra environment variables (as
    /// systemd sets NOTIFY_SOCKET); it is killed when the guard drops.
    #[track_caller]
    pub fn spawn_with_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Background {
        let mut command = self.command(args);
        command.envs(vars.iter().copied());
        Background::spawn(command)
    }
}

#[track_caller]
fn path_str(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("path is not UTF-8: {}", path.display()))
}
