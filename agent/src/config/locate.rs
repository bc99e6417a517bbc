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
    keys: HashMap<KeyPath, Pos>,
    values: HashMap<KeyPath, Pos>,
    /// The TOML text the spans point into (empty for YAML, whose parser
    /// gives lines and columns).
    text: String,
    duplicates: Vec<DuplicateKey>,
    /// The YAML text is not well-formed: positions past the error are unknown.
    malformed: bool,
    /// The first map or list nested deeper than `MAX_DEPTH`: indexing (and
    /// parsing) stops there.
    too_deep: Option<Location>,
}

/// The deepest nesting of maps and lists a file may have. The model needs
/// 7 levels; the limit keeps the cost of a file linear in its size
/// (every node's path is as long as its depth) and parsers' recursion short.
pub const MAX_DEPTH: usize = 64;

/// Where a key or value sits. TOML spans become lines and columns only when
/// asked for: converting each one while indexing would scan the text up to
/// every node, a cost quadratic in the file's size.
#[derive(Debug, Clone)]
enum Pos {
    At(Location),
    Span(std::ops::Range<usize>),
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
            match found {
                Some(Pos::At(loc)) => return Some(*loc),
                Some(Pos::Span(span)) => {
                    return Some(Location::from_span(&self.text, span.clone()))
                }
                None => {}
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

    /// Where the file nests deeper than `MAX_DEPTH`, if it does.
    pub fn too_deep(&self) -> Option<Location> {
        self.too_deep
    }

    /// Keys given twice in one mapping (YAML only), in document order.
    pub fn duplicate_keys(&self) -> &[DuplicateKey] {
        &self.duplicates
    }

    pub fn for_toml(text: &str) -> Locator {
        let mut locator = Locator {
            text: text.to_string(),
            ..Locator::default()
        };
        // Errors are reported by the serde parse; recover what positions we can.
        let (root, _errors) = DeTable::parse_recoverable(text);
        locator.walk_toml_table(text, &KeyPath::root(), root.get_ref());
        locator
    }

    fn walk_toml_table(&mut self, text: &str, path: &KeyPath, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            let child = path.key(key.get_ref());
            self.keys.insert(child.clone(), Pos::Span(key.span()));
            self.walk_toml_value(text, child, value);
        }
    }

    fn walk_toml_value(&mut self, text: &str, path: KeyPath, value: &toml::Spanned<DeValue<'_>>) {
        let nests = matches!(value.get_ref(), DeValue::Table(_) | DeValue::Array(_));
        if nests && path.0.len() >= MAX_DEPTH {
            self.too_deep
                .get_or_insert(Location::from_span(text, value.span()));
            return;
        }
        self.values.insert(path.clone(), Pos::Span(value.span()));
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
        if let Some(at) = yaml_flow_too_deep(text) {
            return Locator {
                too_deep: Some(Location::from_span(text, at..at + 1)),
                ..Locator::default()
            };
        }
        let mut builder = YamlLocator::default();
        let mut parser = Parser::new_from_str(text);
        // Syntax errors are reported by the serde parse; keep what was
        // indexed. A file nested too deep is not read further.
        let malformed = loop {
            match parser.next_token() {
                Err(_) => break true,
                Ok((Event::StreamEnd, _)) => break false,
                Ok((event, mark)) => {
                    builder.on_event(event, mark);
                    if builder.locator.too_deep.is_some() {
                        break false;
                    }
                }
            }
        };
        Locator {
            malformed,
            ..builder.locator
        }
    }
}

/// Where YAML flow collections (`[`, `{`) nest deeper than `MAX_DEPTH`,
/// found by a scan of the text rather than by the parser: yaml-rust2's
/// scanner keeps a possible key per open flow collection and revisits them
/// all at every token before it hands out the first event, so a file of
/// `[` costs it time quadratic in its size (17 s for 200 KB). Block nesting
/// (indentation) costs it no such thing; the event loop stops that.
fn yaml_flow_too_deep(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    // The last byte that was not a space or tab: a '[', '{' or quote opens
    // a node only where a node may start (not inside `a[0]` or `it's`).
    let mut before = b'\n';
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let node_start = matches!(before, b'\n' | b':' | b',' | b'-' | b'[' | b'{' | b'?');
        match b {
            b'#' if i == 0 || bytes[i - 1].is_ascii_whitespace() => {
                i = line_end(bytes, i);
                continue;
            }
            b'"' | b'\'' if node_start => {
                i = quoted_end(bytes, i);
                before = b;
                continue;
            }
            b'[' | b'{' if node_start => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if matches!(b, b'[' | b'{') && !node_start {
            // Inside a plain scalar (`a[0]`): not structure.
            before = b'a';
        } else if !matches!(b, b' ' | b'\t' | b'\r') {
            before = b;
        }
        i += 1;
    }
    None
}

/// The index of the newline ending the line at `i` (or the end).
fn line_end(bytes: &[u8], i: usize) -> usize {
    bytes[i..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |n| i + n)
}

/// The index after the quoted scalar opening at `i`: `"` with backslash
/// escapes, `'` with `''` for a quote.
fn quoted_end(bytes: &[u8], i: usize) -> usize {
    let quote = bytes[i];
    let mut j = i + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' if quote == b'"' => j += 2,
            b if b == quote => {
                if quote == b'\'' && bytes.get(j + 1) == Some(&b'\'') {
                    j += 2;
                } else {
                    return j + 1;
                }
            }
            _ => j += 1,
        }
    }
    bytes.len()
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
                    self.locator.values.insert(path, Pos::At(loc));
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
                        self.locator.keys.insert(key_path, Pos::At(loc));
                        *key = Some(value);
                    }
                }
            },
            Event::Alias(_) => {
                if let Some(path) = self.next_value_path() {
                    self.locator
                        .values
                        .insert(path, Pos::At(Self::location(mark, 1)));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.locator.too_deep = Some(Self::location(mark, 1));
                    return;
                }
                // A complex (non-scalar) mapping key gets no location: it
                // would claim the root's. The parse reports such keys.
                let path = match self.next_value_path() {
                    Some(path) => {
                        self.locator
                            .values
                            .insert(path.clone(), Pos::At(Self::location(mark, 1)));
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
    fn yaml_flow_depth_skips_quotes_comments_and_plain_brackets() {
        let deep = |open: &str| format!("a: {}", open.repeat(MAX_DEPTH + 1));
        assert_eq!(yaml_flow_too_deep(&deep("[")), Some(3 + MAX_DEPTH));
        assert_eq!(yaml_flow_too_deep(&deep("{b: ")), Some(3 + 4 * MAX_DEPTH));
        for fine in [
            format!("a: \"{}\"", "[".repeat(100)),
            format!("a: '{}'''", "{".repeat(100)),
            format!("# {}\na: 1", "[".repeat(100)),
            format!("a: x{}", "[".repeat(100)),
            "a: [[[1]], [[2]]]\n".repeat(100),
        ] {
            assert_eq!(yaml_flow_too_deep(&fine), None, "{fine}");
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        for text in ["[[[", "a: [b: {", "\u{0}", "networks:\n  - - -\n ? x\n"] {
            let _ = Locator::for_toml(text);
            let _ = Locator::for_yaml(text);
        }
    }
}
