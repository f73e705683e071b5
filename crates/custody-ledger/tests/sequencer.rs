//! The sequencer's promises, checked through the ledger on the real SQLite store: concurrent
//! appends share commits and checkpoints, and a tree that storage no longer agrees with is
//! never signed.

use std::sync::Arc;

use custody_core::envelope::{EntryInput, LogName, TenantName};
use custody_core::merkle;
use custody_ledger::{Ledger, LedgerConfig, LedgerError};
use custody_store::{LedgerReader, LogKey};
use custody_store_sqlite::SqliteStore;
use serde_json::json;

async fn ledger(dir: &std::path::Path) -> Ledger<SqliteStore> {
    let store = SqliteStore::open(dir.join("custody.db")).await.unwrap();
    Ledger::new(
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
    let ledger = Arc::new(ledger(dir.path()).await);
    ledger.create_tenant(&key().tenant).await.unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let ledger = ledger.clone();
            tokio::spawn(async move { ledger.append(&key(), &[entry(n)]).await.unwrap() })
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
    let store = ledger.store();
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
        let ledger = ledger(dir.path()).await;
        ledger.create_tenant(&key().tenant).await.unwrap();
        for n in 0..5 {
            ledger.append(&key(), &[entry(n)]).await.unwrap();
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

    let ledger = ledger(dir.path()).await;
    let before = ledger.store().latest_checkpoint(&key()).await.unwrap();
    let err = ledger.append(&key(), &[entry(99)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::Corrupt(_)), "{err:?}");
    let after = ledger.store().latest_checkpoint(&key()).await.unwrap();
    assert_eq!(after, before, "nothing was signed or written");
}
