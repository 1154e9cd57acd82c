//! The default search backend: PostgreSQL full-text search on the
//! messages table itself, so search works with nothing else installed and
//! is never behind the commit (a message is searchable the moment its
//! transaction commits). The SQL lives in [`crate::store::search`].

use sqlx::PgPool;

use super::{MessageHit, MessageIndex, MessageSearch, Page, SearchFuture};

/// Messages searched where they are stored.
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

    fn search<'a>(&'a self, search: &'a MessageSearch) -> SearchFuture<'a, Page<MessageHit>> {
        Box::pin(crate::store::search::messages(&self.pool, search))
    }
}
