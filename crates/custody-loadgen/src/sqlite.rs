//! The plain-SQLite baseline: what a user would write instead of a verifiable log, at the
//! same durability (WAL, `synchronous=FULL`): the same canonical envelope bytes and a
//! SHA-256 leaf hash per row, but no tree, no checkpoint and no signature.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rusqlite::Connection;

use crate::entry::Rng;
use crate::group::{Job, producers, row};
use crate::report::{Report, Tally};

/// Options of `sqlite-insert`.
#[derive(Debug, Clone, clap::Args)]
pub struct SqliteArgs {
    /// Database file; created if missing (remove it between runs for comparable numbers).
    #[arg(long)]
    pub path: std::path::PathBuf,
    /// Concurrent writers: threads with their own connection, or producer tasks with --group.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Rows to insert in all.
    #[arg(long, default_value_t = 20_000)]
    pub total: u64,
    /// Length of each entry's `body.blob`.
    #[arg(long, default_value_t = 200)]
    pub payload_bytes: usize,
    /// Group commit: one writer thread commits whatever rows are queued in one transaction.
    #[arg(long)]
    pub group: bool,
}

/// Opens a connection with the durability settings every writer uses.
fn open(path: &std::path::Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL, envelope BLOB NOT NULL)",
        [],
    )?;
    Ok(conn)
}

const INSERT: &str = "INSERT INTO entries (leaf_hash, envelope) VALUES (?1, ?2)";

/// `sqlite-insert`: `total` autocommit inserts from `concurrency` threads, or with `--group`
/// group-committed by one writer.
pub async fn sqlite_insert(a: &SqliteArgs) -> Result<Report> {
    ensure!(a.concurrency > 0, "concurrency must be positive");
    // Creates the file, the table and WAL mode once, before the writers race to.
    drop(open(&a.path)?);
    let (mode, tally, elapsed, groups) = if a.group {
        let (tally, elapsed, groups) = grouped(a).await?;
        ("sqlite-insert-group", tally, elapsed, Some(groups))
    } else {
        let a = a.clone();
        let (tally, elapsed) = tokio::task::spawn_blocking(move || autocommit(&a)).await??;
        ("sqlite-insert", tally, elapsed, None)
    };
    let mut report = Report::new(mode, a.concurrency, a.total, elapsed, tally)
        .with("payload_bytes", a.payload_bytes as u64);
    if let Some(groups) = groups {
        report = report.with("transactions", groups);
    }
    Ok(report)
}

/// Each of `concurrency` threads inserts rows one transaction at a time on its connection.
fn autocommit(a: &SqliteArgs) -> Result<(Tally, Duration)> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..a.concurrency)
        .map(|w| {
            let (next, path, total, payload) =
                (next.clone(), a.path.clone(), a.total, a.payload_bytes);
            std::thread::spawn(move || -> Result<Tally> {
                let conn = open(&path)?;
                let mut stmt = conn.prepare(INSERT)?;
                let mut rng = Rng::new(w as u64);
                let mut tally = Tally::default();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= total {
                        break;
                    }
                    let t = Instant::now();
                    let (hash, envelope) = row(&mut rng, seq, payload);
                    match stmt.execute((hash, envelope)) {
                        Ok(_) => tally.ok(t.elapsed(), 1),
                        Err(e) => tally.error(format!("insert {seq}: {e}")),
                    }
                }
                Ok(tally)
            })
        })
        .collect();
    let mut tally = Tally::default();
    for h in handles {
        let t = h
            .join()
            .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        tally.merge(t);
    }
    Ok((tally, start.elapsed()))
}

/// The group-commit writer: takes every queued row, inserts them in one transaction, commits,
/// and answers each producer. Returns the number of transactions.
fn writer(conn: &mut Connection, rx: mpsc::Receiver<Job>) -> u64 {
    let mut transactions = 0;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(INSERT)?;
                for ((hash, envelope), _) in &jobs {
                    stmt.execute((hash, envelope))?;
                }
            }
            tx.commit()
        })();
        transactions += 1;
        for (_, reply) in jobs {
            // A producer that gave up no longer needs its answer.
            let _ = reply.send(result.as_ref().map(|_| ()).map_err(ToString::to_string));
        }
    }
    transactions
}

/// `concurrency` producer tasks each queue one row at a time and wait for its commit.
async fn grouped(a: &SqliteArgs) -> Result<(Tally, Duration, u64)> {
    let mut conn = open(&a.path)?;
    let (tx, rx) = mpsc::channel::<Job>();
    let writer = std::thread::spawn(move || writer(&mut conn, rx));
    let start = Instant::now();
    let tally = producers(a.concurrency, a.total, a.payload_bytes, move |job| {
        tx.send(job).is_ok()
    })
    .await?;
    let elapsed = start.elapsed();
    let transactions = writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    Ok((tally, elapsed, transactions))
}
