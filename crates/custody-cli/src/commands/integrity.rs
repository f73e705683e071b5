//! `custody verify --deep` and `custody witness`: tamper evidence beyond a single proof.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use custody_api as api;
use custody_core::checkpoint::SignedCheckpoint;
use custody_core::envelope::{LogName, TenantName};
use custody_core::merkle::{Hash, verify_consistency};
use custody_store::LedgerReader;
use custody_store_objects::{PayloadObjects, WithPayloadObjects};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::print;
use crate::pins;
use crate::settings::Settings;

/// Options of `custody verify --deep`.
#[derive(Args, Clone, Default)]
pub struct DeepArgs {
    /// Recompute every leaf and tree hash from storage and check every stored checkpoint.
    #[arg(long)]
    pub deep: bool,
    /// With --deep: read the store in this data directory directly (offline; no server or
    /// token needed). Without it, the server reconciles and reports.
    #[arg(long, requires = "deep")]
    pub data_dir: Option<PathBuf>,
    /// With --deep: only this tenant (required without --data-dir).
    #[arg(long, short = 't', requires = "deep")]
    pub tenant: Option<String>,
    /// With --data-dir: the object store the server keeps large payloads in (its
    /// --payload-store), so their commitments are recomputed too.
    #[arg(long, requires = "data_dir", env = "CUSTODY_PAYLOAD_STORE")]
    pub payload_store: Option<String>,
}

fn report_text(tenant: &str, r: &api::ReconcileReport) -> String {
    let mut out = String::new();
    for l in &r.logs {
        let status = if l.problem_count == 0 {
            "OK".to_string()
        } else {
            format!("{} PROBLEM(S)", l.problem_count)
        };
        out.push_str(&format!(
            "{status}: {tenant}/{}: {} entries, {} tree nodes, {} checkpoints, {} payload commitments recomputed\n",
            l.log, l.entries, l.nodes, l.checkpoints, l.payloads
        ));
        for p in &l.problems {
            out.push_str(&format!("  {p}\n"));
        }
    }
    out.trim_end().to_owned()
}

/// Runs the deep verification; returns the exit code (0 clean, 2 problems).
pub async fn deep(args: DeepArgs, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    let reports: Vec<(String, api::ReconcileReport)> = match &args.data_dir {
        Some(dir) => {
            let objects = args
                .payload_store
                .as_deref()
                .map(|url| PayloadObjects::from_url(url, usize::MAX))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--payload-store: {e}"))?;
            offline(dir, args.tenant.as_deref(), objects, json).await?
        }
        None => {
            let Some(tenant) = args.tenant.clone() else {
                bail!(
                    "--deep needs --tenant (the server checks one tenant) or --data-dir DIR (offline, every tenant)"
                );
            };
            let r = settings.client()?.reconcile(&tenant).await?;
            vec![(tenant, r)]
        }
    };
    let ok = reports.iter().all(|(_, r)| r.ok);
    let all: Vec<&api::ReconcileReport> = reports.iter().map(|(_, r)| r).collect();
    print(json, &all, || {
        reports
            .iter()
            .map(|(t, r)| report_text(t, r))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok(if ok { 0 } else { 2 })
}

/// Deep-verifies the embedded store of a data directory, opened read-only: no migration, no
/// write, no key directory, so auditing a store cannot change it.
async fn offline(
    dir: &Path,
    only: Option<&str>,
    objects: Option<PayloadObjects>,
    quiet: bool,
) -> anyhow::Result<Vec<(String, api::ReconcileReport)>> {
    let store = custody_verify::deep::open_embedded(dir)
        .await
        .context("--data-dir")?;
    let store = WithPayloadObjects::new(store, objects);
    let tenants = match only {
        Some(t) => vec![TenantName::parse(t).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?],
        None => store.tenants().await?,
    };
    let mut out = Vec::new();
    for tenant in tenants {
        let mut bar: Option<(LogName, ProgressBar)> = None;
        let audit = custody_verify::deep::audit_tenant(&store, &tenant, |log, done, total| {
            if bar.as_ref().is_none_or(|(shown, _)| *shown != log) {
                if let Some((_, done_bar)) = bar.take() {
                    done_bar.finish_and_clear();
                }
                let b = if quiet {
                    ProgressBar::hidden()
                } else {
                    ProgressBar::new(total)
                };
                b.set_style(
                    ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} entries ({eta})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.set_message(format!("{tenant}/{}", log.as_str()));
                bar = Some((log, b));
            }
            if let Some((_, b)) = &bar {
                b.set_length(total);
                b.set_position(done);
            }
        })
        .await
        .with_context(|| format!("cannot check {tenant}"))?;
        if let Some((_, b)) = bar {
            b.finish_and_clear();
        }
        out.push((tenant.to_string(), audit.into_report()));
    }
    Ok(out)
}

/// Options of `custody witness`.
#[derive(Args)]
pub struct WitnessArgs {
    /// Tenant.
    #[arg(long, short)]
    pub tenant: String,
    /// Log: governance, inference or access.
    #[arg(long, short, default_value = "governance")]
    pub log: String,
    /// A checkpoint of this log you kept (the signed note). With --update, replaced by the
    /// latest one once it is proven consistent.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Verifier key to check both checkpoints with (default: the one inside --checkpoint's
    /// log listing is NOT trusted; pass the key you pinned, or a file holding it).
    #[arg(long)]
    pub vkey: String,
    /// Replace --checkpoint with the latest checkpoint after a successful check.
    #[arg(long)]
    pub update: bool,
}

/// Runs `custody witness`: 0 consistent, 2 fork or bad proof.
pub async fn witness(a: WitnessArgs, settings: &Settings) -> anyhow::Result<i32> {
    let client = settings.client()?;
    let json = settings.json;
    let verifier = pins::read_vkey(&a.vkey)?;
    let held_text = std::fs::read_to_string(&a.checkpoint)
        .with_context(|| format!("cannot read --checkpoint {}", a.checkpoint.display()))?;
    let held = SignedCheckpoint::open(&held_text, &verifier).map_err(|e| {
        anyhow::anyhow!(
            "--checkpoint {}: not signed by --vkey: {e}",
            a.checkpoint.display()
        )
    })?;
    let answer = match client.witness(&a.tenant, &a.log, &held_text).await {
        Ok(w) => w,
        Err(e) if e.status() == Some(409) => {
            let line = e
                .problem()
                .map(|p| p.detail.clone())
                .unwrap_or_else(|| e.to_string());
            println!("FORK: {line}");
            return Ok(2);
        }
        Err(e) => return Err(e.into()),
    };
    let latest = SignedCheckpoint::open(&answer.checkpoint, &verifier).map_err(|e| {
        anyhow::anyhow!("the server's latest checkpoint is not signed by --vkey: {e}")
    })?;
    let hashes = answer
        .consistency
        .iter()
        .map(|h| Hash::from_base64(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("the server sent a malformed proof: {e}"))?;
    let (old, new) = (&held.checkpoint, &latest.checkpoint);
    let proven = if old.size == 0 {
        Ok(())
    } else {
        verify_consistency(old.size, new.size, &hashes, &old.root, &new.root)
    };
    if let Err(e) = proven {
        println!(
            "FORK: the log's checkpoint of size {} does not extend yours of size {}: {e}",
            new.size, old.size
        );
        return Ok(2);
    }
    if a.update {
        std::fs::write(&a.checkpoint, &answer.checkpoint)
            .with_context(|| format!("cannot write --checkpoint {}", a.checkpoint.display()))?;
    }
    print(json, &answer, || {
        format!(
            "consistent: {} {} -> {} (proof of {} hashes verified against both signed checkpoints){}",
            old.origin,
            old.size,
            new.size,
            hashes.len(),
            if a.update {
                "; checkpoint file updated"
            } else {
                ""
            }
        )
    })?;
    Ok(0)
}
