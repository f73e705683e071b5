//! Crash safety: SIGKILL the real server in the middle of concurrent appends, restart it on
//! the same data directory, and check that nothing acknowledged was lost or moved, that the
//! log is contiguous, and that every checkpoint ever served is consistent with the new one.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::durability::{
    LOG, Ledger, TENANT, WRITERS, check_after_restart, checkpoint_poller, kill_delay, writer,
};
use common::{Server, runtime};
use custody_client::Client;
use custody_core::note::NoteVerifier;

const ROUNDS: u64 = 12;

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
            .map(|n| rt.spawn(writer(client.clone(), n, round, stop.clone(), false)))
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
            round_acked += led.absorb(rep, &mut errors);
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
}
