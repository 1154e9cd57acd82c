//! Settling ingest entries once their fate is decided: clearing their
//! pending markers, acknowledging and deleting them, or parking a poison
//! entry in the dead-letter stream with an `internal` error to its sender.
//! Every step here runs only after the outcome is durable (committed and
//! announced, or dead-lettered), never before.

use std::time::Duration;

use fechatter_shared::{ingest::GROUP, protocol, AppError};
use fred::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::{entries::Pending, Worker};

impl Worker {
    /// Clears the pending markers of a committed batch's writes
    /// (lua/ingest_append.lua) *before* their answers are published: a
    /// client that retries the moment it gets its answer must be appended
    /// again (and answered from PostgreSQL), not taken for a write still
    /// waiting, whose answer already went out and would never come again.
    pub(crate) async fn clear_markers(&self, batch: &[Pending]) -> Result<(), Error> {
        let mut by_stream: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for p in batch {
            if let Ok(e) = &p.entry {
                by_stream.entry(&p.stream).or_default().push(
                    self.keys
                        .ingest_pending(&p.stream, e.chat_id, e.user_id, &e.ref_id),
                );
            }
        }
        // A shard's markers share its hash tag: one DEL per shard.
        for (_, markers) in by_stream {
            let _: i64 = self.redis.del(markers).await?;
        }
        Ok(())
    }

    /// Acknowledges and deletes processed entries, both in one MULTI per
    /// shard: an entry acknowledged but left in the stream (a worker dying
    /// between two separate commands) would never be claimed or deleted
    /// again, and would hold its shard "lagging" (`INGEST_MAX_WAIT_MS`,
    /// lua/ingest_append.lua) for good.
    pub(crate) async fn ack(&self, batch: &[Pending]) -> Result<(), Error> {
        let mut by_stream: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for p in batch {
            by_stream.entry(&p.stream).or_default().push(p.id.clone());
        }
        for (stream, ids) in by_stream {
            let tx = self.redis.multi();
            let _: () = tx.xack(stream, GROUP, ids.clone()).await?;
            let _: () = tx.xdel(stream, ids).await?;
            let _: (i64, i64) = tx.exec(true).await?;
        }
        Ok(())
    }

    /// Dead-letters an entry, retrying while Redis refuses (an entry left
    /// pending would otherwise wait for the next shard takeover).
    pub(crate) async fn dead_letter_until_done(
        &self,
        p: &Pending,
        why: &str,
        shutdown: &CancellationToken,
    ) {
        while !self.dead_letter(p, why).await {
            if shutdown.is_cancelled() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Parks an entry in the dead-letter stream, clears its pending marker,
    /// answers its sender and acknowledges it, in that order. False when
    /// Redis refused.
    pub(crate) async fn dead_letter(&self, p: &Pending, why: &str) -> bool {
        let trace_id = p.entry.as_ref().map_or("", |e| e.trace_id.as_str());
        tracing::error!(stream = %p.stream, id = %p.id, trace_id, reason = why, "moving entry to the dead-letter stream");
        let raw = match &p.entry {
            Ok(e) => serde_json::to_string(e).unwrap_or_default(),
            Err(undecodable) => undecodable.text.clone(),
        };
        let parked: Result<(), Error> = self
            .redis
            .xadd(
                self.keys.dead_letter(),
                false,
                None,
                "*",
                vec![
                    ("stream", p.stream.as_str()),
                    ("id", p.id.as_str()),
                    ("entry", raw.as_str()),
                    ("reason", why),
                ],
            )
            .await;
        if let Err(e) = parked {
            tracing::error!(error = %e, "dead-lettering failed; retrying");
            return false;
        }
        // The marker goes before the answer (see `clear_markers`).
        let one = std::slice::from_ref(p);
        if self.clear_markers(one).await.is_err() {
            return false;
        }
        if let Ok(entry) = &p.entry {
            let frame = protocol::error_frame(
                Some(&entry.ref_id),
                &AppError::Internal(anyhow::anyhow!("entry could not be processed")),
            );
            let notice = fechatter_shared::ingest::GatewayNotice::Frame {
                conn: entry.conn,
                frame,
            };
            let _: Result<(), Error> = self
                .redis
                .spublish(self.keys.gateway_channel(&entry.gateway), notice.encode())
                .await;
        }
        let acked = self.ack(one).await.is_ok();
        if acked {
            self.metrics.dead_letters.inc();
        }
        acked
    }
}
