//! C2SP tiled transparency logs (c2sp.org/tlog-tiles): the arithmetic and encodings of a log
//! served as static tiles.
//!
//! A tiled log publishes its RFC 6962 Merkle tree as *tiles*, runs of up to 256 consecutive
//! hashes of one tree level, and its entries as *entry bundles* of up to 256 length-prefixed
//! entries, so that monitors and witnesses fetch, cache and check everything with plain GETs
//! and compute any proof themselves. custody serves each log this way beside its `/v1` API and
//! `custody monitor` audits any log that does; both use this module, so the spec's rules are
//! written once:
//!
//! - [`TilePath`]: a tile or bundle as its path names it (`tile/<L>/<N>[.p/<W>]`,
//!   `tile/entries/<N>[.p/<W>]`), parsed strictly (only the one spelling the spec produces) and
//!   formatted canonically, with the stored [`Subtree`]s a hash tile holds and the leaves it
//!   covers;
//! - [`tiles`]: the tiles a tree of a given size is served as, full ones then the partial one;
//! - [`tile_hashes`], [`encode_bundle`], [`decode_bundle`]: the two body formats.
//!
//! Tile height is fixed at 8 (256 hashes per full tile), as the spec requires.

use core::fmt;

use crate::merkle::{Hash, Subtree};

/// Hashes in a full tile, and entries in a full bundle (tlog-tiles §"Merkle Tree": "Full tiles
/// MUST be exactly 256 hashes wide").
pub const TILE_WIDTH: u16 = 256;

/// Tree levels one tile level spans: a hash at tile level `L` is the root of a subtree of
/// tree level `8 * L`, i.e. of `256^L` leaves.
pub const TILE_HEIGHT: u32 = 8;

/// Size of one hash in a tile (SHA-256, the only hash tlog-tiles defines).
pub const HASH_BYTES: usize = 32;

/// Bytes in a full hash tile: 256 hashes of 32 bytes.
pub const FULL_TILE_BYTES: usize = TILE_WIDTH as usize * HASH_BYTES;

/// Largest entry an entry bundle can carry: each entry is prefixed by its length as a
/// big-endian uint16 (tlog-tiles §"Log entries").
pub const MAX_BUNDLE_ENTRY: usize = u16::MAX as usize;

/// Highest tile level a path may name (tlog-tiles §"Merkle Tree": `<L>` is between 0 and 63).
pub const MAX_TILE_LEVEL: u8 = 63;

/// Why a tile path, a tile body or an entry bundle was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// The path is not spelled the way tlog-tiles §"Merkle Tree" says clients form it: a
    /// level of 0-63 without leading zeros, an index in zero-padded groups of three digits
    /// with `x` before all but the last and no leading `x000` group, and a partial width of
    /// 1-255 without leading zeros. Only that one spelling of each tile is accepted, so a tile
    /// has exactly one URL.
    #[error("not a tlog-tiles path: {0}")]
    BadPath(&'static str),
    /// A hash tile's body is not `width` hashes of 32 bytes.
    #[error("a tile of width {width} is {expected} bytes, got {got}")]
    WrongTileLength {
        /// The tile's width.
        width: u16,
        /// `width * 32`.
        expected: usize,
        /// Bytes actually received.
        got: usize,
    },
    /// An entry longer than 65,535 bytes cannot be length-prefixed by a uint16
    /// (tlog-tiles §"Log entries").
    #[error(
        "entry {position} of the bundle is {len} bytes; a bundle entry holds at most 65,535 bytes"
    )]
    EntryTooLarge {
        /// Position of the entry in the bundle.
        position: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// An entry bundle's body does not split into length-prefixed entries.
    #[error("malformed entry bundle: {0}")]
    BadBundle(&'static str),
}

/// What a tile carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// Hashes at this tile level: roots of subtrees of tree level `8 * L`.
    Hashes(u8),
    /// Entry bundle: the leaf data whose hashes make up the level-0 tile of the same index.
    Entries,
}

/// One tile or entry bundle, as named by its path relative to the log's prefix:
/// `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` (tlog-tiles §"Merkle Tree",
/// §"Log entries").
///
/// `width` is 1 to 256; 256 is a full tile (no `.p/` suffix), anything less a partial one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TilePath {
    /// Hash tile of a level, or entry bundle.
    pub kind: TileKind,
    /// `<N>`: the tile's position within its level.
    pub index: u64,
    /// Number of hashes (or entries): 256 for a full tile, 1-255 for a partial one.
    pub width: u16,
}

impl TilePath {
    /// Parses a path relative to the log prefix, e.g. `tile/0/x001/x234/067.p/8`. Only the
    /// canonical spelling is accepted: formatting the result gives back `path` exactly.
    pub fn parse(path: &str) -> Result<TilePath, TileError> {
        let rest = path
            .strip_prefix("tile/")
            .ok_or(TileError::BadPath("a tile path starts with tile/"))?;
        let (first, rest) = rest.split_once('/').ok_or(TileError::BadPath(
            "a tile path is tile/<L>/<N> or tile/entries/<N>",
        ))?;
        let kind = if first == "entries" {
            TileKind::Entries
        } else {
            let level = parse_decimal(first)
                .filter(|l| *l <= u64::from(MAX_TILE_LEVEL))
                .ok_or(TileError::BadPath(
                    "the level is a decimal 0-63 without leading zeros",
                ))?;
            TileKind::Hashes(level as u8)
        };
        let (index, width) = match rest.split_once(".p/") {
            Some((index, width)) => {
                let width = parse_decimal(width)
                    .filter(|w| (1..u64::from(TILE_WIDTH)).contains(w))
                    .ok_or(TileError::BadPath(
                        "a partial width is a decimal 1-255 without leading zeros",
                    ))?;
                (index, width as u16)
            }
            None => (rest, TILE_WIDTH),
        };
        Ok(TilePath {
            kind,
            index: parse_index(index)?,
            width,
        })
    }

    /// Whether this is a full tile (256 hashes or entries).
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The tree level of the hashes this tile holds (0 for an entry bundle, whose entries hash
    /// to leaves), or `None` for tile levels 8 and above: their hashes would be subtrees of
    /// 2^64 leaves or more, which no 64-bit tree has.
    pub fn tree_level(&self) -> Option<u8> {
        match self.kind {
            TileKind::Entries => Some(0),
            TileKind::Hashes(level) => {
                let tree = u32::from(level) * TILE_HEIGHT;
                (tree < u64::BITS).then_some(tree as u8)
            }
        }
    }

    /// Index, at [`TilePath::tree_level`], of the tile's first hash (`N * 256`), or `None`
    /// when it does not fit in 64 bits.
    pub fn first(&self) -> Option<u64> {
        self.index.checked_mul(u64::from(TILE_WIDTH))
    }

    /// The leaves the tile's hashes (or entries) span: `[start, end)`, i.e.
    /// `[N*256 * 256^L, (N*256 + W) * 256^L)`, or `None` when that range does not fit in a
    /// 64-bit tree.
    pub fn leaves(&self) -> Option<(u64, u64)> {
        let level = u32::from(self.tree_level()?);
        let first = u128::from(self.index) * u128::from(TILE_WIDTH);
        let end = first + u128::from(self.width);
        if end > u128::from(u64::MAX >> level) {
            return None;
        }
        Some(((first as u64) << level, (end as u64) << level))
    }

    /// Whether a tree of `size` leaves has every hash (or entry) of this tile: the partial
    /// tiles of every smaller size are prefixes of the tiles of this one.
    pub fn exists_in(&self, size: u64) -> bool {
        self.leaves().is_some_and(|(_, end)| end <= size)
    }

    /// The complete subtrees whose hashes the tile holds, in order: tree level `8 * L`,
    /// indexes `N*256 .. N*256 + W` (tlog-tiles §"Merkle Tree":
    /// `MTH(D[(n*256 + i) * 256^l : (n*256 + i + 1) * 256^l])`). `None` when they cannot
    /// exist in a 64-bit tree (see [`TilePath::leaves`]).
    pub fn subtrees(&self) -> Option<Vec<Subtree>> {
        let level = self.tree_level()?;
        self.leaves()?;
        let first = self.first()?;
        Some(
            (0..u64::from(self.width))
                .map(|i| Subtree {
                    level,
                    index: first + i,
                })
                .collect(),
        )
    }

    /// The same tile at full width, where clients may find a partial tile's hashes once the
    /// tree has grown past it (tlog-tiles §"Partial Tiles").
    pub fn full(&self) -> TilePath {
        TilePath {
            width: TILE_WIDTH,
            ..*self
        }
    }
}

impl fmt::Display for TilePath {
    /// The canonical path, relative to the log prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TileKind::Hashes(level) => write!(f, "tile/{level}/")?,
            TileKind::Entries => f.write_str("tile/entries/")?,
        }
        f.write_str(&encode_index(self.index))?;
        if !self.is_full() {
            write!(f, ".p/{}", self.width)?;
        }
        Ok(())
    }
}

impl core::str::FromStr for TilePath {
    type Err = TileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `<N>` as a path: zero-padded groups of three digits, `x` before all but the last
/// (tlog-tiles §"Merkle Tree": 1234067 is `x001/x234/067`).
pub fn encode_index(mut n: u64) -> String {
    let mut out = format!("{:03}", n % 1000);
    while n >= 1000 {
        n /= 1000;
        out = format!("x{:03}/{out}", n % 1000);
    }
    out
}

/// Reads `<N>`, refusing every spelling [`encode_index`] would not produce.
fn parse_index(s: &str) -> Result<u64, TileError> {
    let groups: Vec<&str> = s.split('/').collect();
    let Some((last, leading)) = groups.split_last() else {
        return Err(TileError::BadPath("missing tile index"));
    };
    let three_digits = |g: &str| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit());
    let mut n: u64 = 0;
    for (i, group) in leading.iter().enumerate() {
        let digits =
            group
                .strip_prefix('x')
                .filter(|g| three_digits(g))
                .ok_or(TileError::BadPath(
                    "every index element but the last is x and three digits (x001/x234/067)",
                ))?;
        if i == 0 && digits == "000" {
            return Err(TileError::BadPath(
                "the index has a leading x000 element: write it without",
            ));
        }
        n = push_group(n, digits)?;
    }
    if !three_digits(last) {
        return Err(TileError::BadPath(
            "the last index element is exactly three digits (067, not x067, 67 or 0067)",
        ));
    }
    push_group(n, last)
}

fn push_group(n: u64, digits: &str) -> Result<u64, TileError> {
    let too_big = TileError::BadPath("the tile index does not fit in 64 bits");
    let group: u64 = digits.parse().map_err(|_| too_big.clone())?;
    n.checked_mul(1000)
        .and_then(|n| n.checked_add(group))
        .ok_or(too_big)
}

/// ASCII decimal with no sign and no leading zeros ("0" alone for zero), as tlog-tiles
/// requires of `<L>` and `<W>`.
fn parse_decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// The tiles of `kind` that a tree of `size` leaves is served as (tlog-tiles §"Partial
/// Tiles"): every full tile, then the partial one of width `floor(size / 256^L) mod 256` if
/// that is not zero. Entry bundles follow level 0. Empty for levels the tree does not reach.
pub fn tiles(kind: TileKind, size: u64) -> impl Iterator<Item = TilePath> {
    let tree_level = TilePath {
        kind,
        index: 0,
        width: 1,
    }
    .tree_level()
    .map(u32::from);
    let (full, partial) = match tree_level {
        Some(level) => (
            size.checked_shr(level + TILE_HEIGHT).unwrap_or(0),
            ((size >> level) % u64::from(TILE_WIDTH)) as u16,
        ),
        None => (0, 0),
    };
    let partial = (partial > 0).then_some(TilePath {
        kind,
        index: full,
        width: partial,
    });
    (0..full)
        .map(move |index| TilePath {
            kind,
            index,
            width: TILE_WIDTH,
        })
        .chain(partial)
}

/// Splits a hash tile's body into its `width` hashes, refusing any other length.
pub fn tile_hashes(body: &[u8], width: u16) -> Result<Vec<Hash>, TileError> {
    let expected = usize::from(width) * HASH_BYTES;
    if body.len() != expected {
        return Err(TileError::WrongTileLength {
            width,
            expected,
            got: body.len(),
        });
    }
    Ok(body
        .chunks_exact(HASH_BYTES)
        .map(|c| {
            let mut h = [0u8; HASH_BYTES];
            h.copy_from_slice(c);
            Hash(h)
        })
        .collect())
}

/// An entry bundle's body: each entry prefixed by its length as a big-endian uint16
/// (tlog-tiles §"Log entries"). An entry over 65,535 bytes cannot be represented and is
/// refused rather than truncated.
pub fn encode_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for (position, entry) in entries.into_iter().enumerate() {
        let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLarge {
            position,
            len: entry.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// The entries of a bundle's body, in order. A truncated length or entry is refused; the
/// caller checks that the count is the bundle's width.
pub fn decode_bundle(mut body: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let Some((len, rest)) = body.split_first_chunk::<2>() else {
            return Err(TileError::BadBundle("ends inside a length prefix"));
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(TileError::BadBundle("ends inside an entry"));
        }
        let (entry, rest) = rest.split_at(len);
        out.push(entry);
        body = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(level: u8, index: u64, width: u16) -> TilePath {
        TilePath {
            kind: TileKind::Hashes(level),
            index,
            width,
        }
    }

    #[test]
    fn spec_index_example() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(parse_index("x001/x234/067"), Ok(1234067));
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(u64::MAX), "x018/x446/x744/x073/x709/x551/615");
    }

    #[test]
    fn paths_round_trip() {
        let mut n = 1u64;
        let mut seen = 0;
        while seen < 200 {
            for index in [n - 1, n, n.saturating_add(1), n.wrapping_mul(7) / 3] {
                for width in [1, 17, 255, 256] {
                    for kind in [TileKind::Hashes(0), TileKind::Hashes(63), TileKind::Entries] {
                        let t = TilePath { kind, index, width };
                        assert_eq!(TilePath::parse(&t.to_string()), Ok(t), "{t}");
                    }
                }
            }
            n = n.saturating_mul(3);
            seen += 1;
        }
        assert_eq!(
            hashes(2, 1234067, 8).to_string(),
            "tile/2/x001/x234/067.p/8"
        );
        assert_eq!(
            TilePath::parse("tile/entries/x001/000").unwrap(),
            TilePath {
                kind: TileKind::Entries,
                index: 1000,
                width: 256
            }
        );
    }

    #[test]
    fn only_the_canonical_spelling_parses() {
        for bad in [
            "",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "tiles/0/000",
            "/tile/0/000",
            "tile/00/000",
            "tile/01/000",
            "tile/64/000",
            "tile/-1/000",
            "tile/+1/000",
            "tile/a/000",
            "tile/0/0",
            "tile/0/00",
            "tile/0/0000",
            "tile/0/x000",
            "tile/0/x001",
            "tile/0/001/002",
            "tile/0/x000/001",
            "tile/0/x1/001",
            "tile/0/X001/001",
            "tile/0/x001//001",
            "tile/0/000/",
            "tile/0/00a",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/07",
            "tile/0/000.p/",
            "tile/0/000.p",
            "tile/0/000.p/5/6",
            "tile/0/000.p/5.p/6",
            "tile/0/x001.p/005",
            "tile/entries",
            "tile/entries/",
            "tile/entries/1",
            "tile/entries/000.p/300",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x001/x000/x000/x000/x000/x000/x000/000",
            "tile/0/%30%30%30",
        ] {
            assert!(
                matches!(TilePath::parse(bad), Err(TileError::BadPath(_))),
                "{bad:?} parsed"
            );
        }
    }

    fn described(kind: TileKind, size: u64) -> Vec<(u64, u16)> {
        tiles(kind, size).map(|t| (t.index, t.width)).collect()
    }

    #[test]
    fn spec_size_examples() {
        // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial
        // level 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width
        // 17, and one partial level 2 tile of width 1."
        let level0 = described(TileKind::Hashes(0), 70_000);
        assert_eq!(level0.len(), 274);
        assert!(level0[..273].iter().all(|(_, w)| *w == 256));
        assert_eq!(level0[273], (273, 112));
        assert_eq!(
            described(TileKind::Hashes(1), 70_000),
            vec![(0, 256), (1, 17)]
        );
        assert_eq!(described(TileKind::Hashes(2), 70_000), vec![(0, 1)]);
        assert!(described(TileKind::Hashes(3), 70_000).is_empty());
        assert_eq!(described(TileKind::Entries, 70_000), level0);
        // "a tree of size 256 will be represented by a full level 0 tile and a partial level
        // 1 tile of width 1."
        assert_eq!(described(TileKind::Hashes(0), 256), vec![(0, 256)]);
        assert_eq!(described(TileKind::Hashes(1), 256), vec![(0, 1)]);
        assert!(described(TileKind::Hashes(0), 0).is_empty());
        assert_eq!(described(TileKind::Hashes(7), u64::MAX), vec![(0, 255)]);
        assert!(described(TileKind::Hashes(8), u64::MAX).is_empty());
    }

    #[test]
    fn tiles_name_the_stored_subtrees() {
        let t = hashes(1, 2, 3);
        assert_eq!(t.tree_level(), Some(8));
        assert_eq!(t.leaves(), Some((512 * 256, 515 * 256)));
        assert_eq!(
            t.subtrees().unwrap(),
            (512..515)
                .map(|index| Subtree { level: 8, index })
                .collect::<Vec<_>>()
        );
        assert!(t.exists_in(515 * 256));
        assert!(!t.exists_in(515 * 256 - 1));
        assert_eq!(t.full(), hashes(1, 2, 256));
        // Level 7 holds subtrees of 2^56 leaves; level 8 would need 2^64.
        assert_eq!(hashes(7, 0, 255).tree_level(), Some(56));
        assert_eq!(hashes(7, 0, 255).leaves(), Some((0, 255 << 56)));
        assert_eq!(hashes(7, 0, 256).leaves(), None);
        assert_eq!(hashes(8, 0, 1).tree_level(), None);
        assert_eq!(hashes(63, 0, 1).subtrees(), None);
        assert!(!hashes(63, 0, 1).exists_in(u64::MAX));
        assert_eq!(hashes(0, u64::MAX, 256).leaves(), None);
        assert_eq!(hashes(0, u64::MAX, 256).subtrees(), None);
        let last = u64::MAX / 256;
        assert_eq!(
            hashes(0, last, 255).leaves(),
            Some((last * 256, last * 256 + 255))
        );
    }

    #[test]
    fn bundles_round_trip_and_refuse_what_they_cannot_hold() {
        let entries: Vec<Vec<u8>> = vec![b"".to_vec(), b"a".to_vec(), vec![7; 65_535]];
        let body = encode_bundle(entries.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(&body[..5], &[0, 0, 0, 1, b'a']);
        assert_eq!(body.len(), 2 + 3 + 2 + 65_535);
        let back = decode_bundle(&body).unwrap();
        assert_eq!(back, entries.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(
            encode_bundle([b"x".as_slice(), vec![0; 65_536].as_slice()]),
            Err(TileError::EntryTooLarge {
                position: 1,
                len: 65_536
            })
        );
        assert!(decode_bundle(&[0]).is_err());
        assert!(decode_bundle(&[0, 2, b'a']).is_err());
        assert_eq!(decode_bundle(&[]).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn tile_bodies_are_whole_hashes() {
        let body: Vec<u8> = (0..64).collect();
        let h = tile_hashes(&body, 2).unwrap();
        assert_eq!(h[1].0[0], 32);
        assert_eq!(
            tile_hashes(&body, 3),
            Err(TileError::WrongTileLength {
                width: 3,
                expected: 96,
                got: 64
            })
        );
    }
}
