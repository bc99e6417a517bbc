//! The crate's layers: every module imports only from the layers below its
//! own, and no modules import each other in a circle. Read from the
//! `crate::` paths of the sources, so a new import that breaks the layering
//! fails here, not in review.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The top-level modules, lowest first. A module may import from modules of
/// lower layers and from itself; modules of one layer are independent.
const LAYERS: &[&[&str]] = &[
    &["kernel"],
    &["core"],
    &["config"],
    &["net", "firewall", "dnsmasq"],
    &["report"],
    &["reconcile"],
    &["daemon", "import"],
    &["cli"],
];

/// Test support: used by unit tests of any layer, and itself only built on
/// the layers below the subsystems.
const TEST_SUPPORT: &str = "testutil";

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&top))
}

/// The module path of each source file: `net/plan/tests.rs` is
/// `net::plan::tests`, `net/mod.rs` is `net`.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("read src dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let name = parts.join("::");
            if name == "lib" || name == "main" {
                continue;
            }
            out.insert(name, path);
        }
    }
    out
}

/// The modules a file names through `crate::` paths (code only, not
/// comments), each resolved to the longest known module path.
fn imports(text: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let module = (1..=segments.len())
                .rev()
                .map(|n| segments[..n].join("::"))
                .find(|candidate| known.contains_key(candidate));
            // `crate::x::{a, b}` groups name submodules of `x`.
            if code[code.len() - rest.len()..].starts_with(&format!("{path}{{")) {
                let group: String = rest[path.len() + 1..]
                    .chars()
                    .take_while(|c| *c != '}')
                    .collect();
                for item in group.split(',') {
                    let item = item.trim().split("::").next().unwrap_or("").trim();
                    let candidate = format!("{}{item}", path);
                    if known.contains_key(&candidate) {
                        found.insert(candidate);
                    }
                }
            }
            if let Some(module) = module {
                found.insert(module);
            }
        }
    }
    found
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// Whether `a` is `b` or one of its ancestors or descendants: a module and
/// its own submodules are one unit here.
fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    known
        .iter()
        .map(|(module, path)| {
            let text = fs::read_to_string(path).expect("read source");
            let deps = imports(&text, &known)
                .into_iter()
                .filter(|d| !related(d, module))
                .collect();
            (module.clone(), deps)
        })
        .collect()
}

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let graph = graph();
    let mut violations = Vec::new();
    for (module, deps) in &graph {
        let from = top(module);
        for dep in deps {
            let to = top(dep);
            if from == to || to == TEST_SUPPORT {
                continue;
            }
            let allowed = if from == TEST_SUPPORT {
                layer_of(to).is_some_and(|l| l <= layer_of("config").expect("config layer"))
            } else {
                match (layer_of(from), layer_of(to)) {
                    (Some(f), Some(t)) => t < f,
                    _ => false,
                }
            };
            if !allowed {
                violations.push(format!("{module} imports {dep}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layering (see LAYERS):\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let graph = graph();
    // Depth-first search for a back edge, remembering the path.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for dep in graph.get(node).into_iter().flatten() {
            match state.get(dep.as_str()).copied().unwrap_or(0) {
                0 => visit(dep, graph, state, path, cycles),
                1 => {
                    let start = path.iter().position(|p| p == dep).expect("on path");
                    let mut cycle = path[start..].to_vec();
                    cycle.push(dep.clone());
                    cycles.push(cycle.join(" -> "));
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for node in graph.keys() {
        if !state.contains_key(node.as_str()) {
            visit(node, &graph, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(
        cycles.is_empty(),
        "modules importing each other in a circle:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_import_reader_sees_groups_and_ignores_comments() {
    let known: BTreeMap<String, PathBuf> = ["net", "net::plan", "net::wanted", "core"]
        .iter()
        .map(|m| (m.to_string(), PathBuf::new()))
        .collect();
    let text =
        "use crate::net::{plan::Plan, wanted};\n// crate::core::x\nlet x = crate::net::plan::f();";
    let found = imports(text, &known);
    assert_eq!(
        found,
        ["net", "net::plan", "net::wanted"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}
