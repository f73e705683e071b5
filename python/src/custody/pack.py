"""Evidence packs written to disk: the directory an auditor keeps, hands on, and checks offline
with standard tools, ``custody verify DIR`` or ``python -m custody verify DIR``.

The layout is the one ``custody export --model|--request-id|--entry|--since -o DIR`` writes,
file for file, so a pack exported from Python and one exported by the CLI are interchangeable
and every verifier accepts both:

* ``pack.json``: the server's answer, as the CLI writes it (its field order, two-space
  indentation, object keys of envelopes and payloads sorted, a final newline);
* ``checkpoints/<log>.checkpoint``: each log's signed checkpoint, byte-exact;
* ``keys/<log>.vkey``: each log's verifier key as the server announced it;
* ``entries/<log>/<index>.json``: each envelope's RFC 8785 bytes, exactly the Merkle leaf data;
* ``payloads/<log>/<index>.json``: each payload with the salt that opens its commitment;
* ``approvals/<index>.dsse.json``: the DSSE envelope of each approval;
* ``approver-keys/<hex>.pem``: the approver public keys, named by fingerprint;
* ``README.md``: how to check each piece by hand;
* ``SHA256SUMS``: the SHA-256 of every other file, written last.
"""

from __future__ import annotations

import decimal
import hashlib
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic

from . import models
from .errors import ConfigurationError, VerificationError
from .verify.entry import canonical_bytes
from .verify.merkle import leaf_hash

#: Name of the checksum file, the pack's manifest.
SUMS = "SHA256SUMS"
#: The logs a pack may hold entries and checkpoints of.
LOGS = ("governance", "inference", "access")
#: The entry type whose payload is a DSSE envelope, split out as ``approvals/<index>.dsse.json``.
APPROVAL_TYPE = "approval.submitted"

# Files are never group- or world-writable: a pack is evidence, not a scratch area.
_FILE_MODE = 0o644
_DIR_MODE = 0o755
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")
# Rust's `str::trim` removes Unicode White_Space, which differs from `str.strip()` (the latter
# also removes the ASCII separators U+001C..U+001F).
_WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)


def entry_file(log: str, index: int) -> str:
    """Where an entry's envelope (its leaf data) sits in a pack; the same name the CLI uses, so
    the verifiers find it."""
    return f"entries/{log}/{index}.json"


def payload_file(log: str, index: int) -> str:
    """Where an entry's payload and salt sit in a pack."""
    return f"payloads/{log}/{index}.json"


def approval_file(index: int) -> str:
    """Where the DSSE envelope of the approval at a governance index sits in a pack."""
    return f"approvals/{index}.dsse.json"


def key_file(fingerprint: str) -> str:
    """Where an approver's public key sits in a pack, named by its fingerprint's hex so anyone
    can check the name against the key with ``openssl ... | sha256sum``."""
    return f"approver-keys/{fingerprint.removeprefix('sha256:')}.pem"


def check_pack_directory(directory: str | os.PathLike[str]) -> Path:
    """The directory a pack may be written to: one that does not exist yet, or an empty one.
    Anything else raises :class:`ConfigurationError` naming the path, so a pack never mixes with
    (or overwrites) other files, and an existing pack is never silently replaced."""
    path = Path(directory)
    if path.is_symlink():
        raise ConfigurationError(
            f"{path} is a symbolic link; choose a new directory for the evidence pack"
        )
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigurationError(
            f"{path} exists and is not an empty directory; choose a new directory for the "
            "evidence pack"
        )
    return path


def write_pack(
    pack: models.EvidencePack | Mapping[str, Any], directory: str | os.PathLike[str]
) -> Path:
    """Writes an evidence pack (as :meth:`custody.client.Audit.export` returns it, or its JSON)
    to ``directory`` in the layout ``custody export -o DIR`` writes, so an auditor can check it
    offline with ``custody verify``, ``python -m custody verify`` or the standard tools its
    README.md names.

    ``directory`` must not exist or be empty (:class:`ConfigurationError` otherwise, naming it;
    missing parents are created). The pack is written beside it under a temporary name,
    ``SHA256SUMS`` last, and moved into place only when complete, so a failure never leaves a
    half-written pack under the requested name. A ``pack`` given as JSON that is not an
    evidence pack raises :class:`ConfigurationError`; :class:`VerificationError` is raised when
    an entry file would not be the leaf the pack states (its envelope does not hash to its
    ``leaf_hash``) or a log is unknown, since such a pack could never verify. Returns the
    directory."""
    target = check_pack_directory(directory)
    if isinstance(pack, models.EvidencePack):
        parsed = pack
    else:
        try:
            parsed = models.EvidencePack.model_validate(dict(pack), strict=True)
        except (pydantic.ValidationError, TypeError, ValueError) as e:
            raise ConfigurationError(f"pack: not an evidence pack: {e}") from e
    files = pack_files(parsed)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        _write_dir(staging, files)
        check_pack_directory(target)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def pack_files(pack: models.EvidencePack) -> dict[str, bytes]:
    """Every file of the pack but ``SHA256SUMS``, by relative path, in the order ``SHA256SUMS``
    lists them: the bytes :func:`write_pack` writes, for callers that store packs elsewhere
    (object storage, an archive)."""
    files: dict[str, bytes] = {"pack.json": _pretty(_pack_json(pack))}
    for cp in pack.checkpoints:
        _check_log(cp.log, f"{cp.log} checkpoint")
        files[f"checkpoints/{cp.log}.checkpoint"] = cp.checkpoint.encode()
        files[f"keys/{cp.log}.vkey"] = f"{cp.verifier_key.strip(_WHITE_SPACE)}\n".encode()
    for e in pack.entries:
        target = f"{e.log}#{e.index}"
        _check_log(e.log, target)
        if e.index < 0:
            raise VerificationError("pack", target, "the entry's index is negative")
        try:
            data = canonical_bytes(e.envelope)
        except VerificationError as err:
            raise VerificationError(err.check, target, err.message) from err
        if leaf_hash(data).hex() != e.leaf_hash:
            raise VerificationError(
                "leaf_hash", target, "the envelope does not hash to the leaf_hash the pack states"
            )
        files[entry_file(e.log, e.index)] = data
        if e.payload is not None:
            files[payload_file(e.log, e.index)] = _pretty(
                _value({"payload": e.payload, "salt": e.salt})
            )
            kind = e.envelope.get("type") if isinstance(e.envelope, Mapping) else None
            if kind == APPROVAL_TYPE and e.log == "governance":
                files[approval_file(e.index)] = _pretty(_value(e.payload))
    for k in pack.approver_keys:
        if not _FINGERPRINT.fullmatch(k.fingerprint):
            raise VerificationError(
                "approver_key",
                k.approver,
                f"fingerprint {k.fingerprint!r} is not sha256: and 64 lowercase hex digits",
            )
        files[key_file(k.fingerprint)] = k.public_key.encode()
    files["README.md"] = _readme(pack).encode()
    return dict(sorted(files.items()))


def _sha256sums(files: Mapping[str, bytes]) -> str:
    """``<hex>  <path>`` a line, in path order, as ``sha256sum`` prints it and reads it."""
    return "".join(
        f"{hashlib.sha256(data).hexdigest()}  {path}\n" for path, data in sorted(files.items())
    )


def _write_dir(directory: Path, files: Mapping[str, bytes]) -> None:
    directory.mkdir(mode=_DIR_MODE)
    for rel, data in files.items():
        _write_file(directory, rel, data)
    _write_file(directory, SUMS, _sha256sums(files).encode())


def _write_file(directory: Path, rel: str, data: bytes) -> None:
    path = directory / rel
    path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _check_log(log: str, target: str) -> None:
    if log not in LOGS:
        raise VerificationError("pack", target, f"the pack names an unknown log {log!r}")


def _pack_json(pack: models.EvidencePack) -> dict[str, Any]:
    """pack.json's content, fields in the order the server's schema declares them (the order
    the CLI writes), envelopes and payloads with sorted keys."""
    entries: list[dict[str, Any]] = []
    for e in pack.entries:
        item: dict[str, Any] = {
            "log": e.log,
            "index": e.index,
            "role": e.role,
            "envelope": _value(e.envelope),
            "leaf_hash": e.leaf_hash,
            "proof": list(e.proof),
        }
        if e.payload is not None:
            item["payload"] = _value(e.payload)
        if e.salt is not None:
            item["salt"] = e.salt
        entries.append(item)
    return {
        "format": pack.format,
        "tenant": pack.tenant,
        "scope": pack.scope,
        "links": [{"from": link.from_, "to": link.to, "rel": link.rel} for link in pack.links],
        "approver_keys": [
            {
                "approver": k.approver,
                "fingerprint": k.fingerprint,
                "public_key": k.public_key,
                "entry": k.entry,
            }
            for k in pack.approver_keys
        ],
        "truncated": pack.truncated,
        "entries": entries,
        "checkpoints": [
            {
                "log": cp.log,
                "size": cp.size,
                "checkpoint": cp.checkpoint,
                "verifier_key": cp.verifier_key,
            }
            for cp in pack.checkpoints
        ],
    }


def _value(v: object) -> object:
    """A free-form JSON value (an envelope, a payload) as the CLI holds it: objects with keys in
    sorted order, integers beyond 64 bits as doubles."""
    if isinstance(v, Mapping):
        return {str(k): _value(v[k]) for k in sorted(v, key=str)}
    if isinstance(v, list | tuple):
        return [_value(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool) and not _I64_MIN <= v <= _U64_MAX:
        try:
            return float(v)
        except OverflowError as e:
            raise VerificationError("pack", "pack.json", "an integer beyond any double") from e
    return v


def _pretty(v: object) -> bytes:
    """JSON with two-space indentation and a final newline, byte for byte as the CLI writes it
    (so pack.json and the split-out files are identical whichever exported them)."""
    return (_dump(v, "") + "\n").encode()


def _dump(v: object, indent: str) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    inner = indent + "  "
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        items = (
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_dump(x, inner)}"
            for k, x in v.items()
        )
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(v, list | tuple):
        if not v:
            return "[]"
        return "[\n" + ",\n".join(f"{inner}{_dump(x, inner)}" for x in v) + f"\n{indent}]"
    raise VerificationError("pack", "pack.json", f"{type(v).__name__} is not a JSON value")


def _float(f: float) -> str:
    """A double in the shortest form that reads back exactly, laid out as the CLI's JSON writer
    lays it out: ``1.0``, ``0.001``, ``1e-6``, ``1.5e-7``, ``1e21``."""
    if not math.isfinite(f):
        raise VerificationError("pack", "pack.json", f"{f} is not a JSON number")
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    if f == 0:
        return f"{sign}0.0"
    shortest = decimal.Decimal(repr(abs(f))).normalize().as_tuple()
    digits = "".join(map(str, shortest.digits))
    exponent = int(shortest.exponent)
    length = len(digits)
    point = length + exponent
    if exponent >= 0 and point <= 16:
        return f"{sign}{digits}{'0' * exponent}.0"
    if 0 < point <= 16:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -5 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    mantissa = digits if length == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{mantissa}e{point - 1}"


def _readme(pack: models.EvidencePack) -> str:
    """What each file is and how to check it with standard tools (``sha256sum``, ``openssl``,
    ``python3`` with ``cryptography``), so someone who installs nothing from custody can check
    the pack."""
    logs = [cp.log for cp in pack.checkpoints]
    origins = ", ".join(f"`{_origin(cp.checkpoint)}`" for cp in pack.checkpoints) or "none"
    pins = " ".join(f"--vkey <{log} vkey>" for log in logs) or "--vkey <governance vkey>"
    example = (
        entry_file(pack.entries[0].log, pack.entries[0].index)
        if pack.entries
        else entry_file("governance", 0)
    )
    fill = {
        "scope": pack.scope,
        "tenant": pack.tenant,
        "origins": origins,
        "pins": pins,
        "example": example,
    }
    return re.sub(r"\{(scope|tenant|origins|pins|example)\}", lambda m: fill[m.group(1)], _README)


def _origin(checkpoint: str) -> str:
    return checkpoint.split("\n", 1)[0]


_README = r"""# custody evidence pack: {scope}

Tenant `{tenant}`; checkpoints of {origins}. Everything here can be checked offline with
standard tools (`sha256sum`, `openssl`, `python3` with `cryptography`), run from this
directory. `custody verify . {pins}` (the custody CLI) or
`python -m custody verify . {pins}` (the custody Python package) runs every check below.
Pin each log's verifier key from a source you trust, not `keys/`, which came with the pack.

## Layout

- `pack.json`: the server's answer: entries (envelope, leaf hash, inclusion proof, payload,
  salt), one signed checkpoint per log, links, approver keys
- `checkpoints/<log>.checkpoint`: the log's signed checkpoint, a C2SP signed note, byte-exact
- `keys/<log>.vkey`: the log's verifier key as the server announced it; compare it with the
  one you pinned
- `entries/<log>/<index>.json`: the entry's envelope in RFC 8785 canonical form: exactly the
  Merkle leaf data
- `payloads/<log>/<index>.json`: `{payload, salt}` (salt: standard base64 of 32 bytes) that
  open the envelope's `payload_commitment`
- `approvals/<index>.dsse.json`: the DSSE envelope of the approval at that governance index
- `approver-keys/<hex>.pem`: approver public keys (SPKI PEM); `<hex>` is the SHA-256 of the
  key's DER, the `key_fingerprint` approvals name
- `SHA256SUMS`: the SHA-256 of every other file

Each file under `checkpoints/`, `entries/`, `payloads/`, `approvals/` and `approver-keys/` is
split out of `pack.json`; the verifiers also check that the two agree.

## 1. Nothing was changed

    sha256sum -c SHA256SUMS

## 2. Each entry file is a leaf (RFC 9162 §2.1.1: leaf hash = SHA-256(0x00 || data))

    (printf '\000'; cat {example}) | sha256sum

prints the `leaf_hash` pack.json gives for that entry (`"log"` and `"index"` name the file).

## 3. Each leaf is in its log (RFC 9162 §2.1.3.2 inclusion proofs)

Every proof in pack.json is against the checkpoint of its log (`checkpoints`; the second line
of the checkpoint text is the tree size, the third the base64 root hash):

```python
import base64, hashlib, json
node = lambda l, r: hashlib.sha256(b"\x01" + l + r).digest()
pack = json.load(open("pack.json", encoding="utf-8"))
roots = {}
for c in pack["checkpoints"]:
    origin, size, root = c["checkpoint"].split("\n")[:3]
    roots[c["log"]] = (int(size), base64.b64decode(root))
for e in pack["entries"]:
    size, root = roots[e["log"]]
    data = open(f"entries/{e['log']}/{e['index']}.json", "rb").read()
    r = hashlib.sha256(b"\x00" + data).digest()
    assert r.hex() == e["leaf_hash"], f"{e['log']}#{e['index']}: not the stated leaf"
    fn, sn = e["index"], size - 1
    for p in map(base64.b64decode, e["proof"]):
        assert sn > 0, "proof too long"
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn & 1 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0 and r == root, f"{e['log']}#{e['index']}: proof does not reach the root"
print("every inclusion proof reaches its checkpoint's root")
```

## 4. Each checkpoint is signed by its log (C2SP signed-note, Ed25519)

A verifier key is `<name>+<hex key id>+<base64(0x01 || 32-byte Ed25519 key)>`. The signed text
is everything before the blank line (with its final newline); each signature line is
`— <name> <base64(4-byte key id || 64-byte signature)>`. The checkpoint's first line (its
origin) is `<server name>/{tenant}/<log>` and must equal the key's name.

```python
import base64, glob
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
for path in sorted(glob.glob("checkpoints/*.checkpoint")):
    log = path.split("/")[-1].split(".")[0]
    vkey = open(f"keys/{log}.vkey", encoding="utf-8").read().strip()  # better: your pinned key
    name, key_id, key = vkey.split("+", 2)
    key = base64.b64decode(key)
    text, sigs = open(path, encoding="utf-8").read().split("\n\n", 1)
    assert text.split("\n")[0] == name, f"{path}: origin is not {name}"
    signed = False
    for line in sigs.splitlines():
        _, signer, sig = line.split(" ")
        sig = base64.b64decode(sig)
        if signer == name and sig[:4].hex() == key_id:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(sig[4:], (text + "\n").encode())
            signed = True
    assert signed, f"{path}: no signature by {name}"
    print(log, "checkpoint signature OK")
```

Go's `golang.org/x/mod/sumdb/note` and any C2SP tlog client check the same format.

## 5. Payloads open their commitments (`payload_commitment` = SHA-256(salt || RFC 8785 payload))

```python
import base64, glob, hashlib, json
try:
    from rfc8785 import dumps as jcs
except ImportError:
    def jcs(v):
        return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
for path in sorted(glob.glob("payloads/*/*.json")):
    p = json.load(open(path, encoding="utf-8"))
    env = json.load(open(path.replace("payloads/", "entries/", 1), encoding="utf-8"))
    got = "sha256:" + hashlib.sha256(base64.b64decode(p["salt"]) + jcs(p["payload"])).hexdigest()
    assert got == env["payload_commitment"], path
print("every payload opens its commitment")
```

(Without the `rfc8785` package, `json.dumps` with sorted keys stands in for RFC 8785; it
agrees for payloads of strings, integers, booleans and objects with ASCII keys, not for every
fractional number: install `rfc8785` for those.)

## 6. Approvals are signed by registered approvers (DSSE v1 + in-toto)

Each `approvals/<index>.dsse.json` is signed over the DSSE pre-authentication encoding
`DSSEv1 <len(payloadType)> <payloadType> <len(payload)> <payload>` (lengths in bytes, the
payload base64-decoded). The approval's envelope (`entries/governance/<index>.json`) names the
key in `body.key_fingerprint`; its PEM is `approver-keys/<hex>.pem`, and
`openssl pkey -pubin -in approver-keys/<hex>.pem -outform DER | sha256sum` prints `<hex>`.
`body.statement_digest` is the SHA-256 of the signed statement. pack.json's `approver_keys`
names the entry that registered each key for its approver.

```python
import base64, glob, hashlib, json
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
for path in sorted(glob.glob("approvals/*.dsse.json")):
    index = path.split("/")[-1].split(".")[0]
    body = json.load(open(f"entries/governance/{index}.json", encoding="utf-8"))["body"]
    pem = open(f"approver-keys/{body['key_fingerprint'][7:]}.pem", "rb").read()
    key = serialization.load_pem_public_key(pem)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = key.public_bytes(serialization.Encoding.DER, spki)
    assert "sha256:" + hashlib.sha256(der).hexdigest() == body["key_fingerprint"], path
    d = json.load(open(path, encoding="utf-8"))
    payload, t = base64.b64decode(d["payload"]), d["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)
    sig = base64.b64decode(d["signatures"][0]["sig"])
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(sig, pae)
    else:
        key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
    assert "sha256:" + hashlib.sha256(payload).hexdigest() == body["statement_digest"], path
    print(path, "signed by", body["approver"], body["decision"], body["target"])
```

With openssl instead: write `pae` and the raw signature to files, then
`openssl pkeyutl -verify -pubin -inkey KEY.pem -rawin -in pae.bin -sigfile sig.bin` (Ed25519)
or `openssl dgst -sha256 -verify KEY.pem -signature sig.bin pae.bin` (ECDSA P-256, DER
signature).

The decoded payload is an in-toto Statement (`https://in-toto.io/Statement/v1`) whose subject
digest is the model's version hash and whose predicate
(`https://custody.dev/attestation/approval/v1`) states the decision, target and criteria.
"""
