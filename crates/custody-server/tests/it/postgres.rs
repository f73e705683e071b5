//! The API on the PostgreSQL backend: the same answers as on the embedded store, database
//! errors classified the same way (a duplicate is 409; a database that cannot be reached is
//! 503 with Retry-After), and no PostgreSQL text in any answer.
//!
//! Runs on the cluster of `custody_testkit::postgres` (the test run's, or one started for
//! this process); it fails, never skips, without one.

use crate::common;

use common::{assert_problem, send, start_over};
use custody_store_postgres::PostgresStore;
use custody_testkit::postgres::{cluster, connect};
use serde_json::json;

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
    let db_url = cluster().fresh_database("api");
    let name = db_url
        .rsplit_once('/')
        .expect("a database URL")
        .1
        .to_owned();
    let admin = connect(&cluster().url).await;
    let store = PostgresStore::connect(&db_url).await.expect("connect");
    let s = start_over(
        store,
        tempfile::tempdir().expect("dir"),
        custody_server::ServeOptions::default(),
    )
    .await;
    let post = |path: &str, body: serde_json::Value| s.http.post(s.url(path)).json(&body);
    let get = |path: &str| s.http.get(s.url(path));

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
