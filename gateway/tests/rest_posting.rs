//! `POST /api/chat/{id}/messages`: the REST path into the durable
//! pipeline. Answers only after commit, idempotent by clientId, the same
//! rules and budgets as `message.send`, and a safe 503 on timeout.

mod common;

use std::time::Duration;

use common::{
    assert_error,
    realtime::{Client, Pool},
};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_rest_post_is_acked_after_commit_and_delivered(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let (ada, bob, chat) = p.pair().await;
    let mut b = Client::connect(p.gw(1), &bob).await;

    let path = format!("/api/chat/{chat}/messages");
    let body = json!({"content": "from a bot", "clientId": "bot-1", "mentions": [bob.id]});
    let (status, posted) = p.gw(0).post(&path, &ada, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{posted}");
    assert_eq!(posted["seq"], 1);
    let id = posted["messageId"].as_i64().unwrap();
    assert!(posted.get("duplicate").is_none(), "{posted}");
    // Acked means committed.
    let (content, client): (String, String) =
        sqlx::query_as("SELECT content, client_id FROM messages WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((content.as_str(), client.as_str()), ("from a bot", "bot-1"));

    let got = b.expect("message.new").await;
    assert_eq!(got["payload"]["message"]["id"], id);
    assert_eq!(got["payload"]["message"]["content"], "from a bot");

    // The same clientId again (even on another gateway): the same message.
    let (status, again) = p.gw(1).post(&path, &ada, body).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["messageId"], id);
    assert_eq!(again["seq"], 1);
    assert_eq!(again["duplicate"], true);
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages WHERE chat_id = $1")
        .bind(chat)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);

    // Two concurrent posts with one clientId: one message, both answered.
    let body = json!({"content": "racing", "clientId": "bot-2"});
    let started = std::time::Instant::now();
    let (first, second) = tokio::join!(
        p.gw(0).post(&path, &ada, body.clone()),
        p.gw(1).post(&path, &ada, body.clone())
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no timeout wait"
    );
    for (status, v) in [&first, &second] {
        assert_eq!(*status, StatusCode::CREATED, "{v}");
    }
    assert_eq!(first.1["messageId"], second.1["messageId"]);
    assert_eq!(first.1["seq"], 2);

    // The listing (GET on the same path) still works beside the POST.
    let (status, page) = p.gw(0).get(&path, &ada).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["messages"][0]["id"], id);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn rest_posts_follow_the_send_rules(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let (ada, bob, chat) = p.pair().await;
    let app = p.gw(0);
    let path = format!("/api/chat/{chat}/messages");
    let bad = [
        json!({"content": "  ", "clientId": "a"}),
        json!({"content": "x".repeat(16_001), "clientId": "a"}),
        json!({"content": "hi"}),
        json!({"content": "hi", "clientId": ""}),
        json!({"content": "hi", "clientId": "x".repeat(101)}),
        json!({"content": "hi", "clientId": "a", "priority": "loud"}),
        json!({"content": "hi", "clientId": "a", "colour": "red"}),
        json!({"content": "hi", "clientId": "a", "mentions": (0..101).collect::<Vec<i64>>()}),
    ];
    for body in bad {
        let (status, err) = app.post(&path, &ada, body.clone()).await;
        assert_error(status, &err, 422, "validation_failed");
    }
    // A reply to a message of another chat is refused by the worker, and
    // the refusal reaches the REST caller with its code.
    let other = app
        .create_chat(&ada, "private_channel", Some("other"), &[bob.id])
        .await["id"]
        .as_i64()
        .unwrap();
    let (status, first) = app
        .post(
            &format!("/api/chat/{other}/messages"),
            &ada,
            json!({"content": "elsewhere", "clientId": "o1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, err) = app
        .post(
            &path,
            &ada,
            json!({"content": "re", "clientId": "r1", "replyTo": first["messageId"]}),
        )
        .await;
    assert!(status.is_client_error(), "{status} {err}");
    assert!(err["error"]["code"].is_string(), "{err}");

    // Access: a chat of others is not found; a public channel needs a join.
    let cat = app.signup("Cat", "Acme").await;
    let (status, err) = app
        .post(&path, &cat, json!({"content": "hi", "clientId": "c1"}))
        .await;
    assert_error(status, &err, 404, "not_found");
    let public = app
        .create_chat(&ada, "public_channel", Some("general"), &[])
        .await["id"]
        .as_i64()
        .unwrap();
    let public_path = format!("/api/chat/{public}/messages");
    let (status, err) = app
        .post(
            &public_path,
            &cat,
            json!({"content": "hi", "clientId": "c1"}),
        )
        .await;
    assert_error(status, &err, 403, "forbidden");
    let (status, _) = app
        .post(&format!("/api/chat/{public}/join"), &cat, json!({}))
        .await;
    assert!(status.is_success());
    let (status, ok) = app
        .post(
            &public_path,
            &cat,
            json!({"content": "hi", "clientId": "c1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ok}");
    // Another workspace's user cannot even see the chat.
    let eve = app.signup("Eve", "Evil").await;
    let (status, err) = app
        .post(
            &public_path,
            &eve,
            json!({"content": "hi", "clientId": "e1"}),
        )
        .await;
    assert_error(status, &err, 404, "not_found");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn rest_and_socket_sends_share_one_budget(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let (ada, _bob, chat) = p.pair().await;
    let path = format!("/api/chat/{chat}/messages");
    // 30 concurrent posts against a bucket of 10 (10/s): some are refused
    // with 429 and a Retry-After, none is lost or doubled.
    let posts = (0..30).map(|i| {
        let app = p.gw(0);
        let (ada, path) = (&ada, &path);
        async move {
            let res = app
                .http
                .post(format!("{}{path}", app.base))
                .bearer_auth(&ada.token)
                .json(&json!({"content": format!("n{i}"), "clientId": format!("k{i}")}))
                .send()
                .await
                .unwrap();
            (res.status(), res.headers().get("retry-after").cloned())
        }
    });
    let results = futures::future::join_all(posts).await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let limited: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(created + limited.len(), 30, "{results:?}");
    assert!(!limited.is_empty(), "the budget of 10 held: {results:?}");
    assert!(limited.iter().all(|(_, h)| h.is_some()), "Retry-After");
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages WHERE chat_id = $1")
        .bind(chat)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count as usize, created);
    // The socket is refused too while the shared bucket is empty.
    let mut a = Client::connect(p.gw(0), &ada).await;
    let id = a.say(chat, "one more").await;
    let answer = a.answer(&id).await;
    assert!(
        answer["type"] == "error" && answer["payload"]["code"] == "rate_limited"
            || answer["type"] == "ack",
        "{answer}"
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_timeout_is_503_and_the_retry_is_safe(pool: PgPool) {
    let mut p = Pool::start_without_worker(pool.clone(), 1, |c| {
        c.write_timeout = Duration::from_millis(300);
    })
    .await;
    let (ada, _bob, chat) = p.pair().await;
    let path = format!("/api/chat/{chat}/messages");
    let url = format!("{}{path}", p.gw(0).base);
    let body = json!({"content": "eventually", "clientId": "slow-1"});
    let res = p
        .gw(0)
        .http
        .post(&url)
        .bearer_auth(&ada.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    let err: serde_json::Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "unavailable");

    // No worker yet: nothing committed. Then a worker starts; retries with
    // the same clientId end in exactly one message.
    p.add_worker().await;
    let mut outcome = None;
    for _ in 0..40 {
        let (status, value) = p.gw(0).post(&path, &ada, body.clone()).await;
        if status == StatusCode::CREATED {
            outcome = Some(value);
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{value}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let posted = outcome.expect("a retry succeeds once a worker runs");
    assert_eq!(posted["seq"], 1);
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages WHERE chat_id = $1")
        .bind(chat)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        count, 1,
        "the timed-out attempt and its retries made one message"
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_read_only_channel_takes_posts_from_its_owner_and_admins(pool: PgPool) {
    use reqwest::Method;
    let p = Pool::start(pool, 1).await;
    let app = p.gw(0);
    let ada = app.signup("Ada", "Acme").await;
    let bob = app.signup("Bob", "Acme").await;
    let cat = app.signup("Cat", "Acme").await;
    // Only channels can be read-only.
    let (status, err) = app
        .post(
            "/api/chat",
            &ada,
            json!({"type": "group", "members": [bob.id, cat.id], "readOnly": true}),
        )
        .await;
    assert_error(status, &err, 422, "validation_failed");
    let (status, created) = app
        .post(
            "/api/chat",
            &ada,
            json!({"type": "public_channel", "name": "announcements", "readOnly": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["readOnly"], true);
    let chat = created["id"].as_i64().unwrap();
    for u in [&bob, &cat] {
        let (status, _) = app
            .post(&format!("/api/chat/{chat}/join"), u, json!({}))
            .await;
        assert!(status.is_success());
    }
    let mut b = Client::connect(app, &bob).await;
    let mut c = Client::connect(app, &cat).await;

    // A member cannot post, over WebSocket or REST, nor lift the flag.
    let id = b
        .send("message.send", json!({"chatId": chat, "content": "me too"}))
        .await;
    let err = b.answer(&id).await;
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["payload"]["code"], "forbidden", "{err}");
    let path = format!("/api/chat/{chat}/messages");
    let (status, err) = app
        .post(&path, &bob, json!({"content": "me too", "clientId": "b1"}))
        .await;
    assert_error(status, &err, 403, "forbidden");
    let chat_path = format!("/api/chat/{chat}");
    let patch = |token: &str, body| {
        let token = token.to_string();
        let path = chat_path.clone();
        async move {
            app.call(Method::PATCH, &path, Some(&token), Some(body))
                .await
        }
    };
    let (status, err) = patch(&bob.token, json!({"readOnly": false})).await;
    assert_error(status, &err, 403, "forbidden");

    // The owner posts; every member receives it.
    let (status, posted) = app
        .post(
            &path,
            &ada,
            json!({"content": "release at 5", "clientId": "a1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{posted}");
    assert_eq!(posted["seq"], 1);
    for client in [&mut b, &mut c] {
        let got = client.expect("message.new").await;
        assert_eq!(got["payload"]["message"]["content"], "release at 5");
    }

    // A new owner posts; the former owner is an admin and still posts.
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/chat/{chat}/members/{}", bob.id),
            Some(&ada.token),
            None,
        )
        .await;
    assert!(status.is_success());
    let id = b
        .send(
            "message.send",
            json!({"chatId": chat, "content": "from bob"}),
        )
        .await;
    assert_eq!(b.answer(&id).await["payload"]["seq"], 2);
    let (status, posted) = app
        .post(
            &path,
            &ada,
            json!({"content": "from ada", "clientId": "a2"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{posted}");
    let id = c
        .send(
            "message.send",
            json!({"chatId": chat, "content": "from cat"}),
        )
        .await;
    assert_eq!(c.answer(&id).await["payload"]["code"], "forbidden");

    // Lifting the flag opens the channel to members at the next send.
    let (status, updated) = patch(&bob.token, json!({"readOnly": false})).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["readOnly"], false);
    let id = c
        .send(
            "message.send",
            json!({"chatId": chat, "content": "from cat"}),
        )
        .await;
    assert_eq!(c.answer(&id).await["payload"]["seq"], 4);
}
