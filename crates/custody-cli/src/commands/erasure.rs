//! `custody erase` and `custody retention`: payload erasure for data-subject requests and by
//! retention policy.

use std::io::Read;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use custody_api as api;
use serde_json::json;

use crate::output::print;
use crate::settings::Settings;
use crate::submit::{self, Outcome};

/// Retention commands.
#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Set the tenant's retention policy (recorded as `retention.updated`; admin only).
    Set {
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
        /// Days a payload is kept when its type is not listed (default seven years).
        #[arg(long, default_value_t = 2555)]
        default_days: u32,
        /// `TYPE=DAYS` for one entry type, e.g. inference.recorded=400. Repeat for several.
        #[arg(long = "type")]
        types: Vec<String>,
    },
    /// Erase the payloads older than their type's retention period.
    Apply {
        /// Tenant.
        #[arg(long, short)]
        tenant: String,
        /// Why the erasure is lawful, recorded with each erasure.
        #[arg(long)]
        legal_basis: String,
        /// List what would be erased, erase nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Options of `custody erase`.
#[derive(Args)]
pub struct EraseArgs {
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
}

fn report_text(r: &api::ErasureReport) -> String {
    let verb = if r.dry_run { "would erase" } else { "erased" };
    let mut out = format!("{verb} {} payload(s)", r.erased.len());
    for e in &r.erased {
        out.push_str(&format!(
            "\n  {}#{} {} {}",
            e.log, e.index, e.entry_type, e.id
        ));
        if let Some(rec) = e.record_index {
            out.push_str(&format!("  (recorded at {}#{rec})", e.log));
        }
    }
    out
}

/// Runs a retention command.
pub async fn retention(c: RetentionCommand, settings: &Settings) -> anyhow::Result<i32> {
    let (client, json) = (&settings.client()?, settings.json);
    match c {
        RetentionCommand::Set {
            tenant,
            default_days,
            types,
        } => {
            let mut by_type = serde_json::Map::new();
            for t in &types {
                let Some((name, days)) = t.split_once('=') else {
                    bail!("--type {t:?} is not TYPE=DAYS, e.g. --type inference.recorded=400");
                };
                let days: u32 = days
                    .parse()
                    .with_context(|| format!("--type {t:?}: {days:?} is not a number of days"))?;
                by_type.insert(name.to_owned(), json!(days));
            }
            let entry = json!({
                "type": "retention.updated",
                "subject": {"kind": "policy", "id": "retention"},
                "body": {"default_days": default_days, "types": by_type},
            });
            match submit::submit(client, &tenant, &entry).await? {
                Outcome::Appended(r) => print(json, &r, || {
                    format!("retention policy set at governance index {}", r.index)
                })?,
                Outcome::Refused(p) => bail!("{}", p.detail),
            }
        }
        RetentionCommand::Apply {
            tenant,
            legal_basis,
            dry_run,
        } => {
            let r = client
                .apply_retention(
                    &tenant,
                    &api::RetentionApply {
                        legal_basis,
                        dry_run,
                    },
                )
                .await?;
            print(json, &r, || report_text(&r))?;
        }
    }
    Ok(0)
}

/// `custody erase`: a data-subject request. `subject` of `-` is read from stdin, so it stays
/// out of shell history and `ps`.
pub async fn erase(args: EraseArgs, settings: &Settings) -> anyhow::Result<i32> {
    let EraseArgs {
        tenant,
        data_subject: subject,
        legal_basis,
        reference,
        dry_run,
    } = args;
    let client = settings.client()?;
    let data_subject = if subject == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the data subject from stdin")?;
        s.trim().to_owned()
    } else {
        subject
    };
    let r = client
        .erase_subject(
            &tenant,
            &api::EraseRequest {
                data_subject,
                legal_basis,
                reference,
                dry_run,
            },
        )
        .await?;
    print(settings.json, &r, || report_text(&r))?;
    Ok(0)
}
