"""custody.approvals against the real server and the Rust CLI: approvals signed here must be
accepted exactly as ``custody approve``'s are, refused when the key is unknown or the envelope
altered, and verify in an evidence pack checked by ``custody verify``."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Tenant
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from harness import REPO, custody_bin

from custody.approvals import (
    APPROVAL_PREDICATE_TYPE,
    INTOTO_PAYLOAD_TYPE,
    Criterion,
    SigningKey,
    approval_statement,
    sign_approval,
)
from custody.errors import ConfigurationError
from custody.hashing import digest_file, hash_model
from custody.verify.dsse import pae

MODEL = "credit-risk"
PURPOSE = "sdk-approval-tests"
ALGORITHMS = ("ed25519", "ecdsa-p256")


def http(tenant: Tenant, role: str) -> httpx.Client:
    return httpx.Client(
        base_url=tenant.url,
        headers={"Authorization": f"Bearer {tenant.token(role)}", "Custody-Purpose": PURPOSE},
        timeout=30,
    )


def append(tenant: Tenant, role: str, entry: dict[str, Any]) -> httpx.Response:
    with http(tenant, role) as client:
        return client.post(f"/v1/tenants/{tenant.name}/logs/governance/entries", json=entry)


def appended(tenant: Tenant, role: str, entry: dict[str, Any]) -> dict[str, Any]:
    r = append(tenant, role, entry)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def stored_body(tenant: Tenant, index: int) -> dict[str, Any]:
    with http(tenant, "admin") as client:
        r = client.get(f"/v1/tenants/{tenant.name}/logs/governance/entries/{index}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()["envelope"]["body"]
    return body


def register_model(tenant: Tenant, directory: Path) -> str:
    """Registers a dataset, a training run and a model version of ``directory``'s weights, the
    chain an approval needs; returns the version hash."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text('{"depth": 6}')
    (directory / "model.safetensors").write_bytes(os.urandom(4096))
    weights = hash_model(directory)
    dataset = "sha256:" + hashlib.sha256(os.urandom(16)).hexdigest()
    appended(
        tenant,
        "writer",
        {
            "type": "dataset_version.registered",
            "subject": {"kind": "dataset_version", "id": dataset},
            "body": {
                "name": "loans",
                "version": "2025-10",
                "uri": "s3://lake/loans/2025-10/",
                "digest": dataset,
                "legal_basis": "gdpr-art6-1b:loan-contract",
            },
        },
    )
    appended(
        tenant,
        "writer",
        {
            "type": "training_run.recorded",
            "subject": {"kind": "training_run", "id": f"run-{weights.version_hash[7:19]}"},
            "related": [{"kind": "dataset_version", "id": dataset, "rel": "trained_on"}],
            "body": {
                "code_commit": "4be1f0c2a9d3e8b7c6a5f4e3d2c1b0a998877665",
                "status": "succeeded",
                "metrics": {"auc": 0.91},
                "environment": {"lockfile_digest": dataset},
            },
        },
    )
    appended(
        tenant,
        "writer",
        {
            "type": "model_version.registered",
            "subject": {"kind": "model_version", "id": weights.version_hash},
            "related": [
                {
                    "kind": "training_run",
                    "id": f"run-{weights.version_hash[7:19]}",
                    "rel": "produced_by",
                }
            ],
            "body": {
                "name": MODEL,
                "version_hash": weights.version_hash,
                "files": weights.manifest(),
            },
        },
    )
    return weights.version_hash


def register_key(tenant: Tenant, approver_role: str, public_pem: str) -> None:
    """The tenant admin registers ``public_pem`` for the approver principal."""
    appended(
        tenant,
        "admin",
        {
            "type": "approver_key.registered",
            "subject": {"kind": "approver", "id": tenant.principal(approver_role)},
            "body": {"public_key": public_pem},
        },
    )


def approval_entry(version_hash: str, envelope: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "approval.submitted",
        "subject": {"kind": "model_version", "id": version_hash},
        "body": {},
        "payload": envelope,
    }


def criteria(tmp_path: Path) -> list[Criterion]:
    report = tmp_path / "eval-report.json"
    report.write_text('{"auc": 0.91}')
    return [
        Criterion("auc", True, digest_file(report)),
        Criterion("fairness_review", True),
    ]


def run_cli(tenant: Tenant, role: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env |= {
        "CUSTODY_SERVER": tenant.url,
        "CUSTODY_TOKEN": tenant.token(role),
        "CUSTODY_PURPOSE": PURPOSE,
    }
    return subprocess.run(
        [str(custody_bin()), *args], capture_output=True, text=True, env=env, check=False
    )


def problem_fields(r: httpx.Response) -> list[str]:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in r.json()["errors"]]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_python_signed_approval_is_accepted(tenant: Tenant, tmp_path: Path, algorithm: str) -> None:
    version_hash = register_model(tenant, tmp_path / "weights")
    key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    register_key(tenant, "approver", key.public_pem())
    checked = criteria(tmp_path)
    envelope = sign_approval(
        key,
        MODEL,
        version_hash,
        target="production",
        criteria=checked,
        policy="credit-models-v3",
        comment="evaluation reviewed",
    )

    result = appended(tenant, "approver", approval_entry(version_hash, envelope))
    body = stored_body(tenant, result["index"])
    payload = base64.b64decode(envelope["payload"])
    assert body == {
        "model_name": MODEL,
        "approver": tenant.principal("approver"),
        "key_fingerprint": key.fingerprint(),
        "decision": "approve",
        "target": "production",
        "criteria": [
            {"name": "auc", "passed": True, "evidence": checked[0].evidence_sha256},
            {"name": "fairness_review", "passed": True},
        ],
        "policy": "credit-models-v3",
        "statement_digest": "sha256:" + hashlib.sha256(payload).hexdigest(),
    }

    rejection = sign_approval(
        key, MODEL, version_hash, decision="reject", target="staging", comment="drift"
    )
    result = appended(tenant, "approver", approval_entry(version_hash, rejection))
    body = stored_body(tenant, result["index"])
    assert (body["decision"], body["target"]) == ("reject", "staging")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_key_from_custody_key_generate_signs_in_python(
    tenant: Tenant, tmp_path: Path, algorithm: str
) -> None:
    version_hash = register_model(tenant, tmp_path / "weights")
    key_file = tmp_path / "risk-1.pem"
    made = run_cli(
        tenant, "admin", "key", "generate", "--algorithm", algorithm, "-o", str(key_file)
    )
    assert made.returncode == 0, made.stderr
    key = SigningKey.load(key_file)
    assert key.algorithm == algorithm
    assert key.public_pem() == (tmp_path / "risk-1.pem.pub").read_text()
    assert f"fingerprint: {key.fingerprint()}" in made.stdout

    registered = run_cli(
        tenant,
        "admin",
        "key",
        "register",
        "-t",
        tenant.name,
        "--approver",
        tenant.principal("approver"),
        "--public-key",
        str(tmp_path / "risk-1.pem.pub"),
    )
    assert registered.returncode == 0, registered.stderr

    envelope = sign_approval(key, MODEL, version_hash, target="production")
    result = appended(tenant, "approver", approval_entry(version_hash, envelope))
    assert stored_body(tenant, result["index"])["key_fingerprint"] == key.fingerprint()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_python_and_custody_approve_make_the_same_envelope(
    tenant: Tenant, tmp_path: Path, algorithm: str
) -> None:
    """Same key file (saved here), same inputs: ``custody approve`` and sign_approval produce
    the same envelope byte for byte (Ed25519 and RFC 6979 ECDSA are deterministic), and the
    server derives the same body from each."""
    version_hash = register_model(tenant, tmp_path / "weights")
    key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    key_file = tmp_path / "approver.pem"
    key.save(key_file)
    register_key(tenant, "approver", key.public_pem())
    checked = criteria(tmp_path)

    cli_envelope_file = tmp_path / "cli-envelope.json"
    done = run_cli(
        tenant,
        "approver",
        "approve",
        "-t",
        tenant.name,
        "--key",
        str(key_file),
        "--model",
        version_hash,
        "--name",
        MODEL,
        "--target",
        "production",
        "--decision",
        "approve",
        "--criterion",
        f"auc=pass@{checked[0].evidence_sha256}",
        "--criterion",
        "fairness_review=pass",
        "--policy",
        "credit-models-v3",
        "--comment",
        "evaluation reviewed",
        "-o",
        str(cli_envelope_file),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    cli_result = json.loads(done.stdout)
    cli_envelope = json.loads(cli_envelope_file.read_text())

    envelope = sign_approval(
        key,
        MODEL,
        version_hash,
        target="production",
        criteria=checked,
        policy="credit-models-v3",
        comment="evaluation reviewed",
    )
    assert envelope == cli_envelope

    result = appended(tenant, "approver2", approval_entry(version_hash, envelope))
    assert stored_body(tenant, result["index"]) == stored_body(tenant, cli_result["index"])


def test_unregistered_key_is_refused(tenant: Tenant, tmp_path: Path) -> None:
    version_hash = register_model(tenant, tmp_path / "weights")
    register_key(tenant, "approver", SigningKey.generate("ed25519").public_pem())
    stranger = SigningKey.generate("ecdsa-p256")
    envelope = sign_approval(stranger, MODEL, version_hash, target="production")
    r = append(tenant, "approver", approval_entry(version_hash, envelope))
    assert problem_fields(r) == ["payload.signatures"]
    assert "registered" in r.json()["errors"][0]["message"]


def _reencode(envelope: dict[str, Any], change: Any) -> dict[str, Any]:
    statement = json.loads(base64.b64decode(envelope["payload"]))
    change(statement)
    payload = json.dumps(statement, separators=(",", ":")).encode()
    return {**envelope, "payload": base64.b64encode(payload).decode()}


def _flip_sig(envelope: dict[str, Any]) -> dict[str, Any]:
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[-1] ^= 1
    return {
        **envelope,
        "signatures": [{**envelope["signatures"][0], "sig": base64.b64encode(sig).decode()}],
    }


TAMPERINGS: dict[str, tuple[Any, str]] = {
    "decision flipped": (
        lambda e: _reencode(e, lambda s: s["predicate"].update(decision="reject")),
        "payload.signatures",
    ),
    "criterion added": (
        lambda e: _reencode(
            e, lambda s: s["predicate"]["criteria"].append({"name": "x", "passed": True})
        ),
        "payload.signatures",
    ),
    "signature bit flipped": (_flip_sig, "payload.signatures"),
    "payload type changed": (
        lambda e: {**e, "payloadType": "application/json"},
        "payload.payloadType",
    ),
    "payload not base64": (lambda e: {**e, "payload": "not base64!"}, "payload.payload"),
    "other weights": (
        lambda e: _reencode(e, lambda s: s["subject"][0]["digest"].update(sha256="0" * 64)),
        "payload.payload.subject[0].digest.sha256",
    ),
    "unknown predicate field": (
        lambda e: _reencode(e, lambda s: s["predicate"].update(expires="never")),
        "payload.payload.predicate.expires",
    ),
}


@pytest.fixture
def signed(tenant: Tenant, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    version_hash = register_model(tenant, tmp_path / "weights")
    key = SigningKey.generate("ed25519")
    register_key(tenant, "approver", key.public_pem())
    return version_hash, sign_approval(key, MODEL, version_hash, target="production")


@pytest.mark.parametrize("case", sorted(TAMPERINGS))
def test_tampered_envelope_is_refused(
    tenant: Tenant, signed: tuple[str, dict[str, Any]], case: str
) -> None:
    version_hash, envelope = signed
    tamper, field = TAMPERINGS[case]
    r = append(tenant, "approver", approval_entry(version_hash, tamper(envelope)))
    assert field in problem_fields(r), r.text
    appended(tenant, "approver", approval_entry(version_hash, envelope))


def test_custody_verify_checks_python_signed_approvals(tenant: Tenant, tmp_path: Path) -> None:
    """An evidence pack of a model approved with both key types, signed here, passes
    ``custody verify`` against the pinned governance key; altering an approval in the pack
    fails it."""
    version_hash = register_model(tenant, tmp_path / "weights")
    for role, algorithm in (("approver", "ecdsa-p256"), ("approver2", "ed25519")):
        key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
        register_key(tenant, role, key.public_pem())
        envelope = sign_approval(
            key, MODEL, version_hash, target="production", criteria=criteria(tmp_path)
        )
        appended(tenant, role, approval_entry(version_hash, envelope))

    pack = tmp_path / "pack"
    exported = run_cli(
        tenant, "auditor", "export", "-t", tenant.name, "--model", version_hash, "-o", str(pack)
    )
    assert exported.returncode == 0, exported.stderr
    vkey = tenant.vkeys()["governance"]
    verified = run_cli(tenant, "auditor", "verify", str(pack), "--vkey", vkey)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "2 approval(s) signed" in verified.stdout

    approvals = sorted((pack / "approvals").rglob("*.json"))
    assert approvals, sorted(p.name for p in pack.rglob("*"))
    doc = json.loads(approvals[0].read_text())
    doc["payload"] = base64.b64encode(b'{"tampered": true}').decode()
    approvals[0].write_text(json.dumps(doc))
    refused = run_cli(tenant, "auditor", "verify", str(pack), "--vkey", vkey)
    assert refused.returncode != 0
    assert approvals[0].name in refused.stdout + refused.stderr


def test_dsse_known_answer() -> None:
    """The DSSE specification's test vector: PAE byte for byte, and an RFC 6979 ECDSA P-256
    signature identical to the published one."""
    kat = json.loads((REPO / "testdata" / "vectors" / "dsse" / "dsse_kat.json").read_text())
    body = kat["serialized_body"].encode()
    assert pae(kat["payload_type"], body) == kat["pae"].encode()

    numbers = kat["key"]
    private = ec.derive_private_key(int(numbers["d_decimal"]), ec.SECP256R1())
    public = private.public_key().public_numbers()
    assert (public.x, public.y) == (int(numbers["x_decimal"]), int(numbers["y_decimal"]))
    key = SigningKey(private)
    der = key.sign(pae(kat["payload_type"], body))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert base64.b64encode(raw).decode() == kat["envelope"]["signatures"][0]["sig"]
    assert base64.b64encode(body).decode() == kat["envelope"]["payload"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_signatures_are_deterministic_and_cover_the_pae(algorithm: str) -> None:
    key = SigningKey.generate(algorithm)  # type: ignore[arg-type]
    version_hash = "sha256:" + "ab" * 32
    first = sign_approval(key, MODEL, version_hash, target="production")
    assert sign_approval(key, MODEL, version_hash, target="production") == first

    payload = base64.b64decode(first["payload"])
    statement = approval_statement(MODEL, version_hash, "approve", "production", [])
    assert json.loads(payload) == statement
    assert payload == json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    assert first["payloadType"] == INTOTO_PAYLOAD_TYPE
    assert first["signatures"][0]["keyid"] == key.fingerprint()

    public = serialization.load_pem_public_key(key.public_pem().encode())
    sig = base64.b64decode(first["signatures"][0]["sig"])
    message = pae(INTOTO_PAYLOAD_TYPE, payload)
    if isinstance(public, ed25519.Ed25519PublicKey):
        assert len(sig) == 64
        public.verify(sig, message)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(sig, message, ec.ECDSA(hashes.SHA256()))
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key.fingerprint() == "sha256:" + hashlib.sha256(der).hexdigest()


def test_statement_shape() -> None:
    version_hash = "sha256:" + "cd" * 32
    statement = approval_statement(
        MODEL,
        version_hash,
        "reject",
        "production",
        [Criterion("auc>=0.9", False, "ef" * 32), Criterion("bias", True)],
        policy="p",
        comment="auc too low",
    )
    assert statement == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": MODEL, "digest": {"sha256": "cd" * 32}}],
        "predicateType": APPROVAL_PREDICATE_TYPE,
        "predicate": {
            "decision": "reject",
            "target": "production",
            "criteria": [
                {"name": "auc>=0.9", "passed": False, "evidence": {"sha256": "ef" * 32}},
                {"name": "bias", "passed": True},
            ],
            "policy": "p",
            "comment": "auc too low",
        },
    }
    bare = approval_statement(MODEL, version_hash, "approve", "staging")
    assert bare["predicate"] == {"decision": "approve", "target": "staging", "criteria": []}


GOOD: dict[str, Any] = {
    "model_name": MODEL,
    "version_hash": "sha256:" + "ab" * 32,
    "decision": "approve",
    "target": "production",
    "criteria": (),
    "policy": None,
    "comment": None,
}


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("model_name", ""),
        ("model_name", "credit risk"),
        ("model_name", "m" * 129),
        ("version_hash", "ab" * 32),
        ("version_hash", "sha256:" + "AB" * 32),
        ("version_hash", "sha256:abc"),
        ("decision", "approved"),
        ("target", ""),
        ("target", "t" * 257),
        ("target", "prod\nuction"),
        ("criteria", "auc"),
        ("criteria", [Criterion("c", True)] * 257),
        ("criteria[0]", [{"name": "auc", "passed": True}]),
        ("criteria[0].name", [Criterion("", True)]),
        ("criteria[0].passed", [Criterion("auc", "yes")]),  # type: ignore[arg-type]
        ("criteria[0].evidence_sha256", [Criterion("auc", True, "sha256:123")]),
        ("policy", ""),
        ("comment", "c" * 4097),
    ],
)
def test_invalid_inputs_name_the_argument(argument: str, value: Any) -> None:
    field = argument.split("[")[0]
    kwargs = {**GOOD, field: value}
    with pytest.raises(ConfigurationError) as err:
        approval_statement(**kwargs)
    assert str(err.value).startswith(f"{argument}: "), str(err.value)
    key = SigningKey.generate("ed25519")
    with pytest.raises(ConfigurationError):
        sign_approval(key, **kwargs)


def test_key_files(tmp_path: Path) -> None:
    key = SigningKey.generate("ecdsa-p256")
    path = tmp_path / "approver.pem"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert SigningKey.load(path).fingerprint() == key.fingerprint()
    assert key.fingerprint() not in repr(path.read_text())
    assert "PRIVATE" not in repr(key)

    with pytest.raises(ConfigurationError, match="exists; choose a new file name"):
        key.save(path)

    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match=r"chmod 600") as err:
        SigningKey.load(path)
    assert str(err.value).startswith("path: ")

    locked = tmp_path / "locked.pem"
    key.save(locked, password="correct horse")
    assert SigningKey.load(locked, password="correct horse").fingerprint() == key.fingerprint()
    with pytest.raises(ConfigurationError, match=r"^password: .*encrypted"):
        SigningKey.load(locked)
    with pytest.raises(ConfigurationError, match="password is wrong"):
        SigningKey.load(locked, password="wrong")

    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigurationError, match="Ed25519 or ECDSA P-256"):
        SigningKey.from_pem(rsa_pem)
    with pytest.raises(ConfigurationError, match="Ed25519 or ECDSA P-256"):
        SigningKey(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ConfigurationError, match=r"^algorithm: "):
        SigningKey.generate("rsa")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cannot be read"):
        SigningKey.load(tmp_path / "missing.pem")
