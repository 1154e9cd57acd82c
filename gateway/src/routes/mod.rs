//! The HTTP surface: route table, request metrics, body limits and the JSON
//! fallbacks for unknown routes and methods.

pub mod archive;
pub mod auth;
pub mod chat;
pub mod device;
pub mod health;
pub mod message;
pub mod notification;
pub mod openapi;
pub mod search;
pub mod signup;
pub mod workspace;

use std::time::Instant;

use axum::{
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    middleware::{self, Next},
    response::Response,
    Router,
};
use fechatter_shared::AppError;

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(auth::router())
        .merge(signup::router())
        .merge(chat::router())
        .merge(device::router())
        .merge(health::router())
        .merge(message::router())
        .merge(notification::router())
        .merge(workspace::router())
        .merge(archive::router())
        .merge(openapi::router())
        .merge(search::router())
        .merge(crate::sync::router())
        .merge(crate::upgrade::router())
        .merge(crate::web::router())
        .fallback(|| async { AppError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            AppError::BadRequest("method not allowed on this route".into())
        })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .with_state(state)
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(req).await;
    state
        .metrics
        .http_latency
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .http_requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}
