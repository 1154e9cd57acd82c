//! Announces a committed batch: topic streams first (recipients), then
//! unread badges and receipts, then (with the Meilisearch backend) the
//! search index stream ([`crate::search_events`]), then the senders' acks.
//!
//! Every step is safe to repeat: if Redis fails half-way the batch is not
//! acknowledged, is processed again, finds its events already in
//! PostgreSQL and publishes them again; `lua/topic_publish.lua` refuses ids
//! the stream already has, so subscribers never see an event twice from
//! the stream.
//!
//! Chat events go out with the batch's commit time in front of the frame
//! (`wake::stamp`), so gateways can observe delivery latency from commit to
//! socket write; gateways take the stamp off before anything reaches a
//! client. (Gateways must therefore be upgraded before workers.)

use fechatter_shared::{ingest::GatewayNotice, protocol, redis::Keys, scripts, wake};
use fred::prelude::*;

use crate::persist::Effects;

/// Entries kept per chat topic stream (approximate, trimmed by Redis).
pub const TOPIC_MAX_LEN: u64 = 2000;

/// `search_index`: append the batch's message changes to the search index
/// stream (only with the Meilisearch backend).
pub async fn publish(
    redis: &Client,
    keys: &Keys,
    topic_idle_ttl: std::time::Duration,
    search_index: bool,
    fx: &Effects,
) -> Result<(), Error> {
    let retention = scripts::TopicRetention {
        max_len: TOPIC_MAX_LEN,
        idle_ttl_ms: topic_idle_ttl.as_millis() as u64,
    };
    // One chat's events must reach its stream in seq order: each chat's
    // events go one after another, different chats concurrently (commands
    // issued concurrently share one pipelined connection).
    let mut by_chat: Vec<(i64, Vec<&crate::persist::TopicEvent>)> = Vec::new();
    for ev in &fx.topic {
        match by_chat.iter_mut().find(|(c, _)| *c == ev.chat_id) {
            Some((_, evs)) => evs.push(ev),
            None => by_chat.push((ev.chat_id, vec![ev])),
        }
    }
    futures::future::try_join_all(by_chat.into_iter().map(|(chat, events)| async move {
        let (stream, channel) = (keys.chat_topic(chat), keys.chat_channel(chat));
        for ev in events {
            scripts::topic_publish(
                redis,
                &stream,
                &format!("{}-{}", ev.seq, ev.sub),
                retention,
                &channel,
                &stamped(fx.committed_ms, &ev.frame),
            )
            .await?;
        }
        Ok::<_, Error>(())
    }))
    .await?;

    futures::future::try_join_all(fx.mentions.iter().map(|&(user, chat)| async move {
        redis
            .hincrby::<i64, _, _>(keys.unread(user), format!("{chat}:m"), 1)
            .await
    }))
    .await?;

    // Read marks and own sends: store the recomputed counts, tell every
    // device of the user through the user's event stream.
    futures::future::try_join_all(fx.badges.iter().map(|b| async move {
        let key = keys.unread(b.user_id);
        let _: () = redis
            .hset(
                &key,
                vec![
                    (b.chat_id.to_string(), b.unread),
                    (format!("{}:m", b.chat_id), b.mentions),
                ],
            )
            .await?;
        let frame = protocol::NotificationBadge {
            chat_id: b.chat_id,
            unread_count: b.unread,
            mention_count: b.mentions,
        }
        .frame();
        fechatter_shared::user_stream::publish(redis, keys, b.user_id, &frame).await
    }))
    .await?;

    if search_index {
        crate::search_events::append(redis, keys, &fx.topic).await?;
    }

    for (chat_id, exclude, frame) in &fx.chat_frames {
        let _: () = redis
            .publish(
                keys.chat_channel(*chat_id),
                wake::ephemeral(*exclude, frame),
            )
            .await?;
    }
    futures::future::try_join_all(fx.replies.iter().map(|r| async move {
        let notice = GatewayNotice::Frame {
            conn: r.conn,
            frame: r.frame.clone(),
        };
        redis
            .publish::<(), _, _>(keys.gateway_channel(&r.gateway), notice.encode())
            .await
    }))
    .await?;
    Ok(())
}

/// `frame` as stored on its topic: with the commit stamp once committed.
fn stamped(committed_ms: u64, frame: &str) -> String {
    if committed_ms == 0 {
        frame.to_string()
    } else {
        wake::stamp(committed_ms, frame)
    }
}
