//! Liveness, readiness and metrics endpoints.
//!
//! `/health/live` (alias `/health/simple`) is what HAProxy checks: it
//! reflects only this process and its drain flag (503 while draining), so
//! a PostgreSQL or Redis blip, which every gateway sees at once, never
//! makes the load balancer mark the whole pool down and cut every socket.
//! `/health` checks each backing service with a short timeout and answers
//! 503 when one is down: for operators and dashboards, not for routing.

use std::time::{Duration, Instant};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use fred::prelude::*;
use serde_json::{json, Value};

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/simple", get(live))
        .route("/metrics", get(metrics))
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let pg = check(async {
        sqlx::query("SELECT 1")
            .execute(&state.pool)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let redis = check(async {
        state
            .redis
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let (pg, redis) = tokio::join!(pg, redis);
    let healthy = pg["status"] == "ok" && redis["status"] == "ok";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "instance": state.config.instance_id,
        "checks": { "postgres": pg, "redis": redis },
    });
    (status, Json(body))
}

async fn live(State(state): State<AppState>) -> impl IntoResponse {
    if state.draining.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining", "instance": state.config.instance_id })),
        )
    } else {
        (
            StatusCode::OK,
            Json(json!({ "status": "ok", "instance": state.config.instance_id })),
        )
    }
}

async fn check(probe: impl std::future::Future<Output = Result<(), String>>) -> Value {
    let started = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, probe).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(Ok(())) => json!({ "status": "ok", "latencyMs": latency_ms }),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check failed");
            json!({ "status": "down", "latencyMs": latency_ms, "error": "check failed" })
        }
        Err(_) => json!({ "status": "down", "latencyMs": latency_ms, "error": "timed out" }),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
