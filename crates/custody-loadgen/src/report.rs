//! What one run measured: latency percentiles, throughput, errors, and the one-line and JSON
//! forms it is printed in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

/// Errors printed so far by all workers of this process.
static PRINTED_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Errors printed per run; the rest are only counted.
const MAX_PRINTED_ERRORS: u64 = 5;

/// Latencies and counts gathered by one worker; merged into a [`Report`] at the end.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency of each successful operation (a request, or a row for SQLite), in microseconds.
    pub latencies_us: Vec<u32>,
    /// Entries that were acknowledged as stored.
    pub ok_entries: u64,
    /// Failed operations (requests or rows).
    pub errors: u64,
}

impl Tally {
    /// Records one successful operation covering `entries` entries.
    pub fn ok(&mut self, elapsed: Duration, entries: u64) {
        let us = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(us);
        self.ok_entries += entries;
    }

    /// Records one failure, printing the first few of the run to stderr so a broken run is
    /// obvious without flooding the terminal.
    pub fn error(&mut self, what: impl std::fmt::Display) {
        if PRINTED_ERRORS.fetch_add(1, Ordering::Relaxed) < MAX_PRINTED_ERRORS {
            eprintln!("error: {what}");
        }
        self.errors += 1;
    }

    /// Adds another worker's tally to this one.
    pub fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.ok_entries += other.ok_entries;
        self.errors += other.errors;
    }
}

/// The result of one run, one JSON line in a results file.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Subcommand that ran, e.g. `http-append`.
    pub mode: String,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Entries (or proofs) attempted.
    pub total: u64,
    /// Entries (or proofs) that succeeded.
    pub ok: u64,
    /// Wall-clock seconds of the measured phase.
    pub seconds: f64,
    /// Successful entries (or proofs) per second.
    pub ops_per_sec: f64,
    /// Median latency of a successful operation, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile latency, in milliseconds.
    pub p999_ms: f64,
    /// Failed operations.
    pub errors: u64,
    /// Resident set size of `--pid` at the end of the run, in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_mb: Option<f64>,
    /// Mode-specific figures (batch size, payload size, integration time, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Value at percentile `p` (0..=1) of sorted latencies, in milliseconds; 0 when empty.
pub fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    f64::from(sorted[idx]) / 1000.0
}

/// Rounds to three decimals so JSON lines stay readable.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Report {
    /// Builds a report from merged worker tallies and the measured wall-clock time.
    pub fn new(
        mode: &str,
        concurrency: usize,
        total: u64,
        elapsed: Duration,
        mut tally: Tally,
    ) -> Self {
        tally.latencies_us.sort_unstable();
        let seconds = elapsed.as_secs_f64();
        let l = &tally.latencies_us;
        Report {
            mode: mode.to_string(),
            concurrency,
            total,
            ok: tally.ok_entries,
            seconds: round3(seconds),
            ops_per_sec: if seconds > 0.0 {
                round3(tally.ok_entries as f64 / seconds)
            } else {
                0.0
            },
            p50_ms: round3(percentile_ms(l, 0.50)),
            p99_ms: round3(percentile_ms(l, 0.99)),
            p999_ms: round3(percentile_ms(l, 0.999)),
            errors: tally.errors,
            rss_mb: None,
            extra: Map::new(),
        }
    }

    /// Adds a mode-specific figure.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// The one-line human summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} c={} total={} ok={} errors={} in {:.2}s: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            self.mode,
            self.concurrency,
            self.total,
            self.ok,
            self.errors,
            self.seconds,
            self.ops_per_sec,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms
        );
        if let Some(rss) = self.rss_mb {
            s.push_str(&format!(", rss {rss:.1} MiB"));
        }
        for (k, v) in &self.extra {
            s.push_str(&format!(", {k}={v}"));
        }
        s
    }
}

/// Resident set size of a process in MiB, read from `VmRSS` in `/proc/<pid>/status`.
pub fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))?;
    let kb: f64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(round3(kb / 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.5), 500.0);
        assert_eq!(percentile_ms(&v, 0.99), 990.0);
        assert_eq!(percentile_ms(&v, 0.999), 999.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
        assert_eq!(percentile_ms(&[7000], 0.999), 7.0);
    }
}
