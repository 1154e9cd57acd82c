//! The search migrations on a database that already holds messages: the
//! backfill fills every existing row in committed batches, the GIN index
//! is built (after the migrations, by `ensure_index`), and new or edited
//! rows are kept by the trigger from then on; the messages then move into
//! the hash partitions of migration 12 and the index is built partition by
//! partition. An invalid index (an interrupted concurrent build) is
//! rebuilt, and concurrent builders do not deadlock.

use fechatter_shared::MIGRATOR;
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn search_migrations_backfill_existing_messages(pool: PgPool) {
    fechatter_shared::migrator_before(20261127000009)
        .run(&pool)
        .await
        .unwrap();
    // 12,345 messages written before search existed (more than two batches).
    sqlx::query(
        "WITH w AS (INSERT INTO workspaces (name) VALUES ('Acme') RETURNING id),
              u AS (INSERT INTO users (workspace_id, fullname, email, password_hash)
                    SELECT id, 'Ada', 'ada@acme.test', 'x' FROM w RETURNING id, workspace_id),
              c AS (INSERT INTO chats (workspace_id, type, name, owner_id)
                    SELECT workspace_id, 'group', 'g', id FROM u RETURNING id, owner_id)
         INSERT INTO messages (chat_id, seq, sender_id, content, client_id)
         SELECT c.id, n, c.owner_id, 'message number ' || n || CASE WHEN n = 7777 THEN ' needle' ELSE '' END, 'k' || n
         FROM c, generate_series(1, 12345) AS n",
    )
    .execute(&pool)
    .await
    .unwrap();

    MIGRATOR.run(&pool).await.unwrap();
    assert!(fechatter_shared::store::text_index::ensure_index(&pool)
        .await
        .unwrap());

    let (missing,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM messages WHERE search_tsv IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(missing, 0, "every existing row was backfilled");
    assert!(
        search_index_valid(&pool).await,
        "the concurrently built index is valid"
    );
    let seqs: Vec<(i64,)> = sqlx::query_as(
        "SELECT seq FROM messages WHERE search_tsv @@ to_tsquery('simple', 'needle')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(seqs, [(7777,)]);

    // The trigger keeps new and edited rows.
    sqlx::query("UPDATE messages SET content = 'replaced words' WHERE seq = 7777")
        .execute(&pool)
        .await
        .unwrap();
    let hits = |q: &'static str| {
        let pool = pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM messages WHERE search_tsv @@ to_tsquery('simple', $1)",
            )
            .bind(q)
            .fetch_one(&pool)
            .await
            .unwrap();
            n
        }
    };
    assert_eq!(hits("needle").await, 0);
    assert_eq!(hits("replaced").await, 1);

    // Valid already: nothing to do.
    assert!(!fechatter_shared::store::text_index::ensure_index(&pool)
        .await
        .unwrap());
    // Marked invalid (what an interrupted CONCURRENTLY build leaves): rebuilt.
    mark_invalid(&pool, "messages_search").await;
    assert!(fechatter_shared::store::text_index::ensure_index(&pool)
        .await
        .unwrap());
    assert!(search_index_valid(&pool).await);

    // Interrupted between partitions: no parent, one partition's index
    // left invalid. The next run drops that one, builds the rest, and
    // attaches all 16 to a valid parent.
    sqlx::query("DROP INDEX messages_search")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE INDEX messages_p03_search ON messages_p03 USING gin (search_tsv)")
        .execute(&pool)
        .await
        .unwrap();
    mark_invalid(&pool, "messages_p03_search").await;
    assert!(fechatter_shared::store::text_index::ensure_index(&pool)
        .await
        .unwrap());
    let (valid, attached): (bool, i64) = sqlx::query_as(
        "SELECT i.indisvalid, (SELECT count(*) FROM pg_inherits WHERE inhparent = i.indexrelid)
         FROM pg_index i WHERE i.indexrelid = 'messages_search'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(valid);
    assert_eq!(attached, 16, "every partition's index is attached");
    assert_eq!(hits("replaced").await, 1);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn concurrent_migrators_build_one_valid_index(pool: PgPool) {
    sqlx::query("DROP INDEX IF EXISTS messages_search")
        .execute(&pool)
        .await
        .unwrap();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                MIGRATOR.run(&pool).await.unwrap();
                fechatter_shared::store::text_index::ensure_index(&pool)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut built = Vec::new();
    for run in runs {
        built.push(run.await.unwrap());
    }
    assert!(built.iter().filter(|b| **b).count() <= 1, "{built:?}");
    // Whoever did not build went on; the index is there and valid once
    // the builder finished (join_all waited for it).
    assert!(search_index_valid(&pool).await);
}

/// Whether `messages_search` is valid.
async fn search_index_valid(pool: &PgPool) -> bool {
    let (valid,): (bool,) = sqlx::query_as(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'messages_search'::regclass",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    valid
}

/// Marks index `name` invalid, as an interrupted concurrent build leaves it.
async fn mark_invalid(pool: &PgPool, name: &str) {
    sqlx::query("UPDATE pg_index SET indisvalid = false WHERE indexrelid = $1::regclass")
        .bind(name)
        .execute(pool)
        .await
        .unwrap();
}
