//! RFC 9162 §2.1 Merkle tree hashing, inclusion and consistency proofs.
//!
//! Every entry of a custody log is a leaf of one append-only Merkle tree, and every promise
//! the log makes (an entry is in it, a later tree extends an earlier one) is one of the proofs
//! defined here. Third parties re-check them with this module alone, so it follows the text of
//! RFC 9162 §2.1 literally:
//!
//! - hashing (§2.1.1): [`leaf_hash`], [`node_hash`], [`empty_root`], [`root_from_leaves`];
//! - reference proof generation over leaves held in memory (§2.1.3.1, §2.1.4.1):
//!   [`inclusion_proof`], [`consistency_proof`];
//! - verification, transcribed step by step (§2.1.3.2, §2.1.4.2): [`verify_inclusion`],
//!   [`verify_consistency`].
//!
//! A log server does not keep its leaves in memory. It stores the hash of every *complete,
//! aligned subtree* (a [`Subtree`]), which is also what C2SP tlog-tiles serves. The planning
//! functions ([`inclusion_plan`], [`consistency_plan`], [`root_plan`], [`decompose`]) say which
//! stored hashes a proof needs, and [`assemble`] / [`fold`] turn them into the exact RFC 9162
//! proof hashes. [`Frontier`] keeps the right edge of the growing tree so that appending a leaf
//! yields the subtrees to store and the new root in O(log n).

use core::cmp::Ordering;
use core::fmt;

use base64ct::{Base64, Encoding};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of a SHA-256 output, RFC 9162 §2.1.1 `HASH_SIZE` for the SHA-256 log parameter.
const HASH_SIZE: usize = 32;

/// Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1, `HASH(0x00 || d)`).
const LEAF_PREFIX: u8 = 0x00;

/// Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1,
/// `HASH(0x01 || left || right)`).
const NODE_PREFIX: u8 = 0x01;

/// A SHA-256 hash: a leaf hash, an interior node or a tree head (RFC 9162 §2.1.1, `HASH` with
/// `HASH_SIZE` 32).
///
/// Equality is constant-time ([`subtle::ConstantTimeEq`]) because roots and proof nodes are
/// compared against attacker-supplied values during verification (RFC 9162 §2.1.3.2 step 5,
/// §2.1.4.2 step 7). Ordering and `std::hash::Hash` use the plain bytes so hashes can be map
/// keys; they are not used for verification.
#[derive(Clone, Copy)]
pub struct Hash(pub [u8; 32]);

/// Why a hash, a tree size or a proof was refused.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum MerkleError {
    /// A hash had the wrong number of bytes. RFC 9162 §2.1.1 fixes every hash at `HASH_SIZE`
    /// (32 for SHA-256), so anything else cannot be a tree node or a root.
    #[error("a hash must be 32 bytes, got {got}")]
    BadHashLength {
        /// Number of bytes actually supplied.
        got: usize,
    },
    /// The text was not valid lowercase hex or standard padded base64, so no hash could be read
    /// from it.
    #[error("hash is not valid lowercase hex or standard padded base64")]
    BadEncoding,
    /// The leaf index is not inside the tree: RFC 9162 §2.1.3.1 requires `0 <= m < n` and
    /// §2.1.3.2 step 1 fails verification when `leaf_index >= tree_size`.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size it was checked against.
        size: u64,
    },
    /// The two tree sizes of a consistency proof are not `0 < old <= new` (RFC 9162 §2.1.4.1
    /// defines proofs for `0 < m < n`, §2.1.4.2 verifies them for `0 < first < second`; equal
    /// sizes need an empty proof and equal roots).
    #[error("no consistency proof exists from tree size {old} to tree size {new}")]
    BadSizes {
        /// The earlier tree size.
        old: u64,
        /// The later tree size.
        new: u64,
    },
    /// The proof has a different number of hashes than RFC 9162 §2.1.3.1 / §2.1.4.1 produce for
    /// these sizes, so it cannot be the proof for them (§2.1.3.2 and §2.1.4.2 fail such proofs
    /// when `sn` reaches 0 early or is not 0 at the end).
    #[error("proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// Number of hashes the sizes call for.
        expected: usize,
        /// Number of hashes supplied.
        got: usize,
    },
    /// The root recomputed from the proof differs from the claimed root (RFC 9162 §2.1.3.2
    /// step 5, §2.1.4.2 step 7), or equal-size tree heads have different roots.
    #[error("proof does not lead to the claimed root")]
    RootMismatch,
    /// The lookup had no hash for a complete subtree that the proof needs, so the proof cannot
    /// be assembled (RFC 9162 §2.1.3.1 / §2.1.4.1 need `MTH` of that range).
    #[error("missing stored hash for subtree {0}")]
    MissingNode(Subtree),
    /// A [`ProofNode`] listed no subtrees, so it names no `MTH` of RFC 9162 §2.1.1. The empty
    /// tree's root is [`empty_root`], never a fold.
    #[error("proof node covers no subtrees")]
    EmptyNode,
    /// [`Frontier::from_parts`] got a different number of hashes than the complete subtrees
    /// of a tree of that size (one per set bit of the size, RFC 9162 §2.1.1 splitting).
    #[error("a tree of size {size} has {expected} right-edge subtrees, got {got}")]
    WrongPartCount {
        /// The tree size.
        size: u64,
        /// Number of hashes a tree of that size has on its right edge.
        expected: usize,
        /// Number of hashes supplied.
        got: usize,
    },
    /// The tree already has `u64::MAX` leaves; RFC 9162 tree sizes are 64-bit, so no leaf can
    /// be appended.
    #[error("the tree is full: it cannot grow beyond 2^64 - 1 leaves")]
    TreeFull,
}

impl Hash {
    /// Reads a hash from raw bytes, refusing any length but 32 because RFC 9162 §2.1.1 fixes
    /// every node and root at `HASH_SIZE` bytes.
    pub fn from_slice(b: &[u8]) -> Result<Hash, MerkleError> {
        <[u8; HASH_SIZE]>::try_from(b)
            .map(Hash)
            .map_err(|_| MerkleError::BadHashLength { got: b.len() })
    }

    /// The 32 bytes of the hash, as they enter `HASH(0x01 || left || right)` (RFC 9162 §2.1.1).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, the one textual form used in logs and error messages so that a hash is
    /// recognisable wherever it is printed (RFC 9162 §2.1.1 hashes are opaque bytes).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 lowercase hex digits. Uppercase is refused so that each hash has exactly one
    /// textual form; lengths other than 32 bytes are refused as in [`Hash::from_slice`].
    pub fn from_hex(s: &str) -> Result<Hash, MerkleError> {
        if s.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(MerkleError::BadEncoding);
        }
        let bytes = hex::decode(s).map_err(|_| MerkleError::BadEncoding)?;
        Hash::from_slice(&bytes)
    }

    /// Standard padded base64 (RFC 4648 §4), the encoding C2SP checkpoints and tlog-proof use
    /// for RFC 9162 §2.1 roots and proof hashes.
    pub fn to_base64(&self) -> String {
        Base64::encode_string(&self.0)
    }

    /// Parses standard padded base64 (constant-time decoder), refusing anything that does not
    /// decode to exactly 32 bytes (RFC 9162 §2.1.1 `HASH_SIZE`).
    pub fn from_base64(s: &str) -> Result<Hash, MerkleError> {
        let bytes = Base64::decode_vec(s).map_err(|_| MerkleError::BadEncoding)?;
        Hash::from_slice(&bytes)
    }
}

impl PartialEq for Hash {
    fn eq(&self, other: &Self) -> bool {
        self.0[..].ct_eq(&other.0[..]).into()
    }
}

impl Eq for Hash {}

impl ConstantTimeEq for Hash {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0[..].ct_eq(&other.0[..])
    }
}

impl PartialOrd for Hash {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Hash {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl core::hash::Hash for Hash {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// `HASH(0x00 || data)`, the hash of one log entry (RFC 9162 §2.1.1, `MTH({d[0]})`). The
/// `0x00` prefix keeps leaves apart from interior nodes, which is what gives second-preimage
/// resistance.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    Hash(h.finalize().into())
}

/// `HASH(0x01 || left || right)`, an interior node (RFC 9162 §2.1.1). The `0x01` prefix is the
/// other half of the leaf/node domain separation.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// `MTH({}) = HASH()`, the root of the tree with no entries (RFC 9162 §2.1.1), so a new log
/// has a well-defined tree head.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// Largest power of two strictly smaller than `n`, the split point `k` of RFC 9162 §2.1.1
/// (`k < n <= 2k`). Callers guarantee `n >= 2`.
fn split_u64(n: u64) -> u64 {
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// [`split_u64`] for slice lengths.
fn split_usize(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Replaces the two topmost hashes of a stack with their parent, the merge of RFC 9162
/// §2.1.2 step 2.3. Does nothing when the stack holds fewer than two hashes.
fn merge_top(stack: &mut Vec<Hash>) {
    let n = stack.len();
    if n >= 2 {
        let parent = node_hash(&stack[n - 2], &stack[n - 1]);
        stack.truncate(n - 1);
        stack[n - 2] = parent;
    }
}

/// `MTH(D_n)` over leaf hashes held in memory, computed with the stack algorithm of RFC 9162
/// §2.1.2 ("Verifying a Tree Head Given Entries"): O(n) hashing and at most 64 stacked hashes,
/// so an exported log of tens of millions of entries can be re-checked offline.
pub fn root_from_leaves(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return empty_root();
    }
    let mut stack: Vec<Hash> = Vec::with_capacity(64);
    for (i, leaf) in leaves.iter().enumerate() {
        stack.push(*leaf);
        for _ in 0..i.trailing_ones() {
            merge_top(&mut stack);
        }
    }
    while stack.len() > 1 {
        merge_top(&mut stack);
    }
    stack.pop().unwrap_or_else(empty_root)
}

/// Reference `PATH(m, D[n])` of RFC 9162 §2.1.3.1 over leaf hashes held in memory: the
/// inclusion proof of leaf `index`, bottom-up. It is the independent yardstick for
/// [`inclusion_plan`] and the proof generator for whole exported logs.
pub fn inclusion_proof(index: u64, leaves: &[Hash]) -> Result<Vec<Hash>, MerkleError> {
    let size = leaves.len() as u64;
    let out_of_range = MerkleError::IndexOutOfRange { index, size };
    if index >= size {
        return Err(out_of_range);
    }
    let mut m = usize::try_from(index).map_err(|_| out_of_range)?;
    let mut d = leaves;
    let mut path = Vec::new();
    while d.len() > 1 {
        let k = split_usize(d.len());
        if m < k {
            path.push(root_from_leaves(&d[k..]));
            d = &d[..k];
        } else {
            path.push(root_from_leaves(&d[..k]));
            d = &d[k..];
            m -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// Reference `PROOF(m, D[n])` of RFC 9162 §2.1.4.1 over leaf hashes held in memory: the
/// consistency proof from the tree of the first `old_size` leaves to the tree of all of them.
/// `old_size == n` gives the empty proof; `old_size == 0` and `old_size > n` are refused, as
/// the RFC defines proofs only for `0 < m <= n`.
pub fn consistency_proof(old_size: u64, leaves: &[Hash]) -> Result<Vec<Hash>, MerkleError> {
    let new_size = leaves.len() as u64;
    let bad = MerkleError::BadSizes {
        old: old_size,
        new: new_size,
    };
    if old_size == 0 || old_size > new_size {
        return Err(bad);
    }
    let mut m = usize::try_from(old_size).map_err(|_| bad)?;
    let mut d = leaves;
    let mut known = true;
    let mut proof = Vec::new();
    while m < d.len() {
        let k = split_usize(d.len());
        if m <= k {
            proof.push(root_from_leaves(&d[k..]));
            d = &d[..k];
        } else {
            proof.push(root_from_leaves(&d[..k]));
            d = &d[k..];
            m -= k;
            known = false;
        }
    }
    if !known {
        proof.push(root_from_leaves(d));
    }
    proof.reverse();
    Ok(proof)
}

/// Number of hashes in `PATH(index, D[size])` (RFC 9162 §2.1.3.1) for `index < size`: one per
/// level below the point where the leaf's path leaves the right edge, plus one per left
/// sibling on the right edge above it.
fn inclusion_len(index: u64, size: u64) -> usize {
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Number of hashes in `PROOF(old, D[new])` (RFC 9162 §2.1.4.1) for `0 < old < new`: the
/// inclusion path of the last old leaf, minus the levels covered by the largest complete
/// subtree ending at `old`, plus that subtree's own hash unless it is the whole old tree.
fn consistency_len(old: u64, new: u64) -> usize {
    let inner = u64::BITS - ((old - 1) ^ (new - 1)).leading_zeros();
    let border = (old - 1).checked_shr(inner).unwrap_or(0).count_ones();
    let shift = old.trailing_zeros();
    let seed = u32::from(!old.is_power_of_two());
    (inner - shift + border + seed) as usize
}

/// RFC 9162 §2.1.3.2 "Verifying an Inclusion Proof", step by step: checks that `leaf` is the
/// leaf at `index` of the tree of `size` leaves whose head is `root`. The proof length is
/// checked first against §2.1.3.1 so that a wrong proof is reported as such.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    // Step 1.
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_len(index, size);
    let wrong_length = MerkleError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // Steps 2 and 3.
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf;
    // Step 4.
    for p in proof {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            // "If LSB(fn) is not set, then right-shift both fn and sn equally until either
            // LSB(fn) is set or fn is 0."
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    if snode != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2 "Verifying Consistency between Two Tree Heads", step by step: checks
/// that the tree of `new_size` leaves with head `new_root` extends the tree of `old_size`
/// leaves with head `old_root`.
///
/// The RFC algorithm covers `0 < old_size < new_size`. Equal sizes are accepted with an empty
/// proof and equal roots (`PROOF(m, D[m])` is empty, §2.1.4.1). `old_size == 0` is refused: the
/// empty tree is a prefix of every tree, so whether to accept it is the caller's protocol
/// decision, not a proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), MerkleError> {
    if old_size == 0 || old_size > new_size {
        return Err(MerkleError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(MerkleError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if old_root != new_root {
            return Err(MerkleError::RootMismatch);
        }
        return Ok(());
    }
    // Step 1 (an empty proof) is covered by the length check: `expected >= 1` here.
    let expected = consistency_len(old_size, new_size);
    let wrong_length = MerkleError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // Step 2.
    let seed = old_size.is_power_of_two().then_some(old_root);
    let mut path = seed.into_iter().chain(proof);
    // Step 3.
    let mut fnode = old_size - 1;
    let mut snode = new_size - 1;
    // Step 4.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let Some(first) = path.next() else {
        return Err(wrong_length);
    };
    let mut fr = *first;
    let mut sr = *first;
    // Step 6.
    for c in path {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            // "If LSB(fn) is not set, then right-shift both fn and sn equally until either
            // LSB(fn) is set or fn is 0."
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(wrong_length);
    }
    let both = fr.ct_eq(old_root) & sr.ct_eq(new_root);
    if bool::from(both) {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// A complete, aligned subtree: the leaves `[index << level, (index + 1) << level)`. Every
/// left child in the RFC 9162 §2.1.1 tree is one (`k` is a power of two), so these are exactly
/// the nodes storage keeps (and what C2SP tlog-tiles serves at level L index N), and every
/// proof is assembled from O(log n) stored hashes with no rebuild.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subtree {
    /// Height above the leaves: the subtree covers `2^level` leaves (0 for a leaf).
    pub level: u8,
    /// Position among the subtrees of this level, counted from the left of the tree.
    pub index: u64,
}

impl fmt::Display for Subtree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "level {} index {}", self.level, self.index)
    }
}

/// One hash of a proof, described as the complete subtrees whose right-to-left fold gives it:
/// one subtree when the proof node is complete; several (largest first, left to right) when it
/// lies on the right edge of the tree and covers a range whose size is not a power of two, as
/// RFC 9162 §2.1.1 splits it. Fold: `h = last; for s in earlier ones reversed: h =
/// node_hash(s, h)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofNode(pub Vec<Subtree>);

/// The complete subtrees that decompose the range `[begin, end)` as the RFC 9162 §2.1.1 tree
/// splits it: one per set bit of `end - begin`, largest first. Used to compute incomplete
/// right-edge nodes and the root of a tree of any size from stored complete subtrees.
///
/// `begin` must be a multiple of the largest power of two used (true of every node of an RFC
/// tree, in particular on its right edge); otherwise, and for an empty range, the result is
/// empty, which [`fold`] refuses.
pub fn decompose(begin: u64, end: u64) -> Vec<Subtree> {
    if begin >= end {
        return Vec::new();
    }
    let n = end - begin;
    let top = u64::BITS - 1 - n.leading_zeros();
    if begin & ((1u64 << top) - 1) != 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(n.count_ones() as usize);
    let mut pos = begin;
    for level in (0..=top).rev() {
        if (n >> level) & 1 == 1 {
            out.push(Subtree {
                level: level as u8,
                index: pos >> level,
            });
            pos += 1u64 << level;
        }
    }
    out
}

/// Which stored subtrees make up each hash of `PATH(index, D[size])` (RFC 9162 §2.1.3.1),
/// bottom-up, so a server assembles inclusion proofs from stored hashes with [`assemble`].
pub fn inclusion_plan(index: u64, size: u64) -> Result<Vec<ProofNode>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let (mut lo, mut hi) = (0u64, size);
    let mut plan = Vec::new();
    while hi - lo > 1 {
        let mid = lo + split_u64(hi - lo);
        if index < mid {
            plan.push(ProofNode(decompose(mid, hi)));
            hi = mid;
        } else {
            plan.push(ProofNode(decompose(lo, mid)));
            lo = mid;
        }
    }
    plan.reverse();
    Ok(plan)
}

/// Which stored subtrees make up each hash of `PROOF(old_size, D[new_size])` (RFC 9162
/// §2.1.4.1), in proof order. Same domain as [`consistency_proof`]: `0 < old_size <= new_size`,
/// and equal sizes give the empty plan.
pub fn consistency_plan(old_size: u64, new_size: u64) -> Result<Vec<ProofNode>, MerkleError> {
    if old_size == 0 || old_size > new_size {
        return Err(MerkleError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    let (mut lo, mut hi) = (0u64, new_size);
    let mut known = true;
    let mut plan = Vec::new();
    while old_size < hi {
        let mid = lo + split_u64(hi - lo);
        if old_size <= mid {
            plan.push(ProofNode(decompose(mid, hi)));
            hi = mid;
        } else {
            plan.push(ProofNode(decompose(lo, mid)));
            lo = mid;
            known = false;
        }
    }
    if !known {
        plan.push(ProofNode(decompose(lo, hi)));
    }
    plan.reverse();
    Ok(plan)
}

/// Plan for `MTH(D[size])` (RFC 9162 §2.1.1) of a tree of `size >= 1` leaves, i.e.
/// `decompose(0, size)` as one [`ProofNode`]; a server computes any past tree head from stored
/// subtrees with it. For `size == 0` the node is empty and [`fold`] refuses it: the empty
/// tree's root is [`empty_root`].
pub fn root_plan(size: u64) -> ProofNode {
    ProofNode(decompose(0, size))
}

/// Turns a plan into proof hashes (RFC 9162 §2.1.3.1 / §2.1.4.1 order), given a lookup of
/// stored complete-subtree hashes. A subtree the lookup lacks is reported as
/// [`MerkleError::MissingNode`].
pub fn assemble(
    plan: &[ProofNode],
    mut lookup: impl FnMut(Subtree) -> Option<Hash>,
) -> Result<Vec<Hash>, MerkleError> {
    plan.iter().map(|node| fold(node, &mut lookup)).collect()
}

/// The hash of one proof node: its subtrees folded right to left with `node_hash`, which is
/// how RFC 9162 §2.1.1 hashes a right-edge range whose size is not a power of two.
pub fn fold(
    node: &ProofNode,
    mut lookup: impl FnMut(Subtree) -> Option<Hash>,
) -> Result<Hash, MerkleError> {
    let mut get = |s: Subtree| lookup(s).ok_or(MerkleError::MissingNode(s));
    let mut parts = node.0.iter().rev();
    let Some(last) = parts.next() else {
        return Err(MerkleError::EmptyNode);
    };
    let mut h = get(*last)?;
    for s in parts {
        h = node_hash(&get(*s)?, &h);
    }
    Ok(h)
}

/// The right edge of a growing tree (a "compact range" over `[0, size)`): the hashes of the
/// complete subtrees of `decompose(0, size)`, at most 64. It is the stack of RFC 9162 §2.1.2
/// kept between appends: appending a leaf returns every complete subtree that became complete
/// (level 0 the leaf itself, then each merged parent) so the caller stores them, and
/// [`Frontier::root`] is O(log n) from memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The empty tree, whose root is `MTH({})` (RFC 9162 §2.1.1).
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the right edge from stored hashes of `decompose(0, size)`, in that order, so a
    /// restarted sequencer continues the same RFC 9162 §2.1.1 tree. Errors if the count is not
    /// the number of set bits of `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(MerkleError::WrongPartCount {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// Number of leaves, the `tree_size` of RFC 9162 §2.1.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right edge's complete subtrees with their hashes, `decompose(0, size)` in order:
    /// what a consistency proof from this tree needs from its old part.
    pub fn subtrees(&self) -> impl Iterator<Item = (Subtree, Hash)> + '_ {
        decompose(0, self.size)
            .into_iter()
            .zip(self.hashes.iter().copied())
    }

    /// `MTH(D[size])` (RFC 9162 §2.1.1): the right-edge hashes merged right to left as in
    /// §2.1.2 step 3; [`empty_root`] when the tree is empty.
    pub fn root(&self) -> Hash {
        let mut parts = self.hashes.iter().rev();
        let Some(last) = parts.next() else {
            return empty_root();
        };
        parts.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// Appends a leaf hash (RFC 9162 §2.1.2 step 2) and returns every complete subtree that
    /// became complete: the leaf at level 0, then each merged parent, for the caller to store.
    /// A tree of `u64::MAX` leaves cannot grow; then nothing changes and the list is empty
    /// (use [`Frontier::try_push`] to see that as an error).
    pub fn push(&mut self, leaf: Hash) -> Vec<(Subtree, Hash)> {
        self.try_push(leaf).unwrap_or_default()
    }

    /// [`Frontier::push`] that reports a full tree as [`MerkleError::TreeFull`] instead of
    /// ignoring the leaf, because RFC 9162 tree sizes are 64-bit.
    pub fn try_push(&mut self, leaf: Hash) -> Result<Vec<(Subtree, Hash)>, MerkleError> {
        let index = self.size;
        let new_size = index.checked_add(1).ok_or(MerkleError::TreeFull)?;
        let merges = index.trailing_ones();
        let mut completed = Vec::with_capacity(merges as usize + 1);
        self.hashes.push(leaf);
        completed.push((Subtree { level: 0, index }, leaf));
        for level in 1..=merges {
            merge_top(&mut self.hashes);
            if let Some(parent) = self.hashes.last() {
                completed.push((
                    Subtree {
                        level: level as u8,
                        index: index >> level,
                    },
                    *parent,
                ));
            }
        }
        self.size = new_size;
        Ok(completed)
    }

    /// The right-edge hashes, in the order of `decompose(0, size)`, for storage or for
    /// [`Frontier::from_parts`] (RFC 9162 §2.1.1 subtrees, largest first).
    pub fn parts(&self) -> &[Hash] {
        &self.hashes
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn stored(leaves: &[Hash]) -> HashMap<Subtree, Hash> {
        let mut f = Frontier::new();
        leaves.iter().flat_map(|l| f.push(*l)).collect()
    }

    #[test]
    fn empty_tree() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(root_from_leaves(&[]), empty_root());
        assert_eq!(Frontier::new().root(), empty_root());
        assert_eq!(Frontier::new().size(), 0);
        assert!(Frontier::new().parts().is_empty());
        assert_eq!(
            inclusion_proof(0, &[]),
            Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            inclusion_plan(0, 0),
            Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            consistency_proof(0, &[]),
            Err(MerkleError::BadSizes { old: 0, new: 0 })
        );
        assert_eq!(
            consistency_plan(0, 0),
            Err(MerkleError::BadSizes { old: 0, new: 0 })
        );
        assert_eq!(
            consistency_plan(0, 5),
            Err(MerkleError::BadSizes { old: 0, new: 5 })
        );
        let e = empty_root();
        assert_eq!(
            verify_inclusion(0, 0, &e, &[], &e),
            Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_consistency(0, 0, &[], &e, &e),
            Err(MerkleError::BadSizes { old: 0, new: 0 })
        );
        assert_eq!(root_plan(0), ProofNode(Vec::new()));
        assert_eq!(
            fold(&root_plan(0), |_| Some(e)),
            Err(MerkleError::EmptyNode)
        );
        assert!(decompose(0, 0).is_empty());
    }

    #[test]
    fn size_one() {
        let l = leaves(1);
        assert_eq!(root_from_leaves(&l), l[0]);
        assert_eq!(inclusion_proof(0, &l), Ok(Vec::new()));
        assert_eq!(inclusion_plan(0, 1), Ok(Vec::new()));
        assert_eq!(consistency_proof(1, &l), Ok(Vec::new()));
        assert_eq!(consistency_plan(1, 1), Ok(Vec::new()));
        assert_eq!(verify_inclusion(0, 1, &l[0], &[], &l[0]), Ok(()));
        assert_eq!(
            verify_inclusion(0, 1, &l[0], &[], &empty_root()),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_inclusion(0, 1, &l[0], &[l[0]], &l[0]),
            Err(MerkleError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(verify_consistency(1, 1, &[], &l[0], &l[0]), Ok(()));
        assert_eq!(
            verify_consistency(1, 1, &[], &l[0], &empty_root()),
            Err(MerkleError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(1, 1, &[l[0]], &l[0], &l[0]),
            Err(MerkleError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(
            root_plan(1),
            ProofNode(vec![Subtree { level: 0, index: 0 }])
        );
        let mut f = Frontier::new();
        assert_eq!(f.push(l[0]), vec![(Subtree { level: 0, index: 0 }, l[0])]);
        assert_eq!(f.root(), l[0]);
    }

    #[test]
    fn index_equal_to_size_is_refused() {
        for n in 1..20u64 {
            let l = leaves(n);
            let oor = MerkleError::IndexOutOfRange { index: n, size: n };
            assert_eq!(inclusion_proof(n, &l), Err(oor.clone()));
            assert_eq!(inclusion_plan(n, n), Err(oor.clone()));
            assert_eq!(
                verify_inclusion(n, n, &l[0], &[], &root_from_leaves(&l)),
                Err(oor)
            );
            let bad = MerkleError::BadSizes { old: n + 1, new: n };
            assert_eq!(consistency_proof(n + 1, &l), Err(bad.clone()));
            assert_eq!(consistency_plan(n + 1, n), Err(bad));
        }
    }

    #[test]
    fn powers_of_two() {
        for level in 0..12u8 {
            let n = 1u64 << level;
            let l = leaves(n);
            let root = root_from_leaves(&l);
            assert_eq!(root_plan(n), ProofNode(vec![Subtree { level, index: 0 }]));
            let map = stored(&l);
            assert_eq!(map.get(&Subtree { level, index: 0 }), Some(&root));
            for i in [0, n / 2, n - 1] {
                let proof = inclusion_proof(i, &l).unwrap();
                assert_eq!(proof.len(), usize::from(level));
                assert_eq!(
                    verify_inclusion(i, n, &l[i as usize], &proof, &root),
                    Ok(())
                );
            }
            if n > 1 {
                // A power-of-two old tree is itself a stored node: the proof omits its root.
                let proof = consistency_proof(n / 2, &l).unwrap();
                assert_eq!(
                    proof,
                    vec![
                        map[&Subtree {
                            level: level - 1,
                            index: 1
                        }]
                    ]
                );
                let old = root_from_leaves(&l[..(n / 2) as usize]);
                assert_eq!(verify_consistency(n / 2, n, &proof, &old, &root), Ok(()));
            }
        }
    }

    /// RFC 9162 §2.1.5, the 7-leaf example tree.
    #[test]
    fn rfc_example() {
        let d = leaves(7);
        let [a, b, c, dd, e, f, j] = [d[0], d[1], d[2], d[3], d[4], d[5], d[6]];
        let g = node_hash(&a, &b);
        let h = node_hash(&c, &dd);
        let i = node_hash(&e, &f);
        let k = node_hash(&g, &h);
        let l = node_hash(&i, &j);
        let hash = node_hash(&k, &l);
        assert_eq!(root_from_leaves(&d), hash);
        assert_eq!(inclusion_proof(0, &d).unwrap(), vec![b, h, l]);
        assert_eq!(inclusion_proof(3, &d).unwrap(), vec![c, g, l]);
        assert_eq!(inclusion_proof(4, &d).unwrap(), vec![f, j, k]);
        assert_eq!(inclusion_proof(6, &d).unwrap(), vec![i, k]);
        assert_eq!(consistency_proof(3, &d).unwrap(), vec![c, dd, g, l]);
        assert_eq!(consistency_proof(4, &d).unwrap(), vec![l]);
        assert_eq!(consistency_proof(6, &d).unwrap(), vec![i, j, k]);
        let hash0 = node_hash(&g, &c);
        let hash2 = node_hash(&k, &i);
        assert_eq!(
            verify_consistency(3, 7, &[c, dd, g, l], &hash0, &hash),
            Ok(())
        );
        assert_eq!(verify_consistency(4, 7, &[l], &k, &hash), Ok(()));
        assert_eq!(verify_consistency(6, 7, &[i, j, k], &hash2, &hash), Ok(()));
    }

    #[test]
    fn lengths_match_reference() {
        for n in 1..=70u64 {
            let l = leaves(n);
            for i in 0..n {
                assert_eq!(inclusion_proof(i, &l).unwrap().len(), inclusion_len(i, n));
                assert_eq!(inclusion_plan(i, n).unwrap().len(), inclusion_len(i, n));
            }
            for m in 1..n {
                assert_eq!(
                    consistency_proof(m, &l).unwrap().len(),
                    consistency_len(m, n)
                );
                assert_eq!(consistency_plan(m, n).unwrap().len(), consistency_len(m, n));
            }
        }
    }

    #[test]
    fn decompose_ranges() {
        let st = |level, index| Subtree { level, index };
        assert_eq!(decompose(0, 7), vec![st(2, 0), st(1, 2), st(0, 6)]);
        assert_eq!(decompose(4, 7), vec![st(1, 2), st(0, 6)]);
        assert_eq!(decompose(8, 16), vec![st(3, 1)]);
        assert_eq!(decompose(6, 7), vec![st(0, 6)]);
        // Misaligned or empty ranges are not RFC tree nodes.
        assert!(decompose(2, 7).is_empty());
        assert!(decompose(7, 7).is_empty());
        assert!(decompose(9, 3).is_empty());
        assert_eq!(decompose(0, u64::MAX).len(), 64);
        assert_eq!(decompose(0, u64::MAX)[0], st(63, 0));
        assert_eq!(decompose(0, u64::MAX)[63], st(0, u64::MAX - 1));
    }

    #[test]
    fn fold_reports_missing_nodes() {
        let plan = inclusion_plan(0, 7).unwrap();
        let missing = Subtree { level: 1, index: 1 };
        let got = assemble(&plan, |s| (s != missing).then_some(empty_root()));
        assert_eq!(got, Err(MerkleError::MissingNode(missing)));
        assert_eq!(
            MerkleError::MissingNode(missing).to_string(),
            "missing stored hash for subtree level 1 index 1"
        );
    }

    #[test]
    fn huge_sizes_do_not_panic() {
        let h = empty_root();
        for (i, n) in [
            (u64::MAX - 1, u64::MAX),
            (0, u64::MAX),
            (1 << 63, u64::MAX),
            (0, 1 << 63),
        ] {
            let len = inclusion_len(i, n);
            assert_eq!(inclusion_plan(i, n).unwrap().len(), len);
            assert_eq!(
                verify_inclusion(i, n, &h, &vec![h; len], &h),
                Err(MerkleError::RootMismatch)
            );
            assert!(matches!(
                verify_inclusion(i, n, &h, &[], &h),
                Err(MerkleError::WrongProofLength { .. })
            ));
        }
        for (m, n) in [
            (1, u64::MAX),
            (u64::MAX - 1, u64::MAX),
            (1 << 63, u64::MAX),
            (3, 1 << 63),
        ] {
            let len = consistency_len(m, n);
            assert_eq!(consistency_plan(m, n).unwrap().len(), len);
            assert_eq!(
                verify_consistency(m, n, &vec![h; len], &h, &h),
                Err(MerkleError::RootMismatch)
            );
            assert!(matches!(
                verify_consistency(m, n, &[], &h, &h),
                Err(MerkleError::WrongProofLength { .. })
            ));
        }
        assert_eq!(inclusion_len(0, 1), 0);
        assert!(inclusion_plan(u64::MAX, u64::MAX).is_err());
        assert!(verify_inclusion(u64::MAX, u64::MAX, &h, &[], &h).is_err());
    }

    #[test]
    fn full_frontier_refuses_leaves() {
        let mut f = Frontier::from_parts(u64::MAX, vec![empty_root(); 64]).unwrap();
        assert_eq!(f.try_push(empty_root()), Err(MerkleError::TreeFull));
        assert!(f.push(empty_root()).is_empty());
        assert_eq!(f.size(), u64::MAX);
    }

    #[test]
    fn from_parts_checks_count() {
        assert_eq!(
            Frontier::from_parts(5, vec![empty_root()]),
            Err(MerkleError::WrongPartCount {
                size: 5,
                expected: 2,
                got: 1
            })
        );
        assert_eq!(Frontier::from_parts(0, Vec::new()), Ok(Frontier::new()));
    }

    #[test]
    fn frontier_reports_completed_subtrees() {
        let l = leaves(8);
        let mut f = Frontier::new();
        let mut all = Vec::new();
        for leaf in &l {
            all.push(f.push(*leaf));
        }
        assert_eq!(all[0].len(), 1);
        assert_eq!(all[1].len(), 2);
        assert_eq!(all[3].len(), 3);
        assert_eq!(all[7].len(), 4);
        assert_eq!(
            all[7][3],
            (Subtree { level: 3, index: 0 }, root_from_leaves(&l))
        );
        assert_eq!(
            all[5][1],
            (Subtree { level: 1, index: 2 }, root_from_leaves(&l[4..6]))
        );
    }

    #[test]
    fn hash_encodings() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
        assert_eq!(h.to_string(), h.to_hex());
        assert_eq!(Hash::from_slice(h.as_bytes()), Ok(h));
        assert_eq!(
            Hash::from_slice(&[0; 31]),
            Err(MerkleError::BadHashLength { got: 31 })
        );
        assert_eq!(
            Hash::from_slice(&[0; 33]),
            Err(MerkleError::BadHashLength { got: 33 })
        );
        assert_eq!(
            Hash::from_hex(&h.to_hex().to_uppercase()),
            Err(MerkleError::BadEncoding)
        );
        assert_eq!(Hash::from_hex("abc"), Err(MerkleError::BadEncoding));
        assert_eq!(Hash::from_hex("zz"), Err(MerkleError::BadEncoding));
        assert_eq!(
            Hash::from_hex("abcd"),
            Err(MerkleError::BadHashLength { got: 2 })
        );
        assert_eq!(
            Hash::from_base64(""),
            Err(MerkleError::BadHashLength { got: 0 })
        );
        assert_eq!(
            Hash::from_base64("ZG9uJ3QgY2FyZSAy"),
            Err(MerkleError::BadHashLength { got: 12 })
        );
        assert_eq!(
            Hash::from_base64("not base64!"),
            Err(MerkleError::BadEncoding)
        );
        let unpadded = h.to_base64().trim_end_matches('=').to_owned();
        assert_eq!(Hash::from_base64(&unpadded), Err(MerkleError::BadEncoding));
        assert_ne!(h, leaf_hash(b"y"));
        assert_eq!(format!("{h:?}"), format!("Hash({})", h.to_hex()));
    }

    #[test]
    fn hasher_vectors() {
        // transparency-dev/merkle rfc6962/rfc6962_test.go.
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            leaf_hash(b"L123456").to_hex(),
            "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
        );
    }
}
