//! What the gateway does with each client frame.
//!
//! Writes (send, edit, delete, react, read) are only validated here —
//! membership, shape, rate limit — and then appended to the chat's ingest
//! shard; the worker commits them and its ack reaches the client through
//! this gateway's channel, so a client never hears "ok" for something that
//! is not in PostgreSQL. Ephemeral frames (typing) and reads (sync) are
//! answered here directly.
//!
//! Every client frame gets a trace id when it arrives
//! (`Session::on_text`); a write carries it in its ingest entry, so the
//! worker's logs of its commit and publish name the same id.

use std::time::{Duration, Instant};

use fechatter_shared::{
    ingest::{Command, IngestEntry},
    protocol::{
        self, AuthRefreshed, ClientFrame, Incoming, ReadCoalesced, SearchAck, SyncAck, SyncRequest,
        TypingAck, TypingIndicator,
    },
    scripts::{Decision, Limit},
    wake, AppError, AppResult,
};
use fred::prelude::*;

use crate::{read_state::PendingRead, session::Session, sync, writes};

/// Seed 002 §7.3: typing 1/s per user per chat.
pub const TYPING_LIMIT: Limit = Limit {
    capacity: 1.0,
    per_second: 1.0,
};
/// Seed 002 §7.3: read marks 5/s per user.
pub const READ_LIMIT: Limit = Limit {
    capacity: 5.0,
    per_second: 5.0,
};
/// `sync.request`: a burst of 10 (reconnects), then one every 2 s per
/// user; each request may name up to 200 chats.
pub const SYNC_LIMIT: Limit = Limit {
    capacity: 10.0,
    per_second: 0.5,
};
/// Typing state expires this long after the last `typing.start`.
pub const TYPING_TTL: Duration = Duration::from_secs(5);

impl Session {
    /// Handles one client frame; `trace_id` goes into the ingest entry of
    /// a write.
    pub async fn dispatch(&mut self, incoming: Incoming, trace_id: &str) -> AppResult<()> {
        let ref_id = incoming.id;
        match incoming.frame {
            frame @ (ClientFrame::MessageSend(_)
            | ClientFrame::MessageEdit(_)
            | ClientFrame::MessageDelete(_)
            | ClientFrame::MessageReact(_)) => self.message_frame(frame, ref_id, trace_id).await,
            ClientFrame::ReadMark(r) => {
                self.ensure_member(r.chat_id)?;
                if r.seq < 0 {
                    return Err(AppError::validation("seq must not be negative"));
                }
                self.read_mark(r.chat_id, r.seq, ref_id, trace_id.to_string())
                    .await
            }
            ClientFrame::TypingStart(t) => self.typing_start(t.chat_id, &ref_id).await,
            ClientFrame::TypingStop(t) => {
                self.ensure_member(t.chat_id)?;
                self.stop_typing(t.chat_id).await;
                self.send(protocol::ack_frame(&ref_id, ()));
                Ok(())
            }
            ClientFrame::SyncRequest(req) => self.sync_request(req, &ref_id).await,
            ClientFrame::AuthRefresh(a) => {
                self.refresh_token(a.access_token.trim()).await?;
                let expires_at = protocol::rfc3339(self.me.expires_at);
                self.send(protocol::ack_frame(&ref_id, AuthRefreshed { expires_at }));
                Ok(())
            }
            frame @ (ClientFrame::PresenceUpdate(_)
            | ClientFrame::PresenceSubscribe(_)
            | ClientFrame::PresenceUnsubscribe(_)
            | ClientFrame::ChatFocus(_)) => self.attention_frame(frame, &ref_id).await,
            ClientFrame::SearchQuery(req) => {
                let mut results = crate::search::run(&self.state, &self.me, req).await?;
                let count = results.results.len();
                results.ref_id = Some(ref_id.clone());
                self.send(results.frame());
                self.send(protocol::ack_frame(&ref_id, SearchAck { results: count }));
                Ok(())
            }
            ClientFrame::Ping => {
                self.send(protocol::ack_frame(&ref_id, ()));
                Ok(())
            }
        }
    }

    /// `message.send`, `.edit`, `.delete`, `.react`: checked here against
    /// the rules of [`writes`] and the sender's budget, then queued for the
    /// chat's worker, which answers the frame after its commit.
    async fn message_frame(
        &mut self,
        frame: ClientFrame,
        ref_id: String,
        trace_id: &str,
    ) -> AppResult<()> {
        let (chat_id, command) = match frame {
            ClientFrame::MessageSend(m) => {
                self.ensure_member(m.chat_id)?;
                let (command, urgent) = writes::send_command(writes::Draft {
                    content: m.content,
                    reply_to: m.reply_to,
                    mentions: m.mentions,
                    priority: m.priority,
                })?;
                writes::limit_send(&self.state, self.me.user_id, urgent).await?;
                self.stop_typing(m.chat_id).await;
                (m.chat_id, command)
            }
            ClientFrame::MessageEdit(m) => {
                let chat_id = self.chat_of_message(m.message_id).await?;
                let content = writes::valid_content(&m.content)?;
                let message_id = m.message_id;
                (
                    chat_id,
                    Command::Edit {
                        message_id,
                        content,
                    },
                )
            }
            ClientFrame::MessageDelete(m) => {
                let chat_id = self.chat_of_message(m.message_id).await?;
                let message_id = m.message_id;
                (chat_id, Command::Delete { message_id })
            }
            ClientFrame::MessageReact(m) => {
                let chat_id = self.chat_of_message(m.message_id).await?;
                let command = Command::React {
                    message_id: m.message_id,
                    emoji: writes::valid_emoji(&m.emoji)?.to_string(),
                    action: m.action,
                };
                (chat_id, command)
            }
            other => {
                return Err(AppError::Internal(anyhow::anyhow!(
                    "{} is not a message frame",
                    other.kind()
                )))
            }
        };
        if !matches!(command, Command::Send { .. }) {
            self.limit("send", writes::SEND_LIMIT).await?;
        }
        self.ingest(chat_id, (ref_id, trace_id), command).await
    }

    /// `typing.start`: broadcast unless over the typing limit (seed §7.3:
    /// then silently dropped, but the typing state is kept alive).
    async fn typing_start(&mut self, chat_id: i64, ref_id: &str) -> AppResult<()> {
        self.ensure_member(chat_id)?;
        let key = format!("typing:{chat_id}");
        let throttled = matches!(
            self.take(&key, TYPING_LIMIT).await?,
            Decision::Denied { .. }
        );
        let was_typing = self
            .typing
            .insert(chat_id, Instant::now() + TYPING_TTL)
            .is_some();
        if !throttled || !was_typing {
            self.publish_typing(chat_id, true).await?;
        }
        self.send(protocol::ack_frame(ref_id, TypingAck { throttled }));
        Ok(())
    }

    /// Answers `sync.request`: one `sync.response` per chat within one
    /// byte budget, then the ack. PostgreSQL decides membership, not the
    /// local cache.
    async fn sync_request(&mut self, req: SyncRequest, ref_id: &str) -> AppResult<()> {
        self.limit("sync", SYNC_LIMIT).await?;
        let mut answered = 0;
        let mut budget = sync::SYNC_REQUEST_MAX_BYTES;
        for (chat_id, known) in req.chats {
            let (frame, used) =
                sync::chat_sync(&self.state, chat_id, known, self.me.user_id, budget).await?;
            budget = budget.saturating_sub(used);
            self.send(frame);
            answered += 1;
        }
        if let Some(cursor) = req.user {
            self.send(sync::user_sync(&self.state, self.me.user_id, cursor, budget).await?);
        }
        let ack = SyncAck {
            chats: answered,
            user: req.user.is_some(),
        };
        self.send(protocol::ack_frame(ref_id, ack));
        Ok(())
    }

    /// Sends a read mark, or holds it back while the user is over the read
    /// limit. A held mark superseded by a newer one for the same chat is
    /// answered at once with `ack {coalesced: true}`; the newest is sent
    /// when a token is free and answered by the worker as usual.
    async fn read_mark(
        &mut self,
        chat_id: i64,
        seq: i64,
        ref_id: String,
        trace_id: String,
    ) -> AppResult<()> {
        if let Some(held) = self.pending_reads.get_mut(&chat_id) {
            // Already waiting: keep the newest mark, release the older frame.
            let (keep_seq, older) = if seq >= held.seq {
                held.trace_id = trace_id;
                (seq, std::mem::replace(&mut held.ref_id, ref_id))
            } else {
                (held.seq, ref_id)
            };
            held.seq = keep_seq;
            self.send(protocol::ack_frame(&older, ReadCoalesced::ACK));
            return Ok(());
        }
        match self.take("read", READ_LIMIT).await? {
            Decision::Allowed => {
                let origin = (ref_id, trace_id.as_str());
                self.ingest(chat_id, origin, Command::Read { seq }).await
            }
            Decision::Denied { retry_after_ms } => {
                let due = Instant::now() + Duration::from_millis(retry_after_ms);
                let held = PendingRead {
                    seq,
                    ref_id,
                    trace_id,
                    due,
                };
                self.pending_reads.insert(chat_id, held);
                Ok(())
            }
        }
    }

    /// Sends held read marks whose retry time has come.
    pub async fn flush_reads(&mut self, now: Instant) {
        let due: Vec<i64> = self
            .pending_reads
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(c, _)| *c)
            .collect();
        for chat_id in due {
            let Some(held) = self.pending_reads.remove(&chat_id) else {
                continue;
            };
            let (ref_id, trace_id) = (held.ref_id.clone(), held.trace_id);
            if let Err(e) = self.read_mark(chat_id, held.seq, ref_id, trace_id).await {
                self.reply_error(Some(&held.ref_id), e);
            }
        }
    }

    /// On close: held read marks are sent anyway (their answers have nowhere
    /// to go, but the watermark should not be lost).
    pub async fn send_held_reads(&mut self) {
        for (chat_id, held) in std::mem::take(&mut self.pending_reads) {
            let origin = (held.ref_id, held.trace_id.as_str());
            let _ = self
                .ingest(chat_id, origin, Command::Read { seq: held.seq })
                .await;
        }
    }

    pub(crate) fn ensure_member(&self, chat_id: i64) -> AppResult<()> {
        if self.state.hub.is_member(self.me.user_id, chat_id) {
            Ok(())
        } else {
            Err(AppError::not_found("chat not found"))
        }
    }

    /// The chat of a message the caller can see.
    async fn chat_of_message(&self, message_id: i64) -> AppResult<i64> {
        let chat = fechatter_shared::store::message::chat_of(&self.state.pool, message_id).await?;
        match chat {
            Some(chat_id) if self.state.hub.is_member(self.me.user_id, chat_id) => Ok(chat_id),
            _ => Err(AppError::not_found("message not found")),
        }
    }

    async fn take(&self, action: &str, limit: Limit) -> AppResult<Decision> {
        writes::take(&self.state, self.me.user_id, action, limit).await
    }

    pub(crate) async fn limit(&self, action: &str, limit: Limit) -> AppResult<()> {
        writes::limit(&self.state, self.me.user_id, action, limit).await
    }

    /// Appends a write to the chat's ingest shard; the worker answers.
    /// `origin`: the client's frame id and the frame's trace id.
    async fn ingest(
        &self,
        chat_id: i64,
        (ref_id, trace_id): (String, &str),
        command: Command,
    ) -> AppResult<()> {
        let entry = IngestEntry {
            chat_id,
            user_id: self.me.user_id,
            gateway: self.state.node.clone(),
            conn: self.conn.id,
            ref_id,
            command,
            trace_id: trace_id.to_string(),
            accepted_ms: 0,
        };
        // A retry of a queued write is answered by the first attempt's
        // answer, which reaches this user's socket(s) by the same frame id.
        writes::append(&self.state, &entry).await.map(|_| ())
    }

    async fn publish_typing(&self, chat_id: i64, active: bool) -> AppResult<()> {
        let frame = TypingIndicator {
            chat_id,
            user_id: self.me.user_id,
            display_name: self.me.display_name.clone(),
            active,
        }
        .frame();
        let _: () = self
            .state
            .redis
            .spublish(
                self.state.keys.chat_channel(chat_id),
                wake::ephemeral(self.me.user_id, &frame),
            )
            .await?;
        Ok(())
    }

    /// Ends typing in a chat, telling the others if it was on.
    pub async fn stop_typing(&mut self, chat_id: i64) {
        if self.typing.remove(&chat_id).is_some() {
            if let Err(e) = self.publish_typing(chat_id, false).await {
                tracing::debug!(error = %e, "typing stop not published");
            }
        }
    }

    pub async fn expire_typing(&mut self, now: Instant) {
        let expired: Vec<i64> = self
            .typing
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(c, _)| *c)
            .collect();
        for chat in expired {
            self.stop_typing(chat).await;
        }
    }

    pub async fn stop_all_typing(&mut self) {
        let chats: Vec<i64> = self.typing.keys().copied().collect();
        for chat in chats {
            self.stop_typing(chat).await;
        }
    }
}
