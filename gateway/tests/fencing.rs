//! Fenced shard leases and the contiguous per-chat event counter (issue 11
//! item 2): two workers forced onto one ingest shard, then a Redis restart,
//! under traffic with sends, edits and reactions retried like real clients
//! retry them. Afterwards the event log numbers every event 1..N without a
//! hole, and a member connected throughout received each of them exactly
//! once, in order.

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{
    realtime::{Client, Pool},
    redis_server::RedisServer,
};
use fechatter_shared::redis::Keys;
use fred::prelude::*;
use serde_json::{json, Value};
use sqlx::PgPool;

/// Sends a write and retries it with the same frame id until it is
/// answered with an ack (a real client's loop); returns the ack.
async fn write(a: &mut Client, id: &str, kind: &str, payload: Value) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        a.send_with_id(id, kind, payload.clone()).await;
        match a.try_answer(id, Duration::from_secs(5)).await {
            Some(f) if f["type"] == "ack" => return f,
            Some(f) if f["payload"]["code"] == "rate_limited" => {
                let ms = f["payload"]["retryAfterMs"].as_u64().unwrap();
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Some(f) => {
                assert_eq!(f["payload"]["code"], "unavailable", "{kind} refused: {f}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{kind} {id} never acked"
        );
    }
}

/// Hands the shard's lease to the worker that does not hold it, behind
/// the holder's back: until its next renewal both believe they own it.
async fn steal_lease(url: &str, keys: &Keys) -> String {
    let redis = connect(url).await;
    let lease = keys.ingest_lease(0);
    let holder: Option<String> = redis.get(&lease).await.unwrap();
    let workers: Vec<String> = redis
        .zrange(keys.workers(), 0, -1, None, false, None, false)
        .await
        .unwrap();
    let other = workers
        .into_iter()
        .find(|w| Some(w) != holder.as_ref())
        .expect("two workers registered");
    let _: () = redis
        .set(
            &lease,
            other.as_str(),
            Some(Expiration::PX(3000)),
            None,
            false,
        )
        .await
        .unwrap();
    other
}

/// A fresh client (the test's own connections do not outlive the Redis
/// restart).
async fn connect(url: &str) -> fred::clients::Client {
    let redis = fred::clients::Client::new(
        fred::types::config::Config::from_url(url).unwrap(),
        None,
        None,
        None,
    );
    redis.init().await.unwrap();
    redis
}

/// Frames of kind message.* in `frames`, as (frame id, eventSeq).
fn events(frames: &[Value]) -> Vec<(String, i64)> {
    frames
        .iter()
        .filter(|f| {
            f["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("message."))
        })
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["payload"]["eventSeq"]
                    .as_i64()
                    .expect("every chat event has eventSeq"),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn two_holders_and_a_redis_restart_lose_and_repeat_nothing(pool: PgPool) {
    if std::env::var("RUST_LOG").is_ok() {
        fechatter_shared::telemetry::init("text");
    }
    let mut server = RedisServer::start().await;
    let url = server.url();
    let mut p = Pool::start_without_worker(pool.clone(), 1, |c| {
        c.redis_url = url.clone();
        c.ingest_shards = 1;
        c.lease_ttl = Duration::from_millis(3000);
    })
    .await;
    p.add_worker().await;
    p.add_worker().await;
    let keys = Keys::new(p.config.redis_prefix.clone());
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(0), &bob).await;

    let redis = connect(&url).await;
    // Wait for both workers to register and one to lease the shard.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while redis.zcard::<i64, _>(keys.workers()).await.unwrap() < 2
        || redis
            .get::<Option<String>, _>(keys.ingest_lease(0))
            .await
            .unwrap()
            .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "workers did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut received = Vec::new();
    let mut messages = Vec::new();
    for i in 0..60 {
        if i == 15 || i == 35 {
            steal_lease(&url, &keys).await;
        }
        if i == 25 {
            server.kill().await;
            server.restart().await;
        }
        let ack = write(
            &mut a,
            &format!("m{i}"),
            "message.send",
            json!({ "chatId": chat, "content": format!("message {i}") }),
        )
        .await;
        let id = ack["payload"]["messageId"].as_i64().unwrap();
        messages.push(id);
        if i % 3 == 2 {
            let target = messages[i / 2];
            write(
                &mut a,
                &format!("e{i}"),
                "message.edit",
                json!({ "chatId": chat, "messageId": target, "content": format!("edited {i}") }),
            )
            .await;
        }
        if i % 4 == 3 {
            let target = messages[i / 3];
            write(
                &mut a,
                &format!("r{i}"),
                "message.react",
                json!({ "chatId": chat, "messageId": target, "emoji": format!("e{i}"), "action": "add" }),
            )
            .await;
        }
        while let Some(f) = b.next_frame(Duration::from_millis(1)).await {
            received.push(f);
        }
    }

    // The event log: 60 messages, 20 edits, 15 reactions, numbered 1..95.
    let numbers: Vec<i64> = sqlx::query_scalar(
        "SELECT event_seq FROM chat_events WHERE chat_id = $1 ORDER BY event_seq",
    )
    .bind(chat)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        numbers,
        (1..=95).collect::<Vec<i64>>(),
        "event log has holes or extras"
    );
    let fences: i64 = sqlx::query_scalar("SELECT epoch FROM shard_fences WHERE shard = 0")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        fences >= 3,
        "the shard changed hands at least twice (epoch {fences})"
    );

    // Bob, connected throughout, got every event once and in order.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while events(&received).len() < 95 && std::time::Instant::now() < deadline {
        if let Some(f) = b.next_frame(Duration::from_millis(500)).await {
            received.push(f);
        }
    }
    let got = events(&received);
    let ids: BTreeSet<&String> = got.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), got.len(), "a frame was delivered twice");
    let order: Vec<i64> = got.iter().map(|&(_, n)| n).collect();
    assert_eq!(
        order,
        (1..=95).collect::<Vec<i64>>(),
        "events lost or out of order"
    );
}
