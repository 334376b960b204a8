//! Dependencies point one way between the crate's top-level modules: a component may use
//! the bus, the config and the model, never the runtime that starts it, and the config
//! knows no component. The graph is read from the source (`crate::<module>` paths outside
//! test code), so a new import that closes a circle fails here with the circle named.
//!
//! `cargo test --test module_graph -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// `crate::x` paths of non-test code, by top-level module.
fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.ends_with(".rs") || name.ends_with("tests.rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap_or(&path);
            let top = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .unwrap_or("")
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            let top_level_file = rel.components().count() == 1;
            let uses = graph.entry(top.clone()).or_default();
            let code = without_comments(&non_test_code(&text));
            for module in crate_paths(&code, top_level_file) {
                if module != top {
                    uses.insert(module);
                }
            }
        }
    }
    graph
}

/// The file without its inline `#[cfg(test)] mod … { … }` blocks (top-level ones, which
/// close with a `}` in the first column).
fn non_test_code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let opens_tests = lines[i].trim() == "#[cfg(test)]"
            && lines.get(i + 1).is_some_and(|next| {
                let next = next.trim_start();
                (next.starts_with("mod ") || next.starts_with("pub mod "))
                    && next.trim_end().ends_with('{')
            });
        if opens_tests {
            i += 2;
            while i < lines.len() && lines[i] != "}" {
                i += 1;
            }
        } else {
            out.push(lines[i]);
        }
        i += 1;
    }
    out.join("\n")
}

/// The top-level modules `code` names: `crate::x`, each `x` of `crate::{x::…, y}`, and,
/// in a top-level file (`src/x.rs`, whose parent is the crate root), `super::x`.
fn crate_paths(code: &str, top_level_file: bool) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    let mut prefixes = vec!["crate::"];
    if top_level_file {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        for (at, m) in code.match_indices(prefix) {
            // `foo_crate::` or `self::super::` are not paths from the crate root.
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[at + m.len()..];
            match rest.strip_prefix('{') {
                Some(group) => {
                    let mut depth = 0;
                    let mut start = 0;
                    for (i, c) in group.char_indices() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => {
                                out.insert(ident(&group[start..i]));
                                break;
                            }
                            '}' => depth -= 1,
                            ',' if depth == 0 => {
                                out.insert(ident(&group[start..i]));
                                start = i + 1;
                            }
                            _ => {}
                        }
                    }
                }
                None => {
                    out.insert(ident(rest));
                }
            }
        }
    }
    out.remove("");
    out.remove("self");
    out
}

/// `code` without `//` comments (doc links name modules without depending on them).
fn without_comments(code: &str) -> String {
    code.lines()
        .map(|line| match line.find("//") {
            // Not a URL inside a string (`"mqtt://…"`).
            Some(at) if !line[..at].ends_with(':') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A circle through `from`, if any: the modules in order, `from` first and last.
fn circle(graph: &Graph, from: &str) -> Option<Vec<String>> {
    fn walk(graph: &Graph, at: &str, path: &mut Vec<String>, from: &str) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == from {
                path.push(next.clone());
                return true;
            }
            if path.contains(next) {
                continue;
            }
            path.push(next.clone());
            if walk(graph, next, path, from) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![from.to_string()];
    walk(graph, from, &mut path, from).then_some(path)
}

#[test]
fn no_module_circle_and_the_bus_imports_no_component() {
    let graph = graph();
    for (module, uses) in &graph {
        let uses: Vec<&str> = uses.iter().map(String::as_str).collect();
        println!("{module} -> {}", uses.join(", "));
    }
    for module in graph.keys() {
        if let Some(circle) = circle(&graph, module) {
            panic!("module circle: {}", circle.join(" -> "));
        }
    }
    let only_model = BTreeSet::from(["model".to_string()]);
    for leaf in ["conditions", "anomaly"] {
        let uses = graph.get(leaf).cloned().unwrap_or_default();
        assert!(uses.is_subset(&only_model), "{leaf} uses {uses:?}");
    }
    let bus = graph.get("bus").cloned().unwrap_or_default();
    let leaves = BTreeSet::from(["model".to_string(), "conditions".to_string()]);
    assert!(bus.is_subset(&leaves), "bus uses {bus:?}");
    let config = graph.get("config").cloned().unwrap_or_default();
    for component in ["runtime", "sparkplug", "opcua_server", "web", "bus"] {
        assert!(!config.contains(component), "config uses {component}");
    }
    let components = ["sparkplug", "opcua_server", "web"];
    for component in components {
        let uses = graph.get(component).cloned().unwrap_or_default();
        assert!(!uses.contains("runtime"), "{component} uses the runtime");
        for other in components.iter().filter(|c| **c != component) {
            assert!(
                !uses.contains(*other),
                "{component} uses {other}: go through the bus"
            );
        }
    }
}

#[test]
fn the_reader_finds_paths_and_skips_test_modules() {
    let code = "use crate::bus::Handle;\n#[cfg(test)]\nmod tests {\n    use crate::runtime::R;\n}\nfn f() { crate::model::x(); }\n";
    let paths = crate_paths(&non_test_code(code), false);
    assert_eq!(
        paths,
        BTreeSet::from(["bus".to_string(), "model".to_string()])
    );
    let grouped = "use crate::{\n    config::{A, B},\n    model::C,\n};\nuse super::metrics; // crate::runtime\n";
    let paths = crate_paths(&without_comments(grouped), true);
    assert_eq!(
        paths,
        BTreeSet::from(["config".into(), "metrics".into(), "model".into()])
    );
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("a".into());
    assert_eq!(
        circle(&g, "a"),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}
