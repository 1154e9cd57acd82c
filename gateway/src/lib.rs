//! The Fechatter WebSocket gateway: REST API, WebSocket endpoint, health and
//! metrics, in one stateless process. Any number of gateways run behind
//! HAProxy; everything they share lives in PostgreSQL and Redis.
//!
//! [`run`] is the whole program minus configuration and signal handling, so
//! tests start real gateways in-process on port 0.

pub mod admission;
pub mod chat_policy;
pub mod commands;
pub mod extract;
pub mod fanout;
pub mod hub;
pub mod membership;
pub mod outbound;
pub mod read_state;
pub mod routes;
pub mod session;
pub mod state;
pub mod subscriptions;
pub mod sync;

use std::time::Duration;

use anyhow::{Context, Result};
use axum::serve::ListenerExt;
use fechatter_shared::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use state::AppState;

/// Connects to PostgreSQL and Redis, then serves until `shutdown` fires.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
    let pool = fechatter_shared::store::connect(&config).await?;
    let redis = fechatter_shared::redis::connect(&config.redis_url, Duration::from_secs(5)).await?;
    fechatter_shared::password::configure(config.argon2_memory_kib, config.argon2_iterations)?;
    if config.uses_dev_secret() {
        tracing::warn!("JWT_SECRET is the development default; set it in production");
    }
    serve(
        AppState::connect(config, pool, redis).await?,
        listener,
        shutdown,
    )
    .await
}

/// Serves HTTP and WebSocket traffic on `listener` with ready-made state.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    let addr = listener.local_addr().context("reading listener address")?;
    tracing::info!(%addr, instance = %state.config.instance_id, "gateway listening");
    let app = routes::router(state.clone());
    // On shutdown: stop accepting, tell every WebSocket session to close
    // (1001, "reconnect"), wait for them to drain, then stop background tasks.
    let closing = state.closing.clone();
    // Small frames (acks, typing) must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            closing.cancel();
        })
        .await
        .context("serving HTTP");
    state.closing.cancel();
    state.sessions.close();
    let open = state.hub.connection_count();
    if tokio::time::timeout(state.config.drain_timeout, state.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!(open, "connections still open after the drain timeout");
    }
    state.background.cancel();
    tracing::info!(drained = open, "gateway stopped");
    served
}
