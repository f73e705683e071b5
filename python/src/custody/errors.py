"""Every error the package raises, under one base class, :class:`CustodyError`.

Three families, because a caller reacts to each differently:

* :class:`ProblemError` and its subclasses: the server answered with an RFC 9457
  ``application/problem+json`` problem (bad input, no permission, a gate refusal, ...). The
  request changed nothing, except a gate refusal, which custody records.
* :class:`VerificationError`: an answer, a pack or a proof did not verify. Nothing it says may be
  shown as evidence. :class:`ForkDetected` is the case where a log no longer extends a checkpoint
  this client saw before: a rewound or forked log.
* :class:`TransportError` and :class:`ConfigurationError`: the request never got an answer, or
  the client was set up wrongly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class CustodyError(Exception):
    """Base class of every error this package raises."""


class ConfigurationError(CustodyError, ValueError):
    """The client or a helper was given settings it cannot work with; the message names the
    setting and how to fix it."""


class TransportError(CustodyError):
    """The server could not be reached, or did not answer in time. Safe to retry: appends carry
    client-generated ids, so a retry never records an entry twice."""


@dataclass(frozen=True)
class FieldError:
    """One invalid field of a request, as the server named it (e.g. ``body.version_hash`` or
    ``[3].actor.kind``)."""

    field: str
    message: str


@dataclass(frozen=True)
class GateGap:
    """One thing a gate found missing (``approvals``, ``criterion``, ``separation_of_duties``,
    ...)."""

    code: str
    detail: str
    entries: tuple[str, ...] = ()


class ProblemError(CustodyError):
    """The server refused the request with an RFC 9457 problem.

    ``status``, ``type``, ``title`` and ``detail`` are the problem's own fields; ``errors``
    lists each invalid field for validation problems; ``problem`` is the whole document as
    received.
    """

    def __init__(
        self,
        status: int,
        type: str,
        title: str,
        detail: str,
        errors: tuple[FieldError, ...] = (),
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.errors = errors
        self.problem: Mapping[str, Any] = problem or {}
        # Each invalid field on its own line, unless the detail already is the one field's.
        fields = "".join(
            f"\n  {e.field}: {e.message}"
            for e in errors
            if len(errors) > 1 or f"{e.field}: {e.message}" not in detail
        )
        super().__init__(f"{status} {title}: {detail}{fields}")


class BadRequest(ProblemError):
    """400: the request is malformed or a field is invalid; see :attr:`errors`."""


class Unauthorized(ProblemError):
    """401: no token, or a token that is unknown, expired or revoked."""


class Forbidden(ProblemError):
    """403: the token's principal may not do this (role, tenant, or a server-only type)."""


class NotFound(ProblemError):
    """404: no such tenant, log, entry or model version."""


class Conflict(ProblemError):
    """409: the same entry id with different content, a tenant that exists, or a log that does
    not extend the checkpoint presented."""


class PayloadTooLarge(ProblemError):
    """413: the request body or an entry is larger than the server accepts."""


class GateRefused(ProblemError):
    """422: a promotion, rollback or deployment the tenant's gate policy refused.

    :attr:`missing` says exactly what it lacks; :attr:`refusal_index` and :attr:`refusal_id`
    say where custody recorded the refusal in the governance log.
    """

    def __init__(
        self,
        status: int,
        type: str,
        title: str,
        detail: str,
        errors: tuple[FieldError, ...] = (),
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(status, type, title, detail, errors, problem)
        doc = problem or {}
        self.missing: tuple[GateGap, ...] = tuple(
            GateGap(
                code=str(g.get("code", "")),
                detail=str(g.get("detail", "")),
                entries=tuple(str(e) for e in g.get("entries", []) or []),
            )
            for g in doc.get("missing", []) or []
        )
        refusal = doc.get("refusal") or {}
        self.refusal_index: int | None = refusal.get("index")
        self.refusal_id: str | None = refusal.get("id")


class RateLimited(ProblemError):
    """429: too many requests for this token; retry after :attr:`retry_after` seconds."""

    retry_after: float | None = None


class ServerError(ProblemError):
    """5xx: the server failed or is unavailable; the write, if any, was not acknowledged."""


def problem_class(status: int, problem_type: str) -> type[ProblemError]:
    """The exception class for a problem's status and type."""
    if problem_type.endswith("/gate-refused"):
        return GateRefused
    by_status: dict[int, type[ProblemError]] = {
        400: BadRequest,
        401: Unauthorized,
        403: Forbidden,
        404: NotFound,
        409: Conflict,
        413: PayloadTooLarge,
        429: RateLimited,
    }
    if status in by_status:
        return by_status[status]
    if status >= 500:
        return ServerError
    return ProblemError


class VerificationError(CustodyError):
    """An answer, proof, checkpoint or evidence pack did not verify.

    ``check`` names the check that failed (``signature``, ``inclusion``, ``consistency``,
    ``leaf_hash``, ``payload_commitment``, ``dsse``, ``sha256sums``, ...), ``target`` what it
    was about (``governance#12``, ``inference checkpoint``, a pack file), and the message why.
    """

    def __init__(self, check: str, target: str, message: str) -> None:
        self.check = check
        self.target = target
        self.message = message
        super().__init__(f"{target}: {check}: {message}")


class ForkDetected(VerificationError):
    """A log's new checkpoint does not extend one this client verified before: the log was
    rewound or forked. Keep both checkpoints: together they prove it."""


class NotAdmitted(CustodyError):
    """Weights that may not serve in an environment: never approved enough, retired, or not the
    version promoted there. :attr:`missing` says why, in the gate's words."""

    def __init__(self, environment: str, version_hash: str, missing: tuple[GateGap, ...]) -> None:
        self.environment = environment
        self.version_hash = version_hash
        self.missing = missing
        reasons = "; ".join(g.detail for g in missing) or "not admitted"
        super().__init__(f"{version_hash} may not serve in {environment}: {reasons}")
