//! The search index stream: with the Meilisearch backend, every committed
//! message.new, message.updated and message.deleted event adds one entry
//! (field [`MESSAGE_FIELD`]: the message id) to
//! [`Keys::search_index`](fechatter_shared::redis::Keys::search_index),
//! which the indexer (`crate::indexer`, feature `meilisearch`) applies to
//! Meilisearch. With the PostgreSQL backend nothing is written.
//!
//! Entries are appended by [`crate::publish`] before the batch's acks are
//! sent and before its ingest entries are acknowledged: a crash in
//! between leaves the ingest entries pending, the batch is processed
//! again (as duplicates, whose events are announced again) and the
//! entries are appended again. An entry may therefore repeat; the indexer
//! loads each message's current state, so repeats are harmless.

use fechatter_shared::redis::Keys;
use fred::{
    prelude::*,
    types::streams::{XCapKind, XCapTrim},
};

use crate::effects::TopicEvent;

/// The field of an entry holding the message id.
pub const MESSAGE_FIELD: &str = "m";
/// Entries kept on the stream (approximately; applied entries are deleted,
/// so it holds only the backlog): an indexer stopped for longer than this
/// many changes (about 80 MB of Redis memory) loses the oldest ones, and
/// `worker reindex` must then rebuild the index. Hits are checked against
/// PostgreSQL by the gateway, so such a loss shows stale or missing
/// results, never deleted messages or old text.
pub const STREAM_MAX_LEN: u64 = 1_000_000;

/// Whether an event of this kind changes what search finds for its
/// message (new, edited, deleted); reactions and chat changes do not.
pub fn changes_search(kind: &str) -> bool {
    matches!(kind, "message.new" | "message.updated" | "message.deleted")
}

/// Appends one entry per indexed event of `events` (issued concurrently,
/// so they share the pipelined connection instead of waiting in turn).
pub async fn append(redis: &Client, keys: &Keys, events: &[TopicEvent]) -> Result<(), Error> {
    let key = keys.search_index();
    futures::future::try_join_all(events.iter().filter(|ev| ev.indexed).map(|ev| {
        redis.xadd::<String, _, _, _, _>(
            &key,
            false,
            (
                XCapKind::MaxLen,
                XCapTrim::AlmostExact,
                STREAM_MAX_LEN as i64,
            ),
            "*",
            vec![(MESSAGE_FIELD, ev.message_id.to_string())],
        )
    }))
    .await?;
    Ok(())
}
