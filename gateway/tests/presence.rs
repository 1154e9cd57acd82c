//! Presence (seed 002 §4) against real gateways, a worker, PostgreSQL and
//! Redis: aggregation over devices on different gateways, idle -> away ->
//! online, manual states that persist, batched `presence.changed` only to
//! watchers, workspace isolation, subscription expiry, and a gateway killed
//! with SIGKILL whose users go offline within the stated bound.

mod common;

use std::time::{Duration, Instant};

use common::{
    process::start_gateway,
    realtime::{Client, Pool},
};
use serde_json::{json, Value};
use sqlx::PgPool;

/// Waits for the next `presence.changed` entry of `user`; returns its status.
async fn next_status(c: &mut Client, user: i64, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let f = c.next_frame(left).await?;
        if f["type"] == "presence.changed" {
            let entries = f["payload"]["changes"].as_array().unwrap();
            let mine: Vec<&Value> = entries.iter().filter(|e| e["userId"] == user).collect();
            assert!(mine.len() <= 1, "one entry per user per batch: {f}");
            if let Some(e) = mine.first() {
                return Some(e["status"].as_str().unwrap().to_string());
            }
        }
    }
    None
}

/// Statuses of `user` announced to `c` until `want` (inclusive).
async fn statuses_until(c: &mut Client, user: i64, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(s) = next_status(c, user, Duration::from_secs(10)).await {
        let done = s == want;
        seen.push(s);
        if done {
            return seen;
        }
    }
    panic!("{want} never announced for user {user}; saw {seen:?}");
}

async fn subscribe(c: &mut Client, ids: &[i64]) -> Value {
    let id = c
        .send("presence.subscribe", json!({ "userIds": ids }))
        .await;
    c.answer(&id).await
}

async fn set_status(c: &mut Client, status: &str) -> Value {
    let id = c.send("presence.update", json!({ "status": status })).await;
    c.answer(&id).await
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn devices_aggregate_across_gateways_idle_turns_away_and_manual_states_persist(pool: PgPool) {
    let p = Pool::start_with(pool.clone(), 2, |c| {
        c.presence_away = Duration::from_secs(4)
    })
    .await;
    let (ada, bob, _) = p.pair().await;
    let eve = p.gw(0).signup("Eve", "Evil").await;
    let mut watcher = Client::connect(p.gw(1), &bob).await;

    // Only users of the caller's workspace; the others are "not found".
    let ack = subscribe(&mut watcher, &[ada.id, eve.id, 987_654]).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["payload"]["notFound"], json!([eve.id, 987_654]));
    assert_eq!(ack["payload"]["watching"], 1);
    let state = &ack["payload"]["presence"][0];
    assert_eq!(state["userId"], ada.id);
    assert_eq!(state["status"], "offline");
    assert!(state["lastSeen"].is_null(), "never seen: {state}");

    // Ada's phone (gateway 0) and laptop (gateway 1).
    let phone = Client::connect(p.gw(0), &ada).await;
    assert_eq!(
        statuses_until(&mut watcher, ada.id, "online").await,
        ["online"]
    );
    let mut laptop = Client::connect(p.gw(1), &ada).await;
    phone.close().await;
    // The laptop keeps her present: she turns away (idle), never offline.
    assert_eq!(statuses_until(&mut watcher, ada.id, "away").await, ["away"]);
    // Any frame but a ping is activity.
    laptop
        .send("presence.unsubscribe", json!({ "userIds": [] }))
        .await;
    assert_eq!(
        statuses_until(&mut watcher, ada.id, "online").await,
        ["online"]
    );

    // A manual state wins over activity and survives reconnects.
    let ack = set_status(&mut laptop, "dnd").await;
    assert_eq!(ack["payload"]["presence"], "dnd", "{ack}");
    assert_eq!(statuses_until(&mut watcher, ada.id, "dnd").await, ["dnd"]);
    laptop.close().await;
    assert_eq!(
        statuses_until(&mut watcher, ada.id, "offline").await,
        ["offline"]
    );
    let stored: (Option<String>, bool) =
        sqlx::query_as("SELECT presence_manual, last_seen_at IS NOT NULL FROM users WHERE id = $1")
            .bind(ada.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, (Some("dnd".into()), true));
    let mut laptop = Client::connect(p.gw(0), &ada).await;
    assert_eq!(statuses_until(&mut watcher, ada.id, "dnd").await, ["dnd"]);
    let ack = set_status(&mut laptop, "asleep").await;
    assert_eq!(ack["payload"]["code"], "validation_failed", "{ack}");
    assert_eq!(
        set_status(&mut laptop, "online").await["payload"]["presence"],
        "online"
    );
    assert_eq!(
        statuses_until(&mut watcher, ada.id, "online").await,
        ["online"]
    );

    // A burst of changes within one window: one entry per batch, latest wins.
    for s in ["brb", "dnd", "away", "brb"] {
        set_status(&mut laptop, s).await;
    }
    let frames = watcher
        .collect("presence.changed", Duration::from_millis(4500))
        .await;
    assert!(
        (1..=3).contains(&frames.len()),
        "four changes arrive in at most three 2 s batches: {frames:?}"
    );
    let last = frames.last().unwrap()["payload"]["changes"][0].clone();
    assert_eq!(last["status"], "brb");
    assert!(last["lastSeen"].as_str().unwrap().ends_with('Z'), "{last}");

    // Unsubscribed: nothing more arrives.
    let id = watcher
        .send("presence.unsubscribe", json!({ "userIds": [ada.id] }))
        .await;
    assert_eq!(watcher.answer(&id).await["payload"]["watching"], 0);
    set_status(&mut laptop, "online").await;
    assert!(watcher
        .collect("presence.changed", Duration::from_millis(2500))
        .await
        .is_empty());
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn subscriptions_are_capped_and_lapse_unless_renewed(pool: PgPool) {
    let p = Pool::start_with(pool, 1, |c| c.presence_sub_ttl = Duration::from_secs(3)).await;
    let (ada, bob, _) = p.pair().await;
    let mut watcher = Client::connect(p.gw(0), &bob).await;
    let too_many: Vec<i64> = (1..=501).collect();
    let ack = subscribe(&mut watcher, &too_many).await;
    assert_eq!(ack["payload"]["code"], "validation_failed", "{ack}");
    subscribe(&mut watcher, &[ada.id]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Lapsed: Ada's arrival is not announced to Bob any more.
    let _ada = Client::connect(p.gw(0), &ada).await;
    assert!(watcher
        .collect("presence.changed", Duration::from_millis(3000))
        .await
        .is_empty());
    // Renewed, it works again (and the ack carries the current state).
    let ack = subscribe(&mut watcher, &[ada.id]).await;
    assert_eq!(ack["payload"]["presence"][0]["status"], "online", "{ack}");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn users_of_a_killed_gateway_go_offline_unless_connected_elsewhere(pool: PgPool) {
    let ttl = Duration::from_secs(3);
    let p = Pool::start_with(pool, 1, |c| c.presence_node_ttl = ttl).await;
    let (ada, bob, _) = p.pair().await;
    let cy = p.gw(0).signup("Cy", "Acme").await;
    let mut doomed = start_gateway(&p.config, "doomed", &[("PRESENCE_NODE_TTL_MS", "3000")]).await;
    let mut watcher = Client::connect(p.gw(0), &bob).await;
    subscribe(&mut watcher, &[ada.id, cy.id]).await;

    let _ada = Client::connect_url(&doomed.base, &ada).await;
    let _cy_there = Client::connect_url(&doomed.base, &cy).await;
    let _cy_here = Client::connect(p.gw(0), &cy).await;
    let mut online = std::collections::HashSet::new();
    while online.len() < 2 {
        let f = watcher.expect("presence.changed").await;
        for e in f["payload"]["changes"].as_array().unwrap() {
            assert_eq!(e["status"], "online", "{f}");
            online.insert(e["userId"].as_i64().unwrap());
        }
    }

    doomed.child.start_kill().unwrap(); // SIGKILL: no cleanup at all
    let killed = Instant::now();
    assert_eq!(
        statuses_until(&mut watcher, ada.id, "offline").await,
        ["offline"]
    );
    let took = killed.elapsed();
    // Bound: lease TTL + renewal interval + sweep interval + batch window.
    assert!(
        took < ttl + ttl / 3 + Duration::from_secs(4),
        "offline after {took:?}"
    );
    // Cy kept a connection elsewhere: never announced offline.
    let later = watcher
        .collect("presence.changed", Duration::from_secs(3))
        .await;
    assert!(
        later.iter().all(|f| f["payload"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["userId"] != cy.id)),
        "{later:?}"
    );
}
