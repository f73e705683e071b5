//! Flags that more than one command reads: the global ones (server, token, purpose, output),
//! the tenant or log a command acts on, and the verifier keys a reader pins. Part of the first stage of reading the command line
//! ([`crate::args`]); the command modules and the whole command tree both use them, so they sit
//! below both.

use std::path::PathBuf;

use clap::Args;

/// Where client commands connect when neither `--server` nor `CUSTODY_SERVER` says.
const DEFAULT_SERVER: &str = "http://127.0.0.1:7878";

/// The flags every command takes, before or after its name; [`crate::settings`] checks them.
#[derive(Args)]
pub struct GlobalFlags {
    /// Server to talk to.
    #[arg(long, global = true, env = "CUSTODY_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// API token (cst_...). Prefer the environment variable: a flag shows in `ps`.
    #[arg(long, global = true, env = "CUSTODY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Why you read: recorded with every read in the tenant's access log, and required for
    /// payloads and evidence packs.
    #[arg(long, global = true, env = "CUSTODY_PURPOSE")]
    pub purpose: Option<String>,
    /// A PEM certificate to trust for an https:// server (its CA, or its self-signed
    /// certificate).
    #[arg(long, global = true, env = "CUSTODY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// `--tenant`, for commands that act on one tenant.
#[derive(Args, Clone)]
pub struct TenantArg {
    /// Tenant name.
    #[arg(long, short, env = "CUSTODY_TENANT")]
    pub tenant: String,
}

/// `--tenant` and `--log`, for commands that act on one log.
#[derive(Args, Clone)]
pub struct LogArgs {
    /// Tenant name.
    #[arg(long, short, env = "CUSTODY_TENANT")]
    pub tenant: String,
    /// Log: governance, inference or access.
    #[arg(long, short, default_value = "governance")]
    pub log: String,
}

/// Pinned verifier keys for read commands.
#[derive(Args, Clone, Default)]
pub struct VkeyArgs {
    /// A log's verifier key (or a file holding it) to check checkpoints with; repeat for each
    /// log (governance, inference). Without it the keys that came with the answer (or pack)
    /// are used, which shows consistency, not who signed.
    #[arg(long = "vkey", value_name = "VKEY_OR_FILE")]
    pub vkeys: Vec<String>,
}
