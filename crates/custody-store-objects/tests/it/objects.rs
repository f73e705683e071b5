//! What only the payload-objects wrapper can break (the shared conformance suite runs through
//! it in `custody-conformance`): an object changed or deleted behind its back is reported as
//! corruption, and erasure deletes the object.

use custody_conformance::{self as conformance, Draft};
use custody_store::{LedgerReader, LedgerWriter, StoreError};
use custody_store_objects::{PayloadObjects, WithPayloadObjects};
use custody_store_sqlite::SqliteStore;

fn objects(dir: &std::path::Path, inline_max: usize) -> PayloadObjects {
    PayloadObjects::from_url(&format!("file://{}", dir.display()), inline_max)
        .expect("object store")
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_live_in_objects_checked_on_read_and_erased() {
    let dir = tempfile::tempdir().expect("temp dir");
    let objects_dir = dir.path().join("objects");
    let store = WithPayloadObjects::new(
        SqliteStore::open(dir.path().join("db"))
            .await
            .expect("open"),
        Some(objects(&objects_dir, 64)),
    );
    let mut logs = conformance::create(&store, "acme").await;
    let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(1000));
    let drafts = vec![
        Draft::numbered(1).with_payload(b"{\"small\":1}", 1),
        Draft::numbered(2).with_payload(big.as_bytes(), 2),
    ];
    logs[0].append(&store, drafts).await;
    let key = logs[0].key().clone();

    // Only the large payload became an object; the database holds a reference, not the bytes.
    let objs = files(&objects_dir);
    assert_eq!(objs.len(), 1, "one object: {objs:?}");
    assert_eq!(std::fs::read(&objs[0]).expect("object"), big.as_bytes());
    let raw = store
        .inner()
        .entry(&key, 1)
        .await
        .expect("raw")
        .expect("entry");
    let raw_payload = raw.payload.expect("reference").json;
    assert!(raw_payload.starts_with(b"\0custody-object\n"));
    assert!(
        raw_payload.len() < 300,
        "the database keeps only a reference"
    );
    // Reads see the payload itself.
    assert_eq!(
        store.entry_range(&key, 0, 2).await.expect("range"),
        logs[0].expected(0, 2)
    );

    // An object changed behind custody's back is never served.
    std::fs::write(&objs[0], big.replace('x', "y")).expect("tamper");
    match store.entry(&key, 1).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("entry 1"), "{m}"),
        other => panic!("a changed object must be Corrupt, got {other:?}"),
    }
    std::fs::remove_file(&objs[0]).expect("delete");
    match store.entry(&key, 1).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("missing"), "{m}"),
        other => panic!("a missing object must be Corrupt, got {other:?}"),
    }
    std::fs::write(&objs[0], big.as_bytes()).expect("restore");

    // Erasure deletes the object, then the reference.
    assert!(store.erase_payload(&key, 1).await.expect("erase"));
    assert!(files(&objects_dir).is_empty(), "the object is gone");
    assert_eq!(
        store
            .entry(&key, 1)
            .await
            .expect("entry")
            .expect("entry")
            .payload,
        None
    );
    assert!(!store.erase_payload(&key, 1).await.expect("erase again"));

    // Without the object store, a reference is recognised and refused, not served as JSON.
    logs[0]
        .append(
            &store,
            vec![Draft::numbered(3).with_payload(big.as_bytes(), 3)],
        )
        .await;
    let bare = WithPayloadObjects::new(store.inner().clone(), None);
    match bare.entry(&key, 2).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("no payload store"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn bad_object_store_urls_are_named() {
    for (url, want) in [
        ("s3:///prefix", "names no bucket"),
        ("ftp://host/x", "unsupported scheme"),
        ("not a url", "is not a URL"),
    ] {
        let e = PayloadObjects::from_url(url, 10)
            .expect_err(url)
            .to_string();
        assert!(e.contains(want), "{url}: {e}");
    }
}
