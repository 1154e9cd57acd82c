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
use fechatter_shared::{protocol::MAX_FRAME_ID_LEN, store::chat, AppError, AppResult};
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
    // 4. Append, and wait for the worker's answer (or 503: the commit
    //    may still happen, and a retry with the same clientId is answered
    //    from it).
    let answer = writes::commit_rest(&state, (chat_id, me.user_id), client_id, command).await?;
    posted(answer).map(|p| (StatusCode::CREATED, Json(p)))
}

/// The worker's ack as the response.
fn posted(answer: serde_json::Value) -> AppResult<Posted> {
    serde_json::from_value(answer)
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
    use serde_json::json;

    use super::*;

    #[test]
    fn acks_become_responses() {
        let p = posted(json!({"messageId": 9, "seq": 3})).unwrap();
        assert_eq!((p.message_id, p.seq, p.duplicate), (9, 3, false));
        let dup = json!({"messageId": 9, "seq": 3, "duplicate": true});
        assert!(posted(dup).unwrap().duplicate);
        assert_eq!(posted(json!({"chatId": 1})).unwrap_err().code(), "internal");
    }

    #[test]
    fn client_ids() {
        assert!(valid_client_id("bot-42:1").is_ok());
        assert!(valid_client_id("").is_err());
        assert!(valid_client_id("a\nb").is_err());
        assert!(valid_client_id(&"x".repeat(101)).is_err());
    }
}
