//! Liveness, readiness and metrics endpoints.
//!
//! `/health/live` (alias `/health/simple`) is what HAProxy checks: it
//! reflects only this process and its drain flag (503 while draining), so
//! a PostgreSQL or Redis blip, which every gateway sees at once, never
//! makes the load balancer mark the whole pool down and cut every socket.
//! `/health` checks each backing service with a short timeout and answers
//! 503 when one is down: for operators and dashboards, not for routing.

use std::time::Instant;

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use fechatter_shared::health;
use serde_json::{json, Value};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/simple", get(live))
        .route("/metrics", get(metrics))
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let pg = check(health::check_postgres(&state.pool));
    let redis = check(health::check_redis(&state.redis));
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

/// One check's JSON; the checks time out after `health::CHECK_TIMEOUT`.
async fn check(probe: impl std::future::Future<Output = Result<(), health::CheckError>>) -> Value {
    let started = Instant::now();
    let outcome = probe.await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(()) => json!({ "status": "ok", "latencyMs": latency_ms }),
        Err(health::CheckError::TimedOut) => {
            json!({ "status": "down", "latencyMs": latency_ms, "error": "timed out" })
        }
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            json!({ "status": "down", "latencyMs": latency_ms, "error": "check failed" })
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
