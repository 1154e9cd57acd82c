//! An ingest entry the worker cannot read (garbage, or a write kind a
//! newer gateway queued during a rolling upgrade) is moved to the
//! dead-letter stream with its text, the shard goes on, and writes queued
//! after it commit (worker/src/consumer.rs, settle.rs).

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::realtime::{Client, Pool};
use fred::prelude::*;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn an_unreadable_entry_is_dead_lettered_with_its_text_and_the_shard_goes_on(pool: PgPool) {
    let mut p = Pool::start_without_worker(pool, 1, |_| {}).await;
    let (ada, _bob, chat) = p.pair().await;
    let state = p.gw(0).state.clone();
    let shard = state.keys.ingest(chat, state.config.ingest_shards);
    // A kind no worker knows, queued ahead of a real send.
    let future = json!({"chatId": chat, "userId": ada.id, "gateway": "gw0", "conn": 1,
                        "refId": "r1", "command": {"kind": "fromTheFuture"}})
    .to_string();
    let _: String = state
        .redis
        .xadd(&shard, false, None, "*", ("e", future.as_str()))
        .await
        .unwrap();
    let mut a = Client::connect(p.gw(0), &ada).await;
    let said = a.say(chat, "after the poison").await;
    p.add_worker().await;
    let ack = a.answer(&said).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["payload"]["seq"], 1);

    let dead_letters = state.keys.dead_letter();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let parked = loop {
        let entries: Vec<(String, BTreeMap<String, String>)> = state
            .redis
            .xrange(&dead_letters, "-", "+", None)
            .await
            .unwrap();
        if let Some((_, fields)) = entries.into_iter().next() {
            break fields;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(parked["entry"], future, "kept as it was, for a replay");
    assert_eq!(parked["stream"], shard);
    assert!(parked["reason"].contains("unreadable entry"), "{parked:?}");
    let pending: Value = state
        .redis
        .xpending(&shard, fechatter_shared::ingest::GROUP, ())
        .await
        .unwrap();
    assert_eq!(
        pending.into_array().first().and_then(|v| v.as_u64()),
        Some(0),
        "nothing left pending"
    );
}
