//! Malformed input, oversized bodies, unknown routes, health and metrics.

mod common;

use common::{assert_error, spawn, spawn_with};
use reqwest::{Method, StatusCode};
use sqlx::PgPool;

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn malformed_json_is_a_400(pool: PgPool) {
    let app = spawn(pool).await;
    let res = app
        .http
        .post(format!("{}/api/signin", app.base))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");

    let res = app
        .http
        .post(format!("{}/api/signin", app.base))
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn oversized_body_is_a_413(pool: PgPool) {
    let app = spawn_with(pool, |c| c.max_body_bytes = 1024).await;
    let big = format!(
        "{{\"email\": \"{}\", \"password\": \"x\"}}",
        "a".repeat(4096)
    );
    let res = app
        .http
        .post(format!("{}/api/signin", app.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn bad_paths_and_routes(pool: PgPool) {
    let app = spawn(pool).await;
    let ada = app.signup("Ada", "Acme").await;
    let (status, body) = app.get("/api/chat/not-a-number", &ada).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = app.get("/api/nothing-here", &ada).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app
        .call(Method::PUT, "/api/chat", Some(&ada.token), None)
        .await;
    assert_error(status, &body, 400, "bad_request");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn health_reports_each_dependency(pool: PgPool) {
    let app = spawn(pool).await;
    let (status, body) = app.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["postgres"]["status"], "ok");
    assert_eq!(body["checks"]["redis"]["status"], "ok");
    for path in ["/health/live", "/health/simple"] {
        let (status, body) = app.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "ok");
        assert_eq!(body["instance"], app.config.instance_id.as_str());
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn health_is_503_when_postgres_is_gone(pool: PgPool) {
    let app = spawn(pool.clone()).await;
    pool.close().await;
    let (status, body) = app.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["postgres"]["status"], "down");
    assert_eq!(body["checks"]["redis"]["status"], "ok");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn metrics_count_requests(pool: PgPool) {
    let app = spawn(pool).await;
    app.call(Method::GET, "/health/simple", None, None).await;
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("fechatter_http_requests_total{route=\"/health/simple\",status=\"200\"} 1"),
        "{text}"
    );
}
