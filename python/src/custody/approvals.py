"""Signed approvals (SPEC §7): an approver's decision about one model version, as a DSSE
envelope over an in-toto Statement v1 with custody's approval predicate.

The envelope is what goes, unchanged, into the ``payload`` of an ``approval.submitted`` entry.
custody checks its signature against the tenant's registered approver keys and records the
decision; anyone holding the envelope and the approver's public key can check it again with
standard DSSE and in-toto tools, without custody.

Keys are Ed25519 or ECDSA P-256 (SHA-256, DER signatures), stored as PKCS#8 PEM exactly as
``custody key generate`` writes them, so one key file serves both ``custody approve`` and this
module. ECDSA signatures are deterministic (RFC 6979) where the installed ``cryptography``
supports it, so the same key and statement give the same envelope byte for byte as the
``custody`` CLI.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import rfc8785
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from custody.errors import ConfigurationError
from custody.verify.dsse import pae

__all__ = [
    "APPROVAL_PREDICATE_TYPE",
    "INTOTO_PAYLOAD_TYPE",
    "STATEMENT_TYPE",
    "Algorithm",
    "Criterion",
    "SigningKey",
    "approval_statement",
    "sign_approval",
]

#: DSSE ``payloadType`` of in-toto Statements.
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: ``_type`` of an in-toto Statement v1.
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
#: ``predicateType`` of custody approvals.
APPROVAL_PREDICATE_TYPE = "https://custody.dev/attestation/approval/v1"

#: The signature algorithms approver keys may use.
Algorithm = Literal["ed25519", "ecdsa-p256"]

#: Longest ``target``, criterion name or ``policy`` the server accepts, in UTF-8 bytes.
MAX_NAME_BYTES = 256
#: Longest ``comment`` the server accepts, in UTF-8 bytes.
MAX_COMMENT_BYTES = 4096
#: Most criteria one approval may list.
MAX_CRITERIA = 256
#: Longest model name a ``model_version.registered`` entry accepts.
MAX_MODEL_NAME = 128

_VERSION_HASH_RE = re.compile(r"sha256:[0-9a-f]{64}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_ALGORITHMS: tuple[Algorithm, ...] = ("ed25519", "ecdsa-p256")

_PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _ecdsa_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256 with SHA-256, DER-encoded: deterministic (RFC 6979), as the Rust signer is,
    when this ``cryptography`` and its OpenSSL support it; randomised otherwise, which verifies
    the same."""
    try:
        deterministic = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    except TypeError:
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    try:
        return key.sign(data, deterministic)
    except UnsupportedAlgorithm:
        return key.sign(data, ec.ECDSA(hashes.SHA256()))


class SigningKey:
    """An approver's private key (Ed25519 or ECDSA P-256): signs approvals whose public key an
    admin registered for the approver with an ``approver_key.registered`` entry.

    The key never leaves this object except through :meth:`save`; ``repr`` shows only the
    algorithm and fingerprint.
    """

    def __init__(self, private_key: _PrivateKey) -> None:
        """Wraps a ``cryptography`` private key, refusing any type custody cannot verify."""
        if isinstance(private_key, ed25519.Ed25519PrivateKey):
            self._algorithm: Algorithm = "ed25519"
        elif isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
            private_key.curve, ec.SECP256R1
        ):
            self._algorithm = "ecdsa-p256"
        else:
            raise ConfigurationError(
                f"private_key: {type(private_key).__name__} is not an approver key; use an "
                "Ed25519 or ECDSA P-256 key (SigningKey.generate or `custody key generate`)"
            )
        self._key = private_key

    @classmethod
    def generate(cls, algorithm: Algorithm = "ed25519") -> SigningKey:
        """A fresh key. ``ecdsa-p256`` is the type OpenSSF ``model_signing`` accepts too;
        ``ed25519`` (the default, as for ``custody key generate``) is smaller and faster."""
        if algorithm == "ed25519":
            return cls(ed25519.Ed25519PrivateKey.generate())
        if algorithm == "ecdsa-p256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise ConfigurationError(
            f"algorithm: {algorithm!r} is not supported; use one of {', '.join(_ALGORITHMS)}"
        )

    @classmethod
    def from_pem(cls, pem: bytes | str, password: bytes | str | None = None) -> SigningKey:
        """Reads a PEM private key (PKCS#8 as ``custody key generate`` writes it; SEC 1
        ``EC PRIVATE KEY`` too), decrypting it with ``password`` if it is encrypted."""
        data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
        secret = password.encode("utf-8") if isinstance(password, str) else password
        try:
            key = serialization.load_pem_private_key(data, password=secret)
        except TypeError as e:
            hint = (
                "the key is encrypted: pass its password"
                if secret is None
                else "the key is not encrypted: pass password=None"
            )
            raise ConfigurationError(f"password: {hint}") from e
        except (ValueError, UnsupportedAlgorithm) as e:
            raise ConfigurationError(
                "pem: not a readable PEM private key (or the password is wrong); pass the file "
                "`custody key generate` wrote"
            ) from e
        if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise ConfigurationError(
                f"pem: holds a {type(key).__name__}; approver keys are Ed25519 or ECDSA P-256: "
                "make one with `custody key generate`"
            )
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str], password: bytes | str | None = None) -> SigningKey:
        """Reads a private key file, refusing one that group or others may access (as ``ssh``
        does): a key others can read cannot show who approved."""
        p = Path(path)
        try:
            st = p.stat()
        except OSError as e:
            raise ConfigurationError(
                f"path: {p} cannot be read ({e.strerror}); pass the key file "
                "`custody key generate` wrote"
            ) from e
        if os.name == "posix" and st.st_mode & 0o077:
            raise ConfigurationError(
                f"path: {p} is accessible by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); protect it with `chmod 600 {p}`"
            )
        try:
            data = p.read_bytes()
        except OSError as e:
            raise ConfigurationError(f"path: {p} cannot be read ({e.strerror})") from e
        return cls.from_pem(data, password)

    def save(self, path: str | os.PathLike[str], *, password: bytes | str | None = None) -> None:
        """Writes the private key as PKCS#8 PEM with mode 0600, never over an existing file,
        so a key in use is never lost by accident. With ``password`` the file is encrypted
        (``custody approve`` reads only unencrypted keys)."""
        p = Path(path)
        secret = password.encode("utf-8") if isinstance(password, str) else password
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(secret)
            if secret
            else serialization.NoEncryption()
        )
        data = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(p, flags, 0o600)
        except FileExistsError as e:
            raise ConfigurationError(
                f"path: {p} exists; choose a new file name (a key file is never overwritten)"
            ) from e
        except OSError as e:
            raise ConfigurationError(f"path: {p} cannot be created ({e.strerror})") from e
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    @property
    def algorithm(self) -> Algorithm:
        """``ed25519`` or ``ecdsa-p256``."""
        return self._algorithm

    def public_pem(self) -> str:
        """The public key as SubjectPublicKeyInfo PEM: the ``body.public_key`` of the
        ``approver_key.registered`` entry that lets custody accept this key's approvals."""
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def fingerprint(self) -> str:
        """``sha256:`` + hex SHA-256 of the public key's SubjectPublicKeyInfo DER: the name
        custody gives the key (``key_fingerprint`` of an approval, the DSSE ``keyid``)."""
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "sha256:" + hashlib.sha256(der).hexdigest()

    def sign(self, data: bytes) -> bytes:
        """Signs ``data``: a 64-byte Ed25519 signature, or a DER ECDSA signature over its
        SHA-256. Approvals sign the DSSE PAE, never the bare payload."""
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(data)
        return _ecdsa_sign(self._key, data)

    def __repr__(self) -> str:
        return f"SigningKey({self._algorithm}, {self.fingerprint()})"


@dataclass(frozen=True)
class Criterion:
    """One acceptance criterion the approver checked, e.g. ``auc>=0.9`` passed, with the
    SHA-256 of the evidence behind it (an evaluation report), so a gate can require it and an
    auditor can fetch exactly what was looked at."""

    name: str
    """What was checked; the gate policy's ``required_criteria`` name it."""
    passed: bool
    """Whether it was met."""
    evidence_sha256: str | None = None
    """SHA-256 of the evidence: 64 lowercase hex, with or without ``sha256:`` (e.g.
    :func:`custody.hashing.digest_file` of the report)."""


def _check_text(value: object, argument: str, max_bytes: int) -> str:
    """Free text the server accepts: a non-empty string of at most ``max_bytes`` UTF-8 bytes
    without control characters."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{argument}: must be a string, not {type(value).__name__}")
    if not value:
        raise ConfigurationError(f"{argument}: must not be empty")
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise ConfigurationError(
            f"{argument}: is {size} bytes; shorten it to at most {max_bytes} bytes"
        )
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ConfigurationError(
            f"{argument}: must not contain control characters (newlines, tabs); use one line"
        )
    return value


def _evidence_hex(value: object, argument: str) -> str:
    if isinstance(value, str):
        digest = value.removeprefix("sha256:")
        if _HEX64_RE.fullmatch(digest):
            return digest
    raise ConfigurationError(
        f"{argument}: {value!r} is not a SHA-256 digest; pass 64 lowercase hex digits (with or "
        "without sha256:), e.g. digest_file(report)"
    )


def approval_statement(
    model_name: str,
    version_hash: str,
    decision: str,
    target: str,
    criteria: Sequence[Criterion] = (),
    policy: str | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """The in-toto Statement v1 an approval signs: subject ``model_name`` with the version
    hash as its ``sha256`` digest, and custody's approval predicate (``decision``, ``target``,
    ``criteria``, optional ``policy`` and ``comment``; absent options are left out).

    Inputs the server would refuse are refused here, naming the argument, so a mistake shows
    before anything is signed. ``comment`` is signed and readable by every holder of the
    proof: keep personal data out of it.
    """
    if (
        not isinstance(model_name, str)
        or not 0 < len(model_name) <= MAX_MODEL_NAME
        or not all(33 <= ord(c) <= 126 for c in model_name)
    ):
        raise ConfigurationError(
            f"model_name: {model_name!r} is not a model name; use the name the model version "
            f"was registered under (printable ASCII without spaces, at most {MAX_MODEL_NAME})"
        )
    if not isinstance(version_hash, str) or not _VERSION_HASH_RE.fullmatch(version_hash):
        raise ConfigurationError(
            f"version_hash: {version_hash!r} is not sha256: and 64 lowercase hex; pass the "
            "version hash from hash_model(...).version_hash or `custody model hash`"
        )
    if decision not in ("approve", "reject"):
        raise ConfigurationError(f"decision: {decision!r} must be 'approve' or 'reject'")
    _check_text(target, "target", MAX_NAME_BYTES)
    if isinstance(criteria, str | bytes) or not isinstance(criteria, Sequence):
        raise ConfigurationError("criteria: pass a list of Criterion(name, passed, evidence)")
    if len(criteria) > MAX_CRITERIA:
        raise ConfigurationError(
            f"criteria: lists {len(criteria)} criteria; at most {MAX_CRITERIA} are accepted"
        )
    items: list[dict[str, Any]] = []
    for i, c in enumerate(criteria):
        if not isinstance(c, Criterion):
            raise ConfigurationError(
                f"criteria[{i}]: is a {type(c).__name__}; pass Criterion(name, passed, ...)"
            )
        item: dict[str, Any] = {"name": _check_text(c.name, f"criteria[{i}].name", MAX_NAME_BYTES)}
        if not isinstance(c.passed, bool):
            raise ConfigurationError(f"criteria[{i}].passed: must be True or False")
        item["passed"] = c.passed
        if c.evidence_sha256 is not None:
            item["evidence"] = {
                "sha256": _evidence_hex(c.evidence_sha256, f"criteria[{i}].evidence_sha256")
            }
        items.append(item)
    predicate: dict[str, Any] = {"decision": decision, "target": target, "criteria": items}
    if policy is not None:
        predicate["policy"] = _check_text(policy, "policy", MAX_NAME_BYTES)
    if comment is not None:
        predicate["comment"] = _check_text(comment, "comment", MAX_COMMENT_BYTES)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": version_hash[len("sha256:") :]}}],
        "predicateType": APPROVAL_PREDICATE_TYPE,
        "predicate": predicate,
    }


def sign_approval(
    key: SigningKey,
    model_name: str,
    version_hash: str,
    *,
    decision: str = "approve",
    target: str,
    criteria: Sequence[Criterion] = (),
    policy: str | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """Signs an approval (or rejection) of one model version and returns the DSSE envelope
    ``{payloadType, payload, signatures: [{keyid, sig}]}``: the ``payload`` of an
    ``approval.submitted`` entry whose subject is ``{kind: model_version, id: version_hash}``.

    The payload is the RFC 8785 canonical JSON of :func:`approval_statement`, in standard
    base64; ``keyid`` is the key's :meth:`SigningKey.fingerprint` (a hint: custody finds the
    signer by trying the registered keys).
    """
    if not isinstance(key, SigningKey):
        raise ConfigurationError(
            "key: pass a SigningKey (SigningKey.load('approver.pem') or SigningKey.generate())"
        )
    statement = approval_statement(
        model_name, version_hash, decision, target, criteria, policy=policy, comment=comment
    )
    payload = rfc8785.dumps(statement)
    signature = key.sign(pae(INTOTO_PAYLOAD_TYPE, payload))
    return {
        "payloadType": INTOTO_PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [
            {"keyid": key.fingerprint(), "sig": base64.b64encode(signature).decode("ascii")}
        ],
    }
