//! `custody verify`: offline checks of an evidence pack (a directory, or one in object
//! storage), of one entry against its tlog-proof, and of an exported log; `--deep` hands over
//! to [`integrity::deep`]. The checks are `custody-verify`'s; this module reads the files the
//! flags name and prints the reports. Exit code 2 when a check fails.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use custody_verify::entry::verify_entry;
use custody_verify::log::verify_log;

use crate::commands::{integrity, pack_objects};
use crate::objects;
use crate::output::print;
use crate::pins;
use crate::settings::Settings;
use crate::shared_flags::VkeyArgs;

/// Options of `custody verify`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct VerifyArgs {
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
    vkeys: VkeyArgs,
    #[command(flatten)]
    endpoint: objects::EndpointArg,
    #[command(flatten)]
    deep: integrity::DeepArgs,
}

/// `custody verify entry|log`.
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

/// Runs `custody verify`; returns 0 when everything verified, 2 when a check failed.
pub async fn run(args: VerifyArgs, settings: &Settings) -> anyhow::Result<i32> {
    if args.deep.deep {
        return integrity::deep(args.deep, settings).await;
    }
    match (args.command, args.pack) {
        (Some(VerifyCommand::Entry { vkey, proof, entry }), _) => {
            verify_one_entry(&vkey, &proof, &entry, settings.json)
        }
        (
            Some(VerifyCommand::Log {
                vkey,
                export,
                checkpoints,
            }),
            _,
        ) => verify_exported_log(&vkey, &export, &checkpoints, settings.json),
        (None, Some(dir)) => verify_pack(dir, &args.vkeys, &args.endpoint, settings.json).await,
        (None, None) => bail!(
            "say what to verify: a pack directory (`custody verify DIR`), `custody verify entry`, `custody verify log`, or `custody verify --deep`"
        ),
    }
}

/// `custody verify DIR` (or an object storage URL).
async fn verify_pack(
    dir: PathBuf,
    vkeys: &VkeyArgs,
    endpoint: &objects::EndpointArg,
    json: bool,
) -> anyhow::Result<i32> {
    let location = pack_objects::Location::parse(&dir.display().to_string(), &dir)?;
    let pinned = pins::read_vkeys(&vkeys.vkeys)?;
    let r = match location {
        Some(l) => pack_objects::verify(l, endpoint, &pinned).await?,
        None => custody_verify::pack::verify(&dir, &pinned)?,
    };
    print(json, &r, || r.text())?;
    Ok(if r.ok { 0 } else { 2 })
}

/// `custody verify entry`.
fn verify_one_entry(vkey: &str, proof: &Path, entry: &Path, json: bool) -> anyhow::Result<i32> {
    let vkey = pins::read_vkey(vkey)?;
    let proof_text = std::fs::read_to_string(proof)
        .with_context(|| format!("cannot read --proof {}", proof.display()))?;
    let entry_bytes =
        std::fs::read(entry).with_context(|| format!("cannot read --entry {}", entry.display()))?;
    let r = verify_entry(&entry_bytes, &proof_text, &vkey)?;
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
    Ok(0)
}

/// `custody verify log`.
fn verify_exported_log(
    vkey: &str,
    export: &Path,
    checkpoints: &[PathBuf],
    json: bool,
) -> anyhow::Result<i32> {
    let vkey = pins::read_vkey(vkey)?;
    let saved = checkpoints
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read --checkpoint {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let file = std::fs::File::open(export)
        .with_context(|| format!("cannot read --export {}", export.display()))?;
    let r = verify_log(BufReader::new(file), &vkey, &saved)?;
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
    Ok(if r.ok { 0 } else { 2 })
}
