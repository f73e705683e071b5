//! Several `custody serve` processes on one PostgreSQL database, appending to the same tenant
//! log at once: every acknowledged entry gets exactly one index and no two checkpoints of the
//! log disagree, while one server after another is killed with SIGKILL mid-batch and the
//! database itself is restarted under load.
//!
//! Runs on a PostgreSQL cluster of its own (`custody_testkit::postgres::PrivateCluster`), which
//! it restarts; without PostgreSQL it fails, never skips.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::durability::{
    LOG, Ledger, TENANT, WRITERS, check_after_restart, checkpoint_poller, kill_delay, opened,
    writer,
};
use common::{Server, runtime};
use custody_client::Client;
use custody_core::note::NoteVerifier;

const SERVERS: usize = 3;
const ROUNDS: u64 = 6;
/// The round in which PostgreSQL, not a custody server, is restarted.
const DATABASE_RESTART_ROUND: u64 = 4;

#[test]
fn several_servers_share_one_log_without_forking() {
    // Its own cluster: this test restarts PostgreSQL, which would pull the shared cluster
    // from under the tests running beside it.
    let cluster = custody_testkit::postgres::PrivateCluster::start();
    let started = Instant::now();
    let url = cluster.fresh_database("multi");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("shared");
    let token_file = dir.path().join("admin.token");
    let rt = runtime();

    let mut servers: Vec<Server> = (0..SERVERS)
        .map(|_| Server::start_postgres(&data, &url, &token_file))
        .collect();
    let admin = Client::new(&servers[0].url)
        .expect("client")
        .with_token(common::token_for(&servers[0].url).as_deref().unwrap());
    let tenant = rt
        .block_on(admin.create_tenant(TENANT))
        .expect("create tenant");
    let vkey = NoteVerifier::parse(
        &tenant
            .logs
            .iter()
            .find(|l| l.name == LOG)
            .expect("log")
            .verifier_key,
    )
    .expect("vkey");
    let created = rt
        .block_on(admin.create_principal(
            TENANT,
            &custody_api::CreatePrincipal {
                kind: "service".into(),
                name: "load".into(),
                roles: vec!["writer".into(), "auditor".into(), "admin".into()],
                expires_in_days: None,
            },
        ))
        .expect("create principal");
    let token = created.token.token;
    let client_of = |s: &Server| Client::new(&s.url).expect("client").with_token(&token);

    let mut led = Ledger::default();
    rt.block_on(led.adopt_existing(&client_of(&servers[0])));
    let mut errors = Vec::new();
    let mut acked_by_server: HashMap<usize, usize> = HashMap::new();
    for round in 1..=ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|n| {
                let client = client_of(&servers[n % SERVERS]);
                (
                    n % SERVERS,
                    rt.spawn(writer(client, n, round, stop.clone(), true)),
                )
            })
            .collect();
        let pollers: Vec<_> = servers
            .iter()
            .map(|s| rt.spawn(checkpoint_poller(client_of(s), stop.clone())))
            .collect();
        std::thread::sleep(Duration::from_millis(kill_delay(round)));
        let victim = (round as usize) % SERVERS;
        if round == DATABASE_RESTART_ROUND {
            cluster.restart();
        } else {
            servers[victim].kill();
        }
        // The survivors keep appending to the same log.
        std::thread::sleep(Duration::from_millis(400));
        stop.store(true, Ordering::Relaxed);

        led.last_round_acked.clear();
        let mut round_acked = 0;
        for (server, w) in writers {
            let n = led.absorb(rt.block_on(w).expect("writer task"), &mut errors);
            *acked_by_server.entry(server).or_default() += n;
            round_acked += n;
        }
        for p in pollers {
            led.checkpoints.extend(rt.block_on(p).expect("poller task"));
        }
        if round != DATABASE_RESTART_ROUND {
            servers[victim] = Server::start_postgres(&data, &url, &token_file);
        }
        eprintln!(
            "round {round}: {} after {} ms; {round_acked} appends acknowledged",
            if round == DATABASE_RESTART_ROUND {
                "PostgreSQL restarted".to_string()
            } else {
                format!("server {victim} killed")
            },
            kill_delay(round)
        );
        // Checked through a different server each round.
        let checker = client_of(&servers[(victim + 1) % SERVERS]);
        rt.block_on(check_after_restart(&checker, &vkey, &mut led, round + 1));
    }

    // Every server serves the same latest checkpoint, and every checkpoint the log ever stored
    // verifies against one tree.
    let notes: Vec<String> = servers
        .iter()
        .map(|s| {
            rt.block_on(client_of(s).checkpoint(TENANT, LOG))
                .expect("checkpoint")
        })
        .collect();
    assert!(
        notes.windows(2).all(|w| w[0] == w[1]),
        "the servers disagree on the latest checkpoint: {notes:#?}"
    );
    let latest = opened(&notes[0], &vkey);
    let report = rt
        .block_on(client_of(&servers[1]).reconcile(TENANT))
        .expect("reconcile");
    let gov = report
        .logs
        .iter()
        .find(|l| l.log == LOG)
        .expect("log in the report");
    assert!(
        report.ok,
        "deep verification found problems: {:#?}",
        report.logs
    );
    assert_eq!(gov.entries, latest.size, "every entry was re-verified");

    println!(
        "multi-server summary: {SERVERS} servers on one PostgreSQL database, {ROUNDS} rounds ({} SIGKILLs, 1 database restart), {} appends acknowledged ({}), {} log entries, {} checkpoints stored and re-verified, {} distinct checkpoints seen by clients, {} consistency proofs verified, {:.1} s",
        ROUNDS - 1,
        acked_by_server.values().sum::<usize>(),
        (0..SERVERS)
            .map(|s| format!(
                "server {s}: {}",
                acked_by_server.get(&s).copied().unwrap_or(0)
            ))
            .collect::<Vec<_>>()
            .join(", "),
        latest.size,
        gov.checkpoints,
        led.checkpoints.len(),
        led.proofs_verified,
        started.elapsed().as_secs_f64()
    );
    for s in 0..SERVERS {
        assert!(
            acked_by_server.get(&s).copied().unwrap_or(0) > 0,
            "server {s} acknowledged nothing: the test did not exercise several writers"
        );
    }
    assert!(
        errors.is_empty(),
        "appends failed with errors other than a lost connection: {errors:#?}"
    );
}
