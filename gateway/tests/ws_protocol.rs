//! Bad input, authentication, connection limits, timeouts and shutdown:
//! every case answers with an error frame or a documented close code,
//! never a crash and never silence.

mod common;

use std::time::Duration;

use common::realtime::{Client, Pool};
use futures::SinkExt;
use serde_json::json;
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn bad_frames_get_error_frames_and_the_connection_survives(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let eve = p.gw(0).signup("Eve", "Evil").await;
    let foreign = p
        .gw(0)
        .create_chat(&eve, "public_channel", Some("evil"), &[])
        .await["id"]
        .as_i64()
        .unwrap();
    let mut a = Client::connect(p.gw(0), &ada).await;

    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        ("{not json", "invalid_json", None),
        ("[1, 2]", "validation_failed", None),
        (
            r#"{"type":"message.send","payload":{}}"#,
            "validation_failed",
            None,
        ),
        (
            r#"{"type":"no.such.type","id":"u1"}"#,
            "bad_request",
            Some("u1"),
        ),
        (
            r#"{"id":"u2","payload":{}}"#,
            "validation_failed",
            Some("u2"),
        ),
        (
            r#"{"type":"message.send","id":"u3","payload":{"content":"x"}}"#,
            "validation_failed",
            Some("u3"),
        ),
        (
            r#"{"type":"message.send","id":"u4","payload":{"chatId":"one","content":"x"}}"#,
            "validation_failed",
            Some("u4"),
        ),
        (
            r#"{"type":"typing.start","id":"u5","payload":{"chatId":123456}}"#,
            "not_found",
            Some("u5"),
        ),
        (
            r#"{"type":"read.mark","id":"u6","payload":{"chatId":1,"seq":-1}}"#,
            "not_found",
            Some("u6"),
        ),
        (
            r#"{"type":"message.edit","id":"u7","payload":{"messageId":99999,"content":"x"}}"#,
            "not_found",
            Some("u7"),
        ),
        (
            r#"{"type":"message.react","id":"u8","payload":{"messageId":1,"emoji":"x","action":"poke"}}"#,
            "validation_failed",
            Some("u8"),
        ),
    ];
    for (text, code, ref_id) in cases {
        a.send_raw(text).await;
        let err = a.expect("error").await;
        assert_eq!(err["payload"]["code"], code, "for {text}: {err}");
        assert_eq!(err["payload"]["refId"].as_str(), ref_id, "for {text}");
        assert!(err["payload"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // A chat of another workspace is just "not found".
    let id = a.say(foreign, "hello?").await;
    assert_eq!(a.answer(&id).await["payload"]["code"], "not_found");
    // Empty content.
    let id = a
        .send(
            "message.send",
            json!({ "chatId": foreign, "content": "   " }),
        )
        .await;
    assert_eq!(a.answer(&id).await["type"], "error");
    // Binary frames are refused with an error.
    a.ws.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(a.expect("error").await["payload"]["code"], "bad_request");
    // Still alive.
    let ping = a.send("ping", json!({})).await;
    assert_eq!(a.answer(&ping).await["type"], "ack");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn oversized_frame_is_refused_with_close_1009(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let big = json!({ "type": "message.send", "id": "big", "payload": { "chatId": 1, "content": "x".repeat(70 * 1024) } });
    a.send_raw(&big.to_string()).await;
    let err = a.expect("error").await;
    assert_eq!(err["payload"]["code"], "payload_too_large");
    assert_eq!(a.closed().await, Some(1009));
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn upgrade_requires_a_valid_token(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let url = p.gw(0).ws_url();
    for bad in [url.clone(), format!("{url}?token=garbage")] {
        let err = tokio_tungstenite::connect_async(bad).await.unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
            other => panic!("expected HTTP 401, got {other}"),
        }
    }
    // Both ways of passing a valid token work.
    Client::connect(p.gw(0), &ada).await;
    Client::connect_with_header(p.gw(0), &ada).await;
    // A plain GET without the upgrade headers is a clear 400.
    let (status, body) = p.gw(0).get("/ws", &ada).await;
    common::assert_error(status, &body, 400, "bad_request");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn sixth_connection_closes_the_oldest_across_gateways(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let mut oldest = Client::connect(p.gw(1), &ada).await;
    let mut others = Vec::new();
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        others.push(Client::connect(p.gw(i % 2), &ada).await);
    }
    assert_eq!(oldest.closed().await, Some(4001));
    for c in &mut others {
        let ping = c.send("ping", json!({})).await;
        assert_eq!(c.answer(&ping).await["type"], "ack");
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn idle_connections_are_closed(pool: PgPool) {
    let p = Pool::start_with(pool.clone(), 1, |c| {
        c.heartbeat_interval = Duration::from_millis(200);
        c.heartbeat_timeout = Duration::from_millis(2000);
        c.idle_timeout = Duration::from_millis(800);
    })
    .await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    // Reading (and so answering pings) is not activity; sending is.
    let started = std::time::Instant::now();
    assert_eq!(a.closed().await, Some(4002));
    assert!(started.elapsed() >= Duration::from_millis(700));
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn silent_peers_are_closed_after_the_heartbeat_timeout(pool: PgPool) {
    let p = Pool::start_with(pool.clone(), 1, |c| {
        c.heartbeat_interval = Duration::from_millis(100);
        c.heartbeat_timeout = Duration::from_millis(600);
    })
    .await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    // Not reading at all: pings go unanswered, so the gateway gives up on
    // the peer. (The client cannot read the 4000 close frame: its pending
    // pong write fails first on the closed socket.)
    assert_eq!(p.gw(0).state.hub.connection_count(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while p.gw(0).state.hub.connection_count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "silent connection still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ended = false;
    while let Some(f) = futures::StreamExt::next(&mut a.ws).await {
        if matches!(f, Ok(Message::Close(_)) | Err(_)) {
            ended = true;
            break;
        }
    }
    assert!(ended || futures::StreamExt::next(&mut a.ws).await.is_none());
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn shutdown_closes_sessions_with_1001(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut a2 = Client::connect(p.gw(0), &ada).await;
    p.gw(0).shutdown();
    assert_eq!(a.closed().await, Some(1001));
    assert_eq!(a2.closed().await, Some(1001));
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn expiring_tokens_are_refreshed_in_band_or_the_connection_closes(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let bob = p.gw(0).signup("Bob", "Acme").await;
    let now = chrono::Utc::now().timestamp();
    // Expires in 2 s: inside the warning window at once.
    let short = common::TestUser {
        token: p.gw(0).mint(&ada, "Ada", now, now + 2),
        ..ada.clone()
    };
    let mut a = Client::connect(p.gw(0), &short).await;
    let warn = a.expect("token.refresh").await;
    assert_eq!(
        warn["payload"]["expiresAt"],
        fechatter_shared::protocol::rfc3339(now + 2),
        "timestamps are RFC 3339 strings"
    );
    // Another user's token is refused.
    let wrong = a
        .send("auth.refresh", json!({ "accessToken": bob.token }))
        .await;
    assert_eq!(a.answer(&wrong).await["payload"]["code"], "forbidden");
    let ok = a
        .send("auth.refresh", json!({ "accessToken": ada.token }))
        .await;
    assert_eq!(a.answer(&ok).await["type"], "ack");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ping = a.send("ping", json!({})).await;
    assert_eq!(
        a.answer(&ping).await["type"],
        "ack",
        "refreshed connection outlives the first token"
    );

    let mut b = Client::connect(
        p.gw(0),
        &common::TestUser {
            token: p.gw(0).mint(&bob, "Bob", now, now + 1),
            ..bob.clone()
        },
    )
    .await;
    assert_eq!(b.closed().await, Some(4401));
}
