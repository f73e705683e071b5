//! The suite through the payload-objects wrapper, with every payload sent to object storage
//! (a local directory), so the wrapper must keep every promise of the storage contract.

use std::sync::atomic::{AtomicUsize, Ordering};

use custody_store_objects::{PayloadObjects, WithPayloadObjects};
use custody_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_objects_conformance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let next = AtomicUsize::new(0);
    let report = custody_conformance::run_all("sqlite+objects", || {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let db = dir.path().join(format!("case-{n}.db"));
        let objects_dir = dir.path().join(format!("objects-{n}"));
        async move {
            let store = SqliteStore::open(&db).await.expect("open");
            let objects = PayloadObjects::from_url(&format!("file://{}", objects_dir.display()), 0)
                .expect("object store");
            WithPayloadObjects::new(store, Some(objects))
        }
    })
    .await;
    print!("{report}");
    report.assert_complete();
    report.record();
}
