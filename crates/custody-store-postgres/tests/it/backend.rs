//! What only the PostgreSQL backend has (the shared conformance suite runs in
//! `custody-conformance`): migrations recorded with checksums in a shared database, row-level
//! security, a role that would bypass it refused, and outages classified as `Unavailable`
//! without PostgreSQL's text.
//!
//! The cluster is `custody_testkit::postgres`'s: the test run's, or one started for this
//! process; without PostgreSQL these tests fail, never skip.

use custody_conformance::{self as conformance, numbered};
use custody_store::{LedgerReader, StoreError};
use custody_store_postgres::{MIGRATIONS, PostgresStore};
use sha2::{Digest, Sha256};

/// The test cluster's URLs: the `custody` role's and the superuser's.
fn urls() -> (String, String) {
    let cluster = custody_testkit::postgres::cluster();
    (cluster.url.clone(), cluster.admin_url.clone())
}

/// A new, empty database owned by the test role: its name and URL.
async fn fresh_database(prefix: &str) -> (String, String) {
    let url = custody_testkit::postgres::cluster().fresh_database(prefix);
    let name = url.rsplit_once('/').expect("a database URL").1.to_owned();
    (name, url)
}

fn expected_migrations() -> Vec<(i32, String)> {
    MIGRATIONS
        .iter()
        .map(|(v, s)| (*v, hex::encode(Sha256::digest(s.as_bytes()))))
        .collect()
}

async fn recorded_migrations(url: &str) -> Vec<(i32, String)> {
    custody_testkit::postgres::connect(url)
        .await
        .query(
            "SELECT version, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("read schema_migrations")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_with_checksums_and_a_tampered_one_is_refused() {
    let (_, db) = fresh_database("mig").await;
    // Several servers starting at once migrate once between them.
    let opened = futures_join(
        (0..4)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { PostgresStore::connect(&db).await.map(|_| ()) })
            })
            .collect(),
    )
    .await;
    for r in opened {
        r.expect("concurrent start must succeed");
    }
    assert_eq!(
        recorded_migrations(&db).await,
        expected_migrations(),
        "each migration recorded once with the SHA-256 of its SQL"
    );
    let store = PostgresStore::connect(&db).await.expect("reopen");
    let logs = conformance::create(&store, "acme").await;
    drop(store);

    let client = custody_testkit::postgres::connect(&db).await;
    let (version, good) = expected_migrations().remove(0);
    for tampered in ["0".repeat(64), good.to_uppercase()] {
        client
            .execute(
                "UPDATE schema_migrations SET checksum = $1 WHERE version = $2",
                &[&tampered, &version],
            )
            .await
            .expect("tamper");
        match PostgresStore::connect(&db).await {
            Err(StoreError::Corrupt(msg)) => assert!(
                msg.contains(&format!("migration {version}")),
                "the error should name migration {version}: {msg}"
            ),
            Err(e) => panic!("expected Corrupt for checksum {tampered:?}, got {e:?}"),
            Ok(_) => panic!("a tampered migration record must be refused"),
        }
    }
    client
        .execute(
            "UPDATE schema_migrations SET checksum = $1 WHERE version = $2",
            &[&good, &version],
        )
        .await
        .expect("restore");
    let store = PostgresStore::connect(&db)
        .await
        .expect("open after restoring");
    assert_eq!(
        store.logs(&logs[0].key().tenant).await.expect("logs").len(),
        logs.len(),
        "data intact after a refused start"
    );
}

async fn count(tx: &tokio_postgres::Transaction<'_>, table: &str, filter: &str) -> i64 {
    tx.query_one(&format!("SELECT count(*) FROM {table} {filter}"), &[])
        .await
        .expect("count")
        .get(0)
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_confines_a_transaction_to_its_tenant() {
    let (_, db) = fresh_database("rls").await;
    let store = PostgresStore::connect(&db).await.expect("connect");
    let mut acme = conformance::create(&store, "acme").await;
    let mut beta = conformance::create(&store, "beta").await;
    acme[0]
        .append(
            &store,
            vec![conformance::Draft::numbered(1).with_payload(b"{\"a\":1}", 1)],
        )
        .await;
    beta[0]
        .append(
            &store,
            vec![conformance::Draft::numbered(2).with_payload(b"{\"b\":2}", 2)],
        )
        .await;

    // The same role custody connects as, querying by hand.
    let mut client = custody_testkit::postgres::connect(&db).await;
    let ids: Vec<(String, i32)> = {
        let tx = client.transaction().await.expect("tx");
        tx.batch_execute("SET LOCAL custody.scope = 'server'")
            .await
            .expect("scope");
        let rows = tx
            .query("SELECT name, id FROM tenants ORDER BY name", &[])
            .await
            .expect("tenants");
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    assert_eq!(ids.len(), 2, "server scope sees both tenants");
    let acme_id = ids[0].1;

    let tables = [
        "tenants",
        "logs",
        "entries",
        "related",
        "payloads",
        "nodes",
        "checkpoints",
        "principals",
        "tokens",
    ];

    // No scope at all: nothing is visible.
    {
        let tx = client.transaction().await.expect("tx");
        for t in tables {
            assert_eq!(count(&tx, t, "").await, 0, "{t}: no scope must see no rows");
        }
    }
    // Scoped to acme: only acme's rows, even when asking for beta's by hand.
    {
        let tx = client.transaction().await.expect("tx");
        tx.batch_execute(&format!(
            "SET LOCAL custody.tenant_id = '{acme_id}'; SET LOCAL custody.tenant = 'acme'"
        ))
        .await
        .expect("scope");
        assert_eq!(count(&tx, "tenants", "").await, 1, "acme sees one tenant");
        assert_eq!(
            count(&tx, "tenants", "WHERE name = 'beta'").await,
            0,
            "acme cannot see beta"
        );
        for t in ["entries", "payloads", "checkpoints", "nodes", "logs"] {
            assert_eq!(
                count(&tx, t, &format!("WHERE tenant_id <> {acme_id}")).await,
                0,
                "{t}: acme's transaction must not see another tenant's rows"
            );
            assert!(count(&tx, t, "").await > 0, "{t}: acme sees its own rows");
        }
        // Writing a row for another tenant is refused by the policy.
        let beta_id = ids[1].1;
        let err = tx
            .execute(
                "INSERT INTO payloads (tenant_id, log_id, idx, salt, payload) VALUES ($1, 1, 999, '\\x00', '\\x00')",
                &[&beta_id],
            )
            .await
            .expect_err("inserting another tenant's row must fail");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "row-level security refuses the write: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_bypasses_row_security_is_refused() {
    let (_, admin) = urls();
    let (name, _) = fresh_database("su").await;
    let base = admin.rsplit_once('/').expect("db").0;
    match PostgresStore::connect(&format!("{base}/{name}")).await {
        Err(StoreError::Unavailable(msg)) => assert!(
            msg.contains("bypasses row-level security") && msg.contains("superuser"),
            "the refusal must say why and how to fix it: {msg}"
        ),
        Err(e) => panic!("expected Unavailable, got {e:?}"),
        Ok(_) => panic!("a superuser connection must be refused"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_are_unavailable_without_database_text_and_recover() {
    let (url, admin) = urls();
    // Nothing listens: refused at connect.
    match PostgresStore::connect("postgres://custody:custody@127.0.0.1:1/custody").await {
        Err(StoreError::Unavailable(msg)) => assert_eq!(msg, "the database is unavailable"),
        Err(e) => panic!("expected Unavailable, got {e:?}"),
        Ok(_) => panic!("nothing listens on port 1"),
    }
    // A URL that demands TLS of a server without it is refused with the reason (tests/it/tls.rs
    // connects to one that has it).
    match PostgresStore::connect(&format!("{url}?sslmode=require")).await {
        Err(StoreError::Unavailable(msg)) => assert!(
            msg.contains("does not offer TLS") && msg.contains("sslmode=require"),
            "{msg}"
        ),
        Err(e) => panic!("expected Unavailable, got {e:?}"),
        Ok(_) => panic!("this cluster has no TLS: sslmode=require must be refused"),
    }
    let (name, db) = fresh_database("outage").await;
    let store = PostgresStore::connect(&db).await.expect("connect");
    let logs = conformance::create(&store, "acme").await;
    let key = logs[0].key().clone();
    store.latest_checkpoint(&key).await.expect("read before");

    // The database drops every connection of this store (as on a restart or failover).
    let admin = custody_testkit::postgres::connect(&admin).await;
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(killed > 0, "the store had open connections");
    // The pool notices broken connections on use; the first calls may fail, each with the
    // classified error, and later ones succeed on new connections.
    let mut failures = Vec::new();
    let mut recovered = false;
    for _ in 0..40 {
        match store.latest_checkpoint(&key).await {
            Ok(cp) => {
                assert_eq!(&cp, logs[0].latest());
                recovered = true;
                break;
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(
        recovered,
        "the store must recover on new connections: {failures:?}"
    );
    for e in &failures {
        match e {
            StoreError::Unavailable(m) => assert_eq!(
                m, "the database is unavailable",
                "no PostgreSQL text may reach a caller"
            ),
            other => panic!("a dropped connection must be Unavailable, got {other:?}"),
        }
    }
    // A write after the outage lands.
    let mut gov = logs[0].clone();
    gov.append(&store, numbered(1..=2)).await;
    assert_eq!(
        store.latest_checkpoint(&key).await.expect("after"),
        *gov.latest()
    );
}
