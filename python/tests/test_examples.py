"""The examples run as written: the training pipeline records its chain, the serving app
refuses weights that were never approved and records each decision it serves."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import Tenant
from fastapi.testclient import TestClient

import custody
from custody import evidence as ev
from custody.approvals import SigningKey

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def env_for(tenant: Tenant, role: str, state: Path) -> dict[str, str]:
    return {
        "CUSTODY_SERVER": tenant.url,
        "CUSTODY_TOKEN": tenant.token(role),
        "CUSTODY_TENANT": tenant.name,
        "CUSTODY_STATE_DIR": str(state),
        "CUSTODY_PURPOSE": "examples",
    }


def train(tenant: Tenant, tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "loans.csv"
    data.write_text(
        "income,debt,repaid\n"
        + "".join(f"{i % 7 / 7:.3f},{i % 5 / 5:.3f},{int(i % 7 > i % 5)}\n" for i in range(200))
    )
    lock = tmp_path / "requirements.txt"
    lock.write_text("numpy==2.3.5\n")
    out = tmp_path / "model"
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "training_pipeline.py"),
            "--data",
            str(data),
            "--lockfile",
            str(lock),
            "--out",
            str(out),
        ],
        env={**os.environ, **env_for(tenant, "writer", tmp_path / "state")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out, done.stdout.strip()


def test_the_training_pipeline_records_a_chain_the_auditor_can_trace(
    tenant: Tenant, tmp_path: Path
) -> None:
    model_dir, version = train(tenant, tmp_path)
    assert version == custody.hash_model(model_dir).version_hash
    with custody.Client(
        tenant.url, token=tenant.token("auditor"), tenant=tenant.name, state_dir=tmp_path / "s"
    ) as auditor:
        history = auditor.audit.history(version)
        types = {e.envelope["type"] for e in history.entries}
        assert {"model_version.registered", "model_card.published"} <= types
        runs = list(auditor.logs.list("governance", type="training_run.recorded"))
        assert runs[0].envelope["body"]["environment"]["libraries"] == {"numpy": "2.3.5"}


def test_the_serving_app_refuses_unapproved_weights_then_serves_and_records(
    tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir, version = train(tenant, tmp_path)
    serving = load("serving")
    for k, v in env_for(tenant, "service", tmp_path / "state").items():
        monkeypatch.setenv(k, v)

    app = serving.create_app(model_dir, "production", "dep-1")
    with pytest.raises(custody.NotAdmitted), TestClient(app):
        pass

    key = SigningKey.generate("ed25519")
    with custody.Client(token=tenant.token("admin")) as admin:
        admin.evidence.register_approver_key(tenant.principal("approver"), key.public_pem())
        admin.evidence.set_policy(ev.Policy(targets={"production": ev.GateRule(min_approvals=1)}))
    with custody.Client(token=tenant.token("approver")) as approver:
        approver.evidence.approve(key, "credit-risk", version, target="production")
    with custody.Client(token=tenant.token("writer")) as writer:
        writer.evidence.promote(
            version, environment="production", authoriser=tenant.principal("admin")
        )
        writer.evidence.deploy(
            "dep-1",
            environment="production",
            endpoint="https://scoring.example/v1",
            version_hash=version,
            config_digest="sha256:" + "0" * 64,
            scoring=ev.Scoring("score:predict", lockfile_digest="sha256:" + "1" * 64),
        )

    app = serving.create_app(model_dir, "production", "dep-1")
    with TestClient(app) as http:
        answer = http.post("/predict", json={"income": 0.9, "debt": 0.1}).json()
    assert answer["decision"] in ("approve", "refer")
    with custody.Client(token=tenant.token("auditor")) as auditor:
        trace = auditor.audit.trace(request_id=answer["request_id"])
        inference = next(e for e in trace.entries if e.role == "inference")
        assert inference.envelope["body"]["version_hash"] == version
        record = auditor.logs.get("inference", inference.index)
        assert record.payload == {
            "input": {"income": 0.9, "debt": 0.1},
            "output": {"score": answer["score"], "decision": answer["decision"]},
        }
