//! The gateway's modules depend on one another one way (docs/architecture.md, "Layers
//! inside the gateway"): leaves import no other module of the crate, domain modules never
//! import the HTTP edge, and no two modules import each other, directly or round a loop.
//! Read from the sources (`use crate::…` and `crate::…` paths outside comments and test
//! modules), so a new import that breaks the layering fails here with the files that hold it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Settings, storage and plumbing: they import no other module of the crate.
const LEAVES: &[&str] = &["blobs", "config", "metrics", "node_agent", "store"];
/// What Serre does, without HTTP.
const DOMAIN: &[&str] = &[
    "audit",
    "authz",
    "catalogue",
    "cluster",
    "datasets",
    "grants",
    "identity",
    "runs",
    "sandboxes",
    "tenants",
    "usage",
];
/// The HTTP edge: the JSON API and its one error map, the console on top of it, and the
/// composition root that starts them.
const EDGE: &[&str] = &["app", "console", "error", "http"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The crate's top-level modules, from lib.rs.
fn top_modules() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A module's source files (`m.rs`, or everything under `m/`), test files left out.
fn files_of(module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = src().join(format!("{module}.rs"));
    if file.exists() {
        files.push(file);
    }
    let dir = src().join(module);
    if dir.is_dir() {
        rust_files(&dir, &mut files);
    }
    files.retain(|p| {
        p.file_name().is_some_and(|n| n != "tests.rs")
            && !p.components().any(|c| c.as_os_str() == "tests")
    });
    files
}

/// The code of a file without its comments and its trailing `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment of every `crate::…` path in `code`, `crate::{a::x, b}` included.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // Items at depth 0 of the group, up to its closing brace.
            let mut depth = 0usize;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        found.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(after));
        }
        rest = after;
    }
    found
}

/// module → (imported module → files that import it).
fn graph(modules: &[String]) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let known: BTreeSet<&str> = modules.iter().map(String::as_str).collect();
    let mut graph = BTreeMap::new();
    for m in modules {
        let edges: &mut BTreeMap<String, BTreeSet<String>> = graph.entry(m.clone()).or_default();
        for file in files_of(m) {
            let text = std::fs::read_to_string(&file).expect("read source");
            let shown = file
                .strip_prefix(src())
                .unwrap_or(&file)
                .display()
                .to_string();
            for target in crate_references(&code(&text)) {
                if target != *m && known.contains(target.as_str()) {
                    edges.entry(target).or_default().insert(shown.clone());
                }
            }
        }
    }
    graph
}

/// One cycle of the graph, if any (depth-first search).
fn cycle(graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut loop_ = path[at..].to_vec();
            loop_.push(m.to_owned());
            return Some(loop_);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for next in graph.get(m).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_reader_finds_grouped_and_nested_imports() {
    let refs = crate_references(
        "use crate::{http::{App, AppState}, store};\nfn f() { crate::usage::run(); }",
    );
    assert_eq!(
        refs,
        BTreeSet::from(["http".into(), "store".into(), "usage".into()])
    );
    assert!(crate_references(&code("// see crate::http\nlet x = 1;")).is_empty());
    let a = BTreeMap::from([("b".to_owned(), BTreeSet::new())]);
    let b = BTreeMap::from([("a".to_owned(), BTreeSet::new())]);
    let g = BTreeMap::from([("a".to_owned(), a), ("b".to_owned(), b)]);
    assert_eq!(cycle(&g), Some(vec!["a".into(), "b".into(), "a".into()]));
}

#[test]
fn every_module_has_a_layer() {
    let placed: BTreeSet<&str> = LEAVES.iter().chain(DOMAIN).chain(EDGE).copied().collect();
    let modules = top_modules();
    assert!(modules.len() > 10, "lib.rs lists {modules:?}");
    for m in &modules {
        assert!(
            placed.contains(m.as_str()),
            "module {m} is in no layer of api/tests/gateway/layering.rs (and docs/architecture.md): place it"
        );
    }
}

#[test]
fn modules_depend_one_way() {
    let modules = top_modules();
    let graph = graph(&modules);
    let show = |m: &str, t: &str| format!("{m} -> {t} (in {:?})", graph[m][t]);
    for m in LEAVES {
        if let Some(t) = graph.get(*m).and_then(|e| e.keys().next()) {
            panic!(
                "the leaf module {} imports another module of the crate",
                show(m, t)
            );
        }
    }
    for m in DOMAIN {
        for t in graph.get(*m).into_iter().flat_map(|e| e.keys()) {
            assert!(
                !EDGE.contains(&t.as_str()),
                "a domain module imports the HTTP edge: {}",
                show(m, t)
            );
        }
    }
    if let Some(c) = cycle(&graph) {
        let steps: Vec<String> = c.windows(2).map(|w| show(&w[0], &w[1])).collect();
        panic!(
            "modules import one another round a loop:\n{}",
            steps.join("\n")
        );
    }
}
