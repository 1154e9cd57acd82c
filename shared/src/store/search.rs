//! Search SQL: PostgreSQL full-text search over messages (the default
//! backend, [`PostgresIndex`]: messages searched where they are stored,
//! so search works with nothing else installed and a message is
//! searchable the moment its transaction commits), the access-control
//! lists every backend is given, and the people and chat directories.
//!
//! Messages carry `search_tsv` (the `simple` configuration: lowercased
//! tokens without stemming, like the seed's `standard` analyzer), kept by
//! a trigger and indexed with GIN. The message query is assembled per
//! query shape with only the conditions present, so every prepared plan
//! can use the GIN index (a generic plan with `$n IS NULL OR ...` could
//! not).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::{
    search::{MessageHit, MessageIndex, MessageSearch, Page, Position, SearchFuture},
    AppError, AppResult,
};

/// Seconds after which recency halves a message's weight (30 days); the
/// weight never falls below a quarter, so an old exact match still beats
/// a new weak one.
const RECENCY_HALF_LIFE_SECS: f64 = 30.0 * 86_400.0;

/// The default [`MessageIndex`]: PostgreSQL full-text search.
#[derive(Clone)]
pub struct PostgresIndex {
    pool: PgPool,
}

impl PostgresIndex {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl MessageIndex for PostgresIndex {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn is_current(&self) -> bool {
        true
    }

    fn search<'a>(&'a self, search: &'a MessageSearch) -> SearchFuture<'a, Page<MessageHit>> {
        Box::pin(messages(&self.pool, search))
    }
}

/// Up to this many chats, the (chat, seq) index may drive the search.
const FEW_CHATS: usize = 8;

/// One page of messages matching `s` (see [`crate::search::MessageIndex`]).
pub async fn messages(pool: &PgPool, s: &MessageSearch) -> AppResult<Page<MessageHit>> {
    // The sender's name is joined to the page only, not to every match.
    let mut sql = QueryBuilder::<Postgres>::new("SELECT page.id, chat_id, seq, sender_id, u.fullname AS sender_name, content, page.created_at, score FROM (SELECT * FROM (SELECT m.id, m.chat_id, m.seq, m.sender_id, m.content, m.created_at, ");
    // 1. Score: relevance (normalised to [0, 1)) times recency, or 0 when
    //    the query has no words (newest first). ts_rank (term frequency),
    //    not ts_rank_cd (cover density): measured 14% cheaper on a query
    //    with 15k matches, and chat messages are too short for proximity
    //    to matter much.
    let positive = s.query.tsquery();
    match s.query.rank_tsquery() {
        Some(q) => {
            sql.push("(ts_rank(m.search_tsv, to_tsquery('simple', ")
                .push_bind(q)
                .push(
                    "), 32) * (0.25 + 0.75 * power(2::float8, greatest(-60, -extract(epoch FROM (",
                )
                .push_bind(s.as_of)
                .push(" - m.created_at))::float8 / ")
                .push_bind(RECENCY_HALF_LIFE_SECS)
                .push("))))::float8 AS score");
        }
        None => {
            sql.push("0::float8 AS score");
        }
    }
    // 2. The filters: ACL, not deleted, the words, the operators, the window.
    //    Over many chats the chat filter is not selective: `+ 0` keeps the
    //    planner from intersecting the word index with a (chat, seq) index
    //    scan of most of the table, which measured slower than filtering
    //    the word matches alone.
    let chat_column = if s.chats.len() > FEW_CHATS {
        "m.chat_id + 0"
    } else {
        "m.chat_id"
    };
    sql.push(" FROM messages m WHERE ")
        .push(chat_column)
        .push(" = ANY(")
        .push_bind(s.chats.clone())
        .push(") AND m.deleted_at IS NULL AND m.created_at <= ")
        .push_bind(s.as_of);
    if let Some(q) = positive {
        sql.push(" AND m.search_tsv @@ to_tsquery('simple', ")
            .push_bind(q)
            .push(")");
    } else if let Some(q) = s.query.excluded_tsquery() {
        sql.push(" AND NOT (m.search_tsv @@ to_tsquery('simple', ")
            .push_bind(q)
            .push("))");
    }
    push_filters(&mut sql, s);
    // 3. Keyset paging on (score, id), newest id first among equals.
    sql.push(") hits");
    if let Some(Position::Keyset { score, id }) = s.after {
        sql.push(" WHERE (score, id) < (")
            .push_bind(score)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    sql.push(" ORDER BY score DESC, id DESC LIMIT ")
        .push_bind(s.limit as i64 + 1)
        .push(") page JOIN users u ON u.id = page.sender_id ORDER BY score DESC, page.id DESC");
    // 4. Bounded: a search that would take longer is refused (503), it
    //    never holds a pooled connection for long.
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = {SEARCH_TIMEOUT_MS}"
    ))
    .execute(&mut *tx)
    .await?;
    let rows: Vec<HitRow> = sql
        .build_query_as()
        .fetch_all(&mut *tx)
        .await
        .map_err(timed_out)?;
    tx.commit().await?;
    Ok(page(rows, s.limit))
}

/// Longest a message search may run.
pub const SEARCH_TIMEOUT_MS: u64 = 3000;

/// `query_canceled` (the statement timeout) is a 503 with a retry hint.
fn timed_out(e: sqlx::Error) -> AppError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
            AppError::Overloaded {
                what: "search",
                retry_after_ms: 2000,
            }
        }
        _ => AppError::Database(e),
    }
}

/// The current content and sender name of the live messages among `ids`:
/// what an external index's hits are checked against (it may lag behind
/// an edit or a delete).
pub async fn live_messages(pool: &PgPool, ids: &[i64]) -> AppResult<Vec<(i64, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT m.id, m.content, u.fullname FROM messages m JOIN users u ON u.id = m.sender_id
         WHERE m.id = ANY($1) AND m.deleted_at IS NULL",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

fn push_filters(sql: &mut QueryBuilder<'_, Postgres>, s: &MessageSearch) {
    if let Some(senders) = &s.senders {
        sql.push(" AND m.sender_id = ANY(")
            .push_bind(senders.clone())
            .push(")");
    }
    if let Some(mentioned) = &s.mentioned {
        sql.push(" AND m.mentions && ").push_bind(mentioned.clone());
    }
    if s.query.has_link {
        sql.push(" AND m.content ~* 'https?://'");
    }
    if s.query.has_mention {
        sql.push(" AND cardinality(m.mentions) > 0");
    }
    if let Some(since) = s.query.since {
        sql.push(" AND m.created_at >= ")
            .push_bind(day_start(since));
    }
    if let Some(until) = s.query.until {
        sql.push(" AND m.created_at < ").push_bind(day_start(until));
    }
}

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

#[derive(sqlx::FromRow)]
struct HitRow {
    id: i64,
    chat_id: i64,
    seq: i64,
    sender_id: i64,
    sender_name: String,
    content: String,
    created_at: DateTime<Utc>,
    score: f64,
}

fn page(mut rows: Vec<HitRow>, limit: usize) -> Page<MessageHit> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = more
        .then(|| {
            rows.last().map(|r| Position::Keyset {
                score: r.score,
                id: r.id,
            })
        })
        .flatten();
    let hits = rows
        .into_iter()
        .map(|r| MessageHit {
            message_id: r.id,
            chat_id: r.chat_id,
            seq: r.seq,
            sender_id: r.sender_id,
            sender_name: r.sender_name,
            content: r.content,
            created_at: r.created_at,
            score: r.score,
        })
        .collect();
    Page { hits, next }
}

/// The chats `user` may search: those they are a member of, plus, when
/// `public` is set, every public channel of their workspace.
pub async fn searchable_chats(
    pool: &PgPool,
    user: i64,
    workspace: i64,
    public: bool,
) -> AppResult<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT chat_id FROM chat_members WHERE user_id = $1
         UNION
         SELECT id FROM chats WHERE $3 AND workspace_id = $2 AND type = 'public_channel'",
    )
    .bind(user)
    .bind(workspace)
    .bind(public)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Of `allowed`, the chats whose name (case-insensitive) is one of `names`.
pub async fn chats_named(pool: &PgPool, allowed: &[i64], names: &[String]) -> AppResult<Vec<i64>> {
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM chats WHERE id = ANY($1) AND lower(name) = ANY($2)")
            .bind(allowed)
            .bind(names)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Users of `workspace` that `names` designate: a name matches the local
/// part of the e-mail, the full name, the full name without spaces, or
/// the start of a word of the full name.
pub async fn people_named(pool: &PgPool, workspace: i64, names: &[String]) -> AppResult<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT u.id FROM users u, unnest($2::text[]) AS n(name)
         WHERE u.workspace_id = $1
           AND (lower(split_part(u.email, '@', 1)) = n.name
                OR lower(u.fullname) = n.name
                OR replace(lower(u.fullname), ' ', '') = n.name
                OR starts_with(lower(u.fullname), n.name)
                OR strpos(lower(u.fullname), ' ' || n.name) > 0)",
    )
    .bind(workspace)
    .bind(names)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// A person in the directory.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PersonRow {
    pub id: i64,
    pub fullname: String,
    pub email: String,
}

/// Active users of `workspace` whose name (or a word of it) or e-mail
/// starts with `prefix` (lowercase); name matches first.
pub async fn people(
    pool: &PgPool,
    workspace: i64,
    prefix: &str,
    limit: usize,
) -> AppResult<Vec<PersonRow>> {
    Ok(sqlx::query_as(
        "SELECT id, fullname, email FROM users
         WHERE workspace_id = $1 AND deactivated_at IS NULL
           AND (starts_with(lower(fullname), $2)
                OR strpos(lower(fullname), ' ' || $2) > 0
                OR starts_with(lower(email), $2))
         ORDER BY starts_with(lower(fullname), $2) DESC, lower(fullname), id
         LIMIT $3",
    )
    .bind(workspace)
    .bind(prefix)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?)
}

/// A chat in the directory, as the caller sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChatRow {
    pub id: i64,
    pub workspace_id: i64,
    /// `single`, `group`, `private_channel` or `public_channel`.
    pub chat_type: String,
    /// The chat's name; for a single chat, the other member's name.
    pub name: String,
    pub description: String,
    pub member: bool,
}

/// The caller's chats and the public channels of their workspace whose
/// name contains `text` (lowercase); names starting with it first, then
/// chats the caller is in.
pub async fn chats(
    pool: &PgPool,
    user: i64,
    workspace: i64,
    text: &str,
    limit: usize,
) -> AppResult<Vec<ChatRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM (
           SELECT c.id, c.workspace_id, c.type::text AS chat_type,
                  coalesce(c.name, (SELECT u.fullname FROM chat_members o JOIN users u ON u.id = o.user_id
                                    WHERE o.chat_id = c.id AND o.user_id <> $1 LIMIT 1), '') AS name,
                  c.description, m.user_id IS NOT NULL AS member
           FROM chats c LEFT JOIN chat_members m ON m.chat_id = c.id AND m.user_id = $1
           WHERE c.workspace_id = $2 AND (m.user_id IS NOT NULL OR c.type = 'public_channel')
         ) visible
         WHERE strpos(lower(name), $3) > 0
         ORDER BY starts_with(lower(name), $3) DESC, member DESC, lower(name), id
         LIMIT $4",
    )
    .bind(user)
    .bind(workspace)
    .bind(text)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?)
}
