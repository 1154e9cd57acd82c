//! Shared state of one gateway process: connection pools, token keys,
//! metrics and the realtime machinery, cloned cheaply into every handler.
//! It is assembled (and its background tasks started) in
//! [`crate::startup`], which sits above every module the state serves.

use std::sync::Arc;

use fechatter_shared::{redis::Keys, search::MessageIndex, token::TokenKeys, Config};
use fred::{clients::SubscriberClient, prelude::*};
use sqlx::PgPool;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    fanout_lag::FanoutLag, hub::Hub, metrics::GatewayMetrics, presence_watch::PresenceWatch,
    replies::Replies, subscriptions, summary::Summaries, user_positions::UserPositions,
};

#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub config: Config,
    /// This process's address for replies and evictions: the instance id
    /// plus a per-start nonce, so a restarted gateway with the same
    /// INSTANCE_ID never receives notices meant for its predecessor's
    /// connections (connection ids restart at 1).
    pub node: String,
    pub pool: PgPool,
    pub redis: Client,
    pub subscriber: SubscriberClient,
    pub subs: subscriptions::Subscriptions,
    pub keys: Keys,
    pub tokens: TokenKeys,
    pub metrics: GatewayMetrics,
    pub hub: Arc<Hub>,
    /// This gateway's fan-out lag and the pool's (write back-pressure).
    pub fanout_lag: Arc<FanoutLag>,
    /// Per-chat message rates and summary mode (used by the delivery task).
    pub summaries: std::sync::Mutex<Summaries>,
    /// Which local connections watch whose presence.
    pub presence: Arc<PresenceWatch>,
    /// The last user-stream event delivered, per local user.
    pub user_events: UserPositions,
    /// REST writes waiting for the worker's answer.
    pub replies: Replies,
    /// The message search backend (PostgreSQL unless configured otherwise).
    pub search: Arc<dyn MessageIndex>,
    /// `search_duration_seconds{scope, backend}`.
    pub search_latency: prometheus::HistogramVec,
    /// Every WebSocket session, so shutdown can wait for them to close.
    pub sessions: TaskTracker,
    /// Cancelled when shutdown begins: the liveness check fails so the
    /// load balancer stops sending new work, everything else still serves.
    pub draining: CancellationToken,
    /// Cancelled after the drain grace: sessions close with 1001.
    pub closing: CancellationToken,
    /// Cancelled after sessions drained: background tasks stop.
    pub background: CancellationToken,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}
