//! Read watermarks: the only per-user chat state the worker writes.
//!
//! A watermark only moves forward (`GREATEST`) and never past the newest
//! message, so replays and out-of-order marks from several devices are
//! harmless. The unread and mention counts sent back are recomputed from
//! PostgreSQL, which also repairs any drift in the Redis counters.

use fechatter_shared::{
    ingest::IngestEntry,
    protocol::{ReadAck, ReadReceipt},
    store, AppError, AppResult,
};
use sqlx::PgConnection;

use crate::effects::{ack, Effects};

/// Steps of a `read.mark`: 1. move the watermark and 2. recompute the
/// badge from PostgreSQL (one statement); 3. the receipt to the chat's
/// other members; 4. the ack.
pub async fn read_mark(
    tx: &mut PgConnection,
    e: &IngestEntry,
    seq: i64,
    fx: &mut Effects,
) -> AppResult<()> {
    let moved = store::badge::read_up_to(tx, &[e.chat_id], &[e.user_id], &[seq])
        .await?
        .pop()
        .ok_or_else(|| AppError::not_found("chat not found"))?;
    fx.badges.push(moved.counts);
    let watermark = moved.after;
    let receipt = ReadReceipt {
        chat_id: e.chat_id,
        user_id: e.user_id,
        seq: watermark,
    };
    fx.chat_frames.push((e.chat_id, e.user_id, receipt.frame()));
    ack(fx, e, ReadAck { seq: watermark });
    Ok(())
}
