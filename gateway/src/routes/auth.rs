//! Sign-in, token refresh, logout and password change (sign-up is in
//! [`super::signup`]).
//!
//! Every route here is reachable without a token, so each one is guarded
//! by two token buckets (lua/token_bucket.lua): one per client address
//! ([`ClientIp`]) and one per account (the e-mail, or the presented
//! refresh token), answering 429 with Retry-After. Password hashing runs on
//! a bounded pool ([`password`]) that answers 503 when saturated.

use axum::{extract::State, http::StatusCode, routing::post, Json, Router};
use fechatter_shared::{
    model::{AuthResponse, User},
    password, revocation,
    scripts::{self, Decision, Limit},
    store::{refresh, user},
    token::{short_digest, Subject},
    AppError, AppResult,
};
use serde::Deserialize;
use std::net::IpAddr;

use uuid::Uuid;

use crate::{
    extract::{ApiJson, AuthUser, ClientIp},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/signin", post(signin))
        .route("/api/refresh", post(refresh_tokens))
        .route("/api/logout", post(logout))
        .route("/api/me/password", post(change_password))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigninRequest {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshRequest {
    refresh_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

async fn signin(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<SigninRequest>,
) -> AppResult<Json<AuthResponse>> {
    let email = req.email.trim();
    limit_auth(&state, ip, None).await?;
    // Failed attempts are charged to the account (from this network, and
    // in total, 10x looser): a correct password never locks anyone out,
    // and a guesser from one network cannot lock out the owner elsewhere.
    let account = failure_buckets(&state, email, ip);
    for (key, limit) in &account {
        if let Decision::Denied { retry_after_ms } =
            scripts::probe_token(&state.redis, key, *limit, 1.0).await?
        {
            state.metrics.record_rate_limited("signin_failures");
            return Err(AppError::RateLimited { retry_after_ms });
        }
    }
    let found = user::find_by_email(&state.pool, email).await?;
    let stored = match &found {
        Some(u) => u.password_hash.clone(),
        None => password::dummy_hash().await?,
    };
    let matches = password::verify(req.password, stored).await?;
    match found {
        Some(u) if matches && !u.active => Err(AppError::forbidden("account deactivated")),
        Some(u) if matches => Ok(Json(issue_tokens(&state, u.public()).await?)),
        _ => {
            for (key, limit) in &account {
                scripts::take_token(&state.redis, key, *limit, 1.0).await?;
            }
            Err(AppError::InvalidCredentials)
        }
    }
}

async fn refresh_tokens(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> AppResult<Json<AuthResponse>> {
    let presented = req.refresh_token.trim();
    limit_auth(&state, ip, Some(&token_subject(presented))).await?;
    let successor = state.tokens.successor_refresh_token(presented);
    let rotation = refresh::rotate(
        &state.pool,
        presented,
        &successor,
        state.config.refresh_token_ttl,
    )
    .await?;
    match rotation {
        refresh::Rotation::Issued {
            user,
            token,
            family,
        } => Ok(Json(auth_response(&state, user, token, family)?)),
        refresh::Rotation::Reused { user_id, family } => {
            end_session(&state, user_id, family).await;
            Err(AppError::unauthorized(
                "refresh token reuse detected; sign in again",
            ))
        }
    }
}

/// Ends the caller's session (the access token's) and the family of the
/// presented refresh token; their open WebSockets close with 4401.
async fn logout(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> AppResult<StatusCode> {
    let family = refresh::revoke(&state.pool, me.user_id, req.refresh_token.trim()).await?;
    refresh::revoke_session(&state.pool, me.user_id, me.session_id).await?;
    end_session(&state, me.user_id, me.session_id).await;
    if let Some(f) = family.filter(|f| *f != me.session_id) {
        end_session(&state, me.user_id, f).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the password; every other session of the user ends.
async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<PasswordChange>,
) -> AppResult<StatusCode> {
    valid_password(&req.new_password)?;
    limit_auth(&state, ip, Some(&format!("user:{}", me.user_id))).await?;
    let current = user::find_with_hash(&state.pool, me.user_id)
        .await?
        .ok_or_else(|| AppError::unauthorized("unknown user"))?;
    if !password::verify(req.current_password, current.password_hash).await? {
        return Err(AppError::InvalidCredentials);
    }
    let hash = password::hash(req.new_password).await?;
    user::set_password(&state.pool, me.user_id, &hash).await?;
    let ended = refresh::revoke_all_except(&state.pool, me.user_id, Some(me.session_id)).await?;
    for family in ended {
        end_session(&state, me.user_id, family).await;
    }
    tracing::info!(
        user_id = me.user_id,
        "password changed; other sessions ended"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Marks a session revoked in Redis and closes its sockets pool-wide. The
/// database already refuses its refresh tokens; a Redis failure here is
/// logged and bounded by the access-token lifetime.
pub(crate) async fn end_session(state: &AppState, user_id: i64, family: Uuid) {
    if let Err(e) = revocation::revoke_session(
        &state.redis,
        &state.keys,
        user_id,
        family,
        state.config.access_token_ttl,
    )
    .await
    {
        tracing::error!(user_id, error = %e, "session revocation not published");
    }
}

pub(crate) async fn issue_tokens(state: &AppState, user: User) -> AppResult<AuthResponse> {
    let (refresh_token, family) =
        refresh::issue(&state.pool, user.id, state.config.refresh_token_ttl).await?;
    auth_response(state, user, refresh_token, family)
}

/// A fresh access token of session `family` for `user`, next to
/// `refresh_token`.
fn auth_response(
    state: &AppState,
    user: User,
    refresh_token: String,
    family: Uuid,
) -> AppResult<AuthResponse> {
    let access_token = state.tokens.issue(&Subject {
        user_id: user.id,
        workspace_id: user.workspace_id,
        name: &user.fullname,
        session_id: family,
    })?;
    Ok(AuthResponse {
        access_token,
        refresh_token,
        expires_in: state.tokens.ttl().as_secs(),
        session_id: family,
        user,
    })
}

fn per_minute(n: u32) -> Limit {
    Limit {
        capacity: n as f64,
        per_second: n as f64 / 60.0,
    }
}

/// Takes one token from the client address's bucket and, when given, the
/// account's; 429 when either is empty (counted by `http_requests_total`
/// with status 429 and by `rate_limited_total{action="auth_ip"|"auth_account"}`).
pub(crate) async fn limit_auth(
    state: &AppState,
    ip: IpAddr,
    account: Option<&str>,
) -> AppResult<()> {
    let mut buckets = vec![(
        "auth_ip",
        state
            .keys
            .auth_rate_limit(&format!("ip:{}", network_of(ip))),
        per_minute(state.config.auth_ip_per_minute),
    )];
    if let Some(a) = account {
        buckets.push((
            "auth_account",
            state.keys.auth_rate_limit(a),
            per_minute(state.config.auth_account_per_minute),
        ));
    }
    for (action, key, limit) in buckets {
        if let Decision::Denied { retry_after_ms } =
            scripts::take_token(&state.redis, &key, limit, 1.0).await?
        {
            state.metrics.record_rate_limited(action);
            return Err(AppError::RateLimited { retry_after_ms });
        }
    }
    Ok(())
}

/// The sign-in failure buckets of `email`: from the client's network
/// (`AUTH_ACCOUNT_PER_MINUTE`) and from anywhere (ten times that).
fn failure_buckets(state: &AppState, email: &str, ip: IpAddr) -> [(String, Limit); 2] {
    // Their own key space: sign-up draws on `acct:<digest>` per attempt.
    let account = format!("signin-{}", account_subject(email));
    let n = state.config.auth_account_per_minute;
    [
        (
            state
                .keys
                .auth_rate_limit(&format!("{account}:net:{}", network_of(ip))),
            per_minute(n),
        ),
        (
            state.keys.auth_rate_limit(&account),
            per_minute(n.saturating_mul(10)),
        ),
    ]
}

/// The unit a client address is limited as: an IPv4 address, or the /64
/// of an IPv6 address (one subscriber usually holds a whole /64).
fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        IpAddr::V6(v6) => v6.to_ipv4_mapped().expect("checked").to_string(),
        v4 => v4.to_string(),
    }
}

/// The per-account bucket subject of an e-mail: a digest, so addresses do
/// not appear in Redis keys.
pub(crate) fn account_subject(email: &str) -> String {
    format!(
        "acct:{}",
        short_digest(email.trim().to_lowercase().as_bytes())
    )
}

fn token_subject(token: &str) -> String {
    format!("rt:{}", short_digest(token.as_bytes()))
}

pub(crate) fn valid_password(password: &str) -> AppResult<()> {
    if password.chars().count() < 8 || password.len() > 128 {
        return Err(AppError::validation("password must be 8 to 128 characters"));
    }
    Ok(())
}

/// Trims `value` and checks it is non-empty and at most `max` characters.
pub(crate) fn bounded<'a>(field: &str, value: &'a str, max: usize) -> AppResult<&'a str> {
    let value = value.trim();
    if value.is_empty() {
        return Err(AppError::validation(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(AppError::validation(format!(
            "{field} must be at most {max} characters"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_limited_per_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(network_of(a), network_of(b));
        assert_eq!(network_of(a), "2001:db8:1:2::/64");
        assert_ne!(
            network_of(a),
            network_of("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(network_of("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(network_of("192.0.2.7".parse().unwrap()), "192.0.2.7");
    }
}
