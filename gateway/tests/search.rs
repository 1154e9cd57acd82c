//! Search behaviour (issue 10), one set of cases run against each backend:
//! PostgreSQL always, Meilisearch when `MEILI_URL` names a server (and the
//! crate was built with `--features meilisearch`); otherwise that run says
//! it was skipped. Messages are posted through the real pipeline (REST
//! posts, socket edits and deletes), so what is searched is what the
//! worker committed.

mod common;

use std::collections::BTreeSet;

use common::{
    assert_error,
    realtime::{Client, Pool},
    TestApp, TestUser,
};
use fechatter_shared::config::SearchBackend;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn search_rules_on_postgres(pool: PgPool) {
    let p = Pool::start(pool, 1).await;
    cases(&p).await;
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn search_rules_on_meilisearch(pool: PgPool) {
    let Some(url) = std::env::var("MEILI_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("skipped: MEILI_URL not set (the Meilisearch run of the search cases)");
        return;
    };
    if !cfg!(feature = "meilisearch") {
        eprintln!("skipped: built without the `meilisearch` feature");
        return;
    }
    let index = format!("t{}", uuid::Uuid::new_v4().simple());
    let p = Pool::start_with(pool, 1, |c| {
        c.search.backend = SearchBackend::Meilisearch;
        c.search.meili_url = url.clone();
        c.search.meili_key = std::env::var("MEILI_KEY").unwrap_or_default();
        c.search.meili_index = index.clone();
    })
    .await;
    cases(&p).await;
}

struct World {
    ada: TestUser,
    bob: TestUser,
    cat: TestUser,
    eve: TestUser,
    single: i64,
    general: i64,
    secret: i64,
}

/// Posts `content` over REST and returns the message id.
async fn post(app: &TestApp, user: &TestUser, chat: i64, content: &str) -> i64 {
    let id = format!("k{}", uuid::Uuid::new_v4().simple());
    let (status, body) = app
        .post(
            &format!("/api/chat/{chat}/messages"),
            user,
            json!({"content": content, "clientId": id}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["messageId"].as_i64().unwrap()
}

async fn search(app: &TestApp, user: &TestUser, scope: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = search_raw(app, user, scope, params).await;
    assert_eq!(status, StatusCode::OK, "{params:?}: {body}");
    body
}

/// One search; waits out the (deliberately small) search rate limit,
/// which these many searches of one user would otherwise hit.
async fn search_raw(
    app: &TestApp,
    user: &TestUser,
    scope: &str,
    params: &[(&str, &str)],
) -> (StatusCode, Value) {
    loop {
        let (status, body) = search_once(app, user, scope, params).await;
        match body["error"]["retryAfterMs"].as_u64() {
            Some(ms) if status == StatusCode::TOO_MANY_REQUESTS => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await
            }
            _ => return (status, body),
        }
    }
}

async fn search_once(
    app: &TestApp,
    user: &TestUser,
    scope: &str,
    params: &[(&str, &str)],
) -> (StatusCode, Value) {
    let query: String = params
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    app.get(&format!("/api/search/{scope}?{query}"), user).await
}

fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The contents of the message results, as a set.
fn contents(body: &Value) -> BTreeSet<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"]["content"].as_str().unwrap().to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Waits until everything posted so far is searchable (immediate on
/// PostgreSQL; the indexer's lag on Meilisearch): a fresh marker message,
/// indexed after everything before it, becomes findable.
async fn settle(p: &Pool, w: &World) {
    let marker = format!("marker{}", uuid::Uuid::new_v4().simple());
    post(p.gw(0), &w.ada, w.single, &marker).await;
    for _ in 0..100 {
        let body = search(p.gw(0), &w.ada, "messages", &[("q", &marker)]).await;
        if !body["results"].as_array().unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the index did not catch up within 10 s");
}

async fn world(p: &Pool) -> World {
    let app = p.gw(0);
    let ada = app.signup("Ada", "Acme").await;
    let bob = app.signup("Bob", "Acme").await;
    let cat = app.signup("Cat", "Acme").await;
    let eve = app.signup("Eve", "Evil").await;
    let single = app.create_chat(&ada, "single", None, &[bob.id]).await["id"]
        .as_i64()
        .unwrap();
    let general = app
        .create_chat(&ada, "public_channel", Some("general"), &[])
        .await["id"]
        .as_i64()
        .unwrap();
    let (status, _) = app
        .post(&format!("/api/chat/{general}/join"), &bob, json!({}))
        .await;
    assert!(status.is_success());
    let secret = app
        .create_chat(&bob, "private_channel", Some("secret"), &[cat.id])
        .await["id"]
        .as_i64()
        .unwrap();
    let evil = app
        .create_chat(&eve, "public_channel", Some("general"), &[])
        .await["id"]
        .as_i64()
        .unwrap();
    post(app, &ada, single, "Budget meeting tomorrow at ten").await;
    post(
        app,
        &bob,
        single,
        "the quarterly budget is done https://example.com/q3",
    )
    .await;
    post(app, &bob, general, "budget for the party").await;
    post(app, &cat, secret, "budget secret plan").await;
    post(app, &eve, evil, "budget of the evil workspace").await;
    World {
        ada,
        bob,
        cat,
        eve,
        single,
        general,
        secret,
    }
}

async fn cases(p: &Pool) {
    let w = world(p).await;
    settle(p, &w).await;
    access_control(p, &w).await;
    operators(p, &w).await;
    paging_and_shape(p, &w).await;
    edits_deletes_and_removal(p, &w).await;
    directories(p, &w).await;
    over_the_socket(p, &w).await;
}

async fn access_control(p: &Pool, w: &World) {
    let app = p.gw(0);
    let q = [("q", "budget")];
    // Members' chats only: never a chat one is not in, never another workspace.
    let ada = contents(&search(app, &w.ada, "messages", &q).await);
    assert_eq!(
        ada,
        set(&[
            "Budget meeting tomorrow at ten",
            "the quarterly budget is done https://example.com/q3",
            "budget for the party",
        ])
    );
    assert_eq!(
        contents(&search(app, &w.cat, "messages", &q).await),
        set(&["budget secret plan"])
    );
    // Public channels of the workspace when asked, still not another's.
    assert_eq!(
        contents(
            &search(
                app,
                &w.cat,
                "messages",
                &[("q", "budget"), ("includePublic", "true")]
            )
            .await
        ),
        set(&["budget secret plan", "budget for the party"])
    );
    assert_eq!(
        contents(
            &search(
                app,
                &w.eve,
                "messages",
                &[("q", "party"), ("includePublic", "true")]
            )
            .await
        ),
        set(&[])
    );
    // One chat: visible ones only.
    let secret = w.secret.to_string();
    let (status, body) = search_raw(
        app,
        &w.ada,
        "messages",
        &[("q", "budget"), ("chatId", &secret)],
    )
    .await;
    assert_error(status, &body, 404, "not_found");
    let single = w.single.to_string();
    assert_eq!(
        contents(
            &search(
                app,
                &w.ada,
                "messages",
                &[("q", "budget"), ("chatId", &single)]
            )
            .await
        )
        .len(),
        2
    );
    // in: names resolve only among the caller's own chats.
    assert_eq!(
        contents(&search(app, &w.ada, "messages", &[("q", "budget in:#secret")]).await),
        set(&[])
    );
}

async fn operators(p: &Pool, w: &World) {
    let app = p.gw(0);
    let found = |q: &'static str| async move {
        contents(&search(app, &w.ada, "messages", &[("q", q)]).await)
    };
    assert_eq!(
        found("budget from:@bob").await,
        set(&[
            "the quarterly budget is done https://example.com/q3",
            "budget for the party"
        ])
    );
    assert_eq!(
        found("budget from:me").await,
        set(&["Budget meeting tomorrow at ten"])
    );
    assert_eq!(
        found("budget in:#general").await,
        set(&["budget for the party"])
    );
    assert_eq!(
        found("has:link").await,
        set(&["the quarterly budget is done https://example.com/q3"])
    );
    assert_eq!(
        found("budget -party -quarterly").await,
        set(&["Budget meeting tomorrow at ten"])
    );
    assert_eq!(
        found("\"quarterly budget\"").await,
        set(&["the quarterly budget is done https://example.com/q3"])
    );
    assert_eq!(found("\"budget quarterly\"").await, set(&[]));
    // `-"phrase"` excludes the phrase only; a pasted URL finds its message.
    assert_eq!(
        found("budget -\"budget meeting\" -party").await,
        set(&["the quarterly budget is done https://example.com/q3"])
    );
    assert_eq!(
        found("https://example.com/q3").await,
        set(&["the quarterly budget is done https://example.com/q3"])
    );
    // Unknown operators are text, never an error.
    assert_eq!(found("colour:blue").await, set(&[]));
    // Dates: one message moved 10 days back.
    sqlx::query("UPDATE messages SET created_at = now() - interval '10 days' WHERE content = 'budget for the party'")
        .execute(&p.pool)
        .await
        .unwrap();
    let old_day = (chrono::Utc::now() - chrono::Duration::days(10)).date_naive();
    if p.config.search.backend == SearchBackend::Postgres {
        // (Meilisearch keeps the indexed time; this rewrite bypasses it.)
        assert!(!found("budget last week")
            .await
            .contains("budget for the party"));
        let on = format!("budget on:{old_day}");
        let got = contents(&search(app, &w.ada, "messages", &[("q", &on)]).await);
        assert_eq!(got, set(&["budget for the party"]));
        let before = format!("budget before:{}", old_day + chrono::Duration::days(1));
        let got = contents(&search(app, &w.ada, "messages", &[("q", &before)]).await);
        assert_eq!(got, set(&["budget for the party"]));
    }
    // A score ranks by the positive words, exclusions do not flatten it.
    let with = search(app, &w.ada, "messages", &[("q", "budget")]).await;
    let without = search(app, &w.ada, "messages", &[("q", "budget -zzz")]).await;
    let (a, b) = (
        with["results"][0]["score"].as_f64().unwrap(),
        without["results"][0]["score"].as_f64().unwrap(),
    );
    // (Equal but for the recency of two requests a few ms apart.)
    assert!(a > 0.01 && (a - b).abs() < a * 1e-3, "{a} vs {b}");
    // Prefixes match, and the match is highlighted, HTML-escaped.
    let body = search(app, &w.ada, "messages", &[("q", "budg")]).await;
    assert_eq!(body["results"].as_array().unwrap().len(), 3);
    for r in body["results"].as_array().unwrap() {
        let fragment = r["highlight"]["content"][0].as_str().unwrap();
        assert!(
            fragment.to_lowercase().contains("<mark>budget</mark>"),
            "{r}"
        );
    }
}

async fn paging_and_shape(p: &Pool, w: &World) {
    let app = p.gw(0);
    for i in 0..7 {
        post(app, &w.bob, w.general, &format!("release notes part {i}")).await;
    }
    settle(p, w).await;
    let first = search(
        app,
        &w.ada,
        "messages",
        &[("q", "release notes"), ("limit", "3")],
    )
    .await;
    let r = &first["results"][0];
    assert_eq!(r["type"], "message");
    assert!(r["score"].as_f64().unwrap() >= 0.0);
    for field in [
        "messageId",
        "chatId",
        "seq",
        "senderId",
        "senderName",
        "content",
        "timestamp",
    ] {
        assert!(!r["message"][field].is_null(), "{field} in {r}");
    }
    assert_eq!(r["message"]["senderName"], "Bob");
    // Pages never overlap and together hold every match exactly once.
    let mut seen = BTreeSet::new();
    let mut page = first;
    let mut pages = 0;
    loop {
        pages += 1;
        for r in page["results"].as_array().unwrap() {
            assert!(
                seen.insert(r["message"]["messageId"].as_i64().unwrap()),
                "repeat"
            );
        }
        let Some(cursor) = page["cursor"].as_str().map(str::to_string) else {
            break;
        };
        // A message posted meanwhile does not shift later pages.
        post(app, &w.bob, w.general, "release notes late").await;
        page = search(
            app,
            &w.ada,
            "messages",
            &[("q", "release notes"), ("limit", "3"), ("cursor", &cursor)],
        )
        .await;
        // A cursor belongs to its query.
        let (status, body) = search_raw(
            app,
            &w.ada,
            "messages",
            &[("q", "other words"), ("cursor", &cursor)],
        )
        .await;
        assert_error(status, &body, 422, "validation_failed");
    }
    assert_eq!((seen.len(), pages), (7, 3));
    // Bad input is a clear error.
    for params in [
        vec![("q", "")],
        vec![("q", "x"), ("limit", "0")],
        vec![("q", "x"), ("limit", "51")],
        vec![("q", "x"), ("cursor", "garbage")],
        vec![("q", "x"), ("colour", "red")],
        vec![("q", "a\0b")],
    ] {
        let (status, body) = search_raw(app, &w.ada, "messages", &params).await;
        assert_error(status, &body, 422, "validation_failed");
    }
    let long = "x".repeat(513);
    let (status, body) = search_raw(app, &w.ada, "messages", &[("q", &long)]).await;
    assert_error(status, &body, 422, "validation_failed");
}

async fn edits_deletes_and_removal(p: &Pool, w: &World) {
    let app = p.gw(0);
    let lunch = post(app, &w.bob, w.single, "lunch at noon?").await;
    post(
        app,
        &w.bob,
        w.single,
        "markup <b>bold</b> x<y>z stays searchable",
    )
    .await;
    let party = post(app, &w.bob, w.general, "farewell party friday").await;
    let mut bob = Client::connect(app, &w.bob).await;
    let id = bob
        .send(
            "message.edit",
            json!({"messageId": lunch, "content": "dinner at eight?"}),
        )
        .await;
    assert_eq!(bob.answer(&id).await["type"], "ack");
    let id = bob
        .send("message.delete", json!({"messageId": party}))
        .await;
    assert_eq!(bob.answer(&id).await["type"], "ack");
    settle(p, w).await;
    let found = |q: &'static str| async move {
        contents(&search(app, &w.ada, "messages", &[("q", q)]).await)
    };
    assert_eq!(
        found("lunch").await,
        set(&[]),
        "an edit drops the old words"
    );
    assert_eq!(found("dinner").await, set(&["dinner at eight?"]));
    let markup = set(&["markup <b>bold</b> x<y>z stays searchable"]);
    assert_eq!(found("bold").await, markup);
    assert_eq!(found("y").await, markup);
    assert_eq!(
        found("farewell").await,
        set(&[]),
        "deleted messages never appear"
    );
    // Bob removes Cat from #secret: Cat no longer finds its messages.
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/api/chat/{}/members", w.secret),
            Some(&w.bob.token),
            Some(json!({"userIds": [w.cat.id]})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    assert_eq!(
        contents(&search(app, &w.cat, "messages", &[("q", "secret plan")]).await),
        set(&[])
    );
    let secret = w.secret.to_string();
    let (status, body) = search_raw(
        app,
        &w.cat,
        "messages",
        &[("q", "plan"), ("chatId", &secret)],
    )
    .await;
    assert_error(status, &body, 404, "not_found");
}

async fn directories(p: &Pool, w: &World) {
    let app = p.gw(0);
    let people = search(app, &w.ada, "people", &[("q", "@bo")]).await;
    let names: Vec<&str> = people["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["person"]["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bob"]);
    let bob = &people["results"][0];
    assert_eq!(bob["type"], "person");
    assert_eq!(bob["person"]["userId"], w.bob.id);
    assert_eq!(bob["person"]["email"], "bob@acme.test");
    assert!(bob["person"]["status"].is_string());
    assert_eq!(bob["highlight"]["senderName"][0], "<mark>Bob</mark>");
    // E-mail prefixes; never another workspace's people.
    let by_mail = search(app, &w.ada, "people", &[("q", "cat@")]).await;
    assert_eq!(by_mail["results"][0]["person"]["displayName"], "Cat");
    let eve = search(app, &w.ada, "people", &[("q", "eve")]).await;
    assert_eq!(eve["results"].as_array().unwrap().len(), 0);

    // Chats: the caller's chats and the workspace's public channels.
    let cat = search(app, &w.cat, "chats", &[("q", "gen")]).await;
    let r = &cat["results"][0];
    assert_eq!(r["type"], "channel");
    assert_eq!(r["channel"]["channelId"], w.general);
    assert_eq!(r["channel"]["member"], false, "a public channel to join");
    assert_eq!(r["channel"]["teamId"], w.cat.workspace_id);
    assert_eq!(
        cat["results"].as_array().unwrap().len(),
        1,
        "not Evil's #general"
    );
    let single = search(app, &w.ada, "chats", &[("q", "bo")]).await;
    assert_eq!(single["results"][0]["channel"]["chatType"], "single");
    assert_eq!(single["results"][0]["channel"]["name"], "Bob");
    let eve = search(app, &w.eve, "chats", &[("q", "secret")]).await;
    assert_eq!(eve["results"].as_array().unwrap().len(), 0);
    let (status, body) = search_raw(app, &w.ada, "people", &[("q", "b"), ("chatId", "1")]).await;
    assert_error(status, &body, 422, "validation_failed");
}

async fn over_the_socket(p: &Pool, w: &World) {
    // Let the search budget (20, refilled at 5/s) the cases above spent refill.
    tokio::time::sleep(std::time::Duration::from_millis(4200)).await;
    let mut ada = Client::connect(p.gw(0), &w.ada).await;
    let id = ada
        .send("search.query", json!({"scope": "messages", "q": "dinner"}))
        .await;
    let results = ada.expect("search.results").await;
    assert_eq!(results["payload"]["refId"], id.as_str());
    assert_eq!(results["payload"]["scope"], "messages");
    assert_eq!(
        results["payload"]["results"][0]["message"]["content"],
        "dinner at eight?"
    );
    let ack = ada.answer(&id).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["payload"]["results"], 1);
    let id = ada
        .send("search.query", json!({"scope": "files", "q": "x"}))
        .await;
    let err = ada.answer(&id).await;
    assert_eq!(err["payload"]["code"], "validation_failed", "{err}");
    // Rate limited like REST (one budget): a burst past 20 is refused.
    let mut refused = 0;
    for _ in 0..30 {
        let id = ada
            .send("search.query", json!({"scope": "people", "q": "a"}))
            .await;
        let answer = ada.answer(&id).await;
        if answer["payload"]["code"] == "rate_limited" {
            assert!(answer["payload"]["retryAfterMs"].as_u64().unwrap() > 0);
            refused += 1;
        }
    }
    assert!(refused > 0, "the search budget held");
    let (status, body) = search_once(p.gw(0), &w.ada, "people", &[("q", "a")]).await;
    assert_error(status, &body, 429, "rate_limited");
}
