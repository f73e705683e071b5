"""The asynchronous client, :class:`AsyncClient`: the same parts and methods as
:class:`custody.Client`, awaited. Both run the same operations (:mod:`custody._api`); here the
proofs an answer needs are fetched side by side."""

from __future__ import annotations

import builtins
import datetime as dt
import os
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

import httpx

from . import evidence as ev
from . import models
from ._api import AccessQuery, Operations, entry_filters
from ._config import Settings
from ._transport import Op, run_async
from ._trust import Trust
from .approvals import Criterion, SigningKey, sign_approval
from .client import (
    STREAM_CHUNK,
    Client,
    StreamSummary,
    StreamTally,
    http_options,
    single_log,
    version_of,
)
from .entries import Entry, as_json
from .errors import ConfigurationError
from .recorder import InferenceRecorder
from .verify.note import Checkpoint

T = TypeVar("T")
P = ParamSpec("P")


class _AsyncPart:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _run(self, op: Op[T]) -> T:
        return await self._client._run(op)

    @property
    def _ops(self) -> Operations:
        return self._client._ops


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class AsyncLogs(_AsyncPart):
    """:class:`custody.client.Logs`, awaited."""

    async def append(
        self, entry: Entry | Mapping[str, Any], *, log: str | None = None
    ) -> models.AppendResult:
        """See :meth:`custody.client.Logs.append`."""
        return (await self._run(self._ops.append(single_log([entry], log), [entry])))[0]

    async def append_many(
        self, entries: Sequence[Entry | Mapping[str, Any]], *, log: str | None = None
    ) -> list[models.AppendResult]:
        """See :meth:`custody.client.Logs.append_many`."""
        return await self._run(self._ops.append(single_log(entries, log), list(entries)))

    async def stream(
        self,
        entries: Iterable[Entry | Mapping[str, Any]] | AsyncIterable[Entry | Mapping[str, Any]],
        *,
        log: str,
        chunk_size: int = STREAM_CHUNK,
        progress: bool | None = None,
        total: int | None = None,
    ) -> StreamSummary:
        """See :meth:`custody.client.Logs.stream`; ``entries`` may also be an async iterable."""
        if chunk_size < 1:
            raise ConfigurationError("chunk_size must be at least 1")
        tally = StreamTally(progress, total, log)
        chunk: list[dict[str, Any]] = []
        try:
            async for e in _aiter(entries):
                chunk.append(as_json(e))
                if len(chunk) >= chunk_size:
                    tally.add(await self._run(self._ops.append_ndjson(log, chunk)), len(chunk))
                    chunk = []
            if chunk:
                tally.add(await self._run(self._ops.append_ndjson(log, chunk)), len(chunk))
        finally:
            tally.close()
        return tally.summary()

    async def get(self, log: str, index: int) -> models.EntryRecord:
        """See :meth:`custody.client.Logs.get`."""
        return await self._run(self._ops.get(log, index))

    async def page(
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
        """See :meth:`custody.client.Logs.page`."""
        filters = entry_filters(type, actor, subject, related, since, until)
        return await self._run(self._ops.page(log, filters, cursor, limit))

    async def list(
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
    ) -> AsyncIterator[models.EntryRecord]:
        """See :meth:`custody.client.Logs.list`; an async iterator."""
        cursor: str | None = None
        while True:
            page = await self.page(
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
            for e in page.entries:
                yield e
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def checkpoint(self, log: str) -> Checkpoint:
        """See :meth:`custody.client.Logs.checkpoint`."""
        return await self._run(self._ops.fresh_checkpoint(log))

    async def inclusion_proof(self, log: str, index: int) -> models.InclusionProof:
        """See :meth:`custody.client.Logs.inclusion_proof`."""
        return await self._run(self._ops.inclusion_proof(log, index))

    async def consistency_proof(self, log: str, old: Checkpoint) -> models.ConsistencyProof:
        """See :meth:`custody.client.Logs.consistency_proof`."""
        return await self._run(self._ops.consistency_proof(log, old))

    async def tlog_proof(self, log: str, index: int) -> str:
        """See :meth:`custody.client.Logs.tlog_proof`."""
        return await self._run(self._ops.tlog_proof(log, index))

    async def vkey(self, log: str) -> str:
        """See :meth:`custody.client.Logs.vkey`."""
        return await self._run(self._ops.vkey(log))

    async def describe(self) -> builtins.list[models.LogDescription]:
        """See :meth:`custody.client.Logs.describe`."""
        return await self._run(self._ops.logs())


def _recording(
    builder: Callable[P, Entry],
) -> Callable[Concatenate[AsyncEvidence, P], Coroutine[Any, Any, models.AppendResult]]:
    async def method(
        self: AsyncEvidence, /, *args: P.args, **kwargs: P.kwargs
    ) -> models.AppendResult:
        return await self.record(builder(*args, **kwargs))

    method.__doc__ = builder.__doc__
    method.__name__ = builder.__name__
    return method


class AsyncEvidence(_AsyncPart):
    """:class:`custody.client.Evidence`, awaited."""

    async def record(self, entry: Entry) -> models.AppendResult:
        """Appends any entry to its home log, proven."""
        return await self._client.logs.append(entry)

    async def approve(
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
        """See :meth:`custody.client.Evidence.approve`."""
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
        return await self.record(ev.approval(version_hash, envelope))

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


class AsyncServing(_AsyncPart):
    """:class:`custody.client.Serving`, awaited."""

    async def admit(
        self, environment: str, weights: str | os.PathLike[str], *, raise_if_not: bool = True
    ) -> models.AdmitAnswer:
        """See :meth:`custody.client.Serving.admit`."""
        return await self._run(self._ops.admit(environment, version_of(weights), raise_if_not))

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
        """:meth:`custody.client.Serving.recorder` for async serving code. ``record()`` never
        awaits (it waits at most ``max_block``); the recorder sends from its own thread, over a
        synchronous client made here with this client's settings and closed with it. Close it
        with ``await recorder.aclose()`` or ``async with``."""
        s = self._client.settings
        sender = Client(
            s.server,
            token=s.token,
            tenant=s.tenant,
            purpose=s.purpose,
            ca_cert=s.ca_cert,
            timeout=s.timeout,
            vkeys=list(s.vkeys),
            state_dir=s.state_dir,
            verify=s.verify,
        )
        try:
            return InferenceRecorder(
                sender,
                deployment_id=deployment_id,
                version_hash=version_hash,
                weights=weights,
                model_name=model_name,
                max_queue=max_queue,
                batch_size=batch_size,
                flush_interval=flush_interval,
                max_block=max_block,
                close_client=True,
            )
        except BaseException:
            sender.close()
            raise


class AsyncAudit(_AsyncPart):
    """:class:`custody.client.Audit`, awaited."""

    async def trace(
        self,
        *,
        request_id: str | None = None,
        entry: str | None = None,
        subject: str | None = None,
        direction: Literal["backward", "forward"] = "backward",
        limit: int | None = None,
    ) -> models.TraceAnswer:
        """See :meth:`custody.client.Audit.trace`."""
        return await self._run(self._ops.trace(request_id, entry, subject, direction, limit))

    async def served(
        self, environment: str, *, at: str | dt.datetime | None = None
    ) -> models.ServedAnswer:
        """See :meth:`custody.client.Audit.served`."""
        return await self._run(self._ops.served(environment, at))

    async def history(self, version_hash: str) -> models.HistoryAnswer:
        """See :meth:`custody.client.Audit.history`."""
        return await self._run(self._ops.history(version_hash))

    async def export(
        self,
        *,
        model: str | None = None,
        request_id: str | None = None,
        entry: str | None = None,
        since: str | dt.datetime | None = None,
        until: str | dt.datetime | None = None,
        inferences: int | None = None,
    ) -> models.EvidencePack:
        """See :meth:`custody.client.Audit.export`."""
        return await self._run(
            self._ops.evidence_pack(model, request_id, entry, since, until, inferences)
        )

    async def export_to(
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
        """See :meth:`custody.client.Audit.export_to`. The files are written in a worker thread,
        so a large pack does not stall the event loop."""
        import asyncio

        from .pack import check_pack_directory, write_pack

        check_pack_directory(directory)
        pack = await self.export(
            model=model,
            request_id=request_id,
            entry=entry,
            since=since,
            until=until,
            inferences=inferences,
        )
        return await asyncio.to_thread(write_pack, pack, directory)

    async def list(
        self,
        *,
        actor: str | None = None,
        types: Sequence[str] | None = None,
        subject: str | None = None,
        since: str | dt.datetime | None = None,
        until: str | dt.datetime | None = None,
        purpose: str | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[models.EntryRecord]:
        """See :meth:`custody.client.Audit.list`."""
        query = AccessQuery(types, purpose)
        async for record in self._client.logs.list(
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


class AsyncAdmin(_AsyncPart):
    """:class:`custody.client.Admin`, awaited."""

    async def create_tenant(self, name: str) -> models.Tenant:
        """See :meth:`custody.client.Admin.create_tenant`."""
        return await self._run(self._ops.create_tenant(name))

    async def tenants(self) -> list[str]:
        """See :meth:`custody.client.Admin.tenants`."""
        return await self._run(self._ops.tenants())

    async def create_principal(
        self,
        name: str,
        *,
        roles: Sequence[str],
        kind: Literal["user", "service"] = "user",
        expires_in_days: int | None = None,
    ) -> models.CreatedPrincipal:
        """See :meth:`custody.client.Admin.create_principal`."""
        return await self._run(self._ops.create_principal(name, kind, roles, expires_in_days))

    async def principals(self) -> list[models.PrincipalInfo]:
        """See :meth:`custody.client.Admin.principals`."""
        return await self._run(self._ops.principals())

    async def issue_token(
        self, principal: str, *, expires_in_days: int | None = None
    ) -> models.IssuedToken:
        """See :meth:`custody.client.Admin.issue_token`."""
        return await self._run(self._ops.issue_token(principal, expires_in_days))

    async def tokens(self, principal: str) -> list[models.TokenInfo]:
        """See :meth:`custody.client.Admin.tokens`."""
        return await self._run(self._ops.tokens(principal))

    async def revoke_token(self, token_id: str) -> None:
        """See :meth:`custody.client.Admin.revoke_token`."""
        await self._run(self._ops.revoke_token(token_id))


class AsyncClient:
    """The asynchronous custody client: :class:`custody.Client`'s settings, parts and methods,
    awaited (``async with custody.AsyncClient(...) as client``)."""

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
        self._http = httpx.AsyncClient(**http_options(self.settings))
        self._owns_http = True
        self._trust = Trust(self.settings.vkeys, self.settings.state_dir)
        self._ops = Operations(self._trust, self.settings.tenant, verify)
        self._parts()

    def __repr__(self) -> str:
        return f"custody.AsyncClient({self.settings!r})"

    def with_tenant(self, tenant: str) -> AsyncClient:
        """The same client (connection, token, pinned keys) for another tenant."""
        other = object.__new__(AsyncClient)
        other.settings = self.settings.for_tenant(tenant)
        other._http = self._http
        other._owns_http = False
        other._trust = self._trust
        other._ops = Operations(self._trust, tenant, self.settings.verify)
        other._parts()
        return other

    def _parts(self) -> None:
        self.logs = AsyncLogs(self)
        self.evidence = AsyncEvidence(self)
        self.serving = AsyncServing(self)
        self.audit = AsyncAudit(self)
        self.admin = AsyncAdmin(self)

    async def whoami(self) -> models.WhoAmI:
        """The principal behind the token, its tenant and roles."""
        return await self._run(self._ops.whoami())

    async def _run(self, op: Op[T]) -> T:
        return await run_async(self._http, op)

    async def aclose(self) -> None:
        """Closes the connections (not those of the client this one was derived from)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
