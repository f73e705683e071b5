"""Replaying a decision against the real server: a logistic regression trained here in numpy,
its chain recorded with the SDK (dataset, run, model, policy, signed approval, promotion,
deployment with how it scores, one served prediction), then ``python -m custody replay``
rebuilding the locked environment and re-running the model to a match; and every refusal:
changed weights, a lockfile with another digest, an unreadable payload, a broken chain, an
image-only deployment and an output that differs from the record.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import Tenant, new_tenant
from harness import Server

import custody
from custody import evidence as ev
from custody.approvals import SigningKey, sign_approval
from custody.hashing import digest_dataset, environment_from_lockfile, hash_model, lockfile_digest
from custody.replay import (
    EXIT_IMAGE_ONLY,
    EXIT_MATCH,
    EXIT_MISMATCH,
    EXIT_REFUSED,
    EXIT_USAGE,
    ReplayError,
    check_lockfile,
    read_recorded,
    replay,
    same,
    trace_decision,
)

ENVIRONMENT = "production"
MODEL = "credit-lr"
PURPOSE = "complaint-review-4711"
APPLICANT = {"income": 0.8, "debt_ratio": -0.3, "years": 1.5}

#: The scoring code shipped inside the model directory, so the version hash covers it.
SCORE_PY = '''\
"""Scores one applicant with the logistic regression whose parameters are in weights.npy."""
import math
import os

import numpy as np

FEATURES = ("income", "debt_ratio", "years")


def predict(weights_dir, applicant):
    params = np.load(os.path.join(weights_dir, "weights.npy"))
    x = np.array([float(applicant[f]) for f in FEATURES], dtype=np.float64)
    z = float(x @ params[:-1] + params[-1])
    score = 1.0 / (1.0 + math.exp(-z))
    return {"score": score, "decision": "approve" if score >= 0.5 else "refer"}
'''


# ----- the ML engineer's side: data, training, a lockfile


@pytest.fixture(scope="session")
def lockfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """requirements.txt pinning this interpreter's numpy with its wheel's hash, made the way an
    engineer locks a scoring environment: download the wheel, hash it."""
    work = tmp_path_factory.mktemp("lock")
    wheels = work / "wheels"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"numpy=={np.__version__}",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
            str(wheels),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot download numpy {np.__version__} from PyPI:\n{done.stderr}")
    (wheel,) = wheels.glob("numpy-*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lock = work / "requirements.txt"
    lock.write_text(
        f"# scoring environment of {MODEL}\n"
        f"numpy=={np.__version__} \\\n    --hash=sha256:{digest}\n"
    )
    return lock


@dataclass
class Trained:
    """A trained model on disk and the data it was trained on."""

    model_dir: Path
    data: Path
    accuracy: float


def train(root: Path) -> Trained:
    """Fits a logistic regression by gradient descent on synthetic applicants (fixed seed),
    writes the training CSV, and the model directory: weights.npy and score.py."""
    rng = np.random.default_rng(20260101)
    x = rng.normal(size=(400, 3))
    truth = np.array([2.0, -3.0, 0.5])
    y = (rng.random(400) < 1.0 / (1.0 + np.exp(-(x @ truth + 0.2)))).astype(np.float64)
    data = root / "data" / "applicants.csv"
    data.parent.mkdir(parents=True)
    np.savetxt(data, np.column_stack([x, y]), delimiter=",", header="income,debt_ratio,years,y")
    w, b = np.zeros(3), 0.0
    for _ in range(500):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        w -= 0.5 * (x.T @ (p - y)) / len(y)
        b -= 0.5 * float(np.mean(p - y))
    accuracy = float(np.mean(((x @ w + b) > 0) == (y == 1)))
    model_dir = root / "model"
    model_dir.mkdir()
    np.save(model_dir / "weights.npy", np.append(w, b))
    (model_dir / "score.py").write_text(SCORE_PY)
    return Trained(model_dir, data, accuracy)


def serve(model_dir: Path, applicant: dict[str, float]) -> dict[str, Any]:
    """What the serving process computes: the shipped score.py on the shipped weights, run here
    in the test's own process as the endpoint would run it."""
    namespace: dict[str, Any] = {}
    exec(compile((model_dir / "score.py").read_text(), "score.py", "exec"), namespace)  # noqa: S102
    result: dict[str, Any] = namespace["predict"](str(model_dir), applicant)
    return result


# ----- recording the chain


def client(tenant: Tenant, role: str, state: Path, purpose: str | None = None) -> custody.Client:
    return custody.Client(
        tenant.url,
        token=tenant.token(role),
        tenant=tenant.name,
        purpose=purpose,
        state_dir=state,
    )


@dataclass
class Chain:
    """What one test recorded."""

    tenant: Tenant
    trained: Trained
    version_hash: str
    output: dict[str, Any]


def record_chain(
    tenant: Tenant,
    root: Path,
    *,
    scoring: ev.Scoring | None,
    lock: Path | None,
    weights_uri: str | None = None,
    recorded_output: dict[str, Any] | None = None,
    request_id: str = "req-1",
) -> Chain:
    """Trains, then records dataset -> run -> model -> policy, approval, promotion ->
    deployment -> one inference, each written by the principal whose job it is."""
    trained = train(root)
    weights = hash_model(trained.model_dir)
    dataset = digest_dataset(trained.data).digest
    state = root / "state"
    environment = (
        environment_from_lockfile(lock)
        if lock is not None
        else {"lockfile_digest": "sha256:" + "0" * 64}
    )
    with client(tenant, "admin", state) as admin:
        admin.evidence.set_policy(ev.Policy(targets={ENVIRONMENT: ev.GateRule(min_approvals=1)}))
        key = SigningKey.generate()
        admin.evidence.register_approver_key(tenant.principal("approver"), key.public_pem())
    with client(tenant, "writer", state) as writer:
        writer.evidence.register_dataset(
            name="applicants",
            version="2026-01",
            digest=dataset,
            uri=trained.data.as_uri(),
            legal_basis="contract",
            row_count=400,
        )
        writer.evidence.record_training_run(
            run_id="run-1",
            datasets=[dataset],
            code_commit="c0ffee" * 6 + "beef",
            environment=environment,
            metrics={"accuracy": trained.accuracy},
            parameters={"learning_rate": 0.5, "epochs": 500},
        )
        writer.evidence.register_model(
            name=MODEL,
            weights=weights,
            run_id="run-1",
            framework="numpy",
            format="npy",
            registry={"kind": "object_store", "uri": weights_uri or trained.model_dir.as_uri()},
        )
    with client(tenant, "approver", state) as approver:
        envelope = sign_approval(key, MODEL, weights.version_hash, target=ENVIRONMENT)
        approver.evidence.submit_approval(weights.version_hash, envelope)
    with client(tenant, "writer", state) as writer:
        writer.evidence.promote(
            weights.version_hash, environment=ENVIRONMENT, authoriser=tenant.principal("admin")
        )
        writer.evidence.deploy(
            "dep-1",
            environment=ENVIRONMENT,
            endpoint="https://scoring.example/v1/credit",
            version_hash=weights.version_hash,
            config_digest="sha256:" + "c" * 64,
            scoring=scoring,
        )
    output = serve(trained.model_dir, APPLICANT)
    with client(tenant, "service", state) as service:
        result = service.evidence.record_inference(
            request_id,
            version_hash=weights.version_hash,
            deployment_id="dep-1",
            requested_at=ev.rfc3339(),
            decision=output["decision"],
            latency_ms=2.0,
            score=output["score"],
            input=APPLICANT,
            output=recorded_output or output,
            model_name=MODEL,
        )
        assert result.security is None  # the promoted, deployed version served it
    return Chain(tenant, trained, weights.version_hash, output)


def locked(lock: Path) -> ev.Scoring:
    return ev.Scoring(
        "score:predict", lockfile_digest=lockfile_digest(lock), lockfile_uri=lock.as_uri()
    )


def run_replay(
    tenant: Tenant, state: Path, *args: str, role: str = "auditor", purpose: str | None = PURPOSE
) -> subprocess.CompletedProcess[str]:
    """``python -m custody replay`` as an auditor runs it: settings from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(
        CUSTODY_SERVER=tenant.url, CUSTODY_TOKEN=tenant.token(role), CUSTODY_STATE_DIR=str(state)
    )
    if purpose is not None:
        env["CUSTODY_PURPOSE"] = purpose
    return subprocess.run(
        [sys.executable, "-m", "custody", "replay", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )


# ----- the tests


def test_a_decision_replays_to_a_match_and_changed_weights_are_refused(
    tenant: Tenant, tmp_path: Path, lockfile: Path
) -> None:
    chain = record_chain(tenant, tmp_path, scoring=locked(lockfile), lock=lockfile)
    # No CUSTODY_TENANT: the replay reads the tenant from the token.
    done = run_replay(tenant, tmp_path / "audit", "--request-id", "req-1")
    assert done.returncode == EXIT_MATCH, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    roles = [line.split()[0] for line in lines[1:6]]
    assert roles == ["inference", "deployment", "model_version", "training_run", "dataset_version"]
    assert chain.version_hash in done.stdout
    assert f"MATCH: {json.dumps(chain.output, sort_keys=True)}" in done.stdout

    weights = chain.trained.model_dir / "weights.npy"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    changed = hash_model(chain.trained.model_dir).version_hash
    done = run_replay(tenant, tmp_path / "audit", "--request-id", "req-1")
    assert done.returncode == EXIT_REFUSED, done.stdout + done.stderr
    (refusal,) = [line for line in done.stderr.splitlines() if line.startswith("refused:")]
    assert changed in refusal and chain.version_hash in refusal
    assert "weights.npy" in refusal and "nothing was run" in refusal
    assert "MATCH" not in done.stdout


def test_a_lockfile_with_another_digest_is_refused_before_anything_runs(
    tenant: Tenant, tmp_path: Path, lockfile: Path
) -> None:
    record_chain(tenant, tmp_path, scoring=locked(lockfile), lock=lockfile)
    other = tmp_path / "requirements.txt"
    other.write_text(lockfile.read_text() + "# edited\n")
    done = run_replay(
        tenant,
        tmp_path / "audit",
        "--request-id",
        "req-1",
        "--tenant",
        tenant.name,
        "--lockfile",
        str(other),
    )
    assert done.returncode == EXIT_REFUSED, done.stdout + done.stderr
    assert lockfile_digest(other) in done.stderr and lockfile_digest(lockfile) in done.stderr
    assert "--lockfile" in done.stderr


def test_a_recorded_output_the_model_does_not_reproduce_is_a_mismatch(
    tenant: Tenant, tmp_path: Path, lockfile: Path
) -> None:
    forged = {"score": 0.99, "decision": "approve"}
    chain = record_chain(
        tenant, tmp_path, scoring=locked(lockfile), lock=lockfile, recorded_output=forged
    )
    done = run_replay(tenant, tmp_path / "audit", "--request-id", "req-1")
    assert done.returncode == EXIT_MISMATCH, done.stdout + done.stderr
    assert "MISMATCH" in done.stdout
    assert f"recorded: {json.dumps(forged, sort_keys=True)}" in done.stdout
    assert f"replayed: {json.dumps(chain.output, sort_keys=True)}" in done.stdout

    # Within a stated tolerance the same decision matches; the environment is kept on request.
    work = tmp_path / "work"
    done = run_replay(
        tenant,
        tmp_path / "audit",
        "--request-id",
        "req-1",
        "--json",
        "--tolerance",
        "0.05",
        "--work-dir",
        str(work),
        "--keep-env",
    )
    assert done.returncode == EXIT_MATCH, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["match"] is True
    assert result["recorded_output"] == forged
    assert result["replayed_output"] == chain.output
    assert [link["role"] for link in result["chain"]][:2] == ["inference", "deployment"]
    kept = Path(result["work_dir"])
    assert kept.parent == work
    assert (kept / "env").is_dir() and (kept / "weights" / "score.py").is_file()


def test_an_image_only_deployment_prints_the_docker_command_instead(
    tenant: Tenant, tmp_path: Path
) -> None:
    image_digest = "sha256:" + "ab" * 32
    scoring = ev.Scoring(
        "score:predict", image="registry.example/risk/scoring", image_digest=image_digest
    )
    record_chain(tenant, tmp_path, scoring=scoring, lock=None)
    done = run_replay(tenant, tmp_path / "audit", "--request-id", "req-1")
    assert done.returncode == EXIT_IMAGE_ONLY, done.stdout + done.stderr
    command = next(line.strip() for line in done.stdout.splitlines() if "docker run" in line)
    assert command.startswith("docker run --rm -i ")
    assert f"registry.example/risk/scoring@{image_digest}" in command
    assert "score:predict" in command
    # The command reads the verified weights and the recorded input, kept for it.
    mount = command.split(" -v ", 1)[1].split(":/replay", 1)[0]
    work = Path(mount)
    assert json.loads((work / "input.json").read_text()) == APPLICANT
    assert hash_model(work / "weights").version_hash in done.stdout
    shutil.rmtree(work)


def test_the_payload_needs_a_purpose_and_the_auditor_role(
    tenant: Tenant, tmp_path: Path, lockfile: Path
) -> None:
    record_chain(tenant, tmp_path, scoring=locked(lockfile), lock=lockfile)
    done = run_replay(tenant, tmp_path / "audit", "--request-id", "req-1", purpose=None)
    assert done.returncode == EXIT_USAGE
    assert "CUSTODY_PURPOSE" in done.stderr and "--purpose" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = run_replay(tenant, tmp_path / "audit", "--request-id", "req-1", role="writer")
    assert done.returncode == EXIT_REFUSED, done.stdout + done.stderr
    assert "auditor" in done.stderr
    with client(tenant, "auditor", tmp_path / "audit") as no_purpose:
        decision = trace_decision(no_purpose, "req-1")
        assert decision.scoring.entry_point == "score:predict"
        with pytest.raises(ReplayError, match="CUSTODY_PURPOSE") as refused:
            read_recorded(no_purpose, decision)
        assert refused.value.what == "payload"
    with client(tenant, "auditor", tmp_path / "audit", purpose=PURPOSE) as auditor:
        assert read_recorded(auditor, decision).input == APPLICANT
        reads = list(auditor.audit.list(purpose=PURPOSE))
        assert reads  # the replay's read of the input is on the access record


def test_a_broken_chain_is_refused_naming_the_missing_link(tenant: Tenant, tmp_path: Path) -> None:
    record_chain(tenant, tmp_path, scoring=None, lock=None)
    done = run_replay(tenant, tmp_path / "audit", "--request-id", "req-1")
    assert done.returncode == EXIT_REFUSED, done.stdout + done.stderr
    assert "deployment dep-1 records no scoring" in done.stderr
    assert "Scoring(entry_point=" in done.stderr
    done = run_replay(tenant, tmp_path / "audit", "--request-id", "req-never")
    assert done.returncode == EXIT_REFUSED, done.stdout + done.stderr
    assert "req-never" in done.stderr


def test_usage_errors_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "custody", "replay"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == EXIT_USAGE
    assert "--request-id" in done.stderr


def test_only_hash_pinned_requirements_files_are_installable(tmp_path: Path) -> None:
    uv = tmp_path / "uv.lock"
    uv.write_text('version = 1\n[[package]]\nname = "numpy"\nversion = "2.3.5"\n')
    with pytest.raises(ReplayError, match="uv export"):
        check_lockfile(uv)
    loose = tmp_path / "requirements.txt"
    loose.write_text("numpy==2.3.5\n")
    with pytest.raises(ReplayError, match=r"line 1.*--hash"):
        check_lockfile(loose)
    nested = tmp_path / "nested.txt"
    nested.write_text("-r other.txt\n")
    with pytest.raises(ReplayError, match="-r"):
        check_lockfile(nested)
    pinned = tmp_path / "pinned.txt"
    pinned.write_text("# lock\nnumpy==2.3.5 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    assert check_lockfile(pinned) == ["numpy==2.3.5"]


def test_outputs_compare_as_json_with_an_optional_tolerance() -> None:
    assert same({"score": 0.5, "d": "approve"}, {"d": "approve", "score": 0.5})
    assert not same({"score": 0.5}, {"score": 0.5000001})
    assert same({"score": 0.5}, {"score": 0.5000001}, tolerance=1e-6)
    assert not same(True, 1)
    assert not same([1, 2], [1, 2, 3])
    assert not same({"decision": "approve"}, {"decision": "refer"}, tolerance=1.0)


# ----- weights and lockfile in an S3-compatible object store


def test_weights_and_lockfile_replay_from_s3(
    server: Server,
    tmp_path: Path,
    lockfile: Path,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    httpx.put(f"{s3_endpoint}/models").raise_for_status()
    tenant = new_tenant(server, "s3")
    trained = train(tmp_path / "build")
    s3 = boto3.client("s3")
    try:
        for f in sorted(trained.model_dir.iterdir()):
            s3.upload_file(str(f), "models", f"credit-lr/1/{f.name}")
        s3.upload_file(str(lockfile), "models", "credit-lr/1.lock/requirements.txt")
        scoring = ev.Scoring(
            "score:predict",
            lockfile_digest=lockfile_digest(lockfile),
            lockfile_uri="s3://models/credit-lr/1.lock/requirements.txt",
        )
        chain = record_chain(
            tenant,
            tmp_path,
            scoring=scoring,
            lock=lockfile,
            weights_uri="s3://models/credit-lr/1/",
            request_id="req-s3",
        )
        assert hash_model(trained.model_dir).version_hash == chain.version_hash

        steps: list[str] = []
        with client(tenant, "auditor", tmp_path / "audit", purpose=PURPOSE) as auditor:
            result = replay(
                auditor,
                "req-s3",
                work_dir=tmp_path / "work",
                keep_env=True,
                progress=steps.append,
            )
            assert result.match, result
            assert result.replayed_output == chain.output == result.recorded_output
            assert result.version_hash == chain.version_hash
            assert result.datasets == (digest_dataset(trained.data).digest,)
            assert [link.role for link in result.chain] == [
                "inference",
                "deployment",
                "model_version",
                "training_run",
                "dataset_version",
            ]
            assert result.work_dir is not None
            kept = Path(result.work_dir)
            assert kept.parent == tmp_path / "work"
            assert hash_model(kept / "weights").version_hash == chain.version_hash
            assert any("lockfile verified" in s for s in steps)

            # Someone overwrites one object in the bucket: refused, naming the file.
            tampered = tmp_path / "weights.npy"
            np.save(tampered, np.zeros(4))
            s3.upload_file(str(tampered), "models", "credit-lr/1/weights.npy")
            with pytest.raises(ReplayError) as refused:
                replay(auditor, "req-s3", work_dir=tmp_path / "work")
            assert refused.value.what == "weights"
            assert "weights.npy" in refused.value.message
            assert chain.version_hash in refused.value.message
            assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [kept.name]
    finally:
        s3.close()
