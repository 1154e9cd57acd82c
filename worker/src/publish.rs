//! Announces a committed batch: topic streams first (recipients), then
//! unread counters and badges, receipts and (with the Meilisearch backend)
//! the search index stream ([`crate::search_events`]) together, then the
//! senders' acks once the counters are written (one message per gateway
//! per batch: [`GatewayNotice::Frames`]).
//!
//! Every step is safe to repeat: if Redis fails half-way the batch is not
//! acknowledged, is processed again, finds its events already in
//! PostgreSQL and publishes them again; `lua/chat_publish.lua` refuses
//! events the stream already has, so subscribers never see an event twice
//! from the stream. The script also keeps each chat's stream contiguous in
//! eventSeq (a hole is filled from the event log before the event after it)
//! and refuses a publisher whose shard epoch is older than one that already
//! published to the chat (see `fechatter_shared::store::fence`).
//!
//! Chat events go out with the batch's commit time in front of the frame
//! (`wake::stamp`), so gateways can observe delivery latency from commit to
//! socket write; gateways take the stamp off before anything reaches a
//! client. (Gateways must therefore be upgraded before workers.)

use std::collections::HashMap;

use fechatter_shared::{
    ingest::GatewayNotice,
    protocol,
    redis::Keys,
    scripts::{self, ChatEvent, ChatPublished, TopicRetention},
    store, wake, AppError,
};
use fred::prelude::*;
use sqlx::PgPool;

use crate::persist::{Effects, TopicEvent};

/// Entries kept per chat topic stream (approximate, trimmed by Redis).
pub const TOPIC_MAX_LEN: u64 = 2000;

/// Where a batch is announced.
pub struct Target<'a> {
    pub redis: &'a Client,
    pub keys: &'a Keys,
    /// The event log, read to fill a hole in a topic stream.
    pub pool: &'a PgPool,
    pub topic_idle_ttl: std::time::Duration,
    /// Append message changes to the search index stream (only with the
    /// Meilisearch backend).
    pub search_index: bool,
}

/// Why a committed batch was not (fully) announced. Every case leaves the
/// batch unacknowledged, so it is announced again.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("redis: {0}")]
    Redis(#[from] Error),
    #[error("reading the event log: {0}")]
    Database(#[from] AppError),
    /// A worker holding a newer epoch of the chat's shard published to the
    /// chat: this one lost the shard and must stop processing it.
    #[error("chat {chat}: a newer shard holder (epoch {newer}) publishes it")]
    Fenced { chat: i64, newer: i64 },
    /// The stream lacks events the event log does not have either (it
    /// cannot, unless the stream's bookkeeping is wrong); retried.
    #[error("chat {chat}: events after {last} missing from the event log")]
    Hole { chat: i64, last: i64 },
}

/// Announces a committed batch: [`topics`], then [`rest`]. `epochs` maps
/// each chat of the batch to the fencing epoch of its shard, as held by
/// this worker (chats missing from it publish with epoch 0: unfenced tools
/// and tests).
pub async fn publish(
    t: &Target<'_>,
    epochs: &HashMap<i64, i64>,
    fx: &Effects,
) -> Result<(), PublishError> {
    topics(t, epochs, fx).await?;
    rest(t, fx).await
}

/// Appends the batch's chat events to their topics (which wakes the
/// recipients' gateways).
pub async fn topics(
    t: &Target<'_>,
    epochs: &HashMap<i64, i64>,
    fx: &Effects,
) -> Result<(), PublishError> {
    // One chat's events must reach its stream in order: each chat's
    // events go one after another, different chats concurrently (commands
    // issued concurrently share one pipelined connection).
    let mut by_chat: Vec<(i64, Vec<&TopicEvent>)> = Vec::new();
    for ev in &fx.topic {
        match by_chat.iter_mut().find(|(c, _)| *c == ev.chat_id) {
            Some((_, evs)) => evs.push(ev),
            None => by_chat.push((ev.chat_id, vec![ev])),
        }
    }
    futures::future::try_join_all(by_chat.into_iter().map(|(chat, mut events)| {
        // Re-published retries come in entry order; the stream wants
        // event order (the script would fill the hole anyway).
        events.sort_by_key(|ev| ev.event_seq);
        let epoch = epochs.get(&chat).copied().unwrap_or(0);
        async move {
            for ev in events {
                publish_event(t, ev, epoch, fx.committed_ms).await?;
            }
            Ok::<_, PublishError>(())
        }
    }))
    .await?;
    Ok(())
}

/// Appends one event to its chat topic. When the stream reports a hole
/// (events of an earlier batch that were committed but never published,
/// e.g. by a worker that lost its shard in between), the missing events
/// are published from the event log first, in order.
/// The event goes out stamped with its batch's commit time; events filled
/// in from the log are not (their commit time is not known here).
async fn publish_event(
    t: &Target<'_>,
    ev: &TopicEvent,
    epoch: i64,
    committed_ms: u64,
) -> Result<(), PublishError> {
    let retention = TopicRetention {
        max_len: TOPIC_MAX_LEN,
        idle_ttl_ms: t.topic_idle_ttl.as_millis() as u64,
    };
    let chat = ev.chat_id;
    let topic = ChatTopic {
        chat,
        redis: t.redis,
        stream: t.keys.chat_topic(chat),
        meta: t.keys.chat_topic_meta(chat),
        channel: t.keys.chat_channel(chat),
        epoch,
        retention,
    };
    let id = format!("{}-{}", ev.seq, ev.sub);
    let frame = stamped(committed_ms, ev.accepted_ms, &ev.frame);
    let event = ChatEvent {
        id: &id,
        event_seq: ev.event_seq,
        frame: &frame,
    };
    let Some(last) = topic.append(event).await? else {
        return Ok(());
    };
    tracing::warn!(
        chat,
        last,
        event = ev.event_seq,
        "topic stream lacks events; publishing them from the event log"
    );
    for (seq, sub, event_seq, frame) in
        store::event::numbered_between(t.pool, chat, last, ev.event_seq).await?
    {
        let id = format!("{seq}-{sub}");
        let missing = ChatEvent {
            id: &id,
            event_seq,
            frame: &frame,
        };
        if let Some(last) = topic.append(missing).await? {
            return Err(PublishError::Hole { chat, last });
        }
    }
    match topic.append(event).await? {
        None => Ok(()),
        Some(last) => Err(PublishError::Hole { chat, last }),
    }
}

/// One chat's topic, as this worker publishes to it.
struct ChatTopic<'a> {
    chat: i64,
    redis: &'a Client,
    stream: String,
    meta: String,
    channel: String,
    epoch: i64,
    retention: TopicRetention,
}

impl ChatTopic<'_> {
    /// Appends `event`: `None` when the stream has it now (appended, or
    /// there already), `Some(last)` when events after `last` are missing
    /// first; a newer holder's epoch is [`PublishError::Fenced`].
    async fn append(&self, event: ChatEvent<'_>) -> Result<Option<i64>, PublishError> {
        let published = scripts::chat_publish(
            self.redis,
            (&self.stream, &self.meta),
            event,
            self.epoch,
            self.retention,
            &self.channel,
        )
        .await?;
        match published {
            ChatPublished::Appended | ChatPublished::Duplicate(_) => Ok(None),
            ChatPublished::Gap(last) => Ok(Some(last)),
            ChatPublished::Fenced(newer) => Err(PublishError::Fenced {
                chat: self.chat,
                newer,
            }),
        }
    }
}

/// Everything after the topics: mention counts, badges, the search index
/// stream, ephemeral chat frames and the senders' answers.
///
/// These only follow the topics (an answer comes after the events before
/// it, docs/protocol.md "Outbound priority"). The counters, the receipts
/// and the search stream are independent and go out together, pipelined
/// on the shared connection; the answers wait for the counters, so that
/// whatever a client reads after its ack (`session.ready` totals, a
/// sync's read state) already counts the batch, also in Redis Cluster,
/// where the gateway channel lives on another node than the user's hash.
/// If any part fails, no answer has gone out; the batch is announced again
/// from the start (every part is safe to repeat).
pub async fn rest(t: &Target<'_>, fx: &Effects) -> Result<(), PublishError> {
    futures::try_join!(counts(t, fx), search_stream(t, fx), chat_frames(t, fx))?;
    answers(t, fx).await?;
    Ok(())
}

/// Mention counters, then the read marks' and own sends' recomputed
/// counts (absolute: they land after the increments of the same batch),
/// each told to every device of the user through the user's event stream.
async fn counts(t: &Target<'_>, fx: &Effects) -> Result<(), Error> {
    let (redis, keys) = (t.redis, t.keys);
    futures::future::try_join_all(fx.mentions.iter().map(|&(user, chat)| async move {
        redis
            .hincrby::<i64, _, _>(keys.unread(user), format!("{chat}:m"), 1)
            .await
    }))
    .await?;
    futures::future::try_join_all(fx.badges.iter().map(|b| async move {
        let stored = redis.hset::<(), _, _>(
            keys.unread(b.user_id),
            vec![
                (b.chat_id.to_string(), b.unread),
                (format!("{}:m", b.chat_id), b.mentions),
            ],
        );
        let frame = protocol::NotificationBadge {
            chat_id: b.chat_id,
            unread_count: b.unread,
            mention_count: b.mentions,
        }
        .frame();
        // The hash and the stream share the user's slot: both commands
        // leave on one connection, in this order, in one round trip.
        let told = fechatter_shared::user_stream::publish(redis, keys, b.user_id, &frame);
        futures::try_join!(stored, told).map(|_| ())
    }))
    .await?;
    Ok(())
}

/// Message changes for the search index (Meilisearch backend only).
async fn search_stream(t: &Target<'_>, fx: &Effects) -> Result<(), Error> {
    if t.search_index {
        crate::search_events::append(t.redis, t.keys, &fx.topic).await?;
    }
    Ok(())
}

/// Ephemeral chat frames (read receipts), in order.
async fn chat_frames(t: &Target<'_>, fx: &Effects) -> Result<(), Error> {
    for (chat_id, exclude, frame) in &fx.chat_frames {
        let _: () = t
            .redis
            .spublish(
                t.keys.chat_channel(*chat_id),
                wake::ephemeral(*exclude, frame),
            )
            .await?;
    }
    Ok(())
}

/// The answers: one message per gateway, in entry order.
async fn answers(t: &Target<'_>, fx: &Effects) -> Result<(), Error> {
    let mut by_gateway: Vec<(&str, Vec<(u64, String)>)> = Vec::new();
    for r in &fx.replies {
        let answer = (r.conn, r.frame.clone());
        match by_gateway.iter_mut().find(|(g, _)| *g == r.gateway) {
            Some((_, answers)) => answers.push(answer),
            None => by_gateway.push((&r.gateway, vec![answer])),
        }
    }
    futures::future::try_join_all(by_gateway.into_iter().map(|(gateway, answers)| {
        let notice = GatewayNotice::Frames(answers);
        t.redis
            .spublish::<(), _, _>(t.keys.gateway_channel(gateway), notice.encode())
    }))
    .await?;
    Ok(())
}

/// `frame` as stored on its topic: with the stamp once committed (and
/// the write's accept time when known).
fn stamped(committed_ms: u64, accepted_ms: u64, frame: &str) -> String {
    if committed_ms == 0 {
        return frame.to_string();
    }
    let stamp = wake::Stamp {
        committed_ms,
        accepted_ms: (accepted_ms > 0).then_some(accepted_ms),
    };
    wake::stamp(stamp, frame)
}
