"""Evidence packs written from Python (``client.audit.export_to``) against the real server: for
a model pack and a request-id pack, with approvals by an ECDSA P-256 and an Ed25519 approver
key and payloads holding every JSON number layout, the pack has the CLI's files
(``custody export -o DIR``) byte for byte (README.md and SHA256SUMS aside), ``custody verify``
and ``python -m custody verify`` both accept it and both refuse it once an entry byte changes,
its README.md's own checks pass, and an export never writes into a directory holding anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Tenant, new_tenant
from harness import Server, custody_bin

import custody
from custody import evidence as ev
from custody.approvals import Criterion, SigningKey
from custody.errors import ConfigurationError, VerificationError
from custody.pack import write_pack

PURPOSE = "sdk-export-tests"
REQUEST_ID = "req-export-1"
# One number per layout the CLI's JSON writer uses (fixed, fraction, leading zeros,
# exponent), strings with escapes and non-ASCII text: pack.json must match it byte for byte.
INPUT = {
    "income": 52000,
    "ratio": 0.1,
    "whole": 1.0,
    "large": 1234567890123.5,
    "small": 0.00001,
    "tiny": 1e-6,
    "tinier": 1.5e-7,
    "negative": -2.75,
    "name": 'Zoë "Q" Müller\\ / 東京',
    "flags": [True, False, None],
}


@dataclass
class Chain:
    """A tenant with a recorded chain: dataset, run, model, two approvals, promotion,
    deployment and one inference."""

    tenant: Tenant
    version_hash: str
    vkeys: dict[str, str]
    work: Path


@dataclass
class Exported:
    """One query exported by the SDK (``python``) and by the CLI (``cli``)."""

    query: str
    python: Path
    cli: Path


def client(chain: Chain, role: str, name: str) -> custody.Client:
    return custody.Client(
        chain.tenant.url,
        token=chain.tenant.token(role),
        tenant=chain.tenant.name,
        purpose=PURPOSE,
        vkeys=chain.vkeys,
        state_dir=chain.work / f"state-{name}",
    )


@pytest.fixture(scope="module")
def chain(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Chain:
    tenant = new_tenant(server, prefix="export")
    work = tmp_path_factory.mktemp("export-chain")
    c = Chain(tenant, "", tenant.vkeys(), work)
    keys = {"approver": SigningKey.generate("ecdsa-p256"), "approver2": SigningKey.generate()}
    with client(c, "admin", "admin") as admin:
        for role, key in keys.items():
            admin.evidence.register_approver_key(tenant.principal(role), key.public_pem())
        admin.evidence.set_policy(ev.Policy(targets={"staging": ev.GateRule(min_approvals=2)}))
    weights = work / "weights"
    weights.mkdir()
    (weights / "model.bin").write_bytes(b"\x01" * 2048)
    digest = custody.hash_model(weights)
    c.version_hash = digest.version_hash
    dataset = "sha256:" + "5a" * 32
    with client(c, "writer", "writer") as w:
        w.evidence.register_dataset(
            name="loans",
            version="1",
            digest=dataset,
            uri="s3://lake/loans/1/",
            legal_basis="contract",
        )
        w.evidence.record_training_run(
            run_id="run-export",
            datasets=[dataset],
            code_commit="b" * 40,
            environment={"lockfile_digest": "sha256:" + "22" * 32},
            metrics={"auc": 0.91},
        )
        w.evidence.register_model(name="credit", weights=digest, run_id="run-export")
    for role, key in keys.items():
        with client(c, role, role) as approver:
            approver.evidence.approve(
                key,
                "credit",
                digest.version_hash,
                target="staging",
                criteria=[Criterion("auc", passed=True)],
                comment=f"checked by {role} — fine",
            )
    with client(c, "writer", "writer") as w:
        w.evidence.promote(
            digest.version_hash, environment="staging", authoriser=tenant.principal("admin")
        )
        w.evidence.deploy(
            "dep-export",
            environment="staging",
            endpoint="https://s.example/v1",
            version_hash=digest.version_hash,
            config_digest="sha256:" + "33" * 32,
        )
    with client(c, "service", "service") as svc:
        svc.evidence.record_inference(
            REQUEST_ID,
            version_hash=digest.version_hash,
            deployment_id="dep-export",
            requested_at=ev.rfc3339(),
            decision="approve",
            latency_ms=2.5,
            input=INPUT,
            output={"score": 0.7, "band": "A"},
        )
    return c


def cli_export(chain: Chain, out: Path, *args: str) -> None:
    env = dict(
        os.environ,
        CUSTODY_SERVER=chain.tenant.url,
        CUSTODY_TOKEN=chain.tenant.token("auditor"),
        CUSTODY_PURPOSE=PURPOSE,
    )
    done = subprocess.run(
        [str(custody_bin()), "export", "-t", chain.tenant.name, *args, "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module", params=["model", "request_id"])
def exported(request: pytest.FixtureRequest, chain: Chain) -> Exported:
    """The same pack exported both ways, right after each other (nothing is recorded in
    between, so the server's answers are the same)."""
    query: str = request.param
    value = chain.version_hash if query == "model" else REQUEST_ID
    python = chain.work / f"python-{query}"
    cli = chain.work / f"cli-{query}"
    with client(chain, "auditor", "auditor") as auditor:
        written = auditor.audit.export_to(
            python,
            model=value if query == "model" else None,
            request_id=value if query == "request_id" else None,
        )
    assert written == python
    cli_export(chain, cli, f"--{query.replace('_', '-')}", value)
    return Exported(query, python, cli)


def files(pack: Path) -> dict[str, bytes]:
    return {
        p.relative_to(pack).as_posix(): p.read_bytes()
        for p in sorted(pack.rglob("*"))
        if p.is_file()
    }


def vkey_args(chain: Chain) -> list[str]:
    return ["--vkey", chain.vkeys["governance"], "--vkey", chain.vkeys["inference"]]


def rust_verify(pack: Path, chain: Chain) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(custody_bin()), "verify", str(pack), *vkey_args(chain)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def python_verify(pack: Path, chain: Chain) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "custody", "verify", str(pack), *vkey_args(chain)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_both_verifiers_accept_the_python_pack(exported: Exported, chain: Chain) -> None:
    rust = rust_verify(exported.python, chain)
    assert rust.returncode == 0, rust.stdout + rust.stderr
    py = python_verify(exported.python, chain)
    assert py.returncode == 0, py.stdout + py.stderr
    assert "OK: approvals: 2 DSSE signatures by registered approver keys" in py.stdout
    assert "FAILED" not in py.stdout + rust.stdout


def test_the_python_pack_has_the_cli_files_byte_for_byte(exported: Exported) -> None:
    ours, theirs = files(exported.python), files(exported.cli)
    assert set(ours) == set(theirs)
    different = [n for n in sorted(ours) if ours[n] != theirs[n]]
    assert set(different) <= {"README.md", "SHA256SUMS"}
    assert len(list((exported.python / "approvals").glob("*.dsse.json"))) == 2
    assert len(list((exported.python / "approver-keys").glob("*.pem"))) == 2
    if exported.query == "request_id":
        assert "payloads/inference/0.json" in ours
        assert b'"tinier": 1.5e-7' in ours["pack.json"]
    listed = [line.split("  ", 1)[1] for line in ours["SHA256SUMS"].decode().splitlines()]
    assert listed == sorted(set(ours) - {"SHA256SUMS"})


def test_a_pack_given_as_json_is_written_the_same(exported: Exported, tmp_path: Path) -> None:
    doc = json.loads((exported.cli / "pack.json").read_bytes())
    out = write_pack(doc, tmp_path / "from-json")
    assert files(out) == files(exported.python)


@pytest.mark.parametrize("resum", [False, True], ids=["as-is", "sums-rewritten"])
def test_a_changed_entry_byte_fails_both_verifiers(
    exported: Exported, chain: Chain, tmp_path: Path, resum: bool
) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(exported.python, pack)
    entry = sorted((pack / "entries" / "governance").iterdir())[0]
    data = bytearray(entry.read_bytes())
    at = data.index(b'"tenant":"') + len(b'"tenant":"')
    data[at] ^= 0x01
    entry.write_bytes(bytes(data))
    if resum:
        sums = files(pack)
        del sums["SHA256SUMS"]
        (pack / "SHA256SUMS").write_text(
            "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for n, b in sums.items())
        )
    rel = entry.relative_to(pack).as_posix()
    rust = rust_verify(pack, chain)
    assert rust.returncode != 0
    assert rel in rust.stdout + rust.stderr
    py = python_verify(pack, chain)
    assert py.returncode == 1
    check = "leaf_hash" if resum else "sha256sums"
    assert f"FAILED: {rel}: {check}:" in py.stdout


def test_the_readme_checks_pass(exported: Exported) -> None:
    """The Python checks the pack's README.md gives, run as written, in the pack."""
    readme = (exported.python / "README.md").read_text(encoding="utf-8")
    scope = json.loads((exported.python / "pack.json").read_bytes())["scope"]
    assert readme.startswith(f"# custody evidence pack: {scope}\n")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 4
    for block in blocks:
        done = subprocess.run(
            [sys.executable, "-c", block],
            cwd=exported.python,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, block + done.stdout + done.stderr
    if shutil.which("sha256sum"):
        sums = subprocess.run(
            ["sha256sum", "-c", "--quiet", "SHA256SUMS"],
            cwd=exported.python,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sums.returncode == 0, sums.stdout + sums.stderr


def test_pack_files_are_not_group_or_world_writable(exported: Exported) -> None:
    for path in [exported.python, *exported.python.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & (stat.S_IWGRP | stat.S_IWOTH), f"{path}: {oct(mode)}"


def test_a_non_empty_directory_is_refused_and_left_alone(
    exported: Exported, chain: Chain, tmp_path: Path
) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    with (
        client(chain, "auditor", "auditor") as auditor,
        pytest.raises(ConfigurationError, match=re.escape(str(target))),
    ):
        auditor.audit.export_to(target, model=chain.version_hash)
    doc = json.loads((exported.cli / "pack.json").read_bytes())
    with pytest.raises(ConfigurationError, match=re.escape(str(target))):
        write_pack(doc, target)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigurationError, match=re.escape(str(a_file))):
        write_pack(doc, a_file)
    after = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert after == [*before, "file"]
    assert (target / "notes.txt").read_text() == "mine\n"


def test_an_empty_directory_is_filled(exported: Exported, tmp_path: Path) -> None:
    doc = json.loads((exported.python / "pack.json").read_bytes())
    (tmp_path / "empty").mkdir()
    out = write_pack(doc, tmp_path / "empty")
    assert files(out) == files(exported.python)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


async def test_the_async_client_exports_the_same_pack(
    exported: Exported, chain: Chain, tmp_path: Path
) -> None:
    value = chain.version_hash if exported.query == "model" else REQUEST_ID
    async with custody.AsyncClient(
        chain.tenant.url,
        token=chain.tenant.token("auditor"),
        tenant=chain.tenant.name,
        purpose=PURPOSE,
        vkeys=chain.vkeys,
        state_dir=chain.work / "state-auditor",
    ) as auditor:
        out = await auditor.audit.export_to(
            tmp_path / "async",
            model=value if exported.query == "model" else None,
            request_id=value if exported.query == "request_id" else None,
        )
    assert files(out) == files(exported.python)


def test_a_pack_that_could_never_verify_is_not_written(exported: Exported, tmp_path: Path) -> None:
    doc = json.loads((exported.cli / "pack.json").read_bytes())
    doc["entries"][0]["envelope"]["tenant"] = "someone-else"
    with pytest.raises(VerificationError) as raised:
        write_pack(doc, tmp_path / "pack")
    assert raised.value.check == "leaf_hash"
    with pytest.raises(ConfigurationError, match="not an evidence pack"):
        write_pack({"format": 1}, tmp_path / "pack")
    assert list(tmp_path.iterdir()) == []
