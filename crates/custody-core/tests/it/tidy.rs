//! Repository rules that reviews forget and a test does not: every source file explains itself
//! with a module comment, and no stub or debugging macro ships.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    files_ending(dir, "rs", out);
}

fn files_ending(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == "__pycache__")
            {
                continue;
            }
            files_ending(&path, extension, out);
        } else if path.extension().is_some_and(|e| e == extension) {
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

/// What one Rust source file defines: items, modules, enum variants and re-exported names, and
/// the types it writes `impl` blocks for.
#[derive(Default)]
struct FileIndex {
    names: BTreeSet<String>,
    impls: BTreeSet<String>,
    /// Every identifier-like word of the file, strings and comments included.
    words: BTreeSet<String>,
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The type an `impl` line is for: `impl<S: X> Type<S> {` and `impl Trait for Type {` give
/// `Type`.
fn impl_target(line: &str) -> Option<String> {
    let rest = line.trim_start().strip_prefix("impl")?;
    let mut rest = rest.trim_start();
    if rest.starts_with('<') {
        let mut depth = 0;
        let end = rest.char_indices().find_map(|(i, c)| {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(i + 1)
        })?;
        rest = rest[end..].trim_start();
    }
    let head = rest.split(['{', '\n']).next().unwrap_or(rest);
    let target = match head.split_once(" for ") {
        Some((_, t)) => t.trim_start(),
        None => head,
    };
    let name = ident(
        target
            .rsplit("::")
            .next()
            .unwrap_or(target)
            .trim_start_matches('&'),
    );
    (!name.is_empty()).then_some(name)
}

fn index_file(text: &str) -> FileIndex {
    // Rust's item keywords, and Python's for the SDK in `python/`.
    const KEYWORDS: [&str; 12] = [
        "fn",
        "class",
        "def",
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
    let mut index = FileIndex {
        words: text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect(),
        ..FileIndex::default()
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if KEYWORDS.contains(&pair[0]) {
                index.names.insert(ident(pair[1]));
            }
        }
        let trimmed = line.trim_start();
        // Enum variants: an indented capitalised word opening a line.
        if line.starts_with("    ") && trimmed.starts_with(|c: char| c.is_ascii_uppercase()) {
            index.names.insert(ident(trimmed));
        }
        // Names brought in by `pub use`.
        if let Some(rest) = trimmed.strip_prefix("pub use ") {
            for part in rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                index.names.insert(part.to_owned());
            }
        }
        if let Some(target) = impl_target(line) {
            index.impls.insert(target);
        }
    }
    index.names.remove("");
    index
}

/// Every source file of every crate's `src/`, indexed, by crate directory name, and the
/// Python package's files under `python`.
fn crate_sources() -> BTreeMap<String, Vec<(PathBuf, FileIndex)>> {
    let mut out = BTreeMap::new();
    let crates = workspace_root().join("crates");
    for entry in fs::read_dir(&crates).expect("crates").flatten() {
        let mut files = Vec::new();
        rust_files(&entry.path().join("src"), &mut files);
        let indexed = files
            .into_iter()
            .map(|f| {
                let index = index_file(&fs::read_to_string(&f).unwrap_or_default());
                (f, index)
            })
            .collect();
        out.insert(entry.file_name().to_string_lossy().into_owned(), indexed);
    }
    let mut python = Vec::new();
    files_ending(&workspace_root().join("python"), "py", &mut python);
    let indexed = python
        .into_iter()
        .map(|f| {
            let index = index_file(&fs::read_to_string(&f).unwrap_or_default());
            (f, index)
        })
        .collect();
    out.insert("python".to_owned(), indexed);
    out
}

/// Every file and directory under `crates/`, relative to it, with `/` separators.
fn crate_paths() -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            let rel = path
                .strip_prefix(base)
                .unwrap_or(&path)
                .display()
                .to_string();
            if path.is_dir() {
                out.push(format!("{rel}/"));
                walk(&path, base, out);
            } else {
                out.push(rel);
            }
        }
    }
    let base = workspace_root().join("crates");
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out
}

/// Names from outside the workspace that the architecture document may mention.
const EXTERNAL_NAMES: &[&str] = &["Clone", "Debug"];

/// Why a backticked span of the architecture document names nothing that exists, if it is a
/// path or an item and it does not.
fn stale_span(
    span: &str,
    root: &Path,
    sources: &BTreeMap<String, Vec<(PathBuf, FileIndex)>>,
    paths: &[String],
) -> Option<Option<String>> {
    let is_ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    let is_type = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.contains(|c: char| c.is_ascii_lowercase())
    };
    let all_files = || sources.values().flatten();
    let defined_anywhere = |name: &str| all_files().any(|(_, i)| i.names.contains(name));
    let called = span.ends_with("()");
    let span = span.trim_end_matches("()");
    let plain = !span.contains(['<', '{', '*', ' ', '=', '[', '|', '$']) && !span.contains("://");

    // Paths: from the repository root, a crate's own (`custody-x/...`), a bare file name, or
    // a path inside some crate (`middleware/auth.rs`, `handlers/`).
    let rooted = [
        "crates/",
        "scripts/",
        "docs/",
        "testdata/",
        ".ci/",
        "python/",
    ];
    if plain && (rooted.iter().any(|p| span.starts_with(p)) || span.ends_with(".md")) {
        let exists = root.join(span.trim_end_matches('/')).exists();
        return Some((!exists).then(|| format!("path `{span}`")));
    }
    if plain && span.starts_with("custody-") && span.contains('/') {
        let exists = root.join("crates").join(span).exists();
        return Some((!exists).then(|| format!("path `{span}`")));
    }
    let file_like = [".rs", ".sql", ".sh", ".toml", ".json"]
        .iter()
        .any(|e| span.ends_with(e));
    if plain && (file_like || span.ends_with('/')) && !span.starts_with('/') {
        let exists = paths
            .iter()
            .any(|p| p == span || p.ends_with(&format!("/{span}")));
        return Some((!exists).then(|| format!("path `{span}`")));
    }

    // Items: `custody_x::a::B`, `Type::member`, a type or trait, a function or module.
    let segments: Vec<&str> = span.split("::").collect();
    if !segments.iter().all(|s| is_ident(s)) {
        return None;
    }
    let (files, rest): (Vec<&(PathBuf, FileIndex)>, &[&str]) =
        match segments[0].strip_prefix("custody_") {
            Some(krate) if segments.len() > 1 => {
                match sources.get(&format!("custody-{}", krate.replace('_', "-"))) {
                    Some(files) => (files.iter().collect(), &segments[1..]),
                    None => return Some(Some(format!("crate of `{span}`"))),
                }
            }
            _ => (all_files().collect(), &segments[..]),
        };
    if segments.len() == 1 {
        if is_type(span) {
            let exists = defined_anywhere(span) || EXTERNAL_NAMES.contains(&span);
            return Some((!exists).then(|| format!("item `{span}`")));
        }
        // A function, a setting or a wire name (`append_batch`, `client_time`): some source
        // must still say it.
        if span.contains('_') || called {
            let exists = defined_anywhere(span) || all_files().any(|(_, i)| i.words.contains(span));
            return Some((!exists).then(|| format!("name `{span}`")));
        }
        return None;
    }
    for (i, segment) in rest.iter().enumerate() {
        if !files.iter().any(|(_, f)| f.names.contains(*segment)) {
            return Some(Some(format!("`{segment}` of `{span}`")));
        }
        // A member of a type must be defined where the type or one of its impls is.
        if is_type(segment)
            && let Some(member) = rest.get(i + 1)
        {
            let home = files.iter().any(|(_, f)| {
                (f.names.contains(*segment) || f.impls.contains(*segment))
                    && f.names.contains(*member)
            });
            if !home {
                return Some(Some(format!(
                    "`{member}` is not a member of `{segment}` (`{span}`)"
                )));
            }
        }
    }
    Some(None)
}

/// `ARCHITECTURE.md` (and `CONTRIBUTING.md`, which points into the same code) name only
/// paths that exist and items some crate defines (members where their type is), so the map
/// cannot drift from the code.
#[test]
fn architecture_names_only_paths_and_items_that_exist() {
    let root = workspace_root();
    let text = ["ARCHITECTURE.md", "CONTRIBUTING.md"]
        .map(|doc| fs::read_to_string(root.join(doc)).unwrap_or_else(|e| panic!("{doc}: {e}")))
        .join("\n");
    let sources = crate_sources();
    let paths = crate_paths();
    let mut stale = Vec::new();
    let mut checked = 0;
    for span in code_spans(&text) {
        if let Some(verdict) = stale_span(&span, &root, &sources, &paths) {
            checked += 1;
            stale.extend(verdict);
        }
    }
    assert!(
        checked > 100,
        "only {checked} names checked: is the parser still finding them?"
    );
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md or CONTRIBUTING.md names what no longer exists; update it with the code: {stale:#?}"
    );
}
