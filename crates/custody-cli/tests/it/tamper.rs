//! Tamper evidence: change one byte of one stored envelope behind the server's back, and check
//! that `custody verify log` (offline, against a pinned key) names exactly that entry.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{Out, Server, cli, custody, entry, s};
use serde_json::Value;

const TENANT: &str = "tamper";
const ORIGIN: &str = "test.local/tamper/governance";
const TAMPERED: i64 = 17;

fn ndjson(range: std::ops::Range<u64>) -> String {
    range
        .map(|n| serde_json::to_string(&entry("tamper", n)).unwrap() + "\n")
        .collect()
}

fn db_path(data: &Path) -> PathBuf {
    data.join("custody.db")
}

fn read_envelope(data: &Path) -> Vec<u8> {
    let db = rusqlite::Connection::open(db_path(data)).expect("open db");
    db.query_row(
        "SELECT e.envelope FROM entries e JOIN logs l ON l.id = e.log_id
         WHERE l.origin = ?1 AND e.idx = ?2",
        rusqlite::params![ORIGIN, TAMPERED],
        |r| r.get(0),
    )
    .expect("entry 17")
}

fn write_envelope(data: &Path, bytes: &[u8]) {
    let db = rusqlite::Connection::open(db_path(data)).expect("open db");
    let n = db
        .execute(
            "UPDATE entries SET envelope = ?1
             WHERE idx = ?2 AND log_id = (SELECT id FROM logs WHERE origin = ?3)",
            rusqlite::params![bytes, TAMPERED, ORIGIN],
        )
        .expect("update entry 17");
    assert_eq!(n, 1);
}

/// Restarts the server on `data`, exports the log to `file`, and stops the server.
fn export(data: &Path, file: &Path) {
    let mut server = Server::start(data);
    cli(&server.url, &["export", "-t", TENANT, "-o", s(file)]).ok();
    server.kill();
}

fn verify(vkey: &Path, export: &Path, extra: &[&str]) -> Out {
    let mut args = vec!["verify", "log", "--vkey", s(vkey), "--export", s(export)];
    args.extend_from_slice(extra);
    custody(&args)
}

/// Checks that verification fails and names entry 17 and nothing else, in text and JSON.
fn assert_only_entry_17(vkey: &Path, file: &Path, what: &str) {
    let out = verify(vkey, file, &[]);
    assert_ne!(
        out.code, 0,
        "{what}: verify log passed a tampered log: {out:#?}"
    );
    assert!(out.stdout.starts_with("FAILED"), "{what}: {out:#?}");
    let named: BTreeSet<u64> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("entry "))
        .map(|rest| {
            rest.split(':')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{what}: odd line {rest:?}"))
        })
        .collect();
    assert_eq!(named, BTreeSet::from([17]), "{what}: {}", out.stdout);
    for line in out.stdout.lines().skip(1) {
        assert!(
            line.starts_with("entry 17:"),
            "{what}: unexpected line {line:?}"
        );
    }

    let out = verify(vkey, file, &["--json"]);
    assert_ne!(out.code, 0, "{what}: {out:#?}");
    let report = out.json();
    assert_eq!(report["ok"], Value::Bool(false));
    let problems = report["problems"].as_array().expect("problems");
    assert!(!problems.is_empty(), "{what}: no problems reported");
    let indexes: Vec<Option<u64>> = problems.iter().map(|p| p["index"].as_u64()).collect();
    let distinct: BTreeSet<Option<u64>> = indexes.iter().copied().collect();
    assert_eq!(distinct, BTreeSet::from([Some(17)]), "{what}: {report:#}");
    eprintln!(
        "{what}: {} problem(s), all at index 17: {}",
        indexes.len(),
        verify(vkey, file, &[]).stdout.trim_end()
    );
}

#[test]
fn one_changed_byte_is_named_by_index() {
    let data_dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = data_dir.path();
    let at = |name: &str| work.path().join(name);

    let mut server = Server::start(data);
    let url = server.url.clone();
    cli(&url, &["tenant", "create", TENANT]).ok();
    cli(&url, &["tenant", "create", "other"]).ok();
    std::fs::write(at("first.ndjson"), ndjson(0..20)).unwrap();
    std::fs::write(at("rest.ndjson"), ndjson(20..50)).unwrap();
    cli(&url, &["append", "-t", TENANT, s(&at("first.ndjson"))]).ok();
    let cp20 = at("cp20.checkpoint");
    let printed = cli(&url, &["checkpoint", "-t", TENANT, "-o", s(&cp20)]).ok();
    let saved = std::fs::read_to_string(&cp20).unwrap();
    assert_eq!(
        printed.stdout, saved,
        "checkpoint -o must save what it prints"
    );
    assert!(saved.starts_with(&format!("{ORIGIN}\n20\n")), "{saved}");
    cli(&url, &["append", "-t", TENANT, s(&at("rest.ndjson"))]).ok();
    cli(&url, &["append", "-t", "other", s(&at("rest.ndjson"))]).ok();
    let foreign = at("other.checkpoint");
    cli(&url, &["checkpoint", "-t", "other", "-o", s(&foreign)]).ok();
    let vkey = at("vkey.txt");
    let v = cli(&url, &["vkey", "-t", TENANT]).ok();
    assert!(v.stdout.starts_with(ORIGIN), "{v:#?}");
    std::fs::write(&vkey, &v.stdout).unwrap();
    let clean = at("clean.export");
    cli(&url, &["export", "-t", TENANT, "-o", s(&clean)]).ok();
    server.kill();

    // The untampered log verifies, and extends the checkpoint saved at size 20.
    let out = verify(&vkey, &clean, &[]).ok();
    assert!(out.stdout.starts_with("OK: 50 entries"), "{out:#?}");
    let out = verify(&vkey, &clean, &["--checkpoint", s(&cp20)]).ok();
    assert!(
        out.stdout
            .contains("OK: consistent with the saved checkpoint of size 20"),
        "{out:#?}"
    );
    let out = verify(&vkey, &clean, &["--checkpoint", s(&cp20), "--json"]).ok();
    let report = out.json();
    assert_eq!(report["ok"], Value::Bool(true));
    assert_eq!(report["size"], 50);
    assert_eq!(report["consistent_with"], serde_json::json!([20]));
    assert_eq!(report["problems"], serde_json::json!([]));

    // A checkpoint signed by another log's key is refused, clearly.
    let out = verify(&vkey, &clean, &["--checkpoint", s(&foreign)]);
    let line = out.one_line_error();
    assert!(
        line.contains("--checkpoint") && line.contains("not signed by the pinned key"),
        "{line}"
    );
    // And so is an export checked against the wrong pinned key.
    let other_vkey = at("other.vkey");
    {
        let mut server = Server::start(data);
        let v = cli(&server.url, &["vkey", "-t", "other"]).ok();
        std::fs::write(&other_vkey, &v.stdout).unwrap();
        server.kill();
    }
    let line = verify(&other_vkey, &clean, &[]).one_line_error();
    assert!(line.contains("not signed by the pinned key"), "{line}");

    // Case 1: one byte of a string value changed; the envelope is still valid JSON.
    let original = read_envelope(data);
    let needle = b"hello world 17";
    let at_byte = original
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("body note in the envelope");
    let mut changed = original.clone();
    changed[at_byte] = b'j';
    serde_json::from_slice::<Value>(&changed).expect("still valid JSON");
    write_envelope(data, &changed);
    let file = at("tampered-valid.export");
    export(data, &file);
    assert_only_entry_17(&vkey, &file, "valid JSON, one byte changed");

    // Case 2: one byte changed so that the envelope is no longer JSON.
    let mut broken = original.clone();
    let colon = broken.iter().position(|b| *b == b':').expect("a colon");
    broken[colon] = b';';
    assert!(serde_json::from_slice::<Value>(&broken).is_err());
    write_envelope(data, &broken);
    let file = at("tampered-invalid.export");
    export(data, &file);
    assert_only_entry_17(&vkey, &file, "invalid JSON");

    // Restored, the log verifies again.
    write_envelope(data, &original);
    let file = at("restored.export");
    export(data, &file);
    verify(&vkey, &file, &["--checkpoint", s(&cp20)]).ok();
}
