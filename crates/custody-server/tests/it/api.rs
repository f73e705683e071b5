//! End-to-end tests of the `/v1` API (SPEC §2, §3, §5): each test starts the real server on an
//! ephemeral port over a fresh SQLite file and talks HTTP to it, with the typed client where it
//! fits and raw requests where the exact status, headers or a malformed body matter. Proofs are
//! checked twice: with `custody_core` and with the independent RFC 9162 code in
//! `common/rfc9162.rs`.

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use common::rfc9162::{self, H};
use common::{
    Reply, SERVER_NAME, TestServer, assert_field, assert_problem, assert_server_time, entry,
    entry_by, hash_b64, hash_hex, hex, jcs, send, start, unhex,
};
use custody_api as api;
use custody_client::ListQuery;
use custody_core::checkpoint::{Checkpoint, SignedCheckpoint};
use custody_core::commitment::{self, Salt};
use custody_core::merkle::{self, Hash};
use custody_core::note::NoteVerifier;
use custody_core::tlog_proof::TlogProof;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const GOV: &str = "governance";
const TEXT: &str = "text/plain; charset=utf-8";

// ---------------------------------------------------------------------------------------------
// Helpers

fn hashes(b64: &[String]) -> Vec<H> {
    b64.iter().map(|h| hash_b64(h)).collect()
}

fn core(hs: &[H]) -> Vec<Hash> {
    hs.iter().map(|h| Hash(*h)).collect()
}

/// Checks an inclusion proof with both verifiers against `root`.
fn check_inclusion(p: &api::InclusionProof, leaf: &H, root: &H) {
    assert_eq!(p.leaf_hash, hex(leaf), "proof for the wrong leaf");
    let path = hashes(&p.hashes);
    merkle::verify_inclusion(p.index, p.size, &Hash(*leaf), &core(&path), &Hash(*root))
        .unwrap_or_else(|e| panic!("core verifier refused {p:?}: {e}"));
    assert!(
        rfc9162::verify_inclusion(p.index, p.size, leaf, &path, root),
        "independent verifier refused {p:?}"
    );
}

/// Checks a consistency proof with both verifiers.
fn check_consistency(p: &api::ConsistencyProof, old_root: &H, new_root: &H) {
    let path = hashes(&p.hashes);
    merkle::verify_consistency(
        p.from,
        p.to,
        &core(&path),
        &Hash(*old_root),
        &Hash(*new_root),
    )
    .unwrap_or_else(|e| panic!("core verifier refused {p:?}: {e}"));
    if p.from < p.to {
        assert!(
            rfc9162::verify_consistency(p.from, p.to, old_root, new_root, &path),
            "independent verifier refused {p:?}"
        );
    } else {
        assert!(path.is_empty());
    }
}

/// Checks a C2SP signed checkpoint byte by byte, without custody code: three body lines (no
/// extensions), one Ed25519 signature line by the log's key, the key ID derived from the pinned
/// verifier key. Returns size and root.
fn check_note_format(note: &str, origin: &str, vkey: &str) -> (u64, H) {
    let (body, sigs) = note
        .split_once("\n\n")
        .expect("blank line before signatures");
    let lines: Vec<&str> = body.split('\n').collect();
    assert_eq!(
        lines.len(),
        3,
        "origin, size and root, no extension lines: {note:?}"
    );
    assert_eq!(lines[0], origin);
    let size: u64 = lines[1].parse().expect("decimal size");
    assert_eq!(size.to_string(), lines[1], "size with leading zeros");
    let root = hash_b64(lines[2]);
    assert_eq!(
        Base64::encode_string(&root),
        lines[2],
        "non-canonical base64 root"
    );

    let mut parts = vkey.splitn(3, '+');
    let (name, key_id_hex, key_b64) = (
        parts.next().unwrap(),
        parts.next().expect("key id"),
        parts.next().expect("key"),
    );
    assert_eq!(name, origin, "the key name is the origin");
    let key = Base64::decode_vec(key_b64).expect("base64 key");
    assert_eq!(key.len(), 33);
    assert_eq!(key[0], 0x01, "Ed25519 signature type");
    let key_id: [u8; 32] = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n'])
        .chain_update(&key)
        .finalize()
        .into();
    assert_eq!(key_id_hex, hex(&key_id[..4]));

    let sig_lines: Vec<&str> = sigs
        .strip_suffix('\n')
        .expect("note ends with a newline")
        .split('\n')
        .collect();
    assert_eq!(sig_lines.len(), 1, "one signature: {note:?}");
    let line = sig_lines[0]
        .strip_prefix("\u{2014} ")
        .expect("signature line starts with an em dash");
    let (sig_name, sig_b64) = line.split_once(' ').expect("name and signature");
    assert_eq!(sig_name, origin);
    let sig = Base64::decode_vec(sig_b64).expect("base64 signature");
    assert_eq!(sig.len(), 4 + 64, "key ID and Ed25519 signature");
    assert_eq!(sig[..4], key_id[..4]);
    (size, root)
}

/// Fetches the latest checkpoint with its exact headers, checks its format and its signature
/// with the pinned key, and returns the note and its body.
async fn checkpoint(s: &TestServer, tenant: &str, log: &str, vkey: &str) -> (String, Checkpoint) {
    let r = s.get(&s.log_url(tenant, log, "/checkpoint")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type, TEXT);
    let note = r.text();
    let origin = format!("{SERVER_NAME}/{tenant}/{log}");
    let (size, root) = check_note_format(&note, &origin, vkey);
    let verifier = NoteVerifier::parse(vkey).expect("verifier key");
    let cp = SignedCheckpoint::open(&note, &verifier)
        .expect("checkpoint verifies with the pinned key")
        .checkpoint;
    assert_eq!((cp.size, cp.root.0), (size, root));
    assert_eq!(cp.origin, origin);
    assert!(cp.extensions.is_empty());
    (note, cp)
}

/// Every leaf of a log as exported, checked against the recorded hashes.
async fn leaves(s: &TestServer, tenant: &str, log: &str, size: u64) -> Vec<(Vec<u8>, H)> {
    let exported = s.client.export(tenant, log, 0, size).await.expect("export");
    assert_eq!(exported.len() as u64, size);
    exported
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            assert_eq!(e.index, i as u64);
            let data = Base64::decode_vec(&e.leaf_data).expect("base64 leaf data");
            let leaf = rfc9162::leaf(&data);
            assert_eq!(e.recorded_leaf_hash, hex(&leaf), "leaf {i}");
            (data, leaf)
        })
        .collect()
}

fn append_url(s: &TestServer, tenant: &str, log: &str) -> String {
    s.log_url(tenant, log, "/entries")
}

/// Posts one entry and checks the exact answer: 201 when it was created, 200 when it was an
/// idempotent retry of an entry already logged.
async fn append_one(s: &TestServer, tenant: &str, log: &str, e: &Value) -> api::AppendResult {
    let r = s.post_json(&append_url(s, tenant, log), e).await;
    assert_eq!(r.content_type, "application/json");
    let res: api::AppendResult = serde_json::from_slice(&r.body).expect("append result");
    let expected = if res.existing { 200 } else { 201 };
    assert_eq!(r.status, expected, "{}", r.text());
    check_result(&res);
    res
}

fn check_result(res: &api::AppendResult) {
    hash_hex(&res.leaf_hash);
    let id = Uuid::parse_str(&res.id).expect("uuid");
    assert_eq!(id.get_version_num(), 7, "ids are UUIDv7");
    assert!(res.checkpoint_size > res.index, "{res:?}");
}

// ---------------------------------------------------------------------------------------------
// The independent verifier, checked against the RFC's own example and published answers.

#[test]
fn independent_verifier_agrees_with_rfc9162_examples_and_known_answers() {
    // RFC 9162 §2.1.5, the tree with seven leaves, nodes named as in the RFC.
    let d: Vec<H> = (0u8..7).map(|i| rfc9162::leaf(&[i])).collect();
    let [a, b, c, dd, e, f, j] = [d[0], d[1], d[2], d[3], d[4], d[5], d[6]];
    let g = rfc9162::node(&a, &b);
    let h = rfc9162::node(&c, &dd);
    let i = rfc9162::node(&e, &f);
    let k = rfc9162::node(&g, &h);
    let l = rfc9162::node(&i, &j);
    let root = rfc9162::node(&k, &l);
    assert_eq!(rfc9162::mth(&d), root);
    assert_eq!(rfc9162::path(0, &d), vec![b, h, l]);
    assert_eq!(rfc9162::path(3, &d), vec![c, g, l]);
    assert_eq!(rfc9162::path(4, &d), vec![f, j, k]);
    assert_eq!(rfc9162::path(6, &d), vec![i, k]);
    assert_eq!(rfc9162::proof(3, &d), vec![c, dd, g, l]);
    assert_eq!(rfc9162::proof(4, &d), vec![l]);
    let hash0 = rfc9162::node(&g, &c);
    assert!(rfc9162::verify_consistency(
        3,
        7,
        &hash0,
        &root,
        &[c, dd, g, l]
    ));
    assert!(rfc9162::verify_consistency(4, 7, &k, &root, &[l]));

    // The RFC 6962 eight-leaf reference tree.
    let kat: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/vectors/merkle/rfc6962_8leaf_kat.json"
        ))
        .expect("known answers"),
    )
    .unwrap();
    let h32 = |v: &Value| -> H { unhex(v.as_str().unwrap()).try_into().unwrap() };
    let leaves: Vec<H> = kat["leaf_inputs_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| rfc9162::leaf(&unhex(x.as_str().unwrap())))
        .collect();
    assert_eq!(rfc9162::mth(&[]), h32(&kat["empty_root_hex"]));
    let roots = kat["roots_by_size_hex"].as_object().unwrap();
    assert_eq!(roots.len(), 8);
    for (size, want) in roots {
        let n: usize = size.parse().unwrap();
        assert_eq!(rfc9162::mth(&leaves[..n]), h32(want), "root of {n}");
    }
    for p in kat["inclusion_proofs"].as_array().unwrap() {
        let (m, n) = (
            p["leaf_index"].as_u64().unwrap(),
            p["tree_size"].as_u64().unwrap(),
        );
        let want: Vec<H> = p["path_hex"].as_array().unwrap().iter().map(h32).collect();
        let tree = &leaves[..n as usize];
        assert_eq!(rfc9162::path(m as usize, tree), want);
        assert!(rfc9162::verify_inclusion(
            m,
            n,
            &leaves[m as usize],
            &want,
            &rfc9162::mth(tree)
        ));
    }
    for p in kat["consistency_proofs"].as_array().unwrap() {
        let (m, n) = (p["first"].as_u64().unwrap(), p["second"].as_u64().unwrap());
        let want: Vec<H> = p["proof_hex"].as_array().unwrap().iter().map(h32).collect();
        assert_eq!(rfc9162::proof(m as usize, &leaves[..n as usize]), want);
        if m < n {
            let (r1, r2) = (
                rfc9162::mth(&leaves[..m as usize]),
                rfc9162::mth(&leaves[..n as usize]),
            );
            assert!(rfc9162::verify_consistency(m, n, &r1, &r2, &want));
        }
    }

    // Every proof of every tree up to 17 leaves verifies, and any change breaks it.
    let many: Vec<H> = (0u8..17).map(|i| rfc9162::leaf(&[i, i])).collect();
    for n in 1..=many.len() {
        let tree = &many[..n];
        let r = rfc9162::mth(tree);
        for m in 0..n {
            let p = rfc9162::path(m, tree);
            let (m64, n64) = (m as u64, n as u64);
            assert!(rfc9162::verify_inclusion(m64, n64, &tree[m], &p, &r));
            assert!(!rfc9162::verify_inclusion(m64, n64, &tree[(m + 1) % n], &p, &r) || n == 1);
            if n > 1 {
                let other = (m64 + 1) % n64;
                assert!(!rfc9162::verify_inclusion(other, n64, &tree[m], &p, &r));
            }
            assert!(!rfc9162::verify_inclusion(n64, n64, &tree[m], &p, &r));
            for x in 0..p.len() {
                let mut bad = p.clone();
                bad[x][0] ^= 1;
                assert!(!rfc9162::verify_inclusion(m64, n64, &tree[m], &bad, &r));
            }
        }
        for m in 1..n {
            let (r1, p) = (rfc9162::mth(&tree[..m]), rfc9162::proof(m, tree));
            let (m64, n64) = (m as u64, n as u64);
            assert!(
                rfc9162::verify_consistency(m64, n64, &r1, &r, &p),
                "{m} -> {n}"
            );
            assert!(!rfc9162::verify_consistency(m64, n64, &r, &r1, &p));
            for x in 0..p.len() {
                let mut bad = p.clone();
                bad[x][31] ^= 0x80;
                assert!(!rfc9162::verify_consistency(m64, n64, &r1, &r, &bad));
            }
            let mut short = p.clone();
            short.pop();
            assert!(!rfc9162::verify_consistency(m64, n64, &r1, &r, &short));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The whole story of one tenant.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_story_tenant_appends_checkpoints_and_proofs() {
    let s = start().await;

    let r = s.get(&s.url("/healthz")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "status": "ok" }));

    // Tenant and logs.
    let created = s.create_tenant("acme").await;
    let again = s
        .post_json(&s.url("/v1/tenants"), &json!({ "name": "acme" }))
        .await;
    let p = assert_problem(&again, 409);
    assert_eq!(p.problem_type, "https://custody.dev/problems/conflict");

    let logs = s.client.logs("acme").await.expect("logs").logs;
    assert_eq!(logs, created);
    let names: Vec<&str> = logs.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["governance", "inference", "access"]);
    let empty_root = Base64::encode_string(&rfc9162::mth(&[]));
    for l in &logs {
        let origin = format!("test.local/acme/{}", l.name);
        assert_eq!(l.origin, origin);
        assert_eq!((l.size, l.root.as_str()), (0, empty_root.as_str()));
        let v = NoteVerifier::parse(&l.verifier_key).expect("verifier key parses");
        assert_eq!(v.name(), origin);
        let r = s.get(&s.log_url("acme", &l.name, "/vkey")).await;
        assert_eq!((r.status, r.content_type.as_str()), (200, TEXT));
        assert_eq!(r.text(), format!("{}\n", l.verifier_key));
        let (_, cp) = checkpoint(&s, "acme", &l.name, &l.verifier_key).await;
        assert_eq!((cp.size, cp.root.0), (0, rfc9162::mth(&[])));
    }
    let keys: BTreeSet<&str> = logs.iter().map(|l| l.verifier_key.as_str()).collect();
    assert_eq!(keys.len(), 3, "one key per log");
    assert!(
        s.client
            .tenants()
            .await
            .unwrap()
            .tenants
            .contains(&"acme".to_string())
    );
    let vkey = logs[0].verifier_key.clone();
    let verifier = NoteVerifier::parse(&vkey).unwrap();

    // Single appends, each provable at once at the size it reports.
    let mut submitted: Vec<Value> = Vec::new();
    let mut results: Vec<api::AppendResult> = Vec::new();
    let singles = [
        {
            let mut e = entry("x.ml.model_registered", "mv-1");
            e["client_time"] = json!("2026-01-31T12:00:00Z");
            e["related"] = json!([{ "kind": "x_dataset", "id": "ds-1", "rel": "trained_on" }]);
            e
        },
        {
            let mut e = entry("x.ml.approval_granted", "mv-1");
            e["context"] = json!({ "purpose": "quarterly review", "auth_method": "oidc", "request_id": "req-1" });
            e
        },
        entry("x.team.note", "mv-1"),
    ];
    for e in singles {
        let res = append_one(&s, "acme", GOV, &e).await;
        assert_eq!(res.index, results.len() as u64);
        assert!(!res.existing);
        let (_, cp) = checkpoint(&s, "acme", GOV, &vkey).await;
        assert_eq!(
            cp.size, res.checkpoint_size,
            "nothing else writes to this log"
        );
        let p = s
            .client
            .inclusion_proof("acme", GOV, res.index, Some(res.checkpoint_size))
            .await
            .expect("inclusion proof available at once");
        assert_eq!((p.index, p.size), (res.index, res.checkpoint_size));
        check_inclusion(&p, &hash_hex(&res.leaf_hash), &cp.root.0);
        submitted.push(e);
        results.push(res);
    }

    // A JSON array, atomically.
    let batch: Vec<Value> = (0..3)
        .map(|i| entry("artifact.registered", &format!("art-{i}")))
        .collect();
    let r = s
        .post_json(&append_url(&s, "acme", GOV), &Value::Array(batch.clone()))
        .await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (201, "application/json"),
        "{}",
        r.text()
    );
    let many: api::AppendResults = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(many.checkpoint_size, 6);
    assert_eq!(
        many.results.iter().map(|x| x.index).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    for res in &many.results {
        check_result(res);
        assert_eq!(res.checkpoint_size, 6);
    }
    submitted.extend(batch);
    results.extend(many.results);

    // NDJSON, with a blank line and a CRLF line ending.
    let lines: Vec<Value> = (0..3)
        .map(|i| entry("x.ml.dataset_registered", &format!("ds-{i}")))
        .collect();
    let body = format!("{}\r\n\n{}\n{}\n", lines[0], lines[1], lines[2]);
    let r = s
        .post(&append_url(&s, "acme", GOV), "application/x-ndjson", body)
        .await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (201, "application/json"),
        "{}",
        r.text()
    );
    let nd: api::AppendResults = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        nd.results.iter().map(|x| x.index).collect::<Vec<_>>(),
        [6, 7, 8]
    );
    submitted.extend(lines);
    results.extend(nd.results);

    // The typed client's three append forms.
    let e = entry("model.created", "m-1");
    let one = s.client.append("acme", GOV, &e).await.unwrap();
    assert_eq!(one.index, 9);
    submitted.push(e);
    results.push(one);
    let arr = vec![entry("x.ml.policy_noted", "p-1")];
    let two = s.client.append_all("acme", GOV, &arr).await.unwrap();
    assert_eq!(two.results[0].index, 10);
    submitted.extend(arr);
    results.extend(two.results);
    let e = entry("x.ml.key_noted", "k-1");
    let three = s
        .client
        .append_ndjson("acme", GOV, format!("{e}\n").into_bytes())
        .await
        .unwrap();
    assert_eq!(three.results[0].index, 11);
    submitted.push(e);
    results.extend(three.results);

    // Checkpoint A.
    let n_a = submitted.len() as u64;
    let (note_a, cp_a) = checkpoint(&s, "acme", GOV, &vkey).await;
    assert_eq!(cp_a.size, n_a);
    let listed = s.client.logs("acme").await.unwrap().logs;
    assert_eq!(listed[0].size, n_a);
    assert_eq!(listed[0].root, Base64::encode_string(&cp_a.root.0));
    assert_eq!(
        (listed[1].size, listed[2].size),
        (0, 0),
        "other logs untouched"
    );

    // Every entry: envelope, leaf data and leaf hash, computed independently.
    let r = s
        .get(&format!(
            "{}?from=0&to={n_a}",
            s.log_url("acme", GOV, "/export")
        ))
        .await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/x-ndjson")
    );
    let exported = leaves(&s, "acme", GOV, n_a).await;
    for (i, (sub, res)) in submitted.iter().zip(&results).enumerate() {
        let rec = s.client.entry("acme", GOV, i as u64).await.unwrap();
        let (data, leaf) = &exported[i];
        assert_eq!(rec.index, i as u64);
        assert_eq!(rec.leaf_hash, hex(leaf), "entry {i}");
        assert_eq!(res.leaf_hash, hex(leaf), "append result {i}");
        let parsed: Value = serde_json::from_slice(data).expect("leaf data is JSON");
        assert_eq!(parsed, rec.envelope, "leaf data and envelope differ at {i}");
        assert_eq!(
            jcs(&rec.envelope).as_bytes(),
            &data[..],
            "leaf data is not RFC 8785"
        );
        assert_eq!(
            hex(&rfc9162::leaf(jcs(&rec.envelope).as_bytes())),
            rec.leaf_hash
        );
        let env = rec.envelope.as_object().unwrap();
        assert_eq!(env["v"], json!(1));
        assert_eq!(env["id"], json!(res.id));
        assert_eq!(env["tenant"], json!("acme"));
        assert_eq!(env["log"], json!(GOV));
        assert_server_time(env["time"].as_str().unwrap());
        assert_eq!(
            env["actor"],
            json!({"kind": "service", "id": s.principal}),
            "custody fills in the caller"
        );
        for k in [
            "type",
            "subject",
            "body",
            "client_time",
            "related",
            "context",
        ] {
            assert_eq!(env.get(k), sub.get(k), "field {k} of entry {i}");
        }
        let allowed = [
            "v",
            "id",
            "tenant",
            "log",
            "type",
            "time",
            "client_time",
            "actor",
            "subject",
            "related",
            "context",
            "body",
        ];
        assert!(env.keys().all(|k| allowed.contains(&k.as_str())), "{env:?}");
        assert_eq!(rec.payload_status, api::PayloadStatus::None);
        assert!(rec.payload.is_none() && rec.salt.is_none());
    }
    let leaf_hashes: Vec<H> = exported.iter().map(|(_, l)| *l).collect();
    assert_eq!(rfc9162::mth(&leaf_hashes), cp_a.root.0, "checkpoint root");

    // Inclusion proofs: every index in every tree size, exactly RFC 9162's PATH.
    for size in 1..=n_a {
        let tree = &leaf_hashes[..size as usize];
        let root = rfc9162::mth(tree);
        for i in 0..size {
            let p = s
                .client
                .inclusion_proof("acme", GOV, i, Some(size))
                .await
                .unwrap();
            assert_eq!((p.index, p.size), (i, size));
            check_inclusion(&p, &tree[i as usize], &root);
            assert_eq!(hashes(&p.hashes), rfc9162::path(i as usize, tree));
        }
    }
    let latest = s
        .client
        .inclusion_proof("acme", GOV, 4, None)
        .await
        .unwrap();
    assert_eq!(latest.size, n_a, "size defaults to the latest checkpoint");

    // tlog-proofs: parse, verify with the leaf hash and the pinned key.
    for i in 0..n_a {
        let r = s
            .get(&s.log_url("acme", GOV, &format!("/entries/{i}/tlog-proof")))
            .await;
        assert_eq!((r.status, r.content_type.as_str()), (200, TEXT));
        let proof = TlogProof::parse(&r.text()).expect("tlog-proof parses");
        assert!(r.text().starts_with("c2sp.org/tlog-proof@v1\n"));
        assert_eq!(proof.index, i);
        assert_eq!(proof.checkpoint, note_a);
        let leaf = leaf_hashes[i as usize];
        let cp = proof
            .verify(&Hash(leaf), &verifier)
            .expect("tlog-proof verifies");
        assert_eq!(cp, cp_a);
        let path: Vec<H> = proof.path.iter().map(|h| h.0).collect();
        assert!(rfc9162::verify_inclusion(
            i, cp.size, &leaf, &path, &cp.root.0
        ));
        // What `custody verify entry` checks offline, on the entry as served.
        let served = s
            .get(&s.log_url("acme", GOV, &format!("/entries/{i}")))
            .await;
        let report = custody_verify::entry::verify_entry(&served.body, &r.text(), &verifier)
            .expect("custody-verify accepts the entry and its tlog-proof");
        assert_eq!((report.index, report.checkpoint_size), (i, n_a));
        let mut wrong = leaf;
        wrong[0] ^= 1;
        assert!(proof.verify(&Hash(wrong), &verifier).is_err());
        let other = NoteVerifier::parse(&logs[1].verifier_key).unwrap();
        assert!(
            proof.verify(&Hash(leaf), &other).is_err(),
            "another log's key"
        );
    }

    // Append more (to a power-of-two size), then checkpoint B and consistency proofs.
    let more: Vec<Value> = (0..(16 - n_a))
        .map(|i| entry("x.ml.run_completed", &format!("run-{i}")))
        .collect();
    let done = s.client.append_all("acme", GOV, &more).await.unwrap();
    assert_eq!(done.checkpoint_size, 16);
    let (_, cp_b) = checkpoint(&s, "acme", GOV, &vkey).await;
    assert_eq!(cp_b.size, 16);
    let all = leaves(&s, "acme", GOV, 16).await;
    assert_eq!(&all[..n_a as usize], &exported[..], "old leaves unchanged");
    let all: Vec<H> = all.iter().map(|(_, l)| *l).collect();
    assert_eq!(rfc9162::mth(&all), cp_b.root.0);

    let ab = s
        .client
        .consistency_proof("acme", GOV, n_a, 16)
        .await
        .unwrap();
    assert_eq!((ab.from, ab.to), (n_a, 16));
    check_consistency(&ab, &cp_a.root.0, &cp_b.root.0);
    let mut bad = ab.clone();
    bad.hashes.reverse();
    assert!(!rfc9162::verify_consistency(
        n_a,
        16,
        &cp_a.root.0,
        &cp_b.root.0,
        &hashes(&bad.hashes)
    ));
    for to in [n_a, 13, 16] {
        for from in 1..=to {
            let p = s
                .client
                .consistency_proof("acme", GOV, from, to)
                .await
                .unwrap();
            let old = rfc9162::mth(&all[..from as usize]);
            let new = rfc9162::mth(&all[..to as usize]);
            check_consistency(&p, &old, &new);
            assert_eq!(
                hashes(&p.hashes),
                rfc9162::proof(from as usize, &all[..to as usize])
            );
        }
    }
    for to in [0, 5, 16] {
        let zero = s
            .client
            .consistency_proof("acme", GOV, 0, to)
            .await
            .unwrap();
        assert_eq!((zero.from, zero.to), (0, to));
        assert!(
            zero.hashes.is_empty(),
            "consistency from 0 is the empty proof"
        );
    }

    // Tenants are separate: another tenant's logs are empty and its keys prove nothing here.
    let beta = s.create_tenant("beta").await;
    assert_eq!(beta[0].origin, "test.local/beta/governance");
    assert!(keys.iter().all(|k| *k != beta[0].verifier_key));
    let beta_verifier = NoteVerifier::parse(&beta[0].verifier_key).unwrap();
    assert!(SignedCheckpoint::open(&note_a, &beta_verifier).is_err());
    assert_eq!(s.size("beta", GOV).await, 0);
    let r = s.get(&s.log_url("beta", GOV, "/entries/0")).await;
    assert_problem(&r, 404);
    let beta_list = s
        .client
        .list("beta", GOV, &ListQuery::default())
        .await
        .unwrap();
    assert!(beta_list.entries.is_empty());
    assert_eq!(s.size("acme", GOV).await, 16);
}

// ---------------------------------------------------------------------------------------------
// 2. Payloads: committed in the envelope, returned beside it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_are_committed_with_a_fresh_salt_and_never_logged() {
    let s = start().await;
    s.create_tenant("pay").await;
    let url = append_url(&s, "pay", "inference");
    // Keys out of canonical order: the commitment is over the JCS form.
    let raw = r#"{"type":"x.ml.prediction","subject":{"kind":"model_version","id":"sha256:ab"},"body":{},"payload":{"b":"x","a":1}}"#;
    let first = s.post(&url, "application/json", raw).await;
    assert_eq!(first.status, 201, "{}", first.text());
    let personal = json!({
        "user": { "email": "alice@example.com", "name": "Alice Example" },
        "source_ip": "203.0.113.9",
        "input": "is this transaction fraudulent?",
        "scores": [1, 2, 3],
    });
    let mut e = entry("x.ml.prediction", "sha256:ab");
    e["payload"] = personal.clone();
    let second = s.client.append("pay", "inference", &e).await.unwrap();
    let again = s.post(&url, "application/json", raw).await;
    assert_eq!(again.status, 201);
    let plain = s
        .client
        .append("pay", "inference", &entry("x.ml.prediction", "sha256:ab"))
        .await
        .unwrap();
    assert_eq!((second.index, plain.index), (1, 3));

    let rec = |i: u64| s.client.entry("pay", "inference", i);
    let r0 = rec(0).await.unwrap();
    let env = r0.envelope.as_object().unwrap();
    assert!(
        !env.contains_key("payload"),
        "payload leaked into the envelope"
    );
    let c0 = env["payload_commitment"]
        .as_str()
        .expect("commitment")
        .to_string();
    assert_eq!(r0.payload_status, api::PayloadStatus::Present);
    assert_eq!(r0.payload, Some(json!({ "a": 1, "b": "x" })));
    let salt0 = r0.salt.clone().expect("salt");
    let salt_bytes = unhex(&salt0);
    assert_eq!((salt_bytes.len(), hex(&salt_bytes)), (32, salt0.clone()));
    // By hand: SHA-256(salt || {"a":1,"b":"x"}).
    let by_hand: [u8; 32] = Sha256::new()
        .chain_update(&salt_bytes)
        .chain_update(br#"{"a":1,"b":"x"}"#)
        .finalize()
        .into();
    assert_eq!(c0, format!("sha256:{}", hex(&by_hand)));
    let salt = Salt::from_hex(&salt0).unwrap();
    commitment::verify(&salt, r0.payload.as_ref().unwrap(), &c0).expect("core verify");
    assert!(commitment::verify(&salt, &json!({ "a": 2, "b": "x" }), &c0).is_err());

    let r1 = rec(1).await.unwrap();
    assert_eq!(r1.payload.as_ref(), Some(&personal));
    let c1 = r1.envelope["payload_commitment"].as_str().unwrap();
    let s1 = unhex(r1.salt.as_deref().unwrap());
    let d1: [u8; 32] = Sha256::new()
        .chain_update(&s1)
        .chain_update(jcs(&personal).as_bytes())
        .finalize()
        .into();
    assert_eq!(c1, format!("sha256:{}", hex(&d1)));
    commitment::verify(
        &Salt::from_hex(r1.salt.as_deref().unwrap()).unwrap(),
        &personal,
        c1,
    )
    .unwrap();

    // The same payload again: a fresh salt, so a different commitment.
    let r2 = rec(2).await.unwrap();
    assert_eq!(r2.payload, r0.payload);
    assert_ne!(r2.salt, r0.salt, "salts are never reused");
    assert_ne!(
        r2.envelope["payload_commitment"],
        r0.envelope["payload_commitment"]
    );

    let r3 = rec(3).await.unwrap();
    assert_eq!(r3.payload_status, api::PayloadStatus::None);
    assert!(r3.envelope.get("payload_commitment").is_none());
    assert!(r3.payload.is_none() && r3.salt.is_none());

    // Nothing personal in any leaf; every leaf hash still matches its bytes.
    let leaves = leaves(&s, "pay", "inference", 4).await;
    for (i, (data, leaf)) in leaves.iter().enumerate() {
        let text = String::from_utf8(data.clone()).unwrap();
        for secret in [
            "alice@example.com",
            "Alice Example",
            "203.0.113.9",
            "fraudulent",
        ] {
            assert!(!text.contains(secret), "leaf {i} contains {secret}");
        }
        let view = rec(i as u64).await.unwrap();
        assert_eq!(view.leaf_hash, hex(leaf));
    }

    // Listing returns payloads and salts too.
    let page = s
        .client
        .list("pay", "inference", &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 4);
    assert_eq!(page.entries[1].payload.as_ref(), Some(&personal));
    assert_eq!(page.entries[1].salt, r1.salt);
}

// ---------------------------------------------------------------------------------------------
// 3. Idempotency.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_the_same_id_are_idempotent_and_reuse_is_a_conflict() {
    let s = start().await;
    s.create_tenant("idem").await;
    let url = append_url(&s, "idem", GOV);
    s.client
        .append("idem", GOV, &entry("model.created", "m-0"))
        .await
        .unwrap();

    let id = Uuid::now_v7().to_string();
    let mut e = entry("x.ml.model_registered", "mv-1");
    e["id"] = json!(id);
    e["payload"] = json!({ "note": "personal" });
    let first = append_one(&s, "idem", GOV, &e).await;
    assert_eq!(
        (first.index, first.id.as_str(), first.existing),
        (1, id.as_str(), false)
    );
    let size = s.size("idem", GOV).await;
    assert_eq!(size, 2);
    let retry = append_one(&s, "idem", GOV, &e).await;
    assert_eq!(retry.index, first.index);
    assert_eq!(retry.leaf_hash, first.leaf_hash);
    assert_eq!(retry.id, id);
    assert!(retry.existing, "a retry is reported as existing");
    assert_eq!(s.size("idem", GOV).await, size, "a retry writes nothing");
    let stored = s.client.entry("idem", GOV, 1).await.unwrap();
    assert_eq!(stored.envelope["id"], json!(id));
    assert_eq!(stored.leaf_hash, first.leaf_hash);

    // Same id, different content (body, then payload): 409, nothing written.
    let mut changed = e.clone();
    changed["body"]["n"] = json!(2);
    let p = assert_problem(&s.post_json(&url, &changed).await, 409);
    assert_eq!(p.problem_type, "https://custody.dev/problems/conflict");
    assert!(p.detail.contains(&id), "{}", p.detail);
    let mut changed = e.clone();
    changed["payload"] = json!({ "note": "other" });
    assert_problem(&s.post_json(&url, &changed).await, 409);
    // ... and inside an array with new entries: the whole array is refused.
    let fresh = entry("x.team.event", "s-9");
    let mut reused = e.clone();
    reused["subject"]["id"] = json!("mv-other");
    assert_problem(&s.post_json(&url, &json!([fresh, reused])).await, 409);
    assert_eq!(s.size("idem", GOV).await, size);

    // The retry of a whole array returns the same indexes.
    let (id_a, id_b) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let mut a = entry("x.team.event", "s-1");
    a["id"] = json!(id_a);
    let mut b = entry("x.team.event", "s-2");
    b["id"] = json!(id_b);
    let arr = vec![a.clone(), b.clone()];
    let one = s.client.append_all("idem", GOV, &arr).await.unwrap();
    let two = s.client.append_all("idem", GOV, &arr).await.unwrap();
    for (x, y) in one.results.iter().zip(&two.results) {
        assert_eq!(
            (x.index, &x.leaf_hash, x.existing),
            (y.index, &y.leaf_hash, !y.existing)
        );
    }
    assert_eq!(s.size("idem", GOV).await, size + 2);

    // One array, one id twice with the same content: one entry, both results point at it.
    let id_c = Uuid::now_v7().to_string();
    let mut c = entry("x.team.event", "s-3");
    c["id"] = json!(id_c);
    let other = entry("x.team.event", "s-4");
    let dup = s
        .client
        .append_all("idem", GOV, &[c.clone(), other, c.clone()])
        .await
        .unwrap();
    let [r0, r1, r2] = [&dup.results[0], &dup.results[1], &dup.results[2]];
    assert_eq!((r0.index, r1.index), (size + 2, size + 3));
    assert_eq!(
        (r2.index, &r2.leaf_hash, &r2.id),
        (r0.index, &r0.leaf_hash, &r0.id)
    );
    assert!(!r0.existing);
    assert_eq!(s.size("idem", GOV).await, size + 4);

    // One array, one id twice with different content: 409 and nothing written.
    let id_d = Uuid::now_v7().to_string();
    let mut d1 = entry("x.team.event", "s-5");
    d1["id"] = json!(id_d);
    let mut d2 = d1.clone();
    d2["body"]["n"] = json!(99);
    let new = entry("x.team.event", "s-6");
    assert_problem(&s.post_json(&url, &json!([new, d1, d2])).await, 409);
    assert_eq!(s.size("idem", GOV).await, size + 4);
    let later = s.client.append("idem", GOV, &d1).await.unwrap();
    assert!(
        !later.existing,
        "the refused array left no trace of its ids"
    );
    assert_eq!(later.index, size + 4);

    // The same id in another log is a different entry.
    let elsewhere = s.client.append("idem", "inference", &e).await.unwrap();
    assert_eq!((elsewhere.index, elsewhere.existing), (0, false));

    // Ids must be UUIDv7.
    let mut v4 = entry("x.team.event", "s-7");
    v4["id"] = json!("550e8400-e29b-41d4-a716-446655440000");
    let p = assert_problem(&s.post_json(&url, &v4).await, 400);
    assert_field(&p, "id");
}

// ---------------------------------------------------------------------------------------------
// 4. Arrays and NDJSON are all or nothing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_and_ndjson_are_atomic() {
    let s = start().await;
    s.create_tenant("atom").await;
    let url = append_url(&s, "atom", GOV);
    s.client
        .append("atom", GOV, &entry("model.created", "m-0"))
        .await
        .unwrap();

    let mut items: Vec<Value> = (0..4)
        .map(|i| entry("x.team.event", &format!("s-{i}")))
        .collect();
    items[2]["actor"] = json!({"kind": "robot", "id": "p_harness"});
    let p = assert_problem(&s.post_json(&url, &Value::Array(items.clone())).await, 400);
    assert_eq!(p.problem_type, "https://custody.dev/problems/validation");
    assert_field(&p, "[2].actor.kind");
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    assert_eq!(s.size("atom", GOV).await, 1);

    // Every invalid field of every entry, in one answer.
    items[0]["type"] = json!("Model.Registered");
    items[3]["actor"] = json!({"kind": "service", "id": "alice@example.com"});
    items[3]["surprise"] = json!(true);
    let p = assert_problem(&s.post_json(&url, &Value::Array(items)).await, 400);
    for f in ["[0].type", "[2].actor.kind", "[3].actor.id", "[3].surprise"] {
        assert_field(&p, f);
    }
    assert_eq!(p.errors.len(), 4, "{:?}", p.errors);

    // An oversize envelope inside an array is named by position.
    let mut big = entry("x.team.event", "s-big");
    big["body"]["blob"] = json!("a".repeat(70_000));
    let ok = entry("x.team.event", "s-ok");
    let p = assert_problem(&s.post_json(&url, &json!([ok, big])).await, 400);
    assert_field(&p, "[1]");
    assert!(p.errors[0].message.contains("65535"), "{:?}", p.errors);

    // Empty and non-object submissions.
    let p = assert_problem(&s.post_json(&url, &json!([])).await, 400);
    assert!(p.detail.contains("no entries"), "{}", p.detail);
    let p = assert_problem(&s.post_json(&url, &json!([1])).await, 400);
    assert_field(&p, "[0]");
    assert_problem(&s.post_json(&url, &json!("entry")).await, 400);

    // NDJSON: a malformed line is named, and nothing before it is written.
    let good = entry("x.team.event", "s-n");
    let body = format!("{good}\n{good}\n{{\"type\": \n{good}\n");
    let r = s.post(&url, "application/x-ndjson", body).await;
    let p = assert_problem(&r, 400);
    assert_eq!(
        p.problem_type,
        "https://custody.dev/problems/malformed-json"
    );
    assert!(p.detail.contains("line 3"), "{}", p.detail);
    // A valid JSON line that is not a valid entry.
    let mut bad = good.clone();
    bad["actor"] = json!({"kind": "robot", "id": "p_harness"});
    let body = format!("{good}\n{bad}\n");
    let p = assert_problem(&s.post(&url, "application/x-ndjson", body).await, 400);
    assert_field(&p, "[1].actor.kind");
    let p = assert_problem(&s.post(&url, "application/x-ndjson", "\n\n").await, 400);
    assert!(p.detail.contains("no entries"), "{}", p.detail);

    assert_eq!(
        s.size("atom", GOV).await,
        1,
        "no failed request wrote anything"
    );
    let page = s
        .client
        .list("atom", GOV, &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 5. Bad input: a precise problem, and nothing written.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_precise_problem_and_writes_nothing() {
    let s = start().await;
    s.create_tenant("acme").await;
    for i in 0..2 {
        s.client
            .append("acme", GOV, &entry("model.created", &format!("m-{i}")))
            .await
            .unwrap();
    }
    let url = append_url(&s, "acme", GOV);
    let mut valid = entry("x.team.event", "s-1");
    valid["actor"] = json!({"kind": "service", "id": s.principal});
    let body_of = |extra: &str| -> String {
        // A valid entry with `extra` spliced in as the first member.
        format!("{{{extra},{}", &valid.to_string()[1..])
    };

    // Malformed JSON, trailing garbage, duplicate keys (top level and nested).
    for (body, hint) in [
        (r#"{"type": "#.to_string(), "EOF"),
        (format!("{valid} x"), "trailing"),
        (
            body_of(r#""type":"x.team.other""#),
            "duplicate object key \"type\"",
        ),
        (
            valid.to_string().replace(r#""n":1"#, r#""n":1,"n":2"#),
            "duplicate object key \"n\"",
        ),
    ] {
        let p = assert_problem(&s.post(&url, "application/json", body.clone()).await, 400);
        assert_eq!(
            p.problem_type, "https://custody.dev/problems/malformed-json",
            "{body}"
        );
        assert!(p.detail.contains(hint), "{body}: {}", p.detail);
    }

    // Content types.
    let p = assert_problem(&s.post(&url, "text/plain", valid.to_string()).await, 415);
    assert!(p.detail.contains("text/plain"), "{}", p.detail);
    let r = send_no_type(&s, &url, valid.to_string()).await;
    assert_problem(&r, 415);
    let p = assert_problem(
        &s.post(&s.url("/v1/tenants"), "text/plain", r#"{"name":"zeta"}"#)
            .await,
        415,
    );
    assert!(!p.detail.is_empty());
    let r = s
        .post(&url, "application/json; charset=utf-8", valid.to_string())
        .await;
    assert_eq!(
        r.status,
        201,
        "parameters on the media type are fine: {}",
        r.text()
    );

    // Tenant names.
    let p = assert_problem(
        &s.post_json(&append_url(&s, "Bad_Name", GOV), &valid).await,
        400,
    );
    assert_field(&p, "tenant");
    let p = assert_problem(&s.get(&s.url("/v1/tenants/Bad_Name/logs")).await, 400);
    assert_field(&p, "tenant");
    let p = assert_problem(
        &s.get(&s.log_url("Bad_Name", GOV, "/checkpoint")).await,
        400,
    );
    assert_field(&p, "tenant");
    let tenants = s.url("/v1/tenants");
    for (body, field) in [
        (json!({ "name": "Bad_Name" }), "name"),
        (json!({ "name": "-acme" }), "name"),
        (json!({ "name": "a".repeat(64) }), "name"),
        (json!({ "name": 7 }), "name"),
        (json!({}), "name"),
        (json!({ "name": "zeta", "plan": "gold" }), "plan"),
    ] {
        let p = assert_problem(&s.post_json(&tenants, &body).await, 400);
        assert_field(&p, field);
    }
    assert_eq!(
        s.client.tenants().await.unwrap().tenants,
        ["acme"],
        "no tenant was created"
    );

    // Unknown tenant, unknown log, unknown route, wrong method.
    for u in [
        s.url("/v1/tenants/nobody/logs"),
        s.log_url("nobody", GOV, "/checkpoint"),
        s.log_url("nobody", GOV, "/vkey"),
        s.log_url("nobody", GOV, "/entries"),
        s.log_url("nobody", GOV, "/entries/0"),
        s.log_url("acme", "audit", "/checkpoint"),
        s.log_url("acme", "audit", "/entries"),
        s.log_url("acme", "Governance", "/vkey"),
        s.url("/v1/nope"),
        s.url("/v2/tenants"),
        s.url("/"),
        s.log_url("acme", GOV, "/entries/0/nope"),
    ] {
        assert_problem(&s.get(&u).await, 404);
    }
    assert_problem(
        &s.post_json(&append_url(&s, "nobody", GOV), &valid).await,
        404,
    );
    assert_problem(
        &s.post_json(&append_url(&s, "acme", "audit"), &valid).await,
        404,
    );
    let r = send(s.http.delete(&url)).await;
    let p = assert_problem(&r, 405);
    assert_eq!(
        p.problem_type,
        "https://custody.dev/problems/method-not-allowed"
    );
    let allow = r
        .headers
        .get("allow")
        .map(|v| v.to_str().unwrap().to_ascii_uppercase())
        .unwrap_or_default();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "RFC 9110 §15.5.6: a 405 must list the allowed methods in Allow, got {allow:?}"
    );
    assert_problem(&send(s.http.put(s.url("/v1/tenants"))).await, 405);
    assert_problem(
        &send(s.http.post(s.log_url("acme", GOV, "/checkpoint"))).await,
        405,
    );

    // Indexes and sizes out of range.
    let size = 3; // two entries above, one accepted with a charset parameter
    let get = |rest: String| get_gov(&s, rest);
    let p = assert_problem(&get(format!("/entries/{size}")).await, 404);
    assert!(p.detail.contains("3"), "{}", p.detail);
    assert_problem(&get("/entries/18446744073709551615".into()).await, 404);
    assert_problem(&get(format!("/entries/{size}/tlog-proof")).await, 404);
    for (q, field) in [
        (format!("index={size}"), "index"),
        (format!("index=0&size={}", size + 1), "size"),
        (format!("index={size}&size={size}"), "index"),
        ("index=2&size=2".into(), "index"),
        ("index=0&size=0".into(), "index"),
        ("size=1".into(), "index"),
        ("index=abc".into(), "index"),
        ("index=-1".into(), "index"),
        ("index=0&index=1".into(), "index"),
        ("index=0&foo=1".into(), "foo"),
    ] {
        let p = assert_problem(&get(format!("/proof/inclusion?{q}")).await, 400);
        assert_field(&p, field);
    }
    for (q, field) in [
        ("from=2&to=1".to_string(), "from"),
        (format!("from=0&to={}", size + 1), "to"),
        (format!("from={}&to={}", size + 1, size + 2), "to"),
        ("to=1".into(), "from"),
        ("from=1".into(), "to"),
        ("from=x&to=1".into(), "from"),
        ("from=1&to=2&verbose=1".into(), "verbose"),
    ] {
        let p = assert_problem(&get(format!("/proof/consistency?{q}")).await, 400);
        assert_field(&p, field);
    }
    for q in ["from=0&to=4", "from=2&to=1", "from=0", "from=0&to=1&x=1"] {
        assert_problem(&get(format!("/export?{q}")).await, 400);
    }
    for bad in ["abc", "-1", "1.5", "0x1", "%20"] {
        let p = assert_problem(&get(format!("/entries/{bad}")).await, 400);
        assert_field(&p, "index");
        let p = assert_problem(&get(format!("/entries/{bad}/tlog-proof")).await, 400);
        assert_field(&p, "index");
    }
    let p = assert_problem(&get("/entries?foo=bar".into()).await, 400);
    assert_field(&p, "foo");

    // Entry content.
    let cases: Vec<(String, &str)> = vec![
        (body_of(r#""client_time":"yesterday""#), "client_time"),
        (
            valid
                .to_string()
                .replace(r#""n":1"#, r#""n":9007199254740993"#),
            "body.n",
        ),
        (
            valid
                .to_string()
                .replace(r#""n":1"#, r#""n":-9007199254740993"#),
            "body.n",
        ),
        (
            valid
                .to_string()
                .replace(r#""n":1"#, r#""deep":{"rows":[1,18446744073709551616]}"#),
            "body.deep.rows[1]",
        ),
        (
            body_of(r#""payload":{"scores":[1,9007199254740993]}"#),
            "payload.scores[1]",
        ),
        (
            valid.to_string().replace("p_harness", "alice@example.com"),
            "actor.id",
        ),
        (
            valid.to_string().replace("p_harness", "Alice Example"),
            "actor.id",
        ),
        (
            valid.to_string().replace(r#""service""#, r#""robot""#),
            "actor.kind",
        ),
        (body_of(r#""ip":"203.0.113.9""#), "ip"),
        (body_of(r#""tenant":"other""#), "tenant"),
        (body_of(r#""time":"2026-01-01T00:00:00Z""#), "time"),
        (
            body_of(r#""payload_commitment":"sha256:00""#),
            "payload_commitment",
        ),
        (
            valid
                .to_string()
                .replace("x.team.event", "Model.Registered"),
            "type",
        ),
        (valid.to_string().replace("x.team.event", "foo.bar"), "type"),
        (valid.to_string().replace("x.team.event", "model"), "type"),
        (
            valid
                .to_string()
                .replace(r#""body":{"#, r#""body":{"x":1},"b":{"#),
            "b",
        ),
        (r#"{"type":"x.team.event"}"#.to_string(), "subject"),
        (
            valid.to_string().replace("p_harness", "svc-someone-else"),
            "actor",
        ),
        (
            valid.to_string().replace(
                r#""body":{"digest":"sha256:00","n":1,"ok":true}"#,
                r#""body":[1]"#,
            ),
            "body",
        ),
        (
            body_of(r#""related":[{"kind":"dataset_version","id":"ds 1","rel":"trained_on"}]"#),
            "related[0].id",
        ),
        (
            body_of(r#""context":{"source_ip":"203.0.113.9"}"#),
            "context.source_ip",
        ),
    ];
    for (body, field) in cases {
        let p = assert_problem(&s.post(&url, "application/json", body.clone()).await, 400);
        assert_eq!(
            p.problem_type, "https://custody.dev/problems/validation",
            "{body}"
        );
        assert_field(&p, field);
    }

    // Nothing above was written, to any log.
    assert_eq!(s.size("acme", GOV).await, size);
    assert_eq!(s.size("acme", "inference").await, 0);
    assert_eq!(s.size("acme", "access").await, 0);
}

async fn send_no_type(s: &TestServer, url: &str, body: String) -> Reply {
    send(s.http.post(url).body(body)).await
}

/// `GET` under the `acme` governance log.
async fn get_gov(s: &TestServer, rest: String) -> Reply {
    s.get(&s.log_url("acme", GOV, &rest)).await
}

// ---------------------------------------------------------------------------------------------
// 5b. Size limits.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_and_envelopes_are_refused() {
    let s = start().await;
    s.create_tenant("big").await;
    let url = append_url(&s, "big", GOV);

    // One envelope over 65,535 canonical bytes.
    let mut e = entry("x.team.event", "s-1");
    e["body"]["blob"] = json!("a".repeat(65_600));
    let p = assert_problem(&s.post_json(&url, &e).await, 400);
    assert!(p.detail.contains("65535"), "{}", p.detail);
    // Just under the limit is fine.
    let mut fits = entry("x.team.event", "s-2");
    fits["body"]["blob"] = json!("a".repeat(65_000));
    let ok = s.client.append("big", GOV, &fits).await.unwrap();
    let rec = s.client.entry("big", GOV, ok.index).await.unwrap();
    assert_eq!(rec.envelope["body"]["blob"], fits["body"]["blob"]);

    // A body one byte over 64 MiB: 413, whatever it holds.
    let limit = custody_server::MAX_BODY_BYTES;
    assert_eq!(limit, 64 * 1024 * 1024);
    let chunk = 1 << 20;
    let body: Vec<Vec<u8>> = (0..limit / chunk)
        .map(|_| vec![b' '; chunk])
        .chain(std::iter::once(b" ".to_vec()))
        .collect();
    let stream = futures_util::stream::iter(body.into_iter().map(Ok::<Vec<u8>, std::io::Error>));
    let r = send(
        s.http
            .post(&url)
            .header("content-type", "application/json")
            .header("content-length", (limit + 1).to_string())
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    let p = assert_problem(&r, 413);
    assert!(p.detail.contains(&limit.to_string()), "{}", p.detail);
    assert_eq!(s.size("big", GOV).await, 1);
}

// ---------------------------------------------------------------------------------------------
// 6. Listing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_narrow_and_cursors_walk_every_entry_once() {
    let s = start().await;
    s.create_tenant("list").await;
    let specs: [(&str, &str, &str, &[&str]); 7] = [
        ("x.ml.model_registered", "svc-a", "mv-1", &["ds-1"]),
        ("x.ml.approval_granted", "usr-b", "mv-1", &[]),
        ("x.ml.model_registered", "svc-a", "mv-2", &["ds-2"]),
        (
            "x.ml.deployment_created",
            "svc-c",
            "mv-1",
            &["ds-1", "ap-1"],
        ),
        ("x.ml.approval_granted", "usr-b", "mv-2", &["ap-1"]),
        ("x.ml.model_registered", "svc-c", "mv-3", &[]),
        ("x.team.note", "svc-a", "mv-3", &["mv-1"]),
    ];
    for (t, actor, subject, related) in specs {
        let mut e = entry_by(t, actor, subject);
        e["related"] = related
            .iter()
            .map(|id| json!({ "kind": "x_dataset", "id": id, "rel": "uses" }))
            .collect();
        let r = s
            .post_json(&s.log_url("list", "inference", "/entries"), &e)
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let svc_a = s.actor_id("list", "svc-a").await;
    let usr_b = s.actor_id("list", "usr-b").await;
    let all = s
        .client
        .list(
            "list",
            "inference",
            &ListQuery {
                limit: Some(1000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.checkpoint_size, 7);
    assert!(all.next_cursor.is_none());
    assert_eq!(all.entries.len(), 7);
    for (i, rec) in all.entries.iter().enumerate() {
        let one = s.client.entry("list", "inference", i as u64).await.unwrap();
        assert_eq!(rec.index, i as u64);
        assert_eq!(
            (&rec.envelope, &rec.leaf_hash),
            (&one.envelope, &one.leaf_hash)
        );
    }
    let times: Vec<String> = all
        .entries
        .iter()
        .map(|r| r.envelope["time"].as_str().unwrap().to_string())
        .collect();

    let expect = |pred: &dyn Fn(usize) -> bool| -> Vec<u64> {
        (0..7).filter(|i| pred(*i)).map(|i| i as u64).collect()
    };
    let q = |f: fn(&mut ListQuery, String), v: &str| {
        let mut q = ListQuery::default();
        f(&mut q, v.to_string());
        q
    };
    let cases: Vec<(ListQuery, Vec<u64>)> = vec![
        (
            q(|q, v| q.entry_type = Some(v), "x.ml.model_registered"),
            vec![0, 2, 5],
        ),
        (q(|q, v| q.entry_type = Some(v), "x.none.none"), vec![]),
        (q(|q, v| q.actor = Some(v), &svc_a), vec![0, 2, 6]),
        (q(|q, v| q.actor = Some(v), &usr_b), vec![1, 4]),
        (q(|q, v| q.subject = Some(v), "mv-1"), vec![0, 1, 3]),
        (q(|q, v| q.related = Some(v), "ds-1"), vec![0, 3]),
        (q(|q, v| q.related = Some(v), "ap-1"), vec![3, 4]),
        (q(|q, v| q.related = Some(v), "mv-1"), vec![6]),
        (
            ListQuery {
                entry_type: Some("x.ml.approval_granted".into()),
                subject: Some("mv-2".into()),
                ..Default::default()
            },
            vec![4],
        ),
        (
            ListQuery {
                since: Some(times[3].clone()),
                ..Default::default()
            },
            expect(&|i| times[i] >= times[3]),
        ),
        (
            ListQuery {
                until: Some(times[3].clone()),
                ..Default::default()
            },
            expect(&|i| times[i] < times[3]),
        ),
        (
            ListQuery {
                since: Some(times[2].replace('Z', "+00:00")),
                until: Some(times[5].clone()),
                ..Default::default()
            },
            expect(&|i| times[i] >= times[2] && times[i] < times[5]),
        ),
        (
            ListQuery {
                actor: Some(svc_a.clone()),
                since: Some(times[1].clone()),
                ..Default::default()
            },
            expect(&|i| [0, 2, 6].contains(&i) && times[i] >= times[1]),
        ),
    ];
    for (query, want) in cases {
        let page = s.client.list("list", "inference", &query).await.unwrap();
        let got: Vec<u64> = page.entries.iter().map(|r| r.index).collect();
        assert_eq!(got, want, "{query:?}");
        assert!(page.next_cursor.is_none());
    }
    assert!(
        expect(&|i| times[i] >= times[3]).len() < 7,
        "the time filters were not exercised"
    );

    // Cursor pagination visits every entry exactly once, alone and with a filter.
    for (filter, want) in [
        (None, (0..7).collect::<Vec<u64>>()),
        (Some("x.ml.model_registered"), vec![0, 2, 5]),
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let page = s
                .client
                .list(
                    "list",
                    "inference",
                    &ListQuery {
                        entry_type: filter.map(String::from),
                        cursor: cursor.clone(),
                        limit: Some(2),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert!(page.entries.len() <= 2);
            seen.extend(page.entries.iter().map(|r| r.index));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, want, "filter {filter:?}");
    }

    // Bad listing parameters.
    let base = s.log_url("list", "inference", "/entries");
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("cursor=abc", "cursor"),
        ("type=a&type=b", "type"),
        ("order=desc", "order"),
    ] {
        let p = assert_problem(&s.get(&format!("{base}?{q}")).await, 400);
        assert_field(&p, field);
    }
    let r = s.get(&format!("{base}?limit=1000")).await;
    assert_eq!(r.status, 200);
    // A cursor past every index is an empty page or a bad cursor, never "not found".
    for cursor in [
        "7",
        "1000000",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
    ] {
        let r = s.get(&format!("{base}?cursor={cursor}")).await;
        if r.status == 200 {
            let page: api::EntryList = serde_json::from_slice(&r.body).unwrap();
            assert!(
                page.entries.is_empty() && page.next_cursor.is_none(),
                "cursor {cursor}"
            );
        } else {
            let p = assert_problem(&r, 400);
            assert_field(&p, "cursor");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Concurrency.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_distinct_indexes_and_valid_proofs() {
    let s = start().await;
    let logs = s.create_tenant("conc").await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let client = s.client.clone();
        tasks.push(tokio::spawn(async move {
            let e = entry("x.ml.prediction", &format!("req-{i}"));
            client.append("conc", "inference", &e).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().expect("every append succeeds"));
    }
    let mut indexes: Vec<u64> = results.iter().map(|r| r.index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..64).collect::<Vec<u64>>());
    let distinct: BTreeSet<&str> = results.iter().map(|r| r.leaf_hash.as_str()).collect();
    assert_eq!(distinct.len(), 64);

    let (_, cp) = checkpoint(&s, "conc", "inference", &logs[1].verifier_key).await;
    assert_eq!(cp.size, 64);
    let all = leaves(&s, "conc", "inference", 64).await;
    let all: Vec<H> = all.iter().map(|(_, l)| *l).collect();
    assert_eq!(rfc9162::mth(&all), cp.root.0);
    for r in &results {
        check_result(r);
        assert!(r.checkpoint_size <= 64);
        let leaf = hash_hex(&r.leaf_hash);
        assert_eq!(all[r.index as usize], leaf);
        let p = s
            .client
            .inclusion_proof("conc", "inference", r.index, None)
            .await
            .unwrap();
        assert_eq!(p.size, 64);
        check_inclusion(&p, &leaf, &cp.root.0);
        // The checkpoint each writer was promised covered its entry, as a prefix of today's.
        let then = s
            .client
            .inclusion_proof("conc", "inference", r.index, Some(r.checkpoint_size))
            .await
            .unwrap();
        check_inclusion(
            &then,
            &leaf,
            &rfc9162::mth(&all[..r.checkpoint_size as usize]),
        );
    }

    // Racing retries of one id: one entry, every answer points at it, one of them new.
    let id = Uuid::now_v7().to_string();
    let mut same = entry("x.ml.prediction", "req-retry");
    same["id"] = json!(id);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (client, e) = (s.client.clone(), same.clone());
            tokio::spawn(async move { client.append("conc", "inference", &e).await })
        })
        .collect();
    let mut retries = Vec::new();
    for t in tasks {
        retries.push(t.await.unwrap().expect("a retry succeeds"));
    }
    assert!(
        retries
            .iter()
            .all(|r| (r.index, &r.leaf_hash, &r.id) == (64, &retries[0].leaf_hash, &id))
    );
    assert_eq!(retries.iter().filter(|r| !r.existing).count(), 1);
    assert_eq!(s.size("conc", "inference").await, 65);

    // Racing reuses of one id for different content: exactly one wins, the rest are 409.
    let id = Uuid::now_v7().to_string();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let client = s.client.clone();
            let mut e = entry("x.ml.prediction", &format!("variant-{i}"));
            e["id"] = json!(id);
            tokio::spawn(async move { client.append("conc", "inference", &e).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                won += 1;
                assert_eq!((r.index, r.existing), (65, false));
            }
            Err(e) => assert_eq!(e.status(), Some(409), "{e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(s.size("conc", "inference").await, 66);
}

// ---------------------------------------------------------------------------------------------
// 9. Graceful shutdown.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_keeps_every_acknowledged_append() {
    use custody_core::envelope::{LogName, TenantName};
    use custody_store::{LedgerReader, LogKey};

    let mut s = start().await;
    s.create_tenant("shut").await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let signalled = Arc::new(AtomicBool::new(false));
    for i in 0..50 {
        let client = s.client.clone();
        let tx = tx.clone();
        let signalled = signalled.clone();
        tokio::spawn(async move {
            let e = entry("x.docs.granted", &format!("doc-{i}"));
            let outcome = client.append("shut", "inference", &e).await;
            let _ = tx.send((outcome, signalled.load(Ordering::SeqCst)));
        });
    }
    drop(tx);
    // Stop as soon as the first append is acknowledged: the others are queued in the
    // sequencer, being handled, or not yet accepted.
    let mut outcomes = vec![
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("no append finished")
            .expect("a result"),
    ];
    signalled.store(true, Ordering::SeqCst);
    s.trigger_shutdown();
    let rest = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(o) = rx.recv().await {
            outcomes.push(o);
        }
    })
    .await;
    assert!(rest.is_ok(), "appends still hanging 20 s after shutdown");
    assert_eq!(outcomes.len(), 50);
    let served = s.join(Duration::from_secs(5)).await;

    let mut acked = Vec::new();
    let mut after_signal = 0;
    for (o, late) in outcomes {
        match o {
            Ok(r) => {
                after_signal += usize::from(late);
                acked.push(r);
            }
            // Refused or cut off by the shutdown: never acknowledged, so either way is fine,
            // but never a 500 or a validation problem.
            Err(e) => assert!(
                e.status().is_none() || e.status() == Some(503),
                "unexpected failure during shutdown: {e}"
            ),
        }
    }
    assert!(!acked.is_empty());
    eprintln!(
        "{} of 50 appends acknowledged, {after_signal} of them after the shutdown signal",
        acked.len()
    );

    // Every acknowledged entry is on disk, as acknowledged, under a checkpoint that covers it.
    let store = custody_store_sqlite::SqliteStore::open(&s.db_path)
        .await
        .unwrap();
    let key = LogKey {
        tenant: TenantName::parse("shut").unwrap(),
        log: LogName::Inference,
    };
    let cp = store.latest_checkpoint(&key).await.unwrap();
    let distinct: BTreeSet<u64> = acked.iter().map(|a| a.index).collect();
    assert_eq!(distinct.len(), acked.len());
    for a in &acked {
        assert!(
            a.index < cp.size,
            "{a:?} beyond the stored checkpoint {}",
            cp.size
        );
        let stored = store
            .entry(&key, a.index)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged entry {} is missing", a.index));
        assert_eq!(hex(&stored.leaf_hash.0), a.leaf_hash);
        assert_eq!(hex(&rfc9162::leaf(&stored.envelope)), a.leaf_hash);
        assert_eq!(stored.id.to_string(), a.id);
    }
    let stored = store.entry_range(&key, 0, cp.size).await.unwrap();
    let leaves: Vec<H> = stored.iter().map(|e| rfc9162::leaf(&e.envelope)).collect();
    assert_eq!(
        rfc9162::mth(&leaves),
        cp.root.0,
        "stored checkpoint matches stored entries"
    );

    let served = served.expect("serve() did not return within 5 s of the shutdown signal");
    served.expect("serve() returned an error");
}

#[tokio::test]
async fn framework_rejections_are_problems_too() {
    let srv = common::start().await;
    // A path segment that is not UTF-8 is refused by the router's extractor, not a handler.
    let r = srv.get(&srv.url("/v1/tenants/%FF/logs")).await;
    let p = common::assert_problem(&r, 400);
    assert!(!p.detail.is_empty());
}
