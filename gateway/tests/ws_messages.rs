//! The durable message path end to end: two gateways, a worker, real
//! PostgreSQL and Redis.

mod common;

use std::time::Duration;

use common::realtime::{seqs, Client, Pool};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn message_reaches_members_on_another_gateway_after_commit(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let (ada, bob, chat) = p.pair().await;

    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut a2 = Client::connect(p.gw(1), &ada).await; // the sender's other device
    let mut b = Client::connect(p.gw(1), &bob).await;
    let id = a.say(chat, "hello bob").await;

    let ack = a.answer(&id).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["payload"]["status"], "ok");
    assert_eq!(ack["payload"]["seq"], 1);
    let message_id = ack["payload"]["messageId"].as_i64().unwrap();
    // Acked means committed.
    let (content,): (String,) = sqlx::query_as("SELECT content FROM messages WHERE id = $1")
        .bind(message_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(content, "hello bob");

    for client in [&mut b, &mut a2] {
        let got = client.expect("message.new").await;
        assert_eq!(got["payload"]["chatId"], chat);
        assert_eq!(got["payload"]["message"]["content"], "hello bob");
        assert_eq!(got["payload"]["message"]["senderId"], ada.id);
        assert_eq!(got["payload"]["message"]["clientId"], id.as_str());
        assert_eq!(got["payload"]["eventId"], "1-0");
        assert_eq!(got["id"], format!("c{chat}:1-0"));
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn concurrent_senders_get_gap_free_ordered_seqs(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let users = [
        p.gw(0).signup("Ada", "Acme").await,
        p.gw(0).signup("Bob", "Acme").await,
        p.gw(0).signup("Cat", "Acme").await,
    ];
    let watcher = p.gw(0).signup("Dan", "Acme").await;
    let ids: Vec<i64> = [&users[1], &users[2], &watcher]
        .iter()
        .map(|u| u.id)
        .collect();
    let chat = p.gw(0).create_chat(&users[0], "group", None, &ids).await["id"]
        .as_i64()
        .unwrap();
    let mut watch = Client::connect(p.gw(1), &watcher).await;

    const EACH: usize = 8; // 3 senders x 8 = 24 < the 10/s burst per user
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let mut c = Client::connect(p.gw(i % 2), u).await;
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut sent = Vec::new();
            for n in 0..EACH {
                sent.push(c.say(chat, &format!("u{i} m{n}")).await);
            }
            for id in sent {
                let ack = c.answer(&id).await;
                assert_eq!(ack["type"], "ack", "{ack}");
                acked.push(ack["payload"]["seq"].as_i64().unwrap());
            }
            acked
        }));
    }
    let mut all_acked = Vec::new();
    for t in tasks {
        let acked = t.await.unwrap();
        let mut sorted = acked.clone();
        sorted.sort();
        assert_eq!(acked, sorted, "one sender's messages keep their order");
        all_acked.extend(acked);
    }
    all_acked.sort();
    let total = (EACH * users.len()) as i64;
    assert_eq!(all_acked, (1..=total).collect::<Vec<_>>());

    let mut received = Vec::new();
    while received.len() < total as usize {
        received.push(watch.expect("message.new").await);
    }
    assert_eq!(
        seqs(&received),
        (1..=total).collect::<Vec<_>>(),
        "delivered in seq order, no gaps, no duplicates"
    );
    let (db_seqs,): (Vec<i64>,) =
        sqlx::query_as("SELECT array_agg(seq ORDER BY seq) FROM messages WHERE chat_id = $1")
            .bind(chat)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(db_seqs, (1..=total).collect::<Vec<_>>());
    assert!(watch
        .collect("message.new", Duration::from_millis(300))
        .await
        .is_empty());
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn retry_with_same_id_returns_original_ack(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(0), &bob).await;

    let payload = json!({ "chatId": chat, "content": "only once" });
    a.send_with_id("retry-1", "message.send", payload.clone())
        .await;
    let first = a.answer("retry-1").await;
    a.send_with_id("retry-1", "message.send", payload.clone())
        .await;
    let second = a.answer("retry-1").await;
    // A retry from a new connection after a reconnect, too.
    a.close().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    a.send_with_id("retry-1", "message.send", payload).await;
    let third = a.answer("retry-1").await;

    assert_eq!(first["payload"]["duplicate"], serde_json::Value::Null);
    for again in [&second, &third] {
        assert_eq!(again["payload"]["messageId"], first["payload"]["messageId"]);
        assert_eq!(again["payload"]["seq"], first["payload"]["seq"]);
        assert_eq!(again["payload"]["duplicate"], true);
    }
    assert_eq!(
        b.collect("message.new", Duration::from_millis(800))
            .await
            .len(),
        1
    );
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages WHERE chat_id = $1")
        .bind(chat)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn edit_delete_and_react_reach_members(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(1), &bob).await;
    let id = a.say(chat, "frist").await;
    let mid = a.answer(&id).await["payload"]["messageId"]
        .as_i64()
        .unwrap();

    // Only the sender edits.
    let bad = b
        .send(
            "message.edit",
            json!({ "messageId": mid, "content": "mine" }),
        )
        .await;
    let err = b.answer(&bad).await;
    assert_eq!(
        (err["type"].as_str(), err["payload"]["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );

    let edit = a
        .send(
            "message.edit",
            json!({ "messageId": mid, "content": "first" }),
        )
        .await;
    assert_eq!(a.answer(&edit).await["type"], "ack");
    let updated = b.expect("message.updated").await;
    assert_eq!(updated["payload"]["message"]["content"], "first");
    assert!(updated["payload"]["message"]["editedAt"].is_string());
    assert_eq!(updated["payload"]["eventId"], "1-1");

    let react = b
        .send(
            "message.react",
            json!({ "messageId": mid, "emoji": "👍", "action": "add" }),
        )
        .await;
    assert_eq!(b.answer(&react).await["payload"]["changed"], true);
    let reaction = a.expect("message.reaction").await;
    assert_eq!(
        reaction["payload"]["reactions"],
        json!([{ "emoji": "👍", "userIds": [bob.id], "count": 1 }])
    );

    let del = a.send("message.delete", json!({ "messageId": mid })).await;
    assert_eq!(a.answer(&del).await["type"], "ack");
    let deleted = b.expect("message.deleted").await;
    assert_eq!(deleted["payload"]["messageId"], mid);
    let (content, deleted_at): (String, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT content, deleted_at FROM messages WHERE id = $1")
            .bind(mid)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(content, "");
    assert!(deleted_at.is_some());
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn members_added_later_receive_without_reconnecting(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let bob = p.gw(0).signup("Bob", "Acme").await;
    let cat = p.gw(0).signup("Cat", "Acme").await;
    let chat = p
        .gw(0)
        .create_chat(&ada, "private_channel", Some("ops"), &[bob.id])
        .await["id"]
        .as_i64()
        .unwrap();
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut c = Client::connect(p.gw(1), &cat).await;

    let (status, _) = p
        .gw(0)
        .post(
            &format!("/api/chat/{chat}/members"),
            &ada,
            json!({ "userIds": [cat.id] }),
        )
        .await;
    assert!(status.is_success());
    let mut changed = c.expect("membership.changed").await;
    assert!(
        changed["payload"]["userEventId"].is_string(),
        "user events carry their stream id: {changed}"
    );
    changed["payload"]
        .as_object_mut()
        .unwrap()
        .remove("userEventId");
    assert_eq!(
        changed["payload"],
        json!({ "chatId": chat, "userId": cat.id, "action": "added" })
    );
    let id = a.say(chat, "welcome cat").await;
    a.answer(&id).await;
    assert_eq!(
        c.expect("message.new").await["payload"]["message"]["content"],
        "welcome cat"
    );

    // Removed: no more deliveries, and writes are refused.
    let (status, _) = p
        .gw(0)
        .call(
            reqwest::Method::DELETE,
            &format!("/api/chat/{chat}/members"),
            Some(&ada.token),
            Some(json!({ "userIds": [cat.id] })),
        )
        .await;
    assert!(status.is_success());
    c.expect_where("membership.changed", |f| {
        f["payload"]["action"] == "removed"
    })
    .await;
    let id = a.say(chat, "bye cat").await;
    a.answer(&id).await;
    assert!(c
        .collect("message.new", Duration::from_millis(500))
        .await
        .is_empty());
    let refused = c.say(chat, "let me in").await;
    assert_eq!(c.answer(&refused).await["payload"]["code"], "not_found");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn rest_paging_returns_messages_in_seq_order_with_reactions(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let bob = p.gw(0).signup("Bob", "Acme").await;
    let eve = p.gw(0).signup("Eve", "Evil").await;
    let chat = p.gw(0).create_chat(&ada, "single", None, &[bob.id]).await["id"]
        .as_i64()
        .unwrap();
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut ids = Vec::new();
    for n in 1..=5 {
        let id = a.say(chat, &format!("m{n}")).await;
        ids.push(a.answer(&id).await["payload"]["messageId"].clone());
    }
    // Reactions made over the socket show in the page (acked = committed).
    for (emoji, action) in [
        ("🎉", "add"),
        ("👍", "add"),
        ("🎉", "remove"),
        ("🎉", "add"),
    ] {
        let react = json!({ "messageId": ids[4], "emoji": emoji, "action": action });
        let id = a.send("message.react", react).await;
        assert_eq!(a.answer(&id).await["payload"]["changed"], true);
    }
    let path = |q: &str| format!("/api/chat/{chat}/messages{q}");
    let page_seqs = |page: &serde_json::Value| -> Vec<i64> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect()
    };
    let (_, page) = p.gw(0).get(&path("?limit=2"), &bob).await;
    let got = page_seqs(&page);
    assert_eq!((got, page["hasMore"].clone()), (vec![4, 5], json!(true)));
    let reactions: Vec<_> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["reactions"].clone())
        .collect();
    // The set and order of `message.reaction`: earliest reaction first (🎉
    // was taken back and made again, after 👍).
    let set = json!([{ "emoji": "👍", "userIds": [ada.id], "count": 1 },
                     { "emoji": "🎉", "userIds": [ada.id], "count": 1 }]);
    assert_eq!(reactions, vec![json!([]), set]);
    let (_, page) = p.gw(0).get(&path("?beforeSeq=4&limit=10"), &bob).await;
    let got = page_seqs(&page);
    assert_eq!(
        (got, page["hasMore"].clone()),
        (vec![1, 2, 3], json!(false))
    );
    let (_, page) = p.gw(0).get(&path("?afterSeq=3"), &bob).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    let (status, body) = p.gw(0).get(&path("?limit=0"), &bob).await;
    common::assert_error(status, &body, 422, "validation_failed");
    let (status, body) = p.gw(0).get(&path("?limit=abc"), &bob).await;
    common::assert_error(status, &body, 400, "bad_request");
    let (status, body) = p.gw(0).get(&path(""), &eve).await;
    common::assert_error(status, &body, 404, "not_found");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn gateways_listen_only_to_chats_with_local_members(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let (ada, bob, chat) = p.pair().await;
    let channel = p.gw(0).state.keys.chat_channel(chat);
    let listeners = |redis: fred::prelude::Client, channel: String| async move {
        let counts: Vec<(String, i64)> =
            fred::prelude::PubsubInterface::pubsub_shardnumsub(&redis, vec![channel])
                .await
                .unwrap();
        counts[0].1
    };
    let redis = p.gw(0).state.redis.clone();
    assert_eq!(listeners(redis.clone(), channel.clone()).await, 0);
    let a = Client::connect(p.gw(0), &ada).await;
    assert_eq!(
        listeners(redis.clone(), channel.clone()).await,
        1,
        "only gw0 has a member"
    );
    let b = Client::connect(p.gw(1), &bob).await;
    assert_eq!(listeners(redis.clone(), channel.clone()).await, 2);
    a.close().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while listeners(redis.clone(), channel.clone()).await != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "gw0 kept listening after its last member left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(b);
}
