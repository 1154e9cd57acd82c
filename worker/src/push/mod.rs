//! The push worker (seed 002 §3.5): delivers the jobs the notification
//! evaluator queues for alerted users without an active connection to
//! every device they registered, through one [`Provider`] per platform.
//! It runs inside `worker run` and alone as `worker push` (to scale push
//! delivery apart from message persistence); every instance joins one
//! consumer group on the push queue.
//!
//! Failure handling, in order of likelihood:
//! * The platform answers 5xx, 408 or 429, or cannot be reached: the
//!   attempt is repeated after an exponential backoff with jitter, up to
//!   [`MAX_ATTEMPTS`]; then the delivery is dead-lettered.
//! * The platform says the device is gone (404/410): the device is
//!   deleted.
//! * Any other answer (bad request, bad credentials, platform not
//!   configured): dead-lettered at once.
//! * A job that cannot be read: dead-lettered.
//! * This worker dies mid-job: the job stays pending in the group and is
//!   claimed by another push worker after [`RECLAIM_IDLE`]. Every
//!   (message, device) delivery is claimed in PostgreSQL before its first
//!   attempt, so a reclaimed or twice-queued job never sends the same push
//!   to a device twice (at most once; a crash between the claim and the
//!   send loses that one push).
//! * PostgreSQL or Redis unavailable: the job is not acknowledged and is
//!   retried after a pause.
//!
//! Per-user rate limit: at most [`PER_USER`] pushes per user per minute
//! (a token bucket); beyond it the delivery is dropped and counted
//! (`rate_limited`), since a burst of pushes from one conversation helps
//! nobody and the collapse key replaces them on the device anyway.

pub mod apns;
pub mod fcm;
pub mod provider;
pub mod webhook;
pub mod webpush;

use std::{collections::HashMap, sync::Arc, time::Duration};

use fechatter_shared::{
    redis::Keys,
    scripts::{self, Decision, Limit},
    store::push,
    AppError, AppResult,
};
use fred::prelude::*;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::entries::{parse_autoclaim, parse_xread, RawEntry};
use fred::types::streams::{XCapKind, XCapTrim};
pub use provider::{Delivery, Provider, PushJob};

/// The consumer group of push workers.
pub const GROUP: &str = "pushers";
/// The field of a queue entry holding the job (JSON).
pub const JOB_FIELD: &str = "j";
/// Entries kept on the push queue (approximately).
pub const QUEUE_MAX_LEN: u64 = 100_000;
/// Attempts per delivery before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 5;
/// A job read but not acknowledged for this long is taken over.
pub const RECLAIM_IDLE: Duration = Duration::from_secs(60);
/// Pushes per user per minute.
pub const PER_USER: f64 = 30.0;

/// Queues `job` (the evaluator's side).
pub async fn enqueue(redis: &Client, keys: &Keys, job: &PushJob) -> Result<(), Error> {
    let _: String = redis
        .xadd(
            keys.push_queue(),
            false,
            (
                XCapKind::MaxLen,
                XCapTrim::AlmostExact,
                QUEUE_MAX_LEN as i64,
            ),
            "*",
            vec![(JOB_FIELD, serde_json::to_string(job).unwrap_or_default())],
        )
        .await?;
    Ok(())
}

#[derive(Clone)]
pub struct PushMetrics {
    pub pushes: IntCounterVec,
    pub depth: IntGauge,
    pub lag: Histogram,
}

impl PushMetrics {
    pub fn new(base: &fechatter_shared::metrics::Metrics) -> Self {
        Self {
            pushes: base.register(
                IntCounterVec::new(
                    Opts::new(
                        "push_deliveries_total",
                        "push deliveries by provider and outcome",
                    ),
                    &["provider", "outcome"],
                )
                .expect("valid metric"),
            ),
            depth: base.register(
                IntGauge::new("push_queue_depth", "jobs on the push queue").expect("valid metric"),
            ),
            lag: base.register(
                Histogram::with_opts(
                    HistogramOpts::new(
                        "push_queue_lag_seconds",
                        "message sent to its push job being taken",
                    )
                    .buckets(vec![
                        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    ]),
                )
                .expect("valid metric"),
            ),
        }
    }
}

pub struct PushWorker {
    pub redis: Client,
    /// For the blocking XREADGROUP.
    pub blocking: Client,
    pub pool: PgPool,
    pub keys: Keys,
    pub consumer: String,
    pub providers: HashMap<&'static str, Arc<dyn Provider>>,
    pub metrics: PushMetrics,
}

impl PushWorker {
    /// Works the queue until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_reclaim = tokio::time::Instant::now();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let round = async {
                if last_reclaim.elapsed() > RECLAIM_IDLE / 2 {
                    last_reclaim = tokio::time::Instant::now();
                    let stuck = self.reclaim().await?;
                    self.process(stuck).await?;
                }
                let fresh = self.read().await?;
                self.process(fresh).await
            };
            let outcome = tokio::select! {
                r = round => r,
                _ = shutdown.cancelled() => return,
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "push round failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    async fn ensure_group(&self) -> Result<(), Error> {
        crate::entries::ensure_group(&self.redis, &self.keys.push_queue(), GROUP).await
    }

    async fn read(&self) -> AppResult<Vec<RawEntry>> {
        self.ensure_group().await?;
        let reply: Value = self
            .blocking
            .xreadgroup(
                GROUP,
                &self.consumer,
                Some(64),
                Some(1000),
                false,
                vec![self.keys.push_queue()],
                vec![">"],
            )
            .await?;
        Ok(parse_xread(reply).into_iter().map(|(_, e)| e).collect())
    }

    /// Jobs another push worker read and never acknowledged.
    async fn reclaim(&self) -> AppResult<Vec<RawEntry>> {
        self.ensure_group().await?;
        let reply: Value = self
            .redis
            .xautoclaim(
                self.keys.push_queue(),
                GROUP,
                &self.consumer,
                RECLAIM_IDLE.as_millis() as u64,
                "0-0",
                Some(256),
                false,
            )
            .await?;
        Ok(parse_autoclaim(reply).1)
    }

    /// Delivers each job (concurrently), then acknowledges them all.
    async fn process(&self, entries: Vec<RawEntry>) -> AppResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let results = futures::future::join_all(entries.iter().map(|e| self.job(e))).await;
        for r in results {
            r?;
        }
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let _: i64 = self
            .redis
            .xack(self.keys.push_queue(), GROUP, ids.clone())
            .await?;
        let _: i64 = self.redis.xdel(self.keys.push_queue(), ids).await?;
        if let Ok(depth) = self.redis.xlen::<i64, _>(self.keys.push_queue()).await {
            self.metrics.depth.set(depth);
        }
        Ok(())
    }

    /// One job: every device of its user.
    async fn job(&self, entry: &RawEntry) -> AppResult<()> {
        let raw = entry
            .fields
            .iter()
            .find(|(k, _)| k == JOB_FIELD)
            .map(|(_, v)| v.clone());
        let job: PushJob = match raw.as_deref().map(serde_json::from_str) {
            Some(Ok(job)) => job,
            _ => {
                self.dead_letter(raw.as_deref().unwrap_or(""), None, "unreadable push job")
                    .await?;
                return Ok(());
            }
        };
        if let Ok(sent) = chrono::DateTime::parse_from_rfc3339(&job.sent_at) {
            let lag = chrono::Utc::now()
                .signed_duration_since(sent)
                .num_milliseconds();
            self.metrics.lag.observe(lag.max(0) as f64 / 1000.0);
        }
        for device in push::list(&self.pool, job.user_id).await? {
            self.deliver(&job, &device).await?;
        }
        Ok(())
    }

    async fn deliver(&self, job: &PushJob, device: &push::Device) -> AppResult<()> {
        if !push::claim(&self.pool, job.message_id, device.id).await? {
            return Ok(()); // sent (or tried) already: never twice
        }
        let limit = Limit {
            capacity: PER_USER,
            per_second: PER_USER / 60.0,
        };
        let bucket = self.keys.rate_limit(job.user_id, "push");
        if let Decision::Denied { .. } =
            scripts::take_token(&self.redis, &bucket, limit, 1.0).await?
        {
            self.count(&device.platform, "rate_limited");
            push::settle(&self.pool, job.message_id, device.id, "rate_limited", 0).await?;
            return Ok(());
        }
        let Some(provider) = self.providers.get(device.platform.as_str()) else {
            return self
                .fail(job, device, 0, "no provider for this platform")
                .await;
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match provider.send(device, job).await {
                Delivery::Sent => {
                    self.count(&device.platform, "sent");
                    return push::settle(
                        &self.pool,
                        job.message_id,
                        device.id,
                        "sent",
                        attempt as i32,
                    )
                    .await;
                }
                Delivery::Unregistered => {
                    self.count(&device.platform, "unregistered");
                    push::settle(
                        &self.pool,
                        job.message_id,
                        device.id,
                        "unregistered",
                        attempt as i32,
                    )
                    .await?;
                    tracing::info!(device = device.id, platform = %device.platform, "device unregistered by its platform; removed");
                    return push::remove(&self.pool, device.id).await;
                }
                Delivery::Retry(why) if attempt < MAX_ATTEMPTS => {
                    self.count(&device.platform, "retry");
                    tracing::debug!(device = device.id, attempt, why, "push failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Delivery::Retry(why) | Delivery::Failed(why) => {
                    return self.fail(job, device, attempt, &why).await;
                }
            }
        }
    }

    async fn fail(
        &self,
        job: &PushJob,
        device: &push::Device,
        attempts: u32,
        why: &str,
    ) -> AppResult<()> {
        self.count(&device.platform, "failed");
        tracing::warn!(device = device.id, platform = %device.platform, attempts, why, "push dead-lettered");
        push::settle(
            &self.pool,
            job.message_id,
            device.id,
            "failed",
            attempts as i32,
        )
        .await?;
        let raw = serde_json::to_string(job).unwrap_or_default();
        self.dead_letter(&raw, Some(device.id), why).await
    }

    async fn dead_letter(&self, job: &str, device: Option<i64>, why: &str) -> AppResult<()> {
        let _: String = self
            .redis
            .xadd(
                self.keys.push_dead(),
                false,
                (
                    XCapKind::MaxLen,
                    XCapTrim::AlmostExact,
                    QUEUE_MAX_LEN as i64,
                ),
                "*",
                vec![
                    (JOB_FIELD, job.to_string()),
                    ("device", device.map(|d| d.to_string()).unwrap_or_default()),
                    ("error", why.to_string()),
                ],
            )
            .await
            .map_err(AppError::Redis)?;
        Ok(())
    }

    fn count(&self, platform: &str, outcome: &str) {
        self.metrics
            .pushes
            .with_label_values(&[platform, outcome])
            .inc();
    }
}

/// 200 ms doubling per attempt, plus up to 50 % jitter.
pub fn backoff(attempt: u32) -> Duration {
    let base = 0.2 * 2f64.powi(attempt.saturating_sub(1).min(10) as i32);
    Duration::from_secs_f64(base * (1.0 + rand::random::<f64>() * 0.5))
}

/// The providers `settings` configure (every platform has one; an
/// unconfigured one fails its deliveries with the reason). A configured
/// key file that cannot be read or parsed is an error: the worker does not
/// start half-configured.
pub fn providers(
    settings: &fechatter_shared::config::PushSettings,
) -> anyhow::Result<HashMap<&'static str, Arc<dyn Provider>>> {
    use anyhow::Context;
    let read = |path: &str, what: &str| -> anyhow::Result<Option<String>> {
        if path.is_empty() {
            return Ok(None);
        }
        std::fs::read_to_string(path)
            .map(Some)
            .with_context(|| format!("reading {what} {path}"))
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    // APNs speaks HTTP/2 only: over TLS it is negotiated (ALPN); a plain
    // http:// endpoint (a local test receiver) gets HTTP/2 directly.
    let mut h2 = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if settings.apns_endpoint.starts_with("http://") {
        h2 = h2.http2_prior_knowledge();
    }
    let fcm = fcm::Fcm::new(
        http.clone(),
        &settings.fcm_endpoint,
        read(&settings.fcm_credentials, "PUSH_FCM_CREDENTIALS")?.as_deref(),
    )
    .context("PUSH_FCM_CREDENTIALS is not a usable service account")?;
    let apns_key = match read(&settings.apns_key, "PUSH_APNS_KEY")? {
        None => None,
        Some(pem) => Some(apns::ApnsKey {
            key: jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())
                .context("PUSH_APNS_KEY is not an EC (P-256) PEM key")?,
            key_id: settings.apns_key_id.clone(),
            team_id: settings.apns_team_id.clone(),
            topic: settings.apns_topic.clone(),
        }),
    };
    let vapid = match read(&settings.vapid_private_key, "PUSH_VAPID_PRIVATE_KEY")? {
        None => None,
        Some(pem) => Some(
            webpush::Vapid::from_pem(&pem, &settings.vapid_subject)
                .context("PUSH_VAPID_PRIVATE_KEY is not a PKCS#8 P-256 PEM key")?,
        ),
    };
    let all: Vec<Arc<dyn Provider>> = vec![
        Arc::new(fcm),
        Arc::new(apns::Apns::new(
            h2.build()?,
            &settings.apns_endpoint,
            apns_key,
        )),
        Arc::new(webpush::WebPush {
            http: http.clone(),
            vapid,
            allow_local: settings.webhook_allow_http,
        }),
        Arc::new(webhook::Webhook {
            http,
            secret: settings.webhook_secret.clone(),
            allow_http: settings.webhook_allow_http,
        }),
    ];
    Ok(all.into_iter().map(|p| (p.platform(), p)).collect())
}
