//! The ledger service: tenants, logs and their keys, appends through per-log sequencers, and
//! every verified read (entries, checkpoints, proofs).
//!
//! It sits between the evidence service (`custody-governance`) and a storage backend, and it
//! owns the rules that make the log trustworthy: entries are validated and sealed before they
//! are sequenced; each log has exactly one sequencer in this process; a write is acknowledged
//! only once durable and covered by a signed checkpoint; proofs are assembled from stored
//! subtree hashes in O(log n) reads.
//!
//! API boundary: [`Ledger::open`] returns the shared, read-only [`Ledger`] and the one
//! [`Appender`], the capability to write. The appender is not `Clone`: whoever holds it (the
//! evidence service) is the only code that can append, create tenants or rotate keys, so no
//! front end can write evidence that skipped the service's checks.

mod keys;
mod sequencer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use custody_core::checkpoint::Checkpoint;
use custody_core::commitment::{self, Salt};
use custody_core::envelope::{
    EntryInput, Envelope, LogName, TenantName, Timestamp, ValidationError, origin,
    validate_server_name,
};
use custody_core::merkle::{self, Hash};
use custody_core::note::NoteSigner;
use custody_core::tlog_proof::TlogProof;
use custody_store::{
    AccessChange, EntryFilter, LedgerReader, LedgerWriter, LogKey, LogRecord, StoreError,
    StoredCheckpoint, StoredEntry, StoredPayload,
};
use time::OffsetDateTime;
use tokio::sync::{Mutex, RwLock, oneshot};
use uuid::Uuid;

pub use custody_core::rotation::{KEY_ROTATED, KeyRotation};
pub use keys::{KeyError, KeyStore};
pub use sequencer::PreparedEntry;
use sequencer::{AppendRequest, Sequencer, SequencerHandle};

/// Most entries one listing page returns.
pub const MAX_PAGE: u32 = 1000;

/// Why a ledger operation failed. Variants map one-to-one onto HTTP problem types.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// The input is invalid; nothing was written.
    #[error("{0}")]
    Invalid(ValidationError),
    /// The tenant, log, entry or checkpoint does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what is recorded (an existing tenant, a reused id).
    #[error("{0}")]
    Conflict(String),
    /// Storage is unreachable; nothing was acknowledged, retrying may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// Stored data or keys break an invariant; the log refuses to sign or serve over it.
    #[error("{0}")]
    Corrupt(String),
}

impl From<StoreError> for LedgerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => LedgerError::NotFound(m),
            StoreError::Conflict(m) => LedgerError::Conflict(m),
            StoreError::Corrupt(m) => LedgerError::Corrupt(m),
            StoreError::Unavailable(m) => LedgerError::Unavailable(m),
        }
    }
}

impl From<ValidationError> for LedgerError {
    fn from(e: ValidationError) -> Self {
        LedgerError::Invalid(e)
    }
}

impl From<KeyError> for LedgerError {
    fn from(e: KeyError) -> Self {
        LedgerError::Corrupt(e.to_string())
    }
}

/// How the ledger is set up.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// First part of every origin, e.g. `custody.example`.
    pub server_name: String,
    /// Where log signing keys live.
    pub key_dir: PathBuf,
}

/// One appended (or already present) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its index in the log.
    pub index: u64,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// Its id.
    pub id: Uuid,
    /// True when the id was already in the log with the same content (an idempotent retry).
    pub existing: bool,
}

/// The result of one atomic append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// One result per submitted entry, in order.
    pub results: Vec<Appended>,
    /// Size of the signed checkpoint that covers every entry above.
    pub checkpoint_size: u64,
}

/// A log with its current state, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogInfo {
    /// Registration.
    pub record: LogRecord,
    /// Latest checkpoint.
    pub checkpoint: StoredCheckpoint,
}

/// An entry as read, with its leaf hash re-derived from the stored bytes.
#[derive(Debug, Clone)]
pub struct EntryView {
    /// Index.
    pub index: u64,
    /// Parsed envelope.
    pub envelope: serde_json::Value,
    /// `SHA-256(0x00 || envelope bytes)`.
    pub leaf_hash: Hash,
    /// Payload and salt, when present and not erased.
    pub payload: Option<(serde_json::Value, Salt)>,
}

/// A page of entries.
#[derive(Debug, Clone)]
pub struct EntryPage {
    /// Matching entries in index order.
    pub entries: Vec<EntryView>,
    /// Where the next page starts, if there may be more.
    pub next_cursor: Option<u64>,
    /// The checkpoint size the page is consistent with.
    pub checkpoint_size: u64,
}

/// An inclusion proof for one leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Leaf index.
    pub index: u64,
    /// Tree size the proof is for.
    pub size: u64,
    /// The leaf hash.
    pub leaf_hash: Hash,
    /// Audit path, leaf's sibling first.
    pub hashes: Vec<Hash>,
}

/// The custody ledger over a storage backend.
pub struct Ledger<S> {
    store: S,
    config: LedgerConfig,
    keys: KeyStore,
    sequencers: RwLock<HashMap<LogKey, SequencerHandle>>,
    /// The sequencer tasks, awaited on shutdown so every queued batch finishes.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Latest durable checkpoint per log, shared with the sequencers (see [`CheckpointCache`]).
    checkpoints: Arc<CheckpointCache>,
    /// Serialises tenant creation so two requests cannot both write keys for one tenant.
    creating: Mutex<()>,
    /// Serialises key rotations.
    rotating: Mutex<()>,
}

/// The capability to write to the ledger: appends, tenant creation, key rotation and the
/// storage writes the evidence service makes (erasure, locks). There is one per [`Ledger`],
/// handed out by [`Ledger::open`], and it cannot be cloned.
pub struct Appender<S> {
    ledger: Arc<Ledger<S>>,
}

impl<S> std::fmt::Debug for Appender<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("server_name", &self.ledger.config.server_name)
            .finish_non_exhaustive()
    }
}

impl<S: LedgerWriter + Clone> Ledger<S> {
    /// Opens the ledger over `store`: the shared ledger for reads, and the one [`Appender`]
    /// that may write to it.
    pub fn open(store: S, config: LedgerConfig) -> Result<(Arc<Self>, Appender<S>), LedgerError> {
        validate_server_name(&config.server_name)?;
        let keys = KeyStore::open(&config.key_dir)?;
        let ledger = Arc::new(Self {
            store,
            config,
            keys,
            sequencers: RwLock::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            checkpoints: Arc::new(CheckpointCache::default()),
            rotating: Mutex::new(()),
            creating: Mutex::new(()),
        });
        let appender = Appender {
            ledger: ledger.clone(),
        };
        Ok((ledger, appender))
    }

    /// The storage backend, for reads only.
    pub fn reader(&self) -> &impl LedgerReader {
        &self.store
    }

    /// The configured server name.
    pub fn server_name(&self) -> &str {
        &self.config.server_name
    }
}

impl<S: LedgerWriter + Clone> Appender<S> {
    /// The ledger this appender writes to.
    pub fn ledger(&self) -> &Arc<Ledger<S>> {
        &self.ledger
    }

    /// The storage backend, with write access: erasure, compaction and cross-server locks.
    pub fn store(&self) -> &S {
        &self.ledger.store
    }

    /// Creates a tenant with its three logs, their keys and their empty-tree checkpoints.
    pub async fn create_tenant(&self, tenant: &TenantName) -> Result<Vec<LogInfo>, LedgerError> {
        let ledger = &*self.ledger;
        let _guard = ledger.creating.lock().await;
        // Key files are written before the tenant's rows: another server must not be creating
        // the same tenant meanwhile (its keys would replace these).
        let _no_other_server_creates = ledger.store.lock(custody_store::TENANTS_LOCK).await?;
        match ledger.store.logs(tenant).await {
            Ok(_) => {
                return Err(LedgerError::Conflict(format!(
                    "tenant {tenant} already exists"
                )));
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let mut logs = Vec::new();
        for log in LogName::ALL {
            let origin = origin(&ledger.config.server_name, tenant, log);
            let signer = ledger.keys.create(tenant, log, &origin)?;
            let checkpoint = sign_checkpoint(&signer, &origin, 0, merkle::empty_root())?;
            logs.push((
                LogRecord {
                    key: LogKey {
                        tenant: tenant.clone(),
                        log,
                    },
                    origin,
                    verifier_key: signer.verifier().to_string(),
                },
                checkpoint,
            ));
        }
        ledger.store.create_tenant(tenant, logs.clone()).await?;
        tracing::info!(%tenant, "tenant created");
        Ok(logs
            .into_iter()
            .map(|(record, checkpoint)| LogInfo { record, checkpoint })
            .collect())
    }

    /// Validates, seals and prepares entries for a log: receive time, ids, fresh salts and
    /// commitments. Pure CPU work done on the caller's task, so the sequencer only orders.
    pub fn prepare(
        &self,
        key: &LogKey,
        inputs: &[EntryInput],
    ) -> Result<Vec<PreparedEntry>, LedgerError> {
        self.ledger.prepare(key, inputs)
    }

    /// Appends entries atomically (all or none) and returns once they are durable and covered
    /// by a signed checkpoint.
    pub async fn append(
        &self,
        key: &LogKey,
        inputs: &[EntryInput],
    ) -> Result<AppendOutcome, LedgerError> {
        if inputs.is_empty() {
            return Err(LedgerError::Invalid(ValidationError::one(
                "",
                "no entries to append",
            )));
        }
        let prepared = self.ledger.prepare(key, inputs)?;
        self.ledger.append_prepared(key, prepared, Vec::new()).await
    }

    /// Appends entries already prepared by [`Appender::prepare`].
    pub async fn append_prepared(
        &self,
        key: &LogKey,
        entries: Vec<PreparedEntry>,
    ) -> Result<AppendOutcome, LedgerError> {
        self.ledger.append_prepared(key, entries, Vec::new()).await
    }

    /// Appends prepared entries together with the principal and token changes they record, in
    /// one transaction: either the entries and the changes are durable, or neither is. The
    /// request is committed in a batch of its own.
    pub async fn append_recording(
        &self,
        key: &LogKey,
        entries: Vec<PreparedEntry>,
        access: Vec<AccessChange>,
    ) -> Result<AppendOutcome, LedgerError> {
        self.ledger.append_prepared(key, entries, access).await
    }

    /// Switches a log to a new signing key. The announcement, a `key.rotated` entry naming the
    /// old and new verifier keys, is committed alone and signed with the old key, so whoever
    /// pinned the old key can prove the new one; every later checkpoint is signed with the new
    /// key. `actor` is who asked.
    pub async fn rotate_key(
        &self,
        key: &LogKey,
        actor: custody_core::envelope::Actor,
    ) -> Result<KeyRotation, LedgerError> {
        self.ledger.rotate_key(key, actor).await
    }
}

impl<S: LedgerWriter + Clone> Ledger<S> {
    /// Every tenant.
    pub async fn tenants(&self) -> Result<Vec<TenantName>, LedgerError> {
        Ok(self.store.tenants().await?)
    }

    /// The logs of a tenant with their latest checkpoints.
    pub async fn logs(&self, tenant: &TenantName) -> Result<Vec<LogInfo>, LedgerError> {
        let mut out = Vec::new();
        let records = self.store.logs(tenant).await.map_err(|e| match e {
            StoreError::NotFound(_) => unknown_tenant(tenant),
            other => other.into(),
        })?;
        for record in records {
            let checkpoint = self.latest(&record.key).await?;
            out.push(LogInfo { record, checkpoint });
        }
        Ok(out)
    }

    async fn record(&self, key: &LogKey) -> Result<LogRecord, LedgerError> {
        self.store
            .logs(&key.tenant)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => unknown_tenant(&key.tenant),
                other => other.into(),
            })?
            .into_iter()
            .find(|r| r.key.log == key.log)
            .ok_or_else(|| LedgerError::NotFound(format!("log {}/{}", key.tenant, key.log)))
    }

    fn prepare(
        &self,
        key: &LogKey,
        inputs: &[EntryInput],
    ) -> Result<Vec<PreparedEntry>, LedgerError> {
        let time = Timestamp::from_datetime(OffsetDateTime::now_utc());
        let mut out = Vec::with_capacity(inputs.len());
        let mut errors = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            let prefix =
                |e: ValidationError| if inputs.len() > 1 { e.at_item(i) } else { e }.errors;
            let payload = match &input.payload {
                Some(p) => {
                    let salt =
                        Salt::generate().map_err(|e| LedgerError::Unavailable(e.to_string()))?;
                    let commitment = commitment::commit(&salt, p)
                        .map_err(|e| ValidationError::one("payload", e.to_string()));
                    match commitment {
                        Ok(c) => Some((salt, c, p)),
                        Err(e) => {
                            errors.extend(prefix(e));
                            continue;
                        }
                    }
                }
                None => None,
            };
            let id = input.id.unwrap_or_else(Uuid::now_v7);
            match Envelope::seal(
                input,
                key.tenant.clone(),
                key.log,
                id,
                time,
                payload.as_ref().map(|(_, c, _)| c.clone()),
            ) {
                Ok(sealed) => out.push(PreparedEntry {
                    client_id: input.id.is_some(),
                    content_digest: input.content_digest(),
                    sealed,
                    payload: payload.map(|(salt, _, p)| StoredPayload {
                        json: serde_json::to_vec(p).unwrap_or_default(),
                        salt: salt.0,
                    }),
                }),
                Err(e) => errors.extend(prefix(e)),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(LedgerError::Invalid(ValidationError { errors }))
        }
    }

    async fn append_prepared(
        &self,
        key: &LogKey,
        entries: Vec<PreparedEntry>,
        access: Vec<AccessChange>,
    ) -> Result<AppendOutcome, LedgerError> {
        let handle = self.sequencer(key).await?;
        let (reply, rx) = oneshot::channel();
        handle
            .tx
            .send(AppendRequest {
                entries,
                reply,
                rotate_to: None,
                access,
            })
            .await
            .map_err(|_| LedgerError::Unavailable("the log is shutting down".into()))?;
        rx.await
            .map_err(|_| LedgerError::Unavailable("the log stopped before the write".into()))?
    }

    async fn sequencer(&self, key: &LogKey) -> Result<SequencerHandle, LedgerError> {
        if let Some(h) = self.sequencers.read().await.get(key) {
            return Ok(h.clone());
        }
        let mut map = self.sequencers.write().await;
        if let Some(h) = map.get(key) {
            return Ok(h.clone());
        }
        let mut record = self.record(key).await?;
        self.finish_rotation(key, &mut record).await?;
        let signer = self.keys.load(&key.tenant, key.log, &record.origin)?;
        if signer.verifier().to_string() != record.verifier_key {
            return Err(LedgerError::Corrupt(format!(
                "the signing key on disk for {} does not match its registered verifier key",
                record.origin
            )));
        }
        let (handle, task) = Sequencer::start(
            self.store.clone(),
            key.clone(),
            record.origin,
            Arc::new(signer),
            self.keys.clone(),
            self.checkpoints.clone(),
        )
        .await?;
        self.tasks.lock().await.push(task);
        map.insert(key.clone(), handle.clone());
        Ok(handle)
    }

    /// Completes or discards a rotation a crash interrupted: a waiting key that the log
    /// announced becomes the log's key; one it never announced is removed.
    async fn finish_rotation(
        &self,
        key: &LogKey,
        record: &mut LogRecord,
    ) -> Result<(), LedgerError> {
        let Some(next) = self.keys.load_next(&key.tenant, key.log, &record.origin)? else {
            return Ok(());
        };
        let next_vkey = next.verifier().to_string();
        let announced = self
            .key_history(key)
            .await?
            .last()
            .map(|r| r.new_key.clone());
        if announced.as_deref() == Some(next_vkey.as_str()) {
            let size = self.store.latest_checkpoint(key).await?.size;
            self.store.set_verifier_key(key, &next_vkey).await?;
            self.keys.promote_next(&key.tenant, key.log, size)?;
            record.verifier_key = next_vkey;
            tracing::warn!(tenant = %key.tenant, log = %key.log, "completed a key rotation interrupted by a restart");
        } else {
            self.keys.discard_next(&key.tenant, key.log)?;
            tracing::warn!(tenant = %key.tenant, log = %key.log, "discarded a key from a rotation that was never announced");
        }
        Ok(())
    }

    /// Every key rotation announced in a log, oldest first.
    pub async fn key_history(&self, key: &LogKey) -> Result<Vec<KeyRotation>, LedgerError> {
        let found = self
            .store
            .find_entries(
                key,
                &EntryFilter {
                    entry_type: Some(KEY_ROTATED.into()),
                    below_index: u64::MAX,
                    limit: 10_000,
                    ..EntryFilter::default()
                },
            )
            .await?;
        found.iter().map(rotation_of).collect()
    }

    async fn rotate_key(
        &self,
        key: &LogKey,
        actor: custody_core::envelope::Actor,
    ) -> Result<KeyRotation, LedgerError> {
        let _one_at_a_time = self.rotating.lock().await;
        let _no_other_server_rotates = self.store.lock(&custody_store::log_lock_name(key)).await?;
        let record = self.record(key).await?;
        let handle = self.sequencer(key).await?;
        let next = self
            .keys
            .create_next(&key.tenant, key.log, &record.origin)?;
        let new_key = next.verifier().to_string();
        let mut body = serde_json::Map::new();
        body.insert(
            "old_verifier_key".into(),
            record.verifier_key.clone().into(),
        );
        body.insert("new_verifier_key".into(), new_key.clone().into());
        let input = EntryInput {
            id: None,
            entry_type: KEY_ROTATED.into(),
            client_time: None,
            actor,
            subject: custody_core::envelope::SubjectRef {
                kind: "log".into(),
                id: key.log.as_str().into(),
            },
            related: Vec::new(),
            context: custody_core::envelope::Context::default(),
            body,
            payload: None,
        };
        let entries = self.prepare(key, &[input])?;
        let (reply, rx) = oneshot::channel();
        handle
            .tx
            .send(AppendRequest {
                entries,
                reply,
                rotate_to: Some(Arc::new(next)),
                access: Vec::new(),
            })
            .await
            .map_err(|_| LedgerError::Unavailable("the log is shutting down".into()))?;
        let outcome = rx.await.map_err(|_| {
            LedgerError::Unavailable("the log stopped before the rotation".into())
        })??;
        Ok(KeyRotation {
            index: outcome.results[0].index,
            old_key: record.verifier_key,
            new_key,
        })
    }

    /// Stops accepting appends; returns once every sequencer has drained its queue.
    pub async fn shutdown(&self) {
        // Dropping the senders ends each sequencer once its queue is empty; callers stop
        // sending first (the server has finished every request when it calls this).
        self.sequencers.write().await.clear();
        let tasks: Vec<_> = self.tasks.lock().await.drain(..).collect();
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a sequencer task failed");
            }
        }
    }

    /// The latest durable checkpoint, from memory when this process has seen it, unless other
    /// servers write the same store: then a read that follows an acknowledged write made
    /// through another server must see it, so storage is asked.
    async fn latest(&self, key: &LogKey) -> Result<StoredCheckpoint, LedgerError> {
        if !self.store.shared()
            && let Some(cp) = self.checkpoints.get(key)
        {
            return Ok(cp);
        }
        let cp = self.store.latest_checkpoint(key).await?;
        self.checkpoints.advance(key, &cp);
        Ok(cp)
    }

    /// Hashes of complete subtrees, in the order asked (`None` where not stored): the raw
    /// material of hash tiles.
    pub async fn nodes(
        &self,
        key: &LogKey,
        subtrees: &[merkle::Subtree],
    ) -> Result<Vec<Option<Hash>>, LedgerError> {
        Ok(self.store.nodes(key, subtrees).await?)
    }

    /// The latest signed checkpoint.
    pub async fn checkpoint(&self, key: &LogKey) -> Result<StoredCheckpoint, LedgerError> {
        self.latest(key).await
    }

    /// The verifier key of a log.
    pub async fn verifier_key(&self, key: &LogKey) -> Result<String, LedgerError> {
        Ok(self.record(key).await?.verifier_key)
    }

    /// One entry, with its payload.
    pub async fn entry(&self, key: &LogKey, index: u64) -> Result<EntryView, LedgerError> {
        let size = self.latest(key).await?.size;
        if index >= size {
            return Err(LedgerError::NotFound(format!(
                "entry {index} does not exist: the log has {size} entries"
            )));
        }
        let stored = self.store.entry(key, index).await?.ok_or_else(|| {
            LedgerError::Corrupt(format!("entry {index} is missing from storage"))
        })?;
        view(stored)
    }

    /// Entries matching a filter, one page at a time, consistent with the latest checkpoint.
    pub async fn list(
        &self,
        key: &LogKey,
        mut filter: EntryFilter,
    ) -> Result<EntryPage, LedgerError> {
        let size = self.latest(key).await?.size;
        filter.limit = filter.limit.clamp(1, MAX_PAGE);
        filter.below_index = size;
        let stored = self.store.find_entries(key, &filter).await?;
        let next_cursor = if stored.len() == filter.limit as usize {
            stored.last().map(|e| e.index + 1)
        } else {
            None
        };
        Ok(EntryPage {
            entries: stored.into_iter().map(view).collect::<Result<_, _>>()?,
            next_cursor,
            checkpoint_size: size,
        })
    }

    /// Entries `[from, to)` as stored, for export.
    pub async fn export(
        &self,
        key: &LogKey,
        from: u64,
        to: u64,
    ) -> Result<Vec<StoredEntry>, LedgerError> {
        Ok(self.store.entry_range(key, from, to).await?)
    }

    /// Inclusion proof of `index` in the tree of `size` (default: the latest checkpoint).
    pub async fn inclusion_proof(
        &self,
        key: &LogKey,
        index: u64,
        size: Option<u64>,
    ) -> Result<InclusionProof, LedgerError> {
        let latest = self.latest(key).await?.size;
        let size = size.unwrap_or(latest);
        if size > latest {
            return Err(invalid(
                "size",
                format!("tree size {size} is beyond the latest checkpoint ({latest})"),
            ));
        }
        if index >= size {
            return Err(invalid(
                "index",
                format!("index {index} is not in a tree of size {size}: use 0..{size}"),
            ));
        }
        let plan =
            merkle::inclusion_plan(index, size).map_err(|e| invalid("index", e.to_string()))?;
        let leaf = merkle::Subtree { level: 0, index };
        let mut hashes = self.assemble(key, &plan, &[leaf]).await?;
        let leaf_hash = hashes
            .pop()
            .ok_or_else(|| LedgerError::Corrupt("leaf hash missing".into()))?;
        Ok(InclusionProof {
            index,
            size,
            leaf_hash,
            hashes,
        })
    }

    /// Consistency proof between two tree sizes (`from` = 0 gives an empty proof).
    pub async fn consistency_proof(
        &self,
        key: &LogKey,
        from: u64,
        to: u64,
    ) -> Result<Vec<Hash>, LedgerError> {
        let latest = self.latest(key).await?.size;
        if to > latest {
            return Err(invalid(
                "to",
                format!("tree size {to} is beyond the latest checkpoint ({latest})"),
            ));
        }
        if from > to {
            return Err(invalid(
                "from",
                format!("from ({from}) must not exceed to ({to})"),
            ));
        }
        if from == 0 || from == to {
            return Ok(Vec::new());
        }
        let plan =
            merkle::consistency_plan(from, to).map_err(|e| invalid("from", e.to_string()))?;
        self.assemble(key, &plan, &[]).await
    }

    /// The C2SP tlog-proof of one entry against the latest checkpoint.
    pub async fn tlog_proof(&self, key: &LogKey, index: u64) -> Result<TlogProof, LedgerError> {
        let checkpoint = self.latest(key).await?;
        if index >= checkpoint.size {
            return Err(LedgerError::NotFound(format!(
                "entry {index} does not exist: the log has {} entries",
                checkpoint.size
            )));
        }
        let proof = self
            .inclusion_proof(key, index, Some(checkpoint.size))
            .await?;
        Ok(TlogProof {
            extra: None,
            index,
            path: proof.hashes,
            checkpoint: checkpoint.note,
        })
    }

    /// Fetches the hashes a plan needs in one read and folds them; `extra` subtrees are
    /// appended to the result in order.
    async fn assemble(
        &self,
        key: &LogKey,
        plan: &[merkle::ProofNode],
        extra: &[merkle::Subtree],
    ) -> Result<Vec<Hash>, LedgerError> {
        let mut wanted: Vec<merkle::Subtree> = plan
            .iter()
            .flat_map(|n| n.0.iter().copied())
            .chain(extra.iter().copied())
            .collect();
        wanted.sort();
        wanted.dedup();
        let found = self.store.nodes(key, &wanted).await?;
        let map: HashMap<merkle::Subtree, Hash> = wanted
            .into_iter()
            .zip(found)
            .filter_map(|(s, h)| h.map(|h| (s, h)))
            .collect();
        let mut hashes = merkle::assemble(plan, |s| map.get(&s).copied())
            .map_err(|e| LedgerError::Corrupt(format!("cannot build proof: {e}")))?;
        for s in extra {
            hashes.push(*map.get(s).ok_or_else(|| {
                LedgerError::Corrupt(format!("tree node {}/{} is missing", s.level, s.index))
            })?);
        }
        Ok(hashes)
    }
}

/// The latest durable checkpoint of each log, so reads need no database round trip to learn
/// the tree size they may serve.
///
/// Architecture invariant: a checkpoint enters the cache only after it is durable (the
/// sequencer inserts it after its batch commits, readers after reading it from storage), and
/// the cache only moves forward, so it never serves a size that storage does not hold. This
/// relies on this process being the only writer of its logs.
#[derive(Debug, Default)]
pub(crate) struct CheckpointCache {
    latest: std::sync::RwLock<HashMap<LogKey, StoredCheckpoint>>,
}

impl CheckpointCache {
    fn get(&self, key: &LogKey) -> Option<StoredCheckpoint> {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Records `cp` unless a larger checkpoint of the log is already known.
    pub(crate) fn advance(&self, key: &LogKey, cp: &StoredCheckpoint) {
        let mut map = self.latest.write().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some(known) if known.size >= cp.size => {}
            _ => {
                map.insert(key.clone(), cp.clone());
            }
        }
    }
}

/// The rotation a `key.rotated` entry announces.
pub(crate) fn rotation_of(e: &StoredEntry) -> Result<KeyRotation, LedgerError> {
    custody_core::rotation::rotation_of(e.index, &e.envelope)
        .map_err(|err| LedgerError::Corrupt(err.to_string()))
}

fn unknown_tenant(tenant: &TenantName) -> LedgerError {
    LedgerError::NotFound(format!(
        "tenant {tenant} does not exist: create it with POST /v1/tenants (custody tenant create {tenant})"
    ))
}

fn invalid(field: &str, message: String) -> LedgerError {
    LedgerError::Invalid(ValidationError::one(field, message))
}

fn sign_checkpoint(
    signer: &NoteSigner,
    origin: &str,
    size: u64,
    root: Hash,
) -> Result<StoredCheckpoint, LedgerError> {
    let signed = custody_core::checkpoint::SignedCheckpoint::sign(
        Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions: Vec::new(),
        },
        signer,
    )
    .map_err(|e| LedgerError::Corrupt(format!("cannot sign checkpoint: {e}")))?;
    Ok(StoredCheckpoint {
        size,
        root,
        note: signed.note,
    })
}

fn view(stored: StoredEntry) -> Result<EntryView, LedgerError> {
    let envelope: serde_json::Value = serde_json::from_slice(&stored.envelope).map_err(|e| {
        LedgerError::Corrupt(format!("entry {} is not valid JSON: {e}", stored.index))
    })?;
    let payload = match stored.payload {
        Some(p) => Some((
            serde_json::from_slice(&p.json).map_err(|e| {
                LedgerError::Corrupt(format!(
                    "payload of entry {} is not JSON: {e}",
                    stored.index
                ))
            })?,
            Salt(p.salt),
        )),
        None => None,
    };
    Ok(EntryView {
        index: stored.index,
        leaf_hash: merkle::leaf_hash(&stored.envelope),
        envelope,
        payload,
    })
}
