//! HTTP modes: appends to and inclusion proofs from custody, and appends to siglog.
//!
//! Every mode runs `concurrency` tokio tasks that share one `reqwest::Client` (one connection
//! pool) and claim work from a shared counter until `total` is reached. Requests to custody
//! carry the API token given with `--token` (or `CUSTODY_TOKEN`) as a default header.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::entry::{Rng, canonical_envelope, submission};
use crate::report::{Report, Tally};

/// What custody answers for one appended entry; only the fields checked here.
#[derive(Debug, Deserialize)]
struct AppendResult {
    index: u64,
    checkpoint_size: u64,
}

/// What custody answers for a JSON array of entries.
#[derive(Debug, Deserialize)]
struct AppendResults {
    results: Vec<AppendResult>,
    checkpoint_size: u64,
}

/// The fields of an inclusion proof checked here.
#[derive(Debug, Deserialize)]
struct InclusionProof {
    index: u64,
    size: u64,
    hashes: Vec<String>,
}

/// A custody API token, `cst_<20 hex>_<64 hex>`. Its `Debug` form hides it, so printing the
/// options of a run never shows it; it is serialized as is (evidence-setup's output).
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Wraps a token as custody issued it.
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into().trim().to_owned())
    }

    /// The token itself, for a header or the one place that prints it on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it has the shape of a custody token (checked before use, so that a bad value is
    /// reported without being echoed).
    fn well_formed(&self) -> bool {
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        match self.0.strip_prefix("cst_").and_then(|r| r.split_once('_')) {
            Some((id, secret)) => hex(id, 20) && hex(secret, 64),
            None => false,
        }
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl std::str::FromStr for Token {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Token::new(s))
    }
}

/// How a mode authenticates to custody.
#[derive(Debug, Clone, clap::Args)]
pub struct Auth {
    /// API token (cst_...) sent as `Authorization: Bearer` on every request. Prefer the
    /// environment variable: a flag shows in `ps`.
    #[arg(long, env = "CUSTODY_TOKEN", hide_env_values = true)]
    pub token: Token,
}

/// Why the benchmark reads: sent as `Custody-Purpose` on every request to custody, recorded
/// with each access-logged read (payloads are only returned with a purpose).
const PURPOSE: &str = "benchmark";

/// Options of `http-append`.
#[derive(Debug, Clone, clap::Args)]
pub struct AppendArgs {
    /// Base URL of the custody server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: String,
    #[command(flatten)]
    pub auth: Auth,
    /// Tenant to append to; it must exist and the token must be one of its writers (the
    /// `principal` mode makes both).
    #[arg(long, default_value = "bench")]
    pub tenant: String,
    /// Log to append to.
    #[arg(long, default_value = "governance")]
    pub log: String,
    /// Concurrent requests.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Entries to append in all.
    #[arg(long, default_value_t = 20_000)]
    pub total: u64,
    /// Entries per request: 1 sends a JSON object, more send a JSON array.
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Length of each entry's `body.blob`.
    #[arg(long, default_value_t = 200)]
    pub payload_bytes: usize,
}

/// Options of `http-proof`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProofArgs {
    /// Base URL of the custody server.
    #[arg(long)]
    pub url: String,
    #[command(flatten)]
    pub auth: Auth,
    /// Tenant to read.
    #[arg(long, default_value = "bench")]
    pub tenant: String,
    /// Log to read.
    #[arg(long, default_value = "governance")]
    pub log: String,
    /// Concurrent requests.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Proofs to fetch in all.
    #[arg(long, default_value_t = 20_000)]
    pub total: u64,
}

/// Options of `siglog-add`.
#[derive(Debug, Clone, clap::Args)]
pub struct SiglogArgs {
    /// Base URL of the siglog server, e.g. http://127.0.0.1:2025.
    #[arg(long)]
    pub url: String,
    /// Concurrent requests.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Entries to add in all.
    #[arg(long, default_value_t = 20_000)]
    pub total: u64,
    /// Length of each entry's `body.blob`.
    #[arg(long, default_value_t = 200)]
    pub payload_bytes: usize,
    /// Seconds to wait after the run for siglog's checkpoint to cover every acked entry
    /// (it integrates roughly 500 to 1,300 entries/s, so 20,000 entries need about a minute).
    #[arg(long, default_value_t = 30)]
    pub integrate_timeout: u64,
}

/// One client for all tasks, keeping up to `concurrency` idle connections to the server.
/// With a token (custody), every request carries it and the benchmark's purpose; siglog
/// needs none.
pub(crate) fn client(concurrency: usize, token: Option<&Token>) -> Result<Client> {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        ensure!(
            token.well_formed(),
            "--token / CUSTODY_TOKEN is not a custody token: expected cst_<20 hex>_<64 hex>"
        );
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.0))
            .map_err(|_| anyhow!("the token is not a valid header value"))?;
        bearer.set_sensitive(true);
        headers.insert(AUTHORIZATION, bearer);
        headers.insert(
            HeaderName::from_static("custody-purpose"),
            HeaderValue::from_static(PURPOSE),
        );
    }
    Ok(Client::builder()
        .pool_max_idle_per_host(concurrency)
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .default_headers(headers)
        .build()?)
}

/// Runs `concurrency` copies of a worker, each given its number, and merges their tallies.
pub(crate) async fn run_workers<F, Fut>(concurrency: usize, worker: F) -> Result<Tally>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let mut set = JoinSet::new();
    for w in 0..concurrency {
        set.spawn(worker(w as u64));
    }
    let mut tally = Tally::default();
    while let Some(t) = set.join_next().await {
        tally.merge(t?);
    }
    Ok(tally)
}

/// Claims the next `n` sequence numbers, or `None` once `total` is reached; the last claim
/// may be short.
pub(crate) fn claim(next: &AtomicU64, n: u64, total: u64) -> Option<(u64, u64)> {
    let first = next.fetch_add(n, Ordering::Relaxed);
    (first < total).then(|| (first, n.min(total - first)))
}

/// The start of a response body, for error messages.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()
}

/// Sends one append request and checks that custody says every entry is already covered by
/// a signed checkpoint.
async fn post_append(client: &Client, url: &str, body: String, many: bool, n: u64) -> Result<()> {
    let resp = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if status != StatusCode::CREATED {
        bail!("HTTP {status}: {}", excerpt(&bytes));
    }
    let (results, size) = if many {
        let r: AppendResults = serde_json::from_slice(&bytes)?;
        (r.results, r.checkpoint_size)
    } else {
        let r: AppendResult = serde_json::from_slice(&bytes)?;
        let size = r.checkpoint_size;
        (vec![r], size)
    };
    ensure!(
        results.len() as u64 == n,
        "{} results for {n} entries",
        results.len()
    );
    for r in &results {
        ensure!(
            r.checkpoint_size > r.index && size > r.index,
            "entry {} acked with checkpoint size {}",
            r.index,
            r.checkpoint_size.min(size)
        );
    }
    Ok(())
}

/// `http-append`: appends `total` entries to a custody log.
pub async fn http_append(a: &AppendArgs) -> Result<Report> {
    ensure!(
        a.concurrency > 0 && a.batch > 0,
        "concurrency and batch must be positive"
    );
    let client = client(a.concurrency, Some(&a.auth.token))?;
    let base = a.url.trim_end_matches('/').to_string();
    let url: Arc<str> = format!("{base}/v1/tenants/{}/logs/{}/entries", a.tenant, a.log).into();
    let next = Arc::new(AtomicU64::new(0));
    let (total, batch, payload) = (a.total, a.batch, a.payload_bytes);
    let start = Instant::now();
    let tally = run_workers(a.concurrency, |w| {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        async move {
            let mut rng = Rng::new(w);
            let mut tally = Tally::default();
            while let Some((first, n)) = claim(&next, batch, total) {
                let body = if batch == 1 {
                    submission(first, &rng.blob(payload))
                } else {
                    let items: Vec<String> = (first..first + n)
                        .map(|s| submission(s, &rng.blob(payload)))
                        .collect();
                    format!("[{}]", items.join(","))
                };
                let t = Instant::now();
                match post_append(&client, &url, body, batch > 1, n).await {
                    Ok(()) => tally.ok(t.elapsed(), n),
                    Err(e) => tally.error(format!("append {first}: {e:#}")),
                }
            }
            tally
        }
    })
    .await?;
    Ok(Report::new(
        "http-append",
        a.concurrency,
        a.total,
        start.elapsed(),
        tally,
    )
    .with("batch", a.batch)
    .with("payload_bytes", a.payload_bytes as u64))
}

/// Tree size on line 2 of a checkpoint note.
fn checkpoint_size(note: &str) -> Result<u64> {
    let line = note
        .lines()
        .nth(1)
        .ok_or_else(|| anyhow!("checkpoint has no size line"))?;
    line.trim()
        .parse()
        .with_context(|| format!("checkpoint size {line:?}"))
}

/// Fetches one inclusion proof and checks it is for the leaf and size asked for.
async fn get_proof(client: &Client, url: &str, index: u64, size: u64) -> Result<()> {
    let resp = client
        .get(url)
        .query(&[("index", index), ("size", size)])
        .send()
        .await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if status != StatusCode::OK {
        bail!("HTTP {status}: {}", excerpt(&bytes));
    }
    let p: InclusionProof = serde_json::from_slice(&bytes)?;
    ensure!(
        p.index == index && p.size == size && (size == 1 || !p.hashes.is_empty()),
        "proof for {}/{} with {} hashes",
        p.index,
        p.size,
        p.hashes.len()
    );
    Ok(())
}

/// `http-proof`: fetches `total` inclusion proofs of random leaves at the current size.
pub async fn http_proof(a: &ProofArgs) -> Result<Report> {
    ensure!(a.concurrency > 0, "concurrency must be positive");
    let client = client(a.concurrency, Some(&a.auth.token))?;
    let base = format!(
        "{}/v1/tenants/{}/logs/{}",
        a.url.trim_end_matches('/'),
        a.tenant,
        a.log
    );
    let resp = client.get(format!("{base}/checkpoint")).send().await?;
    let status = resp.status();
    let note = resp.text().await?;
    ensure!(
        status == StatusCode::OK,
        "checkpoint: HTTP {status}: {note}"
    );
    let size = checkpoint_size(&note)?;
    ensure!(size > 0, "the log is empty: run http-append first");
    let url: Arc<str> = format!("{base}/proof/inclusion").into();
    let next = Arc::new(AtomicU64::new(0));
    let total = a.total;
    let start = Instant::now();
    let tally = run_workers(a.concurrency, |w| {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        async move {
            let mut rng = Rng::new(w);
            let mut tally = Tally::default();
            while claim(&next, 1, total).is_some() {
                let index = rng.below(size);
                let t = Instant::now();
                match get_proof(&client, &url, index, size).await {
                    Ok(()) => tally.ok(t.elapsed(), 1),
                    Err(e) => tally.error(format!("proof {index}: {e:#}")),
                }
            }
            tally
        }
    })
    .await?;
    Ok(
        Report::new("http-proof", a.concurrency, a.total, start.elapsed(), tally)
            .with("tree_size", size),
    )
}

/// How long siglog's checkpoint may stay the same size before integration counts as stopped.
const STALL: Duration = Duration::from_secs(15);

/// siglog's current tree size; 0 before its first checkpoint.
async fn siglog_size(client: &Client, base: &str) -> Result<u64> {
    let resp = client.get(format!("{base}/checkpoint")).send().await?;
    let status = resp.status();
    let note = resp.text().await?;
    if status == StatusCode::NOT_FOUND {
        return Ok(0);
    }
    ensure!(status.is_success(), "checkpoint: HTTP {status}: {note}");
    checkpoint_size(&note)
}

/// Sends one entry's bytes to siglog's `POST /add`.
async fn post_add(client: &Client, url: &str, body: String) -> Result<()> {
    let resp = client.post(url).body(body).send().await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if !status.is_success() {
        bail!("HTTP {status}: {}", excerpt(&bytes));
    }
    Ok(())
}

/// `siglog-add`: adds `total` entries to siglog, then waits for its checkpoint to cover them,
/// since siglog acknowledges an entry before any checkpoint includes it.
pub async fn siglog_add(a: &SiglogArgs) -> Result<Report> {
    ensure!(a.concurrency > 0, "concurrency must be positive");
    let client = client(a.concurrency, None)?;
    let base = a.url.trim_end_matches('/').to_string();
    let initial = siglog_size(&client, &base).await?;
    let url: Arc<str> = format!("{base}/add").into();
    let next = Arc::new(AtomicU64::new(0));
    let (total, payload) = (a.total, a.payload_bytes);
    let start = Instant::now();
    let tally = run_workers(a.concurrency, |w| {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        async move {
            let mut rng = Rng::new(w);
            let mut tally = Tally::default();
            while let Some((seq, _)) = claim(&next, 1, total) {
                let body = canonical_envelope(seq, &rng.blob(payload), "bench", "siglog");
                let t = Instant::now();
                match post_add(&client, &url, body).await {
                    Ok(()) => tally.ok(t.elapsed(), 1),
                    Err(e) => tally.error(format!("add {seq}: {e:#}")),
                }
            }
            tally
        }
    })
    .await?;
    let elapsed = start.elapsed();
    let target = initial + tally.ok_entries;

    let deadline = Instant::now() + Duration::from_secs(a.integrate_timeout);
    let mut size = initial;
    let mut last_growth = Instant::now();
    let mut reached = None;
    loop {
        match siglog_size(&client, &base).await {
            Ok(s) if s > size => {
                size = s;
                last_growth = Instant::now();
            }
            Ok(_) => {}
            Err(e) => eprintln!("polling checkpoint: {e:#}"),
        }
        if size >= target {
            reached = Some(start.elapsed().as_secs_f64());
            break;
        }
        // siglog integrates in chunks of about a thousand entries with pauses of several
        // seconds between them, and publishes a checkpoint every second: only a long pause
        // means it stopped.
        if Instant::now() >= deadline || last_growth.elapsed() > STALL {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(
        Report::new("siglog-add", a.concurrency, a.total, elapsed, tally)
            .with("payload_bytes", a.payload_bytes as u64)
            .with("integrated_entries", size - initial)
            .with(
                "seconds_until_integrated",
                reached.map(|s| (s * 1000.0).round() / 1000.0),
            ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_stop_at_total() {
        let next = AtomicU64::new(0);
        assert_eq!(claim(&next, 4, 10), Some((0, 4)));
        assert_eq!(claim(&next, 4, 10), Some((4, 4)));
        assert_eq!(claim(&next, 4, 10), Some((8, 2)));
        assert_eq!(claim(&next, 4, 10), None);
    }

    #[test]
    fn tokens_are_checked_and_never_shown() {
        let t = Token::new(format!("cst_{}_{}\n", "a1".repeat(10), "0f".repeat(32)));
        assert!(t.well_formed());
        assert!(!format!("{t:?}").contains("a1a1"));
        assert!(!Token::new("cst_abc_def").well_formed());
        assert!(!Token::new(format!("xst_{}_{}", "a1".repeat(10), "0f".repeat(32))).well_formed());
    }

    #[test]
    fn reads_checkpoint_size() {
        assert_eq!(checkpoint_size("example.com/log\n42\nroot=\n").unwrap(), 42);
        assert!(checkpoint_size("origin").is_err());
    }
}
