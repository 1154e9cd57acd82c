//! The Fechatter WebSocket gateway: REST API, WebSocket endpoint, health and
//! metrics, in one stateless process. Any number of gateways run behind
//! HAProxy; everything they share lives in PostgreSQL and Redis.
//!
//! [`run`] is the whole program minus configuration and signal handling, so
//! tests start real gateways in-process on port 0.

pub mod admission;
pub mod attention;
pub mod chat_delivery;
pub mod chat_policy;
pub mod commands;
pub mod conn;
pub mod extract;
pub mod fanout;
pub mod fanout_lag;
pub mod hub;
pub mod lifecycle;
pub mod listener;
pub mod membership;
pub mod metrics;
pub mod outbound;
pub mod presence;
pub mod presence_watch;
pub mod queue;
pub mod read_state;
pub mod replies;
pub mod revocation;
pub mod routes;
pub mod search;
pub mod session;
pub mod startup;
pub mod state;
pub mod subscriptions;
pub mod summary;
pub mod sync;
pub mod upgrade;
pub mod user_events;
pub mod user_positions;
pub mod web;
pub mod writes;

use std::time::Duration;

use anyhow::{Context, Result};
use fechatter_shared::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use state::AppState;

/// Connects to PostgreSQL and Redis, then serves until `shutdown` fires.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
    config.check_jwt_secret()?;
    let pool = fechatter_shared::store::connect(&config, fechatter_shared::config::DbRole::Gateway)
        .await?;
    let redis = fechatter_shared::redis::connect(&config.redis_url, Duration::from_secs(5)).await?;
    if config.uses_dev_secret() {
        tracing::warn!("JWT_SECRET is the development default (DEV_MODE=1); never in production");
    }
    serve(
        AppState::connect(config, pool, redis).await?,
        listener,
        shutdown,
    )
    .await
}

/// Serves HTTP and WebSocket traffic on `listener` with ready-made state.
///
/// Shutdown, in order: (1) the liveness check fails (`draining`) while
/// everything else keeps serving, for `DRAIN_GRACE_MS`, so HAProxy takes
/// the gateway out of rotation before anything is refused; (2) the
/// listener closes and every WebSocket session closes with 1001; (3) once
/// sessions drained (or `DRAIN_TIMEOUT_MS` passed) background tasks stop.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    let addr = listener.local_addr().context("reading listener address")?;
    tracing::info!(%addr, instance = %state.config.instance_id, "gateway listening");
    let app = routes::router(state.clone());
    let stop_accepting = CancellationToken::new();
    let drain = {
        let (state, stop) = (state.clone(), stop_accepting.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            state.draining.cancel();
            tracing::info!(grace = ?state.config.drain_grace, "draining: liveness check fails");
            tokio::time::sleep(state.config.drain_grace).await;
            state.closing.cancel();
            stop.cancel();
        })
    };
    listener::serve(listener, app, stop_accepting).await;
    drain.abort();
    state.closing.cancel();
    state.sessions.close();
    let open = state.hub.connection_count();
    if tokio::time::timeout(state.config.drain_timeout, state.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!(open, "connections still open after the drain timeout");
    } else {
        presence::retire(&state).await;
    }
    state.background.cancel();
    tracing::info!(drained = open, "gateway stopped");
    Ok(())
}
