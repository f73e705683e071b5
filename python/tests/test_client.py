"""The client against the real server: every log operation, settings from the environment,
each problem raised as its exception, and every answer checked (keys pinned on first use,
checkpoints kept consistent across clients and processes)."""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import Tenant, new_tenant
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from harness import Server

import custody
from custody import evidence as ev
from custody.approvals import Criterion, SigningKey
from custody.entries import Entry, Link
from custody.verify.note import key_id


def note(i: int, **payload: object) -> Entry:
    return Entry(
        "x.test.note",
        "note",
        f"n{i}",
        {"i": i},
        payload=dict(payload) if payload else None,
    )


def writer(tenant: Tenant, tmp_path: Path, **kw: object) -> custody.Client:
    return custody.Client(
        tenant.url,
        token=tenant.token("writer"),
        tenant=tenant.name,
        state_dir=tmp_path / "state",
        **kw,  # type: ignore[arg-type]
    )


def auditor(tenant: Tenant, tmp_path: Path, purpose: str | None = "audit-2026") -> custody.Client:
    return custody.Client(
        tenant.url,
        token=tenant.token("auditor"),
        tenant=tenant.name,
        purpose=purpose,
        state_dir=tmp_path / "state",
    )


def register_chain(client: custody.Client, tmp_path: Path) -> custody.ModelDigest:
    """A dataset version, the run trained on it, and the model version it produced."""
    dataset = "sha256:" + "11" * 32
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    (weights / "model.bin").write_bytes(b"\x00" * 1024)
    digest = custody.hash_model(weights)
    client.evidence.register_dataset(
        name="loans",
        version="2026-11",
        digest=dataset,
        uri="s3://lake/loans/",
        legal_basis="contract",
    )
    client.evidence.record_training_run(
        run_id="run-1",
        datasets=[dataset],
        code_commit="a" * 40,
        environment={"lockfile_digest": "sha256:" + "22" * 32},
        metrics={"auc": 0.9},
    )
    client.evidence.register_model(name="credit", weights=digest, run_id="run-1")
    return digest


def test_settings_come_from_the_environment(
    tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTODY_SERVER", tenant.url)
    monkeypatch.setenv("CUSTODY_TOKEN", tenant.token("auditor"))
    monkeypatch.setenv("CUSTODY_TENANT", tenant.name)
    monkeypatch.setenv("CUSTODY_PURPOSE", "quarterly-review")
    monkeypatch.setenv("CUSTODY_STATE_DIR", str(tmp_path / "state"))
    with custody.Client() as client:
        me = client.whoami()
        assert me.principal == tenant.principal("auditor")
        assert me.roles == ["auditor"]
        assert "cst_" not in repr(client)
        client.logs.get("governance", 0)
    # The read was recorded with the purpose from the environment.
    with auditor(tenant, tmp_path) as a:
        reads = list(a.audit.list(purpose="quarterly-review"))
    assert reads, "the access log records the purpose the client sent"


def test_bad_settings_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with pytest.raises(custody.ConfigurationError, match="server"):
        custody.Client("ftp://x", state_dir=tmp_path)
    with pytest.raises(custody.ConfigurationError, match="tenant"):
        custody.Client("http://127.0.0.1:1", tenant="Not A Tenant", state_dir=tmp_path)
    with pytest.raises(custody.ConfigurationError, match="ca_cert"):
        custody.Client("https://x", ca_cert=tmp_path / "missing.pem", state_dir=tmp_path)
    with pytest.raises(custody.ConfigurationError, match="timeout"):
        custody.Client("http://x", timeout=0, state_dir=tmp_path)
    client = custody.Client("http://127.0.0.1:1", state_dir=tmp_path)
    with pytest.raises(custody.ConfigurationError, match="no tenant"):
        client.logs.get("governance", 0)
    with pytest.raises(custody.ConfigurationError, match="log 'audit'"):
        client.with_tenant("acme").logs.get("audit", 0)
    client.close()


def test_an_unreachable_server_is_a_transport_error(tmp_path: Path) -> None:
    with (
        custody.Client("http://127.0.0.1:9", tenant="acme", state_dir=tmp_path, timeout=2) as c,
        pytest.raises(custody.TransportError, match=r"GET /v1/tenants/acme"),
    ):
        c.logs.get("governance", 0)


def test_append_one_many_and_a_stream_every_result_proven(tenant: Tenant, tmp_path: Path) -> None:
    with writer(tenant, tmp_path) as client:
        one = client.logs.append(note(1), log="governance")
        assert one.existing is False
        # A retry of the same entry (same client id) is answered with the entry already logged.
        again = client.logs.append(Entry(**{**note(1).__dict__, "id": one.id}), log="governance")
        assert (again.index, again.existing) == (one.index, True)
        batch = client.logs.append_many([note(i) for i in range(2, 7)], log="governance")
        assert [r.index for r in batch] == list(range(one.index + 1, one.index + 6))
        summary = client.logs.stream(
            (note(i, n=i) for i in range(100, 350)), log="governance", chunk_size=64
        )
        assert (summary.appended, summary.existing) == (250, 0)
        assert summary.last_index == summary.checkpoint_size - 1
        # Re-running the same stream with the same ids appends nothing new.
        fixed = [note(i) for i in range(400, 420)]
        client.logs.stream(fixed, log="governance")
        rerun = client.logs.stream(fixed, log="governance")
        assert (rerun.appended, rerun.existing) == (0, 20)


def test_an_atomic_batch_with_one_bad_entry_writes_nothing(tenant: Tenant, tmp_path: Path) -> None:
    with writer(tenant, tmp_path) as client:
        before = client.logs.checkpoint("governance").size
        bad = Entry("x.test.note", "note", "", {})
        with pytest.raises(custody.BadRequest) as err:
            client.logs.append_many([note(1), bad, note(2)], log="governance")
        assert err.value.status == 400
        assert any(e.field.startswith("[1].subject") for e in err.value.errors), err.value.errors
        assert client.logs.checkpoint("governance").size == before


def test_reads_are_proven_and_listings_paginate(tenant: Tenant, tmp_path: Path) -> None:
    with writer(tenant, tmp_path) as w:
        results = w.logs.append_many([note(i, secret=f"s{i}") for i in range(30)], log="governance")
    with auditor(tenant, tmp_path) as a:
        record = a.logs.get("governance", results[3].index)
        assert record.envelope["subject"]["id"] == "n3"
        assert record.payload == {"secret": "s3"}  # opened against its commitment
        listed = list(a.logs.list("governance", type="x.test.note", page_size=7))
        assert [r.envelope["body"]["i"] for r in listed] == list(range(30))
        page = a.logs.page("governance", subject="n5", limit=5)
        assert [r.index for r in page.entries] == [results[5].index]
        proof = a.logs.inclusion_proof("governance", results[0].index)
        assert proof.leaf_hash == results[0].leaf_hash
        text = a.logs.tlog_proof("governance", results[0].index)
        assert text.startswith("c2sp.org/tlog-proof@v1\n")
        assert a.logs.vkey("governance") == tenant.vkeys()["governance"]
        names = {d.name for d in a.logs.describe()}
        assert names == {"governance", "inference", "access"}
    # Without a purpose the payload is not returned, and the entry still verifies.
    with auditor(tenant, tmp_path, purpose=None) as a:
        assert a.logs.get("governance", results[3].index).payload is None


def test_consistency_between_two_checkpoints_is_proven(tenant: Tenant, tmp_path: Path) -> None:
    with writer(tenant, tmp_path) as client:
        client.logs.append(note(1), log="governance")
        old = client.logs.checkpoint("governance")
        client.logs.append_many([note(i) for i in range(2, 9)], log="governance")
        proof = client.logs.consistency_proof("governance", old)
        assert (proof.from_, proof.to) == (old.size, old.size + 7)


def test_each_problem_is_raised_as_its_exception(tenant: Tenant, tmp_path: Path) -> None:
    with writer(tenant, tmp_path) as client:
        with pytest.raises(custody.BadRequest) as bad:
            client.logs.append(
                Entry("training_run.recorded", "training_run", "r1", {"status": "maybe"})
            )
        fields = {e.field for e in bad.value.errors}
        assert "body.status" in fields and "body.code_commit" in fields
        assert bad.value.detail and bad.value.type.endswith("/validation")
        with pytest.raises(custody.Forbidden, match="needs the role"):
            client.logs.get("governance", 0)
        with pytest.raises(custody.Forbidden):
            client.admin.create_principal("x", roles=["writer"])
        first = client.logs.append(note(1), log="governance")
        changed = Entry("x.test.note", "note", "n1", {"i": 2}, id=first.id)
        with pytest.raises(custody.Conflict):
            client.logs.append(changed, log="governance")
    with auditor(tenant, tmp_path) as a, pytest.raises(custody.NotFound):
        a.logs.get("governance", 10_000)
    with (
        custody.Client(
            tenant.url,
            token="cst_" + "0" * 20 + "_" + "0" * 64,
            tenant=tenant.name,
            state_dir=tmp_path / "s2",
        ) as stranger,
        pytest.raises(custody.Unauthorized),
    ):
        stranger.logs.get("governance", 0)


def test_a_gate_refusal_says_what_is_missing_and_where_it_was_recorded(
    tenant: Tenant, tmp_path: Path
) -> None:
    with custody.Client(
        tenant.url, token=tenant.token("admin"), tenant=tenant.name, state_dir=tmp_path
    ) as admin:
        admin.evidence.set_policy(ev.Policy(targets={"production": ev.GateRule(min_approvals=2)}))
    with writer(tenant, tmp_path) as w:
        version = register_chain(w, tmp_path).version_hash
        with pytest.raises(custody.GateRefused) as refused:
            w.evidence.promote(
                version, environment="production", authoriser=tenant.principal("admin")
            )
    assert refused.value.status == 422
    assert refused.value.missing and refused.value.refusal_index is not None
    with auditor(tenant, tmp_path) as a:
        recorded = a.logs.get("governance", refused.value.refusal_index)
        assert recorded.envelope["type"] == "promotion.refused"
        with pytest.raises(custody.NotAdmitted) as not_admitted:
            a.serving.admit("production", version)
        assert not_admitted.value.missing
        answer = a.serving.admit("production", version, raise_if_not=False)
        assert answer.admitted is False


def test_keys_are_pinned_on_first_use_and_a_changed_key_is_refused(
    tenant: Tenant, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with writer(tenant, tmp_path) as client:
        client.logs.append(note(1), log="governance")
    pinned = (state / "pinned-keys").read_text()
    assert tenant.vkeys()["governance"] in pinned
    # A key of the same name that is not the server's: the server's announced key is refused.
    impostor = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    name = tenant.vkeys()["governance"].split("+", 1)[0]
    forged = (
        f"{name}+{key_id(name, 1, impostor).hex()}+" + base64.b64encode(b"\x01" + impostor).decode()
    )
    (state / "pinned-keys").write_text(forged + "\n")
    with writer(tenant, tmp_path) as client, pytest.raises(custody.VerificationError, match="pin"):
        client.logs.checkpoint("governance")


def test_explicit_pins_are_the_only_keys_trusted(tenant: Tenant, tmp_path: Path) -> None:
    other = new_tenant(tenant.server, "other")
    vkey_file = tmp_path / "governance.vkey"
    vkey_file.write_text(tenant.vkeys()["governance"] + "\n")
    with writer(tenant, tmp_path, vkeys=[str(vkey_file)]) as client:
        client.logs.append(note(1), log="governance")
    with (
        writer(tenant, tmp_path / "b", vkeys=[other.vkeys()["governance"]]) as client,
        pytest.raises(custody.VerificationError, match="pin"),
    ):
        client.logs.append(note(2), log="governance")


def test_a_rewound_log_is_caught_by_the_client(tmp_path: Path) -> None:
    """A server restored from an old backup serves a shorter log than this client verified."""
    data = tmp_path / "server"
    server = Server(data)
    try:
        tenant = new_tenant(server)
        with writer(tenant, tmp_path) as client:
            client.logs.append(note(1), log="governance")
        server.stop()
        shutil.copytree(data, tmp_path / "backup")
        server = Server(data)
        tenant.server = server
        with writer(tenant, tmp_path) as client:
            client.logs.append_many([note(i) for i in range(2, 6)], log="governance")
        server.stop()
        shutil.rmtree(data)
        shutil.copytree(tmp_path / "backup", data)
        server = Server(data)
        tenant.server = server
        with writer(tenant, tmp_path) as client, pytest.raises(custody.ForkDetected):
            client.logs.checkpoint("governance")
    finally:
        server.stop()


def test_a_forked_log_is_caught_by_the_client(tmp_path: Path) -> None:
    """Two servers restored from one backup and written to separately: same key, same origin,
    different histories. A client that saw one refuses the other."""
    data = tmp_path / "server"
    server = Server(data)
    try:
        tenant = new_tenant(server)
        server.stop()
        shutil.copytree(data, tmp_path / "twin")
        server = Server(data)
        tenant.server = server
        with writer(tenant, tmp_path) as client:
            client.logs.append_many([note(i) for i in range(3)], log="governance")
        server.stop()
        server = Server(tmp_path / "twin")
        tenant.server = server
        with writer(tenant, tmp_path / "twin-client") as twin:
            twin.logs.append_many([note(i) for i in range(10, 14)], log="governance")
        with writer(tenant, tmp_path) as client, pytest.raises(custody.ForkDetected):
            client.logs.checkpoint("governance")
    finally:
        server.stop()


def test_evidence_builders_record_a_chain_the_audit_answers_prove(
    tenant: Tenant, tmp_path: Path
) -> None:
    key = SigningKey.generate("ecdsa-p256")
    with custody.Client(
        tenant.url, token=tenant.token("admin"), tenant=tenant.name, state_dir=tmp_path / "state"
    ) as admin:
        admin.evidence.register_approver_key(tenant.principal("approver"), key.public_pem())
        admin.evidence.set_policy(ev.Policy(targets={"staging": ev.GateRule(min_approvals=1)}))
    with writer(tenant, tmp_path) as w:
        digest = register_chain(w, tmp_path)
    with custody.Client(
        tenant.url, token=tenant.token("approver"), tenant=tenant.name, state_dir=tmp_path / "state"
    ) as approver:
        approver.evidence.approve(
            key,
            "credit",
            digest.version_hash,
            target="staging",
            criteria=[Criterion("auc", passed=True)],
            comment="fine",
        )
    with writer(tenant, tmp_path) as w:
        w.evidence.promote(
            digest.version_hash, environment="staging", authoriser=tenant.principal("admin")
        )
        w.evidence.publish_card(
            digest.version_hash,
            {
                "card_version": 1,
                "intended_use": "demo",
                "training_data": {"summary": "loans", "datasets": ["sha256:" + "11" * 32]},
                "evaluation": [
                    {
                        "metric": "auc",
                        "value": 0.9,
                        "dataset": "sha256:" + "11" * 32,
                        "passed": True,
                    }
                ],
                "limitations": ["a test"],
            },
        )
        w.evidence.deploy(
            "dep-1",
            environment="staging",
            endpoint="https://s.example/v1",
            version_hash=digest.version_hash,
            config_digest="sha256:" + "33" * 32,
            scoring=ev.Scoring("score:predict", lockfile_digest="sha256:" + "44" * 32),
        )
        w.evidence.incident(
            "INC-1",
            status="opened",
            severity="low",
            about=[Link("model_version", digest.version_hash, "about")],
        )
    with custody.Client(
        tenant.url, token=tenant.token("service"), tenant=tenant.name, state_dir=tmp_path / "state"
    ) as svc:
        result = svc.evidence.record_inference(
            "req-1",
            version_hash=digest.version_hash,
            deployment_id="dep-1",
            requested_at=ev.rfc3339(),
            decision="approve",
            latency_ms=3.5,
            input={"income": 1},
            output={"score": 0.7},
        )
        assert result.security is None
    with auditor(tenant, tmp_path) as a:
        trace = a.audit.trace(request_id="req-1")
        roles = {e.role for e in trace.entries}
        assert {"inference", "deployment", "model_version", "training_run"} <= roles
        assert any(e.envelope["type"] == "dataset_version.registered" for e in trace.entries)
        history = a.audit.history(digest.version_hash)
        assert history.model_name == "credit"
        assert [c.kind for c in history.changes] == ["promotion"]
        served = a.audit.served("staging")
        assert served.version_hash == digest.version_hash
        assert a.serving.admit("staging", tmp_path / "weights").admitted
        pack = a.audit.export(request_id="req-1")
        assert pack.tenant == tenant.name and pack.entries
        denied = list(a.audit.list(types=["access.read"], actor=tenant.principal("auditor")))
        assert denied and all(r.envelope["type"] == "access.read" for r in denied)


async def test_the_async_client_has_the_same_shape_and_checks(
    tenant: Tenant, tmp_path: Path
) -> None:
    both = tenant.add_member("rw", ["writer", "auditor"])
    async with custody.AsyncClient(
        tenant.url, token=both.token, tenant=tenant.name, state_dir=tmp_path / "s"
    ) as client:
        one = await client.logs.append(note(1), log="governance")
        many = await client.logs.append_many([note(i) for i in range(2, 40)], log="governance")

        async def gen() -> AsyncIterator[Entry]:
            for i in range(50, 80):
                yield note(i)

        summary = await client.logs.stream(gen(), log="governance", chunk_size=8)
        assert summary.appended == 30
        record = await client.logs.get("governance", one.index)
        assert record.leaf_hash == one.leaf_hash
        listed = [r async for r in client.logs.list("governance", type="x.test.note", page_size=9)]
        assert len(listed) == 1 + len(many) + 30
        with pytest.raises(custody.NotFound):
            await client.logs.get("governance", 99_999)
        cp = await client.logs.checkpoint("governance")
        assert cp.size == listed[-1].index + 1
    for part in ("logs", "evidence", "serving", "audit", "admin"):
        with custody.Client("http://127.0.0.1:1", state_dir=tmp_path) as s:
            a = custody.AsyncClient("http://127.0.0.1:1", state_dir=tmp_path)
            public = {n for n in dir(getattr(s, part)) if not n.startswith("_")}
            async_public = {n for n in dir(getattr(a, part)) if not n.startswith("_")}
            await a.aclose()
        assert public == async_public, part
    sync_top = {n for n in dir(custody.Client) if not n.startswith("_")} - {"close"}
    async_top = {n for n in dir(custody.AsyncClient) if not n.startswith("_")} - {"aclose"}
    assert sync_top == async_top


def test_administration_principals_and_tokens(server: Server, tmp_path: Path) -> None:
    with custody.Client(server.url, token=server.admin_token, state_dir=tmp_path) as root:
        name = f"adm-{tmp_path.name[-8:].lower().replace('_', '-')}"
        made = root.admin.create_tenant(name)
        assert made.name == name and {log.name for log in made.logs} >= {"governance"}
        assert name in root.admin.tenants()
        with pytest.raises(custody.Conflict):
            root.admin.create_tenant(name)
        acme = root.with_tenant(name)
        created = acme.admin.create_principal("ci-pipeline", roles=["writer"], kind="service")
        assert created.token.token.startswith("cst_")
        ids = {p.id for p in acme.admin.principals()}
        assert created.principal.id in ids
        second = acme.admin.issue_token(created.principal.id, expires_in_days=1)
        listed = {t.id for t in acme.admin.tokens(created.principal.id)}
        assert second.info.id in listed
        with custody.Client(
            server.url, token=second.token, tenant=name, state_dir=tmp_path
        ) as pipeline:
            assert pipeline.whoami().principal == created.principal.id
            acme.admin.revoke_token(second.info.id)
            with pytest.raises(custody.Unauthorized):
                pipeline.whoami()
        with pytest.raises(custody.BadRequest) as bad:
            acme.admin.create_principal("x", roles=["emperor"])
        assert bad.value.errors


def test_a_rollback_a_retirement_and_an_incident_are_recorded_and_answered(
    tenant: Tenant, tmp_path: Path
) -> None:
    key = SigningKey.generate("ed25519")
    with custody.Client(
        tenant.url, token=tenant.token("admin"), tenant=tenant.name, state_dir=tmp_path / "state"
    ) as admin:
        admin.evidence.register_approver_key(tenant.principal("approver"), key.public_pem())
        admin.evidence.set_policy(ev.Policy(targets={"production": ev.GateRule(min_approvals=1)}))
    versions = []
    with writer(tenant, tmp_path) as w:
        first = register_chain(w, tmp_path)
        second_dir = tmp_path / "weights-2"
        second_dir.mkdir()
        (second_dir / "model.bin").write_bytes(b"\x01" * 1024)
        second = custody.hash_model(second_dir)
        w.evidence.register_model(name="credit", weights=second, run_id="run-1")
        versions = [first.version_hash, second.version_hash]
    with custody.Client(
        tenant.url, token=tenant.token("approver"), tenant=tenant.name, state_dir=tmp_path / "state"
    ) as approver:
        for v in versions:
            approver.evidence.approve(key, "credit", v, target="production")
    admin_id = tenant.principal("admin")
    with writer(tenant, tmp_path) as w:
        w.evidence.promote(versions[0], environment="production", authoriser=admin_id)
        w.evidence.promote(
            versions[1], environment="production", authoriser=admin_id, replaces=versions[0]
        )
        w.evidence.incident(
            "INC-9",
            status="opened",
            severity="high",
            about=[Link("model_version", versions[1], "about")],
        )
        w.evidence.incident("INC-9", status="updated", category="drift")
        w.evidence.rollback(
            to=versions[0],
            replaces=versions[1],
            environment="production",
            authoriser=admin_id,
            incident="INC-9",
            reason="drift after the release",
        )
        w.evidence.incident("INC-9", status="closed", resolution_code="rolled-back")
        w.evidence.retire(versions[1], authoriser=admin_id, reason_code="drift")
    with auditor(tenant, tmp_path) as a:
        history = a.audit.history(versions[1])
        assert [c.kind for c in history.changes] == ["promotion", "rollback"]
        assert history.retired and history.serving_in == []
        assert a.audit.served("production").version_hash == versions[0]
        with pytest.raises(custody.NotAdmitted, match="retired"):
            a.serving.admit("production", versions[1])


def test_a_stream_shows_progress_when_asked_and_not_when_piped(
    tenant: Tenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with writer(tenant, tmp_path) as client:
        client.logs.stream((note(i) for i in range(30)), log="governance", chunk_size=10)
        assert "entries" not in capsys.readouterr().err  # stderr is not a terminal here
        client.logs.stream(
            (note(i) for i in range(30, 60)),
            log="governance",
            chunk_size=10,
            progress=True,
            total=30,
        )
        assert "30/30" in capsys.readouterr().err
        with pytest.raises(custody.ConfigurationError, match="chunk_size"):
            client.logs.stream([note(1)], log="governance", chunk_size=0)
