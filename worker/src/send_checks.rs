//! Steps 1 to 3 of committing a run of sends ([`crate::send_batch`]):
//! which sends are retries of frames already committed, which are refused
//! (not a member, a reply target in another chat), and whom each new one
//! mentions. Deciding is a pure function of what steps 1 and 2 read, so
//! the rules stay in one place apart from the statements that write.

use std::collections::{HashMap, HashSet};

use fechatter_shared::{
    ingest::{Command, IngestEntry},
    protocol::{self, SendAck},
    store::{self, event::EarlierSend},
    AppError, AppResult,
};
use sqlx::PgConnection;

use crate::effects::{ack, reply, Effects, TopicEvent};

/// One `message.send` of the run.
pub(crate) struct Send<'a> {
    pub entry: &'a IngestEntry,
    pub content: &'a str,
    pub reply_to: Option<i64>,
    pub mentions: Vec<i64>,
    pub urgent: bool,
}

/// A send's idempotency key: (chat, user, client frame id).
type Key<'a> = (i64, i64, &'a str);

/// The sends of a run, in entry order.
pub(crate) fn sends_of<'a>(run: &[&'a IngestEntry]) -> Vec<Send<'a>> {
    run.iter()
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
        .collect()
}

/// Step 2's answers: which (chat, user) pairs are memberships, with
/// whether each may post (false for a plain member of a read-only
/// channel), and the chat of each reply target.
pub(crate) struct Validity {
    members: HashMap<(i64, i64), bool>,
    parent_chat: HashMap<i64, i64>,
}

/// Step 3's answer: the sends to commit (with their checked mentions) and
/// the repeats of a frame id inside the run (index into `fresh`).
pub(crate) struct Decided<'s, 'a> {
    pub fresh: Vec<(&'s Send<'a>, Vec<i64>)>,
    pub repeats: Vec<(&'a IngestEntry, usize)>,
}

/// Step 1: what each already committed frame id produced, by its key.
pub(crate) async fn earlier(
    tx: &mut PgConnection,
    sends: &[Send<'_>],
) -> AppResult<HashMap<(i64, i64, String), EarlierSend>> {
    let chats: Vec<i64> = sends.iter().map(|s| s.entry.chat_id).collect();
    let refs: Vec<&str> = sends.iter().map(|s| s.entry.ref_id.as_str()).collect();
    let users: Vec<i64> = sends.iter().map(|s| s.entry.user_id).collect();
    Ok(store::event::earlier_sends(tx, &chats, &refs, &users)
        .await?
        .into_iter()
        .map(|e| ((e.chat_id, e.user_id, e.client_id.clone()), e))
        .collect())
}

/// Step 2: memberships of senders and mentioned users, chats of reply
/// targets.
pub(crate) async fn validity(tx: &mut PgConnection, sends: &[Send<'_>]) -> AppResult<Validity> {
    let mut chats = Vec::new();
    let mut users = Vec::new();
    for s in sends {
        for user in std::iter::once(s.entry.user_id).chain(s.mentions.iter().copied()) {
            chats.push(s.entry.chat_id);
            users.push(user);
        }
    }
    let members = store::chat::memberships_among(tx, &chats, &users).await?;
    let parents: Vec<i64> = sends.iter().filter_map(|s| s.reply_to).collect();
    let parent_chat = store::message::chats_of(tx, &parents).await?;
    Ok(Validity {
        members: members
            .into_iter()
            .map(|m| ((m.chat, m.user), m.may_post))
            .collect(),
        parent_chat: parent_chat.into_iter().collect(),
    })
}

/// Step 3: answers retries of earlier batches (re-publishing their event
/// once) and refused sends; returns the new ones and the repeats.
pub(crate) fn decide<'s, 'a>(
    sends: &'s [Send<'a>],
    earlier: &HashMap<(i64, i64, String), EarlierSend>,
    v: &Validity,
    fx: &mut Effects,
) -> Decided<'s, 'a> {
    let mut out = Decided {
        fresh: Vec::new(),
        repeats: Vec::new(),
    };
    let mut first_in_run: HashMap<Key, usize> = HashMap::new();
    let mut republished: HashSet<(i64, i64, i64)> = HashSet::new();
    for s in sends {
        let e = s.entry;
        if let Some(done) = earlier.get(&(e.chat_id, e.user_id, e.ref_id.clone())) {
            // Re-publish once, even if the retry repeats inside the run.
            if republished.insert((done.chat_id, done.seq, done.sub)) {
                fx.topic.push(republish(done));
            }
            let original = SendAck {
                message_id: done.message_id,
                seq: done.message_seq,
                duplicate: true,
            };
            ack(fx, e, original);
            fx.outcomes.push(("send", "duplicate"));
            continue;
        }
        if let Some(&i) = first_in_run.get(&(e.chat_id, e.user_id, e.ref_id.as_str())) {
            out.repeats.push((e, i));
            continue;
        }
        if let Some(err) = refusal(s, v) {
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
            .filter(|&m| m != e.user_id && v.members.contains_key(&(e.chat_id, m)))
            .collect();
        mentioned.sort_unstable();
        mentioned.dedup();
        first_in_run.insert((e.chat_id, e.user_id, e.ref_id.as_str()), out.fresh.len());
        out.fresh.push((s, mentioned));
    }
    out
}

/// The committed event of an earlier batch, to publish again.
fn republish(done: &EarlierSend) -> TopicEvent {
    TopicEvent {
        chat_id: done.chat_id,
        seq: done.seq,
        sub: done.sub,
        event_seq: done.event_seq,
        frame: done.frame.clone(),
        message_id: done.message_id,
        // A send's frame id only ever produced its message.new.
        indexed: true,
        // Re-published, a no-op where the stream has it: no rate to count.
        accepted_ms: 0,
    }
}

/// Why a send is refused, if it is.
fn refusal(s: &Send<'_>, v: &Validity) -> Option<AppError> {
    let e = s.entry;
    let Some(&may_post) = v.members.get(&(e.chat_id, e.user_id)) else {
        return Some(AppError::not_found("chat not found"));
    };
    if !may_post {
        return Some(AppError::forbidden(
            "this channel is read-only: only its owner and admins post",
        ));
    }
    let foreign_parent = s
        .reply_to
        .is_some_and(|p| v.parent_chat.get(&p) != Some(&e.chat_id));
    foreign_parent.then(|| AppError::validation("replyTo is not a message of this chat"))
}

/// Replaces each send's mentions by those its text names (`@name`,
/// `@channel`, `@here`) plus the client's checked hints
/// (`fechatter_shared::mention`). Only chats with an `@` in a message are
/// read.
pub(crate) async fn resolve_mentions(
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
    for (chat, m) in store::notification::member_names(tx, &chats).await? {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn send(
        chat: i64,
        user: i64,
        id: &str,
        reply_to: Option<i64>,
        mentions: &[i64],
    ) -> IngestEntry {
        IngestEntry {
            chat_id: chat,
            user_id: user,
            gateway: "gw1".into(),
            conn: 1,
            ref_id: id.into(),
            command: Command::Send {
                content: "hi".into(),
                reply_to,
                mentions: mentions.to_vec(),
                urgent: false,
            },
            trace_id: String::new(),
            accepted_ms: 0,
        }
    }

    fn committed(chat: i64, user: i64, id: &str) -> EarlierSend {
        EarlierSend {
            chat_id: chat,
            user_id: user,
            client_id: id.into(),
            seq: 4,
            sub: 0,
            event_seq: 9,
            message_id: 77,
            frame: "{}".into(),
            message_seq: 4,
        }
    }

    #[test]
    fn retries_refusals_repeats_and_mentions() {
        let entries = [
            send(1, 10, "a", None, &[11, 10, 12, 11]), // new; 12 is no member
            send(1, 10, "old", None, &[]),             // committed earlier
            send(1, 10, "old", None, &[]),             // ... and retried again
            send(1, 99, "b", None, &[]),               // sender not a member
            send(1, 10, "c", Some(500), &[]),          // reply into chat 2
            send(1, 10, "a", None, &[]),               // repeat of "a" in the run
            send(1, 11, "d", Some(501), &[]),          // reply inside chat 1
            send(3, 12, "e", None, &[]),               // member of read-only chat 3
        ];
        let run: Vec<&IngestEntry> = entries.iter().collect();
        let sends = sends_of(&run);
        let earlier = HashMap::from([((1, 10, "old".to_string()), committed(1, 10, "old"))]);
        let v = Validity {
            members: HashMap::from([((1, 10), true), ((1, 11), true), ((3, 12), false)]),
            parent_chat: HashMap::from([(500, 2), (501, 1)]),
        };
        let mut fx = Effects::default();
        let d = decide(&sends, &earlier, &v, &mut fx);

        let fresh: Vec<(&str, Vec<i64>)> = d
            .fresh
            .iter()
            .map(|(s, m)| (s.entry.ref_id.as_str(), m.clone()))
            .collect();
        assert_eq!(fresh, vec![("a", vec![11]), ("d", vec![])]);
        let repeats: Vec<(&str, usize)> = d
            .repeats
            .iter()
            .map(|(e, i)| (e.ref_id.as_str(), *i))
            .collect();
        assert_eq!(repeats, vec![("a", 0)]);
        assert_eq!(fx.topic.len(), 1, "an earlier event is re-published once");
        assert_eq!(fx.topic[0].event_seq, 9);
        let outcomes: Vec<&str> = fx.outcomes.iter().map(|o| o.1).collect();
        assert_eq!(
            outcomes,
            ["duplicate", "duplicate", "rejected", "rejected", "rejected"]
        );
        let answers: Vec<serde_json::Value> = fx
            .replies
            .iter()
            .map(|r| serde_json::from_str(&r.frame).unwrap())
            .collect();
        assert_eq!(answers[0]["payload"]["duplicate"], true);
        assert_eq!(answers[0]["payload"]["messageId"], 77);
        assert_eq!(answers[2]["payload"]["code"], "not_found");
        assert_eq!(answers[3]["payload"]["code"], "validation_failed");
        assert_eq!(answers[4]["payload"]["code"], "forbidden");
    }
}
