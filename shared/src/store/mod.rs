//! PostgreSQL access, one module per aggregate.
//!
//! Functions take an executor or a pool and return [`crate::AppError`], with
//! constraint violations already translated into domain errors (a duplicate
//! e-mail is a `Conflict`, not a database error), so callers never inspect
//! SQLSTATE codes. Every query that touches tenant data is scoped by the
//! caller's workspace id.

pub mod chat;
pub mod refresh;
pub mod user;

use crate::AppError;

/// Turns a unique-constraint violation into `Conflict(msg)`, anything else
/// into a database error.
pub(crate) fn conflict_on_unique(e: sqlx::Error, msg: &str) -> AppError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => AppError::conflict(msg),
        _ => AppError::Database(e),
    }
}
