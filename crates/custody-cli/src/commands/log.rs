//! Reading one log from the server: `custody logs`, `get`, `list`, `checkpoint`, `vkey` and
//! `proof`, and switching its signing key with `custody rotate-key`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use custody_client::ListQuery;
use custody_core::checkpoint::Checkpoint;
use serde_json::Value;

use crate::output::print;
use crate::settings::Settings;
use crate::shared_flags::LogArgs;

/// Options of `custody logs`.
#[derive(Args)]
pub struct LogsArgs {
    /// Tenant name.
    tenant: String,
}

/// Options of `custody get`.
#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    at: LogArgs,
    /// Entry index.
    index: u64,
}

/// Options of `custody list`.
#[derive(Args)]
pub struct ListArgs {
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

/// Options of `custody checkpoint`.
#[derive(Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    at: LogArgs,
    /// Also save it to this file, to check consistency later with `custody verify log`.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Options of `custody vkey`.
#[derive(Args)]
pub struct VerifierKeyArgs {
    #[command(flatten)]
    at: LogArgs,
}

/// Options of `custody rotate-key`.
#[derive(Args)]
pub struct RotateKeyArgs {
    /// Tenant.
    #[arg(long, short)]
    tenant: String,
    /// Log: governance, inference or access.
    #[arg(long, short, default_value = "governance")]
    log: String,
}

/// `custody proof ...`.
#[derive(Subcommand)]
pub enum ProofCommand {
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

/// The checkpoint inside a signed note the server sent. Unverified: for display and for naming
/// an export; `custody verify` checks the signature with the pinned key.
pub fn checkpoint_of(note: &str) -> anyhow::Result<Checkpoint> {
    custody_core::note::Note::parse(note)
        .map_err(anyhow::Error::from)
        .and_then(|n| Ok(Checkpoint::parse(&n.text)?))
        .map_err(|e| anyhow::anyhow!("server sent a malformed checkpoint: {e}"))
}

/// Runs `custody logs`.
pub async fn logs(args: LogsArgs, settings: &Settings) -> anyhow::Result<i32> {
    let l = settings.client()?.logs(&args.tenant).await?;
    print(settings.json, &l, || {
        l.logs
            .iter()
            .map(|l| format!("{:<10} size {:<10} {}", l.name, l.size, l.verifier_key))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok(0)
}

/// Runs `custody get`.
pub async fn get(args: GetArgs, settings: &Settings) -> anyhow::Result<i32> {
    let GetArgs { at, index } = args;
    let e = settings.client()?.entry(&at.tenant, &at.log, index).await?;
    print(settings.json, &e, || {
        serde_json::to_string_pretty(&e).unwrap_or_default()
    })?;
    Ok(0)
}

/// Runs `custody list`: one line per entry (one JSON document with `--json`), page by page.
pub async fn list(args: ListArgs, settings: &Settings) -> anyhow::Result<i32> {
    let client = settings.client()?;
    let json = settings.json;
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
    Ok(0)
}

/// Runs `custody checkpoint`: the signed note byte-exact (with `--json`, also what it says).
pub async fn checkpoint(args: CheckpointArgs, settings: &Settings) -> anyhow::Result<i32> {
    let CheckpointArgs { at, output } = args;
    let note = settings.client()?.checkpoint(&at.tenant, &at.log).await?;
    if let Some(path) = output {
        std::fs::write(&path, &note)
            .with_context(|| format!("cannot write --output {}", path.display()))?;
    }
    if settings.json {
        let cp = checkpoint_of(&note)?;
        print(
            true,
            &serde_json::json!({"origin": cp.origin, "size": cp.size, "root": cp.root.to_base64(), "note": note}),
            String::new,
        )?;
    } else {
        print!("{note}");
    }
    Ok(0)
}

/// Runs `custody vkey`.
pub async fn vkey(args: VerifierKeyArgs, settings: &Settings) -> anyhow::Result<i32> {
    let at = args.at;
    let v = settings.client()?.vkey(&at.tenant, &at.log).await?;
    print(
        settings.json,
        &serde_json::json!({"verifier_key": v}),
        || v.clone(),
    )?;
    Ok(0)
}

/// Runs `custody proof ...`.
pub async fn proof(command: ProofCommand, settings: &Settings) -> anyhow::Result<i32> {
    let client = settings.client()?;
    let json = settings.json;
    match command {
        ProofCommand::Inclusion { at, index, size } => {
            let p = client
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
        ProofCommand::Consistency { at, from, to } => {
            let p = client
                .consistency_proof(&at.tenant, &at.log, from, to)
                .await?;
            print(json, &p, || {
                format!("from {} to {}\n{}", p.from, p.to, p.hashes.join("\n"))
            })?;
        }
        ProofCommand::Tlog { at, index, output } => {
            let p = client.tlog_proof(&at.tenant, &at.log, index).await?;
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
    }
    Ok(0)
}

/// Runs `custody rotate-key`: prints the new verifier key to pin.
pub async fn rotate_key(args: RotateKeyArgs, settings: &Settings) -> anyhow::Result<i32> {
    let RotateKeyArgs { tenant, log } = args;
    let r = settings.client()?.rotate_key(&tenant, &log).await?;
    print(settings.json, &r, || {
        format!(
            "rotated {tenant}/{}: announced at index {} under the old key\nnew verifier key (pin it): {}",
            r.log, r.index, r.new_verifier_key
        )
    })?;
    Ok(0)
}
