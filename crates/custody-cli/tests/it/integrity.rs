//! Deep verification and the witness check, through the binary: a clean store verifies; a
//! changed envelope, tree node, checkpoint or payload is named; a checkpoint the log no longer
//! extends is reported as a fork; offline verification reads a data directory without changing
//! it, and refuses a database of a schema it does not know.

use crate::common;

use std::path::Path;

use common::{Server, cli, cli_stdin, custody, entry, s};
use serde_json::Value;

const TENANT: &str = "deep";

fn fill(url: &str) {
    cli(url, &["tenant", "create", TENANT]).ok();
    let mut lines = String::new();
    for n in 0..300 {
        let mut e = entry("deep", n);
        if n % 50 == 0 {
            e["payload"] = serde_json::json!({"note": format!("payload {n}")});
        }
        lines.push_str(&(serde_json::to_string(&e).unwrap() + "\n"));
    }
    cli_stdin(
        url,
        &["append", "-t", TENANT, "--ndjson", "--batch", "70", "-"],
        lines.as_bytes(),
    )
    .ok();
}

fn sql(data: &Path, statement: &str) {
    let db = rusqlite::Connection::open(data.join("custody.db")).expect("open db");
    let n = db.execute(statement, []).expect(statement);
    assert!(n >= 1, "{statement} changed nothing");
}

const GOV: &str = "(SELECT l.id FROM logs l JOIN tenants t ON t.id = l.tenant_id WHERE t.name = 'deep' AND l.name = 'governance')";

/// The tenant's governance entries of one type, one JSON per line.
fn entries_of_type(url: &str, entry_type: &str) -> common::Out {
    cli(url, &["--json", "list", "-t", TENANT, "--type", entry_type]).ok()
}

fn deep(data: &Path) -> common::Out {
    custody(&["verify", "--deep", "--data-dir", s(data)])
}

#[test]
fn deep_verification_names_each_kind_of_tampering() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    fill(&server.url);
    // Over the API: an auditor (here the harness) asks the server to reconcile.
    let r = cli(&server.url, &["--json", "verify", "--deep", "-t", TENANT])
        .ok()
        .json();
    let logs = r[0]["logs"].as_array().unwrap();
    assert_eq!(logs[0]["entries"], 300, "{r}");
    // Every complete subtree of 300 leaves: 300 + 150 + 75 + 37 + 18 + 9 + 4 + 2 + 1.
    assert_eq!(logs[0]["nodes"], 596, "{r}");
    assert!(logs[0]["checkpoints"].as_u64().unwrap() >= 6, "{r}");
    assert_eq!(logs[0]["payloads"], 6, "{r}");
    assert_eq!(r[0]["ok"], true);
    server.kill();
    // Fold the WAL into the file so one file is the whole store, to restore between cases.
    rusqlite::Connection::open(data.path().join("custody.db"))
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();

    // Offline, against the files: clean.
    let out = deep(data.path()).ok();
    assert!(
        out.stdout.contains("OK: deep/governance: 300 entries"),
        "{out:#?}"
    );

    let cases: [(&str, String, &str); 4] = [
        (
            "an envelope byte",
            format!(
                "UPDATE entries SET envelope = CAST(replace(CAST(envelope AS TEXT), 'hello world 123', 'hello world 124') AS BLOB) WHERE log_id = {GOV} AND idx = 123"
            ),
            "entry 123: its envelope hashes to",
        ),
        (
            "a tree node",
            format!(
                "UPDATE nodes SET hash = zeroblob(32) WHERE log_id = {GOV} AND level = 3 AND idx = 5"
            ),
            "tree node level 3 index 5: stored 0000",
        ),
        (
            "a checkpoint root",
            format!(
                "UPDATE checkpoints SET note = replace(note, 'deep/governance\n70\n', 'deep/governance\n70\nX') WHERE log_id = {GOV} AND size = 70"
            ),
            "checkpoint of size 70: its signature does not verify",
        ),
        (
            "a payload",
            format!(
                "UPDATE payloads SET payload = CAST('{{\"note\":\"payload 51\"}}' AS BLOB) WHERE log_id = {GOV} AND idx = 50"
            ),
            "entry 50: the stored payload and salt give",
        ),
    ];
    let pristine = std::fs::read(data.path().join("custody.db")).unwrap();
    let restore = || {
        for f in ["custody.db-wal", "custody.db-shm"] {
            let _ = std::fs::remove_file(data.path().join(f));
        }
        std::fs::write(data.path().join("custody.db"), &pristine).unwrap();
    };
    for (what, statement, named) in cases {
        restore();
        sql(data.path(), &statement);
        let out = deep(data.path());
        assert_eq!(out.code, 2, "{what}: {out:#?}");
        assert!(
            out.stdout.contains("1 PROBLEM(S): deep/governance"),
            "{what}: {out:#?}"
        );
        assert!(out.stdout.contains(named), "{what} not named: {out:#?}");
        assert!(out.stdout.contains("OK: deep/access"), "{what}: {out:#?}");
    }
    // A tampered store seen by the server: reconcile reports and records a security event.
    restore();
    sql(
        data.path(),
        &format!(
            "UPDATE nodes SET hash = zeroblob(32) WHERE log_id = {GOV} AND level = 0 AND idx = 7"
        ),
    );
    let server = Server::start(data.path());
    let out = cli(&server.url, &["verify", "--deep", "-t", TENANT]);
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(out.stdout.contains("tree node level 0 index 7"), "{out:#?}");
    let events = entries_of_type(&server.url, "security.integrity_failure");
    assert_eq!(events.stdout.lines().count(), 1, "{events:#?}");
    // Bad input.
    let line = custody(&["verify", "--deep", "--data-dir", "/nonexistent/dir"]).one_line_error();
    assert!(line.contains("--data-dir"), "{line}");
    let line = cli(&server.url, &["verify", "--deep"]).one_line_error();
    assert!(line.contains("--tenant"), "{line}");
}

/// A governance envelope so damaged that the server cannot rebuild the tenant's state from the
/// log: reconciliation by a freshly started server still reports it and still records the
/// security event (outside the state, which cannot be built).
#[test]
fn a_governance_log_the_state_cannot_be_rebuilt_from_is_still_reported_and_recorded() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    fill(&server.url);
    server.kill();
    sql(
        data.path(),
        &format!(
            "UPDATE entries SET envelope = CAST('not an envelope' AS BLOB) WHERE log_id = {GOV} AND idx = 42"
        ),
    );
    let server = Server::start(data.path());
    let out = cli(&server.url, &["verify", "--deep", "-t", TENANT]);
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(
        out.stdout.contains("1 PROBLEM(S): deep/governance")
            && out.stdout.contains("entry 42: its envelope hashes to"),
        "{out:#?}"
    );
    let events = entries_of_type(&server.url, "security.integrity_failure");
    assert_eq!(events.stdout.lines().count(), 1, "{events:#?}");
    let event: Value = serde_json::from_str(events.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(event["envelope"]["subject"]["id"], "governance", "{event}");
    assert_eq!(event["envelope"]["body"]["problem_count"], 1, "{event}");
}

#[test]
fn the_witness_check_proves_consistency_and_reports_a_fork() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let url = server.url.as_str();
    fill(url);
    let held = work.path().join("held.checkpoint");
    cli(url, &["checkpoint", "-t", TENANT, "-o", s(&held)]).ok();
    let vkey = cli(url, &["vkey", "-t", TENANT])
        .ok()
        .stdout
        .trim()
        .to_string();
    let more: String = (300..340)
        .map(|n| serde_json::to_string(&entry("deep", n)).unwrap() + "\n")
        .collect();
    cli_stdin(
        url,
        &["append", "-t", TENANT, "--ndjson", "-"],
        more.as_bytes(),
    )
    .ok();
    let out = cli(
        url,
        &[
            "witness",
            "-t",
            TENANT,
            "--checkpoint",
            s(&held),
            "--vkey",
            &vkey,
            "--update",
        ],
    )
    .ok();
    assert!(
        out.stdout
            .starts_with("consistent: test.local/deep/governance 300 -> 340"),
        "{out:#?}"
    );
    assert!(std::fs::read_to_string(&held).unwrap().contains("\n340\n"));
    // A checkpoint of another log is refused by the server with the field named.
    let other = work.path().join("other.checkpoint");
    cli(
        url,
        &[
            "checkpoint",
            "-t",
            TENANT,
            "-l",
            "inference",
            "-o",
            s(&other),
        ],
    )
    .ok();
    let ivkey = cli(url, &["vkey", "-t", TENANT, "-l", "inference"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let line = cli(
        url,
        &[
            "witness",
            "-t",
            TENANT,
            "--checkpoint",
            s(&other),
            "--vkey",
            &ivkey,
        ],
    )
    .one_line_error();
    assert!(line.contains("checkpoint"), "{line}");
    // A fork: the log loses its tail behind the server's back (a restore from an old backup)
    // and grows again differently; the witness's checkpoint of 340 no longer fits.
    drop(server);
    sql(data.path(), "DELETE FROM entries WHERE idx >= 280");
    sql(
        data.path(),
        "DELETE FROM nodes WHERE (idx + 1) * (1 << level) > 280",
    );
    sql(data.path(), "DELETE FROM checkpoints WHERE size > 280");
    let server = Server::start(data.path());
    let url = server.url.as_str();
    let other: String = (1000..1080)
        .map(|n| serde_json::to_string(&entry("deep", n)).unwrap() + "\n")
        .collect();
    cli_stdin(
        url,
        &["append", "-t", TENANT, "--ndjson", "-"],
        other.as_bytes(),
    )
    .ok();
    let out = cli(
        url,
        &[
            "witness",
            "-t",
            TENANT,
            "--checkpoint",
            s(&held),
            "--vkey",
            &vkey,
        ],
    );
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(out.stdout.starts_with("FORK: "), "{out:#?}");
    let events = entries_of_type(url, "security.fork_detected");
    let event: Value = serde_json::from_str(events.stdout.trim()).unwrap();
    assert_eq!(event["envelope"]["body"]["held_size"], 340, "{event}");
}

#[test]
fn a_rotation_interrupted_by_a_crash_completes_on_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let url = server.url.clone();
    cli(&url, &["tenant", "create", TENANT]).ok();
    let old = cli(&url, &["vkey", "-t", TENANT])
        .ok()
        .stdout
        .trim()
        .to_string();
    let out = cli(&url, &["--json", "rotate-key", "-t", TENANT])
        .ok()
        .json();
    let new = out["new_verifier_key"].as_str().unwrap().to_string();
    assert_eq!(out["old_verifier_key"], old.as_str());
    server.kill();
    // Put the directory back in the state of a crash right after the announcement was
    // committed: the new key still waiting beside the old one, the old one registered.
    let keys = data.path().join("keys").join(TENANT);
    let retired = std::fs::read_dir(&keys)
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|p| p.to_string_lossy().contains("governance.key.retired-"))
        .expect("the retired key");
    std::fs::rename(
        keys.join("governance.key"),
        keys.join("governance.key.next"),
    )
    .unwrap();
    std::fs::rename(&retired, keys.join("governance.key")).unwrap();
    let db = rusqlite::Connection::open(data.path().join("custody.db")).unwrap();
    db.execute(
        "UPDATE logs SET verifier_key = ?1 WHERE verifier_key = ?2",
        [&old, &new],
    )
    .unwrap();
    drop(db);
    // A waiting key no entry announced (a crash before the announcement) is thrown away.
    std::fs::copy(keys.join("inference.key"), keys.join("inference.key.next")).unwrap();

    let server = Server::start(data.path());
    let url = server.url.clone();
    let e = serde_json::to_string(&entry("after", 1)).unwrap();
    cli_stdin(&url, &["append", "-t", TENANT, "-"], e.as_bytes()).ok();
    cli_stdin(
        &url,
        &["append", "-t", TENANT, "-l", "inference", "-"],
        e.as_bytes(),
    )
    .ok();
    assert_eq!(
        cli(&url, &["vkey", "-t", TENANT]).ok().stdout.trim(),
        new,
        "the rotation completed"
    );
    assert!(!keys.join("governance.key.next").exists());
    assert!(
        !keys.join("inference.key.next").exists(),
        "an unannounced key was kept"
    );
    let out = cli(&url, &["verify", "--deep", "-t", TENANT]).ok();
    assert!(out.stdout.contains("OK: deep/governance"), "{out:#?}");
}

/// What a database holds on disk: the SHA-256 and modification time of the database file, and
/// the SHA-256 of its WAL if it has frames. The `-shm` index and an empty WAL are SQLite's
/// scratch space, which any reader of a WAL database may create or rebuild.
fn stored_state(db: &Path) -> (String, std::time::SystemTime, Option<String>) {
    use sha2::{Digest, Sha256};
    let sha = |p: &Path| hex::encode(Sha256::digest(std::fs::read(p).expect("read")));
    let wal = db.with_file_name("custody.db-wal");
    let frames = wal.metadata().is_ok_and(|m| m.len() > 0).then(|| sha(&wal));
    let modified = db
        .metadata()
        .and_then(|m| m.modified())
        .expect("modification time");
    (sha(db), modified, frames)
}

/// Every name in `dir`, but SQLite's scratch files.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with("-shm") && !n.ends_with("-wal"))
        .collect();
    names.sort();
    names
}

#[test]
fn offline_deep_verification_changes_nothing_and_refuses_an_unknown_schema() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    fill(&server.url);
    // Killed, the server leaves committed batches in the WAL: the audit must read them there.
    server.kill();
    let audit = tempfile::tempdir().unwrap();
    for f in ["custody.db", "custody.db-wal"] {
        if data.path().join(f).exists() {
            std::fs::copy(data.path().join(f), audit.path().join(f)).unwrap();
        }
    }
    let db = audit.path().join("custody.db");
    let before = stored_state(&db);
    assert!(before.2.is_some(), "fixture: the killed server left a WAL");
    let names = names_in(audit.path());

    let out = deep(audit.path()).ok();
    assert!(
        out.stdout.contains("OK: deep/governance: 300 entries"),
        "{out:#?}"
    );
    assert_eq!(
        stored_state(&db),
        before,
        "offline deep verification must leave the database and its WAL as they were"
    );
    assert_eq!(
        names_in(audit.path()),
        names,
        "offline deep verification must create nothing (no key directory, no lock)"
    );

    // A database a newer custody migrated: refused, not misread, and left as it is.
    sql(
        audit.path(),
        "INSERT INTO schema_migrations (version, checksum) VALUES (99, 'from a newer custody')",
    );
    let before = stored_state(&db);
    let line = deep(audit.path()).one_line_error();
    assert!(
        line.contains("schema version 99, newer than this custody knows"),
        "{line}"
    );
    assert_eq!(
        stored_state(&db),
        before,
        "a refused database is not touched"
    );

    // A database that lacks a migration this custody knows: refused, not migrated.
    sql(
        audit.path(),
        "DELETE FROM schema_migrations WHERE version >= 2",
    );
    let before = stored_state(&db);
    let line = deep(audit.path()).one_line_error();
    assert!(line.contains("lacks migration 2"), "{line}");
    assert_eq!(
        stored_state(&db),
        before,
        "a refused database is not migrated"
    );
    let versions: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        versions, 1,
        "the migration record is as the refused open found it"
    );
}
