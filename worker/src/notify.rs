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
    presence,
    protocol::{preview, rfc3339_ms, NotificationToast},
    store::notification::{self, RecipientRow},
    user_stream, AppResult,
};
use fred::prelude::*;

use crate::{
    effects::NewMessage,
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

/// One alert to send: the message and its recipient.
type Due<'a> = (&'a NewMessage, i64);

/// The evaluator's verdicts for a batch: every (message, recipient) to
/// alert, in message order.
fn verdicts<'a>(
    messages: &'a [NewMessage],
    titles: &Titles,
    rows: &[RecipientRow],
) -> Vec<Due<'a>> {
    let mut due = Vec::new();
    for m in messages {
        for r in alerted(m, titles.direct(m.chat_id), rows) {
            due.push((m, r.user_id));
        }
    }
    due
}

/// Where each alert goes (`evaluator::route`): (toasts, pushes).
fn routes<'a>(
    due: Vec<Due<'a>>,
    conns: &HashMap<i64, (usize, usize)>,
) -> (Vec<Due<'a>>, Vec<Due<'a>>) {
    let (mut toasts, mut pushes) = (Vec::new(), Vec::new());
    for (m, user) in due {
        let (open, active) = conns.get(&user).copied().unwrap_or((0, 0));
        let to = evaluator::route(true, open, active);
        if to.push {
            pushes.push((m, user));
        }
        if to.toast {
            toasts.push((m, user));
        }
    }
    (toasts, pushes)
}

/// The grouping counters a batch's toasts need: one per (user, chat),
/// raised by the number of toasts of the pair, and for each toast (in
/// order) its pair's index and its place among the pair's toasts.
#[derive(Debug, PartialEq, Eq)]
struct GroupSlots {
    /// ((user, chat), toasts of the pair in this batch).
    pairs: Vec<((i64, i64), i64)>,
    /// Per toast: (index into `pairs`, 0-based place within the pair).
    slots: Vec<(usize, i64)>,
}

impl GroupSlots {
    fn of(toasts: &[Due<'_>]) -> Self {
        let mut index: HashMap<(i64, i64), usize> = HashMap::new();
        let mut pairs: Vec<((i64, i64), i64)> = Vec::new();
        let slots = toasts
            .iter()
            .map(|(m, user)| {
                let i = *index.entry((*user, m.chat_id)).or_insert_with(|| {
                    pairs.push(((*user, m.chat_id), 0));
                    pairs.len() - 1
                });
                let place = pairs[i].1;
                pairs[i].1 += 1;
                (i, place)
            })
            .collect();
        Self { pairs, slots }
    }

    /// Each toast's `count`, given each pair's counter after the raise.
    fn counts(&self, totals: &[i64]) -> Vec<i64> {
        self.slots
            .iter()
            .map(|&(i, place)| totals[i] - self.pairs[i].1 + 1 + place)
            .collect()
    }
}

/// The toast frame for `m`, the `count`th message of its group.
fn toast(m: &NewMessage, count: i64, titles: &Titles) -> NotificationToast {
    let (title, sender) = titles.of(m);
    let body = match count {
        1 if title == sender => preview(&m.content),
        1 => preview(&format!("{sender}: {}", m.content)),
        n => format!("{n} new messages in {title}"),
    };
    NotificationToast {
        id: format!("t{}", m.message_id),
        group_id: format!("c{}", m.chat_id),
        title,
        body,
        chat_id: m.chat_id,
        message_id: m.message_id,
        priority: if m.urgent { "urgent" } else { "normal" }.into(),
        count,
        timestamp: rfc3339_ms(m.created_at.timestamp_millis()),
    }
}

impl Worker {
    /// Sends the toasts and queues the pushes of a committed batch's new
    /// messages; returns how many toasts.
    pub async fn toasts(&self, messages: &[NewMessage]) -> AppResult<usize> {
        if messages.is_empty() {
            return Ok(0);
        }
        let timer = self.metrics.evaluator_seconds.start_timer();
        // 1. Titles and the settings of whoever can be alerted.
        let (titles, rows) = self.facts(messages).await?;
        // 2. The evaluator's verdicts.
        let due = verdicts(messages, &titles, &rows);
        // 3. Connected recipients get toasts; those without an active
        // connection (none, or all idle) get a push.
        let mut users: Vec<i64> = due.iter().map(|(_, u)| *u).collect();
        users.sort_unstable();
        users.dedup();
        let conns = presence::connections(&self.redis, &self.keys, &users).await?;
        let by_user: HashMap<i64, (usize, usize)> = users.into_iter().zip(conns).collect();
        let (toasts, pushes) = routes(due, &by_user);
        timer.observe_duration();
        // 4. Both at once, each user's toasts in one append.
        let (sent, ()) = futures::try_join!(
            self.send_toasts(&toasts, &titles),
            self.queue_pushes(&pushes, &titles)
        )?;
        self.metrics.toasts.inc_by(sent as u64);
        Ok(sent)
    }

    /// Chat titles and the notification settings of every member who can
    /// be alerted by `messages`.
    async fn facts(&self, messages: &[NewMessage]) -> AppResult<(Titles, Vec<RecipientRow>)> {
        let mut chats: Vec<i64> = messages.iter().map(|m| m.chat_id).collect();
        chats.sort_unstable();
        chats.dedup();
        let senders: Vec<i64> = messages.iter().map(|m| m.sender_id).collect();
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
                || messages
                    .iter()
                    .any(|m| m.chat_id == c && (m.urgent || !m.mentions.is_empty()))
        });
        let rows = notification::recipients(&mut conn, &every, &some).await?;
        Ok((titles, rows))
    }

    /// Counts each toast into its group, then appends each user's toasts
    /// to their stream in one call, every user at once (one pipelined
    /// connection). Returns how many toasts went out.
    async fn send_toasts(&self, toasts: &[Due<'_>], titles: &Titles) -> Result<usize, Error> {
        let groups = GroupSlots::of(toasts);
        let totals = futures::future::try_join_all(
            groups
                .pairs
                .iter()
                .map(|&((user, chat), n)| self.raise_group(user, chat, n)),
        )
        .await?;
        let mut frames: HashMap<i64, Vec<String>> = HashMap::new();
        for ((m, user), count) in toasts.iter().zip(groups.counts(&totals)) {
            frames
                .entry(*user)
                .or_default()
                .push(toast(m, count, titles).frame());
        }
        futures::future::try_join_all(frames.iter().map(|(user, frames)| {
            let frames: Vec<&str> = frames.iter().map(String::as_str).collect();
            async move { user_stream::publish_all(&self.redis, &self.keys, *user, &frames).await }
        }))
        .await?;
        Ok(toasts.len())
    }

    /// Raises `user`'s group counter for `chat` by `n` toasts; a counter
    /// that starts here lives [`GROUP_WINDOW`]. Returns the new value.
    async fn raise_group(&self, user: i64, chat: i64, n: i64) -> Result<i64, Error> {
        let key = self.keys.toast_group(user, chat);
        let total: i64 = self.redis.incr_by(&key, n).await?;
        if total == n {
            let _: bool = self
                .redis
                .pexpire(&key, GROUP_WINDOW.as_millis() as i64, None)
                .await?;
        }
        Ok(total)
    }

    /// Queues the push of each (message, user) (`crate::push`), all at once.
    async fn queue_pushes(&self, pushes: &[Due<'_>], titles: &Titles) -> Result<(), Error> {
        futures::future::try_join_all(
            pushes
                .iter()
                .map(|(m, user)| self.queue_push(m, *user, titles)),
        )
        .await?;
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(chat_id: i64, message_id: i64) -> NewMessage {
        NewMessage {
            chat_id,
            message_id,
            sender_id: 1,
            content: format!("m{message_id}"),
            mentions: vec![],
            urgent: false,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_batch_raises_each_group_once_and_numbers_its_toasts() {
        let (a, b, c) = (message(10, 1), message(10, 2), message(20, 3));
        // User 7 gets all three (two in chat 10), user 8 the second.
        let toasts = [(&a, 7), (&b, 7), (&b, 8), (&c, 7)];
        let groups = GroupSlots::of(&toasts);
        assert_eq!(groups.pairs, vec![((7, 10), 2), ((8, 10), 1), ((7, 20), 1)]);
        // Counters after the raise: (7,10) opened now, (8,10) had 4
        // before, (7,20) opened now.
        assert_eq!(groups.counts(&[2, 5, 1]), vec![1, 2, 5, 1]);
    }

    #[test]
    fn the_body_names_the_sender_then_counts() {
        let titles = Titles {
            chats: HashMap::from([(10, ("group".to_string(), None))]),
            senders: HashMap::from([(1, "Ada".to_string())]),
        };
        let m = message(10, 1);
        assert_eq!(toast(&m, 1, &titles).body, "m1");
        assert_eq!(toast(&m, 3, &titles).body, "3 new messages in Ada");
        assert_eq!(toast(&m, 3, &titles).group_id, "c10");
    }
}
