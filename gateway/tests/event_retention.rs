//! Retention of the event log (issue 13 item 5): the worker deletes
//! events older than `EVENT_RETENTION_DAYS`; messages stay; a sync whose
//! cursor is older than what the log still holds answers `tooLarge`, one
//! after it is served as before.

mod common;

use std::time::Duration;

use common::realtime::{seqs, Client, Pool};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn expired_events_are_deleted_and_sync_before_them_reloads(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    for text in ["old", "recent", "new"] {
        let id = a.say(chat, text).await;
        a.answer(&id).await;
    }
    // The first message's event is 100 days old.
    sqlx::query(
        "UPDATE chat_events SET created_at = now() - interval '100 days'
         WHERE chat_id = $1 AND seq = 1",
    )
    .bind(chat)
    .execute(&pool)
    .await
    .unwrap();

    let state = &p.gw(0).state;
    let deleted = prometheus::IntCounter::new("deleted", "test").unwrap();
    let retention = worker::retention::Retention {
        pool: pool.clone(),
        redis: state.redis.clone(),
        keys: state.keys.clone(),
        keep: Duration::from_secs(90 * 86_400),
        instance: "test".into(),
        deleted: deleted.clone(),
        archived: prometheus::IntCounter::new("archived", "test").unwrap(),
    };
    let n = retention.run_once(&CancellationToken::new()).await.unwrap();
    assert_eq!((n, deleted.get()), (1, 1));
    let (events, messages): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM chat_events WHERE chat_id = $1),
                (SELECT count(*) FROM messages WHERE chat_id = $1)",
    )
    .bind(chat)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((events, messages), (2, 3), "messages are the record: kept");
    assert_eq!(
        retention.run_once(&CancellationToken::new()).await.unwrap(),
        0
    );

    // Sync reads PostgreSQL once the topic stream is gone.
    let _: i64 = fred::prelude::KeysInterface::del(&state.redis, state.keys.chat_topic(chat))
        .await
        .unwrap();
    let mut b = Client::connect(p.gw(0), &bob).await;
    for (cursor, too_large, want) in [(0, true, vec![]), (2, false, vec![3])] {
        b.send(
            "sync.request",
            json!({ "chats": { chat.to_string(): cursor } }),
        )
        .await;
        let resp = b.expect("sync.response").await;
        assert_eq!(
            resp["payload"]["tooLarge"], too_large,
            "from {cursor}: {resp}"
        );
        let events = resp["payload"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(seqs(&events), want, "from {cursor}");
    }
    // The reload the client is told to do still has every message.
    let (status, page) = p
        .gw(0)
        .get(&format!("/api/chat/{chat}/messages"), &bob)
        .await;
    assert!(status.is_success(), "{page}");
    let contents: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert!(contents.contains(&"old"), "{page}");
}
