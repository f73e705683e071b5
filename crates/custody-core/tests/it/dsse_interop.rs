//! Interoperability of custody's approval signatures with pyca/cryptography, code nobody at
//! custody wrote: keys, DSSE envelopes and in-toto approval statements made in Python are read
//! and verified here, and the reverse, with tampered payloads refused on both sides.
//!
//! The Python interpreter is `custody_testkit::python` (a virtual environment with
//! `cryptography` and `rfc8785` from PyPI). When it cannot be had, these tests fail: an
//! interop check that quietly skips proves nothing.

use std::fs;
use std::path::Path;
use std::process::Command;

use custody_core::dsse::{self, DsseEnvelope};
use custody_core::intoto::{
    self, APPROVAL_PREDICATE_TYPE, ApprovalPredicate, Criterion, Decision, INTOTO_PAYLOAD_TYPE,
    Statement,
};
use custody_core::jcs;
use custody_core::signing::{KeyAlgorithm, PublicKey, SigningKey};
use serde_json::Value;

const VERSION_HASH: &str = "5d41402abc4b2a76b9719d911017c592aa1e5d2c3b1f0e0d9c8b7a6954433221";
const EVIDENCE: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// Runs an inline Python script with `dir` as its argument, failing the test on a non-zero
/// exit; returns what it printed as JSON.
fn run_python(script: &str, dir: &Path) -> Value {
    let out = Command::new(custody_testkit::python::python())
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .expect("start python");
    assert!(
        out.status.success(),
        "python failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

fn read_envelope(dir: &Path, name: &str) -> DsseEnvelope {
    let value = jcs::parse_strict(read(dir, name).as_bytes()).expect("envelope is JSON");
    DsseEnvelope::from_json(&value).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Python side of the first direction: keys, statements and envelopes made with pyca alone.
const PYTHON_SIGNS: &str = r#"
import base64, hashlib, json, sys
from pathlib import Path
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

out = Path(sys.argv[1])
PAYLOAD_TYPE = "application/vnd.in-toto+json"

def pae(payload_type, body):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)

def statement(decision):
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "fraud-detector", "digest": {"sha256": VERSION_HASH}}],
        "predicateType": "https://custody.dev/attestation/approval/v1",
        "predicate": {
            "decision": decision,
            "target": "production",
            "criteria": [
                {"name": "auc>=0.90", "passed": True, "evidence": {"sha256": EVIDENCE}},
                {"name": "bias-review", "passed": False},
            ],
            "policy": "release-policy-v3",
            "comment": "validé par l'équipe ✓",
        },
    }

def envelope(payload, sig, keyid):
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}],
    }

keys = {
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
}
result = {}
for name, key in keys.items():
    pub = key.public_key()
    (out / f"{name}.pub.pem").write_bytes(pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (out / f"{name}.pkcs8.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    if name == "p256":
        (out / "p256.sec1.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))
    spki = pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    result[name] = "sha256:" + hashlib.sha256(spki).hexdigest()

    # Deliberately not canonical JSON: custody must verify the bytes as they were signed.
    payload = json.dumps(statement("approve"), indent=1, ensure_ascii=False).encode()
    message = pae(PAYLOAD_TYPE, payload)
    if name == "p256":
        sig = key.sign(message, ec.ECDSA(hashes.SHA256()))
    else:
        sig = key.sign(message)
    (out / f"{name}.dsse.json").write_text(json.dumps(envelope(payload, sig, "py-" + name)))
    forged = json.dumps(statement("reject"), indent=1, ensure_ascii=False).encode()
    (out / f"{name}.tampered.dsse.json").write_text(json.dumps(envelope(forged, sig, "")))

print(json.dumps(result))
"#;

/// Python side of the second direction: checks what Rust wrote with pyca alone.
const PYTHON_VERIFIES: &str = r#"
import base64, hashlib, json, sys
from pathlib import Path
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

out = Path(sys.argv[1])

def pae(payload_type, body):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)

def verify(pub, env):
    payload = base64.b64decode(env["payload"], validate=True)
    sig = base64.b64decode(env["signatures"][0]["sig"], validate=True)
    message = pae(env["payloadType"], payload)
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(sig, message, ec.ECDSA(hashes.SHA256()))
        else:
            pub.verify(sig, message)
        return True
    except InvalidSignature:
        return False

result = {}
for name in ["p256", "ed25519"]:
    pub = serialization.load_pem_public_key((out / f"{name}.pub.pem").read_bytes())
    expected = ec.EllipticCurvePublicKey if name == "p256" else ed25519.Ed25519PublicKey
    assert isinstance(pub, expected), type(pub)
    if name == "p256":
        assert pub.curve.name == "secp256r1", pub.curve.name
    priv = serialization.load_pem_private_key((out / f"{name}.pkcs8.pem").read_bytes(), None)
    spki = pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    assert priv.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == spki
    # The PEM text itself is what OpenSSL writes.
    assert pub.public_bytes(serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo) == (out / f"{name}.pub.pem").read_bytes()

    env = json.loads((out / f"{name}.dsse.json").read_text())
    assert env["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(env["payload"], validate=True)
    stmt = json.loads(payload)
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == "https://custody.dev/attestation/approval/v1"
    tampered = json.loads((out / f"{name}.tampered.dsse.json").read_text())
    result[name] = {
        "fingerprint": "sha256:" + hashlib.sha256(spki).hexdigest(),
        "verifies": verify(pub, env),
        "tampered_verifies": verify(pub, tampered),
        "payload_is_rfc8785": rfc8785.dumps(stmt) == payload,
        "subject": stmt["subject"],
        "predicate": stmt["predicate"],
    }
print(json.dumps(result))
"#;

fn python_script(template: &str) -> String {
    let header = format!("VERSION_HASH = {VERSION_HASH:?}\nEVIDENCE = {EVIDENCE:?}\n");
    format!("{header}{template}")
}

#[test]
fn rust_verifies_what_python_signed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fingerprints = run_python(&python_script(PYTHON_SIGNS), dir.path());

    for (name, algorithm) in [
        ("p256", KeyAlgorithm::EcdsaP256),
        ("ed25519", KeyAlgorithm::Ed25519),
    ] {
        let public = PublicKey::from_pem(&read(dir.path(), &format!("{name}.pub.pem")))
            .unwrap_or_else(|e| panic!("{name} public PEM: {e}"));
        assert_eq!(public.algorithm(), algorithm);
        assert_eq!(
            public.fingerprint(),
            fingerprints[name].as_str().unwrap(),
            "{name}: fingerprint is SHA-256 of the SPKI DER pyca writes"
        );
        assert_eq!(
            public.to_pem(),
            read(dir.path(), &format!("{name}.pub.pem")),
            "{name}: our PEM is byte-identical to pyca's"
        );

        let private = SigningKey::from_pem(&read(dir.path(), &format!("{name}.pkcs8.pem")))
            .unwrap_or_else(|e| panic!("{name} PKCS#8 PEM: {e}"));
        assert_eq!(private.public_key(), public);
        if name == "p256" {
            let sec1 = SigningKey::from_pem(&read(dir.path(), "p256.sec1.pem"))
                .unwrap_or_else(|e| panic!("SEC1 PEM: {e}"));
            assert_eq!(sec1.public_key(), public);
        }

        let env = read_envelope(dir.path(), &format!("{name}.dsse.json"));
        assert_eq!(env.signatures[0].keyid, format!("py-{name}"));
        if name == "p256" {
            assert_eq!(env.signatures[0].sig[0], 0x30, "pyca writes DER");
        }
        assert_eq!(env.verify_with(&public), Ok(0), "{name}");

        let statement = Statement::from_envelope(&env).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(statement.subject.len(), 1);
        assert_eq!(statement.subject[0].name, "fraud-detector");
        assert_eq!(statement.subject[0].digest["sha256"], VERSION_HASH);
        assert_eq!(statement.predicate_type, APPROVAL_PREDICATE_TYPE);
        let approval =
            ApprovalPredicate::from_statement(&statement).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            approval,
            ApprovalPredicate {
                decision: Decision::Approve,
                target: "production".into(),
                criteria: vec![
                    Criterion {
                        name: "auc>=0.90".into(),
                        passed: true,
                        evidence_sha256: Some(EVIDENCE.into()),
                    },
                    Criterion {
                        name: "bias-review".into(),
                        passed: false,
                        evidence_sha256: None,
                    },
                ],
                policy: Some("release-policy-v3".into()),
                comment: Some("validé par l'équipe ✓".into()),
            }
        );

        let tampered = read_envelope(dir.path(), &format!("{name}.tampered.dsse.json"));
        assert!(
            tampered.verify_with(&public).is_err(),
            "{name}: a changed payload must not verify"
        );
        // The forged statement itself is well formed: only the signature catches it.
        let forged = Statement::from_envelope(&tampered).unwrap();
        assert_eq!(
            ApprovalPredicate::from_statement(&forged).unwrap().decision,
            Decision::Reject
        );
    }
}

#[test]
fn python_verifies_what_rust_signed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let approval = ApprovalPredicate {
        decision: Decision::Approve,
        target: "production".into(),
        criteria: vec![Criterion {
            name: "auc>=0.90".into(),
            passed: true,
            evidence_sha256: Some(EVIDENCE.into()),
        }],
        policy: Some("release-policy-v3".into()),
        comment: Some("validé ✓".into()),
    };
    let payload = intoto::approval_statement("fraud-detector", VERSION_HASH, &approval)
        .expect("approval statement");
    let mut rejected = approval.clone();
    rejected.decision = Decision::Reject;
    let forged = intoto::approval_statement("fraud-detector", VERSION_HASH, &rejected).unwrap();

    let keys = [
        ("p256", SigningKey::generate_p256().unwrap()),
        ("ed25519", SigningKey::generate_ed25519().unwrap()),
    ];
    for (name, key) in &keys {
        let public = key.public_key();
        fs::write(dir.path().join(format!("{name}.pub.pem")), public.to_pem()).unwrap();
        fs::write(
            dir.path().join(format!("{name}.pkcs8.pem")),
            key.to_pkcs8_pem().as_bytes(),
        )
        .unwrap();
        let env = dsse::sign(key, INTOTO_PAYLOAD_TYPE, &payload, &public.fingerprint());
        fs::write(
            dir.path().join(format!("{name}.dsse.json")),
            env.to_json().to_string(),
        )
        .unwrap();
        let mut tampered = env.clone();
        tampered.payload = forged.clone();
        fs::write(
            dir.path().join(format!("{name}.tampered.dsse.json")),
            tampered.to_json().to_string(),
        )
        .unwrap();
    }

    let result = run_python(&python_script(PYTHON_VERIFIES), dir.path());
    for (name, key) in &keys {
        let r = &result[*name];
        assert_eq!(
            r["fingerprint"].as_str(),
            Some(key.public_key().fingerprint().as_str()),
            "{name}"
        );
        assert_eq!(
            r["verifies"], true,
            "{name}: pyca verifies custody's signature"
        );
        assert_eq!(
            r["tampered_verifies"], false,
            "{name}: pyca refuses a changed payload"
        );
        assert_eq!(
            r["payload_is_rfc8785"], true,
            "{name}: the statement is RFC 8785 canonical"
        );
        assert_eq!(
            r["subject"],
            serde_json::json!([{"name": "fraud-detector", "digest": {"sha256": VERSION_HASH}}])
        );
        assert_eq!(r["predicate"], approval.to_json());
    }
}
