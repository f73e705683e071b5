//! `custody-loadgen`: the load generator behind docs/BENCHMARKS.md.
//!
//! It measures custody appends and inclusion proofs over HTTP, the plain-SQLite baseline a
//! user would otherwise write (autocommit or group commit, same bytes, same durability), and
//! the siglog transparency log, and prints one summary line per run plus, with `--json`, one
//! JSON object (`mode`, `concurrency`, `total`, `seconds`, `ops_per_sec`, `p50_ms`, `p99_ms`,
//! `p999_ms`, `errors`, and `rss_mb` with `--pid`) for a results file.
//!
//! For the ML evidence chain it registers a realistic chain (`evidence-setup`), ingests
//! inference records as NDJSON (`http-inference`, also as generic entries without the serving
//! check), times verified traces (`trace-latency`), and runs the plain-SQLite baseline on the
//! same records (`sqlite-ndjson`, `sqlite-lookup`).
//!
//! Every mode that talks to custody takes an API token (`--token`, or `CUSTODY_TOKEN`):
//! `principal` and `evidence-setup` the server administrator's, which they use to make the
//! tenant's principals, and the measuring modes a token of the right role (a writer to append,
//! an auditor to trace). The token is never printed, except by `principal`, whose output it
//! is.

mod entry;
mod evidence;
mod group;
mod http;
mod inference;
mod postgres;
mod principal;
mod report;
mod sqlite;
mod sqlite_ndjson;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Load generator for custody and the baselines it is compared with.
#[derive(Debug, Parser)]
#[command(name = "custody-loadgen", version)]
struct Cli {
    /// Print the result as one JSON object on stdout (the summary line goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Server process whose resident memory (VmRSS) to report at the end, as rss_mb.
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// Tokio worker threads driving the load (keep low on small machines shared with the
    /// server).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// Free text copied into the JSON as `note`, e.g. the server's settings.
    #[arg(long, global = true)]
    note: Option<String>,
    #[command(subcommand)]
    mode: Mode,
}

/// What to measure.
#[derive(Debug, Subcommand)]
enum Mode {
    /// Append entries to a custody log (POST .../entries); OK means 201 and covered by the
    /// acknowledged checkpoint.
    HttpAppend(http::AppendArgs),
    /// Fetch inclusion proofs of random entries (GET .../proof/inclusion).
    HttpProof(http::ProofArgs),
    /// Insert the same bytes into plain SQLite (WAL, synchronous=FULL).
    SqliteInsert(sqlite::SqliteArgs),
    /// Insert the same bytes into a plain PostgreSQL table (synchronous_commit on).
    PgInsert(postgres::PgArgs),
    /// Add entries to a siglog server (POST /add) and wait for its checkpoint to cover them.
    SiglogAdd(http::SiglogArgs),
    /// Create a principal of a tenant (and the tenant if missing) with the server
    /// administrator's token; prints the principal's token on stdout, e.g. a writer's for
    /// `http-append`.
    Principal(principal::PrincipalArgs),
    /// Create a tenant and its principals, and register as them an evidence chain (datasets,
    /// training run, model version, policy, approver keys, signed approvals, promotion,
    /// deployment); prints the ids and the tokens of the scorer (`writer_token`) and the
    /// auditor (`auditor_token`) as JSON.
    EvidenceSetup(evidence::SetupArgs),
    /// Post inference records as NDJSON to the inference log; OK means 201, covered by the
    /// acknowledged checkpoint and not flagged as served by other weights.
    HttpInference(evidence::InferenceArgs),
    /// Trace backward from random request ids, or forward from a subject, verifying the
    /// answers' leaf hashes, inclusion proofs and checkpoint signatures.
    TraceLatency(evidence::TraceArgs),
    /// Store the same NDJSON inference records in plain SQLite (WAL, synchronous=FULL, group
    /// commit, indexed by request id).
    SqliteNdjson(sqlite_ndjson::NdjsonArgs),
    /// Look up records by request id in the `sqlite-ndjson` table.
    SqliteLookup(sqlite_ndjson::LookupArgs),
    /// Print a fresh Ed25519 key in the Go note private-key format, for starting siglog.
    SiglogKey {
        /// Key name: the peer log's origin.
        #[arg(long, default_value = "bench.local/siglog")]
        name: String,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    custody_client::install_crypto_provider();
    if let Mode::SiglogKey { name } = &cli.mode {
        let signer = custody_core::note::NoteSigner::generate(name)
            .map_err(|e| anyhow::anyhow!("cannot make a key named {name:?}: {e}"))?;
        println!("{}", signer.to_private_key_string());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()?;
    if let Mode::Principal(a) = &cli.mode {
        let made = runtime.block_on(principal::principal(a))?;
        eprintln!(
            "principal: {} in tenant {} with roles {}",
            made.id,
            a.tenant,
            a.roles.join(",")
        );
        println!("{}", made.token.expose());
        return Ok(());
    }
    if let Mode::EvidenceSetup(a) = &cli.mode {
        let chain = runtime.block_on(evidence::setup(a))?;
        eprintln!(
            "evidence-setup: tenant {} deployment {} version {} (governance log size {}) in {:.2}s",
            chain.tenant,
            chain.deployment,
            chain.version_hash,
            chain.governance_size,
            chain.seconds
        );
        println!("{}", serde_json::to_string(&chain)?);
        return Ok(());
    }
    let mut report = runtime.block_on(async {
        match &cli.mode {
            Mode::HttpAppend(a) => http::http_append(a).await,
            Mode::HttpProof(a) => http::http_proof(a).await,
            Mode::SqliteInsert(a) => sqlite::sqlite_insert(a).await,
            Mode::PgInsert(a) => postgres::pg_insert(a).await,
            Mode::SiglogAdd(a) => http::siglog_add(a).await,
            Mode::HttpInference(a) => evidence::http_inference(a).await,
            Mode::TraceLatency(a) => evidence::trace_latency(a).await,
            Mode::SqliteNdjson(a) => sqlite_ndjson::sqlite_ndjson(a).await,
            Mode::SqliteLookup(a) => sqlite_ndjson::sqlite_lookup(a).await,
            Mode::SiglogKey { .. } => anyhow::bail!("siglog-key prints a key; it measures nothing"),
            Mode::EvidenceSetup(_) => {
                anyhow::bail!("evidence-setup registers a chain; it measures nothing")
            }
            Mode::Principal(_) => anyhow::bail!("principal makes a principal; it measures nothing"),
        }
    })?;
    if let Some(pid) = cli.pid {
        match report::rss_mb(pid) {
            Ok(mb) => report.rss_mb = Some(mb),
            Err(e) => eprintln!("rss of pid {pid}: {e:#}"),
        }
    }
    if let Some(note) = &cli.note {
        report = report.with("note", note.as_str());
    }
    if cli.json {
        eprintln!("{}", report.summary());
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.summary());
    }
    Ok(())
}
