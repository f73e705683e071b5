"""Entries as a client writes them, and the ids that make retries safe.

An :class:`Entry` is what goes into a log: a type, what it is about (``subject``), links to
other evidence (``related``), a non-personal ``body``, and an optional ``payload`` for personal
or sensitive data (stored beside the leaf under a salted commitment). The server fills in the
envelope's ``v``, ``tenant``, ``log``, ``time``, the actor (the caller) and the commitment.

Every entry gets its UUIDv7 ``id`` on the client, when it is built, so sending it again after a
timeout returns the entry already logged instead of logging it twice.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def uuid7() -> str:
    """A fresh UUIDv7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, then random bits, so ids
    sort by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b: 62 bits
    return str(uuid.UUID(int=value))


def rfc3339(t: dt.datetime | None = None) -> str:
    """``t`` (default now) as RFC 3339 UTC with microseconds, as custody writes times."""
    t = t or dt.datetime.now(dt.timezone.utc)
    if t.tzinfo is None:
        raise ValueError("a time without a timezone is ambiguous: pass an aware datetime")
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Link:
    """A link from an entry to another piece of evidence, by that object's natural id (a
    dataset digest, a run id, a version hash, a deployment id)."""

    kind: str
    id: str
    rel: str

    def to_json(self) -> dict[str, str]:
        """The link as the API takes it."""
        return {"kind": self.kind, "id": self.id, "rel": self.rel}


@dataclass(frozen=True)
class Entry:
    """One entry to append. Build typed evidence with :mod:`custody.evidence`; for your own
    types use ``x.<your>.<type>``."""

    type: str
    subject_kind: str
    subject_id: str
    body: Mapping[str, Any] = field(default_factory=dict)
    related: Sequence[Link] = ()
    payload: Mapping[str, Any] | None = None
    purpose: str | None = None
    request_id: str | None = None
    session_id: str | None = None
    client_time: str | None = None
    id: str = field(default_factory=uuid7)

    def to_json(self) -> dict[str, Any]:
        """The entry as the API takes it."""
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "subject": {"kind": self.subject_kind, "id": self.subject_id},
            "body": dict(self.body),
        }
        if self.related:
            out["related"] = [r.to_json() for r in self.related]
        context = {
            k: v
            for k, v in (
                ("purpose", self.purpose),
                ("request_id", self.request_id),
                ("session_id", self.session_id),
            )
            if v is not None
        }
        if context:
            out["context"] = context
        if self.client_time is not None:
            out["client_time"] = self.client_time
        if self.payload is not None:
            out["payload"] = dict(self.payload)
        return out


def as_json(entry: Entry | Mapping[str, Any]) -> dict[str, Any]:
    """An entry (typed, or a mapping in the API's shape) as the API takes it, with a client id
    added when it has none."""
    if isinstance(entry, Entry):
        return entry.to_json()
    out = dict(entry)
    out.setdefault("id", uuid7())
    return out
