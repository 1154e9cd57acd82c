//! `store::event::earlier_sends`, the send batch's retry check: it finds
//! exactly the `(chat, client id, user)` keys already committed, with their
//! message's seq (from the event once the message row is gone), and it
//! probes the unique index per key at every batch size. A plain join to
//! `unnest` made the planner pick a sequential scan of the whole event log
//! from a few dozen keys on (see the function's doc), which no answer
//! would show: only the plan does.

use fechatter_shared::store::event::{earlier_sends, EARLIER_SENDS};
use serde_json::Value;
use sqlx::PgPool;

mod common;
use common::{add_members, user, workspace};

/// `count` group chats of `members`, each with message 1 sent by
/// `members[0]` under client id `c<i>` and its logged `message.new`.
async fn chats_with_one_message(pool: &PgPool, ws: i64, members: &[i64], count: usize) -> Vec<i64> {
    let mut chats = Vec::new();
    for i in 0..count {
        let chat: i64 = sqlx::query_scalar(
            "INSERT INTO chats (workspace_id, type, name, owner_id, last_seq, last_event)
             VALUES ($1, 'group', 'g', $2, 1, 1) RETURNING id",
        )
        .bind(ws)
        .bind(members[0])
        .fetch_one(pool)
        .await
        .unwrap();
        add_members(pool, chat, members).await;
        let message: i64 = sqlx::query_scalar(
            "INSERT INTO messages (chat_id, seq, sender_id, content, client_id)
             VALUES ($1, 1, $2, 'hi', $3) RETURNING id",
        )
        .bind(chat)
        .bind(members[0])
        .bind(format!("c{i}"))
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO chat_events (chat_id, seq, sub, kind, client_id, user_id, message_id,
                                      frame, event_seq)
             VALUES ($1, 1, 0, 'message.new', $2, $3, $4, '{}', 1)",
        )
        .bind(chat)
        .bind(format!("c{i}"))
        .bind(members[0])
        .bind(message)
        .execute(pool)
        .await
        .unwrap();
        chats.push(chat);
    }
    chats
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn finds_exactly_the_committed_keys(pool: PgPool) {
    let ws = workspace(&pool).await;
    let (a, b) = (user(&pool, ws, "a").await, user(&pool, ws, "b").await);
    let chats = chats_with_one_message(&pool, ws, &[a, b], 30).await;
    // The first chat's message left `messages` (as archival moves it): its
    // seq then comes from the event.
    sqlx::query("DELETE FROM messages WHERE chat_id = $1")
        .bind(chats[0])
        .execute(&pool)
        .await
        .unwrap();
    // Per chat: the committed key, the same client id from the other
    // member, and an unknown client id of the sender.
    let mut keys: Vec<(i64, String, i64)> = Vec::new();
    for (i, &chat) in chats.iter().enumerate() {
        keys.push((chat, format!("c{i}"), a));
        keys.push((chat, format!("c{i}"), b));
        keys.push((chat, format!("x{i}"), a));
    }
    let chat_ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
    let client_ids: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let users: Vec<i64> = keys.iter().map(|k| k.2).collect();

    let mut tx = pool.begin().await.unwrap();
    let mut found = earlier_sends(&mut tx, &chat_ids, &client_ids, &users)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    found.sort_by_key(|f| f.chat_id);
    let got: Vec<(i64, String, i64, i64)> = found
        .iter()
        .map(|f| (f.chat_id, f.client_id.clone(), f.user_id, f.message_seq))
        .collect();
    let want: Vec<(i64, String, i64, i64)> = chats
        .iter()
        .enumerate()
        .map(|(i, &chat)| (chat, format!("c{i}"), a, 1))
        .collect();
    assert_eq!(got, want);
}

/// Every node of an `EXPLAIN (FORMAT JSON)` plan.
fn nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    if let Some(children) = plan["Plans"].as_array() {
        for child in children {
            nodes(child, out);
        }
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn probes_the_index_at_every_batch_size(pool: PgPool) {
    let ws = workspace(&pool).await;
    let a = user(&pool, ws, "a").await;
    // 400 chats with 25 events each (10,000 rows over the 16 partitions),
    // analyzed, so the planner knows the table's size.
    sqlx::query(
        "WITH c AS (
           INSERT INTO chats (workspace_id, type, name, owner_id)
           SELECT $1, 'group', 'g', $2 FROM generate_series(1, 400) RETURNING id
         )
         INSERT INTO chat_events (chat_id, seq, sub, kind, client_id, user_id, message_id, frame,
                                  event_seq)
         SELECT c.id, n, 0, 'message.new', 'c' || n, $2, 0, '{}', n
         FROM c, generate_series(1, 25) AS n",
    )
    .bind(ws)
    .bind(a)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE chat_events")
        .execute(&pool)
        .await
        .unwrap();
    let chats: Vec<i64> = sqlx::query_scalar("SELECT id FROM chats ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();

    for batch in [1usize, 20, 200] {
        let chat_ids: Vec<i64> = chats.iter().copied().cycle().take(batch).collect();
        let client_ids: Vec<String> = (0..batch).map(|i| format!("new{i}")).collect();
        let users = vec![a; batch];
        let plan: Value = sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {EARLIER_SENDS}"))
            .bind(&chat_ids)
            .bind(&client_ids)
            .bind(&users)
            .fetch_one(&pool)
            .await
            .unwrap();
        let mut all = Vec::new();
        nodes(&plan[0]["Plan"], &mut all);
        let scans_of_events: Vec<&Value> = all
            .iter()
            .filter(|n| {
                n["Relation Name"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("chat_events"))
            })
            .collect();
        assert!(
            !scans_of_events.is_empty(),
            "batch of {batch}: no scan of chat_events in {plan}"
        );
        for scan in scans_of_events {
            assert_eq!(
                scan["Node Type"], "Index Scan",
                "batch of {batch}: chat_events read by {} in {plan}",
                scan["Node Type"]
            );
        }
    }
}
