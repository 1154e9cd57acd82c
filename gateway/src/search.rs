//! Search as the gateway serves it, to REST (`GET /api/search/*`) and to
//! sockets (`search.query`) alike: validation, the rate limit, access
//! control, the backend, highlighting and paging.
//!
//! Access control happens here, before any backend is asked: the chats a
//! user may search are read from PostgreSQL at every request (never from
//! a cache or an index), so a user removed from a chat stops finding its
//! messages at once, whichever backend answers.

use std::{sync::Arc, time::Instant};

use chrono::Utc;
use fechatter_shared::search::MessageIndex;
use fechatter_shared::{config::SearchBackend, store::search::PostgresIndex};
use fechatter_shared::{
    presence,
    protocol::{
        rfc3339_ms, ChannelResult, Highlight, MessageResult, PersonResult, SearchQuery,
        SearchResult, SearchResults, SearchScope,
    },
    scripts::Limit,
    search::{
        self, cursor::fingerprint, highlight, ChatRef, Cursor, MessageHit, MessageSearch, Person,
        Position, Query,
    },
    store::{self, chat},
    token::Identity,
    AppError, AppResult, Config,
};
use sqlx::PgPool;

use crate::{state::AppState, writes};

/// Searches per user: a burst of 20 (typing in the box, debounced), then
/// 5 per second, shared by REST and the socket.
pub const SEARCH_LIMIT: Limit = Limit {
    capacity: 20.0,
    per_second: 5.0,
};
/// Longest accepted `q`.
pub const MAX_Q_CHARS: usize = 512;

/// The configured message search backend.
pub fn backend(config: &Config, pool: &PgPool) -> anyhow::Result<Arc<dyn MessageIndex>> {
    match config.search.backend {
        SearchBackend::Postgres => Ok(Arc::new(PostgresIndex::new(pool.clone()))),
        SearchBackend::Meilisearch => meilisearch(config),
    }
}

#[cfg(feature = "meilisearch")]
fn meilisearch(config: &Config) -> anyhow::Result<Arc<dyn MessageIndex>> {
    Ok(Arc::new(search::meili::MeiliIndex::new(&config.search)?))
}

#[cfg(not(feature = "meilisearch"))]
fn meilisearch(_: &Config) -> anyhow::Result<Arc<dyn MessageIndex>> {
    anyhow::bail!("SEARCH_BACKEND=meilisearch, but this build lacks the `meilisearch` feature")
}

/// `fechatter_search_duration_seconds{scope, backend}`: validation to
/// results, rate-limit wait excluded, on REST and the socket alike.
pub fn latency_histogram(metrics: &fechatter_shared::metrics::Metrics) -> prometheus::HistogramVec {
    metrics.register(
        prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(
                "search_duration_seconds",
                "searches by scope and backend",
            )
            .buckets(vec![0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]),
            &["scope", "backend"],
        )
        .expect("valid metric"),
    )
}

/// Answers one search for `me`.
pub async fn run(state: &AppState, me: &Identity, req: SearchQuery) -> AppResult<SearchResults> {
    let q = req.q.trim();
    if q.is_empty() || q.chars().count() > MAX_Q_CHARS {
        return Err(AppError::validation(format!(
            "q must be 1 to {MAX_Q_CHARS} characters"
        )));
    }
    // PostgreSQL text cannot hold NUL (the directories match `q` as is).
    if q.contains('\0') {
        return Err(AppError::validation("q must not contain NUL characters"));
    }
    let limit = req.limit.unwrap_or(search::DEFAULT_LIMIT);
    if !(1..=search::MAX_LIMIT).contains(&limit) {
        return Err(AppError::validation(format!(
            "limit must be between 1 and {}",
            search::MAX_LIMIT
        )));
    }
    if req.scope != SearchScope::Messages && (req.chat_id.is_some() || req.cursor.is_some()) {
        return Err(AppError::validation(
            "chatId and cursor apply to the messages scope only",
        ));
    }
    writes::limit(state, me.user_id, "search", SEARCH_LIMIT).await?;
    let started = Instant::now();
    let (backend, results) = match req.scope {
        SearchScope::Messages => messages(state, me, &req, q, limit).await?,
        SearchScope::People => ("postgres", (people(state, me, q, limit).await?, None)),
        SearchScope::Chats => ("postgres", (chats(state, me, q, limit).await?, None)),
    };
    state
        .search_latency
        .with_label_values(&[req.scope.as_str(), backend])
        .observe(started.elapsed().as_secs_f64());
    Ok(SearchResults {
        ref_id: None,
        scope: req.scope,
        results: results.0,
        cursor: results.1,
    })
}

type Found = (Vec<SearchResult>, Option<String>);

/// Messages: 1. cursor, 2. parse, 3. ACL, 4. operators, 5. backend, 6. shape.
async fn messages(
    state: &AppState,
    me: &Identity,
    req: &SearchQuery,
    q: &str,
    limit: usize,
) -> AppResult<(&'static str, Found)> {
    let chat_key = req.chat_id.map(|c| c.to_string()).unwrap_or_default();
    let public = if req.include_public { "public" } else { "" };
    let print = fingerprint(&["messages", q, &chat_key, public]);
    let cursor = match &req.cursor {
        Some(text) => Some(Cursor::decode(text, &print)?),
        None => None,
    };
    let as_of = cursor.map_or_else(Utc::now, |c| c.as_of);
    let query = search::parse(q, as_of.date_naive());
    let chats = allowed_chats(state, me, req, &query).await?;
    let senders = people_of(state, me, &query.from).await?;
    let mentioned = people_of(state, me, &query.mentions).await?;
    let backend = state.search.name();
    let nobody = |ids: &Option<Vec<i64>>| ids.as_ref().is_some_and(Vec::is_empty);
    if chats.is_empty() || nobody(&senders) || nobody(&mentioned) || query.empty_window() {
        return Ok((backend, (Vec::new(), None)));
    }
    let search = MessageSearch {
        query,
        chats,
        senders,
        mentioned,
        as_of,
        after: cursor.map(|c| c.position),
        limit,
    };
    let mut page = state.search.search(&search).await?;
    if !state.search.is_current() {
        current_hits(state, &mut page.hits).await?;
    }
    let next = page
        .next
        .map(|position: Position| Cursor { as_of, position }.encode(&print));
    let results = page
        .hits
        .into_iter()
        .map(|hit| message_result(hit, &search.query))
        .collect();
    Ok((backend, (results, next)))
}

/// An external index may lag behind an edit or a delete: its hits are
/// shown with their current text and sender name, and deleted ones are
/// dropped (the page may then be shorter than the limit).
async fn current_hits(state: &AppState, hits: &mut Vec<MessageHit>) -> AppResult<()> {
    let ids: Vec<i64> = hits.iter().map(|h| h.message_id).collect();
    let live: std::collections::HashMap<i64, (String, String)> =
        store::search::live_messages(&state.pool, &ids)
            .await?
            .into_iter()
            .map(|(id, content, sender)| (id, (content, sender)))
            .collect();
    hits.retain_mut(|hit| match live.get(&hit.message_id) {
        Some((content, sender)) => {
            hit.content.clone_from(content);
            hit.sender_name.clone_from(sender);
            true
        }
        None => false,
    });
    Ok(())
}

/// The chats this search may return messages of (see the module doc).
async fn allowed_chats(
    state: &AppState,
    me: &Identity,
    req: &SearchQuery,
    query: &Query,
) -> AppResult<Vec<i64>> {
    let mut allowed = match req.chat_id {
        Some(id) => {
            chat::find_visible(&state.pool, id, me.user_id, me.workspace_id).await?;
            vec![id]
        }
        None => {
            store::search::searchable_chats(
                &state.pool,
                me.user_id,
                me.workspace_id,
                req.include_public,
            )
            .await?
        }
    };
    if query.chats.is_empty() {
        return Ok(allowed);
    }
    let names: Vec<String> = query
        .chats
        .iter()
        .filter_map(|c| match c {
            ChatRef::Name(n) => Some(n.clone()),
            ChatRef::Id(_) => None,
        })
        .collect();
    let mut named = if names.is_empty() {
        Vec::new()
    } else {
        store::search::chats_named(&state.pool, &allowed, &names).await?
    };
    named.extend(query.chats.iter().filter_map(|c| match c {
        ChatRef::Id(id) => Some(*id),
        ChatRef::Name(_) => None,
    }));
    allowed.retain(|id| named.contains(id));
    Ok(allowed)
}

/// `from:` / `mentions:` as user ids of the caller's workspace; None when
/// the operator is absent.
async fn people_of(
    state: &AppState,
    me: &Identity,
    people: &[Person],
) -> AppResult<Option<Vec<i64>>> {
    if people.is_empty() {
        return Ok(None);
    }
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for p in people {
        match p {
            Person::Me => ids.push(me.user_id),
            Person::Id(id) => ids.push(*id),
            Person::Name(n) => names.push(n.clone()),
        }
    }
    if !names.is_empty() {
        ids.extend(store::search::people_named(&state.pool, me.workspace_id, &names).await?);
    }
    Ok(Some(ids))
}

fn message_result(hit: MessageHit, query: &Query) -> SearchResult {
    SearchResult {
        kind: "message",
        score: hit.score,
        highlight: Highlight {
            content: highlight::fragments(&hit.content, query),
            sender_name: Vec::new(),
        },
        message: Some(MessageResult {
            message_id: hit.message_id,
            chat_id: hit.chat_id,
            seq: hit.seq,
            sender_id: hit.sender_id,
            sender_name: hit.sender_name,
            content: hit.content,
            timestamp: rfc3339_ms(hit.created_at.timestamp_millis()),
        }),
        person: None,
        channel: None,
    }
}

/// People: name or e-mail prefix, with their presence.
async fn people(
    state: &AppState,
    me: &Identity,
    q: &str,
    limit: usize,
) -> AppResult<Vec<SearchResult>> {
    let prefix = q.trim_start_matches('@').to_lowercase();
    let rows = store::search::people(&state.pool, me.workspace_id, &prefix, limit).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let statuses = presence::current(&state.redis, &state.keys, &ids).await?;
    let total = rows.len().max(1) as f64;
    Ok(rows
        .into_iter()
        .zip(statuses)
        .enumerate()
        .map(|(rank, (row, status))| SearchResult {
            kind: "person",
            // Rank order as a score in (0, 1]: the first match scores 1.
            score: 1.0 - rank as f64 / total,
            highlight: Highlight {
                content: Vec::new(),
                sender_name: highlight::mark_prefix(&row.fullname, &prefix)
                    .into_iter()
                    .collect(),
            },
            message: None,
            person: Some(PersonResult {
                user_id: row.id,
                display_name: row.fullname,
                email: row.email,
                avatar: None,
                status: status.map_or("offline", |(s, _)| s.as_str()),
            }),
            channel: None,
        })
        .collect())
}

/// Chats: the caller's chats and the workspace's public channels by name.
async fn chats(
    state: &AppState,
    me: &Identity,
    q: &str,
    limit: usize,
) -> AppResult<Vec<SearchResult>> {
    let text = q.trim_start_matches('#').to_lowercase();
    let rows = store::search::chats(&state.pool, me.user_id, me.workspace_id, &text, limit).await?;
    let total = rows.len().max(1) as f64;
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(rank, row)| SearchResult {
            kind: "channel",
            score: 1.0 - rank as f64 / total,
            highlight: Highlight::default(),
            message: None,
            person: None,
            channel: Some(ChannelResult {
                channel_id: row.id,
                team_id: row.workspace_id,
                name: row.name,
                description: row.description,
                chat_type: row.chat_type,
                member: row.member,
            }),
        })
        .collect())
}
