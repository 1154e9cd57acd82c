//! `worker reindex` (Meilisearch backend only, feature `meilisearch`):
//! rebuilds the search index from PostgreSQL, the source of truth, for a
//! lost or new index or a stream trimmed past the indexer (seed 002 §8,
//! "rebuild search index"). It pauses the running indexers by taking
//! their lease, so no indexer writes while the index is cleared and
//! refilled; they apply the changes made meanwhile once it hands the
//! lease back.

use std::time::Duration;

use anyhow::Context;
use fechatter_shared::{
    redis::Keys,
    scripts,
    search::meili::{MeiliIndex, MessageDocument},
    store::search_index,
    Config,
};
use fred::prelude::*;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::indexer::spawn_renewal;

/// Messages per page of a rebuild.
pub const REINDEX_PAGE: usize = 1000;

/// Writes every live message into the index, in pages of
/// [`REINDEX_PAGE`] by id, calling `progress(messages so far, last id)`
/// after each page. Does not clear the index first (see [`reindex`]).
pub async fn rebuild(
    pool: &PgPool,
    index: &MeiliIndex,
    mut progress: impl FnMut(usize, i64),
) -> anyhow::Result<usize> {
    let mut after = 0;
    let mut total = 0;
    loop {
        let rows = search_index::documents_after(pool, after, REINDEX_PAGE)
            .await
            .context("loading messages to index")?;
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(total);
        };
        let docs: Vec<MessageDocument> = rows.into_iter().map(MessageDocument::from).collect();
        index.upsert(&docs).await?;
        total += docs.len();
        after = last;
        progress(total, last);
    }
}

/// `worker reindex` (through `crate::reindex`, which checks the backend):
/// applies the index settings, takes the indexer lease
/// from whichever worker holds it (its indexer pauses, see the module
/// doc), empties the index, rebuilds it from PostgreSQL, and gives the
/// lease back; the workers' indexers then apply the changes made
/// meanwhile. Prints progress to stdout.
pub async fn reindex(config: Config) -> anyhow::Result<()> {
    let index = MeiliIndex::new(&config.search)?;
    let pool =
        fechatter_shared::store::connect(&config, fechatter_shared::config::DbRole::Worker).await?;
    let redis = fechatter_shared::redis::connect(&config.redis_url, Duration::from_secs(5)).await?;
    fechatter_shared::scripts::load_all(&redis)
        .await
        .context("loading Lua scripts")?;
    let keys = Keys::new(config.redis_prefix.clone());
    let holder = format!("reindex-{}", config.instance_id);
    let ttl = config.lease_ttl;

    println!(
        "reindex: applying the settings of index {:?}",
        config.search.meili_index
    );
    index.ensure_settings().await?;
    // Take the lease even from a running indexer, then wait until it has
    // noticed (it checks every third of the lifetime) and stopped writing.
    let _: () = redis
        .set(
            keys.search_index_lease(),
            holder.as_str(),
            Some(Expiration::PX(ttl.as_millis() as i64)),
            None,
            false,
        )
        .await
        .context("taking the search indexer lease")?;
    let lost = CancellationToken::new();
    let renew = spawn_renewal(
        redis.clone(),
        keys.search_index_lease(),
        holder.clone(),
        ttl,
        lost.clone(),
    );
    println!("reindex: pausing the running indexers ({ttl:?})");
    tokio::time::sleep(ttl).await;
    let outcome = async {
        anyhow::ensure!(
            !lost.is_cancelled(),
            "lost the indexer lease (another reindex?)"
        );
        index.clear().await?;
        println!("reindex: index cleared; indexing messages");
        let total = rebuild(&pool, &index, |n, last| {
            println!("reindex: {n} messages indexed (up to message id {last})");
            if lost.is_cancelled() {
                tracing::warn!("indexer lease lost during the rebuild");
            }
        })
        .await?;
        anyhow::ensure!(
            !lost.is_cancelled(),
            "lost the indexer lease during the rebuild (another reindex?); run it again"
        );
        Ok(total)
    }
    .await;
    lost.cancel();
    let _ = renew.await;
    if let Err(e) = scripts::release_lease(&redis, &keys.search_index_lease(), &holder).await {
        tracing::warn!(error = %e, "releasing the indexer lease failed; it expires on its own");
    }
    let total = outcome?;
    println!("reindex: done, {total} messages indexed");
    Ok(())
}
