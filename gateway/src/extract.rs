//! Request extractors that turn every malformed input into an [`AppError`],
//! so clients get the documented JSON error body instead of axum's plain
//! text rejections.

use axum::{
    extract::{rejection::JsonRejection, FromRequest, FromRequestParts, Path, Request},
    http::{request::Parts, StatusCode},
};
use fechatter_shared::{token::Identity, AppError};
use serde::de::DeserializeOwned;

use crate::state::AppState;

/// JSON body extractor: syntax errors are 400 `invalid_json`, well-formed
/// JSON of the wrong shape is 422 `validation_failed`, oversized bodies are
/// 413 `payload_too_large`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
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

/// The authenticated caller, from `Authorization: Bearer <access token>`.
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
        state.tokens.verify(token.trim()).map(AuthUser)
    }
}
