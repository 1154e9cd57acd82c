//! docs/openapi.json is kept in step with the code: every route the
//! gateway's source registers (`.route("path", get(..).post(..))`) is
//! described, every described operation is served by a real gateway (not
//! the router's fallback), and the gateway serves the document itself.

mod common;

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// (path, method) of every `.route(...)` call under gateway/src.
fn registered_routes() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut files = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_some_and(|e| e == "rs") {
            collect_routes(&std::fs::read_to_string(&path).unwrap(), &mut out);
        }
    }
    out
}

fn collect_routes(src: &str, out: &mut BTreeSet<(String, String)>) {
    let mut rest = src;
    while let Some(at) = rest.find(".route(") {
        let call = &rest[at + ".route(".len()..];
        // The call's text up to its closing parenthesis.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("balanced .route(...) call");
        let call = &call[..end];
        let path = call.split('"').nth(1).expect("a string literal path");
        for m in METHODS {
            let found = call.match_indices(&format!("{m}(")).any(|(i, _)| {
                i == 0
                    || !call.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && call.as_bytes()[i - 1] != b'_'
            });
            if found {
                out.insert((path.to_string(), m.to_string()));
            }
        }
        rest = &rest[at + ".route(".len() + end..];
    }
}

fn described_routes(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect()
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn the_openapi_document_matches_the_routes(pool: PgPool) {
    let app = common::spawn(pool).await;
    let (status, doc) = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let on_disk: Value = serde_json::from_str(include_str!("../../docs/openapi.json")).unwrap();
    assert_eq!(doc, on_disk, "the gateway serves docs/openapi.json");

    let registered = registered_routes();
    let described = described_routes(&doc);
    assert!(registered.len() > 20, "{registered:?}");
    let undocumented: Vec<_> = registered.difference(&described).collect();
    let unrouted: Vec<_> = described.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not registered: {unrouted:?}"
    );

    // Every described operation reaches a handler (the router's fallbacks
    // answer "no such route" / "method not allowed on this route").
    let user = app.signup("Ada", "Acme").await;
    for (path, method) in &described {
        if path == "/api/logout" || path == "/api/me/password" {
            continue; // would end the session used for the rest
        }
        let concrete = path.replace("{id}", "1").replace("{user_id}", "1");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (status, body) = app
            .call(method.clone(), &concrete, Some(&user.token), None)
            .await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message != "no such route" && message != "method not allowed on this route",
            "{method} {path} is not served: {status} {body}"
        );
    }
}

#[test]
fn the_route_scanner_reads_chained_and_multiline_routes() {
    let mut out = BTreeSet::new();
    collect_routes(
        r#"Router::new().route("/a", get(x).post(y))
            .route(
                "/b/{id}",
                patch(transfer_ownership),
            )
            .route("/c", get(|| async { budget() }))"#,
        &mut out,
    );
    let want: BTreeSet<(String, String)> = [
        ("/a", "get"),
        ("/a", "post"),
        ("/b/{id}", "patch"),
        ("/c", "get"),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_string(), m.to_string()))
    .collect();
    assert_eq!(out, want);
}
