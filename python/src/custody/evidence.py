"""Builders for custody's typed evidence, in the words of an ML pipeline.

Each function returns an :class:`~custody.entries.Entry` with the subject, links and body the
server requires for that type, so a pipeline writes ``client.evidence.register_model(...)``
rather than JSON. The server still checks every field; these builders only put them in the
right places. Links always point backwards along the chain: a training run names the dataset
versions it read, a model version the run that produced it, an inference the deployment that
served it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .entries import Entry, Link, rfc3339
from .hashing import ModelDigest

GOVERNANCE = "governance"
INFERENCE = "inference"


@dataclass(frozen=True)
class GateRule:
    """What a promotion to one target (an environment or stage) needs."""

    min_approvals: int = 1
    required_criteria: Sequence[str] = ()
    separation_of_duties: bool = False

    def to_json(self) -> dict[str, Any]:
        """The rule as the policy body takes it."""
        return {
            "min_approvals": self.min_approvals,
            "required_criteria": list(self.required_criteria),
            "separation_of_duties": self.separation_of_duties,
        }


@dataclass(frozen=True)
class Scoring:
    """How a deployment scores, so a decision can be replayed: the entry point
    (``package.module:function``, called with the recorded input) and what pins its
    environment (the lockfile's digest and where to fetch it, and/or an OCI image digest)."""

    entry_point: str
    lockfile_digest: str | None = None
    lockfile_uri: str | None = None
    image: str | None = None
    image_digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The scoring as the deployment body takes it."""
        out: dict[str, Any] = {"entry_point": self.entry_point}
        for key in ("lockfile_digest", "lockfile_uri", "image", "image_digest"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def _set(body: dict[str, Any], **values: Any) -> dict[str, Any]:
    body.update({k: v for k, v in values.items() if v is not None})
    return body


def dataset_version(
    *,
    name: str,
    version: str,
    digest: str,
    uri: str,
    legal_basis: str,
    files: Sequence[Mapping[str, Any]] | None = None,
    row_count: int | None = None,
    schema: Mapping[str, Any] | None = None,
    source: str | None = None,
    description: str | None = None,
) -> Entry:
    """A dataset version, identified by its content digest
    (:func:`custody.hashing.digest_dataset`)."""
    body = _set(
        {"name": name, "version": version, "uri": uri, "digest": digest},
        files=list(files) if files is not None else None,
        row_count=row_count,
        schema=dict(schema) if schema is not None else None,
        source=source,
        description=description,
        legal_basis=legal_basis,
    )
    return Entry("dataset_version.registered", "dataset_version", digest, body)


def training_run(
    *,
    run_id: str,
    datasets: Sequence[str],
    code_commit: str,
    environment: Mapping[str, Any],
    metrics: Mapping[str, float | int | str | bool],
    status: Literal["succeeded", "failed"] = "succeeded",
    parameters: Mapping[str, Any] | None = None,
    code_repo: str | None = None,
    started_at: str | None = None,
    ended_at: str | None = None,
) -> Entry:
    """A training run over dataset versions (their digests), with the environment it ran in
    (:func:`custody.hashing.environment_from_lockfile`)."""
    body = _set(
        {
            "code_commit": code_commit,
            "environment": dict(environment),
            "metrics": dict(metrics),
            "status": status,
        },
        parameters=dict(parameters) if parameters is not None else None,
        code_repo=code_repo,
        started_at=started_at,
        ended_at=ended_at,
    )
    links = [Link("dataset_version", d, "trained_on") for d in datasets]
    return Entry("training_run.recorded", "training_run", run_id, body, links)


def model_version(
    *,
    name: str,
    weights: ModelDigest,
    run_id: str,
    version: str | None = None,
    framework: str | None = None,
    format: str | None = None,
    registry: Mapping[str, str] | None = None,
) -> Entry:
    """A model version: the version hash and per-file manifest of its weights
    (:func:`custody.hashing.hash_model`), produced by a training run. ``registry`` says where
    the weights live, e.g. ``{"kind": "object_store", "uri": "s3://models/credit/3/"}``."""
    body = _set(
        {"name": name, "version_hash": weights.version_hash, "files": weights.manifest()},
        version=version,
        framework=framework,
        format=format,
        registry=dict(registry) if registry is not None else None,
    )
    link = Link("training_run", run_id, "produced_by")
    return Entry("model_version.registered", "model_version", weights.version_hash, body, [link])


def model_card(version_hash: str, card: Mapping[str, Any]) -> Entry:
    """A version of a model version's card (``card_version``, ``training_data``,
    ``evaluation``, ``intended_use``, ``limitations``, ...)."""
    return Entry("model_card.published", "model_version", version_hash, dict(card))


def approver_key(approver: str, public_key_pem: str) -> Entry:
    """Registers an approver's public key (PEM), written by a tenant admin."""
    return Entry("approver_key.registered", "approver", approver, {"public_key": public_key_pem})


def approval(version_hash: str, envelope: Mapping[str, Any]) -> Entry:
    """A signed approval: the DSSE envelope from :func:`custody.approvals.sign_approval`."""
    return Entry("approval.submitted", "model_version", version_hash, {}, payload=dict(envelope))


@dataclass(frozen=True)
class Policy:
    """The tenant's gate policy: a rule per target, and the clock skew allowed."""

    targets: Mapping[str, GateRule] = field(default_factory=dict)
    clock_skew_ms: int | None = None


def policy(p: Policy) -> Entry:
    """Sets the tenant's gate policy (written by a tenant admin)."""
    body = _set(
        {"targets": {t: r.to_json() for t, r in p.targets.items()}},
        clock_skew_ms=p.clock_skew_ms,
    )
    return Entry("policy.updated", "policy", "gates", body)


def _transition(
    kind: str,
    to: str,
    environment: str,
    authoriser: str,
    from_: str | None,
    change_ref: str | None,
    reason: str | None,
    related: Sequence[Link],
) -> Entry:
    body = _set(
        {"to": to, "environment": environment, "authoriser": authoriser},
        change_ref=change_ref,
    )
    if from_ is not None:
        body["from"] = from_
    payload = {"reason": reason} if reason is not None else None
    return Entry(f"{kind}.recorded", "model_version", to, body, related, payload=payload)


def promotion(
    version_hash: str,
    *,
    environment: str,
    authoriser: str,
    replaces: str | None = None,
    change_ref: str | None = None,
    reason: str | None = None,
) -> Entry:
    """Makes a model version the one approved to serve in an environment; the gate decides."""
    return _transition(
        "promotion", version_hash, environment, authoriser, replaces, change_ref, reason, ()
    )


def rollback(
    *,
    to: str,
    replaces: str,
    environment: str,
    authoriser: str,
    incident: str | None = None,
    change_ref: str | None = None,
    reason: str | None = None,
) -> Entry:
    """Returns an environment to a version that served there before."""
    related = [Link("incident", incident, "caused_by")] if incident else []
    return _transition(
        "rollback", to, environment, authoriser, replaces, change_ref, reason, related
    )


def deployment(
    deployment_id: str,
    *,
    environment: str,
    endpoint: str,
    version_hash: str,
    config_digest: str,
    replicas: int | None = None,
    scoring: Scoring | None = None,
) -> Entry:
    """Weights rolled out to an endpoint; ``scoring`` records how it scores, for replay."""
    body = _set(
        {
            "environment": environment,
            "endpoint": endpoint,
            "version_hash": version_hash,
            "config_digest": config_digest,
        },
        replicas=replicas,
        scoring=scoring.to_json() if scoring is not None else None,
    )
    return Entry("deployment.recorded", "deployment", deployment_id, body)


def incident(
    incident_id: str,
    *,
    status: Literal["opened", "updated", "closed"],
    severity: Literal["low", "medium", "high", "critical"] | None = None,
    category: str | None = None,
    resolution_code: str | None = None,
    about: Sequence[Link] = (),
) -> Entry:
    """An incident opened (``severity`` required), updated or closed."""
    body = _set({}, severity=severity, category=category, resolution_code=resolution_code)
    return Entry(f"incident.{status}", "incident", incident_id, body, about)


def retirement(version_hash: str, *, authoriser: str, reason_code: str | None = None) -> Entry:
    """A model version that may never serve again."""
    body = _set({"authoriser": authoriser}, reason_code=reason_code)
    return Entry("retirement.recorded", "model_version", version_hash, body)


def inference(
    request_id: str,
    *,
    version_hash: str,
    deployment_id: str,
    requested_at: str,
    decision: str | int | float | bool,
    latency_ms: float,
    input: Any = None,
    output: Any = None,
    score: float | None = None,
    model_name: str | None = None,
) -> Entry:
    """One served prediction, stamped with the version hash serving it and the time of the
    request (``requested_at``, RFC 3339). Inputs and outputs are personal data: they go in the
    payload, under a salted commitment."""
    body = _set(
        {"version_hash": version_hash, "latency_ms": latency_ms, "decision": decision},
        score=score,
        model_name=model_name,
    )
    payload = None
    if input is not None or output is not None:
        payload = {"input": input, "output": output}
    return Entry(
        "inference.recorded",
        "inference",
        request_id,
        body,
        [Link("deployment", deployment_id, "served_by")],
        payload=payload,
        client_time=requested_at,
    )


__all__ = [
    "GOVERNANCE",
    "INFERENCE",
    "GateRule",
    "Policy",
    "Scoring",
    "approval",
    "approver_key",
    "dataset_version",
    "deployment",
    "incident",
    "inference",
    "model_card",
    "model_version",
    "policy",
    "promotion",
    "retirement",
    "rfc3339",
    "rollback",
    "training_run",
]
