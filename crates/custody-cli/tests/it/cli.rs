//! The `custody` command line as a user drives it: every command against a real server, bad
//! input (one `error:` line, nothing written), and a clean stop on SIGTERM.

use crate::common;

use std::path::Path;

use common::{Out, Server, cli, cli_stdin, custody, entry, s};
use custody_core::merkle::{self, Hash};
use serde_json::{Value, json};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    s(&p).to_string()
}

fn ndjson(kind: &str, range: std::ops::Range<u64>) -> String {
    range
        .map(|n| serde_json::to_string(&entry(kind, n)).unwrap() + "\n")
        .collect()
}

/// The size of the tenant's governance log, read through `custody checkpoint --json`.
fn size(url: &str, tenant: &str) -> u64 {
    let cp = cli(url, &["--json", "checkpoint", "-t", tenant])
        .ok()
        .json();
    cp["size"].as_u64().expect("size")
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .expect("hashes")
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).expect("base64 hash"))
        .collect()
}

fn root_of(checkpoint: &Value) -> Hash {
    Hash::from_base64(checkpoint["root"].as_str().unwrap()).unwrap()
}

#[test]
fn user_workflow() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let server = Server::start(data.path());
    let url = server.url.as_str();

    // Tenants.
    let out = cli(url, &["tenant", "create", "acme"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "created tenant acme", "{out:#?}");
    for log in ["governance", "inference", "access"] {
        assert!(
            lines.iter().any(|l| l.trim_start().starts_with(log)
                && l.contains(&format!("test.local/acme/{log}+"))),
            "no verifier key for {log}: {out:#?}"
        );
    }
    let t = cli(url, &["--json", "tenant", "create", "beta"])
        .ok()
        .json();
    assert_eq!(t["name"], "beta");
    assert_eq!(t["logs"].as_array().unwrap().len(), 3);
    let list = cli(url, &["--json", "tenant", "list"]).ok().json();
    assert_eq!(list["tenants"], json!(["acme", "beta"]));
    let logs = cli(url, &["--json", "logs", "acme"]).ok().json();
    let logs = logs["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 3);
    assert!(logs.iter().all(|l| l["size"] == 0), "{logs:?}");

    // One entry from a file, with a payload.
    let mut first = entry("single", 0);
    first["payload"] = json!({"operator_email": "ops@example.com"});
    let f = write(w, "first.json", &first.to_string());
    let out = cli(url, &["append", "-t", "acme", &f]).ok();
    assert!(
        out.stdout.starts_with("appended index 0 id ") && out.stdout.contains("checkpoint size 1"),
        "{out:#?}"
    );
    // One from stdin.
    let out = cli_stdin(
        url,
        &["--json", "append", "-t", "acme", "-"],
        entry("single", 1).to_string().as_bytes(),
    )
    .ok();
    let r = out.json();
    assert_eq!(
        (r["index"].as_u64(), r["existing"].as_bool()),
        (Some(1), Some(false))
    );
    // An atomic array.
    let arr = json!([entry("array", 2), entry("array", 3), entry("array", 4)]);
    let f = write(w, "array.json", &arr.to_string());
    let out = cli(url, &["append", "-t", "acme", &f]).ok();
    assert!(
        out.stdout.starts_with("appended 3 entries (indexes 2..=4)"),
        "{out:#?}"
    );
    let cp5_file = w.join("cp5.checkpoint");
    cli(url, &["checkpoint", "-t", "acme", "-o", s(&cp5_file)]).ok();
    let cp5 = cli(url, &["--json", "checkpoint", "-t", "acme"])
        .ok()
        .json();
    assert_eq!(cp5["size"], 5);
    assert_eq!(
        cp5["note"].as_str(),
        Some(std::fs::read_to_string(&cp5_file).unwrap().as_str())
    );

    // NDJSON in batches of 7: the progress bar must not touch stdout (or, off a terminal, stderr).
    let f = write(w, "bulk.ndjson", &ndjson("bulk", 0..50));
    let out = cli(url, &["append", "-t", "acme", "--batch", "7", &f]).ok();
    assert_eq!(
        out.stdout, "appended 50 entries (indexes 5..=54), covered by checkpoint size 55\n",
        "{out:#?}"
    );
    assert!(out.stderr.is_empty(), "{out:#?}");
    let body = ndjson("bulk", 50..100);
    let out = cli_stdin(
        url,
        &[
            "--json", "append", "-t", "acme", "--ndjson", "--batch", "7", "-",
        ],
        body.as_bytes(),
    )
    .ok();
    let results: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON result per line"))
        .collect();
    assert_eq!(results.len(), 50, "{out:#?}");
    for (k, r) in results.iter().enumerate() {
        assert_eq!(r["index"].as_u64(), Some(55 + k as u64));
    }
    assert_eq!(size(url, "acme"), 105);

    // get --json.
    let out = cli(url, &["--json", "get", "-t", "acme", "0"]).ok();
    let e0 = out.json();
    assert_eq!(e0["index"], 0);
    assert_eq!(e0["envelope"]["type"], "x.test.single");
    assert_eq!(e0["payload"], first["payload"]);
    assert!(
        e0["envelope"]["payload_commitment"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let entry0 = write(w, "entry0.json", &out.stdout);
    let e3_out = cli(url, &["--json", "get", "-t", "acme", "3"]).ok();
    let e3 = e3_out.json();
    let entry3 = write(w, "entry3.json", &e3_out.stdout);
    let entry4 = write(
        w,
        "entry4.json",
        &cli(url, &["--json", "get", "-t", "acme", "4"]).ok().stdout,
    );
    // The text form is JSON for people, too.
    cli(url, &["get", "-t", "acme", "3"]).ok().json();

    // list --type ... --all, text and JSON, paginated.
    let out = cli(
        url,
        &[
            "list",
            "-t",
            "acme",
            "--type",
            "x.test.bulk",
            "--limit",
            "8",
            "--all",
        ],
    )
    .ok();
    let rows: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(rows.len(), 100, "{out:#?}");
    assert!(rows.iter().all(|r| r.contains("x.test.bulk")), "{out:#?}");
    let out = cli(
        url,
        &[
            "--json",
            "list",
            "-t",
            "acme",
            "--type",
            "x.test.bulk",
            "--limit",
            "8",
            "--all",
        ],
    )
    .ok();
    let indexes: Vec<u64> = out
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON line")["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(indexes, (5..105).collect::<Vec<_>>());
    let out = cli(
        url,
        &[
            "list",
            "-t",
            "acme",
            "--type",
            "x.test.array",
            "--limit",
            "2",
        ],
    )
    .ok();
    assert!(
        out.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("more: --cursor "),
        "{out:#?}"
    );
    let out = cli(
        url,
        &["--json", "list", "-t", "acme", "--type", "x.test.nothing"],
    )
    .ok();
    assert_eq!(out.stdout, "");

    // checkpoint -o saves exactly what it prints.
    let cp_file = w.join("latest.checkpoint");
    let out = cli(url, &["checkpoint", "-t", "acme", "-o", s(&cp_file)]).ok();
    assert_eq!(out.stdout, std::fs::read_to_string(&cp_file).unwrap());
    assert!(
        out.stdout.starts_with("test.local/acme/governance\n105\n"),
        "{out:#?}"
    );
    let cp = cli(url, &["--json", "checkpoint", "-t", "acme"])
        .ok()
        .json();
    assert_eq!(cp["size"], 105);
    assert_eq!(cp["note"].as_str(), Some(out.stdout.as_str()));

    // Proofs, checked here with the RFC 9162 algorithms.
    let p = cli(
        url,
        &["--json", "proof", "inclusion", "-t", "acme", "--index", "3"],
    )
    .ok()
    .json();
    assert_eq!(
        (p["index"].as_u64(), p["size"].as_u64()),
        (Some(3), Some(105))
    );
    assert_eq!(p["leaf_hash"], e3["leaf_hash"]);
    let leaf = Hash::from_hex(e3["leaf_hash"].as_str().unwrap()).unwrap();
    merkle::verify_inclusion(3, 105, &leaf, &hashes(&p["hashes"]), &root_of(&cp))
        .expect("inclusion proof verifies");
    let p = cli(
        url,
        &[
            "--json",
            "proof",
            "inclusion",
            "-t",
            "acme",
            "--index",
            "3",
            "--size",
            "5",
        ],
    )
    .ok()
    .json();
    merkle::verify_inclusion(3, 5, &leaf, &hashes(&p["hashes"]), &root_of(&cp5))
        .expect("inclusion proof at size 5 verifies");
    let out = cli(url, &["proof", "inclusion", "-t", "acme", "--index", "3"]).ok();
    assert!(out.stdout.starts_with("index 3 size 105 leaf "), "{out:#?}");
    let p = cli(
        url,
        &[
            "--json",
            "proof",
            "consistency",
            "-t",
            "acme",
            "--from",
            "5",
            "--to",
            "105",
        ],
    )
    .ok()
    .json();
    assert_eq!((p["from"].as_u64(), p["to"].as_u64()), (Some(5), Some(105)));
    merkle::verify_consistency(5, 105, &hashes(&p["hashes"]), &root_of(&cp5), &root_of(&cp))
        .expect("consistency proof verifies");
    let out = cli(
        url,
        &[
            "proof",
            "consistency",
            "-t",
            "acme",
            "--from",
            "5",
            "--to",
            "105",
        ],
    )
    .ok();
    assert!(out.stdout.starts_with("from 5 to 105\n"), "{out:#?}");
    let proof3 = w.join("e3.tlog-proof");
    let proof0 = w.join("e0.tlog-proof");
    let out = cli(
        url,
        &[
            "proof",
            "tlog",
            "-t",
            "acme",
            "--index",
            "3",
            "-o",
            s(&proof3),
        ],
    )
    .ok();
    assert_eq!(out.stdout, "", "-o writes the file only");
    let printed = cli(url, &["proof", "tlog", "-t", "acme", "--index", "3"]).ok();
    assert_eq!(printed.stdout, std::fs::read_to_string(&proof3).unwrap());
    cli(
        url,
        &[
            "proof",
            "tlog",
            "-t",
            "acme",
            "--index",
            "0",
            "-o",
            s(&proof0),
        ],
    )
    .ok();

    // vkey, pinned in a file and inline.
    let out = cli(url, &["vkey", "-t", "acme"]).ok();
    let vkey_text = out.stdout.trim_end().to_string();
    assert!(
        vkey_text.starts_with("test.local/acme/governance+"),
        "{out:#?}"
    );
    assert_eq!(out.stdout.lines().count(), 1);
    let v = cli(url, &["--json", "vkey", "-t", "acme"]).ok().json();
    assert_eq!(v["verifier_key"].as_str(), Some(vkey_text.as_str()));
    let vkey = write(w, "acme.vkey", &out.stdout);

    // Offline verification of one entry (no --server needed).
    let out = custody(&[
        "verify",
        "entry",
        "--vkey",
        &vkey,
        "--proof",
        s(&proof3),
        "--entry",
        &entry3,
    ])
    .ok();
    assert!(
        out.stdout
            .starts_with("OK: entry 3 of test.local/acme/governance"),
        "{out:#?}"
    );
    let r = custody(&[
        "--json",
        "verify",
        "entry",
        "--vkey",
        &vkey_text,
        "--proof",
        s(&proof3),
        "--entry",
        &entry3,
    ])
    .ok()
    .json();
    assert_eq!(
        (r["ok"].as_bool(), r["index"].as_u64()),
        (Some(true), Some(3))
    );
    let out = custody(&[
        "verify",
        "entry",
        "--vkey",
        &vkey,
        "--proof",
        s(&proof0),
        "--entry",
        &entry0,
    ])
    .ok();
    assert!(
        out.stdout.contains("payload matches its commitment"),
        "{out:#?}"
    );
    // A bare envelope works too.
    let bare = write(w, "bare3.json", &e3["envelope"].to_string());
    custody(&[
        "verify",
        "entry",
        "--vkey",
        &vkey,
        "--proof",
        s(&proof3),
        "--entry",
        &bare,
    ])
    .ok();
    // Another entry against entry 3's proof fails, with one line.
    let out = custody(&[
        "verify",
        "entry",
        "--vkey",
        &vkey,
        "--proof",
        s(&proof3),
        "--entry",
        &entry4,
    ]);
    let line = out.one_line_error();
    assert!(line.contains("NOT proven"), "{line}");
    assert_eq!(out.stdout, "");
    // Another log's key does not verify acme's proof.
    let beta = cli(url, &["vkey", "-t", "beta"]).ok().stdout;
    let out = custody(&[
        "verify",
        "entry",
        "--vkey",
        beta.trim(),
        "--proof",
        s(&proof3),
        "--entry",
        &entry3,
    ]);
    out.one_line_error();
    // A payload that does not open the commitment.
    let mut forged: Value =
        serde_json::from_str(&std::fs::read_to_string(&entry0).unwrap()).unwrap();
    forged["payload"] = json!({"operator_email": "someone-else@example.com"});
    let forged = write(w, "forged0.json", &forged.to_string());
    let line = custody(&[
        "verify",
        "entry",
        "--vkey",
        &vkey,
        "--proof",
        s(&proof0),
        "--entry",
        &forged,
    ])
    .one_line_error();
    assert!(line.contains("payload"), "{line}");

    // Appending the same id again is idempotent through the CLI.
    // (Entry 3 got a server-assigned id; re-sending its content with that id finds it.)
    let mut same = entry("array", 3);
    same["id"] = e3["envelope"]["id"].clone();
    let again = write(w, "again.json", &same.to_string());
    let r = cli(url, &["--json", "append", "-t", "acme", &again])
        .ok()
        .json();
    assert_eq!(
        (r["index"].as_u64(), r["existing"].as_bool()),
        (Some(3), Some(true))
    );
    assert_eq!(size(url, "acme"), 105);
}

#[test]
fn bad_input_is_one_error_line_and_writes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let server = Server::start(data.path());
    let url = server.url.as_str();
    cli(url, &["tenant", "create", "acme"]).ok();
    let f = write(w, "seed.ndjson", &ndjson("seed", 0..3));
    cli(url, &["append", "-t", "acme", &f]).ok();
    let before = size(url, "acme");
    assert_eq!(before, 3);

    let expect_error = |out: Out, needles: &[&str]| {
        let line = out.one_line_error();
        for n in needles {
            assert!(
                line.to_lowercase().contains(&n.to_lowercase()),
                "error line lacks {n:?}: {line}"
            );
        }
        assert_eq!(out.stdout, "", "nothing on stdout on error: {out:#?}");
        line
    };

    // Not JSON at all.
    let f = write(w, "bad.json", "{\"type\": \"x.test.bad\", \"actor\": ");
    expect_error(cli(url, &["append", "-t", "acme", &f]), &["JSON"]);
    // Not JSON, from stdin.
    expect_error(
        cli_stdin(url, &["append", "-t", "acme", "-"], b"not json"),
        &["JSON"],
    );
    // NDJSON with a syntax error on line 37.
    let mut lines: Vec<String> = ndjson("bulk", 0..50).lines().map(str::to_owned).collect();
    lines[36] = "{\"type\": \"x.test.bulk\", oops}".into();
    let f = write(w, "syntax37.ndjson", &(lines.join("\n") + "\n"));
    expect_error(
        cli(url, &["append", "-t", "acme", "--batch", "7", &f]),
        &["line 37"],
    );
    // NDJSON whose line 37 is JSON but not a valid entry.
    let mut lines: Vec<String> = ndjson("bulk", 0..50).lines().map(str::to_owned).collect();
    let mut robot = entry("bulk", 36);
    robot["actor"]["kind"] = json!("robot");
    lines[36] = robot.to_string();
    let f = write(w, "robot37.ndjson", &(lines.join("\n") + "\n"));
    expect_error(
        cli(url, &["append", "-t", "acme", "--batch", "7", &f]),
        &["line 37", "actor.kind"],
    );
    // The same through stdin with --ndjson.
    expect_error(
        cli_stdin(
            url,
            &["append", "-t", "acme", "--ndjson", "-"],
            (lines.join("\n") + "\n").as_bytes(),
        ),
        &["line 37", "actor.kind"],
    );
    // One entry with actor.kind "robot".
    let f = write(w, "robot.json", &robot.to_string());
    expect_error(cli(url, &["append", "-t", "acme", &f]), &["actor.kind"]);
    // An array with a bad second entry: nothing of it is written.
    let arr = json!([entry("arr", 0), robot]);
    let f = write(w, "robot-array.json", &arr.to_string());
    expect_error(cli(url, &["append", "-t", "acme", &f]), &["actor.kind"]);
    // Missing type.
    let mut untyped = entry("x", 0);
    untyped.as_object_mut().unwrap().remove("type");
    let f = write(w, "untyped.json", &untyped.to_string());
    expect_error(cli(url, &["append", "-t", "acme", &f]), &["type"]);
    // Empty input.
    let f = write(w, "empty.ndjson", "\n\n");
    expect_error(cli(url, &["append", "-t", "acme", &f]), &["no entries"]);
    // A missing file.
    expect_error(
        cli(url, &["append", "-t", "acme", s(&w.join("missing.json"))]),
        &["missing.json"],
    );
    assert_eq!(
        size(url, "acme"),
        before,
        "a rejected input wrote something"
    );

    // The server's own validation names the field too (RFC 9457 errors[]).
    let rt = common::runtime();
    let client = custody_client::Client::new(url)
        .unwrap()
        .with_token(&common::token_for(url).unwrap());
    let mut robot = entry("x", 0);
    robot["actor"] = json!({"kind": "robot", "id": common::HARNESS});
    let err = rt
        .block_on(client.append("acme", "governance", &robot))
        .expect_err("robot accepted");
    let problem = err.problem().expect("a problem document");
    assert_eq!(problem.status, 400);
    assert!(
        problem.errors.iter().any(|f| f.field == "actor.kind"),
        "{problem:?}"
    );
    assert_eq!(size(url, "acme"), before);

    // Unknown tenant, for writes and reads.
    let f = write(w, "good.json", &entry("good", 0).to_string());
    expect_error(cli(url, &["append", "-t", "nosuch", &f]), &["not found"]);
    expect_error(cli(url, &["get", "-t", "nosuch", "0"]), &["not found"]);
    expect_error(cli(url, &["logs", "nosuch"]), &["not found"]);
    // Unknown index.
    expect_error(cli(url, &["get", "-t", "acme", "99"]), &["99"]);
    // Tenant that exists already; invalid tenant name.
    expect_error(cli(url, &["tenant", "create", "acme"]), &["exists"]);
    expect_error(cli(url, &["tenant", "create", "Bad_Name"]), &["name"]);

    // Bad --vkey, inline and as a file.
    let proof = w.join("p.tlog-proof");
    cli(
        url,
        &[
            "proof",
            "tlog",
            "-t",
            "acme",
            "--index",
            "0",
            "-o",
            s(&proof),
        ],
    )
    .ok();
    let e = write(
        w,
        "e0.json",
        &cli(url, &["--json", "get", "-t", "acme", "0"]).ok().stdout,
    );
    expect_error(
        custody(&[
            "verify",
            "entry",
            "--vkey",
            "not-a-key",
            "--proof",
            s(&proof),
            "--entry",
            &e,
        ]),
        &["--vkey"],
    );
    let junk = write(w, "junk.vkey", "junk+00000000+AAAA\n");
    expect_error(
        custody(&[
            "verify",
            "entry",
            "--vkey",
            &junk,
            "--proof",
            s(&proof),
            "--entry",
            &e,
        ]),
        &["--vkey"],
    );
    let export = w.join("acme.export");
    cli(url, &["export", "-t", "acme", "-o", s(&export)]).ok();
    expect_error(
        custody(&[
            "verify",
            "log",
            "--vkey",
            "not-a-key",
            "--export",
            s(&export),
        ]),
        &["--vkey"],
    );
    // A proof file that is not a tlog-proof.
    let junk_proof = write(w, "junk.tlog-proof", "hello\n");
    let vkey = cli(url, &["vkey", "-t", "acme"]).ok().stdout;
    expect_error(
        custody(&[
            "verify",
            "entry",
            "--vkey",
            vkey.trim(),
            "--proof",
            &junk_proof,
            "--entry",
            &e,
        ]),
        &["--proof"],
    );

    // Server unreachable.
    expect_error(
        custody(&["--server", "http://127.0.0.1:1", "logs", "acme"]),
        &["cannot reach"],
    );
    expect_error(
        custody(&["--server", "http://127.0.0.1:1", "append", "-t", "acme", &f]),
        &["cannot reach"],
    );
    assert_eq!(size(url, "acme"), before);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    // Idle: never served a write.
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let status = server.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "idle server: {status:?}\n{}",
        server.log()
    );
    assert!(server.log().contains("custody stopped"), "{}", server.log());

    // After writes: the log's sequencer is running when the signal arrives.
    let mut server = Server::start(data.path());
    cli(&server.url, &["tenant", "create", "acme"]).ok();
    let f = data.path().join("one.json");
    std::fs::write(&f, entry("x", 0).to_string()).unwrap();
    cli(&server.url, &["append", "-t", "acme", s(&f)]).ok();
    let status = server.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "after an append: {status:?}\n{}",
        server.log()
    );
    assert!(server.log().contains("custody stopped"), "{}", server.log());

    // And everything acknowledged is there on the next start.
    let server = Server::start(data.path());
    assert_eq!(size(&server.url, "acme"), 1);
}

#[test]
fn one_server_per_data_dir_and_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("fresh");
    let data_s = data.to_str().unwrap();
    let server = Server::start(&data);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "a new data dir is private");
    assert_eq!(
        mode(&data.join("custody.db")),
        0o600,
        "the database holds payloads"
    );

    let second = custody(&["serve", "--data-dir", data_s, "--listen", "127.0.0.1:0"]);
    let line = second.one_line_error();
    assert!(line.contains("in use by another custody server"), "{line}");
    drop(server);
}
