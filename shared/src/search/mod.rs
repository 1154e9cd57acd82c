//! Search (seed 002 §5): the query language, the backends and what they
//! share.
//!
//! One request shape ([`MessageSearch`]) goes to whichever backend the
//! deployment chose (PostgreSQL full-text search by default, Meilisearch
//! optionally), through one trait ([`MessageIndex`]). Access control is
//! decided *before* a backend is asked: the caller resolves the chats the
//! user may search into `chats`, and a backend may only return messages
//! of those chats. Highlighting ([`highlight`]) and paging cursors
//! ([`cursor`]) are backend-neutral, so both backends answer in the same
//! shape.

pub mod cursor;
pub mod highlight;
#[cfg(feature = "meilisearch")]
pub mod meili;
pub mod query;

use std::{future::Future, pin::Pin};

use chrono::{DateTime, Utc};

pub use cursor::{Cursor, Position};
pub use query::{parse, ChatRef, Person, Query};

use crate::AppResult;

/// Most results per page.
pub const MAX_LIMIT: usize = 50;
/// Results per page unless the caller asks otherwise.
pub const DEFAULT_LIMIT: usize = 20;

/// One message search, with access control already applied.
#[derive(Debug, Clone)]
pub struct MessageSearch {
    pub query: Query,
    /// The only chats results may come from (never empty; an empty ACL is
    /// answered without asking a backend).
    pub chats: Vec<i64>,
    /// `from:` resolved to user ids; None when the query has no `from:`.
    pub senders: Option<Vec<i64>>,
    /// `mentions:` resolved to user ids; None when the query has none.
    pub mentioned: Option<Vec<i64>>,
    /// Messages created after this instant are not part of the result set
    /// (it is fixed by the first page so later pages do not shift).
    pub as_of: DateTime<Utc>,
    /// Where the previous page ended.
    pub after: Option<Position>,
    pub limit: usize,
}

/// A matching message.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageHit {
    pub message_id: i64,
    pub chat_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    pub sender_name: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    /// Relevance mixed with recency; higher first.
    pub score: f64,
}

/// One page of hits and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub hits: Vec<T>,
    pub next: Option<Position>,
}

/// The future a backend returns (boxed so backends can sit behind `dyn`).
pub type SearchFuture<'a, T> = Pin<Box<dyn Future<Output = AppResult<T>> + Send + 'a>>;

/// A message search engine. Implementations must return only messages of
/// `search.chats`, never deleted ones, and match edited messages by their
/// current text only.
pub trait MessageIndex: Send + Sync {
    /// `postgres` or `meilisearch`, for logs and metrics.
    fn name(&self) -> &'static str;
    /// True when hits are read from the messages table itself (current by
    /// construction); false for a copy that may lag edits and deletes,
    /// whose hits the caller checks against PostgreSQL.
    fn is_current(&self) -> bool {
        false
    }
    /// One page of hits for `search`.
    fn search<'a>(&'a self, search: &'a MessageSearch) -> SearchFuture<'a, Page<MessageHit>>;
}

/// One live message with what its search document needs.
/// (Read by [`crate::store::search_index`].)
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct IndexedMessage {
    pub id: i64,
    pub chat_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    pub sender_name: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub mentions: Vec<i64>,
    pub has_link: bool,
}
