//! `custody model`: name model weights by their version hash (the OpenSSF model-signing root
//! digest), register a version in the governance log, and write a `model_signing` bundle, so
//! the evidence about a model is tied to the bytes on disk.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use custody_core::signing::KeyAlgorithm;
use custody_model::ModelDigest;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::commands::keys;
use crate::output::print;
use crate::settings::Settings;
use crate::shared_flags::TenantArg;
use crate::submit::{self, Outcome};

/// `custody model ...`.
#[derive(Subcommand)]
pub enum ModelCommand {
    /// Print a model's version hash (a file or a directory); --json prints the manifest.
    ///
    /// The hash is the OpenSSF model-signing v1.0 root digest: SHA-256 over the files'
    /// SHA-256 digests in path order (for one file, SHA-256 of its sha256sum digest).
    Hash {
        /// Model file or directory.
        path: PathBuf,
    },
    /// Hash a model and register that version (`model_version.registered`).
    Register(RegisterArgs),
    /// Sign a model with an ECDSA P-256 key as an OpenSSF model_signing bundle.
    ///
    /// Check it without custody: `model_signing verify key --signature model.sig
    /// --public_key KEY.pub PATH`.
    Bundle {
        /// Model file or directory.
        path: PathBuf,
        /// PKCS#8 PEM private key, ECDSA P-256 (`custody key generate --algorithm ecdsa-p256`).
        #[arg(long)]
        key: PathBuf,
        /// Model name in the statement (default: the path's last component, as model_signing
        /// uses).
        #[arg(long)]
        name: Option<String>,
        /// Bundle file to write, e.g. model.sig.
        #[arg(long, short)]
        output: PathBuf,
    },
}

/// `custody model register`.
#[derive(Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    tenant: TenantArg,
    /// Model file or directory.
    path: PathBuf,
    /// Model name, e.g. fraud-detector.
    #[arg(long)]
    name: String,
    /// Id of the training run that produced the weights (already recorded).
    #[arg(long)]
    run: String,
    /// The model's own version label, e.g. 3.1.0.
    #[arg(long)]
    version: Option<String>,
    /// Framework, e.g. pytorch.
    #[arg(long)]
    framework: Option<String>,
}

/// Hashes a model with a progress bar on stderr (hidden when stderr is not a terminal).
pub async fn hash(path: &Path) -> anyhow::Result<ModelDigest> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let plan = custody_model::plan(&path)
            .map_err(|e| anyhow::anyhow!("cannot hash the model: {e}"))?;
        let bar = ProgressBar::new(plan.total_bytes());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let digest = plan.hash(&mut |n| bar.inc(n));
        bar.finish_and_clear();
        digest.map_err(|e| anyhow::anyhow!("cannot hash the model: {e}"))
    })
    .await
    .context("the hashing task failed")?
}

/// Runs a `custody model` command.
pub async fn run(command: ModelCommand, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    match command {
        ModelCommand::Hash { path } => {
            let digest = hash(&path).await?;
            if json {
                print(true, &digest.manifest_json(), String::new)?;
            } else {
                println!("{}", digest.version_hash());
            }
        }
        ModelCommand::Register(args) => return register(args, settings).await,
        ModelCommand::Bundle {
            path,
            key,
            name,
            output,
        } => {
            let key = keys::read_signing_key("--key", &key)?;
            if key.algorithm() != KeyAlgorithm::EcdsaP256 {
                anyhow::bail!(
                    "--key is an {} key; model_signing key signatures use ECDSA P-256: make one with `custody key generate --algorithm ecdsa-p256`",
                    key.algorithm()
                );
            }
            let digest = hash(&path).await?;
            let name = match name {
                Some(n) => n,
                None => custody_model::hash::default_model_name(&path)
                    .map_err(|e| anyhow::anyhow!("cannot name the model: {e}; pass --name"))?,
            };
            let public = key.public_key().to_pem();
            let bundle =
                custody_model::signature_bundle(&digest, &name, &public, |pae| key.sign(pae))
                    .map_err(|e| anyhow::anyhow!("cannot make the bundle: {e}"))?;
            std::fs::write(&output, &bundle)
                .with_context(|| format!("cannot write --output {}", output.display()))?;
            print(
                json,
                &json!({"bundle": output, "name": name, "version_hash": digest.version_hash(), "key_fingerprint": key.public_key().fingerprint()}),
                || {
                    format!(
                        "wrote {}: model_signing bundle of {name} {} signed by {}\ncheck it with: model_signing verify key --signature {} --public_key PUBLIC_KEY.pem {}",
                        output.display(),
                        digest.version_hash(),
                        key.public_key().fingerprint(),
                        output.display(),
                        path.display()
                    )
                },
            )?;
        }
    }
    Ok(0)
}

async fn register(args: RegisterArgs, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    let digest = hash(&args.path).await?;
    let hash = digest.version_hash();
    let manifest = digest.manifest_json();
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!(args.name));
    body.insert("version_hash".into(), json!(hash));
    body.insert(
        "files".into(),
        manifest.get("files").cloned().unwrap_or(Value::Null),
    );
    if let Some(v) = &args.version {
        body.insert("version".into(), json!(v));
    }
    if let Some(f) = &args.framework {
        body.insert("framework".into(), json!(f));
    }
    let entry = json!({
        "type": "model_version.registered",
        "subject": {"kind": "model_version", "id": hash},
        "related": [{"kind": "training_run", "id": args.run, "rel": "produced_by"}],
        "body": body,
    });
    let client = settings.client()?;
    let r = match submit::submit(&client, &args.tenant.tenant, &entry).await? {
        Outcome::Appended(r) => r,
        Outcome::Refused(p) => {
            print(json, &*p, || submit::refusal_text("the registration", &p))?;
            return Ok(submit::EXIT_REFUSED);
        }
    };
    print(
        json,
        &json!({"index": r.index, "id": r.id, "version_hash": hash, "leaf_hash": r.leaf_hash, "checkpoint_size": r.checkpoint_size, "existing": r.existing}),
        || {
            format!(
                "registered {} {hash} ({} file{}): governance index {}, entry {}",
                args.name,
                digest.files().len(),
                if digest.files().len() == 1 { "" } else { "s" },
                r.index,
                r.id
            )
        },
    )?;
    Ok(0)
}
