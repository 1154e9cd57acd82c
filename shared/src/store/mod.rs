//! PostgreSQL access, one module per aggregate.
//!
//! Functions take an executor or a pool and return [`crate::AppError`], with
//! constraint violations already translated into domain errors (a duplicate
//! e-mail is a `Conflict`, not a database error), so callers never inspect
//! SQLSTATE codes. Every query that touches tenant data is scoped by the
//! caller's workspace id.

pub mod badge;
pub mod chat;
pub mod email;
pub mod event;
pub mod invite;
pub mod message;
pub mod notification;
pub mod presence;
pub mod push;
pub mod refresh;
pub mod search;
pub mod search_index;
pub mod signup;
pub mod user;
pub mod workspace_domain;

use std::time::Duration;

use anyhow::Context;
use sqlx::{postgres::PgPoolOptions, PgPool};

use crate::{AppError, Config};

/// The PostgreSQL pool every process uses: `DB_MAX_CONNECTIONS`
/// connections, failing an acquire after 5 s instead of queueing forever.
pub async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL at {}",
                crate::config::redact_url(&config.database_url)
            )
        })
}

/// A trivial query: whether PostgreSQL answers at all (health checks).
pub async fn ping(pool: &PgPool) -> Result<(), AppError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// Turns a unique-constraint violation into `Conflict(msg)`, anything else
/// into a database error.
pub(crate) fn conflict_on_unique(e: sqlx::Error, msg: &str) -> AppError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => AppError::conflict(msg),
        _ => AppError::Database(e),
    }
}
