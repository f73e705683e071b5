"""Requests as values, and the two drivers that send them.

Every operation of the SDK is written once, as a generator that yields the HTTP calls it needs
(:class:`Call`, or a list of calls that may go concurrently) and receives their replies
(:class:`Reply`). :func:`run_sync` drives it over an ``httpx.Client``, :func:`run_async` over an
``httpx.AsyncClient``: the synchronous and asynchronous clients share every line of request
building, answer checking and proof verification.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from .errors import FieldError, RateLimited, TransportError, problem_class

log = logging.getLogger("custody")

T = TypeVar("T")

#: Header naming why a read is made; custody records it in the tenant's access log.
PURPOSE_HEADER = "Custody-Purpose"

#: Attempts for a call that is safe to repeat (reads, and appends of entries with client ids).
ATTEMPTS = 4


@dataclass(frozen=True)
class Call:
    """One HTTP request an operation needs."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    accept: str = "application/json"
    #: Whether repeating the call after a lost answer is harmless.
    retry: bool = True
    #: Status codes that are answers rather than problems (e.g. 404 for "not there").
    expect: tuple[int, ...] = ()


@dataclass(frozen=True)
class Reply:
    """What the server answered."""

    status: int
    headers: Mapping[str, str]
    content: bytes = field(repr=False)

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")


#: An operation: yields calls (one, or a list to send side by side), returns its result.
Op = Generator[Call | list[Call], Reply | list[Reply], T]


def one(reply: Reply | list[Reply]) -> Reply:
    """The reply to a single call (narrows the type an operation receives)."""
    assert isinstance(reply, Reply)
    return reply


def many(replies: Reply | list[Reply]) -> list[Reply]:
    """The replies to a list of calls, in order."""
    assert isinstance(replies, list)
    return replies


def raise_for_problem(call: Call, reply: Reply) -> None:
    """Raises the typed :class:`ProblemError` for an error answer."""
    if reply.status < 400 or reply.status in call.expect:
        return
    doc: dict[str, Any] = {}
    try:
        parsed = jsonlib.loads(reply.content)
        if isinstance(parsed, dict):
            doc = parsed
    except ValueError:
        pass
    errors = tuple(
        FieldError(str(e.get("field", "")), str(e.get("message", "")))
        for e in doc.get("errors", []) or []
        if isinstance(e, dict)
    )
    detail = str(doc.get("detail") or reply.content[:500].decode("utf-8", "replace").strip())
    cls = problem_class(reply.status, str(doc.get("type", "")))
    err = cls(
        status=reply.status,
        type=str(doc.get("type", "about:blank")),
        title=str(doc.get("title", f"HTTP {reply.status}")),
        detail=f"{call.method} {call.path}: {detail}",
        errors=errors,
        problem=doc,
    )
    if isinstance(err, RateLimited):
        retry_after = reply.headers.get("retry-after")
        err.retry_after = float(retry_after) if retry_after and retry_after.isdigit() else None
    raise err


def _request(call: Call) -> dict[str, Any]:
    headers = {"Accept": call.accept}
    if call.content_type:
        headers["Content-Type"] = call.content_type
    kwargs: dict[str, Any] = {
        "method": call.method,
        "url": call.path,
        "params": dict(call.params) if call.params else None,
        "headers": headers,
    }
    if call.json is not None:
        kwargs["json"] = call.json
    elif call.content is not None:
        kwargs["content"] = call.content
    return kwargs


def _retryable(call: Call, status: int | None, attempt: int) -> bool:
    if not call.retry or attempt + 1 >= ATTEMPTS:
        return False
    return status is None or status in (429, 502, 503, 504)


def _backoff(attempt: int) -> float:
    return float(min(0.1 * 2**attempt, 2.0))


def _reply(r: httpx.Response) -> Reply:
    return Reply(r.status_code, r.headers, r.content)


def send_sync(http: httpx.Client, call: Call) -> Reply:
    """Sends one call, retrying what is safe to retry, and raises its problem if any."""
    attempt = 0
    while True:
        try:
            reply = _reply(http.request(**_request(call)))
        except httpx.TransportError as e:
            if not _retryable(call, None, attempt):
                raise TransportError(f"{call.method} {call.path}: {e}") from e
            log.debug("custody: %s %s failed (%s); retrying", call.method, call.path, e)
        else:
            if not _retryable(call, reply.status, attempt):
                raise_for_problem(call, reply)
                return reply
        time.sleep(_backoff(attempt))
        attempt += 1


async def send_async(http: httpx.AsyncClient, call: Call) -> Reply:
    """:func:`send_sync` for the asynchronous client."""
    attempt = 0
    while True:
        try:
            reply = _reply(await http.request(**_request(call)))
        except httpx.TransportError as e:
            if not _retryable(call, None, attempt):
                raise TransportError(f"{call.method} {call.path}: {e}") from e
            log.debug("custody: %s %s failed (%s); retrying", call.method, call.path, e)
        else:
            if not _retryable(call, reply.status, attempt):
                raise_for_problem(call, reply)
                return reply
        await asyncio.sleep(_backoff(attempt))
        attempt += 1


def run_sync(http: httpx.Client, op: Op[T]) -> T:
    """Drives an operation to its result over a synchronous client."""
    try:
        request = next(op)
        while True:
            if isinstance(request, list):
                reply: Reply | list[Reply] = [send_sync(http, c) for c in request]
            else:
                reply = send_sync(http, request)
            request = op.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result


#: Calls of one batch in flight at once on the asynchronous client.
CONCURRENCY = 16


async def run_async(http: httpx.AsyncClient, op: Op[T]) -> T:
    """Drives an operation over an asynchronous client; the calls of a batch go side by side."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def bounded(c: Call) -> Reply:
        async with limit:
            return await send_async(http, c)

    try:
        request = next(op)
        while True:
            if isinstance(request, list):
                reply: Reply | list[Reply] = list(
                    await asyncio.gather(*(bounded(c) for c in request))
                )
            else:
                reply = await send_async(http, request)
            request = op.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result
