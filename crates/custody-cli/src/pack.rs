//! Evidence packs on disk: `custody export --model|--request-id|--entry|--since` writes a
//! directory an auditor can check with standard tools alone, and `custody verify DIR` checks
//! every piece of one offline, naming the exact file and check that fails.
//!
//! The directory holds the server's answer (`pack.json`) and, split out of it, the byte-exact
//! material each standard check needs: signed checkpoints, verifier keys, the RFC 8785
//! envelope bytes that are the Merkle leaves, payloads with their salts, approval DSSE
//! envelopes and approver public keys, all covered by a `SHA256SUMS` file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, bail};
use clap::Args;
use custody_api::evidence::{EvidencePack, ProvenEntry};
use custody_client::{Client, PackQuery};
use custody_core::dsse::DsseEnvelope;
use custody_core::intoto::{ApprovalPredicate, Statement};
use custody_core::jcs;
use custody_core::merkle;
use custody_core::note::NoteVerifier;
use custody_core::signing::PublicKey;
use custody_evidence::events::types;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::audit::VkeyArgs;
use crate::proofs::{self, Keys, Target};
use crate::{print, submit};

/// Name of the checksum file.
pub(crate) const SUMS: &str = "SHA256SUMS";

/// What `custody export` packs; any of these selects a pack export (a directory) instead of
/// a raw log export (a file).
#[derive(Args, Clone, Default)]
pub struct PackArgs {
    /// Pack a model version: its registration, training run, datasets, cards, approvals (with
    /// the keys that signed them), policy, serving changes and deployments.
    #[arg(long, conflicts_with_all = ["request_id", "entry", "since", "log"], help_heading = "Evidence pack")]
    pub model: Option<String>,
    /// Pack one inference (by request id) and the chain behind it.
    #[arg(long, conflicts_with_all = ["entry", "since", "log"], help_heading = "Evidence pack")]
    pub request_id: Option<String>,
    /// Pack one inference (by entry id) and the chain behind it.
    #[arg(long, conflicts_with_all = ["since", "log"], help_heading = "Evidence pack")]
    pub entry: Option<String>,
    /// Pack every governance entry and inference recorded from this time (RFC 3339)...
    #[arg(
        long,
        requires = "until",
        conflicts_with = "log",
        help_heading = "Evidence pack"
    )]
    pub since: Option<String>,
    /// ...until this time (exclusive).
    #[arg(long, requires = "since", help_heading = "Evidence pack")]
    pub until: Option<String>,
    /// With --since/--until: most inference records to include (default 1000).
    #[arg(long, requires = "since", help_heading = "Evidence pack")]
    pub inferences: Option<u32>,
    #[command(flatten)]
    pub vkeys: VkeyArgs,
}

impl PackArgs {
    /// Whether a pack was asked for.
    pub fn selected(&self) -> bool {
        self.model.is_some()
            || self.request_id.is_some()
            || self.entry.is_some()
            || self.since.is_some()
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn entry_type(e: &ProvenEntry) -> &str {
    e.envelope
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn is_log_name(log: &str) -> bool {
    matches!(log, "governance" | "inference" | "access")
}

fn entry_file(log: &str, index: u64) -> String {
    format!("entries/{log}/{index}.json")
}

fn payload_file(log: &str, index: u64) -> String {
    format!("payloads/{log}/{index}.json")
}

fn approval_file(index: u64) -> String {
    format!("approvals/{index}.dsse.json")
}

fn key_file(fingerprint: &str) -> String {
    format!(
        "approver-keys/{}.pem",
        fingerprint.strip_prefix("sha256:").unwrap_or(fingerprint)
    )
}

fn pretty(v: &impl Serialize) -> anyhow::Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(v)?;
    out.push(b'\n');
    Ok(out)
}

/// Every file of a pack (but `SHA256SUMS`), by relative path.
fn pack_files(pack: &EvidencePack, server: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    files.insert("pack.json".to_owned(), pretty(pack)?);
    for lc in &pack.proven.checkpoints {
        if !is_log_name(&lc.log) {
            bail!("the server named an unknown log {:?}", lc.log);
        }
        files.insert(
            format!("checkpoints/{}.checkpoint", lc.log),
            lc.checkpoint.clone().into_bytes(),
        );
        files.insert(
            format!("keys/{}.vkey", lc.log),
            format!("{}\n", lc.verifier_key.trim()).into_bytes(),
        );
    }
    for e in &pack.proven.entries {
        if !is_log_name(&e.log) {
            bail!("the server named an unknown log {:?}", e.log);
        }
        let data =
            proofs::leaf_data(e).map_err(|m| anyhow::anyhow!("{}#{}: {m}", e.log, e.index))?;
        files.insert(entry_file(&e.log, e.index), data);
        if let Some(p) = &e.payload {
            files.insert(
                payload_file(&e.log, e.index),
                pretty(&json!({"payload": p, "salt": e.salt}))?,
            );
            if entry_type(e) == types::APPROVAL && e.log == "governance" {
                files.insert(approval_file(e.index), pretty(p)?);
            }
        }
    }
    for k in &pack.approver_keys {
        if !submit::is_digest(&k.fingerprint) {
            bail!(
                "the server sent an approver key fingerprint {:?}",
                k.fingerprint
            );
        }
        files.insert(key_file(&k.fingerprint), k.public_key.clone().into_bytes());
    }
    let example = pack
        .proven
        .entries
        .first()
        .map(|e| entry_file(&e.log, e.index))
        .unwrap_or_else(|| entry_file("governance", 0));
    let readme = README
        .replace("{scope}", &pack.scope)
        .replace("{tenant}", &pack.tenant)
        .replace("{server}", server)
        .replace("{example}", &example);
    files.insert("README.md".to_owned(), readme.into_bytes());
    Ok(files)
}

fn sums(files: &BTreeMap<String, Vec<u8>>) -> String {
    files
        .iter()
        .map(|(path, bytes)| format!("{}  {path}\n", sha256_hex(bytes)))
        .collect()
}

/// The pins and the query of a pack export, checked before anything is contacted.
pub(crate) fn prepare(args: PackArgs) -> anyhow::Result<(Vec<NoteVerifier>, PackQuery)> {
    let pinned = proofs::read_vkeys(&args.vkeys.vkeys)?;
    let q = PackQuery {
        model: match &args.model {
            Some(m) => Some(submit::version_hash("--model", m)?),
            None => None,
        },
        request_id: args.request_id,
        entry: args.entry,
        since: args.since,
        until: args.until,
        inferences: args.inferences,
    };
    Ok((pinned, q))
}

/// A pack as the server answered it, its proofs checked, laid out as files.
pub(crate) struct Fetched {
    pack: EvidencePack,
    summary: String,
    /// Every file but `SHA256SUMS`, by relative path.
    pub(crate) files: BTreeMap<String, Vec<u8>>,
}

/// Asks the server for the pack and checks every proof in the answer before anything is
/// written.
pub(crate) async fn fetch(
    client: &Client,
    tenant: &str,
    pinned: &[NoteVerifier],
    q: &PackQuery,
) -> anyhow::Result<Fetched> {
    let pack = client.evidence(tenant, q).await?;
    let report = proofs::verify_answer(&pack.proven, pinned, tenant)?;
    let files = pack_files(&pack, client.base_url())?;
    Ok(Fetched {
        pack,
        summary: report.summary(),
        files,
    })
}

/// `custody export ... -o DIR` for a pack.
pub async fn export(
    client: &Client,
    tenant: &str,
    args: PackArgs,
    output: &Path,
    json: bool,
) -> anyhow::Result<i32> {
    let (pinned, q) = prepare(args)?;
    if output.exists()
        && (!output.is_dir()
            || std::fs::read_dir(output)
                .with_context(|| format!("cannot read --output {}", output.display()))?
                .next()
                .is_some())
    {
        bail!(
            "--output {} exists and is not an empty directory; choose a new directory for the pack",
            output.display()
        );
    }
    let fetched = fetch(client, tenant, &pinned, &q).await?;
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pack".into());
    let tmp = output.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let written = write_dir(&tmp, &fetched.files).and_then(|()| {
        if output.exists() {
            std::fs::remove_dir(output)
                .with_context(|| format!("cannot replace the empty {}", output.display()))?;
        }
        std::fs::rename(&tmp, output)
            .with_context(|| format!("cannot move the pack to {}", output.display()))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    exported(json, &fetched, &output.display().to_string(), false)?;
    Ok(0)
}

/// Reports a written pack; `remote` when `to` is an object storage URL rather than a
/// directory.
pub(crate) fn exported(
    json: bool,
    fetched: &Fetched,
    to: &str,
    remote: bool,
) -> anyhow::Result<()> {
    let pack = &fetched.pack;
    let approvals = pack
        .proven
        .entries
        .iter()
        .filter(|e| entry_type(e) == types::APPROVAL)
        .count();
    let files = fetched.files.len() + 1;
    let mut value = json!({"scope": pack.scope, "entries": pack.proven.entries.len(), "files": files, "truncated": pack.truncated});
    value[if remote { "location" } else { "directory" }] = json!(to);
    print(json, &value, || {
        let mut s = format!(
            "exported {} to {to}: {} entries ({approvals} approvals), {files} files\n{}",
            pack.scope,
            pack.proven.entries.len(),
            fetched.summary
        );
        if pack.truncated {
            s.push_str("\nthe pack is truncated: the server hit its size limit");
        }
        let pins: Vec<String> = pack
            .proven
            .checkpoints
            .iter()
            .map(|c| format!(" --vkey <{} vkey>", c.log))
            .collect();
        s.push_str(&format!(
            "\n{}: custody verify {to}{} (or see its README.md)",
            if remote {
                "check it"
            } else {
                "check it offline"
            },
            pins.concat()
        ));
        s
    })
}

pub(crate) fn write_dir(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    std::fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (rel, bytes) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::write(dir.join(SUMS), sums(files))
        .with_context(|| format!("cannot write {}", dir.join(SUMS).display()))
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
pub(crate) fn list_files(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for item in std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))? {
            let item = item.with_context(|| format!("cannot read {}", d.display()))?;
            let path = item.path();
            let kind = item.file_type()?;
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
pub(crate) fn is_inside(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Checks `SHA256SUMS` against every file; returns how many matched.
fn check_sums(c: &mut Checker<'_>) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(c.dir.join(SUMS)).with_context(|| {
        format!(
            "{} has no readable {SUMS}: is it a pack written by `custody export --model|--request-id|--since`?",
            c.dir.display()
        )
    })?;
    let mut listed = BTreeSet::new();
    let mut matched = 0;
    for (n, line) in text.lines().enumerate() {
        let Some((sum, name)) = line.split_once(' ') else {
            c.fail(
                SUMS,
                "format",
                format!("line {} is not `<sha256>  <file>`", n + 1),
            );
            continue;
        };
        let name = name.trim_start_matches([' ', '*']);
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

/// `custody verify DIR`: checks a pack offline.
pub fn verify(dir: &Path, pinned: &[NoteVerifier]) -> anyhow::Result<PackReport> {
    if !dir.is_dir() {
        bail!(
            "{} is not a directory: give an evidence pack directory (`custody export --model HASH -o DIR`), or use `custody verify entry` / `custody verify log`",
            dir.display()
        );
    }
    let mut c = Checker {
        dir,
        problems: Vec::new(),
    };
    let mut passed = Vec::new();
    let mut warnings = Vec::new();

    let matched = check_sums(&mut c)?;
    let pack_bytes = std::fs::read(dir.join("pack.json"))
        .with_context(|| format!("cannot read {}", dir.join("pack.json").display()))?;
    let pack: EvidencePack = serde_json::from_slice(&pack_bytes).with_context(|| {
        format!(
            "{} is not an evidence pack",
            dir.join("pack.json").display()
        )
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
        } else if proofs::leaf_data(e).ok().as_deref() != Some(bytes.as_slice()) {
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
                        match proofs::check_payload(&from_file) {
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
    let report = proofs::check(&pack.proven, keys, Some(&pack.tenant));
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

/// How to check a pack with standard tools; `{scope}`, `{tenant}`, `{server}` and `{example}`
/// are filled in.
const README: &str = r#"# custody evidence pack: {scope}

Tenant `{tenant}`, exported from {server}. Everything here can be checked offline with standard
tools (`sha256sum`, `python3` with `cryptography`, `openssl`), run from this directory;
`custody verify .` runs every check below. Pin each log's verifier key from a source you trust (not `keys/`, which came with
the pack): `custody verify . --vkey <governance vkey> --vkey <inference vkey>`.

## Layout

| path | content |
|---|---|
| `pack.json` | the server's answer: entries (envelope, leaf hash, inclusion proof, payload, salt), one signed checkpoint per log, links, approver keys |
| `checkpoints/<log>.checkpoint` | the log's signed checkpoint, a C2SP signed note, byte-exact |
| `keys/<log>.vkey` | the log's verifier key as the server announced it; compare it with the one you pinned |
| `entries/<log>/<index>.json` | the entry's envelope in RFC 8785 canonical form: exactly the Merkle leaf data |
| `payloads/<log>/<index>.json` | `{payload, salt}` (salt: standard base64 of 32 bytes) that open the envelope's `payload_commitment` |
| `approvals/<index>.dsse.json` | the DSSE envelope of the approval at that governance index |
| `approver-keys/<hex>.pem` | approver public keys (SPKI PEM); `<hex>` is the SHA-256 of the key's DER, the `key_fingerprint` approvals name |
| `SHA256SUMS` | SHA-256 of every other file |

## 1. Nothing was changed

    sha256sum -c SHA256SUMS

## 2. Each entry file is a leaf (RFC 9162 §2.1.1: leaf hash = SHA-256(0x00 || data))

    (printf '\000'; cat {example}) | sha256sum

prints the `leaf_hash` pack.json gives for that entry (`"log"` and `"index"` name the file).

## 3. Each leaf is in its log (RFC 9162 §2.1.3.2 inclusion proofs)

Every proof in pack.json is against the checkpoint of its log (`checkpoints`, the third line of
the checkpoint text is the base64 root hash, the second the tree size):

```python
import base64, hashlib, json
node = lambda l, r: hashlib.sha256(b"\x01" + l + r).digest()
pack = json.load(open("pack.json"))
roots = {}
for c in pack["checkpoints"]:
    origin, size, root = c["checkpoint"].split("\n")[:3]
    roots[c["log"]] = (int(size), base64.b64decode(root))
for e in pack["entries"]:
    size, root = roots[e["log"]]
    data = open(f"entries/{e['log']}/{e['index']}.json", "rb").read()
    r = hashlib.sha256(b"\x00" + data).digest()
    fn, sn = e["index"], size - 1
    for p in map(base64.b64decode, e["proof"]):
        assert sn > 0, "proof too long"
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0 and r == root, f"{e['log']}#{e['index']}: proof does not reach the root"
print("every inclusion proof reaches its checkpoint's root")
```

## 4. Each checkpoint is signed by its log (C2SP signed-note, Ed25519)

A verifier key is `<name>+<hex key id>+<base64(0x01 || 32-byte Ed25519 key)>`. The signed text
is everything before the blank line (with its final newline); each signature line is
`— <name> <base64(4-byte key id || 64-byte signature)>`.

```python
import base64
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
log = "governance"
name, key_id, key = open(f"keys/{log}.vkey").read().strip().split("+", 2)  # or a pinned key
key = base64.b64decode(key)
text, sigs = open(f"checkpoints/{log}.checkpoint").read().split("\n\n", 1)
for line in sigs.splitlines():
    _, signer, sig = line.split(" ")
    sig = base64.b64decode(sig)
    if signer == name and sig[:4].hex() == key_id:
        Ed25519PublicKey.from_public_bytes(key[1:]).verify(sig[4:], (text + "\n").encode())
        print(log, "checkpoint signature OK")
```

The checkpoint's first line (its origin) must be `<server>/{tenant}/<log>` and equal the key
name. Go's `golang.org/x/mod/sumdb/note` and any C2SP tlog client check the same format.

## 5. Payloads open their commitments (`payload_commitment` = sha256(salt || RFC 8785 payload))

```python
import base64, hashlib, json, glob
jcs = lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
for path in glob.glob("payloads/*/*.json"):
    p = json.load(open(path))
    env = json.load(open(path.replace("payloads/", "entries/", 1)))
    got = "sha256:" + hashlib.sha256(base64.b64decode(p["salt"]) + jcs(p["payload"])).hexdigest()
    assert got == env["payload_commitment"], path
print("every payload opens its commitment")
```

(`json.dumps` with sorted keys is RFC 8785 for payloads of strings, integers, booleans and
objects; use an RFC 8785 library such as `rfc8785` when a payload holds fractional numbers.)

## 6. Approvals are signed by registered approvers (DSSE v1 + in-toto)

Each `approvals/<index>.dsse.json` is signed over the DSSE pre-authentication encoding
`DSSEv1 <len(payloadType)> <payloadType> <len(payload)> <payload>` (lengths in bytes). The
approval's envelope (`entries/governance/<index>.json`) names the key in
`body.key_fingerprint`; its PEM is `approver-keys/<hex>.pem`, and
`openssl pkey -pubin -in approver-keys/<hex>.pem -outform DER | sha256sum` prints `<hex>`.
`body.statement_digest` is the SHA-256 of the signed statement.

```python
import base64, glob, hashlib, json
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
for path in glob.glob("approvals/*.dsse.json"):
    index = path.split("/")[-1].split(".")[0]
    body = json.load(open(f"entries/governance/{index}.json"))["body"]
    key = serialization.load_pem_public_key(
        open(f"approver-keys/{body['key_fingerprint'][7:]}.pem", "rb").read())
    d = json.load(open(path))
    payload, t = base64.b64decode(d["payload"]), d["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)
    sig = base64.b64decode(d["signatures"][0]["sig"])
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(sig, pae)
    else:
        key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
    assert "sha256:" + hashlib.sha256(payload).hexdigest() == body["statement_digest"]
    print(path, "signed by", body["approver"], body["decision"], body["target"])
```

With openssl instead: write `pae` and the raw signature to files, then
`openssl pkeyutl -verify -pubin -inkey KEY.pem -rawin -in pae.bin -sigfile sig.bin` (Ed25519)
or `openssl dgst -sha256 -verify KEY.pem -signature sig.bin pae.bin` (ECDSA P-256).

The decoded payload is an in-toto Statement (`https://in-toto.io/Statement/v1`) whose subject
digest is the model's version hash and whose predicate
(`https://custody.dev/attestation/approval/v1`) states the decision, target and criteria.
"#;
