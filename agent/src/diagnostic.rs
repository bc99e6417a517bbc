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
            // Tabs would misalign the caret; show them as one space each.
            let shown = line.replace('\t', " ");
            let available = shown.chars().count().saturating_sub(loc.column - 1).max(1);
            writeln!(f, "{pad} |")?;
            writeln!(f, "{} | {shown}", loc.line)?;
            writeln!(
                f,
                "{pad} | {}{}",
                " ".repeat(loc.column - 1),
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
    fn spans_past_the_end_do_not_panic() {
        let loc = Location::from_span("é", 1..99);
        assert_eq!(loc.line, 1);
    }
}
