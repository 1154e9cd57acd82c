//! Liveness, readiness and metrics endpoints.
//!
//! `/health/simple` only proves the process answers (liveness: restarting
//! cannot fix a database outage). `/health` checks each backing service
//! with a short timeout and answers 503 when one is down, so HAProxy or an
//! orchestrator stops routing to a gateway that cannot serve.

use std::time::{Duration, Instant};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use fred::prelude::*;
use serde_json::{json, Value};

use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/simple", get(|| async { "ok" }))
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
