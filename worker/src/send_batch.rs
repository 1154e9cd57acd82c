//! `message.send` in bulk: a run of consecutive sends in a batch is
//! committed with a fixed number of statements (about five) however many
//! messages and chats it holds, instead of six statements per message.
//!
//! Per-chat order is preserved: within a run, each chat's messages get
//! consecutive seqs in entry order; runs never reorder around other
//! commands. Everything else keeps the single-message semantics: retries of
//! a client frame id (earlier batch or same run) answer with the original
//! ack, non-members and foreign reply targets are refused, mentions count
//! only for other members.
//!
//! [`apply_sends`] runs the numbered steps, one function each: steps 1-3
//! (retries, refusals, mentions) are [`crate::send_checks`], the writes
//! are here; the SQL lives in `fechatter_shared::store` (message, event,
//! chat, badge).

use std::collections::{HashMap, HashSet};

use fechatter_shared::{
    ingest::IngestEntry,
    model::Message,
    protocol::{MessageNew, SendAck},
    store, AppError, AppResult,
};
use sqlx::PgConnection;

use crate::{
    effects::{ack, Effects, NewMessage, TopicEvent},
    send_checks::{decide, earlier, resolve_mentions, sends_of, validity, Decided, Send},
};

/// Applies a run of sends; records outcomes, replies and topic events.
/// `here` holds the members connected now (for `@here`).
pub async fn apply_sends(
    tx: &mut PgConnection,
    run: &[&IngestEntry],
    here: &HashSet<i64>,
    fx: &mut Effects,
) -> AppResult<()> {
    let sends = sends_of(run);
    if sends.is_empty() {
        return Ok(());
    }
    // 1. Retries of frames committed in an earlier batch.
    let earlier = earlier(tx, &sends).await?;
    // 2. Which senders, mentioned users and reply targets are valid.
    let validity = validity(tx, &sends).await?;
    // 3. Decide each send: duplicate, refused, or new (in entry order).
    let Decided { mut fresh, repeats } = decide(&sends, &earlier, &validity, fx);
    if fresh.is_empty() {
        return Ok(());
    }
    // 3b. `@name`, `@channel` and `@here` in the text mention members too.
    resolve_mentions(tx, &mut fresh, here).await?;
    // 4-5. Reserve each chat's message seqs and event numbers and insert
    // all messages, in one statement.
    let Inserted {
        seqs,
        event_seqs,
        mut inserted,
    } = insert(tx, &fresh).await?;
    // 6. Frames, events and acks, in entry order.
    let acks = announce(tx, &fresh, (&seqs, &event_seqs), &mut inserted, fx).await?;
    // 7. Senders have read their own messages; 8. their other devices get
    // the badge.
    mark_read(tx, &fresh, &seqs, fx).await?;
    // 9. The answers: each send's ack; repeats inside the run get the
    // first one's, marked duplicate.
    for ((s, _), a) in fresh.iter().zip(&acks) {
        ack(fx, s.entry, a);
    }
    for (e, i) in repeats {
        let first = SendAck {
            duplicate: true,
            ..acks[i]
        };
        ack(fx, e, first);
        fx.outcomes.push(("send", "duplicate"));
    }
    Ok(())
}

/// What steps 4-5 made: each new message's seq and eventSeq (in `fresh`
/// order), and the rows by (chat, seq).
struct Inserted {
    seqs: Vec<i64>,
    event_seqs: Vec<i64>,
    inserted: HashMap<(i64, i64), Message>,
}

/// Steps 4-5: each new message's (seq, eventSeq), consecutive per chat in
/// entry order (every new message is one event), reserved while all
/// messages are inserted in one statement.
async fn insert(tx: &mut PgConnection, fresh: &[(&Send<'_>, Vec<i64>)]) -> AppResult<Inserted> {
    let entries = || fresh.iter().map(|(s, _)| s.entry);
    let chat_ids: Vec<i64> = entries().map(|e| e.chat_id).collect();
    let ranks = ranks_in_chat(&chat_ids);
    let senders: Vec<i64> = entries().map(|e| e.user_id).collect();
    let client_ids: Vec<String> = entries().map(|e| e.ref_id.clone()).collect();
    let contents: Vec<String> = fresh.iter().map(|(s, _)| s.content.to_string()).collect();
    let reply_tos: Vec<Option<i64>> = fresh.iter().map(|(s, _)| s.reply_to).collect();
    let mentions: Vec<Vec<i64>> = fresh.iter().map(|(_, m)| m.clone()).collect();
    let urgent: Vec<bool> = fresh.iter().map(|(s, _)| s.urgent).collect();
    let new = store::message::NewMessages {
        chat_ids: &chat_ids,
        ranks: &ranks,
        senders: &senders,
        contents: &contents,
        client_ids: &client_ids,
        reply_tos: &reply_tos,
        mentions: &mentions,
        urgent: &urgent,
    };
    let rows = store::message::insert_numbered(tx, &new).await?;
    let before: HashMap<i64, (i64, i64)> = rows
        .iter()
        .map(|r| (r.message.chat_id, (r.seq_before, r.event_before)))
        .collect();
    let mut seqs = Vec::with_capacity(fresh.len());
    let mut event_seqs = Vec::with_capacity(fresh.len());
    for (chat, rank) in chat_ids.iter().zip(&ranks) {
        let (seq, event) = before.get(chat).copied().ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("chat {chat}: no numbers reserved"))
        })?;
        seqs.push(seq + rank);
        event_seqs.push(event + rank);
    }
    let inserted = rows
        .into_iter()
        .map(|r| ((r.message.chat_id, r.message.seq), r.message))
        .collect();
    Ok(Inserted {
        seqs,
        event_seqs,
        inserted,
    })
}

/// Each element's place among the elements of its chat so far (1, 2, ...).
fn ranks_in_chat(chat_ids: &[i64]) -> Vec<i64> {
    let mut seen: HashMap<i64, i64> = HashMap::new();
    chat_ids
        .iter()
        .map(|c| {
            let n = seen.entry(*c).or_insert(0);
            *n += 1;
            *n
        })
        .collect()
}

/// Step 6: each new message's frame, topic event, mentions, urgent audit
/// and notification input, in entry order; logs the events in one
/// statement and returns each send's ack.
async fn announce(
    tx: &mut PgConnection,
    fresh: &[(&Send<'_>, Vec<i64>)],
    (seqs, event_seqs): (&[i64], &[i64]),
    inserted: &mut HashMap<(i64, i64), Message>,
    fx: &mut Effects,
) -> AppResult<Vec<SendAck>> {
    let mut frames = Vec::with_capacity(fresh.len());
    let mut message_ids = Vec::with_capacity(fresh.len());
    let mut acks = Vec::with_capacity(fresh.len());
    for ((s, mentioned), (&seq, &event_seq)) in fresh.iter().zip(seqs.iter().zip(event_seqs)) {
        let e = s.entry;
        let message = inserted.remove(&(e.chat_id, seq)).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "inserted message {}:{seq} not returned",
                e.chat_id
            ))
        })?;
        let frame = MessageNew::of(&message, event_seq).frame();
        fx.topic.push(TopicEvent {
            chat_id: e.chat_id,
            seq,
            sub: 0,
            event_seq,
            frame: frame.clone(),
            message_id: message.id,
            indexed: true,
            accepted_ms: e.accepted_ms,
        });
        fx.mentions
            .extend(mentioned.iter().map(|&u| (u, e.chat_id)));
        if s.urgent {
            store::notification::audit_urgent(tx, message.id, e.chat_id, e.user_id).await?;
        }
        fx.messages.push(NewMessage {
            chat_id: e.chat_id,
            message_id: message.id,
            sender_id: e.user_id,
            content: s.content.to_string(),
            mentions: mentioned.clone(),
            urgent: s.urgent,
            created_at: message.created_at,
        });
        frames.push(frame);
        message_ids.push(message.id);
        acks.push(SendAck {
            message_id: message.id,
            seq,
            duplicate: false,
        });
        fx.outcomes.push(("send", "applied"));
    }
    let chat_ids: Vec<i64> = fresh.iter().map(|(s, _)| s.entry.chat_id).collect();
    let senders: Vec<i64> = fresh.iter().map(|(s, _)| s.entry.user_id).collect();
    let client_ids: Vec<String> = fresh.iter().map(|(s, _)| s.entry.ref_id.clone()).collect();
    let events = store::event::NewMessageEvents {
        chat_ids: &chat_ids,
        seqs,
        event_seqs,
        client_ids: &client_ids,
        senders: &senders,
        message_ids: &message_ids,
        frames: &frames,
    };
    store::event::insert_message_news(tx, &events).await?;
    Ok(acks)
}

/// Steps 7 and 8, in one statement: each sender's watermark in each chat
/// moves to their newest message of the run (one row per sender and
/// chat), and their other devices get the chat's badge (0 unread, unless
/// later messages of others are in this batch too). A sender who had read
/// everything before their first message of the batch and still has
/// nothing unread gets no badge: their devices already show 0 for the
/// chat.
async fn mark_read(
    tx: &mut PgConnection,
    fresh: &[(&Send<'_>, Vec<i64>)],
    seqs: &[i64],
    fx: &mut Effects,
) -> AppResult<()> {
    // (chat, sender) -> (first seq, newest seq) of the sender's messages.
    let mut runs: HashMap<(i64, i64), (i64, i64)> = HashMap::new();
    for ((s, _), &seq) in fresh.iter().zip(seqs) {
        let run = runs
            .entry((s.entry.chat_id, s.entry.user_id))
            .or_insert((seq, seq));
        *run = (run.0.min(seq), run.1.max(seq));
    }
    let (pairs, marks): (Vec<(i64, i64)>, Vec<i64>) = runs
        .iter()
        .map(|(&pair, &(_, newest))| (pair, newest))
        .unzip();
    let (chats, users): (Vec<i64>, Vec<i64>) = pairs.into_iter().unzip();
    for r in store::badge::read_up_to(tx, &chats, &users, &marks).await? {
        let b = r.counts;
        // Caught up: nothing unread before their first message of the run.
        let caught_up = runs
            .get(&(b.chat_id, b.user_id))
            .is_some_and(|&(first, _)| r.before + 1 == first);
        if caught_up && b.unread == 0 && b.mentions == 0 {
            continue;
        }
        fx.badges.push(b);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ranks_in_chat;

    #[test]
    fn ranks_count_within_each_chat_in_order() {
        assert_eq!(ranks_in_chat(&[7, 7, 3, 7, 3]), vec![1, 2, 1, 3, 2]);
        assert!(ranks_in_chat(&[]).is_empty());
    }
}
