//! Evidence packs checked offline: `custody export --model|--request-id|--entry|--since`
//! writes a directory an auditor can check with standard tools alone, and [`verify`] checks
//! every piece of one, naming the exact file and check that fails.
//!
//! The directory holds the server's answer (`pack.json`) and, split out of it, the byte-exact
//! material each standard check needs: signed checkpoints, verifier keys, the RFC 8785
//! envelope bytes that are the Merkle leaves, payloads with their salts, approval DSSE
//! envelopes and approver public keys, all covered by a `SHA256SUMS` file. The file names are
//! defined here ([`entry_file`], [`payload_file`], [`approval_file`], [`key_file`]) so the
//! writer and the checker cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use custody_api::evidence::{EvidencePack, ProvenEntry};
use custody_core::dsse::DsseEnvelope;
use custody_core::intoto::{ApprovalPredicate, Statement};
use custody_core::jcs;
use custody_core::merkle;
use custody_core::note::NoteVerifier;
use custody_core::signing::PublicKey;
use custody_evidence::events::types;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::proven::{self, Keys, Target};

/// Name of the checksum file, the pack's manifest.
pub const SUMS: &str = "SHA256SUMS";

/// Why a pack could not be checked at all. What the checks find wrong with the pack is
/// reported in [`PackReport::problems`].
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The path is not a directory.
    #[error(
        "{} is not a directory: give an evidence pack directory (`custody export --model HASH -o DIR`), or use `custody verify entry` / `custody verify log`",
        .0.display()
    )]
    NotADirectory(PathBuf),
    /// The directory has no manifest.
    #[error(
        "{} has no readable {SUMS}: is it a pack written by `custody export --model|--request-id|--since`?",
        dir.display()
    )]
    NoManifest {
        /// The directory.
        dir: PathBuf,
        /// Why reading the manifest failed.
        source: std::io::Error,
    },
    /// A file or directory of the pack cannot be read.
    #[error("cannot read {}", path.display())]
    Unreadable {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `pack.json` is not an evidence pack.
    #[error("{} is not an evidence pack", path.display())]
    NotAPack {
        /// `pack.json`.
        path: PathBuf,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
}

/// Lowercase hex SHA-256, as `SHA256SUMS` lists it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn entry_type(e: &ProvenEntry) -> &str {
    e.envelope
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Where an entry's envelope (its leaf data) sits in a pack.
pub fn entry_file(log: &str, index: u64) -> String {
    format!("entries/{log}/{index}.json")
}

/// Where an entry's payload and salt sit in a pack.
pub fn payload_file(log: &str, index: u64) -> String {
    format!("payloads/{log}/{index}.json")
}

/// Where the DSSE envelope of the approval at a governance index sits in a pack.
pub fn approval_file(index: u64) -> String {
    format!("approvals/{index}.dsse.json")
}

/// Where an approver's public key sits in a pack, named by its fingerprint.
pub fn key_file(fingerprint: &str) -> String {
    format!(
        "approver-keys/{}.pem",
        fingerprint.strip_prefix("sha256:").unwrap_or(fingerprint)
    )
}

/// One failed check of a pack.
#[derive(Debug, Serialize)]
pub struct PackProblem {
    /// The file, relative to the pack.
    pub file: String,
    /// The check.
    pub check: String,
    /// What is wrong.
    pub message: String,
}

/// Outcome of `custody verify DIR`.
#[derive(Debug, Serialize)]
pub struct PackReport {
    /// True when nothing failed.
    pub ok: bool,
    /// What the pack is about.
    pub scope: String,
    /// Checks that passed, one line each.
    pub passed: Vec<String>,
    /// Things the checks could not establish.
    pub warnings: Vec<String>,
    /// Everything that failed.
    pub problems: Vec<PackProblem>,
}

impl PackReport {
    /// The report as text: OK, WARNING and FAILED lines.
    pub fn text(&self) -> String {
        let mut lines: Vec<String> = self.passed.iter().map(|l| format!("OK: {l}")).collect();
        lines.extend(self.warnings.iter().map(|w| format!("WARNING: {w}")));
        for p in &self.problems {
            lines.push(format!("FAILED: {}: {}: {}", p.file, p.check, p.message));
        }
        if !self.ok {
            lines.push(format!(
                "FAILED: {} problem(s) in the pack of {}",
                self.problems.len(),
                self.scope
            ));
        }
        lines.join("\n")
    }
}

/// Every regular file below `dir`, relative, with `/` separators.
pub fn list_files(dir: &Path) -> Result<BTreeSet<String>, PackError> {
    let mut out = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let unreadable = |source| PackError::Unreadable {
            path: d.clone(),
            source,
        };
        for item in std::fs::read_dir(&d).map_err(unreadable)? {
            let item = item.map_err(unreadable)?;
            let path = item.path();
            let kind = item.file_type().map_err(unreadable)?;
            if kind.is_dir() {
                pending.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.insert(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    Ok(out)
}

struct Checker<'a> {
    dir: &'a Path,
    problems: Vec<PackProblem>,
}

impl Checker<'_> {
    fn fail(&mut self, file: &str, check: &str, message: impl Into<String>) {
        self.problems.push(PackProblem {
            file: file.to_owned(),
            check: check.to_owned(),
            message: message.into(),
        });
    }

    /// Reads a pack file, recording a problem when it is missing.
    fn read(&mut self, file: &str, check: &str) -> Option<Vec<u8>> {
        match std::fs::read(self.dir.join(file)) {
            Ok(b) => Some(b),
            Err(e) => {
                self.fail(file, check, format!("cannot read it: {e}"));
                None
            }
        }
    }
}

/// Whether a relative name (`/` separators) stays inside the pack directory.
pub fn is_inside(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// The lines of a `SHA256SUMS` text (`sha256sum`'s format, `<sha256>  <file>`), in order:
/// `Ok((file, sha256))`, or `Err(line number)` for a line that is not one. Shared by the
/// offline check of a directory and the download of a pack from object storage.
pub fn manifest(text: &str) -> Vec<Result<(String, String), usize>> {
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            line.split_once(' ')
                .map(|(sum, name)| {
                    (
                        name.trim_start_matches([' ', '*']).to_owned(),
                        sum.to_owned(),
                    )
                })
                .ok_or(n + 1)
        })
        .collect()
}

/// Checks `SHA256SUMS` against every file; returns how many matched.
fn check_sums(c: &mut Checker<'_>) -> Result<usize, PackError> {
    let text =
        std::fs::read_to_string(c.dir.join(SUMS)).map_err(|source| PackError::NoManifest {
            dir: c.dir.to_path_buf(),
            source,
        })?;
    let mut listed = BTreeSet::new();
    let mut matched = 0;
    for (n, line) in manifest(&text).into_iter().enumerate() {
        let (name, sum) = match line {
            Ok((name, sum)) => (name, sum),
            Err(line) => {
                c.fail(
                    SUMS,
                    "format",
                    format!("line {line} is not `<sha256>  <file>`"),
                );
                continue;
            }
        };
        let name = name.as_str();
        if !is_inside(name) {
            c.fail(
                SUMS,
                "format",
                format!("line {} names {name:?}, outside the pack", n + 1),
            );
            continue;
        }
        listed.insert(name.to_owned());
        let Some(bytes) = c.read(name, SUMS) else {
            continue;
        };
        let actual = sha256_hex(&bytes);
        if actual == sum {
            matched += 1;
        } else {
            c.fail(
                name,
                SUMS,
                format!("its sha256 is {actual}, {SUMS} says {sum}"),
            );
        }
    }
    for f in list_files(c.dir)? {
        if f != SUMS && !listed.contains(&f) {
            c.fail(&f, SUMS, format!("the file is not listed in {SUMS}"));
        }
    }
    Ok(matched)
}

/// Checks every approval's DSSE envelope against the approver key its entry names; returns how
/// many verified.
fn check_approvals(c: &mut Checker<'_>, pack: &EvidencePack, warnings: &mut Vec<String>) -> usize {
    let mut ok = 0;
    let by_id: BTreeMap<&str, &ProvenEntry> = pack
        .proven
        .entries
        .iter()
        .filter_map(|e| e.envelope.get("id").and_then(Value::as_str).map(|i| (i, e)))
        .collect();
    for e in pack
        .proven
        .entries
        .iter()
        .filter(|e| entry_type(e) == types::APPROVAL)
    {
        let file = approval_file(e.index);
        let Some(payload) = &e.payload else {
            warnings.push(format!(
                "the approval at {}#{} carries no payload (erased or withheld): its signature cannot be checked",
                e.log, e.index
            ));
            continue;
        };
        let Some(bytes) = c.read(&file, "approval") else {
            continue;
        };
        let value = match jcs::parse_strict(&bytes) {
            Ok(v) => v,
            Err(err) => {
                c.fail(&file, "approval", format!("not JSON: {err}"));
                continue;
            }
        };
        if &value != payload {
            c.fail(
                &file,
                "approval",
                "differs from the entry's payload in pack.json",
            );
        }
        let envelope = match DsseEnvelope::from_json(&value) {
            Ok(env) => env,
            Err(err) => {
                c.fail(&file, "approval", format!("not a DSSE envelope: {err}"));
                continue;
            }
        };
        let body = e.envelope.get("body").cloned().unwrap_or(Value::Null);
        let field = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let fingerprint = field("key_fingerprint");
        let kf = key_file(&fingerprint);
        let key = match c.read(&kf, "approver_key").map(|b| {
            String::from_utf8(b)
                .map_err(|_| "not UTF-8 text".to_owned())
                .and_then(|t| PublicKey::from_pem(&t).map_err(|e| e.to_string()))
        }) {
            None => continue,
            Some(Err(err)) => {
                c.fail(&kf, "approver_key", err);
                continue;
            }
            Some(Ok(k)) => k,
        };
        if key.fingerprint() != fingerprint {
            c.fail(
                &kf,
                "approver_key",
                format!(
                    "the key's fingerprint is {}, but the approval names {fingerprint}",
                    key.fingerprint()
                ),
            );
            continue;
        }
        if let Some(k) = pack
            .approver_keys
            .iter()
            .find(|k| k.fingerprint == fingerprint)
            && let Some(reg) = by_id.get(k.entry.as_str())
        {
            let registered = reg
                .envelope
                .pointer("/body/public_key")
                .and_then(Value::as_str)
                .and_then(|p| PublicKey::from_pem(p).ok());
            if registered.map(|r| r.fingerprint()) != Some(fingerprint.clone()) {
                c.fail(
                    &entry_file(&reg.log, reg.index),
                    "approver_key",
                    format!("this registration does not register key {fingerprint}"),
                );
            }
        }
        if let Err(err) = envelope.verify_with(&key) {
            c.fail(
                &file,
                "dsse_signature",
                format!("DSSE signature does not verify: {err}"),
            );
            continue;
        }
        let digest = format!("sha256:{}", sha256_hex(&envelope.payload));
        if digest != field("statement_digest") {
            c.fail(
                &file,
                "statement_digest",
                format!(
                    "the signed statement hashes to {digest}, the entry body says {}",
                    field("statement_digest")
                ),
            );
            continue;
        }
        let statement = Statement::from_envelope(&envelope)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                ApprovalPredicate::from_statement(&s)
                    .map(|p| (s, p))
                    .map_err(|e| e.to_string())
            });
        let (statement, predicate) = match statement {
            Ok(sp) => sp,
            Err(err) => {
                c.fail(&file, "statement", err);
                continue;
            }
        };
        let subject = e
            .envelope
            .pointer("/subject/id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let signed = statement
            .subject
            .first()
            .and_then(|s| s.digest.get("sha256"))
            .map(|h| format!("sha256:{h}"))
            .unwrap_or_default();
        if signed != subject
            || predicate.decision.as_str() != field("decision")
            || predicate.target != field("target")
        {
            c.fail(
                &file,
                "statement",
                format!(
                    "the signed statement ({} {} for {}) is not what the entry records ({} {} for {})",
                    predicate.decision.as_str(),
                    signed,
                    predicate.target,
                    field("decision"),
                    subject,
                    field("target")
                ),
            );
            continue;
        }
        ok += 1;
    }
    ok
}

/// Checks the pack in `dir` offline, with the `pinned` verifier keys (or, without any, the
/// pack's own keys, which the report warns about).
pub fn verify(dir: &Path, pinned: &[NoteVerifier]) -> Result<PackReport, PackError> {
    if !dir.is_dir() {
        return Err(PackError::NotADirectory(dir.to_path_buf()));
    }
    let mut c = Checker {
        dir,
        problems: Vec::new(),
    };
    let mut passed = Vec::new();
    let mut warnings = Vec::new();

    let matched = check_sums(&mut c)?;
    let pack_json = dir.join("pack.json");
    let pack_bytes = std::fs::read(&pack_json).map_err(|source| PackError::Unreadable {
        path: pack_json.clone(),
        source,
    })?;
    let pack: EvidencePack =
        serde_json::from_slice(&pack_bytes).map_err(|source| PackError::NotAPack {
            path: pack_json,
            source,
        })?;

    // Keys: pinned by the user, or the pack's own.
    let mut own = BTreeMap::new();
    for lc in &pack.proven.checkpoints {
        let file = format!("checkpoints/{}.checkpoint", lc.log);
        if let Some(b) = c.read(&file, "checkpoint")
            && b != lc.checkpoint.as_bytes()
        {
            c.fail(
                &file,
                "checkpoint",
                "differs from the checkpoint in pack.json",
            );
        }
        if pinned.is_empty() {
            let kf = format!("keys/{}.vkey", lc.log);
            let Some(b) = c.read(&kf, "vkey") else {
                continue;
            };
            let text = String::from_utf8_lossy(&b).trim().to_owned();
            if text != lc.verifier_key.trim() {
                c.fail(&kf, "vkey", "differs from the verifier key in pack.json");
            }
            match NoteVerifier::parse(&text) {
                Ok(v) => {
                    own.insert(lc.log.clone(), v);
                }
                Err(e) => c.fail(&kf, "vkey", format!("not a verifier key: {e}")),
            }
        }
    }
    let keys = if pinned.is_empty() {
        warnings.push(
            "checkpoints were checked with the pack's own keys/ files, which prove nothing about who signed them: pin each log's key with --vkey (from `custody vkey` or a source you trust)".into(),
        );
        Keys::ByLog(&own)
    } else {
        Keys::Pinned(pinned)
    };

    // Entry files are the leaf data.
    let mut known_entries = BTreeSet::new();
    for e in &pack.proven.entries {
        let file = entry_file(&e.log, e.index);
        known_entries.insert(file.clone());
        let Some(bytes) = c.read(&file, "leaf_hash") else {
            continue;
        };
        let leaf = merkle::leaf_hash(&bytes).to_hex();
        if leaf != e.leaf_hash {
            c.fail(
                &file,
                "leaf_hash",
                format!(
                    "SHA-256(0x00 || file) is {leaf}, but the leaf hash in pack.json is {}",
                    e.leaf_hash
                ),
            );
        } else if proven::leaf_data(e).ok().as_deref() != Some(bytes.as_slice()) {
            c.fail(
                &file,
                "envelope",
                "is not the RFC 8785 form of the envelope in pack.json",
            );
        }
        if e.payload.is_some() {
            let pf = payload_file(&e.log, e.index);
            if let Some(b) = c.read(&pf, "payload_commitment") {
                match jcs::parse_strict(&b) {
                    Ok(v) => {
                        let mut from_file = e.clone();
                        from_file.payload = v.get("payload").cloned();
                        from_file.salt = v.get("salt").and_then(Value::as_str).map(str::to_owned);
                        match proven::check_payload(&from_file) {
                            Some(Ok(())) => {}
                            Some(Err(m)) => c.fail(&pf, "payload_commitment", m),
                            None => c.fail(&pf, "payload_commitment", "has no payload"),
                        }
                    }
                    Err(err) => c.fail(&pf, "payload_commitment", format!("not JSON: {err}")),
                }
            }
        }
    }
    for f in list_files(dir)? {
        if f.starts_with("entries/") && !known_entries.contains(&f) {
            c.fail(&f, "envelope", "pack.json has no such entry");
        }
    }

    // Checkpoint signatures, leaf hashes and inclusion proofs of pack.json.
    let report = proven::check(&pack.proven, keys, Some(&pack.tenant));
    for f in &report.failures {
        let file = match (&f.target, f.check) {
            (Target::Checkpoint { log }, _) => format!("checkpoints/{log}.checkpoint"),
            (Target::Entry { log, index }, "payload_commitment") => payload_file(log, *index),
            (Target::Entry { log, index }, _) => entry_file(log, *index),
        };
        c.fail(&file, f.check, f.message.clone());
    }
    let approvals = check_approvals(&mut c, &pack, &mut warnings);

    let failed = |checks: &[&str]| {
        c.problems
            .iter()
            .any(|p| checks.contains(&p.check.as_str()))
    };
    if !failed(&[SUMS, "format"]) {
        passed.push(format!("{SUMS}: all {matched} files match"));
    }
    if !failed(&[
        "leaf_hash",
        "envelope",
        "inclusion",
        "signature",
        "checkpoint",
        "vkey",
    ]) {
        let logs: Vec<String> = report
            .checkpoints
            .iter()
            .map(|(l, s)| format!("{l}@{s}"))
            .collect();
        passed.push(format!(
            "{} entries re-derived from entries/ and proven against the signed checkpoints {} ({})",
            report.entries,
            logs.join(", "),
            if pinned.is_empty() {
                "keys from the pack"
            } else {
                "pinned keys"
            }
        ));
    }
    if !failed(&["payload_commitment"]) {
        passed.push(format!(
            "{} payload(s) open their commitments",
            report.payloads
        ));
    }
    if !failed(&[
        "approval",
        "approver_key",
        "statement",
        "statement_digest",
        "dsse_signature",
    ]) {
        passed.push(format!(
            "{approvals} approval(s) signed by the approver key their entry names"
        ));
    }
    if pack.truncated {
        warnings.push("the server truncated this pack at its size limit".into());
    }
    Ok(PackReport {
        ok: c.problems.is_empty(),
        scope: pack.scope.clone(),
        passed,
        warnings,
        problems: c.problems,
    })
}
