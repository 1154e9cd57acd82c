//! `chat.updated`: a rename, a read-only switch or an ownership transfer
//! over REST is committed by the worker as a chat event, reaches the
//! members live in order with the chat's messages, numbered in its
//! `eventSeq`, and comes back through `sync.request`.

mod common;

use common::{
    assert_error,
    realtime::{Client, Pool},
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn chat_changes_reach_members_as_numbered_chat_events(pool: PgPool) {
    let p = Pool::start(pool, 1).await;
    let app = p.gw(0);
    let ada = app.signup("Ada", "Acme").await;
    let bob = app.signup("Bob", "Acme").await;
    let cat = app.signup("Cat", "Acme").await;
    let chat = app
        .create_chat(&ada, "private_channel", Some("launch"), &[bob.id, cat.id])
        .await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/chat/{chat}");
    let mut b = Client::connect(app, &bob).await;
    let mut a = Client::connect(app, &ada).await;
    let said = a.say(chat, "hello").await;
    assert_eq!(a.answer(&said).await["type"], "ack");
    b.expect("message.new").await;

    // 1. A plain member may not; nothing to change is no event.
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&cat.token),
            Some(json!({"readOnly": true})),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = app
        .call(Method::PATCH, &path, Some(&ada.token), Some(json!({})))
        .await;
    assert_eq!(
        (status, body["name"].as_str()),
        (StatusCode::OK, Some("launch"))
    );

    // 2. A rename and read-only switch: answered with the changed chat,
    //    announced as event 1-1, eventSeq 2.
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"name": "broadcast", "readOnly": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["readOnly"].as_bool()),
        (Some("broadcast"), Some(true))
    );
    let renamed = b.expect("chat.updated").await;
    assert_eq!(renamed["id"], format!("c{chat}:1-1"));
    let payload = &renamed["payload"];
    assert_eq!(
        (
            payload["chatId"].as_i64(),
            payload["eventId"].as_str(),
            payload["eventSeq"].as_i64()
        ),
        (Some(chat), Some("1-1"), Some(2))
    );
    assert_eq!(payload["userId"], ada.id);
    assert_eq!(payload["chat"]["name"], "broadcast");
    assert_eq!(payload["chat"]["readOnly"], true);
    assert_eq!(payload["roles"], json!([]));

    // 3. An ownership transfer names the changed roles.
    let token = ada.token.as_str();
    let transfer = |to: i64| {
        let url = format!("{path}/members/{to}");
        async move { app.call(Method::PATCH, &url, Some(token), None).await }
    };
    let (status, body) = transfer(bob.id).await;
    assert_eq!(
        (status, body["ownerId"].as_i64()),
        (StatusCode::OK, Some(bob.id))
    );
    let moved = b.expect("chat.updated").await;
    assert_eq!(moved["payload"]["eventSeq"], 3);
    assert_eq!(moved["payload"]["chat"]["ownerId"], bob.id);
    assert_eq!(
        moved["payload"]["roles"],
        json!([{"userId": bob.id, "role": "owner"}, {"userId": ada.id, "role": "admin"}])
    );
    // A repeat of the transfer that committed (say after a 503) is done.
    let (status, body) = transfer(bob.id).await;
    assert_eq!(
        (status, body["ownerId"].as_i64()),
        (StatusCode::OK, Some(bob.id))
    );
    // Ada is an admin now: she still renames, but transfers no more.
    let (status, body) = transfer(cat.id).await;
    assert_error(status, &body, 403, "forbidden");

    // 4. The next message follows in the same numbering (an admin still
    //    posts in a read-only channel).
    let said = a.say(chat, "still mine to post").await;
    assert_eq!(a.answer(&said).await["type"], "ack");
    let next = b.expect("message.new").await;
    assert_eq!(next["payload"]["eventSeq"], 4);

    // 5. A member who was away gets both changes through sync, in order.
    let mut c = Client::connect(app, &cat).await;
    let id = c
        .send("sync.request", json!({ "chats": { chat.to_string(): 0 } }))
        .await;
    let page = c.expect("sync.response").await;
    assert_eq!(c.answer(&id).await["type"], "ack");
    let events: Vec<(String, i64)> = page["payload"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e: &Value| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["payload"]["eventSeq"].as_i64().unwrap(),
            )
        })
        .collect();
    let kinds: Vec<(&str, i64)> = events.iter().map(|(k, n)| (k.as_str(), *n)).collect();
    assert_eq!(
        kinds,
        [
            ("message.new", 1),
            ("chat.updated", 2),
            ("chat.updated", 3),
            ("message.new", 4)
        ]
    );
    assert_eq!(
        page["payload"]["events"][1], renamed,
        "the same frame, live or synced"
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn chat_changes_have_a_budget_and_refuse_text_postgres_cannot_store(pool: PgPool) {
    let p = Pool::start(pool, 1).await;
    let app = p.gw(0);
    let ada = app.signup("Ada", "Acme").await;
    let bob = app.signup("Bob", "Acme").await;
    let chat = app
        .create_chat(&ada, "private_channel", Some("launch"), &[bob.id])
        .await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/chat/{chat}");
    for bad in [json!({"name": "a\0b"}), json!({"description": "a\0b"})] {
        let (status, body) = app
            .call(Method::PATCH, &path, Some(&ada.token), Some(bad))
            .await;
        assert_error(status, &body, 422, "validation_failed");
    }
    // Nor when creating a chat (every REST body is checked for NUL).
    for bad in [
        json!({"type": "private_channel", "name": "a\0b", "members": [bob.id]}),
        json!({"type": "private_channel", "name": "ok", "description": "a\0b", "members": [bob.id]}),
    ] {
        let (status, body) = app.post("/api/chat", &ada, bad).await;
        assert_error(status, &body, 422, "validation_failed");
    }
    // A burst of five changes, then 429 with a retry hint.
    for i in 0..5 {
        let (status, body) = app
            .call(
                Method::PATCH,
                &path,
                Some(&ada.token),
                Some(json!({"description": format!("v{i}")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&ada.token),
            Some(json!({"description": "v5"})),
        )
        .await;
    assert_error(status, &body, 429, "rate_limited");
    assert!(
        body["error"]["retryAfterMs"].as_u64().unwrap() > 0,
        "{body}"
    );
    let (_, now) = app.get(&path, &ada).await;
    assert_eq!(
        now["description"], "v4",
        "the refused change did not commit"
    );
}
