//! Repository rules that reviews forget and a test does not: every source file explains itself
//! with a module comment, and no stub or debugging macro ships.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates"), &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    files
}

#[test]
fn every_source_file_starts_with_a_module_comment() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|p| {
            let text = fs::read_to_string(p).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files need a `//!` comment saying why they exist: {missing:#?}"
    );
}

#[test]
fn no_stubs_or_debugging_macros() {
    let forbidden = [
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
        concat!("dbg", "!("),
    ];
    let mut hits = Vec::new();
    for path in sources() {
        let text = fs::read_to_string(&path).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if forbidden.iter().any(|f| line.contains(f)) {
                hits.push(format!("{}:{}", path.display(), n + 1));
            }
        }
    }
    assert!(hits.is_empty(), "remove these: {hits:#?}");
}

#[test]
fn the_project_does_not_depend_on_files_outside_it() {
    let needle = concat!("..", "/shared");
    let mut hits = Vec::new();
    let mut files = sources();
    for extra in ["README.md", "ARCHITECTURE.md", "scripts/test.sh", ".ci/run"] {
        files.push(workspace_root().join(extra));
    }
    for path in files {
        if fs::read_to_string(&path)
            .unwrap_or_default()
            .contains(needle)
        {
            hits.push(path.display().to_string());
        }
    }
    assert!(
        hits.is_empty(),
        "these files refer outside the repository: {hits:#?}"
    );
}

/// The inline code spans of a Markdown text, outside fenced blocks.
fn code_spans(markdown: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(span), Some(_)) = (parts.next(), parts.next()) {
            spans.push(span.to_owned());
        }
    }
    spans
}

/// Every name a Rust source defines: items, modules, enum variants and re-exported names.
fn defined_names(text: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 10] = [
        "fn",
        "struct",
        "enum",
        "trait",
        "const",
        "static",
        "type",
        "mod",
        "union",
        "macro_rules!",
    ];
    let mut names = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if KEYWORDS.contains(&pair[0]) {
                names.insert(ident(pair[1]));
            }
        }
        // Enum variants: an indented capitalised word opening a line.
        let trimmed = line.trim_start();
        if line.starts_with("    ") && trimmed.starts_with(|c: char| c.is_ascii_uppercase()) {
            names.insert(ident(trimmed));
        }
        // Names brought in by `pub use`.
        if let Some(rest) = trimmed.strip_prefix("pub use ") {
            for part in rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                names.insert(part.to_owned());
            }
        }
    }
    names.remove("");
    names
}

/// The names each crate's sources define, by crate directory name.
fn definitions() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let crates = workspace_root().join("crates");
    for entry in fs::read_dir(&crates).expect("crates").flatten() {
        let mut files = Vec::new();
        rust_files(&entry.path().join("src"), &mut files);
        let names = out
            .entry(entry.file_name().to_string_lossy().into_owned())
            .or_insert_with(BTreeSet::new);
        for f in files {
            names.extend(defined_names(&fs::read_to_string(f).unwrap_or_default()));
        }
    }
    out
}

/// Names from outside the workspace that the architecture document may mention.
const EXTERNAL_NAMES: &[&str] = &["Clone", "Debug"];

/// `ARCHITECTURE.md` (and `CONTRIBUTING.md`, which points into the same code) name only
/// paths that exist and items some crate defines, so the map cannot drift from the code.
#[test]
fn architecture_names_only_paths_and_items_that_exist() {
    let root = workspace_root();
    let text = ["ARCHITECTURE.md", "CONTRIBUTING.md"]
        .map(|doc| fs::read_to_string(root.join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}")))
        .join("\n");
    let defs = definitions();
    let anywhere: BTreeSet<&String> = defs.values().flatten().collect();
    let is_ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut stale = Vec::new();
    let mut checked = 0;
    for span in code_spans(&text) {
        let span = span.trim_end_matches("()");
        let looks_like_path = !span.contains(['<', '{', '*', ' ', '=', '[', '|'])
            && !span.contains("://")
            && (span.contains('/') || span.ends_with(".md"))
            && [
                "crates/",
                "scripts/",
                "docs/",
                "testdata/",
                ".ci/",
                "python/",
            ]
            .iter()
            .any(|p| span.starts_with(p))
            || span.ends_with(".md") && !span.contains('/');
        // A crate's own path, written without `crates/`.
        let in_crate = !span.contains(['<', '{', '*', ' '])
            && span.starts_with("custody-")
            && span.contains('/');
        if looks_like_path || in_crate {
            checked += 1;
            let path = if in_crate {
                root.join("crates").join(span)
            } else {
                root.join(span.trim_end_matches('/'))
            };
            if !path.exists() {
                stale.push(format!("path `{span}`"));
            }
            continue;
        }
        let segments: Vec<&str> = span.split("::").collect();
        if segments.len() > 1 && segments.iter().all(|s| is_ident(s)) {
            checked += 1;
            let (names, rest) = match segments[0].strip_prefix("custody_") {
                Some(krate) => match defs.get(&format!("custody-{}", krate.replace('_', "-"))) {
                    Some(names) => (names.iter().collect::<BTreeSet<_>>(), &segments[1..]),
                    None => {
                        stale.push(format!("crate of `{span}`"));
                        continue;
                    }
                },
                None => (anywhere.clone(), &segments[..]),
            };
            if let Some(missing) = rest.iter().find(|s| !names.contains(&s.to_string())) {
                stale.push(format!("`{missing}` of `{span}`"));
            }
            continue;
        }
        // A bare type or trait name, e.g. `LedgerReader`.
        if is_ident(span)
            && span.starts_with(|c: char| c.is_ascii_uppercase())
            && span.contains(|c: char| c.is_ascii_lowercase())
        {
            checked += 1;
            if !anywhere.contains(&span.to_string()) && !EXTERNAL_NAMES.contains(&span) {
                stale.push(format!("item `{span}`"));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} names checked: is the parser still finding them?"
    );
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md or CONTRIBUTING.md names what no longer exists; update it with the code: {stale:#?}"
    );
}
