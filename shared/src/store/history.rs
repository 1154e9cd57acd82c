//! A chat's message history as REST pages it, across the hot table and
//! the archive ([`super::archive`]).
//!
//! Why one snapshot: archival moves a prefix of a chat's seqs and raises
//! `chats.archived_seq` in one commit. A page that read the boundary, then
//! the hot table after a move, then the archive from the old boundary
//! would skip the moved seqs; reading all three in one REPEATABLE READ
//! transaction sees either the state before the move or after it.
//!
//! Which table is read is decided by [`plan`], a pure function: a page
//! reads the table holding `from`'s side first and the other one only for
//! what is left of the page (or, with nothing left, to tell whether more
//! lies beyond).

use sqlx::{types::Json, PgConnection, PgPool};

use super::message::{self, PageFrom, COLUMNS};
use crate::{
    model::{Message, MessageWithReactions, Reaction},
    AppResult,
};

/// Where a page's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Hot,
    Archive,
}

/// The reads of a page from `from` when seqs up to `archived` are in the
/// archive: the first, and the one that continues it, if any.
pub fn plan(from: PageFrom, archived: i64) -> Vec<(Table, PageFrom)> {
    if archived <= 0 {
        return vec![(Table::Hot, from)];
    }
    match from {
        PageFrom::Before(seq) if seq <= archived + 1 => vec![(Table::Archive, from)],
        PageFrom::Before(_) => vec![
            (Table::Hot, from),
            (Table::Archive, PageFrom::Before(archived + 1)),
        ],
        PageFrom::After(seq) if seq >= archived => vec![(Table::Hot, from)],
        PageFrom::After(_) => vec![
            (Table::Archive, from),
            (Table::Hot, PageFrom::After(archived)),
        ],
    }
}

/// Up to `limit` messages of `chat` from `from`, in seq order, with their
/// reactions, and whether more lie beyond them in that direction.
pub async fn page(
    pool: &PgPool,
    chat: i64,
    from: PageFrom,
    limit: i64,
) -> AppResult<(Vec<MessageWithReactions>, bool)> {
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let (archived,): (i64,) = sqlx::query_as("SELECT archived_seq FROM chats WHERE id = $1")
        .bind(chat)
        .fetch_one(&mut *tx)
        .await?;
    let mut rows: Vec<MessageWithReactions> = Vec::new();
    let mut more = false;
    for (table, from) in plan(from, archived) {
        let left = limit - rows.len() as i64;
        let (mut part, part_more) = read(&mut tx, table, chat, from, left).await?;
        more = part_more;
        // Both reads return seq order; the continuation lies beyond the
        // first page in the paging direction.
        match from {
            PageFrom::Before(_) => {
                part.append(&mut rows);
                rows = part;
            }
            PageFrom::After(_) => rows.append(&mut part),
        }
        if more {
            break;
        }
    }
    tx.commit().await?;
    Ok((rows, more))
}

/// One table's part of a page (`limit` may be 0: then it only tells
/// whether rows lie beyond).
async fn read(
    tx: &mut PgConnection,
    table: Table,
    chat: i64,
    from: PageFrom,
    limit: i64,
) -> AppResult<(Vec<MessageWithReactions>, bool)> {
    match table {
        Table::Hot => {
            let (messages, more) = message::page(&mut *tx, chat, from, limit).await?;
            let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
            let mut sets = message::reactions(&mut *tx, &ids).await?;
            let rows = messages
                .into_iter()
                .map(|message| MessageWithReactions {
                    reactions: sets.remove(&message.id).unwrap_or_default(),
                    message,
                })
                .collect();
            Ok((rows, more))
        }
        Table::Archive => archived_page(tx, chat, from, limit).await,
    }
}

#[derive(sqlx::FromRow)]
struct ArchivedRow {
    #[sqlx(flatten)]
    message: Message,
    reactions: Json<Vec<Reaction>>,
}

/// A page of the archive, in seq order.
async fn archived_page(
    tx: &mut PgConnection,
    chat: i64,
    from: PageFrom,
    limit: i64,
) -> AppResult<(Vec<MessageWithReactions>, bool)> {
    let select = format!("SELECT {COLUMNS}, reactions FROM messages_archive");
    let (rows, more): (Vec<ArchivedRow>, bool) =
        message::page_rows(&mut *tx, &select, chat, from, limit).await?;
    let rows = rows
        .into_iter()
        .map(|r| MessageWithReactions {
            message: r.message,
            reactions: r.reactions.0,
        })
        .collect();
    Ok((rows, more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use PageFrom::{After, Before};
    use Table::{Archive, Hot};

    #[test]
    fn nothing_archived_reads_the_hot_table_only() {
        assert_eq!(plan(Before(i64::MAX), 0), vec![(Hot, Before(i64::MAX))]);
        assert_eq!(plan(After(0), 0), vec![(Hot, After(0))]);
    }

    #[test]
    fn backwards_pages_continue_into_the_archive() {
        // Seqs 1..=10 archived, 11.. hot.
        assert_eq!(
            plan(Before(i64::MAX), 10),
            vec![(Hot, Before(i64::MAX)), (Archive, Before(11))]
        );
        assert_eq!(
            plan(Before(12), 10),
            vec![(Hot, Before(12)), (Archive, Before(11))]
        );
        assert_eq!(plan(Before(11), 10), vec![(Archive, Before(11))]);
        assert_eq!(plan(Before(5), 10), vec![(Archive, Before(5))]);
    }

    #[test]
    fn forwards_pages_continue_into_the_hot_table() {
        assert_eq!(
            plan(After(0), 10),
            vec![(Archive, After(0)), (Hot, After(10))]
        );
        assert_eq!(
            plan(After(9), 10),
            vec![(Archive, After(9)), (Hot, After(10))]
        );
        assert_eq!(plan(After(10), 10), vec![(Hot, After(10))]);
        assert_eq!(plan(After(20), 10), vec![(Hot, After(20))]);
    }
}
