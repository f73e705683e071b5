//! Evidence packs in object storage: `custody export ... -o s3://bucket/prefix/` (or
//! `file:///abs/dir/`) and `custody verify s3://bucket/prefix/`.
//!
//! A pack is written exactly as for `-o DIR`, into a private temporary directory, and then
//! copied file by file under the prefix. Every object is read back and compared with its local
//! file before `SHA256SUMS`, the pack's manifest, is written last: whoever finds the manifest
//! finds every file it names, and a prefix without one is an unfinished export. Objects are
//! only ever created, never replaced (a conditional PUT), so a pack stays write-once even
//! against a concurrent export to the same prefix.
//!
//! Verification downloads the pack into a temporary directory, checking each object against
//! the manifest's digest as it streams in, so a changed object is named by its key, and then
//! runs the offline checks of `custody verify DIR` unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use custody_client::Client;
use custody_core::note::NoteVerifier;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use custody_verify::pack::{self as pack_check, PackProblem, PackReport, SUMS};

use crate::commands::pack::{self, PackArgs};
use crate::objects::{self, EndpointArg};

/// Objects transferred at once: enough to hide request latency, few enough for a small
/// machine and a rate-limited bucket.
const CONCURRENCY: usize = 8;

/// Where a pack goes to or comes from, when it is not a plain local directory.
#[derive(Debug, PartialEq, Eq)]
pub enum Location {
    /// `s3://bucket/prefix/`; the prefix has no leading or trailing `/` and may be empty.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix the pack's files sit under.
        prefix: String,
    },
    /// `file:///abs/dir/`.
    Dir(PathBuf),
}

impl Location {
    /// Reads `value` as a pack location; `None` when it is a plain path. Errors start with
    /// `label` (the flag, or the value itself) and say what to write instead.
    pub fn parse(label: &str, value: &Path) -> anyhow::Result<Option<Location>> {
        let Some(value) = value.to_str() else {
            return Ok(None);
        };
        let Some((scheme, rest)) = value.split_once("://") else {
            return Ok(None);
        };
        let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !is_scheme {
            return Ok(None);
        }
        match scheme {
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    bail!("{label}: names no bucket; write s3://BUCKET/PREFIX/");
                }
                let prefix = prefix.trim_matches('/');
                if !prefix.is_empty() && !pack_check::is_inside(prefix) {
                    bail!(
                        "{label}: the prefix {prefix:?} has an empty, `.` or `..` segment; write s3://BUCKET/PREFIX/"
                    );
                }
                Ok(Some(Location::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                }))
            }
            "file" => {
                let dir = url::Url::parse(value)
                    .ok()
                    .and_then(|u| u.to_file_path().ok())
                    .with_context(|| {
                        format!("{label}: not a local file URL; write file:///ABSOLUTE/DIR/")
                    })?;
                Ok(Some(Location::Dir(dir)))
            }
            other => bail!(
                "{label}: unsupported scheme {other}://; write s3://BUCKET/PREFIX/, file:///ABSOLUTE/DIR/ or a local directory"
            ),
        }
    }
}

/// A pack location, opened.
struct Store {
    /// The location as a URL ending in `/`: object keys are shown as `{shown}{name}`.
    shown: String,
    backend: Backend,
}

enum Backend {
    S3 { store: AmazonS3, prefix: String },
    Dir(PathBuf),
}

/// An error on one line: object_store and reqwest errors may nest their causes on new lines.
fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Store {
    /// Configures a client for the location; nothing is contacted yet.
    fn open(location: Location, endpoint: &EndpointArg) -> anyhow::Result<Store> {
        match location {
            Location::S3 { bucket, prefix } => {
                let shown = if prefix.is_empty() {
                    format!("s3://{bucket}/")
                } else {
                    format!("s3://{bucket}/{prefix}/")
                };
                let store = objects::s3_store(&bucket, endpoint.checked()?).map_err(|e| {
                    anyhow::anyhow!(
                        "{shown}: cannot configure S3: {}; check --s3-endpoint and the AWS_* variables",
                        one_line(e)
                    )
                })?;
                Ok(Store {
                    shown,
                    backend: Backend::S3 { store, prefix },
                })
            }
            Location::Dir(dir) => {
                let mut shown = url::Url::from_directory_path(&dir)
                    .map(String::from)
                    .unwrap_or_else(|()| format!("file://{}", dir.display()));
                if !shown.ends_with('/') {
                    shown.push('/');
                }
                Ok(Store {
                    shown,
                    backend: Backend::Dir(dir),
                })
            }
        }
    }

    fn url(&self, name: &str) -> String {
        format!("{}{name}", self.shown)
    }

    /// The object key of a pack file.
    fn key(&self, name: &str) -> anyhow::Result<ObjectPath> {
        let Backend::S3 { prefix, .. } = &self.backend else {
            bail!("{}: not an object store", self.shown);
        };
        let key = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        ObjectPath::parse(&key)
            .map_err(|e| anyhow::anyhow!("{}: not a valid object key: {e}", self.url(name)))
    }

    /// The names (relative to the prefix) of every object under it.
    async fn list(&self) -> anyhow::Result<Vec<String>> {
        match &self.backend {
            Backend::S3 { store, prefix } => {
                let prefix_path = if prefix.is_empty() {
                    None
                } else {
                    Some(ObjectPath::parse(prefix).map_err(|e| {
                        anyhow::anyhow!("{}: not a valid key prefix: {e}", self.shown)
                    })?)
                };
                let metas: Vec<_> = store
                    .list(prefix_path.as_ref())
                    .try_collect()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "{}: cannot list the objects under the prefix: {}; check the bucket, --s3-endpoint and the AWS_* credentials",
                            self.shown,
                            one_line(e)
                        )
                    })?;
                let mut names: Vec<String> = metas
                    .iter()
                    .filter_map(|m| {
                        let full = m.location.as_ref();
                        let rel = match &prefix_path {
                            Some(p) => full.strip_prefix(p.as_ref())?.strip_prefix('/')?,
                            None => full,
                        };
                        // A zero-byte `prefix/` folder marker is no file of the pack.
                        (!rel.is_empty()).then(|| rel.to_owned())
                    })
                    .collect();
                names.sort();
                Ok(names)
            }
            Backend::Dir(dir) => match std::fs::metadata(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => bail!("{}: {e}", self.shown),
                Ok(m) if !m.is_dir() => bail!("{}: not a directory", self.shown),
                Ok(_) => Ok(pack_check::list_files(dir)?.into_iter().collect()),
            },
        }
    }

    /// Creates the object `name`, failing when it already exists.
    async fn create(&self, name: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let exists = || {
            anyhow::anyhow!(
                "{}: the object already exists and a pack is write-once; export to a new prefix",
                self.url(name)
            )
        };
        match &self.backend {
            Backend::S3 { store, .. } => {
                let key = self.key(name)?;
                match store
                    .put_opts(&key, bytes.into(), PutMode::Create.into())
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(object_store::Error::AlreadyExists { .. }) => Err(exists()),
                    Err(e) => bail!("{}: cannot write: {}", self.url(name), one_line(e)),
                }
            }
            Backend::Dir(dir) => {
                let path = dir.join(name);
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                let mut file = match tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .await
                {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists()),
                    Err(e) => bail!("{}: cannot write: {e}", self.url(name)),
                };
                file.write_all(&bytes).await?;
                file.sync_all()
                    .await
                    .with_context(|| format!("{}: cannot write", self.url(name)))
            }
        }
    }

    /// Reads the object `name` chunk by chunk, into the file `to` when given; returns the
    /// hex SHA-256 of what was read.
    async fn read(&self, name: &str, to: Option<&Path>) -> anyhow::Result<String> {
        let mut out = match to {
            Some(path) => Some(
                tokio::fs::File::create(path)
                    .await
                    .with_context(|| format!("cannot create {}", path.display()))?,
            ),
            None => None,
        };
        let mut hasher = Sha256::new();
        let failed = |e: String| anyhow::anyhow!("{}: cannot read: {e}", self.url(name));
        match &self.backend {
            Backend::S3 { store, .. } => {
                let mut stream = store
                    .get(&self.key(name)?)
                    .await
                    .map_err(|e| failed(one_line(e)))?
                    .into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| failed(one_line(e)))?;
                    hasher.update(&chunk);
                    if let Some(f) = &mut out {
                        f.write_all(&chunk).await?;
                    }
                }
            }
            Backend::Dir(dir) => {
                let mut file = tokio::fs::File::open(dir.join(name))
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = file
                        .read(&mut buf)
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    if let Some(f) = &mut out {
                        f.write_all(&buf[..n]).await?;
                    }
                }
            }
        }
        if let Some(f) = &mut out {
            f.flush().await?;
        }
        Ok(hex::encode(hasher.finalize()))
    }

    async fn remove(&self, name: &str) -> anyhow::Result<()> {
        match &self.backend {
            Backend::S3 { store, .. } => store
                .delete(&self.key(name)?)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {}", self.url(name), one_line(e))),
            Backend::Dir(dir) => tokio::fs::remove_file(dir.join(name))
                .await
                .with_context(|| self.url(name)),
        }
    }

    /// Creates `name` from the local file and reads it back, failing unless the stored bytes
    /// are the local ones; says whether this call created the object.
    async fn copy_checked(&self, dir: &Path, name: String) -> Copied {
        let mut created = false;
        let result = async {
            let bytes = tokio::fs::read(dir.join(&name))
                .await
                .with_context(|| format!("cannot read {}", dir.join(&name).display()))?;
            let local = pack_check::sha256_hex(&bytes);
            self.create(&name, bytes).await?;
            created = true;
            let stored = self.read(&name, None).await?;
            if stored != local {
                bail!(
                    "{}: read back with sha256 {stored}, but the file written has {local}",
                    self.url(&name)
                );
            }
            Ok(())
        }
        .await;
        Copied {
            name,
            created,
            result,
        }
    }
}

/// One file's copy into the store.
struct Copied {
    name: String,
    /// Whether the object was created (and so is this export's to remove on failure).
    created: bool,
    result: anyhow::Result<()>,
}

/// Copies the pack in `dir` under the store's prefix, `SHA256SUMS` last; on failure removes
/// the objects this export created, the manifest first.
async fn upload(store: &Store, dir: &Path) -> anyhow::Result<()> {
    let files: Vec<String> = pack_check::list_files(dir)?
        .into_iter()
        .filter(|f| f != SUMS)
        .collect();
    let mut copied: Vec<Copied> = futures_util::stream::iter(files)
        .map(|name| store.copy_checked(dir, name))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    if copied.iter().all(|c| c.result.is_ok()) {
        copied.insert(0, store.copy_checked(dir, SUMS.to_owned()).await);
    }
    let mut created = Vec::new();
    let mut failure = None;
    for c in copied {
        if c.created {
            created.push(c.name);
        }
        if let Err(e) = c.result {
            failure.get_or_insert(e);
        }
    }
    let Some(failure) = failure else {
        return Ok(());
    };
    let mut left = 0;
    for name in &created {
        if store.remove(name).await.is_err() {
            left += 1;
        }
    }
    if left == 0 {
        Err(failure.context("the pack was not exported (the objects written were removed)"))
    } else {
        Err(failure.context(format!(
            "the pack was not exported and {left} object(s) it wrote under {} could not be removed: delete them before exporting there again",
            store.shown
        )))
    }
}

/// `custody export ... -o s3://bucket/prefix/` (or `file:///abs/dir/`).
pub async fn export(
    client: &Client,
    tenant: &str,
    args: PackArgs,
    location: Location,
    endpoint: &EndpointArg,
    json: bool,
) -> anyhow::Result<i32> {
    let (pinned, q) = pack::prepare(args)?;
    let store = Store::open(location, endpoint)?;
    let existing = store
        .list()
        .await
        .map_err(|e| anyhow::anyhow!("--output {e:#}"))?;
    if let Some(first) = existing.first() {
        bail!(
            "--output {}: {} object(s) already exist under this prefix (e.g. {}) and a pack is write-once; export to a new prefix",
            store.shown,
            existing.len(),
            store.url(first)
        );
    }
    let fetched = pack::fetch(client, tenant, &pinned, &q).await?;
    let scratch = tempfile::Builder::new()
        .prefix("custody-pack-")
        .tempdir()
        .context("cannot create a temporary directory for the pack")?;
    let dir = scratch.path().join("pack");
    pack::write_dir(&dir, &fetched.files)?;
    upload(&store, &dir).await?;
    pack::exported(json, &fetched, &store.shown, true)?;
    Ok(0)
}

/// `custody verify s3://bucket/prefix/` (or `file:///abs/dir/`): downloads the pack, checking
/// each object against the manifest as it is read, then checks the copy offline.
pub async fn verify(
    location: Location,
    endpoint: &EndpointArg,
    pinned: &[NoteVerifier],
) -> anyhow::Result<PackReport> {
    let store = Store::open(location, endpoint)?;
    let names = store.list().await?;
    if !names.iter().any(|n| n == SUMS) {
        bail!(
            "{}: no {SUMS} under this prefix, so no evidence pack (its manifest is written last): give the prefix `custody export -o` printed",
            store.shown
        );
    }
    let scratch = tempfile::Builder::new()
        .prefix("custody-pack-")
        .tempdir()
        .context("cannot create a temporary directory for the pack")?;
    let dir = scratch.path().join("pack");
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    store.read(SUMS, Some(&dir.join(SUMS))).await?;
    let manifest: BTreeMap<String, String> =
        pack_check::manifest(&std::fs::read_to_string(dir.join(SUMS)).unwrap_or_default())
            .into_iter()
            .flatten()
            .collect();

    let mut problems = Vec::new();
    let mut wanted = Vec::new();
    for name in names.into_iter().filter(|n| n != SUMS) {
        if pack_check::is_inside(&name) {
            wanted.push(name);
        } else {
            problems.push(PackProblem {
                file: store.url(&name),
                check: "object_key".into(),
                message: "the key is not a file name a pack can hold".into(),
            });
        }
    }
    let manifest = &manifest;
    let (store, dir_ref) = (&store, &dir);
    let found: Vec<Option<PackProblem>> = futures_util::stream::iter(wanted)
        .map(|name| async move {
            let path = dir_ref.join(&name);
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let read = store.read(&name, Some(&path)).await?;
            Ok::<_, anyhow::Error>(match manifest.get(&name) {
                Some(want) if *want != read => Some(PackProblem {
                    file: store.url(&name),
                    check: "object_sha256".into(),
                    message: format!("its sha256 as read is {read}, {SUMS} says {want}"),
                }),
                _ => None,
            })
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    problems.extend(found.into_iter().flatten());
    problems.sort_by(|a, b| a.file.cmp(&b.file));

    // Errors name files in the temporary copy: name the objects instead.
    let local = format!("{}/", dir.display());
    let offline = pack_check::verify(&dir, pinned).map_err(|e| {
        let e = anyhow::Error::from(e);
        let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
        anyhow::anyhow!(chain.join(": ").replace(&local, &store.shown))
    });
    match offline {
        Ok(mut report) => {
            problems.append(&mut report.problems);
            report.problems = problems;
            report.ok = report.problems.is_empty();
            Ok(report)
        }
        Err(e) if problems.is_empty() => Err(e),
        // The offline checks could not even start (say, on a changed pack.json): the objects
        // that differ from the manifest are still the finding.
        Err(e) => {
            problems.push(PackProblem {
                file: store.shown.clone(),
                check: "pack".into(),
                message: e.to_string(),
            });
            Ok(PackReport {
                ok: false,
                scope: store.shown.clone(),
                passed: Vec::new(),
                warnings: Vec::new(),
                problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_store(dir: &Path) -> Store {
        Store::open(Location::Dir(dir.to_path_buf()), &EndpointArg::default()).unwrap()
    }

    #[tokio::test]
    async fn objects_are_created_once_and_read_back_as_written() {
        let tmp = tempfile::tempdir().unwrap();
        let store = dir_store(&tmp.path().join("out"));
        assert!(store.list().await.unwrap().is_empty());
        store.create("a/b.json", b"one".to_vec()).await.unwrap();
        let e = store.create("a/b.json", b"two".to_vec()).await.unwrap_err();
        assert!(e.to_string().contains("write-once"), "{e}");
        assert_eq!(
            store.read("a/b.json", None).await.unwrap(),
            pack_check::sha256_hex(b"one")
        );
        assert_eq!(store.list().await.unwrap(), vec!["a/b.json".to_owned()]);
    }

    #[tokio::test]
    async fn a_failed_upload_never_writes_the_manifest_and_removes_what_it_wrote() {
        let tmp = tempfile::tempdir().unwrap();
        let local = tmp.path().join("pack");
        for (name, bytes) in [("a.json", "a"), ("b.json", "b"), (SUMS, "sums")] {
            std::fs::create_dir_all(&local).unwrap();
            std::fs::write(local.join(name), bytes).unwrap();
        }
        let out = tmp.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("b.json"), "someone else's").unwrap();
        let e = upload(&dir_store(&out), &local).await.unwrap_err();
        assert!(format!("{e:#}").contains("write-once"), "{e:#}");
        assert_eq!(pack_check::list_files(&out).unwrap().len(), 1);
        assert_eq!(
            std::fs::read_to_string(out.join("b.json")).unwrap(),
            "someone else's"
        );

        let fresh = tmp.path().join("fresh");
        upload(&dir_store(&fresh), &local).await.unwrap();
        assert_eq!(
            pack_check::list_files(&fresh).unwrap(),
            pack_check::list_files(&local).unwrap()
        );
    }

    fn parse(v: &str) -> anyhow::Result<Option<Location>> {
        Location::parse("--output", Path::new(v))
    }

    #[test]
    fn locations_parse_or_name_the_fix() {
        assert_eq!(parse("packs/p1").unwrap(), None);
        assert_eq!(parse("./odd://name").unwrap(), None);
        assert_eq!(
            parse("s3://bkt/packs/p1/").unwrap(),
            Some(Location::S3 {
                bucket: "bkt".into(),
                prefix: "packs/p1".into()
            })
        );
        assert_eq!(
            parse("s3://bkt").unwrap(),
            Some(Location::S3 {
                bucket: "bkt".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            parse("file:///tmp/a%20b/").unwrap(),
            Some(Location::Dir(PathBuf::from("/tmp/a b/")))
        );
        for (v, needle) in [
            ("s3:///packs/", "names no bucket"),
            ("s3://bkt/a/../b/", "segment"),
            ("gs://bkt/p/", "unsupported scheme gs://"),
            ("file://host/dir/", "file:///ABSOLUTE/DIR/"),
        ] {
            let e = parse(v).unwrap_err().to_string();
            assert!(e.starts_with("--output"), "{v}: {e}");
            assert!(e.contains(needle), "{v}: {e}");
        }
    }
}
