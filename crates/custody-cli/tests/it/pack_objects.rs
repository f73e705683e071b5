//! Evidence packs in object storage against a real server and a real S3-compatible server
//! (moto's, from the Python environment of `custody_testkit::python`; required, so a machine
//! without it fails rather than skips): `custody export -o s3://...` writes every file of the
//! pack with its manifest, `custody verify s3://...` checks it, a second export to the same
//! prefix is refused without touching it, an overwritten object fails verification naming its
//! key; the same with `file://` URLs; bad locations and a dead endpoint are one-line errors.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Out, Server, cli, cli_stdin, custody, s};
use custody_testkit::moto::{BUCKET, Moto, bucket};
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};

const TENANT: &str = "packs";

/// Every object under `prefix/` with its bytes, by key.
fn objects(moto: &str, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let store = bucket(moto);
    common::runtime().block_on(async {
        let metas: Vec<_> = store
            .list(Some(&ObjectPath::from(prefix)))
            .try_collect()
            .await
            .expect("list");
        let mut out = BTreeMap::new();
        for m in metas {
            let bytes = store
                .get(&m.location)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("read");
            out.insert(m.location.to_string(), bytes.to_vec());
        }
        out
    })
}

fn put_object(moto: &str, key: &str, bytes: &[u8]) {
    common::runtime()
        .block_on(bucket(moto).put(&ObjectPath::from(key), bytes.to_vec().into()))
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

/// `custody --server URL ARGS` as the harness principal, with test credentials for the S3
/// server and no AWS setting inherited from the machine.
fn run(url: &str, args: &[&str]) -> Out {
    let mut cmd = Command::new(common::BIN);
    custody_testkit::moto::use_test_credentials(&mut cmd);
    match common::token_for(url) {
        Some(token) => cmd
            .env("CUSTODY_TOKEN", token)
            .env("CUSTODY_PURPOSE", "process-level-test"),
        None => cmd
            .env_remove("CUSTODY_TOKEN")
            .env_remove("CUSTODY_PURPOSE"),
    };
    let out = cmd
        .args(["--server", url])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("CUSTODY_LOG")
        .env_remove("CUSTODY_SERVER")
        .env_remove("CUSTODY_TENANT")
        .stdin(Stdio::null())
        .output()
        .expect("run custody");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The names `SHA256SUMS` lists.
fn manifest_names(sums: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(sums)
        .lines()
        .map(|l| l.split_once("  ").expect("sum line").1.to_owned())
        .collect()
}

/// A tenant with a dataset, a training run and a registered model version; returns the
/// version hash and the governance verifier key file.
fn model_version(url: &str, w: &Path) -> (String, std::path::PathBuf) {
    cli(url, &["tenant", "create", TENANT]).ok();
    let ds = format!("sha256:{}", "d".repeat(64));
    for entry in [
        json!({
            "type": "dataset_version.registered",
            "subject": {"kind": "dataset_version", "id": ds},
            "body": {"name": "tx", "version": "2026-01", "uri": "s3://data/tx.csv",
                     "digest": ds, "legal_basis": "contract"},
        }),
        json!({
            "type": "training_run.recorded",
            "subject": {"kind": "training_run", "id": "run-1"},
            "related": [{"kind": "dataset_version", "id": ds, "rel": "trained_on"}],
            "body": {"code_commit": "a".repeat(40), "environment": {"image_digest": ds},
                     "metrics": {"auc": 0.9}, "status": "succeeded"},
        }),
    ] {
        cli_stdin(url, &["append", "-t", TENANT], entry.to_string().as_bytes()).ok();
    }
    let model = w.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("weights.bin"), vec![7u8; 50_000]).unwrap();
    let hash = custody(&["model", "hash", s(&model)])
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
            TENANT,
            s(&model),
            "--name",
            "fraud",
            "--run",
            "run-1",
        ],
    )
    .ok();
    let gov = w.join("gov.vkey");
    std::fs::write(&gov, cli(url, &["vkey", "-t", TENANT]).ok().stdout).unwrap();
    (hash, gov)
}

#[test]
fn packs_export_to_s3_verify_from_it_and_are_write_once() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let moto_server = Moto::start(w);
    let moto = moto_server.url.clone();
    let server = Server::start(&w.join("data"));
    let url = server.url.as_str();
    let (hash, gov) = model_version(url, w);
    let target = format!("s3://{BUCKET}/packs/fraud-1/");

    let out = run(
        url,
        &[
            "export",
            "-t",
            TENANT,
            "--model",
            &hash,
            "-o",
            &target,
            "--s3-endpoint",
            &moto,
        ],
    )
    .ok();
    assert!(
        out.stdout.contains(&format!("to {target}: "))
            && out.stdout.contains(&format!("custody verify {target}")),
        "{out:#?}"
    );

    // The manifest is there, every file it names is there, and nothing else.
    let stored = objects(&moto, "packs/fraud-1");
    let sums = stored
        .get("packs/fraud-1/SHA256SUMS")
        .unwrap_or_else(|| panic!("no manifest: {:?}", stored.keys()));
    let mut named = manifest_names(sums);
    for f in [
        "pack.json",
        "README.md",
        "checkpoints/governance.checkpoint",
    ] {
        assert!(named.contains(f), "{f} not in the manifest: {named:?}");
    }
    named.insert("SHA256SUMS".into());
    let keys: BTreeSet<String> = stored
        .keys()
        .map(|k| k.strip_prefix("packs/fraud-1/").unwrap().to_owned())
        .collect();
    assert_eq!(keys, named);

    let out = run(
        url,
        &["verify", &target, "--vkey", s(&gov), "--s3-endpoint", &moto],
    )
    .ok();
    assert!(
        !out.stdout.contains("FAILED") && !out.stdout.contains("WARNING"),
        "{out:#?}"
    );
    assert!(out.stdout.contains("OK: SHA256SUMS: all "), "{out:#?}");
    let report = run(url, &["--json", "verify", &target, "--s3-endpoint", &moto])
        .ok()
        .json();
    assert_eq!(report["ok"], true, "{report:#}");

    // A second export to the prefix is refused and changes nothing.
    let line = run(
        url,
        &[
            "export",
            "-t",
            TENANT,
            "--model",
            &hash,
            "-o",
            &target,
            "--s3-endpoint",
            &moto,
        ],
    )
    .one_line_error();
    assert!(
        line.contains(&format!("--output {target}")) && line.contains("write-once"),
        "{line}"
    );
    assert_eq!(objects(&moto, "packs/fraud-1"), stored);

    // An entry object overwritten in the bucket: exit 2, naming the object.
    let entry_key = stored
        .keys()
        .find(|k| k.starts_with("packs/fraud-1/entries/governance/"))
        .expect("an entry object")
        .clone();
    let mut changed = stored[&entry_key].clone();
    let at = changed.len() / 2;
    changed[at] ^= 0x01;
    put_object(&moto, &entry_key, &changed);
    let out = run(
        url,
        &["verify", &target, "--vkey", s(&gov), "--s3-endpoint", &moto],
    );
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(
        out.stdout.lines().any(|l| l.starts_with(&format!(
            "FAILED: s3://{BUCKET}/{entry_key}: object_sha256: "
        ))),
        "{out:#?}"
    );
    let report = run(url, &["--json", "verify", &target, "--s3-endpoint", &moto]).json();
    assert_eq!(report["ok"], false, "{report:#}");
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["file"] == format!("s3://{BUCKET}/{entry_key}")),
        "{report:#}"
    );

    // A dead endpoint: one line naming the location and what to check, nothing listed.
    for args in [
        vec!["export", "-t", TENANT, "--model", hash.as_str(), "-o"],
        vec!["verify"],
    ] {
        let fresh = format!("s3://{BUCKET}/packs/fraud-2/");
        let mut all = args.clone();
        all.extend([fresh.as_str(), "--s3-endpoint", "http://127.0.0.1:9"]);
        let line = run(url, &all).one_line_error();
        assert!(
            line.contains(&fresh) && line.contains("--s3-endpoint"),
            "{args:?}: {line}"
        );
    }
    assert!(objects(&moto, "packs/fraud-2").is_empty());
}

#[test]
fn packs_export_to_file_urls_and_verify_from_them() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let server = Server::start(&w.join("data"));
    let url = server.url.as_str();
    let (hash, gov) = model_version(url, w);
    let dir = w.join("exported/fraud 1");
    let target = url::Url::from_directory_path(&dir).unwrap().to_string();
    assert!(target.starts_with("file:///") && target.ends_with("fraud%201/"));

    let report: Value = run(
        url,
        &[
            "--json", "export", "-t", TENANT, "--model", &hash, "-o", &target,
        ],
    )
    .ok()
    .json();
    assert_eq!(report["location"], target.as_str(), "{report:#}");
    assert!(dir.join("SHA256SUMS").is_file() && dir.join("pack.json").is_file());
    let out = run(url, &["verify", &target, "--vkey", s(&gov)]).ok();
    assert!(!out.stdout.contains("FAILED"), "{out:#?}");
    // The directory is a pack as `-o DIR` writes it.
    custody(&["verify", s(&dir), "--vkey", s(&gov)]).ok();

    let before = std::fs::read(dir.join("pack.json")).unwrap();
    let line = run(
        url,
        &["export", "-t", TENANT, "--model", &hash, "-o", &target],
    )
    .one_line_error();
    assert!(line.contains("write-once"), "{line}");
    assert_eq!(std::fs::read(dir.join("pack.json")).unwrap(), before);

    let mut changed = before.clone();
    changed[10] ^= 0x01;
    std::fs::write(dir.join("pack.json"), changed).unwrap();
    let out = run(url, &["verify", &target, "--vkey", s(&gov)]);
    assert_eq!(out.code, 2, "{out:#?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&format!("FAILED: {target}pack.json: object_sha256: "))),
        "{out:#?}"
    );
}

#[test]
fn bad_locations_are_one_line_errors_and_nothing_is_written() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // Nothing listens here: every error below comes before any request to the server.
    let url = "http://127.0.0.1:9";
    let hash = format!("sha256:{}", "a".repeat(64));
    let never = w.join("never");
    let never_url = url::Url::from_directory_path(&never).unwrap().to_string();
    let export = |to: &str| -> Vec<String> {
        ["export", "-t", TENANT, "--model", hash.as_str(), "-o", to]
            .map(str::to_owned)
            .to_vec()
    };
    let verify = |from: &str| vec!["verify".to_owned(), from.to_owned()];
    for (args, needles) in [
        (
            export("gs://bucket/packs/"),
            vec!["--output gs://bucket/packs/", "unsupported scheme gs://"],
        ),
        (
            export("s3:///packs/"),
            vec!["--output s3:///packs/", "names no bucket", "s3://BUCKET/"],
        ),
        (
            export("file://host/packs/"),
            vec!["--output file://host/packs/", "file:///ABSOLUTE/DIR/"],
        ),
        (
            vec![
                "export".into(),
                "-t".into(),
                TENANT.into(),
                "-o".into(),
                format!("s3://{BUCKET}/log/"),
            ],
            vec!["--output s3://", "evidence packs", "local file"],
        ),
        (
            [
                export("s3://bucket/packs/"),
                vec!["--s3-endpoint".into(), "127.0.0.1:9000".into()],
            ]
            .concat(),
            vec!["--s3-endpoint", "http://"],
        ),
        (
            verify("gs://bucket/packs/"),
            vec!["gs://bucket/packs/", "unsupported scheme gs://"],
        ),
        (
            verify("s3:///packs/"),
            vec!["s3:///packs/", "names no bucket"],
        ),
        (
            verify(&never_url),
            vec![never_url.as_str(), "no SHA256SUMS"],
        ),
        // The server is unreachable: the pack is never fetched, so nothing is written.
        (export(&never_url), vec!["127.0.0.1:9"]),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(url, &args);
        assert_eq!(out.code, 1, "{args:?}: {out:#?}");
        let line = out.one_line_error();
        for n in needles {
            assert!(line.contains(n), "{args:?}: error lacks {n:?}: {line}");
        }
    }
    assert!(!never.exists());
    let help = custody(&["export", "--help"]).ok();
    assert!(help.stdout.contains("s3://BUCKET/PREFIX/"), "{help:#?}");
}
