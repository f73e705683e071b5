//! The PostgreSQL backend, for deployments that outgrow one embedded file: several custody
//! servers on one database, with its replicas and backups.
//!
//! Durability: a batch is one transaction, acknowledged after PostgreSQL's commit (with the
//! server's `synchronous_commit`, on by default: the WAL is flushed).
//!
//! Several writers: every custody server may run a sequencer for the same log. A batch's
//! transaction first locks the log's row (`SELECT .. FOR UPDATE`), so the commits of one log
//! are serialised across servers, and then checks that the batch starts at the stored size:
//! a sequencer whose view is stale is fenced off with `Conflict` before it writes anything,
//! reloads and retries. Two checkpoints of one log can therefore never disagree.
//!
//! Tenant isolation is enforced twice: by custody's checks, and by row-level security in the
//! database (migration 0002). Each transaction names the one tenant it may touch; the few
//! operations that span tenants (listing and creating tenants, authenticating a token) run in
//! an explicit server scope. custody refuses to run as a role that bypasses row-level security.
//!
//! Errors never carry PostgreSQL's text to callers: it is logged, and the caller gets a
//! classified [`StoreError`] with custody's own message.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use custody_core::envelope::{LogName, TenantName};
use custody_core::merkle::{Hash, Subtree};
use custody_store::{
    AccessChange, AppendBatch, AuthStore, EntryFilter, ExistingEntry, LedgerReader, LedgerWriter,
    LockGuard, LogKey, LogRecord, PayloadHolder, PrincipalRow, StoreError, StoreResult,
    StoredCheckpoint, StoredEntry, StoredPayload, TokenRow,
};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Transaction};
use sha2::{Digest, Sha256};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

mod tls;
use tls::TlsOptions;

/// Schema migrations, applied in order and never edited once released: each one's SHA-256 is
/// recorded when applied and checked on every start.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_ledger.sql")),
    (2, include_str!("../migrations/0002_row_security.sql")),
    (3, include_str!("../migrations/0003_tenant_tokens.sql")),
];

/// Key of the advisory lock that serialises migrations when several servers start at once.
const MIGRATION_LOCK: i64 = 0x6375_7374_6f64_7901;

/// Seed of the hash that turns a lock name into an advisory lock key.
const LOCK_SEED: i64 = 0x6375_7374;

/// How a [`PostgresStore`] connects.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections in the pool.
    pub max_connections: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
        }
    }
}

/// The PostgreSQL ledger store. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Tenant name -> id; ids never change and tenants are never deleted.
    tenant_ids: RwLock<HashMap<TenantName, i32>>,
    /// Log -> (tenant id, log id).
    log_ids: RwLock<HashMap<LogKey, (i32, i32)>>,
}

/// How a transaction ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// It wrote: commit.
    Commit,
    /// It only read: roll back.
    Discard,
}

/// Which rows a transaction may see.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// Every tenant's: only for operations that span tenants.
    Server,
    /// One tenant's.
    Tenant { id: i32, name: &'a str },
    /// One tenant's principals only (a principal may name a tenant before its logs exist).
    Principals { tenant: &'a str },
}

/// Classifies a database error; its text goes to the log, never to the caller.
fn db(e: tokio_postgres::Error) -> StoreError {
    if let Some(code) = e.code() {
        if *code == SqlState::UNIQUE_VIOLATION {
            return StoreError::Conflict("already exists".into());
        }
        if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
            tracing::error!(error = %e, "PostgreSQL reports damaged data");
            return StoreError::Corrupt("the database reports damaged data".into());
        }
    }
    tracing::warn!(error = %e, "PostgreSQL call failed");
    StoreError::Unavailable("the database is unavailable".into())
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db(e),
        other => {
            tracing::warn!(error = %other, "no PostgreSQL connection");
            StoreError::Unavailable("the database is unavailable".into())
        }
    }
}

fn to_i64(i: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(i).map_err(|_| StoreError::NotFound(format!("{what} {i} is out of range")))
}

/// Indexes beyond i64 cannot exist, so clamping keeps a range query's meaning.
fn clamp(i: u64) -> i64 {
    i.min(i64::MAX as u64) as i64
}

fn hash_from(bytes: &[u8], what: &str) -> StoreResult<Hash> {
    Hash::from_slice(bytes).map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

fn array32(bytes: Vec<u8>, what: &str) -> StoreResult<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> StoreResult<T> {
    row.try_get(i).map_err(db)
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`), applies pending
    /// migrations and checks that the role is bound by row-level security. See
    /// [`PostgresStore::connect_with`] for TLS.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// [`PostgresStore::connect`] with explicit options.
    ///
    /// TLS follows libpq's URL parameters, since managed PostgreSQL services document those:
    /// `sslmode` is `disable`, `prefer` (the default: TLS when the server offers it),
    /// `require` (TLS, certificate unchecked), `verify-ca` (the certificate chains to
    /// `sslrootcert`) or `verify-full` (and names the host in the URL), and `sslrootcert` is
    /// a PEM file of CA certificates, or `system` for the platform's (which implies
    /// `verify-full`). As in libpq, `prefer` and `require` check the chain when given
    /// `sslrootcert`. For example
    /// `postgres://custody:PASSWORD@db.internal:5432/custody?sslmode=verify-full&sslrootcert=/etc/custody/db-ca.pem`.
    /// `sslmode=allow` and the other `ssl*` parameters (client certificates: `sslcert`,
    /// `sslkey`), except tokio-postgres's `sslnegotiation`, are refused by name; the rest go
    /// to tokio-postgres as they are. Failures are `Unavailable`, with a
    /// reason that names what failed (a certificate that does not match the host, an unknown
    /// CA, a server without TLS) and never the password.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> StoreResult<Self> {
        let (url, tls) = TlsOptions::from_url(url)?;
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|_| {
            StoreError::Unavailable(
                "the database URL is not a PostgreSQL connection string (postgres://user:password@host:port/database)".into(),
            )
        })?;
        config.ssl_mode(tls.postgres_mode());
        let hosts = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect::<Vec<_>>()
            .join(",");
        let user = config.get_user().unwrap_or_default().to_owned();
        let manager = Manager::from_config(
            config,
            tls.connector()?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(30)))
            .create_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build a connection pool: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                tenant_ids: RwLock::new(HashMap::new()),
                log_ids: RwLock::new(HashMap::new()),
            }),
        };
        let mut conn = match store.inner.pool.get().await {
            Ok(conn) => conn,
            Err(deadpool_postgres::PoolError::Backend(e)) => {
                return Err(match tls.explain(&e, &hosts, &user) {
                    Some(reason) => {
                        tracing::debug!(error = %e, "cannot connect to PostgreSQL");
                        StoreError::Unavailable(reason)
                    }
                    None => db(e),
                });
            }
            Err(e) => return Err(pool_error(e)),
        };
        check_role(&conn).await?;
        migrate(&mut conn).await?;
        Ok(store)
    }

    async fn conn(&self) -> StoreResult<Object> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    /// Runs `f` in one transaction confined to `scope`. The statement that sets the scope is
    /// pipelined with `f`'s first statement (one round trip for both, and executed in that
    /// order). `Finish::Commit` commits; `Finish::Discard` (reads) drops the transaction, whose
    /// rollback then travels ahead of the connection's next use without a wait.
    async fn run<T>(
        &self,
        scope: Scope<'_>,
        finish: Finish,
        f: impl AsyncFnOnce(&Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let set = match scope {
            Scope::Server => "SET LOCAL custody.scope = 'server'".to_owned(),
            // Tenant names are validated to [a-z0-9-], so the literal needs no escaping; the
            // quote doubling is a second guard.
            Scope::Tenant { id, name } => format!(
                "SET LOCAL custody.tenant_id = '{id}'; SET LOCAL custody.tenant = '{}'",
                name.replace('\'', "''")
            ),
            Scope::Principals { tenant } => format!(
                "SET LOCAL custody.tenant = '{}'",
                tenant.replace('\'', "''")
            ),
        };
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(db)?;
        let (scoped, out) = tokio::join!(tx.batch_execute(&set), f(&tx));
        scoped.map_err(db)?;
        let out = out?;
        if finish == Finish::Commit {
            tx.commit().await.map_err(db)?;
        }
        Ok(out)
    }

    async fn tenant_id(&self, tenant: &TenantName) -> StoreResult<i32> {
        if let Some(id) = self
            .inner
            .tenant_ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            return Ok(*id);
        }
        let row = self
            .run(Scope::Server, Finish::Discard, async |tx| {
                cached_query_opt(
                    tx,
                    "SELECT id FROM tenants WHERE name = $1",
                    &[&tenant.as_str()],
                )
                .await
                .map_err(db)
            })
            .await?;
        let id: i32 = match row {
            Some(r) => get(&r, 0)?,
            None => return Err(StoreError::NotFound(format!("tenant {tenant}"))),
        };
        self.inner
            .tenant_ids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.clone(), id);
        Ok(id)
    }

    /// The tenant and log ids of a log.
    async fn log_id(&self, key: &LogKey) -> StoreResult<(i32, i32)> {
        if let Some(ids) = self
            .inner
            .log_ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return Ok(*ids);
        }
        let tenant_id = self.tenant_id(&key.tenant).await?;
        let scope = Scope::Tenant {
            id: tenant_id,
            name: key.tenant.as_str(),
        };
        let row = self
            .run(scope, Finish::Discard, async |tx| {
                cached_query_opt(
                    tx,
                    "SELECT id FROM logs WHERE tenant_id = $1 AND name = $2",
                    &[&tenant_id, &key.log.as_str()],
                )
                .await
                .map_err(db)
            })
            .await?;
        let log_id: i32 = match row {
            Some(r) => get(&r, 0)?,
            None => {
                return Err(StoreError::NotFound(format!(
                    "log {}/{}",
                    key.tenant,
                    key.log.as_str()
                )));
            }
        };
        self.inner
            .log_ids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), (tenant_id, log_id));
        Ok((tenant_id, log_id))
    }

    /// Runs `f` on one log in a transaction scoped to its tenant: `f` gets the transaction
    /// and the log id.
    async fn on_log<T>(
        &self,
        key: &LogKey,
        finish: Finish,
        f: impl AsyncFnOnce(&Transaction<'_>, i32) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let (tenant_id, log_id) = self.log_id(key).await?;
        let scope = Scope::Tenant {
            id: tenant_id,
            name: key.tenant.as_str(),
        };
        self.run(scope, finish, async |tx| f(tx, log_id).await)
            .await
    }

    /// A tenant-scoped read of one log.
    async fn read_log<T>(
        &self,
        key: &LogKey,
        f: impl AsyncFnOnce(&Transaction<'_>, i32) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.on_log(key, Finish::Discard, f).await
    }

    /// A session advisory lock on a name, held by a pooled connection until released.
    async fn advisory_lock(&self, name: &str) -> StoreResult<AdvisoryLock> {
        let conn = self.conn().await?;
        let key: i64 = get(
            &conn
                .query_one(
                    "SELECT k, pg_advisory_lock(k) FROM (SELECT hashtextextended($1, $2) AS k) q",
                    &[&name, &LOCK_SEED],
                )
                .await
                .map_err(db)?,
            0,
        )?;
        Ok(AdvisoryLock {
            conn: Some(conn),
            key,
        })
    }
}

/// A held advisory lock; released when dropped, or when its connection ends if the process
/// dies.
struct AdvisoryLock {
    conn: Option<Object>,
    key: i64,
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let key = self.key;
        // Unlocking needs a round trip; until it is done the connection is not returned to
        // the pool. Without a runtime the connection closes, which also unlocks.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let unlocked = conn
                    .query_one("SELECT pg_advisory_unlock($1)", &[&key])
                    .await
                    .is_ok_and(|r| r.try_get::<_, bool>(0).unwrap_or(false));
                if !unlocked {
                    // A connection that may still hold the lock must not be reused.
                    let _ = Object::take(conn);
                }
            });
        }
    }
}

/// Statements are prepared once per connection and reused: a query then costs one round trip.
async fn cached_query(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.query(&stmt, params).await
}

async fn cached_query_opt(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, tokio_postgres::Error> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.query_opt(&stmt, params).await
}

async fn cached_query_one(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row, tokio_postgres::Error> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.query_one(&stmt, params).await
}

async fn cached_execute(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, tokio_postgres::Error> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.execute(&stmt, params).await
}

/// Refuses roles for which row-level security would be a no-op.
async fn check_role(conn: &Object) -> StoreResult<()> {
    let row = conn
        .query_one(
            "SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(db)?;
    let (user, superuser, bypass): (String, bool, bool) =
        (get(&row, 0)?, get(&row, 1)?, get(&row, 2)?);
    if superuser || bypass {
        return Err(StoreError::Unavailable(format!(
            "the database role {user:?} bypasses row-level security ({}); connect as a role without it, e.g. CREATE ROLE custody LOGIN PASSWORD '...'; CREATE DATABASE custody OWNER custody",
            if superuser { "superuser" } else { "BYPASSRLS" }
        )));
    }
    Ok(())
}

async fn migrate(conn: &mut Object) -> StoreResult<()> {
    let tx = conn.transaction().await.map_err(db)?;
    cached_execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, checksum text NOT NULL)",
    )
    .await
    .map_err(db)?;
    let newest: Option<i32> = get(
        &cached_query_one(&tx, "SELECT max(version) FROM schema_migrations", &[])
            .await
            .map_err(db)?,
        0,
    )?;
    let known = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if let Some(v) = newest.filter(|v| *v > known) {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {v}, newer than this custody knows ({known}): run a newer custody"
        )));
    }
    for (version, sql) in MIGRATIONS {
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        let applied = cached_query_opt(
            &tx,
            "SELECT checksum FROM schema_migrations WHERE version = $1",
            &[version],
        )
        .await
        .map_err(db)?;
        match applied {
            Some(row) if get::<String>(&row, 0)? == checksum => {}
            Some(_) => {
                return Err(StoreError::Corrupt(format!(
                    "migration {version} differs from the one applied to this database"
                )));
            }
            None => {
                tx.batch_execute(sql).await.map_err(db)?;
                cached_execute(
                    &tx,
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    &[version, &checksum],
                )
                .await
                .map_err(db)?;
            }
        }
    }
    tx.commit().await.map_err(db)
}

fn checkpoint_row(r: &Row) -> StoreResult<StoredCheckpoint> {
    let size: i64 = get(r, 0)?;
    let root: Vec<u8> = get(r, 1)?;
    Ok(StoredCheckpoint {
        size: size as u64,
        root: hash_from(&root, "checkpoint root")?,
        note: get(r, 2)?,
    })
}

const ENTRY_COLUMNS: &str = "e.idx, e.id, e.leaf_hash, e.envelope, p.salt, p.payload";

fn entry_row(r: &Row) -> StoreResult<StoredEntry> {
    let idx: i64 = get(r, 0)?;
    let leaf: Vec<u8> = get(r, 2)?;
    let salt: Option<Vec<u8>> = get(r, 4)?;
    let payload: Option<Vec<u8>> = get(r, 5)?;
    let payload = match (salt, payload) {
        (Some(salt), Some(json)) => Some(StoredPayload {
            json,
            salt: array32(salt, "payload salt")?,
        }),
        _ => None,
    };
    Ok(StoredEntry {
        index: idx as u64,
        id: get(r, 1)?,
        leaf_hash: hash_from(&leaf, "leaf hash")?,
        envelope: get(r, 3)?,
        payload,
    })
}

async fn latest_checkpoint(tx: &Transaction<'_>, log_id: i32) -> StoreResult<StoredCheckpoint> {
    let row = cached_query_opt(
        tx,
        "SELECT size, root, note FROM checkpoints WHERE log_id = $1 ORDER BY size DESC LIMIT 1",
        &[&log_id],
    )
    .await
    .map_err(db)?
    .ok_or_else(|| StoreError::Corrupt("log has no checkpoint".into()))?;
    checkpoint_row(&row)
}

impl LedgerReader for PostgresStore {
    async fn tenants(&self) -> StoreResult<Vec<TenantName>> {
        let rows = self
            .run(Scope::Server, Finish::Discard, async |tx| {
                cached_query(tx, "SELECT name FROM tenants ORDER BY name", &[])
                    .await
                    .map_err(db)
            })
            .await?;
        rows.iter()
            .map(|r| {
                TenantName::parse(&get::<String>(r, 0)?)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    async fn logs(&self, tenant: &TenantName) -> StoreResult<Vec<LogRecord>> {
        let tenant_id = self.tenant_id(tenant).await?;
        let scope = Scope::Tenant {
            id: tenant_id,
            name: tenant.as_str(),
        };
        let rows = self
            .run(scope, Finish::Discard, async |tx| {
                cached_query(
                    tx,
                    "SELECT name, origin, verifier_key FROM logs WHERE tenant_id = $1 ORDER BY id",
                    &[&tenant_id],
                )
                .await
                .map_err(db)
            })
            .await?;
        let logs = rows
            .iter()
            .map(|r| {
                let log = LogName::parse(&get::<String>(r, 0)?)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(LogRecord {
                    key: LogKey {
                        tenant: tenant.clone(),
                        log,
                    },
                    origin: get(r, 1)?,
                    verifier_key: get(r, 2)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        if logs.is_empty() {
            return Err(StoreError::NotFound(format!("tenant {tenant}")));
        }
        Ok(logs)
    }

    async fn latest_checkpoint(&self, key: &LogKey) -> StoreResult<StoredCheckpoint> {
        self.read_log(key, async |tx, log_id| latest_checkpoint(tx, log_id).await)
            .await
    }

    async fn checkpoint_at(
        &self,
        key: &LogKey,
        size: u64,
    ) -> StoreResult<Option<StoredCheckpoint>> {
        let Ok(size) = i64::try_from(size) else {
            self.log_id(key).await?;
            return Ok(None);
        };
        self.read_log(key, async |tx, log_id| {
            cached_query_opt(
                tx,
                "SELECT size, root, note FROM checkpoints WHERE log_id = $1 AND size = $2",
                &[&log_id, &size],
            )
            .await
            .map_err(db)?
            .as_ref()
            .map(checkpoint_row)
            .transpose()
        })
        .await
    }

    async fn nodes(&self, key: &LogKey, subtrees: &[Subtree]) -> StoreResult<Vec<Option<Hash>>> {
        // Subtrees beyond i64 cannot be stored; asking for them answers None.
        let levels: Vec<i16> = subtrees.iter().map(|s| i16::from(s.level)).collect();
        let indexes: Vec<i64> = subtrees.iter().map(|s| clamp(s.index)).collect();
        let rows = self
            .read_log(key, async |tx, log_id| {
                cached_query(
                    tx,
                    "SELECT q.ord, n.hash FROM unnest($2::smallint[], $3::bigint[])
                         WITH ORDINALITY AS q(level, idx, ord)
                     JOIN nodes n ON n.log_id = $1 AND n.level = q.level AND n.idx = q.idx",
                    &[&log_id, &levels, &indexes],
                )
                .await
                .map_err(db)
            })
            .await?;
        let mut out = vec![None; subtrees.len()];
        for r in &rows {
            let ord: i64 = get(r, 0)?;
            let i = (ord - 1) as usize;
            if subtrees.get(i).is_some_and(|s| s.index <= i64::MAX as u64) {
                out[i] = Some(hash_from(&get::<Vec<u8>>(r, 1)?, "tree node")?);
            }
        }
        Ok(out)
    }

    async fn entry(&self, key: &LogKey, index: u64) -> StoreResult<Option<StoredEntry>> {
        Ok(self
            .entry_range(key, index, index.saturating_add(1))
            .await?
            .pop())
    }

    async fn entry_range(&self, key: &LogKey, from: u64, to: u64) -> StoreResult<Vec<StoredEntry>> {
        let (from, to) = (clamp(from.min(to)), clamp(to));
        self.read_log(key, async |tx, log_id| {
            let rows = cached_query(
                tx,
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM entries e
                         LEFT JOIN payloads p ON p.log_id = e.log_id AND p.idx = e.idx
                         WHERE e.log_id = $1 AND e.idx >= $2 AND e.idx < $3 ORDER BY e.idx"
                ),
                &[&log_id, &from, &to],
            )
            .await
            .map_err(db)?;
            rows.iter().map(entry_row).collect()
        })
        .await
    }

    async fn find_entries(
        &self,
        key: &LogKey,
        filter: &EntryFilter,
    ) -> StoreResult<Vec<StoredEntry>> {
        let f = filter.clone();
        let from = clamp(f.from_index);
        let below = clamp(f.below_index);
        let limit = i64::from(f.limit);
        self.read_log(key, async |tx, log_id| {
            let mut args: Vec<&(dyn ToSql + Sync)> = vec![&log_id, &from, &below];
            let mut sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM entries e
                 LEFT JOIN payloads p ON p.log_id = e.log_id AND p.idx = e.idx
                 WHERE e.log_id = $1 AND e.idx >= $2 AND e.idx < $3"
            );
            // Each clause's `?` becomes the number of the parameter pushed with it.
            macro_rules! add {
                ($clause:expr, $v:expr $(,)?) => {{
                    args.push($v);
                    sql.push_str(&$clause.replace('?', &format!("${}", args.len())));
                }};
            }
            if let Some(t) = &f.entry_type {
                add!(" AND e.entry_type = ?", t);
            }
            if let Some(a) = &f.actor_id {
                add!(" AND e.actor_id = ?", a);
            }
            if let Some(s) = &f.subject_id {
                add!(" AND e.subject_id = ?", s);
            }
            if let Some(s) = &f.since_micros {
                add!(" AND e.time_us >= ?", s);
            }
            if let Some(u) = &f.until_micros {
                add!(" AND e.time_us < ?", u);
            }
            if let Some(r) = &f.related_id {
                // An entry that links the same id twice is one result.
                add!(
                    " AND EXISTS (SELECT 1 FROM related r WHERE r.log_id = $1 AND r.idx = e.idx AND r.id = ?)",
                    r,
                );
            }
            add!(" ORDER BY e.idx LIMIT ?", &limit);
            let rows = cached_query(tx, &sql, &args).await.map_err(db)?;
            rows.iter().map(entry_row).collect()
        })
        .await
    }

    async fn existing_ids(&self, key: &LogKey, ids: &[Uuid]) -> StoreResult<Vec<ExistingEntry>> {
        let ids = ids.to_vec();
        let rows = self
            .read_log(key, async |tx, log_id| {
                cached_query(
                    tx,
                    "SELECT id, idx, leaf_hash, content_digest FROM entries
                     WHERE log_id = $1 AND id = ANY($2)",
                    &[&log_id, &ids],
                )
                .await
                .map_err(db)
            })
            .await?;
        let mut found = rows
            .iter()
            .map(|r| {
                Ok(ExistingEntry {
                    id: get(r, 0)?,
                    index: get::<i64>(r, 1)? as u64,
                    leaf_hash: hash_from(&get::<Vec<u8>>(r, 2)?, "leaf hash")?,
                    content_digest: array32(get(r, 3)?, "content digest")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        // In the order asked, as the embedded backend answers.
        let order: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        found.sort_by_key(|e| order.get(&e.id).copied().unwrap_or(usize::MAX));
        Ok(found)
    }

    async fn payloads(
        &self,
        key: &LogKey,
        from: u64,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<PayloadHolder>> {
        let from = to_i64(from, "index")?;
        let before = before.unwrap_or(i64::MAX);
        let limit = i64::from(limit);
        self.read_log(key, async |tx, log_id| {
            let rows = cached_query(
                tx,
                "SELECT p.idx, e.id, e.entry_type, e.time_us, p.salt, p.payload
                     FROM payloads p JOIN entries e ON e.log_id = p.log_id AND e.idx = p.idx
                     WHERE p.log_id = $1 AND p.idx >= $2 AND e.time_us < $3
                     ORDER BY p.idx LIMIT $4",
                &[&log_id, &from, &before, &limit],
            )
            .await
            .map_err(db)?;
            rows.iter()
                .map(|r| {
                    Ok(PayloadHolder {
                        index: get::<i64>(r, 0)? as u64,
                        id: get(r, 1)?,
                        entry_type: get(r, 2)?,
                        time_micros: get(r, 3)?,
                        payload: StoredPayload {
                            salt: array32(get(r, 4)?, "payload salt")?,
                            json: get(r, 5)?,
                        },
                    })
                })
                .collect()
        })
        .await
    }

    async fn checkpoints(
        &self,
        key: &LogKey,
        from_size: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredCheckpoint>> {
        let from = to_i64(from_size, "size")?;
        let limit = i64::from(limit);
        self.read_log(key, async |tx, log_id| {
            let rows = cached_query(
                tx,
                "SELECT size, root, note FROM checkpoints WHERE log_id = $1 AND size >= $2
                     ORDER BY size LIMIT $3",
                &[&log_id, &from, &limit],
            )
            .await
            .map_err(db)?;
            rows.iter().map(checkpoint_row).collect()
        })
        .await
    }
}

impl LedgerWriter for PostgresStore {
    async fn create_tenant(
        &self,
        tenant: &TenantName,
        logs: Vec<(LogRecord, StoredCheckpoint)>,
    ) -> StoreResult<()> {
        self.run(Scope::Server, Finish::Commit, async |tx| {
            let row = match cached_query_one(
                tx,
                "INSERT INTO tenants (name) VALUES ($1) RETURNING id",
                &[&tenant.as_str()],
            )
            .await
            {
                Ok(row) => row,
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Err(StoreError::Conflict(format!(
                        "tenant {tenant} already exists"
                    )));
                }
                Err(e) => return Err(db(e)),
            };
            let tenant_id: i32 = get(&row, 0)?;
            for (log, cp) in logs {
                let row = cached_query_one(
                    tx,
                    "INSERT INTO logs (tenant_id, name, origin, verifier_key)
                     VALUES ($1, $2, $3, $4) RETURNING id",
                    &[
                        &tenant_id,
                        &log.key.log.as_str(),
                        &log.origin,
                        &log.verifier_key,
                    ],
                )
                .await
                .map_err(|e| match db(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict(format!("origin {} is in use", log.origin))
                    }
                    other => other,
                })?;
                let log_id: i32 = get(&row, 0)?;
                cached_execute(
                    tx,
                    "INSERT INTO checkpoints (tenant_id, log_id, size, root, note)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &tenant_id,
                        &log_id,
                        &to_i64(cp.size, "size")?,
                        &cp.root.as_bytes().as_slice(),
                        &cp.note,
                    ],
                )
                .await
                .map_err(db)?;
            }
            Ok(())
        })
        .await
    }

    async fn append_batch(&self, batch: AppendBatch) -> StoreResult<()> {
        let (tenant_id, _) = self.log_id(&batch.key).await?;
        let n = batch.entries.len();
        let mut idx = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        let mut leaves: Vec<&[u8]> = Vec::with_capacity(n);
        let mut envelopes: Vec<&[u8]> = Vec::with_capacity(n);
        let mut digests: Vec<&[u8]> = Vec::with_capacity(n);
        let mut types: Vec<&str> = Vec::with_capacity(n);
        let mut actors: Vec<&str> = Vec::with_capacity(n);
        let mut kinds: Vec<&str> = Vec::with_capacity(n);
        let mut subjects: Vec<&str> = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        let (mut r_idx, mut r_kind, mut r_id, mut r_rel) = (vec![], vec![], vec![], vec![]);
        let (mut p_idx, mut p_salt, mut p_json): (Vec<i64>, Vec<&[u8]>, Vec<&[u8]>) =
            (vec![], vec![], vec![]);
        // Out-of-range positions are clamped here and refused by the size check below, before
        // anything is written.
        for e in &batch.entries {
            let i = clamp(e.index);
            idx.push(i);
            ids.push(e.id);
            leaves.push(e.leaf_hash.as_bytes().as_slice());
            envelopes.push(&e.envelope);
            digests.push(e.content_digest.as_slice());
            types.push(&e.fields.entry_type);
            actors.push(&e.fields.actor_id);
            kinds.push(&e.fields.subject_kind);
            subjects.push(&e.fields.subject_id);
            times.push(e.fields.time_micros);
            for (kind, id, rel) in &e.fields.related {
                r_idx.push(i);
                r_kind.push(kind.as_str());
                r_id.push(id.as_str());
                r_rel.push(rel.as_str());
            }
            if let Some(p) = &e.payload {
                p_idx.push(i);
                p_salt.push(p.salt.as_slice());
                p_json.push(&p.json);
            }
        }
        let levels: Vec<i16> = batch
            .nodes
            .iter()
            .map(|(s, _)| i16::from(s.level))
            .collect();
        let node_idx: Vec<i64> = batch.nodes.iter().map(|(s, _)| clamp(s.index)).collect();
        let hashes: Vec<&[u8]> = batch
            .nodes
            .iter()
            .map(|(_, h)| h.as_bytes().as_slice())
            .collect();
        let cp = &batch.checkpoint;
        let cp_size = clamp(cp.size);
        let cp_root = cp.root.as_bytes().as_slice();

        self.on_log(&batch.key, Finish::Commit, async |tx, log_id| {
            // Prepared first (once per connection), so that the statements below go out in
            // this order in one round trip.
            let (s_lock, s_latest, s_entries, s_related, s_payloads, s_nodes, s_checkpoint) =
                tokio::try_join!(
                    tx.prepare_cached("SELECT 1 FROM logs WHERE id = $1 FOR UPDATE"),
                    tx.prepare_cached(
                        "SELECT size FROM checkpoints WHERE log_id = $1 ORDER BY size DESC LIMIT 1"
                    ),
                    tx.prepare_cached(
                        "INSERT INTO entries (tenant_id, log_id, idx, id, leaf_hash, envelope,
                             content_digest, entry_type, actor_id, subject_kind, subject_id, time_us)
                         SELECT $1, $2, * FROM unnest($3::bigint[], $4::uuid[], $5::bytea[],
                             $6::bytea[], $7::bytea[], $8::text[], $9::text[], $10::text[],
                             $11::text[], $12::bigint[])"
                    ),
                    tx.prepare_cached(
                        "INSERT INTO related (tenant_id, log_id, idx, kind, id, rel)
                         SELECT $1, $2, * FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[])"
                    ),
                    tx.prepare_cached(
                        "INSERT INTO payloads (tenant_id, log_id, idx, salt, payload)
                         SELECT $1, $2, * FROM unnest($3::bigint[], $4::bytea[], $5::bytea[])"
                    ),
                    tx.prepare_cached(
                        "INSERT INTO nodes (tenant_id, log_id, level, idx, hash)
                         SELECT $1, $2, * FROM unnest($3::smallint[], $4::bigint[], $5::bytea[])"
                    ),
                    tx.prepare_cached(
                        "INSERT INTO checkpoints (tenant_id, log_id, size, root, note)
                         VALUES ($1, $2, $3, $4, $5)"
                    ),
                )
                .map_err(db)?;
            let entry_params: [&(dyn ToSql + Sync); 12] = [
                &tenant_id, &log_id, &idx, &ids, &leaves, &envelopes, &digests, &types, &actors,
                &kinds, &subjects, &times,
            ];
            let related_params: [&(dyn ToSql + Sync); 6] =
                [&tenant_id, &log_id, &r_idx, &r_kind, &r_id, &r_rel];
            let payload_params: [&(dyn ToSql + Sync); 5] =
                [&tenant_id, &log_id, &p_idx, &p_salt, &p_json];
            let node_params: [&(dyn ToSql + Sync); 5] =
                [&tenant_id, &log_id, &levels, &node_idx, &hashes];
            let checkpoint_params: [&(dyn ToSql + Sync); 5] =
                [&tenant_id, &log_id, &cp_size, &cp_root, &cp.note];
            // The row lock makes this transaction the log's only writer until it ends; the
            // size is read once it is granted, and the inserts follow. A batch that does not
            // start at that size is refused and the transaction rolled back, whatever the
            // inserts did.
            let log_param: [&(dyn ToSql + Sync); 1] = [&log_id];
            let (locked, latest, entries, related, payloads, nodes, checkpoint) = tokio::join!(
                tx.execute(&s_lock, &log_param),
                tx.query_opt(&s_latest, &log_param),
                tx.execute(&s_entries, &entry_params),
                async {
                    if r_idx.is_empty() {
                        return Ok(0);
                    }
                    tx.execute(&s_related, &related_params).await
                },
                async {
                    if p_idx.is_empty() {
                        return Ok(0);
                    }
                    tx.execute(&s_payloads, &payload_params).await
                },
                tx.execute(&s_nodes, &node_params),
                tx.execute(&s_checkpoint, &checkpoint_params),
            );
            locked.map_err(db)?;
            let stored: i64 = match latest.map_err(db)? {
                Some(row) => get(&row, 0)?,
                None => return Err(StoreError::Corrupt("log has no checkpoint".into())),
            };
            batch.check_extends(stored as u64)?;
            batch.check_access()?;
            let aborted = |r: &Result<u64, tokio_postgres::Error>| {
                matches!(r, Err(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION))
            };
            let outcomes = [
                (entries, Some("an entry id in the batch already exists")),
                (related, None),
                (payloads, None),
                (nodes, Some("a tree node of the batch is already stored")),
                (checkpoint, None),
            ];
            let first = outcomes
                .iter()
                .position(|(r, _)| r.is_err() && !aborted(r))
                .or_else(|| outcomes.iter().position(|(r, _)| r.is_err()));
            if let Some(i) = first {
                let (result, duplicate) = outcomes.into_iter().nth(i).expect("position exists");
                let Err(e) = result else {
                    unreachable!("position found an error")
                };
                return Err(match (db(e), duplicate) {
                    (StoreError::Conflict(_), Some(m)) if i == 0 => StoreError::Conflict(m.into()),
                    (StoreError::Conflict(_), Some(m)) => StoreError::Corrupt(m.into()),
                    (other, _) => other,
                });
            }
            for change in &batch.access {
                apply_access_change(tx, batch.key.tenant.as_str(), change).await?;
            }
            Ok(())
        })
        .await
    }

    async fn erase_payload(&self, key: &LogKey, index: u64) -> StoreResult<bool> {
        let idx = to_i64(index, "index")?;
        self.on_log(key, Finish::Commit, async |tx, log_id| {
            let n = cached_execute(
                tx,
                "DELETE FROM payloads WHERE log_id = $1 AND idx = $2",
                &[&log_id, &idx],
            )
            .await
            .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }

    async fn compact(&self) -> StoreResult<()> {
        // VACUUM FULL rewrites the table into a new file with live rows only; the old file is
        // unlinked. WAL segments and base backups keep erased bytes until they expire.
        let conn = self.conn().await?;
        conn.batch_execute("VACUUM FULL payloads").await.map_err(db)
    }

    fn shared(&self) -> bool {
        true
    }

    async fn lock(&self, name: &str) -> StoreResult<LockGuard> {
        Ok(LockGuard::new(self.advisory_lock(name).await?))
    }

    async fn sequencer_turn(&self, key: &LogKey) -> StoreResult<(LockGuard, u64)> {
        let (tenant_id, log_id) = self.log_id(key).await?;
        let conn = self.conn().await?;
        let (lock, size) = tokio::try_join!(
            conn.prepare_cached(
                "SELECT k, pg_advisory_lock(k) FROM (SELECT hashtextextended($1, $2) AS k) q",
            ),
            conn.prepare_cached(
                "SELECT size FROM checkpoints WHERE log_id = $1 ORDER BY size DESC LIMIT 1",
            ),
        )
        .map_err(db)?;
        // One round trip: the lock, then (a statement that starts once it is granted) the
        // stored size, read in a transaction scoped to the log's tenant.
        let name = custody_store::sequencer_lock_name(key);
        let scope = format!(
            "BEGIN; SET LOCAL custody.tenant_id = '{tenant_id}'; SET LOCAL custody.tenant = '{}'",
            key.tenant.as_str().replace('\'', "''")
        );
        let lock_params: [&(dyn ToSql + Sync); 2] = [&name, &LOCK_SEED];
        let size_params: [&(dyn ToSql + Sync); 1] = [&log_id];
        let (locked, begun, stored, ended) = tokio::join!(
            conn.query_one(&lock, &lock_params),
            conn.batch_execute(&scope),
            conn.query_opt(&size, &size_params),
            conn.batch_execute("COMMIT"),
        );
        let outcome = (|| {
            let key: i64 = get(&locked.map_err(db)?, 0)?;
            begun.map_err(db)?;
            let size: i64 = match stored.map_err(db)? {
                Some(row) => get(&row, 0)?,
                None => return Err(StoreError::Corrupt("log has no checkpoint".into())),
            };
            ended.map_err(db)?;
            Ok((key, size))
        })();
        match outcome {
            Ok((key, size)) => Ok((
                LockGuard::new(AdvisoryLock {
                    conn: Some(conn),
                    key,
                }),
                size as u64,
            )),
            Err(e) => {
                // The connection may hold the lock or an open transaction: close it.
                let _ = Object::take(conn);
                Err(e)
            }
        }
    }

    async fn set_verifier_key(&self, key: &LogKey, verifier_key: &str) -> StoreResult<()> {
        let vkey = verifier_key.to_owned();
        self.on_log(key, Finish::Commit, async |tx, log_id| {
            cached_execute(
                tx,
                "UPDATE logs SET verifier_key = $2 WHERE id = $1",
                &[&log_id, &vkey],
            )
            .await
            .map_err(db)?;
            Ok(())
        })
        .await
    }
}

const PRINCIPAL_COLUMNS: &str = "id, tenant, kind, name, roles, created_us";
const TOKEN_COLUMNS: &str = "id, principal_id, secret_hash, created_us, expires_us, revoked_us";

fn principal_row(r: &Row) -> StoreResult<PrincipalRow> {
    Ok(PrincipalRow {
        id: get(r, 0)?,
        tenant: get(r, 1)?,
        kind: get(r, 2)?,
        name: get(r, 3)?,
        roles: get(r, 4)?,
        created_micros: get(r, 5)?,
    })
}

fn token_row(r: &Row) -> StoreResult<TokenRow> {
    Ok(TokenRow {
        id: get(r, 0)?,
        principal_id: get(r, 1)?,
        secret_hash: array32(get(r, 2)?, "token hash")?,
        created_micros: get(r, 3)?,
        expires_micros: get(r, 4)?,
        revoked_micros: get(r, 5)?,
    })
}

async fn insert_principal(tx: &Transaction<'_>, p: &PrincipalRow) -> StoreResult<()> {
    cached_execute(
        tx,
        "INSERT INTO principals (id, tenant, kind, name, roles, created_us)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &p.id,
            &p.tenant,
            &p.kind,
            &p.name,
            &p.roles,
            &p.created_micros,
        ],
    )
    .await
    .map_err(|e| match db(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("principal {} exists", p.id)),
        other => other,
    })?;
    Ok(())
}

/// Applies one access change of a batch of `tenant`'s log, inside the batch's transaction
/// (tenant-scoped: row-level security admits only this tenant's principals and their tokens).
async fn apply_access_change(
    tx: &Transaction<'_>,
    tenant: &str,
    change: &AccessChange,
) -> StoreResult<()> {
    match change {
        AccessChange::AddPrincipal(p) => insert_principal(tx, p).await,
        AccessChange::AddToken(t) => {
            principal_of_tenant(tx, &t.principal_id, tenant).await?;
            insert_token(tx, t).await
        }
        AccessChange::RevokeToken { id, at_micros } => {
            let owner =
                cached_query_opt(tx, "SELECT principal_id FROM tokens WHERE id = $1", &[id])
                    .await
                    .map_err(db)?
                    .ok_or_else(|| StoreError::NotFound(format!("token {id}")))?;
            let owner: String = get(&owner, 0)?;
            principal_of_tenant(tx, &owner, tenant).await?;
            cached_execute(
                tx,
                "UPDATE tokens SET revoked_us = $2 WHERE id = $1 AND revoked_us IS NULL",
                &[id, at_micros],
            )
            .await
            .map_err(db)?;
            Ok(())
        }
    }
}

/// `NotFound` unless principal `id` belongs to `tenant`.
async fn principal_of_tenant(tx: &Transaction<'_>, id: &str, tenant: &str) -> StoreResult<()> {
    let row = cached_query_opt(tx, "SELECT tenant FROM principals WHERE id = $1", &[&id])
        .await
        .map_err(db)?;
    let owner: Option<String> = match &row {
        Some(r) => get(r, 0)?,
        None => None,
    };
    if owner.as_deref() == Some(tenant) {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!(
            "principal {id} in tenant {tenant}"
        )))
    }
}

async fn insert_token(tx: &Transaction<'_>, t: &TokenRow) -> StoreResult<()> {
    let known = cached_query_opt(
        tx,
        "SELECT 1 FROM principals WHERE id = $1",
        &[&t.principal_id],
    )
    .await
    .map_err(db)?
    .is_some();
    if !known {
        return Err(StoreError::NotFound(format!(
            "principal {}",
            t.principal_id
        )));
    }
    cached_execute(
        tx,
        "INSERT INTO tokens (id, principal_id, secret_hash, created_us, expires_us, revoked_us)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &t.id,
            &t.principal_id,
            &t.secret_hash.as_slice(),
            &t.created_micros,
            &t.expires_micros,
            &t.revoked_micros,
        ],
    )
    .await
    .map_err(|e| match db(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("token {} exists", t.id)),
        other => other,
    })?;
    Ok(())
}

impl PostgresStore {
    /// Runs `f` in a transaction of the given scope and commits it.
    async fn scoped<T>(
        &self,
        scope: Scope<'_>,
        f: impl AsyncFnOnce(&Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.run(scope, Finish::Commit, f).await
    }
}

impl AuthStore for PostgresStore {
    async fn bootstrap(&self, principal: PrincipalRow, token: TokenRow) -> StoreResult<bool> {
        self.scoped(Scope::Server, async |tx| {
            // Of several servers starting at once, the first to take this lock bootstraps.
            cached_execute(tx, "LOCK TABLE principals IN EXCLUSIVE MODE", &[])
                .await
                .map_err(db)?;
            let any = cached_query_opt(tx, "SELECT 1 FROM principals LIMIT 1", &[])
                .await
                .map_err(db)?
                .is_some();
            if any {
                return Ok(false);
            }
            insert_principal(tx, &principal).await?;
            insert_token(tx, &token).await?;
            Ok(true)
        })
        .await
    }

    async fn create_principal(&self, principal: PrincipalRow) -> StoreResult<()> {
        let scope = match &principal.tenant {
            Some(t) => Scope::Principals { tenant: t },
            None => Scope::Server,
        };
        self.scoped(scope, async |tx| insert_principal(tx, &principal).await)
            .await
    }

    async fn principal(&self, id: &str) -> StoreResult<Option<PrincipalRow>> {
        self.run(Scope::Server, Finish::Discard, async |tx| {
            cached_query_opt(
                tx,
                &format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(db)?
            .as_ref()
            .map(principal_row)
            .transpose()
        })
        .await
    }

    async fn principals(&self, tenant: Option<&str>) -> StoreResult<Vec<PrincipalRow>> {
        let rows = match tenant {
            None => {
                self.run(Scope::Server, Finish::Discard, async |tx| {
                    cached_query(tx,
                        &format!(
                            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE tenant IS NULL ORDER BY id"
                        ),
                        &[],
                    )
                    .await
                    .map_err(db)
                })
                .await?
            }
            Some(t) => {
                self.run(Scope::Principals { tenant: t }, Finish::Discard, async |tx| {
                    cached_query(tx,
                        &format!(
                            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE tenant = $1 ORDER BY id"
                        ),
                        &[&t],
                    )
                    .await
                    .map_err(db)
                })
                .await?
            }
        };
        rows.iter().map(principal_row).collect()
    }

    async fn add_token(&self, token: TokenRow) -> StoreResult<()> {
        self.scoped(Scope::Server, async |tx| insert_token(tx, &token).await)
            .await
    }

    async fn token(&self, id: &str) -> StoreResult<Option<(TokenRow, PrincipalRow)>> {
        self.run(Scope::Server, Finish::Discard, async |tx| {
            let Some(row) = cached_query_opt(
                tx,
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(db)?
            else {
                return Ok(None);
            };
            let token = token_row(&row)?;
            let principal = cached_query_opt(
                tx,
                &format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE id = $1"),
                &[&token.principal_id],
            )
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::Corrupt("a token names no principal".into()))?;
            Ok(Some((token, principal_row(&principal)?)))
        })
        .await
    }

    async fn tokens(&self, principal_id: &str) -> StoreResult<Vec<TokenRow>> {
        self.run(Scope::Server, Finish::Discard, async |tx| {
            cached_query(
                tx,
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE principal_id = $1
                     ORDER BY created_us DESC, id"
                ),
                &[&principal_id],
            )
            .await
            .map_err(db)?
            .iter()
            .map(token_row)
            .collect()
        })
        .await
    }

    async fn revoke_token(&self, id: &str, at_micros: i64) -> StoreResult<bool> {
        self.scoped(Scope::Server, async |tx| {
            let n = cached_execute(
                tx,
                "UPDATE tokens SET revoked_us = $2 WHERE id = $1 AND revoked_us IS NULL",
                &[&id, &at_micros],
            )
            .await
            .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }
}
