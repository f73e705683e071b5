//! A PostgreSQL cluster for tests: the one `scripts/test.sh` started for the whole run (its
//! `CUSTODY_PG_*` variables), or else a throwaway cluster this test process starts on first
//! use with `scripts/pg-cluster.sh`, stopped and removed by a watchdog when the process exits.
//!
//! There is no skipping: [`cluster`] panics when PostgreSQL cannot be had, so a PostgreSQL
//! test never passes without having run against PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A running cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// A non-superuser role that owns the database `custody` (row-level security binds it).
    pub url: String,
    /// The superuser, for creating databases and roles.
    pub admin_url: String,
    /// The cluster's directory (its data directory is `data/` inside it).
    pub dir: PathBuf,
    /// The PostgreSQL server binaries (`pg_ctl`).
    pub bin: PathBuf,
}

impl Cluster {
    /// The cluster's data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The URL of database `name` on this cluster, as the `custody` role.
    pub fn database_url(&self, name: &str) -> String {
        let (server, _) = self.url.rsplit_once('/').expect("a database URL");
        format!("{server}/{name}")
    }

    /// A new, empty database owned by the `custody` role, named `<prefix>_<pid>_<n>` so runs
    /// and tests never share one; returns its URL. (Through `psql`, so callers need no
    /// PostgreSQL client of their own.)
    pub fn fresh_database(&self, prefix: &str) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            let out = Command::new(self.bin.join("psql"))
                .args([self.url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", &sql])
                .stdin(Stdio::null())
                .output()
                .expect("run psql");
            assert!(
                out.status.success(),
                "{sql}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.database_url(&name)
    }

    /// Restarts the PostgreSQL server (fast shutdown: every connection is dropped), as the
    /// cluster's owner, and waits until it accepts connections again. Only for a
    /// [`PrivateCluster`]: other tests may be using the shared one.
    pub fn restart(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let mut cmd = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            c
        } else {
            Command::new(&pg_ctl)
        };
        // The server's output goes to its log file: pg_ctl's own pipes would stay open as long
        // as PostgreSQL runs.
        let log = self.dir.join("server.log");
        let status = cmd
            .arg("-D")
            .arg(self.data())
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

/// A plain client session on `url` (no TLS: the test cluster listens on loopback only).
#[cfg(feature = "postgres")]
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to the test cluster: {e}"));
    tokio::spawn(conn);
    client
}

/// The cluster `scripts/test.sh` (or a developer, with `eval "$(scripts/pg-cluster.sh start)"`)
/// announced in the environment, if any. Half an announcement is refused, not ignored: a test
/// must not quietly use a cluster other than the one it was pointed at.
fn from_env() -> Option<Cluster> {
    const NAMES: [&str; 4] = [
        "CUSTODY_PG_URL",
        "CUSTODY_PG_ADMIN_URL",
        "CUSTODY_PG_DIR",
        "CUSTODY_PG_BIN",
    ];
    let values = NAMES.map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    match values {
        [Some(url), Some(admin_url), Some(dir), Some(bin)] => Some(Cluster {
            url,
            admin_url,
            dir: PathBuf::from(dir),
            bin: PathBuf::from(bin),
        }),
        [None, None, None, None] => None,
        partial => {
            let named = |set: bool| {
                NAMES
                    .iter()
                    .zip(&partial)
                    .filter(|(_, v)| v.is_some() == set)
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            panic!(
                "{} are set but {} are not: set all four as `scripts/pg-cluster.sh start` prints them, or none to have the tests start a cluster",
                named(true),
                named(false)
            )
        }
    }
}

/// Starts a throwaway cluster with `scripts/pg-cluster.sh`; panics if PostgreSQL cannot start.
fn start_cluster() -> Cluster {
    let script = crate::repo_root().join("scripts/pg-cluster.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} start failed ({}); PostgreSQL tests need a cluster:\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let exports = String::from_utf8_lossy(&out.stdout);
    let value = |name: &str| exported(&exports, name).to_owned();
    Cluster {
        url: value("CUSTODY_PG_URL"),
        admin_url: value("CUSTODY_PG_ADMIN_URL"),
        dir: PathBuf::from(value("CUSTODY_PG_DIR")),
        bin: PathBuf::from(value("CUSTODY_PG_BIN")),
    }
}

fn stop_cluster(dir: &Path) {
    let _ = Command::new(crate::repo_root().join("scripts/pg-cluster.sh"))
        .arg("stop")
        .arg(dir)
        .stdin(Stdio::null())
        .status();
}

/// Starts a throwaway cluster for this process and a watchdog that removes it once the
/// process is gone (test binaries do not run destructors of statics).
fn start_for_process() -> Cluster {
    let cluster = start_cluster();
    // The watchdog runs detached (the shell that starts it returns at once), polls for this
    // process and removes the cluster once it is gone.
    let watchdog = format!(
        "(while kill -0 {pid} 2>/dev/null; do sleep 1; done; exec bash '{script}' stop '{dir}') >/dev/null 2>&1 &",
        pid = std::process::id(),
        script = crate::repo_root().join("scripts/pg-cluster.sh").display(),
        dir = cluster.dir.display()
    );
    let started = Command::new("bash")
        .args(["-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the cluster's watchdog");
    assert!(started.success(), "the cluster's watchdog did not start");
    cluster
}

/// A cluster of one test's own, for a test that stops or restarts the server under load and
/// must not take the shared cluster away from tests running beside it. Dropping it stops and
/// removes it, also when the test fails.
pub struct PrivateCluster(Cluster);

impl PrivateCluster {
    /// Starts the cluster; panics if PostgreSQL cannot start.
    pub fn start() -> Self {
        Self(start_cluster())
    }
}

impl std::ops::Deref for PrivateCluster {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.0
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        stop_cluster(&self.0.dir);
    }
}

/// The cluster every PostgreSQL test of this process uses.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| from_env().unwrap_or_else(start_for_process))
}

/// A throwaway cluster that accepts TCP connections only over TLS, with a certificate and key
/// the test made (`scripts/pg-cluster.sh start --tls`); dropping it stops and removes it, also
/// when the test fails.
pub struct TlsCluster {
    /// The cluster's directory (also the directory of its Unix socket).
    pub dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        stop_cluster(&self.dir);
    }
}

impl TlsCluster {
    /// Starts the cluster with `cert` and `key` (PEM files); panics if PostgreSQL cannot start.
    pub fn start(cert: &Path, key: &Path) -> Self {
        let root = crate::repo_root();
        let out = Command::new(root.join("scripts/pg-cluster.sh"))
            .args(["start", "--tls"])
            .arg(cert)
            .arg(key)
            .current_dir(&root)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/pg-cluster.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "PostgreSQL must start for this test: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        let url = exported(&stdout, "CUSTODY_PG_URL");
        let port = url
            .split_once("@127.0.0.1:")
            .and_then(|(_, rest)| rest.split_once('/'))
            .and_then(|(port, _)| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"));
        Self {
            dir: PathBuf::from(exported(&stdout, "CUSTODY_PG_DIR")),
            port,
        }
    }
}

/// The value of `NAME='...'` in `pg-cluster.sh`'s `export` lines.
fn exported<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("{name}='"))
        .unwrap_or_else(|| panic!("pg-cluster.sh printed no {name}: {out}"))
        + name.len()
        + 2;
    let len = out[start..].find('\'').expect("closing quote");
    &out[start..start + len]
}
