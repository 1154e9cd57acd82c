//! The Meilisearch search backend and its indexer (feature `meilisearch`).
//!
//! Always tested (PostgreSQL and Redis run locally): the filter builder,
//! document building, the rows the index is built from, and the index
//! events a committed batch appends to the search index stream (including
//! a batch processed again as duplicates). Tested only against a real
//! Meilisearch server named by `MEILI_URL` (and `MEILI_KEY` when it has
//! one): search results obey the chat ACL, edits are found by their new
//! text only, deleted messages disappear, paging, the indexer consuming
//! the stream, and `worker reindex`. Without `MEILI_URL` those print
//! `skipped: MEILI_URL not set` and pass.

#![cfg(feature = "meilisearch")]

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use fechatter_shared::{
    config::SearchSettings,
    ingest::{Command, IngestEntry},
    protocol::ReactAction,
    redis::Keys,
    search::{
        meili::{self, MeiliIndex, MessageDocument},
        MessageIndex, MessageSearch, Page, Position, Query,
    },
    store::search_index::{self, IndexedMessage},
};
use fred::prelude::*;
use serde_json::Value;
use sqlx::PgPool;
use worker::{
    effects::TopicEvent,
    entries::RawEntry,
    indexer::{self, Indexer, IndexerMetrics},
    search_events,
};

// ---------------------------------------------------------------- helpers

struct Seed {
    ada: i64,
    bob: i64,
    c1: i64,
    c2: i64,
}

async fn seed(pool: &PgPool) -> Seed {
    let (ws,): (i64,) = sqlx::query_as("INSERT INTO workspaces (name) VALUES ('w') RETURNING id")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut users = Vec::new();
    for (name, email) in [("Ada Lovelace", "ada@w.test"), ("Bob Stone", "bob@w.test")] {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (workspace_id, fullname, email, password_hash) VALUES ($1, $2, $3, 'x') RETURNING id",
        )
        .bind(ws)
        .bind(name)
        .bind(email)
        .fetch_one(pool)
        .await
        .unwrap();
        users.push(id);
    }
    let mut chats = Vec::new();
    for name in ["one", "two"] {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO chats (workspace_id, type, name, owner_id) VALUES ($1, 'private_channel', $2, $3) RETURNING id",
        )
        .bind(ws)
        .bind(name)
        .bind(users[0])
        .fetch_one(pool)
        .await
        .unwrap();
        for &u in &users {
            sqlx::query("INSERT INTO chat_members (chat_id, user_id) VALUES ($1, $2)")
                .bind(id)
                .bind(u)
                .execute(pool)
                .await
                .unwrap();
        }
        chats.push(id);
    }
    Seed {
        ada: users[0],
        bob: users[1],
        c1: chats[0],
        c2: chats[1],
    }
}

/// Inserts a message (next seq of the chat) and returns its id.
async fn message(pool: &PgPool, chat: i64, sender: i64, content: &str, mentions: &[i64]) -> i64 {
    let (id,): (i64,) = sqlx::query_as(
        "WITH s AS (UPDATE chats SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq)
         INSERT INTO messages (chat_id, seq, sender_id, content, client_id, mentions)
         SELECT $1, s.last_seq, $2, $3, gen_random_uuid()::text, $4 FROM s RETURNING id",
    )
    .bind(chat)
    .bind(sender)
    .bind(content)
    .bind(mentions)
    .fetch_one(pool)
    .await
    .unwrap();
    id
}

async fn edit(pool: &PgPool, id: i64, content: &str) {
    sqlx::query("UPDATE messages SET content = $2, edited_at = now() WHERE id = $1")
        .bind(id)
        .bind(content)
        .execute(pool)
        .await
        .unwrap();
}

async fn delete(pool: &PgPool, id: i64) {
    sqlx::query("UPDATE messages SET content = '', deleted_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

async fn redis() -> Client {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = fechatter_shared::redis::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    fechatter_shared::scripts::load_all(&client).await.unwrap();
    client
}

fn keys() -> Keys {
    Keys::new(format!("t{}", uuid::Uuid::new_v4().simple()))
}

/// The message ids on the search index stream, oldest first.
async fn stream_ids(redis: &Client, keys: &Keys) -> Vec<i64> {
    let entries: Vec<(String, Vec<(String, String)>)> = redis
        .xrange(keys.search_index(), "-", "+", None)
        .await
        .unwrap();
    entries
        .into_iter()
        .flat_map(|(_, fields)| fields)
        .filter(|(k, _)| k == search_events::MESSAGE_FIELD)
        .map(|(_, v)| v.parse().unwrap())
        .collect()
}

fn words(ws: &[&str]) -> Vec<String> {
    ws.iter().map(|w| w.to_string()).collect()
}

fn search(chats: Vec<i64>, query: Query, limit: usize) -> MessageSearch {
    MessageSearch {
        query,
        chats,
        senders: None,
        mentioned: None,
        as_of: Utc::now(),
        after: None,
        limit,
    }
}

fn terms(ts: &[&str]) -> Query {
    Query {
        terms: words(ts),
        ..Query::default()
    }
}

fn ids(page: &Page<fechatter_shared::search::MessageHit>) -> Vec<i64> {
    let mut ids: Vec<i64> = page.hits.iter().map(|h| h.message_id).collect();
    ids.sort_unstable();
    ids
}

/// Meilisearch settings from the environment with a fresh index name, or
/// None (and the skip line) without `MEILI_URL`.
fn meili_settings() -> Option<SearchSettings> {
    let Ok(url) = std::env::var("MEILI_URL") else {
        eprintln!("skipped: MEILI_URL not set");
        return None;
    };
    let key = std::env::var("MEILI_KEY").unwrap_or_default();
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    Some(SearchSettings::from_values("meilisearch", &url, key, &name).unwrap())
}

/// The URL of the database `pool` points at.
fn database_url(pool: &PgPool) -> String {
    let db = pool
        .connect_options()
        .get_database()
        .unwrap_or("postgres")
        .to_string();
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => base,
    }
}

// ------------------------------------------------- always run (no Meili)

#[test]
fn filter_carries_the_acl_and_every_operator() {
    let as_of = DateTime::parse_from_rfc3339("2026-03-01T12:00:00.123456Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut s = search(vec![3, 7], terms(&["budget"]), 20);
    s.as_of = as_of;
    assert_eq!(
        meili::filter(&s),
        "chatId IN [3, 7] AND createdAt <= 1772366400123",
        "the ACL and the as_of bound are always there"
    );
    s.senders = Some(vec![11]);
    s.mentioned = Some(vec![12, 13]);
    s.query.has_link = true;
    s.query.has_mention = true;
    s.query.since = NaiveDate::from_ymd_opt(2026, 1, 2);
    s.query.until = NaiveDate::from_ymd_opt(2026, 2, 1);
    assert_eq!(
        meili::filter(&s),
        "chatId IN [3, 7] AND createdAt <= 1772366400123 AND senderId IN [11] \
         AND mentions IN [12, 13] AND hasLink = true AND hasMention = true \
         AND createdAt >= 1767312000000 AND createdAt < 1769904000000"
    );
}

#[test]
fn query_text_of_a_parsed_query() {
    let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let q = fechatter_shared::search::parse("Budget -draft \"next week\" q3 has:link", today);
    assert_eq!(meili::query_text(&q), "-draft \"next week\" budget q3");
    let filters_only = fechatter_shared::search::parse("from:ada has:link", today);
    assert_eq!(meili::query_text(&filters_only), "");
}

#[test]
fn documents_are_built_from_rows() {
    let created = DateTime::parse_from_rfc3339("2026-01-05T08:30:00.250999Z")
        .unwrap()
        .with_timezone(&Utc);
    let row = IndexedMessage {
        id: 42,
        chat_id: 7,
        seq: 3,
        sender_id: 5,
        sender_name: "Ada Lovelace".into(),
        content: "see https://example.test".into(),
        created_at: created,
        mentions: vec![6],
        has_link: true,
    };
    let doc = MessageDocument::from(row.clone());
    assert_eq!(doc.created_at, 1767601800250, "unix milliseconds");
    assert!(doc.has_mention && doc.has_link);
    assert_eq!(
        serde_json::to_value(&doc).unwrap(),
        serde_json::json!({
            "id": 42, "chatId": 7, "seq": 3, "senderId": 5, "senderName": "Ada Lovelace",
            "content": "see https://example.test", "createdAt": 1767601800250_i64,
            "mentions": [6], "hasLink": true, "hasMention": true
        })
    );
    let quiet = MessageDocument::from(IndexedMessage {
        mentions: vec![],
        has_link: false,
        ..row
    });
    assert!(!quiet.has_mention && !quiet.has_link);
}

#[test]
fn unreadable_stream_entries_are_skipped() {
    let entry = |id: &str, fields: &[(&str, &str)]| RawEntry {
        id: id.into(),
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let entries = [
        entry("1-0", &[("m", "10")]),
        entry("2-0", &[("m", "x")]),
        entry("3-0", &[]),
        entry("4-0", &[("m", "10")]),
        entry("5-0", &[("other", "1"), ("m", "11")]),
    ];
    assert_eq!(indexer::message_ids(&entries), vec![10, 10, 11]);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn index_rows_are_live_messages_with_sender_names(pool: PgPool) {
    let s = seed(&pool).await;
    let link = message(&pool, s.c1, s.ada, "see https://example.test", &[s.bob]).await;
    let plain = message(&pool, s.c1, s.bob, "plain words", &[]).await;
    let shouting = message(&pool, s.c2, s.bob, "HTTP://LOUD.TEST", &[]).await;
    let gone = message(&pool, s.c2, s.ada, "soon deleted", &[]).await;
    delete(&pool, gone).await;

    let rows = search_index::documents(&pool, &[gone, shouting, plain, link, 999_999])
        .await
        .unwrap();
    let got: Vec<(i64, &str, bool, &[i64])> = rows
        .iter()
        .map(|r| {
            (
                r.id,
                r.sender_name.as_str(),
                r.has_link,
                r.mentions.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (link, "Ada Lovelace", true, &[s.bob][..]),
            (plain, "Bob Stone", false, &[][..]),
            (shouting, "Bob Stone", true, &[][..]),
        ],
        "live rows only, by id; has_link is case-insensitive"
    );
    assert!(search_index::documents(&pool, &[])
        .await
        .unwrap()
        .is_empty());

    let first = search_index::documents_after(&pool, 0, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![link, plain]
    );
    let rest = search_index::documents_after(&pool, plain, 2)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![shouting],
        "deleted messages are not rebuilt"
    );
}

fn entry(chat_id: i64, user_id: i64, ref_id: &str, command: Command) -> IngestEntry {
    IngestEntry {
        chat_id,
        user_id,
        gateway: "gw".into(),
        conn: 1,
        ref_id: ref_id.into(),
        command,
        trace_id: String::new(),
        accepted_ms: 0,
    }
}

fn send(content: &str) -> Command {
    Command::Send {
        content: content.into(),
        reply_to: None,
        mentions: vec![],
        urgent: false,
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn committed_changes_reach_the_index_stream(pool: PgPool) {
    let s = seed(&pool).await;
    let redis = redis().await;
    let keys = keys();
    let ttl = Duration::from_secs(60);
    let publish = |fx: worker::persist::Effects, on: bool| {
        let (redis, keys, pool) = (redis.clone(), keys.clone(), pool.clone());
        async move {
            let target = worker::publish::Target {
                redis: &redis,
                keys: &keys,
                pool: &pool,
                topic_idle_ttl: ttl,
                search_index: on,
            };
            worker::publish::publish(&target, &Default::default(), &fx)
                .await
                .unwrap();
        }
    };

    // The PostgreSQL backend writes nothing.
    let fx = worker::persist::apply_batch(&pool, &[entry(s.c1, s.ada, "a1", send("first"))])
        .await
        .unwrap();
    publish(fx, false).await;
    let len: i64 = redis.xlen(keys.search_index()).await.unwrap();
    assert_eq!(len, 0, "nothing is written with the PostgreSQL backend");

    // With Meilisearch: one entry per new, edited and deleted message.
    let batch = [entry(s.c1, s.ada, "a2", send("second"))];
    let fx = worker::persist::apply_batch(&pool, &batch).await.unwrap();
    let second = fx.topic[0].message_id;
    publish(fx, true).await;
    assert_eq!(stream_ids(&redis, &keys).await, vec![second]);

    // The same batch processed again (a crash before its ingest ack):
    // the duplicate's event is announced, and indexed, again.
    let fx = worker::persist::apply_batch(&pool, &batch).await.unwrap();
    assert_eq!(fx.outcomes, vec![("send", "duplicate")]);
    publish(fx, true).await;
    assert_eq!(stream_ids(&redis, &keys).await, vec![second, second]);

    let fx = worker::persist::apply_batch(
        &pool,
        &[
            entry(
                s.c1,
                s.ada,
                "a3",
                Command::React {
                    message_id: second,
                    emoji: "👍".into(),
                    action: ReactAction::Add,
                },
            ),
            entry(
                s.c1,
                s.ada,
                "a4",
                Command::Edit {
                    message_id: second,
                    content: "second, edited".into(),
                },
            ),
            entry(s.c1, s.ada, "a5", Command::Delete { message_id: second }),
        ],
    )
    .await
    .unwrap();
    assert_eq!(fx.topic.len(), 3, "reaction, edit, delete");
    publish(fx, true).await;
    assert_eq!(
        stream_ids(&redis, &keys).await,
        vec![second, second, second, second],
        "the edit and the delete are indexed, the reaction is not"
    );
    let _: i64 = redis.del(keys.search_index()).await.unwrap();
}

#[tokio::test]
async fn only_indexed_events_are_appended() {
    let redis = redis().await;
    let keys = keys();
    let event = |message_id: i64, indexed: bool| TopicEvent {
        chat_id: 1,
        seq: 1,
        sub: 0,
        event_seq: 1,
        frame: "{}".into(),
        message_id,
        indexed,
        accepted_ms: 0,
    };
    search_events::append(
        &redis,
        &keys,
        &[event(5, true), event(5, false), event(6, true)],
    )
    .await
    .unwrap();
    let mut got = stream_ids(&redis, &keys).await;
    got.sort_unstable();
    assert_eq!(got, vec![5, 6]);
    let _: i64 = redis.del(keys.search_index()).await.unwrap();
}

// -------------------------------------------- against a real Meilisearch

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn meili_search_obeys_acl_edits_deletes_and_paging(pool: PgPool) {
    let Some(settings) = meili_settings() else {
        return;
    };
    let index = MeiliIndex::new(&settings).unwrap();
    index.ensure_settings().await.unwrap();
    let s = seed(&pool).await;
    let mut mine = Vec::new();
    for i in 0..5 {
        let text = format!("alpha report number{i}");
        mine.push(message(&pool, s.c1, s.ada, &text, &[]).await);
    }
    let linked = message(&pool, s.c1, s.bob, "alpha link https://x.test", &[s.ada]).await;
    let secret = message(&pool, s.c2, s.ada, "alpha secret elsewhere", &[]).await;
    let mut all = mine.clone();
    all.extend([linked, secret]);
    let applied = indexer::apply_ids(&pool, &index, &all).await.unwrap();
    assert_eq!(
        applied,
        indexer::Applied {
            upserted: 7,
            deleted: 0
        }
    );

    // ACL: only the chats given.
    let page = index
        .search(&search(vec![s.c1], terms(&["alpha"]), 50))
        .await
        .unwrap();
    let mut expected = mine.clone();
    expected.push(linked);
    assert_eq!(ids(&page), expected);
    assert!(page.next.is_none());
    assert!(page.hits.iter().all(|h| h.chat_id == s.c1));
    let hit = page.hits.iter().find(|h| h.message_id == linked).unwrap();
    assert_eq!(
        (hit.sender_id, hit.sender_name.as_str()),
        (s.bob, "Bob Stone")
    );
    assert!(hit.score > 0.0);

    // Operators.
    let mut q = search(vec![s.c1, s.c2], terms(&["alpha"]), 50);
    q.senders = Some(vec![s.bob]);
    assert_eq!(ids(&index.search(&q).await.unwrap()), vec![linked]);
    let mut q = search(vec![s.c1, s.c2], terms(&["alpha"]), 50);
    q.mentioned = Some(vec![s.ada]);
    assert_eq!(ids(&index.search(&q).await.unwrap()), vec![linked]);
    let mut q = search(vec![s.c1, s.c2], Query::default(), 50);
    q.query.has_link = true;
    let page = index.search(&q).await.unwrap();
    assert_eq!(ids(&page), vec![linked], "a query without words");
    assert_eq!(page.hits[0].score, 0.0);
    let mut q = search(vec![s.c1], terms(&["alpha"]), 50);
    q.query.excluded = words(&["number0"]);
    let page = index.search(&q).await.unwrap();
    assert!(!ids(&page).contains(&mine[0]) && ids(&page).contains(&mine[1]));
    let mut q = search(vec![s.c1], terms(&["alpha"]), 50);
    q.as_of = Utc::now() - chrono::Duration::days(1);
    assert!(index.search(&q).await.unwrap().hits.is_empty(), "as_of");

    // Paging by offset: every hit exactly once.
    let mut seen = Vec::new();
    let mut q = search(vec![s.c1], terms(&["alpha"]), 2);
    let mut pages = 0;
    loop {
        let page = index.search(&q).await.unwrap();
        pages += 1;
        seen.extend(page.hits.iter().map(|h| h.message_id));
        match page.next {
            Some(Position::Offset(n)) => {
                assert_eq!(n, seen.len());
                q.after = page.next;
            }
            None => break,
            Some(other) => panic!("unexpected position {other:?}"),
        }
    }
    assert_eq!(pages, 3);
    seen.sort_unstable();
    assert_eq!(seen, expected);

    // An edit is found by its new text only.
    edit(&pool, mine[1], "omega rewritten").await;
    indexer::apply_ids(&pool, &index, &[mine[1]]).await.unwrap();
    let alpha = index
        .search(&search(vec![s.c1], terms(&["alpha"]), 50))
        .await
        .unwrap();
    assert!(!ids(&alpha).contains(&mine[1]));
    let omega = index
        .search(&search(vec![s.c1], terms(&["omega"]), 50))
        .await
        .unwrap();
    assert_eq!(ids(&omega), vec![mine[1]]);

    // A deleted message disappears.
    delete(&pool, mine[2]).await;
    let applied = indexer::apply_ids(&pool, &index, &[mine[2], mine[2]])
        .await
        .unwrap();
    assert_eq!(
        applied,
        indexer::Applied {
            upserted: 0,
            deleted: 1
        }
    );
    let alpha = index
        .search(&search(vec![s.c1], terms(&["alpha"]), 50))
        .await
        .unwrap();
    assert!(!ids(&alpha).contains(&mine[2]));

    index.drop_index().await.unwrap();
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn meili_indexer_consumes_the_stream(pool: PgPool) {
    let Some(settings) = meili_settings() else {
        return;
    };
    let index = MeiliIndex::new(&settings).unwrap();
    let s = seed(&pool).await;
    let kept = message(&pool, s.c1, s.ada, "gamma kept", &[]).await;
    let gone = message(&pool, s.c1, s.ada, "gamma gone", &[]).await;
    delete(&pool, gone).await;

    let redis = redis().await;
    let keys = keys();
    let event = |message_id| TopicEvent {
        chat_id: s.c1,
        seq: 1,
        sub: 0,
        event_seq: 1,
        frame: "{}".into(),
        message_id,
        indexed: true,
        accepted_ms: 0,
    };
    search_events::append(&redis, &keys, &[event(kept), event(gone)])
        .await
        .unwrap();
    let base = fechatter_shared::metrics::Metrics::new("test");
    let metrics = IndexerMetrics::new(&base);
    let worker = Indexer {
        redis: redis.clone(),
        blocking: self::redis().await,
        pool: pool.clone(),
        keys: keys.clone(),
        consumer: "test-indexer".into(),
        index: index.clone(),
        lease_ttl: Duration::from_secs(2),
        metrics: metrics.clone(),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    let mut drained = false;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let len: i64 = redis.xlen(keys.search_index()).await.unwrap();
        if len == 0 {
            drained = true;
            break;
        }
    }
    stop.cancel();
    task.await.unwrap();
    assert!(drained, "the indexer acknowledged and removed its entries");
    assert_eq!(
        metrics.documents.with_label_values(&["upsert"]).get(),
        1,
        "the live message"
    );
    assert_eq!(metrics.documents.with_label_values(&["delete"]).get(), 1);
    assert!(base.render().contains("fechatter_search_index_lag_seconds"));
    let page = index
        .search(&search(vec![s.c1], terms(&["gamma"]), 50))
        .await
        .unwrap();
    assert_eq!(ids(&page), vec![kept]);
    let lease: Option<String> = redis.get(keys.search_index_lease()).await.unwrap();
    assert_eq!(lease, None, "released at shutdown");

    let _: i64 = redis.del(keys.search_index()).await.unwrap();
    index.drop_index().await.unwrap();
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn meili_reindex_rebuilds_from_postgres(pool: PgPool) {
    let Some(settings) = meili_settings() else {
        return;
    };
    let index = MeiliIndex::new(&settings).unwrap();
    index.ensure_settings().await.unwrap();
    let s = seed(&pool).await;
    let mut live = Vec::new();
    for i in 0..3 {
        live.push(message(&pool, s.c1, s.bob, &format!("delta item{i}"), &[]).await);
    }
    let gone = message(&pool, s.c1, s.bob, "delta deleted", &[]).await;
    delete(&pool, gone).await;
    // A stale document the rebuild must drop, and one live message missing.
    index
        .upsert(&[MessageDocument {
            id: gone,
            chat_id: s.c1,
            seq: 99,
            sender_id: s.bob,
            sender_name: "Bob Stone".into(),
            content: "delta stale".into(),
            created_at: Utc::now().timestamp_millis() - 1000,
            mentions: vec![],
            has_link: false,
            has_mention: false,
        }])
        .await
        .unwrap();

    let mut config = fechatter_shared::Config::for_tests(&database_url(&pool));
    config.search = settings;
    worker::reindex(config).await.unwrap();

    let page = index
        .search(&search(vec![s.c1], terms(&["delta"]), 50))
        .await
        .unwrap();
    assert_eq!(ids(&page), live);
    index.drop_index().await.unwrap();
}

#[tokio::test]
async fn reindex_refuses_the_postgres_backend() {
    let config = fechatter_shared::Config::for_tests("postgres://postgres@127.0.0.1:5432/postgres");
    let e = worker::reindex(config).await.unwrap_err();
    assert!(e.to_string().contains("SEARCH_BACKEND is postgres"), "{e}");
}

// ------------------------------------ against a fake Meilisearch (always)
//
// A stand-in speaking the few endpoints the backend uses, with documents
// kept in memory: it checks the requests the backend sends (index
// creation, settings, documents, task polling, the search body) and lets
// the indexer and `worker reindex` run end to end without a server. It
// does not evaluate filters or rank: searches answer every document,
// newest id first.

mod fake {
    use std::{
        collections::BTreeMap,
        sync::{Arc, Mutex},
    };

    use axum::{
        body::Bytes,
        http::{Method, StatusCode, Uri},
        Router,
    };
    use serde_json::{json, Value};

    #[derive(Default)]
    pub struct State {
        /// (type, error code when the task fails, polls so far)
        tasks: Vec<(String, Option<String>, u32)>,
        pub index_exists: bool,
        pub docs: BTreeMap<i64, Value>,
        /// (method, path and query, body)
        pub requests: Vec<(String, String, Value)>,
        /// Answer this many next document writes with 503.
        pub fail_writes: usize,
        /// Fail (as a task) this many next document writes.
        pub fail_tasks: usize,
    }

    pub type Shared = Arc<Mutex<State>>;

    const AT: &str = "2026-01-01T00:00:00Z";

    fn enqueue(s: &mut State, kind: &str, error: Option<&str>) -> (StatusCode, String) {
        s.tasks
            .push((kind.to_string(), error.map(str::to_string), 0));
        let info = json!({
            "taskUid": s.tasks.len() - 1, "indexUid": "i", "status": "enqueued",
            "type": kind, "enqueuedAt": AT,
        });
        (StatusCode::ACCEPTED, info.to_string())
    }

    fn task(s: &mut State, uid: usize) -> (StatusCode, String) {
        let Some((kind, error, polls)) = s.tasks.get_mut(uid) else {
            return (StatusCode::NOT_FOUND, "{}".into());
        };
        *polls += 1;
        let mut body = json!({
            "uid": uid, "indexUid": "i", "type": kind, "details": null,
            "enqueuedAt": AT, "startedAt": AT, "finishedAt": AT,
            "duration": "PT0.001S", "canceledBy": null, "error": null,
        });
        body["status"] = json!(if *polls == 1 {
            "processing"
        } else if error.is_some() {
            "failed"
        } else {
            "succeeded"
        });
        if *polls > 1 {
            if let Some(code) = error {
                body["error"] = json!({
                    "message": format!("fake {code}"), "code": code,
                    "type": "invalid_request", "link": "https://example.test",
                });
            }
        }
        (StatusCode::OK, body.to_string())
    }

    fn answer(s: &mut State, method: &Method, uri: &Uri, body: Value) -> (StatusCode, String) {
        let path = uri.path();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let write = matches!(parts.as_slice(), ["indexes", _, "documents", ..]);
        if write && s.fail_writes > 0 {
            s.fail_writes -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "down".into());
        }
        let failing = |s: &mut State| {
            (s.fail_tasks > 0).then(|| {
                s.fail_tasks -= 1;
                "invalid_document_fields"
            })
        };
        match (method.as_str(), parts.as_slice()) {
            ("POST", ["indexes"]) => {
                let exists = s.index_exists;
                s.index_exists = true;
                enqueue(s, "indexCreation", exists.then_some("index_already_exists"))
            }
            ("DELETE", ["indexes", _]) => {
                s.index_exists = false;
                s.docs.clear();
                enqueue(s, "indexDeletion", None)
            }
            ("PATCH", ["indexes", _, "settings"]) => enqueue(s, "settingsUpdate", None),
            ("POST", ["indexes", _, "documents"]) => {
                let error = failing(s);
                if error.is_none() {
                    for doc in body.as_array().cloned().unwrap_or_default() {
                        s.docs.insert(doc["id"].as_i64().unwrap(), doc);
                    }
                }
                enqueue(s, "documentAdditionOrUpdate", error)
            }
            ("POST", ["indexes", _, "documents", "delete-batch"]) => {
                let error = failing(s);
                if error.is_none() {
                    for id in body.as_array().cloned().unwrap_or_default() {
                        s.docs.remove(&id.as_i64().unwrap());
                    }
                }
                enqueue(s, "documentDeletion", error)
            }
            ("DELETE", ["indexes", _, "documents"]) => {
                s.docs.clear();
                enqueue(s, "documentDeletion", None)
            }
            ("GET", ["tasks", uid]) => task(s, uid.parse().unwrap_or(usize::MAX)),
            ("POST", ["indexes", _, "search"]) => {
                let offset = body["offset"].as_u64().unwrap_or(0) as usize;
                let limit = body["limit"].as_u64().unwrap_or(20) as usize;
                let hits: Vec<Value> = s
                    .docs
                    .values()
                    .rev()
                    .skip(offset)
                    .take(limit)
                    .map(|d| {
                        let mut d = d.clone();
                        d["_rankingScore"] = json!(0.5);
                        d
                    })
                    .collect();
                let out = json!({
                    "hits": hits, "query": body["q"], "processingTimeMs": 1,
                    "offset": offset, "limit": limit, "estimatedTotalHits": s.docs.len(),
                });
                (StatusCode::OK, out.to_string())
            }
            _ => (StatusCode::NOT_FOUND, "{}".into()),
        }
    }

    /// Starts the fake; returns its base URL and state.
    pub async fn start() -> (String, Shared) {
        let state: Shared = Arc::default();
        let shared = state.clone();
        let app = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
            let state = shared.clone();
            async move {
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut s = state.lock().unwrap();
                let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                s.requests.push((
                    method.to_string(),
                    format!("{}{query}", uri.path()),
                    json.clone(),
                ));
                let (status, body) = answer(&mut s, &method, &uri, json);
                (
                    status,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, state)
    }

    /// The bodies of requests `method path-prefix`.
    pub fn bodies(state: &Shared, method: &str, prefix: &str) -> Vec<(String, Value)> {
        state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(m, p, _)| m == method && p.starts_with(prefix))
            .map(|(_, p, b)| (p.clone(), b.clone()))
            .collect()
    }
}

async fn fake_index() -> (MeiliIndex, SearchSettings, fake::Shared) {
    let (url, state) = fake::start().await;
    let settings =
        SearchSettings::from_values("meilisearch", &url, "fake-key".into(), "msgs").unwrap();
    (MeiliIndex::new(&settings).unwrap(), settings, state)
}

fn doc(id: i64, chat_id: i64) -> MessageDocument {
    MessageDocument {
        id,
        chat_id,
        seq: id,
        sender_id: 1,
        sender_name: "Ada".into(),
        content: format!("text {id}"),
        created_at: 1_767_601_800_000 + id,
        mentions: vec![],
        has_link: false,
        has_mention: false,
    }
}

#[tokio::test]
async fn fake_meili_sees_the_expected_requests() {
    let (index, _, state) = fake_index().await;

    // Settings: the index is created once; an existing one is fine.
    index.ensure_settings().await.unwrap();
    index.ensure_settings().await.unwrap();
    let created = fake::bodies(&state, "POST", "/indexes");
    assert_eq!(
        created[0].1,
        serde_json::json!({"uid": "msgs", "primaryKey": "id"})
    );
    let settings = fake::bodies(&state, "PATCH", "/indexes/msgs/settings");
    assert_eq!(settings.len(), 2);
    let s = &settings[0].1;
    assert_eq!(
        s["filterableAttributes"],
        serde_json::json!([
            "chatId",
            "senderId",
            "createdAt",
            "mentions",
            "hasLink",
            "hasMention"
        ])
    );
    assert_eq!(s["sortableAttributes"], serde_json::json!(["createdAt"]));
    assert_eq!(
        s["searchableAttributes"],
        serde_json::json!(["content", "senderName"])
    );
    assert_eq!(
        s["rankingRules"],
        serde_json::json!([
            "words",
            "typo",
            "proximity",
            "attribute",
            "sort",
            "exactness",
            "createdAt:desc"
        ])
    );

    // Documents: replaced whole, primary key named.
    index
        .upsert(&[doc(1, 7), doc(2, 7), doc(3, 7)])
        .await
        .unwrap();
    let added = fake::bodies(&state, "POST", "/indexes/msgs/documents");
    assert_eq!(added[0].0, "/indexes/msgs/documents?primaryKey=id");
    assert_eq!(added[0].1[0]["chatId"], 7);
    index.delete(&[3]).await.unwrap();
    assert_eq!(
        fake::bodies(&state, "POST", "/indexes/msgs/documents/delete-batch")[0].1,
        serde_json::json!([3])
    );
    index.upsert(&[]).await.unwrap();
    index.delete(&[]).await.unwrap();

    // A search with words: ranked, every word required, limit + 1.
    let mut q = search(vec![7, 8], terms(&["text"]), 1);
    q.query.excluded = words(&["spam"]);
    let page = index.search(&q).await.unwrap();
    let body = fake::bodies(&state, "POST", "/indexes/msgs/search")
        .pop()
        .unwrap()
        .1;
    assert_eq!(body["q"], "-spam text");
    assert_eq!(body["filter"], meili::filter(&q));
    assert!(body["filter"]
        .as_str()
        .unwrap()
        .starts_with("chatId IN [7, 8] AND createdAt <= "));
    assert_eq!(
        (&body["offset"], &body["limit"]),
        (&serde_json::json!(0), &serde_json::json!(2))
    );
    assert_eq!(body["matchingStrategy"], "all");
    assert_eq!(body["showRankingScore"], true);
    assert!(body.get("sort").is_none_or(Value::is_null));
    assert_eq!(page.hits.len(), 1);
    let hit = &page.hits[0];
    assert_eq!(
        (
            hit.message_id,
            hit.chat_id,
            hit.sender_name.as_str(),
            hit.score
        ),
        (2, 7, "Ada", 0.5)
    );
    assert_eq!(hit.created_at.timestamp_millis(), 1_767_601_800_002);
    assert_eq!(page.next, Some(Position::Offset(1)));

    // The next page, then the end.
    q.after = page.next;
    let page = index.search(&q).await.unwrap();
    assert_eq!(ids(&page), vec![1]);
    assert_eq!(page.next, None);

    // Without words: newest first, score 0.
    let mut q = search(vec![7], Query::default(), 10);
    q.query.has_link = true;
    let page = index.search(&q).await.unwrap();
    let body = fake::bodies(&state, "POST", "/indexes/msgs/search")
        .pop()
        .unwrap()
        .1;
    assert_eq!(body["q"], "");
    assert_eq!(body["sort"], serde_json::json!(["createdAt:desc"]));
    assert!(body.get("showRankingScore").is_none_or(Value::is_null));
    assert!(page.hits.iter().all(|h| h.score == 0.0));

    // Never asked without an ACL; a keyset cursor is not ours.
    let before = state.lock().unwrap().requests.len();
    let empty = index
        .search(&search(vec![], terms(&["x"]), 5))
        .await
        .unwrap();
    assert!(empty.hits.is_empty() && empty.next.is_none());
    let mut nobody = search(vec![7], terms(&["x"]), 5);
    nobody.senders = Some(vec![]);
    assert!(index.search(&nobody).await.unwrap().hits.is_empty());
    assert_eq!(state.lock().unwrap().requests.len(), before);
    let mut keyset = search(vec![7], terms(&["x"]), 5);
    keyset.after = Some(Position::Keyset { score: 1.0, id: 1 });
    let e = index.search(&keyset).await.unwrap_err();
    assert_eq!(e.code(), "validation_failed");

    // Refused and unreachable writes are errors (the indexer retries).
    state.lock().unwrap().fail_tasks = 1;
    assert!(index.upsert(&[doc(9, 7)]).await.is_err());
    state.lock().unwrap().fail_writes = 1;
    assert!(index.delete(&[1]).await.is_err());

    index.clear().await.unwrap();
    assert!(state.lock().unwrap().docs.is_empty());
    index.drop_index().await.unwrap();
    assert!(!state.lock().unwrap().index_exists);
}

#[test]
fn a_key_a_header_cannot_carry_is_refused() {
    let settings =
        SearchSettings::from_values("meilisearch", "http://127.0.0.1:7700", "k3y\n".into(), "m")
            .unwrap();
    let e = MeiliIndex::new(&settings).err().unwrap();
    assert!(e.to_string().contains("MEILI_KEY"), "{e}");
}

#[tokio::test]
async fn an_unreachable_meili_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let settings = SearchSettings::from_values("meilisearch", &url, String::new(), "m").unwrap();
    let index = MeiliIndex::new(&settings).unwrap();
    let e = index
        .search(&search(vec![1], terms(&["x"]), 5))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unavailable");
    assert!(index.upsert(&[doc(1, 1)]).await.is_err());
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn fake_meili_indexer_retries_then_applies_the_stream(pool: PgPool) {
    let (index, _, state) = fake_index().await;
    let s = seed(&pool).await;
    let kept = message(&pool, s.c1, s.ada, "kept", &[s.bob]).await;
    let gone = message(&pool, s.c1, s.ada, "gone", &[]).await;
    delete(&pool, gone).await;
    // Meilisearch is down for the first attempts.
    state.lock().unwrap().fail_writes = 2;

    let redis = redis().await;
    let keys = keys();
    let event = |message_id| TopicEvent {
        chat_id: s.c1,
        seq: 1,
        sub: 0,
        event_seq: 1,
        frame: "{}".into(),
        message_id,
        indexed: true,
        accepted_ms: 0,
    };
    search_events::append(&redis, &keys, &[event(kept), event(gone), event(kept)])
        .await
        .unwrap();
    let base = fechatter_shared::metrics::Metrics::new("test");
    let metrics = IndexerMetrics::new(&base);
    let worker = Indexer {
        redis: redis.clone(),
        blocking: self::redis().await,
        pool: pool.clone(),
        keys: keys.clone(),
        consumer: "test-indexer".into(),
        index: index.clone(),
        lease_ttl: Duration::from_secs(2),
        metrics: metrics.clone(),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    let mut drained = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let len: i64 = redis.xlen(keys.search_index()).await.unwrap();
        if len == 0 {
            drained = true;
            break;
        }
        if metrics.failures.get() == 0 {
            continue;
        }
        // While Meilisearch refuses, nothing is acknowledged.
        assert_eq!(len, 3);
    }
    stop.cancel();
    task.await.unwrap();
    assert!(
        drained,
        "applied and acknowledged once Meilisearch came back"
    );
    assert_eq!(metrics.failures.get(), 2);
    assert_eq!(metrics.documents.with_label_values(&["upsert"]).get(), 1);
    assert_eq!(metrics.documents.with_label_values(&["delete"]).get(), 1);
    assert_eq!(metrics.lag.get(), 0.0, "caught up");
    {
        let st = state.lock().unwrap();
        assert_eq!(st.docs.keys().copied().collect::<Vec<_>>(), vec![kept]);
        let d = &st.docs[&kept];
        assert_eq!(
            (&d["senderName"], &d["mentions"], &d["hasMention"]),
            (
                &serde_json::json!("Ada Lovelace"),
                &serde_json::json!([s.bob]),
                &serde_json::json!(true)
            )
        );
    }
    let lease: Option<String> = redis.get(keys.search_index_lease()).await.unwrap();
    assert_eq!(lease, None, "released at shutdown");

    // Entries a dead indexer left pending are claimed by the next holder.
    let _: String = redis
        .xadd(
            keys.search_index(),
            false,
            None,
            "*",
            vec![(search_events::MESSAGE_FIELD, gone.to_string())],
        )
        .await
        .unwrap();
    let _: fred::types::Value = redis
        .xreadgroup(
            indexer::GROUP,
            "dead-worker",
            Some(10),
            None,
            false,
            keys.search_index(),
            ">",
        )
        .await
        .unwrap();
    state
        .lock()
        .unwrap()
        .docs
        .insert(gone, serde_json::json!({"id": gone}));
    let worker = Indexer {
        redis: redis.clone(),
        blocking: self::redis().await,
        pool: pool.clone(),
        keys: keys.clone(),
        consumer: "test-indexer-2".into(),
        index,
        lease_ttl: Duration::from_secs(2),
        metrics: metrics.clone(),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    // Applied, then acknowledged and deleted: wait for both (the second
    // follows the first by a round trip, longer on a loaded machine).
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let len: i64 = redis.xlen(keys.search_index()).await.unwrap();
        if !state.lock().unwrap().docs.contains_key(&gone) && len == 0 {
            break;
        }
    }
    stop.cancel();
    task.await.unwrap();
    assert!(!state.lock().unwrap().docs.contains_key(&gone), "reclaimed");
    let len: i64 = redis.xlen(keys.search_index()).await.unwrap();
    assert_eq!(len, 0);
    let _: i64 = redis.del(keys.search_index()).await.unwrap();
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn fake_meili_reindex_rebuilds_in_pages(pool: PgPool) {
    let (index, settings, state) = fake_index().await;
    let s = seed(&pool).await;
    let mut live = Vec::new();
    for i in 0..3 {
        live.push(message(&pool, s.c1, s.bob, &format!("item{i}"), &[]).await);
    }
    let gone = message(&pool, s.c2, s.bob, "deleted", &[]).await;
    delete(&pool, gone).await;
    index.upsert(&[doc(gone, s.c2)]).await.unwrap();

    let mut config = fechatter_shared::Config::for_tests(&database_url(&pool));
    config.search = settings;
    let redis = redis().await;
    let keys = Keys::new(config.redis_prefix.clone());
    // An indexer holds the lease: reindex takes it over.
    let _: () = redis
        .set(
            keys.search_index_lease(),
            "running-worker",
            Some(Expiration::PX(60_000)),
            None,
            false,
        )
        .await
        .unwrap();
    worker::reindex(config).await.unwrap();
    {
        let st = state.lock().unwrap();
        assert_eq!(st.docs.keys().copied().collect::<Vec<_>>(), live);
        assert!(st
            .requests
            .iter()
            .any(|(m, p, _)| m == "DELETE" && p == "/indexes/msgs/documents"));
    }
    let lease: Option<String> = redis.get(keys.search_index_lease()).await.unwrap();
    assert_eq!(lease, None, "given back");
}
