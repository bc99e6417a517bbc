//! Reading desired-state files: which files a directory holds, and parsing
//! each into the model with errors located to line and column.
//!
//! The result is per file, so that one broken file never hides (or tears
//! down) the networks of the others.

use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::diagnostic::{Diagnostic, Location};
use crate::config::locate::{Locator, MAX_DEPTH};
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

/// The largest file read. A network file is a few KiB; a bigger one is a
/// mistake (or an attack) and is refused before it is read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// All files of the config directory together.
pub const MAX_DIR_BYTES: u64 = 16 << 20;

/// The desired-state files of `dir`, in lexical order: `.toml`, `.yaml` and
/// `.yml` files (symlinks followed), without hidden files and editor
/// leftovers. The directory itself must pass `check_owner_and_mode`: whoever
/// may write it defines the host's networks.
pub fn config_files(dir: &Path) -> Result<Vec<PathBuf>, DirError> {
    let err = |source| DirError {
        dir: dir.to_path_buf(),
        source,
    };
    let meta = fs::metadata(dir).map_err(err)?;
    check_owner_and_mode(&meta, "directory")
        .map_err(|why| err(io::Error::new(io::ErrorKind::PermissionDenied, why)))?;
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

/// Who may have written a config file or directory, after sshd's
/// StrictModes: its owner must be root (or the user the agent runs as,
/// for `validate` by anyone), it must not be writable by others, and
/// writable by its group only when that group is root. `what` names it.
pub fn check_owner_and_mode(meta: &Metadata, what: &str) -> Result<(), String> {
    let mode = meta.mode() & 0o7777;
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!(
            "the {what} is owned by uid {}, not root: its owner could define the host's networks",
            meta.uid()
        ));
    }
    if mode & 0o002 != 0 {
        return Err(format!(
            "the {what} is writable by others (mode {mode:04o}): anyone could define the host's networks; chmod o-w it"
        ));
    }
    if mode & 0o020 != 0 && meta.gid() != 0 {
        return Err(format!(
            "the {what} is writable by its group gid {} (mode {mode:04o}): its members could define the host's networks; chmod g-w it or chgrp root it",
            meta.gid()
        ));
    }
    Ok(())
}

/// Loads every desired-state file of `dir`, at most `MAX_DIR_BYTES` of
/// them together (the files past it are refused unread).
pub fn load_dir(dir: &Path) -> Result<Vec<FileLoad>, DirError> {
    let mut total = 0u64;
    Ok(config_files(dir)?
        .iter()
        .map(|path| {
            total = total.saturating_add(fs::metadata(path).map_or(0, |m| m.len()));
            if total > MAX_DIR_BYTES {
                return refused(
                    path,
                    format!(
                        "the config directory's files hold more than {} MiB together; this file and the ones after it are not read",
                        MAX_DIR_BYTES >> 20
                    ),
                );
            }
            let result = read_in_dir(dir, path).and_then(|bytes| parse_bytes(path, &bytes, None));
            FileLoad {
                path: path.clone(),
                result,
            }
        })
        .collect())
}

fn refused(path: &Path, message: String) -> FileLoad {
    FileLoad {
        path: path.to_path_buf(),
        result: Err(vec![Diagnostic::file_level(path, message)]),
    }
}

/// Reads a file of the config directory: a regular file, or a symlink
/// whose target lies inside the directory (a Kubernetes ConfigMap's
/// `name.yaml -> ..data/name.yaml`). A link out of it (`evil.yaml ->
/// /etc/shadow`) is refused unread, so that none of the target's lines can
/// reach the status file, the log or `validate`'s output.
fn read_in_dir(dir: &Path, path: &Path) -> Result<Vec<u8>, Vec<Diagnostic>> {
    let err = |message: String| vec![Diagnostic::file_level(path, message)];
    let link = fs::symlink_metadata(path).map_err(|e| err(format!("cannot read file: {e}")))?;
    if link.file_type().is_symlink() {
        let target =
            fs::canonicalize(path).map_err(|e| err(format!("cannot resolve symlink: {e}")))?;
        let inside = fs::canonicalize(dir).is_ok_and(|dir| target.starts_with(dir));
        if !inside {
            let message = format!(
                "is a symlink to {}, outside the config directory: not read",
                target.display()
            );
            return Err(vec![Diagnostic::file_level(path, message).with_help(
                "a config file is a regular file, or a symlink to one inside the directory (like a ConfigMap's ..data/)",
            )]);
        }
    }
    read_file(path).map_err(err)
}

/// Reads one file, refusing what no config file is: not a regular file,
/// writable by others (`check_owner_and_mode`), bigger than
/// `MAX_FILE_BYTES`. Never reads more than that.
fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let file = File::open(path).map_err(|e| format!("cannot read file: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read file: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    check_owner_and_mode(&meta, "file")?;
    let too_big = || {
        format!(
            "the file is bigger than {} MiB ({} bytes); network files are a few KiB",
            MAX_FILE_BYTES >> 20,
            meta.len()
        )
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read file: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Loads one file named on the command line. `format` applies when the
/// extension does not say (instead of sniffing the contents): `validate
/// --format yaml dir/` must not read the directory's `.toml` files as YAML.
pub fn load_file(path: &Path, format: Option<Format>) -> FileLoad {
    let result = match read_file(path) {
        Ok(bytes) => parse_bytes(path, &bytes, format),
        Err(message) => Err(vec![Diagnostic::file_level(path, message)]),
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
    // Zero bytes is what a reader sees of a file rewritten in place
    // (truncated, not yet written): rejected, so that its networks keep
    // their last good version rather than being removed. A file meant to
    // declare nothing says so with a comment.
    if bytes.is_empty() {
        return Err(vec![Diagnostic::file_level(
            path,
            "the file is empty (0 bytes; being written?); its networks keep their last good version. \
             To declare no networks, put a comment in it or delete it",
        )]);
    }
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
    // The position index comes first: it stops at a file nested too deep,
    // before the parsers see it.
    let locator = match format {
        Format::Toml => Locator::for_toml(&text),
        Format::Yaml => Locator::for_yaml(&text),
    };
    if let Some(at) = locator.too_deep() {
        return Err(vec![Diagnostic::at(
            path,
            &text,
            at,
            format!("maps and lists nest deeper than {MAX_DEPTH} levels here"),
        )
        .with_help("a network file nests a few levels; this is not one")]);
    }
    let file = match format {
        Format::Toml => parse::toml(path, &text, &locator),
        Format::Yaml => parse::yaml(path, &text, &locator),
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
    fn comment_only_files_define_nothing_and_zero_bytes_are_rejected() {
        assert!(parse("a.yaml", "# nothing yet\n")
            .unwrap()
            .networks
            .is_empty());
        assert!(parse("a.toml", "\n").unwrap().networks.is_empty());
        for name in ["a.toml", "a.yaml"] {
            let err = parse(name, "").unwrap_err();
            assert!(err[0].message.contains("the file is empty"), "{err:?}");
        }
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

    fn messages(loads: &[FileLoad]) -> Vec<String> {
        loads
            .iter()
            .flat_map(|l| l.result.as_ref().err().into_iter().flatten())
            .map(|d| format!("{}: {d}", d.file.display()))
            .collect()
    }

    #[test]
    fn symlinks_out_of_the_directory_are_refused_unread() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("shadow");
        fs::write(&secret, "root:SECRET-HASH:19000:0:99999:7:::\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        symlink(&secret, dir.path().join("evil.yaml")).unwrap();
        // A ConfigMap: name.toml -> ..data/name.toml, ..data -> ..2024_x/.
        fs::create_dir(dir.path().join("..2024_x")).unwrap();
        fs::write(
            dir.path().join("..2024_x/cm.toml"),
            "[networks.cm]\nmode = \"open\"\n",
        )
        .unwrap();
        symlink("..2024_x", dir.path().join("..data")).unwrap();
        symlink("..data/cm.toml", dir.path().join("cm.toml")).unwrap();

        let loads = load_dir(dir.path()).unwrap();
        assert_eq!(loads.len(), 2);
        assert!(loads[0]
            .result
            .as_ref()
            .unwrap()
            .networks
            .contains_key("cm"));
        let text = messages(&loads).join("\n");
        assert!(
            text.contains("evil.yaml") && text.contains("outside the config directory"),
            "{text}"
        );
        assert!(!text.contains("SECRET"), "{text}");
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap()
    }

    #[test]
    fn files_and_directories_others_may_write_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        fs::write(&file, "[networks.a]\nmode = \"open\"\n").unwrap();
        chmod(&file, 0o666);
        let text = messages(&load_dir(dir.path()).unwrap()).join("\n");
        assert!(text.contains("writable by others (mode 0666)"), "{text}");
        chmod(&file, 0o644);
        assert!(messages(&load_dir(dir.path()).unwrap()).is_empty());

        chmod(dir.path(), 0o777);
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("directory is writable by others (mode 0777)"),
            "{err}"
        );
        chmod(dir.path(), 0o700);
    }

    #[test]
    #[ignore = "needs root (chown): scripts/test.sh runs it"]
    fn writable_by_group_root_only_and_owned_by_root() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        fs::write(&file, "[networks.a]\nmode = \"open\"\n").unwrap();
        // Writable by its group: fine when the group is root's.
        chmod(&file, 0o664);
        std::os::unix::fs::chown(&file, None, Some(0)).unwrap();
        assert!(messages(&load_dir(dir.path()).unwrap()).is_empty());
        std::os::unix::fs::chown(&file, None, Some(4242)).unwrap();
        let text = messages(&load_dir(dir.path()).unwrap()).join("\n");
        assert!(text.contains("writable by its group gid 4242"), "{text}");
        // Owned by someone else than root (or us).
        chmod(&file, 0o644);
        std::os::unix::fs::chown(&file, Some(4242), None).unwrap();
        let text = messages(&load_dir(dir.path()).unwrap()).join("\n");
        assert!(text.contains("owned by uid 4242"), "{text}");
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let load = load_file(dir.path(), Some(Format::Toml));
        let text = messages(&[load]).join("\n");
        assert!(text.contains("not a regular file"), "{text}");
    }

    #[test]
    fn big_files_and_directories_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let mut big = "# padding\n".repeat((MAX_FILE_BYTES / 10) as usize);
        big.push_str("[networks.big]\nmode = \"open\"\n");
        fs::write(dir.path().join("big.toml"), &big).unwrap();
        let text = messages(&load_dir(dir.path()).unwrap()).join("\n");
        assert!(text.contains("bigger than 1 MiB"), "{text}");

        // Sixteen files just under the limit fill the directory's budget.
        fs::remove_file(dir.path().join("big.toml")).unwrap();
        let almost = "#".repeat(MAX_FILE_BYTES as usize - 1) + "\n";
        for i in 0..17 {
            fs::write(dir.path().join(format!("f{i:02}.toml")), &almost).unwrap();
        }
        let loads = load_dir(dir.path()).unwrap();
        assert!(loads[..16].iter().all(|l| l.result.is_ok()));
        let text = messages(&loads).join("\n");
        assert!(
            text.contains("f16.toml") && text.contains("more than 16 MiB together"),
            "{text}"
        );
    }

    /// The worst cases of nesting, each 1 MiB: refused at the 65th level
    /// (TOML's parser stops by itself a little later), in time linear in
    /// the input.
    #[test]
    fn deep_nesting_is_refused_quickly() {
        let mib = MAX_FILE_BYTES as usize;
        let indented: String = (0..)
            .map(|i: usize| format!("{}k{i}:\n", " ".repeat(i)))
            .scan(0, |len, line| {
                *len += line.len();
                (*len < mib).then_some(line)
            })
            .collect();
        let cases = [
            ("flow.yaml", "[".repeat(mib)),
            ("maps.yaml", "{a: ".repeat(mib / 4)),
            ("indented.yaml", indented),
            ("dashes.yaml", "- ".repeat(mib / 2)),
            ("arrays.toml", format!("a = {}", "[".repeat(mib - 4))),
            (
                "tables.toml",
                format!("a = {}", "{b = ".repeat((mib - 4) / 5)),
            ),
            (
                "dotted.toml",
                format!("{} = 1\n", vec!["a"; mib / 2 - 4].join(".")),
            ),
            (
                "headers.toml",
                format!("[{}]\n", vec!["a"; mib / 2 - 4].join(".")),
            ),
        ];
        for (name, text) in cases {
            assert!(text.len() <= mib, "{name}");
            let started = std::time::Instant::now();
            let err = parse_bytes(Path::new(name), text.as_bytes(), None).unwrap_err();
            let took = started.elapsed();
            assert!(
                err[0].message.contains("deeper than 64 levels"),
                "{name}: {}",
                err[0]
            );
            // The TOML parser takes some 1.5 s for 1 MiB in a debug build,
            // 0.1 s in a release build; the YAML cases stop within 40 ms.
            let limit = if cfg!(debug_assertions) { 4000 } else { 400 };
            assert!(took.as_millis() < limit, "{name}: {took:?}");
        }
    }

    #[test]
    fn missing_directory_is_an_error() {
        let err = config_files(Path::new("/nonexistent/kvmnet")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/kvmnet"));
    }
}
