//! Workspace administration: invites, roles, deactivation and the e-mail
//! domain allow-list.
//!
//! The caller's workspace role is read from PostgreSQL on every call (not
//! from the token), so a demoted admin loses the power at once. The rules
//! are pure functions ([`can_manage_invites`], [`can_deactivate`],
//! [`can_set_role`]) tested without a database.

use std::time::Duration;

use axum::{
    extract::State,
    http::StatusCode,
    routing::{delete, get, post, put},
    Json, Router,
};
use fechatter_shared::{
    model::User,
    revocation,
    store::{invite, user, workspace_domain},
    AppError, AppResult,
};
use serde::{Deserialize, Serialize};

use crate::{
    extract::{ApiJson, ApiPath, AuthUser},
    state::AppState,
};

/// Invite lifetime when none is asked for, and the longest allowed.
const DEFAULT_INVITE_SECS: u64 = 7 * 86_400;
const MAX_INVITE_SECS: u64 = 30 * 86_400;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/workspace/invites",
            post(create_invite).get(list_invites),
        )
        .route("/api/workspace/invites/{id}", delete(revoke_invite))
        .route(
            "/api/workspace/users/{id}/deactivate",
            post(deactivate_user),
        )
        .route("/api/workspace/users/{id}/role", put(set_role))
        .route("/api/workspace/me", get(me))
        .route("/api/workspace/domains", get(list_domains).put(set_domains))
}

/// Owners and admins manage invites.
pub fn can_manage_invites(role: &str) -> bool {
    matches!(role, "owner" | "admin")
}

/// The owner may deactivate anyone but themselves; an admin only members.
pub fn can_deactivate(actor: &User, target: &User) -> bool {
    actor.id != target.id
        && match actor.role.as_str() {
            "owner" => true,
            "admin" => target.role == "member",
            _ => false,
        }
}

/// Only the owner assigns roles, and only `admin` or `member` to others
/// (ownership is not transferable here).
pub fn can_set_role(actor: &User, target: &User, role: &str) -> bool {
    actor.role == "owner" && actor.id != target.id && matches!(role, "admin" | "member")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewInvite {
    /// Binds the invite to this e-mail address (case-insensitive).
    email: Option<String>,
    #[serde(default)]
    single_use: bool,
    expires_in_secs: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedInvite {
    #[serde(flatten)]
    invite: invite::Invite,
    /// The secret to give the invitee; shown only here, stored hashed.
    token: String,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Domains {
    domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: String,
}

/// The caller as stored (role, active), or 401 when gone.
pub(crate) async fn caller(
    state: &AppState,
    me: &fechatter_shared::token::Identity,
) -> AppResult<User> {
    match user::find(&state.pool, me.user_id).await? {
        Some(u) if u.active => Ok(u),
        _ => Err(AppError::unauthorized("account deactivated")),
    }
}

async fn me(State(state): State<AppState>, AuthUser(me): AuthUser) -> AppResult<Json<User>> {
    Ok(Json(caller(&state, &me).await?))
}

async fn create_invite(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<NewInvite>,
) -> AppResult<(StatusCode, Json<CreatedInvite>)> {
    let actor = caller(&state, &me).await?;
    if !can_manage_invites(&actor.role) {
        return Err(AppError::forbidden("only owners and admins invite"));
    }
    let secs = req.expires_in_secs.unwrap_or(DEFAULT_INVITE_SECS);
    if !(60..=MAX_INVITE_SECS).contains(&secs) {
        return Err(AppError::validation(format!(
            "expiresInSecs must be 60 to {MAX_INVITE_SECS}"
        )));
    }
    let email = req
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if email.is_some_and(|e| e.len() > 254 || !e.contains('@')) {
        return Err(AppError::validation("email is not a valid address"));
    }
    let (invite, token) = invite::create(
        &state.pool,
        actor.workspace_id,
        actor.id,
        email,
        req.single_use,
        Duration::from_secs(secs),
    )
    .await?;
    tracing::info!(invite_id = invite.id, by = actor.id, "invite created");
    Ok((StatusCode::CREATED, Json(CreatedInvite { invite, token })))
}

async fn list_invites(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> AppResult<Json<Vec<invite::Invite>>> {
    let actor = caller(&state, &me).await?;
    if !can_manage_invites(&actor.role) {
        return Err(AppError::forbidden("only owners and admins see invites"));
    }
    Ok(Json(invite::list(&state.pool, actor.workspace_id).await?))
}

async fn revoke_invite(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<StatusCode> {
    let actor = caller(&state, &me).await?;
    if !can_manage_invites(&actor.role) {
        return Err(AppError::forbidden("only owners and admins revoke invites"));
    }
    invite::revoke(&state.pool, actor.workspace_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_domains(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> AppResult<Json<Domains>> {
    let actor = caller(&state, &me).await?;
    if !can_manage_invites(&actor.role) {
        return Err(AppError::forbidden(
            "only owners and admins see the domain list",
        ));
    }
    let domains = workspace_domain::list(&state.pool, actor.workspace_id).await?;
    Ok(Json(Domains { domains }))
}

/// Replaces the list of e-mail domains whose verified addresses may join
/// without an invite (owner only: it opens the workspace to many people).
async fn set_domains(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<Domains>,
) -> AppResult<Json<Domains>> {
    let actor = caller(&state, &me).await?;
    if actor.role != "owner" {
        return Err(AppError::forbidden("only the owner sets the domain list"));
    }
    let mut domains = req
        .domains
        .iter()
        .map(|d| workspace_domain::normalize(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(AppError::validation)?;
    domains.sort();
    domains.dedup();
    workspace_domain::replace(&state.pool, actor.workspace_id, &domains).await?;
    tracing::info!(
        workspace_id = actor.workspace_id,
        count = domains.len(),
        by = actor.id,
        "domain allow-list set"
    );
    let domains = workspace_domain::list(&state.pool, actor.workspace_id).await?;
    Ok(Json(Domains { domains }))
}

/// Deactivates a user: no more sign-in or refresh, every session ends and
/// every open WebSocket of theirs closes with 4401 within a second.
async fn deactivate_user(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> AppResult<StatusCode> {
    let actor = caller(&state, &me).await?;
    let target = user::find_in_workspace(&state.pool, actor.workspace_id, id).await?;
    if !can_deactivate(&actor, &target) {
        return Err(AppError::forbidden(
            "the owner deactivates anyone else; admins deactivate members",
        ));
    }
    user::deactivate(&state.pool, target.id).await?;
    revocation::revoke_user(
        &state.redis,
        &state.keys,
        target.id,
        state.config.access_token_ttl,
    )
    .await?;
    tracing::info!(user_id = target.id, by = actor.id, "user deactivated");
    Ok(StatusCode::NO_CONTENT)
}

async fn set_role(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<RoleChange>,
) -> AppResult<Json<User>> {
    let actor = caller(&state, &me).await?;
    let target = user::find_in_workspace(&state.pool, actor.workspace_id, id).await?;
    if !matches!(req.role.as_str(), "admin" | "member") {
        return Err(AppError::validation("role must be `admin` or `member`"));
    }
    if !can_set_role(&actor, &target, &req.role) {
        return Err(AppError::forbidden("only the owner assigns roles"));
    }
    Ok(Json(
        user::set_role(&state.pool, target.id, &req.role).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(id: i64, role: &str) -> User {
        User {
            id,
            fullname: format!("u{id}"),
            email: format!("u{id}@x.test"),
            workspace_id: 1,
            role: role.into(),
            active: true,
        }
    }

    #[test]
    fn deactivation_rules() {
        let (owner, admin, member, member2) =
            (u(1, "owner"), u(2, "admin"), u(3, "member"), u(4, "member"));
        assert!(can_deactivate(&owner, &admin));
        assert!(can_deactivate(&owner, &member));
        assert!(!can_deactivate(&owner, &owner), "not oneself");
        assert!(can_deactivate(&admin, &member));
        assert!(!can_deactivate(&admin, &owner));
        assert!(!can_deactivate(&admin, &u(5, "admin")));
        assert!(!can_deactivate(&member, &member2));
    }

    #[test]
    fn role_and_invite_rules() {
        let (owner, admin, member) = (u(1, "owner"), u(2, "admin"), u(3, "member"));
        assert!(can_set_role(&owner, &member, "admin"));
        assert!(can_set_role(&owner, &admin, "member"));
        assert!(!can_set_role(&owner, &member, "owner"));
        assert!(!can_set_role(&admin, &member, "admin"));
        assert!(!can_set_role(&owner, &owner, "member"));
        assert!(can_manage_invites("owner") && can_manage_invites("admin"));
        assert!(!can_manage_invites("member"));
    }
}
