//! The plain-SQLite baseline for inference records: the same NDJSON lines custody receives,
//! stored as they arrive in one table with an index on the request id, at the same
//! durability (WAL, `synchronous=FULL`) and with the best case a hand-written service can
//! reach: one writer thread group-committing whatever batches are queued, no HTTP, no
//! validation, no tree, no signature. Lookups by request id are the baseline for traces.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, ensure};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::entry::Rng;
use crate::inference::{RecordSpec, line, request_id};
use crate::report::{Report, Tally, percentile_ms};

/// Options of `sqlite-ndjson`.
#[derive(Debug, Clone, clap::Args)]
pub struct NdjsonArgs {
    /// Database file; created if missing, appended to if present.
    #[arg(long)]
    pub path: std::path::PathBuf,
    /// Concurrent producers, each queueing one batch at a time and waiting for its commit.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Records per batch (one producer request).
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    /// Records in all.
    #[arg(long, default_value_t = 100_000)]
    pub total: u64,
    /// Request ids are this prefix followed by the record's number in the run.
    #[arg(long, default_value = "req-")]
    pub prefix: String,
}

/// Options of `sqlite-lookup`.
#[derive(Debug, Clone, clap::Args)]
pub struct LookupArgs {
    /// Database filled by `sqlite-ndjson`.
    #[arg(long)]
    pub path: std::path::PathBuf,
    /// Concurrent readers, each a thread with its own read-only connection.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Lookups in all.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Request ids `<prefix><n>` with `n` drawn uniformly from `0..ids`.
    #[arg(long, default_value = "req-")]
    pub prefix: String,
    /// How many request ids the prefix covers.
    #[arg(long)]
    pub ids: u64,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS inferences (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    received_us INTEGER NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS inferences_by_request ON inferences (request_id);";

const INSERT: &str = "INSERT INTO inferences (request_id, received_us, record) VALUES (?1, ?2, ?3)";

/// Opens the writer connection with custody's durability settings and the table.
fn open(path: &std::path::Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Records the same way custody is sent them (same generator, same shape), keyed by id.
type Rows = Vec<(String, String)>;

/// A queued batch and where to report its commit.
type Job = (Rows, oneshot::Sender<Result<(), String>>);

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// The group-commit writer: every queued batch in one transaction, then each producer is
/// answered. Returns the number of transactions.
fn writer(conn: &mut Connection, rx: mpsc::Receiver<Job>) -> u64 {
    let mut transactions = 0;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(INSERT)?;
                let at = now_us();
                for (rows, _) in &jobs {
                    for (id, record) in rows {
                        stmt.execute((id, at, record.as_bytes()))?;
                    }
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

/// `sqlite-ndjson`: `concurrency` producers each queue `batch` records and wait until they
/// are committed, until `total` records are stored.
pub async fn sqlite_ndjson(a: &NdjsonArgs) -> Result<Report> {
    ensure!(
        a.concurrency > 0 && a.batch > 0,
        "concurrency and batch must be positive"
    );
    let mut conn = open(&a.path)?;
    let (tx, rx) = mpsc::channel::<Job>();
    let writer = std::thread::spawn(move || writer(&mut conn, rx));
    let spec = Arc::new(RecordSpec {
        version_hash: format!("sha256:{}", "5e".repeat(32)),
        deployment: "dep-credit-risk-7".into(),
        generic: false,
    });
    let prefix: Arc<str> = a.prefix.as_str().into();
    let next = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for w in 0..a.concurrency {
        let (tx, next, spec, prefix, bytes) = (
            tx.clone(),
            next.clone(),
            spec.clone(),
            prefix.clone(),
            bytes.clone(),
        );
        let (total, batch) = (a.total, a.batch);
        set.spawn(async move {
            let mut rng = Rng::new(0xC0DE ^ w as u64);
            let mut tally = Tally::default();
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= total {
                    break;
                }
                let n = batch.min(total - first);
                let now = crate::entry::rfc3339_now();
                let rows: Rows = (first..first + n)
                    .map(|seq| {
                        let id = request_id(&prefix, seq);
                        let l = line(&spec, &id, &now, &mut rng);
                        (id, l)
                    })
                    .collect();
                let size: usize = rows.iter().map(|(_, l)| l.len() + 1).sum();
                bytes.fetch_add(size as u64, Ordering::Relaxed);
                let t = Instant::now();
                let (reply, done) = oneshot::channel();
                if tx.send((rows, reply)).is_err() {
                    tally.error("the writer thread stopped");
                    break;
                }
                match done.await {
                    Ok(Ok(())) => tally.ok(t.elapsed(), n),
                    Ok(Err(e)) => tally.error(format!("records {first}..: {e}")),
                    Err(_) => tally.error("the writer thread dropped a batch"),
                }
            }
            tally
        });
    }
    drop(tx);
    let mut tally = Tally::default();
    while let Some(t) = set.join_next().await {
        tally.merge(t?);
    }
    let elapsed = start.elapsed();
    let transactions = writer
        .join()
        .map_err(|_| anyhow!("the writer thread panicked"))?;
    let rows: i64 =
        Connection::open(&a.path)?
            .query_row("SELECT count(*) FROM inferences", [], |r| r.get(0))?;
    Ok(
        Report::new("sqlite-ndjson", a.concurrency, a.total, elapsed, tally)
            .with("batch", a.batch)
            .with(
                "record_bytes",
                bytes.load(Ordering::Relaxed) / a.total.max(1),
            )
            .with("transactions", transactions)
            .with("table_rows", rows),
    )
}

/// `sqlite-lookup`: `total` lookups of random request ids, each returning the stored record.
pub async fn sqlite_lookup(a: &LookupArgs) -> Result<Report> {
    ensure!(
        a.concurrency > 0 && a.ids > 0,
        "concurrency and ids must be positive"
    );
    let args = a.clone();
    let (tally, elapsed) = tokio::task::spawn_blocking(move || lookups(&args)).await??;
    let mut sorted = tally.latencies_us.clone();
    sorted.sort_unstable();
    let p95 = percentile_ms(&sorted, 0.95);
    Ok(
        Report::new("sqlite-lookup", a.concurrency, a.total, elapsed, tally)
            .with("p95_ms", (p95 * 1000.0).round() / 1000.0)
            .with("ids", a.ids),
    )
}

/// Each of `concurrency` threads looks up random request ids on its own connection.
fn lookups(a: &LookupArgs) -> Result<(Tally, Duration)> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..a.concurrency)
        .map(|w| {
            let (next, a) = (next.clone(), a.clone());
            std::thread::spawn(move || -> Result<Tally> {
                let conn = Connection::open_with_flags(
                    &a.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                let mut stmt =
                    conn.prepare("SELECT record FROM inferences WHERE request_id = ?1 LIMIT 1")?;
                let mut rng = Rng::new(0x1001 ^ w as u64);
                let mut tally = Tally::default();
                while next.fetch_add(1, Ordering::Relaxed) < a.total {
                    let id = request_id(&a.prefix, rng.below(a.ids));
                    let t = Instant::now();
                    let found: rusqlite::Result<Option<Vec<u8>>> =
                        stmt.query_row([&id], |r| r.get(0)).optional();
                    let elapsed = t.elapsed();
                    match found {
                        Ok(Some(record)) => {
                            let needle = format!("\"id\":\"{id}\"");
                            if record.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                                tally.ok(elapsed, 1);
                            } else {
                                tally.error(format!("{id}: another record came back"));
                            }
                        }
                        Ok(None) => tally.error(format!("{id}: not found")),
                        Err(e) => tally.error(format!("{id}: {e}")),
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
            .map_err(|_| anyhow!("a reader thread panicked"))??;
        tally.merge(t);
    }
    Ok((tally, start.elapsed()))
}
