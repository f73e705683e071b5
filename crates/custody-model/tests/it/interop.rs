//! Interop: custody's version hashes and signature bundles checked against code nobody at
//! custody wrote — coreutils `sha256sum`, a short shell pipeline, and the OpenSSF
//! `model_signing` Python package (hashing, signing and its `verify key` command).
//!
//! The Python environment comes from `custody_testkit::python`. It is required: if it cannot be
//! created these tests fail rather than skip, because a skipped interop test proves nothing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64ct::{Base64, Encoding};
use custody_model::bundle::{self, public_key_hint};
use custody_model::{ModelDigest, hash_path, plan, signature_bundle};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use tempfile::TempDir;

/// The Python environment's interpreter, with `model_signing` installed.
fn python() -> &'static Path {
    custody_testkit::python::python()
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn stdout_of(command: &mut Command) -> String {
    let out = run(command);
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Deterministic, incompressible-looking bytes (xorshift64*), so a large file is not all zeros.
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

const BIG_FILE: &str = "weights/model-00001-of-00001.safetensors";

/// Files that are part of the model, with their contents.
fn model_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            BIG_FILE,
            pseudo_random(3 * 1024 * 1024 + 12_345, 0x9e37_79b9),
        ),
        ("config.json", br#"{"hidden_size": 64}"#.to_vec()),
        ("tokenizer/vocab.txt", b"a\nb\nc\n".to_vec()),
        ("a/b", b"component order puts me first".to_vec()),
        ("a-b/x", b"byte order would put me first".to_vec()),
        ("a.b", b"dot".to_vec()),
        ("empty.bin", Vec::new()),
        ("with space.txt", b"spaces".to_vec()),
        ("donn\u{e9}es/\u{e9}t\u{e9}.txt", b"utf-8 names".to_vec()),
        (
            "sub/.gitignore",
            b"only the top-level one is ignored".to_vec(),
        ),
        (".hidden", b"dotfiles count".to_vec()),
    ]
}

/// A model directory with nested folders, a multi-MiB file and git metadata to ignore.
fn make_model(parent: &Path) -> PathBuf {
    let model = parent.join("model");
    let ignored: [(&str, &[u8]); 5] = [
        (".git/HEAD", b"ref: refs/heads/main\n"),
        (".git/objects/pack/pack-1.pack", b"not part of the model"),
        (".github/workflows/ci.yml", b"on: push"),
        (".gitattributes", b"*.safetensors filter=lfs"),
        (".gitignore", b"*.tmp"),
    ];
    let files = model_files();
    let all = files
        .iter()
        .map(|(p, c)| (*p, c.as_slice()))
        .chain(ignored.iter().copied());
    for (rel, contents) in all {
        let path = model.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }
    fs::create_dir_all(model.join("empty-dir/nested")).unwrap();
    model
}

/// `sha256sum` of every model file, run inside the model directory.
fn sha256sum(model: &Path, files: &[&str]) -> BTreeMap<String, String> {
    let text = stdout_of(
        Command::new("sha256sum")
            .arg("--")
            .args(files)
            .current_dir(model),
    );
    text.lines()
        .map(|line| {
            let (digest, name) = line.split_once("  ").unwrap();
            (name.to_owned(), digest.to_owned())
        })
        .collect()
}

/// Hex decoding with a standard tool: `xxd` where installed, else coreutils `basenc`.
const UNHEX: &str = r#"
if command -v xxd >/dev/null 2>&1; then unhex() { xxd -r -p; }
else unhex() { tr -d '\n' | tr a-f A-F | basenc --base16 -d; }
fi
"#;

/// The version hash of a directory by shell: digests in component order (`/` ranked below
/// every byte by mapping it to \001 for the sort), raw bytes concatenated, SHA-256 again.
/// With `naive` it sorts whole paths bytewise, which is NOT the model_signing order.
fn shell_root_of_directory(model: &Path, naive: bool) -> String {
    let sort = if naive {
        "LC_ALL=C sort -z"
    } else {
        r"tr '/' '\001' | LC_ALL=C sort -z | tr '\001' '/'"
    };
    let script = format!(
        r#"set -euo pipefail
{UNHEX}
cd "$1"
find . \( -path ./.git -o -path ./.github -o -path ./.gitattributes -o -path ./.gitignore \) -prune \
    -o -type f -print0 \
  | {sort} \
  | xargs -0 sha256sum | cut -d' ' -f1 | unhex | sha256sum | cut -d' ' -f1
"#
    );
    stdout_of(
        Command::new("bash")
            .args(["-c", &script, "root"])
            .arg(model),
    )
    .trim()
    .to_owned()
}

fn shell_root_of_file(file: &Path) -> String {
    let script = format!(
        "set -euo pipefail\n{UNHEX}\nsha256sum \"$1\" | cut -d' ' -f1 | unhex | sha256sum | cut -d' ' -f1"
    );
    stdout_of(Command::new("bash").args(["-c", &script, "root"]).arg(file))
        .trim()
        .to_owned()
}

/// Root digest, model name and (name, hex digest) resources as model_signing computes them:
/// its hashing API and the `Payload` that builds the signed statement.
fn model_signing_digest(model: &Path) -> (String, String, Vec<(String, String)>) {
    const SCRIPT: &str = r#"
import json, pathlib, sys
from google.protobuf import json_format
from model_signing import hashing
from model_signing._signing import signing
manifest = hashing.hash(pathlib.Path(sys.argv[1]))
statement = json.loads(json_format.MessageToJson(signing.Payload(manifest).statement.pb))
print(json.dumps({
    "root": statement["subject"][0]["digest"]["sha256"],
    "name": statement["subject"][0]["name"],
    "resources": [[r["name"], r["digest"]] for r in statement["predicate"]["resources"]],
}))
"#;
    let text = stdout_of(Command::new(python()).args(["-c", SCRIPT]).arg(model));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let resources = value["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (
        value["root"].as_str().unwrap().to_owned(),
        value["name"].as_str().unwrap().to_owned(),
        resources,
    )
}

fn resources_of(digest: &ModelDigest) -> Vec<(String, String)> {
    digest
        .files()
        .iter()
        .map(|f| (f.path.clone(), hex::encode(f.sha256)))
        .collect()
}

fn hash_with_progress(model: &Path) -> ModelDigest {
    let planned = plan(model).unwrap();
    let mut seen = 0;
    let digest = planned.hash(&mut |n| seen += n).unwrap();
    assert_eq!(seen, planned.total_bytes());
    assert_eq!(digest.total_bytes(), planned.total_bytes());
    digest
}

#[test]
fn directory_hash_matches_sha256sum_the_shell_and_model_signing() {
    let tmp = TempDir::new().unwrap();
    let model = make_model(tmp.path());
    let digest = hash_with_progress(&model);

    let mut expected_paths: Vec<&str> = model_files().iter().map(|(p, _)| *p).collect();
    expected_paths.sort_by(|a, b| custody_model::hash::compare_paths(a, b));
    let paths: Vec<&str> = digest.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths, expected_paths,
        "ignored git entries must be left out"
    );

    // (a) every file digest is what sha256sum prints.
    let sums = sha256sum(&model, &paths);
    for file in digest.files() {
        assert_eq!(
            sums[&file.path],
            hex::encode(file.sha256),
            "sha256sum disagrees on {}",
            file.path
        );
        assert_eq!(file.digest(), format!("sha256:{}", sums[&file.path]));
    }

    // (b) the root is what the shell pipeline derives.
    let root = hex::encode(digest.root());
    assert_eq!(shell_root_of_directory(&model, false), root);
    assert_eq!(digest.version_hash(), format!("sha256:{root}"));
    // Plain bytewise sorting of whole paths puts `a-b/x` before `a/b`: a different hash.
    assert_ne!(shell_root_of_directory(&model, true), root);

    // (c) model_signing computes the same root over the same resources in the same order.
    let (py_root, py_name, py_resources) = model_signing_digest(&model);
    assert_eq!(py_root, root);
    assert_eq!(py_resources, resources_of(&digest));
    assert_eq!(py_name, "model");
    assert_eq!(
        custody_model::hash::default_model_name(&model).unwrap(),
        py_name
    );
}

#[test]
fn single_file_hash_matches_sha256sum_the_shell_and_model_signing() {
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("model.gguf");
    fs::write(&file, pseudo_random(2 * 1024 * 1024 + 1, 7)).unwrap();
    let digest = hash_with_progress(&file);

    assert!(digest.is_single_file());
    let sums = sha256sum(tmp.path(), &["model.gguf"]);
    assert_eq!(hex::encode(digest.files()[0].sha256), sums["model.gguf"]);

    let root = hex::encode(digest.root());
    assert_eq!(shell_root_of_file(&file), root);

    let (py_root, py_name, py_resources) = model_signing_digest(&file);
    assert_eq!(py_root, root);
    assert_eq!(py_name, "model.gguf");
    assert_eq!(py_resources, resources_of(&digest));
}

/// A fixed P-256 key, its PEM public key, and a closure-compatible DER signer.
fn test_key() -> (SigningKey, String) {
    let key = SigningKey::from_slice(&[0x42; 32]).unwrap();
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (key, pem)
}

fn sign_der(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    let signature: DerSignature = key.sign(message);
    signature.as_bytes().to_vec()
}

/// `python -m model_signing verify key --signature BUNDLE --public_key PEM MODEL`.
fn model_signing_verify(model: &Path, bundle: &Path, public_key: &Path) -> Output {
    run(Command::new(python())
        .args(["-m", "model_signing", "verify", "key", "--signature"])
        .arg(bundle)
        .arg("--public_key")
        .arg(public_key)
        .arg(model))
}

fn flip_one_byte(file: &Path, offset: usize) {
    let mut bytes = fs::read(file).unwrap();
    bytes[offset] ^= 0x01;
    fs::write(file, bytes).unwrap();
}

fn assert_verifies(out: &Output) {
    assert!(
        out.status.success(),
        "model_signing refused a custody bundle:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verification succeeded"));
}

fn assert_refuses(out: &Output, why: &str) {
    assert!(
        !out.status.success(),
        "model_signing accepted a bundle for a changed model"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(why), "unexpected refusal: {stderr}");
}

#[test]
fn model_signing_verifies_a_custody_bundle_for_a_directory() {
    let tmp = TempDir::new().unwrap();
    let model = make_model(tmp.path());
    let digest = hash_path(&model, &mut |_| {}).unwrap();
    let (key, pem) = test_key();

    // The key file is saved with CRLF line endings; the hint must not depend on that.
    let pem_path = tmp.path().join("key.pub");
    let crlf = pem.replace('\n', "\r\n");
    fs::write(&pem_path, &crlf).unwrap();
    let json = signature_bundle(&digest, "model", &crlf, |pae| sign_der(&key, pae)).unwrap();
    let bundle_path = tmp.path().join("model.sig");
    fs::write(&bundle_path, &json).unwrap();

    assert_verifies(&model_signing_verify(&model, &bundle_path, &pem_path));

    flip_one_byte(&model.join(BIG_FILE), 1024 * 1024 + 7);
    assert_refuses(
        &model_signing_verify(&model, &bundle_path, &pem_path),
        "Hash mismatch",
    );
}

#[test]
fn model_signing_verifies_a_custody_bundle_for_a_single_file() {
    let tmp = TempDir::new().unwrap();
    let file = tmp.path().join("model.onnx");
    fs::write(&file, pseudo_random(100_000, 11)).unwrap();
    let digest = hash_path(&file, &mut |_| {}).unwrap();
    let (key, pem) = test_key();
    let pem_path = tmp.path().join("key.pub");
    fs::write(&pem_path, &pem).unwrap();
    let json = signature_bundle(&digest, "model.onnx", &pem, |pae| sign_der(&key, pae)).unwrap();
    let bundle_path = tmp.path().join("model.onnx.sig");
    fs::write(&bundle_path, &json).unwrap();

    assert_verifies(&model_signing_verify(&file, &bundle_path, &pem_path));

    flip_one_byte(&file, 0);
    assert_refuses(
        &model_signing_verify(&file, &bundle_path, &pem_path),
        "Hash mismatch",
    );
}

#[test]
fn model_signing_refuses_a_custody_bundle_under_another_key() {
    let tmp = TempDir::new().unwrap();
    let model = make_model(tmp.path());
    let digest = hash_path(&model, &mut |_| {}).unwrap();
    let (_, pem) = test_key();
    let other = SigningKey::from_slice(&[0x17; 32]).unwrap();
    let json = signature_bundle(&digest, "model", &pem, |pae| sign_der(&other, pae)).unwrap();
    let bundle_path = tmp.path().join("model.sig");
    fs::write(&bundle_path, &json).unwrap();
    let pem_path = tmp.path().join("key.pub");
    fs::write(&pem_path, &pem).unwrap();
    assert_refuses(
        &model_signing_verify(&model, &bundle_path, &pem_path),
        "Verification failed",
    );
}

#[test]
fn a_model_signing_bundle_carries_custodys_manifest_and_hint() {
    let tmp = TempDir::new().unwrap();
    let model = make_model(tmp.path());
    let digest = hash_path(&model, &mut |_| {}).unwrap();
    const KEYGEN: &str = r#"
import sys
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
open(sys.argv[1], "wb").write(key.private_bytes(
    s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))
open(sys.argv[2], "wb").write(key.public_key().public_bytes(
    s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))
"#;
    let private = tmp.path().join("key.pem");
    let public = tmp.path().join("key.pub");
    stdout_of(
        Command::new(python())
            .args(["-c", KEYGEN])
            .arg(&private)
            .arg(&public),
    );
    let bundle_path = tmp.path().join("py.sig");
    stdout_of(
        Command::new(python())
            .args(["-m", "model_signing", "sign", "key", "--private_key"])
            .arg(&private)
            .arg("--signature")
            .arg(&bundle_path)
            .arg(&model),
    );

    let bundle: serde_json::Value =
        serde_json::from_slice(&fs::read(&bundle_path).unwrap()).unwrap();
    assert_eq!(bundle["mediaType"], bundle::BUNDLE_MEDIA_TYPE);
    assert_eq!(
        bundle["verificationMaterial"]["publicKey"]["hint"],
        public_key_hint(&fs::read_to_string(&public).unwrap()).unwrap()
    );
    let envelope = &bundle["dsseEnvelope"];
    assert_eq!(envelope["payloadType"], bundle::PAYLOAD_TYPE);
    let payload = Base64::decode_vec(envelope["payload"].as_str().unwrap()).unwrap();
    let mut statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let ours: serde_json::Value =
        serde_json::from_slice(&bundle::statement(&digest, "model").unwrap()).unwrap();
    // Same statement up to key order and the order of `ignore_paths`, which model_signing
    // takes from a frozenset and so varies from run to run.
    let ignore_paths = statement["predicate"]["serialization"]["ignore_paths"]
        .as_array_mut()
        .unwrap();
    ignore_paths.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(statement, ours);
}
