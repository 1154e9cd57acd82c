//! Applies a batch of ingest entries to PostgreSQL in one transaction and
//! collects what must be announced once it has committed.
//!
//! Nothing here touches Redis: the caller publishes the [`Effects`] only
//! after `COMMIT` succeeded, which is the whole durability contract —
//! recipients and senders hear of an event only once it cannot be lost.
//!
//! Client mistakes (not a member, not your message) become error replies
//! and do not abort the batch; database errors abort it and the caller
//! retries the whole batch. Every write is idempotent under such a retry:
//! events are keyed by the client's frame id (`chat_events.client_id`),
//! read marks only move forward, reactions are set-like.

use chrono::Utc;
use fechatter_shared::{
    ingest::{Command, IngestEntry},
    model::Message,
    protocol::{self, ReactAction},
    AppError, AppResult,
};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

pub use crate::effects::{ack, reply, Badge, Effects, Reply, TopicEvent};
use fechatter_shared::store::message;

/// Why a batch did not commit.
#[derive(Debug)]
pub enum CommitError {
    /// The caller no longer holds these shards (a newer fencing epoch):
    /// nothing was written.
    Fenced(Vec<u32>),
    App(AppError),
}

impl From<AppError> for CommitError {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

impl From<sqlx::Error> for CommitError {
    fn from(e: sqlx::Error) -> Self {
        Self::App(e.into())
    }
}

/// Applies `entries` in order in one transaction, unfenced (tests and
/// tools that own the database alone).
pub async fn apply_batch(pool: &PgPool, entries: &[IngestEntry]) -> Result<Effects, AppError> {
    match apply_fenced(pool, entries, &Default::default(), &[]).await {
        Ok(fx) => Ok(fx),
        Err(CommitError::App(e)) => Err(e),
        Err(CommitError::Fenced(_)) => {
            Err(AppError::Internal(anyhow::anyhow!("fenced without fences")))
        }
    }
}

/// [`apply_batch`] for the holder of `fences` (see
/// `fechatter_shared::store::fence`), with the users connected now (for
/// `@here`). Writes nothing when a fence is stale.
pub async fn apply_fenced(
    pool: &PgPool,
    entries: &[IngestEntry],
    here: &std::collections::HashSet<i64>,
    fences: &[fechatter_shared::store::fence::Fence],
) -> Result<Effects, CommitError> {
    let mut tx = pool.begin().await?;
    let stale = fechatter_shared::store::fence::stale(&mut tx, fences).await?;
    if !stale.is_empty() {
        return Err(CommitError::Fenced(stale));
    }
    let mut fx = Effects::default();
    // Consecutive sends are applied together (crate::send_batch); any
    // other command first flushes the run, so no chat's order changes.
    let mut run: Vec<&IngestEntry> = Vec::new();
    for entry in entries {
        if matches!(entry.command, Command::Send { .. }) {
            run.push(entry);
            continue;
        }
        crate::send_batch::apply_sends(&mut tx, &run, here, &mut fx).await?;
        run.clear();
        match apply(&mut tx, entry, &mut fx).await {
            Ok(outcome) => fx.outcomes.push((entry.command.kind(), outcome)),
            Err(e @ (AppError::Database(_) | AppError::Internal(_) | AppError::Redis(_))) => {
                return Err(e.into())
            }
            Err(client_error) => {
                client_error.log();
                fx.outcomes.push((entry.command.kind(), "rejected"));
                fx.replies.push(reply(
                    entry,
                    protocol::error_frame(Some(&entry.ref_id), &client_error),
                ));
            }
        }
    }
    crate::send_batch::apply_sends(&mut tx, &run, here, &mut fx).await?;
    tx.commit().await?;
    fx.committed_ms = Utc::now().timestamp_millis().max(0) as u64;
    Ok(fx)
}

async fn apply(
    tx: &mut PgConnection,
    e: &IngestEntry,
    fx: &mut Effects,
) -> AppResult<&'static str> {
    if let Some(done) = earlier_event(tx, e).await? {
        let ack = done.original_ack();
        fx.topic.push(done.event);
        fx.replies
            .push(reply(e, protocol::ack_frame(&e.ref_id, ack)));
        return Ok("duplicate");
    }
    let role = member_role(tx, e.chat_id, e.user_id).await?;
    match &e.command {
        Command::Send { .. } => {
            // apply_batch routes sends to crate::send_batch.
            return Err(AppError::Internal(anyhow::anyhow!(
                "send outside a send run"
            )));
        }
        Command::Edit {
            message_id,
            content,
        } => {
            let msg = message_in_chat(tx, e.chat_id, *message_id).await?;
            if msg.sender_id != e.user_id {
                return Err(AppError::forbidden("only the sender can edit a message"));
            }
            if msg.deleted_at.is_some() {
                return Err(AppError::validation("the message was deleted"));
            }
            let updated = message::edit(tx, e.chat_id, msg.id, content).await?;
            let payload = json!({ "chatId": e.chat_id, "message": updated });
            record_event(tx, e, "message.updated", updated.id, payload, fx).await?;
            ack(
                fx,
                e,
                json!({ "messageId": updated.id, "seq": updated.seq }),
            );
        }
        Command::Delete { message_id } => {
            let msg = message_in_chat(tx, e.chat_id, *message_id).await?;
            if msg.sender_id != e.user_id && !role.can_manage() {
                return Err(AppError::forbidden(
                    "only the sender, the owner or an admin can delete a message",
                ));
            }
            if msg.deleted_at.is_none() {
                message::soft_delete(tx, e.chat_id, msg.id).await?;
                let payload = json!({ "chatId": e.chat_id, "messageId": msg.id, "seq": msg.seq });
                record_event(tx, e, "message.deleted", msg.id, payload, fx).await?;
            }
            ack(fx, e, json!({ "messageId": msg.id, "seq": msg.seq }));
        }
        Command::React {
            message_id,
            emoji,
            action,
        } => {
            let msg = message_in_chat(tx, e.chat_id, *message_id).await?;
            if msg.deleted_at.is_some() {
                return Err(AppError::validation("the message was deleted"));
            }
            let add = matches!(action, ReactAction::Add);
            let changed = message::react(tx, e.chat_id, msg.id, e.user_id, emoji, add).await?;
            if changed {
                let reactions = message::reactions_of(&mut *tx, msg.id).await?;
                let payload =
                    json!({ "chatId": e.chat_id, "messageId": msg.id, "reactions": reactions });
                record_event(tx, e, "message.reaction", msg.id, payload, fx).await?;
            }
            ack(fx, e, json!({ "messageId": msg.id, "changed": changed }));
        }
        Command::Read { seq } => crate::read_state::read_mark(tx, e, *seq, fx).await?,
    }
    Ok("applied")
}

struct Earlier {
    kind: String,
    event: TopicEvent,
    message_id: i64,
    message_seq: i64,
}

impl Earlier {
    /// The ack the first attempt got, plus `duplicate: true`. A reaction
    /// only leaves an event when it changed something, so its original ack
    /// was `{messageId, changed: true}`; every other event's was
    /// `{messageId, seq}`.
    fn original_ack(&self) -> serde_json::Value {
        if self.kind == "message.reaction" {
            json!({ "messageId": self.message_id, "changed": true, "duplicate": true })
        } else {
            json!({ "messageId": self.message_id, "seq": self.message_seq, "duplicate": true })
        }
    }
}

/// The event this user's client frame id already produced in this chat.
async fn earlier_event(tx: &mut PgConnection, e: &IngestEntry) -> AppResult<Option<Earlier>> {
    let row: Option<(String, i64, i64, i64, i64, String, i64)> = sqlx::query_as(
        "SELECT ev.kind, ev.seq, ev.sub, ev.event_seq, ev.message_id, ev.frame, m.seq
         FROM chat_events ev
         JOIN messages m ON m.chat_id = ev.chat_id AND m.id = ev.message_id
         WHERE ev.chat_id = $1 AND ev.client_id = $2 AND ev.user_id = $3",
    )
    .bind(e.chat_id)
    .bind(&e.ref_id)
    .bind(e.user_id)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(
        |(kind, seq, sub, event_seq, message_id, frame, message_seq)| Earlier {
            event: TopicEvent {
                chat_id: e.chat_id,
                seq,
                sub,
                event_seq,
                frame,
                message_id,
                indexed: crate::search_events::changes_search(&kind),
            },
            kind,
            message_id,
            message_seq,
        },
    ))
}

async fn member_role(
    tx: &mut PgConnection,
    chat_id: i64,
    user_id: i64,
) -> AppResult<fechatter_shared::model::Role> {
    let role: Option<(String,)> =
        sqlx::query_as("SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $2")
            .bind(chat_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    role.map(|(r,)| fechatter_shared::model::Role::parse(&r))
        .ok_or_else(|| AppError::not_found("chat not found"))
}

async fn message_in_chat(
    tx: &mut PgConnection,
    chat_id: i64,
    message_id: i64,
) -> AppResult<Message> {
    message::lock_in_chat(tx, chat_id, message_id)
        .await?
        .ok_or_else(|| AppError::not_found("message not found"))
}

/// Numbers a non-message event (edit, delete, reaction) after the chat's
/// newest message and as the chat's next event, stores it and queues it
/// for the topic.
async fn record_event(
    tx: &mut PgConnection,
    e: &IngestEntry,
    kind: &str,
    message_id: i64,
    mut payload: serde_json::Value,
    fx: &mut Effects,
) -> AppResult<()> {
    let (seq, sub, event_seq): (i64, i64, i64) = sqlx::query_as(
        "UPDATE chats SET event_sub = event_sub + 1, last_event = last_event + 1 WHERE id = $1
         RETURNING last_seq, event_sub, last_event",
    )
    .bind(e.chat_id)
    .fetch_one(&mut *tx)
    .await?;
    payload["eventId"] = json!(format!("{seq}-{sub}"));
    payload["eventSeq"] = json!(event_seq);
    let frame = protocol::server_frame(
        kind,
        &protocol::event_frame_id(e.chat_id, seq, sub),
        Utc::now(),
        &payload,
    );
    insert_event(tx, e, (seq, sub, event_seq), kind, message_id, &frame).await?;
    fx.topic.push(TopicEvent {
        chat_id: e.chat_id,
        seq,
        sub,
        event_seq,
        frame,
        message_id,
        indexed: crate::search_events::changes_search(kind),
    });
    Ok(())
}

async fn insert_event(
    tx: &mut PgConnection,
    e: &IngestEntry,
    (seq, sub, event_seq): (i64, i64, i64),
    kind: &str,
    message_id: i64,
    frame: &str,
) -> AppResult<()> {
    sqlx::query(
        "INSERT INTO chat_events (chat_id, seq, sub, kind, client_id, user_id, message_id, frame, event_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.chat_id)
    .bind(seq)
    .bind(sub)
    .bind(kind)
    .bind(&e.ref_id)
    .bind(e.user_id)
    .bind(message_id)
    .bind(frame)
    .bind(event_seq)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
