"""The synchronous client, :class:`Client`.

Grouped the way an ML team thinks about custody: ``client.logs`` (append, read, prove),
``client.evidence`` (datasets, runs, models, approvals, promotions, deployments, ...),
``client.serving`` (the admission gate and the inference recorder), ``client.audit`` (trace a
decision, what served when, a model's history, evidence packs, the access log) and
``client.admin`` (tenants, principals, tokens). :class:`custody.AsyncClient` has the same shape.

Nothing is returned before it is checked: see :mod:`custody._trust`.
"""

from __future__ import annotations

import builtins
import datetime as dt
import os
import ssl
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import httpx

from . import evidence as ev
from . import models
from ._api import AccessQuery, Operations, entry_filters, home_log
from ._config import Settings
from ._transport import PURPOSE_HEADER, Op, run_sync
from ._trust import Trust
from .approvals import Criterion, SigningKey, sign_approval
from .entries import Entry, as_json
from .errors import ConfigurationError
from .hashing import hash_model
from .recorder import InferenceRecorder
from .verify.note import Checkpoint

__version__ = "0.1.0"

T = TypeVar("T")
P = ParamSpec("P")

#: Entries per request when streaming (each request is atomic on its own).
STREAM_CHUNK = 1000


def http_options(settings: Settings) -> dict[str, Any]:
    """What both HTTP clients are built with: base URL, auth and purpose headers, TLS trust
    (the system's, or a private CA) and the timeout."""
    headers = {"User-Agent": f"custody-python/{__version__}"}
    if settings.token:
        headers["Authorization"] = f"Bearer {settings.token}"
    if settings.purpose:
        headers[PURPOSE_HEADER] = settings.purpose
    verify: ssl.SSLContext | bool = True
    if settings.ca_cert is not None:
        verify = ssl.create_default_context(cafile=str(settings.ca_cert))
    return {
        "base_url": settings.server,
        "headers": headers,
        "timeout": httpx.Timeout(settings.timeout),
        "verify": verify,
        "follow_redirects": False,
    }


def single_log(entries: Sequence[Entry | Mapping[str, Any]], log: str | None) -> str:
    """The one log a batch goes to: ``log`` if given, else the entries' common home log."""
    if log is not None:
        return log
    logs = {home_log(e.type if isinstance(e, Entry) else str(e.get("type", ""))) for e in entries}
    if len(logs) != 1:
        raise ConfigurationError(
            f"the entries belong in different logs ({', '.join(sorted(logs))}): send each log's "
            "entries in its own call, or pass log="
        )
    return logs.pop()


def version_of(weights: str | os.PathLike[str]) -> str:
    """A version hash given as such, or computed from a weights file or directory."""
    text = os.fspath(weights)
    if text.startswith("sha256:") and not Path(text).exists():
        return text
    return hash_model(text).version_hash


@dataclass(frozen=True)
class StreamSummary:
    """What a stream appended: how many entries, where, and the checkpoint covering them."""

    appended: int
    existing: int
    first_index: int | None
    last_index: int | None
    checkpoint_size: int


class StreamTally:
    """What a stream has appended so far, counted answer by answer, and its progress bar."""

    def __init__(self, progress: bool | None, total: int | None, log: str) -> None:
        self.bar = progress_bar(progress, total, log)
        self.appended = 0
        self.existing = 0
        self.first: int | None = None
        self.last: int | None = None
        self.checkpoint_size = 0

    def add(self, answer: models.AppendResults, sent: int) -> None:
        """Counts the answer to one chunk of ``sent`` entries."""
        for r in answer.results:
            if r.existing:
                self.existing += 1
            else:
                self.appended += 1
            self.first = r.index if self.first is None else min(self.first, r.index)
            self.last = r.index if self.last is None else max(self.last, r.index)
        self.checkpoint_size = max(self.checkpoint_size, answer.checkpoint_size)
        if self.bar is not None:
            self.bar.update(sent)

    def close(self) -> None:
        """Closes the progress bar, if any."""
        if self.bar is not None:
            self.bar.close()

    def summary(self) -> StreamSummary:
        """The stream's outcome."""
        return StreamSummary(
            self.appended, self.existing, self.first, self.last, self.checkpoint_size
        )


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def progress_bar(enabled: bool | None, total: int | None, log: str) -> Any:
    """A tqdm progress bar when asked for, or by default when stderr is a terminal and tqdm is
    installed (``pip install custody[progress]``); otherwise nothing."""
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        if enabled:
            raise ConfigurationError(
                "progress=True needs tqdm: pip install 'custody[progress]'"
            ) from None
        return None
    return tqdm(total=total, unit="entries", desc=f"custody {log}", file=sys.stderr)


class _Part:
    def __init__(self, client: Client) -> None:
        self._client = client

    def _run(self, op: Op[T]) -> T:
        return self._client._run(op)

    @property
    def _ops(self) -> Operations:
        return self._client._ops


class Logs(_Part):
    """Appending to and reading a tenant's logs, every answer proven."""

    def append(
        self, entry: Entry | Mapping[str, Any], *, log: str | None = None
    ) -> models.AppendResult:
        """Appends one entry to its log (``log`` defaults to the type's home log) and proves it
        landed under a signed checkpoint. Retrying after a timeout is safe: the entry's id
        makes the server answer with the entry already logged."""
        return self._run(self._ops.append(single_log([entry], log), [entry]))[0]

    def append_many(
        self, entries: Sequence[Entry | Mapping[str, Any]], *, log: str | None = None
    ) -> list[models.AppendResult]:
        """Appends entries atomically: all of them, or (on any error) none."""
        return self._run(self._ops.append(single_log(entries, log), list(entries)))

    def stream(
        self,
        entries: Iterable[Entry | Mapping[str, Any]],
        *,
        log: str,
        chunk_size: int = STREAM_CHUNK,
        progress: bool | None = None,
        total: int | None = None,
    ) -> StreamSummary:
        """Appends entries from any iterable as NDJSON, ``chunk_size`` per request (each
        request atomic), with a progress bar when stderr is a terminal. Entries carry client ids,
        so re-running a stream that failed half-way appends only what is missing."""
        if chunk_size < 1:
            raise ConfigurationError("chunk_size must be at least 1")
        tally = StreamTally(progress, total, log)
        try:
            for chunk in chunks((as_json(e) for e in entries), chunk_size):
                tally.add(self._run(self._ops.append_ndjson(log, chunk)), len(chunk))
        finally:
            tally.close()
        return tally.summary()

    def get(self, log: str, index: int) -> models.EntryRecord:
        """One entry, its envelope re-hashed and its inclusion proven; the payload (with a
        purpose, for those allowed) opened against its commitment."""
        return self._run(self._ops.get(log, index))

    def page(
        self,
        log: str,
        *,
        type: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        related: str | None = None,
        since: str | dt.datetime | None = None,
        until: str | dt.datetime | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> models.EntryList:
        """One page of a filtered listing; pass ``next_cursor`` back for the next."""
        filters = entry_filters(type, actor, subject, related, since, until)
        return self._run(self._ops.page(log, filters, cursor, limit))

    def list(
        self,
        log: str,
        *,
        type: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        related: str | None = None,
        since: str | dt.datetime | None = None,
        until: str | dt.datetime | None = None,
        page_size: int = 500,
    ) -> Iterator[models.EntryRecord]:
        """Every matching entry in index order, fetched a page at a time as you iterate."""
        cursor: str | None = None
        while True:
            page = self.page(
                log,
                type=type,
                actor=actor,
                subject=subject,
                related=related,
                since=since,
                until=until,
                cursor=cursor,
                limit=page_size,
            )
            yield from page.entries
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def checkpoint(self, log: str) -> Checkpoint:
        """The log's latest signed checkpoint, opened with the pinned key and proven consistent
        with every earlier checkpoint this client verified."""
        return self._run(self._ops.fresh_checkpoint(log))

    def inclusion_proof(self, log: str, index: int) -> models.InclusionProof:
        """The entry's RFC 9162 inclusion proof in the latest verified checkpoint, checked."""
        return self._run(self._ops.inclusion_proof(log, index))

    def consistency_proof(self, log: str, old: Checkpoint) -> models.ConsistencyProof:
        """Proof that the log's latest checkpoint extends ``old`` (a checkpoint you kept),
        checked."""
        return self._run(self._ops.consistency_proof(log, old))

    def tlog_proof(self, log: str, index: int) -> str:
        """The entry's C2SP tlog-proof text, for offline checking by any tlog tool; checked."""
        return self._run(self._ops.tlog_proof(log, index))

    def vkey(self, log: str) -> str:
        """The log's verifier key as the server announces it (compared with the pinned one)."""
        return self._run(self._ops.vkey(log))

    def describe(self) -> builtins.list[models.LogDescription]:
        """The tenant's logs: origin, size, root and verifier key."""
        return self._run(self._ops.logs())


def _recording(
    builder: Callable[P, Entry],
) -> Callable[Concatenate[Evidence, P], models.AppendResult]:
    """A method of :class:`Evidence` that builds an entry with ``builder`` and appends it."""

    def method(self: Evidence, /, *args: P.args, **kwargs: P.kwargs) -> models.AppendResult:
        return self.record(builder(*args, **kwargs))

    method.__doc__ = builder.__doc__
    method.__name__ = builder.__name__
    return method


class Evidence(_Part):
    """Recording typed evidence (see :mod:`custody.evidence` for each type's fields)."""

    def record(self, entry: Entry) -> models.AppendResult:
        """Appends any entry to its home log, proven."""
        return self._client.logs.append(entry)

    def approve(
        self,
        key: SigningKey,
        model_name: str,
        version_hash: str,
        *,
        target: str,
        decision: Literal["approve", "reject"] = "approve",
        criteria: Sequence[Criterion] = (),
        policy: str | None = None,
        comment: str | None = None,
    ) -> models.AppendResult:
        """Signs an approval (or rejection) locally with the approver's key (DSSE over an
        in-toto Statement, the same bytes ``custody approve`` signs) and submits it; the
        server checks the signature against the approver's registered key."""
        envelope = sign_approval(
            key,
            model_name,
            version_hash,
            decision=decision,
            target=target,
            criteria=criteria,
            policy=policy,
            comment=comment,
        )
        return self.record(ev.approval(version_hash, envelope))

    register_dataset = _recording(ev.dataset_version)
    record_training_run = _recording(ev.training_run)
    register_model = _recording(ev.model_version)
    publish_card = _recording(ev.model_card)
    register_approver_key = _recording(ev.approver_key)
    submit_approval = _recording(ev.approval)
    set_policy = _recording(ev.policy)
    promote = _recording(ev.promotion)
    rollback = _recording(ev.rollback)
    deploy = _recording(ev.deployment)
    incident = _recording(ev.incident)
    retire = _recording(ev.retirement)
    record_inference = _recording(ev.inference)


class Serving(_Part):
    """What serving code needs: the admission gate, and the inference recorder."""

    def admit(
        self, environment: str, weights: str | os.PathLike[str], *, raise_if_not: bool = True
    ) -> models.AdmitAnswer:
        """May these weights (a path, hashed here, or a version hash) serve in ``environment``
        now? Raises :class:`custody.errors.NotAdmitted`, with the gate's reasons, before weights
        that were never approved can serve (unless ``raise_if_not=False``)."""
        return self._run(self._ops.admit(environment, version_of(weights), raise_if_not))

    def recorder(
        self,
        *,
        deployment_id: str,
        version_hash: str | None = None,
        weights: str | os.PathLike[str] | None = None,
        model_name: str | None = None,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_block: float = 0.005,
    ) -> InferenceRecorder:
        """An inference recorder sending through this client from a background thread: each
        record stamped at request time with the version hash serving, sent in batches, nothing
        dropped without being counted and logged (see :class:`custody.recorder.InferenceRecorder`
        for the arguments)."""
        return InferenceRecorder(
            self._client,
            deployment_id=deployment_id,
            version_hash=version_hash,
            weights=weights,
            model_name=model_name,
            max_queue=max_queue,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_block=max_block,
        )


class Audit(_Part):
    """The questions auditors ask, each answer carrying and passing its proofs."""

    def trace(
        self,
        *,
        request_id: str | None = None,
        entry: str | None = None,
        subject: str | None = None,
        direction: Literal["backward", "forward"] = "backward",
        limit: int | None = None,
    ) -> models.TraceAnswer:
        """The chain behind one decision (``request_id``) or entry: inference -> deployment ->
        model version -> approvals, card, policy -> training run -> dataset versions; or,
        ``direction="forward"``, what rests on it."""
        return self._run(self._ops.trace(request_id, entry, subject, direction, limit))

    def served(
        self, environment: str, *, at: str | dt.datetime | None = None
    ) -> models.ServedAnswer:
        """What served in ``environment`` at time ``at`` (default now), proven."""
        return self._run(self._ops.served(environment, at))

    def history(self, version_hash: str) -> models.HistoryAnswer:
        """A model version's whole history: approvals, promotions, rollbacks, retirements."""
        return self._run(self._ops.history(version_hash))

    def export(
        self,
        *,
        model: str | None = None,
        request_id: str | None = None,
        entry: str | None = None,
        since: str | dt.datetime | None = None,
        until: str | dt.datetime | None = None,
        inferences: int | None = None,
    ) -> models.EvidencePack:
        """An evidence pack (entries with payloads, proofs, approver keys) for a model version,
        a decision, an entry or a period; verified here, and verifiable offline."""
        return self._run(
            self._ops.evidence_pack(model, request_id, entry, since, until, inferences)
        )

    def export_to(
        self,
        directory: str | os.PathLike[str],
        *,
        model: str | None = None,
        request_id: str | None = None,
        entry: str | None = None,
        since: str | dt.datetime | None = None,
        until: str | dt.datetime | None = None,
        inferences: int | None = None,
    ) -> Path:
        """Writes the evidence pack :meth:`export` returns (its proofs checked here against the
        pinned log keys) to ``directory``, in the layout ``custody export ... -o DIR`` writes, so
        an auditor can keep it and check it offline with ``custody verify``, ``python -m custody
        verify`` or the standard tools its README.md names.

        ``directory`` must not exist or be empty: :class:`ConfigurationError` otherwise, raised
        before the server is asked. Returns the directory."""
        from .pack import check_pack_directory, write_pack

        check_pack_directory(directory)
        pack = self.export(
            model=model,
            request_id=request_id,
            entry=entry,
            since=since,
            until=until,
            inferences=inferences,
        )
        return write_pack(pack, directory)

    def list(
        self,
        *,
        actor: str | None = None,
        types: Sequence[str] | None = None,
        subject: str | None = None,
        since: str | dt.datetime | None = None,
        until: str | dt.datetime | None = None,
        purpose: str | None = None,
        page_size: int = 500,
    ) -> Iterator[models.EntryRecord]:
        """The access log: who read or tried to read what, when, why and how; filtered by
        actor, entry types (``access.read``, ``security.access_denied``), subject, period and
        stated purpose."""
        query = AccessQuery(types, purpose)
        for record in self._client.logs.list(
            "access",
            type=query.server_type,
            actor=actor,
            subject=subject,
            since=since,
            until=until,
            page_size=page_size,
        ):
            if query.matches(record):
                yield record


class Admin(_Part):
    """Tenants, principals and tokens (for administrators)."""

    def create_tenant(self, name: str) -> models.Tenant:
        """Creates a tenant and its logs (server administrators)."""
        return self._run(self._ops.create_tenant(name))

    def tenants(self) -> list[str]:
        """The tenants this token may see."""
        return self._run(self._ops.tenants())

    def create_principal(
        self,
        name: str,
        *,
        roles: Sequence[str],
        kind: Literal["user", "service"] = "user",
        expires_in_days: int | None = None,
    ) -> models.CreatedPrincipal:
        """Creates a principal and its first token (shown once: store it now)."""
        return self._run(self._ops.create_principal(name, kind, roles, expires_in_days))

    def principals(self) -> list[models.PrincipalInfo]:
        """The tenant's principals."""
        return self._run(self._ops.principals())

    def issue_token(
        self, principal: str, *, expires_in_days: int | None = None
    ) -> models.IssuedToken:
        """A new token for a principal (shown once)."""
        return self._run(self._ops.issue_token(principal, expires_in_days))

    def tokens(self, principal: str) -> list[models.TokenInfo]:
        """A principal's tokens, without their secrets."""
        return self._run(self._ops.tokens(principal))

    def revoke_token(self, token_id: str) -> None:
        """Revokes a token at once."""
        self._run(self._ops.revoke_token(token_id))


class Client:
    """A synchronous custody client.

    Settings come from the arguments, else from ``CUSTODY_SERVER``, ``CUSTODY_TOKEN``,
    ``CUSTODY_TENANT``, ``CUSTODY_PURPOSE``, ``CUSTODY_CA_CERT``, ``CUSTODY_TIMEOUT`` and
    ``CUSTODY_VKEYS``. ``vkeys`` pins the logs' verifier keys; without them, the keys a server
    announces are pinned on first use in ``state_dir``, where the last verified checkpoint of
    each log is kept too (default ``~/.local/state/custody``). ``verify=False`` turns the checks
    off (for benchmarks and debugging only: answers are then not evidence).
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        token: str | None = None,
        tenant: str | None = None,
        purpose: str | None = None,
        ca_cert: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        vkeys: Sequence[str] | Mapping[str, str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        verify: bool = True,
    ) -> None:
        self.settings = Settings.resolve(
            server=server,
            token=token,
            tenant=tenant,
            purpose=purpose,
            ca_cert=ca_cert,
            timeout=timeout,
            vkeys=vkeys,
            state_dir=state_dir,
            verify=verify,
        )
        self._http = httpx.Client(**http_options(self.settings))
        self._owns_http = True
        self._trust = Trust(self.settings.vkeys, self.settings.state_dir)
        self._ops = Operations(self._trust, self.settings.tenant, verify)
        self._parts()

    def _parts(self) -> None:
        self.logs = Logs(self)
        self.evidence = Evidence(self)
        self.serving = Serving(self)
        self.audit = Audit(self)
        self.admin = Admin(self)

    def __repr__(self) -> str:
        return f"custody.Client({self.settings!r})"

    def with_tenant(self, tenant: str) -> Client:
        """The same client (connection, token, pinned keys) for another tenant."""
        other = object.__new__(Client)
        other.settings = self.settings.for_tenant(tenant)
        other._http = self._http
        other._owns_http = False
        other._trust = self._trust
        other._ops = Operations(self._trust, tenant, self.settings.verify)
        other._parts()
        return other

    def whoami(self) -> models.WhoAmI:
        """The principal behind the token, its tenant and roles."""
        return self._run(self._ops.whoami())

    def _run(self, op: Op[T]) -> T:
        return run_sync(self._http, op)

    def close(self) -> None:
        """Closes the connections (not those of the client this one was derived from)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
