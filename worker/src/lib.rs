//! The Fechatter background worker.
//!
//! Owns everything that must happen exactly once per event rather than once
//! per gateway: schema migrations, persistence of the ingest streams to
//! PostgreSQL, unread counters and notification evaluation. Several workers
//! may run; they share work through Redis consumer groups.

use std::time::Duration;

use anyhow::{Context, Result};
use fechatter_shared::{Config, MIGRATOR};
use sqlx::{postgres::PgPoolOptions, PgPool};
use tokio_util::sync::CancellationToken;

/// Connects to PostgreSQL with the configured pool size.
pub async fn connect_db(config: &Config) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL at {}",
                fechatter_shared::config::redact_url(&config.database_url)
            )
        })
}

/// Applies pending migrations; safe to run concurrently from several
/// processes (sqlx takes an advisory lock) and repeatedly (idempotent).
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await.context("running migrations")?;
    tracing::info!("database schema is up to date");
    Ok(())
}

/// Migrates, then works until `shutdown` fires.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    let pool = connect_db(&config).await?;
    migrate(&pool).await?;
    tracing::info!(instance = %config.instance_id, "worker started");
    shutdown.cancelled().await;
    tracing::info!("worker stopped");
    Ok(())
}
