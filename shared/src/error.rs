//! The one error policy of Fechatter realtime.
//!
//! * Library code returns [`AppError`] (a `thiserror` enum); binaries and
//!   start-up code use `anyhow` with `.context(...)` naming what was being
//!   attempted.
//! * Each variant maps to exactly one HTTP status and one stable, snake_case
//!   error `code`. This module is the only place that mapping lives: REST
//!   responses use [`IntoResponse`], WebSocket `error`/`ack` frames use
//!   [`AppError::code`] and [`AppError::public_message`], so a client sees
//!   the same code for the same failure on both transports.
//! * Errors are logged once, where they are turned into a response or frame:
//!   server faults (5xx) at `error` with their full cause chain, client
//!   mistakes (4xx) at `debug`. Code that propagates an error with `?` does
//!   not log it.
//! * Internal details (SQL, Redis messages) never reach the client: a 5xx
//!   carries a generic message; the log has the detail.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("token expired")]
    TokenExpired,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Validation(String),
    #[error("rate limited, retry after {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bounded internal resource is saturated (e.g. password hashing):
    /// 503 with a retry hint, shed at once rather than queued without bound.
    #[error("{what} is saturated, retry after {retry_after_ms} ms")]
    Overloaded {
        what: &'static str,
        retry_after_ms: u64,
    },
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("redis error")]
    Redis(#[from] fred::error::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        Self::Unauthorized(msg.into())
    }
    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::Forbidden(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }
    pub fn conflict(msg: impl Into<String>) -> Self {
        Self::Conflict(msg.into())
    }
    pub fn validation(msg: impl Into<String>) -> Self {
        Self::Validation(msg.into())
    }

    /// The error an answer from another process carries (a worker's
    /// `error` frame relayed as a REST response): the inverse of
    /// [`AppError::code`] for client errors; server faults keep their
    /// class, never their detail.
    pub fn relayed(code: &str, message: String, retry_after_ms: Option<u64>) -> Self {
        match code {
            "bad_request" => Self::BadRequest(message),
            "invalid_json" => Self::InvalidJson(message),
            "unauthorized" => Self::Unauthorized(message),
            "forbidden" => Self::Forbidden(message),
            "not_found" => Self::NotFound(message),
            "conflict" => Self::Conflict(message),
            "payload_too_large" => Self::PayloadTooLarge(message),
            "validation_failed" => Self::Validation(message),
            "rate_limited" => Self::RateLimited {
                retry_after_ms: retry_after_ms.unwrap_or(1000),
            },
            "unavailable" => Self::Unavailable(message),
            other => Self::Internal(anyhow::anyhow!("relayed error {other}: {message}")),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::InvalidCredentials | Self::TokenExpired => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Redis(_) | Self::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Database(e) if is_unavailable(e) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code, identical on REST and WebSocket.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::InvalidJson(_) => "invalid_json",
            Self::Unauthorized(_) => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TokenExpired => "token_expired",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Validation(_) => "validation_failed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) | Self::Redis(_) | Self::Overloaded { .. } => "unavailable",
            Self::Database(e) if is_unavailable(e) => "unavailable",
            Self::Database(_) | Self::Internal(_) => "internal",
        }
    }

    /// The message shown to clients: the display text for client errors, a
    /// generic text for server faults.
    pub fn public_message(&self) -> String {
        if let Self::Overloaded { .. } = self {
            return "the server is busy, retry later".into();
        }
        if self.status().is_server_error() {
            match self.status() {
                StatusCode::SERVICE_UNAVAILABLE => {
                    "a backing service is unavailable, retry later".into()
                }
                _ => "internal server error".into(),
            }
        } else {
            self.to_string()
        }
    }

    /// Milliseconds a client should wait before retrying, when known.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_ms } | Self::Overloaded { retry_after_ms, .. } => {
                Some(*retry_after_ms)
            }
            _ => None,
        }
    }

    /// True for failures that go away by themselves (a backing service is
    /// down or restarting, a serialization conflict): retry, never give up
    /// on the work.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Redis(_) | Self::Unavailable(_) | Self::Overloaded { .. } => true,
            Self::Database(e) => is_unavailable(e) || is_transient_sqlstate(e),
            _ => false,
        }
    }

    /// Logs the error once, at a level matching whose fault it is.
    pub fn log(&self) {
        if self.status().is_server_error() {
            tracing::error!(code = self.code(), error = ?anyhow_chain(self), "request failed");
        } else {
            tracing::debug!(code = self.code(), error = %self, "request rejected");
        }
    }

    /// The JSON body `{"error": {"code", "message", "retryAfterMs"?}}`.
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({ "code": self.code(), "message": self.public_message() });
        if let Some(ms) = self.retry_after_ms() {
            error["retryAfterMs"] = json!(ms);
        }
        json!({ "error": error })
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    )
}

fn is_transient_sqlstate(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return matches!(e, sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed);
    };
    let code = db.code().map(|c| c.to_string()).unwrap_or_default();
    // 08: connection exception; 53: insufficient resources; 57P0x: server
    // shutting down; 40001/40P01: serialization failure / deadlock.
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P0")
        || code == "40001"
        || code == "40P01"
}

fn anyhow_chain(e: &AppError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Some(ms) = self.retry_after_ms() {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = secs.to_string().parse() {
                response.headers_mut().insert("retry-after", v);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_faults_hide_details() {
        let e = AppError::Internal(anyhow::anyhow!("password=hunter2 leaked in SQL"));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.body().to_string().contains("hunter2"));
    }

    #[test]
    fn rate_limit_carries_retry_hint() {
        let e = AppError::RateLimited {
            retry_after_ms: 1500,
        };
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.body()["error"]["retryAfterMs"], 1500);
        let response = e.into_response();
        assert_eq!(response.headers()["retry-after"], "2");
    }

    #[test]
    fn overload_is_503_with_retry_after() {
        let e = AppError::Overloaded {
            what: "password hashing",
            retry_after_ms: 1000,
        };
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.body()["error"]["code"], "unavailable");
        assert_eq!(e.into_response().headers()["retry-after"], "1");
    }

    #[test]
    fn pool_timeout_is_unavailable_not_internal() {
        let e = AppError::Database(sqlx::Error::PoolTimedOut);
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code(), "unavailable");
    }
}
