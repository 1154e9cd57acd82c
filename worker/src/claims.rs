//! Where the ingest consumer's entries come from: new entries of the
//! shards it holds (`XREADGROUP`), everything pending on a shard it has
//! just taken over (`XAUTOCLAIM` from 0), and entries another consumer
//! left unacknowledged for too long (a worker fenced out of a shard it
//! still read from). Each entry is tagged with its shard and the fencing
//! epoch this worker holds it with, which its commit and publish carry.
//!
//! Only reads and claims: processing is [`crate::consumer`]'s.

use std::{collections::BTreeMap, collections::HashMap, time::Duration};

use fechatter_shared::ingest::GROUP;
use fred::prelude::*;

use crate::{
    entries::{decode, parse_xread, Pending, RawEntry},
    Worker,
};

/// Entries of `shard`'s `stream`, tagged with the epoch they are held with.
fn tagged(stream: &str, shard: u32, epoch: i64, raw: Vec<RawEntry>) -> Vec<Pending> {
    raw.into_iter()
        .map(|e| Pending {
            stream: stream.to_string(),
            shard,
            epoch,
            id: e.id,
            entry: decode(e.fields),
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

    pub(crate) async fn read(&self, shards: &BTreeMap<u32, i64>) -> Result<Vec<Pending>, Error> {
        let by_stream: HashMap<String, (u32, i64)> = shards
            .iter()
            .map(|(&s, &e)| (self.keys.ingest_shard(s), (s, e)))
            .collect();
        let streams: Vec<String> = by_stream.keys().cloned().collect();
        let ids: Vec<&str> = streams.iter().map(|_| ">").collect();
        let reply: Value = self
            .blocking
            .xreadgroup(
                GROUP,
                &self.config.instance_id,
                Some(self.config.batch_size as u64),
                Some(500),
                false,
                streams,
                ids,
            )
            .await?;
        Ok(parse_xread(reply)
            .into_iter()
            .filter_map(|(stream, e)| {
                let &(shard, epoch) = by_stream.get(&stream)?;
                Some((stream, shard, epoch, e))
            })
            .map(|(stream, shard, epoch, e)| Pending {
                stream,
                shard,
                epoch,
                id: e.id,
                entry: decode(e.fields),
            })
            .collect())
    }
}
