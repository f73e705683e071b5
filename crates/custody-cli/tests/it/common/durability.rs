//! Appending under failure and checking afterwards: writer tasks that record what was sent and
//! acknowledged, a checkpoint poller, and the whole-log check run after a crash: nothing
//! acknowledged lost or moved, indexes contiguous, no id twice, every checkpoint ever served
//! consistent with the latest. Shared by the single-server crash test and the several-servers
//! test.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64ct::{Base64, Encoding};
use custody_client::{Client, ClientError};
use custody_core::checkpoint::{Checkpoint, SignedCheckpoint};
use custody_core::merkle::{self, Hash};
use custody_core::note::NoteVerifier;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

/// The tenant the tests append to.
pub const TENANT: &str = "crash";
/// The log they append to.
pub const LOG: &str = "governance";
/// Concurrent writer tasks.
pub const WRITERS: usize = 16;
/// How long one request may take before the writer gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Kill delay in milliseconds for a round: 50..=400, deterministic.
pub fn kill_delay(round: u64) -> u64 {
    let mut x = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..4 {
        x = xorshift(x);
    }
    50 + x % 351
}

/// The entry writer `writer` sends as its `seq`-th.
pub fn crash_entry(id: &str, writer: usize, seq: u64) -> Value {
    json!({
        "id": id,
        "type": "x.crash.append",
        "subject": {"kind": "item", "id": id},
        "body": {"writer": writer, "seq": seq},
    })
}

/// What one append task saw.
#[derive(Default)]
pub struct WriterReport {
    /// Every entry sent (id, content), acknowledged or not.
    pub attempted: Vec<(String, Value)>,
    /// Acknowledged: id, index, leaf hash hex.
    pub acked: Vec<(String, u64, String)>,
    /// Answers that were neither 201 nor a broken connection.
    pub errors: Vec<String>,
}

/// Appends until `stop` or until its server is gone. With `retry_unavailable`, a 503 (the
/// database restarting) is retried with the same id until it is answered.
pub async fn writer(
    client: Client,
    n: usize,
    round: u64,
    stop: Arc<AtomicBool>,
    retry_unavailable: bool,
) -> WriterReport {
    let mut rep = WriterReport::default();
    let mut seq = 0u64;
    'entries: while !stop.load(Ordering::Relaxed) {
        let id = Uuid::now_v7().to_string();
        let v = crash_entry(&id, n, round * 1_000_000 + seq);
        seq += 1;
        rep.attempted.push((id.clone(), v.clone()));
        let mut retried = false;
        loop {
            match tokio::time::timeout(REQUEST_TIMEOUT, client.append(TENANT, LOG, &v)).await {
                Ok(Ok(r)) => {
                    assert_eq!(r.id, id, "the server acknowledged another id");
                    assert!(
                        !r.existing || retried,
                        "a fresh id was reported as existing: {r:?}"
                    );
                    assert!(
                        r.checkpoint_size > r.index,
                        "acknowledged index {} is not covered by checkpoint size {}",
                        r.index,
                        r.checkpoint_size
                    );
                    rep.acked.push((id, r.index, r.leaf_hash));
                    continue 'entries;
                }
                Ok(Err(ClientError::Transport { .. })) => break 'entries,
                Ok(Err(ClientError::Problem(p)))
                    if p.status == 503 && retry_unavailable && !stop.load(Ordering::Relaxed) =>
                {
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(e)) => {
                    rep.errors.push(e.to_string());
                    break 'entries;
                }
                Err(_) => {
                    rep.errors.push("append timed out".into());
                    break 'entries;
                }
            }
        }
    }
    rep
}

/// Collects every distinct checkpoint the server serves until `stop`.
pub async fn checkpoint_poller(client: Client, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(REQUEST_TIMEOUT, client.checkpoint(TENANT, LOG)).await {
            Ok(Ok(note)) => {
                if seen.last() != Some(&note) {
                    seen.push(note);
                }
            }
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    seen
}

/// Everything known across rounds.
#[derive(Default)]
pub struct Ledger {
    /// id -> content of every entry ever sent.
    pub attempted: HashMap<String, Value>,
    /// id -> (index, leaf hash hex): acknowledged, or found durable after a restart.
    pub known: HashMap<String, (u64, String)>,
    /// ids acknowledged with 201.
    pub acked: HashSet<String>,
    /// Acknowledged in the round just killed (checked entry by entry over the API).
    pub last_round_acked: Vec<String>,
    /// Every distinct checkpoint note ever served.
    pub checkpoints: HashSet<String>,
    /// Checkpoint checks performed (one per seen checkpoint per restart).
    pub checkpoint_checks: u64,
    /// Consistency proofs fetched and verified.
    pub proofs_verified: u64,
    /// Sent, never acknowledged, yet durable after the restart.
    pub unacked_durable: u64,
    /// Retries of acknowledged entries that returned existing=true.
    pub retries: u64,
}

impl Ledger {
    /// Takes the entries already in the log (written before the test's appends, e.g. the
    /// record of a principal's creation) as known, so the checks expect them.
    pub async fn adopt_existing(&mut self, client: &Client) {
        let size = opened_unverified(&client.checkpoint(TENANT, LOG).await.expect("checkpoint"));
        for leaf in client.export(TENANT, LOG, 0, size).await.expect("export") {
            let data = Base64::decode_vec(&leaf.leaf_data).expect("leaf_data base64");
            let env: Value = serde_json::from_slice(&data).expect("leaf data is JSON");
            let id = env["id"].as_str().expect("envelope id").to_string();
            self.attempted.insert(id.clone(), env);
            // Not sent by a writer: never resent as a retry.
            self.acked.insert(id.clone());
            self.known
                .insert(id, (leaf.index, merkle::leaf_hash(&data).to_hex()));
        }
    }

    /// Takes in one writer's report; returns how many appends it had acknowledged.
    pub fn absorb(&mut self, rep: WriterReport, errors: &mut Vec<String>) -> usize {
        for (id, v) in rep.attempted {
            self.attempted.insert(id, v);
        }
        let mut acked = 0;
        for (id, index, leaf) in rep.acked {
            if let Some((i, h)) = self.known.get(&id) {
                panic!("id {id} acknowledged twice ({i} {h}, then {index} {leaf})");
            }
            self.known.insert(id.clone(), (index, leaf));
            self.acked.insert(id.clone());
            self.last_round_acked.push(id);
            acked += 1;
        }
        errors.extend(rep.errors);
        acked
    }
}

/// The size line of a checkpoint note (its signature is checked elsewhere).
fn opened_unverified(note: &str) -> u64 {
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .expect("checkpoint size line")
}

/// Opens a checkpoint note with the pinned key, or fails the test.
pub fn opened(note: &str, vkey: &NoteVerifier) -> Checkpoint {
    SignedCheckpoint::open(note, vkey)
        .unwrap_or_else(|e| panic!("checkpoint does not verify with the pinned key: {e}\n{note}"))
        .checkpoint
}

/// After a restart: the whole log against everything seen before the crash.
pub async fn check_after_restart(
    client: &Client,
    vkey: &NoteVerifier,
    led: &mut Ledger,
    round: u64,
) {
    let served_vkey = client.vkey(TENANT, LOG).await.expect("vkey");
    assert_eq!(
        served_vkey,
        vkey.to_string(),
        "the log's key changed across a restart"
    );
    let latest_note = client.checkpoint(TENANT, LOG).await.expect("checkpoint");
    let latest = opened(&latest_note, vkey);
    let size = latest.size;

    // (b) indexes contiguous 0..size, leaves re-derive the signed root, no id twice.
    let mut leaves: Vec<Hash> = Vec::with_capacity(size as usize);
    let mut ids: Vec<String> = Vec::with_capacity(size as usize);
    let mut from = 0;
    while from < size {
        let to = (from + 10_000).min(size);
        let page = client.export(TENANT, LOG, from, to).await.expect("export");
        assert_eq!(
            page.len() as u64,
            to - from,
            "export [{from},{to}) is short"
        );
        for (k, leaf) in page.iter().enumerate() {
            let i = from + k as u64;
            assert_eq!(
                leaf.index, i,
                "export returned index {} at position {i}",
                leaf.index
            );
            let data = Base64::decode_vec(&leaf.leaf_data).expect("leaf_data base64");
            let h = merkle::leaf_hash(&data);
            assert_eq!(
                h.to_hex(),
                leaf.recorded_leaf_hash,
                "index {i}: stored bytes do not hash to the recorded leaf hash"
            );
            let env: Value = serde_json::from_slice(&data).expect("leaf data is JSON");
            let id = env["id"].as_str().expect("envelope id").to_string();
            leaves.push(h);
            ids.push(id);
        }
        from = to;
    }
    let root = if leaves.is_empty() {
        merkle::empty_root()
    } else {
        merkle::root_from_leaves(&leaves)
    };
    assert_eq!(
        root, latest.root,
        "round {round}: leaves do not give the signed root"
    );
    let mut by_id: HashMap<&str, u64> = HashMap::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if let Some(prev) = by_id.insert(id.as_str(), i as u64) {
            panic!("round {round}: id {id} is stored twice, at {prev} and {i}");
        }
        assert!(
            led.attempted.contains_key(id),
            "round {round}: index {i} holds id {id} that no client ever sent"
        );
    }

    // (a) every acknowledged (or earlier found durable) entry is where it was, unchanged.
    for (id, (index, leaf)) in &led.known {
        assert!(
            *index < size,
            "round {round}: acknowledged entry {id} at index {index} is gone (size {size})"
        );
        assert_eq!(
            &ids[*index as usize], id,
            "round {round}: index {index} changed id"
        );
        assert_eq!(
            &leaves[*index as usize].to_hex(),
            leaf,
            "round {round}: index {index} changed"
        );
    }
    // Entries sent but never acknowledged that made it: from now on they must stay too.
    for (i, id) in ids.iter().enumerate() {
        if !led.known.contains_key(id) {
            led.known.insert(id.clone(), (i as u64, leaves[i].to_hex()));
            led.unacked_durable += 1;
        }
    }
    // The same, entry by entry over GET entries/{index}, for the round just killed.
    let mut set = JoinSet::new();
    for chunk in led
        .last_round_acked
        .chunks(led.last_round_acked.len().div_ceil(4).max(1))
    {
        let items: Vec<(String, u64, String)> = chunk
            .iter()
            .map(|id| {
                let (i, h) = &led.known[id];
                (id.clone(), *i, h.clone())
            })
            .collect();
        let c = client.clone();
        set.spawn(async move {
            for (id, index, leaf) in items {
                let e = c.entry(TENANT, LOG, index).await.expect("get entry");
                assert_eq!(e.index, index);
                assert_eq!(e.leaf_hash, leaf, "GET entries/{index}: leaf hash changed");
                assert_eq!(
                    e.envelope["id"].as_str(),
                    Some(id.as_str()),
                    "GET entries/{index}: id"
                );
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("entry check task");
    }

    // (c) the new checkpoint extends every checkpoint ever served.
    led.checkpoints.insert(latest_note.clone());
    let mut roots: BTreeMap<u64, Hash> = BTreeMap::new();
    for note in &led.checkpoints {
        let cp = opened(note, vkey);
        assert_eq!(cp.origin, latest.origin);
        assert!(
            cp.size <= size,
            "round {round}: a checkpoint of size {} was served, but after the restart the log has {size}",
            cp.size
        );
        if let Some(r) = roots.insert(cp.size, cp.root) {
            assert_eq!(
                r, cp.root,
                "two checkpoints of size {} with different roots",
                cp.size
            );
        }
        led.checkpoint_checks += 1;
    }
    assert_eq!(
        roots.get(&0).copied().unwrap_or(merkle::empty_root()),
        merkle::empty_root()
    );
    assert_eq!(roots[&size], latest.root);
    let to_prove: Vec<(u64, Hash)> = roots
        .iter()
        .filter(|(s, _)| **s != 0 && **s != size)
        .map(|(s, r)| (*s, *r))
        .collect();
    let mut set = JoinSet::new();
    for chunk in to_prove.chunks(to_prove.len().div_ceil(4).max(1)) {
        let chunk = chunk.to_vec();
        let c = client.clone();
        let new_root = latest.root;
        set.spawn(async move {
            for (old, old_root) in chunk {
                let p = c
                    .consistency_proof(TENANT, LOG, old, size)
                    .await
                    .expect("consistency proof");
                assert_eq!((p.from, p.to), (old, size));
                let hashes: Vec<Hash> = p
                    .hashes
                    .iter()
                    .map(|h| Hash::from_base64(h).expect("proof hash"))
                    .collect();
                merkle::verify_consistency(old, size, &hashes, &old_root, &new_root)
                    .unwrap_or_else(|e| {
                        panic!("checkpoint {old} is not consistent with {size}: {e}")
                    });
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("consistency task");
    }
    led.proofs_verified += to_prove.len() as u64;

    // (d) retrying an acknowledged id with the same content finds it.
    let step = (led.last_round_acked.len() / 8).max(1);
    let mut sample: Vec<String> = led
        .last_round_acked
        .iter()
        .step_by(step)
        .take(8)
        .cloned()
        .collect();
    // And one entry that was never acknowledged but is durable, if any.
    sample.extend(ids.iter().find(|id| !led.acked.contains(*id)).cloned());
    for id in &sample {
        let (index, leaf) = led.known[id].clone();
        let r = client
            .append(TENANT, LOG, &led.attempted[id])
            .await
            .expect("retry append");
        assert!(
            r.existing,
            "retry of {id} was not reported as existing: {r:?}"
        );
        assert_eq!(
            (r.index, r.leaf_hash.as_str()),
            (index, leaf.as_str()),
            "retry of {id}"
        );
        led.retries += 1;
    }
    let after = opened(
        &client.checkpoint(TENANT, LOG).await.expect("checkpoint"),
        vkey,
    );
    assert_eq!(after.size, size, "retries of existing entries grew the log");
}
