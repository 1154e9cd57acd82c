//! The Lua scripts of `lua/`, each wrapped by one typed function.
//!
//! Scripts are compiled into the binaries (`include_str!`), loaded once at
//! start-up with [`load_all`], and invoked by SHA (`EVALSHA`); a Redis that
//! lost its script cache (restart, failover) gets the script re-loaded
//! transparently on the `NOSCRIPT` error. Every script touches keys of one
//! hash tag only, so all of them run unchanged on Redis Cluster.

use std::sync::LazyLock;

use fred::{prelude::*, types::scripts::Script};

struct Scripts {
    token_bucket: Script,
    user_publish: Script,
    chat_publish: Script,
    ingest_append: Script,
    conn_register: Script,
    lease_acquire: Script,
    lease_release: Script,
    presence_update: Script,
    fanout_lag: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    token_bucket: Script::from_lua(include_str!("../../lua/token_bucket.lua")),
    user_publish: Script::from_lua(include_str!("../../lua/user_publish.lua")),
    chat_publish: Script::from_lua(include_str!("../../lua/chat_publish.lua")),
    ingest_append: Script::from_lua(include_str!("../../lua/ingest_append.lua")),
    conn_register: Script::from_lua(include_str!("../../lua/conn_register.lua")),
    lease_acquire: Script::from_lua(include_str!("../../lua/lease_acquire.lua")),
    lease_release: Script::from_lua(include_str!("../../lua/lease_release.lua")),
    presence_update: Script::from_lua(include_str!("../../lua/presence_update.lua")),
    fanout_lag: Script::from_lua(include_str!("../../lua/fanout_lag.lua")),
});

/// Loads every script into the Redis script cache.
pub async fn load_all(client: &Client) -> Result<(), Error> {
    let s = &*SCRIPTS;
    for script in [
        &s.token_bucket,
        &s.user_publish,
        &s.chat_publish,
        &s.ingest_append,
        &s.conn_register,
        &s.lease_acquire,
        &s.lease_release,
        &s.presence_update,
        &s.fanout_lag,
    ] {
        script.load(client).await?;
    }
    Ok(())
}

/// A token-bucket limit: `capacity` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub capacity: f64,
    pub per_second: f64,
}

/// The outcome of [`take_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Denied; enough tokens exist again after this many milliseconds.
    Denied {
        retry_after_ms: u64,
    },
}

/// Takes `cost` tokens from the bucket at `key` (lua/token_bucket.lua).
pub async fn take_token(
    client: &Client,
    key: &str,
    limit: Limit,
    cost: f64,
) -> Result<Decision, Error> {
    bucket(client, key, limit, cost, false).await
}

/// Whether `cost` tokens are in the bucket at `key`, taking none.
pub async fn probe_token(
    client: &Client,
    key: &str,
    limit: Limit,
    cost: f64,
) -> Result<Decision, Error> {
    bucket(client, key, limit, cost, true).await
}

async fn bucket(
    client: &Client,
    key: &str,
    limit: Limit,
    cost: f64,
    probe: bool,
) -> Result<Decision, Error> {
    let mut args = vec![
        limit.capacity.to_string(),
        limit.per_second.to_string(),
        cost.to_string(),
    ];
    if probe {
        args.push("probe".into());
    }
    let (allowed, retry_after_ms): (i64, i64) = SCRIPTS
        .token_bucket
        .evalsha_with_reload(client, vec![key.to_string()], args)
        .await?;
    Ok(if allowed == 1 {
        Decision::Allowed
    } else {
        Decision::Denied {
            retry_after_ms: retry_after_ms.max(1) as u64,
        }
    })
}

/// Where and how long a topic stream keeps events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicRetention {
    /// Approximate MAXLEN the stream is trimmed to.
    pub max_len: u64,
    /// The stream expires this long after its last append.
    pub idle_ttl_ms: u64,
}

/// Appends `frames` to the user stream `stream`, in order, and publishes
/// one wake per frame on `channel` (lua/user_publish.lua). Returns the
/// entry ids Redis assigned, one per frame.
pub async fn user_publish(
    client: &Client,
    stream: &str,
    retention: TopicRetention,
    channel: &str,
    frames: &[&str],
) -> Result<Vec<String>, Error> {
    if frames.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = Vec::with_capacity(3 + frames.len());
    args.push(retention.max_len.to_string());
    args.push(channel.to_string());
    args.push(retention.idle_ttl_ms.to_string());
    args.extend(frames.iter().map(|f| f.to_string()));
    SCRIPTS
        .user_publish
        .evalsha_with_reload(client, vec![stream.to_string()], args)
        .await
}

/// One committed chat event to append to its topic (lua/chat_publish.lua).
#[derive(Debug, Clone, Copy)]
pub struct ChatEvent<'a> {
    /// Entry id `"<seq>-<sub>"`.
    pub id: &'a str,
    /// Contiguous per-chat event number.
    pub event_seq: i64,
    /// The frame text.
    pub frame: &'a str,
}

/// What [`chat_publish`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatPublished {
    /// Appended and published.
    Appended,
    /// The stream already has it (its last eventSeq is given).
    Duplicate(i64),
    /// Events after the given eventSeq and before this one are missing.
    Gap(i64),
    /// A holder with this newer fencing epoch published here.
    Fenced(i64),
}

/// Appends a chat event to the topic `stream` (bookkeeping in `meta`, same
/// hash tag), in eventSeq order and only for the newest fencing `epoch`,
/// and wakes `channel` (lua/chat_publish.lua).
pub async fn chat_publish(
    client: &Client,
    (stream, meta): (&str, &str),
    event: ChatEvent<'_>,
    epoch: i64,
    retention: TopicRetention,
    channel: &str,
) -> Result<ChatPublished, Error> {
    let (status, n): (String, i64) = SCRIPTS
        .chat_publish
        .evalsha_with_reload(
            client,
            vec![stream.to_string(), meta.to_string()],
            vec![
                event.id.to_string(),
                retention.max_len.to_string(),
                channel.to_string(),
                event.frame.to_string(),
                retention.idle_ttl_ms.to_string(),
                event.event_seq.to_string(),
                epoch.to_string(),
            ],
        )
        .await?;
    match status.as_str() {
        "ok" => Ok(ChatPublished::Appended),
        "duplicate" => Ok(ChatPublished::Duplicate(n)),
        "gap" => Ok(ChatPublished::Gap(n)),
        "fenced" => Ok(ChatPublished::Fenced(n)),
        other => Err(Error::new(
            ErrorKind::Parse,
            format!("chat_publish.lua answered {other:?}"),
        )),
    }
}

/// What [`ingest_append`] did with a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Appended with this entry id.
    Added(String),
    /// The same write (user and frame id) is still waiting in the shard.
    AlreadyQueued,
    /// The shard holds its maximum; nothing was appended.
    Full,
    /// The shard's oldest entry has waited this many ms, more than the
    /// limit: workers are behind; nothing was appended.
    Lagging(u64),
}

/// How much an ingest shard may hold before it refuses writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestBounds {
    /// Most entries.
    pub max_len: u64,
    /// Longest wait of its oldest entry in ms (0: no limit).
    pub max_wait_ms: u64,
}

/// Appends `entry` under `field` to the ingest shard `stream`, once per
/// `pending` marker, unless the shard is beyond `bounds`
/// (lua/ingest_append.lua).
pub async fn ingest_append(
    client: &Client,
    stream: &str,
    pending: &str,
    bounds: IngestBounds,
    field: &str,
    entry: &str,
) -> Result<Appended, Error> {
    let outcome: String = SCRIPTS
        .ingest_append
        .evalsha_with_reload(
            client,
            vec![stream.to_string(), pending.to_string()],
            vec![
                bounds.max_len.to_string(),
                field.to_string(),
                entry.to_string(),
                PENDING_MARKER_SECS.to_string(),
                bounds.max_wait_ms.to_string(),
            ],
        )
        .await?;
    Ok(match outcome.as_str() {
        "queued" => Appended::AlreadyQueued,
        "full" => Appended::Full,
        _ => match outcome.strip_prefix("lagging ") {
            Some(ms) => Appended::Lagging(ms.parse().unwrap_or(0)),
            None => Appended::Added(outcome),
        },
    })
}

/// Lifetime of an ingest write's pending marker: retries of a write whose
/// worker never answers are suppressed for at most this long.
pub const PENDING_MARKER_SECS: u64 = 60;

/// Registers connection `member` in the user's set `key` and returns the
/// members evicted beyond `max` (lua/conn_register.lua).
pub async fn register_connection(
    client: &Client,
    key: &str,
    member: &str,
    max: u32,
    ttl_secs: u64,
) -> Result<Vec<String>, Error> {
    SCRIPTS
        .conn_register
        .evalsha_with_reload(
            client,
            vec![key.to_string()],
            vec![member.to_string(), max.to_string(), ttl_secs.to_string()],
        )
        .await
}

/// Takes or renews the lease `key` for `holder` (lua/lease_acquire.lua).
pub async fn acquire_lease(
    client: &Client,
    key: &str,
    holder: &str,
    ttl_ms: u64,
) -> Result<bool, Error> {
    Ok(take_lease(client, key, holder, ttl_ms).await? != LeaseGrant::Refused)
}

/// What [`take_lease`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseGrant {
    /// Nobody held the lease; the caller holds it now.
    Taken,
    /// The caller held it and renewed it.
    Renewed,
    /// Another holder has it.
    Refused,
}

/// [`acquire_lease`], telling a new take from a renewal.
pub async fn take_lease(
    client: &Client,
    key: &str,
    holder: &str,
    ttl_ms: u64,
) -> Result<LeaseGrant, Error> {
    let held: i64 = SCRIPTS
        .lease_acquire
        .evalsha_with_reload(
            client,
            vec![key.to_string()],
            vec![holder.to_string(), ttl_ms.to_string()],
        )
        .await?;
    Ok(match held {
        2 => LeaseGrant::Taken,
        1 => LeaseGrant::Renewed,
        _ => LeaseGrant::Refused,
    })
}

/// Releases the lease `key` if `holder` has it (lua/lease_release.lua).
pub async fn release_lease(client: &Client, key: &str, holder: &str) -> Result<bool, Error> {
    let released: i64 = SCRIPTS
        .lease_release
        .evalsha_with_reload(client, vec![key.to_string()], vec![holder.to_string()])
        .await?;
    Ok(released == 1)
}

/// How long a gateway's fan-out lag report counts, and when it is deleted.
#[derive(Debug, Clone, Copy)]
pub struct LagReportAges {
    pub fresh_ms: u64,
    pub forget_ms: u64,
}

/// Reports `lag_ms` for gateway `node` in the hash `key` and returns the
/// pool's lag: the highest report younger than `ages.fresh_ms` by Redis's
/// clock (lua/fanout_lag.lua).
pub async fn fanout_lag(
    client: &Client,
    key: &str,
    node: &str,
    lag_ms: u64,
    ages: LagReportAges,
) -> Result<u64, Error> {
    let pool: i64 = SCRIPTS
        .fanout_lag
        .evalsha_with_reload(
            client,
            vec![key.to_string()],
            vec![
                node.to_string(),
                lag_ms.to_string(),
                ages.fresh_ms.to_string(),
                ages.forget_ms.to_string(),
            ],
        )
        .await?;
    Ok(pool.max(0) as u64)
}

/// Runs lua/presence_update.lua on the presence hash `key` with its eight
/// arguments (see the script header; [`crate::presence::update`] builds
/// them); returns (status, last seen ms, changed 1/0).
pub async fn presence_update(
    client: &Client,
    key: &str,
    args: [&str; 8],
) -> Result<(String, String, i64), Error> {
    SCRIPTS
        .presence_update
        .evalsha_with_reload(
            client,
            vec![key.to_string()],
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        )
        .await
}
