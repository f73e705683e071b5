//! Deep verification of a stored log: every leaf hash recomputed from its envelope, every
//! stored subtree hash recomputed from the leaves, every payload commitment reopened, and
//! every checkpoint the log ever signed checked for its signature and for the root of the tree
//! at its size, which makes all of them mutually consistent. What a proof holder trusts, re-
//! derived from the bytes on disk rather than from the hashes stored beside them.

use custody_core::checkpoint::SignedCheckpoint;
use custody_core::commitment::{self, Salt};
use custody_core::merkle::{Frontier, Hash, Subtree, empty_root, leaf_hash};
use custody_core::note::NoteVerifier;
use custody_store::{LedgerWriter, LogKey, StoredCheckpoint};

use crate::{Ledger, LedgerError};

/// Entries read per storage call.
const CHUNK: u64 = 2_000;
/// Subtree hashes compared per storage call.
const NODE_BATCH: usize = 4_096;
/// Problems kept in a report; the count goes on.
const MAX_PROBLEMS: usize = 100;

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
}

/// Checkpoints in size order, fetched a page at a time.
struct Checkpoints<'a, S> {
    store: &'a S,
    key: &'a LogKey,
    page: std::collections::VecDeque<StoredCheckpoint>,
    next_size: u64,
    done: bool,
}

impl<S: LedgerWriter> Checkpoints<'_, S> {
    async fn peek(&mut self) -> Result<Option<&StoredCheckpoint>, LedgerError> {
        if self.page.is_empty() && !self.done {
            let got = self
                .store
                .checkpoints(self.key, self.next_size, 1000)
                .await?;
            self.done = got.len() < 1000;
            if let Some(last) = got.last() {
                self.next_size = last.size + 1;
            }
            self.page.extend(got);
        }
        Ok(self.page.front())
    }
}

impl<S: LedgerWriter + Clone> Ledger<S> {
    /// Deep-verifies one log from storage. `progress` is told (done, total) entries as it
    /// goes. Discrepancies are reported, not returned as errors; an error means the check
    /// itself could not run.
    pub async fn audit_log(
        &self,
        key: &LogKey,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<LogAudit, LedgerError> {
        let record = self.record(key).await?;
        let history = self.key_history(key).await?;
        let parse = |k: &str| {
            NoteVerifier::parse(k)
                .map_err(|e| LedgerError::Corrupt(format!("verifier key {k:?}: {e}")))
        };
        // The key in force for each checkpoint: the first key until the first rotation's
        // announcement is covered, then each announced key in turn.
        let mut keys = vec![(
            0u64,
            parse(
                history
                    .first()
                    .map_or(record.verifier_key.as_str(), |r| r.old_key.as_str()),
            )?,
        )];
        for r in &history {
            keys.push((r.index + 1, parse(&r.new_key)?));
        }
        let verifier = KeyInForce { keys };
        let size = self.store.latest_checkpoint(key).await?.size;
        let mut report = LogAudit::default();
        let mut frontier = Frontier::new();
        let mut pending: Vec<(Subtree, Hash)> = Vec::new();
        let mut cps = Checkpoints {
            store: &self.store,
            key,
            page: Default::default(),
            next_size: 0,
            done: false,
        };
        self.check_checkpoints(&mut cps, &frontier, &verifier, &mut report)
            .await?;
        let mut next = 0;
        while next < size {
            let to = (next + CHUNK).min(size);
            let entries = self.store.entry_range(key, next, to).await?;
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
                    self.compare_nodes(key, &mut pending, &mut report).await?;
                }
                self.check_checkpoints(&mut cps, &frontier, &verifier, &mut report)
                    .await?;
            }
            progress(to, size);
            next = to;
        }
        self.compare_nodes(key, &mut pending, &mut report).await?;
        if let Some(extra) = cps.peek().await? {
            report.problem(format!(
                "a checkpoint of size {} is stored beyond the log's {size} entries",
                extra.size
            ));
        }
        Ok(report)
    }

    async fn compare_nodes(
        &self,
        key: &LogKey,
        pending: &mut Vec<(Subtree, Hash)>,
        report: &mut LogAudit,
    ) -> Result<(), LedgerError> {
        if pending.is_empty() {
            return Ok(());
        }
        let subtrees: Vec<Subtree> = pending.iter().map(|(s, _)| *s).collect();
        let stored = self.store.nodes(key, &subtrees).await?;
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

    /// Checks every stored checkpoint of the frontier's size.
    async fn check_checkpoints(
        &self,
        cps: &mut Checkpoints<'_, S>,
        frontier: &Frontier,
        verifier: &KeyInForce,
        report: &mut LogAudit,
    ) -> Result<(), LedgerError> {
        while let Some(cp) = cps.peek().await? {
            if cp.size > frontier.size() {
                break;
            }
            let cp = cps.page.pop_front().expect("peeked");
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

/// The log's verifier keys over time: `(first size signed by it, key)`, in order.
struct KeyInForce {
    keys: Vec<(u64, NoteVerifier)>,
}

impl KeyInForce {
    fn at(&self, size: u64) -> &NoteVerifier {
        let mut current = &self.keys[0].1;
        for (from, k) in &self.keys {
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
