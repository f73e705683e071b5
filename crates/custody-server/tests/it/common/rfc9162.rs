//! An RFC 9162 §2.1 Merkle tree written from the RFC text alone
//! (`testdata/vectors/rfc9162/draft-ietf-trans-rfc6962-bis-42_section2.1.txt`), with `sha2`
//! and no custody code, so the server's proofs are checked by a second implementation that
//! shares no bugs with `custody_core::merkle`.

use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 output.
pub type H = [u8; 32];

/// `HASH(0x00 || d)`: a leaf (§2.1.1).
pub fn leaf(d: &[u8]) -> H {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(d)
        .finalize()
        .into()
}

/// `HASH(0x01 || left || right)`: an interior node (§2.1.1).
pub fn node(left: &H, right: &H) -> H {
    Sha256::new()
        .chain_update([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// `k`: the largest power of two smaller than `n` (`n > 1`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// `MTH(D_n)` over already-hashed leaves, by the recursive definition of §2.1.1.
pub fn mth(leaves: &[H]) -> H {
    match leaves.len() {
        0 => Sha256::digest(b"").into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// `PATH(m, D_n)` (§2.1.3.1).
pub fn path(m: usize, leaves: &[H]) -> Vec<H> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    let mut out;
    if m < k {
        out = path(m, &leaves[..k]);
        out.push(mth(&leaves[k..]));
    } else {
        out = path(m - k, &leaves[k..]);
        out.push(mth(&leaves[..k]));
    }
    out
}

/// `PROOF(m, D_n)` (§2.1.4.1), for `0 < m <= n`.
pub fn proof(m: usize, leaves: &[H]) -> Vec<H> {
    subproof(m, leaves, true)
}

fn subproof(m: usize, leaves: &[H], b: bool) -> Vec<H> {
    let n = leaves.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(leaves)] };
    }
    let k = split(n);
    let mut out;
    if m <= k {
        out = subproof(m, &leaves[..k], b);
        out.push(mth(&leaves[k..]));
    } else {
        out = subproof(m - k, &leaves[k..], false);
        out.push(mth(&leaves[..k]));
    }
    out
}

/// §2.1.3.2 "Verifying an Inclusion Proof", step by step.
pub fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    hash: &H,
    inclusion_path: &[H],
    root_hash: &H,
) -> bool {
    // 1.
    if leaf_index >= tree_size {
        return false;
    }
    // 2.
    let mut fnode = leaf_index;
    let mut snode = tree_size - 1;
    // 3.
    let mut r = *hash;
    // 4.
    for p in inclusion_path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // 5.
    snode == 0 && r == *root_hash
}

/// §2.1.4.2 "Verifying Consistency between Two Tree Heads", step by step, for
/// `0 < first < second`.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_hash: &H,
    second_hash: &H,
    consistency_path: &[H],
) -> bool {
    if first == 0 || first >= second {
        return false;
    }
    // 1.
    if consistency_path.is_empty() {
        return false;
    }
    // 2.
    let mut path: Vec<H> = Vec::with_capacity(consistency_path.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_hash);
    }
    path.extend_from_slice(consistency_path);
    // 3.
    let mut fnode = first - 1;
    let mut snode = second - 1;
    // 4.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // 5.
    let mut fr = path[0];
    let mut sr = path[0];
    // 6.
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node(c, &fr);
            sr = node(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // 7.
    fr == *first_hash && sr == *second_hash && snode == 0
}
