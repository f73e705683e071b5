//! `custody`: run the ledger server, record evidence, and verify it offline.
//!
//! Every client command talks to a server over HTTP (`--server`, default
//! `http://127.0.0.1:7878`); `verify` never does. Read commands print text for people and, with
//! `--json`, JSON for scripts. Errors are one line on stderr naming the field and the fix, with
//! a non-zero exit.

mod audit;
mod demo;
mod drift;
mod erasure;
mod govern;
mod integrity;
mod keys;
mod model;
mod monitor;
mod objects;
mod pack;
mod pack_objects;
mod principals;
mod proofs;
mod serve;
mod submit;
mod verify;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use custody_client::{Client, ListQuery};
use custody_core::jcs;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;

const DEFAULT_SERVER: &str = "http://127.0.0.1:7878";

#[derive(Parser)]
#[command(
    name = "custody",
    version,
    about = "A verifiable ledger for ML governance evidence",
    after_help = "Exit codes: 0 success; 1 error; 2 bad usage or a failed offline verification; 3 refused by the gate (promote, rollback), not admitted (admit), or a checkpoint not signed by the pinned key (monitor)."
)]
struct Cli {
    /// Server to talk to.
    #[arg(long, global = true, env = "CUSTODY_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// API token (cst_...). Prefer the environment variable: a flag shows in `ps`.
    #[arg(long, global = true, env = "CUSTODY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Why you read: recorded with every read in the tenant's access log, and required for
    /// payloads and evidence packs.
    #[arg(long, global = true, env = "CUSTODY_PURPOSE")]
    purpose: Option<String>,
    /// A PEM certificate to trust for an https:// server (its CA, or its self-signed
    /// certificate).
    #[arg(long, global = true, env = "CUSTODY_CA_CERT")]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Token, purpose and trusted CA of this invocation, set once from the command line.
static CONNECTION: std::sync::OnceLock<(Option<String>, Option<String>, Option<PathBuf>)> =
    std::sync::OnceLock::new();

/// A client for `server` carrying this invocation's token and purpose.
pub(crate) fn connect(server: &str) -> anyhow::Result<Client> {
    let (token, purpose, ca) = CONNECTION.get().cloned().unwrap_or_default();
    let ca_pem = match &ca {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?,
        ),
        None => None,
    };
    let mut client = Client::with_ca(server, ca_pem.as_deref())
        .map_err(|e| anyhow::anyhow!("--ca-cert: {e}"))?
        .with_purpose(purpose);
    if let Some(t) = token {
        custody_auth::ApiToken::parse(&t).map_err(|_| {
            anyhow::anyhow!(
                "--token / CUSTODY_TOKEN is not a custody token: expected cst_<20 hex>_<64 hex>, as `custody principal create` printed it"
            )
        })?;
        client = client.with_token(&t);
    }
    Ok(client)
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded SQLite store by default).
    Serve {
        /// Data directory: database and log signing keys. Created if missing.
        #[arg(long, env = "CUSTODY_DATA_DIR", default_value = "./custody-data")]
        data_dir: PathBuf,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, env = "CUSTODY_LISTEN", default_value = "127.0.0.1:7878")]
        listen: String,
        /// Server name: the first part of every log origin.
        #[arg(long, env = "CUSTODY_SERVER_NAME", default_value = "custody.local")]
        server_name: String,
        /// The database: postgres://USER:PASSWORD@HOST:PORT/DATABASE for PostgreSQL (several
        /// servers may share it), or sqlite:PATH; default <data-dir>/custody.db.
        #[arg(long, env = "CUSTODY_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Where the logs' signing keys are kept (0600 files); default <data-dir>/keys.
        /// Servers sharing a PostgreSQL database must share this directory.
        #[arg(long, env = "CUSTODY_KEY_DIR")]
        key_dir: Option<PathBuf>,
        /// On first start, the bootstrap administrator's token: read from this file if it
        /// exists, otherwise generated and written to it (mode 0600). Without it, a generated
        /// token is printed once on stderr.
        #[arg(long, env = "CUSTODY_BOOTSTRAP_TOKEN_FILE")]
        bootstrap_token_file: Option<PathBuf>,
        #[command(flatten)]
        limits: serve::Limits,
    },
    /// Run the server with a demo evidence chain recorded in tenant `demo` (datasets, runs,
    /// three model versions, signed approvals, a refused promotion, a bad deploy, an incident,
    /// a rollback, thousands of inferences), print one inference's proven trace, keep serving.
    Demo {
        /// Data directory, as for `serve`.
        #[arg(long, env = "CUSTODY_DATA_DIR", default_value = "./custody-data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "CUSTODY_LISTEN", default_value = "127.0.0.1:7878")]
        listen: String,
        /// Server name: the first part of every log origin.
        #[arg(long, env = "CUSTODY_SERVER_NAME", default_value = "custody.local")]
        server_name: String,
    },
    /// Create or list tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Who the token (CUSTODY_TOKEN) belongs to.
    Whoami,
    /// Create or list a tenant's principals (users and services) and their roles.
    #[command(subcommand)]
    Principal(principals::PrincipalCommand),
    /// Issue, list or revoke API tokens.
    #[command(subcommand)]
    Token(principals::TokenCommand),
    /// Check that a log still extends a checkpoint you kept (a witness's check): the server
    /// proves consistency, this command verifies the proof against both signed checkpoints.
    /// Exit code 2 on a fork.
    Witness(integrity::WitnessArgs),
    /// Audit a C2SP tlog-tiles log (custody's /tlog/{tenant}/{log}/ or any other) from its URL
    /// or a directory copy: open the checkpoint with the pinned key, rebuild the tree from every
    /// entry and tile, and check it extends the checkpoint verified on the previous run.
    ///
    /// Exit code 2 when the tiles contradict the checkpoint or the log forked; 3 when the
    /// checkpoint is not signed by --vkey.
    Monitor(monitor::MonitorArgs),
    /// Compare recorded artifact digests with the artifacts at their URIs and report drift.
    Drift(drift::DriftArgs),
    /// Switch a log to a new signing key, announced in the log itself under the old key;
    /// prints the new verifier key to pin.
    RotateKey {
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
        /// Log: governance, inference or access.
        #[arg(long, short, default_value = "governance")]
        log: String,
    },
    /// Set or apply the tenant's payload retention policy.
    #[command(subcommand)]
    Retention(erasure::RetentionCommand),
    /// Erase every payload naming a data subject (a data-subject request), recording each
    /// erasure with its legal basis. Envelopes and proofs stay valid.
    Erase {
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
        /// The subject's identifier as payloads hold it (exact string match); `-` reads it
        /// from stdin.
        #[arg(long)]
        data_subject: String,
        /// Why the erasure is lawful, e.g. "GDPR Art. 17(1)(a)".
        #[arg(long)]
        legal_basis: String,
        /// The request's reference, e.g. DSR-2026-117.
        #[arg(long)]
        reference: Option<String>,
        /// List what would be erased, erase nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List a tenant's logs with origin, size and verifier key.
    Logs {
        /// Tenant name.
        tenant: String,
    },
    /// Append entries from a file or stdin: one JSON object, a JSON array (atomic) or NDJSON.
    Append {
        #[command(flatten)]
        at: LogArgs,
        /// File to read; `-` or nothing reads stdin.
        file: Option<PathBuf>,
        /// Treat the input as NDJSON (automatic for .ndjson and .jsonl files).
        #[arg(long)]
        ndjson: bool,
        /// Entries per request for NDJSON (each request is atomic).
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Show one entry.
    Get {
        #[command(flatten)]
        at: LogArgs,
        /// Entry index.
        index: u64,
    },
    /// List entries matching filters.
    List(ListArgs),
    /// Print the latest signed checkpoint (byte-exact).
    Checkpoint {
        #[command(flatten)]
        at: LogArgs,
        /// Also save it to this file, to check consistency later with `custody verify log`.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Print the log's verifier key (pin it).
    Vkey {
        #[command(flatten)]
        at: LogArgs,
    },
    /// Fetch proofs.
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Export a whole log (raw leaves + signed checkpoint) to a file, or with --model,
    /// --request-id, --entry or --since/--until an evidence pack to a directory; both are for
    /// offline verification.
    Export {
        #[command(flatten)]
        at: LogArgs,
        #[command(flatten)]
        pack: pack::PackArgs,
        /// File to write (a log export), or new directory (an evidence pack). A pack can also
        /// go to object storage, write-once: s3://BUCKET/PREFIX/ or file:///ABSOLUTE/DIR/.
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        endpoint: objects::EndpointArg,
    },
    /// Verify offline: an evidence pack directory, one entry, or an exported log.
    Verify(VerifyArgs),
    /// Model versions: hash, register, sign for model_signing.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Approver keys: generate locally, register in the governance log.
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Sign an approval (or rejection) of a model version with your key and submit it.
    Approve(govern::ApproveArgs),
    /// Promote a model version in an environment through the gate.
    ///
    /// Exit code 3 when the gate refuses: each missing item is printed, and the refusal is
    /// recorded in the governance log.
    Promote(govern::PromoteArgs),
    /// Return an environment to a version that served there before.
    ///
    /// Exit code 3 when refused: each missing item is printed, and the refusal is recorded.
    Rollback(govern::RollbackArgs),
    /// The evidence chain behind an entry (or, with --forward, what rests on it), proven.
    Trace(audit::TraceArgs),
    /// What served in an environment at a time, proven.
    Served(audit::ServedArgs),
    /// Every serving change of a model version, with the evidence about it, proven.
    History(audit::HistoryArgs),
    /// May these weights serve in this environment now? Exit 0 when admitted, 3 when not.
    Admit(audit::AdmitArgs),
}

/// `--tenant`, for commands that act on one tenant.
#[derive(Args, Clone)]
pub(crate) struct TenantArg {
    /// Tenant name.
    #[arg(long, short, env = "CUSTODY_TENANT")]
    pub tenant: String,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct VerifyArgs {
    #[command(subcommand)]
    command: Option<VerifyCommand>,
    /// An evidence pack directory (`custody export --model HASH -o DIR`): checks SHA256SUMS,
    /// every leaf, inclusion proof, checkpoint signature, payload commitment and approval
    /// signature. Exit code 2 names each file and check that failed. A pack in object storage
    /// (s3://BUCKET/PREFIX/ or file:///ABSOLUTE/DIR/) is downloaded first, each object checked
    /// against SHA256SUMS as it is read.
    #[arg(value_name = "PACK_DIR")]
    pack: Option<PathBuf>,
    #[command(flatten)]
    vkeys: audit::VkeyArgs,
    #[command(flatten)]
    endpoint: objects::EndpointArg,
    #[command(flatten)]
    deep: integrity::DeepArgs,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and its governance, inference and access logs.
    Create {
        /// Tenant name: a-z, 0-9 and '-', at most 63.
        name: String,
    },
    /// List tenants.
    List,
}

#[derive(Args, Clone)]
struct LogArgs {
    /// Tenant name.
    #[arg(long, short, env = "CUSTODY_TENANT")]
    tenant: String,
    /// Log: governance, inference or access.
    #[arg(long, short, default_value = "governance")]
    log: String,
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    at: LogArgs,
    /// Exact entry type.
    #[arg(long = "type")]
    entry_type: Option<String>,
    /// Exact actor id.
    #[arg(long)]
    actor: Option<String>,
    /// Exact subject id.
    #[arg(long)]
    subject: Option<String>,
    /// An id among the related links.
    #[arg(long)]
    related: Option<String>,
    /// RFC 3339 lower bound.
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339 upper bound (exclusive).
    #[arg(long)]
    until: Option<String>,
    /// Page size.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Start after this cursor.
    #[arg(long)]
    cursor: Option<String>,
    /// Follow cursors to the end.
    #[arg(long)]
    all: bool,
}

#[derive(Subcommand)]
enum ProofCommand {
    /// RFC 9162 inclusion proof.
    Inclusion {
        #[command(flatten)]
        at: LogArgs,
        /// Entry index.
        #[arg(long)]
        index: u64,
        /// Tree size (default: latest checkpoint).
        #[arg(long)]
        size: Option<u64>,
    },
    /// RFC 9162 consistency proof.
    Consistency {
        #[command(flatten)]
        at: LogArgs,
        /// Older size.
        #[arg(long)]
        from: u64,
        /// Newer size.
        #[arg(long)]
        to: u64,
    },
    /// C2SP tlog-proof of one entry (offline evidence).
    Tlog {
        #[command(flatten)]
        at: LogArgs,
        /// Entry index.
        #[arg(long)]
        index: u64,
        /// Write it to this file.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum VerifyCommand {
    /// Check one entry against its tlog-proof.
    Entry {
        /// Pinned verifier key, or a file holding it.
        #[arg(long)]
        vkey: String,
        /// The .tlog-proof file.
        #[arg(long)]
        proof: PathBuf,
        /// The entry: `custody get --json` output or a bare envelope.
        #[arg(long)]
        entry: PathBuf,
    },
    /// Check a whole exported log, and that it extends checkpoints saved earlier.
    Log {
        /// Pinned verifier key, or a file holding it.
        #[arg(long)]
        vkey: String,
        /// The file written by `custody export`.
        #[arg(long)]
        export: PathBuf,
        /// A checkpoint saved earlier (`custody checkpoint -o`); repeatable.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
    },
}

/// A usage error on one line: clap's message with what it lists (missing arguments, accepted
/// values, tips) folded in, without the usage block.
fn usage_error(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let line = line.trim_start_matches("error:").trim();
        let line = line
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
            .unwrap_or(line);
        parts.push(line.to_owned());
    }
    let mut out = String::new();
    for p in parts {
        if out.is_empty() {
            out = p;
        } else if out.ends_with(':') {
            out.push(' ');
            out.push_str(&p);
        } else if out.contains(": ") && !p.contains(':') && p.starts_with(['<', '-']) {
            out.push_str(", ");
            out.push_str(&p);
        } else {
            out.push_str("; ");
            out.push_str(&p);
        }
    }
    if out.is_empty() {
        out = "invalid arguments".into();
    }
    format!("{out} (see --help)")
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            eprintln!("error: {}", usage_error(&e));
            std::process::exit(2);
        }
    };
    let serving = matches!(cli.command, Command::Serve { .. } | Command::Demo { .. });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CUSTODY_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if serving { "info" } else { "warn" })
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    custody_client::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", chain.join(": "));
            std::process::exit(1);
        }
    }
}

fn print<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", text());
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let json = cli.json;
    let _ = CONNECTION.set((cli.token.clone(), cli.purpose.clone(), cli.ca_cert.clone()));
    let client = || connect(&cli.server);
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            server_name,
            database_url,
            key_dir,
            bootstrap_token_file,
            limits,
        } => {
            serve::run(
                data_dir,
                listen,
                server_name,
                database_url,
                key_dir,
                bootstrap_token_file,
                limits,
            )
            .await?
        }
        Command::Whoami => {
            let w = client()?.whoami().await?;
            print(json, &w, || {
                format!(
                    "{} ({}) in {} with roles {}; token {}",
                    w.principal,
                    w.kind,
                    w.tenant
                        .as_deref()
                        .unwrap_or("every tenant (server administrator)"),
                    w.roles.join(", "),
                    w.token
                )
            })?;
        }
        Command::Principal(c) => principals::principal(c, &client()?, json).await?,
        Command::Token(c) => principals::token(c, &client()?, json).await?,
        Command::Retention(c) => erasure::retention(c, &client()?, json).await?,
        Command::Erase {
            tenant,
            data_subject,
            legal_basis,
            reference,
            dry_run,
        } => {
            erasure::erase(
                &client()?,
                &tenant,
                &data_subject,
                legal_basis,
                reference,
                dry_run,
                json,
            )
            .await?
        }
        Command::Demo {
            data_dir,
            listen,
            server_name,
        } => demo::run(data_dir, listen, server_name).await?,
        Command::Tenant(TenantCommand::Create { name }) => {
            let t = client()?.create_tenant(&name).await?;
            print(json, &t, || {
                let mut s = format!("created tenant {}", t.name);
                for l in &t.logs {
                    s.push_str(&format!("\n  {:<10} {}", l.name, l.verifier_key));
                }
                s
            })?;
        }
        Command::Tenant(TenantCommand::List) => {
            let t = client()?.tenants().await?;
            print(json, &t, || t.tenants.join("\n"))?;
        }
        Command::Logs { tenant } => {
            let l = client()?.logs(&tenant).await?;
            print(json, &l, || {
                l.logs
                    .iter()
                    .map(|l| format!("{:<10} size {:<10} {}", l.name, l.size, l.verifier_key))
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
        }
        Command::Append {
            at,
            file,
            ndjson,
            batch,
        } => append(&client()?, &at, file, ndjson, batch, json).await?,
        Command::Get { at, index } => {
            let e = client()?.entry(&at.tenant, &at.log, index).await?;
            print(json, &e, || {
                serde_json::to_string_pretty(&e).unwrap_or_default()
            })?;
        }
        Command::List(args) => list(&client()?, args, json).await?,
        Command::Checkpoint { at, output } => {
            let note = client()?.checkpoint(&at.tenant, &at.log).await?;
            if let Some(path) = output {
                std::fs::write(&path, &note)
                    .with_context(|| format!("cannot write --output {}", path.display()))?;
            }
            if json {
                let cp = checkpoint_of(&note)?;
                print(
                    true,
                    &serde_json::json!({"origin": cp.origin, "size": cp.size, "root": cp.root.to_base64(), "note": note}),
                    String::new,
                )?;
            } else {
                print!("{note}");
            }
        }
        Command::Vkey { at } => {
            let v = client()?.vkey(&at.tenant, &at.log).await?;
            print(json, &serde_json::json!({"verifier_key": v}), || v.clone())?;
        }
        Command::Proof(ProofCommand::Inclusion { at, index, size }) => {
            let p = client()?
                .inclusion_proof(&at.tenant, &at.log, index, size)
                .await?;
            print(json, &p, || {
                format!(
                    "index {} size {} leaf {}\n{}",
                    p.index,
                    p.size,
                    p.leaf_hash,
                    p.hashes.join("\n")
                )
            })?;
        }
        Command::Proof(ProofCommand::Consistency { at, from, to }) => {
            let p = client()?
                .consistency_proof(&at.tenant, &at.log, from, to)
                .await?;
            print(json, &p, || {
                format!("from {} to {}\n{}", p.from, p.to, p.hashes.join("\n"))
            })?;
        }
        Command::Proof(ProofCommand::Tlog { at, index, output }) => {
            let p = client()?.tlog_proof(&at.tenant, &at.log, index).await?;
            if let Some(path) = &output {
                std::fs::write(path, &p)
                    .with_context(|| format!("cannot write --output {}", path.display()))?;
            }
            if json {
                print(
                    true,
                    &serde_json::json!({"index": index, "tlog_proof": p}),
                    String::new,
                )?;
            } else if output.is_none() {
                print!("{p}");
            }
        }
        Command::Export {
            at,
            pack,
            output,
            endpoint,
        } => {
            let location =
                pack_objects::Location::parse(&format!("--output {}", output.display()), &output)?;
            if pack.selected() {
                return match location {
                    Some(l) => {
                        pack_objects::export(&client()?, &at.tenant, pack, l, &endpoint, json).await
                    }
                    None => pack::export(&client()?, &at.tenant, pack, &output, json).await,
                };
            }
            if location.is_some() {
                bail!(
                    "--output {}: object storage takes evidence packs (--model, --request-id, --entry, --since); write a log export to a local file",
                    output.display()
                );
            }
            if !pack.vkeys.vkeys.is_empty() {
                bail!(
                    "--vkey applies to evidence packs (--model, --request-id, --entry, --since); a log export is checked later with `custody verify log --vkey`"
                );
            }
            export(&client()?, &at, &output, json).await?
        }
        Command::Model(c) => return model::run(c, &cli.server, json).await,
        Command::Key(c) => return keys::run(c, &cli.server, json).await,
        Command::Approve(a) => return govern::approve(a, &cli.server, json).await,
        Command::Promote(a) => return govern::promote(a, &cli.server, json).await,
        Command::Rollback(a) => return govern::rollback(a, &cli.server, json).await,
        Command::Trace(a) => return audit::trace(a, &cli.server, json).await,
        Command::Served(a) => return audit::served(a, &cli.server, json).await,
        Command::History(a) => return audit::history(a, &cli.server, json).await,
        Command::Admit(a) => return audit::admit(a, &cli.server, json).await,
        Command::Verify(VerifyArgs { deep, .. }) if deep.deep => {
            return integrity::deep(deep, client, json).await;
        }
        Command::Witness(a) => return integrity::witness(a, &client()?, json).await,
        Command::Monitor(a) => return monitor::run(a, &cli.server, json).await,
        Command::RotateKey { tenant, log } => {
            let r = client()?.rotate_key(&tenant, &log).await?;
            print(json, &r, || {
                format!(
                    "rotated {tenant}/{}: announced at index {} under the old key\nnew verifier key (pin it): {}",
                    r.log, r.index, r.new_verifier_key
                )
            })?;
        }
        Command::Drift(a) => return drift::run(a, &client()?, json).await,
        Command::Verify(VerifyArgs {
            command: None,
            pack: Some(dir),
            vkeys,
            endpoint,
            ..
        }) => {
            let location = pack_objects::Location::parse(&dir.display().to_string(), &dir)?;
            let pinned = proofs::read_vkeys(&vkeys.vkeys)?;
            let r = match location {
                Some(l) => pack_objects::verify(l, &endpoint, &pinned).await?,
                None => pack::verify(&dir, &pinned)?,
            };
            print(json, &r, || r.text())?;
            return Ok(if r.ok { 0 } else { 2 });
        }
        Command::Verify(VerifyArgs {
            command: None,
            pack: None,
            ..
        }) => bail!(
            "say what to verify: a pack directory (`custody verify DIR`), `custody verify entry`, `custody verify log`, or `custody verify --deep`"
        ),
        Command::Verify(VerifyArgs {
            command: Some(VerifyCommand::Entry { vkey, proof, entry }),
            ..
        }) => {
            let vkey = verify::read_vkey(&vkey)?;
            let proof_text = std::fs::read_to_string(&proof)
                .with_context(|| format!("cannot read --proof {}", proof.display()))?;
            let entry_bytes = std::fs::read(&entry)
                .with_context(|| format!("cannot read --entry {}", entry.display()))?;
            let r = verify::verify_entry(&entry_bytes, &proof_text, &vkey)?;
            print(json, &r, || {
                format!(
                    "OK: entry {} of {} is in the tree of size {} signed by {}{}",
                    r.index,
                    r.origin,
                    r.checkpoint_size,
                    vkey,
                    if r.payload_checked {
                        "; payload matches its commitment"
                    } else {
                        ""
                    }
                )
            })?;
        }
        Command::Verify(VerifyArgs {
            command:
                Some(VerifyCommand::Log {
                    vkey,
                    export,
                    checkpoints,
                }),
            ..
        }) => {
            let vkey = verify::read_vkey(&vkey)?;
            let saved = checkpoints
                .iter()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read --checkpoint {}", p.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let file = std::fs::File::open(&export)
                .with_context(|| format!("cannot read --export {}", export.display()))?;
            let r = verify::verify_log(BufReader::new(file), &vkey, &saved)?;
            print(json, &r, || {
                let mut s = if r.ok {
                    format!(
                        "OK: {} entries of {} re-derived; root {} matches the signed checkpoint",
                        r.size, r.origin, r.root
                    )
                } else {
                    format!("FAILED: {} problem(s) in {}", r.problems.len(), r.origin)
                };
                for size in &r.consistent_with {
                    s.push_str(&format!(
                        "\nOK: consistent with the saved checkpoint of size {size}"
                    ));
                }
                for p in &r.problems {
                    match p.index {
                        Some(i) => s.push_str(&format!("\nentry {i}: {}", p.message)),
                        None => s.push_str(&format!("\n{}", p.message)),
                    }
                }
                s
            })?;
            return Ok(if r.ok { 0 } else { 2 });
        }
    }
    Ok(0)
}

fn open_input(file: &Option<PathBuf>) -> anyhow::Result<(Box<dyn Read>, Option<u64>)> {
    match file {
        None => Ok((Box::new(std::io::stdin()), None)),
        Some(p) if p.as_os_str() == "-" => Ok((Box::new(std::io::stdin()), None)),
        Some(p) => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
            let len = f.metadata().ok().map(|m| m.len());
            Ok((Box::new(f), len))
        }
    }
}

/// Validates every entry locally before anything is sent, so a bad line in a bulk file writes
/// nothing at all.
fn validate(values: &[Value], line_numbers: &[usize]) -> anyhow::Result<()> {
    for (v, line) in values.iter().zip(line_numbers) {
        if let Err(e) = submit::check_locally(v) {
            bail!("line {line}: {e}");
        }
    }
    Ok(())
}

async fn append(
    client: &Client,
    at: &LogArgs,
    file: Option<PathBuf>,
    ndjson: bool,
    batch: usize,
    json: bool,
) -> anyhow::Result<()> {
    let ndjson = ndjson
        || file
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "ndjson" || e == "jsonl"));
    let (mut input, len) = open_input(&file)?;
    if !ndjson {
        let mut bytes = Vec::new();
        input
            .read_to_end(&mut bytes)
            .context("cannot read the input")?;
        let value = jcs::parse_strict(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "input is not one JSON entry or array ({e}); use --ndjson for one entry per line"
            )
        })?;
        match value {
            Value::Array(items) => {
                validate(&items, &(1..=items.len()).collect::<Vec<_>>()).map_err(|e| {
                    anyhow::anyhow!("entry {}", e.to_string().trim_start_matches("line "))
                })?;
                let r = client.append_all(&at.tenant, &at.log, &items).await?;
                print(json, &r, || appended_summary(&r))?;
            }
            v => {
                validate(std::slice::from_ref(&v), &[1]).map_err(|e| {
                    anyhow::anyhow!("{}", e.to_string().trim_start_matches("line 1: "))
                })?;
                let r = client.append(&at.tenant, &at.log, &v).await?;
                print(json, &r, || {
                    format!(
                        "appended index {} id {} leaf {} (covered by checkpoint size {}{})",
                        r.index,
                        r.id,
                        r.leaf_hash,
                        r.checkpoint_size,
                        if r.existing { ", already present" } else { "" }
                    )
                })?;
            }
        }
        return Ok(());
    }

    let mut values = Vec::new();
    let mut line_numbers = Vec::new();
    for (n, line) in BufReader::new(input).lines().enumerate() {
        let line = line.context("cannot read the input")?;
        if line.trim().is_empty() {
            continue;
        }
        let v = jcs::parse_strict(line.as_bytes())
            .map_err(|e| anyhow::anyhow!("line {}: {e}", n + 1))?;
        values.push(v);
        line_numbers.push(n + 1);
    }
    if values.is_empty() {
        bail!("no entries in the input");
    }
    validate(&values, &line_numbers)?;
    let _ = len;
    let bar = ProgressBar::new(values.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} entries {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut results = Vec::with_capacity(values.len());
    let mut checkpoint_size = 0;
    for chunk in values.chunks(batch.max(1)) {
        let mut body = Vec::new();
        for v in chunk {
            serde_json::to_writer(&mut body, v)?;
            body.push(b'\n');
        }
        let r = client
            .append_ndjson(&at.tenant, &at.log, body)
            .await
            .with_context(|| {
                format!(
                    "after {} entries were appended, the next request failed",
                    results.len()
                )
            })?;
        checkpoint_size = r.checkpoint_size;
        bar.inc(r.results.len() as u64);
        results.extend(r.results);
    }
    bar.finish_and_clear();
    let summary = custody_api::AppendResults {
        results,
        checkpoint_size,
    };
    if json {
        let mut out = std::io::stdout().lock();
        for r in &summary.results {
            serde_json::to_writer(&mut out, r)?;
            out.write_all(b"\n")?;
        }
    } else {
        println!("{}", appended_summary(&summary));
    }
    Ok(())
}

/// The checkpoint inside a signed note the server sent. Unverified: for display and for naming
/// an export; `custody verify` checks the signature with the pinned key.
fn checkpoint_of(note: &str) -> anyhow::Result<custody_core::checkpoint::Checkpoint> {
    custody_core::note::Note::parse(note)
        .map_err(anyhow::Error::from)
        .and_then(|n| Ok(custody_core::checkpoint::Checkpoint::parse(&n.text)?))
        .map_err(|e| anyhow::anyhow!("server sent a malformed checkpoint: {e}"))
}

/// One line saying what a multi-entry append did.
fn appended_summary(r: &custody_api::AppendResults) -> String {
    format!(
        "appended {} entries (indexes {}..={}), covered by checkpoint size {}",
        r.results.len(),
        r.results.first().map_or(0, |x| x.index),
        r.results.last().map_or(0, |x| x.index),
        r.checkpoint_size
    )
}

async fn list(client: &Client, args: ListArgs, json: bool) -> anyhow::Result<()> {
    let mut q = ListQuery {
        entry_type: args.entry_type,
        actor: args.actor,
        subject: args.subject,
        related: args.related,
        since: args.since,
        until: args.until,
        cursor: args.cursor,
        limit: Some(args.limit),
    };
    let mut out = std::io::stdout().lock();
    loop {
        let page = client.list(&args.at.tenant, &args.at.log, &q).await?;
        for e in &page.entries {
            if json {
                serde_json::to_writer(&mut out, e)?;
                out.write_all(b"\n")?;
            } else {
                let t = e
                    .envelope
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let time = e
                    .envelope
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let subject = e
                    .envelope
                    .get("subject")
                    .map(|s| {
                        format!(
                            "{}:{}",
                            s["kind"].as_str().unwrap_or(""),
                            s["id"].as_str().unwrap_or("")
                        )
                    })
                    .unwrap_or_default();
                writeln!(out, "{:>8}  {time}  {t:<32} {subject}", e.index)?;
            }
        }
        match page.next_cursor {
            Some(c) if args.all => q.cursor = Some(c),
            Some(c) => {
                if !json {
                    writeln!(out, "more: --cursor {c} (or --all)")?;
                }
                break;
            }
            None => break,
        }
    }
    Ok(())
}

async fn export(client: &Client, at: &LogArgs, output: &PathBuf, json: bool) -> anyhow::Result<()> {
    let note = client.checkpoint(&at.tenant, &at.log).await?;
    let vkey = client.vkey(&at.tenant, &at.log).await?;
    let cp = checkpoint_of(&note)?;
    let tmp = output.with_extension("partial");
    let file = std::fs::File::create(&tmp)
        .with_context(|| format!("cannot write --output {}", output.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let header = verify::ExportHeader {
        format: verify::EXPORT_FORMAT.into(),
        origin: cp.origin.clone(),
        verifier_key: vkey,
        checkpoint: note,
    };
    serde_json::to_writer(&mut w, &header)?;
    w.write_all(b"\n")?;
    let bar = ProgressBar::new(cp.size);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} leaves {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut from = 0;
    while from < cp.size {
        let to = (from + 10_000).min(cp.size);
        for leaf in client.export(&at.tenant, &at.log, from, to).await? {
            serde_json::to_writer(&mut w, &leaf)?;
            w.write_all(b"\n")?;
        }
        bar.set_position(to);
        from = to;
    }
    bar.finish_and_clear();
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, output)?;
    print(
        json,
        &serde_json::json!({"origin": cp.origin, "size": cp.size, "file": output}),
        || {
            format!(
                "exported {} entries of {} to {}",
                cp.size,
                cp.origin,
                output.display()
            )
        },
    )
}
