//! Per-user event streams against real gateways, a worker, PostgreSQL and
//! Redis: badges reach every device of the user (the sender's other
//! devices included), live frames carry their `userEventId`, a device that
//! was offline replays what it missed with `sync.request {user}`, and the
//! sidebar counts (`session.ready` totals, `GET /api/chat`) are right.

mod common;

use common::realtime::{Client, Pool};
use serde_json::{json, Value};
use sqlx::PgPool;

async fn send_and_wait(c: &mut Client, chat: i64, content: &str, mentions: &[i64]) {
    let id = c
        .send(
            "message.send",
            json!({ "chatId": chat, "content": content, "mentions": mentions }),
        )
        .await;
    let ack = c.answer(&id).await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

async fn user_sync(c: &mut Client, cursor: &str) -> Value {
    let id = c.send("sync.request", json!({ "user": cursor })).await;
    let page = c.expect("sync.user").await;
    let ack = c.answer(&id).await;
    assert_eq!(ack["payload"]["user"], true, "{ack}");
    page["payload"].clone()
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn sidebar_counts_and_the_senders_other_devices(pool: PgPool) {
    let p = Pool::start(pool, 2).await;
    let (ada, bob, chat) = p.pair().await;
    let mut bob_ws = Client::connect(p.gw(0), &bob).await;
    send_and_wait(&mut bob_ws, chat, "one", &[]).await;
    send_and_wait(&mut bob_ws, chat, "two @ada", &[ada.id]).await;

    // The sidebar at login: totals in session.ready, per chat over REST.
    let url = format!("{}?token={}", p.gw(1).ws_url(), ada.token);
    let (mut raw, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures::StreamExt;
    let ready: Value = loop {
        if let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = raw.next().await {
            break serde_json::from_str(&t).unwrap();
        }
    };
    assert_eq!(ready["type"], "session.ready");
    assert_eq!(ready["payload"]["unreadTotal"], 2, "{ready}");
    assert_eq!(ready["payload"]["mentionTotal"], 1, "{ready}");
    assert!(ready["payload"]["userEventId"].is_string(), "{ready}");
    drop(raw);
    let (_, chats) = p.gw(0).get("/api/chat", &ada).await;
    let row = &chats.as_array().unwrap()[0];
    assert_eq!(
        (
            row["id"].as_i64(),
            row["unreadCount"].as_i64(),
            row["mentionCount"].as_i64()
        ),
        (Some(chat), Some(2), Some(1)),
        "{chats}"
    );

    // Ada answers from her laptop: her phone's badge for the chat drops to 0.
    let mut phone = Client::connect(p.gw(0), &ada).await;
    let mut laptop = Client::connect(p.gw(1), &ada).await;
    send_and_wait(&mut laptop, chat, "hi bob", &[]).await;
    let badge = phone
        .expect_where("notification.badge", |f| f["payload"]["chatId"] == chat)
        .await;
    assert_eq!(badge["payload"]["unreadCount"], 0, "{badge}");
    assert_eq!(badge["payload"]["mentionCount"], 0, "{badge}");
    let event_id = badge["payload"]["userEventId"].as_str().unwrap();
    assert!(event_id.contains('-'), "{badge}");
    let (_, chats) = p.gw(0).get("/api/chat", &ada).await;
    assert_eq!(chats[0]["unreadCount"], 0, "{chats}");
    assert_eq!(chats[0]["mentionCount"], 0, "{chats}");
    // Bob's own sends gave his devices badges of 0 (they may still be on
    // their way: the user stream and the ack travel apart); Ada's reply is
    // the first message new to him.
    let bob_badge = bob_ws
        .expect_where("notification.badge", |f| {
            f["payload"]["chatId"] == chat && f["payload"]["unreadCount"] != 0
        })
        .await;
    assert_eq!(bob_badge["payload"]["unreadCount"], 1, "{bob_badge}");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn an_offline_device_replays_its_missed_user_events(pool: PgPool) {
    let p = Pool::start(pool, 2).await;
    let (ada, bob, chat) = p.pair().await;
    let cy = p.gw(0).signup("Cy", "Acme").await;
    let mut bob_ws = Client::connect(p.gw(0), &bob).await;
    send_and_wait(&mut bob_ws, chat, "while you were out", &[]).await;

    // The phone knows the stream up to here, then goes offline.
    let mut phone = Client::connect(p.gw(0), &ada).await;
    let first = user_sync(&mut phone, "0-0").await;
    let cursor = first["cursor"].as_str().unwrap().to_string();
    phone.close().await;

    // Meanwhile: the laptop reads the chat, Cy adds Ada to a group.
    let mut laptop = Client::connect(p.gw(1), &ada).await;
    let id = laptop
        .send("read.mark", json!({ "chatId": chat, "seq": 1 }))
        .await;
    // (The badge is published before the ack.)
    let live_badge = laptop
        .expect_where("notification.badge", |f| f["payload"]["chatId"] == chat)
        .await;
    assert_eq!(laptop.answer(&id).await["type"], "ack");
    let group = p
        .gw(0)
        .create_chat(&cy, "group", None, &[ada.id, bob.id])
        .await["id"]
        .as_i64()
        .unwrap();
    laptop
        .expect_where("membership.changed", |f| f["payload"]["chatId"] == group)
        .await;

    let mut phone = Client::connect(p.gw(0), &ada).await;
    let page = user_sync(&mut phone, &cursor).await;
    assert_eq!(page["tooLarge"], false, "{page}");
    assert_eq!(page["hasMore"], false, "{page}");
    let all = page["events"].as_array().unwrap();
    // The toast of Bob's message is published after its ack, so it may
    // land before or after the first cursor: not part of this check.
    let events: Vec<&Value> = all
        .iter()
        .filter(|e| e["type"] != "notification.toast")
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["notification.badge", "membership.changed"],
        "{page}"
    );
    assert_eq!(events[0]["payload"]["unreadCount"], 0);
    assert_eq!(events[1]["payload"]["chatId"], group);
    assert_eq!(
        page["cursor"],
        all.last().unwrap()["payload"]["userEventId"],
        "{page}"
    );
    // An event has the same frame id and userEventId live and replayed.
    assert_eq!(events[0]["id"], live_badge["id"]);
    assert_eq!(
        events[0]["payload"]["userEventId"],
        live_badge["payload"]["userEventId"]
    );
    // Nothing newer: an empty page at the same cursor.
    let again = user_sync(&mut phone, page["cursor"].as_str().unwrap()).await;
    assert_eq!(again["events"], json!([]));
    assert_eq!(again["cursor"], page["cursor"]);
    // A cursor the stream cannot serve: reload instead.
    let dan = p.gw(0).signup("Dan", "Acme").await;
    let mut dan_ws = Client::connect(p.gw(0), &dan).await;
    let old = user_sync(&mut dan_ws, "5-0").await;
    assert_eq!(old["tooLarge"], true, "{old}");
    // Trimmed: the stream keeps about the last 1000 events; a cursor from
    // before them cannot be served.
    let keys = fechatter_shared::redis::Keys::new(p.config.redis_prefix.clone());
    let redis = &p.gw(0).state.redis;
    for i in 0..1100 {
        let frame = fechatter_shared::protocol::new_frame("x.filler", &json!({ "i": i }));
        fechatter_shared::user_stream::publish(redis, &keys, ada.id, &frame)
            .await
            .unwrap();
    }
    let trimmed = user_sync(&mut phone, &cursor).await;
    assert_eq!(trimmed["tooLarge"], true, "{}", trimmed["cursor"]);
    assert_eq!(trimmed["events"], json!([]));
    // Bad cursors are refused.
    let id = phone
        .send("sync.request", json!({ "user": "latest" }))
        .await;
    assert_eq!(
        phone.answer(&id).await["payload"]["code"],
        "validation_failed"
    );
}
