//! The e-mail outbox: mail is written in the same transaction as the
//! state it announces (a pending sign-up and its link commit together or
//! not at all) and delivered later by the worker's mailer.
//!
//! Delivery is at least once: a row is claimed by pushing its
//! `next_attempt_at` a lease ahead, so a mailer that dies mid-send leaves
//! it to be claimed again after the lease. Once sent, the body (which may
//! hold a sign-up link) is cleared; the row stays as an audit trail.

use std::time::Duration;

use sqlx::PgPool;

use crate::AppResult;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// A claimed outbox row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Outgoing {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// Attempts including this one.
    pub attempts: i32,
}

/// Queues `email` (any executor: usually the caller's transaction).
pub async fn enqueue<'e, E: sqlx::PgExecutor<'e>>(executor: E, email: &Email) -> AppResult<()> {
    sqlx::query("INSERT INTO email_outbox (recipient, subject, body) VALUES ($1, $2, $3)")
        .bind(&email.recipient)
        .bind(&email.subject)
        .bind(&email.body)
        .execute(executor)
        .await?;
    Ok(())
}

/// Claims up to `limit` due messages for `lease` (other mailers skip them
/// until then) and counts the attempt.
pub async fn claim_due(pool: &PgPool, limit: i64, lease: Duration) -> AppResult<Vec<Outgoing>> {
    Ok(sqlx::query_as(
        "UPDATE email_outbox o
         SET next_attempt_at = now() + make_interval(secs => $2), attempts = o.attempts + 1
         FROM (SELECT id FROM email_outbox
               WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
         WHERE o.id = due.id
         RETURNING o.id, o.recipient, o.subject, o.body, o.attempts",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// Marks a message sent and clears its body.
pub async fn mark_sent(pool: &PgPool, id: i64) -> AppResult<()> {
    sqlx::query(
        "UPDATE email_outbox SET sent_at = now(), body = '', last_error = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// A transient failure: try again after `delay`.
pub async fn retry_later(pool: &PgPool, id: i64, delay: Duration, error: &str) -> AppResult<()> {
    sqlx::query(
        "UPDATE email_outbox SET next_attempt_at = now() + make_interval(secs => $2),
                                 last_error = $3
         WHERE id = $1",
    )
    .bind(id)
    .bind(delay.as_secs_f64())
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// A permanent failure (or retries exhausted): never tried again; the body
/// is cleared like a sent one.
pub async fn mark_failed(pool: &PgPool, id: i64, error: &str) -> AppResult<()> {
    sqlx::query(
        "UPDATE email_outbox SET failed_at = now(), body = '', last_error = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Messages not yet sent nor failed (the `mail_outbox_pending` gauge).
pub async fn pending(pool: &PgPool) -> AppResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM email_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}
