//! The command line: the global options and the subcommands.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::config::desired::DesiredState;
use crate::config::diagnostic::Diagnostic;
use crate::config::lastgood::{LastGood, Resolved};
use crate::config::load::{self, FileLoad, Format};
use crate::config::model::HumanDuration;
use crate::core::lock::{AgentLock, Wait};
use crate::daemon::{self, DaemonConfig};
use crate::net::observe::host_links;
use crate::reconcile::Reconciler;
use crate::report::show;
use crate::report::PassKind;

/// Declarative reconcile agent for the virtual networks of a KVM host.
/// Alone it prints this help. With options but without --once, --check or a
/// subcommand (as the systemd unit runs it: --log-format json) it runs as a
/// daemon: it watches the config directory and the kernel, converges and repairs.
#[derive(Debug, Parser)]
#[command(
    name = "kvmnet-agent",
    version,
    about,
    arg_required_else_help = true,
    args_override_self = true
)]
pub struct Cli {
    /// Converge once, print the report; exit 0 when converged, 1 otherwise.
    #[arg(long, conflicts_with = "check")]
    pub once: bool,
    /// With --once: exit 0 when nothing had to change, 2 when the pass
    /// changed something and converged, 1 when it failed (like Terraform's
    /// and Puppet's --detailed-exitcode).
    #[arg(long, requires = "once")]
    pub detailed_exitcode: bool,
    /// Drift audit that changes nothing; exit 0 in sync, 2 on drift, 1 on error.
    #[arg(long)]
    pub check: bool,
    /// Converge even when the config directory declares no networks at all,
    /// removing every network kvmnet runs (refused otherwise).
    #[arg(long)]
    pub allow_empty: bool,
    /// When another agent converges with the same run directory (it holds
    /// <run-dir>/kvmnet.lock), wait for it instead of exiting 1.
    #[arg(long)]
    pub wait: bool,
    /// Daemon: serve Prometheus metrics (/metrics) and /healthz on this
    /// address, e.g. 127.0.0.1:9477; a port alone means loopback.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen_address)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Daemon: time between two full passes (e.g. 30s, 5m).
    #[arg(long, default_value = "30s")]
    pub interval: HumanDuration,
    /// Daemon: format of log lines on stderr.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub log_format: OutputFormat,
    /// Daemon: colours in log lines; auto means on a terminal unless
    /// NO_COLOR is set.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct GlobalOptions {
    /// Directory of desired-state files (*.toml, *.yaml, *.yml).
    #[arg(
        long,
        global = true,
        env = "KVMNET_CONFIG_DIR",
        default_value = "/etc/kvmnet/networks.d"
    )]
    pub config_dir: PathBuf,
    /// Persistent state (DHCP leases, last applied files).
    #[arg(
        long,
        global = true,
        env = "KVMNET_STATE_DIR",
        default_value = "/var/lib/kvmnet"
    )]
    pub state_dir: PathBuf,
    /// Runtime files (dnsmasq configs and pids, status).
    #[arg(
        long,
        global = true,
        env = "KVMNET_RUN_DIR",
        default_value = "/run/kvmnet"
    )]
    pub run_dir: PathBuf,
    /// Format of reports on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether log lines get colours: `auto` on a terminal, unless NO_COLOR
    /// is set to anything but the empty string (no-color.org).
    pub fn enabled(self, no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and validate files or directories (default: the config directory).
    /// Exit 0 when valid, 1 otherwise. Ansible: validate: "kvmnet-agent validate %s".
    Validate {
        /// Files or directories, `-` for standard input; a file's format
        /// comes from its extension, else from --format, else from its contents.
        paths: Vec<PathBuf>,
        /// Format of files whose extension does not say.
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
    },
    /// Print the JSON Schema of the desired-state files.
    Schema,
    /// Desired against observed, per network.
    Show {
        /// Only this network.
        network: Option<String>,
    },
    /// DHCP leases of each network (dynamic and static), like virsh
    /// net-dhcp-leases.
    Leases {
        /// Only this network.
        network: Option<String>,
    },
    /// Print a network file equivalent to libvirt networks (`virsh
    /// net-dumpxml` output), one network per input. What cannot be carried
    /// over exactly is refused with its XML path; exit 1 then, printing
    /// nothing.
    ImportLibvirt {
        /// XML files; `-` or none reads stdin.
        files: Vec<PathBuf>,
        /// Every network of `virsh net-list --all`, through `virsh net-dumpxml`.
        #[arg(long)]
        all: bool,
        /// Drop what cannot be carried over, with a warning, instead of refusing.
        #[arg(long)]
        lossy: bool,
        /// Format of the printed file.
        #[arg(long, value_enum, default_value_t = FileFormat::Toml)]
        format: FileFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    Toml,
    Yaml,
}

impl From<FileFormat> for Format {
    fn from(f: FileFormat) -> Format {
        match f {
            FileFormat::Toml => Format::Toml,
            FileFormat::Yaml => Format::Yaml,
        }
    }
}

/// Runs the command line and returns the exit code of the process.
pub fn run(cli: Cli) -> ExitCode {
    if cli.once || cli.check {
        if let Some(command) = &cli.command {
            eprintln!("error: --once and --check do not take a subcommand ({command:?})");
            return ExitCode::from(2);
        }
        let kind = if cli.once {
            PassKind::Converge
        } else {
            PassKind::Check
        };
        let guards = Guards {
            allow_empty: cli.allow_empty,
            wait: lock_wait(cli.wait),
        };
        return block_on(pass_command(
            &cli.global,
            kind,
            guards,
            cli.detailed_exitcode,
        ));
    }
    match cli.command {
        Some(Command::Validate { paths, format }) => {
            let paths = if paths.is_empty() {
                vec![cli.global.config_dir.clone()]
            } else {
                paths
            };
            validate_command(&paths, format.map(Format::from), cli.global.output)
        }
        Some(Command::Schema) => {
            out(&crate::config::model::json_schema());
            ExitCode::SUCCESS
        }
        Some(Command::Show { network }) => block_on(show_command(&cli.global, network.as_deref())),
        Some(Command::Leases { network }) => leases_command(&cli.global, network.as_deref()),
        Some(Command::ImportLibvirt {
            files,
            all,
            lossy,
            format,
        }) => crate::import::run(&crate::import::ImportOptions {
            inputs: files,
            all,
            lossy,
            format: format.into(),
        }),
        None => {
            let color = cli.color.enabled(
                std::env::var_os("NO_COLOR").as_deref(),
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            );
            init_logging(cli.log_format, color);
            let config = DaemonConfig {
                config_dir: cli.global.config_dir.clone(),
                state_dir: cli.global.state_dir.clone(),
                metrics_listen: cli.metrics_listen,
                run_dir: cli.global.run_dir.clone(),
                interval: cli.interval.0,
                allow_empty: cli.allow_empty,
                wait: lock_wait(cli.wait),
            };
            block_on(async {
                match daemon::run(config).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}

/// Logs go to stderr (journald under systemd), as text or JSON lines.
fn init_logging(format: OutputFormat, ansi: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KVMNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        OutputFormat::Json => builder.json().init(),
        OutputFormat::Text => builder.init(),
    }
}

fn block_on(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(f),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The desired state of the config directory. A directory that cannot be
/// read is an error that stops the command: never "no networks, delete all".
fn load_desired(global: &GlobalOptions) -> Result<Resolved, String> {
    LastGood::new(&global.state_dir)
        .load_dir(&global.config_dir)
        .map_err(|e| e.to_string())
}

/// What protects a converging pass from another agent and from an emptied
/// config directory.
#[derive(Debug, Clone, Copy)]
struct Guards {
    allow_empty: bool,
    wait: Wait,
}

fn lock_wait(wait: bool) -> Wait {
    if wait {
        Wait::Yes
    } else {
        Wait::No
    }
}

async fn pass_command(
    global: &GlobalOptions,
    kind: PassKind,
    guards: Guards,
    detailed: bool,
) -> ExitCode {
    // Held until the process exits: one converging agent at a time.
    let _lock = match kind {
        PassKind::Check => None,
        PassKind::Converge => match AgentLock::acquire(&global.run_dir, guards.wait) {
            Ok(lock) => Some(lock),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let resolved = match load_desired(global) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let desired = &resolved.desired;
    let reconciler = match Reconciler::connect(&global.run_dir, &global.state_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if kind == PassKind::Converge && !guards.allow_empty {
        let files = resolved.present.len();
        match reconciler
            .refuse_empty(desired, &global.config_dir, files)
            .await
        {
            Ok(None) => {}
            Ok(Some(why)) => {
                eprintln!("error: {why}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let result = match kind {
        PassKind::Check => reconciler.check(desired).await,
        PassKind::Converge => reconciler.converge(desired).await,
    };
    match result {
        Ok(report) => {
            if kind == PassKind::Converge {
                if let Err(e) = LastGood::new(&global.state_dir).record(&resolved) {
                    eprintln!(
                        "warning: cannot record the last good files in {}: {e}",
                        global.state_dir.display()
                    );
                }
            }
            match global.output {
                OutputFormat::Json => out(&(report.to_json() + "\n")),
                OutputFormat::Text => out(&report.to_text()),
            }
            if detailed {
                ExitCode::from(report.detailed_exit_code())
            } else {
                ExitCode::from(report.exit_code())
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn show_command(global: &GlobalOptions, network: Option<&str>) -> ExitCode {
    let desired = match load_desired(global) {
        Ok(r) => r.desired,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reconciler = match Reconciler::connect(&global.run_dir, &global.state_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The side by side view is the kernel's; the drift is a whole check's.
    let (observed, check) = match reconciler.check_observed(&desired).await {
        Ok(checked) => checked,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Overlay networks as this host runs them (its peer address, its role).
    let desired = desired.on_host(&host_links(&observed.kernel));
    let dnsmasq_pids = reconciler.dnsmasq_pids(&desired);
    let views = show::views(&desired, &observed, &check, &dnsmasq_pids, network);
    if let Some(name) = network {
        if views.is_empty() {
            eprintln!(
                "error: no network named {name:?} in {}",
                global.config_dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    match global.output {
        OutputFormat::Json => {
            out(&(serde_json::to_string_pretty(&views).expect("views serialize") + "\n"))
        }
        OutputFormat::Text => out(&show::to_text(&views, &check.host.drift)),
    }
    ExitCode::SUCCESS
}

/// Reads each network's lease file (a missing one has no leases).
fn leases_command(global: &GlobalOptions, network: Option<&str>) -> ExitCode {
    use crate::dnsmasq::{leases, paths::Dirs, table};
    let desired = match load_desired(global) {
        Ok(r) => r.desired,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(name) = network.filter(|n| !desired.networks.contains_key(*n)) {
        eprintln!(
            "error: no network named {name:?} in {}",
            global.config_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let dirs = Dirs::new(&global.run_dir, &global.state_dir);
    let mut rows = Vec::new();
    for net in desired
        .networks
        .values()
        .filter(|n| network.is_none_or(|name| n.name == name))
    {
        let path = dirs.instance(&net.name).leases;
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        rows.extend(table::rows(net, &leases::parse(&text)));
    }
    match global.output {
        OutputFormat::Json => {
            out(&(serde_json::to_string_pretty(&rows).expect("leases serialize") + "\n"))
        }
        OutputFormat::Text => out(&table::to_text(&rows)),
    }
    ExitCode::SUCCESS
}

/// Loads the given files and directories (a directory as the daemon reads
/// it; `format` is for files without a telling extension, which a
/// directory's are not); an unreadable directory becomes a diagnostic of
/// its own.
fn load_paths(paths: &[PathBuf], format: Option<Format>) -> Vec<FileLoad> {
    let mut loads = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            loads.push(load_stdin(format));
        } else if path.is_dir() {
            match load::load_dir(path) {
                Ok(files) => loads.extend(files),
                Err(e) => loads.push(FileLoad {
                    path: path.clone(),
                    result: Err(vec![Diagnostic::file_level(path, e.to_string())]),
                }),
            }
        } else {
            loads.push(load::load_file(path, format));
        }
    }
    loads
}

/// `validate -`: the file is standard input, named `<stdin>` in diagnostics.
/// Reads at most the size limit of a file, like a file.
fn load_stdin(format: Option<Format>) -> FileLoad {
    use std::io::Read;
    let path = PathBuf::from("<stdin>");
    let mut bytes = Vec::new();
    let limit = load::MAX_FILE_BYTES;
    let result = match std::io::stdin()
        .lock()
        .take(limit + 1)
        .read_to_end(&mut bytes)
    {
        Ok(_) if bytes.len() as u64 > limit => Err(vec![Diagnostic::file_level(
            &path,
            format!(
                "standard input is bigger than {} MiB; network files are a few KiB",
                limit >> 20
            ),
        )]),
        Ok(_) => load::parse_bytes(&path, &bytes, format),
        Err(e) => Err(vec![Diagnostic::file_level(
            &path,
            format!("cannot read standard input: {e}"),
        )]),
    };
    FileLoad { path, result }
}

#[derive(Serialize)]
struct ValidateReport<'a> {
    valid: bool,
    networks: Vec<&'a str>,
    errors: Vec<&'a Diagnostic>,
}

fn validate_command(paths: &[PathBuf], format: Option<Format>, output: OutputFormat) -> ExitCode {
    let loads = load_paths(paths, format);
    let files = loads.len();
    let state = DesiredState::from_loads(loads);
    let errors: Vec<&Diagnostic> = state.diagnostics().collect();
    let valid = errors.is_empty();
    match output {
        OutputFormat::Json => {
            let report = ValidateReport {
                valid,
                networks: state.networks.keys().map(String::as_str).collect(),
                errors,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serializes")
            );
        }
        OutputFormat::Text => {
            let mut stderr = std::io::stderr().lock();
            for d in &errors {
                let _ = writeln!(stderr, "{d}");
            }
            if valid {
                println!(
                    "ok: {} network(s) in {files} file(s) are valid",
                    state.networks.len()
                );
            } else {
                let _ = writeln!(
                    stderr,
                    "{} error(s) in {} of {files} file(s)",
                    errors.len(),
                    state.rejected.len()
                );
            }
        }
    }
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn out(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `--metrics-listen`: an address with its port, or a port alone, which
/// binds loopback: the endpoint is unauthenticated, so reaching it from
/// elsewhere must be asked for by address.
fn parse_listen_address(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok((std::net::Ipv4Addr::LOCALHOST, port).into());
    }
    text.parse().map_err(|_| {
        format!("{text:?} is neither ADDRESS:PORT (127.0.0.1:9477, [::1]:9477) nor a port")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn no_color_turns_auto_colours_off_and_the_flag_decides_over_it() {
        let set = Some(OsStr::new("1"));
        assert!(ColorChoice::Auto.enabled(None, true));
        assert!(!ColorChoice::Auto.enabled(None, false));
        assert!(!ColorChoice::Auto.enabled(set, true));
        // An empty NO_COLOR counts as unset (no-color.org).
        assert!(ColorChoice::Auto.enabled(Some(OsStr::new("")), true));
        assert!(ColorChoice::Always.enabled(set, false));
        assert!(!ColorChoice::Never.enabled(None, true));
    }

    #[test]
    fn a_metrics_port_alone_listens_on_loopback() {
        assert_eq!(
            parse_listen_address("9477").unwrap(),
            "127.0.0.1:9477".parse().unwrap()
        );
        assert_eq!(
            parse_listen_address("[::]:9477").unwrap(),
            "[::]:9477".parse().unwrap()
        );
        assert!(parse_listen_address("localhost:9477").is_err());
    }
}
