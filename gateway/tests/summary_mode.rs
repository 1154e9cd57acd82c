//! Summary mode (seed 002 §7.4): a chat over `SUMMARY_MODE_RATE` messages
//! a second reaches connections not focused on it as one `chat.summary`
//! (and one badge) per second instead of every event; focused connections
//! keep getting every event; a calm second brings full delivery back with
//! a `live: true` summary; what was skipped comes back through sync.

mod common;

use std::time::Duration;

use common::realtime::{seqs, Client, Pool, WAIT};
use serde_json::{json, Value};
use sqlx::PgPool;

/// Sends `n` messages to `chat`, each acked in seq order.
async fn burst(a: &mut Client, chat: i64, n: i64) {
    for i in 1..=n {
        let id = a
            .send(
                "message.send",
                json!({"chatId": chat, "content": format!("m{i}")}),
            )
            .await;
        assert_eq!(a.answer(&id).await["payload"]["seq"], i);
    }
}

/// The payloads of the `chat.summary` frames among `frames`, and the sum
/// of their `newMessages`.
fn summaries_in(frames: &[Value]) -> (Vec<&Value>, u64) {
    let summaries: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "chat.summary")
        .map(|f| &f["payload"])
        .collect();
    let summarized = summaries
        .iter()
        .map(|s| s["newMessages"].as_u64().unwrap())
        .sum();
    (summaries, summarized)
}

/// Every frame of `kinds` arriving within `wait`.
async fn frames_of(c: &mut Client, kinds: &[&str], wait: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    while let Some(f) = c
        .next_frame(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        if kinds.contains(&f["type"].as_str().unwrap_or("")) {
            out.push(f);
        }
    }
    out
}

/// Frames of `kinds` until a `chat.summary` with `live: true` (included).
async fn until_live(c: &mut Client, kinds: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        let Some(f) = c.next_frame(Duration::from_millis(500)).await else {
            continue;
        };
        if !kinds.contains(&f["type"].as_str().unwrap_or("")) {
            continue;
        }
        let live = f["type"] == "chat.summary" && f["payload"]["live"] == true;
        out.push(f);
        if live {
            return out;
        }
    }
    panic!("no live chat.summary within {WAIT:?}; got {out:?}");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_busy_chat_is_summarized_for_unfocused_connections_only(pool: PgPool) {
    let p = Pool::start_with(pool, 1, |c| c.summary_mode_rate = 3).await;
    let app = p.gw(0);
    let ada = app.signup("Ada", "Acme").await;
    let bob = app.signup("Bob", "Acme").await;
    let cat = app.signup("Cat", "Acme").await;
    let chat = app
        .create_chat(&ada, "group", Some("busy"), &[bob.id, cat.id])
        .await["id"]
        .as_i64()
        .unwrap();
    let mut a = Client::connect(app, &ada).await;
    let mut b = Client::connect(app, &bob).await;
    let mut c = Client::connect(app, &cat).await;
    let id = c.send("chat.focus", json!({ "chatId": chat })).await;
    assert_eq!(c.answer(&id).await["type"], "ack");

    // Eight messages well within a second: more than 3 a second.
    burst(&mut a, chat, 8).await;

    // Cat shows the chat: every message, in order.
    let got = c.collect("message.new", Duration::from_secs(2)).await;
    assert_eq!(seqs(&got), (1..=8).collect::<Vec<_>>());

    // Bob does not: the first messages until the rate is passed, then
    // summaries that account for the rest, the last one live.
    let frames = until_live(
        &mut b,
        &["message.new", "chat.summary", "notification.badge"],
    )
    .await;
    let live: Vec<i64> = frames
        .iter()
        .filter(|f| f["type"] == "message.new")
        .map(|f| f["payload"]["message"]["seq"].as_i64().unwrap())
        .collect();
    assert!(live.len() >= 3 && live.len() < 8, "{live:?}");
    assert_eq!(live, (1..=live.len() as i64).collect::<Vec<_>>());
    let (summaries, summarized) = summaries_in(&frames);
    assert_eq!(live.len() as u64 + summarized, 8, "{summaries:?}");
    let last = summaries.last().unwrap();
    assert_eq!(last["chatId"], chat);
    assert_eq!(last["lastSeq"], 8);
    assert_eq!(last["lastEventId"], "8-0");
    assert!(summaries[..summaries.len() - 1]
        .iter()
        .all(|s| s["live"] == false));
    // The badge that came with a summary counts every message.
    let badge = frames
        .iter()
        .rev()
        .find(|f| f["type"] == "notification.badge")
        .expect("a badge with the summary");
    assert_eq!(badge["payload"]["unreadCount"], 8);

    // What was skipped comes back through sync, from Bob's own cursor.
    let from = *live.last().unwrap();
    let id = b
        .send(
            "sync.request",
            json!({ "chats": { chat.to_string(): from } }),
        )
        .await;
    let sync = b.expect("sync.response").await;
    let events: Vec<i64> = sync["payload"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["message"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(events, ((from + 1)..=8).collect::<Vec<_>>());
    assert_eq!(b.answer(&id).await["type"], "ack");

    // Back to live: the next message reaches Bob as an event.
    let id = a
        .send("message.send", json!({"chatId": chat, "content": "calm"}))
        .await;
    assert_eq!(a.answer(&id).await["payload"]["seq"], 9);
    let next = b.expect("message.new").await;
    assert_eq!(next["payload"]["message"]["seq"], 9);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn summary_mode_off_delivers_every_event(pool: PgPool) {
    let p = Pool::start_with(pool, 1, |c| c.summary_mode_rate = 0).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(0), &bob).await;
    burst(&mut a, chat, 8).await;
    let got = b.collect("message.new", Duration::from_secs(2)).await;
    assert_eq!(seqs(&got), (1..=8).collect::<Vec<_>>());
    assert!(b
        .collect("chat.summary", Duration::from_millis(1500))
        .await
        .is_empty());
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn focusing_a_summarized_chat_tells_what_was_skipped(pool: PgPool) {
    let p = Pool::start_with(pool, 1, |c| c.summary_mode_rate = 3).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(0), &bob).await;
    burst(&mut a, chat, 8).await;
    // Bob opens the chat at once, perhaps before the second's summary:
    // whatever was skipped is told by a summary, the tick's or one sent
    // with the focus (live, since every event follows).
    let focus = b.send("chat.focus", json!({ "chatId": chat })).await;
    let mut frames = Vec::new();
    while let Some(f) = b.next_frame(Duration::from_millis(1500)).await {
        frames.push(f);
    }
    assert!(frames
        .iter()
        .any(|f| f["type"] == "ack" && f["payload"]["refId"] == focus.as_str()));
    let live = frames.iter().filter(|f| f["type"] == "message.new").count() as u64;
    let (summaries, summarized) = summaries_in(&frames);
    assert!(!summaries.is_empty());
    assert_eq!(live + summarized, 8, "{frames:?}");
    assert_eq!(summaries.last().unwrap()["lastSeq"], 8);
    // Focused, Bob gets the next message itself.
    let id = a
        .send("message.send", json!({"chatId": chat, "content": "y"}))
        .await;
    assert_eq!(a.answer(&id).await["payload"]["seq"], 9);
    assert_eq!(
        b.expect("message.new").await["payload"]["message"]["seq"],
        9
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_backlog_committed_at_once_after_a_stall_is_not_a_burst(pool: PgPool) {
    // Rate 12: a quarter-second burst is 4 messages, a second's 13.
    let mut p = Pool::start_without_worker(pool, 1, |c| c.summary_mode_rate = 12).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(0), &bob).await;
    // 16 messages at 4 a second, accepted while no worker runs: the
    // backlog of a stalled write path.
    let mut sent = Vec::new();
    for i in 1..=16 {
        sent.push(a.say(chat, &format!("m{i}")).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The worker commits them within a moment of each other.
    p.add_worker().await;
    for id in &sent {
        assert_eq!(a.answer(id).await["type"], "ack");
    }
    // Summaries go out once a second: three seconds would show one.
    let frames = frames_of(
        &mut b,
        &["message.new", "chat.summary"],
        Duration::from_secs(3),
    )
    .await;
    let (summaries, _) = summaries_in(&frames);
    assert!(summaries.is_empty(), "summarized: {summaries:?}");
    let got: Vec<i64> = frames
        .iter()
        .map(|f| f["payload"]["message"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(got, (1..=16).collect::<Vec<_>>(), "every message, in order");
}
