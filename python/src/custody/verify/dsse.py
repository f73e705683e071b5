"""DSSE v1 envelopes (the signature format of approvals), verified with an approver's public key.

The signature covers the pre-authentication encoding (PAE) of type and payload, never the
base64 text, so a payload cannot be reinterpreted under another type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from custody.errors import VerificationError


def pae(payload_type: str, payload: bytes) -> bytes:
    """``"DSSEv1" SP len(type) SP type SP len(body) SP body`` with lengths in bytes: the exact
    bytes an approver signs."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


def public_key_fingerprint(public_key_pem: bytes) -> str:
    """``sha256:`` + hex of the SHA-256 of the key's SubjectPublicKeyInfo DER: how approvals and
    the ledger name an approver key, independent of PEM line wrapping."""
    key = _load_public_key(public_key_pem, "public key")
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _load_public_key(
    public_key_pem: bytes, target: str
) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise VerificationError("dsse", target, f"not a PEM public key: {e}") from e
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise VerificationError("dsse", target, "key is neither Ed25519 nor ECDSA P-256")


def _b64(text: object, what: str, target: str) -> bytes:
    if not isinstance(text, str):
        raise VerificationError("dsse", target, f"{what} is not a string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise VerificationError("dsse", target, f"{what} is not standard base64") from e


def verify_envelope(
    envelope: Mapping[str, Any], public_key_pem: bytes, *, target: str = "DSSE envelope"
) -> bytes:
    """Returns the payload of a DSSE envelope once a signature in it verifies under the key
    (Ed25519, or ECDSA P-256 with a DER signature over SHA-256). Raises
    :class:`VerificationError` (check ``dsse``) naming ``target`` otherwise."""
    key = _load_public_key(public_key_pem, target)
    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str):
        raise VerificationError("dsse", target, "payloadType is missing")
    payload = _b64(envelope.get("payload"), "payload", target)
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise VerificationError("dsse", target, "envelope has no signatures")
    message = pae(payload_type, payload)
    for entry in signatures:
        if not isinstance(entry, Mapping):
            raise VerificationError("dsse", target, "a signature is not an object")
        signature = _b64(entry.get("sig"), "sig", target)
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, message)
            else:
                key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            continue
        return payload
    raise VerificationError("dsse", target, "no signature verifies under the approver's key")
