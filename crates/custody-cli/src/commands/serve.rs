//! `custody serve`: the server on the embedded store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use custody_governance::Governance;
use custody_ledger::{Ledger, LedgerConfig};
use custody_server::Backend;
use custody_store_objects::{PayloadObjects, WithPayloadObjects};
use custody_store_postgres::PostgresStore;
use custody_store_sqlite::SqliteStore;
use tokio::net::TcpListener;

/// Where the embedded database lives inside the data directory.
pub const DATABASE_FILE: &str = "custody.db";

/// Runs the server until SIGTERM or Ctrl-C, then drains in-flight writes.
pub async fn run(
    data_dir: PathBuf,
    listen: String,
    server_name: String,
    database_url: Option<String>,
    key_dir: Option<PathBuf>,
    bootstrap_token_file: Option<PathBuf>,
    limits: Limits,
) -> anyhow::Result<()> {
    let defaults = custody_server::ServeOptions::default();
    let tls = match (&limits.tls_cert, &limits.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |flag: &str, p: &PathBuf| {
                std::fs::read(p).with_context(|| format!("cannot read {flag} {}", p.display()))
            };
            Some(
                custody_server::tls_config(&read("--tls-cert", cert)?, &read("--tls-key", key)?)
                    .map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key: {e}"))?,
            )
        }
        _ => None,
    };
    if limits.rate_limit == 0 || limits.request_timeout == 0 {
        bail!("--rate-limit and --request-timeout must be at least 1");
    }
    let objects = limits
        .payload_store
        .as_deref()
        .map(|url| PayloadObjects::from_url(url, limits.payload_inline_max))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--payload-store: {e}"))?;
    let options = custody_server::ServeOptions {
        reconcile_every: (limits.reconcile_every > 0)
            .then(|| std::time::Duration::from_secs(limits.reconcile_every)),
        principal_rate: custody_server::Rate {
            per_second: f64::from(limits.rate_limit),
            burst: 2.0 * f64::from(limits.rate_limit),
        },
        request_timeout: std::time::Duration::from_secs(limits.request_timeout),
        tls,
        ..defaults
    };
    run_with_ready(
        data_dir,
        listen,
        server_name,
        database_url,
        key_dir,
        objects,
        Bootstrap::File(bootstrap_token_file),
        options,
        |_, _| {},
    )
    .await
}

/// Limits and schedules of `custody serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Deep-verify every log against its stored bytes this often, in seconds (0: never);
    /// problems are logged and recorded as security.integrity_failure.
    #[arg(long, env = "CUSTODY_RECONCILE_EVERY", default_value_t = 86_400)]
    pub reconcile_every: u64,
    /// Requests per second per API token (bursts of twice that); 429 beyond.
    #[arg(long, env = "CUSTODY_RATE_LIMIT", default_value_t = 20_000)]
    pub rate_limit: u32,
    /// Seconds a request may take, body included, before it is answered 408.
    #[arg(long, env = "CUSTODY_REQUEST_TIMEOUT", default_value_t = 120)]
    pub request_timeout: u64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "CUSTODY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "CUSTODY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Keep payloads larger than --payload-inline-max in object storage: s3://BUCKET/PREFIX
    /// (endpoint, region and credentials from AWS_* variables) or file:///ABSOLUTE/DIR. The
    /// database keeps each one's key and SHA-256, checked on every read.
    #[arg(long, env = "CUSTODY_PAYLOAD_STORE")]
    pub payload_store: Option<String>,
    /// Payloads up to this many bytes stay in the database.
    #[arg(long, env = "CUSTODY_PAYLOAD_INLINE_MAX", default_value_t = 65_536)]
    pub payload_inline_max: usize,
}

/// What to do with the bootstrap administrator's token on first start.
pub enum Bootstrap {
    /// Read it from this file if it exists, else generate it and write it there (0600); with
    /// no file, print a generated one once on stderr.
    File(Option<PathBuf>),
    /// Generate it and hand it to the `ready` callback only (the demo).
    Hand,
}

/// Creates the first server administrator if the store has no principal yet. Returns its token
/// when this start bootstrapped.
async fn bootstrap<S: Backend>(
    store: &S,
    how: &Bootstrap,
) -> anyhow::Result<Option<custody_auth::ApiToken>> {
    let auth = custody_auth::Auth::new(store.clone());
    let given = match how {
        Bootstrap::File(Some(path)) if path.exists() => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read --bootstrap-token-file {}", path.display())
            })?;
            Some(custody_auth::ApiToken::parse(&text).map_err(|_| {
                anyhow::anyhow!(
                    "--bootstrap-token-file {} does not hold a custody token (cst_<20 hex>_<64 hex>); delete it to have one generated",
                    path.display()
                )
            })?)
        }
        _ => None,
    };
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64;
    let Some(issued) = auth.bootstrap(given, now).await? else {
        return Ok(None);
    };
    match how {
        Bootstrap::File(Some(path)) if !path.exists() => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| {
                    format!("cannot create --bootstrap-token-file {}", path.display())
                })?;
            writeln!(f, "{}", issued.token.expose())?;
            eprintln!(
                "custody: first start; the bootstrap administrator's token is in {} (mode 0600)",
                path.display()
            );
        }
        Bootstrap::File(Some(_)) => {
            eprintln!(
                "custody: first start; the bootstrap administrator uses the token from --bootstrap-token-file"
            );
        }
        Bootstrap::File(None) => {
            // Printed once, to the terminal, never through the log.
            eprintln!(
                "custody: first start. The bootstrap administrator's token (shown once; store it now, e.g. export CUSTODY_TOKEN=...):\n\n    {}\n",
                issued.token.expose()
            );
        }
        Bootstrap::Hand => {}
    }
    Ok(Some(issued.token))
}

/// Which database `--database-url` names.
enum Database {
    /// The embedded store: a SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres(String),
}

impl Database {
    fn parse(url: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let Some(url) = url else {
            return Ok(Database::Sqlite(data_dir.join(DATABASE_FILE)));
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_owned()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if !url.contains("://") {
            return Ok(Database::Sqlite(PathBuf::from(url)));
        }
        bail!(
            "--database-url {:?} is not supported: use postgres://USER:PASSWORD@HOST:PORT/DATABASE, sqlite:PATH or a file path (default <data-dir>/{DATABASE_FILE})",
            redact(url)
        )
    }
}

/// A database URL without its password, for messages and logs.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparsable URL)".into(),
    }
}

/// [`run`], calling `ready` with the bound address and, on first start, the bootstrap
/// administrator's token, once the server accepts requests (the demo fills the ledger
/// through it).
#[allow(clippy::too_many_arguments)]
pub async fn run_with_ready(
    data_dir: PathBuf,
    listen: String,
    server_name: String,
    database_url: Option<String>,
    key_dir: Option<PathBuf>,
    objects: Option<PayloadObjects>,
    how: Bootstrap,
    options: custody_server::ServeOptions,
    ready: impl FnOnce(SocketAddr, Option<custody_auth::ApiToken>),
) -> anyhow::Result<()> {
    if !data_dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&data_dir)
            .with_context(|| format!("cannot create --data-dir {}", data_dir.display()))?;
    }
    let key_dir = key_dir.unwrap_or_else(|| data_dir.join("keys"));
    let server = Server {
        listen,
        server_name,
        key_dir,
        how,
        options,
    };
    match Database::parse(database_url.as_deref(), &data_dir)? {
        Database::Sqlite(path) => {
            // One server per embedded database: its sequencers are their logs' only writers.
            let lock_path = data_dir.join("custody.lock");
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .with_context(|| format!("cannot open {}", lock_path.display()))?;
            if lock.try_lock().is_err() {
                bail!(
                    "--data-dir {} is in use by another custody server; stop it or choose another directory (several servers share one PostgreSQL database, not one SQLite file)",
                    data_dir.display()
                );
            }
            let store = SqliteStore::open(&path)
                .await
                .with_context(|| format!("cannot open the database {}", path.display()))?;
            let store = WithPayloadObjects::new(store, objects);
            server.run(store, path.display().to_string(), ready).await?;
            drop(lock);
        }
        Database::Postgres(url) => {
            let shown = redact(&url);
            let store = PostgresStore::connect(&url)
                .await
                .with_context(|| format!("cannot use the database {shown}"))?;
            let store = WithPayloadObjects::new(store, objects);
            server.run(store, shown, ready).await?;
        }
    }
    Ok(())
}

/// Everything `serve` needs besides the store.
struct Server {
    listen: String,
    server_name: String,
    key_dir: PathBuf,
    how: Bootstrap,
    options: custody_server::ServeOptions,
}

impl Server {
    async fn run<S: Backend>(
        self,
        store: S,
        database: String,
        ready: impl FnOnce(SocketAddr, Option<custody_auth::ApiToken>),
    ) -> anyhow::Result<()> {
        let admin = bootstrap(&store, &self.how).await?;
        let (_, appender) = Ledger::open(
            store,
            LedgerConfig {
                server_name: self.server_name.clone(),
                key_dir: self.key_dir,
            },
        )?;
        let governance = Arc::new(Governance::new(appender));
        let addr: SocketAddr = self.listen.parse().with_context(|| {
            format!(
                "--listen {:?} is not an address such as 127.0.0.1:7878",
                self.listen
            )
        })?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        let shutdown = shutdown_signal()?;
        tracing::info!(
            address = %local,
            server_name = %self.server_name,
            database = %database,
            "custody listening on {}://{local}",
            if self.options.tls.is_some() { "https" } else { "http" }
        );
        ready(local, admin);
        custody_server::serve(listener, governance, self.options, shutdown).await?;
        tracing::info!("custody stopped; every acknowledged write is durable");
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when
/// the future is first polled, so a signal sent right after the "listening" line is handled.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install a SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}
