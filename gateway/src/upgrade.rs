//! The WebSocket endpoint, `GET /ws`: authenticates the upgrade (token
//! from `Authorization: Bearer` or `?token=`, not revoked), loads the
//! memberships, sets the codec's limits and buffers, and hands the socket
//! to [`crate::lifecycle::start`] in a task of its own. Apart from
//! [`crate::session`] so that the read loop does not depend on the
//! lifecycle that runs it.

use axum::{
    extract::{
        ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade},
        Query, State,
    },
    http::HeaderMap,
    response::Response,
    routing::get,
    Router,
};
use fechatter_shared::{AppError, AppResult};
use serde::Deserialize;

use crate::{admission, state::AppState};

/// Hard cap on what the WebSocket codec buffers; frames between
/// [`MAX_FRAME_BYTES`] and this get a readable error before the close.
const CODEC_LIMIT: usize = 1024 * 1024;
/// Per-connection codec buffers; frames larger than these still work.
/// The read buffer is allocated for every connection and never shrinks:
/// 512 bytes hold a typical client frame (a message, a read mark, a
/// typing ping) in one read; a larger frame takes a read per 512 bytes.
const READ_BUFFER: usize = 512;
const WRITE_BUFFER: usize = 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

async fn upgrade(
    State(state): State<AppState>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> AppResult<Response> {
    if state.closing.is_cancelled() {
        return Err(AppError::Unavailable("gateway is shutting down".into()));
    }
    let ws = ws.map_err(|e| AppError::bad_request(format!("expected a WebSocket upgrade: {e}")))?;
    let header_token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    let token = header_token
        .or_else(|| query.ok().and_then(|Query(q)| q.token))
        .ok_or_else(|| {
            AppError::unauthorized("missing token: use `Authorization: Bearer` or `?token=`")
        })?;
    let me = state.tokens.verify(token.trim())?;
    fechatter_shared::revocation::ensure_live(&state.redis, &state.keys, &me).await?;
    let chats = admission::load_memberships(&state, me.user_id).await?;
    let head = admission::user_stream_head(&state, me.user_id).await;
    Ok(ws
        .max_message_size(CODEC_LIMIT)
        .max_frame_size(CODEC_LIMIT)
        // Small buffers: most connections are idle most of the time, and
        // the codec's defaults (128 KiB each way) would dominate memory.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| {
            // A task of its own rather than the upgrade's: that one keeps
            // everything the upgrade needed for as long as it runs.
            let tracker = state.sessions.clone();
            tracker.spawn(crate::lifecycle::start(state, me, chats, head, socket));
            std::future::ready(())
        }))
}
