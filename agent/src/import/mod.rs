//! `kvmnet-agent import-libvirt`: libvirt's network definitions, as printed
//! by `virsh net-dumpxml`, to a kvmnet network file on stdout.
//!
//! Reads files, stdin, or (`--all`) asks virsh for every network. Prints
//! nothing unless every input converts and the result validates, so that
//! `import-libvirt ... > file` never writes half a migration.

mod libvirt;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::config::load::{self, FileLoad, Format};
use crate::config::model::NetworksFile;
use crate::config::validate::validate;

use libvirt::{convert, Imported};

/// What to import and how to print it.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Files of `virsh net-dumpxml` output; `-` (or none) is stdin.
    pub inputs: Vec<PathBuf>,
    /// Every network virsh knows, active or not.
    pub all: bool,
    /// Drop what cannot be carried over, with a warning, instead of refusing.
    pub lossy: bool,
    pub format: Format,
}

/// One network definition and where it came from.
struct Source {
    label: String,
    xml: String,
}

/// Runs the import; errors and warnings go to stderr.
pub fn run(options: &ImportOptions) -> ExitCode {
    let sources = match read_sources(options) {
        Ok(sources) => sources,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut imported = Vec::new();
    let mut failed = false;
    for source in &sources {
        match convert(&source.xml, options.lossy) {
            Ok(network) => {
                for dropped in &network.dropped {
                    eprintln!("warning: {}: dropped {dropped}", source.label);
                }
                imported.push((source, network));
            }
            Err(refusals) => {
                failed = true;
                for refusal in refusals {
                    eprintln!("error: {}: {refusal}", source.label);
                }
            }
        }
    }
    if failed {
        eprintln!(
            "error: nothing printed (--lossy drops what cannot be carried over, with a warning)"
        );
        return ExitCode::FAILURE;
    }
    let text = render(&imported, options.format);
    let file_name = match options.format {
        Format::Toml => "imported.toml",
        Format::Yaml => "imported.yaml",
    };
    let rejected = validate(vec![FileLoad {
        path: PathBuf::from(file_name),
        result: load::parse_bytes(Path::new(file_name), text.as_bytes(), Some(options.format)),
    }])
    .rejected;
    if !rejected.is_empty() {
        for diagnostic in rejected.iter().flat_map(|r| &r.diagnostics) {
            eprintln!("{diagnostic}");
        }
        eprintln!("error: the imported networks do not validate; nothing printed");
        return ExitCode::FAILURE;
    }
    print!("{text}");
    ExitCode::SUCCESS
}

fn read_sources(options: &ImportOptions) -> Result<Vec<Source>, String> {
    let mut sources = Vec::new();
    if options.all {
        for name in virsh(&["net-list", "--all", "--name"])?
            .lines()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            sources.push(Source {
                label: format!("virsh net-dumpxml {name}"),
                xml: virsh(&["net-dumpxml", name])?,
            });
        }
    }
    let stdin = [PathBuf::from("-")];
    let inputs = if options.inputs.is_empty() && !options.all {
        &stdin[..]
    } else {
        &options.inputs[..]
    };
    for input in inputs {
        let (label, xml) = if input == Path::new("-") {
            let mut xml = String::new();
            std::io::stdin()
                .read_to_string(&mut xml)
                .map_err(|e| format!("reading stdin: {e}"))?;
            ("stdin".to_string(), xml)
        } else {
            let xml = std::fs::read_to_string(input)
                .map_err(|e| format!("reading {}: {e}", input.display()))?;
            (input.display().to_string(), xml)
        };
        sources.push(Source { label, xml });
    }
    Ok(sources)
}

/// Runs virsh (found on PATH) and returns its stdout.
fn virsh(args: &[&str]) -> Result<String, String> {
    let command = format!("virsh {}", args.join(" "));
    let out = Command::new("virsh")
        .args(args)
        .output()
        .map_err(|e| format!("{command}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{command}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("{command}: output is not UTF-8"))
}

/// The networks as one file, each under a comment naming its source.
fn render(imported: &[(&Source, Imported)], format: Format) -> String {
    let mut text = String::new();
    if format == Format::Yaml {
        text.push_str("networks:\n");
    }
    for (source, network) in imported {
        let mut file = NetworksFile::default();
        file.networks
            .insert(network.name.clone(), network.network.clone());
        let comment = format!(
            "# Imported from libvirt ({}) by kvmnet-agent import-libvirt.",
            source.label
        );
        match format {
            Format::Toml => {
                text.push_str(&comment);
                text.push('\n');
                text.push_str(&toml::to_string(&file).expect("a network serializes to TOML"));
                text.push('\n');
            }
            Format::Yaml => {
                let yaml = serde_yaml::to_string(&file).expect("a network serializes to YAML");
                text.push_str(&format!("  {comment}\n"));
                // Below the one `networks:` key every network shares.
                for line in yaml.lines().skip(1) {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    text
}
