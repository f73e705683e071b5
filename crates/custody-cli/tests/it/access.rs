//! Access control, the bootstrap administrator and erasure, driven through the `custody`
//! binary the way an operator and an MLOps engineer would.

use crate::common;

use common::{Server, cli, cli_as};
use serde_json::json;

#[test]
fn a_new_server_prints_its_administrator_token_once() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_fresh(data.path());
    let log = server.log();
    let token = log
        .split_whitespace()
        .find(|w| w.starts_with("cst_"))
        .unwrap_or_else(|| panic!("no token printed on first start:\n{log}"))
        .to_string();
    let who = cli_as(&server.url, &token, &["--json", "whoami"], b"")
        .ok()
        .json();
    assert_eq!(who["roles"], json!(["admin"]));
    assert!(
        who.get("tenant").is_none(),
        "a server administrator spans tenants: {who}"
    );
    // It may create tenants and principals, but is not a writer of evidence.
    cli_as(&server.url, &token, &["tenant", "create", "acme"], b"").ok();
    let e = r#"{"type": "x.test.e", "subject": {"kind": "item", "id": "i"}, "body": {}}"#;
    let line = cli_as(
        &server.url,
        &token,
        &["append", "-t", "acme", "-"],
        e.as_bytes(),
    )
    .one_line_error();
    assert!(line.contains("403") && line.contains("writer"), "{line}");
    // The token never reaches the log through tracing: it appears exactly once.
    assert_eq!(log.matches(&token).count(), 1, "{log}");
    drop(server);
    let again = Server::start_fresh(data.path());
    assert!(
        !again.log().contains("cst_"),
        "a second start printed a token:\n{}",
        again.log()
    );
}

#[test]
fn principals_roles_and_erasure_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let url = server.url.as_str();
    cli(url, &["tenant", "create", "acme"]).ok();
    let mk = |name: &str, kind: &str, role: &str| {
        let out = cli(
            url,
            &[
                "--json",
                "principal",
                "create",
                "-t",
                "acme",
                "--name",
                name,
                "--kind",
                kind,
                "--role",
                role,
            ],
        )
        .ok()
        .json();
        (
            out["principal"]["id"].as_str().unwrap().to_string(),
            out["token"]["token"].as_str().unwrap().to_string(),
        )
    };
    let (_, writer) = mk("Scoring service", "service", "writer");
    let (_, auditor) = mk("Internal audit", "user", "auditor");

    // Tokens from the command line: issue another, list, revoke it by its public id; the
    // revoked one stops working at once, the first keeps working.
    let (batch, batch_token) = mk("Nightly batch", "service", "writer");
    let second = cli(url, &["--json", "token", "issue", "-t", "acme", &batch])
        .ok()
        .json();
    let second_token = second["token"].as_str().unwrap().to_string();
    let second_id = second["info"]["id"].as_str().unwrap().to_string();
    let listed = cli(url, &["--json", "token", "list", "-t", "acme", &batch])
        .ok()
        .json();
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 2, "{listed}");
    let revoked = cli(
        url,
        &["--json", "token", "revoke", "-t", "acme", &second_id],
    )
    .ok()
    .json();
    assert!(revoked["revoked"].is_string(), "{revoked}");
    let line = cli_as(url, &second_token, &["whoami"], b"").one_line_error();
    assert!(line.contains("revoked"), "{line}");
    cli_as(url, &batch_token, &["whoami"], b"").ok();
    let e = json!({"type": "x.test.scored", "subject": {"kind": "item", "id": "case-1"}, "body": {"score": 1},
                   "payload": {"email": "jane.roe@example.com"}});
    cli_as(
        url,
        &writer,
        &["append", "-t", "acme", "-l", "inference", "-"],
        e.to_string().as_bytes(),
    )
    .ok();
    // A writer cannot read evidence; an auditor reads envelopes, and payloads with a purpose.
    let line = cli_as(
        url,
        &writer,
        &["get", "-t", "acme", "-l", "inference", "0"],
        b"",
    )
    .one_line_error();
    assert!(line.contains("403") && line.contains("auditor"), "{line}");
    let rec = cli_as(
        url,
        &auditor,
        &["--json", "get", "-t", "acme", "-l", "inference", "0"],
        b"",
    )
    .ok()
    .json();
    assert_eq!(rec["payload_status"], json!("withheld"));
    let rec = cli_as(
        url,
        &auditor,
        &[
            "--json",
            "--purpose",
            "complaint-17",
            "get",
            "-t",
            "acme",
            "-l",
            "inference",
            "0",
        ],
        b"",
    )
    .ok()
    .json();
    assert_eq!(rec["payload"]["email"], json!("jane.roe@example.com"));

    // A data-subject request, the subject read from stdin so it stays out of `ps`.
    let dry = cli_as(
        url,
        &common::token_for(url).unwrap(),
        &[
            "erase",
            "-t",
            "acme",
            "--data-subject",
            "-",
            "--legal-basis",
            "GDPR Art. 17",
            "--reference",
            "DSR-1",
            "--dry-run",
        ],
        b"jane.roe@example.com\n",
    )
    .ok();
    assert!(
        dry.stdout.starts_with("would erase 1 payload(s)"),
        "{dry:#?}"
    );
    let done = cli(
        url,
        &[
            "erase",
            "-t",
            "acme",
            "--data-subject",
            "jane.roe@example.com",
            "--legal-basis",
            "GDPR Art. 17",
        ],
    )
    .ok();
    assert!(
        done.stdout.starts_with("erased 1 payload(s)")
            && done.stdout.contains("recorded at inference#1"),
        "{done:#?}"
    );
    let rec = cli(
        url,
        &["--json", "get", "-t", "acme", "-l", "inference", "0"],
    )
    .ok()
    .json();
    assert_eq!(rec["payload_status"], json!("erased"));

    // Retention, set and applied.
    cli_as(url, &writer, &["append", "-t", "acme", "-l", "inference", "-"], json!({"type": "x.test.chat", "subject": {"kind": "item", "id": "c"}, "body": {}, "payload": {"text": "hello"}}).to_string().as_bytes()).ok();
    cli(
        url,
        &["retention", "set", "-t", "acme", "--type", "x.test.chat=0"],
    )
    .ok();
    let applied = cli(
        url,
        &[
            "retention",
            "apply",
            "-t",
            "acme",
            "--legal-basis",
            "storage limitation",
        ],
    )
    .ok();
    assert!(
        applied.stdout.starts_with("erased 1 payload(s)") && applied.stdout.contains("x.test.chat"),
        "{applied:#?}"
    );

    // Bad input: one line naming the field, nothing written.
    let size = |log: &str| {
        let logs = cli(url, &["--json", "logs", "acme"]).ok().json();
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == log)
            .unwrap()["size"]
            .as_u64()
            .unwrap()
    };
    let before = size("governance");
    for (args, token, want) in [
        (
            vec!["retention", "set", "-t", "acme", "--type", "x.test.chat"],
            None,
            "--type",
        ),
        (
            vec![
                "retention",
                "set",
                "-t",
                "acme",
                "--type",
                "x.test.chat=soon",
            ],
            None,
            "--type",
        ),
        (
            vec![
                "principal",
                "create",
                "-t",
                "acme",
                "--name",
                "x",
                "--role",
                "root",
            ],
            None,
            "roles[0]",
        ),
        (
            vec![
                "erase",
                "-t",
                "acme",
                "--data-subject",
                "x",
                "--legal-basis",
                "",
            ],
            None,
            "legal_basis",
        ),
        (vec!["whoami"], Some("not-a-token"), "CUSTODY_TOKEN"),
        (
            vec!["retention", "apply", "-t", "acme", "--legal-basis", "x"],
            Some(writer.as_str()),
            "admin",
        ),
    ] {
        let out = match token {
            Some(t) => cli_as(url, t, &args, b""),
            None => cli(url, &args),
        };
        let line = out.one_line_error();
        assert!(line.contains(want), "{args:?}: {line}");
    }
    assert_eq!(size("governance"), before);
}
