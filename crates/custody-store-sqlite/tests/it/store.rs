//! What only a file-backed store can show (the shared conformance suite runs in
//! `custody-conformance`): durability across reopening, the migration checksums, and a
//! read-only opening that reads the same and changes nothing.

use std::path::Path;

use custody_conformance::{self as conformance, LogModel, LogSnapshot, numbered, snapshot};
use custody_store::{LedgerReader, LogRecord, StoreError};
use custody_store_sqlite::SqliteStore;
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The migrations the backend embeds, as shipped.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_ledger.sql")),
    (2, include_str!("../../migrations/0002_auth.sql")),
];

/// A store with two tenants, entries in several batches with payloads and related links, and
/// the models of its non-empty logs.
async fn populate(store: &SqliteStore) -> Vec<LogModel> {
    let mut acme = conformance::create(store, "acme").await;
    let mut beta = conformance::create(store, "beta").await;
    let mut drafts = numbered(1..=5);
    drafts[1] = drafts[1].clone().with_payload(br#"{"secret":"s"}"#, 42);
    drafts[2].fields.related = vec![("dataset".into(), "d-1".into(), "input".into())];
    acme[0].append(store, drafts).await;
    acme[0].append(store, numbered(6..=9)).await;
    acme[1]
        .append(
            store,
            vec![conformance::Draft::numbered(1).with_payload(b"{}", 1)],
        )
        .await;
    beta[0]
        .append(
            store,
            numbered(1..=3)
                .into_iter()
                .map(|d| d.with_subject("beta"))
                .collect(),
        )
        .await;
    let mut logs = acme;
    logs.extend(beta);
    logs
}

/// Everything readable about the populated logs.
async fn read_all(
    store: &impl LedgerReader,
    logs: &[LogModel],
) -> Vec<(Vec<LogRecord>, LogSnapshot)> {
    let mut out = Vec::new();
    for m in logs {
        let ids: Vec<Uuid> = m.entries().iter().map(|e| e.id).collect();
        let records = store.logs(&m.key().tenant).await.expect("logs");
        let snap = snapshot(store, m.key(), 12, &ids).await.expect("snapshot");
        out.push((records, snap));
    }
    out
}

fn recorded_migrations(path: &Path) -> Vec<(i64, String)> {
    let conn = Connection::open(path).expect("open with rusqlite");
    let mut stmt = conn
        .prepare("SELECT version, checksum FROM schema_migrations ORDER BY version")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn expected_migrations() -> Vec<(i64, String)> {
    MIGRATIONS
        .iter()
        .map(|(v, sql)| (*v, hex::encode(Sha256::digest(sql.as_bytes()))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_everything_and_migrates_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open(&path).await.expect("first open");
    let logs = populate(&store).await;
    let before = read_all(&store, &logs).await;
    let tenants = store.tenants().await.expect("tenants");
    assert_eq!(
        before.iter().map(|(_, s)| s.entries.len()).sum::<usize>(),
        9 + 1 + 3,
        "fixture: entries written"
    );
    drop(store);

    for round in 1..=3 {
        let store = SqliteStore::open(&path)
            .await
            .unwrap_or_else(|e| panic!("reopen {round}: {e}"));
        assert_eq!(
            store.tenants().await.expect("tenants"),
            tenants,
            "reopen {round}: tenants"
        );
        let after = read_all(&store, &logs).await;
        assert_eq!(
            after, before,
            "reopen {round}: logs, checkpoints, entries, payloads, nodes and ids must survive \
             closing and reopening the file"
        );
        // The tree still rebuilds from storage, as a restarted sequencer needs.
        for m in &logs {
            let parts = custody_core::merkle::decompose(0, m.size());
            let hashes: Vec<_> = store
                .nodes(m.key(), &parts)
                .await
                .expect("nodes")
                .into_iter()
                .map(|h| h.expect("right-edge node after reopen"))
                .collect();
            let frontier =
                custody_core::merkle::Frontier::from_parts(m.size(), hashes).expect("frontier");
            assert_eq!(
                frontier.root(),
                m.latest().root,
                "reopen {round}: tree of {:?}",
                m.key()
            );
        }
        drop(store);
        assert_eq!(
            recorded_migrations(&path),
            expected_migrations(),
            "reopen {round}: each migration must be recorded exactly once, with the SHA-256 of \
             its SQL"
        );
    }

    // Appending after reopening continues the same logs.
    let store = SqliteStore::open(&path).await.expect("reopen to append");
    let mut gov = logs[0].clone();
    gov.append(&store, numbered(10..=12)).await;
    drop(store);
    let store = SqliteStore::open(&path).await.expect("reopen after append");
    assert_eq!(
        store.latest_checkpoint(gov.key()).await.expect("latest"),
        *gov.latest(),
        "a batch committed after reopening survives another reopen"
    );
    assert_eq!(
        store.entry_range(gov.key(), 0, 100).await.expect("range"),
        gov.expected(0, 100),
        "entries after reopen, append, reopen"
    );
}

#[tokio::test]
async fn fresh_database_records_every_migration_checksum() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ledger.db");
    drop(SqliteStore::open(&path).await.expect("open"));
    assert_eq!(
        recorded_migrations(&path),
        expected_migrations(),
        "a new database must record every migration with the SHA-256 of its SQL"
    );
}

#[tokio::test]
async fn tampered_migration_checksum_is_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let logs = conformance::create(&store, "acme").await;
    drop(store);

    let (version, good) = expected_migrations().remove(0);
    let set = |checksum: &str| {
        let conn = Connection::open(&path).expect("open with rusqlite");
        let n = conn
            .execute(
                "UPDATE schema_migrations SET checksum = ?1 WHERE version = ?2",
                rusqlite::params![checksum, version],
            )
            .expect("update");
        assert_eq!(n, 1, "migration {version} must be recorded");
    };

    for tampered in ["0".repeat(64), good.to_uppercase(), String::new()] {
        set(&tampered);
        match SqliteStore::open(&path).await {
            Err(StoreError::Corrupt(msg)) => assert!(
                msg.contains(&format!("migration {version}")),
                "the Corrupt error should name migration {version}: {msg}"
            ),
            Err(e) => panic!("checksum {tampered:?}: expected StoreError::Corrupt, got {e:?}"),
            Ok(_) => panic!("checksum {tampered:?}: open must refuse a tampered migration record"),
        }
        match SqliteStore::open_blocking(&path) {
            Err(StoreError::Corrupt(_)) => {}
            Err(e) => panic!("open_blocking, checksum {tampered:?}: expected Corrupt, got {e:?}"),
            Ok(_) => panic!("open_blocking, checksum {tampered:?}: must refuse"),
        }
        assert_eq!(
            recorded_migrations(&path)[0],
            (version, tampered.clone()),
            "a refused open must not rewrite the migration record"
        );
    }

    // Restoring the checksum makes the database usable again, with its data intact.
    set(&good);
    let store = SqliteStore::open(&path)
        .await
        .expect("open after restoring");
    assert_eq!(
        store.logs(&logs[0].key().tenant).await.expect("logs"),
        logs.iter().map(|m| m.record().clone()).collect::<Vec<_>>(),
        "data after a refused open and a restored checksum"
    );
}

/// What a database holds on disk: the SHA-256 and modification time of the database file,
/// and the SHA-256 of the frames in its WAL, if any. The `-shm` index and an empty WAL are
/// SQLite's scratch space, which any reader of a WAL database may create or rebuild.
fn stored_state(path: &Path) -> (String, std::time::SystemTime, Option<String>) {
    let sha = |p: &Path| hex::encode(Sha256::digest(std::fs::read(p).expect("read file")));
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = Path::new(&wal);
    let frames = wal.metadata().is_ok_and(|m| m.len() > 0).then(|| sha(wal));
    let modified = path
        .metadata()
        .and_then(|m| m.modified())
        .expect("modification time");
    (sha(path), modified, frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_reads_what_was_written_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let logs = populate(&store).await;
    let written = read_all(&store, &logs).await;

    // Beside a live writer, it reads the committed state, WAL included.
    let reader = SqliteStore::open_read_only(&path)
        .await
        .expect("open read-only beside the writer");
    assert_eq!(read_all(&reader, &logs).await, written, "beside the writer");
    drop(reader);
    drop(store);

    // Alone, it finds what the writer left (WAL included) and leaves it as it found it.
    let before = stored_state(&path);
    let reader = SqliteStore::open_read_only(&path)
        .await
        .expect("open read-only");
    assert_eq!(reader.path(), path.as_path());
    assert_eq!(
        reader.tenants().await.expect("tenants"),
        vec![
            custody_core::envelope::TenantName::parse("acme").expect("name"),
            custody_core::envelope::TenantName::parse("beta").expect("name"),
        ]
    );
    assert_eq!(
        read_all(&reader, &logs).await,
        written,
        "after the writer closed"
    );
    drop(reader);
    assert!(before.2.is_some(), "fixture: the writer left a WAL");
    assert_eq!(
        stored_state(&path),
        before,
        "a read-only store must not change the database or its WAL"
    );
}

#[tokio::test]
async fn a_read_only_store_refuses_a_schema_it_does_not_know_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ledger.db");
    let store = SqliteStore::open(&path).await.expect("open");
    conformance::create(&store, "acme").await;
    drop(store);
    let pristine = std::fs::read(&path).expect("read db");
    let sql = |statement: &str| {
        std::fs::write(&path, &pristine).expect("restore db");
        Connection::open(&path)
            .expect("open with rusqlite")
            .execute_batch(statement)
            .expect(statement);
    };
    let (first, checksum) = expected_migrations().remove(0);
    let (last, _) = expected_migrations().pop().expect("a migration");
    let cases = [
        (
            format!(
                "INSERT INTO schema_migrations (version, checksum) VALUES ({}, '{checksum}')",
                last + 1
            ),
            format!("schema version {}, newer than this custody knows", last + 1),
        ),
        (
            format!("INSERT INTO schema_migrations (version, checksum) VALUES (0, '{checksum}')"),
            "a migration 0 this custody does not know".to_owned(),
        ),
        (
            format!("UPDATE schema_migrations SET checksum = '' WHERE version = {first}"),
            format!("migration {first} differs"),
        ),
        (
            format!("DELETE FROM schema_migrations WHERE version = {last}"),
            format!("lacks migration {last}"),
        ),
        (
            "DROP TABLE schema_migrations".to_owned(),
            "records no schema migrations".to_owned(),
        ),
    ];
    for (statement, named) in cases {
        sql(&statement);
        let before = stored_state(&path);
        match SqliteStore::open_read_only(&path).await {
            Err(e @ (StoreError::Corrupt(_) | StoreError::Unavailable(_))) => assert!(
                e.to_string().contains(&named),
                "{statement}: the refusal should say {named:?}: {e}"
            ),
            Err(e) => panic!("{statement}: expected Corrupt or Unavailable, got {e:?}"),
            Ok(_) => panic!("{statement}: a read-only store must refuse this schema"),
        }
        assert_eq!(
            stored_state(&path),
            before,
            "{statement}: a refused read-only open must not migrate or change anything"
        );
    }

    let missing = dir.path().join("missing.db");
    match SqliteStore::open_read_only(&missing).await {
        Err(StoreError::NotFound(_)) => {}
        Err(e) => panic!("a missing file: expected NotFound, got {e:?}"),
        Ok(_) => panic!("a missing file cannot be opened"),
    }
    assert!(
        !missing.exists(),
        "a read-only open must not create the file"
    );
}
