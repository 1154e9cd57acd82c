//! Toasts for the messages a batch committed (seed 002 §3.2-3.4): after
//! the batch is announced and acknowledged, every recipient the evaluator
//! ([`crate::evaluator`]) says should be alerted and who is connected gets
//! a `notification.toast` through their user stream (their gateways skip
//! devices that show the chat), and every alerted recipient without an
//! active connection gets a push job ([`crate::push`]).
//!
//! Rapid messages from one chat are grouped per recipient: the first
//! message in a [`GROUP_WINDOW`] opens a group, later ones update it
//! (`count`, "3 new messages in #general", same `groupId`).
//!
//! Failure handling: toasts and push jobs are best effort and at most
//! once. They are computed after the batch was acknowledged, so a Redis or
//! PostgreSQL error here loses the alerts of that batch (logged, counted)
//! but never the messages, their badges or a retry of the batch.

use std::{collections::HashMap, time::Duration};

use fechatter_shared::{
    presence::{self, Status},
    protocol::{preview, rfc3339_ms, NotificationToast},
    store::notification::{self, RecipientRow},
    user_stream, AppResult,
};
use fred::prelude::*;

use crate::{
    effects::{Effects, NewMessage},
    evaluator::{self, Facts, Level, Recipient},
    Worker,
};

/// Messages of one chat within this window make one toast group.
pub const GROUP_WINDOW: Duration = Duration::from_secs(10);

/// Who is alerted by one message: the recipients the evaluator says yes to.
fn alerted<'a>(m: &NewMessage, direct: bool, rows: &'a [RecipientRow]) -> Vec<&'a RecipientRow> {
    // Direct and group messages count as mentioning everyone in them.
    let everyone: Vec<i64>;
    let mentions = if direct {
        everyone = rows.iter().map(|r| r.user_id).collect();
        everyone.as_slice()
    } else {
        m.mentions.as_slice()
    };
    let facts = Facts {
        text: &m.content,
        mentions,
        urgent: m.urgent,
    };
    rows.iter()
        .filter(|r| r.chat_id == m.chat_id && r.user_id != m.sender_id)
        .filter(|r| evaluator::alerts(&recipient(r), &facts))
        .collect()
}

fn recipient(r: &RecipientRow) -> Recipient {
    Recipient {
        user_id: r.user_id,
        level: Level::parse(&r.level).unwrap_or(Level::MentionsOnly),
        muted: r.muted,
        dnd_manual: r.dnd_manual,
        dnd_schedule: match (r.local_time, r.dnd_start, r.dnd_end) {
            (Some(now), Some(start), Some(end)) => Some((now, start, end)),
            _ => None,
        },
        keywords: r.keywords.iter().map(|k| k.to_lowercase()).collect(),
    }
}

/// Chat titles: `#name` for channels, the name of a named group, else the
/// sender's name.
struct Titles {
    chats: HashMap<i64, (String, Option<String>)>,
    senders: HashMap<i64, String>,
}

impl Titles {
    fn direct(&self, chat: i64) -> bool {
        self.chats
            .get(&chat)
            .is_some_and(|(kind, _)| kind == "single" || kind == "group")
    }

    fn of(&self, m: &NewMessage) -> (String, String) {
        let sender = self.senders.get(&m.sender_id).cloned().unwrap_or_default();
        match self.chats.get(&m.chat_id) {
            Some((kind, Some(name))) if kind.ends_with("channel") => (format!("#{name}"), sender),
            Some((_, Some(name))) => (name.clone(), sender),
            _ => (sender.clone(), sender),
        }
    }
}

impl Worker {
    /// Sends the toasts of a committed batch; returns how many.
    pub async fn toasts(&self, fx: &Effects) -> AppResult<usize> {
        if fx.messages.is_empty() {
            return Ok(0);
        }
        let timer = self.metrics.evaluator_seconds.start_timer();
        // 1. Settings of every member of the chats, titles.
        let mut chats: Vec<i64> = fx.messages.iter().map(|m| m.chat_id).collect();
        chats.sort_unstable();
        chats.dedup();
        let senders: Vec<i64> = fx.messages.iter().map(|m| m.sender_id).collect();
        let mut conn = self.pool.acquire().await?;
        let (chat_rows, sender_rows) = notification::titles(&mut conn, &chats, &senders).await?;
        let titles = Titles {
            chats: chat_rows
                .into_iter()
                .map(|(id, k, n)| (id, (k, n)))
                .collect(),
            senders: sender_rows.into_iter().collect(),
        };
        // Every member can be alerted in direct and group chats and by
        // messages with mentions or urgency; otherwise (a plain channel
        // message) only members whose level is `all` or who watch
        // keywords: a 500-member channel costs a handful of rows, not 500.
        let (every, some): (Vec<i64>, Vec<i64>) = chats.iter().partition(|&&c| {
            titles.direct(c)
                || fx
                    .messages
                    .iter()
                    .any(|m| m.chat_id == c && (m.urgent || !m.mentions.is_empty()))
        });
        let rows = notification::recipients(&mut conn, &every, &some).await?;
        drop(conn);
        // 2. The evaluator's verdicts.
        let mut due: Vec<(&NewMessage, i64)> = Vec::new();
        for m in &fx.messages {
            for r in alerted(m, titles.direct(m.chat_id), &rows) {
                due.push((m, r.user_id));
            }
        }
        // 3. Connected recipients get toasts; those without an active
        // connection (none, or all idle) get a push.
        let mut users: Vec<i64> = due.iter().map(|(_, u)| *u).collect();
        users.sort_unstable();
        users.dedup();
        let conns = presence::connections(&self.redis, &self.keys, &users).await?;
        let by_user: HashMap<i64, (usize, usize)> = users.iter().copied().zip(conns).collect();
        timer.observe_duration();
        // 4. Group and send.
        let mut sent = 0;
        for (m, user) in due {
            let (open, active) = by_user.get(&user).copied().unwrap_or((0, 0));
            let to = evaluator::route(true, open, active);
            if to.push {
                self.queue_push(m, user, &titles).await?;
            }
            if !to.toast {
                continue;
            }
            let count = self.group_count(user, m.chat_id).await?;
            let (title, sender) = titles.of(m);
            let body = match count {
                1 if title == sender => preview(&m.content),
                1 => preview(&format!("{sender}: {}", m.content)),
                n => format!("{n} new messages in {title}"),
            };
            let toast = NotificationToast {
                id: format!("t{}", m.message_id),
                group_id: format!("c{}", m.chat_id),
                title,
                body,
                chat_id: m.chat_id,
                message_id: m.message_id,
                priority: if m.urgent { "urgent" } else { "normal" }.into(),
                count,
                timestamp: rfc3339_ms(m.created_at.timestamp_millis()),
            };
            user_stream::publish(&self.redis, &self.keys, user, &toast.frame()).await?;
            sent += 1;
        }
        self.metrics.toasts.inc_by(sent as u64);
        Ok(sent)
    }

    /// Queues the push of `m` to `user`'s devices (`crate::push`).
    async fn queue_push(&self, m: &NewMessage, user: i64, titles: &Titles) -> Result<(), Error> {
        let (title, sender) = titles.of(m);
        let body = if title == sender {
            preview(&m.content)
        } else {
            preview(&format!("{sender}: {}", m.content))
        };
        let job = crate::push::PushJob {
            user_id: user,
            message_id: m.message_id,
            chat_id: m.chat_id,
            title,
            body,
            priority: if m.urgent { "urgent" } else { "normal" }.into(),
            collapse_key: format!("c{}", m.chat_id),
            sent_at: rfc3339_ms(m.created_at.timestamp_millis()),
        };
        self.metrics.push_jobs.inc();
        crate::push::enqueue(&self.redis, &self.keys, &job).await
    }

    /// Messages of `chat` toasted to `user` in the current group window,
    /// this one included.
    async fn group_count(&self, user: i64, chat: i64) -> Result<i64, Error> {
        let key = self.keys.toast_group(user, chat);
        let n: i64 = self.redis.incr(&key).await?;
        if n == 1 {
            let _: bool = self
                .redis
                .pexpire(&key, GROUP_WINDOW.as_millis() as i64, None)
                .await?;
        }
        Ok(n)
    }

    /// Members of chats whose new messages say `@here` who are connected
    /// now (empty when no message says it).
    pub async fn connected_for_here(
        &self,
        entries: &[fechatter_shared::ingest::IngestEntry],
    ) -> AppResult<std::collections::HashSet<i64>> {
        use fechatter_shared::ingest::Command;
        let mut chats: Vec<i64> = entries
            .iter()
            .filter(|e| matches!(&e.command, Command::Send { content, .. } if content.to_lowercase().contains("@here")))
            .map(|e| e.chat_id)
            .collect();
        if chats.is_empty() {
            return Ok(Default::default());
        }
        chats.sort_unstable();
        chats.dedup();
        let mut conn = self.pool.acquire().await?;
        let mut members: Vec<i64> = notification::member_names(&mut conn, &chats)
            .await?
            .into_iter()
            .map(|(_, m)| m.user_id)
            .collect();
        drop(conn);
        members.sort_unstable();
        members.dedup();
        let states = presence::current(&self.redis, &self.keys, &members).await?;
        Ok(members
            .into_iter()
            .zip(states)
            .filter(|(_, s)| s.is_some_and(|(status, _)| status != Status::Offline))
            .map(|(u, _)| u)
            .collect())
    }
}
