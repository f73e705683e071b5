"""Evidence packs (the directories ``custody export`` writes), verified offline under pinned log
keys: the form in which evidence leaves custody for an auditor or a regulator.

Every check the pack's own README.md describes is run, and each failure is reported against the
file it concerns, so a reader knows exactly which piece of evidence cannot be relied on. A
pack is valid only when every check passes; checking goes on after a failure so that one run
lists every problem.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from custody.errors import ConfigurationError, VerificationError
from custody.verify.dsse import public_key_fingerprint, verify_envelope
from custody.verify.entry import canonical_bytes, check_payload_commitment
from custody.verify.merkle import leaf_hash, verify_inclusion
from custody.verify.note import Checkpoint, Verifier, open_checkpoint, strict_b64decode
from custody.verify.proven import decode_proof

SUMS = "SHA256SUMS"
PACK_JSON = "pack.json"
PACK_FORMAT = 1
_SUM_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")
_FINGERPRINT = re.compile(r"sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class PackProblem:
    """One failed check: the pack file it concerns, the check, and why."""

    file: str
    check: str
    message: str


@dataclass
class PackReport:
    """The outcome of :func:`verify_pack`: ``ok`` only when no check failed; ``passed``
    describes what was established, ``problems`` what was not."""

    scope: str
    passed: list[str] = field(default_factory=list)
    problems: list[PackProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the pack can be relied on as a whole."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data, for machine readers."""
        return {
            "ok": self.ok,
            "scope": self.scope,
            "passed": list(self.passed),
            "problems": [
                {"file": p.file, "check": p.check, "message": p.message} for p in self.problems
            ],
        }


@dataclass(frozen=True)
class _Registrations:
    """Which approver keys the pack shows registered: proven ``approver_key.registered`` entries
    when the pack holds them; otherwise (a time-window pack starting after the registration) the
    pack.json ``approver_keys`` listing, which names the registration entry."""

    proven: set[tuple[str, str]]
    views: Mapping[str, Mapping[str, Any]]
    proven_ids: set[str]

    def check(self, rel: str, approver: str, fingerprint: str) -> bool:
        """Raises unless the key is registered for the approver; returns whether the
        registration itself is proven in the pack."""
        if (approver, fingerprint) in self.proven:
            return True
        view = self.views.get(fingerprint)
        if view is None:
            raise VerificationError(
                "approver_key", rel, f"{fingerprint} is not a registered approver key of the pack"
            )
        if view.get("approver") != approver:
            raise VerificationError(
                "approver_key", rel, f"{fingerprint} is registered for {view.get('approver')}"
            )
        if str(view.get("entry")) in self.proven_ids:
            raise VerificationError(
                "approver_key", rel, f"its registration entry does not register {fingerprint}"
            )
        return False


class _Pack:
    def __init__(self, directory: Path, verifiers: Sequence[Verifier]) -> None:
        self.directory = directory
        self.verifiers = verifiers
        self.report = PackReport(scope="")

    def problem(self, file: str, check: str, message: str) -> None:
        self.report.problems.append(PackProblem(file, check, message))

    def failed(self, error: VerificationError, file: str) -> None:
        self.problem(file, error.check, error.message)

    def read(self, rel: str) -> bytes | None:
        path = self.directory / rel
        if path.is_symlink() or not path.is_file():
            return None
        return path.read_bytes()

    def files_under(self, folder: str) -> set[str]:
        base = self.directory / folder
        if not base.is_dir():
            return set()
        return {p.relative_to(self.directory).as_posix() for p in base.rglob("*") if p.is_file()}

    def check_sums(self) -> None:
        raw = self.read(SUMS)
        if raw is None:
            self.problem(SUMS, "sha256sums", "missing: nothing shows the files are unchanged")
            return
        listed: dict[str, str] = {}
        for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
            m = _SUM_LINE.fullmatch(line)
            if not m:
                self.problem(SUMS, "sha256sums", f"line {number} is not `<sha256>  <file>`")
                continue
            name = m.group(2)
            pure = PurePosixPath(name)
            if pure.is_absolute() or ".." in pure.parts or "\\" in name or name == SUMS:
                self.problem(SUMS, "sha256sums", f"line {number} names an unsafe path {name!r}")
                continue
            listed[name] = m.group(1)
        present = {
            p.relative_to(self.directory).as_posix()
            for p in self.directory.rglob("*")
            if p.is_file() or p.is_symlink()
        } - {SUMS}
        for name, digest in sorted(listed.items()):
            data = self.read(name)
            if data is None:
                self.problem(name, "sha256sums", "listed in SHA256SUMS but missing")
            elif hashlib.sha256(data).hexdigest() != digest:
                self.problem(name, "sha256sums", "SHA-256 differs from SHA256SUMS: file changed")
        for name in sorted(present - set(listed)):
            self.problem(name, "sha256sums", "not covered by SHA256SUMS")
        if all(p.check != "sha256sums" for p in self.report.problems):
            self.report.passed.append(f"SHA256SUMS: all {len(listed)} files match")

    def load_pack_json(self) -> Mapping[str, Any] | None:
        raw = self.read(PACK_JSON)
        if raw is None:
            self.problem(PACK_JSON, "pack", "missing")
            return None
        try:
            pack = json.loads(raw)
        except ValueError as e:
            self.problem(PACK_JSON, "pack", f"not JSON: {e}")
            return None
        if not isinstance(pack, dict):
            self.problem(PACK_JSON, "pack", "not a JSON object")
            return None
        if pack.get("format") != PACK_FORMAT:
            self.problem(PACK_JSON, "pack", f"format {pack.get('format')!r} is not {PACK_FORMAT}")
        for key in ("entries", "checkpoints", "approver_keys", "links"):
            if not isinstance(pack.get(key), list):
                self.problem(PACK_JSON, "pack", f"`{key}` is not a list")
                return None
        if pack.get("truncated") is True:
            self.report.passed.append(
                "pack.json: truncated at the server's size limit; later entries are not in it"
            )
        scope = pack.get("scope")
        self.report.scope = scope if isinstance(scope, str) else ""
        return pack

    def check_checkpoints(self, pack: Mapping[str, Any]) -> dict[str, Checkpoint]:
        opened: dict[str, Checkpoint] = {}
        named: set[str] = set()
        for item in pack["checkpoints"]:
            log = item.get("log") if isinstance(item, Mapping) else None
            if not isinstance(log, str) or not re.fullmatch(r"[a-z0-9_-]+", log):
                self.problem(PACK_JSON, "checkpoint", "a checkpoint has no valid log name")
                continue
            rel = f"checkpoints/{log}.checkpoint"
            named.add(rel)
            data = self.read(rel)
            if data is None:
                self.problem(rel, "checkpoint", "missing")
                continue
            if item.get("checkpoint") != data.decode("utf-8", "replace"):
                self.problem(rel, "checkpoint", "differs from the checkpoint in pack.json")
            try:
                cp = open_checkpoint(data, self.verifiers)
            except VerificationError as e:
                self.failed(e, rel)
                continue
            if not cp.origin.endswith(f"/{pack.get('tenant')}/{log}"):
                self.problem(rel, "checkpoint", f"origin {cp.origin} is not this tenant's {log}")
                continue
            if item.get("size") != cp.size:
                self.problem(PACK_JSON, "checkpoint", f"{log} size differs from signed {cp.size}")
            if log in opened:
                self.problem(PACK_JSON, "checkpoint", f"two checkpoints for {log}")
            opened[log] = cp
            self.report.passed.append(f"{rel}: {cp.origin} size {cp.size} signed by the pinned key")
        for rel in sorted(self.files_under("checkpoints") - named):
            self.problem(rel, "checkpoint", "not a checkpoint of pack.json")
        return opened

    def check_entries(
        self, pack: Mapping[str, Any], checkpoints: Mapping[str, Checkpoint]
    ) -> dict[tuple[str, int], Mapping[str, Any]]:
        """Checks every entry and returns the envelopes whose leaf is proven, by (log, index)."""
        proven: dict[tuple[str, int], Mapping[str, Any]] = {}
        named: set[str] = set()
        for item in pack["entries"]:
            log = item.get("log") if isinstance(item, Mapping) else None
            index = item.get("index") if isinstance(item, Mapping) else None
            if (
                not isinstance(log, str)
                or not re.fullmatch(r"[a-z0-9_-]+", log)
                or not isinstance(index, int)
                or isinstance(index, bool)
                or index < 0
            ):
                self.problem(PACK_JSON, "entry", "an entry has no valid log and index")
                continue
            assert isinstance(item, Mapping)
            rel = f"entries/{log}/{index}.json"
            named.add(rel)
            envelope = self.check_entry(pack, item, log, index, rel, checkpoints)
            if envelope is not None:
                proven[(log, index)] = envelope
        for rel in sorted(self.files_under("entries") - named):
            self.problem(rel, "entry", "not an entry of pack.json")
        if proven:
            self.report.passed.append(
                f"entries: {len(proven)} leaf hashes and inclusion proofs reach signed roots"
            )
        return proven

    def check_entry(
        self,
        pack: Mapping[str, Any],
        item: Mapping[str, Any],
        log: str,
        index: int,
        rel: str,
        checkpoints: Mapping[str, Checkpoint],
    ) -> Mapping[str, Any] | None:
        data = self.read(rel)
        if data is None:
            self.problem(rel, "entry", "missing")
            return None
        stated = item.get("leaf_hash")
        leaf = leaf_hash(data)
        if stated != leaf.hex():
            self.problem(rel, "leaf_hash", f"file hashes to {leaf.hex()}, pack.json says {stated}")
            return None
        try:
            envelope = json.loads(data)
        except ValueError as e:
            self.problem(rel, "entry", f"not JSON: {e}")
            return None
        if not isinstance(envelope, dict):
            self.problem(rel, "entry", "not a JSON object")
            return None
        try:
            canonical = canonical_bytes(envelope)
        except VerificationError as e:
            self.failed(e, rel)
            return None
        if canonical != data:
            self.problem(rel, "entry", "not in RFC 8785 canonical form")
            return None
        pack_envelope = item.get("envelope")
        try:
            same = pack_envelope is not None and canonical_bytes(pack_envelope) == data
        except VerificationError:
            same = False
        if not same:
            self.problem(PACK_JSON, "entry", f"envelope of {log}#{index} differs from {rel}")
        if envelope.get("log") != log or envelope.get("tenant") != pack.get("tenant"):
            self.problem(rel, "entry", f"envelope is not of {pack.get('tenant')}/{log}")
            return None
        cp = checkpoints.get(log)
        if cp is None:
            self.problem(rel, "inclusion", f"no verified {log} checkpoint to prove it against")
            return None
        try:
            proof = decode_proof(item.get("proof"), f"{log}#{index}")
            verify_inclusion(leaf, index, cp.size, proof, cp.root, target=f"{log}#{index}")
        except VerificationError as e:
            self.failed(e, rel)
            return None
        return envelope

    def check_payloads(
        self, pack: Mapping[str, Any], proven: Mapping[tuple[str, int], Mapping[str, Any]]
    ) -> None:
        named: set[str] = set()
        opened = 0
        for item in pack["entries"]:
            if not isinstance(item, Mapping) or item.get("payload") is None:
                continue
            log, index = item.get("log"), item.get("index")
            rel = f"payloads/{log}/{index}.json"
            named.add(rel)
            data = self.read(rel)
            if data is None:
                self.problem(rel, "payload_commitment", "missing")
                continue
            try:
                stored = json.loads(data)
            except ValueError as e:
                self.problem(rel, "payload_commitment", f"not JSON: {e}")
                continue
            if not isinstance(stored, dict) or stored != {
                "payload": item.get("payload"),
                "salt": item.get("salt"),
            }:
                self.problem(rel, "payload_commitment", "differs from the payload in pack.json")
                continue
            envelope = proven.get((str(log), int(index))) if isinstance(index, int) else None
            if envelope is None:
                self.problem(rel, "payload_commitment", "its entry is not proven")
                continue
            salt = stored.get("salt")
            try:
                if not isinstance(salt, str):
                    raise VerificationError("payload_commitment", rel, "salt is missing")
                try:
                    salt_bytes = strict_b64decode(salt)
                except ValueError as e:
                    raise VerificationError("payload_commitment", rel, f"salt: {e}") from e
                check_payload_commitment(envelope, stored.get("payload"), salt_bytes, target=rel)
            except VerificationError as e:
                self.failed(e, rel)
                continue
            opened += 1
        for rel in sorted(self.files_under("payloads") - named):
            self.problem(rel, "payload_commitment", "not a payload of pack.json")
        if opened:
            self.report.passed.append(f"payloads: {opened} open their envelopes' commitments")

    def check_approver_keys(self, pack: Mapping[str, Any]) -> dict[str, bytes]:
        """The approver key files whose name is their fingerprint, by fingerprint."""
        keys: dict[str, bytes] = {}
        for rel in sorted(self.files_under("approver-keys")):
            m = re.fullmatch(r"approver-keys/([0-9a-f]{64})\.pem", rel)
            data = self.read(rel)
            if not m or data is None:
                self.problem(rel, "approver_key", "not an approver-keys/<sha256 hex>.pem file")
                continue
            try:
                fingerprint = public_key_fingerprint(data)
            except VerificationError as e:
                self.problem(rel, "approver_key", e.message)
                continue
            if fingerprint != f"sha256:{m.group(1)}":
                self.problem(rel, "approver_key", f"key's fingerprint is {fingerprint}")
                continue
            keys[fingerprint] = data
        for view in pack["approver_keys"]:
            if not isinstance(view, Mapping):
                self.problem(PACK_JSON, "approver_key", "an approver key is not an object")
                continue
            fingerprint = str(view.get("fingerprint"))
            public_key = view.get("public_key")
            if fingerprint not in keys or not isinstance(public_key, str):
                self.problem(PACK_JSON, "approver_key", f"no key file for {fingerprint}")
            elif keys[fingerprint] != public_key.encode():
                self.problem(PACK_JSON, "approver_key", f"{fingerprint} differs from its file")
        return keys

    def check_approvals(
        self,
        pack: Mapping[str, Any],
        proven: Mapping[tuple[str, int], Mapping[str, Any]],
        keys: Mapping[str, bytes],
    ) -> None:
        registered: set[tuple[str, str]] = set()
        proven_ids = {str(e.get("id")) for e in proven.values()}
        views = {
            str(v.get("fingerprint")): v for v in pack["approver_keys"] if isinstance(v, Mapping)
        }
        for envelope in proven.values():
            if envelope.get("type") != "approver_key.registered":
                continue
            subject, body = envelope.get("subject"), envelope.get("body")
            if isinstance(subject, Mapping) and isinstance(body, Mapping):
                try:
                    fp = public_key_fingerprint(str(body.get("public_key", "")).encode())
                except VerificationError:
                    continue
                registered.add((str(subject.get("id")), fp))
        payloads = {
            (item.get("log"), item.get("index")): item.get("payload")
            for item in pack["entries"]
            if isinstance(item, Mapping)
        }
        named: set[str] = set()
        verified = 0
        registration_elsewhere = 0
        for (log, index), envelope in sorted(proven.items()):
            if log != "governance" or envelope.get("type") != "approval.submitted":
                continue
            payload = payloads.get((log, index))
            rel = f"approvals/{index}.dsse.json"
            if payload is None:
                continue
            named.add(rel)
            try:
                in_pack = self.check_approval(
                    rel, envelope, payload, keys, _Registrations(registered, views, proven_ids)
                )
            except VerificationError as e:
                self.failed(e, rel)
                continue
            verified += 1
            registration_elsewhere += not in_pack
        for rel in sorted(self.files_under("approvals") - named):
            self.problem(rel, "dsse", "not the signed payload of a proven approval entry")
        if verified:
            elsewhere = (
                f" ({registration_elsewhere} key registrations predate the pack and are named,"
                " not proven, by pack.json)"
                if registration_elsewhere
                else ""
            )
            self.report.passed.append(
                f"approvals: {verified} DSSE signatures by registered approver keys{elsewhere}"
            )

    def check_approval(
        self,
        rel: str,
        envelope: Mapping[str, Any],
        payload: object,
        keys: Mapping[str, bytes],
        registrations: _Registrations,
    ) -> bool:
        """Checks one approval; returns whether its key's registration is proven in the pack."""
        data = self.read(rel)
        if data is None:
            raise VerificationError("dsse", rel, "missing")
        try:
            dsse = json.loads(data)
        except ValueError as e:
            raise VerificationError("dsse", rel, f"not JSON: {e}") from e
        if dsse != payload:
            raise VerificationError("dsse", rel, "differs from the payload committed in the entry")
        body = envelope.get("body")
        if not isinstance(body, Mapping):
            raise VerificationError("approval", rel, "approval entry has no body")
        fingerprint = str(body.get("key_fingerprint"))
        key = keys.get(fingerprint)
        if key is None:
            raise VerificationError("approver_key", rel, f"no approver key file for {fingerprint}")
        in_pack = registrations.check(rel, str(body.get("approver")), fingerprint)
        statement = verify_envelope(dsse, key, target=rel)
        digest = "sha256:" + hashlib.sha256(statement).hexdigest()
        if digest != body.get("statement_digest"):
            raise VerificationError("approval", rel, "statement digest differs from the entry's")
        self.check_statement(rel, statement, envelope, body)
        return in_pack

    def check_statement(
        self, rel: str, statement: bytes, envelope: Mapping[str, Any], body: Mapping[str, Any]
    ) -> None:
        try:
            parsed = json.loads(statement)
            predicate = parsed["predicate"]
            digests = [s["digest"]["sha256"] for s in parsed["subject"]]
        except (ValueError, KeyError, TypeError) as e:
            raise VerificationError("approval", rel, "signed payload is not an approval") from e
        subject = envelope.get("subject")
        model = subject.get("id") if isinstance(subject, Mapping) else None
        if f"sha256:{digests[0] if digests else ''}" != model:
            raise VerificationError("approval", rel, f"signed statement is not about {model}")
        for name in ("decision", "target"):
            if predicate.get(name) != body.get(name):
                raise VerificationError("approval", rel, f"signed {name} differs from the entry's")

    def check_links(
        self, pack: Mapping[str, Any], proven: Mapping[tuple[str, int], Mapping[str, Any]]
    ) -> None:
        ids = {str(e.get("id")) for e in proven.values()}
        for link in pack["links"]:
            if not isinstance(link, Mapping):
                self.problem(PACK_JSON, "links", "a link is not an object")
            elif link.get("from") not in ids or link.get("to") not in ids:
                self.problem(
                    PACK_JSON,
                    "links",
                    f"link {link.get('from')} -> {link.get('to')} is not between proven entries",
                )


def verify_pack(directory: Path, verifiers: Sequence[Verifier]) -> PackReport:
    """Checks an evidence pack directory under the pinned log verifier keys (never the keys that
    came in the pack): file digests, entry files as leaves, inclusion proofs, signed
    checkpoints, payload commitments, approval signatures by registered approver keys. Raises
    :class:`ConfigurationError` only when ``directory`` is not a directory or no key is given."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigurationError(f"{directory} is not a directory: give the directory export wrote")
    if not verifiers:
        raise ConfigurationError(
            "no verifier key: pin each log's key, there is no trust on first use"
        )
    checker = _Pack(directory, verifiers)
    checker.check_sums()
    pack = checker.load_pack_json()
    if pack is not None:
        checkpoints = checker.check_checkpoints(pack)
        proven = checker.check_entries(pack, checkpoints)
        checker.check_payloads(pack, proven)
        keys = checker.check_approver_keys(pack)
        checker.check_approvals(pack, proven, keys)
        checker.check_links(pack, proven)
        if not pack["entries"]:
            checker.problem(PACK_JSON, "pack", "no entries: the pack proves nothing")
    return checker.report
