"""C2SP signed notes (Ed25519, signature type 0x01) and C2SP tlog checkpoints.

A checkpoint is the only thing a log signs, so everything a client believes about a log rests on
opening one with a key the client pinned itself, never one that came with the answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from custody.errors import ConfigurationError, VerificationError

ED25519_TYPE = 0x01
#: C2SP asks verifiers to accept at least 16 signatures; more than this is not a checkpoint.
MAX_SIGNATURES = 100
_SIGNATURE_PREFIX = "\u2014 "
_SIZE = re.compile(r"0|[1-9][0-9]*")
_KEY_ID = re.compile(r"[0-9a-f]{8}")


def strict_b64decode(text: str) -> bytes:
    """Standard base64 with padding, in its one canonical spelling: a note or proof whose bytes
    could be spelled two ways would let two different texts carry the same signature."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise ValueError(f"not standard base64: {text[:40]!r}") from e
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError(f"not canonical base64: {text[:40]!r}")
    return raw


def _valid_key_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, signature_type: int, public_key: bytes) -> bytes:
    """The 4-byte key ID C2SP derives from name, type and key, so a signature line names its key
    unambiguously without carrying it."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """A pinned Ed25519 note verifier key: the trust anchor for one log (its name is the log's
    origin)."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Reads a ``<name>+<8 hex key id>+<base64(0x01 || key)>`` string, refusing one whose key
        ID does not match its key: a typo in a pinned key must fail loudly, not verify
        nothing. Raises :class:`ConfigurationError`."""
        text = vkey.strip()
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise ConfigurationError(
                f"verifier key {text[:60]!r} is not <name>+<key id>+<base64 key>"
            )
        name, hex_id, encoded = parts
        if not _valid_key_name(name):
            raise ConfigurationError(f"verifier key name {name!r} is empty or has spaces")
        if not _KEY_ID.fullmatch(hex_id):
            raise ConfigurationError(f"verifier key ID {hex_id!r} is not 8 lowercase hex digits")
        try:
            raw = strict_b64decode(encoded)
        except ValueError as e:
            raise ConfigurationError(f"verifier key {name}: {e}") from e
        if len(raw) != 33 or raw[0] != ED25519_TYPE:
            raise ConfigurationError(
                f"verifier key {name} is not an Ed25519 (type 0x01) key of 32 bytes"
            )
        public_key = raw[1:]
        wanted = key_id(name, ED25519_TYPE, public_key)
        if wanted.hex() != hex_id:
            raise ConfigurationError(
                f"verifier key {name}: key ID {hex_id} does not match its key ({wanted.hex()})"
            )
        return cls(name=name, key_id=wanted, public_key=public_key)

    def vkey(self) -> str:
        """The key back in its pinnable string form."""
        encoded = base64.b64encode(bytes([ED25519_TYPE]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verifies(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``text``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class OpenedNote:
    """A note whose text at least one pinned key signed; ``signers`` names each key that did."""

    text: str
    signers: tuple[str, ...]


@dataclass(frozen=True)
class _SignatureLine:
    name: str
    key_id: bytes
    signature: bytes


def _split_note(note: str | bytes, target: str) -> tuple[str, list[_SignatureLine]]:
    check = "signature"
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as e:
            raise VerificationError(check, target, "note is not valid UTF-8") from e
    if any(c < " " and c != "\n" for c in note):
        raise VerificationError(check, target, "note holds a control character")
    if not note.endswith("\n"):
        raise VerificationError(check, target, "note does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise VerificationError(check, target, "note has no signature block")
    text = note[: split + 1]
    lines = note[split + 2 : -1].split("\n") if note[split + 2 :] else []
    if not lines:
        raise VerificationError(check, target, "note has no signatures")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(check, target, f"note has more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise VerificationError(check, target, f"malformed signature line {line[:60]!r}")
        fields = line[len(_SIGNATURE_PREFIX) :].split(" ")
        if len(fields) != 2 or not _valid_key_name(fields[0]):
            raise VerificationError(check, target, f"malformed signature line {line[:60]!r}")
        try:
            raw = strict_b64decode(fields[1])
        except ValueError as e:
            raise VerificationError(check, target, f"signature of {fields[0]}: {e}") from e
        if len(raw) < 5:
            raise VerificationError(check, target, f"signature of {fields[0]} is too short")
        signatures.append(_SignatureLine(fields[0], raw[:4], raw[4:]))
    return text, signatures


def open_note(
    note: str | bytes, verifiers: Sequence[Verifier], *, target: str = "note"
) -> OpenedNote:
    """Checks a C2SP signed note: every signature by a known key (same name and key ID) must
    verify, unknown ones are ignored as C2SP requires (witness cosignatures, rotated keys), and
    at least one known key must have signed. Raises :class:`VerificationError` (check
    ``signature``) naming ``target`` otherwise."""
    text, signatures = _split_note(note, target)
    signers: list[str] = []
    for sig in signatures:
        for v in verifiers:
            if v.name == sig.name and v.key_id == sig.key_id:
                if not v.verifies(text.encode("utf-8"), sig.signature):
                    raise VerificationError(
                        "signature", target, f"invalid signature for key {v.name}+{v.key_id.hex()}"
                    )
                signers.append(v.name)
    if not signers:
        raise VerificationError("signature", target, "no signature by a pinned key")
    return OpenedNote(text=text, signers=tuple(signers))


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed statement of its size and root. ``text`` is the whole signed note,
    byte-exact, so it can be stored and shown to anyone as proof."""

    origin: str
    size: int
    root: bytes
    text: str


def parse_checkpoint_body(note_text: str, *, target: str = "checkpoint") -> tuple[str, int, bytes]:
    """The origin, size and root of a checkpoint's note text (signed part only, ending in a
    newline). Does not check any signature: use :func:`open_checkpoint` for anything received.
    Raises :class:`VerificationError` (check ``checkpoint``)."""
    check = "checkpoint"
    if not note_text.endswith("\n"):
        raise VerificationError(check, target, "checkpoint text does not end with a newline")
    lines = note_text[:-1].split("\n")
    if len(lines) < 3:
        raise VerificationError(check, target, "checkpoint has fewer than three lines")
    if len(lines) > 3:
        raise VerificationError(check, target, "checkpoint has extension lines")
    origin, size_text, root_text = lines
    if not origin:
        raise VerificationError(check, target, "checkpoint origin is empty")
    if not _SIZE.fullmatch(size_text) or int(size_text) >= 2**64:
        raise VerificationError(
            check, target, f"tree size {size_text[:30]!r} is not a decimal without leading zeros"
        )
    try:
        root = strict_b64decode(root_text)
    except ValueError as e:
        raise VerificationError(check, target, f"root hash: {e}") from e
    if len(root) != 32:
        raise VerificationError(check, target, f"root hash is {len(root)} bytes, not 32")
    return origin, int(size_text), root


def open_checkpoint(text: str | bytes, verifiers: Sequence[Verifier]) -> Checkpoint:
    """Opens a C2SP checkpoint: the signature of the pinned key named like its origin must
    verify (other known keys' signatures must verify too; unknown ones are ignored), then origin,
    size and root are read strictly (no extension lines, no leading zeros, 32-byte root).
    Raises :class:`VerificationError` with target ``"<origin> checkpoint"``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise VerificationError("checkpoint", "checkpoint", "not valid UTF-8") from e
    claimed_origin = text.split("\n", 1)[0]
    target = f"{claimed_origin[:100]} checkpoint"
    own = [v for v in verifiers if v.name == claimed_origin]
    if not own:
        raise VerificationError(
            "signature", target, f"no pinned verifier key is named {claimed_origin[:100]!r}"
        )
    opened = open_note(text, verifiers, target=target)
    if claimed_origin not in opened.signers:
        raise VerificationError("signature", target, "not signed by the log's pinned key")
    origin, size, root = parse_checkpoint_body(opened.text, target=target)
    return Checkpoint(origin=origin, size=size, root=root, text=text)
