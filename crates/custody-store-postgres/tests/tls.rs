//! TLS to PostgreSQL, against a real cluster that accepts TCP connections only over TLS
//! (`scripts/pg-cluster.sh start --tls`), with a CA and a server certificate made here, valid
//! for `localhost` and not for `127.0.0.1`. Every `sslmode` is tried through
//! `PostgresStore::connect`, the function `custody serve --database-url` uses. The cluster is
//! started by the test itself, so it runs (and fails if PostgreSQL cannot start) without
//! `CUSTODY_PG_URL`; it is stopped and removed even if an assertion fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use custody_store::{LedgerReader, StoreError};
use custody_store_postgres::PostgresStore;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio_postgres::NoTls;

/// The test role's password, which no error message may contain.
const PASSWORD: &str = "Tls-Pass-7f3a9c";

/// A TLS-only cluster; dropping it stops and removes it.
struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/pg-cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The value of `NAME='...'` in the script's `export` lines.
fn exported<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("{name}='"))
        .unwrap_or_else(|| panic!("pg-cluster.sh printed no {name}: {out}"))
        + name.len()
        + 2;
    let len = out[start..].find('\'').expect("closing quote");
    &out[start..start + len]
}

fn start_cluster(cert: &Path, key: &Path) -> Cluster {
    let root = repo_root();
    let out = Command::new(root.join("scripts/pg-cluster.sh"))
        .args(["start", "--tls"])
        .arg(cert)
        .arg(key)
        .current_dir(&root)
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
    assert!(url.ends_with("?sslmode=require"), "{url}");
    let port = url
        .split_once("@127.0.0.1:")
        .and_then(|(_, rest)| rest.split_once('/'))
        .and_then(|(port, _)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"));
    Cluster {
        dir: PathBuf::from(exported(&stdout, "CUSTODY_PG_DIR")),
        port,
    }
}

/// A CA that signs certificates.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// A server certificate for `localhost` only, signed by `ca`: (certificate PEM, key PEM).
fn server_certificate(ca: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, ca).expect("sign");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write");
    path
}

/// A superuser connection over the cluster's Unix socket (trusted, for administration).
async fn admin(cluster: &Cluster) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::Config::new()
        .host_path(&cluster.dir)
        .port(cluster.port)
        .user("postgres")
        .dbname("postgres")
        .connect(NoTls)
        .await
        .expect("connect over the Unix socket");
    tokio::spawn(conn);
    client
}

fn refused(result: Result<PostgresStore, StoreError>, what: &str) -> String {
    match result {
        Err(StoreError::Unavailable(msg)) => {
            assert!(
                !msg.contains(PASSWORD),
                "{what}: the password leaked: {msg}"
            );
            eprintln!("{what}: refused: {msg}");
            msg
        }
        Err(e) => panic!("{what}: expected Unavailable, got {e:?}"),
        Ok(_) => panic!("{what}: must be refused"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_against_a_tls_only_server() {
    let files = tempfile::tempdir().expect("temp dir");
    let ca1 = ca("custody test CA");
    let ca2 = ca("another CA");
    let (cert, key) = server_certificate(&ca1);
    let ca_pem = write(files.path(), "ca.pem", &ca1.pem());
    let other_ca_pem = write(files.path(), "other-ca.pem", &ca2.pem());
    let cluster = start_cluster(
        &write(files.path(), "server.crt", &cert),
        &write(files.path(), "server.key", &key),
    );

    // A role that row-level security binds, with a password of its own.
    let admin_client = admin(&cluster).await;
    for sql in [
        format!("CREATE ROLE custody_tls LOGIN PASSWORD '{PASSWORD}'"),
        "CREATE DATABASE custody_tls OWNER custody_tls".to_owned(),
    ] {
        admin_client
            .batch_execute(&sql)
            .await
            .expect("create the role");
    }
    let port = cluster.port;
    let url = |host: &str, params: &str| {
        format!("postgres://custody_tls:{PASSWORD}@{host}:{port}/custody_tls?{params}")
    };
    let ca = ca_pem.display();
    let other_ca = other_ca_pem.display();

    // verify-full with the CA and the name in the certificate: connected, and the store works.
    let store = PostgresStore::connect(&url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}&application_name=custody-tls-check"),
    ))
    .await
    .expect("verify-full with the right CA and host connects");
    custody_store::conformance::create(&store, "acme").await;
    assert_eq!(
        store.tenants().await.expect("tenants").len(),
        1,
        "a write and a read over TLS"
    );
    // The server's view: every connection of the store is encrypted.
    let row = admin_client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl AND s.version = 'TLSv1.3') \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name = 'custody-tls-check'",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    let (connections, encrypted): (i64, i64) = (row.get(0), row.get(1));
    assert!(connections > 0, "the store keeps pooled connections");
    assert_eq!(encrypted, connections, "every connection is TLS 1.3");
    drop(store);

    // verify-full to an address the certificate does not name.
    let msg = refused(
        PostgresStore::connect(&url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ))
        .await,
        "verify-full to 127.0.0.1",
    );
    assert!(
        msg.contains("certificate does not match host 127.0.0.1")
            && msg.contains("sslmode=verify-full"),
        "{msg}"
    );

    // verify-ca checks the chain, not the name.
    let store = PostgresStore::connect(&url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ))
    .await
    .expect("verify-ca to 127.0.0.1 connects");
    assert_eq!(store.tenants().await.expect("tenants").len(), 1);
    drop(store);

    // A CA that did not sign the server's certificate, with verify-full and with require
    // (which, given a root, checks the chain as libpq does).
    for mode in ["verify-full", "require"] {
        let msg = refused(
            PostgresStore::connect(&url(
                "localhost",
                &format!("sslmode={mode}&sslrootcert={other_ca}"),
            ))
            .await,
            &format!("{mode} with another CA"),
        );
        assert!(
            msg.contains("not signed by a CA in sslrootcert")
                && msg.contains("other-ca.pem")
                && msg.contains(&format!("sslmode={mode}")),
            "{msg}"
        );
    }

    // require without a root: encrypted, unverified. prefer (the default) takes TLS too.
    for params in ["sslmode=require", "application_name=custody-tls-prefer"] {
        let store = PostgresStore::connect(&url("127.0.0.1", params))
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        assert_eq!(store.tenants().await.expect("tenants").len(), 1);
    }

    // Plaintext is refused by the server (hostssl only).
    let msg = refused(
        PostgresStore::connect(&url("localhost", "sslmode=disable")).await,
        "sslmode=disable",
    );
    assert!(
        msg.contains("pg_hba.conf") && msg.contains("sslmode=disable"),
        "{msg}"
    );

    // verify-full without a root is refused before connecting, naming the parameter.
    let msg = refused(
        PostgresStore::connect(&url("localhost", "sslmode=verify-full")).await,
        "verify-full without sslrootcert",
    );
    assert!(msg.contains("sslrootcert"), "{msg}");
    let msg = refused(
        PostgresStore::connect(&url(
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ))
        .await,
        "an unreadable sslrootcert",
    );
    assert!(
        msg.contains("cannot read sslrootcert /nonexistent/ca.pem"),
        "{msg}"
    );

    // A wrong password is named as such, over a verified connection, and not echoed.
    let wrong = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    )
    .replace(PASSWORD, "not-the-password");
    match PostgresStore::connect(&wrong).await {
        Err(StoreError::Unavailable(msg)) => assert!(
            msg.contains("refused the password of role custody_tls")
                && !msg.contains("not-the-password"),
            "{msg}"
        ),
        Err(e) => panic!("expected Unavailable, got {e:?}"),
        Ok(_) => panic!("a wrong password must be refused"),
    }
}
