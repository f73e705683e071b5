//! A PostgreSQL cluster for tests: the one `scripts/test.sh` started for the whole run (its
//! `CUSTODY_PG_*` variables), or else a throwaway cluster this test process starts on first
//! use with `scripts/pg-cluster.sh`, stopped and removed by a watchdog when the process exits.
//!
//! There is no skipping: [`cluster`] panics when PostgreSQL cannot be had, so a PostgreSQL
//! test never passes without having run against PostgreSQL.

use std::path::PathBuf;
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
}

fn from_env() -> Option<Cluster> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(Cluster {
        url: get("CUSTODY_PG_URL")?,
        admin_url: get("CUSTODY_PG_ADMIN_URL")?,
        dir: PathBuf::from(get("CUSTODY_PG_DIR")?),
        bin: PathBuf::from(get("CUSTODY_PG_BIN")?),
    })
}

/// Starts a throwaway cluster for this process and a watchdog that removes it once the
/// process is gone (test binaries do not run destructors of statics).
fn start() -> Cluster {
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
    let value = |name: &str| {
        exports
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('\'').to_owned())
            .unwrap_or_else(|| panic!("pg-cluster.sh printed no {name}: {exports}"))
    };
    let cluster = Cluster {
        url: value("CUSTODY_PG_URL"),
        admin_url: value("CUSTODY_PG_ADMIN_URL"),
        dir: PathBuf::from(value("CUSTODY_PG_DIR")),
        bin: PathBuf::from(value("CUSTODY_PG_BIN")),
    };
    // The watchdog runs detached (the shell that starts it returns at once), polls for this
    // process and removes the cluster once it is gone.
    let watchdog = format!(
        "(while kill -0 {pid} 2>/dev/null; do sleep 1; done; exec bash '{script}' stop '{dir}') >/dev/null 2>&1 &",
        pid = std::process::id(),
        script = script.display(),
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

/// The cluster every PostgreSQL test of this process uses.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| from_env().unwrap_or_else(start))
}
