//! The suite on PostgreSQL, one new database per case, as the non-superuser role row-level
//! security binds.

use std::sync::atomic::{AtomicUsize, Ordering};

use custody_store_postgres::PostgresStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance() {
    let cluster = custody_testkit::postgres::cluster();
    let next = AtomicUsize::new(0);
    let report = custody_conformance::run_all("postgres", || {
        next.fetch_add(1, Ordering::Relaxed);
        async move {
            let db = cluster.fresh_database("conformance");
            PostgresStore::connect(&db)
                .await
                .unwrap_or_else(|e| panic!("connect {db}: {e}"))
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
