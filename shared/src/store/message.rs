//! Messages: the columns every query returning a [`crate::model::Message`]
//! selects, shared by the worker (commits) and the gateway (paging), so the
//! wire shape cannot drift between them.

/// The columns of [`crate::model::Message`], in its field order.
pub const COLUMNS: &str = "id, chat_id, seq, sender_id, content, client_id, reply_to, mentions, \
     priority, created_at, edited_at, deleted_at";
