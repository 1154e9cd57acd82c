//! `POST /api/chat/{id}/messages`: posting without a WebSocket, for bots
//! and integrations.
//!
//! The request takes the same path as a `message.send` frame: the rules of
//! [`crate::writes`] (validation, the same token buckets), an append to the
//! chat's ingest shard, the worker's commit, and the worker's answer. The
//! request waits for that answer ([`crate::replies`]), so `201` means
//! committed, exactly like the socket's `ack`. `clientId` is the
//! idempotency key (the same one a socket frame's `id` is), so a retry
//! after a timeout, a dropped connection or a 503 never posts twice.

use axum::{extract::State, http::StatusCode, routing::post, Json, Router};
use fechatter_shared::{
    ingest::IngestEntry,
    protocol::{Answer, MAX_FRAME_ID_LEN},
    store::chat,
    AppError, AppResult,
};
use serde::{Deserialize, Serialize};

use crate::{
    extract::{ApiJson, ApiPath, AuthUser},
    state::AppState,
    writes::{self, Draft},
};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/chat/{id}/messages", post(post_message))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PostMessage {
    content: String,
    client_id: String,
    #[serde(default)]
    mentions: Vec<i64>,
    reply_to: Option<i64>,
    priority: Option<String>,
}

/// The committed message, as the socket's ack names it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Posted {
    message_id: i64,
    seq: i64,
    /// True when an earlier request with this `clientId` committed it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

async fn post_message(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(chat_id): ApiPath<i64>,
    ApiJson(body): ApiJson<PostMessage>,
) -> AppResult<(StatusCode, Json<Posted>)> {
    // 1. Shape: the same rules as a message.send frame.
    let client_id = valid_client_id(&body.client_id)?;
    let (command, urgent) = writes::send_command(Draft {
        content: body.content,
        reply_to: body.reply_to,
        mentions: body.mentions,
        priority: body.priority,
    })?;
    // 2. Access: members post; a visible public channel needs a join.
    let (_, role) = chat::find_visible(&state.pool, chat_id, me.user_id, me.workspace_id).await?;
    if role.is_none() {
        return Err(AppError::forbidden("join the channel to post in it"));
    }
    // 3. The sender's budgets, shared with the socket.
    writes::limit_send(&state, me.user_id, urgent).await?;
    // 4. Append, addressed to a reply id this request waits on.
    let reply_id = state.hub.next_conn_id();
    let waiter = state.replies.wait_for(reply_id);
    let entry = IngestEntry {
        chat_id,
        user_id: me.user_id,
        gateway: state.node.clone(),
        conn: reply_id,
        ref_id: client_id,
        command,
        trace_id: fechatter_shared::ingest::new_trace_id(),
    };
    tracing::debug!(trace_id = %entry.trace_id, chat_id, user = me.user_id, "REST post received");
    let deadline = tokio::time::Instant::now() + state.config.write_timeout;
    queue(&state, &entry, deadline).await?;
    // 5. The worker's answer, or 503: the commit may still happen, and a
    //    retry with the same clientId is answered from it.
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let Some(frame) = waiter.answer(left).await else {
        tracing::warn!(chat_id, trace_id = %entry.trace_id, "REST post not answered in time");
        return Err(not_committed_in_time());
    };
    posted(&frame).map(|p| (StatusCode::CREATED, Json(p)))
}

/// Appends `entry`. While an earlier attempt with the same clientId still
/// waits in the shard, its answer goes to that attempt's address, not to
/// this request: wait for it to be processed, then append again, and the
/// worker answers this request from the commit (`duplicate: true`).
async fn queue(
    state: &AppState,
    entry: &IngestEntry,
    deadline: tokio::time::Instant,
) -> AppResult<()> {
    while !writes::append(state, entry).await? {
        if tokio::time::Instant::now() >= deadline {
            return Err(not_committed_in_time());
        }
        tokio::time::sleep(REQUEUE_PAUSE).await;
    }
    Ok(())
}

/// 503 with a retry hint: the write may still commit, and a retry with
/// the same clientId is answered from it.
fn not_committed_in_time() -> AppError {
    AppError::Overloaded {
        what: "message commit",
        retry_after_ms: 1000,
    }
}

/// How often a retry looks whether the earlier attempt was processed.
const REQUEUE_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// The worker's answer frame as the response.
fn posted(frame: &str) -> AppResult<Posted> {
    let answer = Answer::parse(frame)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("unreadable answer frame")))?;
    serde_json::from_value(answer.into_result()?)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("unexpected send ack: {e}")))
}

/// `clientId`: 1 to 100 printable characters (it is also what a socket
/// frame id may be).
fn valid_client_id(id: &str) -> AppResult<String> {
    if id.is_empty() || id.len() > MAX_FRAME_ID_LEN || id.chars().any(char::is_control) {
        return Err(AppError::validation(format!(
            "clientId must be 1 to {MAX_FRAME_ID_LEN} bytes without control characters"
        )));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use fechatter_shared::protocol::{ack_frame, error_frame};
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_become_responses() {
        let ack = ack_frame("c", json!({"messageId": 9, "seq": 3}));
        let p = posted(&ack).unwrap();
        assert_eq!((p.message_id, p.seq, p.duplicate), (9, 3, false));
        let dup = ack_frame("c", json!({"messageId": 9, "seq": 3, "duplicate": true}));
        assert!(posted(&dup).unwrap().duplicate);
        let refused = error_frame(Some("c"), &AppError::forbidden("not a member"));
        assert_eq!(
            posted(&refused).unwrap_err().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(posted("{}").unwrap_err().code(), "internal");
    }

    #[test]
    fn client_ids() {
        assert!(valid_client_id("bot-42:1").is_ok());
        assert!(valid_client_id("").is_err());
        assert!(valid_client_id("a\nb").is_err());
        assert!(valid_client_id(&"x".repeat(101)).is_err());
    }
}
