"""The independent verifier against the real server: checkpoints, entries, inclusion and
consistency proofs, tlog-proofs and proven answers, all fetched over plain HTTP and checked
with :mod:`custody.verify` under the tenant's pinned keys; and the checkpoint store catching a
rewound and a forked log."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Tenant
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custody.errors import ForkDetected, VerificationError
from custody.verify import (
    Checkpoint,
    CheckpointStore,
    Verifier,
    canonical_bytes,
    check_payload_commitment,
    envelope_leaf_hash,
    merkle,
    open_checkpoint,
    verify_answer,
    verify_inclusion,
    verify_tlog_proof,
)
from custody.verify.note import key_id

PURPOSE = {"Custody-Purpose": "sdk-verify-tests"}


def client(tenant: Tenant, role: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{tenant.url}/v1/tenants/{tenant.name}",
        headers={"Authorization": f"Bearer {tenant.token(role)}", **PURPOSE},
        timeout=30,
    )


def append(tenant: Tenant, n: int, log: str = "governance", **extra: Any) -> list[dict[str, Any]]:
    entries = [
        {
            "type": "x.test.note",
            "subject": {"kind": "x_note", "id": f"note-{i}"},
            "body": {"n": i},
            **extra,
        }
        for i in range(n)
    ]
    with client(tenant, "writer") as http:
        r = http.post(f"/logs/{log}/entries", json=entries)
        assert r.status_code == 201, r.text
        results: list[dict[str, Any]] = r.json()["results"]
    return results


def pinned(tenant: Tenant) -> list[Verifier]:
    return [Verifier.parse(k) for k in tenant.vkeys().values()]


def checkpoint(tenant: Tenant, log: str = "governance") -> Checkpoint:
    with client(tenant, "auditor") as http:
        r = http.get(f"/logs/{log}/checkpoint")
        r.raise_for_status()
    assert r.headers["content-type"].startswith("text/plain")
    return open_checkpoint(r.text, pinned(tenant))


def consistency(tenant: Tenant, old: int, new: int) -> list[bytes]:
    with client(tenant, "auditor") as http:
        r = http.get("/logs/governance/proof/consistency", params={"from": old, "to": new})
        r.raise_for_status()
    body = r.json()
    assert (body["from"], body["to"]) == (old, new)
    return [base64.b64decode(h) for h in body["hashes"]]


def test_entries_prove_into_the_signed_checkpoint(tenant: Tenant) -> None:
    results = append(tenant, 3, payload={"author_email": "ada@example.com"})
    cp = checkpoint(tenant)
    assert cp.origin == f"sdk.test/{tenant.name}/governance"
    assert cp.size >= results[-1]["index"] + 1
    with client(tenant, "auditor") as http:
        for result in results:
            index = result["index"]
            record = http.get(f"/logs/governance/entries/{index}").json()
            leaf = envelope_leaf_hash(record["envelope"])
            assert leaf.hex() == record["leaf_hash"] == result["leaf_hash"]
            check_payload_commitment(
                record["envelope"], record["payload"], bytes.fromhex(record["salt"])
            )
            with pytest.raises(VerificationError) as e:
                check_payload_commitment(
                    record["envelope"],
                    {"author_email": "eve@example.com"},
                    bytes.fromhex(record["salt"]),
                )
            assert e.value.check == "payload_commitment"

            proof = http.get(
                "/logs/governance/proof/inclusion", params={"index": index, "size": cp.size}
            ).json()
            hashes = [base64.b64decode(h) for h in proof["hashes"]]
            verify_inclusion(leaf, index, cp.size, hashes, cp.root)
            with pytest.raises(VerificationError):
                verify_inclusion(leaf, index + 1, cp.size, hashes, cp.root)

            text = http.get(f"/logs/governance/entries/{index}/tlog-proof").text
            got = verify_tlog_proof(
                text, pinned(tenant), leaf_data=canonical_bytes(record["envelope"])
            )
            assert got.origin == cp.origin
            verify_tlog_proof(text, pinned(tenant), leaf_hash=leaf)
            with pytest.raises(VerificationError):
                verify_tlog_proof(text, pinned(tenant), leaf_data=b"another leaf")


def test_a_changed_checkpoint_or_a_foreign_key_is_refused(tenant: Tenant, server: Any) -> None:
    append(tenant, 1)
    with client(tenant, "auditor") as http:
        text = http.get("/logs/governance/checkpoint").text
    lines = text.split("\n")
    lines[1] = str(int(lines[1]) + 1)
    with pytest.raises(VerificationError) as e:
        open_checkpoint("\n".join(lines), pinned(tenant))
    assert e.value.check == "signature"
    inference_only = [Verifier.parse(tenant.vkeys()["inference"])]
    with pytest.raises(VerificationError) as e:
        open_checkpoint(text, inference_only)
    assert e.value.check == "signature"
    assert e.value.target == f"sdk.test/{tenant.name}/governance checkpoint"


def test_a_trace_answer_verifies_and_a_changed_one_does_not(tenant: Tenant) -> None:
    [first] = append(tenant, 1)
    [second] = append(tenant, 1, related=[{"kind": "x_note", "id": first["id"], "rel": "follows"}])
    with client(tenant, "auditor") as http:
        r = http.get("/trace", params={"entry": second["id"]})
        assert r.status_code == 200, r.text
        answer = r.json()
    report = verify_answer(answer, pinned(tenant))
    assert report.entries == len(answer["entries"]) >= 1
    assert report.checkpoints["governance"].origin.endswith(f"/{tenant.name}/governance")

    changed = copy.deepcopy(answer)
    entry = changed["entries"][0]
    entry["envelope"]["body"]["n"] = 99
    with pytest.raises(VerificationError) as e:
        verify_answer(changed, pinned(tenant))
    assert (e.value.check, e.value.target) == ("leaf_hash", f"governance#{entry['index']}")

    with pytest.raises(VerificationError) as e:
        verify_answer(answer, [Verifier.parse(tenant.vkeys()["inference"])])
    assert e.value.check == "signature"


def test_the_store_follows_a_growing_log(tenant: Tenant, tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "seen")
    origin = f"sdk.test/{tenant.name}/governance"
    assert store.latest(origin, pinned(tenant)) is None
    for round_ in range(4):
        append(tenant, round_ + 1)
        cp = checkpoint(tenant)
        needed = store.needs_proof(cp)
        store.advance(cp, consistency(tenant, needed, cp.size) if needed is not None else None)
        assert needed is None if round_ == 0 else needed is not None
        again = CheckpointStore(tmp_path / "seen").latest(origin, pinned(tenant))
        assert again == cp
    store.advance(cp, None)
    assert store.needs_proof(cp) is None


def test_the_store_catches_a_rewound_log(tenant: Tenant, tmp_path: Path) -> None:
    append(tenant, 2)
    older = checkpoint(tenant)
    append(tenant, 2)
    newer = checkpoint(tenant)
    store = CheckpointStore(tmp_path)
    store.advance(newer, None)
    with pytest.raises(ForkDetected) as e:
        store.advance(older, None)
    assert f"size {newer.size}" in e.value.message
    assert f"size {older.size}" in e.value.message
    assert "keep both checkpoints" in e.value.message
    assert store.latest(newer.origin, pinned(tenant)) == newer


def sign_checkpoint(key: Ed25519PrivateKey, verifier: Verifier, size: int, root: bytes) -> str:
    text = f"{verifier.name}\n{size}\n{base64.b64encode(root).decode()}\n"
    sig = base64.b64encode(verifier.key_id + key.sign(text.encode())).decode()
    return f"{text}\n\u2014 {verifier.name} {sig}\n"


def test_the_store_catches_a_forked_log(tenant: Tenant, tmp_path: Path) -> None:
    append(tenant, 3)
    real = checkpoint(tenant)
    # The same origin under a key of our own: a log operator showing two histories.
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    own = Verifier(name=real.origin, key_id=key_id(real.origin, 0x01, raw), public_key=raw)
    store = CheckpointStore(tmp_path)
    store.advance(real, None)

    other_root = merkle.root_of_data([b"forged %d" % i for i in range(real.size)])
    same_size = open_checkpoint(sign_checkpoint(key, own, real.size, other_root), [own])
    with pytest.raises(ForkDetected, match="two roots"):
        store.advance(same_size, [])

    leaves = [b"forged %d" % i for i in range(real.size + 2)]
    bigger_root = merkle.root_of_data(leaves)
    bigger = open_checkpoint(sign_checkpoint(key, own, real.size + 2, bigger_root), [own])
    with pytest.raises(ForkDetected, match="not consistent"):
        store.advance(bigger, [merkle.leaf_hash(leaves[-1])] * 3)
    assert store.latest(real.origin, pinned(tenant)) == real
    assert len(list(tmp_path.glob("*.conflict-*"))) == 2


def test_the_store_refuses_an_edited_file(tenant: Tenant, tmp_path: Path) -> None:
    append(tenant, 1)
    cp = checkpoint(tenant)
    store = CheckpointStore(tmp_path)
    store.advance(cp, None)
    path = store.path_for(cp.origin)
    path.write_text(cp.text.replace(f"\n{cp.size}\n", f"\n{cp.size + 5}\n"), encoding="utf-8")
    with pytest.raises(VerificationError):
        store.latest(cp.origin, pinned(tenant))
