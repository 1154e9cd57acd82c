//! Who an `@here` reaches: the members of the batch's chats who are
//! connected right now (not offline), read before the batch's transaction
//! so that mention resolution inside it (`fechatter_shared::mention`)
//! needs no Redis call. Kept apart from the toasts ([`crate::notify`]),
//! which run after the batch, beside the consumer.

use std::collections::HashSet;

use fechatter_shared::{
    ingest::{Command, IngestEntry},
    presence::{self, Status},
    store::notification,
    AppResult,
};

use crate::Worker;

impl Worker {
    /// Members of chats whose new messages say `@here` who are connected
    /// now (empty when no message says it).
    pub async fn connected_for_here(&self, entries: &[IngestEntry]) -> AppResult<HashSet<i64>> {
        let mut chats: Vec<i64> = entries
            .iter()
            .filter(|e| matches!(&e.command, Command::Send { content, .. } if content.to_lowercase().contains("@here")))
            .map(|e| e.chat_id)
            .collect();
        if chats.is_empty() {
            return Ok(Default::default());
        }
        chats.sort_unstable();
        chats.dedup();
        let mut conn = self.pool.acquire().await?;
        let mut members: Vec<i64> = notification::member_names(&mut conn, &chats)
            .await?
            .into_iter()
            .map(|(_, m)| m.user_id)
            .collect();
        drop(conn);
        members.sort_unstable();
        members.dedup();
        let states = presence::current(&self.redis, &self.keys, &members).await?;
        Ok(members
            .into_iter()
            .zip(states)
            .filter(|(_, s)| s.is_some_and(|(status, _)| status != Status::Offline))
            .map(|(u, _)| u)
            .collect())
    }
}
