//! `custody monitor`: audits a C2SP tiled transparency log (c2sp.org/tlog-tiles), custody's own
//! `/tlog/{tenant}/{log}/` or any other implementation's, from its URL prefix or from a
//! directory laid out as the spec lays out URLs.
//!
//! A signed checkpoint only says "the tree of this size has this root". A monitor checks that
//! the log can back the claim with data: it opens the checkpoint with the key pinned out of
//! band, fetches every entry bundle and hash tile the tree of that size consists of, hashes
//! each entry into its leaf, rebuilds every level of the tree, compares each served tile with
//! the hashes rebuilt from below, and compares the root with the checkpoint's. It keeps the
//! last checkpoint it verified in a state file and, on the next run, requires the new tree to
//! start with exactly the old one, so a log that rewrites or forks its history is caught.
//!
//! Exit codes: 0 verified; 2 the log contradicts itself (a tile, an entry or the root
//! disagrees with the signed checkpoint) or its earlier verified history (a fork or a
//! rollback); 3 the checkpoint is not signed by the pinned key, or names another origin; 1
//! anything else (network, files, malformed input), with one line naming what failed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use custody_core::checkpoint::Checkpoint;
use custody_core::merkle::{self, Frontier, Hash};
use custody_core::note::{self, NoteError, NoteVerifier};
use custody_core::tiles::{self, TileKind, TilePath};
use futures_util::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::print;

/// Format tag of the state file, so a later version can tell what it reads.
const STATE_FORMAT: &str = "custody-monitor-state/v1";

/// Largest entry bundle: 256 entries of at most 65,535 bytes, each with a 2-byte length.
const MAX_BUNDLE_BYTES: usize = tiles::TILE_WIDTH as usize * (2 + tiles::MAX_BUNDLE_ENTRY);

/// Tiles and bundles fetched at once: enough to hide the latency of a remote log, few enough
/// not to trip its rate limits.
const CONCURRENT_FETCHES: usize = 8;

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

/// Why a run did not verify, by exit code.
enum Failure {
    /// The log's tiles, entries or root contradict its signed checkpoint (exit 2).
    Mismatch(String),
    /// The log's history contradicts the one verified before (exit 2).
    Fork(String),
    /// The checkpoint is not signed by the pinned key or names another origin (exit 3).
    Unsigned(String),
    /// Anything else: network, files, malformed input (exit 1).
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

/// What the monitor keeps between runs: the last checkpoint it verified, so the next run can
/// require the log to extend it.
#[derive(Serialize, Deserialize)]
struct State {
    /// Always [`STATE_FORMAT`].
    format: String,
    /// The log's origin.
    origin: String,
    /// Tree size verified.
    size: u64,
    /// Root at that size, standard base64.
    root: String,
    /// The signed checkpoint, verbatim: with a later, contradicting one it proves a fork.
    checkpoint: String,
}

/// The outcome printed on success.
#[derive(Serialize)]
struct Report {
    ok: bool,
    origin: String,
    size: u64,
    root_hex: String,
    root_base64: String,
    entries_checked: u64,
    tiles_checked: u64,
    previous_size: Option<u64>,
    state: PathBuf,
}

/// Where tiles come from: a log's URL prefix, or a directory copy of it.
enum Source {
    Http {
        /// The prefix, ending in `/`.
        base: url::Url,
        http: reqwest::Client,
        /// Sent as a bearer token; only to the origin of `--server`.
        token: Option<String>,
        /// Sent as `Custody-Purpose`, with the token.
        purpose: Option<String>,
        /// A token was given but withheld because this log is not at `--server`.
        withheld: bool,
    },
    Dir(PathBuf),
}

impl Source {
    /// Reads `LOG`: an `http(s)://` prefix or an existing directory. The global `--token` goes
    /// only to the scheme, host and port of `--server`, so a token set in the environment for
    /// one custody server never reaches another log.
    fn open(log: &str, server: &str) -> anyhow::Result<Source> {
        if log.starts_with("http://") || log.starts_with("https://") {
            let mut base = url::Url::parse(log).with_context(|| format!("LOG {log}"))?;
            if base.query().is_some() || base.fragment().is_some() {
                bail!("LOG {log}: a tlog-tiles prefix has no query or fragment");
            }
            if !base.path().ends_with('/') {
                base.set_path(&format!("{}/", base.path()));
            }
            let (token, purpose, ca) = crate::CONNECTION.get().cloned().unwrap_or_default();
            let same_server = url::Url::parse(server).is_ok_and(|s| s.origin() == base.origin());
            let withheld = token.is_some() && !same_server;
            let (token, purpose) = if same_server {
                (token, purpose)
            } else {
                (None, None)
            };
            let builder = match ca {
                Some(path) => {
                    let pem = std::fs::read(&path)
                        .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
                    custody_client::http_builder(Some(&pem))
                        .map_err(|e| anyhow!("--ca-cert {}: {e}", path.display()))?
                }
                None => custody_client::http_builder(None)?,
            };
            let http = builder
                .user_agent(concat!("custody-monitor/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(15))
                .timeout(Duration::from_secs(300))
                .build()
                .context("cannot set up the HTTP client")?;
            return Ok(Source::Http {
                base,
                http,
                token,
                purpose,
                withheld,
            });
        }
        let dir = PathBuf::from(log);
        if !dir.is_dir() {
            bail!("LOG {log}: neither an http(s):// URL nor a directory");
        }
        Ok(Source::Dir(dir))
    }

    /// Where `path` is read from, for messages.
    fn locate(&self, path: &str) -> String {
        match self {
            Source::Http { base, .. } => format!("{base}{path}"),
            Source::Dir(dir) => dir.join(path).display().to_string(),
        }
    }

    /// The resource at `path` (relative to the prefix), `None` if the log does not have it.
    async fn get(&self, path: &str, limit: usize) -> anyhow::Result<Option<Vec<u8>>> {
        let at = self.locate(path);
        match self {
            Source::Dir(dir) => {
                let file = dir.join(path);
                match tokio::fs::metadata(&file).await {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(anyhow!("{at}: {e}")),
                    Ok(m) if m.len() > limit as u64 => {
                        bail!("{at}: {} bytes, more than the {limit} it may hold", m.len())
                    }
                    Ok(_) => {}
                }
                Ok(Some(
                    tokio::fs::read(&file)
                        .await
                        .with_context(|| format!("cannot read {at}"))?,
                ))
            }
            Source::Http {
                http,
                token,
                purpose,
                withheld,
                ..
            } => {
                let mut req = http.get(&at);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                if let Some(p) = purpose {
                    req = req.header("custody-purpose", p);
                }
                let mut resp = req.send().await.map_err(|e| anyhow!("GET {at}: {e}"))?;
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
                    let hint = match (status.as_u16(), token.is_some(), withheld) {
                        (401, false, true) => {
                            "; --token is sent only to the scheme, host and port of --server: pass --server with this log's"
                        }
                        (401, false, false) => "; pass a token with --token or CUSTODY_TOKEN",
                        _ => "",
                    };
                    bail!("GET {at}: {status}{detail}{hint}");
                }
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(|e| anyhow!("GET {at}: {e}"))? {
                    if body.len() + chunk.len() > limit {
                        bail!("GET {at}: more than the {limit} bytes it may hold");
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Some(body))
            }
        }
    }

    /// A tile or bundle the checkpoint requires. A partial one the log no longer serves is
    /// read from the full tile, of which it is a prefix (tlog-tiles §"Partial Tiles").
    /// Returns the body and the width it was served at.
    async fn tile(&self, tile: TilePath) -> anyhow::Result<(Vec<u8>, u16)> {
        let limit = match tile.kind {
            TileKind::Entries => MAX_BUNDLE_BYTES,
            TileKind::Hashes(_) => tiles::FULL_TILE_BYTES,
        };
        if let Some(body) = self.get(&tile.to_string(), limit).await? {
            return Ok((body, tile.width));
        }
        if !tile.is_full()
            && let Some(body) = self.get(&tile.full().to_string(), limit).await?
        {
            return Ok((body, tiles::TILE_WIDTH));
        }
        bail!(
            "{}: not found, but the checkpoint's tree needs it",
            self.locate(&tile.to_string())
        )
    }

    /// The first `tile.width` hashes of a hash tile.
    async fn hashes(&self, tile: TilePath) -> Result<Vec<Hash>, Failure> {
        let (body, served) = self.tile(tile).await?;
        let mut hashes = tiles::tile_hashes(&body, served)
            .map_err(|e| Failure::Mismatch(format!("{tile}: {e}")))?;
        hashes.truncate(usize::from(tile.width));
        Ok(hashes)
    }

    /// The first `tile.width` entries of an entry bundle.
    async fn entries(&self, tile: TilePath) -> Result<Vec<Vec<u8>>, Failure> {
        let (body, served) = self.tile(tile).await?;
        let entries =
            tiles::decode_bundle(&body).map_err(|e| Failure::Mismatch(format!("{tile}: {e}")))?;
        if entries.len() != usize::from(served) {
            return Err(Failure::Mismatch(format!(
                "{tile}: holds {} entries, a bundle of width {served} holds {served}",
                entries.len()
            )));
        }
        Ok(entries
            .into_iter()
            .take(usize::from(tile.width))
            .map(<[u8]>::to_vec)
            .collect())
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

/// Opens the signed checkpoint with the pinned key and checks its origin.
fn open_checkpoint(
    bytes: &[u8],
    verifier: &NoteVerifier,
    origin: &str,
    at: &str,
) -> Result<Checkpoint, Failure> {
    let key = format!("{}+{}", verifier.name(), hex::encode(verifier.key_id()));
    let opened = note::open_bytes(bytes, std::slice::from_ref(verifier)).map_err(|e| match e {
        NoteError::Unverified => Failure::Unsigned(format!(
            "{at} carries no signature by {key}: not this log, or the log changed its key"
        )),
        NoteError::InvalidSignature { .. } => {
            Failure::Unsigned(format!("{at}: the signature by {key} does not verify"))
        }
        other => Failure::Other(anyhow!("{at} is not a signed note: {other}")),
    })?;
    let cp = Checkpoint::parse(&opened.text)
        .map_err(|e| Failure::Other(anyhow!("{at} is not a checkpoint: {e}")))?;
    if cp.origin != origin {
        return Err(Failure::Unsigned(format!(
            "{at} names origin {:?}, not {origin:?} (--origin, by default the key's name)",
            cp.origin
        )));
    }
    Ok(cp)
}

/// `custody-monitor-<origin>.state`, with every character that is not a letter, digit, dot or
/// dash replaced, so one directory can hold the state of many logs.
fn default_state(origin: &str) -> PathBuf {
    let name: String = origin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(format!("custody-monitor-{name}.state"))
}

/// The state of an earlier run, if there was one; refused if it belongs to another log or
/// does not agree with itself.
fn load_state(path: &Path, origin: &str) -> anyhow::Result<Option<(State, Hash)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("cannot read --state {}: {e}", path.display())),
    };
    let bad = |why: String| anyhow!("--state {}: {why}", path.display());
    let state: State =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a monitor state file: {e}")))?;
    if state.format != STATE_FORMAT {
        return Err(bad(format!("unknown format {:?}", state.format)));
    }
    if state.origin != origin {
        return Err(bad(format!(
            "it is the state of {:?}, not {origin:?}; pass another --state",
            state.origin
        )));
    }
    let root = Hash::from_base64(&state.root).map_err(|e| bad(format!("root: {e}")))?;
    let kept = note::Note::parse(&state.checkpoint)
        .map_err(anyhow::Error::from)
        .and_then(|n| Ok(Checkpoint::parse(&n.text)?))
        .map_err(|e| bad(format!("checkpoint: {e}")))?;
    if kept.size != state.size || kept.root != root || kept.origin != origin {
        return Err(bad("its checkpoint does not match its size and root".into()));
    }
    Ok(Some((state, root)))
}

/// Replaces the state file in one step (a temporary file beside it, synced, then renamed), so
/// an interrupted run leaves the previous state, never half of one.
fn save_state(path: &Path, state: &State) -> anyhow::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(serde_json::to_string_pretty(state)?.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write --state {}", path.display()))
}

/// What rebuilding the tree established.
struct Rebuilt {
    root: Hash,
    /// Root of the first `previous` leaves, when a previous size was given.
    previous_root: Option<Hash>,
    entries: u64,
    tiles: u64,
}

/// Rebuilds the tree of `size` leaves from the log's tiles: every level-0 tile (and, unless
/// `hashes_only`, its entry bundle, each entry hashed into its leaf), then every tile of the
/// levels above compared with the hashes rebuilt from below. Also records the root of the
/// first `previous` leaves on the way, which is how a later checkpoint is proven to extend an
/// earlier one without a consistency proof.
///
/// Every run rebuilds the whole tree, refetching every tile: the state keeps only the last
/// checkpoint, and the monitor trusts nothing from the log it has not recomputed this run.
async fn rebuild(
    source: &Source,
    size: u64,
    previous: Option<u64>,
    hashes_only: bool,
    bar: &ProgressBar,
) -> Result<Rebuilt, Failure> {
    let mut frontier = Frontier::new();
    // Rebuilt hashes of tree levels 8, 16, ..., 56: what tile levels 1 to 7 must hold.
    let mut above: Vec<Vec<Hash>> = vec![Vec::new(); 8];
    let mut previous_root = None;
    let mut entries_checked = 0u64;
    let mut tiles_checked = 0u64;
    let mut level0 = stream::iter(tiles::tiles(TileKind::Hashes(0), size))
        .map(|tile| async move {
            let hashes = source.hashes(tile).await?;
            let entries = if hashes_only {
                None
            } else {
                let bundle = TilePath {
                    kind: TileKind::Entries,
                    ..tile
                };
                Some((bundle, source.entries(bundle).await?))
            };
            Ok::<_, Failure>((tile, hashes, entries))
        })
        .buffered(CONCURRENT_FETCHES);
    while let Some(fetched) = level0.next().await {
        let (tile, hashes, entries) = fetched?;
        let first = tile.first().unwrap_or(0);
        tiles_checked += 1;
        if let Some((bundle, entries)) = entries {
            tiles_checked += 1;
            for (i, (entry, hash)) in entries.iter().zip(&hashes).enumerate() {
                let leaf = merkle::leaf_hash(entry);
                if leaf != *hash {
                    return Err(Failure::Mismatch(format!(
                        "entry {} hashes to {leaf}, but {tile} holds {hash} for it (entry {i} of {bundle})",
                        first + i as u64
                    )));
                }
            }
            entries_checked += entries.len() as u64;
        }
        for hash in hashes {
            if previous == Some(frontier.size()) {
                previous_root = Some(frontier.root());
            }
            let completed = frontier
                .try_push(hash)
                .map_err(|e| Failure::Other(anyhow!("{e}")))?;
            for (subtree, h) in completed {
                if subtree.level > 0 && subtree.level % 8 == 0 {
                    above[usize::from(subtree.level / 8)].push(h);
                }
            }
        }
        bar.inc(u64::from(tile.width));
    }
    if previous == Some(frontier.size()) {
        previous_root = Some(frontier.root());
    }
    for level in 1..=7u8 {
        let rebuilt = &above[usize::from(level)];
        let wanted: Vec<TilePath> = tiles::tiles(TileKind::Hashes(level), size).collect();
        let mut fetched = stream::iter(wanted)
            .map(|tile| async move { Ok::<_, Failure>((tile, source.hashes(tile).await?)) })
            .buffered(CONCURRENT_FETCHES);
        while let Some(item) = fetched.next().await {
            let (tile, hashes) = item?;
            let first = tile.first().unwrap_or(0);
            for (i, served) in hashes.iter().enumerate() {
                let index = first + i as u64;
                let below = usize::try_from(index)
                    .ok()
                    .and_then(|i| rebuilt.get(i))
                    .ok_or_else(|| {
                        Failure::Other(anyhow!("{tile}: hash {i} is beyond the rebuilt tree"))
                    })?;
                if below != served {
                    return Err(Failure::Mismatch(format!(
                        "{tile} holds {served} at position {i}, but the tiles below hash to {below}"
                    )));
                }
            }
            tiles_checked += 1;
        }
    }
    Ok(Rebuilt {
        root: frontier.root(),
        previous_root,
        entries: entries_checked,
        tiles: tiles_checked,
    })
}

/// Runs `custody monitor`; returns the exit code (see the module comment).
pub async fn run(args: MonitorArgs, server: &str, json: bool) -> anyhow::Result<i32> {
    let failure = match monitor(&args, server, json).await {
        Ok(()) => return Ok(0),
        Err(Failure::Other(e)) => return Err(e),
        Err(f) => f,
    };
    let (code, kind, label, detail) = match failure {
        Failure::Mismatch(d) => (2, "mismatch", "MISMATCH", d),
        Failure::Fork(d) => (2, "fork", "FORK", d),
        Failure::Unsigned(d) => (3, "bad_signature", "BAD SIGNATURE", d),
        Failure::Other(e) => return Err(e),
    };
    print(
        json,
        &serde_json::json!({"ok": false, "problem": kind, "detail": detail}),
        || format!("{label}: {detail}"),
    )?;
    Ok(code)
}

async fn monitor(args: &MonitorArgs, server: &str, json: bool) -> Result<(), Failure> {
    let verifier = verifier(args)?;
    let origin = args
        .origin
        .clone()
        .unwrap_or_else(|| verifier.name().to_owned());
    let source = Source::open(&args.log, server)?;
    let state_path = args.state.clone().unwrap_or_else(|| default_state(&origin));
    let previous = load_state(&state_path, &origin)?;

    let at = source.locate("checkpoint");
    let note_bytes = source
        .get("checkpoint", note::MAX_NOTE_SIZE)
        .await?
        .ok_or_else(|| anyhow!("{at}: not found"))?;
    let cp = open_checkpoint(&note_bytes, &verifier, &origin, &at)?;
    let note_text = String::from_utf8_lossy(&note_bytes).into_owned();

    if let Some((old, old_root)) = &previous {
        let fork = |why: &str| {
            Failure::Fork(format!(
                "{origin}: {why} (the checkpoint of size {} with root {} in {}, now size {} with root {})",
                old.size,
                old_root.to_base64(),
                state_path.display(),
                cp.size,
                cp.root.to_base64()
            ))
        };
        if cp.size < old.size {
            return Err(fork("the log shrank below the size verified before"));
        }
        if cp.size == old.size && cp.root != *old_root {
            return Err(fork("the log signed two different roots for the same size"));
        }
    }

    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(cp.size)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} entries {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let rebuilt = rebuild(
        &source,
        cp.size,
        previous.as_ref().map(|(s, _)| s.size),
        args.hashes_only,
        &bar,
    )
    .await;
    bar.finish_and_clear();
    let rebuilt = rebuilt?;
    if rebuilt.root != cp.root {
        return Err(Failure::Mismatch(format!(
            "{origin}: the tiles give root {} for size {}, but the checkpoint signs {}",
            rebuilt.root.to_base64(),
            cp.size,
            cp.root.to_base64()
        )));
    }
    if let Some((old, old_root)) = &previous
        && rebuilt.previous_root != Some(*old_root)
    {
        return Err(Failure::Fork(format!(
            "{origin}: the tree of size {} does not extend the one verified before: its first {} leaves have root {}, the checkpoint in {} signs {}",
            cp.size,
            old.size,
            rebuilt
                .previous_root
                .map(|r| r.to_base64())
                .unwrap_or_default(),
            state_path.display(),
            old_root.to_base64()
        )));
    }

    save_state(
        &state_path,
        &State {
            format: STATE_FORMAT.into(),
            origin: origin.clone(),
            size: cp.size,
            root: cp.root.to_base64(),
            checkpoint: note_text,
        },
    )?;
    let report = Report {
        ok: true,
        origin,
        size: cp.size,
        root_hex: cp.root.to_hex(),
        root_base64: cp.root.to_base64(),
        entries_checked: rebuilt.entries,
        tiles_checked: rebuilt.tiles,
        previous_size: previous.as_ref().map(|(s, _)| s.size),
        state: state_path,
    };
    print(json, &report, || {
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
    .map_err(Failure::Other)
}
