//! No input panics the loader or the validator: arbitrary bytes, and the
//! examples and good corpus files mutated the way hands and templates break
//! files (cut, doubled lines, stray punctuation, wrong types, odd bytes).
//! Whatever comes in, each file is accepted or rejected with at least one
//! diagnostic, every diagnostic points inside its file, and all render.

use std::fs;
use std::path::{Path, PathBuf};

use kvmnet::config::desired::DesiredState;
use kvmnet::config::load::{parse_bytes, FileLoad, Format};
use proptest::prelude::*;

/// Fragments that stress the parsers and the rules when spliced into a file.
const FRAGMENTS: &[&str] = &[
    "[",
    "]",
    "[[",
    "{",
    "}",
    ":",
    ": ",
    "=",
    " = ",
    "\"",
    "'",
    ",",
    "\n",
    "\t",
    "  ",
    "- ",
    "*a",
    "&a ",
    "<<: *a",
    "---\n",
    "...\n",
    "#",
    "!",
    "%YAML 1.2\n",
    "? ",
    "|\n",
    ">\n",
    "0",
    "-1",
    "99999999999999999999",
    "1e309",
    "nan",
    "true",
    "null",
    "~",
    "\u{feff}",
    "é",
    "\0",
    "\r",
    "networks",
    "mode",
    "nat",
    "bridge",
    "ip",
    "dhcp",
    "hosts",
    "ranges",
    "port_forwards",
    "::",
    "/",
    "/33",
    "/0",
    "255.255.255.255",
    "fe80::1",
    "01:00:5e:00:00:01",
    "65536",
    "8010-8000",
    "infinite",
    "0s",
    "31s",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, fragment: usize },
    ReplaceByte { at: usize, byte: u8 },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..20usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 0..FRAGMENTS.len())
            .prop_map(|(at, fragment)| Mutation::Insert { at, fragment }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::ReplaceByte { at, byte }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    let pos = |at: usize| if len == 0 { 0 } else { at % (len + 1) };
    match *m {
        Mutation::Delete { at, len: n } => {
            let start = pos(at);
            let end = (start + n).min(len);
            bytes.drain(start..end);
        }
        Mutation::Insert { at, fragment } => {
            let at = pos(at);
            bytes.splice(at..at, FRAGMENTS[fragment].bytes());
        }
        Mutation::ReplaceByte { at, byte } => {
            if len > 0 {
                bytes[at % len] = byte;
            }
        }
        Mutation::DuplicateLine { line } | Mutation::SwapLines { a: line, .. } => {
            let mut lines: Vec<Vec<u8>> =
                bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            let n = lines.len();
            let i = line % n;
            match *m {
                Mutation::SwapLines { b, .. } => lines.swap(i, b % n),
                _ => lines.insert(i, lines[i].clone()),
            }
            *bytes = lines.join(&b'\n');
        }
        Mutation::Truncate { at } => bytes.truncate(pos(at)),
    }
}

/// The valid files mutations start from: the examples and the good corpus.
fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["../examples", "tests/corpus/good"] {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push((path.clone(), fs::read(&path).unwrap()));
        }
    }
    out.sort();
    assert!(out.len() >= 10, "{} seed files", out.len());
    out
}

/// Loads and validates `files` together and checks the invariants.
fn check(files: &[(PathBuf, Vec<u8>, Option<Format>)]) {
    let loads: Vec<FileLoad> = files
        .iter()
        .map(|(path, bytes, format)| FileLoad {
            path: path.clone(),
            result: parse_bytes(path, bytes, *format),
        })
        .collect();
    let state = DesiredState::from_loads(loads);
    let accepted = state
        .networks
        .values()
        .map(|n| n.file.clone())
        .collect::<std::collections::BTreeSet<_>>();
    for rejected in &state.rejected {
        assert!(
            !rejected.diagnostics.is_empty(),
            "{} rejected without a reason",
            rejected.path.display()
        );
        assert!(!accepted.contains(&rejected.path));
        let (_, bytes, _) = files.iter().find(|(p, ..)| *p == rejected.path).unwrap();
        let lines = String::from_utf8_lossy(bytes).lines().count();
        for d in &rejected.diagnostics {
            if let Some(l) = d.location {
                assert!(
                    l.line >= 1 && l.line <= lines + 1 && l.column >= 1,
                    "{d} points outside its {lines} lines"
                );
            }
            assert!(d.to_string().starts_with("error: "));
        }
    }
}

fn format(choice: u8) -> Option<Format> {
    match choice % 3 {
        0 => None,
        1 => Some(Format::Toml),
        _ => Some(Format::Yaml),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400), choice: u8) {
        check(&[(Path::new("fuzz").to_path_buf(), bytes, format(choice))]);
    }

    #[test]
    fn arbitrary_text(text in "\\PC{0,300}", choice: u8) {
        check(&[(Path::new("fuzz").to_path_buf(), text.into_bytes(), format(choice))]);
    }

    #[test]
    fn mutated_valid_files(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), proptest::collection::vec(mutation(), 1..8)), 1..4)
    ) {
        let seeds = seeds();
        let files: Vec<_> = picks
            .iter()
            .enumerate()
            .map(|(i, (pick, mutations))| {
                let (path, bytes) = &seeds[pick.index(seeds.len())];
                let mut bytes = bytes.clone();
                for m in mutations {
                    apply(&mut bytes, m);
                }
                // Distinct names, same extensions: several files validated together.
                let name = format!("{i}-{}", path.file_name().unwrap().to_string_lossy());
                (PathBuf::from(name), bytes, None)
            })
            .collect();
        check(&files);
    }
}
