//! Large payloads in object storage (S3-compatible or a local directory), for deployments
//! whose payloads would swell the database: a store that wraps any backend.
//!
//! A payload longer than the inline limit is written as one object, and the database keeps a
//! small reference in its place: the object's key, length and SHA-256. The object is written
//! (durably, as the object store acknowledges it) before the batch that references it is
//! committed, so an acknowledged entry never names a missing object. Every read fetches the
//! object and checks its length and digest; a mismatch is reported as corruption, never
//! served. Erasing a payload deletes its object first, then the reference, so a retried
//! erasure finishes the job.
//!
//! Object keys are `<prefix>/<tenant>/<log>/<index>-<sha256>`: an attempt that lost the race
//! for an index (another server committed it first) can leave an orphan, but never overwrite
//! the object a committed entry names.
//!
//! Everything else — entries, tree, checkpoints, principals — goes to the wrapped store
//! unchanged. With no object store configured the wrapper passes payloads through.

use std::sync::Arc;

use custody_core::envelope::TenantName;
use custody_core::merkle::{Hash, Subtree};
use custody_store::{
    AppendBatch, AuthStore, EntryFilter, ExistingEntry, LedgerReader, LedgerWriter, LockGuard,
    LogKey, LogRecord, PayloadHolder, PrincipalRow, StoreError, StoreResult, StoredCheckpoint,
    StoredEntry, StoredPayload, TokenRow,
};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What the database keeps instead of a payload stored as an object: this prefix, then the
/// reference as JSON. A JSON payload never starts with a NUL byte, so the two cannot be
/// confused.
const REFERENCE_PREFIX: &[u8] = b"\0custody-object\n";

/// Objects written or fetched at once within one batch or listing.
const CONCURRENCY: usize = 8;

/// Where a payload's bytes are, and what they must hash to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct Reference {
    /// Object key.
    key: String,
    /// Length in bytes.
    size: u64,
    /// SHA-256, hex.
    sha256: String,
}

/// The object store large payloads go to, with its rules.
#[derive(Clone)]
pub struct PayloadObjects {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    inline_max: usize,
    /// Shown in logs and messages: the configured URL.
    shown: String,
}

impl std::fmt::Debug for PayloadObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadObjects")
            .field("url", &self.shown)
            .field("inline_max", &self.inline_max)
            .finish()
    }
}

/// Why an object store URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ObjectUrlError(String);

impl PayloadObjects {
    /// Payloads longer than `inline_max` bytes go to `url`: `s3://bucket/prefix` (endpoint,
    /// region and credentials from the `AWS_*` environment, as the AWS tools read them) or
    /// `file:///absolute/dir`.
    pub fn from_url(url: &str, inline_max: usize) -> Result<Self, ObjectUrlError> {
        let parsed = url::Url::parse(url).map_err(|e| {
            ObjectUrlError(format!(
                "{url:?} is not a URL ({e}): use s3://BUCKET/PREFIX or file:///ABSOLUTE/DIR"
            ))
        })?;
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match parsed.scheme() {
            "s3" => {
                let bucket = parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(|| {
                    ObjectUrlError(format!("{url:?} names no bucket: use s3://BUCKET/PREFIX"))
                })?;
                let s3 = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| ObjectUrlError(format!("{url:?}: {e}")))?;
                (Arc::new(s3), parsed.path().trim_matches('/').to_owned())
            }
            "file" => {
                let dir = parsed.to_file_path().map_err(|_| {
                    ObjectUrlError(format!("{url:?} is not an absolute file:/// URL"))
                })?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| ObjectUrlError(format!("cannot create {}: {e}", dir.display())))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| ObjectUrlError(format!("{url:?}: {e}")))?;
                (Arc::new(fs), String::new())
            }
            other => {
                return Err(ObjectUrlError(format!(
                    "{url:?}: unsupported scheme {other}:// (use s3://BUCKET/PREFIX or file:///ABSOLUTE/DIR)"
                )));
            }
        };
        Ok(Self::new(store, &prefix, inline_max, url))
    }

    /// Payloads longer than `inline_max` bytes go to `store` under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, inline_max: usize, shown: &str) -> Self {
        Self {
            store,
            prefix: ObjectPath::from(prefix),
            inline_max,
            shown: shown.to_owned(),
        }
    }

    fn key(&self, log: &LogKey, index: u64, sha256: &str) -> ObjectPath {
        self.prefix
            .clone()
            .join(log.tenant.as_str())
            .join(log.log.as_str())
            .join(format!("{index:020}-{sha256}"))
    }

    fn unavailable(&self, what: &str, e: object_store::Error) -> StoreError {
        tracing::warn!(store = %self.shown, error = %e, "object storage call failed: {what}");
        StoreError::Unavailable("the payload object store is unavailable".into())
    }

    /// Writes the payload as an object; returns the reference to keep in its place.
    async fn put(&self, log: &LogKey, index: u64, json: &[u8]) -> StoreResult<Vec<u8>> {
        let sha256 = hex::encode(Sha256::digest(json));
        let key = self.key(log, index, &sha256);
        self.store
            .put(&key, json.to_vec().into())
            .await
            .map_err(|e| self.unavailable("put", e))?;
        let reference = Reference {
            key: key.to_string(),
            size: json.len() as u64,
            sha256,
        };
        let mut out = REFERENCE_PREFIX.to_vec();
        out.extend(
            serde_json::to_vec(&reference)
                .map_err(|e| StoreError::Corrupt(format!("payload reference: {e}")))?,
        );
        Ok(out)
    }

    /// The bytes a stored payload column stands for: itself, or the object it references,
    /// checked against the recorded length and digest.
    async fn resolve(&self, index: u64, stored: Vec<u8>) -> StoreResult<Vec<u8>> {
        let Some(reference) = reference_of(index, &stored)? else {
            return Ok(stored);
        };
        let key = ObjectPath::from(reference.key.as_str());
        let bytes = match self.store.get(&key).await {
            Ok(got) => got.bytes().await.map_err(|e| self.unavailable("get", e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::Corrupt(format!(
                    "the payload of entry {index} is missing from object storage ({})",
                    reference.key
                )));
            }
            Err(e) => return Err(self.unavailable("get", e)),
        };
        if bytes.len() as u64 != reference.size
            || hex::encode(Sha256::digest(&bytes)) != reference.sha256
        {
            return Err(StoreError::Corrupt(format!(
                "the payload object of entry {index} ({}) does not match its recorded SHA-256",
                reference.key
            )));
        }
        Ok(bytes.to_vec())
    }
}

fn reference_of(index: u64, stored: &[u8]) -> StoreResult<Option<Reference>> {
    let Some(json) = stored.strip_prefix(REFERENCE_PREFIX) else {
        return Ok(None);
    };
    serde_json::from_slice(json).map(Some).map_err(|_| {
        StoreError::Corrupt(format!(
            "the payload reference of entry {index} is unreadable"
        ))
    })
}

/// A store that keeps large payloads in object storage and everything else in `S`.
#[derive(Clone)]
pub struct WithPayloadObjects<S> {
    inner: S,
    objects: Option<PayloadObjects>,
}

impl<S> WithPayloadObjects<S> {
    /// Wraps `inner`; with `None`, payloads stay in `inner`.
    pub fn new(inner: S, objects: Option<PayloadObjects>) -> Self {
        Self { inner, objects }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: LedgerReader> WithPayloadObjects<S> {
    async fn resolve_payload(&self, index: u64, p: StoredPayload) -> StoreResult<StoredPayload> {
        match &self.objects {
            Some(o) => Ok(StoredPayload {
                json: o.resolve(index, p.json).await?,
                salt: p.salt,
            }),
            // Without an object store configured, a reference can still be recognised.
            None if reference_of(index, &p.json)?.is_some() => Err(StoreError::Corrupt(format!(
                "the payload of entry {index} is in object storage, but no payload store is configured"
            ))),
            None => Ok(p),
        }
    }

    async fn resolve_entries(&self, entries: Vec<StoredEntry>) -> StoreResult<Vec<StoredEntry>> {
        futures_util::stream::iter(entries)
            .map(|mut e| async move {
                if let Some(p) = e.payload.take() {
                    e.payload = Some(self.resolve_payload(e.index, p).await?);
                }
                Ok::<_, StoreError>(e)
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }
}

impl<S: LedgerReader + Clone> LedgerReader for WithPayloadObjects<S> {
    async fn tenants(&self) -> StoreResult<Vec<TenantName>> {
        self.inner.tenants().await
    }

    async fn logs(&self, tenant: &TenantName) -> StoreResult<Vec<LogRecord>> {
        self.inner.logs(tenant).await
    }

    async fn latest_checkpoint(&self, key: &LogKey) -> StoreResult<StoredCheckpoint> {
        self.inner.latest_checkpoint(key).await
    }

    async fn checkpoint_at(
        &self,
        key: &LogKey,
        size: u64,
    ) -> StoreResult<Option<StoredCheckpoint>> {
        self.inner.checkpoint_at(key, size).await
    }

    async fn nodes(&self, key: &LogKey, subtrees: &[Subtree]) -> StoreResult<Vec<Option<Hash>>> {
        self.inner.nodes(key, subtrees).await
    }

    async fn entry(&self, key: &LogKey, index: u64) -> StoreResult<Option<StoredEntry>> {
        let found = self.inner.entry(key, index).await?;
        Ok(match found {
            Some(e) => self.resolve_entries(vec![e]).await?.pop(),
            None => None,
        })
    }

    async fn entry_range(&self, key: &LogKey, from: u64, to: u64) -> StoreResult<Vec<StoredEntry>> {
        let entries = self.inner.entry_range(key, from, to).await?;
        self.resolve_entries(entries).await
    }

    async fn find_entries(
        &self,
        key: &LogKey,
        filter: &EntryFilter,
    ) -> StoreResult<Vec<StoredEntry>> {
        let entries = self.inner.find_entries(key, filter).await?;
        self.resolve_entries(entries).await
    }

    async fn existing_ids(&self, key: &LogKey, ids: &[Uuid]) -> StoreResult<Vec<ExistingEntry>> {
        self.inner.existing_ids(key, ids).await
    }

    async fn payloads(
        &self,
        key: &LogKey,
        from: u64,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<PayloadHolder>> {
        let holders = self.inner.payloads(key, from, before, limit).await?;
        futures_util::stream::iter(holders)
            .map(|mut h| async move {
                h.payload = self.resolve_payload(h.index, h.payload).await?;
                Ok::<_, StoreError>(h)
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await
    }

    async fn checkpoints(
        &self,
        key: &LogKey,
        from_size: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredCheckpoint>> {
        self.inner.checkpoints(key, from_size, limit).await
    }
}

impl<S: LedgerWriter + Clone> LedgerWriter for WithPayloadObjects<S> {
    async fn create_tenant(
        &self,
        tenant: &TenantName,
        logs: Vec<(LogRecord, StoredCheckpoint)>,
    ) -> StoreResult<()> {
        self.inner.create_tenant(tenant, logs).await
    }

    async fn append_batch(&self, mut batch: AppendBatch) -> StoreResult<()> {
        if let Some(o) = &self.objects {
            let large: Vec<(usize, u64, Vec<u8>)> = batch
                .entries
                .iter()
                .enumerate()
                .filter_map(|(pos, e)| {
                    let p = e.payload.as_ref()?;
                    (p.json.len() > o.inline_max).then(|| (pos, e.index, p.json.clone()))
                })
                .collect();
            let key = &batch.key;
            let references: Vec<(usize, Vec<u8>)> = futures_util::stream::iter(large)
                .map(|(pos, index, json)| async move {
                    Ok::<_, StoreError>((pos, o.put(key, index, &json).await?))
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            for (pos, reference) in references {
                if let Some(p) = batch.entries[pos].payload.as_mut() {
                    p.json = reference;
                }
            }
        }
        self.inner.append_batch(batch).await
    }

    async fn erase_payload(&self, key: &LogKey, index: u64) -> StoreResult<bool> {
        if let Some(o) = &self.objects
            && let Some(stored) = self.inner.entry(key, index).await?
            && let Some(p) = stored.payload
            && let Some(reference) = reference_of(index, &p.json)?
        {
            match o
                .store
                .delete(&ObjectPath::from(reference.key.as_str()))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(o.unavailable("delete", e)),
            }
        }
        self.inner.erase_payload(key, index).await
    }

    async fn compact(&self) -> StoreResult<()> {
        self.inner.compact().await
    }

    async fn set_verifier_key(&self, key: &LogKey, verifier_key: &str) -> StoreResult<()> {
        self.inner.set_verifier_key(key, verifier_key).await
    }

    fn shared(&self) -> bool {
        self.inner.shared()
    }

    async fn lock(&self, name: &str) -> StoreResult<LockGuard> {
        self.inner.lock(name).await
    }

    async fn sequencer_turn(&self, key: &LogKey) -> StoreResult<(LockGuard, u64)> {
        self.inner.sequencer_turn(key).await
    }
}

impl<S: AuthStore> AuthStore for WithPayloadObjects<S> {
    async fn bootstrap(&self, principal: PrincipalRow, token: TokenRow) -> StoreResult<bool> {
        self.inner.bootstrap(principal, token).await
    }

    async fn create_principal(&self, principal: PrincipalRow) -> StoreResult<()> {
        self.inner.create_principal(principal).await
    }

    async fn principal(&self, id: &str) -> StoreResult<Option<PrincipalRow>> {
        self.inner.principal(id).await
    }

    async fn principals(&self, tenant: Option<&str>) -> StoreResult<Vec<PrincipalRow>> {
        self.inner.principals(tenant).await
    }

    async fn add_token(&self, token: TokenRow) -> StoreResult<()> {
        self.inner.add_token(token).await
    }

    async fn token(&self, id: &str) -> StoreResult<Option<(TokenRow, PrincipalRow)>> {
        self.inner.token(id).await
    }

    async fn tokens(&self, principal_id: &str) -> StoreResult<Vec<TokenRow>> {
        self.inner.tokens(principal_id).await
    }

    async fn revoke_token(&self, id: &str, at_micros: i64) -> StoreResult<bool> {
        self.inner.revoke_token(id, at_micros).await
    }
}
