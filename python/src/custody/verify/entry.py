"""Entries: the leaf an envelope becomes, and the salted commitment that ties a payload to it.

The envelope's RFC 8785 (JCS) bytes are the leaf data, so anyone re-deriving the leaf hash from
the JSON gets the same bytes the log hashed, whatever the JSON's key order or spacing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, cast

import rfc8785

from custody.errors import VerificationError
from custody.verify.merkle import leaf_hash

SALT_SIZE = 32


def canonical_bytes(value: object) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value: what custody hashes and commits to.
    Raises :class:`VerificationError` (check ``canonical_json``) for values JCS cannot encode
    (non-finite numbers, integers outside IEEE 754 doubles)."""
    try:
        return rfc8785.dumps(cast("Any", value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise VerificationError("canonical_json", "value", str(e)) from e


def envelope_leaf_hash(envelope: Mapping[str, Any]) -> bytes:
    """The leaf hash an envelope must have in its log: ``SHA-256(0x00 || jcs(envelope))``."""
    return leaf_hash(canonical_bytes(dict(envelope)))


def payload_commitment(payload: object, salt: bytes) -> str:
    """``sha256:`` + hex of ``SHA-256(salt || jcs(payload))``: the value an envelope carries in
    place of its personal data."""
    return "sha256:" + hashlib.sha256(salt + canonical_bytes(payload)).hexdigest()


def check_payload_commitment(
    envelope: Mapping[str, Any], payload: object, salt: bytes, *, target: str = "entry"
) -> None:
    """Checks that ``payload`` with ``salt`` opens the envelope's ``payload_commitment``, so a
    payload shown beside a proven envelope is the one committed to when it was logged. Raises
    :class:`VerificationError` (check ``payload_commitment``) naming ``target``."""
    check = "payload_commitment"
    if len(salt) != SALT_SIZE:
        raise VerificationError(check, target, f"salt is {len(salt)} bytes, not {SALT_SIZE}")
    committed = envelope.get("payload_commitment")
    if not isinstance(committed, str):
        raise VerificationError(
            check, target, "a payload is given but the envelope commits to none"
        )
    got = payload_commitment(payload, salt)
    if not hmac.compare_digest(got.encode(), committed.encode()):
        raise VerificationError(
            check, target, f"payload and salt give {got}, the envelope commits to {committed}"
        )
