"""custody.recorder against the real server: records carry the version hash and request time of
the moment they were made, arrive in batches, survive a server outage (or are counted and
reported as dropped), a refused record does not hold up the others, and the interpreter's exit
flushes what is queued. Nothing is mocked: an outage is a killed ``custody serve``."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Tenant, free_port, new_tenant, wait_until
from harness import Server

from custody import evidence as ev
from custody.aio import AsyncClient
from custody.client import Client
from custody.entries import rfc3339
from custody.errors import ConfigurationError
from custody.hashing import hash_model
from custody.recorder import InferenceRecorder

PURPOSE = "sdk-recorder-tests"
ENVIRONMENT = "staging"
INPUT = {"income": 52000, "term_months": 36}


def client(tenant: Tenant, role: str, state_dir: Path) -> Client:
    return Client(
        tenant.url,
        token=tenant.token(role),
        tenant=tenant.name,
        purpose=PURPOSE,
        vkeys=tenant.vkeys(),
        state_dir=state_dir,
    )


@dataclass
class Serving:
    """A deployment in ``ENVIRONMENT`` serving ``v1``; ``v2`` registered, ready to promote."""

    deployment_id: str
    v1: str
    v2: str
    writer: Client

    def promote(self, version_hash: str, replaces: str) -> None:
        self.writer.evidence.promote(
            version_hash, environment=ENVIRONMENT, authoriser="usr-release", replaces=replaces
        )


def weights(directory: Path) -> str:
    directory.mkdir(parents=True)
    (directory / "model.safetensors").write_bytes(os.urandom(1024))
    return hash_model(directory).version_hash


def serving(tenant: Tenant, tmp_path: Path) -> Serving:
    """The governance chain inferences need: a policy letting ``staging`` promote without
    approvals, a dataset, a run, two model versions, ``v1`` promoted and deployed."""
    state = tmp_path / "state"
    with client(tenant, "admin", state) as admin:
        admin.evidence.set_policy(ev.Policy(targets={ENVIRONMENT: ev.GateRule(min_approvals=0)}))
    writer = client(tenant, "service", state)
    dataset = "sha256:" + hashlib.sha256(os.urandom(16)).hexdigest()
    writer.evidence.register_dataset(
        name="loans",
        version="2025-10",
        digest=dataset,
        uri="s3://lake/loans/2025-10/",
        legal_basis="gdpr-art6-1b:loan-contract",
    )
    writer.evidence.record_training_run(
        run_id="run-1",
        datasets=[dataset],
        code_commit="4be1f0c2a9d3e8b7c6a5f4e3d2c1b0a998877665",
        environment={"lockfile_digest": dataset},
        metrics={"auc": 0.91},
    )
    hashes = []
    for name in ("v1", "v2"):
        directory = tmp_path / name
        hashes.append(weights(directory))
        writer.evidence.register_model(name="credit", weights=hash_model(directory), run_id="run-1")
    v1, v2 = hashes
    writer.evidence.promote(v1, environment=ENVIRONMENT, authoriser="usr-release")
    writer.evidence.deploy(
        "dep-1",
        environment=ENVIRONMENT,
        endpoint="https://scoring.example/v1/credit",
        version_hash=v1,
        config_digest=dataset,
    )
    return Serving("dep-1", v1, v2, writer)


def inferences(tenant: Tenant, tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """The tenant's inference log as an auditor reads it (proven), by request id; a list per id
    so a duplicate would show."""
    out: dict[str, list[dict[str, Any]]] = {}
    with client(tenant, "auditor", tmp_path / "auditor-state") as auditor:
        for record in auditor.logs.list("inference"):
            envelope = record.envelope
            out.setdefault(envelope["subject"]["id"], []).append(envelope)
    return out


def assert_accounted(recorder: InferenceRecorder) -> None:
    s = recorder.stats()
    assert s.pending == 0
    assert s.recorded == s.sent + s.dropped + s.rejected


def test_batches_carry_the_version_hash_and_time_stamped_at_record_time(
    tenant: Tenant, tmp_path: Path
) -> None:
    setup = serving(tenant, tmp_path)
    # Batches of 4, and a flush interval long enough that nothing leaves before the flush
    # unless a batch fills: records still queued at switch() must keep the hash they were
    # made with.
    recorder = setup.writer.serving.recorder(
        deployment_id=setup.deployment_id,
        version_hash=setup.v1,
        model_name="credit",
        batch_size=4,
        flush_interval=60,
    )
    with recorder:
        made: dict[str, tuple[str, str, str]] = {}
        for i in range(10):
            before = rfc3339()
            assert recorder.record(
                f"req-a{i}", input=INPUT, output={"p": 0.1}, decision="approve", latency_ms=3.5
            )
            made[f"req-a{i}"] = (setup.v1, before, rfc3339())
        setup.promote(setup.v2, replaces=setup.v1)
        recorder.switch(setup.v2)
        assert recorder.version_hash == setup.v2
        explicit = dt.datetime.now(dt.timezone.utc)
        for i in range(5):
            assert recorder.record(
                f"req-b{i}",
                input=INPUT,
                output={"p": 0.7},
                decision=0,
                latency_ms=2,
                score=0.7,
                requested_at=explicit,
            )
            made[f"req-b{i}"] = (setup.v2, rfc3339(explicit), rfc3339(explicit))
        for i in range(3):
            with recorder.request(f"req-c{i}") as r:
                before = r.requested_at
                r.done(input=INPUT, output={"p": 0.2}, decision=True)
            made[f"req-c{i}"] = (setup.v2, before, before)
        assert recorder.flush(30)
        s = recorder.stats()
        assert (s.recorded, s.sent, s.dropped, s.rejected, s.pending) == (18, 18, 0, 0, 0)
        assert s.last_error is None

    logged = inferences(tenant, tmp_path)
    assert set(logged) == set(made)
    for request_id, (version_hash, earliest, latest) in made.items():
        [envelope] = logged[request_id]
        assert envelope["type"] == "inference.recorded"
        assert envelope["body"]["version_hash"] == version_hash
        assert envelope["body"]["model_name"] == "credit"
        assert earliest <= envelope["client_time"] <= latest
        assert {"kind": "deployment", "id": "dep-1", "rel": "served_by"} in envelope["related"]
    assert logged["req-b0"][0]["body"]["score"] == 0.7
    assert logged["req-c0"][0]["body"]["latency_ms"] >= 0
    setup.writer.close()


def test_records_from_many_threads_each_arrive_once(tenant: Tenant, tmp_path: Path) -> None:
    setup = serving(tenant, tmp_path)
    with setup.writer.serving.recorder(
        deployment_id=setup.deployment_id, version_hash=setup.v1, batch_size=50
    ) as recorder:

        def serve(worker: int) -> None:
            for i in range(100):
                assert recorder.record(
                    f"w{worker}-{i}", input=INPUT, output=None, decision=i, latency_ms=1
                )

        threads = [threading.Thread(target=serve, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert recorder.flush(60)
        s = recorder.stats()
        assert (s.recorded, s.sent, s.dropped, s.rejected, s.pending) == (600, 600, 0, 0, 0)
    logged = inferences(tenant, tmp_path)
    assert sorted(logged) == sorted(f"w{w}-{i}" for w in range(6) for i in range(100))
    assert all(len(envelopes) == 1 for envelopes in logged.values())
    setup.writer.close()


def test_record_drops_rather_than_blocks_when_the_queue_is_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="custody")
    # Nothing listens on this port: every send fails, nothing ever leaves the queue.
    nowhere = Client(
        f"http://127.0.0.1:{free_port()}", token="cst_x", tenant="t", state_dir=tmp_path
    )
    recorder = nowhere.serving.recorder(
        deployment_id="dep-1", version_hash="sha256:" + "ab" * 32, max_queue=3, max_block=0
    )
    results = [
        recorder.record(f"r{i}", input=INPUT, output=None, decision="approve", latency_ms=1)
        for i in range(10)
    ]
    # The first three fill the queue; the others return at once, dropped and counted.
    assert results == [True] * 3 + [False] * 7
    s = recorder.stats()
    assert (s.recorded, s.sent, s.dropped, s.pending) == (10, 0, 7, 3)
    assert any("dropped 1 inference records (1 dropped in all" in m for m in caplog.messages)
    wait_until(lambda: recorder.stats().last_error is not None)
    assert any("cannot send inference records" in m for m in caplog.messages)

    assert not recorder.close(timeout=0.2)
    s = recorder.stats()
    assert (s.recorded, s.sent, s.dropped, s.pending) == (10, 0, 10, 0)
    assert any("closed with 3 records" in m for m in caplog.messages)
    assert not recorder.record("late", input=None, output=None, decision="x", latency_ms=1)
    assert recorder.stats().dropped == 11
    assert_accounted(recorder)
    # Inputs are personal data: never in a log line.
    assert not any("52000" in m for m in caplog.messages)
    nowhere.close()


def test_an_outage_loses_nothing_silently(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="custody")
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data)
    try:
        tenant = new_tenant(server, prefix="outage")
        setup = serving(tenant, tmp_path)
        recorder = setup.writer.serving.recorder(
            deployment_id=setup.deployment_id,
            version_hash=setup.v1,
            max_queue=20,
            batch_size=5,
            flush_interval=0.05,
            max_block=0,
        )
        accepted: list[str] = []

        def record(request_id: str) -> None:
            if recorder.record(
                request_id, input=INPUT, output={"p": 0.3}, decision="approve", latency_ms=4
            ):
                accepted.append(request_id)

        for i in range(5):
            record(f"before-{i}")
        assert recorder.flush(30)
        assert recorder.stats().sent == 5

        server.kill()
        record("down-0")
        wait_until(lambda: recorder.stats().last_error is not None, timeout=30)
        for i in range(1, 30):
            record(f"down-{i}")
        s = recorder.stats()
        # 20 kept in memory (queued or in flight), the rest dropped and counted.
        assert (s.recorded, s.sent, s.dropped, s.rejected, s.pending) == (35, 5, 10, 0, 20)
        assert len(accepted) == 25
        assert not recorder.flush(0.2)
        assert any("cannot send inference records" in m for m in caplog.messages)
        assert any("dropped 1 inference records" in m for m in caplog.messages)

        server = Server(data, listen=server.url.removeprefix("http://"))
        assert recorder.flush(60)
        s = recorder.stats()
        assert (s.recorded, s.sent, s.dropped, s.rejected, s.pending) == (35, 25, 10, 0, 0)
        assert any(
            "takes inference records again" in m and "10 records dropped meanwhile" in m
            for m in caplog.messages
        )
        recorder.close()
        assert_accounted(recorder)

        logged = inferences(tenant, tmp_path)
        assert sorted(logged) == sorted(accepted)
        assert all(len(envelopes) == 1 for envelopes in logged.values())
        setup.writer.close()
    finally:
        server.stop()


def test_a_refused_record_is_counted_and_the_others_still_go(
    tenant: Tenant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup = serving(tenant, tmp_path)
    with setup.writer.serving.recorder(
        deployment_id=setup.deployment_id, version_hash=setup.v1, flush_interval=60
    ) as recorder:
        for i in range(3):
            recorder.record(f"ok-{i}", input=INPUT, output=None, decision="approve", latency_ms=1)
        # A decision is a short code, a number or a boolean: the server refuses an object.
        recorder.record(
            "bad-0",
            input=INPUT,
            output=None,
            decision={"label": "approve"},  # type: ignore[arg-type]
            latency_ms=1,
        )
        for i in range(3, 6):
            recorder.record(f"ok-{i}", input=INPUT, output=None, decision="approve", latency_ms=1)
        # An input that is not JSON never reaches the server: rejected here, the others go.
        recorder.record("bad-1", input={"ids": {1, 2}}, output=None, decision="x", latency_ms=1)
        recorder.record("ok-6", input=INPUT, output=None, decision="approve", latency_ms=1)
        assert recorder.flush(30)
        s = recorder.stats()
        assert (s.recorded, s.sent, s.rejected, s.dropped, s.pending) == (9, 7, 2, 0, 0)
        assert s.last_error is not None
    refused = sorted(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert len(refused) == 2
    assert "could not send 1 inference records (request ids bad-1)" in refused[0]
    assert "not JSON serializable" in refused[0]
    assert "the server refused 1 inference records (request ids bad-0)" in refused[1]
    assert "body.decision" in refused[1]
    assert sorted(inferences(tenant, tmp_path)) == [f"ok-{i}" for i in range(7)]
    setup.writer.close()


def test_a_token_that_may_not_write_rejects_its_batches_without_wedging(
    tenant: Tenant, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        client(tenant, "auditor", tmp_path / "state") as auditor,
        auditor.serving.recorder(
            deployment_id="dep-1", version_hash="sha256:" + "cd" * 32, batch_size=2
        ) as recorder,
    ):
        for i in range(5):
            recorder.record(f"r{i}", input=INPUT, output=None, decision="approve", latency_ms=1)
        assert recorder.flush(30)
        s = recorder.stats()
        assert (s.recorded, s.sent, s.rejected, s.pending) == (5, 0, 5, 0)
    assert sum("refused" in m for m in caplog.messages) == 3


EXIT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from custody import Client

    args = json.loads(sys.argv[1])
    client = Client(args["url"], token=args["token"], tenant=args["tenant"],
                    vkeys=args["vkeys"], state_dir=args["state"])
    recorder = client.serving.recorder(deployment_id=args["deployment"],
                                       version_hash=args["version"], flush_interval=3600)
    for i in range(25):
        recorder.record(f"exit-{i}", input={"n": i}, output=None, decision="approve",
                        latency_ms=1)
    print(recorder.stats().pending)
    """
)


def test_a_normal_exit_flushes_what_is_queued(tenant: Tenant, tmp_path: Path) -> None:
    setup = serving(tenant, tmp_path)
    args = {
        "url": tenant.url,
        "token": tenant.token("service"),
        "tenant": tenant.name,
        "vkeys": tenant.vkeys(),
        "state": str(tmp_path / "exit-state"),
        "deployment": setup.deployment_id,
        "version": setup.v1,
    }
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Still queued when the script ended (a one-hour flush interval): the exit sent them.
    assert done.stdout.strip() == "25"
    assert sorted(inferences(tenant, tmp_path)) == sorted(f"exit-{i}" for i in range(25))
    setup.writer.close()


async def test_async_serving_code_records_through_the_async_client(
    tenant: Tenant, tmp_path: Path
) -> None:
    setup = serving(tenant, tmp_path)

    async def predict(recorder: InferenceRecorder, request_id: str) -> None:
        with recorder.request(request_id) as r:
            await asyncio.sleep(0.001)
            r.done(input=INPUT, output={"p": 0.4}, decision="refer", score=0.4)

    async with (
        AsyncClient(
            tenant.url,
            token=tenant.token("service"),
            tenant=tenant.name,
            vkeys=tenant.vkeys(),
            state_dir=tmp_path / "async-state",
        ) as aclient,
        aclient.serving.recorder(
            deployment_id=setup.deployment_id, version_hash=setup.v1
        ) as recorder,
    ):
        await asyncio.gather(*(predict(recorder, f"async-{i}") for i in range(12)))
        assert await recorder.aflush(30)
        s = recorder.stats()
        assert (s.recorded, s.sent, s.pending) == (12, 12, 0)

    logged = inferences(tenant, tmp_path)
    assert sorted(logged) == sorted(f"async-{i}" for i in range(12))
    for [envelope] in logged.values():
        assert envelope["body"]["version_hash"] == setup.v1
        assert envelope["body"]["latency_ms"] >= 1
        assert envelope["body"]["decision"] == "refer"
    setup.writer.close()


def test_settings_are_checked(tmp_path: Path) -> None:
    with Client("http://127.0.0.1:1", state_dir=tmp_path) as c:
        with pytest.raises(ConfigurationError, match="exactly one of version_hash"):
            c.serving.recorder(deployment_id="dep-1")
        with pytest.raises(ConfigurationError, match="is not a version hash"):
            c.serving.recorder(deployment_id="dep-1", version_hash="v1")
        with pytest.raises(ConfigurationError, match="max_queue"):
            c.serving.recorder(
                deployment_id="dep-1", version_hash="sha256:" + "0" * 64, max_queue=0
            )
        with c.serving.recorder(
            deployment_id="dep-1", version_hash="sha256:" + "0" * 64
        ) as recorder:
            with pytest.raises(ConfigurationError, match="is not a version hash"):
                recorder.switch("latest")
            assert recorder.flush(1)
