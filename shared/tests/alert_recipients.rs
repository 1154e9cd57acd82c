//! `store::notification::recipients`: who a message can alert. Every
//! active member of a direct or group chat (or for a message with mentions
//! or urgency); of a plain channel message, only members whose effective
//! level is `all` (a chat setting overrides the global level) or who watch
//! keywords. The statement starts from the rows that make a member
//! alertable (migration 17); the reference here is the straightforward
//! statement it replaced, which read every member.

use fechatter_shared::store::notification::recipients;
use sqlx::PgPool;

mod common;
use common::{add_members, user, workspace};

/// The statement `recipients` used before migration 17.
const REFERENCE: &str = "
    SELECT m.chat_id, m.user_id, coalesce(s.level, p.level, 'mentions_only') AS level
    FROM chat_members m
    JOIN users u ON u.id = m.user_id AND u.deactivated_at IS NULL
    LEFT JOIN notification_preferences p ON p.user_id = m.user_id
    LEFT JOIN chat_notification_settings s ON s.chat_id = m.chat_id AND s.user_id = m.user_id
    WHERE m.chat_id = ANY($1)
       OR (m.chat_id = ANY($2)
           AND (coalesce(s.level, p.level) = 'all' OR cardinality(p.keywords) > 0))
    ORDER BY 1, 2";

async fn chat(pool: &PgPool, ws: i64, kind: &str, owner: i64, members: &[i64]) -> i64 {
    let id: i64 = sqlx::query_scalar(&format!(
        "INSERT INTO chats (workspace_id, type, name, owner_id)
         VALUES ($1, '{kind}', '{kind}', $2) RETURNING id"
    ))
    .bind(ws)
    .bind(owner)
    .fetch_one(pool)
    .await
    .unwrap();
    add_members(pool, id, members).await;
    id
}

async fn prefs(pool: &PgPool, user: i64, level: &str, keywords: &[&str]) {
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, level, keywords) VALUES ($1, $2, $3)",
    )
    .bind(user)
    .bind(level)
    .bind(keywords)
    .execute(pool)
    .await
    .unwrap();
}

async fn setting(pool: &PgPool, chat: i64, user: i64, level: &str) {
    sqlx::query(
        "INSERT INTO chat_notification_settings (chat_id, user_id, level) VALUES ($1, $2, $3)",
    )
    .bind(chat)
    .bind(user)
    .bind(level)
    .execute(pool)
    .await
    .unwrap();
}

async fn found(pool: &PgPool, every: &[i64], some: &[i64]) -> Vec<(i64, i64, String)> {
    let mut tx = pool.begin().await.unwrap();
    let mut rows: Vec<(i64, i64, String)> = recipients(&mut tx, every, some)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.chat_id, r.user_id, r.level))
        .collect();
    rows.sort();
    rows
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_channel_message_finds_only_alertable_members(pool: PgPool) {
    let ws = workspace(&pool).await;
    let mut u = Vec::new();
    for name in [
        "quiet",
        "all",
        "keywords",
        "overridden",
        "chat_all",
        "off_but_chat_all",
    ] {
        u.push(user(&pool, ws, name).await);
    }
    let gone = user(&pool, ws, "deactivated").await;
    let left = user(&pool, ws, "left").await;
    let elsewhere = user(&pool, ws, "elsewhere").await;
    let mut members = u.clone();
    members.push(gone);
    let channel = chat(&pool, ws, "private_channel", u[0], &members).await;
    let group = chat(&pool, ws, "group", u[0], &[u[0], u[1], gone]).await;
    let other = chat(&pool, ws, "private_channel", elsewhere, &[elsewhere]).await;
    prefs(&pool, u[1], "all", &[]).await;
    prefs(&pool, u[2], "mentions_only", &["deploy"]).await;
    prefs(&pool, u[3], "all", &[]).await;
    setting(&pool, channel, u[3], "mentions_only").await;
    setting(&pool, channel, u[4], "all").await;
    prefs(&pool, u[5], "off", &[]).await;
    setting(&pool, channel, u[5], "all").await;
    prefs(&pool, gone, "all", &[]).await;
    sqlx::query("UPDATE users SET deactivated_at = now() WHERE id = $1")
        .bind(gone)
        .execute(&pool)
        .await
        .unwrap();
    // A setting left behind by a member who left the channel.
    setting(&pool, channel, left, "all").await;
    prefs(&pool, elsewhere, "all", &[]).await;

    let plain = found(&pool, &[], &[channel]).await;
    let lvl = |s: &str| s.to_string();
    assert_eq!(
        plain,
        vec![
            (channel, u[1], lvl("all")),
            (channel, u[2], lvl("mentions_only")),
            (channel, u[4], lvl("all")),
            (channel, u[5], lvl("all")),
        ],
        "global all, keywords, chat all (also over a global off); not the quiet, \
         overridden, deactivated or departed members"
    );
    let everyone = found(&pool, &[group], &[channel, other]).await;
    let expected: Vec<(i64, i64, String)> = sqlx::query_as(REFERENCE)
        .bind(vec![group])
        .bind(vec![channel, other])
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        everyone, expected,
        "the same rows as the statement it replaced"
    );
    assert!(everyone.contains(&(group, u[0], lvl("mentions_only"))));
    assert!(everyone.contains(&(other, elsewhere, lvl("all"))));
    assert!(!everyone.iter().any(|r| r.1 == gone), "deactivated");
    assert!(found(&pool, &[], &[]).await.is_empty());
}
