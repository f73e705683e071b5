//! The single writer of one log: assigns indexes, extends the tree, signs, commits, acks.
//!
//! Every append request for a log goes through its sequencer task. Requests that arrive while
//! a batch is being committed queue up and become the next batch, so under load many entries
//! share one transaction, one fsync and one signature (group commit) with no artificial wait;
//! an idle log commits a lone entry at once.
//!
//! Architecture invariant: a reply is sent only after the batch's transaction, which includes
//! the signed checkpoint that covers its entries, is durable. A checkpoint is signed only after
//! the new tree is proven consistent with the previous checkpoint, so the log can never sign
//! two inconsistent checkpoints.

use std::collections::HashMap;
use std::sync::Arc;

use custody_core::checkpoint::{Checkpoint, SignedCheckpoint};
use custody_core::envelope::SealedEntry;
use custody_core::merkle::{self, Frontier, Hash, Subtree};
use custody_core::note::NoteSigner;
use custody_store::{
    AccessChange, AppendBatch, EntryIndexFields, LedgerWriter, LogKey, NewEntry, StoredCheckpoint,
    StoredPayload,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::{AppendOutcome, Appended, CheckpointCache, LedgerError};

/// Most entries gathered into one batch from queued requests (a single larger request is still
/// committed whole, since it is atomic).
const MAX_BATCH_ENTRIES: usize = 8192;

/// An entry sealed by the request handler, waiting for an index.
#[derive(Debug, Clone)]
pub struct PreparedEntry {
    /// Whether the client chose the id (only then can it be a retry).
    pub client_id: bool,
    /// Digest of the client's submission.
    pub content_digest: [u8; 32],
    /// Envelope, canonical bytes and leaf hash.
    pub sealed: SealedEntry,
    /// Payload with its salt.
    pub payload: Option<StoredPayload>,
}

impl PreparedEntry {
    fn id(&self) -> Uuid {
        self.sealed.envelope.id
    }
}

pub(crate) struct AppendRequest {
    pub entries: Vec<PreparedEntry>,
    pub reply: oneshot::Sender<Result<AppendOutcome, LedgerError>>,
    /// A key rotation: the entries (the announcement) are committed alone, signed with the
    /// current key, and every later checkpoint is signed with this one.
    pub rotate_to: Option<Arc<NoteSigner>>,
    /// Principal and token changes the entries record, committed in the same transaction.
    /// Such a request is committed alone, so a change the store refuses fails only it.
    pub access: Vec<AccessChange>,
}

impl AppendRequest {
    /// Whether the request must be committed in a batch of its own.
    fn goes_alone(&self) -> bool {
        self.rotate_to.is_some() || !self.access.is_empty()
    }
}

/// The handle the ledger keeps for a running sequencer.
#[derive(Clone)]
pub(crate) struct SequencerHandle {
    pub tx: mpsc::Sender<AppendRequest>,
}

pub(crate) struct Sequencer<S> {
    key: LogKey,
    origin: String,
    signer: Arc<NoteSigner>,
    keys: crate::KeyStore,
    /// Set when a rotation was committed but its key could not be switched to: signing more
    /// under the old key would contradict the log, so nothing more is appended until restart
    /// (which completes the rotation).
    halted: Option<String>,
    store: S,
    frontier: Frontier,
    checkpoint: StoredCheckpoint,
    /// Set when a commit failed; the next batch first reloads the state from storage.
    stale: bool,
    /// Where readers learn of each new durable checkpoint.
    published: Arc<CheckpointCache>,
}

/// Reads the tree's right edge back from storage and checks it against the latest checkpoint.
pub(crate) async fn load_frontier<S: LedgerWriter>(
    store: &S,
    key: &LogKey,
    checkpoint: &StoredCheckpoint,
) -> Result<Frontier, LedgerError> {
    let parts = merkle::decompose(0, checkpoint.size);
    let hashes = store.nodes(key, &parts).await?;
    let hashes = hashes
        .into_iter()
        .zip(&parts)
        .map(|(h, s)| {
            h.ok_or_else(|| {
                LedgerError::Corrupt(format!(
                    "tree node level {} index {} is missing from storage",
                    s.level, s.index
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let frontier = Frontier::from_parts(checkpoint.size, hashes)
        .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
    if frontier.root() != checkpoint.root {
        return Err(LedgerError::Corrupt(format!(
            "stored tree of size {} does not match its checkpoint root",
            checkpoint.size
        )));
    }
    Ok(frontier)
}

enum Planned {
    Existing(Appended),
    New(usize),
}

impl<S: LedgerWriter + Clone> Sequencer<S> {
    pub(crate) async fn start(
        store: S,
        key: LogKey,
        origin: String,
        signer: Arc<NoteSigner>,
        keys: crate::KeyStore,
        published: Arc<CheckpointCache>,
    ) -> Result<(SequencerHandle, tokio::task::JoinHandle<()>), LedgerError> {
        let checkpoint = store.latest_checkpoint(&key).await?;
        let frontier = load_frontier(&store, &key, &checkpoint).await?;
        let (tx, rx) = mpsc::channel(4096);
        let seq = Sequencer {
            key,
            origin,
            signer,
            keys,
            halted: None,
            store,
            frontier,
            checkpoint,
            stale: false,
            published,
        };
        let task = tokio::spawn(seq.run(rx));
        Ok((SequencerHandle { tx }, task))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<AppendRequest>) {
        let mut held: Option<AppendRequest> = None;
        loop {
            let first = match held.take() {
                Some(r) => r,
                None => match rx.recv().await {
                    Some(r) => r,
                    None => break,
                },
            };
            if let Some(reason) = &self.halted {
                let _ = first
                    .reply
                    .send(Err(LedgerError::Unavailable(reason.clone())));
                continue;
            }
            if first.rotate_to.is_some() {
                self.rotate(first).await;
                continue;
            }
            if first.goes_alone() {
                self.commit(vec![first]).await;
                continue;
            }
            let mut count = first.entries.len();
            let mut batch = vec![first];
            while count < MAX_BATCH_ENTRIES {
                match rx.try_recv() {
                    // A rotation or an access change waits for the batch before it, and goes
                    // alone.
                    Ok(r) if r.goes_alone() => {
                        held = Some(r);
                        break;
                    }
                    Ok(r) => {
                        count += r.entries.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch).await;
        }
        tracing::debug!(tenant = %self.key.tenant, log = %self.key.log, "sequencer stopped");
    }

    async fn commit(&mut self, requests: Vec<AppendRequest>) {
        let mut attempt = 1;
        let replies = loop {
            match self.try_commit(&requests).await {
                Err(Attempt::Moved) if attempt < MAX_ATTEMPTS => attempt += 1,
                Err(Attempt::Moved) => {
                    break Err(LedgerError::Unavailable(format!(
                        "other servers kept extending the log; this batch lost {MAX_ATTEMPTS} times in a row"
                    )));
                }
                Err(Attempt::Failed(e)) => break Err(e),
                Ok(replies) => break Ok(replies),
            }
        };
        match replies {
            Ok(replies) => {
                for (req, reply) in requests.into_iter().zip(replies) {
                    let _ = req.reply.send(reply);
                }
            }
            Err(e) => {
                for req in requests {
                    let _ = req.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// One attempt at committing `requests` as a batch: the replies for each request, or why
    /// none of them was committed.
    async fn try_commit(
        &mut self,
        requests: &[AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, LedgerError>>, Attempt> {
        // On a store several servers write, this server takes its turn at the log: it holds
        // the log's sequencer lock from ordering to commit, and first catches up with what the
        // others appended. The store's check that a batch starts at the stored size remains
        // the fence should the lock be lost (its connection dropped) mid-batch.
        let _turn = if self.store.shared() {
            let (turn, stored_size) = self
                .store
                .sequencer_turn(&self.key)
                .await
                .map_err(|e| Attempt::Failed(e.into()))?;
            if stored_size != self.checkpoint.size {
                self.stale = true;
            }
            Some(turn)
        } else {
            None
        };
        if self.stale {
            self.reload().await?;
        }
        let client_ids: Vec<Uuid> = requests
            .iter()
            .flat_map(|r| r.entries.iter().filter(|e| e.client_id).map(|e| e.id()))
            .collect();
        let existing = if client_ids.is_empty() {
            HashMap::new()
        } else {
            self.store
                .existing_ids(&self.key, &client_ids)
                .await
                .map_err(|e| Attempt::Failed(e.into()))?
                .into_iter()
                .map(|e| (e.id, e))
                .collect()
        };

        let start_size = self.frontier.size();
        // Leaves are added to a copy, adopted only once the batch is durable.
        let mut frontier = self.frontier.clone();
        let mut new_entries: Vec<NewEntry> = Vec::new();
        // Ids appended earlier in this batch: id -> (position in new_entries, digest).
        let mut pending: HashMap<Uuid, (usize, [u8; 32], Hash)> = HashMap::new();
        let mut nodes: Vec<(Subtree, Hash)> = Vec::new();
        let mut plans: Vec<Result<Vec<Planned>, LedgerError>> = Vec::new();

        for req in requests {
            let planned = self.plan(
                &req.entries,
                &existing,
                &pending,
                start_size,
                new_entries.len(),
            );
            if let Ok(plan) = &planned {
                for (entry, p) in req.entries.iter().zip(plan) {
                    if let Planned::New(pos) = p
                        && *pos == new_entries.len()
                    {
                        pending.insert(
                            entry.id(),
                            (*pos, entry.content_digest, entry.sealed.leaf_hash),
                        );
                        nodes.extend(frontier.push(entry.sealed.leaf_hash));
                        new_entries.push(new_entry(start_size + *pos as u64, entry));
                    }
                }
            }
            plans.push(planned);
        }

        let access: Vec<AccessChange> = requests
            .iter()
            .flat_map(|r| r.access.iter().cloned())
            .collect();
        if !access.is_empty() && new_entries.is_empty() {
            return Err(Attempt::Failed(LedgerError::Conflict(
                "a change of principals or tokens must be recorded by a new entry".into(),
            )));
        }
        if !new_entries.is_empty() {
            self.publish(frontier, new_entries, nodes, access).await?;
        }

        Ok(plans
            .into_iter()
            .zip(requests)
            .map(|(planned, req)| {
                planned.map(|plan| AppendOutcome {
                    checkpoint_size: self.checkpoint.size,
                    results: plan
                        .into_iter()
                        .zip(&req.entries)
                        .map(|(p, e)| match p {
                            Planned::Existing(a) => a,
                            Planned::New(pos) => Appended {
                                index: start_size + pos as u64,
                                leaf_hash: e.sealed.leaf_hash,
                                id: e.id(),
                                existing: false,
                            },
                        })
                        .collect(),
                })
            })
            .collect())
    }

    /// Commits a rotation's announcement under the current key, then registers the new key,
    /// makes it the log's key on disk and signs with it from the next batch on. The caller
    /// hears back only once all of that is done.
    async fn rotate(&mut self, mut req: AppendRequest) {
        let Some(next) = req.rotate_to.take() else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        let reply = std::mem::replace(&mut req.reply, tx);
        self.commit(vec![req]).await;
        let committed = rx.await.unwrap_or_else(|_| {
            Err(LedgerError::Unavailable(
                "the rotation was not committed".into(),
            ))
        });
        let outcome = match committed {
            Ok(outcome) => outcome,
            Err(e) => {
                // Nothing was announced: the waiting key is dropped.
                let _ = self.keys.discard_next(&self.key.tenant, self.key.log);
                let _ = reply.send(Err(e));
                return;
            }
        };
        let vkey = next.verifier().to_string();
        let switched = async {
            self.store.set_verifier_key(&self.key, &vkey).await?;
            self.keys
                .promote_next(&self.key.tenant, self.key.log, self.checkpoint.size)
                .map_err(|e| LedgerError::Unavailable(e.to_string()))?;
            Ok::<(), LedgerError>(())
        }
        .await;
        match switched {
            Ok(()) => {
                self.signer = next;
                tracing::info!(tenant = %self.key.tenant, log = %self.key.log, verifier_key = %vkey, "log key rotated");
                let _ = reply.send(Ok(outcome));
            }
            Err(e) => {
                let reason = format!(
                    "a key rotation was committed but the new key could not be put in place ({e}); restart the server to complete it"
                );
                tracing::error!(tenant = %self.key.tenant, log = %self.key.log, "{reason}");
                self.halted = Some(reason.clone());
                let _ = reply.send(Err(LedgerError::Unavailable(reason)));
            }
        }
    }

    /// Decides, for each entry of one atomic request, whether it is a retry of an entry that
    /// exists or a new entry, and refuses the whole request if any id is reused for other
    /// content.
    fn plan(
        &self,
        entries: &[PreparedEntry],
        existing: &HashMap<Uuid, custody_store::ExistingEntry>,
        pending: &HashMap<Uuid, (usize, [u8; 32], Hash)>,
        start_size: u64,
        first_new: usize,
    ) -> Result<Vec<Planned>, LedgerError> {
        let mut local: HashMap<Uuid, (usize, [u8; 32], Hash)> = HashMap::new();
        let mut next = first_new;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let id = e.id();
            let conflict = || {
                LedgerError::Conflict(format!(
                    "entry id {id} already exists in this log with different content; use a new id"
                ))
            };
            if let Some(x) = existing.get(&id) {
                if x.content_digest != e.content_digest {
                    return Err(conflict());
                }
                out.push(Planned::Existing(Appended {
                    index: x.index,
                    leaf_hash: x.leaf_hash,
                    id,
                    existing: true,
                }));
            } else if let Some((pos, digest, leaf_hash)) =
                pending.get(&id).or_else(|| local.get(&id))
            {
                if *digest != e.content_digest {
                    return Err(conflict());
                }
                out.push(Planned::Existing(Appended {
                    index: start_size + *pos as u64,
                    leaf_hash: *leaf_hash,
                    id,
                    existing: true,
                }));
            } else {
                local.insert(id, (next, e.content_digest, e.sealed.leaf_hash));
                out.push(Planned::New(next));
                next += 1;
            }
        }
        Ok(out)
    }

    async fn publish(
        &mut self,
        frontier: Frontier,
        entries: Vec<NewEntry>,
        nodes: Vec<(Subtree, Hash)>,
        access: Vec<AccessChange>,
    ) -> Result<(), Attempt> {
        let changes_access = !access.is_empty();
        let old_size = self.frontier.size();
        let new_size = frontier.size();
        let root = frontier.root();
        self.check_consistency(&nodes, old_size, new_size, &root)
            .await?;
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size: new_size,
            root,
            extensions: Vec::new(),
        };
        let signed = SignedCheckpoint::sign(checkpoint, &self.signer)
            .map_err(|e| LedgerError::Corrupt(format!("cannot sign checkpoint: {e}")))?;
        let stored = StoredCheckpoint {
            size: new_size,
            root,
            note: signed.note,
        };
        let written = self
            .store
            .append_batch(AppendBatch {
                key: self.key.clone(),
                entries,
                nodes,
                checkpoint: stored.clone(),
                access,
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(tenant = %self.key.tenant, log = %self.key.log, error = %e, "batch not committed");
            // Whatever happened, storage, not memory, now says where the log stands.
            self.stale = true;
            return Err(match e {
                // The store refuses a batch that does not start at its size: another writer
                // extended the log since this sequencer last looked. Ids were checked before
                // sequencing, so a conflict is never the client's doing.
                custody_store::StoreError::Conflict(m) => {
                    self.reload().await?;
                    if self.frontier.size() != old_size {
                        Attempt::Moved
                    } else if changes_access {
                        // The log did not move: the store refused a principal or token change
                        // (an id already taken), and with it the whole batch.
                        Attempt::Failed(LedgerError::Conflict(m))
                    } else {
                        Attempt::Failed(LedgerError::Unavailable(format!(
                            "log state changed during the write: {m}"
                        )))
                    }
                }
                other => Attempt::Failed(other.into()),
            });
        }
        self.published.advance(&self.key, &stored);
        self.checkpoint = stored;
        self.frontier = frontier;
        Ok(())
    }

    /// Proves the new tree extends the last signed one before anything is signed.
    async fn check_consistency(
        &self,
        new_nodes: &[(Subtree, Hash)],
        old_size: u64,
        new_size: u64,
        new_root: &Hash,
    ) -> Result<(), LedgerError> {
        if old_size == 0 {
            return Ok(());
        }
        let plan = merkle::consistency_plan(old_size, new_size)
            .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        // The new subtrees and the old tree's right edge (checked against the last checkpoint
        // when it was loaded) hold every hash a proof of appending needs; storage is asked
        // only for anything else.
        let fresh: HashMap<Subtree, Hash> = new_nodes
            .iter()
            .copied()
            .chain(self.frontier.subtrees())
            .collect();
        let mut wanted: Vec<Subtree> = plan
            .iter()
            .flat_map(|n| n.0.iter().copied())
            .filter(|s| !fresh.contains_key(s))
            .collect();
        wanted.sort();
        wanted.dedup();
        let stored = if wanted.is_empty() {
            Vec::new()
        } else {
            self.store.nodes(&self.key, &wanted).await?
        };
        let mut known = fresh;
        for (s, h) in wanted.into_iter().zip(stored) {
            if let Some(h) = h {
                known.insert(s, h);
            }
        }
        let proof = merkle::assemble(&plan, |s| known.get(&s).copied())
            .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        merkle::verify_consistency(old_size, new_size, &proof, &self.checkpoint.root, new_root)
            .map_err(|e| {
                LedgerError::Corrupt(format!(
                    "refusing to sign: tree of size {new_size} is not consistent with checkpoint {old_size}: {e}"
                ))
            })
    }

    /// Re-reads the committed state: after a failed commit the outcome on disk is unknown, and
    /// on a shared store another server may have appended, so the store, not memory, says
    /// where the log stands.
    async fn reload(&mut self) -> Result<(), LedgerError> {
        let checkpoint = self.store.latest_checkpoint(&self.key).await?;
        let frontier = load_frontier(&self.store, &self.key, &checkpoint).await?;
        if self.store.shared() && checkpoint.size > self.checkpoint.size {
            self.adopt_rotation(self.checkpoint.size, checkpoint.size)
                .await?;
        }
        self.frontier = frontier;
        self.checkpoint = checkpoint;
        self.stale = false;
        Ok(())
    }

    /// Takes up a key rotation another server committed in `[from, to)`: every checkpoint
    /// after a `key.rotated` entry must be signed with the key it announced. Until that key is
    /// readable from the key directory the log refuses to sign.
    async fn adopt_rotation(&mut self, from: u64, to: u64) -> Result<(), LedgerError> {
        let rotated = self
            .store
            .find_entries(
                &self.key,
                &custody_store::EntryFilter {
                    entry_type: Some(crate::KEY_ROTATED.into()),
                    from_index: from,
                    below_index: to,
                    limit: u32::MAX,
                    ..Default::default()
                },
            )
            .await?;
        let Some(last) = rotated.last() else {
            return Ok(());
        };
        let announced = crate::rotation_of(last)?.new_key;
        if self.signer.verifier().to_string() == announced {
            return Ok(());
        }
        let (tenant, log) = (&self.key.tenant, self.key.log);
        let candidates = [
            self.keys.load(tenant, log, &self.origin).ok(),
            self.keys
                .load_next(tenant, log, &self.origin)
                .ok()
                .flatten(),
        ];
        match candidates
            .into_iter()
            .flatten()
            .find(|k| k.verifier().to_string() == announced)
        {
            Some(signer) => {
                tracing::info!(tenant = %tenant, log = %log, verifier_key = %announced, "signing with the key another server rotated to");
                self.signer = Arc::new(signer);
                Ok(())
            }
            None => Err(LedgerError::Unavailable(format!(
                "the log's key was rotated to {announced} by another server, and that key is not in this server's key directory yet"
            ))),
        }
    }
}

/// Why an attempt at a batch did not commit.
enum Attempt {
    /// Another writer extended the log first; the state is reloaded and the batch can be
    /// sequenced again.
    Moved,
    /// Nothing was committed, for this reason.
    Failed(LedgerError),
}

impl From<LedgerError> for Attempt {
    fn from(e: LedgerError) -> Self {
        Attempt::Failed(e)
    }
}

/// Times a batch is re-sequenced after losing the race for the log to another server.
const MAX_ATTEMPTS: usize = 16;

fn new_entry(index: u64, e: &PreparedEntry) -> NewEntry {
    let env = &e.sealed.envelope;
    NewEntry {
        index,
        id: env.id,
        leaf_hash: e.sealed.leaf_hash,
        envelope: e.sealed.canonical.clone(),
        content_digest: e.content_digest,
        fields: EntryIndexFields {
            entry_type: env.entry_type.clone(),
            actor_id: env.actor.id.clone(),
            subject_kind: env.subject.kind.clone(),
            subject_id: env.subject.id.clone(),
            related: env
                .related
                .iter()
                .map(|r| (r.kind.clone(), r.id.clone(), r.rel.clone()))
                .collect(),
            time_micros: env.time.unix_micros(),
        },
        payload: e.payload.clone(),
    }
}
