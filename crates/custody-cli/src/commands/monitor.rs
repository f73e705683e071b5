//! `custody monitor`: audits a C2SP tiled transparency log (c2sp.org/tlog-tiles), custody's own
//! `/tlog/{tenant}/{log}/` or any other implementation's, from its URL prefix or from a
//! directory laid out as the spec lays out URLs. The audit itself is
//! `custody_verify::tiles::monitor`; this module reads the log over HTTP (or hands the
//! directory to the library's source), shows progress and maps the outcome to an exit code.
//!
//! Exit codes: 0 verified; 2 the log contradicts itself (a tile, an entry or the root
//! disagrees with the signed checkpoint) or its earlier verified history (a fork or a
//! rollback); 3 the checkpoint is not signed by the pinned key, or names another origin; 1
//! anything else (network, files, malformed input), with one line naming what failed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use custody_core::note::NoteVerifier;
use custody_verify::tiles::{
    self, DirSource, FetchError, MonitorError, MonitorOptions, MonitorReport, TileSource,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::print;
use crate::settings::Settings;

/// Options of `custody monitor`.
#[derive(Args)]
pub struct MonitorArgs {
    /// The log: its tlog-tiles URL prefix (e.g.
    /// http://127.0.0.1:7878/tlog/acme/governance/) or a directory holding `checkpoint` and
    /// `tile/` as the spec lays them out.
    #[arg(value_name = "LOG")]
    pub log: String,
    /// The log's verifier key (`name+keyid+key`, a C2SP signed-note key), pinned out of band.
    #[arg(
        long,
        required_unless_present = "vkey_file",
        conflicts_with = "vkey_file"
    )]
    pub vkey: Option<String>,
    /// A file holding the log's verifier key.
    #[arg(long, value_name = "FILE")]
    pub vkey_file: Option<PathBuf>,
    /// The origin the checkpoint must name (default: the verifier key's name, which custody
    /// logs use as their origin).
    #[arg(long)]
    pub origin: Option<String>,
    /// File keeping the last verified checkpoint between runs (default:
    /// `custody-monitor-<origin>.state` in the current directory).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Check the tree from its hash tiles alone, without fetching entry bundles.
    #[arg(long)]
    pub hashes_only: bool,
}

/// A log's tlog-tiles URL prefix, read over HTTP(S).
struct HttpSource {
    /// The prefix, ending in `/`.
    base: url::Url,
    http: reqwest::Client,
    /// Sent as a bearer token; only to the origin of `--server`.
    token: Option<String>,
    /// Sent as `Custody-Purpose`, with the token.
    purpose: Option<String>,
    /// A token was given but withheld because this log is not at `--server`.
    withheld: bool,
}

impl HttpSource {
    /// Reads `LOG`, an `http(s)://` prefix. The global `--token` goes only to the scheme, host
    /// and port of `--server`, so a token set in the environment for one custody server never
    /// reaches another log.
    fn open(log: &str, settings: &Settings) -> anyhow::Result<HttpSource> {
        let mut base = url::Url::parse(log).with_context(|| format!("LOG {log}"))?;
        if base.query().is_some() || base.fragment().is_some() {
            bail!("LOG {log}: a tlog-tiles prefix has no query or fragment");
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let ca_cert = settings.ca_cert()?;
        let same_server =
            url::Url::parse(&settings.server).is_ok_and(|s| s.origin() == base.origin());
        let (token, purpose, withheld) = if same_server {
            (
                settings.token()?.map(str::to_owned),
                settings.purpose().map(str::to_owned),
                false,
            )
        } else {
            (None, None, settings.token().is_ok_and(|t| t.is_some()))
        };
        let builder = match ca_cert {
            Some(ca) => custody_client::http_builder(Some(&ca.pem))
                .map_err(|e| anyhow!("--ca-cert {}: {e}", ca.path.display()))?,
            None => custody_client::http_builder(None)?,
        };
        let http = builder
            .user_agent(concat!("custody-monitor/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(300))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(HttpSource {
            base,
            http,
            token,
            purpose,
            withheld,
        })
    }
}

impl TileSource for HttpSource {
    fn locate(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn fetch(&self, path: &str, limit: usize) -> Result<Option<Vec<u8>>, FetchError> {
        let at = self.locate(path);
        let mut req = self.http.get(&at);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(p) = &self.purpose {
            req = req.header("custody-purpose", p);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| FetchError(format!("GET {at}: {e}")))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let detail = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            let hint = match (status.as_u16(), self.token.is_some(), self.withheld) {
                (401, false, true) => {
                    "; --token is sent only to the scheme, host and port of --server: pass --server with this log's"
                }
                (401, false, false) => "; pass a token with --token or CUSTODY_TOKEN",
                _ => "",
            };
            return Err(FetchError(format!("GET {at}: {status}{detail}{hint}")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError(format!("GET {at}: {e}")))?
        {
            if body.len() + chunk.len() > limit {
                return Err(FetchError(format!(
                    "GET {at}: more than the {limit} bytes it may hold"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }
}

/// The verifier key from `--vkey` or `--vkey-file`.
fn verifier(args: &MonitorArgs) -> anyhow::Result<NoteVerifier> {
    let (text, from) = match (&args.vkey, &args.vkey_file) {
        (Some(v), _) => (v.clone(), "--vkey".to_owned()),
        (None, Some(path)) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --vkey-file {}", path.display()))?,
            format!("--vkey-file {}", path.display()),
        ),
        (None, None) => bail!("pass the log's verifier key with --vkey or --vkey-file"),
    };
    NoteVerifier::parse(text.trim()).map_err(|e| {
        anyhow!("{from}: {e}; expected a verifier key name+keyid+key, e.g. from `custody vkey`")
    })
}

/// Runs `custody monitor`; returns the exit code (see the module comment).
pub async fn run(args: MonitorArgs, settings: &Settings) -> anyhow::Result<i32> {
    let json = settings.json;
    let verifier = verifier(&args)?;
    let origin = args
        .origin
        .clone()
        .unwrap_or_else(|| verifier.name().to_owned());
    let options = MonitorOptions {
        state: args
            .state
            .clone()
            .unwrap_or_else(|| tiles::default_state_file(&origin)),
        verifier,
        origin,
        hashes_only: args.hashes_only,
    };
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} entries {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let outcome = if args.log.starts_with("http://") || args.log.starts_with("https://") {
        let source = HttpSource::open(&args.log, settings)?;
        tiles::monitor(&source, &options, progress).await
    } else {
        let dir = PathBuf::from(&args.log);
        if !dir.is_dir() {
            bail!(
                "LOG {}: neither an http(s):// URL nor a directory",
                args.log
            );
        }
        tiles::monitor(&DirSource::new(dir), &options, progress).await
    };
    bar.finish_and_clear();
    let (code, kind, label, detail) = match outcome {
        Ok(report) => {
            print_report(json, &report)?;
            return Ok(0);
        }
        Err(MonitorError::Mismatch(d)) => (2, "mismatch", "MISMATCH", d),
        Err(MonitorError::Fork(d)) => (2, "fork", "FORK", d),
        Err(MonitorError::Unsigned(d)) => (3, "bad_signature", "BAD SIGNATURE", d),
        Err(other) => return Err(other.into()),
    };
    print(
        json,
        &serde_json::json!({"ok": false, "problem": kind, "detail": detail}),
        || format!("{label}: {detail}"),
    )?;
    Ok(code)
}

/// Prints what a run that verified established.
fn print_report(json: bool, report: &MonitorReport) -> anyhow::Result<()> {
    print(json, report, || {
        format!(
            "OK: {} size {} root {} ({}): {} entries and {} tiles checked; {}; state in {}",
            report.origin,
            report.size,
            report.root_hex,
            report.root_base64,
            report.entries_checked,
            report.tiles_checked,
            match report.previous_size {
                Some(s) => format!("extends the size {s} verified before"),
                None => "first run".into(),
            },
            report.state.display()
        )
    })
}
