//! Sign-up: workspace admission and, with `SIGNUP_MODE=verified`, proof of
//! the e-mail address.
//!
//! A sign-up names exactly one way in: `workspace` (a new workspace, the
//! user its owner), `inviteToken` (the invite's workspace) or `workspaceId`
//! (an existing workspace whose owner allows the address's domain; only
//! with verified addresses). Admission is checked before the password is
//! hashed, so a wrong invite costs no Argon2 time.
//!
//! Direct mode answers 201 with tokens, and 409 for a taken e-mail.
//! Verified mode answers every well-formed, admissible request 202 and
//! mails either a link (new address) or a notice (address with an
//! account): the answer, and the work done before it (one Argon2 hash, one
//! transaction), are the same, so sign-up does not reveal which e-mails
//! exist. `POST /api/signup/verify` with the link's token creates the
//! account and answers like direct mode.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use fechatter_shared::{
    config::SignupMode,
    password,
    store::{
        email::Email,
        invite,
        signup::{self, Mails, PendingSignup},
        user::{self, Admission},
        workspace_domain,
    },
    token::{hash_refresh_token, new_refresh_token},
    AppError, AppResult,
};
use serde::{Deserialize, Serialize};

use super::auth::{account_subject, bounded, issue_tokens, limit_auth, valid_password};
use crate::{
    extract::{ApiJson, ClientIp},
    state::AppState,
};

pub fn router() -> axum::Router<AppState> {
    Router::new()
        .route("/api/signup", post(signup))
        .route("/api/signup/verify", post(verify))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignupRequest {
    fullname: String,
    email: String,
    password: String,
    /// Name of the new workspace (sign-up without an invite).
    workspace: Option<String>,
    /// Joins the invite's workspace instead of creating one.
    invite_token: Option<String>,
    /// Joins this workspace by e-mail domain (verified mode only).
    workspace_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    token: String,
}

/// The verified-mode answer, the same for every admissible request.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerificationSent {
    status: &'static str,
    expires_in_secs: u64,
}

/// The way in a request asks for, before any database check.
enum Requested<'a> {
    NewWorkspace(&'a str),
    Invite(&'a str),
    Domain(i64),
}

/// Exactly one of `workspace`, `inviteToken`, `workspaceId`.
fn requested(req: &SignupRequest) -> AppResult<Requested<'_>> {
    match (&req.workspace, &req.invite_token, req.workspace_id) {
        (Some(w), None, None) => Ok(Requested::NewWorkspace(bounded("workspace", w, 64)?)),
        (None, Some(t), None) => Ok(Requested::Invite(bounded("inviteToken", t, 200)?)),
        (None, None, Some(id)) => Ok(Requested::Domain(id)),
        _ => Err(AppError::validation(
            "give exactly one of `workspace` (creates a new workspace), `inviteToken` \
             (joins by invite) or `workspaceId` (joins by e-mail domain)",
        )),
    }
}

async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<SignupRequest>,
) -> AppResult<Response> {
    // 1. Shape of the request.
    let fullname = bounded("fullname", &req.fullname, 100)?.to_string();
    let email = valid_email(&req.email)?;
    valid_password(&req.password)?;
    let way = requested(&req)?;
    // 2. Rate limits (per address, per account), before any real work.
    limit_auth(&state, ip, Some(&account_subject(&email))).await?;
    // 3. Admission, checked without using anything up.
    let admission = admission(&state, way, &email).await?;
    // 4. The password hash (done in both modes and for taken e-mails).
    let password_hash = password::hash(req.password).await?;
    match state.config.signup_mode {
        SignupMode::Direct => {
            let user =
                user::signup(&state.pool, &admission, &fullname, &email, &password_hash).await?;
            tracing::info!(user_id = user.id, workspace_id = user.workspace_id,
                           role = %user.role, "user signed up");
            Ok((StatusCode::CREATED, Json(issue_tokens(&state, user).await?)).into_response())
        }
        SignupMode::Verified => {
            let token = new_refresh_token();
            let mails = mails(&state.config.public_url, &fullname, &email, &token);
            let pending = PendingSignup {
                email,
                fullname,
                password_hash,
                admission,
            };
            signup::request(&state.pool, &pending, &token, &mails).await?;
            let sent = VerificationSent {
                status: "verification_sent",
                expires_in_secs: signup::LINK_LIFETIME.as_secs(),
            };
            Ok((StatusCode::ACCEPTED, Json(sent)).into_response())
        }
    }
}

/// The admission a request asks for, if it would be granted now.
async fn admission(state: &AppState, way: Requested<'_>, email: &str) -> AppResult<Admission> {
    match way {
        Requested::NewWorkspace(name) => Ok(Admission::NewWorkspace(name.to_string())),
        Requested::Invite(token) => {
            invite::check(&state.pool, token, email).await?;
            Ok(Admission::Invite(hash_refresh_token(token.trim())))
        }
        Requested::Domain(_) if state.config.signup_mode == SignupMode::Direct => {
            Err(AppError::forbidden(
                "joining by e-mail domain needs verified addresses (SIGNUP_MODE=verified); \
                 ask for an invite",
            ))
        }
        Requested::Domain(id) => {
            if workspace_domain::allows(&state.pool, id, email).await? {
                Ok(Admission::VerifiedDomain(id))
            } else {
                Err(AppError::forbidden(
                    "this e-mail domain may not join that workspace; ask for an invite",
                ))
            }
        }
    }
}

/// Follows a mailed sign-up link: creates the account, answers with tokens.
async fn verify(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> AppResult<(StatusCode, Json<fechatter_shared::model::AuthResponse>)> {
    limit_auth(&state, ip, None).await?;
    let user = signup::confirm(&state.pool, bounded("token", &req.token, 200)?).await?;
    tracing::info!(user_id = user.id, workspace_id = user.workspace_id,
                   role = %user.role, "user signed up (address verified)");
    Ok((StatusCode::CREATED, Json(issue_tokens(&state, user).await?)))
}

/// The link mail for a new address and the notice for a taken one. The
/// token travels in the URL fragment, which browsers never send to a
/// server, so it stays out of proxy and access logs.
fn mails(public_url: &str, fullname: &str, email: &str, token: &str) -> Mails {
    let hours = signup::LINK_LIFETIME.as_secs() / 3600;
    Mails {
        verify: Email {
            recipient: email.to_string(),
            subject: "Confirm your Fechatter sign-up".into(),
            body: format!(
                "Hello {fullname},\n\nfollow this link within {hours} hours to create your \
                 Fechatter account:\n\n{public_url}/signup/verify#token={token}\n\n\
                 (Clients without a browser: POST {{\"token\": \"{token}\"}} to \
                 {public_url}/api/signup/verify.)\n\nIf you did not sign up, ignore this mail.\n"
            ),
        },
        already_registered: Email {
            recipient: email.to_string(),
            subject: "Sign-up attempt for your Fechatter account".into(),
            body: format!(
                "Someone, maybe you, tried to sign up at {public_url} with this address, \
                 which already has an account.\n\nSign in instead; nothing has changed. \
                 If it was not you, you can ignore this mail.\n"
            ),
        },
    }
}

fn valid_email(email: &str) -> AppResult<String> {
    let email = email.trim();
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                && !domain.ends_with('.') && !domain.contains('@'));
    if ok {
        Ok(email.to_string())
    } else {
        Err(AppError::validation("email is not a valid address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_validation() {
        for good in ["a@b.co", "first.last+tag@example.org"] {
            assert!(valid_email(good).is_ok(), "{good}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a@b.co.", "a b@c.de", "a@b@c.de",
        ] {
            assert!(valid_email(bad).is_err(), "{bad}");
        }
    }

    fn req(workspace: Option<&str>, invite: Option<&str>, id: Option<i64>) -> SignupRequest {
        SignupRequest {
            fullname: "A".into(),
            email: "a@b.co".into(),
            password: "password1".into(),
            workspace: workspace.map(Into::into),
            invite_token: invite.map(Into::into),
            workspace_id: id,
        }
    }

    #[test]
    fn exactly_one_way_in() {
        assert!(matches!(
            requested(&req(Some("Acme"), None, None)),
            Ok(Requested::NewWorkspace("Acme"))
        ));
        assert!(matches!(
            requested(&req(None, Some("t"), None)),
            Ok(Requested::Invite("t"))
        ));
        assert!(matches!(
            requested(&req(None, None, Some(3))),
            Ok(Requested::Domain(3))
        ));
        assert!(requested(&req(None, None, None)).is_err());
        assert!(requested(&req(Some("Acme"), Some("t"), None)).is_err());
        assert!(requested(&req(Some("Acme"), None, Some(1))).is_err());
    }

    #[test]
    fn the_link_keeps_the_token_in_the_fragment() {
        let m = mails("https://chat.example", "Ann", "ann@x.co", "tok123");
        assert!(m
            .verify
            .body
            .contains("https://chat.example/signup/verify#token=tok123"));
        assert!(!m.already_registered.body.contains("tok123"));
        assert_eq!(m.verify.recipient, "ann@x.co");
    }
}
