"""The types of every request and answer of the custody HTTP API.

Generated from ``docs/openapi.json`` by ``python/scripts/gen_models.py``: do not edit; change
the server's API and regenerate. Answers keep fields a newer server adds (``extra="allow"``).
"""

# ruff: noqa: E501 - descriptions are the server's, line for line

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    """Base of every API type: fields by their wire names, unknown fields kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


PayloadStatus = Literal["none", "present", "erased", "withheld"]
"""Payload state of an entry."""


class LogCheckpoint(ApiModel):
    """The signed checkpoint every proof of one log in an answer is against."""

    checkpoint: str = Field(description="The C2SP signed note, byte-exact.")
    log: str = Field(description="`governance` or `inference`.")
    size: int = Field(description="Tree size.")
    verifier_key: str = Field(
        description="The log's verifier key (pin your own copy; this one is for convenience)."
    )


class ProvenEntry(ApiModel):
    """One entry an answer rests on, with its proof."""

    envelope: Any = Field(description="The envelope; its RFC 8785 bytes are the leaf data.")
    index: int = Field(description="Index in that log.")
    leaf_hash: str = Field(description="`SHA-256(0x00 || jcs(envelope))`, lowercase hex.")
    log: str = Field(description="`governance` or `inference`.")
    proof: list[str] = Field(
        description="Inclusion proof (standard base64, leaf's sibling first) in the tree of the answer's\ncheckpoint for this log."
    )
    role: str = Field(
        description="Its role in the answer, e.g. `inference`, `deployment`, `model_version`, `approval`."
    )
    payload: Any | None = Field(
        default=None,
        description="Payload and salt, in evidence packs only, when present and not erased.",
    )
    salt: str | None = Field(
        default=None,
        description="Standard base64 of the 32-byte salt that opens `payload_commitment`.",
    )


class Proven(ApiModel):
    """Entries with proofs, shared by every answer."""

    checkpoints: list[LogCheckpoint] = Field(
        description="One checkpoint per log the entries come from."
    )
    entries: list[ProvenEntry] = Field(description="The entries.")


class GateGap(ApiModel):
    """One thing a gate found missing."""

    code: str = Field(
        description="Machine-readable reason, e.g. `approvals`, `criterion`, `rejected`,\n`separation_of_duties`, `retired`, `not_serving`."
    )
    detail: str = Field(description="What is missing.")
    entries: list[str] | None = Field(
        default=None, description="Ids of the entries the reason is about."
    )


class GateRuleView(ApiModel):
    """The rule a gate applied."""

    min_approvals: int = Field(description="Distinct approvers required.")
    required_criteria: list[str] = Field(description="Criteria that must have passed.")
    separation_of_duties: bool = Field(description="Whether the trainer may not approve.")


class AdmitAnswer(Proven):
    """`GET /v1/tenants/{tenant}/admit`: may these weights serve in this environment now?"""

    admitted: bool = Field(description="True when they may serve.")
    approvers: list[str] = Field(description="Distinct approvers whose approvals count.")
    environment: str = Field(description="The environment.")
    missing: list[GateGap] = Field(description="Why not, when not admitted.")
    rule: GateRuleView = Field(description="The rule in force.")
    version_hash: str = Field(description="The weights asked about.")


class SecurityNotice(ApiModel):
    """A serving mismatch custody recorded while ingesting inferences."""

    claimed: str = Field(description="What the inference claims served it.")
    request_id: str = Field(description="The request id of the inference.")
    security_id: str = Field(description="Its entry id.")
    security_index: int = Field(
        description="Index of the `security.serving_mismatch` entry in the governance log."
    )
    expected: str | None = Field(
        default=None, description="What the ledger says served in that environment then."
    )


class AppendResult(ApiModel):
    """Where one submitted entry landed."""

    checkpoint_size: int = Field(
        description="Size of the signed checkpoint that already covers this entry: its inclusion proof is\navailable at once."
    )
    id: str = Field(description="Entry id.")
    index: int = Field(description="Index in the log.")
    leaf_hash: str = Field(description="Leaf hash, lowercase hex.")
    existing: bool | None = Field(
        default=None,
        description="True when this id was already logged with the same content (an idempotent retry).",
    )
    security: SecurityNotice | None = Field(default=None)


class AppendResults(ApiModel):
    """Result of appending a JSON array or an NDJSON stream."""

    checkpoint_size: int = Field(description="Size of the signed checkpoint that covers them all.")
    results: list[AppendResult] = Field(description="One result per submitted entry, in order.")


class ApproverKeyView(ApiModel):
    """A registered approver key."""

    approver: str = Field(description="Approver principal id.")
    entry: str = Field(description="Entry id of its registration.")
    fingerprint: str = Field(description="`sha256:` of the SPKI DER.")
    public_key: str = Field(description="SPKI PEM.")


class ConsistencyProof(ApiModel):
    """RFC 9162 consistency proof."""

    from_: int = Field(alias="from", description="Older tree size.")
    hashes: list[str] = Field(description="Proof hashes, standard base64.")
    to: int = Field(description="Newer tree size.")


class CreatePrincipal(ApiModel):
    """Body of `POST /v1/tenants/{tenant}/principals`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: str = Field(description="`user` or `service`.")
    name: str = Field(
        description="Display name. Personal data: kept in the principal table, never in a log."
    )
    roles: list[str] = Field(description="Any of `admin`, `writer`, `approver`, `auditor`.")
    expires_in_days: int | None = Field(
        default=None, description="Lifetime of the first token, 1-3650 days (default 90)."
    )


class CreateTenant(ApiModel):
    """Body of `POST /v1/tenants`."""

    name: str = Field(description="Tenant name: `[a-z0-9][a-z0-9-]{0,62}`.")


class PrincipalInfo(ApiModel):
    """A principal."""

    created: str = Field(description="Creation time, RFC 3339.")
    id: str = Field(description="Opaque id: the `actor.id` of everything it writes.")
    kind: str = Field(description="`user` or `service`.")
    name: str = Field(description="Display name.")
    roles: list[str] = Field(description="Roles.")
    tenant: str | None = Field(
        default=None, description="Its tenant; absent for a server administrator."
    )


class TokenInfo(ApiModel):
    """A token, never with its secret."""

    created: str = Field(description="Issue time, RFC 3339.")
    expires: str = Field(description="Expiry, RFC 3339.")
    id: str = Field(description="Public id.")
    principal: str = Field(description="Whose token.")
    revoked: str | None = Field(default=None, description="Revocation time, RFC 3339, if revoked.")


class IssuedToken(ApiModel):
    """A newly issued token: the only response that carries its secret."""

    info: TokenInfo = Field(description="The token as it will be listed.")
    token: str = Field(
        description="The bearer token, `cst_<id>_<secret>`: shown once, store it now."
    )


class CreatedPrincipal(ApiModel):
    """Answer to creating a principal."""

    principal: PrincipalInfo = Field(description="The principal.")
    token: IssuedToken = Field(description="Its first token.")


class EntryRecord(ApiModel):
    """One entry as read."""

    envelope: dict[str, Any] = Field(description="The envelope.")
    index: int = Field(description="Index in the log.")
    leaf_hash: str = Field(
        description="Leaf hash, lowercase hex: `SHA-256(0x00 || JCS(envelope))`."
    )
    payload_status: PayloadStatus = Field(description="Whether a payload exists.")
    payload: dict[str, Any] | None = Field(default=None, description="The payload, when present.")
    salt: str | None = Field(
        default=None,
        description="The payload's salt, lowercase hex, so anyone can re-check the commitment.",
    )


class EntryList(ApiModel):
    """A page of entries."""

    checkpoint_size: int = Field(description="The checkpoint size this listing is consistent with.")
    entries: list[EntryRecord] = Field(description="Matching entries in index order.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; absent on the last page."
    )


class EntrySubmission(ApiModel):
    """An entry as submitted. The server adds `v`, `tenant`, `log`, `time`, a missing `id` and the
    payload commitment.
    """

    subject: dict[str, Any] = Field(description="`{kind, id}` of what the entry is about.")
    type: str = Field(
        description="Dotted type: a custody type such as `model_version.registered` or `x.<your>.<type>`."
    )
    actor: dict[str, Any] | None = Field(
        default=None,
        description="`{kind: user|service|system, id}`: the caller, the only actor accepted; custody fills it\nin when it is absent.",
    )
    body: dict[str, Any] | None = Field(
        default=None, description="Type-specific, non-personal data."
    )
    client_time: str | None = Field(
        default=None, description="RFC 3339 time reported by the client."
    )
    context: dict[str, Any] | None = Field(
        default=None, description="`{purpose, auth_method, request_id, session_id}`."
    )
    id: str | None = Field(
        default=None,
        description="UUIDv7 for idempotent retries; assigned by the server when absent.",
    )
    payload: dict[str, Any] | None = Field(
        default=None,
        description="Personal or sensitive data: stored beside the leaf, committed to with a fresh salt.",
    )
    related: list[dict[str, Any]] | None = Field(
        default=None, description="`[{kind, id, rel}]` links to other evidence."
    )


class EraseRequest(ApiModel):
    """Body of `POST /v1/tenants/{tenant}/erasures`: a data-subject request. Its `Debug` never
    shows the data subject.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    data_subject: str = Field(
        description="The data subject's identifier as payloads hold it (an e-mail, a customer number):\nevery payload with this exact string value anywhere in it is erased. It is matched,\nnever recorded."
    )
    legal_basis: str = Field(
        description="Why the erasure is lawful, recorded with each erasure, e.g. `GDPR Art. 17(1)(a)`."
    )
    dry_run: bool | None = Field(
        default=None, description="List what would be erased without erasing it."
    )
    reference: str | None = Field(
        default=None,
        description="The request's reference (a ticket number), recorded with each erasure.",
    )


class ErasedEntry(ApiModel):
    """One erased payload."""

    id: str = Field(description="Its id.")
    index: int = Field(description="Its index.")
    log: str = Field(description="Log of the erased entry.")
    type: str = Field(description="Its type.")
    record_index: int | None = Field(
        default=None,
        description="Index of its `entry.payload_erased` record in the same log (absent in a dry run).",
    )


class ErasureReport(ApiModel):
    """What an erasure did."""

    dry_run: bool = Field(description="Whether this was only a listing.")
    erased: list[ErasedEntry] = Field(description="The payloads erased (or that would be).")


class EvidenceLink(ApiModel):
    """A link the answer followed between two of its entries."""

    from_: str = Field(alias="from", description="Entry id the link starts at.")
    rel: str = Field(
        description="Relation, e.g. `served_by`, `computed_by`, `produced_by`, `trained_on`, `about`."
    )
    to: str = Field(description="Entry id it points to.")


class EvidencePack(Proven):
    """An evidence pack: self-contained, verifiable offline."""

    approver_keys: list[ApproverKeyView] = Field(
        description="Approver public keys (SPKI PEM) by fingerprint, for checking approval envelopes."
    )
    format: int = Field(description="Pack format version (1).")
    links: list[EvidenceLink] = Field(description="Links between the entries.")
    scope: str = Field(description="What the pack is about, e.g. `model sha256:...`.")
    tenant: str = Field(description="Tenant.")
    truncated: bool = Field(description="True when the pack hit its size limit.")


class ExportedLeaf(ApiModel):
    """One line of `GET .../export` (NDJSON): an entry's leaf exactly as stored, so a verifier
    re-hashes the stored bytes rather than a re-serialisation of them.
    """

    index: int = Field(description="Index in the log.")
    leaf_data: str = Field(
        description="The leaf data (the canonical envelope bytes), standard base64."
    )
    recorded_leaf_hash: str = Field(
        description="The leaf hash recorded when the entry was written, lowercase hex. Authenticated only\nif all recorded hashes together give a signed root; used to point at a bad entry."
    )


class Health(ApiModel):
    """Liveness answer."""

    status: str = Field(description="Always `ok` when served.")


class ServingChangeView(ApiModel):
    """One change of what serves where."""

    entry: str = Field(description="Its entry id.")
    environment: str = Field(description="Environment.")
    kind: str = Field(description="`promotion`, `rollback` or `retirement`.")
    time: str = Field(description="When custody recorded it (RFC 3339).")
    from_: str | None = Field(default=None, alias="from", description="Version before.")
    to: str | None = Field(default=None, description="Version after.")


class HistoryAnswer(Proven):
    """`GET /v1/tenants/{tenant}/models/{version_hash}/history`."""

    changes: list[ServingChangeView] = Field(
        description="Promotions, rollbacks and retirements involving it, oldest first."
    )
    model_name: str = Field(description="Its model name.")
    retired: bool = Field(description="Whether it is retired.")
    serving_in: list[str] = Field(description="Environments where it serves now.")
    version_hash: str = Field(description="The model version.")


class InclusionProof(ApiModel):
    """RFC 9162 inclusion proof."""

    hashes: list[str] = Field(description="Audit path, standard base64, the leaf's sibling first.")
    index: int = Field(description="Leaf index.")
    leaf_hash: str = Field(description="Leaf hash, lowercase hex.")
    size: int = Field(description="Tree size.")


class IssueToken(ApiModel):
    """Body of `POST .../principals/{principal}/tokens`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    expires_in_days: int | None = Field(
        default=None, description="Lifetime, 1-3650 days (default 90)."
    )


class KeyRotation(ApiModel):
    """Answer of `POST .../rotate-key`."""

    index: int = Field(
        description="Index of the `key.rotated` entry announcing the change, signed with the old key."
    )
    log: str = Field(description="The log.")
    new_verifier_key: str = Field(
        description="The verifier key from the next checkpoint on: pin this one."
    )
    old_verifier_key: str = Field(description="The verifier key until then.")


class LogAuditReport(ApiModel):
    """Deep verification of one log."""

    checkpoints: int = Field(
        description="Stored checkpoints checked (signature, and root equal to the tree at their size)."
    )
    entries: int = Field(
        description="Entries whose leaf hash was recomputed from the stored envelope."
    )
    log: str = Field(description="`governance`, `inference` or `access`.")
    nodes: int = Field(description="Stored subtree hashes recomputed from the leaves.")
    payloads: int = Field(description="Payload commitments reopened.")
    problem_count: int = Field(description="Discrepancies found.")
    problems: list[str] = Field(description="The first 100 discrepancies, described.")


class LogDescription(ApiModel):
    """A log: where it is, what key signs it, how big it is."""

    name: str = Field(description="`governance`, `inference` or `access`.")
    origin: str = Field(
        description="`<server-name>/<tenant>/<log>`: first line of its checkpoints."
    )
    root: str = Field(description="Root hash of the latest checkpoint, standard base64.")
    size: int = Field(description="Entries covered by the latest checkpoint.")
    verifier_key: str = Field(
        description="The C2SP verifier key to pin: `<origin>+<key id>+<base64 key>`."
    )


class LogList(ApiModel):
    """Listing of a tenant's logs."""

    logs: list[LogDescription] = Field(description="The logs.")


class PrincipalList(ApiModel):
    """A tenant's principals."""

    principals: list[PrincipalInfo] = Field(description="By id.")


class ProblemField(ApiModel):
    """One invalid field of a request."""

    field: str = Field(description="Path of the field, e.g. `actor.kind` or `[3].body.rows`.")
    message: str = Field(description="What is wrong and what is accepted.")


class RecordedRefusal(ApiModel):
    """The ledger entry that records a refused write."""

    id: str = Field(description="Entry id.")
    index: int = Field(description="Index in the governance log.")
    leaf_hash: str = Field(description="Leaf hash, lowercase hex.")


class Problem(ApiModel):
    """An RFC 9457 problem: every error custody returns."""

    detail: str = Field(description="What went wrong in this request and how to fix it.")
    status: int = Field(description="HTTP status code.")
    title: str = Field(description="Short summary of the kind of problem.")
    type: str = Field(
        description="URI naming the kind of problem, e.g. `https://custody.dev/problems/validation`."
    )
    errors: list[ProblemField] | None = Field(
        default=None, description="For validation problems: each invalid field."
    )
    missing: list[GateGap] | None = Field(
        default=None,
        description="For gate refusals: exactly what the promotion, rollback or deployment lacks.",
    )
    refusal: RecordedRefusal | None = Field(default=None)


class ReconcileReport(ApiModel):
    """Answer of `POST /v1/tenants/{tenant}/reconcile`."""

    logs: list[LogAuditReport] = Field(description="One report per log.")
    ok: bool = Field(description="True when every log verified without a discrepancy.")


class RetentionApply(ApiModel):
    """Body of `POST /v1/tenants/{tenant}/retention/apply`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    legal_basis: str = Field(
        description="Why the erasure is lawful, e.g. `GDPR Art. 5(1)(e) storage limitation`."
    )
    dry_run: bool | None = Field(
        default=None, description="List what would be erased without erasing it."
    )


class ServedAnswer(Proven):
    """`GET /v1/tenants/{tenant}/served`: what served in an environment at a time."""

    at: str = Field(description="The time asked about (RFC 3339).")
    environment: str = Field(description="Environment.")
    change: str | None = Field(
        default=None, description="Id of the promotion, rollback or retirement in force."
    )
    model_name: str | None = Field(default=None, description="Model name of that version.")
    version_hash: str | None = Field(
        default=None, description="Version hash serving then; absent when nothing was admitted."
    )


class Tenant(ApiModel):
    """A tenant and its logs."""

    logs: list[LogDescription] = Field(description="Its logs.")
    name: str = Field(description="Tenant name.")


class TenantList(ApiModel):
    """Listing of tenants."""

    tenants: list[str] = Field(description="Tenant names.")


class TokenList(ApiModel):
    """A principal's tokens."""

    tokens: list[TokenInfo] = Field(description="Newest first.")


class TraceAnswer(Proven):
    """`GET /v1/tenants/{tenant}/trace`: the chain behind (or ahead of) one entry."""

    direction: str = Field(
        description="`backward` (what it rests on) or `forward` (what rests on it)."
    )
    links: list[EvidenceLink] = Field(description="Links followed.")
    start: str = Field(description="Entry id the trace started at.")
    truncated: bool = Field(
        description="True when the walk stopped at its limit before finding everything."
    )


class WhoAmI(ApiModel):
    """Who the presented token belongs to."""

    kind: str = Field(description="`user` or `service`.")
    principal: str = Field(description="Principal id.")
    roles: list[str] = Field(description="Roles.")
    token: str = Field(description="The token's public id.")
    tenant: str | None = Field(
        default=None, description="Its tenant; absent for a server administrator."
    )


class WitnessAnswer(ApiModel):
    """Answer of `POST .../witness`: proof that the log still extends the checkpoint the caller
    holds.
    """

    checkpoint: str = Field(description="The latest signed checkpoint, byte-exact C2SP.")
    consistency: list[str] = Field(
        description="RFC 9162 consistency proof from `old_size` to `new_size` (standard base64)."
    )
    new_size: int = Field(description="Size of the log's latest checkpoint.")
    old_size: int = Field(description="Size of the caller's checkpoint.")
