//! Migration 11 on a database that already holds chat events: existing
//! events are numbered 1..n per chat in their (seq, sub) order, their
//! stored frames gain `eventSeq` (still starting with `{"type":`), and the
//! chats' counters continue from there.

use fechatter_shared::{protocol, MIGRATOR};
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn existing_events_are_numbered_in_order(pool: PgPool) {
    fechatter_shared::migrator_before(20261127000011)
        .run(&pool)
        .await
        .unwrap();
    let (user, chat_a, chat_b): (i64, i64, i64) = sqlx::query_as(
        "WITH w AS (INSERT INTO workspaces (name) VALUES ('Acme') RETURNING id),
              u AS (INSERT INTO users (workspace_id, fullname, email, password_hash)
                    SELECT id, 'Ada', 'ada@acme.test', 'x' FROM w RETURNING id, workspace_id),
              c AS (INSERT INTO chats (workspace_id, type, name, owner_id)
                    SELECT workspace_id, 'group', 'g' || n, id FROM u, generate_series(1, 2) n
                    RETURNING id)
         SELECT (SELECT id FROM u), min(id), max(id) FROM c",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // Chat A: messages 1 and 2, an edit after message 2 (2-1), message 3.
    // Chat B: one message. Inserted out of order on purpose.
    let events = [
        (chat_a, 3, 0),
        (chat_a, 1, 0),
        (chat_b, 1, 0),
        (chat_a, 2, 1),
        (chat_a, 2, 0),
    ];
    for (chat, seq, sub) in events {
        let message: (i64,) = sqlx::query_as(
            "INSERT INTO messages (chat_id, seq, sender_id, content, client_id)
             VALUES ($1, $2, $3, 'x', $4) ON CONFLICT (chat_id, seq) DO UPDATE SET content = 'x'
             RETURNING id",
        )
        .bind(chat)
        .bind(seq)
        .bind(user)
        .bind(format!("m{chat}-{seq}"))
        .fetch_one(&pool)
        .await
        .unwrap();
        let frame = protocol::server_frame(
            "message.new",
            &protocol::event_frame_id(chat, seq, sub),
            chrono::Utc::now(),
            &json!({ "chatId": chat, "eventId": format!("{seq}-{sub}") }),
        );
        sqlx::query(
            "INSERT INTO chat_events (chat_id, seq, sub, kind, client_id, user_id, message_id, frame)
             VALUES ($1, $2, $3, 'message.new', $4, $5, $6, $7)",
        )
        .bind(chat)
        .bind(seq)
        .bind(sub)
        .bind(format!("e{chat}-{seq}-{sub}"))
        .bind(user)
        .bind(message.0)
        .bind(frame)
        .execute(&pool)
        .await
        .unwrap();
    }

    MIGRATOR.run(&pool).await.unwrap();

    let rows: Vec<(i64, i64, i64, i64, String)> = sqlx::query_as(
        "SELECT chat_id, seq, sub, event_seq, frame FROM chat_events ORDER BY chat_id, event_seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let numbered: Vec<(i64, i64, i64, i64)> = rows.iter().map(|r| (r.0, r.1, r.2, r.3)).collect();
    assert_eq!(
        numbered,
        [
            (chat_a, 1, 0, 1),
            (chat_a, 2, 0, 2),
            (chat_a, 2, 1, 3),
            (chat_a, 3, 0, 4),
            (chat_b, 1, 0, 1)
        ]
    );
    for (_, _, _, n, frame) in &rows {
        assert!(frame.starts_with("{\"type\":\"message.new\""), "{frame}");
        let v: Value = serde_json::from_str(frame).unwrap();
        assert_eq!(v["payload"]["eventSeq"], *n);
    }
    let counters: Vec<i64> = sqlx::query_scalar("SELECT last_event FROM chats ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(counters, [4, 1]);
}
