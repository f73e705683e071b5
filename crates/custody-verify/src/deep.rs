//! Deep verification of a stored log: every leaf hash recomputed from its envelope, every
//! stored subtree hash recomputed from the leaves, every payload commitment reopened, and
//! every checkpoint the log ever signed checked for its signature and for the root of the tree
//! at its size, which makes all of them mutually consistent. What a proof holder trusts, re-
//! derived from the bytes on disk rather than from the hashes stored beside them.
//!
//! It reads through any [`LedgerReader`]: the server runs it over its own store on a schedule
//! and on demand, and `custody verify --deep --data-dir` over the embedded database opened
//! read-only ([`open_embedded`]), so checking a store can never change it.

use std::collections::VecDeque;

use custody_api::{LogAuditReport, ReconcileReport};
use custody_core::checkpoint::SignedCheckpoint;
use custody_core::commitment::{self, Salt};
use custody_core::envelope::{LogName, TenantName};
use custody_core::merkle::{Frontier, Hash, Subtree, empty_root, leaf_hash};
use custody_core::note::{NoteError, NoteVerifier};
use custody_core::rotation::{KEY_ROTATED, KeyRotation, RotationError, rotation_of};
use custody_store::{EntryFilter, LedgerReader, LogKey, LogRecord, StoreError, StoredCheckpoint};

/// Entries read per storage call.
const CHUNK: u64 = 2_000;
/// Subtree hashes compared per storage call.
const NODE_BATCH: usize = 4_096;
/// Checkpoints read per storage call.
const CHECKPOINT_PAGE: u32 = 1_000;
/// Problems kept in a report; the count goes on.
const MAX_PROBLEMS: usize = 100;
/// Most key rotations read for one log.
const MAX_ROTATIONS: u32 = 10_000;

/// Why deep verification could not run. Discrepancies in the log are not errors: they are
/// reported in [`LogAudit::problems`].
#[derive(Debug, thiserror::Error)]
pub enum DeepError {
    /// The store has no such tenant.
    #[error(
        "tenant {0} does not exist: create it with POST /v1/tenants (custody tenant create {0})"
    )]
    UnknownTenant(TenantName),
    /// The tenant has no such log.
    #[error("log {}/{}", .0.tenant, .0.log)]
    UnknownLog(LogKey),
    /// A verifier key the store holds for the log cannot be parsed.
    #[error("verifier key {key:?}: {reason}")]
    MalformedKey {
        /// The key as stored.
        key: String,
        /// What is wrong with it.
        reason: NoteError,
    },
    /// A `key.rotated` entry of the log cannot be read.
    #[error(transparent)]
    Rotation(#[from] RotationError),
    /// Reading the store failed.
    #[error("{}", store_detail(.0))]
    Store(StoreError),
    /// A data directory holds no embedded database.
    #[error("{}: no {EMBEDDED_DATABASE} in it", .0.display())]
    NoDatabase(std::path::PathBuf),
}

impl From<StoreError> for DeepError {
    fn from(e: StoreError) -> Self {
        DeepError::Store(e)
    }
}

/// Every deep-verification error is about the store being checked: one that is absent or
/// unreadable, or that holds what custody never writes. As a [`StoreError`] it keeps its
/// message and its class (`NotFound`, `Corrupt`, or the store's own).
impl From<DeepError> for StoreError {
    fn from(e: DeepError) -> Self {
        match e {
            DeepError::Store(e) => e,
            e @ (DeepError::UnknownTenant(_)
            | DeepError::UnknownLog(_)
            | DeepError::NoDatabase(_)) => StoreError::NotFound(e.to_string()),
            e @ (DeepError::MalformedKey { .. } | DeepError::Rotation(_)) => {
                StoreError::Corrupt(e.to_string())
            }
        }
    }
}

/// A store error's own words, without the class `StoreError`'s display puts before them.
fn store_detail(e: &StoreError) -> &str {
    match e {
        StoreError::NotFound(m)
        | StoreError::Conflict(m)
        | StoreError::Corrupt(m)
        | StoreError::Unavailable(m) => m,
    }
}

/// What a deep verification of one log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogAudit {
    /// Entries whose leaf hash was recomputed.
    pub entries: u64,
    /// Stored subtree hashes recomputed and compared.
    pub nodes: u64,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints: u64,
    /// Payload commitments reopened.
    pub payloads: u64,
    /// Every discrepancy, at most 100 described.
    pub problems: Vec<String>,
    /// Number of discrepancies, including those not described.
    pub problem_count: u64,
}

impl LogAudit {
    fn problem(&mut self, p: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        }
    }

    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }

    /// The wire form of this log's verification, as the API's reconcile answer and
    /// `custody verify --deep --json` give it.
    pub fn into_report(self, log: LogName) -> LogAuditReport {
        LogAuditReport {
            log: log.as_str().into(),
            entries: self.entries,
            nodes: self.nodes,
            checkpoints: self.checkpoints,
            payloads: self.payloads,
            problem_count: self.problem_count,
            problems: self.problems,
        }
    }
}

/// Checkpoints in size order, fetched a page at a time.
struct Checkpoints<'a, R> {
    store: &'a R,
    key: &'a LogKey,
    page: VecDeque<StoredCheckpoint>,
    next_size: u64,
    done: bool,
}

impl<R: LedgerReader> Checkpoints<'_, R> {
    async fn peek(&mut self) -> Result<Option<&StoredCheckpoint>, StoreError> {
        if self.page.is_empty() && !self.done {
            let got = self
                .store
                .checkpoints(self.key, self.next_size, CHECKPOINT_PAGE)
                .await?;
            self.done = got.len() < CHECKPOINT_PAGE as usize;
            if let Some(last) = got.last() {
                self.next_size = last.size + 1;
            }
            self.page.extend(got);
        }
        Ok(self.page.front())
    }

    /// Checks every stored checkpoint of the frontier's size.
    async fn check_up_to(
        &mut self,
        frontier: &Frontier,
        verifier: &KeyInForce,
        report: &mut LogAudit,
    ) -> Result<(), StoreError> {
        while let Some(next) = self.peek().await? {
            if next.size > frontier.size() {
                break;
            }
            let Some(cp) = self.page.pop_front() else {
                break;
            };
            report.checkpoints += 1;
            let root = if frontier.size() == 0 {
                empty_root()
            } else {
                frontier.root()
            };
            if cp.size < frontier.size() {
                report.problem(format!("checkpoint of size {} is out of order", cp.size));
                continue;
            }
            match SignedCheckpoint::open(&cp.note, verifier.at(cp.size)) {
                Err(e) => report.problem(format!(
                    "checkpoint of size {}: its signature does not verify with the log's key: {e}",
                    cp.size
                )),
                Ok(signed) => {
                    if signed.checkpoint.size != cp.size || signed.checkpoint.root != cp.root {
                        report.problem(format!(
                            "checkpoint of size {}: the signed note says size {} root {}, the stored columns differ",
                            cp.size,
                            signed.checkpoint.size,
                            signed.checkpoint.root.to_base64()
                        ));
                    }
                    if signed.checkpoint.root != root {
                        report.problem(format!(
                            "checkpoint of size {} signs root {} but the stored leaves give {}: it is not consistent with the log",
                            cp.size,
                            signed.checkpoint.root.to_base64(),
                            root.to_base64()
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The log as registered, or why it is not.
async fn record(store: &impl LedgerReader, key: &LogKey) -> Result<LogRecord, DeepError> {
    store
        .logs(&key.tenant)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => DeepError::UnknownTenant(key.tenant.clone()),
            other => other.into(),
        })?
        .into_iter()
        .find(|r| r.key.log == key.log)
        .ok_or_else(|| DeepError::UnknownLog(key.clone()))
}

/// Every key rotation announced in a log, oldest first.
async fn key_history(
    store: &impl LedgerReader,
    key: &LogKey,
) -> Result<Vec<KeyRotation>, DeepError> {
    let found = store
        .find_entries(
            key,
            &EntryFilter {
                entry_type: Some(KEY_ROTATED.into()),
                below_index: u64::MAX,
                limit: MAX_ROTATIONS,
                ..EntryFilter::default()
            },
        )
        .await?;
    Ok(found
        .iter()
        .map(|e| rotation_of(e.index, &e.envelope))
        .collect::<Result<_, _>>()?)
}

/// The file of the embedded store in a data directory.
pub const EMBEDDED_DATABASE: &str = "custody.db";

/// The embedded store of a data directory, opened read-only: no migration, no write, no key
/// directory, so auditing a store (a backup, say) cannot change it.
pub async fn open_embedded(
    data_dir: &std::path::Path,
) -> Result<custody_store_sqlite::ReadOnlySqliteStore, DeepError> {
    let db = data_dir.join(EMBEDDED_DATABASE);
    if !db.is_file() {
        return Err(DeepError::NoDatabase(data_dir.to_path_buf()));
    }
    Ok(custody_store_sqlite::SqliteStore::open_read_only(&db).await?)
}

/// The deep verification of every log of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantAudit {
    /// Each log's audit, in [`LogName::ALL`] order.
    pub logs: Vec<(LogName, LogAudit)>,
}

impl TenantAudit {
    /// Whether no log has a problem.
    pub fn is_clean(&self) -> bool {
        self.logs.iter().all(|(_, a)| a.is_clean())
    }

    /// The wire form the API and `custody verify --deep --json` give.
    pub fn into_report(self) -> ReconcileReport {
        let logs: Vec<LogAuditReport> = self
            .logs
            .into_iter()
            .map(|(log, audit)| audit.into_report(log))
            .collect();
        ReconcileReport {
            ok: logs.iter().all(|l| l.problem_count == 0),
            logs,
        }
    }
}

/// Deep-verifies every log of `tenant`, one after another; `progress` is told (log, done,
/// total) entries as it goes.
pub async fn audit_tenant<R: LedgerReader>(
    store: &R,
    tenant: &TenantName,
    mut progress: impl FnMut(LogName, u64, u64),
) -> Result<TenantAudit, DeepError> {
    let mut logs = Vec::new();
    for log in LogName::ALL {
        let key = LogKey {
            tenant: tenant.clone(),
            log,
        };
        let audit = audit_log(store, &key, |done, total| progress(log, done, total)).await?;
        logs.push((log, audit));
    }
    Ok(TenantAudit { logs })
}

/// Deep-verifies one log from storage. `progress` is told (done, total) entries as it goes.
/// Discrepancies are reported, not returned as errors; an error means the check itself could
/// not run.
pub async fn audit_log<R: LedgerReader>(
    store: &R,
    key: &LogKey,
    mut progress: impl FnMut(u64, u64),
) -> Result<LogAudit, DeepError> {
    let record = record(store, key).await?;
    let history = key_history(store, key).await?;
    let parse = |k: &str| {
        NoteVerifier::parse(k).map_err(|reason| DeepError::MalformedKey {
            key: k.to_owned(),
            reason,
        })
    };
    // The key in force for each checkpoint: the first key until the first rotation's
    // announcement is covered, then each announced key in turn.
    let first = parse(
        history
            .first()
            .map_or(record.verifier_key.as_str(), |r| r.old_key.as_str()),
    )?;
    let mut later = Vec::with_capacity(history.len());
    for r in &history {
        later.push((r.index + 1, parse(&r.new_key)?));
    }
    let verifier = KeyInForce { first, later };
    let size = store.latest_checkpoint(key).await?.size;
    let mut report = LogAudit::default();
    let mut frontier = Frontier::new();
    let mut pending: Vec<(Subtree, Hash)> = Vec::new();
    let mut checkpoints = Checkpoints {
        store,
        key,
        page: VecDeque::new(),
        next_size: 0,
        done: false,
    };
    checkpoints
        .check_up_to(&frontier, &verifier, &mut report)
        .await?;
    let mut next = 0;
    while next < size {
        let to = (next + CHUNK).min(size);
        let entries = store.entry_range(key, next, to).await?;
        if entries.len() as u64 != to - next {
            report.problem(format!(
                "entries {next}..{to}: {} stored, {} expected",
                entries.len(),
                to - next
            ));
        }
        for e in entries {
            let expected = frontier.size();
            if e.index != expected {
                report.problem(format!("entry {expected} is missing (found {})", e.index));
            }
            let leaf = leaf_hash(&e.envelope);
            if leaf != e.leaf_hash {
                report.problem(format!(
                    "entry {}: its envelope hashes to {} but the stored leaf hash is {}",
                    e.index,
                    leaf.to_hex(),
                    e.leaf_hash.to_hex()
                ));
            }
            if let Some(p) = &e.payload {
                report.payloads += 1;
                check_commitment(e.index, &e.envelope, &p.json, p.salt, &mut report);
            }
            report.entries += 1;
            // The tree is rebuilt from the stored leaf hashes, so a changed envelope is
            // reported once, here, and a changed node or checkpoint once, where it is.
            pending.extend(frontier.push(e.leaf_hash));
            if pending.len() >= NODE_BATCH {
                compare_nodes(store, key, &mut pending, &mut report).await?;
            }
            checkpoints
                .check_up_to(&frontier, &verifier, &mut report)
                .await?;
        }
        progress(to, size);
        next = to;
    }
    compare_nodes(store, key, &mut pending, &mut report).await?;
    if let Some(extra) = checkpoints.peek().await? {
        report.problem(format!(
            "a checkpoint of size {} is stored beyond the log's {size} entries",
            extra.size
        ));
    }
    Ok(report)
}

/// Compares the subtree hashes rebuilt since the last call with the stored ones.
async fn compare_nodes(
    store: &impl LedgerReader,
    key: &LogKey,
    pending: &mut Vec<(Subtree, Hash)>,
    report: &mut LogAudit,
) -> Result<(), StoreError> {
    if pending.is_empty() {
        return Ok(());
    }
    let subtrees: Vec<Subtree> = pending.iter().map(|(s, _)| *s).collect();
    let stored = store.nodes(key, &subtrees).await?;
    for ((s, want), got) in pending.iter().zip(stored) {
        report.nodes += 1;
        match got {
            Some(h) if h == *want => {}
            Some(h) => report.problem(format!(
                "tree node level {} index {}: stored {} but the leaves give {}",
                s.level,
                s.index,
                h.to_hex(),
                want.to_hex()
            )),
            None => report.problem(format!(
                "tree node level {} index {} is missing",
                s.level, s.index
            )),
        }
    }
    pending.clear();
    Ok(())
}

/// The log's verifier keys over time: the first key, then each announced key with the first
/// tree size signed by it, in order.
struct KeyInForce {
    first: NoteVerifier,
    later: Vec<(u64, NoteVerifier)>,
}

impl KeyInForce {
    fn at(&self, size: u64) -> &NoteVerifier {
        let mut current = &self.first;
        for (from, k) in &self.later {
            if size > *from {
                current = k;
            }
        }
        current
    }
}

fn check_commitment(
    index: u64,
    envelope: &[u8],
    payload: &[u8],
    salt: [u8; 32],
    report: &mut LogAudit,
) {
    let committed = serde_json::from_slice::<serde_json::Value>(envelope)
        .ok()
        .and_then(|e| e.get("payload_commitment")?.as_str().map(str::to_owned));
    let Some(committed) = committed else {
        report.problem(format!(
            "entry {index}: a payload is stored but the envelope commits to none"
        ));
        return;
    };
    let reopened = serde_json::from_slice::<serde_json::Value>(payload)
        .map_err(|e| e.to_string())
        .and_then(|p| commitment::commit(&Salt(salt), &p).map_err(|e| e.to_string()));
    match reopened {
        Ok(c) if c == committed => {}
        Ok(c) => report.problem(format!(
            "entry {index}: the stored payload and salt give {c}, the envelope commits to {committed}"
        )),
        Err(e) => report.problem(format!("entry {index}: the stored payload is unreadable: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use custody_core::envelope::{Actor, ActorKind, EntryInput};
    use custody_ledger::{Ledger, LedgerConfig};
    use custody_store_sqlite::SqliteStore;
    use serde_json::json;

    use super::*;

    const GOV: &str = "(SELECT l.id FROM logs l JOIN tenants t ON t.id = l.tenant_id WHERE t.name = 'acme' AND l.name = 'governance')";

    fn key() -> LogKey {
        LogKey {
            tenant: TenantName::parse("acme").unwrap(),
            log: LogName::Governance,
        }
    }

    fn entry(n: u64) -> EntryInput {
        let mut e = json!({
            "type": "x.test.event",
            "actor": {"kind": "service", "id": "svc-1"},
            "subject": {"kind": "x_item", "id": format!("item-{n}")},
            "body": {"n": n}
        });
        if n == 3 {
            e["payload"] = json!({"note": "kept beside the leaf"});
        }
        EntryInput::from_json(&e).unwrap()
    }

    /// A store whose governance log has 8 entries, one with a payload, and a key rotation
    /// after the first 5; written through the ledger, then closed.
    async fn written(dir: &Path) -> std::path::PathBuf {
        let db = dir.join("custody.db");
        let (ledger, appender) = Ledger::open(
            SqliteStore::open(&db).await.unwrap(),
            LedgerConfig {
                server_name: "test.local".into(),
                key_dir: dir.join("keys"),
            },
        )
        .unwrap();
        appender.create_tenant(&key().tenant).await.unwrap();
        for n in 0..5 {
            appender.append(&key(), &[entry(n)]).await.unwrap();
        }
        let actor = Actor {
            kind: ActorKind::Service,
            id: "svc-1".into(),
        };
        appender.rotate_key(&key(), actor).await.unwrap();
        appender
            .append(&key(), &[entry(5), entry(6)])
            .await
            .unwrap();
        ledger.shutdown().await;
        db
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sound_log_verifies_across_a_key_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let db = written(dir.path()).await;
        let store = SqliteStore::open_read_only(&db).await.unwrap();
        let mut last = (0, 0);
        let audit = audit_log(&store, &key(), |done, total| last = (done, total))
            .await
            .unwrap();
        assert!(audit.is_clean(), "{:?}", audit.problems);
        assert_eq!((audit.entries, audit.payloads, last), (8, 1, (8, 8)));
        // Every batch signed a checkpoint, the empty tree's included.
        assert_eq!(audit.checkpoints, 8);
        let report = audit.into_report(LogName::Governance);
        assert_eq!(
            (report.log.as_str(), report.problem_count),
            ("governance", 0)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tampering_is_reported_and_a_missing_log_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = written(dir.path()).await;
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "UPDATE entries SET envelope = CAST(replace(CAST(envelope AS TEXT), '\"n\":2', '\"n\":9') AS BLOB) WHERE log_id = {GOV} AND idx = 2;
             UPDATE nodes SET hash = zeroblob(32) WHERE log_id = {GOV} AND level = 1 AND idx = 2;"
        ))
        .unwrap();
        drop(conn);
        let store = SqliteStore::open_read_only(&db).await.unwrap();
        let audit = audit_log(&store, &key(), |_, _| {}).await.unwrap();
        assert_eq!(audit.problem_count, 2, "{:?}", audit.problems);
        assert!(audit.problems[0].starts_with("entry 2: its envelope hashes to"));
        assert!(audit.problems[1].starts_with("tree node level 1 index 2: stored 0000"));

        let nobody = LogKey {
            tenant: TenantName::parse("nobody").unwrap(),
            log: LogName::Governance,
        };
        let err = audit_log(&store, &nobody, |_, _| {}).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "tenant nobody does not exist: create it with POST /v1/tenants (custody tenant create nobody)"
        );
        assert!(matches!(StoreError::from(err), StoreError::NotFound(_)));
    }
}
