//! `custody drift`: reconcile the artifact digests recorded in a tenant's governance log with
//! the bytes at the artifacts' URIs today.
//!
//! The ledger proves what was registered, not that the dataset or the weights at the recorded
//! location are still those bytes: a bucket can be overwritten, a directory edited or deleted.
//! This job re-hashes every registered dataset version and model version it can reach, with
//! the same digest definitions as ingest, and reports each as `ok`, `drift`, `missing`,
//! `unreachable` or `skipped`, with the ledger entry the recorded digest came from.
//!
//! Digests, as custody-evidence defines them:
//! - a model version's `version_hash` is the OpenSSF model-signing root of its files
//!   (`custody_model`), whether they sit in a directory, a single file or under an S3 prefix;
//! - a dataset version with a `files` manifest has that manifest's root as its `digest`, so it
//!   is compared the same way; without a manifest its `digest` is the content digest: the
//!   SHA-256 of a single file's (or object's) bytes, or the model-signing root of a directory
//!   (or prefix), the only directory digest custody defines.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use custody_client::{Client, ListQuery};
use custody_evidence::events::types;
use custody_model::hash::{IGNORED_TOP_LEVEL_NAMES, SINGLE_FILE_PATH};
use custody_model::{FileDigest, ModelDigest, ModelError};
use futures_util::StreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::objects;
use crate::output::print;
use crate::settings::Settings;
use crate::shared_flags::TenantArg;

/// Exit code when any artifact drifted or is missing.
pub const EXIT_DRIFT: i32 = 4;

/// Entries fetched per page (the server's maximum).
const PAGE: u32 = 1000;

/// `custody drift`.
#[derive(Args)]
#[command(
    after_help = "Checks every dataset_version.registered (body.uri) and every \
model_version.registered that names a location (body.registry.uri; model versions without one \
are listed as skipped). URIs: file:///abs/path, /abs/path, s3://bucket/key (an object, or the \
objects under key/ when there is none) and s3://bucket/prefix/. S3 credentials and region come \
from the AWS_* environment variables.\n\nExit codes: 0 every checked artifact is ok (skipped \
ones aside); 4 an artifact drifted or is missing; 1 an error, including an artifact that could \
not be read (unreachable)."
)]
pub struct DriftArgs {
    #[command(flatten)]
    tenant: TenantArg,
    /// Read URIs that start with PREFIX (as recorded) from the local directory LOCALDIR
    /// instead, e.g. `--map s3://bucket/=/mnt/mirror/`. Repeatable; the longest prefix wins.
    #[arg(long = "map", value_name = "PREFIX=LOCALDIR")]
    maps: Vec<String>,
    #[command(flatten)]
    endpoint: objects::EndpointArg,
}

/// A `--map PREFIX=LOCALDIR` rule.
#[derive(Debug)]
struct MapRule {
    prefix: String,
    dir: PathBuf,
}

/// Parses the `--map` flags; errors name the flag and the value.
fn parse_maps(values: &[String]) -> anyhow::Result<Vec<MapRule>> {
    values
        .iter()
        .map(|v| {
            let Some((prefix, dir)) = v.split_once('=') else {
                bail!("--map {v:?}: expected PREFIX=LOCALDIR, e.g. --map s3://bucket/=/mnt/mirror/");
            };
            if let Some((scheme, _)) = prefix.split_once("://") {
                if scheme != "s3" && scheme != "file" {
                    bail!(
                        "--map {v:?}: unsupported scheme {scheme}:// (use an s3:// or file:// URI prefix, or an absolute path)"
                    );
                }
            } else if !prefix.starts_with('/') {
                bail!(
                    "--map {v:?}: PREFIX must be an s3:// or file:// URI prefix, or an absolute path"
                );
            }
            if dir.is_empty() || dir.contains("://") {
                bail!("--map {v:?}: LOCALDIR must be a local directory path");
            }
            Ok(MapRule {
                prefix: prefix.to_owned(),
                dir: PathBuf::from(dir),
            })
        })
        .collect()
}

/// What kind of artifact a ledger entry registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    DatasetVersion,
    ModelVersion,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::DatasetVersion => "dataset_version",
            Kind::ModelVersion => "model_version",
        }
    }
}

/// Which digest the recorded value is: decides how found content is summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// The model-signing root of the files (model versions, datasets with a manifest).
    Root,
    /// SHA-256 of a single file's bytes; the root for a directory (datasets without a manifest).
    Content,
}

/// The ledger entry a recorded digest came from.
#[derive(Debug, Clone, Serialize)]
struct EntryRef {
    log: &'static str,
    index: u64,
    id: String,
}

/// One file of a recorded manifest, as the body holds it.
#[derive(Debug, Clone, Deserialize)]
struct RecordedFile {
    path: String,
    digest: String,
}

#[derive(Deserialize)]
struct DatasetBody {
    name: String,
    version: String,
    uri: String,
    digest: String,
    #[serde(default)]
    files: Vec<RecordedFile>,
}

#[derive(Deserialize)]
struct Registry {
    uri: String,
}

#[derive(Deserialize)]
struct ModelBody {
    name: String,
    #[serde(default)]
    version: Option<String>,
    version_hash: String,
    #[serde(default)]
    files: Vec<RecordedFile>,
    #[serde(default)]
    registry: Option<Registry>,
}

/// An artifact as the ledger recorded it.
#[derive(Debug)]
struct Recorded {
    kind: Kind,
    name: String,
    version: Option<String>,
    uri: Option<String>,
    digest: String,
    files: Vec<RecordedFile>,
    rule: Rule,
    entry: EntryRef,
}

/// Reads a registration entry's body; `Err` is the reason it cannot be checked.
fn recorded(kind: Kind, e: &custody_api::EntryRecord) -> Result<Recorded, (EntryRef, String)> {
    let entry = EntryRef {
        log: "governance",
        index: e.index,
        id: e
            .envelope
            .get("id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_owned(),
    };
    let body = e
        .envelope
        .get("body")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    match kind {
        Kind::DatasetVersion => match serde_json::from_value::<DatasetBody>(body) {
            Ok(b) => Ok(Recorded {
                kind,
                name: b.name,
                version: Some(b.version),
                uri: Some(b.uri),
                digest: b.digest,
                rule: if b.files.is_empty() {
                    Rule::Content
                } else {
                    Rule::Root
                },
                files: b.files,
                entry,
            }),
            Err(err) => Err((entry, format!("unreadable body: {err}"))),
        },
        Kind::ModelVersion => match serde_json::from_value::<ModelBody>(body) {
            Ok(b) => Ok(Recorded {
                kind,
                name: b.name,
                version: b.version,
                uri: b.registry.map(|r| r.uri),
                digest: b.version_hash,
                files: b.files,
                rule: Rule::Root,
                entry,
            }),
            Err(err) => Err((entry, format!("unreadable body: {err}"))),
        },
    }
}

/// Every registration of `entry_type` in the tenant's governance log, following cursors.
async fn list_all(
    client: &Client,
    tenant: &str,
    entry_type: &str,
) -> anyhow::Result<Vec<custody_api::EntryRecord>> {
    let mut q = ListQuery {
        entry_type: Some(entry_type.to_owned()),
        limit: Some(PAGE),
        ..ListQuery::default()
    };
    let mut out = Vec::new();
    loop {
        let page = client
            .list(tenant, "governance", &q)
            .await
            .with_context(|| format!("cannot list {entry_type} entries of tenant {tenant}"))?;
        out.extend(page.entries);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Where an artifact's bytes are read from.
#[derive(Debug)]
enum Source {
    Local(PathBuf),
    S3 { bucket: String, key: String },
}

/// Resolves a recorded URI (after `--map`); `Err` is why it is skipped.
fn resolve(uri: &str, maps: &[MapRule]) -> Result<(Source, bool), String> {
    let rule = maps
        .iter()
        .filter(|m| {
            uri.strip_prefix(&m.prefix).is_some_and(|rest| {
                m.prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/')
            })
        })
        .max_by_key(|m| m.prefix.len());
    if let Some(m) = rule {
        let rest = uri[m.prefix.len()..].trim_start_matches('/');
        let path = if rest.is_empty() {
            m.dir.clone()
        } else {
            m.dir.join(rest)
        };
        return Ok((Source::Local(path), true));
    }
    if uri.starts_with('/') {
        return Ok((Source::Local(PathBuf::from(uri)), false));
    }
    if let Some(rest) = uri.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err("the s3:// URI names no bucket".into());
        }
        return Ok((
            Source::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            },
            false,
        ));
    }
    if uri.starts_with("file:") {
        let path = url::Url::parse(uri)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or("not a local file URI (use file:///absolute/path)")?;
        return Ok((Source::Local(path), false));
    }
    match uri.split_once(':') {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Err(format!(
                "unsupported scheme {scheme}: (drift reads file://, s3:// and absolute paths)"
            ))
        }
        _ => Err("neither a URI nor an absolute path".into()),
    }
}

/// Why content could not be summarised; each carries the reason shown to the user.
#[derive(Debug)]
enum FetchError {
    /// Nothing at the location: reported as `missing`.
    NotFound(String),
    /// Something is there (or may be) but could not be read: reported as `unreachable`.
    Unreachable(String),
}

/// Hashes a local file or directory with `custody_model` (streamed, bounded memory).
async fn hash_local(path: PathBuf) -> Result<ModelDigest, FetchError> {
    let shown = path.display().to_string();
    let result = tokio::task::spawn_blocking(move || custody_model::hash_path(&path, &mut |_| {}))
        .await
        .map_err(|e| FetchError::Unreachable(format!("hashing {shown} failed: {e}")))?;
    result.map_err(|e| match e {
        ModelError::NotFound { .. } | ModelError::Empty { .. } => {
            FetchError::NotFound(e.to_string())
        }
        e => FetchError::Unreachable(e.to_string()),
    })
}

/// One S3 client per bucket, built on first use from the AWS_* environment.
struct S3 {
    endpoint: Option<String>,
    stores: HashMap<String, Arc<AmazonS3>>,
}

impl S3 {
    fn store(&mut self, bucket: &str) -> Result<Arc<AmazonS3>, FetchError> {
        if let Some(s) = self.stores.get(bucket) {
            return Ok(s.clone());
        }
        let store = Arc::new(
            objects::s3_store(bucket, self.endpoint.as_deref()).map_err(|e| {
                FetchError::Unreachable(format!("cannot configure S3 for bucket {bucket}: {e}"))
            })?,
        );
        self.stores.insert(bucket.to_owned(), store.clone());
        Ok(store)
    }

    /// Hashes an object, or every object under a prefix, chunk by chunk as they stream in.
    async fn hash(&mut self, bucket: &str, key: &str) -> Result<ModelDigest, FetchError> {
        let store = self.store(bucket)?;
        let shown = format!("s3://{bucket}/{key}");
        let unreachable = |e: object_store::Error| FetchError::Unreachable(format!("{shown}: {e}"));
        if !key.is_empty() && !key.ends_with('/') {
            let path = ObjectPath::parse(key).map_err(|e| {
                FetchError::Unreachable(format!("{shown}: not a valid object key: {e}"))
            })?;
            match hash_object(&store, &path).await {
                Ok((sha256, size)) => return digest_of(vec![single(sha256, size)], &shown),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(unreachable(e)),
            }
        }
        let prefix = key.trim_end_matches('/');
        let prefix_path = if prefix.is_empty() {
            None
        } else {
            Some(ObjectPath::parse(prefix).map_err(|e| {
                FetchError::Unreachable(format!("{shown}: not a valid key prefix: {e}"))
            })?)
        };
        let mut listing = store.list(prefix_path.as_ref());
        let mut files = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(unreachable)?;
            let full = meta.location.as_ref();
            // Strictly below the prefix: a zero-byte `prefix/` folder marker is no file.
            let rel = match &prefix_path {
                Some(p) => match full
                    .strip_prefix(p.as_ref())
                    .and_then(|r| r.strip_prefix('/'))
                {
                    Some(r) if !r.is_empty() => r,
                    _ => continue,
                },
                None => full,
            };
            let top = rel.split('/').next().unwrap_or(rel);
            if IGNORED_TOP_LEVEL_NAMES.contains(&top) {
                continue;
            }
            let (sha256, size) = hash_object(&store, &meta.location)
                .await
                .map_err(unreachable)?;
            files.push(FileDigest {
                path: rel.to_owned(),
                sha256,
                size,
            });
        }
        if files.is_empty() {
            return Err(FetchError::NotFound(format!(
                "{shown}: no such object, and no object under it"
            )));
        }
        digest_of(files, &shown)
    }
}

/// SHA-256 and length of one object, never holding more than one chunk in memory.
async fn hash_object(
    store: &AmazonS3,
    path: &ObjectPath,
) -> Result<([u8; 32], u64), object_store::Error> {
    let mut stream = store.get(path).await?.into_stream();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((hasher.finalize().into(), size))
}

fn single(sha256: [u8; 32], size: u64) -> FileDigest {
    FileDigest {
        path: SINGLE_FILE_PATH.to_owned(),
        sha256,
        size,
    }
}

fn digest_of(files: Vec<FileDigest>, shown: &str) -> Result<ModelDigest, FetchError> {
    ModelDigest::from_files(files).map_err(|e| FetchError::Unreachable(format!("{shown}: {e}")))
}

/// The outcome for one artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Ok,
    Drift,
    Missing,
    Unreachable,
    Skipped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Drift => "drift",
            Status::Missing => "missing",
            Status::Unreachable => "unreachable",
            Status::Skipped => "skipped",
        }
    }
}

/// Which files of a recorded manifest differ from what was found.
#[derive(Debug, Default, Serialize)]
struct FileChanges {
    changed: Vec<String>,
    missing: Vec<String>,
    added: Vec<String>,
}

/// One artifact's line in the report.
#[derive(Debug, Serialize)]
struct Checked {
    status: Status,
    kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    /// The local path a `--map` rule sent the URI to.
    #[serde(skip_serializing_if = "Option::is_none")]
    mapped_to: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    found: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<FileChanges>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    entry: EntryRef,
}

/// Compares a recorded manifest with the files found, by path.
fn file_changes(recorded: &[RecordedFile], found: &ModelDigest) -> FileChanges {
    let found: HashMap<&str, String> = found
        .files()
        .iter()
        .map(|f| (f.path.as_str(), f.digest()))
        .collect();
    let mut c = FileChanges::default();
    for r in recorded {
        match found.get(r.path.as_str()) {
            None => c.missing.push(r.path.clone()),
            Some(d) if *d != r.digest => c.changed.push(r.path.clone()),
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = recorded.iter().map(|r| r.path.as_str()).collect();
    c.added = found
        .keys()
        .filter(|p| !known.contains(*p))
        .map(|p| (*p).to_owned())
        .collect();
    c.added.sort();
    c
}

async fn check(r: Recorded, maps: &[MapRule], s3: &mut S3) -> Checked {
    let mut out = Checked {
        status: Status::Skipped,
        kind: r.kind,
        name: Some(r.name),
        version: r.version,
        uri: r.uri.clone(),
        mapped_to: None,
        recorded: Some(r.digest.clone()),
        found: None,
        files: None,
        reason: None,
        entry: r.entry,
    };
    let Some(uri) = r.uri else {
        out.reason = Some(
            "no URI recorded (a model version names its location only in body.registry.uri; --map applies to recorded URIs)"
                .into(),
        );
        return out;
    };
    let (source, mapped) = match resolve(&uri, maps) {
        Ok(s) => s,
        Err(why) => {
            out.reason = Some(why);
            return out;
        }
    };
    let hashed = match source {
        Source::Local(path) => {
            if mapped {
                out.mapped_to = Some(path.clone());
            }
            hash_local(path).await
        }
        Source::S3 { bucket, key } => s3.hash(&bucket, &key).await,
    };
    let found = match hashed {
        Ok(d) => d,
        Err(FetchError::NotFound(why)) => {
            out.status = Status::Missing;
            out.reason = Some(why);
            return out;
        }
        Err(FetchError::Unreachable(why)) => {
            out.status = Status::Unreachable;
            out.reason = Some(why);
            return out;
        }
    };
    let digest = match (r.rule, found.files()) {
        (Rule::Content, [only]) if found.is_single_file() => only.digest(),
        _ => found.version_hash(),
    };
    if digest == r.digest {
        out.status = Status::Ok;
    } else {
        out.status = Status::Drift;
        if !r.files.is_empty() {
            out.files = Some(file_changes(&r.files, &found));
        }
    }
    out.found = Some(digest);
    out
}

/// The whole reconciliation.
#[derive(Debug, Serialize)]
struct Report {
    tenant: String,
    artifacts: Vec<Checked>,
    summary: Summary,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    ok: usize,
    drift: usize,
    missing: usize,
    unreachable: usize,
    skipped: usize,
}

impl Report {
    fn exit_code(&self) -> i32 {
        let s = &self.summary;
        if s.drift + s.missing > 0 {
            EXIT_DRIFT
        } else if s.unreachable > 0 {
            1
        } else {
            0
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for a in &self.artifacts {
            out.push_str(&format!("{:<11}", a.status.as_str()));
            out.push_str(&format!(" {}", a.kind.as_str()));
            if let Some(n) = &a.name {
                out.push_str(&format!(" {n}"));
            }
            if let Some(v) = &a.version {
                out.push_str(&format!("@{v}"));
            }
            if let Some(u) = &a.uri {
                out.push_str(&format!(" {u}"));
            }
            if let Some(p) = &a.mapped_to {
                out.push_str(&format!(" (read from {})", p.display()));
            }
            out.push_str(&format!(
                " [{} #{} entry {}]",
                a.entry.log, a.entry.index, a.entry.id
            ));
            match a.status {
                Status::Ok => {
                    out.push_str(&format!(": {}", a.found.as_deref().unwrap_or("")));
                }
                Status::Drift => {
                    out.push_str(&format!(
                        ": recorded {}, found {}",
                        a.recorded.as_deref().unwrap_or("?"),
                        a.found.as_deref().unwrap_or("?")
                    ));
                    if let Some(c) = &a.files {
                        for (what, list) in [
                            ("changed", &c.changed),
                            ("missing", &c.missing),
                            ("added", &c.added),
                        ] {
                            if !list.is_empty() {
                                out.push_str(&format!("; {what}: {}", list.join(", ")));
                            }
                        }
                    }
                }
                Status::Missing | Status::Unreachable | Status::Skipped => {
                    out.push_str(&format!(": {}", a.reason.as_deref().unwrap_or("")));
                }
            }
            out.push('\n');
        }
        let s = &self.summary;
        out.push_str(&format!(
            "{} artifact{} in tenant {}: {} ok, {} drift, {} missing, {} unreachable, {} skipped",
            self.artifacts.len(),
            if self.artifacts.len() == 1 { "" } else { "s" },
            self.tenant,
            s.ok,
            s.drift,
            s.missing,
            s.unreachable,
            s.skipped
        ));
        out
    }
}

/// Runs `custody drift`; returns the exit code (0 ok, 4 drift or missing, 1 unreachable).
pub async fn run(args: DriftArgs, settings: &Settings) -> anyhow::Result<i32> {
    let (client, json) = (&settings.client()?, settings.json);
    let maps = parse_maps(&args.maps)?;
    let endpoint = args.endpoint.checked()?.map(str::to_owned);
    let tenant = args.tenant.tenant;
    let mut entries = Vec::new();
    for (kind, entry_type) in [
        (Kind::DatasetVersion, types::DATASET_VERSION),
        (Kind::ModelVersion, types::MODEL_VERSION),
    ] {
        for e in list_all(client, &tenant, entry_type).await? {
            entries.push((kind, e));
        }
    }
    entries.sort_by_key(|(_, e)| e.index);

    let mut s3 = S3 {
        endpoint,
        stores: HashMap::new(),
    };
    let mut artifacts = Vec::with_capacity(entries.len());
    for (kind, e) in &entries {
        let checked = match recorded(*kind, e) {
            Ok(r) => check(r, &maps, &mut s3).await,
            Err((entry, why)) => Checked {
                status: Status::Skipped,
                kind: *kind,
                name: None,
                version: None,
                uri: None,
                mapped_to: None,
                recorded: None,
                found: None,
                files: None,
                reason: Some(why),
                entry,
            },
        };
        artifacts.push(checked);
    }
    let mut summary = Summary::default();
    for a in &artifacts {
        *match a.status {
            Status::Ok => &mut summary.ok,
            Status::Drift => &mut summary.drift,
            Status::Missing => &mut summary.missing,
            Status::Unreachable => &mut summary.unreachable,
            Status::Skipped => &mut summary.skipped,
        } += 1;
    }
    let report = Report {
        tenant,
        artifacts,
        summary,
    };
    print(json, &report, || report.text())?;
    Ok(report.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(v: &[&str]) -> Vec<MapRule> {
        parse_maps(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn bad_maps_name_the_flag() {
        for (v, needle) in [
            ("s3://b/", "PREFIX=LOCALDIR"),
            ("gs://b/=/mnt", "unsupported scheme gs://"),
            ("bucket/=/mnt", "PREFIX must be"),
            ("s3://b/=", "LOCALDIR"),
        ] {
            let e = parse_maps(&[v.to_owned()]).unwrap_err().to_string();
            assert!(e.starts_with("--map"), "{v}: {e}");
            assert!(e.contains(needle), "{v}: {e}");
        }
    }

    #[test]
    fn longest_prefix_on_a_boundary_wins() {
        let m = maps(&["s3://b=/m1", "s3://b/deep/=/m2"]);
        let local = |uri: &str| match resolve(uri, &m) {
            Ok((Source::Local(p), true)) => Some(p),
            _ => None,
        };
        assert_eq!(local("s3://b/x/y"), Some(PathBuf::from("/m1/x/y")));
        assert_eq!(local("s3://b/deep/z"), Some(PathBuf::from("/m2/z")));
        assert_eq!(local("s3://b"), Some(PathBuf::from("/m1")));
        assert_eq!(local("s3://bb/x"), None);
    }

    #[test]
    fn uris_resolve_or_say_why_not() {
        assert!(matches!(
            resolve("file:///data/a%20b.csv", &[]),
            Ok((Source::Local(p), false)) if p == std::path::Path::new("/data/a b.csv")
        ));
        assert!(matches!(
            resolve("s3://bkt/k/ey", &[]),
            Ok((Source::S3 { bucket, key }, false)) if bucket == "bkt" && key == "k/ey"
        ));
        let why = resolve("models:/fraud/3", &[]).unwrap_err();
        assert!(why.contains("unsupported scheme models:"), "{why}");
        let why = resolve("data/x.csv", &[]).unwrap_err();
        assert!(why.contains("neither a URI nor an absolute path"), "{why}");
    }
}
