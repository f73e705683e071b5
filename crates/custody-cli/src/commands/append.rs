//! `custody append`: entries from a file or stdin (one JSON object, a JSON array appended
//! atomically, or NDJSON sent in batches), each checked locally before anything is sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use custody_core::jcs;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::output::print;
use crate::settings::Settings;
use crate::shared_flags::LogArgs;
use crate::submit;

/// Options of `custody append`.
#[derive(Args)]
pub struct AppendArgs {
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
}

/// The input: the file, or stdin for none or `-`.
fn open_input(file: &Option<PathBuf>) -> anyhow::Result<Box<dyn Read>> {
    match file {
        None => Ok(Box::new(std::io::stdin())),
        Some(p) if p.as_os_str() == "-" => Ok(Box::new(std::io::stdin())),
        Some(p) => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
            Ok(Box::new(f))
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

/// Runs `custody append`.
pub async fn run(args: AppendArgs, settings: &Settings) -> anyhow::Result<i32> {
    let AppendArgs {
        at,
        file,
        ndjson,
        batch,
    } = args;
    let (client, json) = (settings.client()?, settings.json);
    let ndjson = ndjson
        || file
            .as_ref()
            .is_some_and(|p| p.extension().is_some_and(|e| e == "ndjson" || e == "jsonl"));
    let mut input = open_input(&file)?;
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
        return Ok(0);
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
    Ok(0)
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
