//! `message.send` in bulk: a run of consecutive sends in a batch is
//! committed with a fixed number of statements (about seven) however many
//! messages and chats it holds, instead of six statements per message.
//!
//! Per-chat order is preserved: within a run, each chat's messages get
//! consecutive seqs in entry order; runs never reorder around other
//! commands. Everything else keeps the single-message semantics: retries of
//! a client frame id (earlier batch or same run) answer with the original
//! ack, non-members and foreign reply targets are refused, mentions count
//! only for other members.

use std::collections::{HashMap, HashSet};

use fechatter_shared::{
    ingest::{Command, IngestEntry},
    model::Message,
    protocol, AppError, AppResult,
};
use serde_json::json;
use sqlx::PgConnection;

use fechatter_shared::store::message::COLUMNS as MESSAGE_COLUMNS;

use crate::effects::{ack, reply, Effects, TopicEvent};

/// An event a frame id of this run already produced in an earlier batch.
#[derive(sqlx::FromRow)]
struct EarlierRow {
    chat_id: i64,
    user_id: i64,
    client_id: String,
    seq: i64,
    sub: i64,
    event_seq: i64,
    message_id: i64,
    frame: String,
    message_seq: i64,
}

struct Send<'a> {
    entry: &'a IngestEntry,
    content: &'a str,
    reply_to: Option<i64>,
    mentions: Vec<i64>,
    urgent: bool,
}

/// Applies a run of sends; records outcomes, replies and topic events.
/// `here` holds the members connected now (for `@here`).
pub async fn apply_sends(
    tx: &mut PgConnection,
    run: &[&IngestEntry],
    here: &HashSet<i64>,
    fx: &mut Effects,
) -> AppResult<()> {
    let sends: Vec<Send> = run
        .iter()
        .filter_map(|e| match &e.command {
            Command::Send {
                content,
                reply_to,
                mentions,
                urgent,
            } => Some(Send {
                entry: e,
                content,
                reply_to: *reply_to,
                mentions: mentions.clone(),
                urgent: *urgent,
            }),
            _ => None,
        })
        .collect();
    if sends.is_empty() {
        return Ok(());
    }

    // 1. Retries of frames committed in an earlier batch.
    let chats: Vec<i64> = sends.iter().map(|s| s.entry.chat_id).collect();
    let refs: Vec<&str> = sends.iter().map(|s| s.entry.ref_id.as_str()).collect();
    let users: Vec<i64> = sends.iter().map(|s| s.entry.user_id).collect();
    let earlier: Vec<EarlierRow> = sqlx::query_as(
        "SELECT ev.chat_id, ev.user_id, ev.client_id, ev.seq, ev.sub, ev.event_seq, ev.message_id,
                ev.frame, m.seq AS message_seq
         FROM chat_events ev
         JOIN unnest($1::bigint[], $2::text[], $3::bigint[]) AS k(chat_id, client_id, user_id)
           ON ev.chat_id = k.chat_id AND ev.client_id = k.client_id AND ev.user_id = k.user_id
         JOIN messages m ON m.id = ev.message_id",
    )
    .bind(&chats)
    .bind(&refs)
    .bind(&users)
    .fetch_all(&mut *tx)
    .await?;
    let earlier: HashMap<(i64, i64, String), (TopicEvent, i64, i64)> = earlier
        .into_iter()
        .map(
            |EarlierRow {
                 chat_id,
                 user_id,
                 client_id: client,
                 seq,
                 sub,
                 event_seq,
                 message_id,
                 frame,
                 message_seq,
             }| {
                (
                    (chat_id, user_id, client),
                    (
                        TopicEvent {
                            chat_id,
                            seq,
                            sub,
                            event_seq,
                            frame,
                            message_id,
                            // A send's frame id only ever produced its
                            // message.new.
                            indexed: true,
                        },
                        message_id,
                        message_seq,
                    ),
                )
            },
        )
        .collect();

    // 2. Which senders, mentioned users and reply targets are valid.
    let mut pair_chats = Vec::new();
    let mut pair_users = Vec::new();
    for s in &sends {
        pair_chats.push(s.entry.chat_id);
        pair_users.push(s.entry.user_id);
        for &m in &s.mentions {
            pair_chats.push(s.entry.chat_id);
            pair_users.push(m);
        }
    }
    let members: HashSet<(i64, i64)> = sqlx::query_as::<_, (i64, i64)>(
        "SELECT m.chat_id, m.user_id FROM chat_members m
         JOIN unnest($1::bigint[], $2::bigint[]) AS k(chat_id, user_id)
           ON m.chat_id = k.chat_id AND m.user_id = k.user_id",
    )
    .bind(&pair_chats)
    .bind(&pair_users)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let parents: Vec<i64> = sends.iter().filter_map(|s| s.reply_to).collect();
    let parent_chat: HashMap<i64, i64> = if parents.is_empty() {
        HashMap::new()
    } else {
        sqlx::query_as::<_, (i64, i64)>("SELECT id, chat_id FROM messages WHERE id = ANY($1)")
            .bind(&parents)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect()
    };

    // 3. Decide each send: duplicate, refused, or new (in entry order).
    let mut fresh: Vec<(&Send, Vec<i64>)> = Vec::new();
    let mut first_in_run: HashMap<(i64, i64, &str), usize> = HashMap::new();
    let mut repeats: Vec<(&IngestEntry, usize)> = Vec::new();
    let mut republished: HashSet<(i64, i64, i64)> = HashSet::new();
    for s in &sends {
        let e = s.entry;
        if let Some((event, message_id, message_seq)) =
            earlier.get(&(e.chat_id, e.user_id, e.ref_id.clone()))
        {
            // Re-publish once, even if the retry repeats inside the run.
            if republished.insert((event.chat_id, event.seq, event.sub)) {
                fx.topic.push(event.clone());
            }
            ack(
                fx,
                e,
                json!({ "messageId": message_id, "seq": message_seq, "duplicate": true }),
            );
            fx.outcomes.push(("send", "duplicate"));
            continue;
        }
        if let Some(&i) = first_in_run.get(&(e.chat_id, e.user_id, e.ref_id.as_str())) {
            repeats.push((e, i));
            continue;
        }
        let refused = if !members.contains(&(e.chat_id, e.user_id)) {
            Some(AppError::not_found("chat not found"))
        } else if s
            .reply_to
            .is_some_and(|p| parent_chat.get(&p) != Some(&e.chat_id))
        {
            Some(AppError::validation(
                "replyTo is not a message of this chat",
            ))
        } else {
            None
        };
        if let Some(err) = refused {
            err.log();
            fx.replies
                .push(reply(e, protocol::error_frame(Some(&e.ref_id), &err)));
            fx.outcomes.push(("send", "rejected"));
            continue;
        }
        let mut mentioned: Vec<i64> = s
            .mentions
            .iter()
            .copied()
            .filter(|&m| m != e.user_id && members.contains(&(e.chat_id, m)))
            .collect();
        mentioned.sort_unstable();
        mentioned.dedup();
        first_in_run.insert((e.chat_id, e.user_id, e.ref_id.as_str()), fresh.len());
        fresh.push((s, mentioned));
    }
    if fresh.is_empty() {
        return Ok(());
    }
    // 3b. `@name`, `@channel` and `@here` in the text mention members too.
    resolve_mentions(tx, &mut fresh, here).await?;

    // 4. Reserve each chat's message seqs and event numbers in one
    // statement (every new message is one event).
    let mut per_chat: Vec<(i64, i64)> = Vec::new();
    for (s, _) in &fresh {
        match per_chat.iter_mut().find(|(c, _)| *c == s.entry.chat_id) {
            Some((_, n)) => *n += 1,
            None => per_chat.push((s.entry.chat_id, 1)),
        }
    }
    let (ids, counts): (Vec<i64>, Vec<i64>) = per_chat.iter().copied().unzip();
    let reserved: HashMap<i64, (i64, i64)> = sqlx::query_as::<_, (i64, i64, i64)>(
        "UPDATE chats c SET last_seq = c.last_seq + v.n, last_event = c.last_event + v.n,
                event_sub = 0, updated_at = now()
         FROM unnest($1::bigint[], $2::bigint[]) AS v(id, n)
         WHERE c.id = v.id RETURNING c.id, c.last_seq, c.last_event",
    )
    .bind(&ids)
    .bind(&counts)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(chat, seq, event)| (chat, (seq, event)))
    .collect();
    // The first (seq, eventSeq) of each chat's run.
    let mut next: HashMap<i64, (i64, i64)> = per_chat
        .iter()
        .map(|(chat, n)| {
            let (seq, event) = reserved.get(chat).copied().unwrap_or((*n, *n));
            (*chat, (seq - n + 1, event - n + 1))
        })
        .collect();
    let (seqs, event_seqs): (Vec<i64>, Vec<i64>) = fresh
        .iter()
        .map(|(s, _)| {
            let (seq, event) = next.get_mut(&s.entry.chat_id).expect("reserved above");
            *seq += 1;
            *event += 1;
            (*seq - 1, *event - 1)
        })
        .unzip();

    // 5. All messages in one INSERT.
    let col = |f: &dyn Fn(&Send, &Vec<i64>) -> String| {
        fresh.iter().map(|(s, m)| f(s, m)).collect::<Vec<_>>()
    };
    let chat_ids: Vec<i64> = fresh.iter().map(|(s, _)| s.entry.chat_id).collect();
    let senders: Vec<i64> = fresh.iter().map(|(s, _)| s.entry.user_id).collect();
    let contents = col(&|s, _| s.content.to_string());
    let clients = col(&|s, _| s.entry.ref_id.clone());
    let reply_tos: Vec<Option<i64>> = fresh.iter().map(|(s, _)| s.reply_to).collect();
    let mention_lists = col(&|_, m| {
        format!(
            "{{{}}}",
            m.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        )
    });
    let priorities = col(&|s, _| if s.urgent { "urgent" } else { "normal" }.to_string());
    let inserted: Vec<Message> = sqlx::query_as(&format!(
        "INSERT INTO messages (chat_id, seq, sender_id, content, client_id, reply_to, mentions, priority)
         SELECT chat_id, seq, sender_id, content, client_id, reply_to, mentions::bigint[], priority
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[])
           AS v(chat_id, seq, sender_id, content, client_id, reply_to, mentions, priority)
         RETURNING {MESSAGE_COLUMNS}"
    ))
    .bind(&chat_ids)
    .bind(&seqs)
    .bind(&senders)
    .bind(&contents)
    .bind(&clients)
    .bind(&reply_tos)
    .bind(&mention_lists)
    .bind(&priorities)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_seq: HashMap<(i64, i64), Message> = inserted
        .into_iter()
        .map(|m| ((m.chat_id, m.seq), m))
        .collect();

    // 6. Frames, events and acks, in entry order.
    let mut frames = Vec::with_capacity(fresh.len());
    let mut message_ids = Vec::with_capacity(fresh.len());
    let mut acks = Vec::with_capacity(fresh.len());
    for ((s, mentioned), (&seq, &event_seq)) in fresh.iter().zip(seqs.iter().zip(&event_seqs)) {
        let e = s.entry;
        let message = by_seq.remove(&(e.chat_id, seq)).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "inserted message {}:{seq} not returned",
                e.chat_id
            ))
        })?;
        let frame = protocol::server_frame(
            "message.new",
            &protocol::event_frame_id(e.chat_id, seq, 0),
            message.created_at,
            &json!({
                "chatId": e.chat_id,
                "eventId": format!("{seq}-0"),
                "eventSeq": event_seq,
                "message": message,
            }),
        );
        fx.topic.push(TopicEvent {
            chat_id: e.chat_id,
            seq,
            sub: 0,
            event_seq,
            frame: frame.clone(),
            message_id: message.id,
            indexed: true,
        });
        fx.mentions
            .extend(mentioned.iter().map(|&u| (u, e.chat_id)));
        if s.urgent {
            fechatter_shared::store::notification::audit_urgent(
                tx, message.id, e.chat_id, e.user_id,
            )
            .await?;
        }
        fx.messages.push(crate::effects::NewMessage {
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
        acks.push(json!({ "messageId": message.id, "seq": seq }));
        fx.outcomes.push(("send", "applied"));
    }
    let kinds = vec!["message.new"; fresh.len()];
    let zeros = vec![0i64; fresh.len()];
    sqlx::query(
        "INSERT INTO chat_events (chat_id, seq, sub, kind, client_id, user_id, message_id, frame,
                                  event_seq)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                              $6::bigint[], $7::bigint[], $8::text[], $9::bigint[])",
    )
    .bind(&chat_ids)
    .bind(&seqs)
    .bind(&zeros)
    .bind(&kinds)
    .bind(&clients)
    .bind(&senders)
    .bind(&message_ids)
    .bind(&frames)
    .bind(&event_seqs)
    .execute(&mut *tx)
    .await?;

    // 7. Senders have read their own messages (one row per sender and chat).
    let mut read: HashMap<(i64, i64), i64> = HashMap::new();
    for ((chat, user), seq) in chat_ids.iter().zip(&senders).zip(&seqs) {
        let w = read.entry((*chat, *user)).or_default();
        *w = (*w).max(*seq);
    }
    let (pairs, marks): (Vec<(i64, i64)>, Vec<i64>) = read.into_iter().unzip();
    let (w_chats, w_users): (Vec<i64>, Vec<i64>) = pairs.into_iter().unzip();
    sqlx::query(
        "UPDATE chat_members m SET last_read_seq = GREATEST(m.last_read_seq, v.seq)
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(chat_id, user_id, seq)
         WHERE m.chat_id = v.chat_id AND m.user_id = v.user_id",
    )
    .bind(&w_chats)
    .bind(&w_users)
    .bind(&marks)
    .execute(&mut *tx)
    .await?;
    // 8. ... so their other devices get the badge (0 unread, unless later
    // messages of others are in this batch too).
    for b in fechatter_shared::store::badge::of_members(tx, &w_chats, &w_users).await? {
        fx.badges.push(crate::effects::Badge {
            user_id: b.user_id,
            chat_id: b.chat_id,
            unread: b.unread,
            mentions: b.mentions,
        });
    }

    for ((s, _), extra) in fresh.iter().zip(&acks) {
        ack(fx, s.entry, extra.clone());
    }
    // Repeats of a frame id inside this run get the first one's ack.
    for (e, i) in repeats {
        let mut extra = acks[i].clone();
        extra["duplicate"] = json!(true);
        ack(fx, e, extra);
        fx.outcomes.push(("send", "duplicate"));
    }
    Ok(())
}

/// Replaces each send's mentions by those its text names (`@name`,
/// `@channel`, `@here`) plus the client's checked hints
/// (`fechatter_shared::mention`). Only chats with an `@` in a message are
/// read.
async fn resolve_mentions(
    tx: &mut PgConnection,
    fresh: &mut [(&Send<'_>, Vec<i64>)],
    here: &HashSet<i64>,
) -> AppResult<()> {
    let mut chats: Vec<i64> = fresh
        .iter()
        .filter(|(s, _)| s.content.contains('@'))
        .map(|(s, _)| s.entry.chat_id)
        .collect();
    if chats.is_empty() {
        return Ok(());
    }
    chats.sort_unstable();
    chats.dedup();
    let mut members: HashMap<i64, Vec<fechatter_shared::mention::Member>> = HashMap::new();
    for (chat, m) in fechatter_shared::store::notification::member_names(tx, &chats).await? {
        members.entry(chat).or_default().push(m);
    }
    for (s, mentioned) in fresh.iter_mut().filter(|(s, _)| s.content.contains('@')) {
        let of_chat = members
            .get(&s.entry.chat_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        *mentioned = fechatter_shared::mention::resolve(
            s.content,
            of_chat,
            &|u| here.contains(&u),
            mentioned,
            s.entry.user_id,
        );
    }
    Ok(())
}
