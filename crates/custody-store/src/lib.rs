//! The storage boundary of custody: what the ledger asks of a database, in domain terms.
//!
//! Backends (`custody-store-sqlite` embedded by default, `custody-store-postgres` at scale) implement
//! [`LedgerReader`] and [`LedgerWriter`]. Read-only code paths take only a reader, so they
//! cannot write. No database type crosses this boundary, and backend errors are classified into
//! [`StoreError`] so every backend maps a duplicate to `Conflict` and an outage to
//! `Unavailable` the same way.
//!
//! Architecture invariant: a backend commits an [`AppendBatch`] (entries, payloads, the tree's
//! new complete-subtree hashes and the signed checkpoint that covers them) in one durable
//! transaction. After any crash the store holds a prefix of batches, and its latest checkpoint
//! always matches its entries and tree hashes.

use std::future::Future;

use custody_core::envelope::{LogName, TenantName};
use custody_core::merkle::{Hash, Subtree};
use uuid::Uuid;

/// Why a storage operation failed, in terms the API can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A uniqueness rule would be broken (a tenant that exists, an id reused).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The stored data breaks an invariant (a missing tree node, an unreadable row): evidence
    /// of corruption or tampering, never a client mistake.
    #[error("storage is inconsistent: {0}")]
    Corrupt(String),
    /// The database cannot be reached or refused the operation; retrying may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Names one log of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogKey {
    /// The owning tenant.
    pub tenant: TenantName,
    /// Which of its logs.
    pub log: LogName,
}

/// A log as registered in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Which log.
    pub key: LogKey,
    /// `<server-name>/<tenant>/<log>`.
    pub origin: String,
    /// The verifier key string users pin.
    pub verifier_key: String,
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size it covers.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
    /// The C2SP signed note, byte-exact as served.
    pub note: String,
}

/// A payload kept beside its leaf, with the salt that opens its commitment. Its `Debug` shows
/// only sizes: payloads are personal data and must not reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPayload {
    /// The payload's JSON text.
    pub json: Vec<u8>,
    /// The 32-byte salt.
    pub salt: [u8; 32],
}

impl std::fmt::Debug for StoredPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredPayload({} bytes, salt ..)", self.json.len())
    }
}

/// The columns an entry is found by, copied out of its envelope when it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryIndexFields {
    /// Envelope `type`.
    pub entry_type: String,
    /// Envelope `actor.id`.
    pub actor_id: String,
    /// Envelope `subject.kind`.
    pub subject_kind: String,
    /// Envelope `subject.id`.
    pub subject_id: String,
    /// `(kind, id, rel)` of each `related` link.
    pub related: Vec<(String, String, String)>,
    /// Envelope `time` in microseconds since the epoch.
    pub time_micros: i64,
}

/// One entry to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Its position in the log.
    pub index: u64,
    /// Envelope `id`.
    pub id: Uuid,
    /// `SHA-256(0x00 || envelope)`.
    pub leaf_hash: Hash,
    /// The canonical envelope: the leaf data.
    pub envelope: Vec<u8>,
    /// Digest of the client's submission, to tell a retry from a conflicting reuse of an id.
    pub content_digest: [u8; 32],
    /// Query columns.
    pub fields: EntryIndexFields,
    /// The payload, if any.
    pub payload: Option<StoredPayload>,
}

/// An entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its position in the log.
    pub index: u64,
    /// Envelope `id`.
    pub id: Uuid,
    /// The leaf hash recorded at write time.
    pub leaf_hash: Hash,
    /// The canonical envelope bytes.
    pub envelope: Vec<u8>,
    /// The payload, unless there was none or it was erased.
    pub payload: Option<StoredPayload>,
}

/// What an existing id resolved to, for idempotent appends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingEntry {
    /// Envelope `id`.
    pub id: Uuid,
    /// Its position.
    pub index: u64,
    /// Its leaf hash.
    pub leaf_hash: Hash,
    /// Digest of the submission that created it.
    pub content_digest: [u8; 32],
}

/// Everything one sequencer batch changes, committed atomically.
#[derive(Debug, Clone)]
pub struct AppendBatch {
    /// The log appended to.
    pub key: LogKey,
    /// New entries, with consecutive indexes starting at the previous checkpoint's size.
    pub entries: Vec<NewEntry>,
    /// Complete subtrees that the new leaves completed (including the leaves themselves).
    pub nodes: Vec<(Subtree, Hash)>,
    /// The checkpoint that covers the log after this batch.
    pub checkpoint: StoredCheckpoint,
    /// Changes to who may call custody that these entries record (a principal created with
    /// its first token, a token issued or revoked), committed in the same transaction, so a
    /// principal never exists without the entry that records its creation, nor the entry
    /// without the principal.
    pub access: Vec<AccessChange>,
}

/// A change to principals or tokens that commits together with the entries recording it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessChange {
    /// Creates a principal of the batch's tenant; `Conflict` if its id exists.
    AddPrincipal(PrincipalRow),
    /// Adds a token to a principal of the batch's tenant; `Conflict` if its id exists,
    /// `NotFound` if the principal does not (or belongs to another tenant).
    AddToken(TokenRow),
    /// Marks a token of a principal of the batch's tenant revoked at `at_micros`, keeping an
    /// earlier revocation time if it already was.
    RevokeToken {
        /// The token's public id.
        id: String,
        /// When.
        at_micros: i64,
    },
}

impl AppendBatch {
    /// Whether this batch extends a log of `stored` entries: its entries are numbered
    /// consecutively from `stored` and its checkpoint covers exactly them. Every backend
    /// checks this inside the transaction that writes the batch, and refuses with `Conflict`
    /// otherwise, so two writers can never both extend the same tree.
    pub fn check_extends(&self, stored: u64) -> StoreResult<()> {
        let first = self.entries.first().map_or(stored, |e| e.index);
        let contiguous = self
            .entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.index == first.wrapping_add(i as u64));
        if first != stored
            || !contiguous
            || self.checkpoint.size != stored.wrapping_add(self.entries.len() as u64)
        {
            return Err(StoreError::Conflict(format!(
                "batch starts at {first} with checkpoint {}, but the log has {stored} entries",
                self.checkpoint.size
            )));
        }
        Ok(())
    }

    /// Whether every access change names the batch's tenant: a batch of one tenant's log may
    /// create principals of that tenant only. Checked by every backend before it writes.
    pub fn check_access(&self) -> StoreResult<()> {
        if !self.access.is_empty() && self.entries.is_empty() {
            return Err(StoreError::Conflict(
                "access changes must commit with the entries that record them".into(),
            ));
        }
        for change in &self.access {
            if let AccessChange::AddPrincipal(p) = change
                && p.tenant.as_deref() != Some(self.key.tenant.as_str())
            {
                return Err(StoreError::Conflict(format!(
                    "principal {} is not of tenant {}",
                    p.id, self.key.tenant
                )));
            }
        }
        Ok(())
    }
}

/// Filters for listing entries; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Exact `type`.
    pub entry_type: Option<String>,
    /// Exact `actor.id`.
    pub actor_id: Option<String>,
    /// Exact `subject.id`.
    pub subject_id: Option<String>,
    /// An exact id among the `related` links.
    pub related_id: Option<String>,
    /// `time >= since` (microseconds).
    pub since_micros: Option<i64>,
    /// `time < until` (microseconds).
    pub until_micros: Option<i64>,
    /// Only indexes at or after this one (the cursor).
    pub from_index: u64,
    /// Only indexes below this one (the checkpoint size the listing is consistent with).
    pub below_index: u64,
    /// At most this many entries.
    pub limit: u32,
}

/// Read access to the ledger's storage. Every method is a snapshot read.
pub trait LedgerReader: Send + Sync + 'static {
    /// Every tenant, by name.
    fn tenants(&self) -> impl Future<Output = StoreResult<Vec<TenantName>>> + Send;
    /// The logs of one tenant; `NotFound` if the tenant does not exist.
    fn logs(&self, tenant: &TenantName)
    -> impl Future<Output = StoreResult<Vec<LogRecord>>> + Send;
    /// The latest checkpoint of a log.
    fn latest_checkpoint(
        &self,
        key: &LogKey,
    ) -> impl Future<Output = StoreResult<StoredCheckpoint>> + Send;
    /// The stored checkpoint of exactly `size`, if the log published one.
    fn checkpoint_at(
        &self,
        key: &LogKey,
        size: u64,
    ) -> impl Future<Output = StoreResult<Option<StoredCheckpoint>>> + Send;
    /// Hashes of complete subtrees, in the order asked; `None` where not stored.
    fn nodes(
        &self,
        key: &LogKey,
        subtrees: &[Subtree],
    ) -> impl Future<Output = StoreResult<Vec<Option<Hash>>>> + Send;
    /// One entry by index.
    fn entry(
        &self,
        key: &LogKey,
        index: u64,
    ) -> impl Future<Output = StoreResult<Option<StoredEntry>>> + Send;
    /// Entries with indexes in `[from, to)`, in order, for export and verification.
    fn entry_range(
        &self,
        key: &LogKey,
        from: u64,
        to: u64,
    ) -> impl Future<Output = StoreResult<Vec<StoredEntry>>> + Send;
    /// Entries matching a filter, in index order.
    fn find_entries(
        &self,
        key: &LogKey,
        filter: &EntryFilter,
    ) -> impl Future<Output = StoreResult<Vec<StoredEntry>>> + Send;
    /// Which of `ids` already exist in the log.
    fn existing_ids(
        &self,
        key: &LogKey,
        ids: &[Uuid],
    ) -> impl Future<Output = StoreResult<Vec<ExistingEntry>>> + Send;
    /// Entries that still hold a payload, at or after `from`, in index order; with `before`,
    /// only those whose envelope `time` is earlier (microseconds). Retention and data-subject
    /// erasure walk a log with this.
    fn payloads(
        &self,
        key: &LogKey,
        from: u64,
        before: Option<i64>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<PayloadHolder>>> + Send;
    /// Stored checkpoints of sizes at or above `from_size`, smallest first: every checkpoint
    /// the log signed, for deep verification.
    fn checkpoints(
        &self,
        key: &LogKey,
        from_size: u64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<StoredCheckpoint>>> + Send;
}

/// An entry that still holds its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadHolder {
    /// Its position.
    pub index: u64,
    /// Envelope `id`.
    pub id: Uuid,
    /// Envelope `type`.
    pub entry_type: String,
    /// Envelope `time`, microseconds since the epoch.
    pub time_micros: i64,
    /// The payload and its salt.
    pub payload: StoredPayload,
}

/// Write access. Only the ledger's sequencer calls it, one batch at a time per log.
pub trait LedgerWriter: LedgerReader {
    /// Creates a tenant and its logs, each with the checkpoint of its empty tree, atomically.
    /// `Conflict` if the tenant exists.
    fn create_tenant(
        &self,
        tenant: &TenantName,
        logs: Vec<(LogRecord, StoredCheckpoint)>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Commits one batch durably (synced to disk) before returning. The batch's checkpoint
    /// must extend the latest stored one; a backend refuses a batch whose first index is not
    /// the stored size, so two writers can never both extend the same tree.
    fn append_batch(&self, batch: AppendBatch) -> impl Future<Output = StoreResult<()>> + Send;
    /// Deletes the payload and salt of one entry, leaving its envelope and the tree as they
    /// are. `false` if it held none (never had one, or already erased).
    fn erase_payload(
        &self,
        key: &LogKey,
        index: u64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Rewrites the store's files so that the bytes of erased payloads are gone from disk, not
    /// only unreachable.
    fn compact(&self) -> impl Future<Output = StoreResult<()>> + Send;
    /// Registers a log's new verifier key, after a key rotation was committed to the log.
    fn set_verifier_key(
        &self,
        key: &LogKey,
        verifier_key: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Whether other processes may append to the same logs (several servers on one
    /// database). The ledger then asks storage, not its memory, where a log stands.
    fn shared(&self) -> bool {
        false
    }

    /// Holds a named lock across every process using this store until the guard is dropped,
    /// so a check-then-write (a governance write validated against its log's state, a tenant
    /// created after checking it does not exist) cannot interleave with another server's.
    /// Names come from [`log_lock_name`], [`sequencer_lock_name`] and [`TENANTS_LOCK`]. A store only one process can open needs no lock beyond the
    /// process's own, and returns an empty guard.
    fn lock(&self, name: &str) -> impl Future<Output = StoreResult<LockGuard>> + Send {
        let _ = name;
        async { Ok(LockGuard::none()) }
    }

    /// A sequencer's turn at a shared log: takes the log's [`sequencer_lock_name`] lock and,
    /// under it, reads the size of the latest stored checkpoint, so the sequencer knows
    /// whether another server appended since its last batch. A backend may do both in one
    /// round trip.
    fn sequencer_turn(
        &self,
        key: &LogKey,
    ) -> impl Future<Output = StoreResult<(LockGuard, u64)>> + Send {
        async move {
            let guard = self.lock(&sequencer_lock_name(key)).await?;
            let size = self.latest_checkpoint(key).await?.size;
            Ok((guard, size))
        }
    }
}

/// The name of the cross-process lock on one log's check-then-append writes.
pub fn log_lock_name(key: &LogKey) -> String {
    format!("log/{}/{}", key.tenant, key.log.as_str())
}

/// The name of the cross-process lock a sequencer holds while it orders, signs and commits
/// one batch of a log, so several servers take turns instead of racing.
pub fn sequencer_lock_name(key: &LogKey) -> String {
    format!("sequencer/{}/{}", key.tenant, key.log.as_str())
}

/// The name of the cross-process lock on creating tenants.
pub const TENANTS_LOCK: &str = "tenants";

/// A held cross-process lock (see [`LedgerWriter::lock`]); released on drop.
pub struct LockGuard(Option<Box<dyn Send>>);

impl LockGuard {
    /// No lock held: the store has a single process.
    pub fn none() -> Self {
        Self(None)
    }

    /// Wraps a backend's lock, released when it is dropped.
    pub fn new(lock: impl Send + 'static) -> Self {
        Self(Some(Box::new(lock)))
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "LockGuard(held)"
        } else {
            "LockGuard(none)"
        })
    }
}

pub mod auth;

pub use auth::{AuthStore, PrincipalRow, TokenRow};
