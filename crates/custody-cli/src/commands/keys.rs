//! `custody key`: make an approver's signing key pair locally and register its public half in
//! the governance log, so approvals signed with it count. Private keys never leave the
//! machine; they are written 0600 and never overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use custody_core::signing::{KeyAlgorithm, PublicKey, SigningKey};
use serde_json::json;

use crate::output::print;
use crate::settings::Settings;
use crate::shared_flags::TenantArg;
use crate::submit::{self, Outcome};

/// Key algorithms on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256 (needed for model_signing bundles).
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
}

impl From<Algorithm> for KeyAlgorithm {
    fn from(a: Algorithm) -> Self {
        match a {
            Algorithm::Ed25519 => KeyAlgorithm::Ed25519,
            Algorithm::EcdsaP256 => KeyAlgorithm::EcdsaP256,
        }
    }
}

/// `custody key ...`.
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Make a signing key: FILE gets the PKCS#8 PEM private key (mode 0600), FILE.pub the
    /// public key. Existing files are never overwritten.
    Generate {
        /// Signature algorithm.
        #[arg(long, value_enum, default_value = "ed25519")]
        algorithm: Algorithm,
        /// Private key file to create.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Register an approver's public key (`approver_key.registered`), so approvals it signs
    /// count.
    Register {
        #[command(flatten)]
        tenant: TenantArg,
        /// Approver principal id the key belongs to.
        #[arg(long)]
        approver: String,
        /// The public key, PEM (`FILE.pub` from `custody key generate`, or `openssl pkey
        /// -pubout`).
        #[arg(long)]
        public_key: PathBuf,
    },
}

/// Reads a private key file, naming `flag` and the file in any error.
pub fn read_signing_key(flag: &str, path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {flag} {}", path.display()))?;
    SigningKey::from_pem(&text).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))
}

/// Reads a public key file, naming `flag` and the file in any error.
pub fn read_public_key(flag: &str, path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {flag} {}", path.display()))?;
    PublicKey::from_pem(&text).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))
}

/// `FILE.pub` next to `FILE`.
fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_os_string();
    name.push(".pub");
    PathBuf::from(name)
}

fn create_new(path: &Path, mode: u32, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs a `custody key` command.
pub async fn run(command: KeyCommand, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    match command {
        KeyCommand::Generate { algorithm, output } => {
            let public = public_path(&output);
            for p in [&output, &public] {
                if p.symlink_metadata().is_ok() {
                    bail!(
                        "{} already exists; a key is never overwritten: choose another -o or remove it",
                        p.display()
                    );
                }
            }
            let key = SigningKey::generate(algorithm.into())
                .map_err(|e| anyhow::anyhow!("cannot make a key: {e}"))?;
            create_new(&output, 0o600, &key.to_pkcs8_pem())?;
            create_new(&public, 0o644, &key.public_key().to_pem())?;
            let fp = key.public_key().fingerprint();
            print(
                json,
                &json!({"private_key": output, "public_key": public, "algorithm": key.algorithm(), "fingerprint": fp}),
                || {
                    format!(
                        "wrote private key {} ({}, mode 0600)\npublic key: {}\nfingerprint: {fp}",
                        output.display(),
                        key.algorithm(),
                        public.display()
                    )
                },
            )?;
        }
        KeyCommand::Register {
            tenant,
            approver,
            public_key,
        } => {
            submit::actor("--approver", "user", &approver)?;
            let key = read_public_key("--public-key", &public_key)?;
            let fp = key.fingerprint();
            let entry = json!({
                "type": "approver_key.registered",
                "subject": {"kind": "approver", "id": approver},
                "body": {
                    "public_key": key.to_pem(),
                    "algorithm": key.algorithm(),
                    "key_fingerprint": fp,
                },
            });
            let client = settings.client()?;
            let r = match submit::submit(&client, &tenant.tenant, &entry).await? {
                Outcome::Appended(r) => r,
                Outcome::Refused(p) => {
                    print(json, &*p, || {
                        submit::refusal_text("the key registration", &p)
                    })?;
                    return Ok(submit::EXIT_REFUSED);
                }
            };
            print(
                json,
                &json!({"index": r.index, "id": r.id, "approver": approver, "fingerprint": fp, "leaf_hash": r.leaf_hash, "checkpoint_size": r.checkpoint_size}),
                || {
                    format!(
                        "registered {} key {fp} for approver {approver}: governance index {}, entry {}",
                        key.algorithm(),
                        r.index,
                        r.id
                    )
                },
            )?;
        }
    }
    Ok(0)
}
