//! The embedded backend: one SQLite file in the data directory, nothing to install.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a commit returns only after the WAL is
//! synced; one transaction per sequencer batch gives one sync per batch, not per entry.
//! Concurrency: SQLite has one writer, and so does this store (a dedicated connection taken
//! with `BEGIN IMMEDIATE`); reads go to a small pool of read-only connections and see a
//! consistent snapshot each, never blocking the writer.
//!
//! [`SqliteStore::open_read_only`] opens that same pool alone, for code that must read a
//! database without any way to change it (offline deep verification of a data directory): it
//! migrates nothing, creates no database, and refuses one whose schema is not exactly the one
//! this build reads.
//!
//! All calls run on tokio's blocking pool, so the async trait methods never stall the server's
//! reactor on disk I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use custody_core::envelope::{LogName, TenantName};
use custody_core::merkle::{Hash, Subtree};
use custody_store::{
    AccessChange, AppendBatch, AuthStore, EntryFilter, ExistingEntry, LedgerReader, LedgerWriter,
    LogKey, LogRecord, PayloadHolder, PrincipalRow, StoreError, StoreResult, StoredCheckpoint,
    StoredEntry, StoredPayload, TokenRow,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Schema migrations, applied in order and never edited once released: each one's SHA-256 is
/// recorded when applied and checked on every open.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_ledger.sql")),
    (2, include_str!("../migrations/0002_auth.sql")),
];

/// Read connections kept open; more would only contend for two cores.
const READERS: usize = 4;

/// The SQLite ledger store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    /// Reads, and the log-id cache the writer shares.
    reads: ReadOnlySqliteStore,
}

/// A custody database opened for reading only ([`SqliteStore::open_read_only`]). It
/// implements [`LedgerReader`] and nothing else, so code holding one cannot write, and every
/// connection is opened `SQLITE_OPEN_READ_ONLY`, so neither can SQLite on its behalf. Cheap
/// to clone.
///
/// ```compile_fail
/// fn needs_a_writer(_: &impl custody_store::LedgerWriter) {}
/// async fn audit(path: &std::path::Path) {
///     let store = custody_store_sqlite::SqliteStore::open_read_only(path).await.unwrap();
///     needs_a_writer(&store);
/// }
/// ```
#[derive(Clone)]
pub struct ReadOnlySqliteStore {
    pool: Arc<ReadPool>,
}

/// The read-only connections every store reads through.
struct ReadPool {
    path: PathBuf,
    /// Idle read connections. A task takes one only after acquiring a `permits` permit, so
    /// there is always one free and no blocking thread ever waits on a lock.
    connections: Mutex<Vec<Connection>>,
    permits: tokio::sync::Semaphore,
    log_ids: RwLock<HashMap<LogKey, i64>>,
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict("already exists".into()),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt("the database file is damaged".into())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn index_i64(i: u64) -> StoreResult<i64> {
    i64::try_from(i).map_err(|_| StoreError::NotFound(format!("index {i} is out of range")))
}

fn hash_from(bytes: Vec<u8>, what: &str) -> StoreResult<Hash> {
    Hash::from_slice(&bytes).map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    /// Synchronous [`SqliteStore::open`], for tools that run without a runtime.
    pub fn open_blocking(path: &Path) -> StoreResult<Self> {
        // Payloads are personal data: create the file private; SQLite gives its WAL and shared
        // memory files the same mode.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot create {}: {e}", path.display()))
                })?;
        }
        let mut writer = Connection::open(path).map_err(unavailable)?;
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;
                 PRAGMA busy_timeout=10000; PRAGMA wal_autocheckpoint=4000;
                 PRAGMA secure_delete=ON;",
            )
            .map_err(unavailable)?;
        migrate(&mut writer)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                reads: ReadOnlySqliteStore {
                    pool: Arc::new(ReadPool::open(path)?),
                },
            }),
        })
    }

    /// Opens the existing database at `path` for reading only: every connection is
    /// `SQLITE_OPEN_READ_ONLY`, no migration runs, and neither the file nor its directory is
    /// created (SQLite may still create the `-wal` and `-shm` companions every reader of a WAL
    /// database needs). A database whose recorded migrations are not exactly the ones this
    /// build knows (newer, older or different) is refused rather than misread.
    pub async fn open_read_only(path: impl AsRef<Path>) -> StoreResult<ReadOnlySqliteStore> {
        let path = path.as_ref().to_path_buf();
        let pool = tokio::task::spawn_blocking(move || ReadPool::open(&path))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        let store = ReadOnlySqliteStore {
            pool: Arc::new(pool),
        };
        store
            .read(|pool, conn| check_migrations(conn, &pool.path))
            .await?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.inner.reads.path()
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadPool, &Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.inner.reads.read(f).await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadPool, &mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            f(&inner.reads.pool, &mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

impl ReadOnlySqliteStore {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.pool.path
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadPool, &Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        // Waiting for a connection happens here, on the async side, so at most READERS
        // blocking threads are ever busy with reads.
        let _permit = self
            .pool
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let lease = Lease::take(&pool)?;
            match &lease.conn {
                Some(conn) => f(&pool, conn),
                None => Err(StoreError::Unavailable("no read connection free".into())),
            }
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

impl ReadPool {
    /// Opens [`READERS`] read-only connections to the existing database at `path`.
    fn open(path: &Path) -> StoreResult<Self> {
        let connections = (0..READERS)
            .map(|_| {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| match e.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::CannotOpen) => StoreError::NotFound(format!(
                        "cannot open {} for reading: {e}",
                        path.display()
                    )),
                    _ => unavailable(e),
                })?;
                c.execute_batch("PRAGMA busy_timeout=10000; PRAGMA query_only=ON;")
                    .map_err(unavailable)?;
                Ok(c)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Self {
            path: path.to_path_buf(),
            connections: Mutex::new(connections),
            permits: tokio::sync::Semaphore::new(READERS),
            log_ids: RwLock::new(HashMap::new()),
        })
    }
}

/// A read connection borrowed from the pool and returned on drop, even if a read panics.
struct Lease<'a> {
    pool: &'a ReadPool,
    conn: Option<Connection>,
}

impl<'a> Lease<'a> {
    fn take(pool: &'a ReadPool) -> StoreResult<Self> {
        let conn = pool
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .ok_or_else(|| StoreError::Unavailable("no read connection free".into()))?;
        Ok(Self {
            pool,
            conn: Some(conn),
        })
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool
                .connections
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
        }
    }
}

/// The SHA-256 recorded for a migration's SQL when it is applied.
fn migration_checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Refuses, without changing anything, a database whose recorded migrations are not exactly
/// [`MIGRATIONS`]: a reader that cannot migrate must not guess at another schema.
fn check_migrations(conn: &Connection, path: &Path) -> StoreResult<()> {
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
            [],
            |r| r.get(0),
        )
        .map_err(unavailable)?;
    if !has_table {
        return Err(StoreError::Corrupt(format!(
            "{} records no schema migrations: it is not a custody database",
            path.display()
        )));
    }
    let recorded: Vec<(i64, String)> = conn
        .prepare("SELECT version, checksum FROM schema_migrations ORDER BY version")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(unavailable)?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    for (version, checksum) in &recorded {
        match MIGRATIONS.iter().find(|(v, _)| v == version) {
            Some((_, sql)) if migration_checksum(sql) == *checksum => {}
            Some(_) => {
                return Err(StoreError::Corrupt(format!(
                    "migration {version} differs from the one applied to this database"
                )));
            }
            None if *version > known => {
                return Err(StoreError::Corrupt(format!(
                    "the database has schema version {version}, newer than this custody knows ({known}): run a newer custody"
                )));
            }
            None => {
                return Err(StoreError::Corrupt(format!(
                    "the database records a migration {version} this custody does not know"
                )));
            }
        }
    }
    if let Some((missing, _)) = MIGRATIONS
        .iter()
        .find(|(v, _)| !recorded.iter().any(|(r, _)| r == v))
    {
        return Err(StoreError::Unavailable(format!(
            "the database lacks migration {missing} of this custody's {known}: it is read only as it is, so start `custody serve` on it once to migrate it, or use the custody that wrote it"
        )));
    }
    Ok(())
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, checksum TEXT NOT NULL)",
    )
    .map_err(unavailable)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let newest: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .map_err(unavailable)?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if let Some(v) = newest.filter(|v| *v > known) {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {v}, newer than this custody knows ({known}): run a newer custody"
        )));
    }
    for (version, sql) in MIGRATIONS {
        let checksum = migration_checksum(sql);
        let applied: Option<String> = tx
            .query_row(
                "SELECT checksum FROM schema_migrations WHERE version = ?1",
                [version],
                |r| r.get(0),
            )
            .optional()
            .map_err(unavailable)?;
        match applied {
            Some(c) if c == checksum => {}
            Some(_) => {
                return Err(StoreError::Corrupt(format!(
                    "migration {version} differs from the one applied to this database"
                )));
            }
            None => {
                tx.execute_batch(sql).map_err(unavailable)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES (?1, ?2)",
                    params![version, checksum],
                )
                .map_err(unavailable)?;
            }
        }
    }
    tx.commit().map_err(unavailable)
}

impl ReadPool {
    fn log_id(&self, conn: &Connection, key: &LogKey) -> StoreResult<i64> {
        if let Some(id) = self
            .log_ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return Ok(*id);
        }
        let id: i64 = conn
            .query_row(
                "SELECT l.id FROM logs l JOIN tenants t ON t.id = l.tenant_id
                 WHERE t.name = ?1 AND l.name = ?2",
                params![key.tenant.as_str(), key.log.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(unavailable)?
            .ok_or_else(|| StoreError::NotFound(format!("log {}/{}", key.tenant, key.log)))?;
        self.log_ids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), id);
        Ok(id)
    }
}

fn latest_checkpoint(conn: &Connection, log_id: i64) -> StoreResult<StoredCheckpoint> {
    conn.prepare_cached(
        "SELECT size, root, note FROM checkpoints WHERE log_id = ?1 ORDER BY size DESC LIMIT 1",
    )
    .map_err(unavailable)?
    .query_row([log_id], checkpoint_row)
    .optional()
    .map_err(unavailable)?
    .ok_or_else(|| StoreError::Corrupt("log has no checkpoint".into()))?
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<StoredCheckpoint>> {
    let size: i64 = r.get(0)?;
    let root: Vec<u8> = r.get(1)?;
    let note: String = r.get(2)?;
    Ok(
        hash_from(root, "checkpoint root").map(|root| StoredCheckpoint {
            size: size as u64,
            root,
            note,
        }),
    )
}

const ENTRY_COLUMNS: &str = "e.idx, e.id, e.leaf_hash, e.envelope, p.salt, p.payload";

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<StoredEntry>> {
    let idx: i64 = r.get(0)?;
    let id: Vec<u8> = r.get(1)?;
    let leaf: Vec<u8> = r.get(2)?;
    let envelope: Vec<u8> = r.get(3)?;
    let salt: Option<Vec<u8>> = r.get(4)?;
    let payload: Option<Vec<u8>> = r.get(5)?;
    Ok((|| {
        let id = Uuid::from_slice(&id).map_err(|_| StoreError::Corrupt("entry id".into()))?;
        let leaf_hash = hash_from(leaf, "leaf hash")?;
        let payload = match (salt, payload) {
            (Some(salt), Some(json)) => Some(StoredPayload {
                json,
                salt: salt
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("payload salt is not 32 bytes".into()))?,
            }),
            _ => None,
        };
        Ok(StoredEntry {
            index: idx as u64,
            id,
            leaf_hash,
            envelope,
            payload,
        })
    })())
}

fn collect_entries(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<StoredEntry>> {
    stmt.query_map(params, entry_row)
        .map_err(unavailable)?
        .map(|r| r.map_err(unavailable).and_then(|e| e))
        .collect()
}

impl LedgerReader for ReadOnlySqliteStore {
    async fn tenants(&self) -> StoreResult<Vec<TenantName>> {
        self.read(|_, conn| {
            let mut stmt = conn
                .prepare_cached("SELECT name FROM tenants ORDER BY name")
                .map_err(unavailable)?;
            stmt.query_map([], |r| r.get::<_, String>(0))
                .map_err(unavailable)?
                .map(|n| {
                    let n = n.map_err(unavailable)?;
                    TenantName::parse(&n).map_err(|e| StoreError::Corrupt(e.to_string()))
                })
                .collect()
        })
        .await
    }

    async fn logs(&self, tenant: &TenantName) -> StoreResult<Vec<LogRecord>> {
        let tenant = tenant.clone();
        self.read(move |_, conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT l.name, l.origin, l.verifier_key FROM logs l
                     JOIN tenants t ON t.id = l.tenant_id WHERE t.name = ?1 ORDER BY l.id",
                )
                .map_err(unavailable)?;
            let logs = stmt
                .query_map([tenant.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(unavailable)?
                .map(|row| {
                    let (name, origin, verifier_key) = row.map_err(unavailable)?;
                    let log =
                        LogName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    Ok(LogRecord {
                        key: LogKey {
                            tenant: tenant.clone(),
                            log,
                        },
                        origin,
                        verifier_key,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            if logs.is_empty() {
                return Err(StoreError::NotFound(format!("tenant {tenant}")));
            }
            Ok(logs)
        })
        .await
    }

    async fn latest_checkpoint(&self, key: &LogKey) -> StoreResult<StoredCheckpoint> {
        let key = key.clone();
        self.read(move |inner, conn| latest_checkpoint(conn, inner.log_id(conn, &key)?))
            .await
    }

    async fn checkpoint_at(
        &self,
        key: &LogKey,
        size: u64,
    ) -> StoreResult<Option<StoredCheckpoint>> {
        let key = key.clone();
        self.read(move |inner, conn| {
            let log_id = inner.log_id(conn, &key)?;
            // No log can reach a size beyond i64, so such a checkpoint is simply absent.
            let Ok(size) = i64::try_from(size) else {
                return Ok(None);
            };
            conn.prepare_cached(
                "SELECT size, root, note FROM checkpoints WHERE log_id = ?1 AND size = ?2",
            )
            .map_err(unavailable)?
            .query_row(params![log_id, size], checkpoint_row)
            .optional()
            .map_err(unavailable)?
            .transpose()
        })
        .await
    }

    async fn nodes(&self, key: &LogKey, subtrees: &[Subtree]) -> StoreResult<Vec<Option<Hash>>> {
        let key = key.clone();
        let subtrees = subtrees.to_vec();
        self.read(move |inner, conn| {
            let log_id = inner.log_id(conn, &key)?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT hash FROM nodes WHERE log_id = ?1 AND level = ?2 AND idx = ?3",
                )
                .map_err(unavailable)?;
            subtrees
                .iter()
                .map(|s| {
                    let Ok(index) = i64::try_from(s.index) else {
                        return Ok(None);
                    };
                    stmt.query_row(params![log_id, s.level, index], |r| r.get::<_, Vec<u8>>(0))
                        .optional()
                        .map_err(unavailable)?
                        .map(|b| hash_from(b, "tree node"))
                        .transpose()
                })
                .collect()
        })
        .await
    }

    async fn entry(&self, key: &LogKey, index: u64) -> StoreResult<Option<StoredEntry>> {
        Ok(self
            .entry_range(key, index, index.saturating_add(1))
            .await?
            .pop())
    }

    async fn entry_range(&self, key: &LogKey, from: u64, to: u64) -> StoreResult<Vec<StoredEntry>> {
        let key = key.clone();
        self.read(move |inner, conn| {
            let log_id = inner.log_id(conn, &key)?;
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM entries e
                     LEFT JOIN payloads p ON p.log_id = e.log_id AND p.idx = e.idx
                     WHERE e.log_id = ?1 AND e.idx >= ?2 AND e.idx < ?3 ORDER BY e.idx"
                ))
                .map_err(unavailable)?;
            let to = to.min(i64::MAX as u64);
            collect_entries(
                &mut stmt,
                params![log_id, index_i64(from.min(to))?, to as i64],
            )
        })
        .await
    }

    async fn find_entries(
        &self,
        key: &LogKey,
        filter: &EntryFilter,
    ) -> StoreResult<Vec<StoredEntry>> {
        let key = key.clone();
        let f = filter.clone();
        self.read(move |inner, conn| {
            let log_id = inner.log_id(conn, &key)?;
            // Without table statistics SQLite may walk a whole log in index order to avoid a
            // sort; name the most selective index instead. A `related` filter drives the
            // query from the links index, already in log order.
            // (CROSS JOIN makes the links table the outer loop.)
            let driver = if f.related_id.is_some() {
                "related r INDEXED BY related_by_id CROSS JOIN entries e"
            } else if f.subject_id.is_some() {
                "entries e INDEXED BY entries_by_subject"
            } else if f.actor_id.is_some() {
                "entries e INDEXED BY entries_by_actor"
            } else {
                "entries e"
            };
            let mut sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM {driver}
                 LEFT JOIN payloads p ON p.log_id = e.log_id AND p.idx = e.idx
                 WHERE e.log_id = ?1 AND e.idx >= ?2 AND e.idx < ?3"
            );
            // Indexes beyond i64 cannot exist, so clamping keeps the query's meaning.
            let clamp = |i: u64| i.min(i64::MAX as u64) as i64;
            let mut args: Vec<rusqlite::types::Value> = vec![
                log_id.into(),
                clamp(f.from_index).into(),
                clamp(f.below_index).into(),
            ];
            if let Some(r) = &f.related_id {
                args.push(r.clone().into());
                sql.push_str(&format!(
                    " AND r.log_id = ?1 AND r.id = ?{} AND r.idx >= ?2 AND r.idx < ?3 AND e.idx = r.idx",
                    args.len()
                ));
            }
            let mut add = |clause: &str, v: rusqlite::types::Value| {
                args.push(v);
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            };
            if let Some(t) = &f.entry_type {
                add(" AND e.entry_type = ?", t.clone().into());
            }
            if let Some(a) = &f.actor_id {
                add(" AND e.actor_id = ?", a.clone().into());
            }
            if let Some(s) = &f.subject_id {
                add(" AND e.subject_id = ?", s.clone().into());
            }
            if let Some(s) = f.since_micros {
                add(" AND e.time_us >= ?", s.into());
            }
            if let Some(u) = f.until_micros {
                add(" AND e.time_us < ?", u.into());
            }
            // Walking the links index in index order lets LIMIT stop early; an entry that
            // links the same id twice is one result.
            let order = if f.related_id.is_some() {
                " GROUP BY r.idx ORDER BY r.idx LIMIT ?"
            } else {
                " ORDER BY e.idx LIMIT ?"
            };
            add(order, i64::from(f.limit).into());
            let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
            collect_entries(&mut stmt, rusqlite::params_from_iter(args))
        })
        .await
    }

    async fn existing_ids(&self, key: &LogKey, ids: &[Uuid]) -> StoreResult<Vec<ExistingEntry>> {
        let key = key.clone();
        let ids = ids.to_vec();
        self.read(move |inner, conn| {
            let log_id = inner.log_id(conn, &key)?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT idx, leaf_hash, content_digest FROM entries WHERE log_id = ?1 AND id = ?2",
                )
                .map_err(unavailable)?;
            let mut found = Vec::new();
            for id in ids {
                let row = stmt
                    .query_row(params![log_id, id.as_bytes().as_slice()], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Vec<u8>>(2)?))
                    })
                    .optional()
                    .map_err(unavailable)?;
                if let Some((idx, leaf, digest)) = row {
                    found.push(ExistingEntry {
                        id,
                        index: idx as u64,
                        leaf_hash: hash_from(leaf, "leaf hash")?,
                        content_digest: digest
                            .try_into()
                            .map_err(|_| StoreError::Corrupt("content digest".into()))?,
                    });
                }
            }
            Ok(found)
        })
        .await
    }

    async fn payloads(
        &self,
        key: &LogKey,
        from: u64,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<PayloadHolder>> {
        let key = key.clone();
        let from = index_i64(from)?;
        self.read(move |inner, conn| {
            let log_id = inner.log_id(conn, &key)?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT p.idx, e.id, e.entry_type, e.time_us, p.salt, p.payload
                     FROM payloads p JOIN entries e ON e.log_id = p.log_id AND e.idx = p.idx
                     WHERE p.log_id = ?1 AND p.idx >= ?2 AND e.time_us < ?3
                     ORDER BY p.idx LIMIT ?4",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(
                    params![log_id, from, before.unwrap_or(i64::MAX), i64::from(limit)],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Vec<u8>>(4)?,
                            r.get::<_, Vec<u8>>(5)?,
                        ))
                    },
                )
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (idx, id, entry_type, time_micros, salt, json) = row.map_err(unavailable)?;
                out.push(PayloadHolder {
                    index: idx as u64,
                    id: Uuid::from_slice(&id)
                        .map_err(|_| StoreError::Corrupt("entry id".into()))?,
                    entry_type,
                    time_micros,
                    payload: StoredPayload {
                        json,
                        salt: salt.try_into().map_err(|_| {
                            StoreError::Corrupt("payload salt is not 32 bytes".into())
                        })?,
                    },
                });
            }
            Ok(out)
        })
        .await
    }

    async fn checkpoints(
        &self,
        key: &LogKey,
        from_size: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredCheckpoint>> {
        let key = key.clone();
        let from = index_i64(from_size)?;
        self.read(move |inner, conn| {
            let log_id = inner.log_id(conn, &key)?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT size, root, note FROM checkpoints WHERE log_id = ?1 AND size >= ?2
                     ORDER BY size LIMIT ?3",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![log_id, from, i64::from(limit)], checkpoint_row)
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row.map_err(unavailable)??);
            }
            Ok(out)
        })
        .await
    }
}

/// Reads go through the same pool a [`ReadOnlySqliteStore`] has, so the two read alike.
impl LedgerReader for SqliteStore {
    async fn tenants(&self) -> StoreResult<Vec<TenantName>> {
        self.inner.reads.tenants().await
    }

    async fn logs(&self, tenant: &TenantName) -> StoreResult<Vec<LogRecord>> {
        self.inner.reads.logs(tenant).await
    }

    async fn latest_checkpoint(&self, key: &LogKey) -> StoreResult<StoredCheckpoint> {
        self.inner.reads.latest_checkpoint(key).await
    }

    async fn checkpoint_at(
        &self,
        key: &LogKey,
        size: u64,
    ) -> StoreResult<Option<StoredCheckpoint>> {
        self.inner.reads.checkpoint_at(key, size).await
    }

    async fn nodes(&self, key: &LogKey, subtrees: &[Subtree]) -> StoreResult<Vec<Option<Hash>>> {
        self.inner.reads.nodes(key, subtrees).await
    }

    async fn entry(&self, key: &LogKey, index: u64) -> StoreResult<Option<StoredEntry>> {
        self.inner.reads.entry(key, index).await
    }

    async fn entry_range(&self, key: &LogKey, from: u64, to: u64) -> StoreResult<Vec<StoredEntry>> {
        self.inner.reads.entry_range(key, from, to).await
    }

    async fn find_entries(
        &self,
        key: &LogKey,
        filter: &EntryFilter,
    ) -> StoreResult<Vec<StoredEntry>> {
        self.inner.reads.find_entries(key, filter).await
    }

    async fn existing_ids(&self, key: &LogKey, ids: &[Uuid]) -> StoreResult<Vec<ExistingEntry>> {
        self.inner.reads.existing_ids(key, ids).await
    }

    async fn payloads(
        &self,
        key: &LogKey,
        from: u64,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<PayloadHolder>> {
        self.inner.reads.payloads(key, from, before, limit).await
    }

    async fn checkpoints(
        &self,
        key: &LogKey,
        from_size: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredCheckpoint>> {
        self.inner.reads.checkpoints(key, from_size, limit).await
    }
}

impl LedgerWriter for SqliteStore {
    async fn create_tenant(
        &self,
        tenant: &TenantName,
        logs: Vec<(LogRecord, StoredCheckpoint)>,
    ) -> StoreResult<()> {
        let tenant = tenant.clone();
        self.write(move |_, conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            match tx.execute("INSERT INTO tenants (name) VALUES (?1)", [tenant.as_str()]) {
                Ok(_) => {}
                Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                    return Err(StoreError::Conflict(format!("tenant {tenant} already exists")));
                }
                Err(e) => return Err(unavailable(e)),
            }
            let tenant_id = tx.last_insert_rowid();
            for (log, cp) in logs {
                tx.execute(
                    "INSERT INTO logs (tenant_id, name, origin, verifier_key) VALUES (?1, ?2, ?3, ?4)",
                    params![tenant_id, log.key.log.as_str(), log.origin, log.verifier_key],
                )
                .map_err(unavailable)?;
                let log_id = tx.last_insert_rowid();
                tx.execute(
                    "INSERT INTO checkpoints (log_id, size, root, note) VALUES (?1, ?2, ?3, ?4)",
                    params![log_id, index_i64(cp.size)?, cp.root.as_bytes().as_slice(), cp.note],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn append_batch(&self, batch: AppendBatch) -> StoreResult<()> {
        self.write(move |inner, conn| {
            let log_id = inner.log_id(conn, &batch.key)?;
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let current = latest_checkpoint(&tx, log_id)?;
            batch.check_extends(current.size)?;
            batch.check_access()?;
            for change in &batch.access {
                apply_access_change(&tx, batch.key.tenant.as_str(), change)?;
            }
            {
                let mut ins_entry = tx
                    .prepare_cached(
                        "INSERT INTO entries (log_id, idx, id, leaf_hash, envelope, content_digest,
                         entry_type, actor_id, subject_kind, subject_id, time_us)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )
                    .map_err(unavailable)?;
                let mut ins_related = tx
                    .prepare_cached(
                        "INSERT INTO related (log_id, idx, kind, id, rel) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(unavailable)?;
                let mut ins_payload = tx
                    .prepare_cached(
                        "INSERT INTO payloads (log_id, idx, salt, payload) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(unavailable)?;
                for e in &batch.entries {
                    let idx = index_i64(e.index)?;
                    ins_entry
                        .execute(params![
                            log_id,
                            idx,
                            e.id.as_bytes().as_slice(),
                            e.leaf_hash.as_bytes().as_slice(),
                            e.envelope,
                            e.content_digest.as_slice(),
                            e.fields.entry_type,
                            e.fields.actor_id,
                            e.fields.subject_kind,
                            e.fields.subject_id,
                            e.fields.time_micros,
                        ])
                        .map_err(|err| match unavailable(err) {
                            StoreError::Conflict(_) => {
                                StoreError::Conflict(format!("entry id {} already exists", e.id))
                            }
                            other => other,
                        })?;
                    for (kind, id, rel) in &e.fields.related {
                        ins_related
                            .execute(params![log_id, idx, kind, id, rel])
                            .map_err(unavailable)?;
                    }
                    if let Some(p) = &e.payload {
                        ins_payload
                            .execute(params![log_id, idx, p.salt.as_slice(), p.json])
                            .map_err(unavailable)?;
                    }
                }
                let mut ins_node = tx
                    .prepare_cached(
                        "INSERT INTO nodes (log_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(unavailable)?;
                for (s, h) in &batch.nodes {
                    ins_node
                        .execute(params![log_id, s.level, index_i64(s.index)?, h.as_bytes().as_slice()])
                        .map_err(|e| match unavailable(e) {
                            StoreError::Conflict(_) => StoreError::Corrupt(format!(
                                "tree node {}/{} is already stored",
                                s.level, s.index
                            )),
                            other => other,
                        })?;
                }
                let cp = &batch.checkpoint;
                tx.execute(
                    "INSERT INTO checkpoints (log_id, size, root, note) VALUES (?1, ?2, ?3, ?4)",
                    params![log_id, index_i64(cp.size)?, cp.root.as_bytes().as_slice(), cp.note],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn erase_payload(&self, key: &LogKey, index: u64) -> StoreResult<bool> {
        let key = key.clone();
        let idx = index_i64(index)?;
        self.write(move |inner, conn| {
            let log_id = inner.log_id(conn, &key)?;
            // secure_delete (set on the writer) zeroes the freed bytes in the page as well.
            let n = conn
                .execute(
                    "DELETE FROM payloads WHERE log_id = ?1 AND idx = ?2",
                    params![log_id, idx],
                )
                .map_err(unavailable)?;
            Ok(n == 1)
        })
        .await
    }

    async fn set_verifier_key(&self, key: &LogKey, verifier_key: &str) -> StoreResult<()> {
        let key = key.clone();
        let vkey = verifier_key.to_owned();
        self.write(move |inner, conn| {
            let log_id = inner.log_id(conn, &key)?;
            conn.execute(
                "UPDATE logs SET verifier_key = ?2 WHERE id = ?1",
                params![log_id, vkey],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn compact(&self) -> StoreResult<()> {
        self.write(|_, conn| {
            // Old page images can survive in the WAL until it is checkpointed and truncated;
            // VACUUM then rebuilds the file from live rows only.
            conn.execute_batch(
                "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .map_err(unavailable)
        })
        .await
    }
}

fn principal_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PrincipalRow> {
    Ok(PrincipalRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        kind: r.get(2)?,
        name: r.get(3)?,
        roles: r.get(4)?,
        created_micros: r.get(5)?,
    })
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<TokenRow>> {
    let hash: Vec<u8> = r.get(2)?;
    Ok(hash
        .try_into()
        .map_err(|_| StoreError::Corrupt("token hash is not 32 bytes".into()))
        .and_then(|secret_hash| {
            Ok(TokenRow {
                id: r.get(0).map_err(unavailable)?,
                principal_id: r.get(1).map_err(unavailable)?,
                secret_hash,
                created_micros: r.get(3).map_err(unavailable)?,
                expires_micros: r.get(4).map_err(unavailable)?,
                revoked_micros: r.get(5).map_err(unavailable)?,
            })
        }))
}

const PRINCIPAL_COLUMNS: &str = "id, tenant, kind, name, roles, created_us";
const TOKEN_COLUMNS: &str = "id, principal_id, secret_hash, created_us, expires_us, revoked_us";

fn insert_principal(conn: &Connection, p: &PrincipalRow) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO principals (id, tenant, kind, name, roles, created_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![p.id, p.tenant, p.kind, p.name, p.roles, p.created_micros],
    )
    .map_err(|e| match unavailable(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("principal {} exists", p.id)),
        other => other,
    })?;
    Ok(())
}

/// Applies one access change of a batch of `tenant`'s log, inside the batch's transaction.
fn apply_access_change(conn: &Connection, tenant: &str, change: &AccessChange) -> StoreResult<()> {
    match change {
        AccessChange::AddPrincipal(p) => insert_principal(conn, p),
        AccessChange::AddToken(t) => {
            principal_of_tenant(conn, &t.principal_id, tenant)?;
            insert_token(conn, t)
        }
        AccessChange::RevokeToken { id, at_micros } => {
            let owner: Option<String> = conn
                .query_row("SELECT principal_id FROM tokens WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(unavailable)?;
            let owner = owner.ok_or_else(|| StoreError::NotFound(format!("token {id}")))?;
            principal_of_tenant(conn, &owner, tenant)?;
            conn.execute(
                "UPDATE tokens SET revoked_us = ?2 WHERE id = ?1 AND revoked_us IS NULL",
                params![id, at_micros],
            )
            .map_err(unavailable)?;
            Ok(())
        }
    }
}

/// `NotFound` unless principal `id` belongs to `tenant`.
fn principal_of_tenant(conn: &Connection, id: &str, tenant: &str) -> StoreResult<()> {
    let found: Option<Option<String>> = conn
        .query_row("SELECT tenant FROM principals WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(unavailable)?;
    match found {
        Some(Some(t)) if t == tenant => Ok(()),
        _ => Err(StoreError::NotFound(format!(
            "principal {id} in tenant {tenant}"
        ))),
    }
}

fn insert_token(conn: &Connection, t: &TokenRow) -> StoreResult<()> {
    let known: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM principals WHERE id = ?1)",
            [&t.principal_id],
            |r| r.get(0),
        )
        .map_err(unavailable)?;
    if !known {
        return Err(StoreError::NotFound(format!(
            "principal {}",
            t.principal_id
        )));
    }
    conn.execute(
        "INSERT INTO tokens (id, principal_id, secret_hash, created_us, expires_us, revoked_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            t.id,
            t.principal_id,
            t.secret_hash.as_slice(),
            t.created_micros,
            t.expires_micros,
            t.revoked_micros
        ],
    )
    .map_err(|e| match unavailable(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("token {} exists", t.id)),
        other => other,
    })?;
    Ok(())
}

impl AuthStore for SqliteStore {
    async fn bootstrap(&self, principal: PrincipalRow, token: TokenRow) -> StoreResult<bool> {
        self.write(move |_, conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let any: bool = tx
                .query_row("SELECT EXISTS (SELECT 1 FROM principals)", [], |r| r.get(0))
                .map_err(unavailable)?;
            if any {
                return Ok(false);
            }
            insert_principal(&tx, &principal)?;
            insert_token(&tx, &token)?;
            tx.commit().map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn create_principal(&self, principal: PrincipalRow) -> StoreResult<()> {
        self.write(move |_, conn| insert_principal(conn, &principal))
            .await
    }

    async fn principal(&self, id: &str) -> StoreResult<Option<PrincipalRow>> {
        let id = id.to_owned();
        self.read(move |_, conn| {
            conn.prepare_cached(&format!(
                "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = ?1"
            ))
            .map_err(unavailable)?
            .query_row([id], principal_row)
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn principals(&self, tenant: Option<&str>) -> StoreResult<Vec<PrincipalRow>> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |_, conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE tenant IS ?1 ORDER BY id"
                ))
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([tenant], principal_row)
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn add_token(&self, token: TokenRow) -> StoreResult<()> {
        self.write(move |_, conn| insert_token(conn, &token)).await
    }

    async fn token(&self, id: &str) -> StoreResult<Option<(TokenRow, PrincipalRow)>> {
        let id = id.to_owned();
        self.read(move |_, conn| {
            let token = conn
                .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"))
                .map_err(unavailable)?
                .query_row([id], token_row)
                .optional()
                .map_err(unavailable)?
                .transpose()?;
            let Some(token) = token else { return Ok(None) };
            let principal = conn
                .prepare_cached(&format!(
                    "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = ?1"
                ))
                .map_err(unavailable)?
                .query_row([&token.principal_id], principal_row)
                .optional()
                .map_err(unavailable)?
                .ok_or_else(|| StoreError::Corrupt("a token names no principal".into()))?;
            Ok(Some((token, principal)))
        })
        .await
    }

    async fn tokens(&self, principal_id: &str) -> StoreResult<Vec<TokenRow>> {
        let principal_id = principal_id.to_owned();
        self.read(move |_, conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE principal_id = ?1
                     ORDER BY created_us DESC, id"
                ))
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([principal_id], token_row)
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row.map_err(unavailable)??);
            }
            Ok(out)
        })
        .await
    }

    async fn revoke_token(&self, id: &str, at_micros: i64) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |_, conn| {
            let n = conn
                .execute(
                    "UPDATE tokens SET revoked_us = ?2 WHERE id = ?1 AND revoked_us IS NULL",
                    params![id, at_micros],
                )
                .map_err(unavailable)?;
            Ok(n == 1)
        })
        .await
    }
}
