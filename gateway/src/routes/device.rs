//! Push devices of the caller (seed 002 §3.5): `GET/POST/DELETE
//! /api/me/devices`. The rules on what may be registered are the pure
//! [`valid_device`], tested without a database.

use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use fechatter_shared::{
    store::push::{self, Device},
    AppError, AppResult,
};
use serde::Deserialize;

use crate::{
    extract::{ApiJson, AuthUser},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/me/devices",
        get(list_devices).post(register).delete(unregister),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewDevice {
    pub platform: String,
    pub token: String,
    /// Web Push subscriptions only.
    #[serde(default)]
    pub keys: Option<SubscriptionKeys>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    pub p256dh: String,
    pub auth: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceRef {
    platform: String,
    token: String,
}

/// Checks a registration: a known platform, a token of 1 to 4096
/// characters; for `webpush` and `webhook` the token is a URL that
/// [`push::check_target`] accepts; `webpush` needs its subscription
/// keys (65-byte P-256 point, 16-byte secret, base64url), others none.
pub fn valid_device(d: &NewDevice, allow_http: bool) -> AppResult<()> {
    let bad = |m: &str| Err(AppError::validation(m.to_string()));
    if !matches!(d.platform.as_str(), "fcm" | "apns" | "webpush" | "webhook") {
        return bad("platform must be fcm, apns, webpush or webhook");
    }
    if d.token.trim().is_empty() || d.token.len() > 4096 || d.token.trim() != d.token {
        return bad("token must be 1 to 4096 characters without surrounding spaces");
    }
    if matches!(d.platform.as_str(), "webpush" | "webhook") {
        if let Err(why) = push::check_target(&d.token, allow_http) {
            return Err(AppError::validation(format!(
                "a webpush endpoint or webhook {why}"
            )));
        }
    }
    match (&d.platform[..], &d.keys) {
        ("webpush", Some(k)) => {
            let p = B64
                .decode(k.p256dh.trim_end_matches('='))
                .unwrap_or_default();
            let a = B64.decode(k.auth.trim_end_matches('=')).unwrap_or_default();
            if p.len() != 65 || p[0] != 4 || a.len() != 16 {
                return bad(
                    "keys.p256dh is a 65-byte P-256 point and keys.auth 16 bytes, base64url",
                );
            }
            Ok(())
        }
        ("webpush", None) => bad("a webpush subscription needs keys {p256dh, auth}"),
        (_, Some(_)) => bad("keys are for webpush subscriptions only"),
        _ => Ok(()),
    }
}

async fn list_devices(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> AppResult<Json<Vec<Device>>> {
    Ok(Json(push::list(&state.pool, me.user_id).await?))
}

async fn register(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<NewDevice>,
) -> AppResult<(StatusCode, Json<Device>)> {
    valid_device(&req, state.config.push.webhook_allow_http)?;
    let keys = req
        .keys
        .as_ref()
        .map(|k| (k.p256dh.as_str(), k.auth.as_str()));
    let (device, created) =
        push::register(&state.pool, me.user_id, &req.platform, &req.token, keys).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(device)))
}

async fn unregister(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<DeviceRef>,
) -> AppResult<StatusCode> {
    if push::unregister(&state.pool, me.user_id, &req.platform, &req.token).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::not_found("no such device"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(platform: &str, token: &str, keys: Option<(&str, &str)>) -> NewDevice {
        NewDevice {
            platform: platform.into(),
            token: token.into(),
            keys: keys.map(|(p, a)| SubscriptionKeys {
                p256dh: p.into(),
                auth: a.into(),
            }),
        }
    }

    #[test]
    fn device_rules() {
        let point = B64.encode([4u8; 65]);
        let secret = B64.encode([7u8; 16]);
        assert!(valid_device(&d("fcm", "tok", None), false).is_ok());
        assert!(valid_device(&d("apns", "abc123", None), false).is_ok());
        assert!(valid_device(&d("sms", "x", None), false).is_err());
        assert!(valid_device(&d("fcm", "", None), false).is_err());
        assert!(valid_device(&d("fcm", "t", Some((&point, &secret))), false).is_err());
        assert!(valid_device(&d("webhook", "https://hooks.example/x", None), false).is_ok());
        assert!(valid_device(&d("webhook", "http://127.0.0.1:9/x", None), false).is_err());
        assert!(valid_device(&d("webhook", "http://127.0.0.1:9/x", None), true).is_ok());
        assert!(valid_device(&d("webhook", "https:// bad", None), false).is_err());
        assert!(valid_device(&d("webpush", "https://push.example/s", None), false).is_err());
        assert!(valid_device(
            &d("webpush", "https://push.example/s", Some((&point, &secret))),
            false
        )
        .is_ok());
        assert!(valid_device(
            &d("webpush", "https://push.example/s", Some(("AAAA", &secret))),
            false
        )
        .is_err());
    }
}
