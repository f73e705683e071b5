//! The API on the PostgreSQL backend: the same answers as on the embedded store, database
//! errors classified the same way (a duplicate is 409; a database that cannot be reached is
//! 503 with Retry-After), and no PostgreSQL text in any answer.
//!
//! Runs on the cluster of `custody_testkit::postgres` (the test run's, or one started for
//! this process); it fails, never skips, without one.

use crate::common;

use std::sync::Arc;

use common::{assert_problem, send};
use custody_ledger::{Ledger, LedgerConfig};
use custody_store_postgres::PostgresStore;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_postgres::NoTls;

async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// Words that would show PostgreSQL's own error text leaking into an answer.
const DATABASE_WORDS: &[&str] = &[
    "postgres",
    "FATAL",
    "SQLSTATE",
    "connection limit",
    "too many",
    "relation",
    "duplicate key",
    "violates",
    "127.0.0.1",
];

fn assert_no_database_text(body: &str) {
    for w in DATABASE_WORDS {
        assert!(
            !body.to_lowercase().contains(&w.to_lowercase()),
            "an answer leaks database text ({w:?}): {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_postgres_classifies_database_errors() {
    let url = custody_testkit::postgres::cluster().url.clone();
    let name = format!("api_{}", std::process::id());
    let admin = sql(&url).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create");
    let db_url = format!("{}/{name}", url.rsplit_once('/').expect("db").0);

    let store = PostgresStore::connect(&db_url).await.expect("connect");
    let (_, token) = common::superuser(&store).await;
    let dir = tempfile::tempdir().expect("dir");
    let (_, appender) = Ledger::open(
        store,
        LedgerConfig {
            server_name: common::SERVER_NAME.into(),
            key_dir: dir.path().join("keys"),
        },
    )
    .expect("ledger");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(custody_server::serve(
        listener,
        Arc::new(custody_governance::Governance::new(appender)),
        custody_server::ServeOptions::default(),
        std::future::pending(),
    ));
    custody_client::install_crypto_provider();
    let http = reqwest::Client::builder().no_proxy().build().expect("http");
    let auth = format!("Bearer {token}");
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .header("authorization", &auth)
            .json(&body)
    };
    let get = |path: &str| {
        http.get(format!("{base}{path}"))
            .header("authorization", &auth)
            .header("custody-purpose", "test")
    };

    let r = send(post("/v1/tenants", json!({"name": "acme"}))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    // A duplicate is a conflict, in custody's words.
    let r = send(post("/v1/tenants", json!({"name": "acme"}))).await;
    let p = assert_problem(&r, 409);
    assert!(p.detail.contains("acme"), "{p:?}");
    assert_no_database_text(&r.text());

    let entry = json!({
        "id": "01a20b00-0000-7000-8000-000000000001",
        "type": "x.pg.note",
        "subject": {"kind": "item", "id": "one"},
        "body": {"n": 1},
        "payload": {"secret": "s"},
    });
    let entries = "/v1/tenants/acme/logs/governance/entries";
    let r = send(post(entries, entry.clone())).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = send(get("/v1/tenants/acme/logs/governance/entries/0")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["payload"], json!({"secret": "s"}));
    // Reusing the id for other content is a conflict, too.
    let mut other = entry.clone();
    other["body"] = json!({"n": 2});
    let r = send(post(entries, other)).await;
    assert_problem(&r, 409);
    assert_no_database_text(&r.text());

    // The database stops accepting this store's connections (as during a failover).
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} CONNECTION LIMIT 0;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = '{name}' AND pid <> pg_backend_pid();"
        ))
        .await
        .expect("cut the store off");
    let mut second = entry.clone();
    second["id"] = json!("01a20b00-0000-7000-8000-000000000002");
    for (what, req) in [
        ("append", post(entries, second.clone())),
        ("read", get("/v1/tenants/acme/logs/governance/checkpoint")),
        (
            "proof",
            get("/v1/tenants/acme/logs/governance/proof/inclusion?index=0&size=1"),
        ),
    ] {
        let r = send(req).await;
        assert_eq!(r.status, 503, "{what} during the outage: {}", r.text());
        assert_eq!(
            r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("1"),
            "{what}: a 503 says when to retry"
        );
        assert!(
            r.content_type.starts_with("application/problem+json"),
            "{what}: {}",
            r.content_type
        );
        assert_no_database_text(&r.text());
    }

    // Back: the acknowledged entry is there, the refused one was not written, and retrying it
    // now succeeds.
    admin
        .batch_execute(&format!("ALTER DATABASE {name} CONNECTION LIMIT -1"))
        .await
        .expect("restore");
    let mut size = None;
    for _ in 0..20 {
        let r = send(get("/v1/tenants/acme/logs/governance/checkpoint")).await;
        if r.status == 200 {
            size = r.text().lines().nth(1).map(str::to_owned);
            break;
        }
    }
    assert_eq!(
        size.as_deref(),
        Some("1"),
        "the refused append wrote nothing"
    );
    let r = send(post(entries, second)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["index"], 1, "{}", r.text());
}
