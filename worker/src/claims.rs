//! Where the ingest consumer's entries come from besides new ones:
//! everything pending on a shard it has just taken over (`XAUTOCLAIM` from 0), and entries another consumer
//! left unacknowledged for too long (a worker fenced out of a shard it
//! still read from). Each entry is tagged with its shard and the fencing
//! epoch this worker holds it with, which its commit and publish carry.
//!
//! Only claims: reading new entries is [`crate::shard_reader`]'s,
//! processing them [`crate::consumer`]'s.

use std::time::Duration;

use fechatter_shared::{
    ingest::{IngestEntry, GROUP},
    wake::StreamId,
};
use fred::prelude::*;

use crate::{
    entries::{decode, Pending, RawEntry},
    Worker,
};

/// Entries of `shard`'s `stream`, tagged with the epoch they are held
/// with, each with its accept time (its id's time part).
pub(crate) fn tagged(stream: &str, shard: u32, epoch: i64, raw: Vec<RawEntry>) -> Vec<Pending> {
    raw.into_iter()
        .map(|e| {
            let accepted_ms = e.id.parse::<StreamId>().map_or(0, |id| id.0);
            let entry = decode(e.fields).map(|entry| IngestEntry {
                accepted_ms,
                ..entry
            });
            Pending {
                stream: stream.to_string(),
                shard,
                epoch,
                id: e.id,
                entry,
            }
        })
        .collect()
}

impl Worker {
    /// Ensures the consumer group exists and claims every entry pending on
    /// the shard: whoever read them before no longer holds the lease.
    pub(crate) async fn take_over(&self, shard: u32, epoch: i64) -> Result<Vec<Pending>, Error> {
        let stream = self.keys.ingest_shard(shard);
        crate::entries::ensure_group(&self.redis, &stream, GROUP).await?;
        let claimed =
            crate::entries::claim_all(&self.redis, &stream, GROUP, &self.config.instance_id, 1000)
                .await?;
        Ok(tagged(&stream, shard, epoch, claimed))
    }

    /// Claims the shard's entries that another consumer read and left
    /// unacknowledged for at least `idle` (a worker that lost the shard
    /// without noticing, then was fenced).
    pub(crate) async fn sweep(
        &self,
        shard: u32,
        epoch: i64,
        idle: Duration,
    ) -> Result<Vec<Pending>, Error> {
        let stream = self.keys.ingest_shard(shard);
        let stuck = crate::entries::claim_idle(
            &self.redis,
            &stream,
            GROUP,
            &self.config.instance_id,
            idle.as_millis() as u64,
            1000,
        )
        .await?;
        if !stuck.is_empty() {
            tracing::warn!(
                shard,
                entries = stuck.len(),
                "claimed entries stuck with another consumer"
            );
        }
        Ok(tagged(&stream, shard, epoch, stuck))
    }
}
