"""Evidence packs exported by the real ``custody`` binary, verified with
``python -m custody verify``: a pristine pack is valid (exit 0), and each tampering (an entry
byte, pack.json, a checkpoint, a missing file, an approval signature, a wrong pinned key) is
invalid (exit 1) with the failing file and check named; usage errors exit 2 with one line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import Tenant, new_tenant
from harness import Server, custody_bin

MODEL_FILES = {"config.json": b'{"model": "pack-test"}', "model.safetensors": b"w" * 4096}


def version_hash() -> str:
    digests = [hashlib.sha256(MODEL_FILES[p]).digest() for p in sorted(MODEL_FILES)]
    return "sha256:" + hashlib.sha256(b"".join(digests)).hexdigest()


def run_cli(tenant: Tenant, role: str, *args: str) -> str:
    env = dict(
        os.environ,
        CUSTODY_SERVER=tenant.url,
        CUSTODY_TOKEN=tenant.token(role),
        CUSTODY_PURPOSE="sdk-pack-tests",
    )
    done = subprocess.run(
        [str(custody_bin()), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"custody {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@dataclass
class Exported:
    tenant: Tenant
    pack: Path
    vkeys: dict[str, str]


@pytest.fixture(scope="module")
def exported(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """One tenant with a model version approved by two registered approvers (ECDSA P-256 and
    Ed25519), exported once as a pack; each test tampers with its own copy."""
    tenant = new_tenant(server, prefix="pack")
    work = tmp_path_factory.mktemp("pack-chain")
    digest = version_hash()
    files = [
        {
            "path": p,
            "digest": "sha256:" + hashlib.sha256(MODEL_FILES[p]).hexdigest(),
            "size": len(MODEL_FILES[p]),
        }
        for p in sorted(MODEL_FILES)
    ]
    with httpx.Client(
        base_url=f"{tenant.url}/v1/tenants/{tenant.name}",
        headers={"Authorization": f"Bearer {tenant.token('writer')}"},
        timeout=30,
    ) as http:
        dataset = "sha256:" + hashlib.sha256(b"loans").hexdigest()
        chain = [
            {
                "type": "dataset_version.registered",
                "subject": {"kind": "dataset_version", "id": dataset},
                "body": {
                    "name": "loans",
                    "version": "1",
                    "uri": "s3://lake/loans/1/",
                    "digest": dataset,
                    "row_count": 10,
                    "legal_basis": "contract",
                },
            },
            {
                "type": "training_run.recorded",
                "subject": {"kind": "training_run", "id": "run-1"},
                "body": {
                    "code_commit": "4be1f0c2a9d3e8b7c6a5f4e3d2c1b0a998877665",
                    "parameters": {"max_depth": 6},
                    "metrics": {"auc": 0.9},
                    "status": "succeeded",
                    "code_repo": "git@git.example:risk/credit-model.git",
                    "environment": {
                        "image_digest": "sha256:" + hashlib.sha256(b"image").hexdigest(),
                        "lockfile_digest": "sha256:" + hashlib.sha256(b"uv.lock").hexdigest(),
                        "hardware": "8 vCPU",
                        "libraries": {"xgboost": "2.1.3"},
                    },
                },
                "related": [{"kind": "dataset_version", "id": dataset, "rel": "trained_on"}],
            },
            {
                "type": "model_version.registered",
                "subject": {"kind": "model_version", "id": digest},
                "body": {
                    "name": "credit-risk",
                    "version": "1",
                    "version_hash": digest,
                    "files": files,
                    "framework": "xgboost",
                },
                "related": [{"kind": "training_run", "id": "run-1", "rel": "produced_by"}],
            },
        ]
        for entry in chain:
            r = http.post("/logs/governance/entries", json=entry)
            assert r.status_code == 201, r.text
    for role, algorithm in (("approver", "ecdsa-p256"), ("approver2", "ed25519")):
        key = work / f"{role}.pem"
        run_cli(tenant, "admin", "key", "generate", "--algorithm", algorithm, "-o", str(key))
        run_cli(
            tenant, "admin", "key", "register", "-t", tenant.name,
            "--approver", tenant.principal(role), "--public-key", f"{key}.pub",
        )  # fmt: skip
        run_cli(
            tenant, role, "approve", "-t", tenant.name, "--key", str(key), "--model", digest,
            "--name", "credit-risk", "--target", "staging", "--decision", "approve",
            "--criterion", "auc=pass",
        )  # fmt: skip
    pack = work / "pack"
    run_cli(tenant, "auditor", "export", "-t", tenant.name, "--model", digest, "-o", str(pack))
    return Exported(tenant, pack, tenant.vkeys())


@dataclass
class Verdict:
    code: int
    stdout: str
    stderr: str


def verify(pack: Path, *args: str) -> Verdict:
    done = subprocess.run(
        [sys.executable, "-m", "custody", "verify", str(pack), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Verdict(done.returncode, done.stdout, done.stderr)


def vkey_args(exported: Exported) -> list[str]:
    return ["--vkey", exported.vkeys["governance"], "--vkey", exported.vkeys["inference"]]


@pytest.fixture
def copy(exported: Exported, tmp_path: Path) -> Path:
    target = tmp_path / "pack"
    shutil.copytree(exported.pack, target)
    return target


def resum(pack: Path) -> None:
    """Rewrites SHA256SUMS as someone who tampered with the pack would."""
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(pack).as_posix()}"
        for p in sorted(pack.rglob("*"))
        if p.is_file() and p.name != "SHA256SUMS"
    ]
    (pack / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def approval_index(pack: Path) -> int:
    return int(sorted((pack / "approvals").iterdir())[0].name.split(".")[0])


def test_the_exported_pack_is_valid(exported: Exported) -> None:
    names = {p.relative_to(exported.pack).as_posix() for p in exported.pack.rglob("*")}
    assert {"pack.json", "SHA256SUMS", "README.md", "checkpoints/governance.checkpoint"} <= names
    assert len(list((exported.pack / "approvals").glob("*.dsse.json"))) == 2
    v = verify(exported.pack, *vkey_args(exported))
    assert v.code == 0, v.stdout + v.stderr
    assert "OK: approvals: 2 DSSE signatures by registered approver keys" in v.stdout
    assert "FAILED" not in v.stdout


def test_json_report(exported: Exported) -> None:
    v = verify(exported.pack, "--json", "--vkey", exported.vkeys["governance"])
    report = json.loads(v.stdout)
    assert v.code == 0
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["scope"] == f"model {version_hash()}"


def test_a_changed_entry_byte(copy: Path, exported: Exported) -> None:
    entry = next(p for p in (copy / "entries" / "governance").iterdir())
    entry.write_bytes(entry.read_bytes().replace(b'"v":1', b'"v":2'))
    rel = entry.relative_to(copy).as_posix()
    v = verify(copy, *vkey_args(exported))
    assert v.code == 1
    assert f"FAILED: {rel}: sha256sums:" in v.stdout
    assert f"FAILED: {rel}: leaf_hash:" in v.stdout
    resum(copy)
    again = verify(copy, *vkey_args(exported))
    assert again.code == 1
    assert f"FAILED: {rel}: leaf_hash:" in again.stdout
    assert "sha256sums" not in again.stdout


def test_a_changed_pack_json(copy: Path, exported: Exported) -> None:
    pack = json.loads((copy / "pack.json").read_text())
    pack["entries"][0]["envelope"]["time"] = "2020-01-01T00:00:00.000000Z"
    (copy / "pack.json").write_text(json.dumps(pack, indent=2))
    v = verify(copy, *vkey_args(exported))
    assert v.code == 1
    assert "FAILED: pack.json: sha256sums:" in v.stdout
    assert "FAILED: pack.json: entry:" in v.stdout


def test_a_changed_checkpoint(copy: Path, exported: Exported) -> None:
    path = copy / "checkpoints" / "governance.checkpoint"
    origin, size, rest = path.read_text().split("\n", 2)
    path.write_text(f"{origin}\n{int(size) + 1}\n{rest}")
    resum(copy)
    v = verify(copy, *vkey_args(exported))
    assert v.code == 1
    assert "FAILED: checkpoints/governance.checkpoint: signature:" in v.stdout


def test_a_wrong_pinned_key(exported: Exported, server: Server) -> None:
    other = new_tenant(server, prefix="other").vkeys()["governance"]
    v = verify(exported.pack, "--vkey", other)
    assert v.code == 1
    assert "FAILED: checkpoints/governance.checkpoint: signature:" in v.stdout


def test_a_missing_file(copy: Path, exported: Exported) -> None:
    index = approval_index(copy)
    (copy / "approvals" / f"{index}.dsse.json").unlink()
    v = verify(copy, *vkey_args(exported))
    assert v.code == 1
    assert f"FAILED: approvals/{index}.dsse.json: sha256sums: listed in SHA256SUMS but missing" in (
        v.stdout
    )
    assert f"FAILED: approvals/{index}.dsse.json: dsse: missing" in v.stdout


def test_a_changed_approval_signature(copy: Path, exported: Exported) -> None:
    index = approval_index(copy)
    path = copy / "approvals" / f"{index}.dsse.json"
    envelope = json.loads(path.read_text())
    sig = envelope["signatures"][0]["sig"]
    envelope["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    path.write_text(json.dumps(envelope))
    resum(copy)
    v = verify(copy, *vkey_args(exported))
    assert v.code == 1
    assert f"FAILED: approvals/{index}.dsse.json: dsse:" in v.stdout


def test_a_file_slipped_in(copy: Path, exported: Exported) -> None:
    (copy / "entries" / "governance" / "999.json").write_text("{}")
    resum(copy)
    v = verify(copy, *vkey_args(exported))
    assert v.code == 1
    assert "FAILED: entries/governance/999.json: entry: not an entry of pack.json" in v.stdout


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        ((), "--vkey"),
        (("--vkey", "not-a-key"), "--vkey"),
        (("--vkey", "a+zzzz+AAAA"), "--vkey"),
        (("--vkey", "a+00000000+AAAA", "--bogus"), "--bogus"),
    ],
)
def test_usage_errors(exported: Exported, args: tuple[str, ...], flag: str) -> None:
    v = verify(exported.pack, *args)
    assert v.code == 2
    assert v.stdout == ""
    assert len(v.stderr.strip().splitlines()) == 1
    assert flag in v.stderr


def test_a_pack_that_is_not_a_directory(tmp_path: Path, exported: Exported) -> None:
    v = verify(tmp_path / "absent", *vkey_args(exported))
    assert v.code == 2
    assert "PACK" in v.stderr
    assert len(v.stderr.strip().splitlines()) == 1


def test_a_vkey_file(tmp_path: Path, exported: Exported) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{exported.vkeys['governance']}\n{exported.vkeys['inference']}\n")
    v = verify(exported.pack, "--vkey", str(keys))
    assert v.code == 0, v.stdout + v.stderr
