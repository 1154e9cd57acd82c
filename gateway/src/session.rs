//! One WebSocket connection's read loop (client frames, heartbeats,
//! timeouts). Authentication at upgrade is [`crate::upgrade`]; opening and
//! closing a connection are in [`crate::lifecycle`], its queue in
//! [`crate::conn`], the writer in [`crate::outbound`].
//!
//! The writer is a separate task fed by a bounded queue so that a slow
//! client never blocks delivery to anyone else: the fan-out only ever
//! queues without waiting (see [`crate::conn::Conn::offer`]).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use fechatter_shared::{
    protocol::{self, MAX_FRAME_BYTES},
    token::Identity,
    AppError, AppResult,
};
use futures::StreamExt;

use crate::{
    hub::{close, Conn, Priority},
    state::AppState,
};

/// How early before expiry a connection is asked for a fresh token.
const TOKEN_WARNING: Duration = Duration::from_secs(60);

/// The per-connection state the frame handlers work with.
pub struct Session {
    pub state: AppState,
    pub me: Identity,
    pub conn: Conn,
    /// Chats this connection is typing in, with the auto-expiry deadline.
    pub typing: HashMap<i64, Instant>,
    /// Read marks held back by the rate limit (seed §7.3: coalesced), per
    /// chat: the newest mark and when to retry it.
    pub pending_reads: HashMap<i64, crate::read_state::PendingRead>,
    /// Active or idle, for presence.
    pub activity: crate::presence::Activity,
    token_warned: bool,
}

/// The durations the read loop needs, copied out of the configuration.
#[derive(Clone, Copy)]
struct Timeouts {
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    idle_timeout: Duration,
}

impl Timeouts {
    fn of(config: &fechatter_shared::Config) -> Self {
        Self {
            heartbeat_interval: config.heartbeat_interval,
            heartbeat_timeout: config.heartbeat_timeout,
            idle_timeout: config.idle_timeout,
        }
    }
}

impl Session {
    /// The session of a new connection `conn` of `me`.
    pub fn new(state: AppState, me: Identity, conn: Conn) -> Self {
        let away = state.config.presence_away;
        Self {
            state,
            me,
            conn,
            typing: HashMap::new(),
            pending_reads: HashMap::new(),
            activity: crate::presence::Activity::new(away),
            token_warned: false,
        }
    }

    /// Reads client frames until the connection closes.
    pub async fn read_loop(&mut self, mut stream: futures::stream::SplitStream<WebSocket>) {
        // Copied out, not a clone of the whole Config: that would put a
        // copy of every configured string in every connection.
        let config = Timeouts::of(&self.state.config);
        let start = Instant::now();
        let mut next_ping = start + config.heartbeat_interval;
        let mut last_received = start;
        let mut last_client_frame = start;
        // One timer per connection, set to the earliest deadline (ping,
        // heartbeat, idle, typing expiry, token): an idle connection wakes
        // once per heartbeat interval, not on a fixed tick.
        let timer = tokio::time::sleep_until(start.into());
        tokio::pin!(timer);
        loop {
            let due = [
                next_ping,
                last_received + config.heartbeat_timeout,
                last_client_frame + config.idle_timeout,
                self.token_due(),
                self.activity.due(),
            ]
            .into_iter()
            .chain(self.typing.values().copied())
            .chain(self.pending_reads.values().map(|p| p.due))
            .min()
            .unwrap_or(next_ping);
            if timer.deadline() != due.into() {
                timer.as_mut().reset(due.into());
            }
            tokio::select! {
                msg = stream.next() => {
                    match msg {
                        Some(Ok(Message::Text(text))) => {
                            last_received = Instant::now();
                            last_client_frame = last_received;
                            // Boxed: the frame handlers' state is large and
                            // only exists while a frame is being handled, so
                            // it should not be part of every idle connection.
                            Box::pin(self.on_text(text.as_str())).await;
                        }
                        Some(Ok(Message::Binary(_))) => {
                            last_received = Instant::now();
                            last_client_frame = last_received;
                            self.reply_error(None, AppError::bad_request("binary frames are not supported; send JSON text frames"));
                        }
                        Some(Ok(Message::Ping(_))) => {
                            last_received = Instant::now();
                            last_client_frame = last_received;
                        }
                        Some(Ok(Message::Pong(_))) => last_received = Instant::now(),
                        Some(Ok(Message::Close(_))) | None => {
                            self.conn.close(close::NORMAL, "");
                            return;
                        }
                        Some(Err(e)) => {
                            let text = e.to_string();
                            if text.contains("too long") || text.contains("Space limit") {
                                self.too_big();
                            } else {
                                tracing::debug!(error = %text, "WebSocket read failed");
                                self.conn.close(close::NORMAL, "");
                            }
                            return;
                        }
                    }
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if now >= next_ping {
                        self.conn.ping();
                        next_ping = now + config.heartbeat_interval;
                    }
                    if now.duration_since(last_received) >= config.heartbeat_timeout {
                        self.conn.close(close::HEARTBEAT_TIMEOUT, "heartbeat timeout");
                        return;
                    }
                    if now.duration_since(last_client_frame) >= config.idle_timeout {
                        self.conn.close(close::IDLE, "idle timeout");
                        return;
                    }
                    if !self.typing.is_empty() {
                        Box::pin(self.expire_typing(now)).await;
                    }
                    if !self.pending_reads.is_empty() {
                        Box::pin(self.flush_reads(now)).await;
                    }
                    if self.check_token() {
                        return;
                    }
                    if self.activity.check(now) {
                        let (user, conn) = (self.me.user_id, self.conn.id);
                        Box::pin(crate::presence::activity(&self.state, user, conn, false)).await;
                    }
                }
                _ = self.conn.killed() => return,
                _ = self.state.closing.cancelled() => {
                    self.conn.close(close::GOING_AWAY, "server shutting down; reconnect");
                    return;
                }
            }
        }
    }

    /// When the token needs attention next: the warning, then the expiry.
    fn token_due(&self) -> Instant {
        let now = chrono::Utc::now().timestamp();
        let at = if self.token_warned {
            self.me.expires_at
        } else {
            self.me.expires_at - TOKEN_WARNING.as_secs() as i64
        };
        Instant::now() + Duration::from_secs(at.saturating_sub(now).max(0) as u64)
    }

    /// Warns before the access token expires and closes the connection
    /// when it has. Returns true when closed.
    fn check_token(&mut self) -> bool {
        let now = chrono::Utc::now().timestamp();
        if now >= self.me.expires_at {
            self.conn
                .close(close::TOKEN_EXPIRED, "access token expired");
            return true;
        }
        if !self.token_warned && now + TOKEN_WARNING.as_secs() as i64 >= self.me.expires_at {
            self.token_warned = true;
            self.send(
                protocol::TokenRefresh {
                    expires_at: protocol::rfc3339(self.me.expires_at),
                }
                .frame(),
            );
        }
        false
    }

    /// Replaces the connection's token (answer to `token.refresh`). The new
    /// token must belong to the same user and session, and the session must
    /// not be revoked: a revoked session cannot be extended in band.
    pub async fn refresh_token(&mut self, token: &str) -> AppResult<()> {
        let fresh = self.state.tokens.verify(token)?;
        if fresh.user_id != self.me.user_id {
            return Err(AppError::forbidden("the token belongs to another user"));
        }
        if fresh.session_id != self.me.session_id {
            return Err(AppError::forbidden(
                "the token belongs to another session; reconnect with it",
            ));
        }
        fechatter_shared::revocation::ensure_live(&self.state.redis, &self.state.keys, &fresh)
            .await?;
        self.me = fresh;
        self.token_warned = false;
        Ok(())
    }

    fn too_big(&self) {
        self.reply_error(
            None,
            AppError::PayloadTooLarge(format!("frame exceeds {MAX_FRAME_BYTES} bytes")),
        );
        self.conn.close(close::TOO_BIG, "frame too large");
    }

    /// Queues a frame for this connection.
    pub fn send(&self, frame: String) {
        let kind = crate::fanout::frame_kind(&frame).to_string();
        self.conn.offer(
            Utf8Bytes::from(frame),
            Priority::Message,
            &self.state.metrics,
            &kind,
        );
    }

    /// Answers a client frame with an `error` frame; logs it once.
    pub fn reply_error(&self, ref_id: Option<&str>, error: AppError) {
        error.log();
        self.send(protocol::error_frame(ref_id, &error));
    }

    async fn on_text(&mut self, text: &str) {
        if text.len() > MAX_FRAME_BYTES {
            self.too_big();
            return;
        }
        match protocol::parse_client_frame(text) {
            Err(rejected) => {
                self.state
                    .metrics
                    .ws_frames_in
                    .with_label_values(&["invalid"])
                    .inc();
                self.reply_error(rejected.ref_id.as_deref(), rejected.error);
            }
            Ok(incoming) => {
                self.state
                    .metrics
                    .ws_frames_in
                    .with_label_values(&[incoming.frame.kind()])
                    .inc();
                let ref_id = incoming.id.clone();
                // Followed through ingest, commit and publish in the logs.
                let trace_id = fechatter_shared::ingest::new_trace_id();
                tracing::debug!(
                    %trace_id,
                    conn = self.conn.id,
                    user = self.me.user_id,
                    kind = incoming.frame.kind(),
                    %ref_id,
                    "client frame received"
                );
                if !matches!(incoming.frame, protocol::ClientFrame::Ping)
                    && self.activity.on_frame(Instant::now())
                {
                    let (user, conn) = (self.me.user_id, self.conn.id);
                    crate::presence::activity(&self.state, user, conn, true).await;
                }
                if let Err(e) = self.dispatch(incoming, &trace_id).await {
                    tracing::info_span!("frame", %trace_id)
                        .in_scope(|| self.reply_error(Some(&ref_id), e));
                }
            }
        }
    }
}
