//! What the plain-database baselines share: the row every baseline inserts, and the producers
//! of a group-commit run, each queueing one row at a time for a single writer and waiting for
//! its commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Result;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::entry::{Rng, canonical_envelope, leaf_hash};
use crate::report::Tally;

/// One row: leaf hash and canonical envelope bytes, as custody would store them.
pub fn row(rng: &mut Rng, seq: u64, payload: usize) -> (Vec<u8>, Vec<u8>) {
    let envelope = canonical_envelope(seq, &rng.blob(payload), "bench", "governance").into_bytes();
    (leaf_hash(&envelope), envelope)
}

/// A queued row and where to report its commit.
pub type Job = ((Vec<u8>, Vec<u8>), oneshot::Sender<Result<(), String>>);

/// Runs `concurrency` producers until `total` rows are committed; `send` hands a job to the
/// writer and is false once the writer is gone.
pub async fn producers(
    concurrency: usize,
    total: u64,
    payload: usize,
    send: impl Fn(Job) -> bool + Clone + Send + 'static,
) -> Result<Tally> {
    let next = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for w in 0..concurrency {
        let (send, next) = (send.clone(), next.clone());
        set.spawn(async move {
            let mut rng = Rng::new(w as u64);
            let mut tally = Tally::default();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    break;
                }
                let t = Instant::now();
                let (reply, done) = oneshot::channel();
                if !send((row(&mut rng, seq, payload), reply)) {
                    tally.error("the writer stopped");
                    break;
                }
                match done.await {
                    Ok(Ok(())) => tally.ok(t.elapsed(), 1),
                    Ok(Err(e)) => tally.error(format!("insert {seq}: {e}")),
                    Err(_) => tally.error("the writer dropped a row"),
                }
            }
            tally
        });
    }
    drop(send);
    let mut tally = Tally::default();
    while let Some(t) = set.join_next().await {
        tally.merge(t?);
    }
    Ok(tally)
}
