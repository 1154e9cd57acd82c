//! Abuse resistance: brute force on the auth routes, `sync.request`
//! floods, removed members that try to keep reading, mismatched
//! deployments, and the protocol defects a black-box client found.

mod common;

use std::time::Duration;

use common::{
    assert_error,
    realtime::{Client, Pool},
    spawn_with,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

async fn signin_from(
    app: &common::TestApp,
    forwarded: &str,
    email: &str,
) -> (StatusCode, Option<String>) {
    signin_with(app, forwarded, email, "wrong password!").await
}

async fn signin_with(
    app: &common::TestApp,
    forwarded: &str,
    email: &str,
    password: &str,
) -> (StatusCode, Option<String>) {
    let res = app
        .http
        .post(format!("{}/api/signin", app.base))
        .header("x-forwarded-for", forwarded)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (res.status(), retry)
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn auth_routes_are_limited_per_address_and_per_account(pool: PgPool) {
    let app = spawn_with(pool, |c| {
        c.auth_ip_per_minute = 3;
        c.auth_account_per_minute = 5;
    })
    .await;
    // Per address: the loopback peer is a trusted proxy, so the forwarded
    // address is the client; three attempts, then 429 with Retry-After.
    for _ in 0..3 {
        let (status, _) = signin_from(&app, "203.0.113.1", "a@x.test").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, retry) = signin_from(&app, "203.0.113.1", "b@x.test").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
    // Another address has its own bucket.
    let (status, _) = signin_from(&app, "203.0.113.2", "b@x.test").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Sign-up and refresh take from the same address bucket.
    let (status, body) = app
        .http
        .post(format!("{}/api/refresh", app.base))
        .header("x-forwarded-for", "203.0.113.1")
        .json(&json!({ "refreshToken": "x" }))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body:?}");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn failed_signins_are_limited_per_account_without_locking_the_owner_out(pool: PgPool) {
    let app = spawn_with(pool, |c| {
        c.auth_ip_per_minute = 1000;
        c.auth_account_per_minute = 2;
    })
    .await;
    app.signup("Vic", "Acme").await;
    let email = "vic@acme.test";
    let right = "correct horse battery";
    // A guesser from one network: two failures, then refused even with
    // the right password (the guesser cannot tell it was right).
    for _ in 0..2 {
        assert_eq!(
            signin_from(&app, "198.51.100.1", email).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, retry) = signin_with(&app, "198.51.100.1", email, right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some());
    // The owner, elsewhere, signs in; correct sign-ins cost nothing.
    for _ in 0..5 {
        assert_eq!(
            signin_with(&app, "203.0.113.50", email, right).await.0,
            StatusCode::OK
        );
    }
    // Guessing from many networks runs into the account-wide ceiling
    // (ten times the per-network limit: 20 failures).
    let mut statuses = Vec::new();
    for i in 0..12 {
        for _ in 0..2 {
            statuses.push(signin_from(&app, &format!("192.0.2.{i}"), email).await.0);
        }
    }
    assert!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count()
            <= 20,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn forwarded_for_from_an_untrusted_peer_is_ignored(pool: PgPool) {
    let app = spawn_with(pool, |c| {
        c.auth_ip_per_minute = 2;
        c.trusted_proxies = vec!["10.255.255.1/32".parse().unwrap()];
    })
    .await;
    // Rotating X-Forwarded-For does not buy fresh buckets: the peer
    // (loopback, not trusted here) is the address.
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(
            signin_from(&app, &format!("192.0.2.{i}"), "a@x.test")
                .await
                .0,
        );
    }
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn sync_is_rate_limited_paged_by_bytes_and_rechecks_membership(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    // 40 messages of 10,000 characters: 400 kB, more than one response.
    for i in 0..40 {
        let id = a.say(chat, &format!("{i:05}{}", "x".repeat(9_995))).await;
        assert_eq!(a.answer(&id).await["type"], "ack");
        tokio::time::sleep(Duration::from_millis(100)).await; // send limit 10/s
    }
    let mut b = Client::connect(p.gw(0), &bob).await;
    let id = b
        .send("sync.request", json!({ "chats": { chat.to_string(): 0 } }))
        .await;
    let page = b.expect("sync.response").await;
    assert_eq!(b.answer(&id).await["type"], "ack");
    let events = page["payload"]["events"].as_array().unwrap();
    assert!(page["payload"]["hasMore"].as_bool().unwrap(), "paged");
    assert!(!events.is_empty() && events.len() < 40, "{}", events.len());
    assert!(page.to_string().len() < 300 * 1024);

    // A burst of sync requests runs into the limit.
    let mut limited = None;
    for _ in 0..15 {
        let id = b.send("sync.request", json!({ "chats": {} })).await;
        let answer = b.answer(&id).await;
        if answer["type"] == "error" {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("sync.request is rate limited");
    assert_eq!(limited["payload"]["code"], "rate_limited");
    assert!(limited["payload"]["retryAfterMs"].as_u64().unwrap() > 0);

    // Bob is removed behind the gateway's back (no notice reaches it):
    // PostgreSQL decides, and his next sync of the chat is refused.
    sqlx::query("DELETE FROM chat_members WHERE chat_id = $1 AND user_id = $2")
        .bind(chat)
        .bind(bob.id)
        .execute(&pool)
        .await
        .unwrap();
    let mut b2 = Client::connect(p.gw(0), &bob).await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // a sync token again
    let _ = b2
        .send("sync.request", json!({ "chats": { chat.to_string(): 0 } }))
        .await;
    let refused = b2.expect("sync.response").await;
    assert_eq!(
        refused["payload"]["error"]["code"], "not_found",
        "{refused}"
    );
    assert!(refused["payload"].get("events").is_none());
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn session_ready_comes_first_even_under_traffic(pool: PgPool) {
    let p = Pool::start(pool, 1).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let sender = tokio::spawn(async move {
        for i in 0..40 {
            let id = a.say(chat, &format!("m{i}")).await;
            a.answer(&id).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    for _ in 0..15 {
        let url = format!("{}?token={}", p.gw(0).ws_url(), bob.token);
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        use futures::StreamExt;
        let first = loop {
            match ws.next().await.unwrap().unwrap() {
                tokio_tungstenite::tungstenite::Message::Text(t) => {
                    break serde_json::from_str::<Value>(t.as_str()).unwrap()
                }
                _ => continue,
            }
        };
        assert_eq!(first["type"], "session.ready", "{first}");
        let ready = &first["payload"];
        assert_eq!(ready["sessionId"], bob.session.to_string());
        assert!(ready["tokenExpiresAt"].as_str().unwrap().ends_with('Z'));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    sender.await.unwrap();
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_retried_reaction_gets_the_original_ack(pool: PgPool) {
    let p = Pool::start(pool, 1).await;
    let (ada, _bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let id = a.say(chat, "react to me").await;
    let message_id = a.answer(&id).await["payload"]["messageId"]
        .as_i64()
        .unwrap();
    let react = json!({ "messageId": message_id, "emoji": "👍", "action": "add" });
    a.send_with_id("react-1", "message.react", react.clone())
        .await;
    let first = a.answer("react-1").await;
    a.send_with_id("react-1", "message.react", react).await;
    let again = a.answer("react-1").await;
    let shape = |v: &Value| {
        let mut p = v["payload"].clone();
        p.as_object_mut().unwrap().remove("duplicate");
        p
    };
    assert_eq!(first["payload"]["changed"], true);
    assert_eq!(shape(&first), shape(&again), "{first} vs {again}");
    assert_eq!(again["payload"]["duplicate"], true);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_process_with_other_ingest_shards_refuses_to_start(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let mut config = p.config.clone();
    config.ingest_shards += 1;
    let redis = fechatter_shared::redis::connect(&config.redis_url, Duration::from_secs(5))
        .await
        .unwrap();
    let err = gateway::AppState::connect(config, pool, redis)
        .await
        .err()
        .expect("mismatched INGEST_SHARDS is refused");
    assert!(format!("{err:#}").contains("INGEST_SHARDS"), "{err:#}");
    // And the built-in JWT secret is refused before anything connects.
    let mut weak = p.config.clone();
    weak.jwt_secret = fechatter_shared::config::DEV_JWT_SECRET.into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = gateway::run(weak, listener, Default::default())
        .await
        .expect_err("default secret refused");
    assert!(format!("{err:#}").contains("JWT_SECRET"), "{err:#}");
    let _ = (assert_error, Method::GET);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn retries_of_a_queued_write_are_not_appended_again(pool: PgPool) {
    // No worker yet: the first attempt stays queued in its shard.
    let mut p = Pool::start_without_worker(pool.clone(), 1, |_| {}).await;
    let (ada, _bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let send = json!({ "chatId": chat, "content": "only once" });
    for _ in 0..5 {
        a.send_with_id("retry-1", "message.send", send.clone())
            .await;
    }
    let ping = a.send("ping", json!({})).await;
    a.answer(&ping).await; // every retry has been handled by now
    let state = &p.gw(0).state;
    let shard = state.keys.ingest(chat, state.config.ingest_shards);
    let len: u64 = fred::interfaces::StreamsInterface::xlen(&state.redis, &shard)
        .await
        .unwrap();
    assert_eq!(len, 1, "five attempts, one entry");
    // Once a worker runs, the queued attempt is committed and answered.
    p.add_worker().await;
    let ack = a.answer("retry-1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["payload"]["seq"], 1);
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages WHERE chat_id = $1")
        .bind(chat)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    // After the answer, a late retry reaches the worker again and gets
    // the original's ack.
    a.send_with_id("retry-1", "message.send", send).await;
    let again = a.answer("retry-1").await;
    assert_eq!(again["payload"]["duplicate"], true, "{again}");
    assert_eq!(again["payload"]["seq"], 1);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn sync_pages_through_many_large_events_on_one_message(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let id = a.say(chat, "first").await;
    let message_id = a.answer(&id).await["payload"]["messageId"]
        .as_i64()
        .unwrap();
    // 24 edits of ~15 kB: about 360 kB of events all after seq 1, more
    // than one page; a seq-only cursor could never get past them.
    for i in 0..24 {
        let id = a
            .send(
                "message.edit",
                json!({ "messageId": message_id, "content": format!("{i:03}{}", "e".repeat(15_000)) }),
            )
            .await;
        assert_eq!(a.answer(&id).await["type"], "ack");
        tokio::time::sleep(Duration::from_millis(110)).await;
    }
    let mut b = Client::connect(p.gw(0), &bob).await;
    let mut cursor = json!(0);
    let mut seen = Vec::new();
    for page in 0.. {
        assert!(page < 10, "paging does not end");
        b.send(
            "sync.request",
            json!({ "chats": { chat.to_string(): cursor } }),
        )
        .await;
        let res = b.expect("sync.response").await;
        for e in res["payload"]["events"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_string());
        }
        cursor = res["payload"]["cursor"].clone();
        if !res["payload"]["hasMore"].as_bool().unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(600)).await; // sync limit
    }
    assert_eq!(seen.len(), 25, "the message and its 24 edits: {seen:?}");
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 25, "no event twice");
    assert_eq!(cursor, json!(format!("1-24")));
    // Nothing newer: an empty page echoes the cursor (even one past the
    // newest message), and that cursor is accepted back.
    for asked in [json!("1-24"), json!("999-0"), json!("999-0")] {
        tokio::time::sleep(Duration::from_millis(600)).await; // sync limit
        b.send(
            "sync.request",
            json!({ "chats": { chat.to_string(): asked } }),
        )
        .await;
        let res = b.expect("sync.response").await;
        assert_eq!(res["payload"]["cursor"], asked, "{res}");
        assert_eq!(res["payload"]["source"], "none");
        assert_eq!(res["payload"]["events"], json!([]));
        assert_eq!(res["payload"]["hasMore"], false);
    }
    // Unknown fields are refused when creating a chat (the same body
    // without it is valid).
    let channel = |extra: bool| {
        let mut b = json!({ "type": "public_channel", "name": "news" });
        if extra {
            b["bogus"] = json!(1);
        }
        b
    };
    let (status, body) = p.gw(0).post("/api/chat", &ada, channel(true)).await;
    assert_error(status, &body, 422, "validation_failed");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("bogus"),
        "{body}"
    );
    let (status, _) = p.gw(0).post("/api/chat", &ada, channel(false)).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn slow_header_clients_are_disconnected(pool: PgPool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_with(pool, |_| {}).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let started = std::time::Instant::now();
    // One connects and says nothing; one trickles a request line forever.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut trickle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let trickler = tokio::spawn(async move {
        for b in b"GET /health/live HTTP/1.1\r\nX-Slow: "
            .iter()
            .chain(b"a".repeat(60).iter())
        {
            if trickle.write_all(&[*b]).await.is_err() {
                return (trickle, true);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        (trickle, false)
    });
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf))
        .await
        .expect("the silent connection is closed by the gateway")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(15),
        "closed after {took:?} (header timeout 10 s)"
    );
    let (mut trickle, cut) = trickler.await.unwrap();
    let closed = cut || {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), trickle.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    };
    assert!(closed, "the trickling connection is closed too");
}
