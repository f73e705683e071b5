//! Large payloads in a real S3-compatible server (moto's): `custody serve --payload-store
//! s3://...` keeps a payload above the inline limit as one object and only its reference in
//! the database; reads check the object's digest (a replaced object is an integrity error,
//! never served); offline deep verification recomputes the commitments through the bucket;
//! a data-subject erasure deletes the object.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Server, cli, cli_stdin, runtime, s};
use custody_testkit::moto::{BUCKET, Moto, aws_env, bucket as s3};
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};

const TENANT: &str = "objects";
const SUBJECT: &str = "pat.doe@example.com";

fn objects_under(moto: &str, prefix: &str) -> Vec<String> {
    use futures_util::TryStreamExt;
    let store = s3(moto);
    runtime().block_on(async {
        store
            .list(Some(&object_store::path::Path::from(prefix)))
            .map_ok(|m| m.location.to_string())
            .try_collect::<Vec<_>>()
            .await
            .expect("list")
    })
}

fn start(dir: &Path, moto: &str) -> Server {
    let env = aws_env(moto);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(
        dir,
        &[
            "--payload-store",
            &format!("s3://{BUCKET}/payloads"),
            "--payload-inline-max",
            "1024",
        ],
        &envs,
    )
}

/// Every file of the data directory contains none of `needle`.
fn absent_from_files(dir: &Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                return false;
            }
        }
    }
    true
}

#[test]
fn large_payloads_live_in_s3_checked_on_read_and_erased() {
    let work = tempfile::tempdir().expect("tempdir");
    let moto_server = Moto::start(work.path());
    let moto = moto_server.url.clone();
    let data = work.path().join("data");
    let mut server = start(&data, &moto);
    let url = server.url.clone();
    cli(&url, &["tenant", "create", TENANT]).ok();

    let marker = "m".repeat(4000);
    let big = json!({"type": "x.doc.scanned", "subject": {"kind": "doc", "id": "d-1"},
        "body": {}, "payload": {"email": SUBJECT, "scan": marker}});
    let small = json!({"type": "x.doc.noted", "subject": {"kind": "doc", "id": "d-2"},
        "body": {}, "payload": {"note": "short"}});
    let both = json!([big, small]).to_string();
    cli_stdin(&url, &["append", "-t", TENANT, "-"], both.as_bytes()).ok();

    // One object, for the large payload only; the database holds its reference.
    let keys = objects_under(&moto, "payloads");
    assert_eq!(
        keys.len(),
        1,
        "exactly the large payload is an object: {keys:?}"
    );
    assert!(
        keys[0].starts_with(&format!("payloads/{TENANT}/governance/")),
        "{keys:?}"
    );
    assert!(
        absent_from_files(&data, marker.as_bytes()),
        "the large payload's bytes are not in the data directory"
    );
    let got: Value = cli(&url, &["--json", "get", "-t", TENANT, "0"]).ok().json();
    assert_eq!(
        got["payload"]["scan"],
        json!(marker),
        "read back through S3"
    );
    let got: Value = cli(&url, &["--json", "get", "-t", TENANT, "1"]).ok().json();
    assert_eq!(got["payload"]["note"], json!("short"));

    // A replaced object is never served.
    let location = object_store::path::Path::from(keys[0].as_str());
    let original = runtime()
        .block_on(async { s3(&moto).get(&location).await?.bytes().await })
        .expect("get object");
    runtime()
        .block_on(s3(&moto).put(&location, b"{\"email\":\"x\"}".to_vec().into()))
        .expect("replace object");
    let out = cli(&url, &["get", "-t", TENANT, "0"]);
    assert_ne!(out.code, 0, "a replaced object must not be served");
    let err = out.one_line_error();
    assert!(
        err.contains("does not match its recorded SHA-256") && !err.contains(SUBJECT),
        "{err}"
    );
    runtime()
        .block_on(s3(&moto).put(&location, original.to_vec().into()))
        .expect("restore object");

    // Offline deep verification recomputes the commitment through the bucket.
    server.terminate();
    let mut verify = Command::new(common::BIN);
    custody_testkit::moto::use_endpoint(&mut verify, &moto);
    let out = verify
        .args(["verify", "--deep", "--data-dir", s(&data), "-t", TENANT])
        .args(["--payload-store", &format!("s3://{BUCKET}/payloads")])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("OK: objects/governance: 2 entries"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("2 payload commitments recomputed"), "{text}");

    // A data-subject erasure deletes the object.
    let server = start(&data, &moto);
    let done = cli(
        &server.url,
        &[
            "erase",
            "-t",
            TENANT,
            "--data-subject",
            SUBJECT,
            "--legal-basis",
            "GDPR Art. 17",
        ],
    )
    .ok();
    assert!(done.stdout.starts_with("erased 1 payload(s)"), "{done:#?}");
    assert!(
        objects_under(&moto, "payloads").is_empty(),
        "the erased payload's object is deleted"
    );
    let got: Value = cli(&server.url, &["--json", "get", "-t", TENANT, "0"])
        .ok()
        .json();
    assert_eq!(got["payload_status"], json!("erased"));
}
