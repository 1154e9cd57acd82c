//! Chat and membership routes. Rules live in [`crate::chat_policy`]; this
//! module loads state, applies them and writes.

use axum::{
    extract::State,
    http::StatusCode,
    routing::{get, patch, post},
    Json, Router,
};
use fechatter_shared::{
    ingest::Command,
    model::{Chat, ChatType, Member, Role},
    store::{chat, user},
    AppError, AppResult,
};
use serde::Deserialize;

use crate::{
    chat_policy,
    extract::{ApiJson, ApiPath, AuthUser},
    membership::{announce, Change},
    routes::auth::bounded,
    state::AppState,
    writes,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(list_users))
        .route("/api/chat", get(list_chats).post(create_chat))
        .route(
            "/api/chat/{id}",
            get(get_chat).patch(update_chat).delete(delete_chat),
        )
        .route(
            "/api/chat/{id}/members",
            get(list_members).post(add_members).delete(remove_members),
        )
        .route(
            "/api/chat/{id}/members/{user_id}",
            patch(transfer_ownership),
        )
        .route("/api/chat/{id}/join", post(join_chat))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateChat {
    #[serde(rename = "type")]
    chat_type: ChatType,
    name: Option<String>,
    description: Option<String>,
    read_only: Option<bool>,
    #[serde(default)]
    members: Vec<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateChat {
    name: Option<String>,
    description: Option<String>,
    read_only: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberIds {
    user_ids: Vec<i64>,
}

async fn list_users(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> AppResult<Json<Vec<fechatter_shared::model::User>>> {
    Ok(Json(
        user::list_in_workspace(&state.pool, me.workspace_id).await?,
    ))
}

/// A chat in the caller's sidebar: the chat plus the caller's badge.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ChatSummary {
    #[serde(flatten)]
    chat: Chat,
    unread_count: i64,
    mention_count: i64,
}

/// The caller's chats with unread counts (PostgreSQL watermarks) and
/// unread mention counts (the Redis counters the badges use; 0 when Redis
/// is unavailable).
async fn list_chats(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> AppResult<Json<Vec<ChatSummary>>> {
    let chats = chat::list_for_user(&state.pool, me.user_id).await?;
    let watermarks: std::collections::HashMap<i64, i64> =
        chat::memberships(&state.pool, &[me.user_id])
            .await?
            .into_iter()
            .map(|(_, c, w, last)| (c, (last - w).max(0)))
            .collect();
    let mentions: std::collections::HashMap<String, i64> =
        fred::prelude::HashesInterface::hgetall(&state.redis, state.keys.unread(me.user_id))
            .await
            .unwrap_or_default();
    Ok(Json(
        chats
            .into_iter()
            .map(|chat| ChatSummary {
                unread_count: watermarks.get(&chat.id).copied().unwrap_or(0),
                mention_count: mentions
                    .get(&format!("{}:m", chat.id))
                    .copied()
                    .unwrap_or(0),
                chat,
            })
            .collect(),
    ))
}

async fn create_chat(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<CreateChat>,
) -> AppResult<(StatusCode, Json<Chat>)> {
    let others = chat_policy::initial_members(me.user_id, req.chat_type, &req.members)?;
    let name = chat_policy::initial_name(req.chat_type, req.name.as_deref())?;
    let read_only = chat_policy::read_only(req.chat_type, req.read_only)?.unwrap_or(false);
    let description = req.description.unwrap_or_default();
    let description = chat_policy::description(&description)?;
    ensure_workspace_users(&state, me.workspace_id, &others).await?;
    if req.chat_type == ChatType::Single {
        if let Some(existing) =
            chat::find_single(&state.pool, me.workspace_id, me.user_id, others[0]).await?
        {
            return Ok((StatusCode::OK, Json(existing)));
        }
    }
    let new = chat::NewChat {
        workspace_id: me.workspace_id,
        owner_id: me.user_id,
        chat_type: req.chat_type,
        name: name.as_deref(),
        description,
        read_only,
        members: &others,
    };
    let created = match chat::create(&state.pool, new).await {
        Err(AppError::Conflict(_)) if req.chat_type == ChatType::Single => {
            // Lost a race with a concurrent creation of the same pair.
            let existing =
                chat::find_single(&state.pool, me.workspace_id, me.user_id, others[0]).await?;
            return existing
                .map(|c| (StatusCode::OK, Json(c)))
                .ok_or_else(|| AppError::conflict("this single chat already exists"));
        }
        other => other?,
    };
    tracing::info!(chat_id = created.id, user_id = me.user_id, "chat created");
    let mut everyone = others.clone();
    everyone.push(me.user_id);
    announce(&state, created.id, &everyone, Change::Added).await;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn get_chat(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<Json<Chat>> {
    let (chat, _) = chat::find_visible(&state.pool, id, me.user_id, me.workspace_id).await?;
    Ok(Json(chat))
}

async fn update_chat(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<UpdateChat>,
) -> AppResult<Json<Chat>> {
    // 1. Who: the owner or an admin (checked again at commit), not of a
    //    single chat.
    let (found, role) = chat::find_visible(&state.pool, id, me.user_id, me.workspace_id).await?;
    if !role.is_some_and(Role::can_manage) {
        return Err(AppError::forbidden(
            "only the owner or an admin can change a chat",
        ));
    }
    if found.chat_type == ChatType::Single {
        return Err(AppError::validation(
            "single chats have no name or description",
        ));
    }
    // 2. What: valid fields; none at all changes nothing and says nothing.
    let name = match req.name.as_deref() {
        Some(n) => Some(bounded("name", n, 80)?.to_string()),
        None => None,
    };
    let description = match req.description.as_deref() {
        Some(d) => Some(chat_policy::description(d)?.to_string()),
        None => None,
    };
    let read_only = chat_policy::read_only(found.chat_type, req.read_only)?;
    if name.is_none() && description.is_none() && read_only.is_none() {
        return Ok(Json(found));
    }
    // 3. Within the caller's budget of chat changes, committed by the
    //    worker and announced as a chat.updated event.
    let command = Command::UpdateChat {
        name,
        description,
        read_only,
    };
    commit_change(&state, id, me.user_id, command).await
}

/// Has the chat's worker commit a chat change (see
/// `worker/src/chat_change.rs`) and answers with the chat after it.
async fn commit_change(
    state: &AppState,
    chat_id: i64,
    user_id: i64,
    command: Command,
) -> AppResult<Json<Chat>> {
    writes::limit(state, user_id, "chat_change", writes::CHAT_CHANGE_LIMIT).await?;
    let ref_id = format!("chat-change:{}", uuid::Uuid::new_v4().simple());
    writes::commit_rest(state, (chat_id, user_id), ref_id, command).await?;
    Ok(Json(chat::get(&state.pool, chat_id).await?))
}

async fn delete_chat(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<StatusCode> {
    let (_, role) = chat::find_visible(&state.pool, id, me.user_id, me.workspace_id).await?;
    if role != Some(Role::Owner) {
        return Err(AppError::forbidden("only the owner can delete a chat"));
    }
    let members: Vec<i64> = chat::members(&state.pool, id)
        .await?
        .iter()
        .map(|m| m.user_id)
        .collect();
    chat::delete(&state.pool, id).await?;
    announce(&state, id, &members, Change::Removed).await;
    tracing::info!(chat_id = id, user_id = me.user_id, "chat deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_members(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<Json<Vec<Member>>> {
    chat::find_visible(&state.pool, id, me.user_id, me.workspace_id).await?;
    Ok(Json(chat::members(&state.pool, id).await?))
}

async fn add_members(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<MemberIds>,
) -> AppResult<Json<Vec<Member>>> {
    let (found, role) = chat::find_visible(&state.pool, id, me.user_id, me.workspace_id).await?;
    chat_policy::may_add_members(found.chat_type, role)?;
    let ids = member_ids(req)?;
    ensure_workspace_users(&state, me.workspace_id, &ids).await?;
    let added = chat::add_members(&state.pool, id, &ids).await?;
    tracing::info!(chat_id = id, added = ?added, "members added");
    announce(&state, id, &added, Change::Added).await;
    Ok(Json(chat::members(&state.pool, id).await?))
}

async fn remove_members(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<MemberIds>,
) -> AppResult<Json<Vec<Member>>> {
    let (found, role) = chat::find_visible(&state.pool, id, me.user_id, me.workspace_id).await?;
    let ids = member_ids(req)?;
    chat_policy::may_remove_members(found.chat_type, me.user_id, role, found.owner_id, &ids)?;
    let removed = chat::remove_members(&state.pool, id, &ids).await?;
    tracing::info!(chat_id = id, removed = ?removed, "members removed");
    announce(&state, id, &removed, Change::Removed).await;
    Ok(Json(chat::members(&state.pool, id).await?))
}

async fn transfer_ownership(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath((id, new_owner)): ApiPath<(i64, i64)>,
) -> AppResult<Json<Chat>> {
    let (found, role) = chat::find_visible(&state.pool, id, me.user_id, me.workspace_id).await?;
    if found.owner_id == new_owner && role.is_some_and(Role::can_manage) {
        // Done already (naming oneself, or a repeat of a transfer that
        // committed, whose caller is an admin now): as asked.
        return Ok(Json(found));
    }
    if role != Some(Role::Owner) {
        return Err(AppError::forbidden("only the owner can transfer ownership"));
    }
    if found.chat_type == ChatType::Single {
        return Err(AppError::validation(
            "single chats have no transferable ownership",
        ));
    }
    commit_change(&state, id, me.user_id, Command::TransferChat { new_owner }).await
}

async fn join_chat(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<Json<Chat>> {
    let (found, role) = chat::find_visible(&state.pool, id, me.user_id, me.workspace_id).await?;
    if role.is_some() {
        return Ok(Json(found));
    }
    if found.chat_type != ChatType::PublicChannel {
        return Err(AppError::validation("only public channels can be joined"));
    }
    chat::add_members(&state.pool, id, &[me.user_id]).await?;
    announce(&state, id, &[me.user_id], Change::Added).await;
    Ok(Json(chat::get(&state.pool, id).await?))
}

fn member_ids(req: MemberIds) -> AppResult<Vec<i64>> {
    let mut ids = req.user_ids;
    if ids.is_empty() {
        return Err(AppError::validation("userIds must not be empty"));
    }
    if ids.len() > chat_policy::MAX_MEMBERS_PER_REQUEST {
        return Err(AppError::validation("too many userIds in one request"));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Fails with 422 naming the ids that are not users of the workspace.
async fn ensure_workspace_users(state: &AppState, workspace_id: i64, ids: &[i64]) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let found = user::existing_in_workspace(&state.pool, workspace_id, ids).await?;
    let missing: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(AppError::validation(format!("unknown users: {missing:?}")))
    }
}
