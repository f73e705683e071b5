//! Crash safety: SIGKILL the real server in the middle of concurrent appends, restart it on
//! the same data directory, and check that nothing acknowledged was lost or moved, that the
//! log is contiguous, and that every checkpoint ever served is consistent with the new one.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use common::{Server, runtime};
use custody_client::{Client, ClientError};
use custody_core::checkpoint::{Checkpoint, SignedCheckpoint};
use custody_core::merkle::{self, Hash};
use custody_core::note::NoteVerifier;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

const TENANT: &str = "crash";
const LOG: &str = "governance";
const ROUNDS: u64 = 12;
const WRITERS: usize = 16;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Kill delay in milliseconds for a round: 50..=400, deterministic.
fn kill_delay(round: u64) -> u64 {
    let mut x = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..4 {
        x = xorshift(x);
    }
    50 + x % 351
}

fn crash_entry(id: &str, writer: usize, seq: u64) -> Value {
    json!({
        "id": id,
        "type": "x.crash.append",
        "subject": {"kind": "item", "id": id},
        "body": {"writer": writer, "seq": seq},
    })
}

/// What one append task saw.
#[derive(Default)]
struct WriterReport {
    /// Every entry sent (id, content), acknowledged or not.
    attempted: Vec<(String, Value)>,
    /// Acknowledged: id, index, leaf hash hex.
    acked: Vec<(String, u64, String)>,
    /// Answers that were neither 201 nor a broken connection.
    errors: Vec<String>,
}

async fn writer(client: Client, n: usize, round: u64, stop: Arc<AtomicBool>) -> WriterReport {
    let mut rep = WriterReport::default();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = Uuid::now_v7().to_string();
        let v = crash_entry(&id, n, round * 1_000_000 + seq);
        seq += 1;
        rep.attempted.push((id.clone(), v.clone()));
        match tokio::time::timeout(REQUEST_TIMEOUT, client.append(TENANT, LOG, &v)).await {
            Ok(Ok(r)) => {
                assert_eq!(r.id, id, "the server acknowledged another id");
                assert!(!r.existing, "a fresh id was reported as existing: {r:?}");
                assert!(
                    r.checkpoint_size > r.index,
                    "acknowledged index {} is not covered by checkpoint size {}",
                    r.index,
                    r.checkpoint_size
                );
                rep.acked.push((id, r.index, r.leaf_hash));
            }
            Ok(Err(ClientError::Transport { .. })) => break,
            Ok(Err(e)) => {
                rep.errors.push(e.to_string());
                break;
            }
            Err(_) => {
                rep.errors.push("append timed out".into());
                break;
            }
        }
    }
    rep
}

async fn checkpoint_poller(client: Client, stop: Arc<AtomicBool>) -> Vec<String> {
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
struct Ledger {
    /// id -> content of every entry ever sent.
    attempted: HashMap<String, Value>,
    /// id -> (index, leaf hash hex): acknowledged, or found durable after a restart.
    known: HashMap<String, (u64, String)>,
    /// ids acknowledged with 201.
    acked: HashSet<String>,
    /// Acknowledged in the round just killed (checked entry by entry over the API).
    last_round_acked: Vec<String>,
    /// Every distinct checkpoint note ever served.
    checkpoints: HashSet<String>,
    /// Checkpoint checks performed (one per seen checkpoint per restart).
    checkpoint_checks: u64,
    /// Consistency proofs fetched and verified.
    proofs_verified: u64,
    /// Sent, never acknowledged, yet durable after the restart.
    unacked_durable: u64,
    /// Retries of acknowledged entries that returned existing=true.
    retries: u64,
}

fn opened(note: &str, vkey: &NoteVerifier) -> Checkpoint {
    SignedCheckpoint::open(note, vkey)
        .unwrap_or_else(|e| panic!("checkpoint does not verify with the pinned key: {e}\n{note}"))
        .checkpoint
}

/// After a restart: the whole log against everything seen before the crash.
async fn check_after_restart(client: &Client, vkey: &NoteVerifier, led: &mut Ledger, round: u64) {
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

#[test]
fn sigkill_during_appends_loses_nothing_acknowledged() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let mut led = Ledger::default();
    let mut vkey: Option<NoteVerifier> = None;
    let mut acked_total = 0usize;
    let mut errors: Vec<String> = Vec::new();

    for round in 1..=ROUNDS + 1 {
        let mut server = Server::start(dir.path());
        let client = Client::new(&server.url)
            .expect("client")
            .with_token(&common::token_for(&server.url).unwrap());
        if round == 1 {
            let t = rt
                .block_on(client.create_tenant(TENANT))
                .expect("create tenant");
            let gov = t
                .logs
                .iter()
                .find(|l| l.name == LOG)
                .expect("governance log");
            vkey = Some(NoteVerifier::parse(&gov.verifier_key).expect("vkey"));
        } else {
            let vkey = vkey.as_ref().expect("pinned");
            rt.block_on(check_after_restart(&client, vkey, &mut led, round));
        }
        if round == ROUNDS + 1 {
            server.kill();
            break;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|n| rt.spawn(writer(client.clone(), n, round, stop.clone())))
            .collect();
        let poller = rt.spawn(checkpoint_poller(client.clone(), stop.clone()));
        let delay = kill_delay(round);
        std::thread::sleep(Duration::from_millis(delay));
        server.kill();
        stop.store(true, Ordering::Relaxed);

        led.last_round_acked.clear();
        let mut round_acked = 0;
        for w in writers {
            let rep = rt.block_on(w).expect("writer task");
            for (id, v) in rep.attempted {
                led.attempted.insert(id, v);
            }
            for (id, index, leaf) in rep.acked {
                if let Some((i, h)) = led.known.get(&id) {
                    panic!("id {id} acknowledged twice ({i} {h}, then {index} {leaf})");
                }
                led.known.insert(id.clone(), (index, leaf));
                led.acked.insert(id.clone());
                led.last_round_acked.push(id);
                round_acked += 1;
            }
            errors.extend(rep.errors);
        }
        let seen = rt.block_on(poller).expect("poller task");
        let seen_n = seen.len();
        led.checkpoints.extend(seen);
        acked_total += round_acked;
        eprintln!(
            "round {round}: killed after {delay} ms; {round_acked} appends acknowledged, {seen_n} checkpoints seen"
        );
    }

    let unique_indexes: HashSet<u64> = led.known.values().map(|(i, _)| *i).collect();
    assert_eq!(
        unique_indexes.len(),
        led.known.len(),
        "two entries share an index"
    );
    println!(
        "crash summary: {ROUNDS} rounds (SIGKILL each), {acked_total} appends acknowledged, {} sent but unacknowledged yet durable, {} sent and lost before acknowledgement, {} distinct checkpoints seen, {} checkpoint checks, {} consistency proofs verified, {} idempotent retries, {:.1} s",
        led.unacked_durable,
        led.attempted.len() - led.known.len(),
        led.checkpoints.len(),
        led.checkpoint_checks,
        led.proofs_verified,
        led.retries,
        started.elapsed().as_secs_f64()
    );
    assert!(acked_total > 0, "no append was ever acknowledged");
    assert!(
        errors.is_empty(),
        "appends failed with non-transport errors: {errors:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "the crash test took {:?}",
        started.elapsed()
    );
}
