//! Running commands: outputs that explain themselves when an assertion fails,
//! and background processes that die with their guard.

use std::fmt;
use std::fs::File;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::NamedTempFile;

/// The result of a finished command, together with the command line, so that
/// every failure message says what ran and what it printed.
pub struct CmdOutput {
    pub command: String,
    pub output: Output,
}

impl CmdOutput {
    /// Exit code; `None` when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Stdout as JSON (`--output json`); panics with the whole output when
    /// it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|e| panic!("not JSON ({e}): {self}"))
    }

    /// Panics with the full output unless the command exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "command failed\n{self}");
        self
    }

    /// Panics with the full output unless the command exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "unexpected exit code\n{self}");
        self
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.command)?;
        writeln!(f, "status: {}", self.output.status)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout().trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr().trim_end())
    }
}

impl fmt::Debug for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `program arg arg ...`, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion with stdin closed. Panics only if it cannot start.
#[track_caller]
pub(crate) fn run(mut cmd: Command) -> CmdOutput {
    let command = describe(&cmd);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
    CmdOutput { command, output }
}

/// A process running in the background, killed (SIGKILL) and reaped when
/// dropped. Its stdout and stderr go to temporary files rather than pipes, so
/// a chatty daemon never blocks on a full pipe and the test can read what it
/// printed so far.
pub struct Background {
    command: String,
    child: Child,
    stdout: NamedTempFile,
    stderr: NamedTempFile,
}

impl Background {
    #[track_caller]
    pub fn spawn(mut cmd: Command) -> Self {
        let command = describe(&cmd);
        let stdout = NamedTempFile::new().expect("create stdout log");
        let stderr = NamedTempFile::new().expect("create stderr log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(reopen(&stdout))
            .stderr(reopen(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        Background {
            command,
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the process has written to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout)
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr)
    }

    /// Sends `signal` (e.g. SIGHUP to make the agent run a pass).
    pub fn signal(&self, signal: Signal) {
        // Ignore ESRCH: the process may have exited on its own already.
        let _ = kill(self.nix_pid(), signal);
    }

    /// Stops the process with SIGTERM (SIGKILL after `grace`) and returns its
    /// exit status and everything it printed, e.g. to check a clean shutdown.
    pub fn stop(mut self, grace: Duration) -> CmdOutput {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        let status = loop {
            match self.child.try_wait().expect("wait for background process") {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    self.signal(Signal::SIGKILL);
                    break self.child.wait().expect("wait for background process");
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        CmdOutput {
            command: self.command.clone(),
            output: Output {
                status,
                stdout: self.stdout().into_bytes(),
                stderr: self.stderr().into_bytes(),
            },
        }
    }

    fn nix_pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Background(pid {}: {})", self.pid(), self.command)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.is_running() {
            self.signal(Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn reopen(file: &NamedTempFile) -> File {
    file.reopen().expect("reopen log file")
}

fn read_lossy(file: &NamedTempFile) -> String {
    String::from_utf8_lossy(&std::fs::read(file.path()).unwrap_or_default()).into_owned()
}
