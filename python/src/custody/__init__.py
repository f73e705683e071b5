"""custody for Python: record ML governance evidence from pipelines and serving code, and get
back only answers that carry and pass their proofs.

>>> import custody
>>> client = custody.Client(tenant="acme")          # CUSTODY_SERVER, CUSTODY_TOKEN, ...
>>> weights = custody.hash_model("model/")          # the same version hash as `custody model hash`
>>> client.serving.admit("production", "model/")    # raises NotAdmitted unless approved

See :class:`custody.Client` (and :class:`custody.AsyncClient`, the same shape), the builders in
:mod:`custody.evidence`, and the independent verifier in :mod:`custody.verify`.
"""

from . import evidence
from .aio import AsyncClient
from .client import Client, StreamSummary, __version__
from .entries import Entry, Link, uuid7
from .errors import (
    BadRequest,
    ConfigurationError,
    Conflict,
    CustodyError,
    FieldError,
    Forbidden,
    ForkDetected,
    GateRefused,
    NotAdmitted,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    VerificationError,
)
from .hashing import ModelDigest, hash_model
from .recorder import InferenceRecorder, RecorderStats

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "ConfigurationError",
    "Conflict",
    "CustodyError",
    "Entry",
    "FieldError",
    "Forbidden",
    "ForkDetected",
    "GateRefused",
    "InferenceRecorder",
    "Link",
    "ModelDigest",
    "NotAdmitted",
    "NotFound",
    "PayloadTooLarge",
    "ProblemError",
    "RateLimited",
    "RecorderStats",
    "ServerError",
    "StreamSummary",
    "TransportError",
    "Unauthorized",
    "VerificationError",
    "__version__",
    "evidence",
    "hash_model",
    "uuid7",
]
