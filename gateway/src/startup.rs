//! Assembling a gateway's [`AppState`]: Lua scripts, password hashing,
//! the deployment check, the Redis subscriber, then the subscription,
//! delivery and metric-sampling tasks. Kept apart from `state.rs` so the state type depends on
//! nothing that depends on it (fan-out, revocation and the handlers all
//! take an `AppState`).

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result};
use fechatter_shared::{redis::Keys, token::TokenKeys, Config};
use fred::prelude::*;
use sqlx::PgPool;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    fanout,
    hub::Hub,
    metrics::GatewayMetrics,
    presence,
    presence_watch::PresenceWatch,
    state::{AppState, Inner},
    subscriptions,
};

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
        let watch = Arc::new(PresenceWatch::default());
        let background = CancellationToken::new();
        let subs = subscriptions::spawn_subscriptions(
            subscriber.clone(),
            hub.clone(),
            watch.clone(),
            keys.clone(),
            keys.gateway_channel(&node),
            background.clone(),
        );
        let search = crate::search::backend(&config, &pool)?;
        let metrics = GatewayMetrics::new();
        let state = Self {
            inner: Arc::new(Inner {
                tokens: TokenKeys::new(&config.jwt_secret, config.access_token_ttl),
                search_latency: crate::search::latency_histogram(&metrics),
                fanout_lag: Arc::new(crate::fanout_lag::FanoutLag::new(config.fanout_max_lag)),
                summaries: std::sync::Mutex::new(crate::summary::Summaries::new(
                    config.summary_mode_rate,
                )),
                metrics,
                node,
                config,
                pool,
                redis,
                subscriber,
                subs,
                keys,
                hub,
                presence: watch,
                user_events: Default::default(),
                replies: Default::default(),
                search,
                sessions: TaskTracker::new(),
                draining: CancellationToken::new(),
                closing: CancellationToken::new(),
                background: background.clone(),
            }),
        };
        fanout::spawn_delivery(state.clone(), background.clone());
        crate::fanout_lag::spawn(
            crate::fanout_lag::Exchange {
                lag: state.fanout_lag.clone(),
                redis: state.redis.clone(),
                key: state.keys.fanout_lag(),
                node: state.node.clone(),
                gauge: state.metrics.fanout_lag.clone(),
            },
            background.clone(),
        );
        spawn_queue_sampler(state.clone(), background.clone());
        fechatter_shared::health::spawn_probe(
            state.metrics.dependency_up.clone(),
            state.pool.clone(),
            state.redis.clone(),
            background.clone(),
        );
        presence::spawn(state.clone(), background);
        state.subs.refresh().await;
        Ok(state)
    }
}

/// How often the outbound queues are sampled for the queue-depth gauges.
const QUEUE_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// Keeps `ws_outbound_queued_frames`, `ws_outbound_queue_max_frames` and
/// `ws_outbound_queued_bytes` current. Sampled rather than counted on
/// every enqueue: the fan-out path stays free of shared counters, and one
/// pass over the connections (no clones, under the hub lock) every few
/// seconds is cheap even at 100k connections.
fn spawn_queue_sampler(state: AppState, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(QUEUE_SAMPLE_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => sample_queues(&state),
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// One sample of every outbound queue into the gauges.
pub fn sample_queues(state: &AppState) {
    let (mut frames, mut max, mut bytes) = (0usize, 0usize, 0usize);
    state.hub.for_each_conn(|c| {
        let (f, b) = c.queue_depth();
        frames += f;
        max = max.max(f);
        bytes += b;
    });
    state.metrics.queued_frames.set(frames as i64);
    state.metrics.queue_max_frames.set(max as i64);
    state.metrics.queued_bytes.set(bytes as i64);
}
