"""Known answers for the independent verifier: the RFC 6962 eight-leaf tree, all transparency-dev
inclusion and consistency probes, the signed-note vectors and the DSSE PAE vector."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custody.errors import ConfigurationError, VerificationError
from custody.verify import dsse, merkle, note

VECTORS = Path(__file__).resolve().parents[2] / "testdata" / "vectors"
MERKLE = VECTORS / "merkle"
#: Equal "roots" of 12 bytes accepted upstream; not 32 bytes, so never a hash here (SPEC §3).
NOT_A_HASH_PROBE = "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"


def load(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def probes(kind: str) -> list[str]:
    return sorted(p.relative_to(MERKLE).as_posix() for p in (MERKLE / kind).rglob("*.json"))


def b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


KAT = load(MERKLE / "rfc6962_8leaf_kat.json")
LEAVES = [bytes.fromhex(h) for h in KAT["leaf_inputs_hex"]]


def test_hasher_known_answers() -> None:
    h = KAT["hasher_vectors"]
    assert merkle.EMPTY_ROOT.hex() == h["empty_root"] == KAT["empty_root_hex"]
    assert merkle.leaf_hash(b"").hex() == h["leaf('')"]
    assert merkle.leaf_hash(b"L123456").hex() == h["leaf('L123456')"]
    assert merkle.node_hash(b"N123", b"N456").hex() == h["node('N123','N456')"]


def test_roots_of_every_prefix_of_the_eight_leaf_tree() -> None:
    assert merkle.root([]) == merkle.EMPTY_ROOT
    for size, want in KAT["roots_by_size_hex"].items():
        n = int(size)
        assert merkle.root_of_data(LEAVES[:n]).hex() == want
        assert merkle.root([merkle.leaf_hash(d) for d in LEAVES[:n]]).hex() == want


def test_root_refuses_leaf_data_passed_as_hashes() -> None:
    with pytest.raises(VerificationError):
        merkle.root(LEAVES)


def test_eight_leaf_inclusion_and_consistency_proofs() -> None:
    for p in KAT["inclusion_proofs"]:
        size, index = p["tree_size"], p["leaf_index"]
        proof = [bytes.fromhex(h) for h in p["path_hex"]]
        root = bytes.fromhex(KAT["roots_by_size_hex"][str(size)])
        merkle.verify_inclusion(merkle.leaf_hash(LEAVES[index]), index, size, proof, root)
        with pytest.raises(VerificationError) as e:
            merkle.verify_inclusion(merkle.leaf_hash(b"other"), index, size, proof, root)
        assert e.value.check == "inclusion"
    for p in KAT["consistency_proofs"]:
        first, second = p["first"], p["second"]
        proof = [bytes.fromhex(h) for h in p["proof_hex"]]
        old = bytes.fromhex(KAT["roots_by_size_hex"][str(first)])
        new = bytes.fromhex(KAT["roots_by_size_hex"][str(second)])
        merkle.verify_consistency(first, second, proof, old, new)
        if proof:
            with pytest.raises(VerificationError) as e:
                merkle.verify_consistency(first, second, proof[:-1], old, new)
            assert e.value.check == "consistency"


def test_consistency_from_the_empty_tree_needs_an_empty_proof() -> None:
    new = bytes.fromhex(KAT["roots_by_size_hex"]["8"])
    merkle.verify_consistency(0, 8, [], merkle.EMPTY_ROOT, new)
    merkle.verify_consistency(0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(0, 8, [new], merkle.EMPTY_ROOT, new)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(0, 8, [], new, new)


@pytest.mark.parametrize("name", probes("inclusion"))
def test_inclusion_probe(name: str) -> None:
    p = load(MERKLE / name)
    proof = [b64(h) for h in p["proof"] or []]

    def run() -> None:
        merkle.verify_inclusion(
            b64(p["leafHash"]), p["leafIdx"], p["treeSize"], proof, b64(p["root"])
        )

    if p["wantErr"]:
        with pytest.raises(VerificationError):
            run()
    else:
        run()


@pytest.mark.parametrize("name", probes("consistency"))
def test_consistency_probe(name: str) -> None:
    p = load(MERKLE / name)
    proof = [b64(h) for h in p["proof"] or []]

    def run() -> None:
        merkle.verify_consistency(p["size1"], p["size2"], proof, b64(p["root1"]), b64(p["root2"]))

    if p["wantErr"] or name == NOT_A_HASH_PROBE:
        with pytest.raises(VerificationError):
            run()
    else:
        run()


def test_probe_counts_and_the_one_deliberate_difference() -> None:
    assert len(probes("inclusion")) == 98
    assert len(probes("consistency")) == 98
    p = load(MERKLE / NOT_A_HASH_PROBE)
    assert not p["wantErr"]
    assert len(b64(p["root1"])) == 12
    real = merkle.leaf_hash(b"")
    merkle.verify_consistency(1, 1, [], real, real)


NOTES = load(VECTORS / "signed-note" / "signed_note_kat.json")


@pytest.mark.parametrize("case", NOTES["vkeys"], ids=lambda c: c["vkey"].split("+")[0])
def test_verifier_keys_parse(case: dict[str, str]) -> None:
    v = note.Verifier.parse(case["vkey"])
    assert v.key_id.hex() == case["key_id_hex"]
    assert v.vkey() == case["vkey"]


@pytest.mark.parametrize("case", NOTES["bad_vkeys"], ids=lambda c: c["why"])
def test_bad_verifier_keys_are_refused(case: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        note.Verifier.parse(case["vkey"])


def test_a_verifier_key_with_a_wrong_key_id_is_refused() -> None:
    name, _, key = NOTES["vkeys"][0]["vkey"].split("+", 2)
    with pytest.raises(ConfigurationError, match="does not match"):
        note.Verifier.parse(f"{name}+00000000+{key}")


@pytest.mark.parametrize("case", NOTES["notes"], ids=lambda c: c["id"])
def test_signed_notes_open(case: dict[str, Any]) -> None:
    verifiers = [note.Verifier.parse(k) for k in case["verifier_keys"]]
    opened = note.open_note(case["note"], verifiers)
    assert opened.text == case["text"]
    assert sorted(opened.signers) == sorted(case["expect_verified"])


@pytest.mark.parametrize("case", NOTES["must_reject"], ids=lambda c: c["id"])
def test_bad_notes_are_refused(case: dict[str, Any]) -> None:
    verifiers = [note.Verifier.parse(k) for k in case["verifier_keys"]]
    with pytest.raises(VerificationError) as e:
        note.open_note(case["note"], verifiers)
    assert e.value.check == "signature"


@pytest.mark.parametrize("case", NOTES["must_reject_note_bytes_hex"], ids=lambda c: c["id"])
def test_notes_that_are_not_utf8_are_refused(case: dict[str, Any]) -> None:
    verifiers = [note.Verifier.parse(k) for k in case["verifier_keys"]]
    with pytest.raises(VerificationError):
        note.open_note(bytes.fromhex(case["note_hex"]), verifiers)


def test_checkpoint_body_is_read_strictly() -> None:
    text = NOTES["go_sumdb_tlog_tree_note"]["text"]
    origin, size, root = note.parse_checkpoint_body(text)
    assert (origin, size) == ("go.sum database tree", 123456789012)
    assert root == merkle.leaf_hash(b"hello world")
    bad = [
        text.replace("123456789012", "0123456789012"),
        text.replace("123456789012", "-1"),
        text + "extension\n",
        text.replace("Tszz", "Tsz"),
        "origin\n1\n" + base64.b64encode(b"x" * 31).decode() + "\n",
        "\n1\n" + base64.b64encode(b"x" * 32).decode() + "\n",
    ]
    for body in bad:
        with pytest.raises(VerificationError) as e:
            note.parse_checkpoint_body(body)
        assert e.value.check == "checkpoint"


def test_a_checkpoint_needs_the_key_named_like_its_origin() -> None:
    case = NOTES["notes"][1]
    peter = note.Verifier.parse(case["verifier_keys"][0])
    with pytest.raises(VerificationError) as e:
        note.open_checkpoint(case["note"], [peter])
    assert e.value.check == "signature"


DSSE = load(VECTORS / "dsse" / "dsse_kat.json")


def test_dsse_pae_known_answer() -> None:
    got = dsse.pae(DSSE["payload_type"], DSSE["serialized_body"].encode())
    assert got == DSSE["pae"].encode()


def dsse_kat_key() -> ec.EllipticCurvePublicKey:
    k = DSSE["key"]
    numbers = ec.EllipticCurvePublicNumbers(
        int(k["x_decimal"]), int(k["y_decimal"]), ec.SECP256R1()
    )
    return numbers.public_key()


def test_dsse_known_envelope_verifies_once_its_signature_is_der() -> None:
    pem = dsse_kat_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    envelope = DSSE["envelope"]
    raw = base64.b64decode(envelope["signatures"][0]["sig"])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    as_der = dict(envelope, signatures=[{"sig": base64.b64encode(der).decode()}])
    assert dsse.verify_envelope(as_der, pem) == b"hello world"
    dsse_kat_key().verify(der, got_pae(), ec.ECDSA(hashes.SHA256()))
    tampered = dict(as_der, payload=base64.b64encode(b"hello world!").decode())
    with pytest.raises(VerificationError) as e:
        dsse.verify_envelope(tampered, pem)
    assert e.value.check == "dsse"


def got_pae() -> bytes:
    return dsse.pae(DSSE["payload_type"], DSSE["serialized_body"].encode())
