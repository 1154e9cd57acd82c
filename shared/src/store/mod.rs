//! PostgreSQL access, one module per aggregate.
//!
//! Functions take an executor or a pool and return [`crate::AppError`], with
//! constraint violations already translated into domain errors (a duplicate
//! e-mail is a `Conflict`, not a database error), so callers never inspect
//! SQLSTATE codes. Every query that touches tenant data is scoped by the
//! caller's workspace id.

pub mod archive;
pub mod badge;
pub mod chat;
pub mod chat_change;
pub mod email;
pub mod event;
pub mod fence;
pub mod history;
pub mod invite;
pub mod message;
pub mod notification;
pub mod presence;
pub mod push;
pub mod refresh;
pub mod search;
pub mod search_index;
pub mod signup;
pub mod text_index;
pub mod user;
pub mod workspace_domain;

use std::time::Duration;

use anyhow::Context;
use sqlx::{postgres::PgPoolOptions, PgExecutor, PgPool};

use crate::{config::DbRole, AppError, AppResult, Config};

/// The partitions of the partitioned table `parent` (`messages`,
/// `chat_events`: migration 12), by name.
pub async fn partitions<'e>(db: impl PgExecutor<'e>, parent: &str) -> AppResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = $1::regclass ORDER BY 1",
    )
    .bind(parent)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(name,)| name).collect())
}

/// How long a pooled connection may sit idle and still be handed out
/// without a ping ([`connect`]).
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The PostgreSQL pool of a process of `role`: its pool size (see
/// [`Config::db_pool_size`] and the connection budget in
/// docs/architecture.md), failing an acquire after
/// `DB_ACQUIRE_TIMEOUT_MS` (the request answers 503 `unavailable`) instead
/// of queueing forever.
///
/// `DATABASE_URL` may point at PgBouncer in transaction pooling mode: every
/// query of the pool is a single statement or runs inside one transaction,
/// and sqlx's named prepared statements are tracked by PgBouncer
/// (`max_prepared_statements`, PgBouncer 1.21 or later). Nothing here may
/// rely on session state; session-level work connects with
/// [`connect_direct`].
///
/// A connection is pinged before it is handed out only when it sat idle
/// for [`PING_IF_IDLE_FOR`] or longer (sqlx pings on every acquire by
/// default: one more round trip in front of every statement, measured at
/// about a tenth of a send batch's commit). sqlx still pings each
/// connection when it returns to the pool, off the caller's path, and
/// drops it if that fails. A connection that breaks between that check
/// and its next use fails its next statement instead, which every caller
/// already treats as `unavailable` (a worker batch is retried), and sqlx
/// drops it.
pub async fn connect(config: &Config, role: DbRole) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(config.db_pool_size(role))
        .acquire_timeout(config.db_acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL at {}",
                crate::config::redact_url(&config.database_url)
            )
        })
}

/// A one-connection pool straight to PostgreSQL (`DATABASE_DIRECT_URL`,
/// else `DATABASE_URL`), for work that needs one server session from
/// start to end: the migrator's and the search index build's session
/// advisory locks and `CREATE INDEX CONCURRENTLY`. Through a transaction
/// pooler a lock would be taken on one server connection and released on
/// another (leaked), so these never use [`connect`]'s pool. It is the
/// `+ 1` per worker in the connection budget, and closes when dropped.
pub async fn connect_direct(config: &Config) -> anyhow::Result<PgPool> {
    let url = config.direct_database_url();
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(Duration::from_secs(30))
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL directly at {}",
                crate::config::redact_url(url)
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
