//! Privacy and erasure over real HTTP: a data-subject request and retention erase payloads,
//! record each erasure with its legal basis, keep every checkpoint and proof valid, and leave
//! no byte of the erased payloads in the database files.

use crate::common;

use common::{TestServer, assert_field, assert_problem, start};
use custody_api as api;
use custody_core::checkpoint::SignedCheckpoint;
use custody_core::merkle::{Hash, verify_consistency, verify_inclusion};
use custody_core::note::NoteVerifier;
use serde_json::{Value, json};

const T: &str = "acme";
const SUBJECT: &str = "jane.roe@example.com";
const MARKER: &str = "MARKER-JANE-7f3a91";

/// Whether any file in the server's data directory holds `needle`.
fn on_disk(s: &TestServer, needle: &str) -> Vec<String> {
    let dir = s.db_path.parent().unwrap();
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|f| {
            let path = f.unwrap().path();
            let bytes = std::fs::read(&path).ok()?;
            bytes
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
                .then(|| path.display().to_string())
        })
        .collect()
}

async fn checkpoint(s: &TestServer, log: &str) -> SignedCheckpoint {
    let vkey = s.client.vkey(T, log).await.unwrap();
    let note = s.client.checkpoint(T, log).await.unwrap();
    SignedCheckpoint::open(&note, &NoteVerifier::parse(&vkey).unwrap()).unwrap()
}

async fn proves(s: &TestServer, log: &str, index: u64, cp: &SignedCheckpoint) {
    let rec = s.client.entry(T, log, index).await.unwrap();
    let p = s
        .client
        .inclusion_proof(T, log, index, Some(cp.checkpoint.size))
        .await
        .unwrap();
    let hashes: Vec<Hash> = p
        .hashes
        .iter()
        .map(|h| Hash::from_base64(h).unwrap())
        .collect();
    let leaf = Hash::from_hex(&rec.leaf_hash).unwrap();
    verify_inclusion(
        index,
        cp.checkpoint.size,
        &leaf,
        &hashes,
        &cp.checkpoint.root,
    )
    .unwrap_or_else(|e| panic!("{log}#{index} in {}: {e}", cp.checkpoint.size));
}

fn scored(i: u64, payload: Value) -> Value {
    json!({"type": "x.test.scored", "subject": {"kind": "item", "id": format!("case-{i}")},
           "body": {"n": i}, "payload": payload})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_subject_request_erases_payloads_and_keeps_every_proof() {
    let s = start().await;
    s.create_tenant(T).await;
    for i in 0..5 {
        let payload = if i == 2 {
            json!({"applicant": {"email": SUBJECT, "note": MARKER}, "income": 52000})
        } else {
            json!({"applicant": {"email": format!("other{i}@example.com")}, "income": i})
        };
        s.client
            .append(T, "inference", &scored(i, payload))
            .await
            .unwrap();
    }
    let gov = s
        .client
        .append(
            T,
            "governance",
            &json!({"type": "x.test.complaint", "subject": {"kind": "item", "id": "c-1"},
                                          "body": {}, "payload": {"from": SUBJECT}}),
        )
        .await
        .unwrap();
    let before = checkpoint(&s, "inference").await;
    let envelope_before = s.client.entry(T, "inference", 2).await.unwrap();
    assert!(
        !on_disk(&s, MARKER).is_empty(),
        "the marker should be stored before erasure"
    );

    // A dry run lists, and changes nothing.
    let url = s.url(&format!("/v1/tenants/{T}/erasures"));
    let req = json!({"data_subject": SUBJECT, "legal_basis": "GDPR Art. 17(1)(a)", "reference": "DSR-2026-117", "dry_run": true});
    let r = s.post_json(&url, &req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let dry: api::ErasureReport = serde_json::from_slice(&r.body).unwrap();
    let found: Vec<(String, u64)> = dry
        .erased
        .iter()
        .map(|e| (e.log.clone(), e.index))
        .collect();
    assert_eq!(
        found,
        [
            ("governance".to_string(), gov.index),
            ("inference".to_string(), 2)
        ]
    );
    assert!(dry.erased.iter().all(|e| e.record_index.is_none()));
    assert_eq!(
        s.client
            .entry(T, "inference", 2)
            .await
            .unwrap()
            .payload_status,
        api::PayloadStatus::Present
    );

    // The erasure.
    let mut req = req;
    req["dry_run"] = json!(false);
    let r = s.post_json(&url, &req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let done: api::ErasureReport = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(done.erased.len(), 2);

    // The entry keeps its envelope and leaf; only the payload is gone.
    let after = s.client.entry(T, "inference", 2).await.unwrap();
    assert_eq!(after.payload_status, api::PayloadStatus::Erased);
    assert!(after.payload.is_none() && after.salt.is_none());
    assert_eq!(after.envelope, envelope_before.envelope);
    assert_eq!(after.leaf_hash, envelope_before.leaf_hash);
    assert!(after.envelope["payload_commitment"].is_string());
    // Neighbours untouched.
    for i in [1, 3] {
        assert_eq!(
            s.client
                .entry(T, "inference", i)
                .await
                .unwrap()
                .payload_status,
            api::PayloadStatus::Present
        );
    }
    // Every proof still verifies: the erased entry and its neighbours, against the checkpoint
    // signed before the erasure and the one after, which are consistent.
    let now = checkpoint(&s, "inference").await;
    for cp in [&before, &now] {
        for i in 1..=3 {
            proves(&s, "inference", i, cp).await;
        }
    }
    let c = s
        .client
        .consistency_proof(T, "inference", before.checkpoint.size, now.checkpoint.size)
        .await
        .unwrap();
    let hashes: Vec<Hash> = c
        .hashes
        .iter()
        .map(|h| Hash::from_base64(h).unwrap())
        .collect();
    verify_consistency(
        before.checkpoint.size,
        now.checkpoint.size,
        &hashes,
        &before.checkpoint.root,
        &now.checkpoint.root,
    )
    .unwrap();

    // Each erasure is recorded in the erased entry's log, with the legal basis and reference,
    // and never the subject.
    let rec_index = done
        .erased
        .iter()
        .find(|e| e.log == "inference")
        .unwrap()
        .record_index
        .unwrap();
    let rec = s.client.entry(T, "inference", rec_index).await.unwrap();
    let env = &rec.envelope;
    assert_eq!(env["type"], json!("entry.payload_erased"));
    assert_eq!(env["subject"]["id"], envelope_before.envelope["id"]);
    assert_eq!(env["actor"]["id"], json!(s.principal));
    assert_eq!(env["body"]["legal_basis"], json!("GDPR Art. 17(1)(a)"));
    assert_eq!(env["body"]["reference"], json!("DSR-2026-117"));
    assert_eq!(env["body"]["reason"], json!("data_subject_request"));
    assert_eq!(env["body"]["leaf_hash"], json!(envelope_before.leaf_hash));
    assert!(!env.to_string().contains(SUBJECT));
    proves(
        &s,
        "inference",
        rec_index,
        &checkpoint(&s, "inference").await,
    )
    .await;

    // The bytes are gone from every file of the store.
    assert_eq!(on_disk(&s, MARKER), Vec::<String>::new());
    assert_eq!(on_disk(&s, SUBJECT), Vec::<String>::new());
    assert!(
        !on_disk(&s, "other1@example.com").is_empty(),
        "neighbours' payloads are kept"
    );

    // Running it again finds nothing more.
    let r = s.post_json(&url, &req).await;
    let again: api::ErasureReport = serde_json::from_slice(&r.body).unwrap();
    assert!(again.erased.is_empty(), "{again:?}");

    // Bad requests name the field and erase nothing.
    for (body, field) in [
        (
            json!({"data_subject": SUBJECT, "legal_basis": ""}),
            "legal_basis",
        ),
        (
            json!({"data_subject": "", "legal_basis": "x"}),
            "data_subject",
        ),
        (
            json!({"data_subject": "other1@example.com", "legal_basis": "x", "reference": "has space"}),
            "reference",
        ),
    ] {
        let p = assert_problem(&s.post_json(&url, &body).await, 400);
        assert_field(&p, field);
    }
    assert!(!on_disk(&s, "other1@example.com").is_empty());
    let p = assert_problem(&s.post_json(&url, &json!({"legal_basis": "x"})).await, 400);
    assert!(p.detail.contains("data_subject"), "{}", p.detail);
    // Only an admin may erase.
    let (_, auditor) = s.principal(T, "usr-auditor", &["auditor"]).await;
    let r = s
        .post_as(
            &auditor,
            &url,
            "application/json",
            json!({"data_subject": "other1@example.com", "legal_basis": "x"}).to_string(),
        )
        .await;
    assert_problem(&r, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_erases_payloads_past_their_type_period() {
    let s = start().await;
    s.create_tenant(T).await;
    let policy = json!({"type": "retention.updated", "subject": {"kind": "policy", "id": "retention"},
                        "body": {"default_days": 2555, "types": {"x.test.short": 0}}});
    let set = s.client.append(T, "governance", &policy).await.unwrap();
    s.client
        .append(
            T,
            "inference",
            &json!({"type": "x.test.short", "subject": {"kind": "item", "id": "s"},
        "body": {}, "payload": {"text": "MARKER-SHORT-55aa"}}),
        )
        .await
        .unwrap();
    s.client
        .append(
            T,
            "inference",
            &json!({"type": "x.test.long", "subject": {"kind": "item", "id": "l"},
        "body": {}, "payload": {"text": "MARKER-LONG-66bb"}}),
        )
        .await
        .unwrap();
    let url = s.url(&format!("/v1/tenants/{T}/retention/apply"));
    let r = s
        .post_json(&url, &json!({"legal_basis": "GDPR Art. 5(1)(e)"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let done: api::ErasureReport = serde_json::from_slice(&r.body).unwrap();
    let types: Vec<&str> = done.erased.iter().map(|e| e.entry_type.as_str()).collect();
    assert_eq!(types, ["x.test.short"]);
    let rec = s
        .client
        .entry(T, "inference", done.erased[0].record_index.unwrap())
        .await
        .unwrap();
    assert_eq!(rec.envelope["body"]["reason"], json!("retention"));
    assert_eq!(rec.envelope["body"]["retention_days"], json!(0));
    assert_eq!(rec.envelope["body"]["retention_policy"], json!(set.id));
    assert!(on_disk(&s, "MARKER-SHORT-55aa").is_empty());
    assert!(!on_disk(&s, "MARKER-LONG-66bb").is_empty());
    // Bad policies are refused with the field named.
    for (body, field) in [
        (json!({"default_days": 40000}), "body.default_days"),
        (json!({"types": {"Not A Type": 3}}), "body.types.Not A Type"),
        (json!({"types": {"x.test.a": -1}}), "body.types.x.test.a"),
        (json!({"forever": true}), "body.forever"),
    ] {
        let mut p = policy.clone();
        p["body"] = body;
        let problem = assert_problem(
            &s.post_json(&s.log_url(T, "governance", "/entries"), &p)
                .await,
            400,
        );
        assert_field(&problem, field);
    }
}
