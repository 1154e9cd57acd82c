//! The last stage of `growth` (with `--archive`): does the hourly archival
//! job (`worker::archival`, issue 13 item 5) hurt the pool while it moves
//! a grown table's old messages?
//!
//! The probe's workspace (the probe chat, the sending chat and every
//! filler chat) gets an archive policy, and the job runs in this process
//! against the pool's database with its clock set so that the cutoff is
//! the moment the stage starts: every fixture message and every earlier
//! stage's send is old, every send of this stage is new. That is the shape
//! of a real run, whose cutoff is weeks back: an old prefix of each chat
//! moves while the chats' hot tails are written. Measured at the same
//! time, round after round until the job is done, through the running
//! pool, as in the other stages: send to ack, sync from PostgreSQL, REST
//! pages of the probe history (which then cross from the archive into the
//! hot table). Then once more after the job, and the move is checked
//! against the tables.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use sqlx::PgPool;

use crate::report::Report;

/// The policy set for the stage (any value works: the job's clock is set
/// from it).
const DAYS: i32 = 30;

/// What the archival stage found.
pub struct Archival {
    /// Messages moved, and how long the job took.
    pub moved: u64,
    pub secs: f64,
}

/// Sets the policy of `workspace` and runs the archival job with the
/// stage's start as its cutoff; meanwhile runs `measure` round after round
/// (at least once) until the job is done. Returns the job's outcome and
/// every round's result.
pub async fn run<T, F, Fut>(pool: &PgPool, workspace: i64, measure: F) -> Result<(Archival, Vec<T>)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    // 1. The policy, and the job's clock: now + DAYS, so the cutoff is now.
    fechatter_shared::store::archive::set_policy(pool, workspace, Some(DAYS)).await?;
    let clock = chrono::Utc::now() + chrono::Duration::days(DAYS.into());
    let before = exact_rows(pool, "messages_archive").await?;
    // 2. The job (bounded by the hour a real run gets), in its own task.
    let started = Instant::now();
    let job = tokio::spawn({
        let pool = pool.clone();
        async move {
            let counter = prometheus::IntCounter::new("archived", "messages archived")?;
            let stop = tokio_util::sync::CancellationToken::new();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3_600);
            let moved = worker::archival::archive_all(&pool, clock, &counter, &stop, deadline)
                .await
                .context("the archival job failed")?;
            anyhow::Ok((moved, started.elapsed().as_secs_f64()))
        }
    });
    // 3. Rounds of measurements while it runs.
    let mut rounds = vec![measure().await?];
    while !job.is_finished() {
        rounds.push(measure().await?);
    }
    let (moved, secs) = job.await.context("the archival task")??;
    // 4. The tables agree with what the job said.
    let after = exact_rows(pool, "messages_archive").await?;
    ensure!(
        after - before == moved,
        "the job reported {moved} moved, the archive grew by {}",
        after - before
    );
    fechatter_shared::store::archive::set_policy(pool, workspace, None).await?;
    Ok((Archival { moved, secs }, rounds))
}

impl Archival {
    pub fn record(&self, report: &mut Report) {
        report
            .extra
            .insert("archive_moved".into(), self.moved as f64);
        report.extra.insert("archive_secs".into(), self.secs);
        report.extra.insert(
            "archive_rows_per_sec".into(),
            self.moved as f64 / self.secs.max(0.001),
        );
    }
}

/// Rows in `table` now (exact: the growth fill, the report and the
/// archival check need it; here so that `growth` and this stage do not
/// import each other). `table` is one of this crate's literals.
pub(crate) async fn exact_rows(pool: &PgPool, table: &'static str) -> Result<u64> {
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await?;
    Ok(n as u64)
}
