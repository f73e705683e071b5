//! TLS to PostgreSQL, against a real cluster that accepts TCP connections only over TLS
//! (`scripts/pg-cluster.sh start --tls`), with a CA and a server certificate made here, valid
//! for `localhost` and not for `127.0.0.1`. Every `sslmode` is tried through
//! `PostgresStore::connect`, the function `custody serve --database-url` uses. The cluster is
//! started by the test itself, so it runs (and fails if PostgreSQL cannot start) without
//! `CUSTODY_PG_URL`; it is stopped and removed even if an assertion fails.

use std::path::{Path, PathBuf};

use custody_store::{LedgerReader, StoreError};
use custody_store_postgres::PostgresStore;
use custody_testkit::certificates::TestCa;
use custody_testkit::postgres::TlsCluster;
use tokio_postgres::NoTls;

/// The test role's password, which no error message may contain.
const PASSWORD: &str = "Tls-Pass-7f3a9c";

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write");
    path
}

/// A superuser connection over the cluster's Unix socket (trusted, for administration).
async fn admin(cluster: &TlsCluster) -> tokio_postgres::Client {
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
    let ca1 = TestCa::new("custody test CA");
    let ca2 = TestCa::new("another CA");
    let (cert, key) = ca1.server_certificate("localhost");
    let ca_pem = write(files.path(), "ca.pem", &ca1.pem());
    let other_ca_pem = write(files.path(), "other-ca.pem", &ca2.pem());
    let cluster = TlsCluster::start(
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
    custody_conformance::create(&store, "acme").await;
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
