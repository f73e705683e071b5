//! Property tests for the RFC 9162 §2.1 Merkle module: the reference proofs verify, the
//! storage-side plans assemble to the same hashes, the frontier stores the right subtrees, and
//! any tampering makes verification fail.

use std::collections::HashMap;

use custody_core::merkle::{
    Frontier, Hash, MerkleError, Subtree, assemble, consistency_plan, consistency_proof, decompose,
    fold, inclusion_plan, inclusion_proof, leaf_hash, root_from_leaves, root_plan,
    verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

const MAX_SIZE: usize = 3000;

fn make_leaves(n: usize, seed: u64) -> Vec<Hash> {
    (0..n as u64)
        .map(|i| {
            let mut data = [0u8; 16];
            data[..8].copy_from_slice(&seed.to_be_bytes());
            data[8..].copy_from_slice(&i.to_be_bytes());
            leaf_hash(&data)
        })
        .collect()
}

/// Every complete subtree of the tree over `leaves`, collected from `Frontier::push`, which is
/// checked on the way: nothing is reported twice, each reported subtree is the one completed
/// by that leaf, and the root after every push matches the stored-subtree root plan.
fn stored(leaves: &[Hash]) -> (HashMap<Subtree, Hash>, Frontier) {
    let mut map = HashMap::new();
    let mut frontier = Frontier::new();
    for (i, leaf) in leaves.iter().enumerate() {
        let done = frontier.push(*leaf);
        assert_eq!(done.len(), 1 + i.trailing_ones() as usize);
        assert_eq!(
            done[0],
            (
                Subtree {
                    level: 0,
                    index: i as u64
                },
                *leaf
            )
        );
        for (level, (s, h)) in done.iter().enumerate() {
            assert_eq!(
                *s,
                Subtree {
                    level: level as u8,
                    index: (i as u64) >> level
                }
            );
            assert!(map.insert(*s, *h).is_none(), "{s} reported twice");
        }
        let size = i as u64 + 1;
        assert_eq!(frontier.size(), size);
        let parts: Vec<Hash> = decompose(0, size).iter().map(|s| map[s]).collect();
        assert_eq!(frontier.parts(), &parts[..]);
        assert_eq!(
            fold(&root_plan(size), |s| map.get(&s).copied()),
            Ok(frontier.root())
        );
    }
    (map, frontier)
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut b = h.0;
    b[(bit / 8) % 32] ^= 1 << (bit % 8);
    Hash(b)
}

/// For each hash of `PATH(index, D[size])`, whether it is a left sibling. The verifier's
/// computation depends on `(index, size)` only through this sequence.
fn sides(index: u64, size: u64) -> Vec<bool> {
    inclusion_plan(index, size)
        .unwrap()
        .iter()
        .map(|node| (node.0[0].index << node.0[0].level) < index)
        .collect()
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn inclusion(
        n in 1..=MAX_SIZE,
        idx in any::<u64>(),
        seed in any::<u64>(),
        bit in 0usize..256,
        other in any::<u64>(),
        other_size in 1..=MAX_SIZE + 100,
    ) {
        let index = idx % n as u64;
        let all = make_leaves(n.max(other_size), seed);
        let leaves = &all[..n];
        let leaf = leaves[index as usize];
        let root = root_from_leaves(leaves);
        let proof = inclusion_proof(index, leaves).unwrap();
        prop_assert_eq!(verify_inclusion(index, n as u64, &leaf, &proof, &root), Ok(()));

        let (map, frontier) = stored(leaves);
        prop_assert_eq!(frontier.root(), root);
        let plan = inclusion_plan(index, n as u64).unwrap();
        prop_assert_eq!(assemble(&plan, |s| map.get(&s).copied()), Ok(proof.clone()));

        // Any flipped bit in the proof, the leaf or the root.
        for (j, p) in proof.iter().enumerate() {
            let mut bad = proof.clone();
            bad[j] = flip(p, bit + 37 * j);
            prop_assert_eq!(
                verify_inclusion(index, n as u64, &leaf, &bad, &root),
                Err(MerkleError::RootMismatch)
            );
        }
        prop_assert!(verify_inclusion(index, n as u64, &flip(&leaf, bit), &proof, &root).is_err());
        prop_assert!(verify_inclusion(index, n as u64, &leaf, &proof, &flip(&root, bit)).is_err());

        // Longer or shorter proofs.
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(index, n as u64, &leaf, &longer, &root).is_err());
        if !proof.is_empty() {
            prop_assert!(verify_inclusion(index, n as u64, &leaf, &proof[1..], &root).is_err());
        }

        // Another index of the same tree, with this leaf or with the leaf really there.
        let j = other % n as u64;
        if j != index {
            prop_assert!(verify_inclusion(j, n as u64, &leaf, &proof, &root).is_err());
            prop_assert!(verify_inclusion(j, n as u64, &leaves[j as usize], &proof, &root).is_err());
        }
        prop_assert!(verify_inclusion(n as u64, n as u64, &leaf, &proof, &root).is_err());

        // Another size. Against that tree's root it always fails. Against this tree's root
        // it passes exactly when the two sizes give the same left/right path, because RFC 9162
        // §2.1.3.2 only uses the size to steer the path: the size is bound by the signed tree
        // head, not by the proof.
        let size2 = other_size as u64;
        if size2 != n as u64 && index < size2 {
            let root2 = root_from_leaves(&all[..other_size]);
            prop_assert!(verify_inclusion(index, size2, &leaf, &proof, &root2).is_err());
            let same_path = sides(index, size2) == sides(index, n as u64);
            prop_assert_eq!(
                verify_inclusion(index, size2, &leaf, &proof, &root).is_ok(),
                same_path
            );
        }
    }

    #[test]
    fn consistency(
        n in 1..=MAX_SIZE,
        m_seed in any::<u64>(),
        seed in any::<u64>(),
        bit in 0usize..256,
        other in any::<u64>(),
        other_size in 1..=MAX_SIZE + 100,
    ) {
        let m = 1 + (m_seed % n as u64) as usize;
        let all = make_leaves(n.max(other_size), seed);
        let leaves = &all[..n];
        let (m64, n64) = (m as u64, n as u64);
        let old_root = root_from_leaves(&leaves[..m]);
        let new_root = root_from_leaves(leaves);
        let proof = consistency_proof(m64, leaves).unwrap();
        prop_assert_eq!(verify_consistency(m64, n64, &proof, &old_root, &new_root), Ok(()));
        prop_assert_eq!(proof.is_empty(), m == n);

        let (map, _) = stored(leaves);
        let plan = consistency_plan(m64, n64).unwrap();
        prop_assert_eq!(assemble(&plan, |s| map.get(&s).copied()), Ok(proof.clone()));

        for (j, p) in proof.iter().enumerate() {
            let mut bad = proof.clone();
            bad[j] = flip(p, bit + 37 * j);
            prop_assert_eq!(
                verify_consistency(m64, n64, &bad, &old_root, &new_root),
                Err(MerkleError::RootMismatch)
            );
        }
        prop_assert!(
            verify_consistency(m64, n64, &proof, &flip(&old_root, bit), &new_root).is_err()
        );
        prop_assert!(
            verify_consistency(m64, n64, &proof, &old_root, &flip(&new_root, bit)).is_err()
        );
        prop_assert!(verify_consistency(m64, n64, &proof, &new_root, &old_root).is_err() || m == n);

        let mut longer = proof.clone();
        longer.push(new_root);
        prop_assert!(verify_consistency(m64, n64, &longer, &old_root, &new_root).is_err());
        if !proof.is_empty() {
            prop_assert!(
                verify_consistency(m64, n64, &proof[1..], &old_root, &new_root).is_err()
            );
        }

        // Other sizes, each with the genuine root of that size: always refused.
        let m2 = 1 + (other % n64);
        if m2 != m64 {
            let root2 = root_from_leaves(&leaves[..m2 as usize]);
            prop_assert!(verify_consistency(m2, n64, &proof, &root2, &new_root).is_err());
        }
        let n2 = other_size as u64;
        if n2 != n64 {
            let root2 = root_from_leaves(&all[..other_size]);
            prop_assert!(verify_consistency(m64, n2, &proof, &old_root, &root2).is_err());
        }
        prop_assert!(verify_consistency(0, n64, &proof, &old_root, &new_root).is_err());
        prop_assert!(verify_consistency(n64 + 1, n64, &proof, &old_root, &new_root).is_err());
    }

    #[test]
    fn frontier(n in 0..=MAX_SIZE, seed in any::<u64>(), cut in any::<u64>()) {
        let leaves = make_leaves(n, seed);
        let (map, frontier) = stored(&leaves);
        prop_assert_eq!(frontier.root(), root_from_leaves(&leaves));
        prop_assert_eq!(frontier.size(), n as u64);

        // Exactly the complete subtrees, each with its reference hash.
        let expected: usize = (0..64).map(|l| n >> l).sum();
        prop_assert_eq!(map.len(), expected);
        for (s, h) in &map {
            let begin = (s.index << s.level) as usize;
            let end = begin + (1usize << s.level);
            prop_assert_eq!(*h, root_from_leaves(&leaves[begin..end]));
        }
        if n > 0 {
            prop_assert_eq!(
                fold(&root_plan(n as u64), |s| map.get(&s).copied()),
                Ok(root_from_leaves(&leaves))
            );
        }

        // Round trip through the stored parts at a random size, then keep growing.
        let size = (cut % (n as u64 + 1)) as usize;
        let mut before = Frontier::new();
        for leaf in &leaves[..size] {
            before.push(*leaf);
        }
        prop_assert_eq!(before.root(), root_from_leaves(&leaves[..size]));
        let mut again = Frontier::from_parts(size as u64, before.parts().to_vec()).unwrap();
        prop_assert_eq!(&again, &before);
        prop_assert_eq!(again.root(), before.root());
        for leaf in &leaves[size..] {
            prop_assert_eq!(again.push(*leaf), before.push(*leaf));
        }
        prop_assert_eq!(&again, &frontier);
        let mut short = before.parts().to_vec();
        short.push(Hash([0; 32]));
        prop_assert!(Frontier::from_parts(n as u64, short).is_err());
    }
}

/// `Frontier::root` against the reference fold at every size, not only at the end.
#[test]
fn frontier_root_at_every_size() {
    let leaves = make_leaves(1100, 7);
    let mut frontier = Frontier::new();
    assert_eq!(frontier.root(), root_from_leaves(&[]));
    for (i, leaf) in leaves.iter().enumerate() {
        frontier.push(*leaf);
        assert_eq!(
            frontier.root(),
            root_from_leaves(&leaves[..=i]),
            "size {}",
            i + 1
        );
    }
}

/// Every proof of every small tree, both ways.
#[test]
fn all_small_trees() {
    let leaves = make_leaves(64, 11);
    let (map, _) = stored(&leaves);
    let get = |s: Subtree| map.get(&s).copied();
    for n in 1..=64usize {
        let tree = &leaves[..n];
        let root = root_from_leaves(tree);
        for i in 0..n {
            let proof = inclusion_proof(i as u64, tree).unwrap();
            assert_eq!(
                assemble(&inclusion_plan(i as u64, n as u64).unwrap(), get),
                Ok(proof.clone())
            );
            assert_eq!(
                verify_inclusion(i as u64, n as u64, &tree[i], &proof, &root),
                Ok(())
            );
        }
        for m in 1..=n {
            let proof = consistency_proof(m as u64, tree).unwrap();
            let plan = consistency_plan(m as u64, n as u64).unwrap();
            assert_eq!(assemble(&plan, get), Ok(proof.clone()));
            let old = root_from_leaves(&leaves[..m]);
            assert_eq!(
                verify_consistency(m as u64, n as u64, &proof, &old, &root),
                Ok(())
            );
        }
    }
}

/// Every single-bit flip of every hash involved, for a few tree shapes.
#[test]
fn every_bit_flip_fails() {
    let leaves = make_leaves(1000, 3);
    for (index, n) in [
        (0usize, 1usize),
        (0, 2),
        (5, 8),
        (6, 7),
        (998, 999),
        (512, 1000),
    ] {
        let tree = &leaves[..n];
        let root = root_from_leaves(tree);
        let proof = inclusion_proof(index as u64, tree).unwrap();
        let (i, s) = (index as u64, n as u64);
        for bit in 0..256 {
            assert!(verify_inclusion(i, s, &flip(&tree[index], bit), &proof, &root).is_err());
            assert!(verify_inclusion(i, s, &tree[index], &proof, &flip(&root, bit)).is_err());
            for j in 0..proof.len() {
                let mut bad = proof.clone();
                bad[j] = flip(&bad[j], bit);
                assert!(verify_inclusion(i, s, &tree[index], &bad, &root).is_err());
            }
        }
    }
    for (m, n) in [
        (1usize, 1usize),
        (1, 2),
        (4, 8),
        (3, 7),
        (6, 7),
        (512, 1000),
        (999, 1000),
    ] {
        let old = root_from_leaves(&leaves[..m]);
        let new = root_from_leaves(&leaves[..n]);
        let proof = consistency_proof(m as u64, &leaves[..n]).unwrap();
        let (m, n) = (m as u64, n as u64);
        for bit in 0..256 {
            assert!(verify_consistency(m, n, &proof, &flip(&old, bit), &new).is_err());
            assert!(verify_consistency(m, n, &proof, &old, &flip(&new, bit)).is_err());
            for j in 0..proof.len() {
                let mut bad = proof.clone();
                bad[j] = flip(&bad[j], bit);
                assert!(verify_consistency(m, n, &bad, &old, &new).is_err());
            }
        }
    }
}

/// RFC 9162 §2.1.3.2 uses the tree size only to steer the path, so the same proof checks out
/// for every size that yields the same left/right path (here leaf 0 of 5 leaves and of 8
/// leaves: three right siblings each). The size must come from the signed tree head.
#[test]
fn size_is_bound_by_the_tree_head_not_the_proof() {
    let leaves = make_leaves(5, 1);
    let root = root_from_leaves(&leaves);
    let proof = inclusion_proof(0, &leaves).unwrap();
    assert_eq!(sides(0, 5), sides(0, 8));
    assert_eq!(verify_inclusion(0, 8, &leaves[0], &proof, &root), Ok(()));
    assert!(verify_inclusion(0, 4, &leaves[0], &proof, &root).is_err());
}

/// Offline verification of a whole exported log folds ten million leaves in O(n) time and
/// O(log n) memory. Slow in debug builds: run with `--ignored`, ideally `--release`.
#[test]
#[ignore = "ten million leaves; run with --ignored --release"]
fn ten_million_leaves() {
    let leaves = make_leaves(10_000_000, 5);
    let mut frontier = Frontier::new();
    for leaf in &leaves {
        frontier.push(*leaf);
    }
    assert_eq!(root_from_leaves(&leaves), frontier.root());
}
