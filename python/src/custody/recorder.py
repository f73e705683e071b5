"""The inference recorder: evidence of every prediction, without slowing a request down.

Serving code calls :meth:`InferenceRecorder.record` (or uses :meth:`InferenceRecorder.request`)
once per prediction. The entry is built right there, at request time, so it carries the version
hash serving at that moment and the time of the request, not the time it happened to be sent. A
background thread sends entries in batches; a request only ever waits for room in the queue,
and never longer than ``max_block``.

Nothing is lost silently. When the server is down, entries wait in memory (at most
``max_queue``) and the batch in flight is retried with capped backoff; the entries carry client
ids, so a retry of a batch the server did take is answered "already logged" rather than logged
twice. Beyond ``max_queue`` new records are dropped and counted, and the ``custody`` logger says
how many. A batch the server refuses (a 4xx problem) is narrowed down to the entries it names,
which are counted as rejected and logged, so one bad record cannot wedge the others. At any
moment ``recorded == sent + dropped + rejected + pending`` (see :meth:`InferenceRecorder.stats`).

Log lines never contain inputs, outputs or tokens: inputs and outputs are personal data, and
they only ever travel in the entry's payload, under its salted commitment.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import datetime as dt
import json
import logging
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from . import evidence as ev
from ._config import Settings
from .entries import Entry, rfc3339
from .errors import (
    BadRequest,
    ConfigurationError,
    Forbidden,
    NotFound,
    ProblemError,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    VerificationError,
)
from .hashing import hash_model
from .models import AppendResult


class _Appending(Protocol):
    def append_many(
        self, entries: Sequence[Entry | Mapping[str, Any]], *, log: str | None = None
    ) -> list[AppendResult]: ...


class SendingClient(Protocol):
    """What the recorder sends through: a synchronous :class:`custody.Client` (named by its
    shape here, so the client can hand out recorders without the two importing each other)."""

    @property
    def settings(self) -> Settings:
        """The client's settings (the recorder names the server in its log lines)."""
        ...

    @property
    def logs(self) -> _Appending:
        """Where batches are appended."""
        ...

    def close(self) -> None:
        """Closes the client, for ``close_client=True``."""
        ...


log = logging.getLogger("custody")

#: Seconds between two log lines about dropped records (each carries the running count).
DROP_LOG_INTERVAL = 10.0
#: Seconds between two log lines about serving mismatches the server flagged.
NOTICE_LOG_INTERVAL = 60.0
#: First and longest wait before sending a batch again after the server could not take it.
FIRST_BACKOFF = 0.25
MAX_BACKOFF = 5.0

VERSION_HASH = re.compile(r"sha256:[0-9a-f]{64}")
#: A field error naming one entry of a list, e.g. ``[3].body.decision``.
ITEM_FIELD = re.compile(r"^\[(\d+)\]")

#: Errors after which a batch is kept and sent again: the server did not take it (or its answer
#: could not be checked), and may well take it later.
RETRYABLE = (TransportError, ServerError, RateLimited, VerificationError)
#: Problems about the request as a whole: no subset of the batch would fare better.
WHOLE_REQUEST = (Unauthorized, Forbidden, NotFound)


@dataclass(frozen=True)
class RecorderStats:
    """Where every record went, so a dashboard or a health check can tell that nothing
    disappeared: ``recorded == sent + dropped + rejected + pending``.

    ``recorded`` counts every record made (:meth:`InferenceRecorder.record`, or
    :meth:`InferenceTimer.done`); ``sent`` the entries the
    server acknowledged (proven included in the inference log); ``dropped`` those given up
    because the queue was full, the recorder closed, or ``close()`` ran out of time while the
    server was unreachable; ``rejected`` those the server refused as invalid; ``pending`` those
    queued or in flight; ``last_error`` the last error a send met (``None`` if none yet).
    """

    recorded: int
    sent: int
    dropped: int
    rejected: int
    pending: int
    last_error: str | None


def _version_hash(
    version_hash: str | None, weights: str | os.PathLike[str] | None, what: str
) -> str:
    """The version hash given, or that of the weights at ``weights`` (hashed once, here)."""
    if (version_hash is None) == (weights is None):
        raise ConfigurationError(
            f"{what}: give exactly one of version_hash='sha256:...' (the hash of the weights "
            "serving) or weights=PATH (their file or directory, hashed once here)"
        )
    if weights is not None:
        return hash_model(weights).version_hash
    assert version_hash is not None
    if not VERSION_HASH.fullmatch(version_hash):
        raise ConfigurationError(
            f"{what}: version_hash {version_hash!r} is not a version hash: pass 'sha256:' and 64 "
            "lowercase hex digits (custody.hashing.hash_model(path).version_hash), or weights=PATH"
        )
    return version_hash


def _positive(name: str, value: float, fix: str) -> None:
    if not value > 0:
        raise ConfigurationError(f"{name}={value!r} must be greater than 0: {fix}")


class InferenceRecorder:
    """Records served predictions to the tenant's inference log from serving code.

    ``deployment_id`` names the deployment serving (recorded in the governance log beforehand,
    or the server refuses the records). The weights serving are named by ``version_hash`` or by
    ``weights``, a path hashed once here with :func:`custody.hashing.hash_model`; call
    :meth:`switch` when a hot swap changes them. ``model_name`` is stored with each record.

    ``max_queue`` bounds the records held in memory (queued and in flight) while the server is
    slow or down; ``batch_size`` is the most entries sent per request, and ``flush_interval``
    the longest a record waits for its batch to fill before it is sent anyway; ``max_block`` is
    the longest :meth:`record` waits for room in a full queue before dropping the record.

    Entries go through ``client`` (its token needs the writer role) from a background thread;
    give a client the serving code does not otherwise share across threads, or one that is
    only used for reads elsewhere. ``close_client=True`` closes it with the recorder, for a
    client made just for it. The recorder is flushed when the interpreter exits normally; call
    :meth:`close` (or use ``with``) to flush earlier.

    Create it in the process that serves: a forked worker (``gunicorn --preload``) inherits no
    sender thread, so make the recorder (and its client) after the fork, e.g. in the app's
    startup, as ``examples/serving.py`` does.
    """

    def __init__(
        self,
        client: SendingClient,
        *,
        deployment_id: str,
        version_hash: str | None = None,
        weights: str | os.PathLike[str] | None = None,
        model_name: str | None = None,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_block: float = 0.005,
        close_client: bool = False,
    ) -> None:
        if not deployment_id:
            raise ConfigurationError(
                "deployment_id is empty: pass the id of the deployment serving, as recorded "
                "with client.evidence.deploy(...)"
            )
        _positive("max_queue", max_queue, "it bounds the records kept in memory, e.g. 10_000")
        _positive("batch_size", batch_size, "it is the most entries per request, e.g. 500")
        _positive("flush_interval", flush_interval, "give seconds, e.g. 0.5")
        if max_block < 0:
            raise ConfigurationError(
                f"max_block={max_block!r} is negative: give the seconds record() may wait for "
                "room in a full queue, e.g. 0.005, or 0 never to wait"
            )
        self._client = client
        self._close_client = close_client
        self._server = client.settings.server
        self.deployment_id = deployment_id
        self.model_name = model_name
        self._version_hash = _version_hash(version_hash, weights, "InferenceRecorder")
        self.max_queue = int(max_queue)
        self.batch_size = int(batch_size)
        self.flush_interval = float(flush_interval)
        self.max_block = float(max_block)

        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._has_room = threading.Condition(self._lock)
        self._settled_cond = threading.Condition(self._lock)
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[Entry] = collections.deque()
        self._in_flight = 0
        self._recorded = 0
        self._accepted = 0
        self._settled = 0
        self._sent = 0
        self._dropped = 0
        self._rejected = 0
        self._last_error: str | None = None
        self._flushing = 0
        self._kick = False
        self._closed = False
        self._stopping = False
        self._abandoned = False
        self._down_since: float | None = None
        self._dropped_at_outage = 0
        self._drops_unreported = 0
        self._last_drop_log = -DROP_LOG_INTERVAL
        self._notices_unreported = 0
        self._last_notice_log = -NOTICE_LOG_INTERVAL

        self._thread = threading.Thread(
            target=self._run, name=f"custody-recorder-{deployment_id}", daemon=True
        )
        self._thread.start()
        atexit.register(self._at_exit)

    def __repr__(self) -> str:
        return (
            f"InferenceRecorder(deployment_id={self.deployment_id!r}, "
            f"version_hash={self._version_hash!r}, server={self._server!r})"
        )

    # ----- what serving code calls

    @property
    def version_hash(self) -> str:
        """The version hash stamped on records made from now on."""
        return self._version_hash

    def switch(
        self, version_hash: str | None = None, *, weights: str | os.PathLike[str] | None = None
    ) -> None:
        """Names the weights serving from now on, after a hot swap: records made later carry the
        new version hash, records made earlier (even if still queued) keep the one that served
        them."""
        self._version_hash = _version_hash(version_hash, weights, "switch")

    def record(
        self,
        request_id: str,
        *,
        input: Any,  # what the model was given
        output: Any,
        decision: str | int | float | bool,
        latency_ms: float,
        score: float | None = None,
        requested_at: str | dt.datetime | None = None,
    ) -> bool:
        """Records one served prediction, stamped now with the version hash serving and (unless
        given) the request time, and queues it for sending; waits at most ``max_block`` for
        room. Returns ``False`` when the record was dropped (queue full, or recorder closed):
        it is counted in :meth:`stats` and reported in the log, never silently lost."""
        when = requested_at if requested_at is not None else dt.datetime.now(dt.timezone.utc)
        entry = ev.inference(
            request_id,
            version_hash=self._version_hash,
            deployment_id=self.deployment_id,
            requested_at=rfc3339(when) if isinstance(when, dt.datetime) else when,
            decision=decision,
            latency_ms=latency_ms,
            input=input,
            output=output,
            score=score,
            model_name=self.model_name,
        )
        return self._enqueue(entry)

    def request(self, request_id: str) -> InferenceTimer:
        """A context manager for one request: stamps the request time and the version hash
        serving when entered, and measures the latency up to :meth:`InferenceTimer.done`::

            with recorder.request(request_id) as r:
                output = model(features)
                r.done(input=features, output=output, decision=output.label)
        """
        return InferenceTimer(self, request_id)

    def stats(self) -> RecorderStats:
        """Where every record went so far (see :class:`RecorderStats`)."""
        with self._lock:
            return RecorderStats(
                recorded=self._recorded,
                sent=self._sent,
                dropped=self._dropped,
                rejected=self._rejected,
                pending=len(self._queue) + self._in_flight,
                last_error=self._last_error,
            )

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Sends every record made before this call now, without waiting for batches to fill,
        and waits up to ``timeout`` seconds (``None``: as long as it takes) for the server to
        take them. Returns whether they all left the queue (sent, or rejected and counted);
        ``False`` means the server was still unreachable and they are still pending."""
        with self._lock:
            target = self._accepted
            self._flushing += 1
            self._kick = True
            self._has_work.notify_all()
            self._wake.notify_all()
            try:
                return (
                    self._settled_cond.wait_for(
                        lambda: self._settled >= target or self._abandoned, timeout
                    )
                    and self._settled >= target
                )
            finally:
                self._flushing -= 1

    def close(self, timeout: float = 10.0) -> bool:
        """Stops taking records, flushes (waiting up to ``timeout`` seconds) and stops the
        sender. Records the server has not taken by then are counted as dropped and reported in
        the log (some of a batch in flight may still have reached the log). Returns whether
        everything was sent or rejected. Closing twice is harmless."""
        with self._lock:
            if self._closed and self._stopping:
                return not self._abandoned
            self._closed = True
        deadline = time.monotonic() + timeout
        flushed = self.flush(timeout)
        unsent = 0
        with self._lock:
            self._stopping = True
            if not flushed:
                unsent = len(self._queue) + self._in_flight
                self._abandoned = True
                self._dropped += unsent
                self._settled += unsent
                self._queue.clear()
                self._in_flight = 0
            self._has_work.notify_all()
            self._wake.notify_all()
            self._settled_cond.notify_all()
            self._has_room.notify_all()
        if unsent:
            log.warning(
                "custody: inference recorder closed with %d records the server at %s did not "
                "take within %.1fs; counted as dropped (%s)",
                unsent,
                self._server,
                timeout,
                self._last_error or "no error seen",
            )
        self._report_drops(force=True)
        self._thread.join(max(0.0, deadline - time.monotonic()) if flushed else 0.1)
        atexit.unregister(self._at_exit)
        if self._close_client:
            self._client.close()
        return flushed

    async def aflush(self, timeout: float | None = 10.0) -> bool:
        """:meth:`flush` for async serving code: waits in a worker thread, not the event loop."""
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float = 10.0) -> bool:
        """:meth:`close` for async serving code: waits in a worker thread, not the event loop."""
        return await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> InferenceRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> InferenceRecorder:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ----- the request side

    def _enqueue(self, entry: Entry) -> bool:
        with self._lock:
            self._recorded += 1
            deadline: float | None = None
            while not self._closed and len(self._queue) + self._in_flight >= self.max_queue:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.max_block
                if now >= deadline:
                    break
                self._has_room.wait(deadline - now)
            if self._closed or len(self._queue) + self._in_flight >= self.max_queue:
                self._dropped += 1
                self._drops_unreported += 1
            else:
                self._queue.append(entry)
                self._accepted += 1
                if len(self._queue) == 1 or len(self._queue) >= self.batch_size:
                    self._has_work.notify()
                return True
        self._report_drops(force=False)
        return False

    def _report_drops(self, *, force: bool) -> None:
        """Logs the records dropped since the last such line: at once for the first, then at
        most once per :data:`DROP_LOG_INTERVAL` (or when forced), so a flood of drops is
        reported with its running count without flooding the log."""
        with self._lock:
            now = time.monotonic()
            if not self._drops_unreported or (
                not force and now - self._last_drop_log < DROP_LOG_INTERVAL
            ):
                return
            count, self._drops_unreported = self._drops_unreported, 0
            self._last_drop_log = now
            total = self._dropped
            why = (
                f"the server at {self._server} is unreachable ({self._last_error})"
                if self._down_since is not None
                else "the recorder is closed"
                if self._closed
                else "records come faster than the server takes them"
            )
        log.warning(
            "custody: dropped %d inference records (%d dropped in all; "
            "queue limit max_queue=%d): %s",
            count,
            total,
            self.max_queue,
            why,
        )

    # ----- the sender thread

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._deliver(batch)
            self._report_drops(force=False)

    def _next_batch(self) -> list[Entry] | None:
        """Waits for entries, then up to ``flush_interval`` for a full batch (unless a flush or
        close wants them now), and takes them off the queue."""
        with self._lock:
            while not self._queue and not self._stopping:
                self._has_work.wait()
            if not self._queue:
                return None
            deadline = time.monotonic() + self.flush_interval
            while len(self._queue) < self.batch_size and not self._stopping and not self._flushing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._has_work.wait(remaining)
            if not self._queue:
                return None if self._stopping else []
            n = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            self._in_flight = n
            self._kick = False
            return batch

    def _deliver(self, batch: list[Entry]) -> None:
        """Sends a batch until every entry is acknowledged or rejected (or the recorder gives
        up on close): server trouble is waited out; a refused batch is narrowed down to the
        entries the server names, or halved until the bad ones are found alone."""
        parts: collections.deque[list[Entry]] = collections.deque([batch] if batch else [])
        while parts:
            part = parts.popleft()
            error = self._send(part)
            if error is None:
                continue
            if self._abandoned:
                return
            bad, rest = _narrow(part, error)
            if bad:
                self._reject(bad, error)
            parts.extendleft(reversed(rest))

    def _send(self, part: list[Entry]) -> Exception | None:
        """Appends ``part``, retrying for as long as the server cannot take it; returns
        ``None`` once it is acknowledged (or abandoned), else the refusal."""
        backoff = FIRST_BACKOFF
        while True:
            if self._abandoned:
                return None
            try:
                results = self._client.logs.append_many(part, log=ev.INFERENCE)
            except RETRYABLE as e:
                if self._abandoned:
                    return None
                self._unreachable(e)
                self._report_drops(force=False)
                self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            except Exception as e:  # any refusal: it must not stop the sender
                return e
            self._acknowledged(part, results)
            return None

    def _pause(self, seconds: float) -> None:
        """Waits before a retry; a flush or close cuts the wait short."""
        with self._lock:
            if not self._kick and not self._stopping:
                self._wake.wait(seconds)
            self._kick = False

    def _settle(self, n: int) -> None:
        self._in_flight -= n
        self._settled += n
        self._settled_cond.notify_all()
        self._has_room.notify_all()

    def _acknowledged(self, part: list[Entry], results: list[AppendResult]) -> None:
        recovered: tuple[float, int, int, int] | None = None
        with self._lock:
            if self._abandoned:
                return
            self._sent += len(part)
            self._settle(len(part))
            if self._down_since is not None:
                recovered = (
                    time.monotonic() - self._down_since,
                    self._dropped - self._dropped_at_outage,
                    self._dropped,
                    len(self._queue) + self._in_flight,
                )
                self._down_since = None
                self._drops_unreported = 0
        if recovered is not None:
            log.warning(
                "custody: the server at %s takes inference records again after %.1fs; "
                "%d records dropped meanwhile (%d in all), %d pending",
                self._server,
                *recovered,
            )
        self._report_notices(results)

    def _unreachable(self, error: Exception) -> None:
        with self._lock:
            self._last_error = _describe(error)
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            self._dropped_at_outage = self._dropped
            pending = len(self._queue) + self._in_flight
        level = logging.ERROR if isinstance(error, VerificationError) else logging.WARNING
        log.log(
            level,
            "custody: cannot send inference records to %s (%s); keeping %d pending in memory "
            "(at most max_queue=%d, beyond that new records are dropped and counted) and retrying",
            self._server,
            _describe(error),
            pending,
            self.max_queue,
        )

    def _reject(self, bad: list[Entry], error: Exception) -> None:
        with self._lock:
            if self._abandoned:
                return
            self._last_error = _describe(error)
            self._rejected += len(bad)
            self._settle(len(bad))
            total = self._rejected
        log.error(
            "custody: %s %d inference records (request ids %s); counted as rejected (%d in "
            "all): %s",
            "the server refused" if isinstance(error, ProblemError) else "could not send",
            len(bad),
            _ids(bad),
            total,
            _describe(error),
        )

    def _report_notices(self, results: list[AppendResult]) -> None:
        """Warns (at most once per :data:`NOTICE_LOG_INTERVAL`) when the server flagged records
        whose version hash was not the one promoted in the deployment's environment: serving
        weights that never passed the gate is a security event."""
        flagged = [r.security for r in results if r.security is not None]
        if not flagged:
            return
        with self._lock:
            self._notices_unreported += len(flagged)
            now = time.monotonic()
            if now - self._last_notice_log < NOTICE_LOG_INTERVAL:
                return
            count, self._notices_unreported = self._notices_unreported, 0
            self._last_notice_log = now
        last = flagged[-1]
        log.warning(
            "custody: %d inference records claim weights that were not serving (latest claims "
            "%s where the ledger has %s); custody recorded security events (e.g. governance#%d)",
            count,
            last.claimed,
            last.expected or "nothing promoted",
            last.security_index,
        )

    def _at_exit(self) -> None:
        self.close()


class InferenceTimer:
    """One request being served (from :meth:`InferenceRecorder.request`): the request time and
    version hash are stamped on entering, the latency measured up to :meth:`done`."""

    def __init__(self, recorder: InferenceRecorder, request_id: str) -> None:
        self._recorder = recorder
        self.request_id = request_id
        self.requested_at = ""
        self.version_hash = ""
        self._started: float | None = None
        self._done = False

    def __enter__(self) -> InferenceTimer:
        self.requested_at = rfc3339()
        self.version_hash = self._recorder.version_hash
        self._started = time.perf_counter()
        return self

    def done(
        self,
        *,
        input: Any,
        output: Any,
        decision: str | int | float | bool,
        score: float | None = None,
    ) -> bool:
        """Records the prediction with the latency since the request began; returns whether it
        was queued (see :meth:`InferenceRecorder.record`)."""
        if self._done:
            raise ConfigurationError(
                f"done() was already called for request {self.request_id!r}: call it once per "
                "request"
            )
        if self._started is None:
            raise ConfigurationError(
                "done() outside its with-block: use `with recorder.request(request_id) as r:`"
            )
        self._done = True
        latency_ms = (time.perf_counter() - self._started) * 1000.0
        entry = ev.inference(
            self.request_id,
            version_hash=self.version_hash,
            deployment_id=self._recorder.deployment_id,
            requested_at=self.requested_at,
            decision=decision,
            latency_ms=round(latency_ms, 3),
            input=input,
            output=output,
            score=score,
            model_name=self._recorder.model_name,
        )
        return self._recorder._enqueue(entry)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and not self._done:
            log.warning(
                "custody: request %s finished without done(): nothing was recorded for it",
                self.request_id,
            )


def _narrow(part: list[Entry], error: Exception) -> tuple[list[Entry], list[list[Entry]]]:
    """Splits a refused batch into the entries to reject and the parts to send again: the
    entries a validation problem names, or that cannot be encoded as JSON, are rejected and the
    rest sent again; a problem no subset would escape (no permission, a broken client) rejects
    the whole part; any other refusal halves the part until the culprits are alone."""
    if len(part) == 1 or isinstance(error, WHOLE_REQUEST):
        return part, []
    named: set[int] = set()
    if isinstance(error, BadRequest):
        named = {int(m.group(1)) for e in error.errors if (m := ITEM_FIELD.match(e.field))}
    elif isinstance(error, (TypeError, ValueError)):
        named = {i for i, e in enumerate(part) if not _encodes(e)}
    elif not isinstance(error, ProblemError):
        return part, []
    if named & set(range(len(part))):
        bad = [e for i, e in enumerate(part) if i in named]
        rest = [e for i, e in enumerate(part) if i not in named]
        return bad, [rest] if rest else []
    half = len(part) // 2
    return [], [part[:half], part[half:]]


def _encodes(entry: Entry) -> bool:
    """Whether an entry can be sent as JSON (an input holding, say, an array object or a NaN
    cannot)."""
    try:
        json.dumps(entry.to_json(), allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _describe(error: Exception) -> str:
    """An error for a log line, on one line and cut short. custody's own errors name fields and
    requests, never their values; others are named by class first."""
    if isinstance(error, (ProblemError, TransportError, VerificationError)):
        text = str(error)
    else:
        text = f"{error.__class__.__name__}: {error}"
    return " ".join(text.split())[:500]


def _ids(entries: list[Entry], at_most: int = 5) -> str:
    ids = ", ".join(e.subject_id for e in entries[:at_most])
    return ids + (f" and {len(entries) - at_most} more" if len(entries) > at_most else "")


__all__ = ["InferenceRecorder", "InferenceTimer", "RecorderStats"]
