//! The write rules both transports share: what a valid message is, which
//! rate limits a write takes, and how it is appended to its chat's ingest
//! shard.
//!
//! A `message.send` frame and `POST /api/chat/{id}/messages` must accept
//! exactly the same messages, count against the same token buckets and end
//! in the same durable pipeline (ingest stream -> worker commit -> topic);
//! keeping those steps here, as functions of their inputs, is what keeps the
//! two from drifting apart.

use fechatter_shared::{
    ingest::{Command, IngestEntry, ENTRY_FIELD},
    protocol::{Answer, MAX_CONTENT_CHARS},
    scripts::{self, Appended, Decision, Limit},
    AppError, AppResult,
};

use crate::state::AppState;

/// Seed 002 §7.3: messages (and other writes) 10/s per user.
pub const SEND_LIMIT: Limit = Limit {
    capacity: 10.0,
    per_second: 10.0,
};
/// Seed 002 §3.7: at most 3 urgent messages per sender per hour.
pub const URGENT_LIMIT: Limit = Limit {
    capacity: 3.0,
    per_second: 3.0 / 3600.0,
};
/// Chat settings and ownership changes (each one is an event to every
/// member): a burst of 5, then one every 2 s per user.
pub const CHAT_CHANGE_LIMIT: Limit = Limit {
    capacity: 5.0,
    per_second: 0.5,
};
/// Most mentions per message.
pub const MAX_MENTIONS: usize = 100;
/// The retry hint of a write refused because its shard lags
/// (`INGEST_MAX_WAIT_MS`): about a batch or two of a worker catching up.
pub const LAGGING_RETRY_MS: u64 = 500;

/// A message as a client asked for it, before validation.
pub struct Draft {
    pub content: String,
    pub reply_to: Option<i64>,
    pub mentions: Vec<i64>,
    pub priority: Option<String>,
}

/// Validates a draft into the ingest command (no I/O). Returns the command
/// and whether it is urgent (it then also takes the urgent budget).
pub fn send_command(draft: Draft) -> AppResult<(Command, bool)> {
    let content = valid_content(&draft.content)?;
    if draft.mentions.len() > MAX_MENTIONS {
        return Err(AppError::validation(format!(
            "at most {MAX_MENTIONS} mentions"
        )));
    }
    let urgent = match draft.priority.as_deref() {
        None | Some("normal") => false,
        Some("urgent") => true,
        Some(_) => return Err(AppError::validation("priority must be normal or urgent")),
    };
    let command = Command::Send {
        content,
        reply_to: draft.reply_to,
        mentions: draft.mentions,
        urgent,
    };
    Ok((command, urgent))
}

/// A reaction's emoji, trimmed: 1 to 64 bytes, no whitespace or control
/// characters.
pub fn valid_emoji(emoji: &str) -> AppResult<&str> {
    let emoji = emoji.trim();
    if emoji.is_empty()
        || emoji.len() > 64
        || emoji.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AppError::validation(
            "emoji must be 1-64 bytes without spaces",
        ));
    }
    Ok(emoji)
}

/// Message text rules: not blank, at most [`MAX_CONTENT_CHARS`], no NUL.
pub fn valid_content(content: &str) -> AppResult<String> {
    if content.trim().is_empty() {
        return Err(AppError::validation("content must not be empty"));
    }
    if content.chars().count() > MAX_CONTENT_CHARS {
        return Err(AppError::validation(format!(
            "content exceeds {MAX_CONTENT_CHARS} characters"
        )));
    }
    if content.contains('\0') {
        return Err(AppError::validation(
            "content must not contain NUL characters",
        ));
    }
    Ok(content.to_string())
}

/// Takes one token of `user`'s `action` bucket; a refusal is counted in
/// `rate_limited_total{action}`.
pub async fn take(state: &AppState, user: i64, action: &str, limit: Limit) -> AppResult<Decision> {
    let key = state.keys.rate_limit(user, action);
    let decision = scripts::take_token(&state.redis, &key, limit, 1.0).await?;
    if matches!(decision, Decision::Denied { .. }) {
        state.metrics.record_rate_limited(action);
    }
    Ok(decision)
}

/// Like [`take`], but a refusal is the `rate_limited` error.
pub async fn limit(state: &AppState, user: i64, action: &str, limit: Limit) -> AppResult<()> {
    match take(state, user, action, limit).await? {
        Decision::Allowed => Ok(()),
        Decision::Denied { retry_after_ms } => Err(AppError::RateLimited { retry_after_ms }),
    }
}

/// The rate limits of a send: the write budget, plus the urgent budget.
pub async fn limit_send(state: &AppState, user: i64, urgent: bool) -> AppResult<()> {
    limit(state, user, "send", SEND_LIMIT).await?;
    if urgent {
        limit(state, user, "urgent", URGENT_LIMIT).await?;
    }
    Ok(())
}

/// Appends a write to its chat's ingest shard; the worker that owns the
/// shard commits it and answers `entry.conn` on `entry.gateway`. A retry
/// of a write still waiting in the shard is not queued again (false): the
/// first entry's answer (same ref id) goes to the first attempt's address.
pub async fn append(state: &AppState, entry: &IngestEntry) -> AppResult<bool> {
    if state.fanout_lag.over() {
        tracing::debug!(
            pool_lag_ms = state.fanout_lag.pool_ms(),
            "fan-out lagging; write refused"
        );
        state
            .metrics
            .ingest_refused
            .with_label_values(&["fanout"])
            .inc();
        return Err(AppError::Overloaded {
            what: "message fan-out",
            retry_after_ms: crate::fanout_lag::RETRY_MS,
        });
    }
    let body = serde_json::to_string(entry).map_err(|e| AppError::Internal(e.into()))?;
    let stream = state.keys.ingest(entry.chat_id, state.config.ingest_shards);
    let pending = state
        .keys
        .ingest_pending(&stream, entry.chat_id, entry.user_id, &entry.ref_id);
    let bounds = scripts::IngestBounds {
        max_len: state.config.ingest_max_len,
        max_wait_ms: state.config.ingest_max_wait.as_millis() as u64,
    };
    let appended =
        scripts::ingest_append(&state.redis, &stream, &pending, bounds, ENTRY_FIELD, &body).await?;
    match appended {
        Appended::Added(_) => Ok(true),
        Appended::AlreadyQueued => Ok(false),
        Appended::Full => {
            tracing::warn!(%stream, "ingest shard full; write refused");
            state
                .metrics
                .ingest_refused
                .with_label_values(&["full"])
                .inc();
            Err(AppError::Unavailable("ingest shard is full".into()))
        }
        Appended::Lagging(waited_ms) => {
            tracing::warn!(%stream, waited_ms, "ingest shard lagging; write refused");
            state
                .metrics
                .ingest_refused
                .with_label_values(&["lagging"])
                .inc();
            Err(AppError::Overloaded {
                what: "message ingest",
                retry_after_ms: LAGGING_RETRY_MS,
            })
        }
    }
}

/// A write made over REST: appends `command` to its chat's ingest shard,
/// addressed to a reply id this request waits on, and returns the
/// worker's answer (its ack payload, or the error it carries). `ref_id`
/// is the idempotency key. No answer within `WRITE_TIMEOUT`: 503 with a
/// retry hint, since the write may still commit (a retry with the same
/// `ref_id` is then answered from the commit).
pub async fn commit_rest(
    state: &AppState,
    (chat_id, user_id): (i64, i64),
    ref_id: String,
    command: Command,
) -> AppResult<serde_json::Value> {
    // 1. The entry, addressed to the reply id the request waits on.
    let reply_id = state.hub.next_conn_id();
    let waiter = state.replies.wait_for(reply_id);
    let entry = IngestEntry {
        chat_id,
        user_id,
        gateway: state.node.clone(),
        conn: reply_id,
        ref_id,
        command,
        trace_id: fechatter_shared::ingest::new_trace_id(),
        accepted_ms: 0,
    };
    let kind = entry.command.kind();
    tracing::debug!(trace_id = %entry.trace_id, chat_id, user_id, kind, "REST write received");
    // 2. Queued within the deadline.
    let deadline = tokio::time::Instant::now() + state.config.write_timeout;
    queue(state, &entry, deadline).await?;
    // 3. The worker's answer.
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let Some(frame) = waiter.answer(left).await else {
        tracing::warn!(chat_id, kind, trace_id = %entry.trace_id, "REST write not answered in time");
        return Err(not_committed_in_time());
    };
    answer_of(&frame)
}

/// The ack payload of a worker's answer frame, or the error it carries.
fn answer_of(frame: &str) -> AppResult<serde_json::Value> {
    Answer::parse(frame)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("unreadable answer frame")))?
        .into_result()
}

/// Appends `entry`. While an earlier attempt with the same ref id still
/// waits in the shard, its answer goes to that attempt's address, not to
/// this request: wait for it to be processed, then append again, and the
/// worker answers this request from the commit (`duplicate: true`).
async fn queue(
    state: &AppState,
    entry: &IngestEntry,
    deadline: tokio::time::Instant,
) -> AppResult<()> {
    while !append(state, entry).await? {
        if tokio::time::Instant::now() >= deadline {
            return Err(not_committed_in_time());
        }
        tokio::time::sleep(REQUEUE_PAUSE).await;
    }
    Ok(())
}

/// 503 with a retry hint: the write may still commit, and a retry with
/// the same ref id is answered from it.
fn not_committed_in_time() -> AppError {
    AppError::Overloaded {
        what: "write commit",
        retry_after_ms: 1000,
    }
}

/// How often a retry looks whether the earlier attempt was processed.
const REQUEUE_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(content: &str, priority: Option<&str>, mentions: usize) -> Draft {
        Draft {
            content: content.into(),
            reply_to: None,
            mentions: (0..mentions as i64).collect(),
            priority: priority.map(str::to_string),
        }
    }

    #[test]
    fn answers_become_results() {
        use fechatter_shared::protocol::{ack_frame, error_frame};
        let ack = ack_frame("c", serde_json::json!({"messageId": 9, "seq": 3}));
        assert_eq!(answer_of(&ack).unwrap()["seq"], 3);
        let refused = error_frame(Some("c"), &AppError::forbidden("not a member"));
        assert_eq!(answer_of(&refused).unwrap_err().code(), "forbidden");
        assert_eq!(answer_of("{}").unwrap_err().code(), "internal");
    }

    #[test]
    fn emoji_rules() {
        assert_eq!(valid_emoji(" 👍 ").unwrap(), "👍");
        for bad in ["", "  ", "a b", "x\u{7}", &"x".repeat(65)] {
            assert_eq!(
                valid_emoji(bad).unwrap_err().code(),
                "validation_failed",
                "{bad:?}"
            );
        }
        assert!(valid_emoji(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn content_rules() {
        assert!(valid_content(" ").is_err());
        assert!(valid_content("a\0b").is_err());
        assert!(valid_content(&"x".repeat(16_001)).is_err());
        assert_eq!(valid_content(" hi ").unwrap(), " hi ");
    }

    #[test]
    fn send_rules() {
        let (command, urgent) = send_command(draft("hi", None, 2)).unwrap();
        assert!(!urgent);
        assert!(matches!(command, Command::Send { ref mentions, .. } if mentions.len() == 2));
        assert!(send_command(draft("hi", Some("urgent"), 0)).unwrap().1);
        assert!(!send_command(draft("hi", Some("normal"), 0)).unwrap().1);
        let bad = [
            draft("hi", Some("loud"), 0),
            draft("hi", None, MAX_MENTIONS + 1),
            draft("  ", None, 0),
        ];
        for d in bad {
            assert_eq!(send_command(d).unwrap_err().code(), "validation_failed");
        }
    }
}
