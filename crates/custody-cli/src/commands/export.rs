//! `custody export`: a whole log to a file (`custody verify log` checks it), or, with
//! `--model`, `--request-id`, `--entry` or `--since`, an evidence pack to a directory or to
//! object storage (`custody verify DIR` checks it).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use custody_client::Client;
use custody_verify::log::{EXPORT_FORMAT, ExportHeader};
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::log::checkpoint_of;
use crate::commands::{pack, pack_objects};
use crate::objects;
use crate::output::print;
use crate::settings::Settings;
use crate::shared_flags::LogArgs;

/// Options of `custody export`.
#[derive(Args)]
pub struct ExportArgs {
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
}

/// Runs `custody export`.
pub async fn run(args: ExportArgs, settings: &Settings) -> anyhow::Result<i32> {
    let ExportArgs {
        at,
        pack,
        output,
        endpoint,
    } = args;
    let json = settings.json;
    let location =
        pack_objects::Location::parse(&format!("--output {}", output.display()), &output)?;
    if pack.selected() {
        return match location {
            Some(l) => {
                pack_objects::export(&settings.client()?, &at.tenant, pack, l, &endpoint, json)
                    .await
            }
            None => pack::export(&settings.client()?, &at.tenant, pack, &output, json).await,
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
    export_log(&settings.client()?, &at, &output, json).await?;
    Ok(0)
}

/// Writes the whole log, raw leaves after a header holding the signed checkpoint, to
/// `output` (through a `.partial` file renamed when complete).
async fn export_log(
    client: &Client,
    at: &LogArgs,
    output: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let note = client.checkpoint(&at.tenant, &at.log).await?;
    let vkey = client.vkey(&at.tenant, &at.log).await?;
    let cp = checkpoint_of(&note)?;
    let tmp = output.with_extension("partial");
    let file = std::fs::File::create(&tmp)
        .with_context(|| format!("cannot write --output {}", output.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let header = ExportHeader {
        format: EXPORT_FORMAT.into(),
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
