//! The ML evidence chain over real HTTP: every typed event with good and bad input, the
//! approval gate (missing approver, the same key twice, wrong digest, the approver who trained,
//! a rejection), a rollback in the middle of a stream of inference records, and trace, served,
//! history, admit and evidence-pack answers whose every proof is checked here against the
//! signed checkpoints.

use crate::common;

use std::collections::{BTreeMap, HashSet};

use base64ct::{Base64, Encoding};
use common::{TestServer, assert_field, assert_problem, start};
use custody_api as api;
use custody_core::checkpoint::SignedCheckpoint;
use custody_core::dsse::{self, DsseEnvelope};
use custody_core::intoto::{ApprovalPredicate, Criterion, Decision, approval_statement};
use custody_core::merkle::{self, Hash};
use custody_core::note::NoteVerifier;
use custody_core::signing::{PublicKey, SigningKey};
use custody_core::{commitment, jcs};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const T: &str = "bank";

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A model's manifest and version hash, computed here from the SPEC §6 rule: SHA-256 over the
/// raw file digests in path order.
fn model(seed: &str) -> (String, Value) {
    let files = [
        ("config.json", format!("{{\"seed\":\"{seed}\"}}")),
        ("weights/model.bin", seed.repeat(1000)),
    ];
    let mut root = Sha256::new();
    let mut manifest = Vec::new();
    for (path, content) in &files {
        let d = Sha256::digest(content.as_bytes());
        root.update(d);
        manifest.push(json!({"path": path, "digest": format!("sha256:{}", hex::encode(d)), "size": content.len()}));
    }
    (
        format!("sha256:{}", hex::encode(root.finalize())),
        Value::Array(manifest),
    )
}

fn entry(t: &str, actor: &str, kind: &str, id: &str, body: Value) -> Value {
    json!({
        "type": t,
        "actor": {"kind": if actor.starts_with("usr") { "user" } else { "service" }, "id": actor},
        "subject": {"kind": kind, "id": id},
        "body": body,
    })
}

/// Everyone who writes in these tests, each a principal of the tenant (see
/// `TestServer::actor`).
const CAST: &[&str] = &[
    "svc-etl",
    "svc-train",
    "svc-deploy",
    "svc-scorer",
    "usr-admin",
    "usr-alice",
    "usr-bob",
    "usr-carol",
    "usr-mallory",
    "usr-eve",
    "usr-lead",
    "usr-oncall",
];

async fn cast(s: &TestServer) {
    for name in CAST {
        s.actor(T, name).await;
    }
}

async fn post(s: &TestServer, log: &str, e: &Value) -> common::Reply {
    s.post_json(&s.log_url(T, log, "/entries"), e).await
}

#[track_caller]
fn created(r: &common::Reply) -> api::AppendResult {
    assert_eq!(r.status, 201, "{}", r.text());
    serde_json::from_slice(&r.body).expect("append result")
}

fn now_rfc3339(offset_ms: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(offset_ms);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

struct Approver {
    id: &'static str,
    key: SigningKey,
}

impl Approver {
    fn envelope(
        &self,
        name: &str,
        hash: &str,
        target: &str,
        decision: Decision,
        criteria: &[(&str, bool)],
    ) -> Value {
        let predicate = ApprovalPredicate {
            decision,
            target: target.into(),
            criteria: criteria
                .iter()
                .map(|(n, p)| Criterion {
                    name: (*n).into(),
                    passed: *p,
                    evidence_sha256: None,
                })
                .collect(),
            policy: Some("gates-v1".into()),
            comment: Some("reviewed the evaluation report".into()),
        };
        let statement = approval_statement(name, &hash["sha256:".len()..], &predicate).unwrap();
        let fp = self.key.public_key().fingerprint();
        dsse::sign(&self.key, "application/vnd.in-toto+json", &statement, &fp).to_json()
    }

    fn approval(&self, subject_hash: &str, envelope: Value) -> Value {
        let mut e = entry(
            "approval.submitted",
            self.id,
            "model_version",
            subject_hash,
            json!({}),
        );
        e["payload"] = envelope;
        e
    }
}

/// Checks every proof of an answer: each checkpoint's signature with the log's verifier key
/// (fetched from the log listing, not from the answer), then each entry's leaf hash recomputed
/// from its envelope and its inclusion proof against that checkpoint's root.
async fn verify_proven(s: &TestServer, proven: &api::evidence::Proven) -> usize {
    let logs = s.client.logs(T).await.unwrap().logs;
    let mut roots: BTreeMap<String, (u64, Hash)> = BTreeMap::new();
    for cp in &proven.checkpoints {
        let vkey = &logs.iter().find(|l| l.name == cp.log).unwrap().verifier_key;
        assert_eq!(&cp.verifier_key, vkey);
        let opened = SignedCheckpoint::open(&cp.checkpoint, &NoteVerifier::parse(vkey).unwrap())
            .expect("checkpoint signature verifies")
            .checkpoint;
        assert_eq!(opened.size, cp.size);
        roots.insert(cp.log.clone(), (opened.size, opened.root));
    }
    for e in &proven.entries {
        let leaf = merkle::leaf_hash(&jcs::canonicalize(&e.envelope).unwrap());
        assert_eq!(
            leaf.to_hex(),
            e.leaf_hash,
            "leaf hash of {} {}",
            e.log,
            e.index
        );
        let path: Vec<Hash> = e
            .proof
            .iter()
            .map(|b| Hash::from_slice(&Base64::decode_vec(b).unwrap()).unwrap())
            .collect();
        let (size, root) = roots[&e.log];
        merkle::verify_inclusion(e.index, size, &leaf, &path, &root)
            .unwrap_or_else(|err| panic!("proof of {} {} fails: {err}", e.log, e.index));
    }
    proven.entries.len()
}

fn types_of(proven: &api::evidence::Proven) -> HashSet<String> {
    proven
        .entries
        .iter()
        .map(|e| e.envelope["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evidence_chain_end_to_end() {
    let s = start().await;
    s.create_tenant(T).await;
    cast(&s).await;

    // ---- Dataset versions.
    let d1 = sha(b"loans-2025.parquet");
    let d2 = sha(b"bureau-2025.parquet");
    let dataset = |d: &str, name: &str| {
        entry(
            "dataset_version.registered",
            "svc-etl",
            "dataset_version",
            d,
            json!({"name": name, "version": "2025-10", "uri": format!("s3://lake/{name}"), "digest": d,
                   "row_count": 120000, "schema": {"format": "parquet", "fields": [{"name": "income", "type": "float"}]},
                   "legal_basis": "contract:DPA-2025-14"}),
        )
    };
    created(&post(&s, "governance", &dataset(&d1, "loans")).await);
    created(&post(&s, "governance", &dataset(&d2, "bureau")).await);
    // Bad: no legal basis, a digest that is not sha256, the body disagreeing with the subject.
    let mut bad = dataset(&sha(b"x"), "x");
    bad["body"].as_object_mut().unwrap().remove("legal_basis");
    bad["body"]["digest"] = json!("md5:abc");
    let p = assert_problem(&post(&s, "governance", &bad).await, 400);
    assert_field(&p, "body.legal_basis");
    assert_field(&p, "body.digest");
    // Registering the same dataset version twice is a conflict.
    assert_problem(&post(&s, "governance", &dataset(&d1, "loans")).await, 409);

    // ---- Training run, by the user who will also try to approve.
    let run = |id: &str, datasets: &[&str]| {
        let mut e = entry(
            "training_run.recorded",
            "usr-alice",
            "training_run",
            id,
            json!({"code_commit": "9f2c1e7a0b3d4c5e6f708192a3b4c5d6e7f80912", "parameters": {"lr": 0.01},
                   "metrics": {"auc": 0.91}, "status": "succeeded",
                   "environment": {"image_digest": sha(b"image"), "lockfile_digest": sha(b"uv.lock"),
                                   "hardware": "1x A100", "libraries": {"torch": "2.5.1"}}}),
        );
        e["related"] = datasets
            .iter()
            .map(|d| json!({"kind": "dataset_version", "id": d, "rel": "trained_on"}))
            .collect();
        e
    };
    let p = assert_problem(
        &post(&s, "governance", &run("run-1", &[&sha(b"unknown")])).await,
        400,
    );
    assert_field(&p, "related[0].id");
    let mut no_env = run("run-x", &[&d1]);
    no_env["body"]["environment"] = json!({"hardware": "cpu"});
    no_env["body"]["code_commit"] = json!("not-a-commit");
    let p = assert_problem(&post(&s, "governance", &no_env).await, 400);
    assert_field(&p, "body.environment");
    assert_field(&p, "body.code_commit");
    created(&post(&s, "governance", &run("run-1", &[&d1, &d2])).await);

    // ---- Model versions: the version hash must be the root of the manifest.
    let (v1, files1) = model("v1");
    let (v2, files2) = model("v2");
    let (v3, files3) = model("v3");
    let register = |hash: &str, files: &Value, version: &str| {
        let mut e = entry(
            "model_version.registered",
            "svc-train",
            "model_version",
            hash,
            json!({"name": "credit-risk", "version": version, "version_hash": hash, "files": files,
                   "framework": "pytorch", "registry": {"kind": "mlflow", "uri": "models:/credit-risk/1"}}),
        );
        e["related"] = json!([{"kind": "training_run", "id": "run-1", "rel": "produced_by"}]);
        e
    };
    let p = assert_problem(
        &post(&s, "governance", &register(&v1, &files2, "1")).await,
        400,
    );
    assert_field(&p, "body.files");
    let mut orphan = register(&v1, &files1, "1");
    orphan["related"] = json!([]);
    assert_field(
        &assert_problem(&post(&s, "governance", &orphan).await, 400),
        "related",
    );
    created(&post(&s, "governance", &register(&v1, &files1, "1")).await);
    created(&post(&s, "governance", &register(&v2, &files2, "2")).await);
    created(&post(&s, "governance", &register(&v3, &files3, "3")).await);

    // ---- Model card, versioned.
    let card = |hash: &str, n: u64| {
        entry(
            "model_card.published",
            "svc-train",
            "model_version",
            hash,
            json!({"card_version": n, "training_data": {"summary": "2025 loan book", "datasets": [d1, d2]},
                   "evaluation": [{"metric": "auc", "value": 0.91, "dataset": d2, "threshold": 0.85, "passed": true}],
                   "intended_use": "pre-screening of consumer loan applications",
                   "limitations": ["not validated for business loans"]}),
        )
    };
    assert_problem(&post(&s, "governance", &card(&v1, 2)).await, 409);
    let mut bad_card = card(&v1, 1);
    bad_card["body"]["evaluation"][0]["dataset"] = json!(sha(b"nope"));
    assert_problem(&post(&s, "governance", &bad_card).await, 400);
    created(&post(&s, "governance", &card(&v1, 1)).await);
    created(&post(&s, "governance", &card(&v1, 2)).await);

    // ---- Policy.
    let policy = entry(
        "policy.updated",
        "usr-admin",
        "policy",
        "gates",
        json!({"targets": {"production": {"min_approvals": 2, "required_criteria": ["auc"], "separation_of_duties": true},
                           "staging": {"min_approvals": 1}}, "clock_skew_ms": 2000}),
    );
    created(&post(&s, "governance", &policy).await);

    // ---- Approver keys: Ed25519 and ECDSA P-256.
    let alice = Approver {
        id: "usr-alice",
        key: SigningKey::generate_ed25519().unwrap(),
    };
    let bob = Approver {
        id: "usr-bob",
        key: SigningKey::generate_p256().unwrap(),
    };
    let carol = Approver {
        id: "usr-carol",
        key: SigningKey::generate_ed25519().unwrap(),
    };
    let mallory = Approver {
        id: "usr-mallory",
        key: SigningKey::generate_p256().unwrap(),
    };
    for a in [&alice, &bob, &carol] {
        let e = entry(
            "approver_key.registered",
            "usr-admin",
            "approver",
            a.id,
            json!({"public_key": a.key.public_key().to_pem()}),
        );
        created(&post(&s, "governance", &e).await);
    }
    let again = entry(
        "approver_key.registered",
        "usr-admin",
        "approver",
        "usr-eve",
        json!({"public_key": bob.key.public_key().to_pem()}),
    );
    assert_problem(&post(&s, "governance", &again).await, 409);
    let rsa = entry(
        "approver_key.registered",
        "usr-admin",
        "approver",
        "usr-eve",
        json!({"public_key": "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"}),
    );
    assert_field(
        &assert_problem(&post(&s, "governance", &rsa).await, 400),
        "body.public_key",
    );

    // ---- Approvals: bad ones first, each refused with nothing written.
    let before = s.size(T, "governance").await;
    let wrong_digest = bob.approval(
        &v1,
        bob.envelope(
            "credit-risk",
            &v2,
            "production",
            Decision::Approve,
            &[("auc", true)],
        ),
    );
    assert_field(
        &assert_problem(&post(&s, "governance", &wrong_digest).await, 400),
        "payload.payload.subject[0].digest.sha256",
    );
    let unregistered = mallory.approval(
        &v1,
        mallory.envelope("credit-risk", &v1, "production", Decision::Approve, &[]),
    );
    assert_field(
        &assert_problem(&post(&s, "governance", &unregistered).await, 400),
        "payload.signatures",
    );
    let mut tampered = bob.envelope(
        "credit-risk",
        &v1,
        "production",
        Decision::Approve,
        &[("auc", true)],
    );
    let stmt = Base64::decode_vec(tampered["payload"].as_str().unwrap()).unwrap();
    let stmt = String::from_utf8(stmt)
        .unwrap()
        .replace("production", "productiox");
    tampered["payload"] = json!(Base64::encode_string(stmt.as_bytes()));
    assert_problem(
        &post(&s, "governance", &bob.approval(&v1, tampered)).await,
        400,
    );
    let mut filled_body = bob.approval(
        &v1,
        bob.envelope("credit-risk", &v1, "production", Decision::Approve, &[]),
    );
    filled_body["body"] = json!({"decision": "approve"});
    assert_field(
        &assert_problem(&post(&s, "governance", &filled_body).await, 400),
        "body",
    );
    assert_eq!(s.size(T, "governance").await, before);

    let promote = |to: &str, from: Option<&str>, env: &str| {
        let mut body = json!({"to": to, "environment": env, "authoriser": "usr-lead"});
        if let Some(f) = from {
            body["from"] = json!(f);
        }
        let mut e = entry("promotion.recorded", "usr-lead", "model_version", to, body);
        e["payload"] = json!({"reason": "quarterly refresh"});
        e
    };
    let refused = |r: &common::Reply| -> (Vec<String>, api::RecordedRefusal) {
        let p = assert_problem(r, 422);
        assert_eq!(p.problem_type, "https://custody.dev/problems/gate-refused");
        (
            p.missing.iter().map(|m| m.code.clone()).collect(),
            p.refusal.expect("refusal recorded"),
        )
    };

    // One approval of two.
    let ok = created(
        &post(
            &s,
            "governance",
            &bob.approval(
                &v1,
                bob.envelope(
                    "credit-risk",
                    &v1,
                    "production",
                    Decision::Approve,
                    &[("auc", true)],
                ),
            ),
        )
        .await,
    );
    let recorded = s.client.entry(T, "governance", ok.index).await.unwrap();
    assert_eq!(
        recorded.envelope["body"]["approver"],
        json!(s.actor_id(T, "usr-bob").await)
    );
    assert_eq!(recorded.envelope["body"]["decision"], "approve");
    assert_eq!(
        recorded.envelope["body"]["key_fingerprint"],
        json!(bob.key.public_key().fingerprint())
    );
    let (codes, refusal) =
        refused(&post(&s, "governance", &promote(&v1, None, "production")).await);
    assert_eq!(codes, ["approvals"]);
    let logged = s
        .client
        .entry(T, "governance", refusal.index)
        .await
        .unwrap();
    assert_eq!(logged.envelope["type"], "promotion.refused");
    assert_eq!(logged.envelope["body"]["missing"][0]["code"], "approvals");
    // The same key twice is still one approver.
    created(
        &post(
            &s,
            "governance",
            &bob.approval(
                &v1,
                bob.envelope(
                    "credit-risk",
                    &v1,
                    "production",
                    Decision::Approve,
                    &[("auc", true)],
                ),
            ),
        )
        .await,
    );
    assert_eq!(
        refused(&post(&s, "governance", &promote(&v1, None, "production")).await).0,
        ["approvals"]
    );
    // The trainer's approval does not count.
    created(
        &post(
            &s,
            "governance",
            &alice.approval(
                &v1,
                alice.envelope(
                    "credit-risk",
                    &v1,
                    "production",
                    Decision::Approve,
                    &[("auc", true)],
                ),
            ),
        )
        .await,
    );
    let (codes, _) = refused(&post(&s, "governance", &promote(&v1, None, "production")).await);
    assert_eq!(codes, ["approvals", "separation_of_duties"]);
    // A rejection blocks.
    created(
        &post(
            &s,
            "governance",
            &carol.approval(
                &v1,
                carol.envelope(
                    "credit-risk",
                    &v1,
                    "production",
                    Decision::Reject,
                    &[("auc", false)],
                ),
            ),
        )
        .await,
    );
    let (codes, _) = refused(&post(&s, "governance", &promote(&v1, None, "production")).await);
    assert!(codes.contains(&"rejected".to_owned()), "{codes:?}");
    // Carol changes her mind: her latest decision stands.
    created(
        &post(
            &s,
            "governance",
            &carol.approval(
                &v1,
                carol.envelope(
                    "credit-risk",
                    &v1,
                    "production",
                    Decision::Approve,
                    &[("auc", true)],
                ),
            ),
        )
        .await,
    );
    // A promotion that names the wrong "from" is refused too.
    let (codes, _) = refused(&post(&s, "governance", &promote(&v1, Some(&v2), "production")).await);
    assert_eq!(codes, ["from_mismatch"]);
    let promoted = created(&post(&s, "governance", &promote(&v1, None, "production")).await);

    // ---- Deployments: only admitted weights.
    let deploy = |id: &str, hash: &str| {
        entry(
            "deployment.recorded",
            "svc-deploy",
            "deployment",
            id,
            json!({"environment": "production", "endpoint": "https://score.bank.example/v1", "config_digest": sha(id.as_bytes()), "version_hash": hash}),
        )
    };
    let (codes, _) = refused(&post(&s, "governance", &deploy("dep-bad", &v2)).await);
    assert!(codes.contains(&"not_serving".to_owned()), "{codes:?}");
    created(&post(&s, "governance", &deploy("dep-1", &v1)).await);

    // ---- Admit.
    let admit = s
        .get(&s.url(&format!("/v1/tenants/{T}/admit?digest={v1}&env=production")))
        .await;
    assert_eq!(admit.status, 200, "{}", admit.text());
    let a: api::evidence::AdmitAnswer = serde_json::from_slice(&admit.body).unwrap();
    assert!(a.admitted, "{:?}", a.missing);
    let mut expected = [
        s.actor_id(T, "usr-bob").await,
        s.actor_id(T, "usr-carol").await,
    ];
    expected.sort();
    assert_eq!(a.approvers, expected, "approvers, sorted by id");
    assert!(verify_proven(&s, &a.proven).await >= 4);
    let no = s
        .get(&s.url(&format!("/v1/tenants/{T}/admit?digest={v3}&env=production")))
        .await;
    let a: api::evidence::AdmitAnswer = serde_json::from_slice(&no.body).unwrap();
    assert!(!a.admitted);
    let codes: Vec<&str> = a.missing.iter().map(|m| m.code.as_str()).collect();
    assert!(
        codes.contains(&"approvals") && codes.contains(&"not_serving"),
        "{codes:?}"
    );
    let p = assert_problem(
        &s.get(&s.url(&format!(
            "/v1/tenants/{T}/admit?digest=sha256:ABC&env=production"
        )))
        .await,
        400,
    );
    assert_field(&p, "digest");

    // ---- v2 through the gate, deployed; a stream of inferences; a rollback mid-stream.
    for a in [&bob, &carol] {
        created(
            &post(
                &s,
                "governance",
                &a.approval(
                    &v2,
                    a.envelope(
                        "credit-risk",
                        &v2,
                        "production",
                        Decision::Approve,
                        &[("auc", true)],
                    ),
                ),
            )
            .await,
        );
    }
    created(&post(&s, "governance", &promote(&v2, Some(&v1), "production")).await);
    created(&post(&s, "governance", &deploy("dep-2", &v2)).await);
    let t_v2 = now_rfc3339(0);
    let inference = |req: &str, hash: &str, dep: &str, at: &str| {
        let mut e = entry(
            "inference.recorded",
            "svc-scorer",
            "inference",
            req,
            json!({"version_hash": hash, "latency_ms": 12, "decision": "approve"}),
        );
        e["client_time"] = json!(at);
        e["related"] = json!([{"kind": "deployment", "id": dep, "rel": "served_by"}]);
        e["payload"] = json!({"input": {"income": 52000}, "output": {"score": 0.82}});
        e
    };
    let batch = |range: std::ops::Range<u32>, hash: &str, dep: &str, at: &str| -> String {
        range
            .map(|i| {
                serde_json::to_string(&inference(&format!("req-{i}"), hash, dep, at)).unwrap()
                    + "\n"
            })
            .collect()
    };
    let send = |body: String| {
        let s = &s;
        async move {
            let lines: Vec<Value> = body
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let r = s
                .post_ndjson(&s.log_url(T, "inference", "/entries"), &lines)
                .await;
            assert_eq!(r.status, 201, "{}", r.text());
            serde_json::from_slice::<api::AppendResults>(&r.body).unwrap()
        }
    };
    let first = send(batch(0..50, &v2, "dep-2", &now_rfc3339(0))).await;
    assert!(first.results.iter().all(|r| r.security.is_none()));
    // Rollback v2 -> v1 (v1 served here before; a version that never served cannot be rolled back to).
    let rollback = |to: &str, from: &str| {
        entry(
            "rollback.recorded",
            "usr-oncall",
            "model_version",
            to,
            json!({"from": from, "to": to, "environment": "production", "authoriser": "usr-oncall"}),
        )
    };
    let (codes, _) = refused(&post(&s, "governance", &rollback(&v3, &v2)).await);
    assert!(codes.contains(&"never_served".to_owned()), "{codes:?}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    created(&post(&s, "governance", &rollback(&v1, &v2)).await);
    let after = now_rfc3339(0);
    // Records served by v2 before the rollback arrive late; records after it carry v1.
    let late = send(batch(50..60, &v2, "dep-2", &t_v2)).await;
    let fresh = send(batch(60..110, &v1, "dep-2", &after)).await;
    assert!(
        late.results
            .iter()
            .chain(&fresh.results)
            .all(|r| r.security.is_none())
    );
    // Weights that were not serving: recorded, and flagged as a security event.
    let rogue = send(batch(110..111, &v3, "dep-2", &now_rfc3339(10_000))).await;
    let notice = rogue.results[0]
        .security
        .clone()
        .expect("a security notice");
    assert_eq!(notice.claimed, v3);
    assert_eq!(notice.expected.as_deref(), Some(v1.as_str()));
    let sec = s
        .client
        .entry(T, "governance", notice.security_index)
        .await
        .unwrap();
    assert_eq!(sec.envelope["type"], "security.serving_mismatch");
    assert_eq!(sec.envelope["subject"]["id"], "req-110");
    // An unknown deployment is a bad reference: nothing written.
    let size = s.size(T, "inference").await;
    let p = assert_problem(
        &post(
            &s,
            "inference",
            &inference("req-x", &v1, "dep-nope", &after),
        )
        .await,
        400,
    );
    assert_field(&p, "related");
    let p = assert_problem(
        &post(&s, "governance", &inference("req-y", &v1, "dep-1", &after)).await,
        400,
    );
    assert_field(&p, "type");
    let mut no_time = inference("req-z", &v1, "dep-1", &after);
    no_time.as_object_mut().unwrap().remove("client_time");
    assert_field(
        &assert_problem(&post(&s, "inference", &no_time).await, 400),
        "client_time",
    );
    assert_eq!(s.size(T, "inference").await, size);

    // Every record is attributed to the weights that served it: its computed_by link.
    for (req, want) in [
        ("req-3", &v2),
        ("req-55", &v2),
        ("req-70", &v1),
        ("req-110", &v3),
    ] {
        let r = s
            .get(&s.url(&format!("/v1/tenants/{T}/trace?request_id={req}")))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let t: api::evidence::TraceAnswer = serde_json::from_slice(&r.body).unwrap();
        let inf = &t.proven.entries[0];
        assert_eq!(inf.envelope["subject"]["id"], json!(req));
        let computed: Vec<&Value> = inf.envelope["related"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["rel"] == "computed_by")
            .collect();
        assert_eq!(computed.len(), 1);
        assert_eq!(&computed[0]["id"], &json!(want));
    }

    // ---- Trace backward from one inference: every hop, every proof.
    let r = s
        .get(&s.url(&format!("/v1/tenants/{T}/trace?request_id=req-70")))
        .await;
    let t: api::evidence::TraceAnswer = serde_json::from_slice(&r.body).unwrap();
    let n = verify_proven(&s, &t.proven).await;
    let types = types_of(&t.proven);
    for want in [
        "inference.recorded",
        "deployment.recorded",
        "model_version.registered",
        "approval.submitted",
        "approver_key.registered",
        "policy.updated",
        "model_card.published",
        "training_run.recorded",
        "dataset_version.registered",
        "promotion.recorded",
        "rollback.recorded",
    ] {
        assert!(types.contains(want), "trace lacks {want}: {types:?}");
    }
    assert_eq!(t.proven.checkpoints.len(), 2);
    assert!(n >= 15, "{n} entries");
    let inf_id = t.proven.entries[0].envelope["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        t.links
            .iter()
            .any(|l| l.from == inf_id && l.rel == "served_by")
    );
    assert!(t.links.iter().any(|l| l.rel == "trained_on"));

    // ---- Forward from a dataset: runs, models, inferences.
    let r = s
        .get(&s.url(&format!(
            "/v1/tenants/{T}/trace?subject={d1}&direction=forward&limit=500"
        )))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let f: api::evidence::TraceAnswer = serde_json::from_slice(&r.body).unwrap();
    verify_proven(&s, &f.proven).await;
    let forward_types = types_of(&f.proven);
    assert!(
        forward_types.contains("training_run.recorded")
            && forward_types.contains("model_version.registered")
    );
    let inferences = f
        .proven
        .entries
        .iter()
        .filter(|e| e.log == "inference")
        .count();
    assert_eq!(
        inferences, 111,
        "every inference computed by a model trained on d1"
    );

    // ---- Served at a time, and history.
    let r = s
        .get(&s.url(&format!(
            "/v1/tenants/{T}/served?env=production&at={}",
            urlencode(&t_v2)
        )))
        .await;
    let served: api::evidence::ServedAnswer = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        served.version_hash.as_deref(),
        Some(v2.as_str()),
        "{}",
        r.text()
    );
    verify_proven(&s, &served.proven).await;
    let r = s
        .get(&s.url(&format!("/v1/tenants/{T}/served?env=production")))
        .await;
    let served: api::evidence::ServedAnswer = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(served.version_hash.as_deref(), Some(v1.as_str()));
    let r = s
        .get(&s.url(&format!(
            "/v1/tenants/{T}/served?env=production&at=2020-01-01T00:00:00Z"
        )))
        .await;
    let served: api::evidence::ServedAnswer = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(served.version_hash, None);
    assert_field(
        &assert_problem(
            &s.get(&s.url(&format!(
                "/v1/tenants/{T}/served?env=production&at=yesterday"
            )))
            .await,
            400,
        ),
        "at",
    );

    let r = s
        .get(&s.url(&format!("/v1/tenants/{T}/models/{v1}/history")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let h: api::evidence::HistoryAnswer = serde_json::from_slice(&r.body).unwrap();
    let kinds: Vec<(&str, Option<&str>)> = h
        .changes
        .iter()
        .map(|c| (c.kind.as_str(), c.to.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("promotion", Some(v1.as_str())),
            ("promotion", Some(v2.as_str())),
            ("rollback", Some(v1.as_str()))
        ]
    );
    assert_eq!(h.serving_in, ["production"]);
    assert!(types_of(&h.proven).contains("promotion.refused"));
    verify_proven(&s, &h.proven).await;
    assert_eq!(h.changes[0].entry, promoted.id);
    assert_problem(
        &s.get(&s.url(&format!("/v1/tenants/{T}/models/{}/history", sha(b"none"))))
            .await,
        404,
    );

    // ---- Evidence pack for v1: payloads open their commitments, approvals verify with the
    // approver keys it carries.
    let r = s
        .get(&s.url(&format!("/v1/tenants/{T}/evidence?model={v1}")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let pack: api::evidence::EvidencePack = serde_json::from_slice(&r.body).unwrap();
    verify_proven(&s, &pack.proven).await;
    let mut approvals = 0;
    for e in &pack.proven.entries {
        if let (Some(payload), Some(salt)) = (&e.payload, &e.salt) {
            let salt: [u8; 32] = Base64::decode_vec(salt).unwrap().try_into().unwrap();
            let c = commitment::commit(&commitment::Salt(salt), payload).unwrap();
            assert_eq!(e.envelope["payload_commitment"], json!(c));
        }
        if e.envelope["type"] == "approval.submitted" {
            let env = DsseEnvelope::from_json(e.payload.as_ref().unwrap()).unwrap();
            let fp = e.envelope["body"]["key_fingerprint"].as_str().unwrap();
            let key = pack
                .approver_keys
                .iter()
                .find(|k| k.fingerprint == fp)
                .expect("key in pack");
            env.verify_with(&PublicKey::from_pem(&key.public_key).unwrap())
                .expect("approval verifies");
            approvals += 1;
        }
    }
    assert!(approvals >= 4, "{approvals}");

    // ---- Retirement: the serving version is retired; nothing is admitted any more, and a
    // retired version can be neither promoted nor rolled back to.
    let retire = |h: &str| {
        entry(
            "retirement.recorded",
            "usr-lead",
            "model_version",
            h,
            json!({"authoriser": "usr-lead", "reason_code": "superseded"}),
        )
    };
    created(&post(&s, "governance", &retire(&v1)).await);
    assert_problem(&post(&s, "governance", &retire(&v1)).await, 409);
    let r = s
        .get(&s.url(&format!("/v1/tenants/{T}/admit?digest={v1}&env=production")))
        .await;
    let a: api::evidence::AdmitAnswer = serde_json::from_slice(&r.body).unwrap();
    assert!(!a.admitted);
    assert!(
        a.missing.iter().any(|m| m.code == "retired"),
        "{:?}",
        a.missing
    );
    let r = s
        .get(&s.url(&format!("/v1/tenants/{T}/served?env=production")))
        .await;
    let served: api::evidence::ServedAnswer = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        served.version_hash, None,
        "nothing serves after the serving version is retired"
    );
    let (codes, _) = refused(&post(&s, "governance", &promote(&v1, None, "production")).await);
    assert!(codes.contains(&"retired".to_owned()), "{codes:?}");
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

/// An approval made entirely outside custody (pyca/cryptography: key generation, statement,
/// DSSE PAE, ECDSA P-256 DER and Ed25519 signatures) is accepted over HTTP, and the same
/// envelope with one changed byte is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_signed_by_pyca_cryptography_are_accepted() {
    let python = custody_testkit::python::python();

    let s = start().await;
    s.create_tenant(T).await;
    cast(&s).await;
    let d = sha(b"d");
    created(&post(&s, "governance", &entry("dataset_version.registered", "svc-etl", "dataset_version", &d,
        json!({"name": "d", "version": "1", "uri": "s3://d", "digest": d, "legal_basis": "consent:v1"}))).await);
    let mut r = entry(
        "training_run.recorded",
        "usr-alice",
        "training_run",
        "run-1",
        json!({"code_commit": "abcdef1234", "environment": {"image_digest": d}, "status": "succeeded"}),
    );
    r["related"] = json!([{"kind": "dataset_version", "id": d, "rel": "trained_on"}]);
    created(&post(&s, "governance", &r).await);
    let (hash, files) = model("py");
    let mut m = entry(
        "model_version.registered",
        "svc-train",
        "model_version",
        &hash,
        json!({"name": "credit-risk", "version_hash": hash, "files": files}),
    );
    m["related"] = json!([{"kind": "training_run", "id": "run-1", "rel": "produced_by"}]);
    created(&post(&s, "governance", &m).await);

    const SCRIPT: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
digest = sys.argv[1]
out = {}
for alg in ("p256", "ed25519"):
    key = ec.generate_private_key(ec.SECP256R1()) if alg == "p256" else ed25519.Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": "credit-risk", "digest": {"sha256": digest}}],
                 "predicateType": "https://custody.dev/attestation/approval/v1",
                 "predicate": {"decision": "approve", "target": "staging", "criteria": [{"name": "auc", "passed": True}],
                               "policy": "gates-v1", "comment": "ok"}}
    body = json.dumps(statement, indent=1).encode()
    ptype = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(body), body)
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256())) if alg == "p256" else key.sign(pae)
    out[alg] = {"pem": pem, "envelope": {"payloadType": ptype, "payload": base64.b64encode(body).decode(),
                                          "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}}
print(json.dumps(out))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", SCRIPT, &hash["sha256:".len()..]])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (alg, approver) in [("p256", "usr-bob"), ("ed25519", "usr-carol")] {
        let pem = made[alg]["pem"].as_str().unwrap();
        created(
            &post(
                &s,
                "governance",
                &entry(
                    "approver_key.registered",
                    "usr-admin",
                    "approver",
                    approver,
                    json!({"public_key": pem}),
                ),
            )
            .await,
        );
        let mut tampered = made[alg]["envelope"].clone();
        let body = Base64::decode_vec(tampered["payload"].as_str().unwrap()).unwrap();
        let body = String::from_utf8(body).unwrap().replace("\"ok\"", "\"OK\"");
        tampered["payload"] = json!(Base64::encode_string(body.as_bytes()));
        let mut bad = entry(
            "approval.submitted",
            approver,
            "model_version",
            &hash,
            json!({}),
        );
        bad["payload"] = tampered;
        assert_field(
            &assert_problem(&post(&s, "governance", &bad).await, 400),
            "payload.signatures",
        );
        let mut good = entry(
            "approval.submitted",
            approver,
            "model_version",
            &hash,
            json!({}),
        );
        good["payload"] = made[alg]["envelope"].clone();
        let res = created(&post(&s, "governance", &good).await);
        let stored = s.client.entry(T, "governance", res.index).await.unwrap();
        assert_eq!(
            stored.envelope["body"]["approver"],
            json!(s.actor_id(T, approver).await)
        );
        assert_eq!(
            stored.envelope["body"]["key_fingerprint"],
            json!(PublicKey::from_pem(pem).unwrap().fingerprint())
        );
    }
    let promote = entry(
        "promotion.recorded",
        "usr-lead",
        "model_version",
        &hash,
        json!({"to": hash, "environment": "staging", "authoriser": "usr-lead"}),
    );
    created(&post(&s, "governance", &promote).await);
}
