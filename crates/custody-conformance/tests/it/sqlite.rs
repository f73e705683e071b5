//! The suite on the embedded SQLite store, one new file per case.

use std::sync::atomic::{AtomicUsize, Ordering};

use custody_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let next = AtomicUsize::new(0);
    let report = custody_conformance::run_all("sqlite", || {
        let path = dir
            .path()
            .join(format!("case-{}.db", next.fetch_add(1, Ordering::Relaxed)));
        async move {
            assert!(!path.exists(), "each case needs a new file");
            SqliteStore::open(&path)
                .await
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        }
    })
    .await;
    print!("{report}");
    assert_eq!(
        next.load(Ordering::Relaxed),
        custody_conformance::CASES.len(),
        "every case must open its own fresh store"
    );
    report.assert_complete();
    report.record();
}
