//! Parsing one file's text into the model, and turning what the TOML and
//! YAML parsers and serde say into diagnostics a person can act on: the key
//! path, the position of the offending value, words instead of Rust types,
//! and a hint for the usual slips (unquoted TOML strings, tabs in YAML).

use std::path::Path;

use crate::diagnostic::{Diagnostic, Location};
use crate::locate::{KeyPath, Locator, Seg, Target};
use crate::model::NetworksFile;

/// Parses a TOML document.
pub fn toml(path: &Path, text: &str) -> Result<NetworksFile, Vec<Diagnostic>> {
    let de = toml::de::Deserializer::parse(text)
        .map_err(|e| vec![toml_diagnostic(path, text, &e, None)])?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut at = key_path(e.path());
        // The message names the field; the path is the table it sits in.
        if e.inner().message().starts_with("unknown field") {
            at.0.pop();
        }
        vec![toml_diagnostic(path, text, e.inner(), Some(&at))]
    })
}

fn toml_diagnostic(
    path: &Path,
    text: &str,
    e: &toml::de::Error,
    at: Option<&KeyPath>,
) -> Diagnostic {
    let mut message = humanize(e.message().trim_end());
    let Some(span) = e.span() else {
        return Diagnostic::file_level(path, with_path(at, message));
    };
    let token = text.get(span.clone()).unwrap_or("");
    let on_value_side = text
        .get(..span.start)
        .is_some_and(|before| before.trim_end().ends_with(['=', '[', ',']));
    if message == "duplicate key" && !token.is_empty() {
        message = format!("duplicate key `{token}`");
    }
    let d = Diagnostic::at(
        path,
        text,
        Location::from_span(text, span),
        with_path(at, message),
    );
    // A bare word where a value belongs is almost always a missing quote:
    // toml then complains about floats or booleans it tried to read.
    let bare = token
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if at.is_none() && bare && on_value_side {
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
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        let parser_location = inner.location().map(|l| {
            let start = offset_of(text, l.line(), l.column());
            Location::from_span(text, start..token_end(text, start))
        });
        // A syntax error has a position but no meaningful key path.
        let mut at = if locator.malformed() {
            KeyPath::root()
        } else {
            key_path(e.path())
        };
        let message = humanize(&strip_yaml_noise(&inner.to_string(), &at));
        let location = if locator.malformed() {
            parser_location
        } else if message.starts_with("unknown field") {
            let location = locator.locate(&at, Target::Key);
            // The message names the field; the path is the map it sits in.
            at.0.pop();
            location
        } else if message.starts_with("missing field") {
            locator.locate(&at, Target::Key)
        } else {
            // serde_yaml places errors about a value at the map that holds
            // it; the index knows where the value itself is.
            locator.locate(&at, Target::Value)
        }
        .or(parser_location);
        let hint = yaml_hint(
            &message,
            location.and_then(|l| {
                text.lines()
                    .nth(l.line - 1)
                    .and_then(|line| line.chars().nth(l.column - 1))
            }),
        );
        let message = with_path(Some(&at), message);
        let d = match location {
            Some(loc) => Diagnostic::at(path, text, loc, message),
            None => Diagnostic::file_level(path, message),
        };
        vec![match hint {
            Some(help) => d.with_help(help),
            None => d,
        }]
    })
}

/// Help for the YAML slips serde's message alone does not explain.
fn yaml_hint(message: &str, pointed: Option<char>) -> Option<&'static str> {
    if pointed == Some('\t') {
        Some("YAML indents with spaces; a tab is not allowed here")
    } else if message.contains("unknown field `<<`") {
        Some("YAML merge keys (<<) are not supported: repeat the keys, or let a template generate them")
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

fn with_path(at: Option<&KeyPath>, message: String) -> String {
    match at {
        Some(at) if !at.0.is_empty() => format!("{at}: {message}"),
        _ => message,
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
        // serde_yaml's words for a list or map where a mode or protocol belongs.
        ("expected a YAML tag starting with '!'", "expected a string"),
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
