//! Notification preferences (per user) and settings (per user and chat),
//! and what the evaluator reads of them for a batch of new messages.
//!
//! Defaults when a user never changed anything: level `mentions_only`
//! (direct and group messages count as mentions, so they alert; channel
//! messages alert only when they mention you), desktop and sound on, no
//! DND schedule, no keywords. The DND window is evaluated in the user's
//! IANA time zone by PostgreSQL (`now() AT TIME ZONE tz`), which is also
//! what validates a zone name.

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::{AppError, AppResult};

/// A user's global preferences (seed §3.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    pub level: String,
    pub desktop: bool,
    pub sound: bool,
    #[serde(default)]
    pub dnd_schedule: Option<sqlx::types::Json<DndSchedule>>,
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// `{start: "22:00", end: "08:00", timezone: "Europe/Berlin"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DndSchedule {
    pub start: String,
    pub end: String,
    pub timezone: String,
}

/// One chat's settings for one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ChatSettings {
    pub chat_id: i64,
    /// `None`: the global level applies.
    pub level: Option<String>,
    pub muted_until: Option<chrono::DateTime<chrono::Utc>>,
    pub pinned: bool,
}

const PREFERENCE_COLUMNS: &str = "coalesce(p.level, 'mentions_only') AS level,
    coalesce(p.desktop, true) AS desktop, coalesce(p.sound, true) AS sound,
    CASE WHEN p.dnd_start IS NULL THEN NULL ELSE json_build_object(
        'start', to_char(p.dnd_start, 'HH24:MI'), 'end', to_char(p.dnd_end, 'HH24:MI'),
        'timezone', p.dnd_timezone) END AS dnd_schedule,
    coalesce(p.keywords, '{}') AS keywords";

pub async fn preferences(pool: &PgPool, user_id: i64) -> AppResult<Preferences> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PREFERENCE_COLUMNS} FROM (SELECT $1::bigint AS user_id) u
         LEFT JOIN notification_preferences p ON p.user_id = u.user_id"
    ))
    .bind(user_id)
    .fetch_one(pool)
    .await?)
}

/// Parses exactly `HH:MM` (two digits each, 24 h).
pub fn parse_time(s: &str) -> Option<NaiveTime> {
    let b = s.as_bytes();
    if b.len() != 5
        || b[2] != b':'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
    {
        return None;
    }
    NaiveTime::parse_from_str(s, "%H:%M").ok()
}

/// Stores the preferences (already checked by the caller, except the time
/// zone, which PostgreSQL checks here: an unknown zone is a validation
/// error).
pub async fn set_preferences(
    pool: &PgPool,
    user_id: i64,
    p: &Preferences,
) -> AppResult<Preferences> {
    let dnd = p.dnd_schedule.as_ref().map(|d| d.0.clone());
    if let Some(d) = &dnd {
        let valid: Result<(bool,), sqlx::Error> =
            sqlx::query_as("SELECT (now() AT TIME ZONE $1) IS NOT NULL")
                .bind(&d.timezone)
                .fetch_one(pool)
                .await;
        if valid.is_err() {
            return Err(AppError::validation(format!(
                "unknown time zone {:?} (use an IANA name like Europe/Berlin)",
                d.timezone
            )));
        }
    }
    let (start, end, tz) = match &dnd {
        Some(d) => (
            parse_time(&d.start),
            parse_time(&d.end),
            Some(d.timezone.clone()),
        ),
        None => (None, None, None),
    };
    sqlx::query(
        "INSERT INTO notification_preferences
             (user_id, level, desktop, sound, dnd_start, dnd_end, dnd_timezone, keywords, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
         ON CONFLICT (user_id) DO UPDATE SET level = $2, desktop = $3, sound = $4,
             dnd_start = $5, dnd_end = $6, dnd_timezone = $7, keywords = $8, updated_at = now()",
    )
    .bind(user_id)
    .bind(&p.level)
    .bind(p.desktop)
    .bind(p.sound)
    .bind(start)
    .bind(end)
    .bind(tz)
    .bind(&p.keywords)
    .execute(pool)
    .await?;
    preferences(pool, user_id).await
}

/// Stores one chat's settings for a member (the caller checked
/// membership).
pub async fn set_chat_settings(
    pool: &PgPool,
    user_id: i64,
    s: &ChatSettings,
) -> AppResult<ChatSettings> {
    Ok(sqlx::query_as(
        "INSERT INTO chat_notification_settings (chat_id, user_id, level, muted_until, pinned, updated_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (chat_id, user_id) DO UPDATE
             SET level = $3, muted_until = $4, pinned = $5, updated_at = now()
         RETURNING chat_id, level, muted_until, pinned",
    )
    .bind(s.chat_id)
    .bind(user_id)
    .bind(&s.level)
    .bind(s.muted_until)
    .bind(s.pinned)
    .fetch_one(pool)
    .await?)
}

/// A member's settings of one chat (defaults when never set).
pub async fn chat_settings(pool: &PgPool, user_id: i64, chat_id: i64) -> AppResult<ChatSettings> {
    Ok(sqlx::query_as(
        "SELECT $2::bigint AS chat_id, s.level, s.muted_until, coalesce(s.pinned, false) AS pinned
         FROM (SELECT 1) one
         LEFT JOIN chat_notification_settings s ON s.chat_id = $2 AND s.user_id = $1",
    )
    .bind(user_id)
    .bind(chat_id)
    .fetch_one(pool)
    .await?)
}

/// What the evaluator needs of one member of one chat, as of now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecipientRow {
    pub chat_id: i64,
    pub user_id: i64,
    pub level: String,
    pub muted: bool,
    pub dnd_manual: bool,
    /// The member's local time now, when they have a DND schedule.
    pub local_time: Option<NaiveTime>,
    pub dnd_start: Option<NaiveTime>,
    pub dnd_end: Option<NaiveTime>,
    pub keywords: Vec<String>,
}

/// The active members of `every` chat, and of `some` chats those whose
/// effective level is `all` or who watch keywords (the only ones a plain
/// channel message can alert), with their effective settings.
///
/// The `some` members are found from the rows that can make a member
/// alertable (a chat setting `all`; preferences with level `all` or
/// keywords; partial indexes of migration 17), not by reading every
/// member: a big channel's message usually alerts nobody. The final
/// filter applies the precedence (a chat setting overrides the global
/// level; keywords alert whatever the level).
pub async fn recipients(
    tx: &mut PgConnection,
    every: &[i64],
    some: &[i64],
) -> AppResult<Vec<RecipientRow>> {
    Ok(sqlx::query_as(
        "WITH candidates AS (
             SELECT m.chat_id, m.user_id FROM chat_members m WHERE m.chat_id = ANY($1)
             UNION
             SELECT s.chat_id, s.user_id FROM chat_notification_settings s
             WHERE s.chat_id = ANY($2) AND s.level = 'all'
             UNION
             SELECT m.chat_id, m.user_id
             FROM notification_preferences p
             JOIN chat_members m ON m.user_id = p.user_id AND m.chat_id = ANY($2)
             WHERE p.level = 'all' OR cardinality(p.keywords) > 0
         )
         SELECT m.chat_id, m.user_id,
                coalesce(s.level, p.level, 'mentions_only') AS level,
                coalesce(s.muted_until > now(), false) AS muted,
                coalesce(u.presence_manual = 'dnd', false) AS dnd_manual,
                CASE WHEN p.dnd_timezone IS NULL THEN NULL
                     ELSE (now() AT TIME ZONE p.dnd_timezone)::time END AS local_time,
                p.dnd_start, p.dnd_end,
                coalesce(p.keywords, '{}') AS keywords
         FROM candidates c
         JOIN chat_members m ON m.chat_id = c.chat_id AND m.user_id = c.user_id
         JOIN users u ON u.id = m.user_id AND u.deactivated_at IS NULL
         LEFT JOIN notification_preferences p ON p.user_id = m.user_id
         LEFT JOIN chat_notification_settings s ON s.chat_id = m.chat_id AND s.user_id = m.user_id
         WHERE m.chat_id = ANY($1)
            OR coalesce(s.level, p.level) = 'all' OR cardinality(p.keywords) > 0",
    )
    .bind(every)
    .bind(some)
    .fetch_all(tx)
    .await?)
}

/// Chat kind and name, and the senders' names, for toast titles.
pub async fn titles(
    tx: &mut PgConnection,
    chat_ids: &[i64],
    sender_ids: &[i64],
) -> AppResult<(Vec<(i64, String, Option<String>)>, Vec<(i64, String)>)> {
    let chats = sqlx::query_as("SELECT id, type::text, name FROM chats WHERE id = ANY($1)")
        .bind(chat_ids)
        .fetch_all(&mut *tx)
        .await?;
    let senders = sqlx::query_as("SELECT id, fullname FROM users WHERE id = ANY($1)")
        .bind(sender_ids)
        .fetch_all(&mut *tx)
        .await?;
    Ok((chats, senders))
}

/// Members of `chat_ids` with names and e-mails, for `@name` mentions.
pub async fn member_names(
    tx: &mut PgConnection,
    chat_ids: &[i64],
) -> AppResult<Vec<(i64, crate::mention::Member)>> {
    let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(
        "SELECT m.chat_id, u.id, u.fullname, u.email FROM chat_members m
         JOIN users u ON u.id = m.user_id WHERE m.chat_id = ANY($1)",
    )
    .bind(chat_ids)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(chat, user_id, fullname, email)| {
            (
                chat,
                crate::mention::Member {
                    user_id,
                    fullname,
                    email,
                },
            )
        })
        .collect())
}

/// Records an urgent message for abuse review (seed §3.7).
pub async fn audit_urgent(
    tx: &mut PgConnection,
    message_id: i64,
    chat_id: i64,
    sender_id: i64,
) -> AppResult<()> {
    sqlx::query("INSERT INTO urgent_messages (message_id, chat_id, sender_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(message_id)
        .bind(chat_id)
        .bind(sender_id)
        .execute(tx)
        .await?;
    Ok(())
}
