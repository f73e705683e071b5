//! Repository rules that reviews forget and a test does not: every source file explains itself
//! with a module comment, and no stub or debugging macro ships.

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
