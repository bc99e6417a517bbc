//! Reading desired-state files: which files a directory holds, and parsing
//! each into the model with errors located to line and column.
//!
//! The result is per file, so that one broken file never hides (or tears
//! down) the networks of the others.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::diagnostic::{Diagnostic, Location};
use crate::config::locate::Locator;
use crate::config::model::Network;
use crate::config::parse;

/// The syntax of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
}

impl Format {
    /// The format an extension names, if it is one of ours.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// The format of a file without a telling extension (Ansible's
    /// `validate` hands over a temporary file such as `tmpk3x9_q` or
    /// `source`), from its first line that is not blank or a comment: a
    /// TOML table header (`[networks.n]`) or assignment (`networks.n.mode =
    /// "nat"`) means TOML; anything else (`networks:`, `---`, `{networks:
    /// ...}`) means YAML.
    pub fn sniff(text: &str) -> Format {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        match first {
            Some(l) if l.starts_with('[') || is_toml_assignment(l) => Format::Toml,
            _ => Format::Yaml,
        }
    }
}

/// `key = value` with a bare, dotted or quoted key. A YAML line with an `=`
/// has a `:` before it (`networks: {a: "b=c"}`), which TOML keys do not.
fn is_toml_assignment(line: &str) -> bool {
    line.split_once('=')
        .is_some_and(|(key, _)| !key.trim().is_empty() && !key.contains(':'))
}

/// A file that parsed into the model.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub path: PathBuf,
    pub text: String,
    pub locator: Locator,
    pub networks: BTreeMap<String, Network>,
}

/// What became of one file.
#[derive(Debug, Clone)]
pub struct FileLoad {
    pub path: PathBuf,
    pub result: Result<ParsedFile, Vec<Diagnostic>>,
}

/// The config directory could not be listed. Never a reason to delete
/// anything: callers stop, they do not treat it as "no networks".
#[derive(Debug, thiserror::Error)]
#[error("cannot read config directory {}: {source}", dir.display())]
pub struct DirError {
    pub dir: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The desired-state files of `dir`, in lexical order: `.toml`, `.yaml` and
/// `.yml` files (symlinks followed), without hidden files and editor leftovers.
pub fn config_files(dir: &Path) -> Result<Vec<PathBuf>, DirError> {
    let err = |source| DirError {
        dir: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_ignored_name(name) || Format::from_path(Path::new(name)).is_none() {
            continue;
        }
        let path = entry.path();
        // fs::metadata follows symlinks: a dangling link is skipped like a
        // file that vanished between listing and reading.
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => files.push(path),
            _ => continue,
        }
    }
    files.sort();
    Ok(files)
}

/// Hidden files (which also covers git-sync's `..data` and Kubernetes'
/// `..2024_...` directories) and editor leftovers.
fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".tmp")
}

/// Loads every desired-state file of `dir`.
pub fn load_dir(dir: &Path) -> Result<Vec<FileLoad>, DirError> {
    Ok(config_files(dir)?
        .iter()
        .map(|p| load_file(p, None))
        .collect())
}

/// Loads one file. `format` applies when the extension does not say
/// (instead of sniffing the contents): `validate --format yaml dir/` must
/// not read the directory's `.toml` files as YAML.
pub fn load_file(path: &Path, format: Option<Format>) -> FileLoad {
    let result = match fs::read(path) {
        Ok(bytes) => parse_bytes(path, &bytes, format),
        Err(e) => Err(vec![Diagnostic::file_level(
            path,
            format!("cannot read file: {e}"),
        )]),
    };
    FileLoad {
        path: path.to_path_buf(),
        result,
    }
}

/// Parses the contents of one file.
pub fn parse_bytes(
    path: &Path,
    bytes: &[u8],
    format: Option<Format>,
) -> Result<ParsedFile, Vec<Diagnostic>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let lossy = String::from_utf8_lossy(bytes);
            let at = Location::from_span(&lossy, e.valid_up_to()..e.valid_up_to() + 1);
            return Err(vec![Diagnostic::at(
                path,
                &lossy,
                at,
                "file is not valid UTF-8",
            )
            .with_help("save the file as UTF-8")]);
        }
    };
    // A byte order mark (Windows editors write one) is not content, and
    // would shift every column of the first line.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text).to_string();
    let format = Format::from_path(path)
        .or(format)
        .unwrap_or_else(|| Format::sniff(&text));
    let (file, locator) = match format {
        Format::Toml => {
            let locator = Locator::for_toml(&text);
            (parse::toml(path, &text, &locator), locator)
        }
        Format::Yaml => {
            let locator = Locator::for_yaml(&text);
            (parse::yaml(path, &text, &locator), locator)
        }
    };
    Ok(ParsedFile {
        path: path.to_path_buf(),
        networks: file?.networks,
        text,
        locator,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
[networks.nat-network]
mode = "nat"
uplink = "eno1"
bridge = { name = "virbr-nat", stp = true, delay = "2s" }

[[networks.nat-network.ip]]
address = "192.168.10.1/24"
dhcp.ranges = [{ start = "192.168.10.2", end = "192.168.10.254" }]
dhcp.hosts = [{ name = "myhost", ip = "192.168.10.10", mac = "52:54:00:f4:6a:43" }]
"#;

    const YAML: &str = r#"
networks:
  nat-network:
    mode: nat
    uplink: eno1
    bridge: { name: virbr-nat, stp: true, delay: 2s }
    ip:
      - address: 192.168.10.1/24
        dhcp:
          ranges: [{ start: 192.168.10.2, end: 192.168.10.254 }]
          hosts: [{ name: myhost, ip: 192.168.10.10, mac: "52:54:00:f4:6a:43" }]
"#;

    fn parse(name: &str, text: &str) -> Result<ParsedFile, Vec<Diagnostic>> {
        parse_bytes(Path::new(name), text.as_bytes(), None)
    }

    #[test]
    fn toml_and_yaml_give_identical_models() {
        let t = parse("a.toml", TOML).unwrap();
        let y = parse("a.yaml", YAML).unwrap();
        assert_eq!(t.networks, y.networks);
        assert_eq!(t.networks["nat-network"].bridge.delay.0.as_secs(), 2);
    }

    #[test]
    fn unknown_key_is_located() {
        let err = parse("a.toml", "[networks.n]\nmode = \"nat\"\nuplnk = \"eno1\"\n").unwrap_err();
        let d = &err[0];
        assert!(d.message.contains("unknown field `uplnk`"), "{d}");
        assert_eq!(d.location.map(|l| (l.line, l.column)), Some((3, 1)));

        let err = parse(
            "a.yaml",
            "networks:\n  n:\n    mode: nat\n    uplnk: eno1\n",
        )
        .unwrap_err();
        let d = &err[0];
        assert!(d.message.contains("unknown field `uplnk`"), "{d}");
        assert_eq!(d.location.map(|l| l.line), Some(4));
    }

    #[test]
    fn sniffs_format_without_extension() {
        assert!(parse("source", YAML).is_ok());
        assert!(parse("source", TOML).is_ok());
        for (text, format) in [
            ("# c\n\n[networks.n]\n", Format::Toml),
            ("networks.n.mode = \"nat\"\n", Format::Toml),
            ("\"networks\" = {}\n", Format::Toml),
            ("---\nnetworks:\n", Format::Yaml),
            ("networks :\n", Format::Yaml),
            ("{networks: {n: {mode: nat}}}\n", Format::Yaml),
            ("networks: {n: {uplink: \"a=b\"}}\n", Format::Yaml),
            ("%YAML 1.2\n---\n", Format::Yaml),
        ] {
            assert_eq!(Format::sniff(text), format, "{text:?}");
        }
    }

    #[test]
    fn byte_order_mark_is_not_content() {
        let file = parse("a.toml", "\u{feff}[networks.n]\nmode = \"open\"\n").unwrap();
        assert_eq!(file.text.chars().next(), Some('['));
    }

    #[test]
    fn empty_files_define_nothing() {
        assert!(parse("a.yaml", "# nothing yet\n")
            .unwrap()
            .networks
            .is_empty());
        assert!(parse("a.toml", "").unwrap().networks.is_empty());
    }

    #[test]
    fn not_utf8_is_an_error() {
        let err = parse_bytes(Path::new("a.toml"), b"mode = \"\xff\"", None).unwrap_err();
        assert!(err[0].message.contains("UTF-8"));
    }

    #[test]
    fn directory_listing_filters_and_sorts() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "b.yaml",
            "a.toml",
            "c.yml",
            ".hidden.toml",
            "x.toml~",
            "y.toml.swp",
            "z.tmp",
            "readme.md",
            "#a.toml#",
        ] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        fs::create_dir(dir.path().join("d.toml")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a.toml"), dir.path().join("link.toml"))
            .unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("dangling.toml")).unwrap();
        let names: Vec<_> = config_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a.toml", "b.yaml", "c.yml", "link.toml"]);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let err = config_files(Path::new("/nonexistent/kvmnet")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/kvmnet"));
    }
}
