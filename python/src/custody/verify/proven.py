"""Answers shaped like the ``Proven`` schema (traces, served, history, evidence packs): every
entry re-derived from its envelope and proven into a checkpoint opened with a pinned key, so
nothing the server says is taken on its word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from custody.errors import VerificationError
from custody.verify.entry import check_payload_commitment, envelope_leaf_hash
from custody.verify.merkle import verify_inclusion
from custody.verify.note import Checkpoint, Verifier, open_checkpoint, strict_b64decode

_HEX_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ProvenReport:
    """What an answer was proven against: how many entries, and each log's opened checkpoint
    (keep these to check later answers and the log's growth against)."""

    entries: int
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)


def decode_proof(hashes: object, target: str) -> list[bytes]:
    """A JSON list of standard-base64 proof hashes as bytes."""
    if not isinstance(hashes, list):
        raise VerificationError("inclusion", target, "proof is not a list")
    out = []
    for i, h in enumerate(hashes):
        if not isinstance(h, str):
            raise VerificationError("inclusion", target, f"proof hash {i} is not a string")
        try:
            out.append(strict_b64decode(h))
        except ValueError as e:
            raise VerificationError("inclusion", target, f"proof hash {i}: {e}") from e
    return out


def open_answer_checkpoints(
    checkpoints: object, verifiers: Sequence[Verifier]
) -> dict[str, Checkpoint]:
    """Opens each ``LogCheckpoint`` of an answer with the pinned keys and checks that it is the
    log it claims to be (origin ending in ``/<log>``, stated size = signed size)."""
    if not isinstance(checkpoints, list):
        raise VerificationError("checkpoint", "answer", "checkpoints is not a list")
    opened: dict[str, Checkpoint] = {}
    for item in checkpoints:
        if not isinstance(item, Mapping):
            raise VerificationError("checkpoint", "answer", "a checkpoint is not an object")
        log = item.get("log")
        text = item.get("checkpoint")
        if not isinstance(log, str) or not isinstance(text, str):
            raise VerificationError("checkpoint", "answer", "a checkpoint lacks log or text")
        target = f"{log} checkpoint"
        if log in opened:
            raise VerificationError("checkpoint", target, "two checkpoints for one log")
        cp = open_checkpoint(text, verifiers)
        if not cp.origin.endswith(f"/{log}"):
            raise VerificationError(
                "checkpoint", target, f"origin {cp.origin} is not the {log} log"
            )
        if item.get("size") != cp.size:
            raise VerificationError(
                "checkpoint", target, f"size {item.get('size')} differs from signed {cp.size}"
            )
        opened[log] = cp
    return opened


def verify_proven_entry(
    item: Mapping[str, Any], checkpoints: Mapping[str, Checkpoint]
) -> tuple[str, int]:
    """Checks one ``ProvenEntry`` against the opened checkpoints: envelope -> leaf hash ->
    inclusion proof -> signed root, and the payload commitment when a payload comes with it.
    Returns the entry's ``(log, index)``."""
    log, index = item.get("log"), item.get("index")
    if not isinstance(log, str) or isinstance(index, bool) or not isinstance(index, int):
        raise VerificationError("entry", "answer", "an entry lacks its log or index")
    target = f"{log}#{index}"
    cp = checkpoints.get(log)
    if cp is None:
        raise VerificationError("inclusion", target, f"the answer has no {log} checkpoint")
    envelope = item.get("envelope")
    if not isinstance(envelope, Mapping):
        raise VerificationError("leaf_hash", target, "envelope is not an object")
    if envelope.get("log") != log:
        raise VerificationError("entry", target, f"envelope is of log {envelope.get('log')!r}")
    tenant = envelope.get("tenant")
    if not isinstance(tenant, str) or not cp.origin.endswith(f"/{tenant}/{log}"):
        raise VerificationError(
            "entry", target, f"envelope of tenant {tenant!r} is not in log {cp.origin}"
        )
    stated = item.get("leaf_hash")
    if not isinstance(stated, str) or not _HEX_HASH.fullmatch(stated):
        raise VerificationError("leaf_hash", target, "leaf_hash is not 64 lowercase hex digits")
    derived = envelope_leaf_hash(envelope)
    if derived.hex() != stated:
        raise VerificationError(
            "leaf_hash", target, f"envelope hashes to {derived.hex()}, answer says {stated}"
        )
    proof = decode_proof(item.get("proof"), target)
    verify_inclusion(derived, index, cp.size, proof, cp.root, target=target)
    payload, salt = item.get("payload"), item.get("salt")
    if payload is not None or salt is not None:
        if payload is None or not isinstance(salt, str):
            raise VerificationError("payload_commitment", target, "payload without salt")
        try:
            salt_bytes = strict_b64decode(salt)
        except ValueError as e:
            raise VerificationError("payload_commitment", target, f"salt: {e}") from e
        check_payload_commitment(envelope, payload, salt_bytes, target=target)
    return log, index


def verify_answer(answer: Mapping[str, Any], verifiers: Sequence[Verifier]) -> ProvenReport:
    """Verifies any answer with ``entries`` and ``checkpoints`` (the ``Proven`` schema) under the
    pinned verifier keys. Raises :class:`VerificationError` naming the first entry or checkpoint
    that fails (e.g. ``governance#12``)."""
    checkpoints = open_answer_checkpoints(answer.get("checkpoints"), verifiers)
    entries = answer.get("entries")
    if not isinstance(entries, list):
        raise VerificationError("entry", "answer", "entries is not a list")
    for item in entries:
        if not isinstance(item, Mapping):
            raise VerificationError("entry", "answer", "an entry is not an object")
        verify_proven_entry(item, checkpoints)
    return ProvenReport(entries=len(entries), checkpoints=checkpoints)
