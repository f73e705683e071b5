//! Hardening over real sockets: per-token rate limits, a stricter limit on failed
//! authentication per address, and a request timeout that covers a stalled body.

use crate::common;

use std::time::Duration;

use common::{assert_problem, start_with};
use custody_server::{Rate, ServeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_failed_logins_are_rate_limited() {
    let s = start_with(ServeOptions {
        principal_rate: Rate {
            per_second: 0.5,
            burst: 5.0,
        },
        failed_auth_rate: Rate {
            per_second: 0.5,
            burst: 3.0,
        },
        ..ServeOptions::default()
    })
    .await;
    // The harness token: five at once, then 429 with Retry-After.
    for _ in 0..5 {
        assert_eq!(s.get(&s.url("/v1/whoami")).await.status, 200);
    }
    let r = s.get(&s.url("/v1/whoami")).await;
    assert_problem(&r, 429);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // Open routes are not limited.
    assert_eq!(s.get(&s.url("/healthz")).await.status, 200);
    // Guessing tokens from one address: three tries, then 429 before any lookup.
    let guess = reqwest::Client::builder().no_proxy().build().unwrap();
    let bad = format!("cst_{}_{}", "1".repeat(20), "2".repeat(64));
    for _ in 0..3 {
        let r = common::send(guess.get(s.url("/v1/whoami")).bearer_auth(&bad)).await;
        assert_problem(&r, 401);
    }
    let r = common::send(guess.get(s.url("/v1/whoami")).bearer_auth(&bad)).await;
    assert_problem(&r, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_times_out() {
    let s = start_with(ServeOptions {
        request_timeout: Duration::from_millis(500),
        ..ServeOptions::default()
    })
    .await;
    s.create_tenant("slow").await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/tenants/slow/logs/inference/entries HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"type\":",
        s.token
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer))
        .await
        .expect("the server never answered the stalled request")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert_eq!(s.size("slow", "inference").await, 0);
}
