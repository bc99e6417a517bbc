//! Writes what the Debian package ships beside the binary, generated from
//! the agent's clap definition so it cannot drift from `--help`:
//! man pages (section 8: a daemon for the administrator) and bash, zsh and
//! fish completions.
//!
//!   cargo run -p kvmnet-dist -- target/dist
//!
//! writes `<out>/man/kvmnet-agent.8` (+ one page per subcommand) and
//! `<out>/completions/{kvmnet-agent.bash,_kvmnet-agent,kvmnet-agent.fish}`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// The man page's sections beyond what clap knows: files, exit codes, signals.
const EXTRA_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success: valid files, converged, in sync (\fB\-\-check\fR), nothing changed (\fB\-\-once \-\-detailed\-exitcode\fR).
.TP
\fB1\fR
Error: invalid files, a pass that failed, an unreadable directory.
.TP
\fB2\fR
\fB\-\-check\fR found drift; \fB\-\-once \-\-detailed\-exitcode\fR converged and changed something.
.SH SIGNALS
.TP
\fBSIGHUP\fR
Runs a pass now (\fBsystemctl reload kvmnet\-agent\fR).
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop the daemon; the networks and their dnsmasq instances stay up and are adopted by the next start.
.SH FILES
.TP
\fI/etc/kvmnet/networks.d/*.toml\fR, \fI*.yaml\fR, \fI*.yml\fR
The networks, one or more per file.
.TP
\fI/usr/share/kvmnet/kvmnet.schema.json\fR
JSON Schema of the network files, for editors (yaml\-language\-server, Taplo).
.TP
\fI/var/lib/kvmnet\fR
Last good files, DHCP leases, the Prometheus textfile \fIkvmnet.prom\fR.
.TP
\fI/run/kvmnet\fR
dnsmasq configurations and pids, \fIstatus.json\fR.
.TP
\fI/usr/share/doc/kvmnet\-agent/examples/\fR
Example networks and the Git sync environment file.
.SH ENVIRONMENT
.TP
\fBNO_COLOR\fR
When set and not empty, no colours (as \fB\-\-color never\fR).
.TP
\fBKVMNET_LOG\fR
Log filter, e.g. \fBdebug\fR or \fBkvmnet=debug\fR.
.SH "SEE ALSO"
\fBsystemctl\fR(1), \fBdnsmasq\fR(8), \fBnft\fR(8), \fBip\fR(8)
"#;

fn main() -> std::process::ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: kvmnet-dist <output directory>");
        return std::process::ExitCode::from(2);
    };
    match generate(&out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvmnet-dist: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> Result<(), String> {
    let mut cmd = kvmnet::cli::Cli::command();
    cmd.build();
    let man_dir = out.join("man");
    let completions_dir = out.join("completions");
    for dir in [&man_dir, &completions_dir] {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_man_page(&cmd, &man_dir, true)?;
    // clap's generated `help` subcommand gets no page of its own.
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        // `kvmnet-agent validate` has the page kvmnet-agent-validate(8).
        // clap names are 'static; this program writes a few files and exits.
        let name: &'static str =
            Box::leak(format!("{}-{}", cmd.get_name(), sub.get_name()).into_boxed_str());
        let page = sub.clone().name(name);
        write_man_page(&page, &man_dir, false)?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path =
            clap_complete::generate_to(shell, &mut cmd.clone(), cmd.get_name(), &completions_dir)
                .map_err(|e| format!("cannot write {shell} completions: {e}"))?;
        println!("{}", path.display());
    }
    Ok(())
}

fn write_man_page(cmd: &clap::Command, dir: &Path, main_page: bool) -> Result<(), String> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Administration");
    let path = dir.join(format!("{}.8", cmd.get_name()));
    let mut page = Vec::new();
    man.render(&mut page)
        .map_err(|e| format!("cannot render {}: {e}", path.display()))?;
    if main_page {
        page.extend_from_slice(EXTRA_SECTIONS.as_bytes());
    }
    let mut file =
        fs::File::create(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(&page)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}
