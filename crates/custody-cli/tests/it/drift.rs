//! `custody drift` against a real server and a real S3-compatible server (moto's, from the
//! Python environment of `custody_testkit::python`; required, so a machine without it fails
//! rather than skips): registered datasets and model versions in local files, a local
//! directory and S3 are all `ok`, then a flipped byte, a deleted directory and overwritten
//! objects are reported as drift (with both digests) and missing, with exit code 4; `--map`
//! reads S3 URIs from a local mirror; bad `--map` values are one-line errors with exit 1.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Out, Server, cli, cli_stdin, custody, s};
use custody_testkit::moto::{BUCKET, Moto};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TENANT: &str = "drift";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes an object with signed requests, as a pipeline would (the server refuses anonymous
/// writes over an existing private object).
fn put_object(moto: &str, key: &str, bytes: &[u8]) {
    use object_store::ObjectStoreExt;
    let store = custody_testkit::moto::bucket(moto);
    common::runtime()
        .block_on(store.put(&object_store::path::Path::from(key), bytes.to_vec().into()))
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// `custody drift` as the harness principal, with test credentials for the S3 server and no
/// AWS setting inherited from the machine.
fn drift(url: &str, moto: &str, args: &[&str]) -> Out {
    let mut cmd = Command::new(common::BIN);
    custody_testkit::moto::use_test_credentials(&mut cmd);
    let out = cmd
        .args([
            "--server",
            url,
            "drift",
            "-t",
            TENANT,
            "--s3-endpoint",
            moto,
        ])
        .args(args)
        .env(
            "CUSTODY_TOKEN",
            common::token_for(url).expect("harness token"),
        )
        .env("CUSTODY_PURPOSE", "process-level-test")
        .env("NO_COLOR", "1")
        .env_remove("CUSTODY_LOG")
        .env_remove("CUSTODY_SERVER")
        .env_remove("CUSTODY_TENANT")
        .stdin(Stdio::null())
        .output()
        .expect("run custody drift");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Appends one governance entry through `custody append`; returns its index.
fn append(url: &str, entry: &Value) -> u64 {
    let out = cli_stdin(
        url,
        &["--json", "append", "-t", TENANT],
        entry.to_string().as_bytes(),
    )
    .ok();
    out.json()["index"].as_u64().expect("index")
}

fn dataset(name: &str, uri: &str, digest: &str) -> Value {
    json!({
        "type": "dataset_version.registered",
        "subject": {"kind": "dataset_version", "id": digest},
        "body": {"name": name, "version": "2026-01", "uri": uri, "digest": digest,
                 "legal_basis": "contract"},
    })
}

/// A model version registered with its manifest (from `custody model hash`) and a location.
fn model(name: &str, manifest: &Value, uri: &str) -> Value {
    let hash = manifest["version_hash"].as_str().unwrap();
    json!({
        "type": "model_version.registered",
        "subject": {"kind": "model_version", "id": hash},
        "related": [{"kind": "training_run", "id": "run-1", "rel": "produced_by"}],
        "body": {"name": name, "version_hash": hash, "files": manifest["files"],
                 "registry": {"kind": "object_store", "uri": uri}},
    })
}

/// Writes a small model directory whose content depends on `seed`.
fn make_model(dir: &Path, seed: u8) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let weights: Vec<u8> = (0..100_000u32).map(|i| (i as u8) ^ seed).collect();
    std::fs::write(dir.join("weights.bin"), weights).unwrap();
    std::fs::write(dir.join("sub/config.json"), format!("{{\"seed\": {seed}}}")).unwrap();
}

/// The report line of the artifact called `name`.
fn line<'a>(out: &'a Out, name: &str) -> &'a str {
    let needle = format!(" {name}");
    let found: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains(&format!("{needle}@")) || l.contains(&format!("{needle} ")))
        .collect();
    assert_eq!(found.len(), 1, "one line for {name}: {out:#?}");
    found[0]
}

/// The JSON report's artifact called `name`.
fn artifact<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no artifact {name}: {report:#}"))
}

#[test]
fn drift_finds_changed_and_missing_artifacts_in_files_and_s3() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let moto_server = Moto::start(w);
    let moto = moto_server.url.clone();
    let server = Server::start(&w.join("data"));
    let url = server.url.as_str();
    cli(url, &["tenant", "create", TENANT]).ok();

    // A dataset in a local file, named by file:// URI.
    let csv = w.join("train.csv");
    let csv_bytes = b"id,amount\n1,42\n2,17\n".to_vec();
    std::fs::write(&csv, &csv_bytes).unwrap();
    let csv_digest = sha256(&csv_bytes);
    let csv_index = append(
        url,
        &dataset("train", &format!("file://{}", s(&csv)), &csv_digest),
    );
    append(
        url,
        &json!({
            "type": "training_run.recorded",
            "subject": {"kind": "training_run", "id": "run-1"},
            "related": [{"kind": "dataset_version", "id": csv_digest, "rel": "trained_on"}],
            "body": {"code_commit": "a".repeat(40), "environment": {"image_digest": csv_digest},
                     "metrics": {"auc": 0.9}, "status": "succeeded"},
        }),
    );

    // A dataset object in S3.
    let tx_bytes = b"transactions, version one\n".to_vec();
    let tx_digest = sha256(&tx_bytes);
    put_object(&moto, "datasets/tx.csv", &tx_bytes);
    append(
        url,
        &dataset("tx", &format!("s3://{BUCKET}/datasets/tx.csv"), &tx_digest),
    );

    // A model version in a local directory (a plain absolute path) ...
    let local_model = w.join("models/local");
    make_model(&local_model, 1);
    let local_manifest = custody(&["--json", "model", "hash", s(&local_model)])
        .ok()
        .json();
    append(url, &model("local-model", &local_manifest, s(&local_model)));

    // ... one under an S3 prefix, kept also in a local mirror laid out like the bucket ...
    let mirror = w.join("mirror");
    let mirror_model = mirror.join("models/remote");
    make_model(&mirror_model, 2);
    for f in ["weights.bin", "sub/config.json"] {
        put_object(
            &moto,
            &format!("models/remote/{f}"),
            &std::fs::read(mirror_model.join(f)).unwrap(),
        );
    }
    std::fs::create_dir_all(mirror.join("datasets")).unwrap();
    std::fs::write(mirror.join("datasets/tx.csv"), &tx_bytes).unwrap();
    let remote_manifest = custody(&["--json", "model", "hash", s(&mirror_model)])
        .ok()
        .json();
    let remote_hash = remote_manifest["version_hash"].as_str().unwrap().to_owned();
    append(
        url,
        &model(
            "remote-model",
            &remote_manifest,
            &format!("s3://{BUCKET}/models/remote/"),
        ),
    );

    // ... and one registered by `custody model register`, which records no location.
    let unplaced = w.join("models/unplaced");
    make_model(&unplaced, 3);
    cli(
        url,
        &[
            "model",
            "register",
            "-t",
            TENANT,
            s(&unplaced),
            "--name",
            "unplaced-model",
            "--run",
            "run-1",
        ],
    )
    .ok();

    // Everything matches.
    let out = drift(url, &moto, &[]);
    assert_eq!(out.code, 0, "{out:#?}");
    for name in ["train", "tx", "local-model", "remote-model"] {
        assert!(line(&out, name).starts_with("ok "), "{name}: {out:#?}");
    }
    assert!(
        line(&out, "train").contains(&format!("[governance #{csv_index} entry ")),
        "{out:#?}"
    );
    assert!(
        line(&out, "remote-model").ends_with(&remote_hash),
        "{out:#?}"
    );
    let skipped = line(&out, "unplaced-model");
    assert!(
        skipped.starts_with("skipped ") && skipped.contains("registry.uri"),
        "{out:#?}"
    );
    assert!(
        out.stdout.trim_end().ends_with(&format!(
            "5 artifacts in tenant {TENANT}: 4 ok, 0 drift, 0 missing, 0 unreachable, 1 skipped"
        )),
        "{out:#?}"
    );
    let report = drift(url, &moto, &["--json"]).ok().json();
    assert_eq!(report["summary"]["ok"], 4, "{report:#}");
    let train = artifact(&report, "train");
    assert_eq!(train["status"], "ok");
    assert_eq!(train["kind"], "dataset_version");
    assert_eq!(train["recorded"], csv_digest.as_str());
    assert_eq!(train["entry"]["index"], csv_index);
    assert!(
        train["entry"]["id"]
            .as_str()
            .is_some_and(|id| id.len() == 36)
    );

    // One byte of the local file changes, the local model directory goes, and the S3
    // objects are overwritten.
    let mut changed = csv_bytes.clone();
    changed[3] ^= 0x01;
    std::fs::write(&csv, &changed).unwrap();
    std::fs::remove_dir_all(&local_model).unwrap();
    let tx_changed = b"transactions, version two\n".to_vec();
    put_object(&moto, "datasets/tx.csv", &tx_changed);
    put_object(&moto, "models/remote/sub/config.json", b"{\"seed\": 99}");

    let out = drift(url, &moto, &[]);
    assert_eq!(out.code, 4, "{out:#?}");
    let train = line(&out, "train");
    assert!(
        train.starts_with("drift ")
            && train.contains(&format!(
                "recorded {csv_digest}, found {}",
                sha256(&changed)
            )),
        "{out:#?}"
    );
    let tx = line(&out, "tx");
    assert!(
        tx.starts_with("drift ")
            && tx.contains(&format!(
                "recorded {tx_digest}, found {}",
                sha256(&tx_changed)
            )),
        "{out:#?}"
    );
    let remote = line(&out, "remote-model");
    assert!(
        remote.starts_with("drift ") && remote.contains("; changed: sub/config.json"),
        "{out:#?}"
    );
    assert!(
        line(&out, "local-model").starts_with("missing "),
        "{out:#?}"
    );
    assert!(
        out.stdout.contains(
            "5 artifacts in tenant drift: 0 ok, 3 drift, 1 missing, 0 unreachable, 1 skipped"
        ),
        "{out:#?}"
    );
    let report = drift(url, &moto, &["--json"]);
    assert_eq!(report.code, 4, "{report:#?}");
    let report = report.json();
    let tx = artifact(&report, "tx");
    assert_eq!(tx["status"], "drift");
    assert_eq!(tx["found"], sha256(&tx_changed).as_str());
    assert_eq!(artifact(&report, "local-model")["status"], "missing");
    assert_eq!(
        artifact(&report, "remote-model")["files"]["changed"],
        json!(["sub/config.json"])
    );

    // --map reads the S3 URIs from the mirror, which still holds the registered bytes.
    let map = format!("s3://{BUCKET}/={}", s(&mirror));
    let out = drift(url, &moto, &["--map", &map]);
    assert_eq!(out.code, 4, "{out:#?}");
    for name in ["tx", "remote-model"] {
        let l = line(&out, name);
        assert!(
            l.starts_with("ok ") && l.contains(&format!("(read from {}", s(&mirror))),
            "{name}: {out:#?}"
        );
    }
}

#[test]
fn bad_flags_are_one_line_errors_with_exit_1() {
    // Checked before anything is contacted: nothing listens on this port.
    let url = "http://127.0.0.1:9";
    for (args, needles) in [
        (
            vec!["--map", "s3://bucket/"],
            vec!["--map", "PREFIX=LOCALDIR"],
        ),
        (
            vec!["--map", "gs://bucket/=/mnt/mirror"],
            vec!["--map", "unsupported scheme gs://"],
        ),
        (
            vec!["--s3-endpoint", "127.0.0.1:9000"],
            vec!["--s3-endpoint", "http://"],
        ),
    ] {
        let mut all = vec!["drift", "-t", TENANT];
        all.extend(args.iter().copied());
        let out = cli(url, &all);
        assert_eq!(out.code, 1, "{args:?}: {out:#?}");
        let line = out.one_line_error();
        for n in needles {
            assert!(line.contains(n), "{args:?}: error lacks {n:?}: {line}");
        }
        assert!(!line.contains("cannot reach"), "{args:?}: {line}");
    }
    let help = custody(&["drift", "--help"]).ok();
    assert!(
        help.stdout.contains("4 an artifact drifted or is missing"),
        "{help:#?}"
    );
}
