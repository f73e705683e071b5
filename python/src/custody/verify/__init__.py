"""Independent verification of everything custody hands out: Merkle proofs (RFC 9162), signed
checkpoints (C2SP signed-note and tlog-checkpoint, Ed25519), tlog-proofs, proven answers,
evidence packs and DSSE approvals.

Written from the public specifications alone and sharing no code with the server, so a bug or a
compromise on the server side cannot also blind the check. Trust comes only from verifier keys
the caller pins; keys that arrive with an answer or a pack are never used to verify it.
"""

from __future__ import annotations

from custody.verify.dsse import pae, public_key_fingerprint, verify_envelope
from custody.verify.entry import (
    canonical_bytes,
    check_payload_commitment,
    envelope_leaf_hash,
    payload_commitment,
)
from custody.verify.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    node_hash,
    root,
    root_of_data,
    verify_consistency,
    verify_inclusion,
)
from custody.verify.note import Checkpoint, OpenedNote, Verifier, open_checkpoint, open_note
from custody.verify.pack import PackProblem, PackReport, verify_pack
from custody.verify.proven import ProvenReport, verify_answer
from custody.verify.store import CheckpointStore
from custody.verify.tlog_proof import TlogProof, parse_tlog_proof, verify_tlog_proof

__all__ = [
    "EMPTY_ROOT",
    "Checkpoint",
    "CheckpointStore",
    "OpenedNote",
    "PackProblem",
    "PackReport",
    "ProvenReport",
    "TlogProof",
    "Verifier",
    "canonical_bytes",
    "check_payload_commitment",
    "envelope_leaf_hash",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "pae",
    "parse_tlog_proof",
    "payload_commitment",
    "public_key_fingerprint",
    "root",
    "root_of_data",
    "verify_answer",
    "verify_consistency",
    "verify_envelope",
    "verify_inclusion",
    "verify_pack",
    "verify_tlog_proof",
]
