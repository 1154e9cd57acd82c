//! Chats and their members.
//!
//! Visibility rule used by every read: a chat is visible to a user when the
//! user is a member, or when it is a public channel of the user's workspace.
//! Everything else answers "not found", so ids of other workspaces' chats
//! (or private chats one is not in) reveal nothing.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::{
    model::{Chat, ChatType, Member, Role},
    AppError, AppResult,
};

const CHAT_COLUMNS: &str = "c.id, c.workspace_id, c.type, c.name, c.description, c.owner_id,
    c.read_only, c.last_seq, (SELECT count(*) FROM chat_members cm WHERE cm.chat_id = c.id) AS member_count,
    c.created_at, c.updated_at";

/// Chats the user is a member of, newest activity first.
pub async fn list_for_user(pool: &PgPool, user_id: i64) -> AppResult<Vec<Chat>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CHAT_COLUMNS} FROM chats c
         JOIN chat_members m ON m.chat_id = c.id AND m.user_id = $1
         ORDER BY c.updated_at DESC, c.id DESC"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

/// The chat if visible to the user (see module docs), with the user's role
/// when a member.
pub async fn find_visible(
    pool: &PgPool,
    chat_id: i64,
    user_id: i64,
    workspace_id: i64,
) -> AppResult<(Chat, Option<Role>)> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT coalesce(m.role, '') FROM chats c
         LEFT JOIN chat_members m ON m.chat_id = c.id AND m.user_id = $2
         WHERE c.id = $1 AND c.workspace_id = $3
           AND (m.user_id IS NOT NULL OR c.type = 'public_channel')",
    )
    .bind(chat_id)
    .bind(user_id)
    .bind(workspace_id)
    .fetch_optional(pool)
    .await?;
    let Some((role,)) = row else {
        return Err(AppError::not_found("chat not found"));
    };
    let chat = get(pool, chat_id).await?;
    let role = (!role.is_empty()).then(|| Role::parse(&role));
    Ok((chat, role))
}

/// The chat, read through the pool or inside a transaction.
pub async fn get<'e>(db: impl sqlx::PgExecutor<'e>, chat_id: i64) -> AppResult<Chat> {
    sqlx::query_as(&format!(
        "SELECT {CHAT_COLUMNS} FROM chats c WHERE c.id = $1"
    ))
    .bind(chat_id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| AppError::not_found("chat not found"))
}

/// A chat to create: its owner, type and settings, and its plain members
/// (which must not contain the owner).
pub struct NewChat<'a> {
    pub workspace_id: i64,
    pub owner_id: i64,
    pub chat_type: ChatType,
    pub name: Option<&'a str>,
    pub description: &'a str,
    pub read_only: bool,
    pub members: &'a [i64],
}

/// Creates a chat with its owner and members.
pub async fn create(pool: &PgPool, new: NewChat<'_>) -> AppResult<Chat> {
    let NewChat {
        workspace_id,
        owner_id,
        chat_type,
        name,
        description,
        read_only,
        members,
    } = new;
    let mut tx = pool.begin().await?;
    // A single chat is unique per pair (chats_single_pair): two racing
    // creations cannot both insert; the loser gets a Conflict and the
    // caller returns the winner's chat.
    let single_pair = (chat_type == ChatType::Single).then(|| {
        let other = members.first().copied().unwrap_or(owner_id);
        format!("{}:{}", owner_id.min(other), owner_id.max(other))
    });
    let (chat_id,): (i64,) = sqlx::query_as(
        "INSERT INTO chats (workspace_id, type, name, description, owner_id, single_pair, read_only)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(workspace_id)
    .bind(chat_type)
    .bind(name)
    .bind(description)
    .bind(owner_id)
    .bind(single_pair)
    .bind(read_only)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| crate::store::conflict_on_unique(e, "this single chat already exists"))?;
    sqlx::query("INSERT INTO chat_members (chat_id, user_id, role) VALUES ($1, $2, 'owner')")
        .bind(chat_id)
        .bind(owner_id)
        .execute(&mut *tx)
        .await?;
    insert_members(&mut tx, chat_id, members).await?;
    tx.commit().await?;
    get(pool, chat_id).await
}

async fn insert_members(
    tx: &mut Transaction<'_, Postgres>,
    chat_id: i64,
    user_ids: &[i64],
) -> AppResult<Vec<i64>> {
    let added: Vec<(i64,)> = sqlx::query_as(
        "INSERT INTO chat_members (chat_id, user_id)
         SELECT $1, u FROM unnest($2::bigint[]) AS u
         ON CONFLICT DO NOTHING RETURNING user_id",
    )
    .bind(chat_id)
    .bind(user_ids)
    .fetch_all(&mut **tx)
    .await?;
    Ok(added.into_iter().map(|(id,)| id).collect())
}

/// The chat's last message seq and `user_id`'s read watermark in it, if
/// the user is a member (sync re-checks membership here rather than
/// trusting a gateway's cache).
pub async fn member_position(
    pool: &PgPool,
    chat_id: i64,
    user_id: i64,
) -> AppResult<Option<(i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT c.last_seq, m.last_read_seq FROM chats c
         JOIN chat_members m ON m.chat_id = c.id AND m.user_id = $2
         WHERE c.id = $1",
    )
    .bind(chat_id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?)
}

/// The existing single chat between two users of a workspace, if any.
pub async fn find_single(
    pool: &PgPool,
    workspace_id: i64,
    a: i64,
    b: i64,
) -> AppResult<Option<Chat>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CHAT_COLUMNS} FROM chats c
         WHERE c.workspace_id = $1 AND c.type = 'single'
           AND EXISTS (SELECT 1 FROM chat_members WHERE chat_id = c.id AND user_id = $2)
           AND EXISTS (SELECT 1 FROM chat_members WHERE chat_id = c.id AND user_id = $3)
         LIMIT 1"
    ))
    .bind(workspace_id)
    .bind(a)
    .bind(b)
    .fetch_optional(pool)
    .await?)
}

pub async fn delete(pool: &PgPool, chat_id: i64) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    // The archive has no key to cascade from (migration 16 says why).
    sqlx::query("DELETE FROM messages_archive WHERE chat_id = $1")
        .bind(chat_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM chats WHERE id = $1")
        .bind(chat_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn members(pool: &PgPool, chat_id: i64) -> AppResult<Vec<Member>> {
    Ok(sqlx::query_as(
        "SELECT m.user_id, u.fullname, m.role, m.last_read_seq, m.joined_at
         FROM chat_members m JOIN users u ON u.id = m.user_id
         WHERE m.chat_id = $1 ORDER BY m.joined_at, m.user_id",
    )
    .bind(chat_id)
    .fetch_all(pool)
    .await?)
}

/// Adds users (already validated as workspace members); returns the ids that
/// were not members before.
pub async fn add_members(pool: &PgPool, chat_id: i64, user_ids: &[i64]) -> AppResult<Vec<i64>> {
    let mut tx = pool.begin().await?;
    touch(&mut tx, chat_id).await?;
    let added = insert_members(&mut tx, chat_id, user_ids).await?;
    tx.commit().await?;
    Ok(added)
}

/// Removes users, never the owner (who may have changed since the caller
/// looked: an ownership transfer commits in the worker); returns the ids
/// that were removed.
pub async fn remove_members(pool: &PgPool, chat_id: i64, user_ids: &[i64]) -> AppResult<Vec<i64>> {
    let mut tx = pool.begin().await?;
    touch(&mut tx, chat_id).await?;
    let removed: Vec<(i64,)> = sqlx::query_as(
        "DELETE FROM chat_members WHERE chat_id = $1 AND user_id = ANY($2) AND role <> 'owner'
         RETURNING user_id",
    )
    .bind(chat_id)
    .bind(user_ids)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(removed.into_iter().map(|(id,)| id).collect())
}

/// Marks the chat changed. Membership writes take the chat row first
/// (this), then member rows: the order the worker's commits take them in,
/// so the two do not deadlock.
async fn touch(tx: &mut Transaction<'_, Postgres>, chat_id: i64) -> AppResult<()> {
    sqlx::query("UPDATE chats SET updated_at = now() WHERE id = $1")
        .bind(chat_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// (user, chat, read watermark, the chat's last message seq) of the given
/// users' memberships.
pub async fn memberships(pool: &PgPool, users: &[i64]) -> AppResult<Vec<(i64, i64, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT m.user_id, m.chat_id, m.last_read_seq, c.last_seq
         FROM chat_members m JOIN chats c ON c.id = m.chat_id
         WHERE m.user_id = ANY($1)",
    )
    .bind(users)
    .fetch_all(pool)
    .await?)
}

/// Up to `limit` `(user, last read seq)` of the members of `chat` other
/// than `user`, by user id (missed read receipts for a sync).
pub async fn read_watermarks(
    pool: &PgPool,
    chat: i64,
    user: i64,
    limit: i64,
) -> AppResult<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT user_id, last_read_seq FROM chat_members
         WHERE chat_id = $1 AND user_id <> $2 ORDER BY user_id LIMIT $3",
    )
    .bind(chat)
    .bind(user)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// `user_id`'s role in `chat_id`, None when not a member (the worker
/// checks it in its batch transaction before applying a write).
pub async fn member_role(
    tx: &mut PgConnection,
    chat_id: i64,
    user_id: i64,
) -> AppResult<Option<Role>> {
    let role: Option<(String,)> =
        sqlx::query_as("SELECT role FROM chat_members WHERE chat_id = $1 AND user_id = $2")
            .bind(chat_id)
            .bind(user_id)
            .fetch_optional(tx)
            .await?;
    Ok(role.map(|(r,)| Role::parse(&r)))
}

/// Which of the `(chat, user)` pairs (two equally long columns) are
/// memberships.
pub async fn memberships_among(
    tx: &mut PgConnection,
    chats: &[i64],
    users: &[i64],
) -> AppResult<Vec<Membership>> {
    let rows: Vec<(i64, i64, String, bool)> = sqlx::query_as(
        "SELECT m.chat_id, m.user_id, m.role, c.read_only FROM chat_members m
         JOIN unnest($1::bigint[], $2::bigint[]) AS k(chat_id, user_id)
           ON m.chat_id = k.chat_id AND m.user_id = k.user_id
         JOIN chats c ON c.id = m.chat_id",
    )
    .bind(chats)
    .bind(users)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(chat, user, role, read_only)| Membership {
            chat,
            user,
            may_post: Role::parse(&role).may_post(read_only),
        })
        .collect())
}

/// One (chat, user) membership as the send path checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub chat: i64,
    pub user: i64,
    /// False for a plain member of a read-only channel.
    pub may_post: bool,
}
