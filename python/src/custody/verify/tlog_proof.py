"""C2SP ``tlog-proof`` texts: one entry's offline evidence (index, inclusion path, signed
checkpoint) in a single file that can travel with the entry it proves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from custody.errors import ConfigurationError, VerificationError
from custody.verify.merkle import leaf_hash as hash_leaf
from custody.verify.merkle import verify_inclusion
from custody.verify.note import Checkpoint, Verifier, open_checkpoint, strict_b64decode

HEADER = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]*)")
#: No log of 2**64 leaves needs more than 64 proof hashes.
MAX_PROOF_HASHES = 64


@dataclass(frozen=True)
class TlogProof:
    """A parsed, not yet verified, tlog-proof. ``extra`` is unauthenticated: never trust it."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint_text: str
    extra: bytes | None = None


def parse_tlog_proof(text: str) -> TlogProof:
    """Reads a tlog-proof strictly: header, optional ``extra``, ``index N`` without leading
    zeros, base64 hashes, an empty line, then the checkpoint verbatim. Raises
    :class:`VerificationError` (check ``tlog-proof``)."""
    target = "tlog-proof"
    head, sep, checkpoint_text = text.partition("\n\n")
    if not sep:
        raise VerificationError("tlog-proof", target, "no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise VerificationError("tlog-proof", target, f"first line is not {HEADER}")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        try:
            extra = strict_b64decode(rest[0][len("extra ") :])
        except ValueError as e:
            raise VerificationError("tlog-proof", target, f"extra: {e}") from e
        rest = rest[1:]
    if not rest:
        raise VerificationError("tlog-proof", target, "no index line")
    m = _INDEX.fullmatch(rest[0])
    if not m or int(m.group(1)) >= 2**64:
        raise VerificationError("tlog-proof", target, f"bad index line {rest[0][:40]!r}")
    hashes = rest[1:]
    if len(hashes) > MAX_PROOF_HASHES:
        raise VerificationError("tlog-proof", target, "more proof hashes than any tree needs")
    proof = []
    for i, line in enumerate(hashes):
        try:
            proof.append(strict_b64decode(line))
        except ValueError as e:
            raise VerificationError("tlog-proof", target, f"proof hash {i}: {e}") from e
    return TlogProof(
        index=int(m.group(1)), proof=tuple(proof), checkpoint_text=checkpoint_text, extra=extra
    )


def verify_tlog_proof(
    text: str,
    verifiers: Sequence[Verifier],
    *,
    leaf_data: bytes | None = None,
    leaf_hash: bytes | None = None,
) -> Checkpoint:
    """Verifies a tlog-proof for a leaf given by its data (e.g. the canonical envelope bytes) or
    its hash: the checkpoint must open with the pinned key for its origin and the inclusion
    proof must fold the leaf into its root. Returns the opened checkpoint."""
    if (leaf_data is None) == (leaf_hash is None):
        raise ConfigurationError("give exactly one of leaf_data and leaf_hash")
    parsed = parse_tlog_proof(text)
    checkpoint = open_checkpoint(parsed.checkpoint_text, verifiers)
    hashed = hash_leaf(leaf_data) if leaf_data is not None else leaf_hash
    assert hashed is not None
    verify_inclusion(
        hashed,
        parsed.index,
        checkpoint.size,
        parsed.proof,
        checkpoint.root,
        target=f"{checkpoint.origin}#{parsed.index}",
    )
    return checkpoint
