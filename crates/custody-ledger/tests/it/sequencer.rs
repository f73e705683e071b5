//! The sequencer's promises, checked through the ledger on the real SQLite store: concurrent
//! appends share commits and checkpoints, and a tree that storage no longer agrees with is
//! never signed.

use std::sync::Arc;

use custody_core::envelope::{EntryInput, LogName, TenantName};
use custody_core::merkle;
use custody_ledger::{Appender, Ledger, LedgerConfig, LedgerError};
use custody_store::{AccessChange, AuthStore, LedgerReader, LogKey, PrincipalRow, TokenRow};
use custody_store_sqlite::SqliteStore;
use serde_json::json;

async fn ledger(dir: &std::path::Path) -> (Arc<Ledger<SqliteStore>>, Appender<SqliteStore>) {
    let store = SqliteStore::open(dir.join("custody.db")).await.unwrap();
    Ledger::open(
        store,
        LedgerConfig {
            server_name: "test.local".into(),
            key_dir: dir.join("keys"),
        },
    )
    .unwrap()
}

fn entry(n: u64) -> EntryInput {
    EntryInput::from_json(&json!({
        "type": "x.test.event",
        "actor": {"kind": "service", "id": "svc-1"},
        "subject": {"kind": "x_item", "id": format!("item-{n}")},
        "body": {"n": n}
    }))
    .unwrap()
}

fn key() -> LogKey {
    LogKey {
        tenant: TenantName::parse("acme").unwrap(),
        log: LogName::Governance,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits_and_every_checkpoint_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, appender) = ledger(dir.path()).await;
    let appender = Arc::new(appender);
    appender.create_tenant(&key().tenant).await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let appender = appender.clone();
            tokio::spawn(async move { appender.append(&key(), &[entry(n)]).await.unwrap() })
        })
        .collect();
    let mut sizes = Vec::new();
    for t in tasks {
        let out = t.await.unwrap();
        assert!(out.checkpoint_size > out.results[0].index);
        sizes.push(out.checkpoint_size);
    }
    sizes.sort();
    sizes.dedup();
    assert!(
        sizes.len() < 200,
        "200 concurrent appends were committed one by one: group commit is not batching"
    );
    // Every signed checkpoint is stored and consistent with the final tree.
    let store = ledger.reader();
    let last = store.latest_checkpoint(&key()).await.unwrap();
    assert_eq!(last.size, 200);
    for size in sizes.iter().copied().filter(|s| *s < 200) {
        let cp = store.checkpoint_at(&key(), size).await.unwrap().unwrap();
        let proof = ledger.consistency_proof(&key(), size, 200).await.unwrap();
        merkle::verify_consistency(size, 200, &proof, &cp.root, &last.root).unwrap();
    }
    println!("sequencer: 200 appends in {} commits", sizes.len());
}

#[tokio::test]
async fn a_tree_that_storage_contradicts_is_never_signed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (ledger, appender) = ledger(dir.path()).await;
        appender.create_tenant(&key().tenant).await.unwrap();
        for n in 0..5 {
            appender.append(&key(), &[entry(n)]).await.unwrap();
        }
        ledger.shutdown().await;
    }
    // Alter the stored hash of leaves 0-3: part of the tree's right edge, from which the next
    // root, and the proof that it extends the last checkpoint, would be computed.
    let db = rusqlite::Connection::open(dir.path().join("custody.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 0",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1, "only the governance log has entries");
    drop(db);

    let (ledger, appender) = ledger(dir.path()).await;
    let before = ledger.reader().latest_checkpoint(&key()).await.unwrap();
    let err = appender.append(&key(), &[entry(99)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::Corrupt(_)), "{err:?}");
    let after = ledger.reader().latest_checkpoint(&key()).await.unwrap();
    assert_eq!(after, before, "nothing was signed or written");
}

fn principal(id: &str) -> PrincipalRow {
    PrincipalRow {
        id: id.into(),
        tenant: Some("acme".into()),
        kind: "user".into(),
        name: format!("Name of {id}"),
        roles: "auditor".into(),
        created_micros: 0,
    }
}

fn token(id: &str, principal: &str) -> TokenRow {
    TokenRow {
        id: id.into(),
        principal_id: principal.into(),
        secret_hash: [7; 32],
        created_micros: 0,
        expires_micros: i64::MAX,
        revoked_micros: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_change_commits_with_its_record_and_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, appender) = ledger(dir.path()).await;
    let appender = Arc::new(appender);
    appender.create_tenant(&key().tenant).await.unwrap();
    let recorded = appender
        .append_recording(
            &key(),
            appender.prepare(&key(), &[entry(1)]).unwrap(),
            vec![
                AccessChange::AddPrincipal(principal("p-one")),
                AccessChange::AddToken(token("t-one", "p-one")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(recorded.results[0].index, 0);
    assert!(
        ledger
            .reader()
            .latest_checkpoint(&key())
            .await
            .unwrap()
            .size
            >= 1
    );

    // Plain appends queued around a refused change are committed; the change and its record
    // are not.
    let plain: Vec<_> = (10..60)
        .map(|n| {
            let appender = appender.clone();
            tokio::spawn(async move { appender.append(&key(), &[entry(n)]).await })
        })
        .collect();
    let refused = appender
        .append_recording(
            &key(),
            appender.prepare(&key(), &[entry(2)]).unwrap(),
            vec![
                AccessChange::AddPrincipal(principal("p-two")),
                AccessChange::AddToken(token("t-one", "p-two")),
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, LedgerError::Conflict(_)), "{refused:?}");
    for t in plain {
        t.await
            .unwrap()
            .expect("plain appends are not failed by another request's change");
    }
    let store = ledger.reader();
    assert_eq!(store.latest_checkpoint(&key()).await.unwrap().size, 51);
    assert!(appender.store().principal("p-one").await.unwrap().is_some());
    assert!(appender.store().principal("p-two").await.unwrap().is_none());
}
