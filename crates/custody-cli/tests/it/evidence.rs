//! The governance commands as a user drives them against a real server: model hashes equal to
//! what `sha256sum` derives, approver keys, signed approvals and the gate (a refused promotion
//! exits 3 and says what is missing), proven audit answers, evidence packs that verify offline
//! and fail on a flipped byte, and one-line errors for bad input.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{Out, Server, cli, custody, s};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A digest of some text, as `sha256:<hex>`.
fn digest_of(text: &str) -> String {
    format!("sha256:{}", hex(&Sha256::digest(text.as_bytes())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends raw entries through the client, failing the test on any error.
fn append(url: &str, tenant: &str, log: &str, entries: &[Value]) -> Vec<custody_api::AppendResult> {
    let rt = common::runtime();
    let client = custody_client::Client::new(url)
        .unwrap()
        .with_token(&common::token_for(url).unwrap())
        .with_purpose(Some("process-level-test".into()));
    rt.block_on(client.append_all(tenant, log, entries))
        .unwrap_or_else(|e| panic!("append to {log} failed: {e}"))
        .results
}

/// The envelope of a governance entry.
fn envelope(url: &str, tenant: &str, log: &str, index: u64) -> Value {
    let rt = common::runtime();
    let client = custody_client::Client::new(url)
        .unwrap()
        .with_token(&common::token_for(url).unwrap())
        .with_purpose(Some("process-level-test".into()));
    rt.block_on(client.entry(tenant, log, index))
        .expect("entry")
        .envelope
}

fn dataset(digest: &str) -> Value {
    json!({
        "type": "dataset_version.registered",
        "subject": {"kind": "dataset_version", "id": digest},
        "body": {"name": "transactions", "version": "2026-01", "uri": "s3://bucket/tx",
                 "digest": digest, "legal_basis": "contract"},
    })
}

fn training_run(run: &str, dataset: &str) -> Value {
    json!({
        "type": "training_run.recorded",
        "subject": {"kind": "training_run", "id": run},
        "related": [{"kind": "dataset_version", "id": dataset, "rel": "trained_on"}],
        "body": {"code_commit": "a".repeat(40), "environment": {"image_digest": dataset},
                 "metrics": {"auc": 0.93}, "status": "succeeded"},
    })
}

fn policy() -> Value {
    json!({
        "type": "policy.updated",
        "subject": {"kind": "policy", "id": "gates"},
        "body": {"targets": {"production": {"min_approvals": 2, "required_criteria": ["auc"],
                 "separation_of_duties": true}}},
    })
}

fn deployment(id: &str, hash: &str) -> Value {
    json!({
        "type": "deployment.recorded",
        "subject": {"kind": "deployment", "id": id},
        "body": {"environment": "production", "endpoint": "https://api.example/score",
                 "config_digest": digest_of("config"), "version_hash": hash},
    })
}

fn inference(request: &str, deployment: &str, hash: &str, time: &str) -> Value {
    json!({
        "type": "inference.recorded",
        "client_time": time,
        "subject": {"kind": "inference", "id": request},
        "related": [{"kind": "deployment", "id": deployment, "rel": "served_by"}],
        "body": {"version_hash": hash, "latency_ms": 12, "decision": "allow"},
        "payload": {"input": {"amount": 42}},
    })
}

/// Writes a small model directory whose content depends on `seed`.
fn make_model(dir: &Path, seed: u8) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let weights: Vec<u8> = (0..200_000u32).map(|i| (i as u8) ^ seed).collect();
    std::fs::write(dir.join("weights.bin"), weights).unwrap();
    std::fs::write(dir.join("sub/config.json"), format!("{{\"seed\": {seed}}}")).unwrap();
}

/// Runs a shell line in `dir` and returns its stdout.
fn sh(dir: &Path, line: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(dir)
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{line}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn lines_with<'a>(out: &'a Out, needle: &str) -> Vec<&'a str> {
    out.stdout.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn model_hash_is_the_sha256sum_root_and_bad_paths_are_named() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let file = w.join("model.safetensors");
    std::fs::write(&file, b"not really weights, but bytes all the same\n").unwrap();

    // One file: SHA-256 over the raw sha256sum digest.
    let sum = sh(w, "sha256sum model.safetensors | cut -d' ' -f1");
    let raw: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&sum.trim()[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let expected = format!("sha256:{}", hex(&Sha256::digest(&raw)));
    let out = custody(&["model", "hash", s(&file)]).ok();
    assert_eq!(out.stdout.trim(), expected, "{out:#?}");
    let manifest = custody(&["--json", "model", "hash", s(&file)]).ok().json();
    assert_eq!(manifest["version_hash"], expected.as_str());
    assert_eq!(manifest["files"][0]["path"], ".");
    assert_eq!(
        manifest["files"][0]["digest"],
        format!("sha256:{}", sum.trim())
    );
    assert_eq!(out.stderr, "", "no progress bar off a terminal: {out:#?}");

    // A directory: the same pipeline over the files in path order.
    make_model(&w.join("dir"), 1);
    let shell = sh(
        &w.join("dir"),
        "find . -type f | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum | cut -d' ' -f1 | xxd -r -p | sha256sum | cut -d' ' -f1",
    );
    let out = custody(&["model", "hash", s(&w.join("dir"))]).ok();
    assert_eq!(out.stdout.trim(), format!("sha256:{}", shell.trim()));

    // Bad paths: one line naming the path.
    let missing = w.join("missing.bin");
    let line = custody(&["model", "hash", s(&missing)]).one_line_error();
    assert!(
        line.contains("missing.bin") && line.contains("no such file"),
        "{line}"
    );
    std::os::unix::fs::symlink(&file, w.join("link.bin")).unwrap();
    let line = custody(&["model", "hash", s(&w.join("link.bin"))]).one_line_error();
    assert!(
        line.contains("link.bin") && line.contains("symbolic link"),
        "{line}"
    );
    std::fs::create_dir(w.join("empty")).unwrap();
    let line = custody(&["model", "hash", s(&w.join("empty"))]).one_line_error();
    assert!(
        line.contains("empty") && line.contains("no files"),
        "{line}"
    );
}

#[test]
fn approvals_gate_promotions_and_every_answer_is_proven() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let server = Server::start(data.path());
    let url = server.url.as_str();
    cli(url, &["tenant", "create", "acme"]).ok();
    cli(url, &["tenant", "create", "beta"]).ok();

    // Lineage: dataset, training run, the gate policy.
    let ds = digest_of("transactions 2026-01");
    append(
        url,
        "acme",
        "governance",
        &[dataset(&ds), training_run("run-1", &ds), policy()],
    );

    // Register the model version.
    let m1 = w.join("m1");
    make_model(&m1, 1);
    let hash = custody(&["model", "hash", s(&m1)])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let out = cli(
        url,
        &[
            "model",
            "register",
            "-t",
            "acme",
            s(&m1),
            "--name",
            "fraud",
            "--run",
            "run-1",
            "--version",
            "1.0",
            "--framework",
            "pytorch",
        ],
    )
    .ok();
    assert!(
        out.stdout.contains(&hash) && out.stdout.contains("governance index 3"),
        "{out:#?}"
    );

    // Keys: private 0600, public beside it, never overwritten.
    let alice = w.join("alice.pem");
    let bob = w.join("bob.pem");
    let out = cli(url, &["key", "generate", "-o", s(&alice)]).ok();
    assert!(out.stdout.contains("alice.pem.pub"), "{out:#?}");
    cli(
        url,
        &[
            "key",
            "generate",
            "--algorithm",
            "ecdsa-p256",
            "-o",
            s(&bob),
        ],
    )
    .ok();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&alice).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(w.join("bob.pem.pub"))
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let before = std::fs::read(&alice).unwrap();
    let line = cli(url, &["key", "generate", "-o", s(&alice)]).one_line_error();
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(std::fs::read(&alice).unwrap(), before);
    // Approvers are principals of the tenant with the approver role; keys are registered for
    // their ids.
    let mut ids = std::collections::HashMap::new();
    for who in ["alice", "bob"] {
        let made = cli(
            url,
            &[
                "--json",
                "principal",
                "create",
                "-t",
                "acme",
                "--name",
                who,
                "--role",
                "approver",
            ],
        )
        .ok()
        .json();
        assert!(made["token"]["token"].as_str().unwrap().starts_with("cst_"));
        ids.insert(who, made["principal"]["id"].as_str().unwrap().to_string());
    }
    let listed = cli(url, &["principal", "list", "-t", "acme"]).ok();
    assert!(listed.stdout.contains(&ids["alice"]), "{listed:#?}");
    for (name, key) in [("alice", "alice.pem.pub"), ("bob", "bob.pem.pub")] {
        let who = ids[name].as_str();
        let out = cli(
            url,
            &[
                "key",
                "register",
                "-t",
                "acme",
                "--approver",
                who,
                "--public-key",
                s(&w.join(key)),
            ],
        )
        .ok();
        assert!(
            out.stdout.contains(&format!("for approver {who}")),
            "{out:#?}"
        );
    }

    let approve = |key: &Path, extra: &[&str]| {
        let mut args = vec![
            "approve",
            "-t",
            "acme",
            "--key",
            s(key),
            "--model",
            &hash,
            "--name",
            "fraud",
            "--target",
            "production",
            "--decision",
            "approve",
        ];
        args.extend_from_slice(extra);
        cli(url, &args)
    };
    let evidence = digest_of("evaluation report");
    let criterion = format!("auc=pass@{evidence}");
    let envelope_file = w.join("alice.dsse.json");
    let out = approve(
        &alice,
        &[
            "--criterion",
            &criterion,
            "--comment",
            "meets the bar",
            "-o",
            s(&envelope_file),
        ],
    )
    .ok();
    assert!(out.stdout.starts_with("approved fraud"), "{out:#?}");
    let dsse: Value = serde_json::from_slice(&std::fs::read(&envelope_file).unwrap()).unwrap();
    assert_eq!(dsse["payloadType"], "application/vnd.in-toto+json");

    // One approval is not enough: exit 3, the missing item, the recorded refusal.
    let promote = |model: &str| {
        cli(
            url,
            &[
                "promote",
                "-t",
                "acme",
                "--model",
                model,
                "--env",
                "production",
                "--authoriser",
                "carol",
                "--reason",
                "quarterly release",
            ],
        )
    };
    let out = promote(&hash);
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stdout.starts_with("refused: promotion of"), "{out:#?}");
    assert!(
        out.stdout
            .contains("approvals: production needs approvals from 2 distinct approvers"),
        "{out:#?}"
    );
    assert!(
        out.stdout.contains("recorded at governance index"),
        "{out:#?}"
    );
    let out = cli(url, &["admit", "-t", "acme", "--env", "production", s(&m1)]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stdout.starts_with("not admitted"), "{out:#?}");

    // An approval signed by an unregistered key: the server's field error, one per line.
    let mallory = w.join("mallory.pem");
    cli(url, &["key", "generate", "-o", s(&mallory)]).ok();
    let out = approve(&mallory, &["--criterion", "auc=pass"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.starts_with("error: "), "{out:#?}");
    assert!(out.stderr.contains("payload.signatures"), "{out:#?}");

    // The second approver; now the gate opens.
    approve(&bob, &["--criterion", "auc=pass"]).ok();
    let out = promote(&hash).ok();
    assert!(out.stdout.starts_with("promoted "), "{out:#?}");
    let out = cli(url, &["admit", "-t", "acme", "--env", "production", s(&m1)]).ok();
    assert!(out.stdout.starts_with("admitted: "), "{out:#?}");
    let mut counted = [ids["alice"].clone(), ids["bob"].clone()];
    counted.sort();
    assert!(
        out.stdout.contains(&format!(
            "approvers counted: {}, {}",
            counted[0], counted[1]
        )),
        "{out:#?}"
    );
    assert!(out.stdout.contains("verified: "), "{out:#?}");
    let out = cli(url, &["admit", "-t", "acme", "--env", "staging", &hash]);
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stdout.contains("not_serving: "), "{out:#?}");
    let admit = cli(
        url,
        &[
            "--json",
            "admit",
            "-t",
            "acme",
            "--env",
            "production",
            &hash,
        ],
    )
    .ok()
    .json();
    assert_eq!(admit["admitted"], true);

    // A deployment and an inference it served.
    let dep = append(url, "acme", "governance", &[deployment("dep-1", &hash)]);
    let time = envelope(url, "acme", "governance", dep[0].index)["time"]
        .as_str()
        .unwrap()
        .to_owned();
    append(
        url,
        "acme",
        "inference",
        &[inference("req-1", "dep-1", &hash, &time)],
    );

    // The trace: an indented chain from the inference to the datasets, proven.
    let out = cli(url, &["trace", "-t", "acme", "--request-id", "req-1"]).ok();
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("inference.recorded req-1 (inference#0)"),
        "{out:#?}"
    );
    for (indent, what) in [
        ("  served_by: ", "deployment.recorded dep-1"),
        ("    deploys: ", "model_version.registered fraud"),
        (
            "      about: ",
            &format!(
                "approval.submitted {} approves for production",
                ids["alice"]
            ),
        ),
        (
            "      about: ",
            &format!("approval.submitted {} approves for production", ids["bob"]),
        ),
        ("      produced_by: ", "training_run.recorded run-1"),
        (
            "        trained_on: ",
            "dataset_version.registered transactions",
        ),
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(indent) && l.contains(what)),
            "no {indent:?}{what:?} line: {out:#?}"
        );
    }
    assert!(out.stdout.contains("policy.updated gates"), "{out:#?}");
    let verified = lines_with(&out, "verified: ");
    assert_eq!(verified.len(), 1, "{out:#?}");
    assert!(
        verified[0].contains("against governance@") && verified[0].contains("inference@1"),
        "{out:#?}"
    );
    assert!(verified[0].contains("pin one with --vkey"), "{out:#?}");

    // Pinned keys: the right ones verify, another tenant's are refused.
    let gov = w.join("gov.vkey");
    let inf = w.join("inf.vkey");
    std::fs::write(&gov, cli(url, &["vkey", "-t", "acme"]).ok().stdout).unwrap();
    std::fs::write(
        &inf,
        cli(url, &["vkey", "-t", "acme", "-l", "inference"])
            .ok()
            .stdout,
    )
    .unwrap();
    let out = cli(
        url,
        &[
            "trace",
            "-t",
            "acme",
            "--request-id",
            "req-1",
            "--vkey",
            s(&gov),
            "--vkey",
            s(&inf),
        ],
    )
    .ok();
    assert!(out.stdout.contains("pinned key"), "{out:#?}");
    let beta = cli(url, &["vkey", "-t", "beta"]).ok().stdout;
    let line = cli(
        url,
        &[
            "served",
            "-t",
            "acme",
            "--env",
            "production",
            "--vkey",
            beta.trim(),
        ],
    )
    .one_line_error();
    assert!(line.contains("do NOT verify"), "{line}");
    let t = cli(
        url,
        &["--json", "trace", "-t", "acme", "--request-id", "req-1"],
    )
    .ok()
    .json();
    assert_eq!(t["direction"], "backward");

    // What serves, and the history of the version.
    let out = cli(url, &["served", "-t", "acme", "--env", "production"]).ok();
    assert!(
        out.stdout.starts_with("production at ") && out.stdout.contains(&format!("{hash} (fraud)")),
        "{out:#?}"
    );
    assert!(out.stdout.contains("deployment dep-1"), "{out:#?}");
    assert_eq!(lines_with(&out, "verified: ").len(), 1, "{out:#?}");

    // A second version, promoted over the first, then rolled back.
    let m2 = w.join("m2");
    make_model(&m2, 2);
    let hash2 = custody(&["model", "hash", s(&m2)])
        .ok()
        .stdout
        .trim()
        .to_owned();
    cli(
        url,
        &[
            "model",
            "register",
            "-t",
            "acme",
            s(&m2),
            "--name",
            "fraud",
            "--run",
            "run-1",
        ],
    )
    .ok();
    for key in [&alice, &bob] {
        cli(
            url,
            &[
                "approve",
                "-t",
                "acme",
                "--key",
                s(key),
                "--model",
                &hash2,
                "--name",
                "fraud",
                "--target",
                "production",
                "--decision",
                "approve",
                "--criterion",
                "auc=pass",
            ],
        )
        .ok();
    }
    let out = promote(&hash2).ok();
    assert!(
        out.stdout.contains(&format!("replacing {hash}")),
        "{out:#?}"
    );
    let out = cli(
        url,
        &[
            "rollback",
            "-t",
            "acme",
            "--to",
            &hash,
            "--from",
            &hash2,
            "--env",
            "production",
            "--authoriser",
            "carol",
        ],
    )
    .ok();
    assert!(out.stdout.starts_with("rolled production back"), "{out:#?}");
    let out = cli(url, &["history", "-t", "acme", &hash]).ok();
    assert!(out.stdout.starts_with(&format!("fraud {hash}")), "{out:#?}");
    assert!(out.stdout.contains("serving in: production"), "{out:#?}");
    let table: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains(" production "))
        .collect();
    assert_eq!(
        table.len(),
        3,
        "promotion, promotion over it, rollback: {out:#?}"
    );
    assert!(
        table[0].contains("promotion") && table[2].contains("rollback"),
        "{out:#?}"
    );
    assert_eq!(lines_with(&out, "verified: ").len(), 1, "{out:#?}");
    // Rolling back to a version that never served is refused.
    let out = cli(
        url,
        &[
            "rollback",
            "-t",
            "acme",
            "--to",
            &hash2,
            "--from",
            &hash,
            "--env",
            "staging",
            "--authoriser",
            "carol",
        ],
    );
    assert_eq!(out.code, 3, "{out:#?}");
    assert!(out.stdout.contains("never_served: "), "{out:#?}");

    // An evidence pack of the inference, checked offline.
    let pack = w.join("pack");
    let out = cli(
        url,
        &[
            "export",
            "-t",
            "acme",
            "--request-id",
            "req-1",
            "-o",
            s(&pack),
        ],
    )
    .ok();
    assert!(out.stdout.contains("verified: "), "{out:#?}");
    for f in [
        "pack.json",
        "README.md",
        "SHA256SUMS",
        "checkpoints/governance.checkpoint",
        "checkpoints/inference.checkpoint",
        "keys/governance.vkey",
        "entries/inference/0.json",
        "payloads/inference/0.json",
    ] {
        assert!(pack.join(f).is_file(), "no {f} in the pack");
    }
    let pack_json: Value =
        serde_json::from_slice(&std::fs::read(pack.join("pack.json")).unwrap()).unwrap();
    let approvals: Vec<&Value> = pack_json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["envelope"]["type"] == "approval.submitted")
        .collect();
    assert!(!approvals.is_empty());
    for a in &approvals {
        let index = a["index"].as_u64().unwrap();
        assert!(pack.join(format!("approvals/{index}.dsse.json")).is_file());
        let fp = a["envelope"]["body"]["key_fingerprint"].as_str().unwrap();
        assert!(
            pack.join(format!("approver-keys/{}.pem", &fp[7..]))
                .is_file(),
            "no key file for {fp}"
        );
    }
    // Standard tools agree with the pack.
    sh(&pack, "sha256sum -c --quiet SHA256SUMS");
    let leaf = sh(
        &pack,
        "(printf '\\000'; cat entries/inference/0.json) | sha256sum | cut -d' ' -f1",
    );
    let inference_entry = pack_json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["log"] == "inference")
        .unwrap();
    assert_eq!(leaf.trim(), inference_entry["leaf_hash"].as_str().unwrap());

    let out = custody(&["verify", s(&pack)]).ok();
    assert!(
        out.stdout.contains("WARNING: "),
        "unpinned keys are flagged: {out:#?}"
    );
    let out = custody(&["verify", s(&pack), "--vkey", s(&gov), "--vkey", s(&inf)]).ok();
    assert!(
        !out.stdout.contains("FAILED") && !out.stdout.contains("WARNING"),
        "{out:#?}"
    );
    assert!(out.stdout.contains("approval(s) signed"), "{out:#?}");

    // One flipped byte in an entry file: exit 2, naming the file and the check.
    let target = format!("entries/governance/{}.json", approvals[0]["index"]);
    let mut bytes = std::fs::read(pack.join(&target)).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(pack.join(&target), bytes).unwrap();
    let out = custody(&["verify", s(&pack), "--vkey", s(&gov), "--vkey", s(&inf)]);
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&format!("FAILED: {target}: leaf_hash"))),
        "{out:#?}"
    );

    // A pack of the model version; the raw log export still works beside it.
    let model_pack = w.join("model-pack");
    cli(
        url,
        &[
            "export",
            "-t",
            "acme",
            "--model",
            &hash,
            "-o",
            s(&model_pack),
            "--vkey",
            s(&gov),
        ],
    )
    .ok();
    custody(&["verify", s(&model_pack), "--vkey", s(&gov)]).ok();
    let raw = w.join("acme.export");
    cli(url, &["export", "-t", "acme", "-o", s(&raw)]).ok();
    custody(&["verify", "log", "--vkey", s(&gov), "--export", s(&raw)]).ok();
    // An existing, non-empty directory is never written into.
    let line = cli(
        url,
        &[
            "export",
            "-t",
            "acme",
            "--model",
            &hash,
            "-o",
            s(&model_pack),
        ],
    )
    .one_line_error();
    assert!(line.contains("not an empty directory"), "{line}");
}

#[test]
fn bad_input_is_one_line_and_nothing_is_sent() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // Nothing listens here: every error below must come before any request.
    let url = "http://127.0.0.1:1";
    let key = w.join("k.pem");
    custody(&["key", "generate", "-o", s(&key)]).ok();
    let good = format!("sha256:{}", "ab".repeat(32));

    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["key", "generate", "--algorithm", "rsa", "-o", "x.pem"],
            &["rsa", "ed25519, ecdsa-p256"],
        ),
        (
            vec![
                "approve",
                "-t",
                "acme",
                "--key",
                s(&key),
                "--model",
                &good,
                "--name",
                "m",
                "--target",
                "production",
                "--decision",
                "maybe",
            ],
            &["maybe", "approve, reject"],
        ),
        (
            vec![
                "approve",
                "-t",
                "acme",
                "--key",
                s(&key),
                "--model",
                "sha256:xyz",
                "--name",
                "m",
                "--target",
                "production",
                "--decision",
                "approve",
            ],
            &["--model", "not a version hash"],
        ),
        (
            vec![
                "approve",
                "-t",
                "acme",
                "--key",
                "missing.pem",
                "--model",
                &good,
                "--name",
                "m",
                "--target",
                "production",
                "--decision",
                "approve",
            ],
            &["--key", "missing.pem"],
        ),
        (
            vec![
                "approve",
                "-t",
                "acme",
                "--key",
                s(&key),
                "--model",
                &good,
                "--name",
                "m",
                "--target",
                "production",
                "--decision",
                "approve",
                "--criterion",
                "auc=maybe",
            ],
            &["--criterion", "pass or fail"],
        ),
        (
            vec![
                "key",
                "register",
                "-t",
                "acme",
                "--approver",
                "alice",
                "--public-key",
                s(&key),
            ],
            &["--public-key", "private key"],
        ),
        (
            vec![
                "key",
                "register",
                "-t",
                "acme",
                "--approver",
                "alice@example.com",
                "--public-key",
                "missing.pub",
            ],
            &["--approver", "principal id"],
        ),
        (
            vec![
                "promote",
                "-t",
                "acme",
                "--model",
                "abc",
                "--env",
                "production",
                "--authoriser",
                "c",
            ],
            &["--model", "not a version hash"],
        ),
        (
            vec![
                "promote",
                "-t",
                "acme",
                "--model",
                &good,
                "--env",
                "Prod!",
                "--authoriser",
                "c",
            ],
            &["--env", "environment name"],
        ),
        (
            vec!["admit", "-t", "acme", "--env", "production", "sha256:zz"],
            &["sha256:zz", "not a version hash"],
        ),
        (
            vec!["history", "-t", "acme", "sha256:1234"],
            &["not a version hash"],
        ),
        (vec!["trace", "-t", "acme"], &["required", "--request-id"]),
        (
            vec!["trace", "-t", "acme", "--entry", "x", "--subject", "y"],
            &["cannot be used with"],
        ),
        (
            vec![
                "export",
                "-t",
                "acme",
                "--model",
                &good,
                "--since",
                "2026-01-01T00:00:00Z",
                "-o",
                "d",
            ],
            &["cannot be used with"],
        ),
        (
            vec![
                "trace",
                "-t",
                "acme",
                "--request-id",
                "r",
                "--vkey",
                "not-a-key",
            ],
            &["--vkey"],
        ),
        (
            vec!["model", "bundle", s(w), "--key", s(&key), "-o", "m.sig"],
            &["--key", "ECDSA P-256"],
        ),
    ];
    for (args, needles) in cases {
        let out = cli(url, &args);
        let line = out.one_line_error();
        assert!(
            !line.contains("cannot reach"),
            "{args:?} contacted the server: {line}"
        );
        for n in needles {
            assert!(line.contains(n), "{args:?}: error lacks {n:?}: {line}");
        }
        assert_eq!(out.stdout, "", "{args:?}: {out:#?}");
    }
    assert!(!w.join("x.pem").exists());
}

#[test]
fn model_bundles_verify_with_model_signing() {
    let python = custody_testkit::python::python();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let model = w.join("model");
    make_model(&model, 7);
    let key = w.join("signer.pem");
    custody(&[
        "key",
        "generate",
        "--algorithm",
        "ecdsa-p256",
        "-o",
        s(&key),
    ])
    .ok();
    let sig = w.join("model.sig");
    custody(&[
        "model",
        "bundle",
        s(&model),
        "--key",
        s(&key),
        "-o",
        s(&sig),
    ])
    .ok();
    let verify = |path: &Path| {
        Command::new(python)
            .args(["-m", "model_signing", "verify", "key", "--signature"])
            .arg(&sig)
            .arg("--public_key")
            .arg(w.join("signer.pem.pub"))
            .arg(path)
            .output()
            .expect("run model_signing")
    };
    let ok = verify(&model);
    assert!(
        ok.status.success(),
        "model_signing refused the bundle: {ok:?}"
    );
    std::fs::write(model.join("weights.bin"), b"tampered").unwrap();
    assert!(
        !verify(&model).status.success(),
        "a changed model still verified"
    );
}

/// `custody demo` records the whole chain through the public API, prints a proven trace of an
/// inference served by the version later rolled back, and the commands it prints work: the
/// trace verifies, production is admitted for the restored version only, and an evidence pack
/// exported as printed verifies offline.
#[test]
fn the_demo_records_a_chain_whose_printed_commands_work() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_custody"))
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = String::new();
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line.starts_with("Approver keys") {
            break;
        }
    }
    let server = out
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no server address in the demo output:\n{out}"))
        .to_owned();
    // The printed commands run as the demo's auditor, whose token the demo kept (0600).
    let token_file = data.join("demo-auditor.token");
    assert!(
        out.contains(&format!(
            "export CUSTODY_TOKEN=$(cat {})",
            token_file.display()
        )),
        "{out}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    common::register_token(
        &server,
        std::fs::read_to_string(&token_file).unwrap().trim(),
    );
    for want in [
        "inference.recorded",
        "deployment.recorded",
        "approval.submitted",
        "rollback.recorded",
        "training_run.recorded",
        "dataset_version.registered",
    ] {
        assert!(out.contains(want), "demo trace lacks {want}:\n{out}");
    }

    let trace = cli(
        &server,
        &["trace", "-t", "demo", "--request-id", "req-001600"],
    )
    .ok();
    assert!(
        trace.stdout.contains("verified: 15 entries"),
        "{}",
        trace.stdout
    );
    let served = cli(
        &server,
        &["served", "-t", "demo", "--env", "production", "--json"],
    )
    .ok()
    .json();
    let serving = served["version_hash"].as_str().unwrap().to_owned();
    assert_eq!(
        cli(
            &server,
            &["admit", "-t", "demo", "--env", "production", &serving]
        )
        .code,
        0
    );
    let history = cli(&server, &["history", "-t", "demo", &serving, "--json"])
        .ok()
        .json();
    let kinds: Vec<&str> = history["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["promotion", "promotion", "rollback"]);
    let pack = dir.path().join("pack");
    cli(
        &server,
        &[
            "export",
            "-t",
            "demo",
            "--request-id",
            "req-001600",
            "-o",
            s(&pack),
        ],
    )
    .ok();
    let verified = custody(&["verify", s(&pack)]).ok();
    assert!(
        verified.stdout.contains("2 approval(s) signed"),
        "{}",
        verified.stdout
    );
    // The rogue record was flagged: a security event names it.
    let sec = cli(
        &server,
        &[
            "--json",
            "list",
            "-t",
            "demo",
            "--type",
            "security.serving_mismatch",
        ],
    )
    .ok()
    .json();
    assert_eq!(sec["envelope"]["subject"]["id"], "req-003500", "{sec}");
    assert_eq!(sec["envelope"]["body"]["expected"], json!(serving));

    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let status = child.0.wait().unwrap();
    assert!(
        status.success(),
        "demo did not stop cleanly on SIGTERM: {status:?}"
    );
}

/// Kills the demo server if the test fails before stopping it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
