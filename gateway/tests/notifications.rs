//! Notifications end to end (seed 002 §3) against real gateways, a
//! worker, PostgreSQL and Redis: toasts for direct messages, mentions in
//! channels, focus, manual and scheduled DND, mute, urgent messages and
//! their limit, grouping, and preferences that reach every device.

mod common;

use std::time::Duration;

use chrono::Timelike;
use common::realtime::{Client, Pool};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

async fn say(c: &mut Client, chat: i64, text: &str, extra: Value) -> Value {
    let mut payload = json!({ "chatId": chat, "content": text });
    for (k, v) in extra.as_object().unwrap() {
        payload[k] = v.clone();
    }
    let id = c.send("message.send", payload).await;
    c.answer(&id).await
}

async fn toasts(c: &mut Client, wait_ms: u64) -> Vec<Value> {
    c.collect("notification.toast", Duration::from_millis(wait_ms))
        .await
        .into_iter()
        .map(|f| f["payload"].clone())
        .collect()
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn direct_messages_toast_unless_focused_dnd_urgent_and_its_limit(pool: PgPool) {
    let p = Pool::start(pool, 2).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut phone = Client::connect(p.gw(0), &bob).await;
    let mut laptop = Client::connect(p.gw(1), &bob).await;
    let id = laptop.send("chat.focus", json!({ "chatId": chat })).await;
    assert_eq!(laptop.answer(&id).await["payload"]["chatId"], chat);

    say(&mut a, chat, "hi bob", json!({})).await;
    let t = phone.expect("notification.toast").await["payload"].clone();
    assert_eq!(
        (t["title"].as_str(), t["body"].as_str()),
        (Some("Ada"), Some("hi bob")),
        "{t}"
    );
    assert_eq!(
        (t["chatId"].as_i64(), t["count"].as_i64()),
        (Some(chat), Some(1))
    );
    assert_eq!(t["priority"], "normal");
    assert!(t["userEventId"].is_string());
    // The focused laptop: the message, but no toast and no unread badge.
    laptop.expect("message.new").await;
    let frames = laptop
        .collect("notification.toast", Duration::from_millis(800))
        .await;
    assert!(frames.is_empty(), "{frames:?}");

    // Manual DND: badge only.
    let id = phone
        .send("presence.update", json!({ "status": "dnd" }))
        .await;
    phone.answer(&id).await;
    say(&mut a, chat, "still there?", json!({})).await;
    phone
        .expect_where("notification.badge", |f| f["payload"]["chatId"] == chat)
        .await;
    assert!(
        toasts(&mut phone, 1000).await.is_empty(),
        "DND suppresses toasts"
    );
    // Urgent bypasses DND, three times an hour.
    for i in 0..3 {
        let ack = say(
            &mut a,
            chat,
            &format!("urgent {i}"),
            json!({ "priority": "urgent" }),
        )
        .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    let got = toasts(&mut phone, 2500).await;
    assert!(got.iter().all(|t| t["priority"] == "urgent"), "{got:?}");
    assert_eq!(
        got.last().unwrap()["count"],
        4,
        "grouped with the DND message's window: {got:?}"
    );
    let refused = say(&mut a, chat, "urgent 4", json!({ "priority": "urgent" })).await;
    assert_eq!(refused["payload"]["code"], "rate_limited", "{refused}");
    let bad = say(&mut a, chat, "x", json!({ "priority": "loud" })).await;
    assert_eq!(bad["payload"]["code"], "validation_failed", "{bad}");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM urgent_messages WHERE sender_id = $1")
        .bind(ada.id)
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert_eq!(n, 3, "urgent messages are audited");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn channels_alert_on_mentions_levels_mute_and_grouping(pool: PgPool) {
    let p = Pool::start(pool, 1).await;
    let (ada, bob, _) = p.pair().await;
    let cy = p.gw(0).signup("Cy", "Acme").await;
    let chat = p
        .gw(0)
        .create_chat(&ada, "private_channel", Some("ops"), &[bob.id, cy.id])
        .await["id"]
        .as_i64()
        .unwrap();
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(0), &bob).await;
    let mut c = Client::connect(p.gw(0), &cy).await;

    say(&mut a, chat, "hello everyone", json!({})).await;
    assert!(
        toasts(&mut b, 1000).await.is_empty(),
        "channels default to mentions only"
    );
    say(&mut a, chat, "@bob can you look?", json!({})).await;
    let m = b
        .expect_where("message.new", |f| {
            f["payload"]["message"]["content"] == "@bob can you look?"
        })
        .await;
    assert_eq!(
        m["payload"]["message"]["mentions"],
        json!([bob.id]),
        "resolved server-side"
    );
    let t = toasts(&mut b, 2000).await;
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        (t[0]["title"].as_str(), t[0]["body"].as_str()),
        (Some("#ops"), Some("Ada: @bob can you look?"))
    );
    assert!(toasts(&mut c, 500).await.is_empty());
    say(&mut a, chat, "@channel release at 5", json!({})).await;
    assert_eq!(
        toasts(&mut c, 2000).await.len(),
        1,
        "@channel mentions everyone"
    );

    // Bob wants everything from #ops: three quick messages group.
    let (status, body) = p
        .gw(0)
        .call(
            Method::PUT,
            &format!("/api/chat/{chat}/notification-settings"),
            Some(&bob.token),
            Some(json!({ "level": "all" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    b.collect("notification.settings", Duration::from_millis(300))
        .await;
    for i in 0..3 {
        say(&mut a, chat, &format!("step {i}"), json!({})).await;
    }
    let t = toasts(&mut b, 2000).await;
    let last = t.last().expect("toasts");
    assert!(last["count"].as_i64().unwrap() >= 3, "{t:?}");
    assert!(
        last["body"]
            .as_str()
            .unwrap()
            .ends_with("new messages in #ops"),
        "{t:?}"
    );
    assert!(t.iter().all(|x| x["groupId"] == t[0]["groupId"]));

    // Muted: nothing, even when mentioned.
    let until = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, _) = p
        .gw(0)
        .call(
            Method::PUT,
            &format!("/api/chat/{chat}/notification-settings"),
            Some(&bob.token),
            Some(json!({ "level": "all", "mutedUntil": until })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    say(&mut a, chat, "@bob muted?", json!({})).await;
    assert!(toasts(&mut b, 1000).await.is_empty());
    // A partial update keeps what it leaves out; null clears.
    let settings = |body: Value| {
        let (app, token) = (p.gw(0), bob.token.clone());
        async move {
            app.call(
                Method::PUT,
                &format!("/api/chat/{chat}/notification-settings"),
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let (_, s) = settings(json!({ "pinned": true })).await;
    assert_eq!(
        (s["level"].as_str(), s["pinned"].as_bool()),
        (Some("all"), Some(true)),
        "{s}"
    );
    assert!(s["mutedUntil"].is_string(), "still muted: {s}");
    let (_, s) = settings(json!({ "mutedUntil": null })).await;
    assert!(
        s["mutedUntil"].is_null() && s["level"] == "all" && s["pinned"] == true,
        "{s}"
    );
    // Non-members cannot set a chat's settings.
    let eve = p.gw(0).signup("Eve", "Evil").await;
    let (status, _) = p
        .gw(0)
        .call(
            Method::PUT,
            &format!("/api/chat/{chat}/notification-settings"),
            Some(&eve.token),
            Some(json!({ "level": "all" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn preferences_reach_every_device_and_dnd_schedules_follow_time_zones(pool: PgPool) {
    let p = Pool::start(pool, 1).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(0), &bob).await;
    let mut b2 = Client::connect(p.gw(0), &bob).await;
    let (status, defaults) = p.gw(0).get("/api/me/notification-preferences", &bob).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        defaults,
        json!({ "level": "mentions_only", "desktop": true, "sound": true,
                                 "dndSchedule": null, "keywords": [] })
    );

    let put = |body: Value| {
        let (app, token) = (p.gw(0), bob.token.clone());
        async move {
            app.call(
                Method::PUT,
                "/api/me/notification-preferences",
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let (status, body) = put(json!({ "level": "all", "desktop": true, "sound": false,
        "dndSchedule": { "start": "22:00", "end": "07:00", "timezone": "Mars/Olympus" } }))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // A window around the current time in UTC+9 (it may cross midnight).
    let local = (chrono::Utc::now().hour() + 9) % 24;
    let (start, end) = (
        format!("{:02}:00", (local + 23) % 24),
        format!("{:02}:00", (local + 2) % 24),
    );
    let (status, body) = put(json!({ "level": "all", "desktop": true, "sound": false,
        "dndSchedule": { "start": start, "end": end, "timezone": "Etc/GMT-9" }, "keywords": ["Deploy"] })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["keywords"], json!(["deploy"]));
    let notice = b2.expect("notification.settings").await;
    assert_eq!(notice["payload"]["scope"], "preferences");
    assert_eq!(
        notice["payload"]["settings"]["dndSchedule"]["timezone"],
        "Etc/GMT-9"
    );
    say(&mut a, chat, "during the night", json!({})).await;
    b.expect_where("notification.badge", |f| f["payload"]["chatId"] == chat)
        .await;
    assert!(
        toasts(&mut b, 1000).await.is_empty(),
        "inside the DND window"
    );

    // The same hours in UTC-5 are not now: toasts again.
    let (status, _) = put(json!({ "level": "all", "desktop": true, "sound": false,
        "dndSchedule": { "start": start, "end": end, "timezone": "Etc/GMT+5" } }))
    .await;
    assert_eq!(status, StatusCode::OK);
    say(&mut a, chat, "good morning", json!({})).await;
    assert_eq!(toasts(&mut b, 2000).await.len(), 1);
}

/// A local webhook receiver: every request's JSON body.
async fn hook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn users_without_an_active_connection_get_pushes(pool: PgPool) {
    let p = Pool::start_with(pool, 1, |c| {
        c.push.webhook_secret = "s3cret".into();
        c.push.webhook_allow_http = true;
        c.presence_away = Duration::from_secs(2);
    })
    .await;
    let (ada, bob, chat) = p.pair().await;
    let (url, pushes) = hook_receiver().await;
    let register = json!({ "platform": "webhook", "token": url });
    let (status, device) = p
        .gw(0)
        .post("/api/me/devices", &bob, register.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    let (status, _) = p
        .gw(0)
        .post("/api/me/devices", &bob, register.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "registering again is idempotent");
    let (status, body) = p
        .gw(0)
        .post(
            "/api/me/devices",
            &bob,
            json!({ "platform": "pager", "token": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let mut a = Client::connect(p.gw(0), &ada).await;

    // Offline: a push, with the toast's title and body.
    say(&mut a, chat, "are you there?", json!({})).await;
    let wait = |n: usize| {
        let pushes = pushes.clone();
        async move {
            for _ in 0..50 {
                if pushes.lock().unwrap().len() >= n {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            pushes.lock().unwrap().clone()
        }
    };
    let got = wait(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0]["title"].as_str(), got[0]["body"].as_str()),
        (Some("Ada"), Some("are you there?"))
    );
    assert_eq!(got[0]["collapseKey"], format!("c{chat}"));

    // Connected and active: a toast, no push.
    let mut b = Client::connect(p.gw(0), &bob).await;
    say(&mut a, chat, "hello again", json!({})).await;
    b.expect("notification.toast").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(pushes.lock().unwrap().len(), 1, "no push while active");

    // Connected but idle (away): the toast and a push.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    say(&mut a, chat, "wake up", json!({})).await;
    b.expect_where("notification.toast", |f| {
        f["payload"]["count"].as_i64() >= Some(1)
    })
    .await;
    assert_eq!(wait(2).await.len(), 2, "pushed while idle");

    // A device belongs to one user: registered by Ada, it leaves Bob.
    let (status, _) = p
        .gw(0)
        .post("/api/me/devices", &ada, register.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, bobs) = p.gw(0).get("/api/me/devices", &bob).await;
    assert_eq!(bobs, json!([]), "moved to Ada");
    let (status, _) = p
        .gw(0)
        .call(
            Method::DELETE,
            "/api/me/devices",
            Some(&ada.token),
            Some(register.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = p
        .gw(0)
        .post("/api/me/devices", &bob, register.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Unregistered: nothing more.
    let (status, _) = p
        .gw(0)
        .call(
            Method::DELETE,
            "/api/me/devices",
            Some(&bob.token),
            Some(register),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    b.close().await;
    say(&mut a, chat, "gone?", json!({})).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(pushes.lock().unwrap().len(), 2);
}
