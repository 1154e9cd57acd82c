//! The optional Meilisearch backend (`SEARCH_BACKEND=meilisearch`, built
//! with the cargo feature `meilisearch`).
//!
//! Why: PostgreSQL full-text search (the default, [`super::postgres`])
//! needs nothing else and is never behind the commit, but it competes with
//! the write path for the database and offers no typo tolerance. A
//! deployment that wants a dedicated search engine can put messages into
//! Meilisearch instead. Meilisearch then holds a *copy*: the worker's
//! indexer (`worker/src/indexer.rs`) applies every committed new, edited
//! and deleted message to it through [`MeiliIndex::upsert`] and
//! [`MeiliIndex::delete`], and `worker reindex` rebuilds it from
//! PostgreSQL. A message becomes searchable shortly after its commit (the
//! indexer's lag, exported as `fechatter_search_index_lag_seconds`).
//!
//! Access control is never delegated to the index: every query carries a
//! filter `chatId IN [...]` made of the chats the gateway resolved from
//! PostgreSQL for this request ([`MessageSearch::chats`]); a search without
//! chats is answered empty without asking Meilisearch. Documents hold only
//! live messages (the indexer deletes a document when its message is
//! deleted), and an edit replaces the whole document, so an edited message
//! is found by its current text only.
//!
//! The same request means the same thing as with PostgreSQL as far as
//! Meilisearch allows; the differences, stated plainly:
//! * Matching is Meilisearch's, not PostgreSQL's: typo tolerant, the last
//!   query word matched as a prefix (as on PostgreSQL), every word required (matching strategy `all`), phrases
//!   (`"a b"`) exact, excluded words as Meilisearch negative keywords
//!   (`-word`, available since Meilisearch v1.8). Meilisearch ignores query
//!   words past its limit (10). Words containing `-` are sent as phrases so
//!   that Meilisearch never reads their hyphen as the negative operator.
//!   The sender's name is searchable next to the content.
//! * The score is Meilisearch's `_rankingScore` (relevance in [0, 1]), with
//!   recency only as the last ranking rule (`createdAt:desc`, the tie
//!   breaker); PostgreSQL mixes recency into the score. A query without
//!   words sorts newest first with score 0, like PostgreSQL.
//! * Paging is by offset ([`Position::Offset`]); Meilisearch returns at
//!   most `pagination.maxTotalHits` (1000 by default) hits per query, so
//!   pages stop there. The first page's `as_of` is a filter
//!   (`createdAt <= as_of`), so later pages do not shift when messages are
//!   posted meanwhile.
//! * Times are unix milliseconds (PostgreSQL keeps microseconds).
//! * Sender names are copied into documents when the message is indexed.

use std::time::Duration;

use chrono::{DateTime, NaiveDate};
use meilisearch_sdk::{
    client::Client,
    errors::{Error as MeiliError, ErrorCode, ErrorType},
    indexes::Index,
    search::{MatchingStrategies, Selectors},
    settings::Settings,
    task_info::TaskInfo,
    tasks::Task,
};
use serde::{Deserialize, Serialize};

use super::{MessageHit, MessageIndex, MessageSearch, Page, Position, Query, SearchFuture};
use crate::{config::SearchSettings, search::IndexedMessage, AppError, AppResult};

/// The documents' primary key.
pub const PRIMARY_KEY: &str = "id";
/// Attributes filters may use.
pub const FILTERABLE: [&str; 6] = [
    "chatId",
    "senderId",
    "createdAt",
    "mentions",
    "hasLink",
    "hasMention",
];
/// Attributes searched by the query text.
pub const SEARCHABLE: [&str; 2] = ["content", "senderName"];
/// Meilisearch's default ranking rules, then recency as the tie breaker.
pub const RANKING_RULES: [&str; 7] = [
    "words",
    "typo",
    "proximity",
    "attribute",
    "sort",
    "exactness",
    "createdAt:desc",
];

/// Longest wait for a search answer.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for Meilisearch to accept a write (enqueue a task).
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a document task to be applied.
const DOCUMENTS_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a settings change or a clear (a settings change may
/// re-index everything).
const SETTINGS_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a task's status is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

const RETRIEVED: [&str; 7] = [
    "id",
    "chatId",
    "seq",
    "senderId",
    "senderName",
    "content",
    "createdAt",
];
const NEWEST_FIRST: [&str; 1] = ["createdAt:desc"];

/// One message as Meilisearch stores it (camelCase JSON, primary key `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDocument {
    pub id: i64,
    pub chat_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    pub sender_name: String,
    pub content: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Mentioned user ids.
    #[serde(default)]
    pub mentions: Vec<i64>,
    #[serde(default)]
    pub has_link: bool,
    #[serde(default)]
    pub has_mention: bool,
}

impl From<IndexedMessage> for MessageDocument {
    fn from(m: IndexedMessage) -> Self {
        Self {
            id: m.id,
            chat_id: m.chat_id,
            seq: m.seq,
            sender_id: m.sender_id,
            sender_name: m.sender_name,
            content: m.content,
            created_at: m.created_at.timestamp_millis(),
            has_mention: !m.mentions.is_empty(),
            mentions: m.mentions,
            has_link: m.has_link,
        }
    }
}

impl MessageDocument {
    fn into_hit(self, score: f64) -> MessageHit {
        MessageHit {
            message_id: self.id,
            chat_id: self.chat_id,
            seq: self.seq,
            sender_id: self.sender_id,
            sender_name: self.sender_name,
            content: self.content,
            created_at: DateTime::from_timestamp_millis(self.created_at).unwrap_or_default(),
            score,
        }
    }
}

/// The messages index of one Meilisearch server.
#[derive(Clone)]
pub struct MeiliIndex {
    client: Client,
    index: Index,
}

impl MeiliIndex {
    /// A client of `settings.meili_url` (with `meili_key` unless empty) for
    /// the index `meili_index`. Connects lazily: nothing is sent yet.
    pub fn new(settings: &SearchSettings) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !settings.meili_url.is_empty(),
            "the Meilisearch backend needs MEILI_URL"
        );
        // The SDK puts the key in a header and panics on a byte a header
        // cannot hold (a newline pasted from a file): refuse it here.
        anyhow::ensure!(
            settings
                .meili_key
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b)),
            "MEILI_KEY must be printable ASCII"
        );
        let key = (!settings.meili_key.is_empty()).then_some(settings.meili_key.as_str());
        let client = Client::new(settings.meili_url.as_str(), key)
            .map_err(|e| anyhow::anyhow!("creating the Meilisearch client: {e}"))?;
        let index = client.index(settings.meili_index.as_str());
        Ok(Self { client, index })
    }

    /// Creates the index (primary key `id`) if needed and applies the
    /// settings searches rely on: filterable [`FILTERABLE`], sortable
    /// `createdAt`, searchable [`SEARCHABLE`], ranking [`RANKING_RULES`].
    /// Returns once Meilisearch applied them (unchanged settings are
    /// quick; changed ones may re-index every document).
    pub async fn ensure_settings(&self) -> anyhow::Result<()> {
        let created = self
            .client
            .create_index(self.index.as_ref(), Some(PRIMARY_KEY));
        match self.applied(created, SETTINGS_TIMEOUT).await {
            Err(TaskError::Failed(e)) if e.error_code == ErrorCode::IndexAlreadyExists => {}
            other => other.map_err(|e| e.context("creating the Meilisearch index"))?,
        }
        let settings = Settings::new()
            .with_filterable_attributes(FILTERABLE)
            .with_sortable_attributes(["createdAt"])
            .with_searchable_attributes(SEARCHABLE)
            .with_ranking_rules(RANKING_RULES);
        self.applied(self.index.set_settings(&settings), SETTINGS_TIMEOUT)
            .await
            .map_err(|e| e.context("applying the Meilisearch index settings"))
    }

    /// Adds or replaces `docs` (a replaced document loses its old text);
    /// returns once Meilisearch applied them.
    pub async fn upsert(&self, docs: &[MessageDocument]) -> anyhow::Result<()> {
        if docs.is_empty() {
            return Ok(());
        }
        self.applied(
            self.index.add_or_replace(docs, Some(PRIMARY_KEY)),
            DOCUMENTS_TIMEOUT,
        )
        .await
        .map_err(|e| e.context("indexing messages"))
    }

    /// Removes the documents of messages `ids` (unknown ids are ignored);
    /// returns once Meilisearch applied it.
    pub async fn delete(&self, ids: &[i64]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.applied(self.index.delete_documents(ids), DOCUMENTS_TIMEOUT)
            .await
            .map_err(|e| e.context("removing messages from the index"))
    }

    /// Removes every document (settings stay); returns once applied.
    pub async fn clear(&self) -> anyhow::Result<()> {
        self.applied(self.index.delete_all_documents(), SETTINGS_TIMEOUT)
            .await
            .map_err(|e| e.context("clearing the index"))
    }

    /// Deletes the whole index, settings included (tests, decommissioning);
    /// returns once applied. [`MeiliIndex::ensure_settings`] re-creates it.
    pub async fn drop_index(&self) -> anyhow::Result<()> {
        self.applied(
            self.client.delete_index(self.index.as_ref()),
            SETTINGS_TIMEOUT,
        )
        .await
        .map_err(|e| e.context("deleting the index"))
    }

    /// Sends a write, then waits until Meilisearch processed its task.
    async fn applied(
        &self,
        enqueue: impl std::future::Future<Output = Result<TaskInfo, MeiliError>>,
        wait: Duration,
    ) -> Result<(), TaskError> {
        let task = tokio::time::timeout(ENQUEUE_TIMEOUT, enqueue)
            .await
            .map_err(|_| TaskError::Other(anyhow::anyhow!("Meilisearch did not answer")))?
            .map_err(|e| TaskError::Other(e.into()))?;
        let done = tokio::time::timeout(
            wait + ENQUEUE_TIMEOUT,
            self.client
                .wait_for_task(&task, Some(POLL_INTERVAL), Some(wait)),
        )
        .await
        .map_err(|_| TaskError::Other(anyhow::anyhow!("Meilisearch did not answer")))?
        .map_err(|e| match e {
            MeiliError::Timeout => TaskError::Other(anyhow::anyhow!(
                "Meilisearch task {} not processed within {wait:?}",
                task.task_uid
            )),
            other => TaskError::Other(other.into()),
        })?;
        match done {
            Task::Failed { content } => Err(TaskError::Failed(content.error)),
            _ => Ok(()),
        }
    }

    async fn page(&self, s: &MessageSearch) -> AppResult<Page<MessageHit>> {
        let nobody = |ids: &Option<Vec<i64>>| ids.as_ref().is_some_and(Vec::is_empty);
        if s.chats.is_empty() || nobody(&s.senders) || nobody(&s.mentioned) {
            return Ok(Page {
                hits: Vec::new(),
                next: None,
            });
        }
        let offset = match s.after {
            None => 0,
            Some(Position::Offset(n)) => n,
            Some(Position::Keyset { .. }) => {
                return Err(AppError::validation(
                    "cursor belongs to another search; start again without it",
                ))
            }
        };
        let filter = filter(s);
        let text = query_text(&s.query);
        let ranked = has_positive_words(&s.query);
        let mut query = self.index.search();
        query
            .with_query(&text)
            .with_filter(&filter)
            .with_offset(offset)
            .with_limit(s.limit + 1)
            .with_matching_strategy(MatchingStrategies::ALL)
            .with_attributes_to_retrieve(Selectors::Some(&RETRIEVED));
        if ranked {
            query.with_show_ranking_score(true);
        } else {
            query.with_sort(&NEWEST_FIRST);
        }
        let results = tokio::time::timeout(SEARCH_TIMEOUT, query.execute::<MessageDocument>())
            .await
            .map_err(|_| AppError::Unavailable("meilisearch did not answer in time".into()))?
            .map_err(search_error)?;
        let mut hits: Vec<MessageHit> = results
            .hits
            .into_iter()
            .map(|h| {
                let score = if ranked {
                    h.ranking_score.unwrap_or(0.0)
                } else {
                    0.0
                };
                h.result.into_hit(score)
            })
            .collect();
        let more = hits.len() > s.limit;
        hits.truncate(s.limit);
        let next = more.then(|| Position::Offset(offset + hits.len()));
        Ok(Page { hits, next })
    }
}

impl MessageIndex for MeiliIndex {
    fn name(&self) -> &'static str {
        "meilisearch"
    }

    fn search<'a>(&'a self, search: &'a MessageSearch) -> SearchFuture<'a, Page<MessageHit>> {
        Box::pin(self.page(search))
    }
}

/// Why a write was not applied.
enum TaskError {
    /// Meilisearch processed the task and refused it.
    Failed(meilisearch_sdk::errors::MeilisearchError),
    /// Not sent, not answered, or not processed in time.
    Other(anyhow::Error),
}

impl TaskError {
    fn context(self, what: &'static str) -> anyhow::Error {
        match self {
            Self::Failed(e) => anyhow::Error::new(e).context(what),
            Self::Other(e) => e.context(what),
        }
    }
}

/// A refused request is our fault (a bad filter, a wrong key): internal;
/// anything else (unreachable, overloaded) is an outage: unavailable.
fn search_error(e: MeiliError) -> AppError {
    match e {
        MeiliError::Meilisearch(api) if api.error_type != ErrorType::Internal => {
            AppError::Internal(anyhow::anyhow!("meilisearch refused a search: {api}"))
        }
        other => AppError::Unavailable(format!("meilisearch: {other}")),
    }
}

/// The Meilisearch filter of `s`: the chat ACL and the `as_of` bound
/// always, then the query's operators. Only numbers and booleans go into
/// it, never user text.
pub fn filter(s: &MessageSearch) -> String {
    let ids = |ids: &[i64]| {
        ids.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = vec![
        format!("chatId IN [{}]", ids(&s.chats)),
        format!("createdAt <= {}", s.as_of.timestamp_millis()),
    ];
    if let Some(senders) = &s.senders {
        parts.push(format!("senderId IN [{}]", ids(senders)));
    }
    if let Some(mentioned) = &s.mentioned {
        parts.push(format!("mentions IN [{}]", ids(mentioned)));
    }
    if s.query.has_link {
        parts.push("hasLink = true".into());
    }
    if s.query.has_mention {
        parts.push("hasMention = true".into());
    }
    if let Some(since) = s.query.since {
        parts.push(format!("createdAt >= {}", day_start_ms(since)));
    }
    if let Some(until) = s.query.until {
        parts.push(format!("createdAt < {}", day_start_ms(until)));
    }
    parts.join(" AND ")
}

/// Query words Meilisearch takes into account.
const MEILI_MAX_WORDS: usize = 10;

/// The `q` text of `query`: excluded words (`-word`), phrases (`"a b"`),
/// then terms, so the last word (matched as a prefix) is a term when there
/// is one. Words with a `-` are quoted (a one-word phrase) so Meilisearch
/// cannot take the hyphen for its negative operator. Empty without words.
pub fn query_text(query: &Query) -> String {
    let word = |w: &String| {
        if w.contains('-') {
            format!("\"{w}\"")
        } else {
            w.clone()
        }
    };
    // Meilisearch reads the first ten words only: excluded words get what
    // the positive words leave, so they never push those out.
    let positive = query.terms.len() + query.phrases.iter().map(Vec::len).sum::<usize>();
    let mut budget = MEILI_MAX_WORDS.saturating_sub(positive);
    let mut parts: Vec<String> = query
        .excluded
        .iter()
        .map(|w| vec![w.clone()])
        .chain(query.excluded_phrases.iter().cloned())
        .filter(|p| {
            let fits = p.len() <= budget;
            budget = budget.saturating_sub(p.len());
            fits
        })
        .map(|p| match p.as_slice() {
            [w] => format!("-{}", word(w)),
            _ => format!("-\"{}\"", p.join(" ")),
        })
        .collect();

    parts.extend(
        query
            .phrases
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| format!("\"{}\"", p.join(" "))),
    );
    parts.extend(query.terms.iter().map(word));
    parts.join(" ")
}

/// True when relevance can rank (a term or a phrase); otherwise results
/// are sorted newest first.
fn has_positive_words(query: &Query) -> bool {
    !query.terms.is_empty() || query.phrases.iter().any(|p| !p.is_empty())
}

fn day_start_ms(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(terms: &[&str], phrases: &[&[&str]], excluded: &[&str]) -> Query {
        let words = |ws: &[&str]| ws.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        Query {
            terms: words(terms),
            phrases: phrases.iter().map(|p| words(p)).collect(),
            excluded: words(excluded),
            ..Query::default()
        }
    }

    #[test]
    fn query_text_puts_terms_last_and_quotes_hyphens() {
        assert_eq!(query_text(&Query::default()), "");
        assert_eq!(
            query_text(&query(&["budget", "q3"], &[&["next", "week"]], &["draft"])),
            "-draft \"next week\" budget q3"
        );
        assert_eq!(
            query_text(&query(&["e-mail"], &[], &["follow-up"])),
            "-\"follow-up\" \"e-mail\""
        );
        assert!(!has_positive_words(&query(&[], &[], &["x"])));
        assert!(has_positive_words(&query(&[], &[&["a", "b"]], &[])));
    }
}
