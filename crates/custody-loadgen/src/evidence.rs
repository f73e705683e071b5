//! The ML evidence chain under load: registering a realistic chain over HTTP, ingesting
//! inference records as NDJSON, and timing traces whose every proof is checked here with
//! `custody_core` against the logs' signed checkpoints.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use base64ct::{Base64, Encoding};
use custody_api::evidence::TraceAnswer;
use custody_api::{AppendResults, LogList};
use custody_core::checkpoint::SignedCheckpoint;
use custody_core::dsse;
use custody_core::intoto::{ApprovalPredicate, Criterion, Decision, approval_statement};
use custody_core::jcs;
use custody_core::merkle::{self, Hash};
use custody_core::note::NoteVerifier;
use custody_core::signing::SigningKey;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::entry::Rng;
use crate::http::{Auth, Token, claim, client, excerpt, run_workers};
use crate::inference::{RecordSpec, ndjson, request_id};
use crate::principal::{Member, create_principal, create_tenant};
use crate::report::{Report, Tally, percentile_ms};

/// Options of `evidence-setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct SetupArgs {
    /// Base URL of the custody server.
    #[arg(long)]
    pub url: String,
    /// The server administrator's token (`custody serve --bootstrap-token-file`): it creates
    /// the tenant and its principals, which then record the chain with their own tokens.
    #[command(flatten)]
    pub auth: Auth,
    /// Tenant to create (must not hold a chain yet).
    #[arg(long, default_value = "evidence")]
    pub tenant: String,
    /// Environment the model is promoted to and deployed in.
    #[arg(long, default_value = "production")]
    pub environment: String,
}

/// What `evidence-setup` registered: the ids and tokens later modes need.
#[derive(Debug, Serialize)]
pub struct Chain {
    /// The tenant.
    pub tenant: String,
    /// The deployment inference records name as `served_by`.
    pub deployment: String,
    /// `sha256:<hex>` of the promoted and deployed model version.
    pub version_hash: String,
    /// The two dataset versions the model was trained on.
    pub datasets: Vec<String>,
    /// The training run.
    pub run: String,
    /// Size of the governance log after setup.
    pub governance_size: u64,
    /// Principal id of each actor of the chain, by its role in the story (e.g. `scorer`).
    pub principals: BTreeMap<String, String>,
    /// Token of the scoring service (writer): for `http-inference`.
    pub writer_token: Token,
    /// Token of the auditor: for `trace-latency`.
    pub auditor_token: Token,
    /// Seconds the setup took.
    pub seconds: f64,
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An entry without `actor`: custody fills it in from the token of whoever sends it.
fn entry(entry_type: &str, kind: &str, id: &str, body: Value) -> Value {
    json!({
        "type": entry_type,
        "subject": {"kind": kind, "id": id},
        "body": body,
    })
}

/// Who records the chain: each a principal of the tenant with its own roles and token. The
/// trainer never approves (separation of duties); the admin also writes, to promote.
const CAST: [(&str, &str, &[&str]); 8] = [
    ("etl", "svc-etl", &["writer"]),
    ("trainer", "svc-train", &["writer"]),
    ("admin", "usr-admin", &["admin", "writer"]),
    ("approver1", "usr-bob", &["approver"]),
    ("approver2", "usr-carol", &["approver"]),
    ("deployer", "svc-deploy", &["writer"]),
    ("scorer", "svc-scorer", &["writer"]),
    ("auditor", "usr-auditor", &["auditor"]),
];

/// The chain's principals, by role in the story, each with a client sending its token.
struct Cast(HashMap<&'static str, (Member, Client)>);

impl Cast {
    async fn create(admin: &Client, base: &str, tenant: &str) -> Result<Self> {
        let mut members = HashMap::new();
        for (role, name, roles) in CAST {
            let kind = if name.starts_with("usr-") {
                "user"
            } else {
                "service"
            };
            let m = create_principal(admin, base, tenant, kind, name, roles).await?;
            let c = client(4, Some(&m.token))?;
            members.insert(role, (m, c));
        }
        Ok(Cast(members))
    }

    fn get(&self, role: &str) -> &(Member, Client) {
        &self.0[role]
    }

    fn id(&self, role: &str) -> &str {
        &self.get(role).0.id
    }

    /// Appends one governance entry as `role` and requires 201.
    async fn post(&self, role: &str, url: &str, e: &Value) -> Result<u64> {
        post_governance(&self.get(role).1, url, e).await
    }
}

/// Appends one governance entry and requires 201.
async fn post_governance(client: &Client, url: &str, e: &Value) -> Result<u64> {
    let resp = client.post(url).json(e).send().await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if status != StatusCode::CREATED {
        bail!(
            "{} {}: HTTP {status}: {}",
            e["type"].as_str().unwrap_or("?"),
            e["subject"]["id"].as_str().unwrap_or("?"),
            excerpt(&bytes)
        );
    }
    let r: custody_api::AppendResult = serde_json::from_slice(&bytes)?;
    Ok(r.checkpoint_size)
}

/// A model's file manifest and version hash: SHA-256 over the raw file digests in path order.
fn model_files(seed: u64) -> (String, Value) {
    let mut rng = Rng::new(seed);
    let weights: Vec<u8> = (0..32 * 1024)
        .flat_map(|_| rng.next_u64().to_le_bytes())
        .collect();
    let files: [(&str, Vec<u8>); 3] = [
        (
            "config.json",
            br#"{"architecture":"gbdt","trees":400,"features":13}"#.to_vec(),
        ),
        (
            "preprocessing.json",
            br#"{"scaler":"robust","categorical":["home_ownership","purpose","region","channel"]}"#
                .to_vec(),
        ),
        ("weights/model.bin", weights),
    ];
    let mut root = Sha256::new();
    let mut manifest = Vec::new();
    for (path, content) in &files {
        let d = Sha256::digest(content);
        root.update(d);
        manifest.push(json!({"path": path, "digest": format!("sha256:{}", hex::encode(d)), "size": content.len()}));
    }
    (
        format!("sha256:{}", hex::encode(root.finalize())),
        Value::Array(manifest),
    )
}

/// `evidence-setup`: creates the tenant and its principals (see [`CAST`]), then registers as
/// them 2 datasets, a training run, a model version with its manifest, the gate policy, 2
/// approver keys (Ed25519 and P-256), 2 signed approvals, the promotion and a deployment.
pub async fn setup(a: &SetupArgs) -> Result<Chain> {
    let start = Instant::now();
    let admin = client(1, Some(&a.auth.token))?;
    let base = a.url.trim_end_matches('/').to_string();
    create_tenant(&admin, &base, &a.tenant).await?;
    let cast = Cast::create(&admin, &base, &a.tenant)
        .await
        .context("creating the chain's principals (with the server administrator's token)")?;
    let url = format!("{base}/v1/tenants/{}/logs/governance/entries", a.tenant);
    let env = a.environment.as_str();

    let datasets = [
        (sha(b"loans-2025.parquet"), "loans"),
        (sha(b"bureau-2025.parquet"), "bureau"),
    ];
    for (d, name) in &datasets {
        let e = entry(
            "dataset_version.registered",
            "dataset_version",
            d,
            json!({"name": name, "version": "2025-10", "uri": format!("s3://lake/{name}/2025-10"), "digest": d,
                   "row_count": 1_200_000, "schema": {"format": "parquet", "fields": [{"name": "income", "type": "float"}, {"name": "loan_amount", "type": "float"}]},
                   "legal_basis": "contract:DPA-2025-14"}),
        );
        cast.post("etl", &url, &e)
            .await
            .context("registering a dataset (use a fresh tenant)")?;
    }

    let run = "run-2025-11-credit";
    let mut e = entry(
        "training_run.recorded",
        "training_run",
        run,
        json!({"code_commit": "9f2c1e7a0b3d4c5e6f708192a3b4c5d6e7f80912", "parameters": {"learning_rate": 0.05, "trees": 400},
               "metrics": {"auc": 0.91}, "status": "succeeded",
               "environment": {"image_digest": sha(b"trainer-image"), "lockfile_digest": sha(b"uv.lock"),
                               "hardware": "1x A100", "libraries": {"lightgbm": "4.5.0"}}}),
    );
    e["related"] = datasets
        .iter()
        .map(|(d, _)| json!({"kind": "dataset_version", "id": d, "rel": "trained_on"}))
        .collect();
    cast.post("trainer", &url, &e).await?;

    let (version_hash, files) = model_files(2025);
    let mut e = entry(
        "model_version.registered",
        "model_version",
        &version_hash,
        json!({"name": "credit-risk", "version": "7", "version_hash": version_hash, "files": files,
               "framework": "lightgbm", "registry": {"kind": "mlflow", "uri": "models:/credit-risk/7"}}),
    );
    e["related"] = json!([{"kind": "training_run", "id": run, "rel": "produced_by"}]);
    cast.post("trainer", &url, &e).await?;

    let e = entry(
        "policy.updated",
        "policy",
        "gates",
        json!({"targets": {env: {"min_approvals": 2, "required_criteria": ["auc"], "separation_of_duties": true}},
               "clock_skew_ms": 2000}),
    );
    cast.post("admin", &url, &e).await?;

    let approvers = [
        ("approver1", SigningKey::generate_ed25519()?),
        ("approver2", SigningKey::generate_p256()?),
    ];
    for (role, key) in &approvers {
        let e = entry(
            "approver_key.registered",
            "approver",
            cast.id(role),
            json!({"public_key": key.public_key().to_pem()}),
        );
        cast.post("admin", &url, &e).await?;
    }
    for (role, key) in &approvers {
        let predicate = ApprovalPredicate {
            decision: Decision::Approve,
            target: env.into(),
            criteria: vec![Criterion {
                name: "auc".into(),
                passed: true,
                evidence_sha256: None,
            }],
            policy: Some("gates".into()),
            comment: Some("reviewed the evaluation report".into()),
        };
        let statement =
            approval_statement("credit-risk", &version_hash["sha256:".len()..], &predicate)
                .map_err(|e| anyhow!("approval statement: {e}"))?;
        let fp = key.public_key().fingerprint();
        let envelope = dsse::sign(key, "application/vnd.in-toto+json", &statement, &fp);
        let mut e = entry(
            "approval.submitted",
            "model_version",
            &version_hash,
            json!({}),
        );
        e["payload"] = envelope.to_json();
        cast.post(role, &url, &e).await?;
    }

    let mut e = entry(
        "promotion.recorded",
        "model_version",
        &version_hash,
        json!({"to": version_hash, "environment": env, "authoriser": cast.id("admin")}),
    );
    e["payload"] = json!({"reason": "quarterly refresh"});
    cast.post("admin", &url, &e).await?;

    let deployment = "dep-credit-risk-7";
    let e = entry(
        "deployment.recorded",
        "deployment",
        deployment,
        json!({"environment": env, "endpoint": "https://score.bank.example/v1", "config_digest": sha(deployment.as_bytes()), "version_hash": version_hash}),
    );
    let governance_size = cast.post("deployer", &url, &e).await?;

    Ok(Chain {
        tenant: a.tenant.clone(),
        deployment: deployment.into(),
        version_hash,
        datasets: datasets.iter().map(|(d, _)| d.clone()).collect(),
        run: run.into(),
        governance_size,
        principals: CAST
            .iter()
            .map(|(role, _, _)| (role.to_string(), cast.id(role).to_owned()))
            .collect(),
        writer_token: cast.get("scorer").0.token.clone(),
        auditor_token: cast.get("auditor").0.token.clone(),
        seconds: (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    })
}

/// Options of `http-inference`.
#[derive(Debug, Clone, clap::Args)]
pub struct InferenceArgs {
    /// Base URL of the custody server.
    #[arg(long)]
    pub url: String,
    #[command(flatten)]
    pub auth: Auth,
    /// Tenant set up by `evidence-setup`.
    #[arg(long, default_value = "evidence")]
    pub tenant: String,
    /// Deployment the records name as `served_by` (from `evidence-setup`).
    #[arg(long)]
    pub deployment: String,
    /// Version hash of the serving weights (from `evidence-setup`).
    #[arg(long)]
    pub version_hash: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Records per request (one NDJSON body, appended atomically).
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    /// Records to send in all.
    #[arg(long, default_value_t = 100_000)]
    pub total: u64,
    /// Request ids are this prefix followed by the record's number in the run (0..total).
    #[arg(long, default_value = "req-")]
    pub prefix: String,
    /// Send the same records as generic `x.bench.inference` entries, which skip the serving
    /// check, instead of `inference.recorded`.
    #[arg(long)]
    pub generic: bool,
}

/// Sends one NDJSON body and checks that every record is acknowledged, covered by the
/// acknowledged checkpoint, and not flagged as served by the wrong weights. Returns the
/// checkpoint size.
async fn post_ndjson(client: &Client, url: &str, body: String, n: u64) -> Result<u64> {
    let resp = client
        .post(url)
        .header(CONTENT_TYPE, "application/x-ndjson")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if status != StatusCode::CREATED {
        bail!("HTTP {status}: {}", excerpt(&bytes));
    }
    let r: AppendResults = serde_json::from_slice(&bytes)?;
    ensure!(
        r.results.len() as u64 == n,
        "{} results for {n} records",
        r.results.len()
    );
    for x in &r.results {
        ensure!(
            x.checkpoint_size > x.index && r.checkpoint_size > x.index,
            "record {} acked with checkpoint size {}",
            x.index,
            x.checkpoint_size.min(r.checkpoint_size)
        );
        if let Some(s) = &x.security {
            bail!(
                "record {} flagged: claimed {} but {:?} was serving",
                s.request_id,
                s.claimed,
                s.expected
            );
        }
    }
    Ok(r.checkpoint_size)
}

/// `http-inference`: `concurrency` clients post NDJSON bodies of `batch` records to the
/// inference log until `total` records are acknowledged.
pub async fn http_inference(a: &InferenceArgs) -> Result<Report> {
    ensure!(
        a.concurrency > 0 && a.batch > 0,
        "concurrency and batch must be positive"
    );
    let client = client(a.concurrency, Some(&a.auth.token))?;
    let base = a.url.trim_end_matches('/');
    let url: Arc<str> = format!("{base}/v1/tenants/{}/logs/inference/entries", a.tenant).into();
    let spec = Arc::new(RecordSpec {
        version_hash: a.version_hash.clone(),
        deployment: a.deployment.clone(),
        generic: a.generic,
    });
    let prefix: Arc<str> = a.prefix.as_str().into();
    let next = Arc::new(AtomicU64::new(0));
    let size = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let (total, batch) = (a.total, a.batch);
    let start = Instant::now();
    let tally = run_workers(a.concurrency, |w| {
        let (client, url, next, spec, prefix, size, bytes) = (
            client.clone(),
            url.clone(),
            next.clone(),
            spec.clone(),
            prefix.clone(),
            size.clone(),
            bytes.clone(),
        );
        async move {
            let mut rng = Rng::new(0xC0DE ^ w);
            let mut tally = Tally::default();
            while let Some((first, n)) = claim(&next, batch, total) {
                let (body, _) = ndjson(&spec, &prefix, first, n, &mut rng);
                bytes.fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
                let t = Instant::now();
                match post_ndjson(&client, &url, body, n).await {
                    Ok(s) => {
                        tally.ok(t.elapsed(), n);
                        size.fetch_max(s, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => tally.error(format!("records {first}..{}: {e:#}", first + n)),
                }
            }
            tally
        }
    })
    .await?;
    let sent = bytes.load(std::sync::atomic::Ordering::Relaxed);
    let mode = if a.generic {
        "http-inference-generic"
    } else {
        "http-inference"
    };
    Ok(
        Report::new(mode, a.concurrency, a.total, start.elapsed(), tally)
            .with("batch", a.batch)
            .with("record_bytes", sent / a.total.max(1))
            .with("log_size", size.load(std::sync::atomic::Ordering::Relaxed)),
    )
}

/// Options of `trace-latency`.
#[derive(Debug, Clone, clap::Args)]
pub struct TraceArgs {
    /// Base URL of the custody server.
    #[arg(long)]
    pub url: String,
    #[command(flatten)]
    pub auth: Auth,
    /// Tenant set up by `evidence-setup`.
    #[arg(long, default_value = "evidence")]
    pub tenant: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Traces to request in all.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Backward traces start from request ids `<prefix><n>` with `n` drawn uniformly from
    /// `0..ids`: the ids an `http-inference` run with this prefix and total wrote.
    #[arg(long, default_value = "req-")]
    pub prefix: String,
    /// How many request ids the prefix covers.
    #[arg(long, default_value_t = 0)]
    pub ids: u64,
    /// Trace forward from this subject (e.g. a dataset digest) instead.
    #[arg(long)]
    pub forward: Option<String>,
    /// Forward: most inference records per answer.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Stop issuing traces after this many seconds even if `total` is not reached (0: no
    /// limit); the report counts the traces actually issued.
    #[arg(long, default_value_t = 0)]
    pub max_seconds: u64,
    /// Verify the proofs of every n-th answer of each client (its first answer always); 1
    /// verifies every answer. Every answer's content is checked regardless.
    #[arg(long, default_value_t = 1)]
    pub verify_every: u64,
}

/// Checks trace answers against the logs' verifier keys, pinned once from the log listing.
struct Verifier {
    /// Verifier key text and parsed key, per log name.
    keys: HashMap<String, (String, NoteVerifier)>,
    /// Checkpoints already opened: note text to (size, root).
    opened: Mutex<HashMap<String, (u64, Hash)>>,
}

impl Verifier {
    async fn pin(client: &Client, base: &str, tenant: &str) -> Result<Self> {
        let resp = client
            .get(format!("{base}/v1/tenants/{tenant}/logs"))
            .send()
            .await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        ensure!(
            status == StatusCode::OK,
            "listing logs: HTTP {status}: {}",
            excerpt(&bytes)
        );
        let list: LogList = serde_json::from_slice(&bytes)?;
        let mut keys = HashMap::new();
        for l in list.logs {
            let v = NoteVerifier::parse(&l.verifier_key)
                .map_err(|e| anyhow!("verifier key of {}: {e}", l.name))?;
            keys.insert(l.name, (l.verifier_key, v));
        }
        Ok(Verifier {
            keys,
            opened: Mutex::new(HashMap::new()),
        })
    }

    /// Opens each checkpoint with the pinned key, recomputes every entry's leaf hash from its
    /// envelope and checks its inclusion proof against that checkpoint's root. Returns the
    /// number of entries proven.
    fn verify(&self, answer: &TraceAnswer) -> Result<usize> {
        let mut roots: HashMap<&str, (u64, Hash)> = HashMap::new();
        for cp in &answer.proven.checkpoints {
            let (vkey, verifier) = self
                .keys
                .get(&cp.log)
                .ok_or_else(|| anyhow!("checkpoint of unknown log {}", cp.log))?;
            ensure!(
                &cp.verifier_key == vkey,
                "the answer names another verifier key for {}",
                cp.log
            );
            let cached = self
                .opened
                .lock()
                .map_err(|_| anyhow!("poisoned"))?
                .get(&cp.checkpoint)
                .copied();
            let (size, root) = match cached {
                Some(x) => x,
                None => {
                    let opened = SignedCheckpoint::open(&cp.checkpoint, verifier)
                        .map_err(|e| anyhow!("checkpoint of {}: {e}", cp.log))?
                        .checkpoint;
                    let x = (opened.size, opened.root);
                    self.opened
                        .lock()
                        .map_err(|_| anyhow!("poisoned"))?
                        .insert(cp.checkpoint.clone(), x);
                    x
                }
            };
            ensure!(
                size == cp.size,
                "checkpoint of {} is not of size {}",
                cp.log,
                cp.size
            );
            roots.insert(cp.log.as_str(), (size, root));
        }
        for e in &answer.proven.entries {
            let bytes = jcs::canonicalize(&e.envelope)
                .map_err(|err| anyhow!("envelope of {} {}: {err}", e.log, e.index))?;
            let leaf = merkle::leaf_hash(&bytes);
            ensure!(
                leaf.to_hex() == e.leaf_hash,
                "leaf hash of {} {} does not match its envelope",
                e.log,
                e.index
            );
            let path = e
                .proof
                .iter()
                .map(|b| {
                    Base64::decode_vec(b)
                        .map_err(|err| anyhow!("{err}"))
                        .and_then(|v| Hash::from_slice(&v).map_err(|err| anyhow!("{err}")))
                })
                .collect::<Result<Vec<Hash>>>()?;
            let (size, root) = roots
                .get(e.log.as_str())
                .ok_or_else(|| anyhow!("no checkpoint for the {} log", e.log))?;
            merkle::verify_inclusion(e.index, *size, &leaf, &path, root)
                .map_err(|err| anyhow!("inclusion proof of {} {}: {err}", e.log, e.index))?;
        }
        Ok(answer.proven.entries.len())
    }
}

/// Entry types every backward trace from an inference must reach.
const BACKWARD_TYPES: [&str; 8] = [
    "inference.recorded",
    "deployment.recorded",
    "model_version.registered",
    "approval.submitted",
    "approver_key.registered",
    "policy.updated",
    "training_run.recorded",
    "dataset_version.registered",
];

/// Checks what a trace answer says, without its proofs.
fn check_content(answer: &TraceAnswer, request: Option<&str>, limit: u32) -> Result<()> {
    let entries = &answer.proven.entries;
    ensure!(!entries.is_empty(), "empty answer");
    let types: HashSet<&str> = entries
        .iter()
        .filter_map(|e| e.envelope["type"].as_str())
        .collect();
    match request {
        Some(req) => {
            let first = &entries[0];
            ensure!(
                first.log == "inference" && first.envelope["subject"]["id"] == req,
                "the answer starts at {} {}, not at request {req}",
                first.log,
                first.envelope["subject"]["id"]
            );
            for t in BACKWARD_TYPES {
                ensure!(types.contains(t), "trace of {req} lacks {t}");
            }
        }
        None => {
            let inferences = entries.iter().filter(|e| e.log == "inference").count();
            ensure!(
                inferences == limit as usize,
                "{inferences} inference records for limit {limit}"
            );
            for t in ["training_run.recorded", "model_version.registered"] {
                ensure!(types.contains(t), "forward trace lacks {t}");
            }
        }
    }
    Ok(())
}

/// What one trace worker saw besides latencies.
#[derive(Debug, Default)]
struct TraceStats {
    entries: u64,
    bytes: u64,
    verified: u64,
    verify_us: u64,
}

/// `trace-latency`: `total` traces from `concurrency` clients, backward from random request
/// ids or forward from one subject, each answer's content checked and its proofs verified.
pub async fn trace_latency(a: &TraceArgs) -> Result<Report> {
    ensure!(a.concurrency > 0, "concurrency must be positive");
    ensure!(
        a.forward.is_some() || a.ids > 0,
        "give --ids (request ids written with --prefix) or --forward SUBJECT"
    );
    let client = client(a.concurrency, Some(&a.auth.token))?;
    let base = a.url.trim_end_matches('/').to_string();
    let verifier = Arc::new(Verifier::pin(&client, &base, &a.tenant).await?);
    let url: Arc<str> = format!("{base}/v1/tenants/{}/trace", a.tenant).into();
    let stats = Arc::new(Mutex::new(TraceStats::default()));
    let next = Arc::new(AtomicU64::new(0));
    let a2 = Arc::new(a.clone());
    let start = Instant::now();
    let deadline = (a.max_seconds > 0).then(|| start + Duration::from_secs(a.max_seconds));
    let tally = run_workers(a.concurrency, |w| {
        let (client, url, next, verifier, stats, a) = (
            client.clone(),
            url.clone(),
            next.clone(),
            verifier.clone(),
            stats.clone(),
            a2.clone(),
        );
        async move {
            let mut rng = Rng::new(0x7ACE ^ w);
            let mut tally = Tally::default();
            let mut mine = TraceStats::default();
            let mut n = 0u64;
            while (deadline.is_none_or(|d| Instant::now() < d))
                && claim(&next, 1, a.total).is_some()
            {
                let (query, request) = match &a.forward {
                    Some(s) => (
                        vec![
                            ("subject", s.clone()),
                            ("direction", "forward".into()),
                            ("limit", a.limit.to_string()),
                        ],
                        None,
                    ),
                    None => {
                        let r = request_id(&a.prefix, rng.below(a.ids));
                        (vec![("request_id", r.clone())], Some(r))
                    }
                };
                let t = Instant::now();
                let got = fetch(&client, &url, &query).await;
                let elapsed = t.elapsed();
                let verify = a.verify_every > 0 && n.is_multiple_of(a.verify_every);
                n += 1;
                let checked = got.and_then(|body| {
                    let answer: TraceAnswer = serde_json::from_slice(&body)?;
                    check_content(&answer, request.as_deref(), a.limit)?;
                    mine.bytes += body.len() as u64;
                    mine.entries += answer.proven.entries.len() as u64;
                    if verify {
                        let v = Instant::now();
                        verifier.verify(&answer)?;
                        mine.verify_us += v.elapsed().as_micros() as u64;
                        mine.verified += 1;
                    }
                    Ok(())
                });
                match checked {
                    Ok(()) => tally.ok(elapsed, 1),
                    Err(e) => tally.error(format!("trace {query:?}: {e:#}")),
                }
            }
            if let Ok(mut s) = stats.lock() {
                s.entries += mine.entries;
                s.bytes += mine.bytes;
                s.verified += mine.verified;
                s.verify_us += mine.verify_us;
            }
            tally
        }
    })
    .await?;
    let elapsed = start.elapsed();
    let mut sorted = tally.latencies_us.clone();
    sorted.sort_unstable();
    let p95 = percentile_ms(&sorted, 0.95);
    let ok = tally.ok_entries.max(1);
    let mode = if a.forward.is_some() {
        "trace-forward"
    } else {
        "trace-backward"
    };
    let tree = verifier_sizes(&client, &base, &a.tenant).await?;
    let s = stats.lock().map_err(|_| anyhow!("poisoned"))?;
    let issued = tally.ok_entries + tally.errors;
    let mut report = Report::new(mode, a.concurrency, issued, elapsed, tally)
        .with("p95_ms", (p95 * 1000.0).round() / 1000.0)
        .with("entries_per_answer", s.entries / ok)
        .with("answer_bytes", s.bytes / ok)
        .with("verified_answers", s.verified)
        .with(
            "verify_ms_per_answer",
            (s.verify_us as f64 / s.verified.max(1) as f64).round() / 1000.0,
        )
        .with("inference_log_size", tree.0)
        .with("governance_log_size", tree.1);
    if a.forward.is_some() {
        report = report.with("limit", a.limit);
    }
    Ok(report)
}

/// One GET whose answer must be 200; returns the body.
async fn fetch(client: &Client, url: &str, query: &[(&str, String)]) -> Result<Vec<u8>> {
    let resp = client.get(url).query(query).send().await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if status != StatusCode::OK {
        bail!("HTTP {status}: {}", excerpt(&bytes));
    }
    Ok(bytes.to_vec())
}

/// Sizes of the inference and governance logs.
async fn verifier_sizes(client: &Client, base: &str, tenant: &str) -> Result<(u64, u64)> {
    let list: LogList = client
        .get(format!("{base}/v1/tenants/{tenant}/logs"))
        .timeout(Duration::from_secs(30))
        .send()
        .await?
        .json()
        .await?;
    let size = |name: &str| {
        list.logs
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.size)
            .unwrap_or(0)
    };
    Ok((size("inference"), size("governance")))
}
