//! Commits the chat changes that arrive through the ingest shard
//! (`PATCH /api/chat/{id}` and ownership transfers) and announces each as
//! a `chat.updated` chat event.
//!
//! The gateway checks the caller's role before it queues the change, for a
//! quick answer; the role is checked again here, in the batch transaction,
//! because it may have changed in between (a demoted admin's rename that
//! was already queued must not commit). The change, its event and its ack
//! commit together, like an edit's.

use fechatter_shared::{
    ingest::IngestEntry,
    model::{Chat, Role},
    protocol::{ChatChangeAck, ChatUpdated, RoleChange},
    store::{chat_change, event},
    AppError, AppResult,
};
use sqlx::PgConnection;

use crate::{
    effects::{ack, Effects},
    record::record_event,
};

/// `PATCH /api/chat/{id}`: owner or admin.
pub async fn update(
    tx: &mut PgConnection,
    e: &IngestEntry,
    role: Role,
    settings: chat_change::Settings<'_>,
    fx: &mut Effects,
) -> AppResult<()> {
    if !role.can_manage() {
        return Err(AppError::forbidden(
            "only the owner or an admin can change a chat",
        ));
    }
    let chat = chat_change::update(tx, e.chat_id, settings).await?;
    announce(tx, e, &chat, &[], fx).await
}

/// An ownership transfer: owner only; the previous owner becomes an admin.
pub async fn transfer(
    tx: &mut PgConnection,
    e: &IngestEntry,
    role: Role,
    new_owner: i64,
    fx: &mut Effects,
) -> AppResult<()> {
    if role != Role::Owner {
        return Err(AppError::forbidden("only the owner can transfer ownership"));
    }
    let chat = chat_change::transfer(tx, e.chat_id, e.user_id, new_owner).await?;
    let roles = [
        RoleChange {
            user_id: new_owner,
            role: Role::Owner,
        },
        RoleChange {
            user_id: e.user_id,
            role: Role::Admin,
        },
    ];
    announce(tx, e, &chat, &roles, fx).await
}

/// Logs and queues the `chat.updated` event, and acks the writer with its
/// number.
async fn announce(
    tx: &mut PgConnection,
    e: &IngestEntry,
    chat: &Chat,
    roles: &[RoleChange],
    fx: &mut Effects,
) -> AppResult<()> {
    let payload = |event_id, event_seq| ChatUpdated {
        chat_id: e.chat_id,
        event_id,
        event_seq,
        user_id: e.user_id,
        chat,
        roles,
    };
    let kind = ChatUpdated::TYPE;
    let event_seq = record_event(tx, e, kind, event::NO_MESSAGE, payload, fx).await?;
    let answer = ChatChangeAck {
        chat_id: e.chat_id,
        event_seq,
        duplicate: false,
    };
    ack(fx, e, answer);
    Ok(())
}
