//! Reading new entries of the ingest shards this worker holds.
//!
//! On a single Redis node one `XREADGROUP ... BLOCK` names every held
//! shard: one round trip, woken by whichever shard gets an entry first.
//! In a Redis Cluster that command is cross-slot (each shard is its own
//! hash tag, so shards spread over the masters), so the reader keeps one
//! blocking `XREADGROUP` per shard in flight, each on a connection of its
//! own (a blocked connection delays every command behind it), and hands
//! out whatever arrives first, plus anything else already there.
//!
//! Reads stay in flight between calls: dropping [`ShardReader::next`] (the
//! consumer's shutdown select) loses nothing, and an entry a read returns
//! after its shard was lost stays pending under this consumer, where the
//! shard's next holder claims it (see `crate::claims`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use fechatter_shared::ingest::GROUP;
use fred::prelude::*;
use futures::{future::BoxFuture, stream::FuturesUnordered, FutureExt, StreamExt};

use crate::{
    claims::tagged,
    entries::{parse_xread, Pending},
    Worker,
};

/// How long one blocking read waits for an entry.
const BLOCK_MS: u64 = 500;

/// One shard's read: the shard and the reply.
type ShardRead = BoxFuture<'static, (u32, Result<Value, Error>)>;

/// The consumer's reader state (see the module docs).
pub enum ShardReader {
    /// One XREADGROUP over every held shard (single node).
    Joint,
    /// One XREADGROUP per shard, each on its own client (cluster).
    PerShard {
        clients: HashMap<u32, Client>,
        in_flight: FuturesUnordered<ShardRead>,
        reading: HashSet<u32>,
    },
}

impl ShardReader {
    /// The reader `redis_url` needs.
    pub fn for_url(redis_url: &str) -> Self {
        if fechatter_shared::redis::is_cluster(redis_url) {
            Self::PerShard {
                clients: HashMap::new(),
                in_flight: FuturesUnordered::new(),
                reading: HashSet::new(),
            }
        } else {
            Self::Joint
        }
    }
}

impl Worker {
    /// New entries of `shards` (shard -> epoch), waiting up to about half
    /// a second for some; each is tagged with its shard's epoch.
    pub(crate) async fn read(
        &self,
        reader: &mut ShardReader,
        shards: &BTreeMap<u32, i64>,
    ) -> Result<Vec<Pending>, Error> {
        match reader {
            ShardReader::Joint => self.read_joint(shards).await,
            ShardReader::PerShard {
                clients,
                in_flight,
                reading,
            } => {
                for &shard in shards.keys() {
                    if reading.insert(shard) {
                        let client = match clients.get(&shard) {
                            Some(c) => c.clone(),
                            None => {
                                let c = self.reader_client().await?;
                                clients.insert(shard, c.clone());
                                c
                            }
                        };
                        in_flight.push(self.read_one(client, shard));
                    }
                }
                let Some(first) = in_flight.next().await else {
                    return Ok(Vec::new());
                };
                let mut replies = vec![first];
                while let Some(Some(more)) = in_flight.next().now_or_never() {
                    replies.push(more);
                }
                let mut batch = Vec::new();
                for (shard, reply) in replies {
                    reading.remove(&shard);
                    // A shard lost meanwhile: its entries stay pending
                    // under this consumer for the next holder to claim.
                    if let Some(&epoch) = shards.get(&shard) {
                        let raw = parse_xread(reply?).into_iter().map(|(_, e)| e).collect();
                        batch.extend(tagged(&self.keys.ingest_shard(shard), shard, epoch, raw));
                    }
                }
                Ok(batch)
            }
        }
    }

    /// One XREADGROUP naming every held shard.
    async fn read_joint(&self, shards: &BTreeMap<u32, i64>) -> Result<Vec<Pending>, Error> {
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
                Some(BLOCK_MS),
                false,
                streams,
                ids,
            )
            .await?;
        let mut batch = Vec::new();
        for (stream, e) in parse_xread(reply) {
            if let Some(&(shard, epoch)) = by_stream.get(&stream) {
                batch.extend(tagged(&stream, shard, epoch, vec![e]));
            }
        }
        Ok(batch)
    }

    /// A blocking read of one shard on `client`, owning what it needs.
    fn read_one(&self, client: Client, shard: u32) -> ShardRead {
        let stream = self.keys.ingest_shard(shard);
        let consumer = self.config.instance_id.clone();
        let count = self.config.batch_size as u64;
        async move {
            let reply = client
                .xreadgroup(
                    GROUP,
                    &consumer,
                    Some(count),
                    Some(BLOCK_MS),
                    false,
                    stream,
                    ">",
                )
                .await;
            (shard, reply)
        }
        .boxed()
    }

    /// A client of its own for one shard's blocking reads.
    async fn reader_client(&self) -> Result<Client, Error> {
        fechatter_shared::redis::connect(&self.config.redis_url, Duration::from_secs(10))
            .await
            .map_err(|e| Error::new(ErrorKind::IO, format!("{e:#}")))
    }
}
