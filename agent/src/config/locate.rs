//! Where each key and value of a parsed file sits, so that an error found
//! after parsing (validation) can still point at its line and column.
//!
//! Serde models carry no positions; this index is built from a second,
//! position-aware parse of the same text (toml's spanned `DeTable`, YAML
//! parser events) and queried by key path.

use std::collections::HashMap;
use std::fmt;

use toml::de::{DeTable, DeValue};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::config::diagnostic::Location;

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path into a document, such as `networks.default.ip[0].address`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    pub fn key(&self, key: &str) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        KeyPath(segs)
    }

    pub fn index(&self, index: usize) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    /// The network path `networks.<name>`.
    pub fn network(name: &str) -> KeyPath {
        KeyPath::root().key("networks").key(name)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 && matches!(seg, Seg::Key(_)) {
                f.write_str(".")?;
            }
            match seg {
                // Quoted when the key would not read back as one step
                // (`networks."my net"`, `networks."a.b"`, `networks.""`).
                Seg::Key(k)
                    if k.is_empty()
                        || !k
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                {
                    write!(f, "{k:?}")?
                }
                Seg::Key(k) => f.write_str(k)?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// What an error points at: the key itself or its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Key,
    Value,
}

/// Positions of the keys and values of one document.
#[derive(Debug, Default, Clone)]
pub struct Locator {
    keys: HashMap<KeyPath, Location>,
    values: HashMap<KeyPath, Location>,
    duplicates: Vec<DuplicateKey>,
    /// The YAML text is not well-formed: positions past the error are unknown.
    malformed: bool,
}

/// A key given twice in one mapping. TOML parsers refuse these; YAML's serde
/// silently keeps the last one for maps (a network defined twice in one file
/// would vanish), so the YAML index records them to be reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// The path of the key, e.g. `networks.n`.
    pub path: KeyPath,
    pub first: Location,
    pub again: Location,
}

impl Locator {
    /// The location of `path`, or of its nearest ancestor that has one (an
    /// error about a defaulted key points at the table that lacks it).
    pub fn locate(&self, path: &KeyPath, target: Target) -> Option<Location> {
        let mut segs = path.0.clone();
        let mut target = target;
        loop {
            let probe = KeyPath(segs.clone());
            let found = match target {
                Target::Key => self.keys.get(&probe).or_else(|| self.values.get(&probe)),
                Target::Value => self.values.get(&probe).or_else(|| self.keys.get(&probe)),
            };
            if let Some(loc) = found {
                return Some(*loc);
            }
            segs.pop()?;
            // A missing key is best shown at the key of the table that lacks it.
            target = Target::Key;
        }
    }

    /// Whether the YAML parser stopped at a syntax error.
    pub fn malformed(&self) -> bool {
        self.malformed
    }

    /// Keys given twice in one mapping (YAML only), in document order.
    pub fn duplicate_keys(&self) -> &[DuplicateKey] {
        &self.duplicates
    }

    pub fn for_toml(text: &str) -> Locator {
        let mut locator = Locator::default();
        // Errors are reported by the serde parse; recover what positions we can.
        let (root, _errors) = DeTable::parse_recoverable(text);
        locator.walk_toml_table(text, &KeyPath::root(), root.get_ref());
        locator
    }

    fn walk_toml_table(&mut self, text: &str, path: &KeyPath, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            let child = path.key(key.get_ref());
            self.keys
                .insert(child.clone(), Location::from_span(text, key.span()));
            self.walk_toml_value(text, child, value);
        }
    }

    fn walk_toml_value(&mut self, text: &str, path: KeyPath, value: &toml::Spanned<DeValue<'_>>) {
        self.values
            .insert(path.clone(), Location::from_span(text, value.span()));
        match value.get_ref() {
            DeValue::Table(table) => self.walk_toml_table(text, &path, table),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk_toml_value(text, path.index(i), item);
                }
            }
            _ => {}
        }
    }

    pub fn for_yaml(text: &str) -> Locator {
        let mut builder = YamlLocator::default();
        let mut parser = Parser::new_from_str(text);
        // Syntax errors are reported by the serde parse; keep what was indexed.
        let malformed = parser.load(&mut builder, true).is_err();
        Locator {
            malformed,
            ..builder.locator
        }
    }
}

/// Builds a `Locator` from YAML parser events.
#[derive(Default)]
struct YamlLocator {
    locator: Locator,
    stack: Vec<YamlFrame>,
    documents: usize,
}

enum YamlFrame {
    /// A mapping: the path of the mapping and the key awaiting its value.
    Mapping {
        path: KeyPath,
        key: Option<String>,
        seen: HashMap<String, Location>,
    },
    Sequence {
        path: KeyPath,
        next: usize,
    },
}

impl YamlLocator {
    /// The path the next node takes, or None when the node is a mapping key.
    fn next_value_path(&mut self) -> Option<KeyPath> {
        match self.stack.last_mut() {
            None => Some(KeyPath::root()),
            Some(YamlFrame::Mapping { path, key, .. }) => key.take().map(|k| path.key(&k)),
            Some(YamlFrame::Sequence { path, next }) => {
                *next += 1;
                Some(path.index(*next - 1))
            }
        }
    }

    fn location(mark: Marker, width: usize) -> Location {
        Location {
            line: mark.line(),
            column: mark.col() + 1,
            width: width.max(1),
        }
    }
}

impl MarkedEventReceiver for YamlLocator {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.documents > 1 {
            return;
        }
        match event {
            Event::DocumentStart => self.documents += 1,
            Event::Scalar(value, ..) => match self.next_value_path() {
                Some(path) => {
                    let loc = Self::location(mark, value.chars().count());
                    self.locator.values.insert(path, loc);
                }
                None => {
                    let loc = Self::location(mark, value.chars().count());
                    if let Some(YamlFrame::Mapping { path, key, seen }) = self.stack.last_mut() {
                        let key_path = path.key(&value);
                        match seen.get(&value) {
                            Some(first) => self.locator.duplicates.push(DuplicateKey {
                                path: key_path.clone(),
                                first: *first,
                                again: loc,
                            }),
                            None => {
                                seen.insert(value.clone(), loc);
                            }
                        }
                        self.locator.keys.insert(key_path, loc);
                        *key = Some(value);
                    }
                }
            },
            Event::Alias(_) => {
                if let Some(path) = self.next_value_path() {
                    self.locator.values.insert(path, Self::location(mark, 1));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A complex (non-scalar) mapping key gets no location: it
                // would claim the root's. The parse reports such keys.
                let path = match self.next_value_path() {
                    Some(path) => {
                        self.locator
                            .values
                            .insert(path.clone(), Self::location(mark, 1));
                        path
                    }
                    None => KeyPath::root(),
                };
                self.stack.push(match event {
                    Event::MappingStart(..) => YamlFrame::Mapping {
                        path,
                        key: None,
                        seen: HashMap::new(),
                    },
                    _ => YamlFrame::Sequence { path, next: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(segs: &[&str]) -> KeyPath {
        KeyPath(
            segs.iter()
                .map(|s| match s.parse() {
                    Ok(n) => Seg::Index(n),
                    Err(_) => Seg::Key(s.to_string()),
                })
                .collect(),
        )
    }

    #[test]
    fn toml_positions() {
        let text = "[networks.n1]\nmode = \"nat\"\n\n[[networks.n1.ip]]\naddress = \"10.0.0.1/24\"\ndhcp.ranges = [{ start = \"10.0.0.2\", end = \"10.0.0.9\" }]\n";
        let loc = Locator::for_toml(text);
        let at = |segs: &[&str], t| loc.locate(&path(segs), t).map(|l| (l.line, l.column));
        assert_eq!(at(&["networks", "n1", "mode"], Target::Value), Some((2, 8)));
        assert_eq!(
            at(&["networks", "n1", "ip", "0", "address"], Target::Value),
            Some((5, 11))
        );
        assert_eq!(
            at(
                &["networks", "n1", "ip", "0", "dhcp", "ranges", "0", "end"],
                Target::Value
            ),
            Some((6, 44))
        );
        // A missing key falls back to its parent's key.
        assert_eq!(
            at(&["networks", "n1", "uplink"], Target::Value),
            Some((1, 11))
        );
    }

    #[test]
    fn yaml_positions() {
        let text = "networks:\n  n1:\n    mode: nat\n    ip:\n      - address: 10.0.0.1/24\n        dhcp:\n          ranges: [{ start: 10.0.0.2, end: 10.0.0.9 }]\n";
        let loc = Locator::for_yaml(text);
        let at = |segs: &[&str], t| loc.locate(&path(segs), t).map(|l| (l.line, l.column));
        assert_eq!(at(&["networks", "n1"], Target::Key), Some((2, 3)));
        assert_eq!(
            at(&["networks", "n1", "mode"], Target::Value),
            Some((3, 11))
        );
        assert_eq!(
            at(&["networks", "n1", "ip", "0", "address"], Target::Value),
            Some((5, 18))
        );
        assert_eq!(
            at(
                &["networks", "n1", "ip", "0", "dhcp", "ranges", "0", "end"],
                Target::Value
            ),
            Some((7, 44))
        );
    }

    #[test]
    fn yaml_duplicate_keys_are_recorded() {
        let text =
            "networks:\n  n:\n    mode: nat\n  m: {mode: open, mode: nat}\n  n:\n    mode: open\n";
        let loc = Locator::for_yaml(text);
        let found: Vec<_> = loc
            .duplicate_keys()
            .iter()
            .map(|d| {
                (
                    d.path.to_string(),
                    d.first.line,
                    d.again.line,
                    d.again.column,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("networks.m.mode".to_string(), 4, 4, 19),
                ("networks.n".to_string(), 2, 5, 3)
            ]
        );
        assert!(Locator::for_toml("a = 1\na = 2\n")
            .duplicate_keys()
            .is_empty());
    }

    #[test]
    fn garbage_does_not_panic() {
        for text in ["[[[", "a: [b: {", "\u{0}", "networks:\n  - - -\n ? x\n"] {
            let _ = Locator::for_toml(text);
            let _ = Locator::for_yaml(text);
        }
    }
}
