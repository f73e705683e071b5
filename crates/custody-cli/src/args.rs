//! The first stage of reading the command line: every flag as clap parses it, plain values
//! with no meaning checked yet. [`crate::settings`] turns the global flags into checked
//! settings; each command family's own flags sit in its module under [`crate::commands`], the
//! flags several families share in [`crate::shared_flags`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::shared_flags::GlobalFlags;

use crate::commands::{
    append, audit, drift, erasure, export, govern, integrity, keys, log, model, monitor,
    principals, serve, tenant, verify,
};

/// The whole command line: the global flags, then one command.
#[derive(Parser)]
#[command(
    name = "custody",
    version,
    about = "A verifiable ledger for ML governance evidence",
    after_help = "Exit codes: 0 success; 1 error; 2 bad usage or a failed offline verification; 3 refused by the gate (promote, rollback), not admitted (admit), or a checkpoint not signed by the pinned key (monitor)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// Every command, each with the flags of its family.
#[derive(Subcommand)]
pub enum Command {
    /// Run the server (embedded SQLite store by default).
    Serve(ServeArgs),
    /// Run the server with a demo evidence chain recorded in tenant `demo` (datasets, runs,
    /// three model versions, signed approvals, a refused promotion, a bad deploy, an incident,
    /// a rollback, thousands of inferences), print one inference's proven trace, keep serving.
    Demo(DemoArgs),
    /// Create or list tenants.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
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
    RotateKey(log::RotateKeyArgs),
    /// Set or apply the tenant's payload retention policy.
    #[command(subcommand)]
    Retention(erasure::RetentionCommand),
    /// Erase every payload naming a data subject (a data-subject request), recording each
    /// erasure with its legal basis. Envelopes and proofs stay valid.
    Erase(erasure::EraseArgs),
    /// List a tenant's logs with origin, size and verifier key.
    Logs(log::LogsArgs),
    /// Append entries from a file or stdin: one JSON object, a JSON array (atomic) or NDJSON.
    Append(append::AppendArgs),
    /// Show one entry.
    Get(log::GetArgs),
    /// List entries matching filters.
    List(log::ListArgs),
    /// Print the latest signed checkpoint (byte-exact).
    Checkpoint(log::CheckpointArgs),
    /// Print the log's verifier key (pin it).
    Vkey(log::VerifierKeyArgs),
    /// Fetch proofs.
    #[command(subcommand)]
    Proof(log::ProofCommand),
    /// Export a whole log (raw leaves + signed checkpoint) to a file, or with --model,
    /// --request-id, --entry or --since/--until an evidence pack to a directory; both are for
    /// offline verification.
    Export(export::ExportArgs),
    /// Verify offline: an evidence pack directory, one entry, or an exported log.
    Verify(verify::VerifyArgs),
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

impl Command {
    /// Whether the command runs a server, which logs more than a client command.
    pub fn serves(&self) -> bool {
        matches!(self, Command::Serve(_) | Command::Demo(_))
    }
}

/// Options of `custody serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Data directory: database and log signing keys. Created if missing.
    #[arg(long, env = "CUSTODY_DATA_DIR", default_value = "./custody-data")]
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CUSTODY_LISTEN", default_value = "127.0.0.1:7878")]
    pub listen: String,
    /// Server name: the first part of every log origin.
    #[arg(long, env = "CUSTODY_SERVER_NAME", default_value = "custody.local")]
    pub server_name: String,
    /// The database: postgres://USER:PASSWORD@HOST:PORT/DATABASE for PostgreSQL (several
    /// servers may share it), or sqlite:PATH; default <data-dir>/custody.db.
    #[arg(long, env = "CUSTODY_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where the logs' signing keys are kept (0600 files); default <data-dir>/keys.
    /// Servers sharing a PostgreSQL database must share this directory.
    #[arg(long, env = "CUSTODY_KEY_DIR")]
    pub key_dir: Option<PathBuf>,
    /// On first start, the bootstrap administrator's token: read from this file if it
    /// exists, otherwise generated and written to it (mode 0600). Without it, a generated
    /// token is printed once on stderr.
    #[arg(long, env = "CUSTODY_BOOTSTRAP_TOKEN_FILE")]
    pub bootstrap_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub limits: serve::Limits,
}

/// Options of `custody demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Data directory, as for `serve`.
    #[arg(long, env = "CUSTODY_DATA_DIR", default_value = "./custody-data")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "CUSTODY_LISTEN", default_value = "127.0.0.1:7878")]
    pub listen: String,
    /// Server name: the first part of every log origin.
    #[arg(long, env = "CUSTODY_SERVER_NAME", default_value = "custody.local")]
    pub server_name: String,
}
