"""Replaying a recorded decision: from one prediction's request id back through the verified
chain to the dataset versions, then the same weights, the same locked environment and the same
entry point run again on the recorded input, and the result compared with the recorded output.

A replay trusts nothing it fetches until a recorded digest vouches for it:

1. the chain (inference -> deployment -> model version -> training run -> dataset versions) comes
   from a trace answer whose proofs this client checked, and every link in it must be present;
2. the inference's input and output are read from its payload, which needs a stated purpose and
   the auditor role, and which the server opens against the entry's commitment;
3. the weights are fetched from the model version's recorded ``registry.uri`` (a local path,
   ``file://`` or ``s3://``) and must hash to its version hash before anything runs;
4. the lockfile (the deployment's ``scoring.lockfile_uri`` or a local copy) must have the
   recorded ``scoring.lockfile_digest``, and is installed into a fresh virtual environment with
   ``pip install --require-hashes``, so every package is the one locked;
5. the entry point runs in that environment in a child process, with the weights directory
   first on ``sys.path`` (code shipped with the weights is covered by the version hash), as
   ``function(weights_dir, input)``; its JSON result is compared with the recorded output.

When the deployment pins only an OCI image, nothing is run here: the exact ``docker run
image@sha256:...`` command is printed instead, over the verified weights and recorded input.

``python -m custody replay --request-id ID`` (also installed as ``custody-replay``) exits 0 when
the replayed output matches, 1 when it does not (both values printed), 2 for a usage error, 3
when the replay is refused (a missing link, weights or a lockfile whose digest differs from the
record, a payload that cannot be read, an environment that cannot be built) with one line
saying what and how to fix it, and 4 when only an image is pinned and the ``docker run``
command was printed instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn
from urllib.parse import unquote, urlparse

from . import models
from .client import Client
from .errors import (
    ConfigurationError,
    CustodyError,
    Forbidden,
    NotFound,
    ProblemError,
    TransportError,
    VerificationError,
)
from .hashing import SINGLE_FILE_PATH, FileDigest, digest_file, hash_model, requirement_lines

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "EXIT_IMAGE_ONLY",
    "EXIT_MATCH",
    "EXIT_MISMATCH",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "ChainLink",
    "Decision",
    "Recorded",
    "ReplayError",
    "ReplayResult",
    "ScoringPin",
    "build_environment",
    "check_lockfile",
    "console",
    "fetch_lockfile",
    "fetch_weights",
    "main",
    "read_recorded",
    "replay",
    "rerun",
    "run_entry_point",
    "same",
    "trace_decision",
]

#: The replayed output equals the recorded one.
EXIT_MATCH = 0
#: The replayed output differs from the recorded one.
EXIT_MISMATCH = 1
#: The command line was wrong, or a setting is missing.
EXIT_USAGE = 2
#: The replay was refused: the chain, the weights, the lockfile or the payload is not as recorded.
EXIT_REFUSED = 3
#: Only an OCI image pins the environment: the ``docker run`` command was printed instead.
EXIT_IMAGE_ONLY = 4

#: Seconds ``pip install`` may take to build the environment.
PIP_TIMEOUT = 900.0
#: Default seconds the entry point may take on one input.
RUN_TIMEOUT = 600.0

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_ENTRY_POINT_RE = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*:{_IDENTIFIER}")

#: The program run in the replay environment (and in the image): reads the recorded input as
#: JSON on stdin, calls ``function(weights_dir, input)`` with the weights directory first on
#: ``sys.path``, and writes the result as JSON on stdout. Anything the entry point prints goes
#: to stderr, so it cannot be mistaken for the result.
RUNNER = '''\
"""Runs a scoring entry point on one input:
python -I -B run_entry_point.py WEIGHTS_DIR MODULE:FUNCTION < input.json
reads the input as JSON on stdin and writes function(WEIGHTS_DIR, input) as JSON on stdout."""
import importlib
import json
import sys


def main() -> int:
    weights_dir, entry_point = sys.argv[1], sys.argv[2]
    sys.dont_write_bytecode = True
    result_out = sys.stdout
    sys.stdout = sys.stderr
    sys.path.insert(0, weights_dir)
    record = json.load(sys.stdin)
    module_name, function_name = entry_point.split(":", 1)
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(weights_dir, record)
    try:
        text = json.dumps(result, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        print(f"{entry_point} returned a value that is not JSON: {e}", file=sys.stderr)
        return 3
    result_out.write(text)
    result_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

#: Requirements-file options that would pull in something the lockfile's digest does not pin.
_UNPINNED_OPTIONS = ("-r", "--requirement", "-c", "--constraint", "-e", "--editable")
#: Lockfile names pip cannot install from with hashes.
_OTHER_LOCK_FORMATS = ("uv.lock", "poetry.lock", "pipfile.lock", "pdm.lock", "pylock.toml")


class ReplayError(CustodyError):
    """A replay refused: the recorded chain, weights, lockfile, payload or environment is not
    what a faithful re-run needs. ``what`` names the part (``chain``, ``payload``, ``weights``,
    ``lockfile``, ``environment``, ``entry_point``, ``image``); the message says what differs
    and how to fix it. Nothing was run when the weights or the lockfile were refused."""

    def __init__(self, what: str, message: str) -> None:
        self.what = what
        self.message = message
        super().__init__(f"{what}: {message}")


class ChainLink(NamedTuple):
    """One entry of the chain behind a decision, as printed: its role, type, subject id and
    where it is logged (``governance#12``)."""

    role: str
    type: str
    subject: str
    position: str


@dataclass(frozen=True)
class ScoringPin:
    """How the deployment recorded that it scores (its ``body.scoring``): the entry point and
    what pins its environment."""

    entry_point: str
    lockfile_digest: str | None = None
    lockfile_uri: str | None = None
    image: str | None = None
    image_digest: str | None = None


@dataclass(frozen=True)
class Decision:
    """A recorded decision and everything it rests on, read from a verified trace: enough to
    fetch the weights and rebuild the environment, but not yet the personal data (see
    :func:`read_recorded`)."""

    request_id: str
    chain: tuple[ChainLink, ...]
    inference_index: int
    inference_leaf_hash: str
    deployment_id: str
    model_name: str | None
    version_hash: str
    files: tuple[FileDigest, ...]
    weights_uri: str
    training_run: str
    datasets: tuple[str, ...]
    scoring: ScoringPin


@dataclass(frozen=True)
class Recorded:
    """The input the model was given and the output it returned, from the inference payload."""

    input: Any
    output: Any


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of a replay. ``match`` says whether ``replayed_output`` equals
    ``recorded_output``; when only an image pins the environment, nothing was run
    (``replayed_output`` is None, ``match`` False) and ``docker_command`` is the command that
    would replay it. ``work_dir`` is kept (and named here) with ``keep_env`` or a docker
    command, since that command reads from it."""

    request_id: str
    chain: tuple[ChainLink, ...]
    version_hash: str
    datasets: tuple[str, ...]
    recorded_output: Any
    replayed_output: Any
    match: bool
    docker_command: str | None = None
    entry_point: str = ""
    lockfile_digest: str | None = None
    work_dir: str | None = None
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object (the chain as objects), for ``--json``."""
        doc = asdict(self)
        doc["chain"] = [link._asdict() for link in self.chain]
        doc["datasets"] = list(self.datasets)
        doc["notes"] = list(self.notes)
        return doc


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    """The default progress reporter: says nothing."""


# ----- 1. the chain


def _envelope(entry: models.ProvenEntry) -> dict[str, Any]:
    envelope = entry.envelope
    if not isinstance(envelope, dict):
        raise ReplayError("chain", f"{entry.log}#{entry.index} is not an entry object")
    return envelope


def _subject(envelope: Mapping[str, Any]) -> str:
    subject = envelope.get("subject") or {}
    return str(subject.get("id", ""))


def _body(envelope: Mapping[str, Any]) -> dict[str, Any]:
    body = envelope.get("body")
    return body if isinstance(body, dict) else {}


def _links(envelope: Mapping[str, Any], kind: str, rel: str) -> list[str]:
    """The ids of ``envelope``'s related links of ``kind`` with relation ``rel``, in order."""
    return [
        str(link.get("id", ""))
        for link in envelope.get("related") or []
        if isinstance(link, dict) and link.get("kind") == kind and link.get("rel") == rel
    ]


def _chain_link(entry: models.ProvenEntry) -> ChainLink:
    envelope = _envelope(entry)
    return ChainLink(
        entry.role, str(envelope.get("type", "")), _subject(envelope), f"{entry.log}#{entry.index}"
    )


def _missing(what: str, trace: models.TraceAnswer) -> NoReturn:
    hint = (
        " (the trace stopped at its limit: the chain is too large to follow here)"
        if trace.truncated
        else ""
    )
    raise ReplayError("chain", f"{what}{hint}; record it, then replay again")


def _scoring_pin(deployment_id: str, body: Mapping[str, Any]) -> ScoringPin:
    scoring = body.get("scoring")
    if not isinstance(scoring, dict) or not scoring.get("entry_point"):
        raise ReplayError(
            "chain",
            f"deployment {deployment_id} records no scoring (entry point and lockfile or image "
            "digest), so there is nothing to re-run; record the deployment with "
            "scoring=Scoring(entry_point=..., lockfile_digest=...)",
        )

    def text(key: str) -> str | None:
        value = scoring.get(key)
        return str(value) if value is not None else None

    return ScoringPin(
        entry_point=str(scoring["entry_point"]),
        lockfile_digest=text("lockfile_digest"),
        lockfile_uri=text("lockfile_uri"),
        image=text("image"),
        image_digest=text("image_digest"),
    )


def _manifest(version_hash: str, body: Mapping[str, Any]) -> tuple[FileDigest, ...]:
    files = body.get("files")
    if not isinstance(files, list) or not files:
        raise ReplayError(
            "chain", f"model version {version_hash} records no files manifest; re-register it"
        )
    out: list[FileDigest] = []
    for item in files:
        if not isinstance(item, dict):
            raise ReplayError(
                "chain", f"model version {version_hash}: a manifest item is no object"
            )
        out.append(
            FileDigest(str(item.get("path")), str(item.get("digest")), int(item.get("size", 0)))
        )
    return tuple(out)


def trace_decision(client: Client, request_id: str) -> Decision:
    """The verified chain behind the decision ``request_id``: its inference, the deployment that
    served it (and how that deployment scores), the model version (weights location, version
    hash and manifest), the training run and the dataset versions it read. Refuses, naming the
    missing link, when any of them is absent or they disagree about the weights."""
    try:
        trace = client.audit.trace(request_id=request_id)
    except NotFound as e:
        raise ReplayError(
            "chain", f"no inference is recorded with request id {request_id!r} ({e.detail})"
        ) from e
    entries = list(trace.entries)

    def find(type_: str, subject: str) -> list[models.ProvenEntry]:
        return [
            e
            for e in entries
            if _envelope(e).get("type") == type_ and _subject(_envelope(e)) == subject
        ]

    inferences = find("inference.recorded", request_id)
    if not inferences:
        _missing(f"the trace holds no inference with request id {request_id!r}", trace)
    inference = inferences[-1]
    inf_env = _envelope(inference)
    version_hash = str(_body(inf_env).get("version_hash", ""))
    deployment_ids = _links(inf_env, "deployment", "served_by")
    if not deployment_ids:
        _missing(f"inference {request_id} names no deployment that served it (served_by)", trace)
    deployment_id = deployment_ids[0]
    deployments = find("deployment.recorded", deployment_id)
    if not deployments:
        _missing(f"deployment {deployment_id}, which served {request_id}, is not recorded", trace)
    serving = [d for d in deployments if _body(_envelope(d)).get("version_hash") == version_hash]
    if not serving:
        recorded = _body(_envelope(deployments[-1])).get("version_hash")
        raise ReplayError(
            "chain",
            f"inference {request_id} claims weights {version_hash}, but deployment "
            f"{deployment_id} records {recorded}: the decision was not served by the weights the "
            "deployment rolled out, so it cannot be replayed faithfully",
        )
    deployment = max(serving, key=lambda d: d.index)
    scoring = _scoring_pin(deployment_id, _body(_envelope(deployment)))

    registrations = find("model_version.registered", version_hash)
    if not registrations:
        _missing(f"model version {version_hash} is not registered", trace)
    model = registrations[0]
    model_env = _envelope(model)
    model_body = _body(model_env)
    registry = model_body.get("registry")
    weights_uri = registry.get("uri") if isinstance(registry, dict) else None
    if not weights_uri:
        raise ReplayError(
            "chain",
            f"model version {version_hash} records no registry.uri, so its weights cannot be "
            "fetched; register it with registry={'kind': 'object_store', 'uri': ...}",
        )
    files = _manifest(version_hash, model_body)

    runs = _links(model_env, "training_run", "produced_by")
    if not runs:
        _missing(f"model version {version_hash} names no training run (produced_by)", trace)
    run_entries = find("training_run.recorded", runs[0])
    if not run_entries:
        _missing(f"training run {runs[0]}, which produced {version_hash}, is not recorded", trace)
    run = run_entries[-1]
    datasets = _links(_envelope(run), "dataset_version", "trained_on")
    if not datasets:
        _missing(f"training run {runs[0]} names no dataset versions (trained_on)", trace)
    dataset_entries: list[models.ProvenEntry] = []
    for digest in datasets:
        found = find("dataset_version.registered", digest)
        if not found:
            _missing(
                f"dataset version {digest}, read by training run {runs[0]}, is not registered",
                trace,
            )
        dataset_entries.append(found[0])

    chain = tuple(_chain_link(e) for e in (inference, deployment, model, run, *dataset_entries))
    name = model_body.get("name")
    return Decision(
        request_id=request_id,
        chain=chain,
        inference_index=inference.index,
        inference_leaf_hash=inference.leaf_hash,
        deployment_id=deployment_id,
        model_name=str(name) if name is not None else None,
        version_hash=version_hash,
        files=files,
        weights_uri=str(weights_uri),
        training_run=runs[0],
        datasets=tuple(datasets),
        scoring=scoring,
    )


# ----- 2. the recorded input and output


def read_recorded(client: Client, decision: Decision) -> Recorded:
    """The decision's recorded input and output, from its inference payload (opened by the
    server against the entry's commitment, and the entry proven again here). Needs a client
    with a stated purpose and the auditor role; refuses, saying why, when the payload is
    withheld, erased or was never recorded. Every such read is itself recorded in the tenant's
    access log, with the purpose."""
    if not client.settings.purpose:
        raise ReplayError(
            "payload",
            "reading the recorded input is an access to personal data and needs a stated "
            "purpose: set CUSTODY_PURPOSE (or pass --purpose / purpose=)",
        )
    try:
        record = client.logs.get("inference", decision.inference_index)
    except Forbidden as e:
        raise ReplayError(
            "payload",
            f"this token may not read inference#{decision.inference_index} ({e.detail}); use a "
            "token with the auditor role",
        ) from e
    if record.leaf_hash != decision.inference_leaf_hash:
        raise ReplayError(
            "payload",
            f"inference#{decision.inference_index} read back as a different entry than the trace "
            "proved; the server's answers disagree, so nothing read from it is replayed",
        )
    status = record.payload_status
    if status == "withheld":
        raise ReplayError(
            "payload",
            f"the payload of inference {decision.request_id} was withheld because the request "
            "stated no purpose: set CUSTODY_PURPOSE (or pass --purpose / purpose=)",
        )
    if status == "erased":
        raise ReplayError(
            "payload",
            f"the payload of inference {decision.request_id} was erased, so its input no longer "
            "exists anywhere custody can read: this decision cannot be replayed",
        )
    payload = record.payload
    if status != "present" or payload is None:
        raise ReplayError(
            "payload",
            f"inference {decision.request_id} was recorded without a payload, so its input is "
            "unknown; record inferences with input= and output= to make them replayable",
        )
    if "input" not in payload or "output" not in payload:
        raise ReplayError(
            "payload",
            f"the payload of inference {decision.request_id} has no 'input' and 'output'; "
            "record inferences with input= and output=",
        )
    return Recorded(input=payload["input"], output=payload["output"])


# ----- 3. the weights


def _local_path(uri: str) -> Path | None:
    """The local path a ``file://`` URI or an absolute path names; None for other schemes."""
    if uri.startswith("file:"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise ReplayError(
                "weights", f"{uri} names host {parsed.netloc!r}; only local file:// URIs are read"
            )
        return Path(unquote(parsed.path))
    if "://" not in uri and Path(uri).is_absolute():
        return Path(uri)
    return None


def _s3_location(uri: str) -> tuple[str, str] | None:
    if not uri.startswith("s3://"):
        return None
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise ReplayError("weights", f"{uri} names no bucket; use s3://BUCKET/PREFIX/")
    return parsed.netloc, unquote(parsed.path).lstrip("/")


def _s3_client(what: str) -> S3Client:
    try:
        import boto3
    except ImportError as e:
        raise ReplayError(what, "reading s3:// needs boto3: pip install 'custody[s3]'") from e
    # The endpoint (AWS_ENDPOINT_URL), region and credentials come from the environment and
    # AWS configuration, as for any boto3 program.
    return boto3.client("s3")


def _safe_relative(key: str, prefix: str, uri: str) -> PurePosixPath:
    rel = PurePosixPath(key[len(prefix) :])
    if rel.is_absolute() or any(part in ("", ".", "..") for part in rel.parts) or not rel.parts:
        raise ReplayError("weights", f"object {key!r} under {uri} is not a safe relative path")
    return rel


def _s3_download(uri: str, bucket: str, key: str, single: bool, dest: Path, what: str) -> None:
    """Copies ``s3://bucket/key`` (one object when ``single``, else every object under the
    prefix) into ``dest``."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = _s3_client(what)
    try:
        if single:
            dest.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(dest))
            return
        prefix = key if not key or key.endswith("/") else key + "/"
        found = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                name = obj.get("Key", "")
                if name.endswith("/"):
                    continue
                target = dest.joinpath(*_safe_relative(name, prefix, uri).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, name, str(target))
                found += 1
        if not found:
            raise ReplayError(what, f"{uri} holds no objects; check the bucket and prefix")
    except (BotoCoreError, ClientError) as e:
        raise ReplayError(
            what, f"cannot read {uri} ({e}); check AWS_ENDPOINT_URL and the credentials"
        ) from e
    finally:
        s3.close()


def _fetch(uri: str, single: bool, dest: Path, what: str) -> None:
    """Copies what ``uri`` names into ``dest`` (a file when ``single``, else a directory)."""
    local = _local_path(uri)
    if local is not None:
        try:
            if single:
                if not local.is_file():
                    raise ReplayError(what, f"{uri} is not a readable file")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local, dest)
            else:
                if not local.is_dir():
                    raise ReplayError(what, f"{uri} is not a readable directory")
                shutil.copytree(local, dest, symlinks=True)
        except OSError as e:
            raise ReplayError(what, f"cannot copy {uri} ({e})") from e
        return
    location = _s3_location(uri)
    if location is not None:
        _s3_download(uri, *location, single, dest, what)
        return
    raise ReplayError(
        what,
        f"{uri} cannot be fetched here: replay reads local paths, file:// and s3:// URIs; "
        "record where the bytes live in one of those forms",
    )


def _first_difference(recorded: Sequence[FileDigest], fetched: Sequence[FileDigest]) -> str:
    """The first file (in manifest order) whose digest differs, or that only one side has."""
    was = {f.path: f.digest for f in recorded}
    now = {f.path: f.digest for f in fetched}
    for path in sorted(set(was) | set(now), key=lambda p: tuple(p.split("/"))):
        if path not in now:
            return f"{path} is missing from the fetched weights"
        if path not in was:
            return f"{path} is not in the recorded manifest"
        if was[path] != now[path]:
            return f"{path} has digest {now[path]}, the manifest records {was[path]}"
    return "every file matches the manifest, which itself disagrees with the version hash"


def fetch_weights(decision: Decision, dest: Path) -> Path:
    """Fetches the decision's weights into ``dest`` and returns the directory the entry point
    is given. Refuses, naming both hashes and the first file that differs, unless they hash to
    the recorded version hash."""
    single = len(decision.files) == 1 and decision.files[0].path == SINGLE_FILE_PATH
    uri = decision.weights_uri
    if single:
        local = _local_path(uri)
        name = local.name if local is not None else PurePosixPath(urlparse(uri).path).name
        target = dest / (name or "weights")
    else:
        target = dest
    _fetch(uri, single, target, "weights")
    try:
        fetched = hash_model(target)
    except ConfigurationError as e:
        raise ReplayError("weights", f"the weights fetched from {uri} cannot be hashed: {e}") from e
    if fetched.version_hash != decision.version_hash:
        difference = _first_difference(decision.files, fetched.files)
        raise ReplayError(
            "weights",
            f"the weights at {uri} hash to {fetched.version_hash}, but model version "
            f"{decision.version_hash} was recorded ({difference}); nothing was run: restore "
            "the recorded weights at that location",
        )
    return dest


# ----- 4. the lockfile


def check_lockfile(path: Path) -> list[str]:
    """The requirements of a lockfile pip can install with ``--require-hashes``: a
    requirements.txt where every requirement is pinned with ``==`` and carries ``--hash``.
    Refuses other lock formats and requirements that are not fully pinned, naming the line."""
    if path.name.lower() in _OTHER_LOCK_FORMATS or path.suffix.lower() in (".lock", ".toml"):
        raise ReplayError(
            "lockfile",
            f"{path.name} is not a requirements file; pip installs with hashes only from "
            "requirements.txt: export it (`uv export --format requirements-txt`, `poetry export "
            "--with-credentials -f requirements.txt`) and record that file's digest",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReplayError("lockfile", f"{path} cannot be read as UTF-8 text ({e})") from e
    requirements: list[str] = []
    for number, line in requirement_lines(text):
        if line.startswith("-"):
            option = line.split()[0].split("=", 1)[0]
            if option in _UNPINNED_OPTIONS:
                raise ReplayError(
                    "lockfile",
                    f"{path.name} line {number}: {option} pulls in what the lockfile's digest does "
                    "not pin; inline every requirement with its hashes",
                )
            continue
        spec = line.split("--hash", 1)[0].split(";", 1)[0].strip()
        if "--hash" not in line or "==" not in spec:
            raise ReplayError(
                "lockfile",
                f"{path.name} line {number}: {line[:80]!r} is not pinned with == and --hash; "
                "lock with `pip-compile --generate-hashes` or `uv pip compile --generate-hashes`",
            )
        requirements.append(spec)
    return requirements


def fetch_lockfile(decision: Decision, dest_dir: Path, override: Path | None) -> Path:
    """The lockfile the deployment scores with, copied into ``dest_dir``: from ``override`` (a
    local copy) or the recorded ``scoring.lockfile_uri``. Refuses unless its SHA-256 is the
    recorded ``scoring.lockfile_digest``."""
    pin = decision.scoring
    recorded = pin.lockfile_digest
    if recorded is None:
        raise ReplayError("lockfile", "the deployment records no lockfile_digest")
    if override is not None:
        source = override.resolve().as_uri()
        name = override.name
    elif pin.lockfile_uri:
        source = pin.lockfile_uri
        name = PurePosixPath(urlparse(source).path).name or "requirements.txt"
    else:
        raise ReplayError(
            "lockfile",
            f"deployment {decision.deployment_id} pins lockfile {recorded} but records no "
            "lockfile_uri; pass a copy with --lockfile PATH",
        )
    target = dest_dir / name
    _fetch(source, True, target, "lockfile")
    found = digest_file(target)
    if found != recorded:
        raise ReplayError(
            "lockfile",
            f"the lockfile from {source} has digest {found}, but deployment "
            f"{decision.deployment_id} records {recorded}; nothing was run: pass the lockfile "
            "the deployment was built from (--lockfile PATH)",
        )
    return target


# ----- 5. and 6. the environment and the run


#: The only variables the entry point's process inherits: enough to run, nothing secret (no
#: custody token, no cloud credentials), and nothing that changes how Python behaves.
_RUN_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")
#: Prefixes of variables kept from ``pip``'s environment: the replay's own secrets.
_SECRET_PREFIXES = ("CUSTODY_", "AWS_")


def _child_env(minimal: bool) -> dict[str, str]:
    """The environment of a child process: for the entry point only :data:`_RUN_ENV`; for
    ``pip`` everything (its index, proxy and certificate settings) but custody's and AWS's."""
    if minimal:
        return {k: v for k, v in os.environ.items() if k in _RUN_ENV}
    return {k: v for k, v in os.environ.items() if not k.startswith(_SECRET_PREFIXES)}


def _run(
    command: Sequence[str],
    what: str,
    label: str,
    timeout: float,
    *,
    minimal_env: bool = False,
    **kwargs: Any,
) -> str:
    """Runs a command; returns its stdout, or refuses with the last lines of its stderr."""
    try:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=_child_env(minimal_env),
            **kwargs,
        )
    except subprocess.TimeoutExpired as e:
        raise ReplayError(what, f"{label} took longer than {timeout:g}s") from e
    except OSError as e:
        raise ReplayError(what, f"{label} could not start ({e})") from e
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-6:]) or f"exit {done.returncode}"
        raise ReplayError(what, f"{label} failed: {tail}")
    return str(done.stdout)


def build_environment(lockfile: Path, env_dir: Path, progress: Progress = _quiet) -> Path:
    """A fresh virtual environment in ``env_dir`` holding exactly the lockfile's packages
    (``pip install --require-hashes --no-deps``); returns its interpreter."""
    requirements = check_lockfile(lockfile)
    progress(f"building a fresh environment in {env_dir}")
    _run([sys.executable, "-m", "venv", str(env_dir)], "environment", "python -m venv", PIP_TIMEOUT)
    bin_dir = "Scripts" if os.name == "nt" else "bin"
    python = env_dir / bin_dir / ("python.exe" if os.name == "nt" else "python")
    if requirements:
        progress(f"installing {len(requirements)} locked requirement(s) with hashes required")
        _run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--require-hashes",
                "--no-deps",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                "-r",
                str(lockfile),
            ],
            "environment",
            "pip install --require-hashes",
            PIP_TIMEOUT,
        )
    return python


def run_entry_point(
    python: Path, runner: Path, weights_dir: Path, entry_point: str, value: Any, timeout: float
) -> Any:
    """Runs ``entry_point`` on ``value`` with ``python`` in a child process (isolated mode, no
    user site, and only :data:`_RUN_ENV` of the caller's environment: the scoring code never
    sees the replay's token or credentials) and returns its JSON result."""
    out = _run(
        [str(python), "-I", "-B", str(runner), str(weights_dir), entry_point],
        "entry_point",
        entry_point,
        timeout,
        minimal_env=True,
        input=json.dumps(value),
        cwd=runner.parent,
    )
    try:
        return json.loads(out)
    except json.JSONDecodeError as e:
        raise ReplayError("entry_point", f"{entry_point} wrote no JSON result ({e})") from e


def same(recorded: Any, replayed: Any, tolerance: float = 0.0) -> bool:
    """JSON equality, with numbers (never booleans) equal within ``tolerance``."""
    if isinstance(recorded, bool) or isinstance(replayed, bool):
        return type(recorded) is type(replayed) and recorded == replayed
    if isinstance(recorded, int | float) and isinstance(replayed, int | float):
        if tolerance == 0:
            return recorded == replayed
        return math.isclose(recorded, replayed, rel_tol=0.0, abs_tol=tolerance)
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        return recorded.keys() == replayed.keys() and all(
            same(recorded[k], replayed[k], tolerance) for k in recorded
        )
    if isinstance(recorded, list) and isinstance(replayed, list):
        return len(recorded) == len(replayed) and all(
            same(a, b, tolerance) for a, b in zip(recorded, replayed, strict=True)
        )
    return type(recorded) is type(replayed) and bool(recorded == replayed)


def _docker_command(pin: ScoringPin, root: Path) -> str:
    if not pin.image:
        raise ReplayError(
            "image",
            "the deployment pins image_digest but records no image name, so the image cannot be "
            "pulled; record scoring.image (e.g. registry.example/scoring)",
        )
    reference = f"{pin.image}@{pin.image_digest}"
    return (
        f"docker run --rm -i --network none -v {shlex.quote(f'{root}:/replay:ro')} "
        f"{shlex.quote(reference)} python -I -B /replay/run_entry_point.py /replay/weights "
        f"{shlex.quote(pin.entry_point)} < {shlex.quote(str(root / 'input.json'))}"
    )


def _result(
    decision: Decision,
    recorded: Recorded,
    *,
    replayed_output: Any,
    match: bool,
    work_dir: str | None,
    docker_command: str | None = None,
    notes: tuple[str, ...] = (),
) -> ReplayResult:
    return ReplayResult(
        request_id=decision.request_id,
        chain=decision.chain,
        version_hash=decision.version_hash,
        datasets=decision.datasets,
        recorded_output=recorded.output,
        replayed_output=replayed_output,
        match=match,
        docker_command=docker_command,
        entry_point=decision.scoring.entry_point,
        lockfile_digest=decision.scoring.lockfile_digest,
        work_dir=work_dir,
        notes=notes,
    )


def rerun(
    decision: Decision,
    recorded: Recorded,
    *,
    lockfile: str | os.PathLike[str] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    keep_env: bool = False,
    tolerance: float = 0.0,
    timeout: float = RUN_TIMEOUT,
    progress: Progress = _quiet,
) -> ReplayResult:
    """Re-runs a traced decision on its recorded input: verified weights, a verified lockfile
    installed into a fresh environment, the entry point in a child process, and the result
    compared with the recorded output. With only an image pinned, returns the ``docker run``
    command instead (and keeps the work directory it reads from)."""
    pin = decision.scoring
    if not _ENTRY_POINT_RE.fullmatch(pin.entry_point):
        raise ReplayError("entry_point", f"{pin.entry_point!r} is not module.path:function")
    for label, digest in (
        ("lockfile_digest", pin.lockfile_digest),
        ("image_digest", pin.image_digest),
    ):
        if digest is not None and not _DIGEST_RE.fullmatch(digest):
            raise ReplayError("chain", f"scoring.{label} {digest!r} is not a sha256: digest")
    if pin.lockfile_digest is None and pin.image_digest is None:
        raise ReplayError("chain", "the deployment pins neither a lockfile nor an image")
    if tolerance < 0 or math.isnan(tolerance):
        raise ConfigurationError("tolerance must be a non-negative number")
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="custody-replay-", dir=work_dir)).resolve()
    image_only = pin.lockfile_digest is None
    keep = keep_env or image_only
    completed = False
    try:
        progress(f"fetching weights from {decision.weights_uri}")
        weights = fetch_weights(decision, root / "weights")
        progress(f"weights verified: {decision.version_hash}")
        runner = root / "run_entry_point.py"
        runner.write_text(RUNNER, encoding="utf-8")
        if image_only:
            (root / "input.json").write_text(json.dumps(recorded.input), encoding="utf-8")
            command = _docker_command(pin, root)
            completed = True
            return _result(
                decision,
                recorded,
                replayed_output=None,
                match=False,
                docker_command=command,
                work_dir=str(root),
                notes=(
                    "only an OCI image pins the scoring environment: nothing was run here; run "
                    "the command and compare its output with the recorded output",
                    f"{root / 'input.json'} holds the recorded input (personal data): delete "
                    f"{root} once the replay is done",
                ),
            )
        override = Path(lockfile) if lockfile is not None else None
        lock = fetch_lockfile(decision, root / "lock", override)
        progress(f"lockfile verified: {pin.lockfile_digest}")
        python = build_environment(lock, root / "env", progress)
        progress(f"running {pin.entry_point} on the recorded input")
        replayed = run_entry_point(
            python, runner, weights, pin.entry_point, recorded.input, timeout
        )
        completed = True
        return _result(
            decision,
            recorded,
            replayed_output=replayed,
            match=same(recorded.output, replayed, tolerance),
            work_dir=str(root) if keep else None,
            notes=(
                f"the environment was built with Python {platform.python_version()} (the "
                "replaying interpreter): a deployment's scoring records no Python version",
            ),
        )
    finally:
        if not (keep and completed):
            shutil.rmtree(root, ignore_errors=True)


def replay(
    client: Client,
    request_id: str,
    *,
    lockfile: str | os.PathLike[str] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    keep_env: bool = False,
    tolerance: float = 0.0,
    timeout: float = RUN_TIMEOUT,
    progress: Progress = _quiet,
) -> ReplayResult:
    """Replays the decision ``request_id``: :func:`trace_decision`, :func:`read_recorded`, then
    :func:`rerun`. ``lockfile`` is a local copy overriding the recorded ``lockfile_uri``;
    ``work_dir`` is where the weights and the environment go (a fresh directory under it,
    removed afterwards unless ``keep_env``). Raises :class:`ReplayError` when refused."""
    decision = trace_decision(client, request_id)
    recorded = read_recorded(client, decision)
    return rerun(
        decision,
        recorded,
        lockfile=lockfile,
        work_dir=work_dir,
        keep_env=keep_env,
        tolerance=tolerance,
        timeout=timeout,
        progress=progress,
    )


# ----- the command line


class _UsageError(Exception):
    """A command-line mistake, reported on one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message}; see `{self.prog} --help`")


def _parser(prog: str) -> _Parser:
    parser = _Parser(
        prog=prog,
        description=(
            "Replay a recorded decision: verify its chain back to the dataset versions, fetch "
            "and check the weights and the lockfile, re-run the entry point in a fresh "
            "environment and compare the output. The token comes from CUSTODY_TOKEN (an "
            "auditor's), the purpose from CUSTODY_PURPOSE or --purpose."
        ),
        epilog=(
            "exit codes: 0 match, 1 mismatch, 2 usage, 3 refused (chain, weights, lockfile, "
            "payload or environment not as recorded), 4 only an image is pinned (the docker "
            "run command is printed)"
        ),
    )
    parser.add_argument("--request-id", required=True, help="the prediction's request id")
    parser.add_argument("--tenant", help="tenant (default CUSTODY_TENANT, else the token's)")
    parser.add_argument("--server", help="server URL (default CUSTODY_SERVER)")
    parser.add_argument(
        "--vkey",
        action="append",
        default=None,
        metavar="KEY_OR_FILE",
        help="pin a log's verifier key (repeat per log; default CUSTODY_VKEYS, else pinned on "
        "first use)",
    )
    parser.add_argument(
        "--purpose", help="why the recorded input is read (default CUSTODY_PURPOSE); required"
    )
    parser.add_argument(
        "--lockfile", metavar="PATH", help="a local copy of the lockfile (its digest is checked)"
    )
    parser.add_argument("--work-dir", metavar="DIR", help="where the weights and environment go")
    parser.add_argument(
        "--keep-env", action="store_true", help="keep the weights and the environment afterwards"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="numbers may differ by at most this much (default 0: exact)",
    )
    parser.add_argument(
        "--timeout", type=float, default=RUN_TIMEOUT, help="seconds the entry point may take"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _print_chain(decision: Decision) -> None:
    print(
        f"decision {decision.request_id}: chain verified back to "
        f"{len(decision.datasets)} dataset version(s)"
    )
    for link in decision.chain:
        print(f"  {link.role:<16} {link.subject:<72} {link.position}")
    print(f"  entry point {decision.scoring.entry_point}")


def _refused(message: str) -> int:
    print(f"refused: {message}", file=sys.stderr)
    return EXIT_REFUSED


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _client(args: argparse.Namespace, purpose: str) -> Client:
    """The client the replay reads with; without a tenant setting, the token's own tenant."""
    tenant = args.tenant
    if tenant is None and not os.environ.get("CUSTODY_TENANT"):
        with Client(args.server, purpose=purpose, vkeys=args.vkey) as probe:
            tenant = probe.whoami().tenant
        if tenant is None:
            raise ConfigurationError(
                "the token belongs to no tenant: pass --tenant or set CUSTODY_TENANT"
            )
    return Client(args.server, tenant=tenant, purpose=purpose, vkeys=args.vkey)


def main(argv: Sequence[str], prog: str = "python -m custody replay") -> int:
    """``python -m custody replay --request-id ID [...]``: replays one decision and prints the
    chain and the verdict. Exit 0 match, 1 mismatch, 2 usage, 3 refused, 4 image only."""
    try:
        args = _parser(prog).parse_args(list(argv))
    except _UsageError as e:
        return _usage(str(e))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_MATCH
    if not args.tolerance >= 0:
        return _usage("--tolerance must be a non-negative number, e.g. --tolerance 1e-9")
    if not args.timeout > 0:
        return _usage("--timeout must be a positive number of seconds")
    purpose = args.purpose or os.environ.get("CUSTODY_PURPOSE")
    if not purpose:
        return _usage(
            "a purpose is required to read the recorded input: set CUSTODY_PURPOSE or pass "
            "--purpose (e.g. --purpose 'complaint-review-1234')"
        )
    if not (os.environ.get("CUSTODY_TOKEN")):
        return _usage("no token: set CUSTODY_TOKEN to a token with the auditor role")
    say: Progress = (lambda line: print(line, file=sys.stderr)) if not args.json else _quiet
    try:
        with _client(args, purpose) as client:
            decision = trace_decision(client, args.request_id)
            if not args.json:
                _print_chain(decision)
            recorded = read_recorded(client, decision)
        result = rerun(
            decision,
            recorded,
            lockfile=args.lockfile,
            work_dir=args.work_dir,
            keep_env=args.keep_env,
            tolerance=args.tolerance,
            timeout=args.timeout,
            progress=say,
        )
    except ConfigurationError as e:
        return _usage(str(e))
    except ReplayError as e:
        return _refused(str(e))
    except VerificationError as e:
        return _refused(f"an answer did not verify, so nothing in it is evidence: {e}")
    except Forbidden as e:
        return _refused(
            f"the server refused: {e}; replay reads as an auditor: set CUSTODY_TOKEN to a "
            "token with the auditor role"
        )
    except ProblemError as e:
        return _refused(f"the server refused: {e}")
    except TransportError as e:
        return _refused(f"the server could not be reached: {e}")
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        _print_verdict(result)
    if result.docker_command is not None:
        return EXIT_IMAGE_ONLY
    return EXIT_MATCH if result.match else EXIT_MISMATCH


def _print_verdict(result: ReplayResult) -> None:
    print(f"weights verified: {result.version_hash}")
    if result.lockfile_digest is not None:
        print(f"lockfile verified: {result.lockfile_digest}, installed with hashes required")
    if result.docker_command is not None:
        print("NOT RUN: only an OCI image pins the scoring environment; replay it with:")
        print(f"  {result.docker_command}")
        print(f"  expected output: {_show(result.recorded_output)}")
        for note in result.notes[1:]:
            print(f"note: {note}")
        return
    if result.match:
        print(f"MATCH: {_show(result.replayed_output)}")
    else:
        print("MISMATCH")
        print(f"  recorded: {_show(result.recorded_output)}")
        print(f"  replayed: {_show(result.replayed_output)}")
    if result.work_dir is not None:
        print(f"  kept: {result.work_dir}")
    for note in result.notes:
        print(f"note: {note}")


def console() -> None:
    """The ``custody-replay`` console script."""
    sys.exit(main(sys.argv[1:], prog="custody-replay"))
