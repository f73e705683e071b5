//! The governance state is a projection of the log: after a restart it is rebuilt from the
//! stored entries, and every gate decision comes out the same as before the restart.

use custody_core::dsse;
use custody_core::envelope::{EntryInput, LogName, TenantName};
use custody_core::intoto::{ApprovalPredicate, Decision, approval_statement};
use custody_core::signing::SigningKey;
use custody_governance::{Governance, GovernanceError};
use custody_ledger::{Ledger, LedgerConfig};
use custody_store::LogKey;
use custody_store_sqlite::SqliteStore;
use serde_json::{Value, json};

fn input(v: Value) -> EntryInput {
    EntryInput::from_json(&v).expect("valid entry")
}

fn e(t: &str, actor: &str, kind: &str, id: &str, body: Value, related: Value) -> EntryInput {
    input(
        json!({"type": t, "actor": {"kind": "user", "id": actor}, "subject": {"kind": kind, "id": id}, "body": body, "related": related}),
    )
}

async fn open(dir: &std::path::Path) -> Governance<SqliteStore> {
    let store = SqliteStore::open(&dir.join("custody.db")).await.unwrap();
    let (_, appender) = Ledger::open(
        store,
        LedgerConfig {
            server_name: "test.local".into(),
            key_dir: dir.join("keys"),
        },
    )
    .unwrap();
    Governance::new(appender)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_decide_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantName::parse("acme").unwrap();
    let gov_key = LogKey {
        tenant: tenant.clone(),
        log: LogName::Governance,
    };
    let d = format!("sha256:{}", "11".repeat(32));
    let file = format!("sha256:{}", "22".repeat(32));
    let hash = custody_evidence::manifest_root(&[custody_evidence::events::ManifestFile {
        path: ".".into(),
        digest: file.clone(),
        size: 10,
    }])
    .unwrap();
    let approver = SigningKey::generate_p256().unwrap();
    let approve = |key: &SigningKey| {
        let statement = approval_statement(
            "m",
            &hash["sha256:".len()..],
            &ApprovalPredicate {
                decision: Decision::Approve,
                target: "production".into(),
                criteria: vec![],
                policy: None,
                comment: None,
            },
        )
        .unwrap();
        let env = dsse::sign(key, "application/vnd.in-toto+json", &statement, "");
        let mut i = e(
            "approval.submitted",
            "usr-bob",
            "model_version",
            &hash,
            json!({}),
            json!([]),
        );
        i.payload = Some(env.to_json());
        i
    };
    {
        let g = open(dir.path()).await;
        g.create_tenant(&tenant).await.unwrap();
        let chain = vec![
            e(
                "dataset_version.registered",
                "svc-etl",
                "dataset_version",
                &d,
                json!({"name": "d", "version": "1", "uri": "s3://d", "digest": d, "legal_basis": "consent:v2"}),
                json!([]),
            ),
            e(
                "training_run.recorded",
                "usr-alice",
                "training_run",
                "run-1",
                json!({"code_commit": "abcdef1", "environment": {"image_digest": file}, "status": "succeeded"}),
                json!([{"kind": "dataset_version", "id": d, "rel": "trained_on"}]),
            ),
            e(
                "model_version.registered",
                "svc-train",
                "model_version",
                &hash,
                json!({"name": "m", "version_hash": hash, "files": [{"path": ".", "digest": file, "size": 10}]}),
                json!([{"kind": "training_run", "id": "run-1", "rel": "produced_by"}]),
            ),
            e(
                "approver_key.registered",
                "usr-admin",
                "approver",
                "usr-bob",
                json!({"public_key": approver.public_key().to_pem()}),
                json!([]),
            ),
        ];
        g.append(&gov_key, chain)
            .await
            .expect("one atomic batch that refers to itself");
        g.append(&gov_key, vec![approve(&approver)]).await.unwrap();
        let promote = e(
            "promotion.recorded",
            "usr-lead",
            "model_version",
            &hash,
            json!({"to": hash, "environment": "production", "authoriser": "usr-lead"}),
            json!([]),
        );
        g.append(&gov_key, vec![promote])
            .await
            .expect("one approval meets the default rule");
        g.ledger().shutdown().await;
    }

    let g = open(dir.path()).await;
    let a = g.admit(&tenant, &hash, "production").await.unwrap();
    assert!(a.admitted, "{:?}", a.missing);
    assert_eq!(a.approvers, ["usr-bob"]);
    // The state knows what serves: promoting the same version again names the wrong "from".
    let again = e(
        "promotion.recorded",
        "usr-lead",
        "model_version",
        &hash,
        json!({"to": hash, "environment": "production", "authoriser": "usr-lead"}),
        json!([]),
    );
    match g.append(&gov_key, vec![again]).await {
        Err(GovernanceError::Refused { missing, .. }) => {
            assert_eq!(missing[0].code, "from_mismatch")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Registered objects are still registered: the dataset cannot be registered twice.
    let dup = e(
        "dataset_version.registered",
        "svc-etl",
        "dataset_version",
        &d,
        json!({"name": "d", "version": "1", "uri": "s3://d", "digest": d, "legal_basis": "consent:v2"}),
        json!([]),
    );
    assert!(matches!(
        g.append(&gov_key, vec![dup]).await,
        Err(GovernanceError::Conflict(_))
    ));
    g.ledger().shutdown().await;
}
