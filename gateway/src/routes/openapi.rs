//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the REST API
//! (docs/openapi.json, made by scripts/openapi.py), compiled in so every
//! gateway serves the description of exactly its own routes. The test
//! gateway/tests/openapi.rs checks it against the routes registered here.

use axum::{http::header, response::IntoResponse, routing::get, Router};

use crate::state::AppState;

const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response() }),
    )
}
