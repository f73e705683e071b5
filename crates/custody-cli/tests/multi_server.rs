//! Several `custody serve` processes on one PostgreSQL database, appending to the same tenant
//! log at once: every acknowledged entry gets exactly one index and no two checkpoints of the
//! log disagree, while one server after another is killed with SIGKILL mid-batch and the
//! database itself is restarted under load.
//!
//! Needs the throwaway cluster `scripts/test.sh` starts (`CUSTODY_PG_URL`, `CUSTODY_PG_DIR`,
//! `CUSTODY_PG_BIN`); without it the test says so and passes unless `CUSTODY_REQUIRE_PG` is set.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
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

/// The throwaway cluster, if one was started for this run.
struct Cluster {
    url: String,
    data: PathBuf,
    bin: PathBuf,
}

impl Cluster {
    fn from_env() -> Option<Cluster> {
        let get = |k: &str| std::env::var(k).ok();
        match (
            get("CUSTODY_PG_URL"),
            get("CUSTODY_PG_DIR"),
            get("CUSTODY_PG_BIN"),
        ) {
            (Some(url), Some(dir), Some(bin)) => Some(Cluster {
                url,
                data: PathBuf::from(dir).join("data"),
                bin: PathBuf::from(bin),
            }),
            _ => {
                assert!(
                    std::env::var_os("CUSTODY_REQUIRE_PG").is_none(),
                    "CUSTODY_REQUIRE_PG is set but the cluster's variables are not"
                );
                eprintln!(
                    "multi-server: skipped (no PostgreSQL cluster; scripts/test.sh starts one)"
                );
                None
            }
        }
    }

    /// A new, empty database; its URL.
    fn database(&self, name: &str) -> String {
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            let out = Command::new(self.bin.join("psql"))
                .args([self.url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", &sql])
                .output()
                .expect("run psql");
            assert!(
                out.status.success(),
                "{sql}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let base = self.url.rsplit_once('/').expect("URL names a database").0;
        format!("{base}/{name}")
    }

    /// Restarts PostgreSQL (fast shutdown: every connection is dropped).
    fn restart(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut cmd = if nix_is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            c
        } else {
            Command::new(&pg_ctl)
        };
        // The server's output goes to its log file: pg_ctl's own pipes would stay open as long
        // as PostgreSQL runs.
        let log = self.data.parent().expect("cluster dir").join("server.log");
        let status = cmd
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-m", "fast", "-w", "-t", "60", "restart"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run pg_ctl");
        assert!(
            status.success(),
            "pg_ctl restart failed; see {}",
            log.display()
        );
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn several_servers_share_one_log_without_forking() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let started = Instant::now();
    let url = cluster.database(&format!("multi_{}", std::process::id()));
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
