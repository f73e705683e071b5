//! `custody demo`: an embedded server filled with a realistic evidence chain, so a new user
//! sees in one command what custody records and how an answer is checked: two datasets, two
//! training runs, three model versions with cards, two approvers (ECDSA P-256 and Ed25519)
//! signing DSSE approvals, a refused promotion, a promotion, a bad deploy, an incident, a
//! rollback, a few thousand inference records and one that claims weights that never served.
//!
//! Everything goes through the public HTTP API with the same checks any client meets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use custody_client::{Client, TraceQuery};
use custody_core::dsse;
use custody_core::intoto::{
    ApprovalPredicate, Criterion, Decision, INTOTO_PAYLOAD_TYPE, approval_statement,
};
use custody_core::signing::SigningKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The demo's tenant.
pub const TENANT: &str = "demo";
const PROD: &str = "production";
const MODEL: &str = "credit-risk";

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn now(offset_ms: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(offset_ms);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn entry(t: &str, actor: &str, kind: &str, id: &str, body: Value, related: Value) -> Value {
    let actor_kind = if actor.starts_with("usr-") {
        "user"
    } else {
        "service"
    };
    json!({
        "type": t,
        "actor": {"kind": actor_kind, "id": actor},
        "subject": {"kind": kind, "id": id},
        "related": related,
        "context": {"purpose": "credit-risk-model-lifecycle"},
        "body": body,
    })
}

/// A model version's weights: two files whose content depends on the label, hashed as SPEC §6
/// says (the same rule `custody model hash` applies to files on disk).
fn weights(label: &str) -> anyhow::Result<(String, Value)> {
    let files = vec![
        custody_model::hash::FileDigest {
            path: "config.json".into(),
            sha256: Sha256::digest(format!("{{\"model\":\"{label}\"}}").as_bytes()).into(),
            size: 20,
        },
        custody_model::hash::FileDigest {
            path: "model.safetensors".into(),
            sha256: Sha256::digest(label.repeat(4096).as_bytes()).into(),
            size: 4096 * label.len() as u64,
        },
    ];
    let digest = custody_model::hash::ModelDigest::from_files(files)?;
    let manifest: Vec<Value> = digest
        .files()
        .iter()
        .map(|f| json!({"path": f.path, "digest": f.digest(), "size": f.size}))
        .collect();
    Ok((digest.version_hash(), Value::Array(manifest)))
}

struct Approver {
    id: &'static str,
    key: SigningKey,
}

impl Approver {
    fn approval(&self, hash: &str, decision: Decision, comment: &str) -> anyhow::Result<Value> {
        let predicate = ApprovalPredicate {
            decision,
            target: PROD.into(),
            criteria: vec![
                Criterion {
                    name: "auc".into(),
                    passed: true,
                    evidence_sha256: Some(hex::encode(Sha256::digest(b"eval-report.pdf"))),
                },
                Criterion {
                    name: "fairness_review".into(),
                    passed: true,
                    evidence_sha256: None,
                },
            ],
            policy: Some("credit-models-v3".into()),
            comment: Some(comment.into()),
        };
        let statement = approval_statement(MODEL, &hash["sha256:".len()..], &predicate)?;
        let envelope = dsse::sign(
            &self.key,
            INTOTO_PAYLOAD_TYPE,
            &statement,
            &self.key.public_key().fingerprint(),
        );
        let mut e = entry(
            "approval.submitted",
            self.id,
            "model_version",
            hash,
            json!({}),
            json!([]),
        );
        e["payload"] = envelope.to_json();
        Ok(e)
    }
}

/// What the demo recorded, for the closing message.
pub struct Filled {
    /// Request id of an inference served by the version later rolled back.
    pub traced_request: String,
    /// Inference records written.
    pub inferences: usize,
    /// The version serving at the end.
    pub serving: String,
}

/// Who acts in the demo: each name a principal of the tenant with its own roles and token.
const MEMBERS: &[(&str, &[&str])] = &[
    ("svc-etl", &["writer"]),
    ("svc-trainer", &["writer"]),
    ("svc-deployer", &["writer"]),
    ("svc-scoring", &["writer"]),
    ("usr-ds-ana", &["writer"]),
    ("usr-risk-head", &["admin", "writer"]),
    ("usr-risk-1", &["approver"]),
    ("usr-risk-2", &["approver"]),
    ("usr-oncall-1", &["writer"]),
    ("usr-auditor", &["auditor"]),
];

/// The demo's principals. Entries are written under a member's name; [`Cast::prepare`] sends
/// them as that member (custody fills in the actor from the token) with every member name
/// replaced by its principal id.
pub struct Cast {
    members: std::collections::HashMap<String, (String, String, Client)>,
}

impl Cast {
    async fn create(admin: &Client) -> anyhow::Result<Self> {
        let mut members = std::collections::HashMap::new();
        for (name, roles) in MEMBERS {
            let made = admin
                .create_principal(
                    TENANT,
                    &custody_api::CreatePrincipal {
                        kind: if name.starts_with("svc-") {
                            "service"
                        } else {
                            "user"
                        }
                        .into(),
                        name: (*name).into(),
                        roles: roles.iter().map(|r| r.to_string()).collect(),
                        expires_in_days: Some(30),
                    },
                )
                .await
                .with_context(|| format!("demo: cannot create principal {name}"))?;
            let client = Client::new(admin.base_url())?
                .with_token(&made.token.token)
                .with_purpose(Some("credit-risk-model-lifecycle".into()));
            members.insert(
                (*name).to_owned(),
                (made.principal.id, made.token.token, client),
            );
        }
        Ok(Self { members })
    }

    fn member(&self, name: &str) -> anyhow::Result<&(String, String, Client)> {
        self.members
            .get(name)
            .with_context(|| format!("demo: no principal for {name}"))
    }

    /// The client of the entry's actor and the entry as it is sent.
    fn prepare(&self, e: &Value) -> anyhow::Result<(&Client, Value)> {
        let name = e["actor"]["id"].as_str().unwrap_or_default();
        let client = &self.member(name)?.2;
        let mut e = e.clone();
        if let Value::Object(o) = &mut e {
            o.remove("actor");
        }
        self.rename(&mut e);
        Ok((client, e))
    }

    fn rename(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some((id, _, _)) = self.members.get(s.as_str()) {
                    *s = id.clone();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.rename(i)),
            Value::Object(o) => o.values_mut().for_each(|i| self.rename(i)),
            _ => {}
        }
    }

    async fn append(
        &self,
        log: &str,
        e: &Value,
    ) -> Result<custody_api::AppendResult, custody_client::ClientError> {
        match self.prepare(e) {
            Ok((client, e)) => client.append(TENANT, log, &e).await,
            Err(err) => Err(custody_client::ClientError::Decode {
                url: String::new(),
                message: err.to_string(),
            }),
        }
    }
}

async fn put(cast: &Cast, log: &str, e: &Value) -> anyhow::Result<u64> {
    let what = e["type"].as_str().unwrap_or_default().to_owned();
    Ok(cast
        .append(log, e)
        .await
        .with_context(|| format!("demo: {what} was refused"))?
        .index)
}

async fn inferences(
    cast: &Cast,
    from: usize,
    count: usize,
    hash: &str,
    deployment: &str,
) -> anyhow::Result<()> {
    let mut ndjson = Vec::new();
    for i in from..from + count {
        let income = 30_000 + (i * 7_919) % 90_000;
        let score = (income % 1000) as f64 / 1000.0;
        let mut e = entry(
            "inference.recorded",
            "svc-scoring",
            "inference",
            &format!("req-{i:06}"),
            json!({"version_hash": hash, "latency_ms": 8 + i % 13, "decision": if score > 0.35 { "approve" } else { "refer" }}),
            json!([{"kind": "deployment", "id": deployment, "rel": "served_by"}]),
        );
        e["client_time"] = json!(now(0));
        e["payload"] = json!({"input": {"applicant": format!("app-{i}"), "income": income, "term_months": 36},
                              "output": {"score": score}});
        let (_, e) = cast.prepare(&e)?;
        serde_json::to_writer(&mut ndjson, &e)?;
        ndjson.push(b'\n');
    }
    cast.member("svc-scoring")?
        .2
        .append_ndjson(TENANT, "inference", ndjson)
        .await
        .context("demo: inference records were refused")?;
    Ok(())
}

/// Records the demo chain in tenant [`TENANT`]; writes the approvers' private keys to
/// `key_dir` (0600) so the user can sign more approvals with `custody approve`.
pub async fn fill(cast: &Cast, key_dir: &Path) -> anyhow::Result<Filled> {
    let gov = "governance";

    let loans = sha(b"s3://lake/loans/2025-q3/part-0000.parquet");
    let bureau = sha(b"s3://lake/bureau/2025-10/scores.parquet");
    for (digest, name, rows) in [
        (&loans, "loan-applications", 182_340),
        (&bureau, "bureau-scores", 1_204_118),
    ] {
        put(cast, gov, &entry(
            "dataset_version.registered", "svc-etl", "dataset_version", digest,
            json!({"name": name, "version": "2025-10", "uri": format!("s3://lake/{name}/2025-10/"), "digest": digest,
                   "row_count": rows, "source": "core-banking", "legal_basis": "gdpr-art6-1b:loan-contract",
                   "schema": {"format": "parquet", "fields": [{"name": "income", "type": "double"}, {"name": "defaulted", "type": "bool"}]}}),
            json!([])),
        ).await?;
    }
    for (run, commit, auc) in [
        (
            "run-2025-10-01",
            "4be1f0c2a9d3e8b7c6a5f4e3d2c1b0a998877665",
            0.87,
        ),
        (
            "run-2025-11-02",
            "9c0d2e4f6a8b1c3d5e7f9a0b2c4d6e8f0a1b2c3d",
            0.91,
        ),
    ] {
        put(cast, gov, &entry(
            "training_run.recorded", "usr-ds-ana", "training_run", run,
            json!({"code_commit": commit, "code_repo": "git@git.example:risk/credit-model.git",
                   "parameters": {"max_depth": 6, "learning_rate": 0.05, "n_estimators": 400},
                   "metrics": {"auc": auc, "ks": 0.41}, "status": "succeeded",
                   "environment": {"image_digest": sha(b"registry.example/risk/train:2025.10"), "lockfile_digest": sha(b"uv.lock"),
                                   "hardware": "8 vCPU, 32 GiB", "libraries": {"xgboost": "2.1.3", "pandas": "2.2.3"}}}),
            json!([{"kind": "dataset_version", "id": loans, "rel": "trained_on"}, {"kind": "dataset_version", "id": bureau, "rel": "trained_on"}])),
        ).await?;
    }
    let (v1, f1) = weights("v1")?;
    let (v2, f2) = weights("v2")?;
    let (v3, f3) = weights("v3")?;
    for (hash, files, label, run) in [
        (&v1, &f1, "1", "run-2025-10-01"),
        (&v2, &f2, "2", "run-2025-11-02"),
        (&v3, &f3, "3", "run-2025-11-02"),
    ] {
        put(cast, gov, &entry(
            "model_version.registered", "svc-trainer", "model_version", hash,
            json!({"name": MODEL, "version": label, "version_hash": hash, "files": files, "framework": "xgboost",
                   "registry": {"kind": "mlflow", "uri": format!("models:/{MODEL}/{label}")}}),
            json!([{"kind": "training_run", "id": run, "rel": "produced_by"}])),
        ).await?;
        put(cast, gov, &entry(
            "model_card.published", "usr-ds-ana", "model_version", hash,
            json!({"card_version": 1,
                   "training_data": {"summary": "Q3 2025 consumer loan applications joined with bureau scores", "datasets": [loans, bureau]},
                   "evaluation": [{"metric": "auc", "value": 0.9, "dataset": bureau, "threshold": 0.85, "passed": true},
                                  {"metric": "demographic_parity_gap", "value": 0.03, "dataset": loans, "slice": "age_band", "threshold": 0.05, "passed": true}],
                   "intended_use": "pre-screening of consumer loan applications; a person decides every refusal",
                   "limitations": ["not validated for business loans", "income above 250k is out of distribution"]}),
            json!([])),
        ).await?;
    }
    put(cast, gov, &entry(
        "policy.updated", "usr-risk-head", "policy", "gates",
        json!({"targets": {PROD: {"min_approvals": 2, "required_criteria": ["auc", "fairness_review"], "separation_of_duties": true},
                           "staging": {"min_approvals": 1}}, "clock_skew_ms": 2000}),
        json!([])),
    ).await?;

    let approvers = [
        Approver {
            id: "usr-risk-1",
            key: SigningKey::generate_p256()?,
        },
        Approver {
            id: "usr-risk-2",
            key: SigningKey::generate_ed25519()?,
        },
    ];
    write_keys(key_dir, &approvers)?;
    for a in &approvers {
        put(
            cast,
            gov,
            &entry(
                "approver_key.registered",
                "usr-risk-head",
                "approver",
                a.id,
                json!({"public_key": a.key.public_key().to_pem()}),
                json!([]),
            ),
        )
        .await?;
    }

    let promote = |to: &str, from: Option<&str>| {
        let mut body = json!({"to": to, "environment": PROD, "authoriser": "usr-risk-head", "change_ref": "CHG-2291"});
        if let Some(f) = from {
            body["from"] = json!(f);
        }
        let mut e = entry(
            "promotion.recorded",
            "usr-risk-head",
            "model_version",
            to,
            body,
            json!([]),
        );
        e["payload"] = json!({"reason": "monthly model refresh"});
        e
    };
    let deploy = |id: &str, hash: &str| {
        entry(
            "deployment.recorded",
            "svc-deployer",
            "deployment",
            id,
            json!({"environment": PROD, "endpoint": "https://scoring.bank.example/v1/credit", "config_digest": sha(id.as_bytes()),
               "version_hash": hash, "replicas": 3}),
            json!([]),
        )
    };

    // v1 through the gate, deployed, serving.
    for a in &approvers {
        put(
            cast,
            gov,
            &a.approval(&v1, Decision::Approve, "meets the bar")?,
        )
        .await?;
    }
    put(cast, gov, &promote(&v1, None)).await?;
    put(cast, gov, &deploy("dep-prod-001", &v1)).await?;
    inferences(cast, 0, 1500, &v1, "dep-prod-001").await?;

    // v3 with one approval: the gate refuses, and the refusal is on the record.
    put(
        cast,
        gov,
        &approvers[0].approval(&v3, Decision::Approve, "looks fine")?,
    )
    .await?;
    match cast.append(gov, &promote(&v3, Some(&v1))).await {
        Err(e) if e.gate_refusal().is_some() => {}
        Err(e) => return Err(e).context("demo: the refused promotion failed otherwise"),
        Ok(_) => bail!("demo: a promotion with one of two approvals was accepted"),
    }

    // v2 approved and promoted: the bad deploy.
    for a in &approvers {
        put(
            cast,
            gov,
            &a.approval(&v2, Decision::Approve, "better AUC on the holdout")?,
        )
        .await?;
    }
    put(cast, gov, &promote(&v2, Some(&v1))).await?;
    put(cast, gov, &deploy("dep-prod-002", &v2)).await?;
    inferences(cast, 1500, 1000, &v2, "dep-prod-002").await?;
    put(cast, gov, &entry(
        "incident.opened", "usr-oncall-1", "incident", "INC-4711",
        json!({"severity": "high", "category": "model-performance"}),
        json!([{"kind": "model_version", "id": v2, "rel": "about"}, {"kind": "deployment", "id": "dep-prod-002", "rel": "about"}])),
    ).await?;
    put(
        cast,
        gov,
        &entry(
            "rollback.recorded",
            "usr-oncall-1",
            "model_version",
            &v1,
            json!({"from": v2, "to": v1, "environment": PROD, "authoriser": "usr-oncall-1"}),
            json!([{"kind": "incident", "id": "INC-4711", "rel": "caused_by"}]),
        ),
    )
    .await?;
    inferences(cast, 2500, 1000, &v1, "dep-prod-002").await?;
    put(
        cast,
        gov,
        &entry(
            "incident.closed",
            "usr-oncall-1",
            "incident",
            "INC-4711",
            json!({"resolution_code": "rolled-back"}),
            json!([{"kind": "model_version", "id": v1, "rel": "restored"}]),
        ),
    )
    .await?;
    // A host that still runs v3, which never served: recorded, and flagged.
    inferences(cast, 3500, 1, &v3, "dep-prod-002").await?;

    Ok(Filled {
        traced_request: "req-001600".into(),
        inferences: 3501,
        serving: v1,
    })
}

fn write_keys(dir: &Path, approvers: &[Approver]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    for a in approvers {
        let path = dir.join(format!("{}.pem", a.id));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(a.key.to_pkcs8_pem().as_bytes())?;
        std::fs::write(
            dir.join(format!("{}.pub.pem", a.id)),
            a.key.public_key().to_pem(),
        )?;
    }
    Ok(())
}

/// Writes a secret to a new 0600 file.
fn write_private(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(f, "{secret}")?;
    Ok(())
}

/// Starts the embedded server, fills tenant `demo` (unless it exists), prints the trace of one
/// inference and how to check it, then keeps serving until Ctrl-C.
pub async fn run(data_dir: PathBuf, listen: String, server_name: String) -> anyhow::Result<()> {
    let key_dir = data_dir.join("demo-approver-keys");
    let token_file = data_dir.join("demo-auditor.token");
    let (tx, rx) = tokio::sync::oneshot::channel::<(SocketAddr, Option<custody_auth::ApiToken>)>();
    let filler = tokio::spawn(async move {
        let (addr, admin) = rx.await.context("the server did not start")?;
        let base = format!("http://{addr}");
        let (token, request) = match admin {
            Some(admin) => {
                eprintln!("recording the demo evidence chain in tenant {TENANT} ...");
                let admin = Client::new(&base)?.with_token(&admin.expose());
                admin
                    .create_tenant(TENANT)
                    .await
                    .context("demo: cannot create the tenant")?;
                let cast = Cast::create(&admin).await?;
                let filled = fill(&cast, &key_dir).await?;
                eprintln!(
                    "recorded {} inference records; {} serves in {PROD}",
                    filled.inferences, filled.serving
                );
                let token = cast.member("usr-auditor")?.1.clone();
                write_private(&token_file, &token)?;
                (token, filled.traced_request)
            }
            None => {
                let token = std::fs::read_to_string(&token_file).with_context(|| {
                    format!(
                        "this data directory was not set up by `custody demo` (no {}); give the demo a fresh --data-dir",
                        token_file.display()
                    )
                })?;
                eprintln!("tenant {TENANT} already holds the demo chain; showing it");
                (token.trim().to_owned(), "req-001600".to_owned())
            }
        };
        let client = Client::new(&base)?
            .with_token(&token)
            .with_purpose(Some("demo-walkthrough".into()));
        let trace = client
            .trace(
                TENANT,
                &TraceQuery {
                    request_id: Some(request.clone()),
                    ..TraceQuery::default()
                },
            )
            .await?;
        println!("\nThe inference {request}, traced back through the ledger:");
        for e in &trace.proven.entries {
            let env = &e.envelope;
            println!(
                "  {:<9} #{:<5} {:<28} {}",
                e.log,
                e.index,
                env["type"].as_str().unwrap_or_default(),
                env["subject"]["id"].as_str().unwrap_or_default()
            );
        }
        let sizes: Vec<String> = trace
            .proven
            .checkpoints
            .iter()
            .map(|c| format!("{}@{}", c.log, c.size))
            .collect();
        println!(
            "{} entries, each with an inclusion proof against the signed checkpoints {}.",
            trace.proven.entries.len(),
            sizes.join(", ")
        );
        println!(
            "\nCheck it yourself as the demo's auditor (the server keeps running; Ctrl-C stops it):"
        );
        println!(
            "  export CUSTODY_TOKEN=$(cat {}) CUSTODY_PURPOSE=demo-walkthrough",
            token_file.display()
        );
        println!("  custody --server {base} trace -t {TENANT} --request-id {request}");
        println!("  custody --server {base} served -t {TENANT} --env {PROD}");
        println!(
            "  custody --server {base} export -t {TENANT} --request-id {request} -o evidence-{request}"
        );
        println!("  custody verify evidence-{request}");
        println!("Approver keys for `custody approve`: {}", key_dir.display());
        anyhow::Ok(())
    });
    let served = crate::commands::serve::run_with_ready(
        data_dir,
        listen,
        server_name,
        None,
        None,
        None,
        crate::commands::serve::Bootstrap::Hand,
        custody_server::ServeOptions::default(),
        |addr, admin| {
            let _ = tx.send((addr, admin));
        },
    );
    tokio::pin!(served);
    tokio::select! {
        r = &mut served => return r,
        filled = filler => match filled {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => bail!("the demo task failed: {e}"),
        },
    }
    served.await
}
