//! The OpenAPI document: served at `GET /v1/openapi.json`, covering every route the router
//! registers, and committed as `docs/openapi.json` so that API changes show up in review.
//! `UPDATE_OPENAPI=1 cargo test -p custody-server --test it openapi` rewrites the committed copy.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::start;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
const ROUTER_RS: &str = include_str!("../../src/router.rs");

/// The committed document: `serde_json::to_string_pretty(&openapi())` plus a final newline.
fn generated() -> String {
    serde_json::to_string_pretty(&custody_server::openapi()).expect("serialise OpenAPI") + "\n"
}

#[test]
fn committed_openapi_document_is_current() {
    let want = generated();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(COMMITTED, &want).expect("write docs/openapi.json");
        return;
    }
    let have = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
        panic!(
            "docs/openapi.json differs from the generated document (first at line {}: committed {:?}, generated {:?}).\n\
             Run `UPDATE_OPENAPI=1 cargo test -p custody-server --test it openapi` and commit docs/openapi.json.",
            line + 1,
            have.lines().nth(line).unwrap_or("<end of file>"),
            want.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

/// Every `.route(path, methods)` in `router.rs`, read from the source so that a route added
/// there is checked here without editing this test: path (with `{log}` expanded) to methods.
fn routes_in_source() -> BTreeMap<String, BTreeSet<String>> {
    let log_prefix = ROUTER_RS
        .split_once("let log = \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(prefix, _)| prefix)
        .expect("`let log = \"...\"` in router.rs");
    let mut out = BTreeMap::new();
    for (start, _) in ROUTER_RS.match_indices(".route(") {
        // The call's arguments: up to the parenthesis that closes `.route(`.
        let args_start = start + ".route(".len();
        let mut depth = 1;
        let mut end = args_start;
        for (i, c) in ROUTER_RS[args_start..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = args_start + i;
                break;
            }
        }
        let args = &ROUTER_RS[args_start..end];
        let literal = args
            .split_once('"')
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(lit, _)| lit)
            .expect("route path literal");
        let path = if args.trim_start().starts_with("&format!") {
            literal
                .replace("{log}", log_prefix)
                .replace("{{", "{")
                .replace("}}", "}")
        } else {
            literal.to_string()
        };
        let handlers = &args[args.find(',').expect("route handler")..];
        let methods: BTreeSet<String> = ["get", "post", "put", "patch", "delete"]
            .into_iter()
            .filter(|m| {
                handlers
                    .match_indices(&format!("{m}("))
                    .any(|(i, _)| i == 0 || !handlers.as_bytes()[i - 1].is_ascii_alphanumeric())
            })
            .map(String::from)
            .collect();
        assert!(!methods.is_empty(), "no methods found for {path}");
        out.insert(path, methods);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_openapi_document_is_openapi_3_and_covers_every_route() {
    let s = start().await;
    let r = s.get(&s.url("/v1/openapi.json")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/json");
    let doc = r.json();
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "OpenAPI 3.x, got {version}");
    assert_eq!(doc["info"]["title"], "custody");
    assert_eq!(
        doc,
        serde_json::to_value(custody_server::openapi()).unwrap(),
        "the served document is the generated one"
    );

    let routes = routes_in_source();
    // The parse above found the routes this test was written against, at least.
    for known in [
        "/healthz",
        "/v1/openapi.json",
        "/v1/tenants",
        "/v1/tenants/{tenant}/logs",
        "/v1/tenants/{tenant}/logs/{log}/entries",
        "/v1/tenants/{tenant}/logs/{log}/entries/{index}",
        "/v1/tenants/{tenant}/logs/{log}/entries/{index}/tlog-proof",
        "/v1/tenants/{tenant}/logs/{log}/checkpoint",
        "/v1/tenants/{tenant}/logs/{log}/proof/inclusion",
        "/v1/tenants/{tenant}/logs/{log}/proof/consistency",
        "/v1/tenants/{tenant}/logs/{log}/vkey",
        "/v1/tenants/{tenant}/logs/{log}/export",
    ] {
        assert!(
            routes.contains_key(known),
            "router.rs parse missed {known}: {routes:?}"
        );
    }
    assert_eq!(
        routes["/v1/tenants/{tenant}/logs/{log}/entries"],
        BTreeSet::from(["get".to_string(), "post".to_string()])
    );

    let paths = doc["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    for (path, methods) in &routes {
        for m in methods {
            if paths.get(path).and_then(|p| p.get(m)).is_none() {
                missing.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes served but not in the OpenAPI document: {missing:?}"
    );
    let extra: Vec<&String> = paths.keys().filter(|p| !routes.contains_key(*p)).collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");

    // Every documented operation answers errors as problems, with the schema referenced.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "Problem",
        "AppendResult",
        "EntryRecord",
        "InclusionProof",
        "ConsistencyProof",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
}
