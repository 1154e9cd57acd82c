//! Shared state of one gateway process: connection pools, token keys,
//! metrics and the realtime machinery, cloned cheaply into every handler.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result};
use fechatter_shared::{metrics::Metrics, redis::Keys, token::TokenKeys, Config};
use fred::{clients::SubscriberClient, prelude::*};
use sqlx::PgPool;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{fanout, hub::Hub, subscriptions};

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
    pub metrics: Metrics,
    pub hub: Arc<Hub>,
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

impl AppState {
    /// Builds the state and starts the subscription and delivery tasks.
    pub async fn connect(config: Config, pool: PgPool, redis: Client) -> Result<Self> {
        fechatter_shared::scripts::load_all(&redis)
            .await
            .context("loading Lua scripts")?;
        fechatter_shared::password::configure(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_threads,
            config.argon2_queue,
        )?;
        let redis_config =
            fred::prelude::Config::from_url(&config.redis_url).context("parsing REDIS_URL")?;
        let subscriber = Builder::from_config(redis_config)
            .with_performance_config(|p| p.broadcast_channel_capacity = 1 << 16)
            .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build_subscriber_client()
            .context("building Redis subscriber")?;
        subscriber
            .init()
            .await
            .context("connecting the Redis subscriber")?;
        let _resubscriber = subscriber.manage_subscriptions();
        let keys = Keys::new(config.redis_prefix.clone());
        fechatter_shared::redis::check_deployment(&redis, &keys, config.ingest_shards).await?;
        let node = format!(
            "{}~{}",
            config.instance_id,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let hub = Arc::new(Hub::default());
        let background = CancellationToken::new();
        let subs = subscriptions::spawn_subscriptions(
            subscriber.clone(),
            hub.clone(),
            keys.clone(),
            keys.gateway_channel(&node),
            background.clone(),
        );
        let state = Self {
            inner: Arc::new(Inner {
                tokens: TokenKeys::new(&config.jwt_secret, config.access_token_ttl),
                metrics: Metrics::new("gateway"),
                node,
                config,
                pool,
                redis,
                subscriber,
                subs,
                keys,
                hub,
                sessions: TaskTracker::new(),
                draining: CancellationToken::new(),
                closing: CancellationToken::new(),
                background: background.clone(),
            }),
        };
        fanout::spawn_delivery(state.clone(), background);
        state.subs.refresh().await;
        Ok(state)
    }
}
