//! docs/configuration.md is checked against the code it describes:
//!
//! - every key of the JSON Schema `kvmnet-agent schema` prints has an entry in
//!   the key reference: a level-3 heading that is the key's path in a code
//!   span (`` ### `ip[].dhcp.ranges[].start` ``), and every such heading is a
//!   key of the schema. Paths are dotted, `[]` marks the entries of a list,
//!   and keys of a network are written relative to it (the schema's
//!   `networks.<name>.` prefix is dropped);
//! - every entry has a `- Type:` and a `- Default:` line, and the default
//!   line of a key with a default in the schema names that default in a
//!   code span;
//! - every sample diagnostic (`error: ...`, in a code span or a code block)
//!   is a line that `validate` prints for a case of the bad-input corpus;
//! - the complete examples (code blocks whose first line is `# NAME.toml` or
//!   `# NAME.yaml`) together are a valid configuration directory covering
//!   every mode;
//! - a sample run (a code block starting `$ kvmnet-agent validate NAME`)
//!   shows exactly what `validate` prints for the block before it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const DOC: &str = "../docs/configuration.md";
const MODES: [&str; 5] = ["nat", "route", "isolated", "open", "bridge"];

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kvmnet-agent"))
}

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn schema() -> Value {
    let output = agent()
        .arg("schema")
        .output()
        .expect("run kvmnet-agent schema");
    assert!(output.status.success(), "kvmnet-agent schema failed");
    serde_json::from_slice(&output.stdout).expect("the schema is JSON")
}

/// A key of the schema: its path as the doc writes it, and its default when
/// that is a single value.
#[derive(Debug)]
struct Key {
    default: Option<String>,
}

/// Walks a schema node, collecting the key paths below `prefix`. `$ref`s are
/// followed (each at most once along a path, in case the model ever becomes
/// recursive); `anyOf`/`oneOf`/`allOf` alternatives (how `Option<T>` and
/// enums appear) are walked at the same path.
fn walk(
    root: &Value,
    node: &Value,
    prefix: &str,
    refs: &mut Vec<String>,
    out: &mut BTreeMap<String, Key>,
) {
    if let Some(target) = node.get("$ref").and_then(Value::as_str) {
        if !refs.iter().any(|r| r == target) {
            let name = target
                .strip_prefix("#/$defs/")
                .unwrap_or_else(|| panic!("unexpected $ref {target}"));
            refs.push(target.to_string());
            walk(root, &root["$defs"][name], prefix, refs, out);
            refs.pop();
        }
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for alternative in node
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(root, alternative, prefix, refs, out);
        }
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let default = property.get("default").and_then(|d| match d {
                Value::String(s) => Some(s.clone()),
                Value::Bool(_) | Value::Number(_) => Some(d.to_string()),
                _ => None,
            });
            out.insert(path.clone(), Key { default });
            walk(root, property, &path, refs, out);
        }
    }
    if let Some(items) = node.get("items") {
        walk(root, items, &format!("{prefix}[]"), refs, out);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        walk(root, values, &format!("{prefix}.<name>"), refs, out);
    }
}

/// The schema's keys, by the path the doc writes.
fn schema_keys() -> BTreeMap<String, Key> {
    let schema = schema();
    let mut keys = BTreeMap::new();
    walk(&schema, &schema, "", &mut Vec::new(), &mut keys);
    keys.into_iter()
        .map(|(path, key)| {
            let relative = path.strip_prefix("networks.<name>.").unwrap_or(&path);
            (relative.to_string(), key)
        })
        .collect()
}

/// A line of the doc, and whether it lies inside a fenced code block.
struct Line<'a> {
    text: &'a str,
    in_code: bool,
}

fn lines(doc: &str) -> Vec<Line<'_>> {
    let mut in_code = false;
    doc.lines()
        .map(|text| {
            if text.trim_start().starts_with("```") {
                in_code = !in_code;
                // A fence line is neither prose nor code.
                return Line {
                    text: "",
                    in_code: false,
                };
            }
            Line { text, in_code }
        })
        .collect()
}

/// The code spans of a line of prose, as CommonMark reads them: a run of N
/// backticks up to the next run of exactly N, one space stripped from each
/// end when both ends have one.
fn code_spans(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let run_at = |i: usize| chars[i..].iter().take_while(|c| **c == '`').count();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let n = run_at(i);
        let start = i + n;
        let mut j = start;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let m = run_at(j);
                if m == n {
                    close = Some(j);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => {
                let mut content: String = chars[start..end].iter().collect();
                if content.len() >= 2
                    && content.starts_with(' ')
                    && content.ends_with(' ')
                    && !content.trim().is_empty()
                {
                    content = content[1..content.len() - 1].to_string();
                }
                spans.push(content);
                i = end + n;
            }
            None => i = start,
        }
    }
    spans
}

/// The key reference: each level-3 heading that is one code span, with the
/// lines of its section.
fn reference_entries(doc: &str) -> BTreeMap<String, Vec<String>> {
    let mut entries: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in lines(doc) {
        if !line.in_code && line.text.starts_with('#') {
            current = None;
            if let Some(title) = line.text.strip_prefix("### ") {
                let spans = code_spans(title);
                if spans.len() == 1 && title.trim() == format!("`{}`", spans[0]) {
                    let key = spans[0].clone();
                    assert!(
                        !entries.contains_key(&key),
                        "{DOC}: `{key}` has two entries"
                    );
                    entries.insert(key.clone(), Vec::new());
                    current = Some(key);
                }
            }
            continue;
        }
        if let Some(key) = &current {
            entries
                .get_mut(key)
                .expect("entry exists")
                .push(line.text.to_string());
        }
    }
    entries
}

/// The bullet starting with `- {label}:` in an entry, continuation lines
/// included.
fn bullet(entry: &[String], label: &str) -> Option<String> {
    let start = entry
        .iter()
        .position(|l| l.starts_with(&format!("- {label}:")))?;
    let mut text = entry[start].clone();
    for line in &entry[start + 1..] {
        if !line.starts_with("  ") {
            break;
        }
        text.push(' ');
        text.push_str(line.trim());
    }
    Some(text)
}

#[test]
fn every_schema_key_has_an_entry_and_every_entry_is_a_key() {
    let keys = schema_keys();
    assert!(
        keys.contains_key("ip[].dhcp.ranges[].start") && keys.contains_key("networks"),
        "the schema walk found {:?}",
        keys.keys()
    );
    let entries = reference_entries(&doc());
    let missing: Vec<&String> = keys.keys().filter(|k| !entries.contains_key(*k)).collect();
    let unknown: Vec<&String> = entries.keys().filter(|k| !keys.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{DOC} has no entry (### `KEY`) for these keys of the schema: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "{DOC} has entries for keys the schema does not have: {unknown:?}"
    );
}

#[test]
fn every_entry_states_type_and_default_and_the_schema_default_is_the_one_stated() {
    let keys = schema_keys();
    let entries = reference_entries(&doc());
    let mut problems = Vec::new();
    for (path, entry) in &entries {
        if bullet(entry, "Type").is_none() {
            problems.push(format!("`{path}` has no `- Type:` line"));
        }
        let Some(default_line) = bullet(entry, "Default") else {
            problems.push(format!("`{path}` has no `- Default:` line"));
            continue;
        };
        if let Some(default) = keys.get(path).and_then(|k| k.default.as_ref()) {
            if !code_spans(&default_line).contains(default) {
                problems.push(format!(
                    "`{path}`: the schema's default is `{default}`, the doc says: {default_line}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{DOC}:\n{}", problems.join("\n"));
}

#[test]
fn every_sample_diagnostic_is_printed_for_a_corpus_case() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad");
    let mut printed = BTreeSet::new();
    for entry in fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expected") {
            for line in fs::read_to_string(&path).unwrap().lines() {
                printed.insert(line.to_string());
            }
        }
    }
    let doc = doc();
    let mut samples = Vec::new();
    for line in lines(&doc) {
        if line.in_code {
            if line.text.starts_with("error: ") {
                samples.push(line.text.to_string());
            }
        } else {
            samples.extend(
                code_spans(line.text)
                    .into_iter()
                    .filter(|s| s.starts_with("error: ")),
            );
        }
    }
    // Each rule of validate has a sample: far more than this.
    assert!(samples.len() > 50, "only {} samples found", samples.len());
    let unknown: Vec<&String> = samples.iter().filter(|s| !printed.contains(*s)).collect();
    assert!(
        unknown.is_empty(),
        "{DOC} quotes diagnostics no case of agent/tests/corpus/bad/ prints (add the case, or fix the quote):\n{}",
        unknown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A fenced code block: its info string (`toml`, `sh`, empty) and lines.
struct Block<'a> {
    info: &'a str,
    body: Vec<&'a str>,
}

fn code_blocks(doc: &str) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for text in doc.lines() {
        match (&mut open, text.trim_start().strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim(),
                    body: Vec::new(),
                })
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(block), None) => block.body.push(text),
            (None, None) => {}
        }
    }
    blocks
}

/// The name a complete example gives itself on its first line (`# nat.toml`).
fn example_name<'a>(block: &Block<'a>) -> Option<&'a str> {
    if !matches!(block.info, "toml" | "yaml") {
        return None;
    }
    block
        .body
        .first()
        .and_then(|first| first.strip_prefix("# "))
        .filter(|n| !n.contains(' ') && (n.ends_with(".toml") || n.ends_with(".yaml")))
}

fn validate_in(dir: &Path, arg: &str) -> std::process::Output {
    agent()
        .current_dir(dir)
        .arg("validate")
        .arg(arg)
        .output()
        .expect("run kvmnet-agent validate")
}

#[test]
fn complete_examples_validate_together_and_cover_every_mode() {
    let doc = doc();
    let blocks = code_blocks(&doc);
    let files: Vec<(&str, String)> = blocks
        .iter()
        .filter_map(|b| Some((example_name(b)?, b.body.join("\n") + "\n")))
        .collect();
    for mode in MODES {
        assert!(
            files
                .iter()
                .any(|(_, text)| text.contains(&format!("mode = \"{mode}\""))
                    || text.contains(&format!("mode: {mode}"))),
            "{DOC}: no complete example of mode {mode}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &files {
        assert!(
            !dir.path().join(name).exists(),
            "{DOC}: two examples named {name}"
        );
        fs::write(dir.path().join(name), text).unwrap();
    }
    let output = validate_in(dir.path(), ".");
    assert!(
        output.status.success(),
        "{DOC}: the complete examples do not validate:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("in {} file(s) are valid", files.len())),
        "{stdout}"
    );
}

/// A block starting `$ kvmnet-agent validate NAME` is exactly what
/// `validate` prints for the TOML or YAML block just before it, saved as NAME.
#[test]
fn sample_validate_runs_print_what_they_show() {
    let doc = doc();
    let blocks = code_blocks(&doc);
    let mut runs = 0;
    for (i, block) in blocks.iter().enumerate() {
        let Some(name) = block
            .body
            .first()
            .and_then(|l| l.strip_prefix("$ kvmnet-agent validate "))
        else {
            continue;
        };
        let input = i
            .checked_sub(1)
            .map(|j| &blocks[j])
            .filter(|b| matches!(b.info, "toml" | "yaml"))
            .unwrap_or_else(|| panic!("{DOC}: `validate {name}` follows no TOML or YAML block"));
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(name), input.body.join("\n") + "\n").unwrap();
        let output = validate_in(dir.path(), name);
        let shown = block.body[1..].join("\n") + "\n";
        let (printed, code) = if output.status.success() {
            (String::from_utf8_lossy(&output.stdout), 0)
        } else {
            (String::from_utf8_lossy(&output.stderr), 1)
        };
        assert_eq!(output.status.code(), Some(code));
        assert_eq!(printed, shown, "{DOC}: `validate {name}` prints otherwise");
        runs += 1;
    }
    assert!(runs > 0, "{DOC} shows no validate run");
}

#[test]
fn code_spans_follow_commonmark() {
    assert_eq!(code_spans("a `b` c"), ["b"]);
    assert_eq!(code_spans("`` x `y` z `` and `w`"), ["x `y` z", "w"]);
    assert_eq!(code_spans("an unclosed ` tick"), Vec::<String>::new());
}
