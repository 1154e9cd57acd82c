//! Sync, typing, read receipts, badges and rate limits over WebSocket.

mod common;

use std::time::Duration;

use common::realtime::{seqs, Client, Pool};
use fred::prelude::*;
use serde_json::json;
use sqlx::PgPool;

/// A member's read watermark as stored in PostgreSQL.
async fn watermark(pool: &PgPool, chat: i64, user: i64) -> i64 {
    let (wm,): (i64,) = sqlx::query_as(
        "SELECT last_read_seq FROM chat_members WHERE chat_id = $1 AND user_id = $2",
    )
    .bind(chat)
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap();
    wm
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn sync_fills_the_gap_from_stream_then_database(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let first = a.say(chat, "seen").await;
    let mid = a.answer(&first).await["payload"]["messageId"]
        .as_i64()
        .unwrap();
    // Bob is offline for these:
    for text in ["m2", "m3"] {
        let id = a.say(chat, text).await;
        a.answer(&id).await;
    }
    let edit = a
        .send(
            "message.edit",
            json!({ "messageId": mid, "content": "seen (edited)" }),
        )
        .await;
    a.answer(&edit).await;

    let mut b = Client::connect(p.gw(1), &bob).await;
    let req = b
        .send("sync.request", json!({ "chats": { chat.to_string(): 1 } }))
        .await;
    let resp = b.expect("sync.response").await;
    assert_eq!(b.answer(&req).await["payload"]["chats"], 1);
    let payload = &resp["payload"];
    assert_eq!(
        (payload["chatId"].as_i64(), payload["lastSeq"].as_i64()),
        (Some(chat), Some(3))
    );
    assert_eq!(
        (payload["tooLarge"].as_bool(), payload["hasMore"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(payload["source"], "stream");
    let kinds: Vec<&str> = payload["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["message.new", "message.new", "message.updated"]);
    let stream_events = payload["events"].clone();
    // Missed read state comes along: Bob's badge and Ada's watermark.
    assert_eq!(
        payload["badge"],
        json!({ "unreadCount": 3, "mentionCount": 0 })
    );
    assert_eq!(
        payload["readReceipts"],
        json!([{ "userId": ada.id, "seq": 3 }])
    );

    // A hole in the stream (an entry lost from Redis) is noticed: PostgreSQL serves the gap.
    let redis = &p.gw(0).state.redis;
    let _: i64 = redis
        .xdel(p.gw(0).state.keys.chat_topic(chat), "2-0")
        .await
        .unwrap();
    b.send("sync.request", json!({ "chats": { chat.to_string(): 1 } }))
        .await;
    let resp = b.expect("sync.response").await;
    assert_eq!(resp["payload"]["source"], "database");
    assert_eq!(resp["payload"]["events"], stream_events);
    // With the stream gone (trimmed, Redis restarted), the same events come from PostgreSQL.
    let redis = &p.gw(0).state.redis;
    let _: i64 = redis
        .del(p.gw(0).state.keys.chat_topic(chat))
        .await
        .unwrap();
    b.send("sync.request", json!({ "chats": { chat.to_string(): 1 } }))
        .await;
    let resp = b.expect("sync.response").await;
    assert_eq!(resp["payload"]["source"], "database");
    assert_eq!(
        resp["payload"]["events"], stream_events,
        "identical frames from either source"
    );
    assert_eq!(
        seqs(&resp["payload"]["events"].as_array().unwrap()[..2]),
        vec![2, 3]
    );

    // A gap over 500 messages: tooLarge, no events.
    sqlx::query("UPDATE chats SET last_seq = 900 WHERE id = $1")
        .bind(chat)
        .execute(&pool)
        .await
        .unwrap();
    b.send("sync.request", json!({ "chats": { chat.to_string(): 3 } }))
        .await;
    let resp = b.expect("sync.response").await;
    assert_eq!(resp["payload"]["tooLarge"], true);
    assert_eq!(resp["payload"]["events"], json!([]));

    // Chats the user is not in are refused per chat, not silently skipped.
    b.send("sync.request", json!({ "chats": { "999999": 0 } }))
        .await;
    let resp = b.expect("sync.response").await;
    assert_eq!(resp["payload"]["error"]["code"], "not_found");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn typing_is_broadcast_throttled_expired_and_stopped_by_send(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(1), &bob).await;

    let t1 = a.send("typing.start", json!({ "chatId": chat })).await;
    assert_eq!(a.answer(&t1).await["payload"]["throttled"], false);
    let on = b.expect("typing.indicator").await;
    assert_eq!(
        on["payload"],
        json!({ "chatId": chat, "userId": ada.id, "displayName": "Ada", "active": true })
    );
    // A second start within a second is throttled and not re-broadcast.
    let t2 = a.send("typing.start", json!({ "chatId": chat })).await;
    assert_eq!(a.answer(&t2).await["payload"]["throttled"], true);
    // Sending a message ends typing before the message arrives.
    let id = a.say(chat, "done typing").await;
    a.answer(&id).await;
    let next = b.next_frame(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (next["type"].as_str(), next["payload"]["active"].as_bool()),
        (Some("typing.indicator"), Some(false))
    );
    assert_eq!(
        b.expect("message.new").await["payload"]["message"]["content"],
        "done typing"
    );

    // Without a new start, typing expires after 5 s.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.send("typing.start", json!({ "chatId": chat })).await;
    b.expect_where("typing.indicator", |f| f["payload"]["active"] == true)
        .await;
    let started = std::time::Instant::now();
    b.expect_where("typing.indicator", |f| f["payload"]["active"] == false)
        .await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(4), "expired after {waited:?}");
    // The typist never sees their own indicator.
    assert!(a
        .collect("typing.indicator", Duration::from_millis(200))
        .await
        .is_empty());
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn read_marks_send_receipts_and_badges(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let bob = p.gw(0).signup("Bob", "Acme").await;
    let cat = p.gw(0).signup("Cat", "Acme").await;
    let chat = p
        .gw(0)
        .create_chat(&ada, "group", None, &[bob.id, cat.id])
        .await["id"]
        .as_i64()
        .unwrap();
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b1 = Client::connect(p.gw(0), &bob).await;
    let mut b2 = Client::connect(p.gw(1), &bob).await;

    let id = a.say(chat, "hi all").await;
    a.answer(&id).await;
    let id = a
        .send(
            "message.send",
            json!({ "chatId": chat, "content": "@bob look", "mentions": [bob.id, 424242] }),
        )
        .await;
    a.answer(&id).await;
    for b in [&mut b1, &mut b2] {
        let badge = b
            .expect_where("notification.badge", |f| f["payload"]["unreadCount"] == 2)
            .await;
        assert_eq!(
            badge["payload"],
            json!({ "chatId": chat, "unreadCount": 2, "mentionCount": 1 })
        );
    }
    let unread_key = p.gw(0).state.keys.unread(bob.id);
    let stored: std::collections::HashMap<String, i64> =
        p.gw(0).state.redis.hgetall(&unread_key).await.unwrap();
    // Only the mention counter is stored per message; unread counts are
    // derived from seqs and stored at read marks.
    assert_eq!(stored.get(&format!("{chat}:m")), Some(&1));

    let mark = b1
        .send("read.mark", json!({ "chatId": chat, "seq": 2 }))
        .await;
    // The ack and the badge race; read until both were seen.
    let cleared = |f: &serde_json::Value| {
        f["type"] == "notification.badge"
            && f["payload"]["unreadCount"] == 0
            && f["payload"]["mentionCount"] == 0
    };
    let (mut acked, mut badge) = (false, false);
    while !(acked && badge) {
        let f = b1
            .next_frame(common::realtime::WAIT)
            .await
            .expect("ack and badge");
        acked |= f["type"] == "ack"
            && f["payload"]["refId"] == mark.as_str()
            && f["payload"]["seq"] == 2;
        badge |= cleared(&f);
    }
    b2.expect_where("notification.badge", cleared).await;
    let receipt = a.expect("read.receipt").await;
    assert_eq!(
        receipt["payload"],
        json!({ "chatId": chat, "userId": bob.id, "seq": 2 })
    );
    // Watermarks are persisted and never move backwards.
    let back = b2
        .send("read.mark", json!({ "chatId": chat, "seq": 1 }))
        .await;
    assert_eq!(b2.answer(&back).await["payload"]["seq"], 2);
    assert_eq!(watermark(&pool, chat, bob.id).await, 2);
    // Marking beyond the newest message clamps to it.
    let far = b2
        .send("read.mark", json!({ "chatId": chat, "seq": 99 }))
        .await;
    assert_eq!(b2.answer(&far).await["payload"]["seq"], 2);
    let stored: std::collections::HashMap<String, i64> =
        p.gw(0).state.redis.hgetall(&unread_key).await.unwrap();
    assert_eq!(
        (
            stored.get(&chat.to_string()),
            stored.get(&format!("{chat}:m"))
        ),
        (Some(&0), Some(&0))
    );

    // New messages count from the new watermark on every gateway, and a
    // connection opened now starts from the same state.
    let id = a.say(chat, "one more").await;
    a.answer(&id).await;
    for b in [&mut b1, &mut b2] {
        let badge = b
            .expect_where("notification.badge", |f| f["payload"]["unreadCount"] == 1)
            .await;
        assert_eq!(badge["payload"]["mentionCount"], 0);
    }
    let mut b3 = Client::connect(p.gw(1), &bob).await;
    let id = a
        .send(
            "message.send",
            json!({ "chatId": chat, "content": "@bob again", "mentions": [bob.id] }),
        )
        .await;
    a.answer(&id).await;
    let badge = b3.expect("notification.badge").await;
    assert_eq!(
        badge["payload"],
        json!({ "chatId": chat, "unreadCount": 2, "mentionCount": 1 })
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn sending_over_the_limit_is_rate_limited(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let (ada, _bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    // 40 sends against a bucket of 10 refilled at 10/s: some are refused
    // even if the sending and the gateway take well over a second (a
    // loaded test machine).
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(a.say(chat, &format!("spam {n}")).await);
    }
    let mut limited = 0;
    let mut acked = 0;
    for id in &ids {
        let answer = a.answer(id).await;
        if answer["type"] == "error" {
            assert_eq!(answer["payload"]["code"], "rate_limited");
            assert!(answer["payload"]["retryAfterMs"]
                .as_u64()
                .is_some_and(|ms| ms > 0 && ms <= 1000));
            limited += 1;
        } else {
            acked += 1;
        }
    }
    assert!(acked >= 10, "the burst of 10 passes, got {acked}");
    assert!(limited >= 1, "beyond the burst some are refused");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, acked, "refused messages are not stored");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn read_marks_over_the_limit_are_coalesced(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    for n in 1..=9 {
        let id = a.say(chat, &format!("m{n}")).await;
        a.answer(&id).await;
    }
    let mut b = Client::connect(p.gw(0), &bob).await;
    let mut ids = Vec::new();
    for seq in 1..=9 {
        ids.push(
            b.send("read.mark", json!({ "chatId": chat, "seq": seq }))
                .await,
        );
    }
    let mut coalesced = 0;
    let mut last_seq = 0;
    for id in &ids {
        let answer = b.answer(id).await;
        assert_eq!(answer["type"], "ack", "no read mark is refused: {answer}");
        if answer["payload"]["coalesced"] == true {
            coalesced += 1;
        } else {
            last_seq = last_seq.max(answer["payload"]["seq"].as_i64().unwrap());
        }
    }
    assert!(coalesced >= 1, "beyond 5/s marks are coalesced");
    assert_eq!(last_seq, 9, "the newest mark is applied");
    assert_eq!(watermark(&pool, chat, bob.id).await, 9);
}
