//! Every log served as a C2SP tiled transparency log (c2sp.org/tlog-tiles) under
//! `/tlog/{tenant}/{log}/`: the signed checkpoint, the hash tiles and the entry bundles.
//!
//! The `/v1` API answers proofs for the sizes and indexes a client asks about; a tiled log lets
//! monitors and witnesses written against the spec (not against custody) fetch the tree itself
//! and compute any proof, the same way for every tlog-tiles log they watch. The store already
//! keeps the hash of every complete subtree, so a tile is one read of its 256 subtrees and a
//! bundle one read of its 256 entries; nothing is precomputed or stored twice.
//!
//! Access control is the `/v1` API's: the checkpoint and hash tiles are log metadata (hashes
//! and signatures, like proofs), entry bundles carry envelopes and are read evidence, recorded
//! in the access log before they are answered. Because every response is behind a bearer
//! token, tiles are cacheable only by the caller (`private`), never by a shared cache, which
//! would serve them to someone the server never authorised or access-logged.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use custody_api as api;
use custody_core::tiles::{self, TileKind, TilePath};
use custody_governance::{Backend, Caller, ReadRecord};
use custody_ledger::LedgerError;
use custody_store::LogKey;

use crate::error::{ApiError, ApiResult};
use crate::extract::{LogPath, Query};
use crate::state::AppState;

/// `Content-Type` of tiles and bundles (tlog-tiles §"Merkle Tree", §"Log entries").
const OCTET_STREAM: &str = "application/octet-stream";

/// Full tiles and bundles never change: a year, for the caller's own cache only.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// Partial tiles do not change either, but a log may stop serving them once the full tile
/// exists (tlog-tiles §"Partial Tiles"): a minute.
const PARTIAL: &str = "private, max-age=60";

/// The checkpoint moves with every batch; the spec asks that it not be cached beyond a few
/// seconds.
const MUTABLE: &str = "no-cache";

/// The tile named by the request path, read from the raw path so that only the spec's
/// spelling is accepted (a percent-encoded digit is not a digit).
fn tile_path(uri: &Uri, kind: &str) -> ApiResult<TilePath> {
    // "", "tlog", tenant, log, then the tile path.
    let raw = uri.path().splitn(5, '/').nth(4).unwrap_or("");
    let tile = TilePath::parse(raw).map_err(|e| {
        ApiError::field(
            "path",
            format!(
                "{e}; tiles are tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>] as c2sp.org/tlog-tiles spells them, e.g. tile/0/x001/234.p/16"
            ),
        )
    })?;
    let routed = match tile.kind {
        TileKind::Entries => "entries",
        TileKind::Hashes(_) => "hashes",
    };
    if routed != kind {
        return Err(ApiError::not_found(format!("no tile {raw}")));
    }
    Ok(tile)
}

/// A 404 unless the tree of the latest checkpoint has every hash (or entry) of `tile`.
async fn bounded<S: Backend>(st: &AppState<S>, key: &LogKey, tile: &TilePath) -> ApiResult<()> {
    let size = st.ledger().checkpoint(key).await?.size;
    if tile.exists_in(size) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "{tile} is not in this log: the latest checkpoint has {size} entries"
        )))
    }
}

fn octets(body: Vec<u8>, tile: &TilePath) -> Response {
    let cache = if tile.is_full() { IMMUTABLE } else { PARTIAL };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

/// The latest signed checkpoint, byte for byte the note `GET /v1/.../checkpoint` serves
/// (tlog-tiles §"Checkpoints").
#[utoipa::path(get, path = "/tlog/{tenant}/{log}/checkpoint", operation_id = "tlog_checkpoint",
    params(("tenant" = String, Path), ("log" = String, Path)),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = api::Problem)))]
pub async fn checkpoint<S: Backend>(
    State(st): State<AppState<S>>,
    _: Query<()>,
    LogPath(key): LogPath,
) -> ApiResult<Response> {
    let note = st.ledger().checkpoint(&key).await?.note;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(api::TEXT_PLAIN),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(MUTABLE)),
        ],
        note,
    )
        .into_response())
}

/// A hash tile (tlog-tiles §"Merkle Tree"): the 32-byte hashes of the subtrees of `2^(8L)`
/// leaves at indexes `N*256 .. N*256+W`, concatenated. `N` is written in groups of three
/// digits (`x001/x234/067`); `.p/<W>` names a partial tile of width `W`, served while the tree
/// has at least that many such subtrees. 404 beyond the tree.
#[utoipa::path(get, path = "/tlog/{tenant}/{log}/tile/{level}/{*index}",
    params(("tenant" = String, Path), ("log" = String, Path),
        ("level" = u8, Path, description = "Tile level L, 0-63"),
        ("index" = String, Path, description = "Tile index N as x001/x234/067, optionally followed by .p/<W> for a partial tile of width W (1-255)")),
    responses((status = 200, description = "W concatenated 32-byte hashes", content_type = "application/octet-stream"),
        (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn hash_tile<S: Backend>(
    State(st): State<AppState<S>>,
    _: Query<()>,
    LogPath(key): LogPath,
    uri: Uri,
) -> ApiResult<Response> {
    let tile = tile_path(&uri, "hashes")?;
    bounded(&st, &key, &tile).await?;
    let subtrees = tile
        .subtrees()
        .ok_or_else(|| ApiError::not_found(format!("{tile} is not in this log")))?;
    let found = st.ledger().nodes(&key, &subtrees).await?;
    let mut body = Vec::with_capacity(subtrees.len() * tiles::HASH_BYTES);
    for (subtree, hash) in subtrees.iter().zip(found) {
        let hash = hash.ok_or_else(|| {
            LedgerError::Corrupt(format!(
                "tree node {subtree} of {} is missing from storage",
                tile
            ))
        })?;
        body.extend_from_slice(hash.as_bytes());
    }
    Ok(octets(body, &tile))
}

/// An entry bundle (tlog-tiles §"Log entries"): the canonical envelopes of entries
/// `N*256 .. N*256+W`, each prefixed by its length as a big-endian uint16; each hashes
/// (`SHA-256(0x00 || envelope)`) to the matching hash of level-0 tile `N`. Envelopes are at
/// most 65,535 bytes, so every entry fits. Access-logged like `GET .../entries`.
#[utoipa::path(get, path = "/tlog/{tenant}/{log}/tile/entries/{*index}",
    params(("tenant" = String, Path), ("log" = String, Path),
        ("index" = String, Path, description = "Bundle index N as x001/x234/067, optionally followed by .p/<W> for a partial bundle of W entries (1-255)")),
    responses((status = 200, description = "W entries, each a big-endian uint16 length then that many bytes", content_type = "application/octet-stream"),
        (status = 400, body = api::Problem), (status = 404, body = api::Problem)))]
pub async fn entry_bundle<S: Backend>(
    State(st): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    _: Query<()>,
    LogPath(key): LogPath,
    uri: Uri,
) -> ApiResult<Response> {
    let tile = tile_path(&uri, "entries")?;
    bounded(&st, &key, &tile).await?;
    let (from, to) = tile
        .leaves()
        .ok_or_else(|| ApiError::not_found(format!("{tile} is not in this log")))?;
    let entries = st.ledger().export(&key, from, to).await?;
    let in_order = entries.len() as u64 == to - from
        && entries
            .iter()
            .zip(from..)
            .all(|(e, index)| e.index == index);
    if !in_order {
        return Err(LedgerError::Corrupt(format!(
            "entries {from}..{to} of {} are not all in storage",
            key.log
        ))
        .into());
    }
    let body = tiles::encode_bundle(entries.iter().map(|e| e.envelope.as_slice())).map_err(
        |e| match e {
            tiles::TileError::EntryTooLarge { position, len } => LedgerError::Corrupt(format!(
                "entry {} is {len} bytes, more than an entry bundle can hold (65,535)",
                from + position as u64
            )),
            other => LedgerError::Corrupt(other.to_string()),
        },
    )?;
    let (from_text, to_text) = (from.to_string(), to.to_string());
    let read = ReadRecord::about("log", key.log.as_str())
        .query([("from", from_text.as_str()), ("to", to_text.as_str())])
        .leaves(
            key.log,
            entries
                .iter()
                .map(|e| (e.id.to_string(), e.leaf_hash.to_hex())),
        );
    st.governance()
        .record_read(&caller, &key.tenant, read)
        .await?;
    Ok(octets(body, &tile))
}
