//! Monitoring a C2SP tiled transparency log (c2sp.org/tlog-tiles), custody's own
//! `/tlog/{tenant}/{log}/` or any other implementation's, read through a [`TileSource`]: a
//! directory laid out as the spec lays out URLs ([`DirSource`]), or anything else that can
//! fetch a path's bytes (the CLI's HTTP source).
//!
//! A signed checkpoint only says "the tree of this size has this root". A monitor checks that
//! the log can back the claim with data: it opens the checkpoint with the key pinned out of
//! band, fetches every entry bundle and hash tile the tree of that size consists of, hashes
//! each entry into its leaf, rebuilds every level of the tree, compares each served tile with
//! the hashes rebuilt from below, and compares the root with the checkpoint's. It keeps the
//! last checkpoint it verified in a state file and, on the next run, requires the new tree to
//! start with exactly the old one, so a log that rewrites or forks its history is caught.
//!
//! [`monitor`] tells the three findings apart ([`MonitorError::Mismatch`],
//! [`MonitorError::Fork`], [`MonitorError::Unsigned`]) from a run that could not finish, so a
//! caller can give each its own exit code.

use std::future::Future;
use std::path::{Path, PathBuf};

use custody_core::checkpoint::Checkpoint;
use custody_core::merkle::{self, Frontier, Hash, MerkleError};
use custody_core::note::{self, NoteError, NoteVerifier};
use custody_core::tiles::{self, TileKind, TilePath};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};

/// Format tag of the state file, so a later version can tell what it reads.
const STATE_FORMAT: &str = "custody-monitor-state/v1";

/// Largest entry bundle: 256 entries of at most 65,535 bytes, each with a 2-byte length.
const MAX_BUNDLE_BYTES: usize = tiles::TILE_WIDTH as usize * (2 + tiles::MAX_BUNDLE_ENTRY);

/// Tiles and bundles fetched at once: enough to hide the latency of a remote log, few enough
/// not to trip its rate limits.
const CONCURRENT_FETCHES: usize = 8;

/// Where a tiled log's files come from. Paths are relative to the log's prefix
/// (`checkpoint`, `tile/0/000`, `tile/entries/000.p/7`).
pub trait TileSource: Sync {
    /// Where `path` is read from, for messages: a URL or a file name.
    fn locate(&self, path: &str) -> String;

    /// The bytes at `path`, refused if there are more than `limit`; `None` when the log does
    /// not have it.
    fn fetch(
        &self,
        path: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, FetchError>> + Send;
}

/// Why a source could not deliver a path: a network, HTTP or file error, said in one line that
/// names the URL or file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// A copy of a tiled log in a directory: `checkpoint` and `tile/` as the spec lays out URLs.
#[derive(Debug, Clone)]
pub struct DirSource {
    dir: PathBuf,
}

impl DirSource {
    /// The log copied into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl TileSource for DirSource {
    fn locate(&self, path: &str) -> String {
        self.dir.join(path).display().to_string()
    }

    async fn fetch(&self, path: &str, limit: usize) -> Result<Option<Vec<u8>>, FetchError> {
        let at = self.locate(path);
        let file = self.dir.join(path);
        match tokio::fs::metadata(&file).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FetchError(format!("{at}: {e}"))),
            Ok(m) if m.len() > limit as u64 => {
                return Err(FetchError(format!(
                    "{at}: {} bytes, more than the {limit} it may hold",
                    m.len()
                )));
            }
            Ok(_) => {}
        }
        tokio::fs::read(&file)
            .await
            .map(Some)
            .map_err(|e| FetchError(format!("cannot read {at}: {e}")))
    }
}

/// Why a run did not verify. The first three are findings about the log; the rest mean the
/// run could not finish.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The log's tiles, entries or root contradict its signed checkpoint.
    #[error("{0}")]
    Mismatch(String),
    /// The log's history contradicts the one verified before: a fork or a rollback.
    #[error("{0}")]
    Fork(String),
    /// The checkpoint is not signed by the pinned key, or names another origin.
    #[error("{0}")]
    Unsigned(String),
    /// The source could not deliver a file.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The log has no checkpoint.
    #[error("{0}: not found")]
    NoCheckpoint(String),
    /// The log lacks a tile or bundle its checkpoint's tree consists of.
    #[error("{0}: not found, but the checkpoint's tree needs it")]
    MissingTile(String),
    /// The checkpoint is not a signed note.
    #[error("{at} is not a signed note: {reason}")]
    NotANote {
        /// Where it was read.
        at: String,
        /// What is wrong with it.
        reason: NoteError,
    },
    /// The signed note's text is not a checkpoint.
    #[error("{at} is not a checkpoint: {reason}")]
    NotACheckpoint {
        /// Where it was read.
        at: String,
        /// What is wrong with it.
        reason: custody_core::checkpoint::CheckpointError,
    },
    /// The tree cannot hold the checkpoint's size.
    #[error("{0}")]
    Tree(MerkleError),
    /// A tile above level 0 holds more hashes than the tree rebuilt below it.
    #[error("{tile}: hash {position} is beyond the rebuilt tree")]
    BeyondTree {
        /// The tile.
        tile: TilePath,
        /// The position of the hash in it.
        position: usize,
    },
    /// The state file of an earlier run cannot be used.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Why the state file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading it failed.
    #[error("cannot read --state {}: {reason}", path.display())]
    Unreadable {
        /// The state file.
        path: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
    /// It is not the state of this log as this version writes it.
    #[error("--state {}: {reason}", path.display())]
    Invalid {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing it failed.
    #[error("cannot write --state {}", path.display())]
    Unwritable {
        /// The state file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
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

/// What a run that verified established.
#[derive(Debug, Serialize)]
pub struct MonitorReport {
    /// Always true: a run that found a problem returns a [`MonitorError`].
    pub ok: bool,
    /// The log's origin.
    pub origin: String,
    /// The tree size verified.
    pub size: u64,
    /// Its root, hex.
    pub root_hex: String,
    /// Its root, standard base64 (as the checkpoint spells it).
    pub root_base64: String,
    /// Entries hashed into their leaves.
    pub entries_checked: u64,
    /// Hash tiles and entry bundles compared.
    pub tiles_checked: u64,
    /// The size verified on the previous run, if there was one.
    pub previous_size: Option<u64>,
    /// The state file, now holding this run's checkpoint.
    pub state: PathBuf,
}

/// What one run checks: against which key and origin, keeping its state where.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// The log's verifier key, pinned out of band.
    pub verifier: NoteVerifier,
    /// The origin the checkpoint must name.
    pub origin: String,
    /// The file keeping the last verified checkpoint between runs.
    pub state: PathBuf,
    /// Check the tree from its hash tiles alone, without fetching entry bundles.
    pub hashes_only: bool,
}

/// `custody-monitor-<origin>.state`, with every character that is not a letter, digit, dot or
/// dash replaced, so one directory can hold the state of many logs.
pub fn default_state_file(origin: &str) -> PathBuf {
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

/// A tile or bundle the checkpoint requires. A partial one the log no longer serves is read
/// from the full tile, of which it is a prefix (tlog-tiles §"Partial Tiles"). Returns the
/// body and the width it was served at.
async fn fetch_tile(
    source: &impl TileSource,
    tile: TilePath,
) -> Result<(Vec<u8>, u16), MonitorError> {
    let limit = match tile.kind {
        TileKind::Entries => MAX_BUNDLE_BYTES,
        TileKind::Hashes(_) => tiles::FULL_TILE_BYTES,
    };
    if let Some(body) = source.fetch(&tile.to_string(), limit).await? {
        return Ok((body, tile.width));
    }
    if !tile.is_full()
        && let Some(body) = source.fetch(&tile.full().to_string(), limit).await?
    {
        return Ok((body, tiles::TILE_WIDTH));
    }
    Err(MonitorError::MissingTile(source.locate(&tile.to_string())))
}

/// The first `tile.width` hashes of a hash tile.
async fn served_hashes(source: &impl TileSource, at: TilePath) -> Result<Vec<Hash>, MonitorError> {
    let (body, served) = fetch_tile(source, at).await?;
    let mut hashes = tiles::tile_hashes(&body, served)
        .map_err(|e| MonitorError::Mismatch(format!("{at}: {e}")))?;
    hashes.truncate(usize::from(at.width));
    Ok(hashes)
}

/// The first `tile.width` entries of an entry bundle.
async fn served_entries(
    source: &impl TileSource,
    at: TilePath,
) -> Result<Vec<Vec<u8>>, MonitorError> {
    let (body, served) = fetch_tile(source, at).await?;
    let entries =
        tiles::decode_bundle(&body).map_err(|e| MonitorError::Mismatch(format!("{at}: {e}")))?;
    if entries.len() != usize::from(served) {
        return Err(MonitorError::Mismatch(format!(
            "{at}: holds {} entries, a bundle of width {served} holds {served}",
            entries.len()
        )));
    }
    Ok(entries
        .into_iter()
        .take(usize::from(at.width))
        .map(<[u8]>::to_vec)
        .collect())
}

/// Opens the signed checkpoint with the pinned key and checks its origin.
fn open_checkpoint(
    bytes: &[u8],
    verifier: &NoteVerifier,
    origin: &str,
    at: &str,
) -> Result<Checkpoint, MonitorError> {
    let key = format!("{}+{}", verifier.name(), hex::encode(verifier.key_id()));
    let opened = note::open_bytes(bytes, std::slice::from_ref(verifier)).map_err(|e| match e {
        NoteError::Unverified => MonitorError::Unsigned(format!(
            "{at} carries no signature by {key}: not this log, or the log changed its key"
        )),
        NoteError::InvalidSignature { .. } => {
            MonitorError::Unsigned(format!("{at}: the signature by {key} does not verify"))
        }
        reason => MonitorError::NotANote {
            at: at.to_owned(),
            reason,
        },
    })?;
    let cp = Checkpoint::parse(&opened.text).map_err(|reason| MonitorError::NotACheckpoint {
        at: at.to_owned(),
        reason,
    })?;
    if cp.origin != origin {
        return Err(MonitorError::Unsigned(format!(
            "{at} names origin {:?}, not {origin:?} (--origin, by default the key's name)",
            cp.origin
        )));
    }
    Ok(cp)
}

/// The state of an earlier run, if there was one; refused if it belongs to another log or
/// does not agree with itself.
fn load_state(path: &Path, origin: &str) -> Result<Option<(State, Hash)>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(reason) => {
            return Err(StateError::Unreadable {
                path: path.to_path_buf(),
                reason,
            });
        }
    };
    let bad = |reason: String| StateError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
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
        .map_err(|e| e.to_string())
        .and_then(|n| Checkpoint::parse(&n.text).map_err(|e| e.to_string()))
        .map_err(|e| bad(format!("checkpoint: {e}")))?;
    if kept.size != state.size || kept.root != root || kept.origin != origin {
        return Err(bad("its checkpoint does not match its size and root".into()));
    }
    Ok(Some((state, root)))
}

/// Replaces the state file in one step (a temporary file beside it, synced, then renamed), so
/// an interrupted run leaves the previous state, never half of one.
fn save_state(path: &Path, state: &State) -> Result<(), StateError> {
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
    write().map_err(|source| StateError::Unwritable {
        path: path.to_path_buf(),
        source,
    })
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
/// earlier one without a consistency proof. `progress` is told the leaves rebuilt so far.
///
/// Every run rebuilds the whole tree, refetching every tile: the state keeps only the last
/// checkpoint, and the monitor trusts nothing from the log it has not recomputed this run.
async fn rebuild(
    source: &impl TileSource,
    size: u64,
    previous: Option<u64>,
    hashes_only: bool,
    mut progress: impl FnMut(u64),
) -> Result<Rebuilt, MonitorError> {
    let mut frontier = Frontier::new();
    // Rebuilt hashes of tree levels 8, 16, ..., 56: what tile levels 1 to 7 must hold.
    let mut above: Vec<Vec<Hash>> = vec![Vec::new(); 8];
    let mut previous_root = None;
    let mut entries_checked = 0u64;
    let mut tiles_checked = 0u64;
    let mut level0 = stream::iter(tiles::tiles(TileKind::Hashes(0), size))
        .map(|tile| async move {
            let hashes = served_hashes(source, tile).await?;
            let bundle = if hashes_only {
                None
            } else {
                let bundle = TilePath {
                    kind: TileKind::Entries,
                    ..tile
                };
                Some((bundle, served_entries(source, bundle).await?))
            };
            Ok::<_, MonitorError>((tile, hashes, bundle))
        })
        .buffered(CONCURRENT_FETCHES);
    while let Some(fetched) = level0.next().await {
        let (tile, hashes, bundle) = fetched?;
        let first = tile.first().unwrap_or(0);
        tiles_checked += 1;
        if let Some((bundle, entries)) = bundle {
            tiles_checked += 1;
            for (i, (entry, hash)) in entries.iter().zip(&hashes).enumerate() {
                let leaf = merkle::leaf_hash(entry);
                if leaf != *hash {
                    return Err(MonitorError::Mismatch(format!(
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
            let completed = frontier.try_push(hash).map_err(MonitorError::Tree)?;
            for (subtree, h) in completed {
                if subtree.level > 0 && subtree.level % 8 == 0 {
                    above[usize::from(subtree.level / 8)].push(h);
                }
            }
        }
        progress(frontier.size());
    }
    if previous == Some(frontier.size()) {
        previous_root = Some(frontier.root());
    }
    for level in 1..=7u8 {
        let rebuilt = &above[usize::from(level)];
        let wanted: Vec<TilePath> = tiles::tiles(TileKind::Hashes(level), size).collect();
        let mut fetched =
            stream::iter(wanted)
                .map(|tile| async move {
                    Ok::<_, MonitorError>((tile, served_hashes(source, tile).await?))
                })
                .buffered(CONCURRENT_FETCHES);
        while let Some(item) = fetched.next().await {
            let (tile, hashes) = item?;
            let first = tile.first().unwrap_or(0);
            for (i, served) in hashes.iter().enumerate() {
                let index = first + i as u64;
                let below = usize::try_from(index)
                    .ok()
                    .and_then(|i| rebuilt.get(i))
                    .ok_or(MonitorError::BeyondTree { tile, position: i })?;
                if below != served {
                    return Err(MonitorError::Mismatch(format!(
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

/// Audits the log `source` serves: opens its checkpoint with the pinned key, rebuilds the
/// tree from every tile (and entry), proves it extends the checkpoint kept in the state file,
/// and then keeps the new checkpoint there. `progress` is told (leaves rebuilt, tree size) as
/// the tree is rebuilt.
pub async fn monitor(
    source: &impl TileSource,
    options: &MonitorOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<MonitorReport, MonitorError> {
    let origin = &options.origin;
    let state_path = &options.state;
    let previous = load_state(state_path, origin)?;

    let at = source.locate("checkpoint");
    let note_bytes = source
        .fetch("checkpoint", note::MAX_NOTE_SIZE)
        .await?
        .ok_or_else(|| MonitorError::NoCheckpoint(at.clone()))?;
    let cp = open_checkpoint(&note_bytes, &options.verifier, origin, &at)?;
    let note_text = String::from_utf8_lossy(&note_bytes).into_owned();

    if let Some((old, old_root)) = &previous {
        let fork = |why: &str| {
            MonitorError::Fork(format!(
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

    let rebuilt = rebuild(
        source,
        cp.size,
        previous.as_ref().map(|(s, _)| s.size),
        options.hashes_only,
        |done| progress(done, cp.size),
    )
    .await?;
    if rebuilt.root != cp.root {
        return Err(MonitorError::Mismatch(format!(
            "{origin}: the tiles give root {} for size {}, but the checkpoint signs {}",
            rebuilt.root.to_base64(),
            cp.size,
            cp.root.to_base64()
        )));
    }
    if let Some((old, old_root)) = &previous
        && rebuilt.previous_root != Some(*old_root)
    {
        return Err(MonitorError::Fork(format!(
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
        state_path,
        &State {
            format: STATE_FORMAT.into(),
            origin: origin.clone(),
            size: cp.size,
            root: cp.root.to_base64(),
            checkpoint: note_text,
        },
    )?;
    Ok(MonitorReport {
        ok: true,
        origin: origin.clone(),
        size: cp.size,
        root_hex: cp.root.to_hex(),
        root_base64: cp.root.to_base64(),
        entries_checked: rebuilt.entries,
        tiles_checked: rebuilt.tiles,
        previous_size: previous.as_ref().map(|(s, _)| s.size),
        state: state_path.clone(),
    })
}

#[cfg(test)]
mod tests {
    use custody_core::checkpoint::SignedCheckpoint;
    use custody_core::note::NoteSigner;

    use super::*;

    const ORIGIN: &str = "test.local/acme/governance";

    fn entry(n: u64) -> Vec<u8> {
        format!(r#"{{"n":{n}}}"#).into_bytes()
    }

    /// Writes a tiled log of `entries` into `dir`, its checkpoint signed by `signer`.
    fn serve(dir: &Path, entries: &[Vec<u8>], signer: &NoteSigner) {
        let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let size = leaves.len() as u64;
        let write = |path: String, body: &[u8]| {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, body).unwrap();
        };
        for level in 0..=7u8 {
            for tile in tiles::tiles(TileKind::Hashes(level), size) {
                let body: Vec<u8> = tile
                    .subtrees()
                    .unwrap()
                    .iter()
                    .flat_map(|s| {
                        let span = 1usize << s.level;
                        let from = s.index as usize * span;
                        merkle::root_from_leaves(&leaves[from..from + span]).0
                    })
                    .collect();
                write(tile.to_string(), &body);
            }
        }
        for bundle in tiles::tiles(TileKind::Entries, size) {
            let first = bundle.first().unwrap() as usize;
            let body = tiles::encode_bundle(
                entries[first..first + usize::from(bundle.width)]
                    .iter()
                    .map(Vec::as_slice),
            )
            .unwrap();
            write(bundle.to_string(), &body);
        }
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: merkle::root_from_leaves(&leaves),
            extensions: vec![],
        };
        let note = SignedCheckpoint::sign(cp, signer).unwrap().note;
        write("checkpoint".into(), note.as_bytes());
    }

    fn options(signer: &NoteSigner, state: &Path) -> MonitorOptions {
        MonitorOptions {
            verifier: signer.verifier(),
            origin: ORIGIN.into(),
            state: state.to_path_buf(),
            hashes_only: false,
        }
    }

    #[tokio::test]
    async fn a_served_log_verifies_and_must_extend_the_last_verified_one() {
        let (log, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let state = work.path().join("state");
        let mut entries: Vec<Vec<u8>> = (0..300).map(entry).collect();
        serve(log.path(), &entries, &signer);
        let mut last = (0, 0);
        let report = monitor(
            &DirSource::new(log.path()),
            &options(&signer, &state),
            |done, total| last = (done, total),
        )
        .await
        .unwrap();
        assert_eq!((report.size, report.entries_checked), (300, 300));
        // Two level-0 tiles, their two bundles, and the level-1 tile over the first 256.
        assert_eq!(report.tiles_checked, 5);
        assert_eq!((report.previous_size, last), (None, (300, 300)));

        entries.extend((300..310).map(entry));
        serve(log.path(), &entries, &signer);
        let report = monitor(
            &DirSource::new(log.path()),
            &options(&signer, &state),
            |_, _| {},
        )
        .await
        .unwrap();
        assert_eq!((report.size, report.previous_size), (310, Some(300)));

        // The same size again, but a history that differs from the one verified: a fork.
        entries[5] = b"rewritten".to_vec();
        serve(log.path(), &entries, &signer);
        let err = monitor(
            &DirSource::new(log.path()),
            &options(&signer, &state),
            |_, _| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, MonitorError::Fork(d) if d.contains("two different roots")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn tiles_that_contradict_the_checkpoint_or_another_key_are_named() {
        let (log, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let signer = NoteSigner::generate(ORIGIN).unwrap();
        let entries: Vec<Vec<u8>> = (0..20).map(entry).collect();
        serve(log.path(), &entries, &signer);

        let other = NoteSigner::generate(ORIGIN).unwrap();
        let err = monitor(
            &DirSource::new(log.path()),
            &options(&other, &work.path().join("a")),
            |_, _| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(err, MonitorError::Unsigned(_)), "{err}");

        let bundle = log.path().join("tile/entries/000.p/20");
        let mut tampered = entries.clone();
        tampered[7] = entry(70);
        std::fs::write(
            &bundle,
            tiles::encode_bundle(tampered.iter().map(Vec::as_slice)).unwrap(),
        )
        .unwrap();
        let err = monitor(
            &DirSource::new(log.path()),
            &options(&signer, &work.path().join("b")),
            |_, _| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, MonitorError::Mismatch(d) if d.starts_with("entry 7 hashes to")),
            "{err}"
        );
        assert!(
            !work.path().join("b").exists(),
            "a run that found a problem keeps no state"
        );

        std::fs::remove_file(&bundle).unwrap();
        let err = monitor(
            &DirSource::new(log.path()),
            &options(&signer, &work.path().join("c")),
            |_, _| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(err, MonitorError::MissingTile(_)), "{err}");
    }
}
