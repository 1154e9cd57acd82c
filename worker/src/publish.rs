//! Announces a committed batch: topic streams first (recipients), then
//! unread badges and receipts, then the senders' acks.
//!
//! Every step is safe to repeat: if Redis fails half-way the batch is not
//! acknowledged, is processed again, finds its events already in
//! PostgreSQL and publishes them again; `lua/topic_publish.lua` refuses ids
//! the stream already has, so subscribers never see an event twice from
//! the stream.

use fechatter_shared::{ingest::GatewayNotice, protocol, redis::Keys, scripts, wake};
use fred::prelude::*;
use serde_json::json;

use crate::persist::{Effects, Mentions};

/// Entries kept per chat topic stream (approximate, trimmed by Redis).
pub const TOPIC_MAX_LEN: u64 = 2000;

pub async fn publish(redis: &Client, keys: &Keys, fx: &Effects) -> Result<(), Error> {
    // One chat's events must reach its stream in seq order; they are
    // published one after another (issue 4 will pipeline across chats).
    for ev in &fx.topic {
        scripts::topic_publish(
            redis,
            &keys.chat_topic(ev.chat_id),
            &format!("{}-{}", ev.seq, ev.sub),
            TOPIC_MAX_LEN,
            &keys.chat_channel(ev.chat_id),
            &ev.frame,
        )
        .await?;
    }

    // Badges: store the new counts, then tell every session of the user.
    // Commands issued concurrently share one pipelined connection.
    let stored = futures::future::try_join_all(fx.badges.iter().map(|b| async move {
        let key = keys.unread(b.user_id);
        let mention_field = format!("{}:m", b.chat_id);
        let _: () = redis.hset(&key, (b.chat_id.to_string(), b.unread)).await?;
        let mentions: i64 = match b.mentions {
            Mentions::Add(n) => redis.hincrby(&key, &mention_field, n).await?,
            Mentions::Set(n) => {
                let _: () = redis.hset(&key, (mention_field.as_str(), n)).await?;
                n
            }
        };
        Ok::<_, Error>((b, mentions))
    }))
    .await?;
    futures::future::try_join_all(stored.into_iter().map(|(b, mentions)| async move {
        let frame = protocol::new_frame(
            "notification.badge",
            &json!({ "chatId": b.chat_id, "unreadCount": b.unread, "mentionCount": mentions }),
        );
        redis
            .publish::<(), _, _>(keys.user_channel(b.user_id), wake::ephemeral(0, &frame))
            .await
    }))
    .await?;

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
