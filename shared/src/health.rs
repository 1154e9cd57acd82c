//! Whether PostgreSQL and Redis answer, as seen from this process: the
//! checks behind the gateway's `/health` and the
//! `dependency_up{dependency}` gauge every process keeps current.
//!
//! Why a gauge next to `/health`: the alert "PostgreSQL/Redis unavailable"
//! must fire from what the processes themselves experience (a network
//! partition between the pool and Redis looks fine from Redis' own
//! exporter), and Prometheus only scrapes metrics. Each process probes
//! both services every [`PROBE_INTERVAL`] with [`CHECK_TIMEOUT`]; a probe
//! is one `SELECT 1` and one `PING`, negligible next to real traffic.

use std::time::Duration;

use fred::prelude::*;
use prometheus::IntGaugeVec;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How long one check may take before the service counts as down.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often [`spawn_probe`] checks.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("timed out")]
    TimedOut,
    /// The service answered with an error; the text is for logs only.
    #[error("{0}")]
    Failed(String),
}

/// `SELECT 1` within [`CHECK_TIMEOUT`].
pub async fn check_postgres(pool: &PgPool) -> Result<(), CheckError> {
    match tokio::time::timeout(CHECK_TIMEOUT, crate::store::ping(pool)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CheckError::Failed(e.to_string())),
        Err(_) => Err(CheckError::TimedOut),
    }
}

/// `PING` within [`CHECK_TIMEOUT`].
pub async fn check_redis(redis: &Client) -> Result<(), CheckError> {
    match tokio::time::timeout(CHECK_TIMEOUT, redis.ping::<String>(None)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(CheckError::Failed(e.to_string())),
        Err(_) => Err(CheckError::TimedOut),
    }
}

/// Sets `gauge{dependency="postgres"|"redis"}` to 1 or 0 every
/// [`PROBE_INTERVAL`] until `stop`; a change is logged once.
pub fn spawn_probe(gauge: IntGaugeVec, pool: PgPool, redis: Client, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let (pg, rd) = tokio::join!(check_postgres(&pool), check_redis(&redis));
            record(&gauge, "postgres", pg);
            record(&gauge, "redis", rd);
        }
    });
}

fn record(gauge: &IntGaugeVec, dependency: &str, outcome: Result<(), CheckError>) {
    let g = gauge.with_label_values(&[dependency]);
    let up = outcome.is_ok() as i64;
    if g.get() != up {
        match outcome {
            Ok(()) => tracing::info!(dependency, "dependency reachable"),
            Err(error) => tracing::warn!(dependency, %error, "dependency unreachable"),
        }
    }
    g.set(up);
}
