//! `GET /api/search/messages|people|chats`: the REST face of
//! [`crate::search`] (the socket's is `search.query`).

use axum::{
    extract::{Query, State},
    routing::get,
    Json, Router,
};
use fechatter_shared::{
    protocol::{SearchQuery, SearchResults, SearchScope},
    AppError, AppResult,
};
use serde::Deserialize;

use crate::{extract::AuthUser, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/search/messages", get(search_messages))
        .route("/api/search/people", get(search_people))
        .route("/api/search/chats", get(search_chats))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Params {
    q: String,
    chat_id: Option<i64>,
    cursor: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    include_public: bool,
}

type ParamsResult = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

fn request(scope: SearchScope, params: ParamsResult) -> AppResult<SearchQuery> {
    let Query(p) =
        params.map_err(|e| AppError::validation(format!("invalid query: {}", e.body_text())))?;
    Ok(SearchQuery {
        scope,
        q: p.q,
        chat_id: p.chat_id,
        cursor: p.cursor,
        limit: p.limit,
        include_public: p.include_public,
    })
}

async fn search_messages(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    params: ParamsResult,
) -> AppResult<Json<SearchResults>> {
    let req = request(SearchScope::Messages, params)?;
    Ok(Json(crate::search::run(&state, &me, req).await?))
}

async fn search_people(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    params: ParamsResult,
) -> AppResult<Json<SearchResults>> {
    let req = request(SearchScope::People, params)?;
    Ok(Json(crate::search::run(&state, &me, req).await?))
}

async fn search_chats(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    params: ParamsResult,
) -> AppResult<Json<SearchResults>> {
    let req = request(SearchScope::Chats, params)?;
    Ok(Json(crate::search::run(&state, &me, req).await?))
}
