//! `apply_batch` on a hand-made batch against a fresh database: one
//! transaction applies sends in bulk and other commands in order, with
//! gap-free per-chat seqs, idempotency inside and across batches, and
//! refusals that do not abort the batch.

use fechatter_shared::ingest::{Command, IngestEntry};
use serde_json::Value;
use sqlx::PgPool;
use worker::persist::apply_batch;

async fn seed(pool: &PgPool) -> (i64, i64, i64, i64, i64) {
    let ws: (i64,) = sqlx::query_as("INSERT INTO workspaces (name) VALUES ('w') RETURNING id")
        .fetch_one(pool)
        .await
        .unwrap();
    let mut users = Vec::new();
    for name in ["ada", "bob", "eve"] {
        let u: (i64,) = sqlx::query_as(
            "INSERT INTO users (workspace_id, fullname, email, password_hash) VALUES ($1, $2, $3, 'x') RETURNING id",
        )
        .bind(ws.0)
        .bind(name)
        .bind(format!("{name}@w.test"))
        .fetch_one(pool)
        .await
        .unwrap();
        users.push(u.0);
    }
    let mut chats = Vec::new();
    for _ in 0..2 {
        let c: (i64,) = sqlx::query_as(
            "INSERT INTO chats (workspace_id, type, name, owner_id) VALUES ($1, 'private_channel', 'c', $2) RETURNING id",
        )
        .bind(ws.0)
        .bind(users[0])
        .fetch_one(pool)
        .await
        .unwrap();
        for &u in &users[..2] {
            sqlx::query("INSERT INTO chat_members (chat_id, user_id) VALUES ($1, $2)")
                .bind(c.0)
                .bind(u)
                .execute(pool)
                .await
                .unwrap();
        }
        chats.push(c.0);
    }
    (users[0], users[1], users[2], chats[0], chats[1])
}

fn entry(chat_id: i64, user_id: i64, ref_id: &str, command: Command) -> IngestEntry {
    IngestEntry {
        chat_id,
        user_id,
        gateway: "gw".into(),
        conn: 1,
        ref_id: ref_id.into(),
        command,
        trace_id: String::new(),
        accepted_ms: 0,
    }
}

fn send(content: &str, mentions: Vec<i64>) -> Command {
    Command::Send {
        content: content.into(),
        reply_to: None,
        mentions,
        urgent: false,
    }
}

fn payload(frame: &str) -> Value {
    serde_json::from_str::<Value>(frame).unwrap()["payload"].clone()
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_batch_of_sends_and_edits(pool: PgPool) {
    let (ada, bob, eve, c1, c2) = seed(&pool).await;
    let batch = vec![
        entry(c1, ada, "a1", send("one", vec![bob, eve, ada])),
        entry(c2, bob, "b1", send("other chat", vec![])),
        entry(c1, bob, "b2", send("two", vec![])),
        entry(c1, ada, "a1", send("one (retry in the same batch)", vec![])),
        entry(c1, eve, "e1", send("not a member", vec![])),
        entry(
            c1,
            ada,
            "a2",
            Command::Edit {
                message_id: 1,
                content: "one!".into(),
            },
        ),
        entry(c1, ada, "a3", send("three", vec![])),
    ];
    let fx = apply_batch(&pool, &batch).await.unwrap();

    let seqs: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT chat_id, seq, content FROM messages ORDER BY chat_id, seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        seqs,
        vec![
            (c1, 1, "one!".into()),
            (c1, 2, "two".into()),
            (c1, 3, "three".into()),
            (c2, 1, "other chat".into()),
        ]
    );
    // Topic events in commit order per chat: 1-0, 2-0, then the edit 2-1, then 3-0.
    let c1_events: Vec<(i64, i64)> = fx
        .topic
        .iter()
        .filter(|t| t.chat_id == c1)
        .map(|t| (t.seq, t.sub))
        .collect();
    assert_eq!(c1_events, vec![(1, 0), (2, 0), (2, 1), (3, 0)]);
    // Every entry is answered exactly once.
    let answers: Vec<Value> = fx.replies.iter().map(|r| payload(&r.frame)).collect();
    assert_eq!(answers.len(), batch.len());
    let by_ref = |r: &str| {
        answers
            .iter()
            .filter(|a| a["refId"] == r)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(by_ref("a1").len(), 2);
    assert_eq!(by_ref("a1")[0]["seq"], 1);
    assert_eq!(by_ref("a1")[1]["duplicate"], true);
    assert_eq!(by_ref("a1")[1]["messageId"], by_ref("a1")[0]["messageId"]);
    assert_eq!(by_ref("e1")[0]["code"], "not_found");
    // Mentions count only for other members.
    assert_eq!(fx.mentions, vec![(bob, c1)]);
    // Senders have read their own messages.
    let (ada_read,): (i64,) = sqlx::query_as(
        "SELECT last_read_seq FROM chat_members WHERE chat_id = $1 AND user_id = $2",
    )
    .bind(c1)
    .bind(ada)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ada_read, 3);

    // The whole batch again (a retry after a crash): nothing new, same acks.
    let again = apply_batch(&pool, &batch).await.unwrap();
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 4);
    let first_ack = again
        .replies
        .iter()
        .map(|r| payload(&r.frame))
        .find(|a| a["refId"] == "a3")
        .unwrap();
    assert_eq!(
        (first_ack["seq"].as_i64(), first_ack["duplicate"].as_bool()),
        (Some(3), Some(true))
    );
    let c1_events: Vec<(i64, i64)> = again
        .topic
        .iter()
        .filter(|t| t.chat_id == c1)
        .map(|t| (t.seq, t.sub))
        .collect();
    assert_eq!(
        c1_events,
        vec![(1, 0), (2, 0), (2, 1), (3, 0)],
        "re-published in the same order"
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn frame_ids_are_scoped_to_their_sender(pool: PgPool) {
    let (ada, bob, _eve, c1, _c2) = seed(&pool).await;
    // Both clients count their frames from 1: two different messages.
    let first = apply_batch(&pool, &[entry(c1, ada, "1", send("from ada", vec![]))])
        .await
        .unwrap();
    let second = apply_batch(&pool, &[entry(c1, bob, "1", send("from bob", vec![]))])
        .await
        .unwrap();
    let same_batch = apply_batch(
        &pool,
        &[
            entry(c1, ada, "2", send("ada two", vec![])),
            entry(c1, bob, "2", send("bob two", vec![])),
        ],
    )
    .await
    .unwrap();
    let contents: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, content FROM messages ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        contents,
        vec![
            (1, "from ada".into()),
            (2, "from bob".into()),
            (3, "ada two".into()),
            (4, "bob two".into())
        ]
    );
    for fx in [&first, &second, &same_batch] {
        assert!(fx
            .replies
            .iter()
            .all(|r| payload(&r.frame)["duplicate"].is_null()));
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn every_event_of_a_chat_is_numbered_without_holes(pool: PgPool) {
    let (ada, bob, _, c1, c2) = seed(&pool).await;
    let react = |message_id| Command::React {
        message_id,
        emoji: "👍".into(),
        action: fechatter_shared::protocol::ReactAction::Add,
    };
    let first = apply_batch(
        &pool,
        &[
            entry(c1, ada, "a1", send("one", vec![])),
            entry(c2, bob, "b1", send("elsewhere", vec![])),
            entry(c1, bob, "b2", send("two", vec![])),
        ],
    )
    .await
    .unwrap();
    let m1 = payload(&first.topic[0].frame)["message"]["id"]
        .as_i64()
        .unwrap();
    let second = apply_batch(
        &pool,
        &[
            entry(c1, bob, "b3", react(m1)),
            entry(
                c1,
                ada,
                "a4",
                Command::Edit {
                    message_id: m1,
                    content: "one!".into(),
                },
            ),
            entry(c1, ada, "a5", send("three", vec![])),
            // A retry numbers nothing new.
            entry(c1, ada, "a1", send("one", vec![])),
        ],
    )
    .await
    .unwrap();
    let numbered: Vec<(i64, i64, i64)> = first
        .topic
        .iter()
        .chain(&second.topic)
        .map(|ev| {
            assert_eq!(
                payload(&ev.frame)["eventSeq"],
                ev.event_seq,
                "the frame carries it"
            );
            (ev.chat_id, ev.event_seq, ev.seq)
        })
        .collect();
    assert_eq!(
        numbered,
        // The retry's event comes again (re-published: a no-op where the
        // stream has it) ahead of the run's new message.
        [
            (c1, 1, 1),
            (c2, 1, 1),
            (c1, 2, 2),
            (c1, 3, 2),
            (c1, 4, 2),
            (c1, 1, 1),
            (c1, 5, 3)
        ]
    );
    let log: Vec<i64> = sqlx::query_scalar(
        "SELECT event_seq FROM chat_events WHERE chat_id = $1 ORDER BY event_seq",
    )
    .bind(c1)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(log, [1, 2, 3, 4, 5]);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_holder_with_a_stale_epoch_commits_nothing(pool: PgPool) {
    use fechatter_shared::store::fence;
    use worker::persist::{apply_fenced, CommitError};
    let (ada, _, _, c1, _) = seed(&pool).await;
    let old = fence::take(&pool, 0).await.unwrap();
    let batch = [entry(c1, ada, "a1", send("one", vec![]))];
    let here = Default::default();
    // Another worker takes shard 0: the old epoch may not commit.
    let new = fence::take(&pool, 0).await.unwrap();
    assert!(new > old);
    let other = fence::take(&pool, 1).await.unwrap();
    match apply_fenced(&pool, &batch, &here, &[(0, old), (1, other)]).await {
        Err(CommitError::Fenced(shards)) => assert_eq!(shards, [0]),
        other => panic!("expected fenced, got {other:?}"),
    }
    let (messages, events): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM chat_events)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((messages, events), (0, 0), "nothing written");
    let fx = apply_fenced(&pool, &batch, &here, &[(0, new), (1, other)])
        .await
        .unwrap();
    assert_eq!(fx.topic.len(), 1, "the current holder commits");
}

/// The ack frame's payload answering `ref_id` in `fx`.
fn answer(fx: &worker::persist::Effects, ref_id: &str) -> Value {
    fx.replies
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.frame).unwrap())
        .find(|f| f["payload"]["refId"] == ref_id)
        .unwrap_or_else(|| panic!("no answer to {ref_id}"))
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn chat_changes_are_checked_at_commit_and_numbered_as_chat_events(pool: PgPool) {
    let (ada, bob, eve, c1, _) = seed(&pool).await;
    sqlx::query("UPDATE chat_members SET role = 'owner' WHERE chat_id = $1 AND user_id = $2")
        .bind(c1)
        .bind(ada)
        .execute(&pool)
        .await
        .unwrap();
    let rename = |name: &str| Command::UpdateChat {
        name: Some(name.into()),
        description: None,
        read_only: Some(true),
    };
    let transfer = |new_owner| Command::TransferChat { new_owner };
    let fx = apply_batch(
        &pool,
        &[
            entry(c1, ada, "a1", send("one", vec![])),
            // A plain member's change is refused at commit, whatever the
            // gateway saw when it queued it.
            entry(c1, bob, "b1", rename("bob's")),
            entry(c1, ada, "a2", rename("launch")),
            entry(c1, ada, "a3", transfer(eve)),
            entry(c1, ada, "a4", transfer(bob)),
            // Ada is an admin now: she renames, but no longer transfers.
            entry(c1, ada, "a5", transfer(ada)),
            // Text PostgreSQL cannot store is refused without failing the
            // batch (a failed statement would abort its transaction).
            entry(c1, ada, "a6", rename("a\0b")),
            entry(c1, ada, "a2", rename("a retry")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(answer(&fx, "b1")["payload"]["code"], "forbidden");
    assert_eq!(answer(&fx, "a3")["payload"]["code"], "validation_failed");
    assert_eq!(answer(&fx, "a5")["payload"]["code"], "forbidden");
    assert_eq!(answer(&fx, "a6")["payload"]["code"], "validation_failed");
    let acks: Vec<Value> = fx
        .replies
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.frame).unwrap()["payload"].clone())
        .filter(|p| p["refId"] == "a2" || p["refId"] == "a4")
        .collect();
    assert_eq!(
        acks,
        [
            serde_json::json!({"refId": "a2", "status": "ok", "chatId": c1, "eventSeq": 2}),
            serde_json::json!({"refId": "a4", "status": "ok", "chatId": c1, "eventSeq": 3}),
            serde_json::json!({"refId": "a2", "status": "ok", "chatId": c1, "eventSeq": 2,
                               "duplicate": true}),
        ]
    );
    // The events: after message 1, numbered 2 and 3, the retry's again.
    let events: Vec<(String, i64, Value)> = fx
        .topic
        .iter()
        .map(|ev| {
            let f: Value = serde_json::from_str(&ev.frame).unwrap();
            (f["type"].as_str().unwrap().to_string(), ev.event_seq, f)
        })
        .collect();
    let kinds: Vec<(&str, i64)> = events.iter().map(|(k, n, _)| (k.as_str(), *n)).collect();
    assert_eq!(
        kinds,
        [
            ("message.new", 1),
            ("chat.updated", 2),
            ("chat.updated", 3),
            ("chat.updated", 2)
        ]
    );
    let renamed = &events[1].2;
    assert_eq!(renamed["id"], format!("c{c1}:1-1"));
    let p = &renamed["payload"];
    assert_eq!(
        (p["eventId"].as_str(), p["userId"].as_i64()),
        (Some("1-1"), Some(ada))
    );
    assert_eq!(
        (p["chat"]["name"].as_str(), p["chat"]["readOnly"].as_bool()),
        (Some("launch"), Some(true))
    );
    assert_eq!(p["roles"], serde_json::json!([]));
    assert!(!fx.topic[1].indexed, "a chat change is not a search change");
    let moved = &events[2].2["payload"];
    assert_eq!(moved["chat"]["ownerId"], bob);
    assert_eq!(
        moved["roles"],
        serde_json::json!([{"userId": bob, "role": "owner"}, {"userId": ada, "role": "admin"}])
    );
    let roles: Vec<(i64, String)> = sqlx::query_as(
        "SELECT user_id, role FROM chat_members WHERE chat_id = $1 ORDER BY user_id",
    )
    .bind(c1)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(roles, [(ada, "admin".into()), (bob, "owner".into())]);
    let name: (Option<String>,) = sqlx::query_as("SELECT name FROM chats WHERE id = $1")
        .bind(c1)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        name.0.as_deref(),
        Some("launch"),
        "the retry changed nothing"
    );
}

/// Retries are recognized whether the batch names few chats (the
/// statement that lets the planner prune partitions) or many (the one
/// that does not): `store::event::earlier_sends` picks by the count.
#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn retries_are_found_in_batches_of_few_and_many_chats(pool: PgPool) {
    let (ada, _bob, _eve, c1, c2) = seed(&pool).await;
    let mut chats = vec![c1, c2];
    for _ in 0..4 {
        let c: (i64,) = sqlx::query_as(
            "INSERT INTO chats (workspace_id, type, name, owner_id)
             SELECT workspace_id, 'private_channel', 'more', id FROM users WHERE id = $1
             RETURNING id",
        )
        .bind(ada)
        .fetch_one(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO chat_members (chat_id, user_id) VALUES ($1, $2)")
            .bind(c.0)
            .bind(ada)
            .execute(&pool)
            .await
            .unwrap();
        chats.push(c.0);
    }
    let sends = |refs: &[(usize, &str)]| -> Vec<IngestEntry> {
        refs.iter()
            .map(|&(i, r)| entry(chats[i], ada, r, send(r, vec![])))
            .collect()
    };
    let all: Vec<(usize, &str)> = (0..6)
        .map(|i| (i, ["a", "b", "c", "d", "e", "f"][i]))
        .collect();
    let first = apply_batch(&pool, &sends(&all)).await.unwrap();
    let again = apply_batch(&pool, &sends(&all)).await.unwrap();
    let few = apply_batch(&pool, &sends(&[(0, "a"), (1, "b"), (2, "g")]))
        .await
        .unwrap();
    for r in ["a", "b", "c", "d", "e", "f"] {
        let (one, two) = (
            answer(&first, r)["payload"].clone(),
            answer(&again, r)["payload"].clone(),
        );
        assert_eq!(two["duplicate"], true, "{r}: many chats, a retry");
        assert!(one["messageId"].is_i64(), "{r}: {one}");
        assert_eq!(
            one["messageId"], two["messageId"],
            "{r}: the original answer"
        );
    }
    assert_eq!(
        answer(&few, "a")["payload"]["duplicate"],
        true,
        "few chats, a retry"
    );
    let b = answer(&few, "b")["payload"].clone();
    assert_eq!(b["duplicate"], true, "few chats, a retry");
    assert!(b["messageId"].is_i64(), "{b}");
    assert_eq!(b["messageId"], answer(&first, "b")["payload"]["messageId"]);
    assert!(
        answer(&few, "g")["payload"]["duplicate"].is_null(),
        "a new send"
    );
    let messages: (i64,) = sqlx::query_as("SELECT count(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(messages.0, 7, "six sends and one new, nothing twice");
}
