"""What a client trusts, and the checks every answer passes before it is returned.

* **Keys.** Each log's checkpoints are opened with a verifier key the user pinned
  (``vkeys=``/``CUSTODY_VKEYS``) or, without one, the key the server announced the first time
  this client met the log, remembered in the state directory (trust on first use, as SSH does):
  a later change of key is refused until the user pins the new one.
* **Checkpoints.** Every checkpoint is checked for consistency with the last one this client
  verified for the same log (kept in a small file per log, :class:`CheckpointStore`), so a
  server that rewinds or forks a log is caught, even across processes and restarts.
* **Entries.** Every entry returned is re-hashed from its envelope (RFC 8785, RFC 9162) and its
  inclusion proof folded up to a verified checkpoint; payloads are opened against their
  commitments.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._transport import Call, Op, many, one
from .errors import ForkDetected, VerificationError
from .verify.entry import check_payload_commitment, envelope_leaf_hash
from .verify.merkle import verify_consistency, verify_range
from .verify.note import Checkpoint, Verifier, open_checkpoint
from .verify.proven import verify_answer
from .verify.store import CheckpointStore

log = logging.getLogger("custody")

PINNED_KEYS = "pinned-keys"


def consecutive_runs(leaves: Sequence[tuple[int, bytes]]) -> list[list[tuple[int, bytes]]]:
    """``(index, leaf hash)`` pairs sorted and cut into runs of consecutive indexes; a repeated
    index (the same entry twice) is kept once."""
    by_index: dict[int, bytes] = {}
    for index, leaf in leaves:
        if by_index.setdefault(index, leaf) != leaf:
            raise VerificationError(
                "leaf_hash", f"index {index}", "the server gave two leaf hashes for one index"
            )
    runs: list[list[tuple[int, bytes]]] = []
    for index, leaf in sorted(by_index.items()):
        if runs and runs[-1][-1][0] + 1 == index:
            runs[-1].append((index, leaf))
        else:
            runs.append([(index, leaf)])
    return runs


def b64(hashes: Sequence[str]) -> list[bytes]:
    return [base64.b64decode(h, validate=True) for h in hashes]


class KeyRing:
    """The verifier keys in force: pinned by the user, else remembered on first use."""

    def __init__(self, pinned: Sequence[str], state_dir: Path) -> None:
        self.explicit = bool(pinned)
        self.by_origin: dict[str, Verifier] = {}
        self.texts: dict[str, str] = {}
        for text in pinned:
            self._add(read_vkey(text))
        self.file = state_dir / PINNED_KEYS
        if not self.explicit:
            self._load()

    def _load(self) -> None:
        if not self.file.exists():
            return
        for line in self.file.read_text().splitlines():
            if line.strip():
                self._add(line.strip())

    def _add(self, vkey: str) -> Verifier:
        v = Verifier.parse(vkey)
        self.by_origin[v.name] = v
        self.texts[v.name] = vkey
        return v

    def knows(self, origin: str) -> bool:
        return origin in self.by_origin

    def all(self) -> list[Verifier]:
        return list(self.by_origin.values())

    def remember(self, announced: Mapping[str, str]) -> None:
        """Pins on first use the keys a server announces for its logs (``origin -> vkey``);
        a different key for an origin already pinned is refused."""
        new: list[str] = []
        for origin, vkey in announced.items():
            v = Verifier.parse(vkey)
            known = self.by_origin.get(origin)
            if known is None:
                if self.explicit:
                    continue
                self._add(vkey)
                new.append(vkey)
            elif known != v:
                raise VerificationError(
                    "key",
                    origin,
                    f"the server now announces key {vkey!r}, but {self.texts[origin]!r} is "
                    "pinned; if "
                    "the log's key was rotated, pin the new key with vkeys=[...] or remove it "
                    f"from {self.file}",
                )
        if new:
            self.file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(self.file, "a", encoding="utf-8") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                f.write("".join(f"{k}\n" for k in new))
                f.flush()
                os.fsync(f.fileno())
            log.info(
                "custody: pinned on first use the verifier key(s) of %s in %s",
                ", ".join(Verifier.parse(k).name for k in new),
                self.file,
            )


def read_vkey(text: str) -> str:
    """A verifier key given inline or as the path of a file holding one."""
    candidate = Path(text)
    if candidate.is_file():
        return candidate.read_text().strip()
    return text.strip()


class Trust:
    """The verification state of one client: keys, verified checkpoints, the store."""

    def __init__(self, pinned: Sequence[str], state_dir: Path) -> None:
        self.keys = KeyRing(pinned, state_dir)
        self.store = CheckpointStore(state_dir / "checkpoints")
        self.latest: dict[tuple[str, str], Checkpoint] = {}

    def _announced(self, tenant: str) -> Op[None]:
        reply = one((yield Call("GET", f"/v1/tenants/{tenant}/logs")))
        logs = reply.json().get("logs", [])
        self.keys.remember({d["origin"]: d["verifier_key"] for d in logs})

    def _verifiers(self, tenant: str, origin: str) -> Op[list[Verifier]]:
        if not self.keys.knows(origin):
            yield from self._announced(tenant)
        if not self.keys.knows(origin):
            raise VerificationError(
                "key",
                origin,
                "no pinned verifier key names this log; pin it with vkeys=[...] "
                "(`custody vkey` prints it)",
            )
        return self.keys.all()

    def checkpoint(self, tenant: str, log_name: str, at_least: int = 0) -> Op[Checkpoint]:
        """The latest checkpoint of a log, verified and consistent with every earlier one this
        client saw; ``at_least`` forces a fresh one when the cached one is smaller."""
        cached = self.latest.get((tenant, log_name))
        if cached is not None and cached.size >= at_least:
            return cached
        reply = one(
            (
                yield Call(
                    "GET",
                    f"/v1/tenants/{tenant}/logs/{log_name}/checkpoint",
                    accept="text/plain",
                )
            )
        )
        text = reply.text
        origin = text.split("\n", 1)[0]
        verifiers = yield from self._verifiers(tenant, origin)
        cp = open_checkpoint(text, verifiers)
        if cp.size < at_least:
            raise VerificationError(
                "checkpoint",
                f"{origin} checkpoint",
                f"the server said size {at_least} is signed, but its checkpoint has size {cp.size}",
            )
        yield from self.observe(tenant, log_name, cp)
        return cp

    def observe(self, tenant: str, log_name: str, cp: Checkpoint) -> Op[None]:
        """Checks ``cp`` against the last checkpoint of its log this client verified (a
        consistency proof either way), and remembers the newer of the two."""
        stored = self.store.latest(cp.origin, self.keys.all())
        base = f"/v1/tenants/{tenant}/logs/{log_name}/proof/consistency"
        if stored is not None and cp.size < stored.size:
            if cp.size > 0:
                r = one(
                    (
                        yield Call(
                            "GET",
                            base,
                            params={"from": cp.size, "to": stored.size},
                            expect=(400,),
                        )
                    )
                )
                if r.status == 400:
                    raise ForkDetected(
                        "consistency",
                        cp.origin,
                        f"the server's log has size {cp.size} and cannot prove the size "
                        f"{stored.size} this client verified before: the log was rewound; "
                        f"keep the stored checkpoint ({self.store.path_for(cp.origin)}) as proof",
                    )
                try:
                    verify_consistency(
                        cp.size, stored.size, b64(r.json()["hashes"]), cp.root, stored.root
                    )
                except VerificationError as e:
                    raise ForkDetected(
                        "consistency",
                        cp.origin,
                        f"the checkpoint of size {cp.size} is not a prefix of the one of size "
                        f"{stored.size} this client verified before ({e.message}): the log was "
                        "forked; keep both checkpoints as proof",
                    ) from e
            current = self.latest.get((tenant, log_name))
            if current is None or current.size < stored.size:
                self.latest[(tenant, log_name)] = stored
            return
        need = self.store.needs_proof(cp)
        proof: list[bytes] | None = None
        if need is not None and need > 0 and need != cp.size:
            r = one((yield Call("GET", base, params={"from": need, "to": cp.size})))
            proof = b64(r.json()["hashes"])
        self.store.advance(cp, proof)
        current = self.latest.get((tenant, log_name))
        if current is None or current.size <= cp.size:
            self.latest[(tenant, log_name)] = cp

    def prove_leaves(
        self, tenant: str, log_name: str, leaves: Sequence[tuple[int, bytes]], at_least: int = 0
    ) -> Op[Checkpoint]:
        """Proves each ``(index, leaf hash)`` is in the log under a verified checkpoint. A run
        of consecutive indexes (a batch, a page) costs two inclusion proofs, its first and last
        leaf's, whatever its length (:func:`custody.verify.merkle.verify_range`)."""
        if not leaves:
            return (yield from self.checkpoint(tenant, log_name, at_least))
        top = max(i for i, _ in leaves) + 1
        cp = yield from self.checkpoint(tenant, log_name, max(top, at_least))
        runs = consecutive_runs(leaves)
        ends = sorted({i for run in runs for i in (run[0][0], run[-1][0])})
        path = f"/v1/tenants/{tenant}/logs/{log_name}/proof/inclusion"
        replies = many(
            (yield [Call("GET", path, params={"index": i, "size": cp.size}) for i in ends])
        )
        proofs = {i: b64(r.json()["hashes"]) for i, r in zip(ends, replies, strict=True)}
        for run in runs:
            first, last = run[0][0], run[-1][0]
            verify_range(
                [h for _, h in run],
                first,
                cp.size,
                proofs[first],
                proofs[last],
                cp.root,
                target=f"{log_name}#{first}" if first == last else f"{log_name}#{first}..{last}",
            )
        return cp

    def prove_records(
        self, tenant: str, log_name: str, records: Sequence[Mapping[str, Any]], at_least: int = 0
    ) -> Op[Checkpoint]:
        """Checks entries as read (``EntryRecord``): each envelope re-hashed to its leaf hash,
        each payload opened against its commitment, each leaf proven in the log."""
        leaves: list[tuple[int, bytes]] = []
        for r in records:
            target = f"{log_name}#{r['index']}"
            leaf = envelope_leaf_hash(r["envelope"])
            if leaf.hex() != r["leaf_hash"]:
                raise VerificationError(
                    "leaf_hash",
                    target,
                    f"the envelope hashes to {leaf.hex()}, not the {r['leaf_hash']} the server "
                    "gave",
                )
            if r.get("payload") is not None and r.get("salt"):
                try:
                    check_payload_commitment(
                        r["envelope"], r["payload"], bytes.fromhex(str(r["salt"]))
                    )
                except VerificationError as e:
                    raise VerificationError("payload_commitment", target, e.message) from e
            leaves.append((int(r["index"]), leaf))
        return (yield from self.prove_leaves(tenant, log_name, leaves, at_least))

    def prove_answer(self, tenant: str, answer: Mapping[str, Any]) -> Op[None]:
        """Checks an answer with proofs (``Proven``): its checkpoints under the pinned keys, its
        entries' leaves and inclusion proofs, and each checkpoint against the last one seen."""
        for c in answer.get("checkpoints", []):
            origin = str(c["checkpoint"]).split("\n", 1)[0]
            yield from self._verifiers(tenant, origin)
        report = verify_answer(answer, self.keys.all())
        for log_name, cp in report.checkpoints.items():
            yield from self.observe(tenant, log_name, cp)
