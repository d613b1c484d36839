//! The shape of the source tree (issue 15): the import graph between files under `src/` is a
//! DAG, and no file holds more than `MAX_CODE_LINES` lines of non-test code. A file imports
//! another when it names it by `crate::…`, `super::…`, `self::…` or a child module's name; test
//! modules (`#[cfg(test)] mod …`) do not count. Fails with the cycle or the file it found.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_CODE_LINES: usize = 700;

/// Module path (`["login", "native"]`) → file.
fn modules(root: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = p.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().map(String::as_str) == Some("mod") {
                parts.pop();
            }
            match parts.as_slice() {
                [one] if one == "main" => continue,
                [one] if one == "lib" => parts.clear(),
                _ => {}
            }
            out.insert(parts, p);
        }
    }
    out
}

/// The code of a file without its test modules (`#[cfg(test)]` then attributes then `mod x {`,
/// skipped to the matching brace; braces inside strings are rare enough in this tree).
fn without_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        if l.starts_with("#[cfg(test)]") {
            let mut j = i + 1;
            // Attributes, also over several lines (`#[allow(\n…\n)]`).
            while j < lines.len() && lines[j].trim().starts_with("#[") {
                let mut depth = 0i32;
                loop {
                    depth += lines[j].matches('[').count() as i32;
                    depth -= lines[j].matches(']').count() as i32;
                    j += 1;
                    if depth <= 0 || j >= lines.len() {
                        break;
                    }
                }
            }
            let item = lines.get(j).map_or("", |l| l.trim());
            let is_mod = item.starts_with("mod ")
                || item.starts_with("pub mod ")
                || item.starts_with("pub(crate) mod ");
            if is_mod && item.ends_with(';') {
                i = j + 1;
                continue;
            }
            if is_mod && item.contains('{') {
                let mut depth = 0i32;
                let mut k = j;
                while k < lines.len() {
                    depth += lines[k].matches('{').count() as i32;
                    depth -= lines[k].matches('}').count() as i32;
                    k += 1;
                    if depth <= 0 {
                        break;
                    }
                }
                i = k;
                continue;
            }
        }
        out.push(lines[i]);
        i += 1;
    }
    out.join("\n")
}

/// Every `crate::a::b`, `super::a`, `self::a` or `child::a` path in `code`, as segments.
fn paths(code: &str, starts: &[String]) -> Vec<(String, Vec<String>)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !word(bytes[i]) || (i > 0 && (word(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && word(bytes[i]) {
            i += 1;
        }
        let head = &code[start..i];
        if !starts.iter().any(|s| s == head) {
            continue;
        }
        let mut segs = Vec::new();
        let mut j = i;
        while code[j..].starts_with("::") {
            let s = j + 2;
            let mut e = s;
            while e < bytes.len() && word(bytes[e]) {
                e += 1;
            }
            if e == s {
                // `::{a, b::c}`: each item of the group.
                if code[s..].starts_with('{') {
                    if let Some(end) = code[s..].find('}') {
                        for item in code[s + 1..s + end].split(',') {
                            let item = item.split(" as ").next().unwrap_or("").trim();
                            let mut g = segs.clone();
                            g.extend(
                                item.split("::")
                                    .map(str::trim)
                                    .filter(|x| {
                                        !x.is_empty() && *x != "self" && !x.starts_with('{')
                                    })
                                    .map(str::to_owned),
                            );
                            out.push((head.to_owned(), g));
                        }
                    }
                }
                break;
            }
            segs.push(code[s..e].to_owned());
            j = e;
        }
        if !segs.is_empty() {
            out.push((head.to_owned(), segs));
        }
        i = j.max(i);
    }
    out
}

/// Module → the modules it imports.
type Edges = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

fn graph(root: &Path) -> (Edges, BTreeMap<Vec<String>, usize>) {
    let mods = modules(root);
    let resolve = |segs: &[String]| -> Option<Vec<String>> {
        (0..=segs.len())
            .rev()
            .map(|k| segs[..k].to_vec())
            .find(|c| mods.contains_key(c))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut lines = BTreeMap::new();
    for (m, p) in &mods {
        let code = without_tests(&std::fs::read_to_string(p).unwrap());
        lines.insert(
            m.clone(),
            code.lines()
                .filter(|l| !l.trim().is_empty() && !l.trim().starts_with("//"))
                .count(),
        );
        let children: Vec<String> = mods
            .keys()
            .filter(|k| k.len() == m.len() + 1 && k[..m.len()] == m[..])
            .map(|k| k[m.len()].clone())
            .collect();
        let mut starts: Vec<String> = vec!["crate".into(), "super".into(), "self".into()];
        starts.extend(children);
        for (head, segs) in paths(&code, &starts) {
            let mut base: Vec<String> = match head.as_str() {
                "crate" => Vec::new(),
                "super" => m[..m.len().saturating_sub(1)].to_vec(),
                "self" => m.clone(),
                child => {
                    let mut b = m.clone();
                    b.push(child.to_owned());
                    b
                }
            };
            let mut rest = segs.as_slice();
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
            let mut full = base;
            full.extend(rest.iter().cloned());
            if let Some(t) = resolve(&full) {
                if &t != m {
                    edges.entry(m.clone()).or_default().insert(t);
                }
            }
        }
    }
    (edges, lines)
}

/// A cycle through `start`, if any (depth-first search).
fn cycle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut mark: BTreeMap<&Vec<String>, Mark> = BTreeMap::new();
    fn visit<'a>(
        v: &'a Vec<String>,
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        mark: &mut BTreeMap<&'a Vec<String>, Mark>,
        path: &mut Vec<&'a Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        mark.insert(v, Mark::Open);
        path.push(v);
        for w in edges.get(v).into_iter().flatten() {
            match mark.get(w) {
                Some(Mark::Open) => {
                    let at = path.iter().position(|p| *p == w).unwrap_or(0);
                    return Some(path[at..].iter().map(|p| (*p).clone()).collect());
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(c) = visit(w, edges, mark, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        mark.insert(v, Mark::Done);
        None
    }
    for v in edges.keys() {
        if !mark.contains_key(v) {
            if let Some(c) = visit(v, edges, &mut mark, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "lib".into()
    } else {
        m.join("::")
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_files_under_src_import_each_other_without_a_cycle() {
    let (edges, _) = graph(&src());
    if let Some(c) = cycle(&edges) {
        let names: Vec<String> = c.iter().map(|m| name(m)).collect();
        panic!("import cycle: {} -> {}", names.join(" -> "), names[0]);
    }
    // The graph is real: it sees the router depend on the handlers it dispatches to.
    let router = vec!["server".to_owned(), "router".to_owned()];
    assert!(edges[&router].contains(&vec!["login".to_owned(), "native".to_owned()]));
}

#[test]
fn no_file_under_src_holds_more_than_700_lines_of_code_outside_its_tests() {
    let (_, lines) = graph(&src());
    let big: Vec<String> = lines
        .iter()
        .filter(|(_, n)| **n > MAX_CODE_LINES)
        .map(|(m, n)| format!("{} ({n})", name(m)))
        .collect();
    assert!(
        big.is_empty(),
        "files over {MAX_CODE_LINES} lines of code: {big:?}"
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let a = vec!["a".to_owned()];
    let b = vec!["b".to_owned()];
    let mut edges = BTreeMap::new();
    edges.insert(a.clone(), BTreeSet::from([b.clone()]));
    edges.insert(b.clone(), BTreeSet::from([a.clone()]));
    assert!(cycle(&edges).is_some());
    edges.get_mut(&b).unwrap().clear();
    assert!(cycle(&edges).is_none());
}
