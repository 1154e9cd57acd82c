//! Read watermarks: the only per-user chat state the worker writes.
//!
//! A watermark only moves forward (`GREATEST`) and never past the newest
//! message, so replays and out-of-order marks from several devices are
//! harmless. The unread and mention counts sent back are recomputed from
//! PostgreSQL, which also repairs any drift in the Redis counters.

use fechatter_shared::{ingest::IngestEntry, protocol, AppResult};
use serde_json::json;
use sqlx::PgConnection;

use crate::effects::{ack, Badge, Effects};

pub async fn read_mark(
    tx: &mut PgConnection,
    e: &IngestEntry,
    seq: i64,
    fx: &mut Effects,
) -> AppResult<()> {
    let (watermark, last_seq): (i64, i64) = sqlx::query_as(
        "UPDATE chat_members m SET last_read_seq = GREATEST(m.last_read_seq, LEAST($3, c.last_seq))
         FROM chats c WHERE c.id = m.chat_id AND m.chat_id = $1 AND m.user_id = $2
         RETURNING m.last_read_seq, c.last_seq",
    )
    .bind(e.chat_id)
    .bind(e.user_id)
    .bind(seq)
    .fetch_one(&mut *tx)
    .await?;
    let (mentions,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM messages
         WHERE chat_id = $1 AND seq > $2 AND $3 = ANY(mentions) AND deleted_at IS NULL",
    )
    .bind(e.chat_id)
    .bind(watermark)
    .bind(e.user_id)
    .fetch_one(&mut *tx)
    .await?;
    fx.badges.push(Badge {
        user_id: e.user_id,
        chat_id: e.chat_id,
        unread: last_seq - watermark,
        mentions,
    });
    let receipt = protocol::new_frame(
        "read.receipt",
        &json!({ "chatId": e.chat_id, "userId": e.user_id, "seq": watermark }),
    );
    fx.chat_frames.push((e.chat_id, e.user_id, receipt));
    ack(fx, e, json!({ "seq": watermark }));
    Ok(())
}
