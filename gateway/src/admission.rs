//! What a new connection needs before it can take part: the user's
//! memberships with their read state, and a place within the per-user
//! connection limit (enforced pool-wide through Redis, evicting the oldest
//! connection wherever it lives).

use std::collections::HashMap;

use fechatter_shared::{scripts, store::chat, wake::StreamId, AppResult};
use fred::prelude::*;

use crate::{
    hub::{close, Membership, ReadState},
    state::AppState,
};

/// The user's chats with read watermarks (PostgreSQL) and unread mention
/// counts (Redis; missing counts start at 0 and are corrected at the next
/// read mark).
pub async fn load_memberships(state: &AppState, user_id: i64) -> AppResult<Vec<Membership>> {
    let rows = chat::memberships(&state.pool, &[user_id]).await?;
    let mentions: HashMap<String, i64> = state
        .redis
        .hgetall(state.keys.unread(user_id))
        .await
        .unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(|(_, chat, watermark, last_seq)| Membership {
            chat,
            last_seq,
            read: ReadState {
                watermark,
                mentions: mentions.get(&format!("{chat}:m")).copied().unwrap_or(0),
            },
        })
        .collect())
}

/// The id of the user's newest user-stream event, the position a new
/// connection starts from (`0-0` when Redis cannot say: the connection
/// then gets what the stream still holds).
pub async fn user_stream_head(state: &AppState, user_id: i64) -> StreamId {
    match fechatter_shared::user_stream::head(&state.redis, &state.keys, user_id).await {
        Ok(head) => head,
        Err(e) => {
            tracing::warn!(user_id, error = %e, "user stream head unknown");
            StreamId::ZERO
        }
    }
}

/// Registers the connection pool-wide and closes the user's oldest
/// connections beyond the limit, wherever they are.
pub async fn enforce_connection_limit(state: &AppState, user_id: i64, member: &str) {
    let key = state.keys.connections(user_id);
    let evicted = match scripts::register_connection(
        &state.redis,
        &key,
        member,
        state.config.max_connections_per_user,
        86_400,
    )
    .await
    {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "connection limit not enforced: Redis unavailable");
            return;
        }
    };
    for old in evicted {
        let Some((gateway, conn)) = old.split_once('|') else {
            continue;
        };
        let Ok(conn) = conn.parse::<u64>() else {
            continue;
        };
        if gateway == state.node {
            if let Some(c) = state.hub.conn(conn) {
                c.close(
                    close::REPLACED,
                    "connection limit reached: replaced by a newer connection",
                );
            }
        } else {
            let notice = fechatter_shared::ingest::GatewayNotice::Evict { conn };
            let _: Result<(), Error> = state
                .redis
                .spublish(state.keys.gateway_channel(gateway), notice.encode())
                .await;
        }
    }
}

/// Re-reads a registered user's memberships and watermarks.
pub async fn refresh_memberships(state: &AppState, user_id: i64) {
    match chat::memberships(&state.pool, &[user_id]).await {
        Ok(rows) => {
            let chats: HashMap<i64, i64> = rows.into_iter().map(|(_, c, w, _)| (c, w)).collect();
            state.hub.set_memberships(user_id, &chats);
        }
        Err(e) => tracing::warn!(user_id, error = %e, "re-reading memberships failed"),
    }
}
