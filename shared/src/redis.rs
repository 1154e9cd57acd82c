//! Redis connection set-up and the key layout.
//!
//! Every key is built here, from one prefix, so the layout documented in
//! `docs/architecture.md` has a single source, tests can isolate themselves
//! with a unique prefix, and keys used together by one Lua script share one
//! `{hash tag}` (a requirement for Redis Cluster).
//!
//! `REDIS_URL` may name a single node (`redis://host:port`) or a Redis
//! Cluster (`redis-cluster://host:port?node=host2:port2&node=...`, fred's
//! cluster form). The same code serves both, under three rules:
//! * every multi-key command and every Lua script touches one hash slot:
//!   its keys share a hash tag (`{c17}`, `{u42}`, `{3}`);
//! * Pub/Sub is sharded (`SPUBLISH`/`SSUBSCRIBE`, Redis 7): a wake is
//!   delivered by the one node that owns its channel's slot instead of
//!   being broadcast to every node of the cluster. A wake channel shares
//!   the hash tag of what it announces (`wake:{c17}` with `topic:{c17}`),
//!   because a Lua script may only publish to a channel of its own slot;
//! * nothing reads several streams in one command across slots: the
//!   worker reads each ingest shard on its own in a cluster
//!   (`worker/src/claims.rs`).

use std::time::Duration;

use anyhow::{Context, Result};
use fred::prelude::*;

/// Connects a client that reconnects forever with capped backoff and fails
/// commands after `command_timeout` instead of queueing them without bound
/// while Redis is down.
pub async fn connect(url: &str, command_timeout: Duration) -> Result<Client> {
    let config = Config::from_url(url).context("parsing REDIS_URL")?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = Duration::from_secs(2);
            c.max_command_attempts = 2;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = command_timeout;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
        .build()
        .context("building Redis client")?;
    client
        .init()
        .await
        .with_context(|| format!("connecting to Redis at {}", crate::config::redact_url(url)))?;
    Ok(client)
}

/// Whether `url` names a Redis Cluster (fred's `redis-cluster://` form).
pub fn is_cluster(url: &str) -> bool {
    Config::from_url(url).is_ok_and(|c| c.server.is_clustered())
}

/// Records this deployment's `INGEST_SHARDS` in Redis on first start and
/// refuses to start a process that disagrees: a gateway appending to shard
/// 7 of 8 while workers read 4 shards would strand writes silently.
/// Takes the lock `key` for `holder` for `ttl` if nobody holds it (SET NX
/// PX): a job that several workers could run is run by one; a holder that
/// dies leaves it until it lapses.
pub async fn try_lock(
    client: &Client,
    key: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, fred::error::Error> {
    let set: Option<String> = client
        .set(
            key,
            holder,
            Some(Expiration::PX(ttl.as_millis() as i64)),
            Some(SetOptions::NX),
            false,
        )
        .await?;
    Ok(set.is_some())
}

pub async fn check_deployment(client: &Client, keys: &Keys, ingest_shards: u32) -> Result<()> {
    let key = keys.deployment();
    let _: i64 = client
        .hsetnx(&key, "ingest_shards", ingest_shards)
        .await
        .context("recording INGEST_SHARDS in Redis")?;
    let agreed: u32 = client
        .hget(&key, "ingest_shards")
        .await
        .context("reading INGEST_SHARDS from Redis")?;
    anyhow::ensure!(
        agreed == ingest_shards,
        "INGEST_SHARDS={ingest_shards}, but this deployment (REDIS_PREFIX={}) runs with \
         INGEST_SHARDS={agreed}; every gateway and worker must use the same value (to change \
         it, stop the pool, let the ingest streams drain, and delete the Redis key {key})",
        keys.prefix()
    );
    Ok(())
}

/// Builds every Redis key of one deployment.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Token buckets of one user and action; the user hash tag keeps all of
    /// a user's buckets on one cluster slot.
    pub fn rate_limit(&self, user_id: i64, action: &str) -> String {
        format!("{}:rl:{{u{user_id}}}:{action}", self.prefix)
    }

    /// Token bucket of an unauthenticated action (sign-in, sign-up,
    /// refresh) for one subject: `ip:<address>` or `acct:<digest>`.
    pub fn auth_rate_limit(&self, subject: &str) -> String {
        format!("{}:rl:{{{subject}}}:auth", self.prefix)
    }

    /// Marks one revoked session (refresh-token family) of a user; lives
    /// as long as an access token of it could.
    pub fn revoked_session(&self, user_id: i64, session: &uuid::Uuid) -> String {
        format!(
            "{}:revoked:{{u{user_id}}}:s:{}",
            self.prefix,
            session.simple()
        )
    }

    /// Unix time before which every token of the user is revoked
    /// (deactivation); shares the user's hash tag with
    /// [`Keys::revoked_session`] so both are read with one MGET.
    pub fn revoked_user(&self, user_id: i64) -> String {
        format!("{}:revoked:{{u{user_id}}}", self.prefix)
    }

    /// Who runs this hour's event retention (SET NX, one hour lifetime).
    pub fn retention_lock(&self) -> String {
        format!("{}:retention:lock", self.prefix)
    }

    /// Hash of each gateway's fan-out lag (field: node id, value
    /// `"<lag ms> <written at ms>"`), for pool-wide back-pressure.
    pub fn fanout_lag(&self) -> String {
        format!("{}:fanout_lag", self.prefix)
    }

    /// Settings every process of a deployment must agree on (field
    /// `ingest_shards`), written by the first process to start.
    pub fn deployment(&self) -> String {
        format!("{}:deployment", self.prefix)
    }

    /// Ingest stream shard that carries client writes for `chat_id`.
    pub fn ingest(&self, chat_id: i64, shards: u32) -> String {
        self.ingest_shard(chat_id.rem_euclid(shards as i64) as u32)
    }

    pub fn ingest_shard(&self, shard: u32) -> String {
        format!("{}:ingest:{{{shard}}}", self.prefix)
    }

    /// Marks a write (chat, user, client frame id: the idempotency key of
    /// the database) as waiting in ingest shard `stream`, so a client
    /// retry is not appended twice; shares the shard's hash tag.
    pub fn ingest_pending(&self, stream: &str, chat_id: i64, user_id: i64, ref_id: &str) -> String {
        format!("{stream}:pending:{chat_id}:{user_id}:{ref_id}")
    }

    /// Where a worker parks entries it could not process after many attempts.
    pub fn dead_letter(&self) -> String {
        format!("{}:ingest:dead", self.prefix)
    }

    /// Sorted set of live workers (score: last heartbeat, ms), used to
    /// share ingest shards fairly.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// Lease of one ingest shard (one worker processes a shard at a time).
    pub fn ingest_lease(&self, shard: u32) -> String {
        format!("{}:lease:{{ingest:{shard}}}", self.prefix)
    }

    /// The chat topic stream: committed events, entry id "<seq>-<sub>".
    pub fn chat_topic(&self, chat_id: i64) -> String {
        format!("{}:topic:{{c{chat_id}}}", self.prefix)
    }

    /// Bookkeeping of the chat topic stream (same hash tag): the last
    /// eventSeq appended and the highest fencing epoch that appended
    /// (lua/chat_publish.lua).
    pub fn chat_topic_meta(&self, chat_id: i64) -> String {
        format!("{}:topic:{{c{chat_id}}}:meta", self.prefix)
    }

    /// Pub/Sub channel that wakes gateways with members of the chat
    /// (same hash tag as the chat's topic, which its script publishes to).
    pub fn chat_channel(&self, chat_id: i64) -> String {
        format!("{}:wake:{{c{chat_id}}}", self.prefix)
    }

    /// The user's event stream (badges, membership changes, session
    /// revocations), ids assigned by Redis; see [`crate::user_stream`].
    pub fn user_stream(&self, user_id: i64) -> String {
        format!("{}:ustream:{{u{user_id}}}", self.prefix)
    }

    /// Pub/Sub channel of one user: wakes for the user's event stream
    /// (same hash tag as the stream).
    pub fn user_channel(&self, user_id: i64) -> String {
        format!("{}:wake:{{u{user_id}}}", self.prefix)
    }

    /// Pub/Sub channel of one gateway instance: acks and evictions.
    pub fn gateway_channel(&self, instance_id: &str) -> String {
        format!("{}:gw:{instance_id}", self.prefix)
    }

    /// Sorted set of a user's live connections, for the per-user limit.
    pub fn connections(&self, user_id: i64) -> String {
        format!("{}:conns:{{u{user_id}}}", self.prefix)
    }

    /// Hash of a user's unread counts: field "<chatId>" is the unread count,
    /// "<chatId>:m" the unread mention count.
    pub fn unread(&self, user_id: i64) -> String {
        format!("{}:unread:{{u{user_id}}}", self.prefix)
    }

    /// Hash of a user's presence: a field per open connection, the manual
    /// state, the last announced status and last-seen time
    /// (lua/presence_update.lua).
    pub fn presence(&self, user_id: i64) -> String {
        format!("{}:presence:{{u{user_id}}}", self.prefix)
    }

    /// Pub/Sub channel announcing a user's presence changes to the
    /// gateways with a connection watching that user.
    /// Same hash tag as the user's presence hash, whose script publishes
    /// here.
    pub fn presence_channel(&self, user_id: i64) -> String {
        format!("{}:wake:{{u{user_id}}}:p", self.prefix)
    }

    /// Sorted set of gateways holding presence, scored by their last lease
    /// renewal (ms); a worker sweeps those that stopped renewing.
    pub fn presence_nodes(&self) -> String {
        format!("{}:presence:nodes", self.prefix)
    }

    /// Set of users a gateway holds connections of (what a sweep visits).
    pub fn presence_node_users(&self, node: &str) -> String {
        format!("{}:presence:node:{{{node}}}", self.prefix)
    }

    /// Sweep lock of one dead gateway (one worker sweeps it).
    pub fn presence_sweep_lock(&self, node: &str) -> String {
        format!("{}:presence:sweep:{{{node}}}", self.prefix)
    }

    /// Counter of the toasts of one chat to one user in the current
    /// grouping window (expires with the window).
    pub fn toast_group(&self, user_id: i64, chat_id: i64) -> String {
        format!("{}:toastgrp:{{u{user_id}}}:{chat_id}", self.prefix)
    }

    /// The push queue: one entry per (message, user) to push to the user's
    /// devices; consumer group `pushers`.
    pub fn push_queue(&self) -> String {
        format!("{}:push:queue", self.prefix)
    }

    /// Push deliveries that failed for good, for inspection.
    pub fn push_dead(&self) -> String {
        format!("{}:push:dead", self.prefix)
    }

    /// Stream of messages whose search document changed (one entry per
    /// message.new / .updated / .deleted, field `m`: the message id),
    /// written only with the Meilisearch backend; consumer group `indexers`.
    pub fn search_index(&self) -> String {
        format!("{}:search-index", self.prefix)
    }

    /// Lease of the search indexer (one worker indexes at a time, so a
    /// message's documents reach Meilisearch in the order they were read).
    pub fn search_index_lease(&self) -> String {
        format!("{}:lease:{{search-index}}", self.prefix)
    }

    /// Which chat a channel name wakes for, or which user.
    pub fn parse_channel(&self, channel: &str) -> Option<Channel> {
        let rest = channel.strip_prefix(&self.prefix)?.strip_prefix(':')?;
        if let Some(tagged) = rest.strip_prefix("wake:{") {
            let (tag, suffix) = tagged.split_once('}')?;
            let (kind, id) = tag.split_at_checked(1)?;
            let id: i64 = id.parse().ok()?;
            return match (kind, suffix) {
                ("c", "") => Some(Channel::Chat(id)),
                ("u", "") => Some(Channel::User(id)),
                ("u", ":p") => Some(Channel::Presence(id)),
                _ => None,
            };
        }
        rest.strip_prefix("gw:").map(|_| Channel::Gateway)
    }
}

/// The kinds of Pub/Sub channel a gateway listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Chat(i64),
    User(i64),
    /// A watched user's presence announcements.
    Presence(i64),
    Gateway,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_publish_to_channels_of_their_own_slot() {
        use fred::util::redis_keyslot as slot;
        let keys = Keys::new("fc");
        let pairs = [
            (keys.chat_topic(17), keys.chat_channel(17)),
            (keys.chat_topic_meta(17), keys.chat_channel(17)),
            (keys.user_stream(4), keys.user_channel(4)),
            (keys.presence(4), keys.presence_channel(4)),
        ];
        for (key, channel) in pairs {
            assert_eq!(
                slot(key.as_bytes()),
                slot(channel.as_bytes()),
                "{key} {channel}"
            );
        }
        let shard = keys.ingest_shard(3);
        let marker = keys.ingest_pending(&shard, 9, 4, "f-1");
        assert_eq!(slot(shard.as_bytes()), slot(marker.as_bytes()));
        assert!(is_cluster(
            "redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001"
        ));
        assert!(!is_cluster("redis://127.0.0.1:6379"));
    }

    #[test]
    fn keys_carry_prefix_and_hash_tag() {
        let keys = Keys::new("fc");
        assert_eq!(keys.rate_limit(42, "send"), "fc:rl:{u42}:send");
        assert_eq!(keys.ingest(17, 8), "fc:ingest:{1}");
        assert_eq!(
            keys.ingest_pending("fc:ingest:{1}", 9, 4, "f-1"),
            "fc:ingest:{1}:pending:9:4:f-1"
        );
        assert_eq!(keys.chat_topic(17), "fc:topic:{c17}");
        assert_eq!(keys.chat_topic_meta(17), "fc:topic:{c17}:meta");
        let sid = uuid::Uuid::nil();
        assert_eq!(
            keys.revoked_session(5, &sid),
            "fc:revoked:{u5}:s:00000000000000000000000000000000"
        );
        assert_eq!(keys.revoked_user(5), "fc:revoked:{u5}");
        assert_eq!(
            keys.auth_rate_limit("ip:1.2.3.4"),
            "fc:rl:{ip:1.2.3.4}:auth"
        );
        assert_eq!(keys.chat_channel(17), "fc:wake:{c17}");
        assert_eq!(keys.user_channel(4), "fc:wake:{u4}");
        assert_eq!(keys.presence_channel(4), "fc:wake:{u4}:p");
        for (channel, parsed) in [
            (keys.chat_channel(17), Channel::Chat(17)),
            (keys.user_channel(4), Channel::User(4)),
            (keys.presence_channel(4), Channel::Presence(4)),
            (keys.gateway_channel("gw1"), Channel::Gateway),
        ] {
            assert_eq!(keys.parse_channel(&channel), Some(parsed), "{channel}");
        }
        for unknown in [
            "fc:wake:{x4}",
            "fc:wake:{c4}:p",
            "fc:wake:{c}",
            "fc:wake:c17",
        ] {
            assert_eq!(keys.parse_channel(unknown), None, "{unknown}");
        }
        assert_eq!(keys.presence(4), "fc:presence:{u4}");
        assert_eq!(keys.parse_channel("other:wake:c1"), None);
    }
}
