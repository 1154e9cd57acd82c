//! `store::badge::read_up_to`: a read watermark moves forward only, never
//! past the chat's newest message, and the counts returned are those after
//! the move (unread = newest seq - watermark; mentions = undeleted
//! messages after the watermark that mention the member), in the one
//! statement the send batch and `read.mark` use.

use fechatter_shared::store::badge::{read_up_to, Counts, ReadUpTo};
use sqlx::PgPool;

mod common;
use common::{add_members, user, workspace};

/// A group chat of `members` whose messages 1..=mentions.len() are sent by
/// `members[0]`, message i mentioning `mentions[i - 1]`.
async fn chat(pool: &PgPool, ws: i64, members: &[i64], mentions: &[&[i64]]) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO chats (workspace_id, type, name, owner_id, last_seq)
         VALUES ($1, 'group', 'g', $2, $3) RETURNING id",
    )
    .bind(ws)
    .bind(members[0])
    .bind(mentions.len() as i64)
    .fetch_one(pool)
    .await
    .unwrap();
    add_members(pool, id, members).await;
    for (i, m) in mentions.iter().enumerate() {
        sqlx::query(
            "INSERT INTO messages (chat_id, seq, sender_id, content, client_id, mentions)
             VALUES ($1, $2, $3, 'hi', $4, $5)",
        )
        .bind(id)
        .bind(i as i64 + 1)
        .bind(members[0])
        .bind(format!("c{i}"))
        .bind(m.to_vec())
        .execute(pool)
        .await
        .unwrap();
    }
    id
}

async fn read(pool: &PgPool, pairs: &[(i64, i64, i64)]) -> Vec<ReadUpTo> {
    let mut tx = pool.begin().await.unwrap();
    let chats: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let users: Vec<i64> = pairs.iter().map(|p| p.1).collect();
    let seqs: Vec<i64> = pairs.iter().map(|p| p.2).collect();
    let mut rows = read_up_to(&mut tx, &chats, &users, &seqs).await.unwrap();
    tx.commit().await.unwrap();
    rows.sort_by_key(|r| (r.counts.chat_id, r.counts.user_id));
    rows
}

fn moved(chat_id: i64, user_id: i64, before: i64, after: i64, counts: (i64, i64)) -> ReadUpTo {
    ReadUpTo {
        counts: Counts {
            chat_id,
            user_id,
            unread: counts.0,
            mentions: counts.1,
        },
        before,
        after,
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn watermarks_move_forward_only_and_counts_follow_them(pool: PgPool) {
    let ws = workspace(&pool).await;
    let (a, b, c) = (
        user(&pool, ws, "a").await,
        user(&pool, ws, "b").await,
        user(&pool, ws, "c").await,
    );
    // Five messages by a; b is mentioned in 2 and 4, c in 5.
    let g = chat(&pool, ws, &[a, b], &[&[], &[b], &[], &[b], &[c]]).await;
    sqlx::query("UPDATE messages SET deleted_at = now() WHERE chat_id = $1 AND seq = 5")
        .bind(g)
        .execute(&pool)
        .await
        .unwrap();

    // b reads up to 3: one mention left (4), two unread; c is no member.
    let rows = read(&pool, &[(g, b, 3), (g, c, 5)]).await;
    assert_eq!(rows, vec![moved(g, b, 0, 3, (2, 1))]);

    // Backwards changes nothing; past the newest stops at the newest.
    let rows = read(&pool, &[(g, b, 1), (g, a, 99)]).await;
    assert_eq!(
        rows,
        vec![moved(g, a, 0, 5, (0, 0)), moved(g, b, 3, 3, (2, 1))]
    );
    let rows = read(&pool, &[(g, b, 5)]).await;
    assert_eq!(rows, vec![moved(g, b, 3, 5, (0, 0))]);
    let stored: Vec<i64> = sqlx::query_scalar(
        "SELECT last_read_seq FROM chat_members WHERE chat_id = $1 ORDER BY user_id",
    )
    .bind(g)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(stored, vec![5, 5]);
}
