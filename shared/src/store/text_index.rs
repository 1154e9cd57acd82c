//! The GIN index of message search (`messages_search`), built after the
//! migrations by `worker migrate` and `worker run`, not as a migration,
//! and without blocking writes.
//!
//! Why not a migration: a concurrent build inside sqlx's migrator
//! deadlocks against a second migrator waiting for its lock, and leaves an
//! invalid index that `IF NOT EXISTS` would then skip forever.
//!
//! Why partition by partition: `messages` is partitioned by hash of chat
//! (migration 12), and PostgreSQL cannot build an index on a partitioned
//! table `CONCURRENTLY`. So each partition's index is built concurrently
//! (`<partition>_search`), the parent index is created `ON ONLY` the
//! parent (a catalog entry, invalid until complete), and every partition's
//! index is attached to it; PostgreSQL marks the parent valid once the
//! last one is attached. An interrupted run leaves invalid or unattached
//! partition indexes, which the next run drops and rebuilds or attaches.

use sqlx::{PgConnection, PgPool};

use crate::AppResult;

/// Session advisory lock of [`ensure_index`] (any constant unique here).
const INDEX_LOCK: i64 = 0x5EA4_C41D;

/// The parent index.
const PARENT: &str = "messages_search";

/// Builds `messages_search` when it is missing or invalid. One process
/// builds at a time (a try-lock: the others go on without waiting).
/// Returns whether this call built or completed it.
pub async fn ensure_index(pool: &PgPool) -> AppResult<bool> {
    let mut conn = pool.acquire().await?;
    let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
        .bind(INDEX_LOCK)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(false);
    }
    let built = build(&mut conn).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(INDEX_LOCK)
        .execute(&mut *conn)
        .await?;
    built
}

/// The steps, under the lock.
async fn build(conn: &mut PgConnection) -> AppResult<bool> {
    // 1. Valid already: nothing to do.
    let parent = validity(conn, PARENT).await?;
    if parent == Some(true) {
        return Ok(false);
    }
    // 2. Every partition whose index is attached, yet the parent is
    //    invalid: only a damaged catalog gets here; start over.
    let partitions = super::partitions(&mut *conn, "messages").await?;
    if parent.is_some() && unattached(conn, &partitions).await?.is_empty() {
        tracing::warn!(
            "search index {PARENT} is invalid with every partition attached; rebuilding"
        );
        sqlx::query(&format!("DROP INDEX IF EXISTS {PARENT}"))
            .execute(&mut *conn)
            .await?;
    }
    tracing::info!(
        partitions = partitions.len(),
        "building the search index {PARENT}"
    );
    // 3. Each partition's index, concurrently.
    for partition in &partitions {
        build_partition(conn, partition).await?;
    }
    // 4. The parent, then the partitions' indexes attached to it.
    sqlx::query(&format!(
        "CREATE INDEX IF NOT EXISTS {PARENT} ON ONLY messages USING gin (search_tsv)"
    ))
    .execute(&mut *conn)
    .await?;
    for partition in unattached(conn, &partitions).await? {
        sqlx::query(&format!(
            "ALTER INDEX {PARENT} ATTACH PARTITION {partition}_search"
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}

/// Builds `<partition>_search` unless a valid one exists; an invalid one
/// (an interrupted build) is dropped first.
async fn build_partition(conn: &mut PgConnection, partition: &str) -> AppResult<()> {
    let index = format!("{partition}_search");
    match validity(conn, &index).await? {
        Some(true) => return Ok(()),
        Some(false) => {
            tracing::warn!(
                index,
                "invalid partition index (an interrupted build); rebuilding"
            );
            sqlx::query(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))
                .execute(&mut *conn)
                .await?;
        }
        None => {}
    }
    sqlx::query(&format!(
        "CREATE INDEX CONCURRENTLY {index} ON {partition} USING gin (search_tsv)"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether index `name` of this schema is valid; `None` when it is absent.
async fn validity(conn: &mut PgConnection, name: &str) -> AppResult<Option<bool>> {
    let row: Option<(bool,)> = sqlx::query_as(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(v,)| v))
}

/// The partitions among `partitions` whose index is not attached to the
/// parent index (all of them while the parent does not exist).
async fn unattached(conn: &mut PgConnection, partitions: &[String]) -> AppResult<Vec<String>> {
    let attached: Vec<(String,)> = sqlx::query_as(
        "SELECT c.relname::text FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_class p ON p.oid = i.inhparent
         WHERE p.relname = $1 AND p.relnamespace = current_schema()::regnamespace",
    )
    .bind(PARENT)
    .fetch_all(&mut *conn)
    .await?;
    Ok(partitions
        .iter()
        .filter(|p| !attached.iter().any(|(a,)| *a == format!("{p}_search")))
        .cloned()
        .collect())
}
