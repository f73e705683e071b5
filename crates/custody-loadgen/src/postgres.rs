//! The plain-PostgreSQL baseline: what a user would write instead of a verifiable log on the
//! same database at the same durability (`synchronous_commit` on, as custody runs): the same
//! canonical envelope bytes and SHA-256 leaf hash per row, but no tree, no checkpoint, no
//! signature, no row-level security.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_postgres::{Client, NoTls};

use crate::entry::Rng;
use crate::group::{Job, producers, row};
use crate::report::{Report, Tally};

/// Options of `pg-insert`.
#[derive(Debug, Clone, clap::Args)]
pub struct PgArgs {
    /// Database URL (postgres://...); the table `plain_entries` is dropped and created.
    #[arg(long, env = "CUSTODY_PG_URL")]
    pub url: String,
    /// Concurrent writers: connections inserting one row per transaction, or producer tasks
    /// with --group.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Rows to insert in all.
    #[arg(long, default_value_t = 20_000)]
    pub total: u64,
    /// Length of each entry's `body.blob`.
    #[arg(long, default_value_t = 200)]
    pub payload_bytes: usize,
    /// Group commit: one writer connection inserts whatever rows are queued in one transaction.
    #[arg(long)]
    pub group: bool,
}

async fn connect(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    tokio::spawn(conn);
    Ok(client)
}

/// `pg-insert`: `total` single-row transactions from `concurrency` connections, or with
/// `--group` group-committed by one writer.
pub async fn pg_insert(a: &PgArgs) -> Result<Report> {
    ensure!(a.concurrency > 0, "concurrency must be positive");
    let setup = connect(&a.url).await?;
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS plain_entries;
             CREATE TABLE plain_entries (id bigserial PRIMARY KEY, leaf_hash bytea NOT NULL, envelope bytea NOT NULL)",
        )
        .await?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (mode, tally, transactions) = if a.group {
        let (tally, tx) = grouped(a).await?;
        ("pg-insert-group", tally, Some(tx))
    } else {
        ("pg-insert", autocommit(a, next).await?, None)
    };
    let elapsed = start.elapsed();
    let mut report = Report::new(mode, a.concurrency, a.total, elapsed, tally)
        .with("payload_bytes", a.payload_bytes as u64);
    if let Some(t) = transactions {
        report = report.with("transactions", t);
    }
    Ok(report)
}

async fn autocommit(a: &PgArgs, next: Arc<AtomicU64>) -> Result<Tally> {
    let mut set = JoinSet::new();
    for w in 0..a.concurrency {
        let (next, url, total, payload) = (next.clone(), a.url.clone(), a.total, a.payload_bytes);
        set.spawn(async move {
            let client = connect(&url).await?;
            let stmt = client
                .prepare("INSERT INTO plain_entries (leaf_hash, envelope) VALUES ($1, $2)")
                .await?;
            let mut rng = Rng::new(w as u64);
            let mut tally = Tally::default();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total {
                    break;
                }
                let t = Instant::now();
                let (hash, envelope) = row(&mut rng, seq, payload);
                match client.execute(&stmt, &[&hash, &envelope]).await {
                    Ok(_) => tally.ok(t.elapsed(), 1),
                    Err(e) => tally.error(format!("insert {seq}: {e}")),
                }
            }
            anyhow::Ok(tally)
        });
    }
    let mut tally = Tally::default();
    while let Some(t) = set.join_next().await {
        tally.merge(t??);
    }
    Ok(tally)
}

async fn grouped(a: &PgArgs) -> Result<(Tally, u64)> {
    let mut writer_conn = connect(&a.url).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    let writer = tokio::spawn(async move {
        let mut transactions = 0u64;
        while let Some(first) = rx.recv().await {
            let mut jobs = vec![first];
            while let Ok(j) = rx.try_recv() {
                jobs.push(j);
            }
            let hashes: Vec<&[u8]> = jobs.iter().map(|((h, _), _)| h.as_slice()).collect();
            let envelopes: Vec<&[u8]> = jobs.iter().map(|((_, e), _)| e.as_slice()).collect();
            let result = async {
                let t = writer_conn.transaction().await?;
                t.execute(
                    "INSERT INTO plain_entries (leaf_hash, envelope) SELECT * FROM unnest($1::bytea[], $2::bytea[])",
                    &[&hashes, &envelopes],
                )
                .await?;
                t.commit().await
            }
            .await;
            transactions += 1;
            for (_, reply) in jobs {
                let _ = reply.send(result.as_ref().map(|_| ()).map_err(ToString::to_string));
            }
        }
        transactions
    });
    let tally = producers(a.concurrency, a.total, a.payload_bytes, move |job| {
        tx.send(job).is_ok()
    })
    .await?;
    let transactions = tokio::time::timeout(Duration::from_secs(60), writer).await??;
    Ok((tally, transactions))
}
