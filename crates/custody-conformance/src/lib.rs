//! The storage conformance suite: every [`LedgerReader`] and [`LedgerWriter`] method, written
//! once against the traits and run against every backend, so all backends keep one contract.
//!
//! This crate's own integration test runs it once on every backend (SQLite, PostgreSQL, and
//! SQLite through the payload-objects wrapper) with a factory that gives a fresh, empty store
//! for each case:
//!
//! ```text
//! let report = custody_conformance::run_all("sqlite", || async { open_fresh().await }).await;
//! report.assert_complete();
//! report.record();
//! ```
//!
//! Each case is a plain async function that asserts (panics) with a message naming the broken
//! rule; [`run_all`] runs every case named in [`CASES`], catches a failing case's panic and
//! goes on, and returns a [`Report`]. A case function that is written but not dispatched from
//! [`CASES`] is dead code, which the workspace's `-D warnings` builds refuse; a name in
//! [`CASES`] without a case fails, so a case can never be silently skipped.
//!
//! [`LogModel`] builds realistic batches (leaf hashes with [`merkle::leaf_hash`], tree nodes
//! with [`Frontier::push`], checkpoints whose root is the tree's root) and remembers what was
//! committed, so backends' own tests (durability, reopening) can reuse it with [`snapshot`].

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use custody_core::envelope::{LogName, TenantName};
use custody_core::merkle::{self, Frontier, Hash, Subtree};
use uuid::Uuid;

use custody_store::{
    AccessChange, AppendBatch, AuthStore, EntryFilter, EntryIndexFields, ExistingEntry,
    LedgerReader, LedgerWriter, LogKey, LogRecord, NewEntry, PayloadHolder, PrincipalRow,
    StoreError, StoreResult, StoredCheckpoint, StoredEntry, StoredPayload, TokenRow,
};

/// The names of every case, in the order [`run_all`] runs them.
pub const CASES: &[&str] = &[
    "tenants_and_logs_are_listed",
    "create_tenant_twice_conflicts",
    "create_tenant_is_atomic",
    "unknown_tenant_or_log_is_not_found",
    "new_log_starts_at_its_creation_checkpoint",
    "append_batch_writes_entries_nodes_and_checkpoint",
    "latest_and_published_checkpoints",
    "entry_and_entry_range_boundaries",
    "nodes_present_absent_and_in_order",
    "wrong_first_index_conflicts_and_writes_nothing",
    "wrong_checkpoint_size_conflicts_and_writes_nothing",
    "reused_entry_id_conflicts_and_writes_nothing",
    "stored_node_is_corrupt_and_writes_nothing",
    "existing_ids_reports_present_ids_only",
    "payloads_round_trip_with_salt",
    "find_entries_single_filters",
    "find_entries_window_and_limit",
    "find_entries_combined_filters",
    "tenants_with_the_same_log_names_are_isolated",
    "logs_of_one_tenant_are_isolated",
    "readers_see_a_whole_batch_or_none",
    "out_of_range_positions_are_absent",
    "payloads_are_listed_and_erased",
    "every_signed_checkpoint_is_listed",
    "principals_and_tokens",
    "access_changes_commit_with_their_batch",
    "verifier_key_is_replaced",
];

/// Server name in the origins of the logs the suite creates.
const SERVER: &str = "conformance.test";

/// A time inside the envelopes' range: 2023-11-14T22:13:20Z in microseconds.
const T0: i64 = 1_700_000_000_000_000;

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    /// The case, as named in [`CASES`].
    pub case: &'static str,
    /// The assertion message it failed with.
    pub message: String,
}

/// What [`run_all`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The backend's name, as given to [`run_all`].
    pub backend: String,
    /// Cases that passed, in the order they ran.
    pub passed: Vec<&'static str>,
    /// Cases that failed, with their messages.
    pub failed: Vec<CaseFailure>,
}

impl Report {
    /// `conformance: backend=<name> passed=<N>`, the line a backend's test prints.
    pub fn summary(&self) -> String {
        format!(
            "conformance: backend={} passed={}",
            self.backend,
            self.passed.len()
        )
    }

    /// Panics unless every case in [`CASES`] ran and passed, listing the failures.
    pub fn assert_complete(&self) {
        assert!(
            self.failed.is_empty(),
            "conformance: backend={} failed {} of {} cases:\n{}",
            self.backend,
            self.failed.len(),
            CASES.len(),
            self.failed
                .iter()
                .map(|f| format!("- {}: {}", f.case, f.message))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(
            self.passed.len(),
            CASES.len(),
            "conformance: backend={} ran {} cases but {} are defined; a case was skipped",
            self.backend,
            self.passed.len(),
            CASES.len()
        );
        for case in CASES {
            assert!(
                self.passed.contains(case),
                "conformance: backend={} did not run case {case}",
                self.backend
            );
        }
    }

    /// Prints the [`Report::summary`] line and, when `CUSTODY_CONFORMANCE_REPORT` names a
    /// directory, writes it to `<dir>/<backend>.txt`: the proof, checked by `scripts/test.sh`,
    /// that the whole suite ran on that backend in this run.
    pub fn record(&self) {
        println!("{}", self.summary());
        if let Some(dir) = std::env::var_os(REPORT_DIR) {
            let dir = std::path::PathBuf::from(dir);
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            let file = dir.join(format!("{}.txt", self.backend));
            std::fs::write(&file, format!("{}\n", self.summary()))
                .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        }
    }
}

/// The variable naming the directory [`Report::record`] writes to.
pub const REPORT_DIR: &str = "CUSTODY_CONFORMANCE_REPORT";

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.summary())?;
        for fail in &self.failed {
            writeln!(f, "conformance: FAILED {}: {}", fail.case, fail.message)?;
        }
        Ok(())
    }
}

/// Runs every case of [`CASES`] against the backend, each on a store from `fresh` (which must
/// give a new, empty store every call), and reports which passed. A failing case does not stop
/// the others.
pub async fn run_all<S, F, Fut>(backend: &str, fresh: F) -> Report
where
    S: LedgerWriter + AuthStore + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let mut report = Report {
        backend: backend.to_owned(),
        passed: Vec::new(),
        failed: Vec::new(),
    };
    for &case in CASES {
        let fut: Pin<Box<dyn Future<Output = ()> + '_>> = match case {
            "tenants_and_logs_are_listed" => Box::pin(tenants_and_logs_are_listed(&fresh)),
            "create_tenant_twice_conflicts" => Box::pin(create_tenant_twice_conflicts(&fresh)),
            "create_tenant_is_atomic" => Box::pin(create_tenant_is_atomic(&fresh)),
            "unknown_tenant_or_log_is_not_found" => {
                Box::pin(unknown_tenant_or_log_is_not_found(&fresh))
            }
            "new_log_starts_at_its_creation_checkpoint" => {
                Box::pin(new_log_starts_at_its_creation_checkpoint(&fresh))
            }
            "append_batch_writes_entries_nodes_and_checkpoint" => {
                Box::pin(append_batch_writes_entries_nodes_and_checkpoint(&fresh))
            }
            "latest_and_published_checkpoints" => {
                Box::pin(latest_and_published_checkpoints(&fresh))
            }
            "entry_and_entry_range_boundaries" => {
                Box::pin(entry_and_entry_range_boundaries(&fresh))
            }
            "nodes_present_absent_and_in_order" => {
                Box::pin(nodes_present_absent_and_in_order(&fresh))
            }
            "wrong_first_index_conflicts_and_writes_nothing" => {
                Box::pin(wrong_first_index_conflicts_and_writes_nothing(&fresh))
            }
            "wrong_checkpoint_size_conflicts_and_writes_nothing" => {
                Box::pin(wrong_checkpoint_size_conflicts_and_writes_nothing(&fresh))
            }
            "reused_entry_id_conflicts_and_writes_nothing" => {
                Box::pin(reused_entry_id_conflicts_and_writes_nothing(&fresh))
            }
            "stored_node_is_corrupt_and_writes_nothing" => {
                Box::pin(stored_node_is_corrupt_and_writes_nothing(&fresh))
            }
            "existing_ids_reports_present_ids_only" => {
                Box::pin(existing_ids_reports_present_ids_only(&fresh))
            }
            "payloads_round_trip_with_salt" => Box::pin(payloads_round_trip_with_salt(&fresh)),
            "find_entries_single_filters" => Box::pin(find_entries_single_filters(&fresh)),
            "find_entries_window_and_limit" => Box::pin(find_entries_window_and_limit(&fresh)),
            "find_entries_combined_filters" => Box::pin(find_entries_combined_filters(&fresh)),
            "tenants_with_the_same_log_names_are_isolated" => {
                Box::pin(tenants_with_the_same_log_names_are_isolated(&fresh))
            }
            "logs_of_one_tenant_are_isolated" => Box::pin(logs_of_one_tenant_are_isolated(&fresh)),
            "readers_see_a_whole_batch_or_none" => {
                Box::pin(readers_see_a_whole_batch_or_none(&fresh))
            }
            "out_of_range_positions_are_absent" => {
                Box::pin(out_of_range_positions_are_absent(&fresh))
            }
            "payloads_are_listed_and_erased" => Box::pin(payloads_are_listed_and_erased(&fresh)),
            "every_signed_checkpoint_is_listed" => {
                Box::pin(every_signed_checkpoint_is_listed(&fresh))
            }
            "principals_and_tokens" => Box::pin(principals_and_tokens(&fresh)),
            "access_changes_commit_with_their_batch" => {
                Box::pin(access_changes_commit_with_their_batch(&fresh))
            }
            "verifier_key_is_replaced" => Box::pin(verifier_key_is_replaced(&fresh)),
            other => Box::pin(async move {
                panic!("case {other:?} is listed in CASES but run_all has no implementation of it")
            }),
        };
        match (CatchUnwind { fut }).await {
            Ok(()) => report.passed.push(case),
            Err(message) => report.failed.push(CaseFailure { case, message }),
        }
    }
    report
}

// ---------------------------------------------------------------------------------------------
// Batch building
// ---------------------------------------------------------------------------------------------

/// One entry for [`LogModel::next_batch`]; its envelope, leaf hash and content digest are
/// derived from these fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Envelope `id`.
    pub id: Uuid,
    /// The query columns (also written into the envelope).
    pub fields: EntryIndexFields,
    /// The payload, if any.
    pub payload: Option<StoredPayload>,
}

impl Draft {
    /// A plain entry with id `Uuid::from_u128(n)` and fields derived from `n`.
    pub fn numbered(n: u128) -> Self {
        Self {
            id: Uuid::from_u128(n),
            fields: EntryIndexFields {
                entry_type: "test.recorded".into(),
                actor_id: format!("actor-{}", n % 3),
                subject_kind: "subject".into(),
                subject_id: format!("s-{n}"),
                related: Vec::new(),
                time_micros: T0 + (n % 1_000_000) as i64,
            },
            payload: None,
        }
    }

    /// The same entry with a payload: `json` and a salt of bytes `salt_seed, salt_seed+1, ...`.
    pub fn with_payload(mut self, json: &[u8], salt_seed: u8) -> Self {
        let mut salt = [0u8; 32];
        for (i, b) in salt.iter_mut().enumerate() {
            *b = salt_seed.wrapping_add(i as u8);
        }
        self.payload = Some(StoredPayload {
            json: json.to_vec(),
            salt,
        });
        self
    }

    /// The same entry with another subject id (so equal ids can carry different content).
    pub fn with_subject(mut self, subject_id: &str) -> Self {
        self.fields.subject_id = subject_id.to_owned();
        self
    }

    /// The canonical envelope bytes the entry is written with.
    pub fn envelope(&self) -> Vec<u8> {
        let f = &self.fields;
        let related: Vec<String> = f
            .related
            .iter()
            .map(|(kind, id, rel)| format!(r#"{{"id":"{id}","kind":"{kind}","rel":"{rel}"}}"#))
            .collect();
        format!(
            r#"{{"actor":{{"id":"{}"}},"id":"{}","related":[{}],"subject":{{"id":"{}","kind":"{}"}},"time_us":{},"type":"{}"}}"#,
            f.actor_id,
            self.id,
            related.join(","),
            f.subject_id,
            f.subject_kind,
            f.time_micros,
            f.entry_type
        )
        .into_bytes()
    }
}

/// The plain entries numbered `ns`.
pub fn numbered(ns: impl IntoIterator<Item = u128>) -> Vec<Draft> {
    ns.into_iter().map(Draft::numbered).collect()
}

/// What one log should hold: its record, the tree built so far and every committed batch, so
/// a case can compute what each read must return.
#[derive(Debug, Clone)]
pub struct LogModel {
    record: LogRecord,
    frontier: Frontier,
    entries: Vec<NewEntry>,
    nodes: BTreeMap<Subtree, Hash>,
    checkpoints: Vec<StoredCheckpoint>,
}

fn note(origin: &str, size: u64, root: &Hash, tag: &str) -> String {
    format!(
        "{origin}\n{size}\n{}\n\n\u{2014} {SERVER} {tag}\n",
        root.to_base64()
    )
}

impl LogModel {
    /// A new, empty log of `tenant`, with origin `conformance.test/<tenant>/<log>`, a verifier
    /// key unique to it and a size-0 checkpoint.
    pub fn new(tenant: &TenantName, log: LogName) -> Self {
        let origin = format!("{SERVER}/{tenant}/{}", log.as_str());
        let key_hash = merkle::leaf_hash(origin.as_bytes());
        let verifier_key = format!(
            "{origin}+{}+{}",
            &key_hash.to_hex()[..8],
            key_hash.to_base64()
        );
        let root = merkle::empty_root();
        let created = StoredCheckpoint {
            size: 0,
            root,
            note: note(&origin, 0, &root, "created"),
        };
        Self {
            record: LogRecord {
                key: LogKey {
                    tenant: tenant.clone(),
                    log,
                },
                origin,
                verifier_key,
            },
            frontier: Frontier::new(),
            entries: Vec::new(),
            nodes: BTreeMap::new(),
            checkpoints: vec![created],
        }
    }

    /// The log's record, as given to `create_tenant`.
    pub fn record(&self) -> &LogRecord {
        &self.record
    }

    /// The log's key.
    pub fn key(&self) -> &LogKey {
        &self.record.key
    }

    /// Entries committed so far.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The size-0 checkpoint given at creation.
    pub fn created(&self) -> &StoredCheckpoint {
        &self.checkpoints[0]
    }

    /// The checkpoint of the last committed batch (or the creation checkpoint).
    pub fn latest(&self) -> &StoredCheckpoint {
        self.checkpoints.last().unwrap_or_else(|| unreachable!())
    }

    /// Every checkpoint published, in order of size.
    pub fn checkpoints(&self) -> &[StoredCheckpoint] {
        &self.checkpoints
    }

    /// The published checkpoint of exactly `size`.
    pub fn checkpoint_at(&self, size: u64) -> Option<StoredCheckpoint> {
        self.checkpoints.iter().find(|c| c.size == size).cloned()
    }

    /// Every committed entry, as written.
    pub fn entries(&self) -> &[NewEntry] {
        &self.entries
    }

    /// What `entry_range(from, to)` must return.
    pub fn expected(&self, from: u64, to: u64) -> Vec<StoredEntry> {
        self.entries
            .iter()
            .filter(|e| e.index >= from && e.index < to)
            .map(stored)
            .collect()
    }

    /// The stored hash of a complete subtree, if the log has it.
    pub fn node(&self, s: Subtree) -> Option<Hash> {
        self.nodes.get(&s).copied()
    }

    /// A batch appending `drafts` after the committed entries, with the nodes they complete
    /// and a checkpoint of the new tree. The model does not change until [`LogModel::accept`].
    pub fn next_batch(&self, drafts: Vec<Draft>) -> AppendBatch {
        let mut frontier = self.frontier.clone();
        let mut nodes = Vec::new();
        let mut entries = Vec::with_capacity(drafts.len());
        for d in drafts {
            let envelope = d.envelope();
            let leaf_hash = merkle::leaf_hash(&envelope);
            let mut submission = b"submission:".to_vec();
            submission.extend_from_slice(&envelope);
            let index = frontier.size();
            nodes.extend(frontier.push(leaf_hash));
            entries.push(NewEntry {
                index,
                id: d.id,
                leaf_hash,
                envelope,
                content_digest: merkle::leaf_hash(&submission).0,
                fields: d.fields,
                payload: d.payload,
            });
        }
        let root = frontier.root();
        AppendBatch {
            key: self.key().clone(),
            entries,
            nodes,
            checkpoint: StoredCheckpoint {
                size: frontier.size(),
                root,
                note: note(&self.record.origin, frontier.size(), &root, "batch"),
            },
            access: Vec::new(),
        }
    }

    /// Records a batch from [`LogModel::next_batch`] as committed.
    pub fn accept(&mut self, batch: &AppendBatch) {
        assert_eq!(&batch.key, self.key(), "batch of another log");
        for e in &batch.entries {
            assert_eq!(
                e.index,
                self.frontier.size(),
                "batch does not extend the model"
            );
            self.frontier.push(e.leaf_hash);
            self.entries.push(e.clone());
        }
        self.nodes.extend(batch.nodes.iter().copied());
        assert_eq!(
            batch.checkpoint.root,
            self.frontier.root(),
            "batch checkpoint is not the model's root"
        );
        self.checkpoints.push(batch.checkpoint.clone());
    }

    /// Appends `drafts` to the store as one batch, panicking if it fails, and records it.
    pub async fn append<S: LedgerWriter>(&mut self, store: &S, drafts: Vec<Draft>) -> AppendBatch {
        let batch = self.next_batch(drafts);
        let from = self.size();
        ok(
            store.append_batch(batch.clone()).await,
            &format!(
                "append_batch of entries [{from}, {}) to {}",
                batch.checkpoint.size,
                key_name(self.key())
            ),
        );
        self.accept(&batch);
        batch
    }
}

/// The three logs of a tenant, in [`LogName::ALL`] order.
pub fn tenant_logs(tenant: &TenantName) -> Vec<LogModel> {
    LogName::ALL
        .into_iter()
        .map(|log| LogModel::new(tenant, log))
        .collect()
}

/// What `create_tenant` is given for these logs.
pub fn creation(logs: &[LogModel]) -> Vec<(LogRecord, StoredCheckpoint)> {
    logs.iter()
        .map(|m| (m.record().clone(), m.created().clone()))
        .collect()
}

/// Parses a tenant name, panicking if it is invalid.
pub fn tenant(name: &str) -> TenantName {
    TenantName::parse(name).unwrap_or_else(|e| panic!("bad tenant name {name:?}: {e}"))
}

/// Creates `tenant` with its three logs on `store`, panicking on failure.
pub async fn create<S: LedgerWriter>(store: &S, name: &str) -> Vec<LogModel> {
    let t = tenant(name);
    let logs = tenant_logs(&t);
    ok(
        store.create_tenant(&t, creation(&logs)).await,
        &format!("create_tenant({t})"),
    );
    logs
}

fn stored(e: &NewEntry) -> StoredEntry {
    StoredEntry {
        index: e.index,
        id: e.id,
        leaf_hash: e.leaf_hash,
        envelope: e.envelope.clone(),
        payload: e.payload.clone(),
    }
}

/// Every complete, aligned subtree of the leaves `[0, size)`, smallest level first.
pub fn subtrees_within(size: u64) -> Vec<Subtree> {
    let mut out = Vec::new();
    for level in 0..64u8 {
        let count = size >> level;
        if count == 0 {
            break;
        }
        out.extend((0..count).map(|index| Subtree { level, index }));
    }
    out
}

/// Everything a reader sees of one log up to a horizon, to compare before and after an
/// operation (a refused batch, a reopened database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSnapshot {
    /// `latest_checkpoint`.
    pub latest: StoredCheckpoint,
    /// `checkpoint_at(size)` for every size from 0 to the horizon.
    pub checkpoints: Vec<Option<StoredCheckpoint>>,
    /// `entry_range(0, horizon)`.
    pub entries: Vec<StoredEntry>,
    /// `nodes` of every complete subtree within `[0, horizon)`.
    pub nodes: Vec<(Subtree, Option<Hash>)>,
    /// `find_entries` below the horizon with no other filter.
    pub listed: Vec<StoredEntry>,
    /// `existing_ids` of the ids asked for, by index.
    pub existing: Vec<ExistingEntry>,
}

/// Reads a [`LogSnapshot`] of `key` up to `horizon` (a size beyond anything a batch under test
/// could write), asking `existing_ids` about `ids`.
pub async fn snapshot<S: LedgerReader>(
    store: &S,
    key: &LogKey,
    horizon: u64,
    ids: &[Uuid],
) -> StoreResult<LogSnapshot> {
    let latest = store.latest_checkpoint(key).await?;
    let mut checkpoints = Vec::new();
    for size in 0..=horizon {
        checkpoints.push(store.checkpoint_at(key, size).await?);
    }
    let entries = store.entry_range(key, 0, horizon).await?;
    let subtrees = subtrees_within(horizon);
    let hashes = store.nodes(key, &subtrees).await?;
    let listed = store
        .find_entries(
            key,
            &EntryFilter {
                below_index: horizon,
                limit: u32::try_from(horizon).unwrap_or(u32::MAX),
                ..EntryFilter::default()
            },
        )
        .await?;
    let mut existing = store.existing_ids(key, ids).await?;
    existing.sort_by_key(|e| e.index);
    Ok(LogSnapshot {
        latest,
        checkpoints,
        entries,
        nodes: subtrees.into_iter().zip(hashes).collect(),
        listed,
        existing,
    })
}

// ---------------------------------------------------------------------------------------------
// Assertion helpers
// ---------------------------------------------------------------------------------------------

fn key_name(key: &LogKey) -> String {
    format!("{}/{}", key.tenant, key.log.as_str())
}

fn ok<T>(r: StoreResult<T>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: unexpected error {e:?}"))
}

fn kind(e: &StoreError) -> &'static str {
    match e {
        StoreError::NotFound(_) => "NotFound",
        StoreError::Conflict(_) => "Conflict",
        StoreError::Corrupt(_) => "Corrupt",
        StoreError::Unavailable(_) => "Unavailable",
    }
}

fn expect_err<T: fmt::Debug>(r: StoreResult<T>, want: &[&str], what: &str) {
    match r {
        Err(e) if want.contains(&kind(&e)) => {}
        other => panic!(
            "{what}: expected StoreError::{}, got {other:?}",
            want.join(" or StoreError::")
        ),
    }
}

fn indexes(entries: &[StoredEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.index).collect()
}

/// Compares entry lists without printing thousands of entries on failure.
fn assert_entries(got: &[StoredEntry], want: &[StoredEntry], what: &str) {
    if got.len() != want.len() {
        let show = |v: &[StoredEntry]| {
            let ix = indexes(v);
            if ix.len() > 20 {
                format!(
                    "{} entries, indexes {:?}..{:?}",
                    ix.len(),
                    &ix[..10],
                    &ix[ix.len() - 3..]
                )
            } else {
                format!("indexes {ix:?}")
            }
        };
        panic!("{what}: got {}, want {}", show(got), show(want));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{what}: item {i} differs (index {})", w.index);
    }
}

/// Asserts that a refused batch left no trace: the snapshot is unchanged and none of the
/// batch's ids, related ids or nodes became visible.
async fn assert_nothing_written<S: LedgerReader>(
    store: &S,
    model: &LogModel,
    before: &LogSnapshot,
    batch: &AppendBatch,
    horizon: u64,
    what: &str,
) {
    let ids = watched_ids(model, batch);
    let after = ok(
        snapshot(store, model.key(), horizon, &ids).await,
        &format!("{what}: reading back"),
    );
    assert_eq!(
        after.latest, before.latest,
        "{what}: the refused batch changed latest_checkpoint"
    );
    assert_eq!(
        after.checkpoints, before.checkpoints,
        "{what}: the refused batch left a checkpoint"
    );
    assert_entries(
        &after.entries,
        &before.entries,
        &format!("{what}: entries after the refused batch"),
    );
    assert_eq!(
        after.nodes, before.nodes,
        "{what}: the refused batch left tree nodes"
    );
    assert_entries(
        &after.listed,
        &before.listed,
        &format!("{what}: find_entries after the refused batch"),
    );
    assert_eq!(
        after.existing, before.existing,
        "{what}: the refused batch left entry ids"
    );
    let node_keys: Vec<Subtree> = batch.nodes.iter().map(|(s, _)| *s).collect();
    let hashes = ok(
        store.nodes(model.key(), &node_keys).await,
        &format!("{what}: nodes of the refused batch"),
    );
    for (s, h) in node_keys.iter().zip(hashes) {
        assert_eq!(
            h,
            model.node(*s),
            "{what}: node {s} after the refused batch is not what was stored before it"
        );
    }
    for e in &batch.entries {
        for (_, rid, _) in &e.fields.related {
            let found = ok(
                store
                    .find_entries(
                        model.key(),
                        &EntryFilter {
                            related_id: Some(rid.clone()),
                            below_index: horizon,
                            limit: 1000,
                            ..EntryFilter::default()
                        },
                    )
                    .await,
                &format!("{what}: find_entries(related_id={rid})"),
            );
            let want: Vec<u64> = model
                .entries()
                .iter()
                .filter(|m| m.fields.related.iter().any(|(_, id, _)| id == rid))
                .map(|m| m.index)
                .collect();
            assert_eq!(
                indexes(&found),
                want,
                "{what}: find_entries(related_id={rid}) after the refused batch must list only the \
                 committed entries linking to it"
            );
        }
    }
}

fn watched_ids(model: &LogModel, batch: &AppendBatch) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = model.entries().iter().map(|e| e.id).collect();
    ids.extend(batch.entries.iter().map(|e| e.id));
    ids.sort();
    ids.dedup();
    ids
}

/// Checks that `nodes(decompose(0, size))` rebuild the tree of the latest checkpoint, as a
/// restarted sequencer does.
async fn assert_tree_rebuilds<S: LedgerReader>(store: &S, model: &LogModel, what: &str) {
    let size = model.size();
    let parts = merkle::decompose(0, size);
    let hashes = ok(
        store.nodes(model.key(), &parts).await,
        &format!("{what}: nodes(decompose(0, {size}))"),
    );
    let hashes: Vec<Hash> = hashes
        .into_iter()
        .zip(&parts)
        .map(|(h, s)| h.unwrap_or_else(|| panic!("{what}: right-edge node {s} is missing")))
        .collect();
    let frontier = Frontier::from_parts(size, hashes)
        .unwrap_or_else(|e| panic!("{what}: cannot rebuild the frontier: {e}"));
    let latest = ok(
        store.latest_checkpoint(model.key()).await,
        &format!("{what}: latest_checkpoint"),
    );
    assert_eq!(latest.size, size, "{what}: latest checkpoint size");
    assert_eq!(
        frontier.root(),
        latest.root,
        "{what}: the stored right-edge nodes do not rebuild the latest checkpoint's root"
    );
}

// ---------------------------------------------------------------------------------------------
// Async plumbing (no runtime dependency: the backend's test chooses the runtime)
// ---------------------------------------------------------------------------------------------

/// Turns a panic while polling a case into an error carrying its message.
struct CatchUnwind<'a> {
    fut: Pin<Box<dyn Future<Output = ()> + 'a>>,
}

impl Future for CatchUnwind<'_> {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.fut;
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Err(panic) => Poll::Ready(Err(panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the case panicked with a non-text payload".into()))),
        }
    }
}

/// Polls two futures concurrently on the current task until both finish.
async fn join2<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = Box::pin(a);
    let mut b = Box::pin(b);
    let mut ra = None;
    let mut rb = None;
    poll_fn(move |cx| {
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                ra = x;
                rb = y;
                Poll::Pending
            }
        }
    })
    .await
}

/// Lets the other future of a [`join2`] run, even on a backend whose calls never wait.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Cases: tenants and logs
// ---------------------------------------------------------------------------------------------

async fn tenants_and_logs_are_listed<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    assert_eq!(
        ok(store.tenants().await, "tenants() of a fresh store"),
        Vec::<TenantName>::new(),
        "a fresh store must have no tenants"
    );
    // Created out of order; names with '-' and digits catch a backend sorting by a locale
    // collation instead of by bytes.
    let names = ["zeta", "ab", "a-c", "a0", "m"];
    let mut created = Vec::new();
    for name in names {
        let logs = create(&store, name).await;
        created.push((tenant(name), logs));
    }
    let mut want: Vec<TenantName> = names.iter().map(|n| tenant(n)).collect();
    want.sort();
    assert_eq!(
        ok(store.tenants().await, "tenants()"),
        want,
        "tenants() must return every tenant, ordered by name (byte order)"
    );
    for (t, logs) in &created {
        let got = ok(store.logs(t).await, &format!("logs({t})"));
        let want: Vec<LogRecord> = logs.iter().map(|m| m.record().clone()).collect();
        assert_eq!(
            got, want,
            "logs({t}) must return governance, inference, access in that order, with origin \
             and verifier_key as given to create_tenant"
        );
        for m in logs {
            assert_eq!(
                ok(
                    store.latest_checkpoint(m.key()).await,
                    &format!("latest_checkpoint({})", key_name(m.key()))
                ),
                *m.created(),
                "latest_checkpoint of the new log {} must be the size-0 checkpoint given at \
                 creation",
                key_name(m.key())
            );
        }
    }
}

async fn create_tenant_twice_conflicts<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let logs = create(&store, "acme").await;
    let t = tenant("acme");
    expect_err(
        store.create_tenant(&t, creation(&logs)).await,
        &["Conflict"],
        "create_tenant(acme) a second time, with the same logs",
    );
    // A second attempt with other keys and checkpoints must not overwrite anything.
    let other: Vec<(LogRecord, StoredCheckpoint)> = creation(&logs)
        .into_iter()
        .map(|(mut r, mut c)| {
            r.verifier_key.push_str("-replaced");
            c.note.push_str("replaced\n");
            (r, c)
        })
        .collect();
    expect_err(
        store.create_tenant(&t, other).await,
        &["Conflict"],
        "create_tenant(acme) a second time, with other keys",
    );
    assert_eq!(
        ok(store.tenants().await, "tenants()"),
        vec![t.clone()],
        "a refused create_tenant must not add a tenant"
    );
    let want: Vec<LogRecord> = logs.iter().map(|m| m.record().clone()).collect();
    assert_eq!(
        ok(store.logs(&t).await, "logs(acme)"),
        want,
        "a refused create_tenant must not change the existing logs"
    );
    for m in &logs {
        assert_eq!(
            ok(store.latest_checkpoint(m.key()).await, "latest_checkpoint"),
            *m.created(),
            "a refused create_tenant must not change the checkpoint of {}",
            key_name(m.key())
        );
        assert_eq!(
            ok(store.checkpoint_at(m.key(), 0).await, "checkpoint_at(0)"),
            Some(m.created().clone()),
            "a refused create_tenant must not replace the size-0 checkpoint of {}",
            key_name(m.key())
        );
    }
}

async fn create_tenant_is_atomic<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let t = tenant("half");
    let logs = tenant_logs(&t);
    // The same log twice: the second insert breaks a uniqueness rule after the tenant and the
    // first log were written.
    let mut twice = creation(&logs);
    twice.insert(1, twice[0].clone());
    expect_err(
        store.create_tenant(&t, twice).await,
        &["Conflict"],
        "create_tenant with the governance log listed twice",
    );
    assert_eq!(
        ok(store.tenants().await, "tenants()"),
        Vec::<TenantName>::new(),
        "a refused create_tenant must leave no tenant behind (not atomic)"
    );
    expect_err(
        store.logs(&t).await,
        &["NotFound"],
        "logs() of a tenant whose creation was refused",
    );
    expect_err(
        store.latest_checkpoint(logs[0].key()).await,
        &["NotFound"],
        "latest_checkpoint of a log whose creation was refused",
    );
    ok(
        store.create_tenant(&t, creation(&logs)).await,
        "create_tenant(half) after the refused attempt",
    );
    let want: Vec<LogRecord> = logs.iter().map(|m| m.record().clone()).collect();
    assert_eq!(
        ok(store.logs(&t).await, "logs(half)"),
        want,
        "logs after creating the tenant properly"
    );
}

async fn unknown_tenant_or_log_is_not_found<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    // A tenant with only its governance log, so an unknown log of a known tenant exists too.
    let known = tenant("known");
    let gov = LogModel::new(&known, LogName::Governance);
    ok(
        store
            .create_tenant(&known, creation(std::slice::from_ref(&gov)))
            .await,
        "create_tenant(known) with one log",
    );
    let ghost = tenant("ghost");
    expect_err(store.logs(&ghost).await, &["NotFound"], "logs(ghost)");
    let missing = [
        LogModel::new(&ghost, LogName::Governance),
        LogModel::new(&known, LogName::Access),
    ];
    for m in &missing {
        let k = m.key();
        let name = key_name(k);
        expect_err(
            store.latest_checkpoint(k).await,
            &["NotFound"],
            &format!("latest_checkpoint({name})"),
        );
        expect_err(
            store.checkpoint_at(k, 0).await,
            &["NotFound"],
            &format!("checkpoint_at({name}, 0)"),
        );
        expect_err(
            store.nodes(k, &[Subtree { level: 0, index: 0 }]).await,
            &["NotFound"],
            &format!("nodes({name})"),
        );
        expect_err(
            store.entry(k, 0).await,
            &["NotFound"],
            &format!("entry({name}, 0)"),
        );
        expect_err(
            store.entry_range(k, 0, 10).await,
            &["NotFound"],
            &format!("entry_range({name}, 0, 10)"),
        );
        expect_err(
            store
                .find_entries(
                    k,
                    &EntryFilter {
                        below_index: 10,
                        limit: 10,
                        ..EntryFilter::default()
                    },
                )
                .await,
            &["NotFound"],
            &format!("find_entries({name})"),
        );
        expect_err(
            store.existing_ids(k, &[Uuid::from_u128(1)]).await,
            &["NotFound"],
            &format!("existing_ids({name})"),
        );
        expect_err(
            store.append_batch(m.next_batch(numbered(1..=2))).await,
            &["NotFound"],
            &format!("append_batch({name})"),
        );
    }
    assert_eq!(
        ok(store.tenants().await, "tenants()"),
        vec![known.clone()],
        "calls on unknown logs must not create tenants"
    );
    assert_eq!(
        ok(store.logs(&known).await, "logs(known)"),
        vec![gov.record().clone()],
        "append_batch to an unknown log must not create it"
    );
}

async fn new_log_starts_at_its_creation_checkpoint<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "fresh").await;
    for m in &logs {
        let k = m.key();
        let name = key_name(k);
        assert_eq!(
            ok(store.latest_checkpoint(k).await, "latest_checkpoint"),
            *m.created(),
            "latest_checkpoint of the new log {name} must be the size-0 checkpoint given at creation"
        );
        assert_eq!(
            ok(store.checkpoint_at(k, 0).await, "checkpoint_at(0)"),
            Some(m.created().clone()),
            "checkpoint_at(0) of the new log {name}"
        );
        assert_eq!(
            ok(store.checkpoint_at(k, 1).await, "checkpoint_at(1)"),
            None,
            "checkpoint_at(1) of the empty log {name}"
        );
        assert_eq!(
            ok(store.entry(k, 0).await, "entry(0)"),
            None,
            "entry(0) of the empty log {name}"
        );
        assert_entries(
            &ok(store.entry_range(k, 0, 100).await, "entry_range"),
            &[],
            &format!("entry_range(0, 100) of the empty log {name}"),
        );
        assert_eq!(
            ok(
                store
                    .nodes(
                        k,
                        &[
                            Subtree { level: 0, index: 0 },
                            Subtree { level: 1, index: 0 }
                        ]
                    )
                    .await,
                "nodes"
            ),
            vec![None, None],
            "nodes of the empty log {name}"
        );
        assert_entries(
            &ok(
                store
                    .find_entries(
                        k,
                        &EntryFilter {
                            below_index: 100,
                            limit: 100,
                            ..EntryFilter::default()
                        },
                    )
                    .await,
                "find_entries",
            ),
            &[],
            &format!("find_entries of the empty log {name}"),
        );
        assert_eq!(
            ok(
                store.existing_ids(k, &[Uuid::from_u128(1)]).await,
                "existing_ids"
            ),
            Vec::new(),
            "existing_ids of the empty log {name}"
        );
    }
    // The first batch of a new log starts at index 0 and extends the creation checkpoint.
    logs[0].append(&store, numbered(1..=2)).await;
    assert_eq!(
        ok(
            store.checkpoint_at(logs[0].key(), 0).await,
            "checkpoint_at(0)"
        ),
        Some(logs[0].created().clone()),
        "the creation checkpoint must stay published after the first batch"
    );
    assert_tree_rebuilds(&store, &logs[0], "after the first batch").await;
}

// ---------------------------------------------------------------------------------------------
// Cases: appending and reading back
// ---------------------------------------------------------------------------------------------

async fn append_batch_writes_entries_nodes_and_checkpoint<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "writer").await;
    let gov = &mut logs[0];
    let mut drafts = numbered(1..=5);
    drafts[1] = drafts[1].clone().with_payload(br#"{"k":"v"}"#, 7);
    drafts[3].fields.related = vec![("dataset".into(), "d-1".into(), "input".into())];
    drafts[4] = drafts[4].clone().with_payload(br#"[1,2,3]"#, 200);
    for (size, drafts) in [(5u64, drafts), (8, numbered(6..=8))] {
        let batch = gov.append(&store, drafts).await;
        let k = gov.key().clone();
        let what = format!("after the batch up to size {size}");
        for e in &batch.entries {
            assert_eq!(
                ok(store.entry(&k, e.index).await, "entry"),
                Some(stored(e)),
                "{what}: entry({}) must be exactly what the batch wrote",
                e.index
            );
        }
        assert_entries(
            &ok(store.entry_range(&k, 0, size).await, "entry_range"),
            &gov.expected(0, size),
            &format!("{what}: entry_range(0, {size})"),
        );
        let subtrees: Vec<Subtree> = batch.nodes.iter().map(|(s, _)| *s).collect();
        let want: Vec<Option<Hash>> = batch.nodes.iter().map(|(_, h)| Some(*h)).collect();
        assert_eq!(
            ok(store.nodes(&k, &subtrees).await, "nodes"),
            want,
            "{what}: nodes() must return every node the batch wrote"
        );
        assert_eq!(
            ok(store.latest_checkpoint(&k).await, "latest_checkpoint"),
            batch.checkpoint,
            "{what}: latest_checkpoint must be the batch's checkpoint"
        );
        assert_eq!(
            ok(store.checkpoint_at(&k, size).await, "checkpoint_at"),
            Some(batch.checkpoint.clone()),
            "{what}: checkpoint_at({size})"
        );
        let ids: Vec<Uuid> = batch.entries.iter().map(|e| e.id).collect();
        let mut found = ok(store.existing_ids(&k, &ids).await, "existing_ids");
        found.sort_by_key(|e| e.index);
        assert_eq!(
            found.len(),
            ids.len(),
            "{what}: existing_ids must find every id of the batch"
        );
        assert_tree_rebuilds(&store, gov, &what).await;
    }
    assert!(
        ok(
            store
                .nodes(gov.key(), &[Subtree { level: 3, index: 0 }])
                .await,
            "nodes"
        )[0]
        .is_some(),
        "the batch that completed 8 leaves must store the level-3 node"
    );
}

async fn latest_and_published_checkpoints<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "checkpoints").await;
    let gov = &mut logs[0];
    let mut next = 1u128;
    for n in [1u128, 2, 4, 1] {
        gov.append(&store, numbered(next..next + n)).await;
        next += n;
        assert_eq!(
            ok(
                store.latest_checkpoint(gov.key()).await,
                "latest_checkpoint"
            ),
            *gov.latest(),
            "latest_checkpoint after the batch up to size {} must be that batch's checkpoint",
            gov.size()
        );
    }
    // Published sizes: 0, 1, 3, 7, 8.
    for size in 0..=12 {
        assert_eq!(
            ok(store.checkpoint_at(gov.key(), size).await, "checkpoint_at"),
            gov.checkpoint_at(size),
            "checkpoint_at({size}) with checkpoints published at 0, 1, 3, 7, 8"
        );
    }
    assert_tree_rebuilds(&store, gov, "after four batches").await;
}

async fn entry_and_entry_range_boundaries<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "ranges").await;
    let gov = &mut logs[0];
    gov.append(&store, numbered(1..=3)).await;
    gov.append(&store, numbered(4..=7)).await;
    let k = gov.key().clone();
    for i in 0..7 {
        assert_eq!(
            ok(store.entry(&k, i).await, "entry"),
            gov.expected(i, i + 1).pop(),
            "entry({i}) of a log of 7"
        );
    }
    for i in [7, 8, 1000] {
        assert_eq!(
            ok(store.entry(&k, i).await, "entry"),
            None,
            "entry({i}) of a log of 7 must be None"
        );
    }
    let ranges: [(u64, u64); 16] = [
        (0, 7),
        (0, 3),
        (3, 7),
        (2, 5),
        (0, 1),
        (6, 7),
        (1, 2),
        (3, 3),
        (0, 0),
        (7, 7),
        (5, 2),
        (7, 0),
        (5, 100),
        (7, 100),
        (100, 200),
        (0, 1 << 40),
    ];
    for (from, to) in ranges {
        assert_entries(
            &ok(store.entry_range(&k, from, to).await, "entry_range"),
            &gov.expected(from, to),
            &format!(
                "entry_range({from}, {to}) of a log of 7 (entries in index order, [from, to))"
            ),
        );
    }
}

async fn nodes_present_absent_and_in_order<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "nodes").await;
    let gov = &mut logs[0];
    gov.append(&store, numbered(1..=5)).await;
    gov.append(&store, numbered(6..=7)).await;
    let k = gov.key().clone();
    let st = |level: u8, index: u64| Subtree { level, index };
    let ask = [
        st(2, 0),
        st(0, 7),
        st(1, 3),
        st(0, 0),
        st(1, 1),
        st(3, 0),
        st(2, 0),
        st(0, 6),
        st(2, 1),
        st(1, 2),
        st(0, 100),
        st(40, 0),
        st(0, 3),
    ];
    let want: Vec<Option<Hash>> = ask.iter().map(|s| gov.node(*s)).collect();
    assert_eq!(
        want.iter().filter(|h| h.is_some()).count(),
        7,
        "fixture: 7 of the asked subtrees exist in a tree of 7"
    );
    assert_eq!(
        ok(store.nodes(&k, &ask).await, "nodes"),
        want,
        "nodes() must answer in the order asked, None for subtrees not stored, duplicates \
         answered twice"
    );
    assert_eq!(
        ok(store.nodes(&k, &[]).await, "nodes([])"),
        Vec::new(),
        "nodes([]) must be empty"
    );
    let all = subtrees_within(7);
    let want: Vec<Option<Hash>> = all.iter().map(|s| gov.node(*s)).collect();
    assert!(
        want.iter().all(Option::is_some),
        "fixture: every subtree within 7 is stored"
    );
    assert_eq!(
        ok(store.nodes(&k, &all).await, "nodes(all)"),
        want,
        "nodes() of every complete subtree of a tree of 7"
    );
    let mut reversed = all.clone();
    reversed.reverse();
    let mut want_rev = want.clone();
    want_rev.reverse();
    assert_eq!(
        ok(store.nodes(&k, &reversed).await, "nodes(reversed)"),
        want_rev,
        "nodes() must follow the order asked, not storage order"
    );
    assert_tree_rebuilds(&store, gov, "a tree of 7").await;
}

// ---------------------------------------------------------------------------------------------
// Cases: refused batches are atomic
// ---------------------------------------------------------------------------------------------

/// Horizon for snapshots around refused batches: beyond anything they could write.
const HORIZON: u64 = 16;

async fn wrong_first_index_conflicts_and_writes_nothing<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "first-index").await;
    let gov = &mut logs[0];
    gov.append(&store, numbered(1..=3)).await;
    let mut good_drafts = numbered(4..=5);
    good_drafts[0].fields.related = vec![("run".into(), "r-new".into(), "produced-by".into())];
    good_drafts[1] = good_drafts[1].clone().with_payload(b"{}", 1);
    let good = gov.next_batch(good_drafts.clone());
    for (shift, label) in [
        (1i64, "first index 4 on a log of 3 (a gap)"),
        (-1, "first index 2 on a log of 3 (overwrites entry 2)"),
        (-3, "first index 0 on a log of 3 (rewrites the log)"),
    ] {
        let mut bad = good.clone();
        for e in &mut bad.entries {
            e.index = e.index.checked_add_signed(shift).unwrap_or(0);
        }
        bad.checkpoint.size = bad.checkpoint.size.checked_add_signed(shift).unwrap_or(0);
        let before = ok(
            snapshot(&store, gov.key(), HORIZON, &watched_ids(gov, &bad)).await,
            "snapshot",
        );
        expect_err(
            store.append_batch(bad.clone()).await,
            &["Conflict"],
            &format!("append_batch with {label}"),
        );
        assert_nothing_written(&store, gov, &before, &bad, HORIZON, label).await;
        // The same wrong start with a checkpoint size that does add up.
        let mut bad = good.clone();
        for e in &mut bad.entries {
            e.index = e.index.checked_add_signed(shift).unwrap_or(0);
        }
        expect_err(
            store.append_batch(bad.clone()).await,
            &["Conflict"],
            &format!("append_batch with {label}, checkpoint size 5"),
        );
        assert_nothing_written(&store, gov, &before, &bad, HORIZON, label).await;
    }
    // The right start and count, but a gap inside the batch (indexes 3 and 5 of a log of 3).
    let mut gapped = good.clone();
    gapped.entries[1].index += 1;
    let before = ok(
        snapshot(&store, gov.key(), HORIZON, &watched_ids(gov, &gapped)).await,
        "snapshot",
    );
    expect_err(
        store.append_batch(gapped.clone()).await,
        &["Conflict"],
        "append_batch with a gap inside the batch",
    );
    assert_nothing_written(
        &store,
        gov,
        &before,
        &gapped,
        HORIZON,
        "a gap inside the batch",
    )
    .await;
    // The store is not wedged: the right batch still commits.
    ok(
        store.append_batch(good.clone()).await,
        "append_batch of the right batch after the refused ones",
    );
    gov.accept(&good);
    assert_entries(
        &ok(
            store.entry_range(gov.key(), 0, HORIZON).await,
            "entry_range",
        ),
        &gov.expected(0, HORIZON),
        "entries after the right batch",
    );
    assert_tree_rebuilds(&store, gov, "after the right batch").await;
}

async fn wrong_checkpoint_size_conflicts_and_writes_nothing<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "cp-size").await;
    let gov = &mut logs[0];
    gov.append(&store, numbered(1..=3)).await;
    let mut drafts = numbered(4..=5);
    drafts[1].fields.related = vec![("model".into(), "m-x".into(), "uses".into())];
    drafts[0] = drafts[0].clone().with_payload(b"[]", 9);
    let good = gov.next_batch(drafts);
    let before = ok(
        snapshot(&store, gov.key(), HORIZON, &watched_ids(gov, &good)).await,
        "snapshot",
    );
    for (size, label) in [
        (6u64, "checkpoint size 6 for 2 entries on a log of 3"),
        (4, "checkpoint size 4 for 2 entries on a log of 3"),
        (3, "checkpoint size 3 (the current size) for 2 entries"),
        (0, "checkpoint size 0 for 2 entries"),
    ] {
        let mut bad = good.clone();
        bad.checkpoint.size = size;
        expect_err(
            store.append_batch(bad.clone()).await,
            &["Conflict"],
            &format!("append_batch with {label}"),
        );
        assert_nothing_written(&store, gov, &before, &bad, HORIZON, label).await;
    }
    let mut empty = good.clone();
    empty.entries.clear();
    empty.nodes.clear();
    expect_err(
        store.append_batch(empty.clone()).await,
        &["Conflict"],
        "append_batch with no entries and a checkpoint of size 5",
    );
    assert_nothing_written(
        &store,
        gov,
        &before,
        &empty,
        HORIZON,
        "empty batch of size 5",
    )
    .await;
    ok(
        store.append_batch(good.clone()).await,
        "append_batch of the right batch after the refused ones",
    );
    gov.accept(&good);
    assert_eq!(
        ok(
            store.latest_checkpoint(gov.key()).await,
            "latest_checkpoint"
        ),
        good.checkpoint,
        "latest_checkpoint after the right batch"
    );
    assert_tree_rebuilds(&store, gov, "after the right batch").await;
}

async fn reused_entry_id_conflicts_and_writes_nothing<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "reuse").await;
    let gov = &mut logs[0];
    gov.append(&store, numbered(1..=3)).await;
    let existing_id = gov.entries()[1].id;

    // The last entry of the batch reuses the id of entry 1, with other content: the entries
    // before it were already inserted when the conflict is found.
    let mut drafts = numbered(4..=6);
    drafts[0].fields.related = vec![("run".into(), "r-9".into(), "produced-by".into())];
    drafts[1] = drafts[1].clone().with_payload(br#"{"p":1}"#, 3);
    drafts[2].id = existing_id;
    let bad = gov.next_batch(drafts);
    let before = ok(
        snapshot(&store, gov.key(), HORIZON, &watched_ids(gov, &bad)).await,
        "snapshot",
    );
    expect_err(
        store.append_batch(bad.clone()).await,
        &["Conflict"],
        "append_batch whose last entry reuses the id of entry 1",
    );
    assert_nothing_written(&store, gov, &before, &bad, HORIZON, "reused existing id").await;
    let found = ok(
        store.existing_ids(gov.key(), &[existing_id]).await,
        "existing_ids",
    );
    assert_eq!(
        found.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![1],
        "the reused id must still resolve to entry 1 only"
    );

    // Two entries of one batch with the same id.
    let mut drafts = numbered(4..=6);
    drafts[2].id = drafts[0].id;
    let bad = gov.next_batch(drafts);
    expect_err(
        store.append_batch(bad.clone()).await,
        &["Conflict"],
        "append_batch with the same id twice",
    );
    assert_nothing_written(&store, gov, &before, &bad, HORIZON, "id twice in one batch").await;

    gov.append(&store, numbered(4..=6)).await;
    assert_tree_rebuilds(&store, gov, "after the right batch").await;
}

async fn stored_node_is_corrupt_and_writes_nothing<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "node-clash").await;
    let gov = &mut logs[0];
    gov.append(&store, numbered(1..=3)).await;
    let mut drafts = numbered(4..=5);
    drafts[0].fields.related = vec![("dataset".into(), "d-n".into(), "input".into())];
    drafts[1] = drafts[1].clone().with_payload(b"{}", 5);
    let good = gov.next_batch(drafts);
    let first = Subtree { level: 0, index: 0 };
    let stored_first = gov.node(first).unwrap_or_else(|| unreachable!());
    let before = ok(
        snapshot(&store, gov.key(), HORIZON, &watched_ids(gov, &good)).await,
        "snapshot",
    );
    for (clash, label, kinds) in [
        (
            (first, merkle::leaf_hash(b"another leaf")),
            "node level 0 index 0 already stored, other hash",
            &["Corrupt"][..],
        ),
        (
            (first, stored_first),
            "node level 0 index 0 already stored, same hash",
            &["Corrupt"][..],
        ),
        (
            good.nodes[0],
            "node level 0 index 3 twice in one batch",
            &["Corrupt", "Conflict"][..],
        ),
    ] {
        let mut bad = good.clone();
        bad.nodes.push(clash);
        expect_err(
            store.append_batch(bad.clone()).await,
            kinds,
            &format!("append_batch with {label}"),
        );
        assert_nothing_written(&store, gov, &before, &bad, HORIZON, label).await;
        assert_eq!(
            ok(store.nodes(gov.key(), &[first]).await, "nodes"),
            vec![Some(stored_first)],
            "{label}: the stored node must keep its hash"
        );
    }
    ok(
        store.append_batch(good.clone()).await,
        "append_batch of the right batch after the refused ones",
    );
    gov.accept(&good);
    assert_tree_rebuilds(&store, gov, "after the right batch").await;
}

// ---------------------------------------------------------------------------------------------
// Cases: ids and payloads
// ---------------------------------------------------------------------------------------------

async fn existing_ids_reports_present_ids_only<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "ids").await;
    logs[0].append(&store, numbered(1..=3)).await;
    logs[0].append(&store, numbered(4..=5)).await;
    // An id present only in another log of the same tenant.
    logs[1].append(&store, numbered(900..=900)).await;
    let gov = &logs[0];
    let e = gov.entries();
    let unknown = [Uuid::from_u128(777), Uuid::from_u128(900)];
    let ask = [e[4].id, unknown[0], e[0].id, unknown[1], e[2].id];
    let mut got = ok(store.existing_ids(gov.key(), &ask).await, "existing_ids");
    got.sort_by_key(|x| x.index);
    let want: Vec<ExistingEntry> = [0usize, 2, 4]
        .iter()
        .map(|&i| ExistingEntry {
            id: e[i].id,
            index: e[i].index,
            leaf_hash: e[i].leaf_hash,
            content_digest: e[i].content_digest,
        })
        .collect();
    assert_eq!(
        got, want,
        "existing_ids must return index, leaf hash and content digest of the present ids only \
         (including ids of other logs would break per-log id scope)"
    );
    assert_eq!(
        ok(store.existing_ids(gov.key(), &[]).await, "existing_ids([])"),
        Vec::new(),
        "existing_ids([]) must be empty"
    );
    assert_eq!(
        ok(
            store.existing_ids(gov.key(), &unknown).await,
            "existing_ids"
        ),
        Vec::new(),
        "existing_ids of unknown ids must be empty"
    );
    let mut inf = ok(
        store
            .existing_ids(logs[1].key(), &[unknown[1], e[0].id])
            .await,
        "existing_ids(inference)",
    );
    inf.sort_by_key(|x| x.index);
    assert_eq!(
        inf.iter().map(|x| (x.id, x.index)).collect::<Vec<_>>(),
        vec![(unknown[1], 0)],
        "existing_ids of the inference log must see only its own entry"
    );
}

async fn payloads_round_trip_with_salt<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "payloads").await;
    let gov = &mut logs[0];
    let big: Vec<u8> = format!(r#"{{"blob":"{}"}}"#, "x".repeat(64 * 1024)).into_bytes();
    let drafts = [
        Draft::numbered(1),
        Draft::numbered(2).with_payload(br#"{"a":1}"#, 0x11),
        Draft::numbered(3).with_payload(&big, 0xf0),
        Draft::numbered(4),
        Draft::numbered(5).with_payload(b"{}", 0),
        Draft::numbered(6).with_payload("{\"name\":\"caf\u{e9} \u{1f600}\"}".as_bytes(), 0x80),
    ];
    gov.append(&store, drafts[..3].to_vec()).await;
    gov.append(&store, drafts[3..].to_vec()).await;
    let k = gov.key().clone();
    for (i, d) in drafts.iter().enumerate() {
        let got = ok(store.entry(&k, i as u64).await, "entry")
            .unwrap_or_else(|| panic!("entry({i}) is missing"));
        assert_eq!(
            got.payload, d.payload,
            "entry({i}): payload and salt must come back exactly as written (None when the \
             entry had none)"
        );
    }
    assert_entries(
        &ok(store.entry_range(&k, 0, 6).await, "entry_range"),
        &gov.expected(0, 6),
        "entry_range(0, 6) with payloads",
    );
    assert_entries(
        &ok(
            store
                .find_entries(
                    &k,
                    &EntryFilter {
                        below_index: 6,
                        limit: 6,
                        ..EntryFilter::default()
                    },
                )
                .await,
            "find_entries",
        ),
        &gov.expected(0, 6),
        "find_entries with payloads",
    );
}

// ---------------------------------------------------------------------------------------------
// Cases: find_entries
// ---------------------------------------------------------------------------------------------

/// One fixture entry: type, actor, subject kind and id, related `(kind, id, rel)`, time.
type Spec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str, &'static str)],
    i64,
);

/// The find fixture. Entry 7 is before the epoch and out of time order; entry 4 links to
/// `d-2` twice; entry 9's related id equals its subject id; entry 11's actor is a subject id.
#[rustfmt::skip]
const FIND_SPEC: [Spec; 12] = [
    ("model.trained", "alice", "model", "m-1", &[("dataset", "d-1", "input")], T0),
    ("dataset.registered", "bob", "dataset", "d-1", &[], T0 + 10),
    ("model.trained", "bob", "model", "m-2", &[("dataset", "d-1", "input"), ("run", "r-7", "produced-by")], T0 + 20),
    ("model.approved", "carol", "model", "m-1", &[("model", "m-2", "supersedes")], T0 + 30),
    ("model.trained", "alice", "model", "m-1", &[("dataset", "d-2", "input"), ("dataset", "d-2", "validation")], T0 + 40),
    ("dataset.registered", "alice", "dataset", "d-2", &[], T0 + 50),
    ("deployment.created", "bob", "deployment", "dep-1", &[("model", "m-1", "deploys")], T0 + 60),
    ("model.trained", "alice", "model", "m-3", &[("dataset", "d-1", "input")], -5),
    ("model.approved", "alice", "model", "m-2", &[], T0 + 80),
    ("inference.logged", "svc-1", "model", "m-1", &[("model", "m-1", "used")], T0 + 90),
    ("model.trained", "bob", "model", "m-1", &[("run", "r-7", "produced-by")], T0 + 100),
    ("dataset.registered", "m-2", "dataset", "d-1", &[("dataset", "d-1", "derived-from")], T0 + 110),
];

/// The twelve [`FIND_SPEC`] entries in the governance log over three batches, plus look-alike
/// entries in the inference log that must never be returned for the governance log.
async fn find_fixture<S, F, Fut>(fresh: &F) -> (S, LogModel)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "finder").await;
    let drafts: Vec<Draft> = FIND_SPEC
        .iter()
        .enumerate()
        .map(|(i, &(t, actor, kind, subject, related, time))| {
            let mut d = Draft::numbered(100 + i as u128);
            d.fields = EntryIndexFields {
                entry_type: t.into(),
                actor_id: actor.into(),
                subject_kind: kind.into(),
                subject_id: subject.into(),
                related: related
                    .iter()
                    .map(|&(k, id, r)| (k.into(), id.into(), r.into()))
                    .collect(),
                time_micros: time,
            };
            if i % 4 == 1 {
                d = d.with_payload(br#"{"note":"with payload"}"#, i as u8);
            }
            d
        })
        .collect();
    logs[0].append(&store, drafts[..4].to_vec()).await;
    // Look-alikes in another log of the tenant, between the governance batches.
    logs[1].append(&store, drafts[..6].to_vec()).await;
    logs[0].append(&store, drafts[4..9].to_vec()).await;
    logs[0].append(&store, drafts[9..].to_vec()).await;
    let gov = logs.swap_remove(0);
    (store, gov)
}

/// What `find_entries` must return, computed from the model.
fn reference_find(model: &LogModel, f: &EntryFilter) -> Vec<StoredEntry> {
    model
        .entries()
        .iter()
        .filter(|e| {
            let x = &e.fields;
            e.index >= f.from_index
                && e.index < f.below_index
                && f.entry_type.as_ref().is_none_or(|t| *t == x.entry_type)
                && f.actor_id.as_ref().is_none_or(|a| *a == x.actor_id)
                && f.subject_id.as_ref().is_none_or(|s| *s == x.subject_id)
                && f.related_id
                    .as_ref()
                    .is_none_or(|r| x.related.iter().any(|(_, id, _)| id == r))
                && f.since_micros.is_none_or(|s| x.time_micros >= s)
                && f.until_micros.is_none_or(|u| x.time_micros < u)
        })
        .take(f.limit as usize)
        .map(stored)
        .collect()
}

/// Runs one filter, checks the hand-computed indexes against the model (a fixture check) and
/// the store's answer against both.
async fn check_find<S: LedgerReader>(store: &S, model: &LogModel, q: Q, want: &[u64]) {
    let f = q.0;
    let reference = reference_find(model, &f);
    assert_eq!(
        indexes(&reference),
        want,
        "fixture: the reference model disagrees with the expected indexes for {f:?}"
    );
    let got = ok(
        store.find_entries(model.key(), &f).await,
        &format!("find_entries({f:?})"),
    );
    assert_eq!(
        indexes(&got),
        want,
        "find_entries({f:?}) must return exactly these indexes, in index order"
    );
    assert_entries(&got, &reference, &format!("find_entries({f:?}) entries"));
}

/// A compact [`EntryFilter`] builder for the find cases.
#[derive(Debug, Clone)]
struct Q(EntryFilter);

impl Q {
    fn ty(mut self, v: &str) -> Self {
        self.0.entry_type = Some(v.into());
        self
    }
    fn actor(mut self, v: &str) -> Self {
        self.0.actor_id = Some(v.into());
        self
    }
    fn subject(mut self, v: &str) -> Self {
        self.0.subject_id = Some(v.into());
        self
    }
    fn related(mut self, v: &str) -> Self {
        self.0.related_id = Some(v.into());
        self
    }
    fn since(mut self, v: i64) -> Self {
        self.0.since_micros = Some(v);
        self
    }
    fn until(mut self, v: i64) -> Self {
        self.0.until_micros = Some(v);
        self
    }
    fn from(mut self, v: u64) -> Self {
        self.0.from_index = v;
        self
    }
    fn below(mut self, v: u64) -> Self {
        self.0.below_index = v;
        self
    }
    fn limit(mut self, v: u32) -> Self {
        self.0.limit = v;
        self
    }
}

/// A filter over the whole fixture log: below index 12, limit 100, nothing else set.
fn all() -> Q {
    Q(EntryFilter::default()).below(12).limit(100)
}

async fn find_entries_single_filters<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let (store, gov) = find_fixture(fresh).await;
    #[rustfmt::skip]
    let cases: Vec<(Q, Vec<u64>)> = vec![
        (all(), (0..12).collect()),
        (all().ty("model.trained"), vec![0, 2, 4, 7, 10]),
        (all().ty("dataset.registered"), vec![1, 5, 11]),
        // Exact match only: no prefix, no case folding, no LIKE patterns.
        (all().ty("model"), vec![]),
        (all().ty("MODEL.TRAINED"), vec![]),
        (all().ty("model.%"), vec![]),
        (all().actor("alice"), vec![0, 4, 5, 7, 8]),
        (all().actor("m-2"), vec![11]),
        (all().actor("nobody"), vec![]),
        (all().subject("m-1"), vec![0, 3, 4, 9, 10]),
        (all().subject("m-2"), vec![2, 8]),
        (all().subject("d-1"), vec![1, 11]),
        (all().related("d-1"), vec![0, 2, 7, 11]),
        // Two links to d-2 on one entry: listed once.
        (all().related("d-2"), vec![4]),
        (all().related("m-1"), vec![6, 9]),
        (all().related("r-7"), vec![2, 10]),
        // Only the related id matches, not its kind or rel.
        (all().related("input"), vec![]),
        (all().related("dataset"), vec![]),
        (all().since(T0 + 30), vec![3, 4, 5, 6, 8, 9, 10, 11]),
        (all().until(T0 + 30), vec![0, 1, 2, 7]),
        (all().since(T0 + 110), vec![11]),
        (all().until(T0 + 110), (0..11).collect()),
        (all().until(0), vec![7]),
        (all().since(-5).until(-4), vec![7]),
        (all().since(T0 + 200), vec![]),
        (all().from(9), vec![9, 10, 11]),
        (all().below(3), vec![0, 1, 2]),
        (all().limit(2), vec![0, 1]),
    ];
    for (q, want) in cases {
        check_find(&store, &gov, q, &want).await;
    }
}

async fn find_entries_window_and_limit<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let (store, gov) = find_fixture(fresh).await;
    let w = |from: u64, below: u64, limit: u32| {
        Q(EntryFilter::default())
            .from(from)
            .below(below)
            .limit(limit)
    };
    #[rustfmt::skip]
    let cases: Vec<(Q, Vec<u64>)> = vec![
        (w(0, 12, 100), (0..12).collect()),
        (w(4, 9, 100), (4..9).collect()),
        (w(3, 4, 100), vec![3]),
        (w(4, 4, 100), vec![]),
        (w(9, 4, 100), vec![]),
        (w(0, 0, 100), vec![]),
        (w(11, 12, 100), vec![11]),
        (w(12, 100, 100), vec![]),
        // below_index beyond the log's size: the stored entries below it.
        (w(10, 1000, 100), vec![10, 11]),
        (w(0, 12, 0), vec![]),
        (w(0, 12, 1), vec![0]),
        (w(0, 12, 3), vec![0, 1, 2]),
        (w(5, 12, 3), vec![5, 6, 7]),
        (w(5, 7, 3), vec![5, 6]),
        (w(0, 12, 12), (0..12).collect()),
        (w(0, 12, u32::MAX), (0..12).collect()),
    ];
    for (q, want) in cases {
        check_find(&store, &gov, q, &want).await;
    }
    // Paging with a cursor the way the ledger does: every entry exactly once, in order.
    let mut cursor = 0;
    let mut seen = Vec::new();
    loop {
        let page = ok(
            store.find_entries(gov.key(), &w(cursor, 12, 5).0).await,
            "find_entries page",
        );
        seen.extend(indexes(&page));
        match page.last() {
            Some(last) if page.len() == 5 => cursor = last.index + 1,
            _ => break,
        }
    }
    assert_eq!(
        seen,
        (0..12).collect::<Vec<_>>(),
        "paging find_entries by cursor (limit 5) must list every entry once, in order"
    );
}

async fn find_entries_combined_filters<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let (store, gov) = find_fixture(fresh).await;
    let trained = || all().ty("model.trained");
    #[rustfmt::skip]
    let cases: Vec<(Q, Vec<u64>)> = vec![
        (trained().actor("alice"), vec![0, 4, 7]),
        (trained().actor("alice").subject("m-1"), vec![0, 4]),
        (trained().actor("alice").subject("m-1").related("d-2"), vec![4]),
        (trained().actor("alice").subject("m-1").related("d-2").since(T0 + 41), vec![]),
        (trained().actor("alice").since(T0).until(T0 + 41), vec![0, 4]),
        (trained().actor("bob").related("r-7"), vec![2, 10]),
        (trained().actor("bob").related("r-7").from(3), vec![10]),
        (trained().actor("bob").related("r-7").below(10), vec![2]),
        (trained().from(1).limit(2), vec![2, 4]),
        (trained().from(1).below(5), vec![2, 4]),
        (all().related("d-1").until(T0 + 100), vec![0, 2, 7]),
        (all().related("d-1").from(1).limit(2), vec![2, 7]),
        (all().subject("m-1").actor("svc-1"), vec![9]),
        (all().subject("m-1").ty("dataset.registered"), vec![]),
        (
            all().ty("dataset.registered").subject("d-1").related("d-1").actor("m-2")
                .since(T0 + 110).until(T0 + 111).from(11).below(12).limit(1),
            vec![11],
        ),
    ];
    for (q, want) in cases {
        check_find(&store, &gov, q, &want).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Cases: isolation
// ---------------------------------------------------------------------------------------------

/// Asserts that everything `store` shows for `model`'s log is exactly the model, up to `horizon`.
async fn assert_log_is<S: LedgerReader>(store: &S, model: &LogModel, horizon: u64, what: &str) {
    let k = model.key();
    let name = key_name(k);
    assert_eq!(
        ok(store.latest_checkpoint(k).await, "latest_checkpoint"),
        *model.latest(),
        "{what}: latest_checkpoint of {name}"
    );
    for size in 0..=horizon {
        assert_eq!(
            ok(store.checkpoint_at(k, size).await, "checkpoint_at"),
            model.checkpoint_at(size),
            "{what}: checkpoint_at({size}) of {name}"
        );
    }
    assert_entries(
        &ok(store.entry_range(k, 0, horizon).await, "entry_range"),
        &model.expected(0, horizon),
        &format!("{what}: entry_range of {name}"),
    );
    for i in 0..horizon {
        assert_eq!(
            ok(store.entry(k, i).await, "entry"),
            model.expected(i, i + 1).pop(),
            "{what}: entry({i}) of {name}"
        );
    }
    let subtrees = subtrees_within(horizon);
    let want: Vec<Option<Hash>> = subtrees.iter().map(|s| model.node(*s)).collect();
    assert_eq!(
        ok(store.nodes(k, &subtrees).await, "nodes"),
        want,
        "{what}: nodes of {name}"
    );
    assert_entries(
        &ok(
            store
                .find_entries(
                    k,
                    &EntryFilter {
                        below_index: horizon,
                        limit: 1000,
                        ..EntryFilter::default()
                    },
                )
                .await,
            "find_entries",
        ),
        &model.expected(0, horizon),
        &format!("{what}: find_entries of {name}"),
    );
}

async fn tenants_with_the_same_log_names_are_isolated<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut one = create(&store, "one").await;
    let mut two = create(&store, "two").await;
    // The same ids in both tenants' governance logs, with different content (subjects).
    let drafts = |tenant: &str, ns: std::ops::RangeInclusive<u128>| -> Vec<Draft> {
        ns.map(|n| {
            let mut d = Draft::numbered(n).with_subject(&format!("{tenant}-s-{n}"));
            d.fields.related = vec![("dataset".into(), format!("{tenant}-d"), "input".into())];
            d
        })
        .collect()
    };
    two[0].append(&store, drafts("two", 1..=2)).await;
    one[0].append(&store, drafts("one", 1..=3)).await;
    two[0].append(&store, drafts("two", 3..=5)).await;
    // Published: one {0, 3}; two {0, 2, 5}.
    for (models, label) in [(&one, "tenant one"), (&two, "tenant two")] {
        for m in models.iter() {
            assert_log_is(&store, m, 8, label).await;
        }
    }
    let id4 = Uuid::from_u128(4);
    assert_eq!(
        ok(
            store.existing_ids(one[0].key(), &[id4]).await,
            "existing_ids"
        ),
        Vec::new(),
        "an id written only by tenant two must not exist for tenant one"
    );
    let id1 = Uuid::from_u128(1);
    for m in [&one[0], &two[0]] {
        let got = ok(store.existing_ids(m.key(), &[id1]).await, "existing_ids");
        assert_eq!(
            got.iter().map(|e| e.leaf_hash).collect::<Vec<_>>(),
            vec![m.entries()[0].leaf_hash],
            "existing_ids(id 1) of {} must resolve to its own entry",
            key_name(m.key())
        );
    }
    for (m, other) in [(&one[0], "two"), (&two[0], "one")] {
        for f in [
            all().subject(&format!("{other}-s-1")).0,
            all().related(&format!("{other}-d")).0,
        ] {
            assert_entries(
                &ok(store.find_entries(m.key(), &f).await, "find_entries"),
                &[],
                &format!(
                    "find_entries({f:?}) of {} must not see tenant {other}",
                    key_name(m.key())
                ),
            );
        }
    }
    assert_tree_rebuilds(&store, &one[0], "tenant one").await;
    assert_tree_rebuilds(&store, &two[0], "tenant two").await;
    // A third tenant created after the others have entries starts empty.
    let three = create(&store, "three").await;
    assert_log_is(&store, &three[0], 8, "tenant three").await;
}

async fn logs_of_one_tenant_are_isolated<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "solo").await;
    for (i, log) in ["governance", "inference", "access"].iter().enumerate() {
        let drafts: Vec<Draft> = (1..=(2 + 2 * i as u128))
            .map(|n| Draft::numbered(n).with_subject(&format!("{log}-{n}")))
            .collect();
        logs[i].append(&store, drafts).await;
    }
    // Sizes 2, 4, 6 with the same ids.
    for m in &logs {
        assert_log_is(&store, m, 8, "one tenant's three logs").await;
        assert_tree_rebuilds(&store, m, "one tenant's three logs").await;
    }
    let id5 = Uuid::from_u128(5);
    for (m, want) in logs.iter().zip([0usize, 0, 1]) {
        assert_eq!(
            ok(store.existing_ids(m.key(), &[id5]).await, "existing_ids").len(),
            want,
            "existing_ids(id 5) of {} (only the access log has it)",
            key_name(m.key())
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Cases: concurrency and edges
// ---------------------------------------------------------------------------------------------

/// Entries in the large batch the concurrent reader watches.
const LARGE_BATCH: u64 = 10_000;

async fn readers_see_a_whole_batch_or_none<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "busy").await;
    let gov = &mut logs[0];
    gov.append(&store, numbered(1..=3)).await;
    let old = gov.size();
    let drafts: Vec<Draft> = (0..u128::from(LARGE_BATCH))
        .map(|i| {
            let mut d = Draft::numbered(1_000 + i);
            if i % 10 == 0 {
                d = d.with_payload(br#"{"bulk":true}"#, i as u8);
            }
            if i % 7 == 0 {
                d.fields.related =
                    vec![("run".into(), format!("r-{}", i % 5), "produced-by".into())];
            }
            d
        })
        .collect();
    let batch = gov.next_batch(drafts);
    let new = batch.checkpoint.size;
    assert_eq!(new, old + LARGE_BATCH, "fixture: batch size");
    let leaf = |i: u64| {
        if i < old {
            gov.entries()[i as usize].leaf_hash
        } else {
            batch.entries[(i - old) as usize].leaf_hash
        }
    };
    let done = Cell::new(false);
    let reader_store = store.clone();
    let key = gov.key().clone();

    let writer = async {
        let r = store.append_batch(batch.clone()).await;
        done.set(true);
        r
    };
    let reader = async {
        let mut during = 0u64;
        let mut saw_old = 0u64;
        let mut saw_new = 0u64;
        loop {
            let finished_before = done.get();
            let first_new = ok(reader_store.entry(&key, old).await, "entry(first of batch)");
            let last_new = ok(
                reader_store.entry(&key, new - 1).await,
                "entry(last of batch)",
            );
            let cp = ok(
                reader_store.latest_checkpoint(&key).await,
                "latest_checkpoint",
            );
            assert!(
                cp.size == old || cp.size == new,
                "a reader saw a checkpoint of size {} while a batch took the log from {old} to \
                 {new}",
                cp.size
            );
            if first_new.is_some() {
                assert!(
                    last_new.is_some(),
                    "a reader saw entry {old} (first of the batch) but not entry {} (last): a \
                     partly committed batch",
                    new - 1
                );
            }
            if last_new.is_some() {
                assert_eq!(
                    cp.size, new,
                    "a reader saw the batch's entries but then an older checkpoint"
                );
            }
            let at = ok(
                reader_store.entry(&key, cp.size - 1).await,
                "entry(size - 1)",
            )
            .unwrap_or_else(|| {
                panic!(
                    "a reader saw checkpoint size {} but entry {} did not exist: the \
                         checkpoint became visible before its entries",
                    cp.size,
                    cp.size - 1
                )
            });
            assert_eq!(
                at.leaf_hash,
                leaf(cp.size - 1),
                "entry {} read during the batch has the wrong leaf hash",
                cp.size - 1
            );
            let window = ok(
                reader_store.entry_range(&key, old - 1, old + 1).await,
                "entry_range around the batch start",
            );
            let want_len = if cp.size == new { 2 } else { 1 };
            assert!(
                window.len() == want_len || (cp.size == old && window.len() == 2),
                "entry_range({}, {}) returned {} entries after a checkpoint of size {}",
                old - 1,
                old + 1,
                window.len(),
                cp.size
            );
            if cp.size == old {
                saw_old += 1;
            } else {
                saw_new += 1;
            }
            if finished_before {
                assert_eq!(
                    cp.size, new,
                    "after append_batch returned, a reader still saw the old checkpoint"
                );
                break;
            }
            if !done.get() {
                during += 1;
            }
            yield_now().await;
        }
        (during, saw_old, saw_new)
    };
    let (written, (during, saw_old, saw_new)) = join2(writer, reader).await;
    ok(
        written,
        "append_batch of 10,000 entries with a reader polling",
    );
    assert!(
        during > 0,
        "the reader finished no poll while the 10,000-entry batch was being committed (old \
         state seen {saw_old} times, new {saw_new}), so the case proved nothing"
    );
    gov.accept(&batch);
    assert_entries(
        &ok(store.entry_range(gov.key(), old, new).await, "entry_range"),
        &gov.expected(old, new),
        "the large batch read back",
    );
    assert_eq!(
        ok(
            store
                .find_entries(
                    gov.key(),
                    &EntryFilter {
                        related_id: Some("r-3".into()),
                        below_index: new,
                        limit: u32::MAX,
                        ..EntryFilter::default()
                    },
                )
                .await,
            "find_entries(related r-3)"
        )
        .len(),
        gov.entries()
            .iter()
            .filter(|e| e.fields.related.iter().any(|r| r.1 == "r-3"))
            .count(),
        "find_entries(related_id r-3) over the large batch"
    );
    assert_tree_rebuilds(&store, gov, "after the large batch").await;
}

async fn out_of_range_positions_are_absent<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "far").await;
    let gov = &mut logs[0];
    gov.append(&store, numbered(1..=3)).await;
    let k = gov.key().clone();
    let huge = 1u64 << 63;
    // Every deviation is collected, so one run reports all of them.
    let mut problems: Vec<String> = Vec::new();
    let mut check = |what: String, good: bool, got: String| {
        if !good {
            problems.push(format!("{what}: got {got}"));
        }
    };
    for size in [huge, u64::MAX] {
        let r = store.checkpoint_at(&k, size).await;
        check(
            format!("checkpoint_at({size}) must be Ok(None)"),
            matches!(r, Ok(None)),
            format!("{r:?}"),
        );
    }
    let far = Subtree {
        level: 0,
        index: u64::MAX,
    };
    let first = Subtree { level: 0, index: 0 };
    let r = store.nodes(&k, &[far, first]).await;
    check(
        "nodes([level 0 index u64::MAX, level 0 index 0]) must be Ok([None, Some])".into(),
        matches!(&r, Ok(v) if v.len() == 2 && v[0].is_none() && v[1] == gov.node(first)),
        format!("{r:?}"),
    );
    for index in [huge, u64::MAX] {
        let r = store.entry(&k, index).await;
        check(
            format!("entry({index}) must be Ok(None)"),
            matches!(r, Ok(None)),
            format!("{r:?}"),
        );
    }
    for (from, to) in [(u64::MAX - 1, u64::MAX), (huge, u64::MAX), (0, u64::MAX)] {
        let r = store.entry_range(&k, from, to).await;
        let want = gov.expected(from, to);
        check(
            format!(
                "entry_range({from}, {to}) must be Ok with indexes {:?}",
                indexes(&want)
            ),
            matches!(&r, Ok(v) if *v == want),
            format!("{:?}", r.map(|v| indexes(&v))),
        );
    }
    for (from_index, below_index) in [(0, u64::MAX), (u64::MAX, u64::MAX), (huge, u64::MAX)] {
        let f = EntryFilter {
            from_index,
            below_index,
            limit: 100,
            ..EntryFilter::default()
        };
        let want = reference_find(gov, &f);
        let r = store.find_entries(&k, &f).await;
        check(
            format!(
                "find_entries(from_index {from_index}, below_index {below_index}) must be Ok \
                 with indexes {:?}",
                indexes(&want)
            ),
            matches!(&r, Ok(v) if *v == want),
            format!("{:?}", r.map(|v| indexes(&v))),
        );
    }
    // A batch claiming to start far beyond the log is a wrong first index.
    let mut bad = gov.next_batch(numbered(4..=4));
    bad.entries[0].index = u64::MAX - 1;
    bad.checkpoint.size = u64::MAX;
    let r = store.append_batch(bad).await;
    check(
        "append_batch starting at u64::MAX - 1 must be Conflict".into(),
        matches!(r, Err(StoreError::Conflict(_))),
        format!("{r:?}"),
    );
    let latest = store.latest_checkpoint(&k).await;
    check(
        "latest_checkpoint must be unchanged".into(),
        matches!(&latest, Ok(c) if c == gov.latest()),
        format!("{latest:?}"),
    );
    assert!(
        problems.is_empty(),
        "positions beyond i64::MAX are valid u64 arguments and name nothing stored, so reads \
         must answer None/empty (not an error):\n  {}",
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Cases: erasure, checkpoint listing, principals and tokens
// ---------------------------------------------------------------------------------------------

fn holders(model: &LogModel, indexes: &[u64]) -> Vec<PayloadHolder> {
    indexes
        .iter()
        .map(|i| {
            let e = &model.entries()[*i as usize];
            PayloadHolder {
                index: e.index,
                id: e.id,
                entry_type: e.fields.entry_type.clone(),
                time_micros: e.fields.time_micros,
                payload: e.payload.clone().expect("a payload"),
            }
        })
        .collect()
}

async fn payloads_are_listed_and_erased<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "erasure").await;
    let drafts: Vec<Draft> = (1..=8u128)
        .map(|n| {
            let d = Draft::numbered(n);
            if n % 2 == 0 {
                d.with_payload(format!(r#"{{"n":{n}}}"#).as_bytes(), n as u8)
            } else {
                d
            }
        })
        .collect();
    logs[0].append(&store, drafts[..5].to_vec()).await;
    logs[0].append(&store, drafts[5..].to_vec()).await;
    logs[1]
        .append(
            &store,
            numbered([100])
                .into_iter()
                .map(|d| d.with_payload(b"{}", 9))
                .collect(),
        )
        .await;
    let gov = &logs[0];
    let k = gov.key().clone();
    let list = |from: u64, before: Option<i64>, limit: u32| {
        let store = store.clone();
        let k = k.clone();
        async move { ok(store.payloads(&k, from, before, limit).await, "payloads") }
    };
    assert_eq!(
        list(0, None, 100).await,
        holders(gov, &[1, 3, 5, 7]),
        "every payload, in index order"
    );
    assert_eq!(
        list(2, None, 2).await,
        holders(gov, &[3, 5]),
        "from and limit"
    );
    let cut = gov.entries()[5].fields.time_micros;
    assert_eq!(
        list(0, Some(cut), 100).await,
        holders(gov, &[1, 3]),
        "before is exclusive"
    );
    assert!(
        ok(store.erase_payload(&k, 3).await, "erase"),
        "erasing a payload"
    );
    assert!(
        !ok(store.erase_payload(&k, 3).await, "erase"),
        "erasing it again"
    );
    assert!(
        !ok(store.erase_payload(&k, 2).await, "erase"),
        "an entry without payload"
    );
    assert!(
        !ok(store.erase_payload(&k, 99).await, "erase"),
        "beyond the log"
    );
    ok(store.compact().await, "compact");
    let mut want = gov.expected(0, 8);
    want[3].payload = None;
    assert_entries(
        &ok(store.entry_range(&k, 0, 8).await, "entry_range"),
        &want,
        "after erasure and compaction: only entry 3 lost its payload",
    );
    assert_eq!(
        list(0, None, 100).await,
        holders(gov, &[1, 5, 7]),
        "the erased payload is no longer listed"
    );
    assert_eq!(
        ok(store.payloads(logs[1].key(), 0, None, 10).await, "payloads").len(),
        1,
        "another log's payloads are untouched"
    );
    assert_eq!(
        ok(store.latest_checkpoint(&k).await, "latest"),
        *gov.latest(),
        "erasure leaves the tree alone"
    );
    let missing = LogKey {
        tenant: tenant("nobody"),
        log: LogName::Governance,
    };
    expect_err(
        store.payloads(&missing, 0, None, 1).await,
        &["NotFound"],
        "payloads of an unknown log",
    );
    expect_err(
        store.erase_payload(&missing, 0).await,
        &["NotFound"],
        "erase in an unknown log",
    );
}

async fn every_signed_checkpoint_is_listed<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "cps").await;
    logs[0].append(&store, numbered(1..=3)).await;
    logs[0].append(&store, numbered(4..=4)).await;
    logs[0].append(&store, numbered(5..=9)).await;
    let gov = &logs[0];
    let k = gov.key();
    assert_eq!(
        ok(store.checkpoints(k, 0, 100).await, "checkpoints"),
        gov.checkpoints().to_vec(),
        "all, smallest first"
    );
    assert_eq!(
        ok(store.checkpoints(k, 4, 100).await, "checkpoints"),
        gov.checkpoints()[2..].to_vec(),
        "from a size"
    );
    assert_eq!(
        ok(store.checkpoints(k, 1, 2).await, "checkpoints"),
        gov.checkpoints()[1..3].to_vec(),
        "limit"
    );
    assert!(
        ok(store.checkpoints(k, 10, 100).await, "checkpoints").is_empty(),
        "beyond the log"
    );
    assert_eq!(
        ok(
            store.checkpoints(logs[1].key(), 0, 100).await,
            "checkpoints"
        ),
        vec![logs[1].created().clone()],
        "another log"
    );
}

fn principal_row(id: &str, tenant: Option<&str>) -> PrincipalRow {
    PrincipalRow {
        id: id.into(),
        tenant: tenant.map(str::to_owned),
        kind: "user".into(),
        name: format!("Name of {id}"),
        roles: "auditor".into(),
        created_micros: T0,
    }
}

fn token_row(id: &str, principal: &str, created: i64) -> TokenRow {
    TokenRow {
        id: id.into(),
        principal_id: principal.into(),
        secret_hash: [id.len() as u8; 32],
        created_micros: created,
        expires_micros: created + 1_000,
        revoked_micros: None,
    }
}

async fn principals_and_tokens<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + AuthStore + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let admin = principal_row("p-admin", None);
    assert!(
        ok(
            store
                .bootstrap(admin.clone(), token_row("t-admin", "p-admin", T0))
                .await,
            "bootstrap"
        ),
        "the first bootstrap creates"
    );
    assert!(
        !ok(
            store
                .bootstrap(
                    principal_row("p-other", None),
                    token_row("t-other", "p-other", T0)
                )
                .await,
            "bootstrap"
        ),
        "a second bootstrap does nothing"
    );
    assert_eq!(
        ok(store.principal("p-other").await, "principal"),
        None,
        "nothing of the refused bootstrap was written"
    );
    assert_eq!(
        ok(store.token("t-other").await, "token"),
        None,
        "nothing of the refused bootstrap was written"
    );
    let alice = principal_row("p-alice", Some("acme"));
    let bob = principal_row("p-bob", Some("acme"));
    ok(store.create_principal(bob.clone()).await, "create bob");
    ok(store.create_principal(alice.clone()).await, "create alice");
    ok(
        store
            .create_principal(principal_row("p-eve", Some("globex")))
            .await,
        "create eve",
    );
    expect_err(
        store.create_principal(alice.clone()).await,
        &["Conflict"],
        "the same principal id twice",
    );
    assert_eq!(
        ok(store.principal("p-alice").await, "principal"),
        Some(alice.clone())
    );
    assert_eq!(ok(store.principal("p-nobody").await, "principal"), None);
    assert_eq!(
        ok(store.principals(Some("acme")).await, "principals"),
        vec![alice.clone(), bob],
        "a tenant's principals, by id"
    );
    assert_eq!(
        ok(store.principals(None).await, "principals"),
        vec![admin],
        "server administrators"
    );
    assert!(ok(store.principals(Some("nobody")).await, "principals").is_empty());
    ok(
        store.add_token(token_row("t-1", "p-alice", T0)).await,
        "token 1",
    );
    ok(
        store.add_token(token_row("t-22", "p-alice", T0 + 5)).await,
        "token 2",
    );
    expect_err(
        store.add_token(token_row("t-1", "p-bob", T0)).await,
        &["Conflict"],
        "the same token id twice",
    );
    expect_err(
        store.add_token(token_row("t-3", "p-nobody", T0)).await,
        &["NotFound"],
        "a token of no principal",
    );
    assert_eq!(
        ok(store.token("t-1").await, "token"),
        Some((token_row("t-1", "p-alice", T0), alice))
    );
    let listed: Vec<String> = ok(store.tokens("p-alice").await, "tokens")
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, ["t-22", "t-1"], "newest first");
    assert!(
        ok(store.revoke_token("t-1", T0 + 7).await, "revoke"),
        "revoking"
    );
    assert!(
        !ok(store.revoke_token("t-1", T0 + 9).await, "revoke"),
        "revoking twice"
    );
    assert!(
        !ok(store.revoke_token("t-nobody", T0).await, "revoke"),
        "revoking an unknown token"
    );
    let (t, _) = ok(store.token("t-1").await, "token").expect("t-1");
    assert_eq!(
        t.revoked_micros,
        Some(T0 + 7),
        "the first revocation time is kept"
    );
}

async fn access_changes_commit_with_their_batch<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + AuthStore + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let mut logs = create(&store, "access-changes").await;
    create(&store, "elsewhere").await;
    let gov = &mut logs[0];
    gov.append(&store, numbered(1..=1)).await;
    let size = |store: S, key: LogKey| async move {
        ok(store.latest_checkpoint(&key).await, "latest_checkpoint").size
    };

    let carol = principal_row("p-carol", Some("access-changes"));
    let mut batch = gov.next_batch(numbered(2..=3));
    batch.access = vec![
        AccessChange::AddPrincipal(carol.clone()),
        AccessChange::AddToken(token_row("t-carol", "p-carol", T0)),
    ];
    ok(
        store.append_batch(batch.clone()).await,
        "append_batch with a principal and its token",
    );
    gov.accept(&batch);
    assert_eq!(
        ok(store.principal("p-carol").await, "principal"),
        Some(carol.clone()),
        "the principal committed with its entries"
    );
    assert_eq!(
        ok(store.token("t-carol").await, "token"),
        Some((token_row("t-carol", "p-carol", T0), carol.clone())),
        "the token committed with its entries"
    );

    // A failure in any access change rolls back the whole batch: entries and principal alike.
    let refused: [(Vec<AccessChange>, &[&str], &str); 5] = [
        (
            vec![
                AccessChange::AddPrincipal(principal_row("p-dave", Some("access-changes"))),
                AccessChange::AddToken(token_row("t-carol", "p-dave", T0)),
            ],
            &["Conflict"],
            "a principal whose first token reuses an id",
        ),
        (
            vec![AccessChange::AddPrincipal(principal_row(
                "p-dave",
                Some("elsewhere"),
            ))],
            &["Conflict"],
            "a principal of another tenant",
        ),
        (
            vec![AccessChange::AddToken(token_row("t-dave", "p-nobody", T0))],
            &["NotFound"],
            "a token of no principal",
        ),
        (
            vec![AccessChange::RevokeToken {
                id: "t-nobody".into(),
                at_micros: T0,
            }],
            &["NotFound"],
            "revoking an unknown token",
        ),
        (
            vec![AccessChange::AddPrincipal(principal_row("p-dave", None))],
            &["Conflict"],
            "a server administrator from a tenant's log",
        ),
    ];
    for (access, want, label) in refused {
        let mut bad = gov.next_batch(numbered(4..=4));
        bad.access = access;
        expect_err(store.append_batch(bad).await, want, label);
        assert_eq!(
            size(store.clone(), gov.key().clone()).await,
            3,
            "{label}: no entry was written"
        );
        assert_eq!(
            ok(store.principal("p-dave").await, "principal"),
            None,
            "{label}: no principal was written"
        );
        assert_eq!(
            ok(store.token("t-dave").await, "token"),
            None,
            "{label}: no token was written"
        );
    }

    // Another tenant's principal and token are out of reach of this tenant's batches.
    let eve = principal_row("p-eve", Some("elsewhere"));
    ok(store.create_principal(eve.clone()).await, "create eve");
    ok(
        store.add_token(token_row("t-eve", "p-eve", T0)).await,
        "token of eve",
    );
    for (access, label) in [
        (
            AccessChange::AddToken(token_row("t-eve2", "p-eve", T0)),
            "a token for another tenant's principal",
        ),
        (
            AccessChange::RevokeToken {
                id: "t-eve".into(),
                at_micros: T0,
            },
            "revoking another tenant's token",
        ),
    ] {
        let mut bad = gov.next_batch(numbered(4..=4));
        bad.access = vec![access];
        expect_err(store.append_batch(bad).await, &["NotFound"], label);
        assert_eq!(size(store.clone(), gov.key().clone()).await, 3, "{label}");
    }
    assert_eq!(ok(store.token("t-eve2").await, "token"), None);
    assert_eq!(
        ok(store.token("t-eve").await, "token").map(|(t, _)| t.revoked_micros),
        Some(None),
        "another tenant's token stays valid"
    );

    // Revocation commits with its record; a second one keeps the first time.
    for (n, at) in [(4, T0 + 7), (5, T0 + 9)] {
        let mut batch = gov.next_batch(numbered(n..=n));
        batch.access = vec![AccessChange::RevokeToken {
            id: "t-carol".into(),
            at_micros: at,
        }];
        ok(store.append_batch(batch.clone()).await, "revocation batch");
        gov.accept(&batch);
    }
    assert_eq!(
        ok(store.token("t-carol").await, "token").map(|(t, _)| t.revoked_micros),
        Some(Some(T0 + 7)),
        "the first revocation time is kept"
    );

    // Access changes never commit on their own.
    let mut empty = gov.next_batch(Vec::new());
    empty.access = vec![AccessChange::AddPrincipal(principal_row(
        "p-frank",
        Some("access-changes"),
    ))];
    expect_err(
        store.append_batch(empty).await,
        &["Conflict"],
        "access changes without entries",
    );
    assert_eq!(ok(store.principal("p-frank").await, "principal"), None);
}

async fn verifier_key_is_replaced<S, F, Fut>(fresh: &F)
where
    S: LedgerWriter + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let store = fresh().await;
    let logs = create(&store, "rotate").await;
    ok(
        store
            .set_verifier_key(logs[0].key(), "rotate.test+00000000+AQ")
            .await,
        "set_verifier_key",
    );
    let listed = ok(store.logs(&tenant("rotate")).await, "logs");
    for (record, model) in listed.iter().zip(&logs) {
        let want = if record.key == *logs[0].key() {
            "rotate.test+00000000+AQ".to_string()
        } else {
            model.record.verifier_key.clone()
        };
        assert_eq!(
            record.verifier_key, want,
            "only the named log's key changes"
        );
    }
    assert_eq!(
        ok(store.latest_checkpoint(logs[0].key()).await, "latest"),
        *logs[0].latest(),
        "the tree is untouched"
    );
    let missing = LogKey {
        tenant: tenant("nobody"),
        log: LogName::Governance,
    };
    expect_err(
        store.set_verifier_key(&missing, "x").await,
        &["NotFound"],
        "an unknown log",
    );
}
