//! Access control over real HTTP: the route/role matrix walked route by route with a token of
//! each role, tenant isolation with a foreign tenant's token, the access log written for every
//! read (and refusing the read when it cannot be written), and the token lifecycle.

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::{Reply, TestServer, assert_problem, send, start};
use custody_api as api;
use custody_auth::Role;
use custody_auth::matrix::{self, Gate, ROUTES};
use custody_core::envelope::LogName;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const T: &str = "acme";
const HASH: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// A principal of tenant `T` per role.
struct Roles {
    tokens: HashMap<Role, (String, String)>,
}

async fn roles(s: &TestServer) -> Roles {
    let mut tokens = HashMap::new();
    for role in Role::ALL {
        let made = s
            .principal(T, &format!("usr-{role}"), &[role.as_str()])
            .await;
        tokens.insert(role, made);
    }
    Roles { tokens }
}

/// Sends `method url` with `token` (none when `None`) and a JSON body for POSTs.
async fn call(token: Option<&str>, method: &str, url: &str, body: Value) -> Reply {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut req = match method {
        "GET" => client.get(url),
        "POST" => client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string()),
        "DELETE" => client.delete(url),
        other => panic!("no method {other}"),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    send(req.header("custody-purpose", "access-control-test")).await
}

/// A concrete request for a route template on `tenant` and `log`.
fn concrete(path: &str, tenant: &str, log: &str, principal: &str, token_id: &str) -> String {
    path.replace("{tenant}", tenant)
        .replace("{log}", log)
        .replace("{level}", "0")
        .replace("{*index}", "000.p/1")
        .replace("{index}", "0")
        .replace("{version_hash}", HASH)
        .replace("{principal}", principal)
        .replace("{token}", token_id)
}

/// A body that is a plausible request for the route (validity does not matter: only whether
/// the access layer lets it through).
fn body_for(method: &str, path: &str, role: Option<Role>) -> Value {
    if method != "POST" {
        return Value::Null;
    }
    if path == "/v1/tenants" {
        return json!({"name": format!("t-{}", uuid::Uuid::now_v7().simple())});
    }
    if path.ends_with("/principals") {
        return json!({"kind": "service", "name": "made in the matrix test", "roles": ["writer"]});
    }
    if path.ends_with("/tokens") {
        return json!({});
    }
    // An entry of a type the role may write, so the per-type check does not mask the gate.
    let t = match role {
        Some(Role::Approver) => "approval.submitted",
        Some(Role::Admin) => "policy.updated",
        _ => "x.test.event",
    };
    json!({"type": t, "subject": {"kind": "item", "id": "i-1"}, "body": {}})
}

/// Whether the gate admits `role` of tenant `T` (or the harness, with every role on every
/// tenant, when `role` is `None`).
fn admits(gate: Gate, role: Option<Role>) -> bool {
    match (gate, role) {
        (Gate::Open | Gate::AnyPrincipal, _) => true,
        (Gate::ServerAdmin, r) => r.is_none(),
        (Gate::Roles(roles), None) => !roles.is_empty(),
        (Gate::Roles(roles), Some(r)) => roles.contains(&r),
    }
}

#[tokio::test]
async fn the_router_and_the_matrix_name_the_same_routes() {
    let doc = custody_server::openapi();
    let mut in_doc = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
        ] {
            if op.is_some() {
                in_doc.insert((method.to_string(), path.clone()));
            }
        }
    }
    let in_matrix: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(
        in_doc, in_matrix,
        "documented routes and access rules differ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_exactly_the_roles_the_matrix_names() {
    let s = start().await;
    s.create_tenant(T).await;
    let r = roles(&s).await;
    let victim = s.principal(T, "svc-victim", &["writer"]).await;
    let victim_id = victim.0.clone();
    let victim_token = custody_auth::ApiToken::parse(&victim.1).unwrap();
    let mut checked = 0;
    for rule in ROUTES {
        for log in ["governance", "access"] {
            if log == "access" && !rule.path.contains("{log}") {
                continue;
            }
            let action = matrix::on_log(rule.action, LogName::parse(log).ok());
            let url = s.url(&concrete(rule.path, T, log, &victim_id, victim_token.id()));
            // Without a token: only open routes answer.
            let anon = call(
                None,
                rule.method,
                &url,
                body_for(rule.method, rule.path, None),
            )
            .await;
            if action.gate() == Gate::Open {
                assert_ne!(anon.status, 401, "{} {url}", rule.method);
            } else {
                assert_problem(&anon, 401);
                assert!(anon.headers.get("www-authenticate").is_some());
            }
            let mut who: Vec<(Option<Role>, String)> = Role::ALL
                .iter()
                .map(|role| (Some(*role), r.tokens[role].1.clone()))
                .collect();
            who.push((None, s.token.clone()));
            for (role, token) in who {
                // Revoking the victim's token would lock later calls out: each role revokes a
                // token of its own instead.
                let url = if rule.method == "DELETE" {
                    let own = match role {
                        Some(role) => s
                            .client
                            .issue_token(T, &r.tokens[&role].0, Some(1))
                            .await
                            .unwrap(),
                        None => s.client.issue_token(T, &victim_id, Some(1)).await.unwrap(),
                    };
                    s.url(&concrete(rule.path, T, log, &victim_id, &own.info.id))
                } else {
                    url.clone()
                };
                let reply = call(
                    Some(&token),
                    rule.method,
                    &url,
                    body_for(rule.method, rule.path, role),
                )
                .await;
                let allowed = admits(action.gate(), role);
                if allowed {
                    assert!(
                        reply.status != 401 && reply.status != 403,
                        "{role:?} was refused {} {url}: {}",
                        rule.method,
                        reply.text()
                    );
                } else {
                    let p = assert_problem(&reply, 403);
                    assert!(
                        ["needs the role", "server administrator", "custody only"]
                            .iter()
                            .any(|w| p.detail.contains(w)),
                        "{}",
                        p.detail
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= ROUTES.len() * 5, "{checked} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_tenant_learns_nothing_on_any_route() {
    let s = start().await;
    s.create_tenant(T).await;
    s.create_tenant("globex").await;
    // Evidence in acme for the foreign principal to try to reach.
    let (acme_writer, _) = s.actor(T, "svc-writer").await;
    let e = json!({"type": "x.test.secret", "actor": {"kind": "service", "id": "svc-writer"},
                   "subject": {"kind": "item", "id": "secret-1"}, "body": {}, "payload": {"pii": "Jane Roe"}});
    let r = s
        .post_json(&s.log_url(T, "governance", "/entries"), &e)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let acme_token = s.client.tokens(T, &acme_writer).await.unwrap().tokens[0]
        .id
        .clone();
    // A globex principal with every role.
    let (_, foreign) = s
        .principal(
            "globex",
            "usr-everything",
            &["admin", "writer", "approver", "auditor"],
        )
        .await;
    let governance_before = s.size(T, "governance").await;
    let mut routes = 0;
    for rule in ROUTES.iter().filter(|r| r.path.contains("{tenant}")) {
        let mut answers = Vec::new();
        for tenant in [T, "nope-no-such-tenant"] {
            let url = s.url(&concrete(
                rule.path,
                tenant,
                "governance",
                &acme_writer,
                &acme_token,
            ));
            let reply = call(
                Some(&foreign),
                rule.method,
                &url,
                body_for(rule.method, rule.path, Some(Role::Admin)),
            )
            .await;
            let p = assert_problem(&reply, 403);
            assert!(
                !reply.text().contains("secret") && !reply.text().contains("Jane"),
                "{}",
                reply.text()
            );
            answers.push((
                p.title,
                p.detail.replace(tenant, "<tenant>"),
                p.errors.len(),
            ));
        }
        assert_eq!(
            answers[0], answers[1],
            "{} {}: an existing and a missing tenant answer differently",
            rule.method, rule.path
        );
        routes += 1;
    }
    assert!(routes >= 20, "{routes} tenant routes");
    // The foreign principal sees only its own tenant.
    let client = custody_client::Client::new(&s.base)
        .unwrap()
        .with_token(&foreign);
    assert_eq!(client.tenants().await.unwrap().tenants, ["globex"]);
    // None of the attempts wrote to acme (their refusals go to its access log only).
    assert_eq!(s.size(T, "governance").await, governance_before);
}

/// Polls the tenant's access log until an entry of `entry_type` whose body matches `pred`
/// appears (denials are recorded in the background).
async fn find_access(
    s: &TestServer,
    entry_type: &str,
    pred: impl Fn(&Value) -> bool,
) -> api::EntryRecord {
    for _ in 0..100 {
        let page = s
            .client
            .list(
                T,
                "access",
                &custody_client::ListQuery {
                    entry_type: Some(entry_type.into()),
                    limit: Some(1000),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if let Some(e) = page.entries.into_iter().find(|e| pred(&e.envelope)) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {entry_type} entry matched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_evidence_is_recorded_and_denials_too() {
    let s = start().await;
    s.create_tenant(T).await;
    let (writer_id, writer) = s.principal(T, "svc-scorer", &["writer"]).await;
    let (auditor_id, auditor) = s.principal(T, "usr-auditor", &["auditor"]).await;
    let e = json!({"type": "x.test.scored", "subject": {"kind": "item", "id": "case-9"}, "body": {"score": 1},
                   "payload": {"applicant": "Jane Roe"}});
    let r = s
        .post_as(
            &writer,
            &s.log_url(T, "inference", "/entries"),
            "application/json",
            e.to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let written: api::AppendResult = serde_json::from_slice(&r.body).unwrap();

    // Without a purpose: the envelope, not the payload; the read is recorded without a why.
    let bare = custody_client::Client::new(&s.base)
        .unwrap()
        .with_token(&auditor);
    let rec = bare.entry(T, "inference", 0).await.unwrap();
    assert_eq!(rec.payload_status, api::PayloadStatus::Withheld);
    assert!(rec.payload.is_none() && rec.salt.is_none());
    let logged = find_access(&s, "access.read", |env| {
        env["actor"]["id"] == json!(auditor_id)
            && env["subject"]["id"] == json!(written.id)
            && env["context"].get("purpose").is_none()
    })
    .await;
    assert_eq!(logged.envelope["body"]["payloads_returned"], json!(false));
    assert_eq!(logged.envelope["context"]["auth_method"], json!("token"));
    let leaf_digest = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(format!("{}\n", written.leaf_hash)))
    );
    assert_eq!(
        logged.envelope["body"]["returned_leaf_hashes_digest"],
        json!(leaf_digest)
    );
    // The where is in the salted payload, never in the envelope.
    let addr = logged.payload.as_ref().unwrap()["source_address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(!logged.envelope.to_string().contains("127.0.0.1"));

    // With a purpose: the payload, and the why in the record.
    let why = bare.clone().with_purpose(Some("complaint-2291".into()));
    let rec = why.entry(T, "inference", 0).await.unwrap();
    assert_eq!(
        rec.payload.as_ref().unwrap()["applicant"],
        json!("Jane Roe")
    );
    let logged = find_access(&s, "access.read", |env| {
        env["context"]["purpose"] == json!("complaint-2291")
    })
    .await;
    assert_eq!(logged.envelope["body"]["payloads_returned"], json!(true));
    assert_eq!(logged.envelope["related"][0]["id"], json!(written.id));

    // An evidence pack carries payloads: no purpose, no pack.
    let p = bare
        .evidence(
            T,
            &custody_client::PackQuery {
                request_id: Some("case-9".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(p.status(), Some(400));
    assert!(
        p.problem()
            .unwrap()
            .errors
            .iter()
            .any(|f| f.field == "purpose")
    );

    // The writer may not read evidence: refused, and the refusal recorded.
    let w = custody_client::Client::new(&s.base)
        .unwrap()
        .with_token(&writer);
    let err = w.entry(T, "inference", 0).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    let denied = find_access(&s, "security.access_denied", |env| {
        env["actor"]["id"] == json!(writer_id)
    })
    .await;
    assert_eq!(denied.envelope["body"]["reason"], json!("missing_role"));
    // A bad token: 401, recorded as unauthenticated.
    let bad = custody_client::Client::new(&s.base)
        .unwrap()
        .with_token(&format!("cst_{}_{}", "0".repeat(20), "0".repeat(64)));
    assert_eq!(
        bad.entry(T, "inference", 0).await.unwrap_err().status(),
        Some(401)
    );
    let denied = find_access(&s, "security.access_denied", |env| {
        env["actor"]["id"] == json!("unauthenticated")
    })
    .await;
    assert_eq!(denied.envelope["body"]["reason"], json!("invalid_token"));
    // Nobody appends to the access log by hand, not even an admin.
    let r = s
        .post_json(
            &s.log_url(T, "access", "/entries"),
            &json!({"type": "x.test.fake", "subject": {"kind": "item", "id": "x"}, "body": {}}),
        )
        .await;
    assert_problem(&r, 403);
    // An auditor reading the access log is itself recorded.
    let before = s.size(T, "access").await;
    why.list(T, "access", &custody_client::ListQuery::default())
        .await
        .unwrap();
    assert!(s.size(T, "access").await > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_access_record_cannot_be_written_fails() {
    let s = start().await;
    s.create_tenant(T).await;
    let r = s
        .post_json(
            &s.log_url(T, "governance", "/entries"),
            &json!({"type": "x.test.a", "subject": {"kind": "item", "id": "a"}, "body": {}}),
        )
        .await;
    assert_eq!(r.status, 201);
    // Take away the access log's signing key before its first append: nothing can be logged.
    let key = s
        .db_path
        .parent()
        .unwrap()
        .join("keys")
        .join(T)
        .join("access.key");
    std::fs::remove_file(&key).expect("access log key");
    let reply = s.get(&s.log_url(T, "governance", "/entries/0")).await;
    assert!(
        reply.status >= 500,
        "the read was served without its access record: {}",
        reply.text()
    );
    assert!(!reply.text().contains("x.test.a"), "{}", reply.text());
    // Proofs carry no content and are not access-logged: they still work.
    assert_eq!(
        s.get(&s.log_url(T, "governance", "/checkpoint"))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_shown_once_stored_hashed_and_revocable() {
    let s = start().await;
    s.create_tenant(T).await;
    let made = s
        .client
        .create_principal(
            T,
            &api::CreatePrincipal {
                kind: "service".into(),
                name: "Scoring Service".into(),
                roles: vec!["writer".into()],
                expires_in_days: Some(7),
            },
        )
        .await
        .unwrap();
    let token = made.token.token.clone();
    let secret = token.rsplit('_').next().unwrap().to_string();
    let c = custody_client::Client::new(&s.base)
        .unwrap()
        .with_token(&token);
    let me = c.whoami().await.unwrap();
    assert_eq!(
        (
            me.principal.as_str(),
            me.tenant.as_deref(),
            me.roles.as_slice()
        ),
        (
            made.principal.id.as_str(),
            Some(T),
            ["writer".to_string()].as_slice()
        )
    );
    // Listing never shows a secret.
    let listed = s.client.tokens(T, &made.principal.id).await.unwrap();
    assert_eq!(listed.tokens.len(), 1);
    assert!(!serde_json::to_string(&listed).unwrap().contains(&secret));
    // The store keeps only the hash: the secret is nowhere in the database files.
    let dir = s.db_path.parent().unwrap();
    for f in std::fs::read_dir(dir).unwrap() {
        let path = f.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "secret in {}",
                path.display()
            );
        }
    }
    // The change is evidence: principal.created and token.issued in the governance log, the
    // name only in the payload.
    let gov = s
        .client
        .list(
            T,
            "governance",
            &custody_client::ListQuery {
                subject: Some(made.principal.id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let types: Vec<&str> = gov
        .entries
        .iter()
        .map(|e| e.envelope["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["principal.created", "token.issued"]);
    assert!(
        !gov.entries[0]
            .envelope
            .to_string()
            .contains("Scoring Service")
    );
    assert_eq!(
        gov.entries[0].payload.as_ref().unwrap()["name"],
        json!("Scoring Service")
    );
    // Its owner revokes it; it stops working at once.
    let revoked = c.revoke_token(T, &made.token.info.id).await.unwrap();
    assert!(revoked.revoked.is_some());
    let err = c.whoami().await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("revoked"), "{err}");
    // Bad requests name the field.
    for (body, field) in [
        (
            json!({"kind": "robot", "name": "x", "roles": ["writer"]}),
            "kind",
        ),
        (
            json!({"kind": "user", "name": "x", "roles": ["root"]}),
            "roles[0]",
        ),
        (json!({"kind": "user", "name": "x", "roles": []}), "roles"),
        (
            json!({"kind": "user", "name": "x", "roles": ["writer"], "expires_in_days": 0}),
            "expires_in_days",
        ),
    ] {
        let p = assert_problem(
            &s.post_json(&s.url(&format!("/v1/tenants/{T}/principals")), &body)
                .await,
            400,
        );
        common::assert_field(&p, field);
    }
    let p = assert_problem(
        &s.post_json(
            &s.url(&format!("/v1/tenants/{T}/principals")),
            &json!({"kind": "user", "name": "x", "roles": ["writer"], "admin": true}),
        )
        .await,
        400,
    );
    assert!(p.detail.contains("admin"), "{}", p.detail);
}

/// The names of the principals of `tenant`, and the principal ids its governance log records
/// as created.
async fn principals_and_records(s: &TestServer, tenant: &str) -> (Vec<String>, Vec<String>) {
    let names = s
        .client
        .principals(tenant)
        .await
        .unwrap()
        .principals
        .into_iter()
        .map(|p| p.name)
        .collect();
    let listed = s
        .client
        .list(
            tenant,
            "governance",
            &custody_client::ListQuery {
                entry_type: Some("principal.created".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let recorded = listed
        .entries
        .iter()
        .map(|e| e.envelope["subject"]["id"].as_str().unwrap().to_owned())
        .collect();
    (names, recorded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_and_its_record_commit_together_or_not_at_all() {
    let s = start().await;
    s.create_tenant(T).await;
    let create = |name: &str| {
        let body = api::CreatePrincipal {
            kind: "user".into(),
            name: name.into(),
            roles: vec!["auditor".into()],
            expires_in_days: None,
        };
        let client = s.client.clone();
        async move { client.create_principal(T, &body).await }
    };
    let made = create("Before Any Fault").await.unwrap();
    let (names, recorded) = principals_and_records(&s, T).await;
    assert_eq!(names, ["Before Any Fault"]);
    assert_eq!(recorded, vec![made.principal.id.clone()]);

    // A fault in the database at each step of the write, injected with a trigger on the real
    // store the server is running on: the record, the principal row, the token row.
    let db = rusqlite::Connection::open(&s.db_path).unwrap();
    for (table, when) in [
        ("entries", "NEW.entry_type = 'principal.created'"),
        ("entries", "NEW.entry_type = 'token.issued'"),
        ("principals", "1"),
        ("tokens", "1"),
    ] {
        db.execute_batch(&format!(
            "CREATE TRIGGER injected_fault BEFORE INSERT ON {table} WHEN {when}
             BEGIN SELECT RAISE(ABORT, 'injected fault'); END;"
        ))
        .unwrap();
        let failed = create("Never Created").await;
        assert!(
            failed.is_err(),
            "a fault inserting into {table} when {when} was not reported"
        );
        db.execute_batch("DROP TRIGGER injected_fault").unwrap();
        let (names, recorded) = principals_and_records(&s, T).await;
        assert_eq!(
            names,
            ["Before Any Fault"],
            "fault in {table} when {when}: a principal exists without its record"
        );
        assert_eq!(
            recorded,
            vec![made.principal.id.clone()],
            "fault in {table} when {when}: a record exists without its principal"
        );
    }
    // The store is sound afterwards: the next principal commits with its records and works.
    let after = create("After The Faults").await.unwrap();
    let (names, recorded) = principals_and_records(&s, T).await;
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(recorded, [made.principal.id, after.principal.id]);
    let c = custody_client::Client::new(&s.base)
        .unwrap()
        .with_token(&after.token.token);
    assert_eq!(c.whoami().await.unwrap().tenant.as_deref(), Some(T));
}
