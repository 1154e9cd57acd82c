//! Request extractors that turn every malformed input into an [`AppError`],
//! so clients get the documented JSON error body instead of axum's plain
//! text rejections.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{
        rejection::JsonRejection, ConnectInfo, FromRequest, FromRequestParts, Path, Request,
    },
    http::{request::Parts, HeaderMap, StatusCode},
};
use fechatter_shared::{config::Cidr, token::Identity, AppError};
use serde::de::DeserializeOwned;

use crate::state::AppState;

/// JSON body extractor: syntax errors are 400 `invalid_json`, well-formed
/// JSON of the wrong shape (or with NUL characters in strings) is 422
/// `validation_failed`, oversized bodies are 413 `payload_too_large`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(json_rejection(rejection)),
        };
        // PostgreSQL text cannot hold NUL: refuse it here, for every route,
        // instead of failing the INSERT with a 500.
        if has_nul(&value) {
            return Err(AppError::validation(
                "strings must not contain NUL characters",
            ));
        }
        serde_json::from_value(value)
            .map(Self)
            .map_err(|e| AppError::validation(format!("Failed to deserialize the JSON body: {e}")))
    }
}

fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::JsonDataError(e) => AppError::validation(e.body_text()),
        JsonRejection::JsonSyntaxError(e) => AppError::InvalidJson(e.body_text()),
        JsonRejection::MissingJsonContentType(_) => {
            AppError::bad_request("expected request with `Content-Type: application/json`")
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge("request body is too large".into())
        }
        other => AppError::bad_request(other.body_text()),
    }
}

/// Path parameter extractor with JSON errors (`/api/chat/abc` is a 400).
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|e| {
                AppError::bad_request(format!("invalid path parameter: {}", e.body_text()))
            })
    }
}

/// The authenticated caller, from `Authorization: Bearer <access token>`:
/// a valid token of a session that was not revoked.
pub struct AuthUser(pub Identity);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| AppError::unauthorized("missing Authorization header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| AppError::unauthorized("expected `Authorization: Bearer <token>`"))?;
        let me = state.tokens.verify(token.trim())?;
        fechatter_shared::revocation::ensure_live(&state.redis, &state.keys, &me).await?;
        Ok(AuthUser(me))
    }
}

/// The client's address: the TCP peer, or the last `X-Forwarded-For` hop
/// when the peer is a trusted proxy (`TRUSTED_PROXIES`, i.e. HAProxy, which
/// appends the address it saw). Anyone else's `X-Forwarded-For` is ignored,
/// so a client cannot pick its own rate-limit bucket.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// See [`ClientIp`].
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    if !trusted.iter().any(|c| c.contains(peer)) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|hop| hop.trim().parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_are_found_anywhere() {
        let v = serde_json::json!({ "a": [1, { "b": "x\0y" }] });
        assert!(has_nul(&v));
        assert!(!has_nul(&serde_json::json!({ "a": ["fine"] })));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted: Vec<Cidr> = vec!["127.0.0.1/32".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(proxy, &h, &trusted), proxy);
    }
}
