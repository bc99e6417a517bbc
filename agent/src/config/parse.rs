//! Parsing one file's text into the model, and turning what the TOML and
//! YAML parsers and serde say into diagnostics a person can act on: the key
//! path, the position of the offending value (from the `Locator`, since
//! serde knows none), words instead of Rust types, and a hint for the usual
//! slips (unquoted TOML strings, tabs, merge keys and yes/no in YAML).
//!
//! A file is parsed into a generic value first (syntax errors), then each
//! network is deserialized on its own, so that one run reports the first
//! error of every broken network rather than of the first only.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserializer;

use crate::config::diagnostic::{Diagnostic, Location};
use crate::config::locate::{KeyPath, Locator, Seg, Target, MAX_DEPTH};
use crate::config::model::{Network, NetworksFile};

/// Parses a TOML document; `locator` is the position index of the same text.
pub fn toml(path: &Path, text: &str, locator: &Locator) -> Result<NetworksFile, Vec<Diagnostic>> {
    let root: toml::Table = text
        .parse()
        .map_err(|e| vec![toml_syntax_error(path, text, &e)])?;
    let entries = root.into_iter().map(|(key, value)| {
        let networks = match value {
            toml::Value::Table(table) => Ok(table.into_iter().collect()),
            other => Err((other.type_str(), other)),
        };
        (key, networks)
    });
    networks(path, text, locator, entries, |e: &toml::de::Error| {
        e.message().to_string()
    })
}

/// The top level of a document: `networks` and nothing else. Each network is
/// deserialized on its own, so that every broken network of a file reports
/// its (first) error in one run, not only the first network's.
fn networks<V, E>(
    path: &Path,
    text: &str,
    locator: &Locator,
    entries: impl Iterator<Item = (String, Result<Vec<(String, V)>, (&'static str, V)>)>,
    message_of: fn(&E) -> String,
) -> Result<NetworksFile, Vec<Diagnostic>>
where
    V: for<'de> Deserializer<'de, Error = E>,
{
    let mut networks = BTreeMap::new();
    let mut errors = Vec::new();
    for (key, value) in entries {
        if key != "networks" {
            let message = format!("unknown field `{key}`, expected `networks`");
            errors.push(diagnostic(
                path,
                text,
                locator.locate(&KeyPath::root().key(&key), Target::Key),
                message,
            ));
            continue;
        }
        let at = KeyPath::root().key("networks");
        let entries = match value {
            Ok(entries) => entries,
            Err((found, _)) => {
                errors.push(diagnostic(
                    path,
                    text,
                    locator.locate(&at, Target::Value),
                    format!("networks: invalid type: {found}, expected a map of networks by name"),
                ));
                continue;
            }
        };
        for (name, value) in entries {
            let at = at.key(&name);
            match serde_path_to_error::deserialize::<_, Network>(value) {
                Ok(network) => {
                    networks.insert(name, network);
                }
                Err(e) => {
                    let message = message_of(e.inner());
                    errors.push(network_error(path, text, locator, &at, e.path(), message));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(NetworksFile { networks })
    } else {
        Err(errors)
    }
}

/// An error of one network's deserialization, located by its key path.
fn network_error(
    path: &Path,
    text: &str,
    locator: &Locator,
    network: &KeyPath,
    inside: &serde_path_to_error::Path,
    message: String,
) -> Diagnostic {
    let mut at = network.clone();
    at.0.extend(key_path(inside).0);
    let message = humanize(&strip_yaml_noise(&message, &at));
    let location = if message.starts_with("unknown field") {
        let location = locator.locate(&at, Target::Key);
        // The message names the field; the path is the map it sits in.
        at.0.pop();
        location
    } else if message.starts_with("missing field") {
        locator.locate(&at, Target::Key)
    } else {
        locator.locate(&at, Target::Value)
    };
    let hint = yaml_hint(&message, None);
    let message = with_path(&at, message);
    let d = diagnostic(path, text, location, message);
    match hint {
        Some(help) => d.with_help(help),
        None => d,
    }
}

/// A TOML syntax error (or duplicate key), at the parser's span.
fn toml_syntax_error(path: &Path, text: &str, e: &toml::de::Error) -> Diagnostic {
    let mut message = humanize(e.message().trim_end());
    let Some(span) = e.span() else {
        return Diagnostic::file_level(path, message);
    };
    let token = text.get(span.clone()).unwrap_or("");
    let on_value_side = text
        .get(..span.start)
        .is_some_and(|before| before.trim_end().ends_with(['=', '[', ',']));
    if message == "duplicate key" && !token.is_empty() {
        message = format!("duplicate key `{token}`");
    }
    let d = Diagnostic::at(path, text, Location::from_span(text, span), message);
    // A bare word where a value belongs is almost always a missing quote:
    // toml then complains about floats or booleans it tried to read.
    let bare = token
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if bare && on_value_side {
        d.with_help(format!("TOML strings are quoted: \"{token}\""))
    } else {
        d
    }
}

/// Parses a YAML document; `locator` is the position index of the same text.
pub fn yaml(path: &Path, text: &str, locator: &Locator) -> Result<NetworksFile, Vec<Diagnostic>> {
    // An empty document (only comments) defines no networks, like an empty TOML file.
    if text
        .lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---")
    {
        return Ok(NetworksFile::default());
    }
    let duplicates = locator.duplicate_keys();
    if !duplicates.is_empty() {
        return Err(duplicates
            .iter()
            .map(|d| {
                let key = match d.path.0.last() {
                    Some(Seg::Key(key)) => key.as_str(),
                    _ => "",
                };
                Diagnostic::at(
                    path,
                    text,
                    d.again,
                    format!("{}: duplicate key `{key}`", d.path),
                )
                .with_note(format!(
                    "first given at {}:{}:{}",
                    path.display(),
                    d.first.line,
                    d.first.column
                ))
                .with_help("a key may appear once per map; remove or rename one of them")
            })
            .collect());
    }
    let root: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let location = e.location().map(|l| {
            let start = offset_of(text, l.line(), l.column());
            Location::from_span(text, start..token_end(text, start))
        });
        let message = humanize(&strip_yaml_noise(&e.to_string(), &KeyPath::root()));
        let pointed = location.and_then(|l| {
            text.lines()
                .nth(l.line - 1)
                .and_then(|line| line.chars().nth(l.column - 1))
        });
        let hint = yaml_hint(&message, pointed);
        let d = diagnostic(path, text, location, message);
        vec![match hint {
            Some(help) => d.with_help(help),
            None => d,
        }]
    })?;
    let root = match root {
        serde_yaml::Value::Null => serde_yaml::Mapping::new(),
        serde_yaml::Value::Mapping(map) => map,
        other => {
            let message = format!(
                "invalid type: {}, expected a map with the key `networks`",
                yaml_kind(&other)
            );
            let location = locator.locate(&KeyPath::root(), Target::Value);
            return Err(vec![diagnostic(path, text, location, message)]);
        }
    };
    // Keys must be scalars: `[a, b]: ...` or `~: ...` names nothing.
    let mut bad_keys = Vec::new();
    let mut key_of = |key: serde_yaml::Value, at: &KeyPath| match key {
        serde_yaml::Value::String(s) => Some(s),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        other => {
            bad_keys.push(diagnostic(
                path,
                text,
                locator.locate(at, Target::Key),
                with_path(
                    at,
                    format!("a key must be a name, found {}", yaml_kind(&other)),
                ),
            ));
            None
        }
    };
    let networks_at = KeyPath::root().key("networks");
    let mut entries = Vec::new();
    for (key, value) in root {
        let Some(key) = key_of(key, &KeyPath::root()) else {
            continue;
        };
        let networks = match value {
            serde_yaml::Value::Null => Ok(Vec::new()),
            serde_yaml::Value::Mapping(map) => Ok(map
                .into_iter()
                .filter_map(|(name, network)| Some((key_of(name, &networks_at)?, network)))
                .collect()),
            other => Err((yaml_kind(&other), other)),
        };
        entries.push((key, networks));
    }
    let parsed = networks(
        path,
        text,
        locator,
        entries.into_iter(),
        |e: &serde_yaml::Error| e.to_string(),
    );
    if bad_keys.is_empty() {
        parsed
    } else {
        bad_keys.extend(parsed.err().unwrap_or_default());
        Err(bad_keys)
    }
}

fn yaml_kind(value: &serde_yaml::Value) -> &'static str {
    match value {
        serde_yaml::Value::Null => "an empty value",
        serde_yaml::Value::Bool(_) => "boolean",
        serde_yaml::Value::Number(_) => "number",
        serde_yaml::Value::String(_) => "string",
        serde_yaml::Value::Sequence(_) => "list",
        serde_yaml::Value::Mapping(_) => "map",
        serde_yaml::Value::Tagged(_) => "tagged value",
    }
}

/// Help for the YAML slips serde's message alone does not explain.
fn yaml_hint(message: &str, pointed: Option<char>) -> Option<&'static str> {
    if pointed == Some('\t') {
        Some("YAML indents with spaces; a tab is not allowed here")
    } else if message.contains("unknown field `<<`") {
        Some("YAML merge keys (<<) are not supported: repeat the keys, or let a template generate them")
    } else if message.contains("repetition limit exceeded") {
        Some("YAML aliases (*name) here expand to too many values; write the values out")
    } else if message.contains("expected a boolean") {
        Some("YAML booleans are true and false; yes, no, on and off are strings here")
    } else {
        None
    }
}

/// The model path serde was at, as a `KeyPath` (up to an unknown step).
fn key_path(path: &serde_path_to_error::Path) -> KeyPath {
    use serde_path_to_error::Segment;
    let mut out = KeyPath::root();
    for segment in path.iter() {
        out = match segment {
            Segment::Seq { index } => out.index(*index),
            Segment::Map { key } => out.key(key),
            Segment::Enum { variant } => out.key(variant),
            Segment::Unknown => break,
        };
    }
    out
}

fn with_path(at: &KeyPath, message: String) -> String {
    if at.0.is_empty() {
        message
    } else {
        format!("{at}: {message}")
    }
}

/// A diagnostic at `location` when known, else about the file.
fn diagnostic(path: &Path, text: &str, location: Option<Location>, message: String) -> Diagnostic {
    match location {
        Some(loc) => Diagnostic::at(path, text, loc, message),
        None => Diagnostic::file_level(path, message),
    }
}

/// serde_yaml's message without the path it prefixes (ours replaces it) and
/// the " at line L column C" it embeds (the location is shown separately).
fn strip_yaml_noise(message: &str, at: &KeyPath) -> String {
    let mut message = message.to_string();
    while let Some(i) = message.find(" at line ") {
        let rest = &message[i + " at line ".len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let Some(after) = rest[digits..].strip_prefix(" column ") else {
            break;
        };
        let col_digits = after.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 || col_digits == 0 {
            break;
        }
        let end = message.len() - after.len() + col_digits;
        message.replace_range(i..end, "");
    }
    let full = at.to_string();
    match message.split_once(": ") {
        Some((head, rest)) if !head.is_empty() && full.starts_with(head) => rest.to_string(),
        _ => message,
    }
}

/// Serde names Rust types where a user wants to hear about their file.
fn humanize(message: &str) -> String {
    // The TOML parser's own limits on nesting (past ours: the position
    // index stops at MAX_DEPTH levels when the parser gets that far).
    if matches!(
        message,
        "recursion limit" | "cannot recurse further; max recursion depth met"
    ) {
        return format!("maps and lists nest deeper than {MAX_DEPTH} levels here");
    }
    let mut out = message.to_string();
    for (rust, user) in [
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        (
            "expected struct NetworksFile",
            "expected a map with the key `networks`",
        ),
        (
            "expected struct Network",
            "expected a network: a map with at least `mode`",
        ),
        ("unit value", "an empty value"),
        ("expected a sequence", "expected a list"),
        ("wanted string or table", "expected a string"),
    ] {
        out = out.replace(rust, user);
    }
    if let Some(i) = out.find("expected struct ") {
        let name_end = out[i + "expected struct ".len()..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(out.len(), |n| i + "expected struct ".len() + n);
        out.replace_range(i..name_end, "expected a map");
    }
    out
}

/// The byte offset of a 1-based line and 0-based character column.
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    text[line_start.min(text.len())..]
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(text.len(), |(i, _)| line_start + i)
}

/// The end of the token starting at `start`: up to whitespace or YAML flow punctuation.
fn token_end(text: &str, start: usize) -> usize {
    text[start..]
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || matches!(c, ',' | '}' | ']'))
        .map_or(text.len(), |(i, _)| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> KeyPath {
        text.split('.').fold(KeyPath::root(), |p, k| p.key(k))
    }

    #[test]
    fn yaml_noise_is_stripped() {
        assert_eq!(
            strip_yaml_noise(
                "networks.n.bridge: invalid MAC at line 4 column 13",
                &path("networks.n.bridge.mac")
            ),
            "invalid MAC"
        );
        assert_eq!(
            strip_yaml_noise(
                "did not find expected key at line 4 column 4, while parsing a block mapping",
                &KeyPath::root()
            ),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(
            strip_yaml_noise("invalid type: string \"x\"", &path("networks")),
            "invalid type: string \"x\""
        );
    }

    #[test]
    fn yaml_hints() {
        assert!(yaml_hint("found character", Some('\t'))
            .unwrap()
            .contains("tab"));
        assert!(yaml_hint("networks.b: unknown field `<<`, expected", None)
            .unwrap()
            .contains("merge keys"));
        assert!(
            yaml_hint("invalid type: string \"no\", expected a boolean", None)
                .unwrap()
                .contains("true and false")
        );
        assert_eq!(yaml_hint("unknown field `x`", Some('x')), None);
    }

    #[test]
    fn rust_types_become_words() {
        assert_eq!(
            humanize("invalid type: integer `-1`, expected u32"),
            "invalid type: integer `-1`, expected a whole number from 0 to 4294967295"
        );
        assert_eq!(
            humanize("invalid type: sequence, expected struct DhcpConfig"),
            "invalid type: sequence, expected a map"
        );
        assert_eq!(
            humanize("invalid type: unit value, expected struct Network"),
            "invalid type: an empty value, expected a network: a map with at least `mode`"
        );
    }
}
