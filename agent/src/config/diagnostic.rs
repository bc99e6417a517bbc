//! Errors about a user's file, located to line and column and rendered with a
//! snippet and a caret, in the style of rustc and ripgrep.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// A place in a file: 1-based line and column (in characters), and the width
/// of what is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    #[serde(skip)]
    pub width: usize,
}

impl Location {
    /// The location of a byte range of `text`.
    pub fn from_span(text: &str, span: std::ops::Range<usize>) -> Location {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = text[line_start..start].chars().count() + 1;
        // Point at the first line of a multi-line span only.
        let pointed = &text[start..end];
        let width = pointed.split('\n').next().unwrap_or("").chars().count();
        Location {
            line,
            column,
            width: width.max(1),
        }
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    pub message: String,
    /// What would be accepted instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Related places, e.g. the other definition of a duplicate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The source line the location points into, for the snippet.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A problem with the file as a whole (unreadable, not UTF-8, ...).
    pub fn file_level(file: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_path_buf(),
            location: None,
            message: message.into(),
            help: None,
            notes: Vec::new(),
            source_line: None,
        }
    }

    /// A problem at `location` in `text`, the contents of `file`.
    pub fn at(
        file: &Path,
        text: &str,
        location: Location,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            source_line: text.lines().nth(location.line - 1).map(str::to_string),
            location: Some(location),
            ..Diagnostic::file_level(file, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Sets the help of a diagnostic already stored.
    pub fn hint(&mut self, help: impl Into<String>) -> &mut Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// `file:line:column`, or the file alone.
    pub fn position(&self) -> String {
        match self.location {
            Some(l) => format!("{}:{}:{}", self.file.display(), l.line, l.column),
            None => self.file.display().to_string(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        let gutter = self.location.map_or(1, |l| l.line.to_string().len());
        let pad = " ".repeat(gutter);
        writeln!(f, "{pad}--> {}", self.position())?;
        if let (Some(loc), Some(line)) = (self.location, &self.source_line) {
            let (shown, column) = snippet(line, loc.column);
            let available = shown.chars().count().saturating_sub(column - 1).max(1);
            writeln!(f, "{pad} |")?;
            writeln!(f, "{} | {shown}", loc.line)?;
            writeln!(
                f,
                "{pad} | {}{}",
                " ".repeat(column - 1),
                "^".repeat(loc.width.min(available))
            )?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "{pad} = help: {help}")?;
        }
        for note in &self.notes {
            writeln!(f, "{pad} = note: {note}")?;
        }
        Ok(())
    }
}

/// The most of a source line a snippet shows: a minified or generated file
/// can put everything on one line.
const SNIPPET_CHARS: usize = 100;
/// How much of the line before the column a cut snippet keeps.
const SNIPPET_BEFORE: usize = 30;

/// The part of `line` to show and the column of `column` within it. Tabs
/// become one space each, so that the caret lines up; other control
/// characters (a NUL, an escape sequence) must not reach the terminal.
fn snippet(line: &str, column: usize) -> (String, usize) {
    let chars: Vec<char> = line
        .chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => char::REPLACEMENT_CHARACTER,
            c => c,
        })
        .collect();
    if chars.len() <= SNIPPET_CHARS {
        return (chars.into_iter().collect(), column);
    }
    let start = (column - 1).saturating_sub(SNIPPET_BEFORE).min(chars.len());
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let mut shown = String::new();
    let mut column = column - start;
    if start > 0 {
        shown.push('…');
        column += 1;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    (shown, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_to_line_and_column() {
        let text = "a = 1\nbé = \"x\"\n";
        let start = text.find('"').unwrap();
        let loc = Location::from_span(text, start..start + 3);
        assert_eq!((loc.line, loc.column, loc.width), (2, 6, 3));
    }

    #[test]
    fn renders_snippet_with_caret() {
        let text = "mode = \"nta\"\n";
        let d = Diagnostic::at(
            Path::new("n.toml"),
            text,
            Location::from_span(text, 7..12),
            "unknown mode",
        )
        .with_help("one of nat, route");
        let shown = d.to_string();
        assert_eq!(
            shown,
            "error: unknown mode\n --> n.toml:1:8\n  |\n1 | mode = \"nta\"\n  |        ^^^^^\n  = help: one of nat, route\n"
        );
    }

    #[test]
    fn long_lines_are_cut_around_the_column() {
        let line = format!("{}x{}", "a".repeat(500), "b".repeat(500));
        let (shown, column) = snippet(&line, 501);
        assert_eq!(shown.chars().count(), SNIPPET_CHARS + 2);
        assert_eq!(shown.chars().nth(column - 1), Some('x'));
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        assert_eq!(snippet("a\tb", 3), ("a b".to_string(), 3));
        assert_eq!(snippet("a\0\u{1b}[2J", 1).0, "a\u{fffd}\u{fffd}[2J");
    }

    #[test]
    fn spans_past_the_end_do_not_panic() {
        let loc = Location::from_span("é", 1..99);
        assert_eq!(loc.line, 1);
    }
}
