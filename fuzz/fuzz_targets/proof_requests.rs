//! Fuzzes the Merkle proof requests a client or a server computes from untrusted numbers:
//! `verify_inclusion` / `verify_consistency` with arbitrary index, sizes and hashes, the proof
//! planners (`inclusion_plan`, `consistency_plan`, `root_plan`, `decompose`) and `Frontier`
//! with arbitrary `u64` values. They must answer with an error, never panic, overflow or loop.
//! For small trees the plans are also checked against the reference proofs over real leaves.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use custody_core::merkle::{self, Frontier, Hash, MerkleError, ProofNode, Subtree};
use libfuzzer_sys::fuzz_target;

/// A `u64` biased towards the edges where arithmetic goes wrong: near 0, near `u64::MAX` and
/// around powers of two, as well as any value.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum N {
    Any(u64),
    Small(u8),
    NearMax(u8),
    NearPow2 { exp: u8, delta: i8 },
}

impl N {
    fn get(self) -> u64 {
        match self {
            N::Any(v) => v,
            N::Small(v) => u64::from(v),
            N::NearMax(d) => u64::MAX - u64::from(d),
            N::NearPow2 { exp, delta } => {
                (1u64 << (exp % 64)).wrapping_add_signed(i64::from(delta))
            }
        }
    }
}

/// How many hashes a proof carries: as the fuzzer chose them, or exactly the number the plan
/// for these sizes calls for, so that the verification loops run over big trees too.
#[derive(Arbitrary, Debug)]
enum Proof {
    Given(Vec<[u8; 32]>),
    PlanLength([u8; 32]),
}

#[derive(Arbitrary, Debug)]
enum Request {
    Inclusion {
        index: N,
        size: N,
        leaf: [u8; 32],
        proof: Proof,
        root: [u8; 32],
    },
    Consistency {
        old: N,
        new: N,
        proof: Proof,
        old_root: [u8; 32],
        new_root: [u8; 32],
    },
    Decompose {
        begin: N,
        end: N,
    },
    RootPlan {
        size: N,
    },
    Frontier {
        size: N,
        parts: Vec<[u8; 32]>,
        pushes: u8,
    },
}

/// The hashes of `proof`, `len` long for [`Proof::PlanLength`].
fn hashes(proof: Proof, len: usize) -> Vec<Hash> {
    match proof {
        Proof::Given(v) => v.into_iter().map(Hash).collect(),
        Proof::PlanLength(h) => (0..len)
            .map(|i| {
                let mut b = h;
                b[0] ^= i as u8;
                Hash(b)
            })
            .collect(),
    }
}

/// Leaves `leaf_hash(i.to_be_bytes())` for `i < n`, and every complete subtree's hash.
fn tree(n: u64) -> (Vec<Hash>, HashMap<Subtree, Hash>) {
    let leaves: Vec<Hash> = (0..n)
        .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
        .collect();
    let mut frontier = Frontier::new();
    let stored = leaves.iter().flat_map(|l| frontier.push(*l)).collect();
    assert_eq!(frontier.root(), merkle::root_from_leaves(&leaves));
    (leaves, stored)
}

/// Largest tree built from real leaves to cross-check plans against reference proofs.
const SMALL: u64 = 64;

/// Checks a plan's shape. A 64-bit tree is at most 64 levels deep: an inclusion path has at
/// most 64 hashes, a consistency proof one more (the old tree's own root when its size is not
/// a power of two).
fn check_plan_nodes(plan: &[ProofNode], max_len: usize) {
    assert!(plan.len() <= max_len, "plan of {} nodes", plan.len());
    for node in plan {
        assert!(!node.0.is_empty(), "empty proof node in plan");
    }
}

fn inclusion(index: u64, size: u64, leaf: Hash, proof: Proof, root: Hash) {
    let plan = merkle::inclusion_plan(index, size);
    let plan_len = plan.as_ref().map_or(0, Vec::len);
    let proof = hashes(proof, plan_len);
    let verdict = merkle::verify_inclusion(index, size, &leaf, &proof, &root);
    match &plan {
        Err(_) => assert!(verdict.is_err(), "verified an impossible inclusion"),
        Ok(plan) => {
            check_plan_nodes(plan, 64);
            if proof.len() == plan.len() {
                assert!(
                    !matches!(verdict, Err(MerkleError::WrongProofLength { .. })),
                    "plan length {} refused: {verdict:?}",
                    plan.len()
                );
            }
        }
    }
    if let Ok(plan) = plan
        && size <= SMALL
    {
        let (leaves, stored) = tree(size);
        let assembled = merkle::assemble(&plan, |s| stored.get(&s).copied()).expect("assemble");
        let reference = merkle::inclusion_proof(index, &leaves).expect("reference proof");
        assert_eq!(assembled, reference);
        let root = merkle::root_from_leaves(&leaves);
        merkle::verify_inclusion(index, size, &leaves[index as usize], &reference, &root)
            .expect("reference proof must verify");
        let root_plan = merkle::root_plan(size);
        let folded = merkle::fold(&root_plan, |s| stored.get(&s).copied()).expect("fold");
        assert_eq!(folded, root);
    }
}

fn consistency(old: u64, new: u64, proof: Proof, old_root: Hash, new_root: Hash) {
    let plan = merkle::consistency_plan(old, new);
    let plan_len = plan.as_ref().map_or(0, Vec::len);
    let proof = hashes(proof, plan_len);
    let verdict = merkle::verify_consistency(old, new, &proof, &old_root, &new_root);
    match &plan {
        Err(_) => assert!(verdict.is_err(), "verified an impossible consistency"),
        Ok(plan) => {
            check_plan_nodes(plan, 65);
            if proof.len() == plan.len() {
                assert!(
                    !matches!(verdict, Err(MerkleError::WrongProofLength { .. })),
                    "plan length {} refused: {verdict:?}",
                    plan.len()
                );
            }
        }
    }
    if let Ok(plan) = plan
        && new <= SMALL
    {
        let (leaves, stored) = tree(new);
        let assembled = merkle::assemble(&plan, |s| stored.get(&s).copied()).expect("assemble");
        let reference = merkle::consistency_proof(old, &leaves).expect("reference proof");
        assert_eq!(assembled, reference);
        let old_root = merkle::root_from_leaves(&leaves[..old as usize]);
        let new_root = merkle::root_from_leaves(&leaves);
        merkle::verify_consistency(old, new, &reference, &old_root, &new_root)
            .expect("reference proof must verify");
    }
}

fn decompose(begin: u64, end: u64) {
    let parts = merkle::decompose(begin, end);
    assert!(parts.len() <= 64);
    // When not empty, the subtrees tile [begin, end) exactly, largest first.
    let mut pos = begin;
    for s in &parts {
        assert!(s.level < 64);
        let width = 1u64 << s.level;
        assert_eq!(
            s.index.checked_mul(width),
            Some(pos),
            "gap or overlap at {s}"
        );
        pos = pos.checked_add(width).expect("subtree beyond u64");
    }
    assert!(
        parts.is_empty() || pos == end,
        "decompose({begin}, {end}) ends at {pos}"
    );
}

fn frontier(size: u64, parts: Vec<[u8; 32]>, pushes: u8) {
    let Ok(mut f) = Frontier::from_parts(size, parts.into_iter().map(Hash).collect()) else {
        return;
    };
    let _ = f.root();
    for i in 0..pushes % 8 {
        let before = f.size();
        match f.try_push(merkle::leaf_hash(&[i])) {
            Ok(done) => {
                assert_eq!(f.size(), before + 1);
                assert_eq!(done.len(), before.trailing_ones() as usize + 1);
                assert_eq!(f.parts().len(), f.size().count_ones() as usize);
            }
            Err(e) => {
                assert_eq!(e, MerkleError::TreeFull);
                assert_eq!(before, u64::MAX);
                assert!(f.push(merkle::leaf_hash(&[i])).is_empty());
            }
        }
        let _ = f.root();
    }
}

fuzz_target!(|request: Request| match request {
    Request::Inclusion {
        index,
        size,
        leaf,
        proof,
        root,
    } => inclusion(index.get(), size.get(), Hash(leaf), proof, Hash(root)),
    Request::Consistency {
        old,
        new,
        proof,
        old_root,
        new_root,
    } => consistency(old.get(), new.get(), proof, Hash(old_root), Hash(new_root)),
    Request::Decompose { begin, end } => decompose(begin.get(), end.get()),
    Request::RootPlan { size } => {
        let node = merkle::root_plan(size.get());
        assert_eq!(node.0.len(), size.get().count_ones() as usize);
    }
    Request::Frontier {
        size,
        parts,
        pushes,
    } => frontier(size.get(), parts, pushes),
});
