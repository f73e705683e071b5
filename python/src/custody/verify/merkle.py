"""RFC 9162 §2.1 Merkle trees, written from the RFC so that custody's proofs are checked by code
that shares nothing with the server that made them.

Every hash is 32 bytes; anything else is refused before any hashing, so a truncated or padded
value can never be mistaken for a node. Hashes are compared in constant time.

One deliberate difference from transparency-dev/merkle: its probe
``consistency/additional/sizes-are-equal-one-and-proof-is-empty.json`` accepts two equal
12-byte "roots"; here a value that is not 32 bytes is never a root, so it is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from custody.errors import VerificationError

HASH_SIZE = 32
#: The root of the empty tree: ``SHA-256("")``.
EMPTY_ROOT = hashlib.sha256(b"").digest()
#: Sizes and indices are unsigned 64-bit integers in RFC 9162 and in C2SP checkpoints.
MAX_TREE_SIZE = 2**64 - 1


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf's DATA, domain-separated from interior nodes by the 0x00 prefix so
    that no leaf can pose as a subtree (second-preimage resistance)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node, prefixed 0x01 for the same domain separation."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The root of the tree whose leaves have these LEAF HASHES (already ``leaf_hash``-ed, not
    leaf data), in order: what a checkpoint of that size must state. Use :func:`root_of_data`
    for raw leaf data."""
    for h in leaf_hashes:
        _require_hash(h, "leaf hash", "root", "tree")
    if not leaf_hashes:
        return EMPTY_ROOT
    return _subtree_root(leaf_hashes, 0, len(leaf_hashes))


def root_of_data(leaf_data: Sequence[bytes]) -> bytes:
    """The root of the tree whose leaves hold this raw leaf DATA (e.g. canonical envelopes)."""
    return root([leaf_hash(d) for d in leaf_data])


def _subtree_root(hashes: Sequence[bytes], start: int, end: int) -> bytes:
    n = end - start
    if n == 1:
        return hashes[start]
    split = _largest_power_of_two_below(n)
    return node_hash(
        _subtree_root(hashes, start, start + split), _subtree_root(hashes, start + split, end)
    )


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _require_hash(value: object, what: str, check: str, target: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        got = len(value) if isinstance(value, bytes) else type(value).__name__
        raise VerificationError(check, target, f"{what} is not a 32-byte hash (got {got})")


def _require_size(value: int, what: str, check: str, target: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TREE_SIZE:
        raise VerificationError(check, target, f"{what} {value!r} is not an unsigned 64-bit size")


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def verify_inclusion(
    leaf_hash: bytes,
    index: int,
    size: int,
    proof: Sequence[bytes],
    root: bytes,
    *,
    target: str = "entry",
) -> None:
    """Checks that the leaf with hash ``leaf_hash`` is at ``index`` in the tree of ``size``
    leaves whose root is ``root`` (RFC 9162 §2.1.3.2), so an entry shown is really in the signed
    tree. Raises :class:`VerificationError` (check ``inclusion``) naming ``target`` otherwise."""
    check = "inclusion"
    _require_size(index, "index", check, target)
    _require_size(size, "tree size", check, target)
    _require_hash(leaf_hash, "leaf hash", check, target)
    _require_hash(root, "root", check, target)
    for i, p in enumerate(proof):
        _require_hash(p, f"proof hash {i}", check, target)
    if index >= size:
        raise VerificationError(check, target, f"index {index} is not below tree size {size}")
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise VerificationError(check, target, f"proof is longer than a tree of {size} needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError(check, target, f"proof is shorter than a tree of {size} needs")
    if not _same(r, root):
        raise VerificationError(
            check, target, f"proof for index {index} does not reach the root of size {size}"
        )


def verify_consistency(
    old_size: int,
    new_size: int,
    proof: Sequence[bytes],
    old_root: bytes,
    new_root: bytes,
    *,
    target: str = "log",
) -> None:
    """Checks that the tree of ``new_size`` leaves (``new_root``) extends the tree of
    ``old_size`` leaves (``old_root``) without changing any of its leaves (RFC 9162 §2.1.4.2):
    what proves a log was neither rewound nor forked since a checkpoint was seen.

    From size 0 the proof is empty and the old root must be the empty tree's. Raises
    :class:`VerificationError` (check ``consistency``) naming ``target`` otherwise."""
    check = "consistency"
    _require_size(old_size, "old size", check, target)
    _require_size(new_size, "new size", check, target)
    _require_hash(old_root, "old root", check, target)
    _require_hash(new_root, "new root", check, target)
    for i, p in enumerate(proof):
        _require_hash(p, f"proof hash {i}", check, target)
    if new_size < old_size:
        raise VerificationError(
            check, target, f"new size {new_size} is smaller than old size {old_size}"
        )
    if old_size == 0:
        if proof:
            raise VerificationError(check, target, "a proof from the empty tree must be empty")
        if not _same(old_root, EMPTY_ROOT):
            raise VerificationError(check, target, "old root of size 0 is not the empty root")
        if new_size == 0 and not _same(new_root, EMPTY_ROOT):
            raise VerificationError(check, target, "new root of size 0 is not the empty root")
        return
    if old_size == new_size:
        if proof:
            raise VerificationError(check, target, "sizes are equal but the proof is not empty")
        if not _same(old_root, new_root):
            raise VerificationError(
                check, target, f"two different roots for the same size {old_size}"
            )
        return
    if not proof:
        raise VerificationError(check, target, "empty proof between different sizes")

    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError(check, target, "proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError(check, target, "proof is shorter than needed")
    if not _same(fr, old_root):
        raise VerificationError(
            check, target, f"proof does not reproduce the old root of size {old_size}"
        )
    if not _same(sr, new_root):
        raise VerificationError(
            check, target, f"proof does not reach the new root of size {new_size}"
        )


def audit_path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf range ``[start, end)`` of each hash of the inclusion proof of ``index`` in a
    tree of ``size`` leaves, leaf's sibling first: RFC 9162 §2.1.3.1's ``PATH`` with each
    ``MTH(D[a:b])`` named by its range instead of computed."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index - lo < k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo = lo + k
    ranges.reverse()
    return ranges


def verify_range(
    leaf_hashes: Sequence[bytes],
    start: int,
    size: int,
    first_proof: Sequence[bytes],
    last_proof: Sequence[bytes],
    root: bytes,
    *,
    target: str = "entries",
) -> None:
    """Checks that the consecutive leaves ``leaf_hashes`` sit at ``start``, ``start + 1``, ...
    in the tree of ``size`` leaves whose root is ``root``, from only two inclusion proofs: the
    first leaf's and the last one's.

    Every subtree of the tree either lies inside the range (its hash is computed here from the
    given leaves), lies outside it (then it is a sibling on the path of the first or the last
    leaf, so one of the two proofs carries it), or holds a boundary leaf (computed from its two
    children). Folding that up must give ``root``: the whole batch is proven at the cost of
    two proofs, whatever its length. Raises :class:`VerificationError` (check ``inclusion``)."""
    check = "inclusion"
    count = len(leaf_hashes)
    _require_size(start, "start", check, target)
    _require_size(size, "tree size", check, target)
    _require_hash(root, "root", check, target)
    if count == 0 or start + count > size:
        raise VerificationError(
            check, target, f"{count} leaves from index {start} do not fit a tree of {size}"
        )
    for i, h in enumerate(leaf_hashes):
        _require_hash(h, f"leaf hash {i}", check, target)
    end = start + count
    known: dict[tuple[int, int], bytes] = {}
    for index, proof in ((start, first_proof), (end - 1, last_proof)):
        ranges = audit_path_ranges(index, size)
        if len(proof) != len(ranges):
            raise VerificationError(
                check,
                target,
                f"the proof of index {index} has {len(proof)} hashes; a tree of {size} needs "
                f"{len(ranges)}",
            )
        for i, (r, h) in enumerate(zip(ranges, proof, strict=True)):
            _require_hash(h, f"proof hash {i} of index {index}", check, target)
            if r in known and not _same(known[r], h):
                raise VerificationError(
                    check, target, f"the two proofs disagree on the subtree {r[0]}..{r[1]}"
                )
            known[r] = h

    def subtree(lo: int, hi: int) -> bytes:
        if start <= lo and hi <= end:
            return _subtree_root(leaf_hashes, lo - start, hi - start)
        if hi <= start or end <= lo:
            if (lo, hi) not in known:
                raise VerificationError(check, target, f"no proof carries the subtree {lo}..{hi}")
            return known[(lo, hi)]
        k = _largest_power_of_two_below(hi - lo)
        return node_hash(subtree(lo, lo + k), subtree(lo + k, hi))

    if not _same(subtree(0, size), root):
        raise VerificationError(
            check,
            target,
            f"leaves {start}..{end - 1} with their proofs do not reach the root of size {size}",
        )
