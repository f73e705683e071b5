"""Every API operation, written once as a sans-I/O generator (see :mod:`custody._transport`)
and checked before it returns: answers with proofs against pinned keys, entries against their
leaf hashes and inclusion proofs, checkpoints against the last one this client saw.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from . import models
from ._transport import Call, Op, one
from ._trust import Trust, b64
from .entries import Entry, as_json, rfc3339
from .errors import ConfigurationError, NotAdmitted, VerificationError
from .errors import GateGap as Gap
from .verify.merkle import verify_consistency, verify_inclusion
from .verify.note import Checkpoint
from .verify.tlog_proof import parse_tlog_proof, verify_tlog_proof

M = TypeVar("M", bound=BaseModel)

LOGS = ("governance", "inference", "access")
ENTRY_TYPE_LOG = {"inference": "inference", "access": "access", "security": "governance"}


def home_log(entry_type: str) -> str:
    """The log an entry type belongs in: inferences in ``inference``, the rest in
    ``governance``."""
    return ENTRY_TYPE_LOG.get(entry_type.split(".", 1)[0], "governance")


def parse(model: type[M], reply_json: Any) -> M:
    return model.model_validate(reply_json)


def when(t: str | dt.datetime | None) -> str | None:
    if t is None or isinstance(t, str):
        return t
    return rfc3339(t)


def about_something_else(what: str, why: str) -> VerificationError:
    """An answer whose proofs hold but which answers another question than the one asked."""
    return VerificationError("answer", what, f"the answer {why}: it is not evidence for the query")


def entry_filters(
    type: str | None,
    actor: str | None,
    subject: str | None,
    related: str | None,
    since: str | dt.datetime | None,
    until: str | dt.datetime | None,
) -> dict[str, str | int | None]:
    """The query of a filtered listing of entries."""
    return {
        "type": type,
        "actor": actor,
        "subject": subject,
        "related": related,
        "since": when(since),
        "until": when(until),
    }


class AccessQuery:
    """An access-log query as auditors ask it: several entry types and a stated purpose, which
    the server's listing (one type at a time) cannot filter on, are applied here."""

    def __init__(self, types: Sequence[str] | None, purpose: str | None) -> None:
        self.wanted = set(types) if types else None
        self.purpose = purpose

    @property
    def server_type(self) -> str | None:
        """The one type the server can filter on, when only one is asked for."""
        if self.wanted is not None and len(self.wanted) == 1:
            return next(iter(self.wanted))
        return None

    def matches(self, record: models.EntryRecord) -> bool:
        """Whether a listed access entry answers the query."""
        envelope = record.envelope
        if self.wanted is not None and envelope.get("type") not in self.wanted:
            return False
        stated = (envelope.get("context") or {}).get("purpose")
        return self.purpose is None or stated == self.purpose


def check_log(log: str) -> str:
    if log not in LOGS:
        raise ConfigurationError(f"log {log!r} is not a custody log: use one of {', '.join(LOGS)}")
    return log


class Operations:
    """The operations of one tenant-scoped client: what to send, and what to check."""

    def __init__(self, trust: Trust, tenant: str | None, verify: bool) -> None:
        self.trust = trust
        self._tenant = tenant
        self.verify = verify

    @property
    def tenant(self) -> str:
        if self._tenant is None:
            raise ConfigurationError(
                "no tenant: pass tenant='acme' to the client (or use client.with_tenant) or set "
                "CUSTODY_TENANT"
            )
        return self._tenant

    def base(self, log: str) -> str:
        return f"/v1/tenants/{self.tenant}/logs/{check_log(log)}"

    # ----- writes

    def append(
        self, log: str, entries: Sequence[Entry | Mapping[str, Any]]
    ) -> Op[list[models.AppendResult]]:
        """Appends entries atomically (all or none) and proves each landed in the log."""
        if not entries:
            raise ConfigurationError("entries is empty: give at least one entry")
        body: Any = [as_json(e) for e in entries]
        reply = one((yield Call("POST", f"{self.base(log)}/entries", json=body)))
        answer = parse(models.AppendResults, reply.json())
        yield from self._prove_appended(log, answer.results, answer.checkpoint_size)
        return answer.results

    def append_ndjson(
        self, log: str, chunk: Iterable[Mapping[str, Any]]
    ) -> Op[models.AppendResults]:
        """Appends one chunk of a stream as NDJSON (atomic per chunk)."""
        lines = b"".join(
            json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for e in chunk
        )
        reply = one(
            (
                yield Call(
                    "POST",
                    f"{self.base(log)}/entries",
                    content=lines,
                    content_type="application/x-ndjson",
                )
            )
        )
        answer = parse(models.AppendResults, reply.json())
        yield from self._prove_appended(log, answer.results, answer.checkpoint_size)
        return answer

    def _prove_appended(
        self, log: str, results: Sequence[models.AppendResult], checkpoint_size: int
    ) -> Op[None]:
        if not self.verify:
            return
        leaves = [(r.index, bytes.fromhex(r.leaf_hash)) for r in results]
        yield from self.trust.prove_leaves(self.tenant, log, leaves, checkpoint_size)

    # ----- reads of one log

    def get(self, log: str, index: int) -> Op[models.EntryRecord]:
        reply = one((yield Call("GET", f"{self.base(log)}/entries/{int(index)}")))
        record = parse(models.EntryRecord, reply.json())
        if self.verify:
            yield from self.trust.prove_records(self.tenant, log, [reply.json()])
        return record

    def page(
        self, log: str, filters: Mapping[str, str | int | None], cursor: str | None, limit: int
    ) -> Op[models.EntryList]:
        params: dict[str, str | int] = {k: v for k, v in filters.items() if v is not None}
        params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        reply = one((yield Call("GET", f"{self.base(log)}/entries", params=params)))
        doc = reply.json()
        page = parse(models.EntryList, doc)
        if self.verify:
            yield from self.trust.prove_records(
                self.tenant, log, doc.get("entries", []), page.checkpoint_size
            )
        return page

    def checkpoint(self, log: str) -> Op[Checkpoint]:
        return (yield from self.trust.checkpoint(self.tenant, check_log(log), at_least=0))

    def fresh_checkpoint(self, log: str) -> Op[Checkpoint]:
        self.trust.latest.pop((self.tenant, check_log(log)), None)
        return (yield from self.trust.checkpoint(self.tenant, log, at_least=0))

    def inclusion_proof(self, log: str, index: int) -> Op[models.InclusionProof]:
        cp = yield from self.trust.checkpoint(self.tenant, check_log(log), at_least=index + 1)
        reply = one(
            (
                yield Call(
                    "GET",
                    f"{self.base(log)}/proof/inclusion",
                    params={"index": index, "size": cp.size},
                )
            )
        )
        proof = parse(models.InclusionProof, reply.json())
        verify_inclusion(bytes.fromhex(proof.leaf_hash), index, cp.size, b64(proof.hashes), cp.root)
        return proof

    def consistency_proof(self, log: str, old: Checkpoint) -> Op[models.ConsistencyProof]:
        cp = yield from self.fresh_checkpoint(log)
        reply = one(
            (
                yield Call(
                    "GET",
                    f"{self.base(log)}/proof/consistency",
                    params={"from": old.size, "to": cp.size},
                )
            )
        )
        proof = parse(models.ConsistencyProof, reply.json())
        verify_consistency(old.size, cp.size, b64(proof.hashes), old.root, cp.root)
        return proof

    def tlog_proof(self, log: str, index: int) -> Op[str]:
        record = yield from self.get(log, index)
        reply = one(
            (
                yield Call(
                    "GET", f"{self.base(log)}/entries/{int(index)}/tlog-proof", accept="text/plain"
                )
            )
        )
        cp = verify_tlog_proof(
            reply.text, self.trust.keys.all(), leaf_hash=bytes.fromhex(record.leaf_hash)
        )
        if parse_tlog_proof(reply.text).index != index:
            raise VerificationError(
                "tlog-proof", f"{log}#{index}", "the proof is for another index"
            )
        yield from self.trust.observe(self.tenant, log, cp)
        return reply.text

    def vkey(self, log: str) -> Op[str]:
        reply = one((yield Call("GET", f"{self.base(log)}/vkey", accept="text/plain")))
        text = reply.text.strip()
        origin = text.split("+", 1)[0]
        self.trust.keys.remember({origin: text})
        return text

    def logs(self) -> Op[list[models.LogDescription]]:
        reply = one((yield Call("GET", f"/v1/tenants/{self.tenant}/logs")))
        return parse(models.LogList, reply.json()).logs

    # ----- answers with proofs

    def _proven(self, model: type[M], path: str, params: Mapping[str, Any]) -> Op[M]:
        clean = {k: v for k, v in params.items() if v is not None}
        reply = one((yield Call("GET", f"/v1/tenants/{self.tenant}{path}", params=clean)))
        doc = reply.json()
        answer = parse(model, doc)
        if self.verify:
            yield from self.trust.prove_answer(self.tenant, doc)
        return answer

    def trace(
        self,
        request_id: str | None,
        entry: str | None,
        subject: str | None,
        direction: str,
        limit: int | None,
    ) -> Op[models.TraceAnswer]:
        if sum(x is not None for x in (request_id, entry, subject)) != 1:
            raise ConfigurationError("trace: give exactly one of request_id, entry, subject")
        params = {
            "request_id": request_id,
            "entry": entry,
            "subject": subject,
            "direction": direction,
            "limit": limit,
        }
        answer = yield from self._proven(models.TraceAnswer, "/trace", params)
        start = [e for e in answer.entries if e.envelope.get("id") == answer.start]
        asked_entry = entry is None or answer.start == entry
        asked_request = (
            (request_id is None or start[0].envelope.get("subject", {}).get("id") == request_id)
            if start
            else False
        )
        if not (start and asked_entry and asked_request):
            raise about_something_else("trace", "does not start at the entry asked about")
        return answer

    def served(self, environment: str, at: str | dt.datetime | None) -> Op[models.ServedAnswer]:
        params = {"env": environment, "at": when(at)}
        answer = yield from self._proven(models.ServedAnswer, "/served", params)
        if answer.environment != environment:
            raise about_something_else("served", f"is about {answer.environment}")
        return answer

    def history(self, version_hash: str) -> Op[models.HistoryAnswer]:
        answer = yield from self._proven(
            models.HistoryAnswer, f"/models/{version_hash}/history", {}
        )
        if answer.version_hash != version_hash:
            raise about_something_else("history", f"is about {answer.version_hash}")
        return answer

    def evidence_pack(
        self,
        model: str | None,
        request_id: str | None,
        entry: str | None,
        since: str | dt.datetime | None,
        until: str | dt.datetime | None,
        inferences: int | None,
    ) -> Op[models.EvidencePack]:
        params = {
            "model": model,
            "request_id": request_id,
            "entry": entry,
            "since": when(since),
            "until": when(until),
            "inferences": inferences,
        }
        answer = yield from self._proven(models.EvidencePack, "/evidence", params)
        if answer.tenant != self.tenant:
            raise about_something_else("evidence", f"is a pack of tenant {answer.tenant}")
        return answer

    def admit(
        self, environment: str, version_hash: str, raise_if_not: bool
    ) -> Op[models.AdmitAnswer]:
        answer = yield from self._proven(
            models.AdmitAnswer, "/admit", {"env": environment, "digest": version_hash}
        )
        if answer.version_hash != version_hash or answer.environment != environment:
            raise VerificationError(
                "admit",
                f"{environment} admission",
                f"the server answered about {answer.version_hash} in {answer.environment}",
            )
        if raise_if_not and not answer.admitted:
            raise NotAdmitted(
                environment,
                version_hash,
                tuple(Gap(g.code, g.detail, tuple(g.entries or ())) for g in answer.missing),
            )
        return answer

    # ----- tenants, principals, tokens

    def whoami(self) -> Op[models.WhoAmI]:
        return parse(models.WhoAmI, one((yield Call("GET", "/v1/whoami"))).json())

    def create_tenant(self, name: str) -> Op[models.Tenant]:
        reply = one((yield Call("POST", "/v1/tenants", json={"name": name}, retry=False)))
        return parse(models.Tenant, reply.json())

    def tenants(self) -> Op[list[str]]:
        return parse(models.TenantList, one((yield Call("GET", "/v1/tenants"))).json()).tenants

    def create_principal(
        self, name: str, kind: str, roles: Sequence[str], expires_in_days: int | None
    ) -> Op[models.CreatedPrincipal]:
        body: dict[str, Any] = {"name": name, "kind": kind, "roles": list(roles)}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        reply = one(
            (yield Call("POST", f"/v1/tenants/{self.tenant}/principals", json=body, retry=False))
        )
        return parse(models.CreatedPrincipal, reply.json())

    def principals(self) -> Op[list[models.PrincipalInfo]]:
        reply = one((yield Call("GET", f"/v1/tenants/{self.tenant}/principals")))
        return parse(models.PrincipalList, reply.json()).principals

    def issue_token(self, principal: str, expires_in_days: int | None) -> Op[models.IssuedToken]:
        body: dict[str, Any] = {}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        reply = one(
            (
                yield Call(
                    "POST",
                    f"/v1/tenants/{self.tenant}/principals/{principal}/tokens",
                    json=body,
                    retry=False,
                )
            )
        )
        return parse(models.IssuedToken, reply.json())

    def tokens(self, principal: str) -> Op[list[models.TokenInfo]]:
        reply = one((yield Call("GET", f"/v1/tenants/{self.tenant}/principals/{principal}/tokens")))
        return parse(models.TokenList, reply.json()).tokens

    def revoke_token(self, token_id: str) -> Op[None]:
        yield Call("DELETE", f"/v1/tenants/{self.tenant}/tokens/{token_id}")
