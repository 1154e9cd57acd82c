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
//!
//! This module decides (who may edit or delete, what to announce, which
//! ack to give); the SQL it runs is in `fechatter_shared::store`
//! (`message`, `event`, `chat`), each function taking this transaction.

use chrono::Utc;
use fechatter_shared::{
    ingest::{Command, IngestEntry},
    model::{Message, Role},
    protocol::{
        self, ChatChangeAck, ChatUpdated, MessageDeleted, MessageReaction, MessageUpdated,
        ReactAck, ReactAction, SendAck,
    },
    store::{chat, chat_change, event, message},
    AppError, AppResult,
};
use sqlx::{PgConnection, PgPool};

pub use crate::effects::{ack, reply, Badge, Effects, Reply, TopicEvent};

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
    if let Some(done) = event::earlier(tx, e.chat_id, &e.ref_id, e.user_id).await? {
        answer_again(done, e, fx);
        return Ok("duplicate");
    }
    let role = chat::member_role(tx, e.chat_id, e.user_id)
        .await?
        .ok_or_else(|| AppError::not_found("chat not found"))?;
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
        } => edit(tx, e, *message_id, content, fx).await?,
        Command::Delete { message_id } => delete(tx, e, role, *message_id, fx).await?,
        Command::React {
            message_id,
            emoji,
            action,
        } => react(tx, e, (*message_id, emoji, *action), fx).await?,
        Command::Read { seq } => crate::read_state::read_mark(tx, e, *seq, fx).await?,
        Command::UpdateChat {
            name,
            description,
            read_only,
        } => {
            let settings = chat_change::Settings {
                name: name.as_deref(),
                description: description.as_deref(),
                read_only: *read_only,
            };
            crate::chat_change::update(tx, e, role, settings, fx).await?
        }
        Command::TransferChat { new_owner } => {
            crate::chat_change::transfer(tx, e, role, *new_owner, fx).await?
        }
    }
    Ok("applied")
}

/// Answers a retry of a client frame whose event is already committed:
/// the event is published again, and the sender gets the ack the first
/// attempt got, plus `duplicate: true`. A reaction only leaves an event
/// when it changed something, so its original ack was `{messageId,
/// changed: true}`; a chat change's was `{chatId, eventSeq}`; every other
/// event's was `{messageId, seq}`.
fn answer_again(done: event::EarlierEvent, e: &IngestEntry, fx: &mut Effects) {
    let message_id = done.message_id;
    if done.kind == ChatUpdated::TYPE {
        let answer = ChatChangeAck {
            chat_id: e.chat_id,
            event_seq: done.event_seq,
            duplicate: true,
        };
        ack(fx, e, answer);
    } else if done.kind == MessageReaction::TYPE {
        let answer = ReactAck {
            message_id,
            changed: true,
            duplicate: true,
        };
        ack(fx, e, answer);
    } else {
        let answer = SendAck {
            message_id,
            seq: done.message_seq,
            duplicate: true,
        };
        ack(fx, e, answer);
    }
    fx.topic.push(TopicEvent {
        chat_id: e.chat_id,
        seq: done.seq,
        sub: done.sub,
        event_seq: done.event_seq,
        indexed: crate::search_events::changes_search(&done.kind),
        frame: done.frame,
        message_id,
        accepted_ms: e.accepted_ms,
    });
}

/// `message.edit`: only the sender edits, and not once deleted.
async fn edit(
    tx: &mut PgConnection,
    e: &IngestEntry,
    message_id: i64,
    content: &str,
    fx: &mut Effects,
) -> AppResult<()> {
    let msg = message_in_chat(tx, e.chat_id, message_id).await?;
    if msg.sender_id != e.user_id {
        return Err(AppError::forbidden("only the sender can edit a message"));
    }
    if msg.deleted_at.is_some() {
        return Err(AppError::validation("the message was deleted"));
    }
    let updated = message::edit(tx, e.chat_id, msg.id, content).await?;
    let payload = |event_id, event_seq| MessageUpdated {
        chat_id: e.chat_id,
        event_id,
        event_seq,
        message: &updated,
    };
    crate::record::record_event(tx, e, MessageUpdated::TYPE, updated.id, payload, fx).await?;
    let answer = SendAck {
        message_id: updated.id,
        seq: updated.seq,
        duplicate: false,
    };
    ack(fx, e, answer);
    Ok(())
}

/// `message.delete`: by the sender, an owner or an admin; deleting a
/// deleted message is acked again without a second event.
async fn delete(
    tx: &mut PgConnection,
    e: &IngestEntry,
    role: Role,
    message_id: i64,
    fx: &mut Effects,
) -> AppResult<()> {
    let msg = message_in_chat(tx, e.chat_id, message_id).await?;
    if msg.sender_id != e.user_id && !role.can_manage() {
        return Err(AppError::forbidden(
            "only the sender, the owner or an admin can delete a message",
        ));
    }
    let (message_id, seq) = (msg.id, msg.seq);
    if msg.deleted_at.is_none() {
        message::soft_delete(tx, e.chat_id, message_id).await?;
        let payload = |event_id, event_seq| MessageDeleted {
            chat_id: e.chat_id,
            event_id,
            event_seq,
            message_id,
            seq,
        };
        crate::record::record_event(tx, e, MessageDeleted::TYPE, message_id, payload, fx).await?;
    }
    let answer = SendAck {
        message_id,
        seq,
        duplicate: false,
    };
    ack(fx, e, answer);
    Ok(())
}

/// `message.react`: adds or removes one reaction of the sender; an event
/// (with the whole new reaction set) only when that changed something.
async fn react(
    tx: &mut PgConnection,
    e: &IngestEntry,
    (message_id, emoji, action): (i64, &str, ReactAction),
    fx: &mut Effects,
) -> AppResult<()> {
    let msg = message_in_chat(tx, e.chat_id, message_id).await?;
    if msg.deleted_at.is_some() {
        return Err(AppError::validation("the message was deleted"));
    }
    let message_id = msg.id;
    let add = matches!(action, ReactAction::Add);
    let changed = message::react(tx, e.chat_id, message_id, e.user_id, emoji, add).await?;
    if changed {
        let reactions = message::reactions_of(&mut *tx, message_id).await?;
        let payload = |event_id, event_seq| MessageReaction {
            chat_id: e.chat_id,
            event_id,
            event_seq,
            message_id,
            reactions: &reactions,
        };
        crate::record::record_event(tx, e, MessageReaction::TYPE, message_id, payload, fx).await?;
    }
    let answer = ReactAck {
        message_id,
        changed,
        duplicate: false,
    };
    ack(fx, e, answer);
    Ok(())
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
