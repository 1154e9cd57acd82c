//! Message traffic scenarios: `fanout` (M senders into one channel of N
//! members) and `chats` (many small group chats, one sender each), plus the
//! same fan-out against the bare baseline. One engine runs them all:
//! connect every member, send on a fixed schedule, drain, then audit every
//! delivery against every ack.

use std::{
    collections::{HashMap, HashSet},
    io::{IsTerminal, Write},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use anyhow::{Context, Result};
use futures::{stream, StreamExt};
use serde_json::json;
use tokio::{sync::watch, time::Instant};

use crate::{
    client::{Account, Api, Join},
    conn::{self, Counters, ReaderStats},
    report::{histogram, Audit, Percentiles, Report},
    target::Target,
};

/// Who is in which chat and who sends where.
pub struct Plan {
    pub name: String,
    pub params: serde_json::Value,
    /// Token of each connection (one connection per entry).
    pub tokens: Vec<String>,
    /// Chat id -> member connection indexes.
    pub chats: Vec<(i64, Vec<usize>)>,
    /// (connection index, chat id) of each sender.
    pub senders: Vec<(usize, i64)>,
    pub rate_per_sender: f64,
    pub duration: Duration,
    /// Longest wait after sending stops for owed deliveries.
    pub drain: Duration,
    /// Shortest wait after sending stops (summaries come once a second).
    pub settle: Duration,
    /// Connections that show (`chat.focus`) their first chat: they get
    /// every event of it even in summary mode, and no badges for it.
    pub focused: Vec<usize>,
    /// Told once every connection is open; sending starts when it answers
    /// (write-cost reads its counters in between).
    pub gate: Option<Gate>,
}

/// A pause between connecting and sending.
pub struct Gate {
    pub connected: tokio::sync::oneshot::Sender<()>,
    pub resume: tokio::sync::oneshot::Receiver<()>,
}

/// Signs up `n` users of one new workspace: the first creates it, the
/// others join with the first one's invite, 32 at a time.
pub async fn signup_many(api: &Api, n: usize, tag: &str) -> Result<Vec<Account>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let email = |i: usize| format!("lt{i}-{tag}@load.test");
    let owner = api
        .signup("lt0", &email(0), &Join::New(format!("load-{tag}")))
        .await?;
    let invite = Join::Invite(api.invite(&owner).await?);
    let rest: Vec<Result<Account>> = stream::iter(1..n)
        .map(|i| {
            let (api, invite, email) = (api.clone(), &invite, email(i));
            async move { api.signup(&format!("lt{i}"), &email, invite).await }
        })
        .buffered(32)
        .collect()
        .await;
    std::iter::once(Ok(owner)).chain(rest).collect()
}

/// `fanout`: one private channel of `members`, the first `senders` send.
pub async fn fanout_plan(
    target: &Target,
    members: usize,
    senders: usize,
    rate: f64,
    duration: Duration,
) -> Result<Plan> {
    let params = json!({ "members": members, "senders": senders, "ratePerSender": rate, "durationSecs": duration.as_secs_f64() });
    let (tokens, chat) = if target.bare {
        (vec![String::new(); members], 1)
    } else {
        let api = Api::new(&target.api);
        let accounts = signup_many(&api, members, &tag())
            .await
            .context("signing up users")?;
        let others: Vec<i64> = accounts[1..].iter().map(|a| a.id).collect();
        let chat = api
            .create_chat(&accounts[0], "private_channel", Some("load"), &others)
            .await?;
        (accounts.into_iter().map(|a| a.token).collect(), chat)
    };
    Ok(Plan {
        name: if target.bare {
            "baseline".into()
        } else {
            "fanout".into()
        },
        params,
        tokens,
        chats: vec![(chat, (0..members).collect())],
        senders: (0..senders.min(members)).map(|i| (i, chat)).collect(),
        rate_per_sender: rate,
        duration,
        drain: Duration::from_secs(10),
        settle: Duration::ZERO,
        focused: Vec::new(),
        gate: None,
    })
}

/// `chats`: `chats` group chats of `size` members drawn from `users`
/// users; one member of each sends.
pub async fn chats_plan(
    target: &Target,
    users: usize,
    chats: usize,
    size: usize,
    rate: f64,
    duration: Duration,
) -> Result<Plan> {
    chats_plan_of(target, "group", users, chats, size, rate, duration).await
}

/// [`chats_plan`] with chats of type `kind`: `group`, or
/// `private_channel` (named `load-<n>`; at the default notification level
/// its messages alert no one, where every group message alerts everyone).
pub async fn chats_plan_of(
    target: &Target,
    kind: &str,
    users: usize,
    chats: usize,
    size: usize,
    rate: f64,
    duration: Duration,
) -> Result<Plan> {
    anyhow::ensure!(size >= 3 && size <= users, "chat size must be 3..=users");
    let params = json!({ "users": users, "chats": chats, "chatType": kind, "chatSize": size, "ratePerChat": rate, "durationSecs": duration.as_secs_f64() });
    let api = Api::new(&target.api);
    let accounts = signup_many(&api, users, &tag()).await?;
    let mut plan_chats = Vec::new();
    let mut senders = Vec::new();
    for c in 0..chats {
        // Deterministic spread: chat c takes `size` consecutive users.
        let members: Vec<usize> = (0..size).map(|k| (c * size / 2 + k) % users).collect();
        let others: Vec<i64> = members[1..].iter().map(|&i| accounts[i].id).collect();
        let name = (kind != "group").then(|| format!("load-{c}"));
        let id = api
            .create_chat(&accounts[members[0]], kind, name.as_deref(), &others)
            .await?;
        senders.push((members[c % size], id));
        plan_chats.push((id, members));
    }
    // A user sends to at most one chat: keep the first assignment.
    let mut seen = HashSet::new();
    senders.retain(|(conn, _)| seen.insert(*conn));
    Ok(Plan {
        name: "chats".into(),
        params,
        tokens: accounts.into_iter().map(|a| a.token).collect(),
        chats: plan_chats,
        senders,
        rate_per_sender: rate,
        duration,
        drain: Duration::from_secs(10),
        settle: Duration::ZERO,
        focused: Vec::new(),
        gate: None,
    })
}

pub fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

/// Sends `chat.focus` for the first chat of each focused connection (its
/// ack is not a send's: the readers ignore it).
async fn focus(plan: &Plan, sinks: &mut [Option<conn::Sink>]) -> Result<()> {
    use futures::SinkExt;
    for &i in &plan.focused {
        let Some(chat) = plan.chats.iter().find(|(_, m)| m.contains(&i)).map(|c| c.0) else {
            continue;
        };
        let frame = format!(
            r#"{{"type":"chat.focus","id":"focus-{i}","timestamp":"","payload":{{"chatId":{chat}}}}}"#
        );
        if let Some(sink) = sinks[i].as_mut() {
            sink.send(tokio_tungstenite::tungstenite::Message::Text(frame.into()))
                .await
                .with_context(|| format!("focusing connection {i}"))?;
        }
    }
    Ok(())
}

/// Runs a plan and reports.
pub async fn run(target: &Target, mut plan: Plan) -> Result<Report> {
    let counters = Arc::new(Counters::default());
    let members: HashMap<i64, u64> = plan
        .chats
        .iter()
        .map(|(id, m)| (*id, m.len() as u64))
        .collect();
    let send_chat: HashMap<usize, i64> = plan.senders.iter().copied().collect();

    // Connect everyone (bounded concurrency), measuring handshakes.
    let mut connect = histogram();
    let connected: Vec<_> = stream::iter(plan.tokens.iter().enumerate())
        .map(|(i, token)| {
            let url = target.ws_url(i, token);
            async move { conn::connect(&url, i).await }
        })
        .buffered(64)
        .collect()
        .await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = Vec::new();
    let mut sinks = Vec::new();
    for (i, c) in connected.into_iter().enumerate() {
        let (sink, stream, us) = c.with_context(|| format!("connection {i}"))?;
        let _ = connect.record(us.max(1));
        let chat = send_chat.get(&i).map(|c| (*c, members[c]));
        readers.push(tokio::spawn(conn::read_loop(
            stream,
            stop_rx.clone(),
            chat,
            counters.clone(),
        )));
        sinks.push(Some(sink));
    }

    focus(&plan, &mut sinks).await?;
    if let Some(gate) = plan.gate.take() {
        let _ = gate.connected.send(());
        let _ = gate.resume.await;
    }
    let start = Instant::now() + Duration::from_millis(200);
    let start_unix = conn::unix_nanos() + 200_000_000;
    let until = start + plan.duration;
    let mut senders = Vec::new();
    // Senders are spread evenly over one send period instead of firing
    // together: independent users do not type in lockstep.
    let period = Duration::from_secs_f64(1.0 / plan.rate_per_sender);
    let n_senders = plan.senders.len().max(1) as u32;
    for (k, &(i, chat)) in plan.senders.iter().enumerate() {
        let sink = sinks[i].take().expect("one sender per connection");
        let phase = period * k as u32 / n_senders;
        let (s0, u0) = (start + phase, start_unix + phase.as_nanos() as u64);
        senders.push(tokio::spawn(conn::send_loop(
            sink,
            i,
            chat,
            plan.rate_per_sender,
            s0,
            u0,
            until,
            counters.clone(),
        )));
    }

    // Progress until sending ends, then drain owed deliveries.
    let progress = std::io::stderr().is_terminal();
    let drain_until = until + plan.drain;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = Instant::now();
        let delivered = counters.delivered.load(Ordering::Relaxed)
            + counters.summarized.load(Ordering::Relaxed);
        let expected = counters.expected.load(Ordering::Relaxed);
        let sent = counters.sent.load(Ordering::Relaxed);
        let settled =
            counters.acked.load(Ordering::Relaxed) + counters.errors.load(Ordering::Relaxed);
        if progress {
            let secs = now.saturating_duration_since(start).as_secs_f64();
            eprint!(
                "\r[{}] {secs:5.1}s sent {sent} acked {} delivered {delivered}/{expected}   ",
                plan.name,
                counters.acked.load(Ordering::Relaxed)
            );
            let _ = std::io::stderr().flush();
        }
        let settled_all = settled >= sent && delivered >= expected;
        if now >= until + plan.settle && settled_all {
            break;
        }
        if now >= drain_until {
            break;
        }
    }
    if progress {
        eprintln!();
    }
    let elapsed_send = plan.duration.as_secs_f64();
    // Throughput spans from the first scheduled send to the last delivery.
    let last = counters.last_delivery.load(Ordering::Relaxed);
    let span_secs = last.saturating_sub(start_unix) as f64 / 1e9;
    let _ = stop_tx.send(true);
    for s in senders {
        let _ = s.await;
    }
    let mut stats: Vec<(usize, ReaderStats)> = Vec::new();
    for (i, r) in readers.into_iter().enumerate() {
        stats.push((i, r.await?));
    }
    Ok(summarize(
        &plan,
        &counters,
        stats,
        connect,
        elapsed_send,
        span_secs,
    ))
}

/// Frames per connection per second received by focused connections and
/// by the others (summary mode's effect), and summaries per second.
fn frame_rates(
    plan: &Plan,
    stats: &[(usize, ReaderStats)],
    secs: f64,
    extra: &mut std::collections::BTreeMap<String, f64>,
) {
    let focused: HashSet<usize> = plan.focused.iter().copied().collect();
    let mut sums = [(0u64, 0u64, 0u64); 2];
    let mut focused_latency = histogram();
    for (i, s) in stats {
        let k = usize::from(!focused.contains(i));
        sums[k].0 += 1;
        sums[k].1 += s.frames;
        sums[k].2 += s.chats.values().map(|c| c.summaries).sum::<u64>();
        if k == 0 {
            focused_latency.add(&s.latency).expect("same bounds");
        }
    }
    if let Some(p) = Percentiles::of(&focused_latency).filter(|_| !focused.is_empty()) {
        extra.insert("focused_p50_ms".into(), p.p50);
        extra.insert("focused_p99_ms".into(), p.p99);
    }
    for (k, label) in [(0, "focused"), (1, "unfocused")] {
        let (n, frames, summaries) = sums[k];
        if n > 0 {
            let per = |x: u64| x as f64 / n as f64 / secs.max(0.001);
            extra.insert(format!("frames_per_conn_per_sec_{label}"), per(frames));
            extra.insert(
                format!("summaries_per_conn_per_sec_{label}"),
                per(summaries),
            );
        }
    }
}

/// Audits what one connection saw of one chat against the acked seqs:
/// each must have arrived once and in order, or, in summary mode, lie in a
/// range a `chat.summary` covered (whose count must equal the range's
/// length, checked as the summary arrived).
fn audit_one(audit: &mut Audit, want: &HashSet<i64>, seen: Option<&conn::ChatSeen>) {
    audit.expected += want.len() as u64;
    let Some(c) = seen else {
        audit.lost += want.len() as u64;
        return;
    };
    for seq in want.iter().filter(|seq| !c.seen.contains(seq)) {
        if c.covered(*seq) {
            audit.summarized += 1;
        } else {
            audit.lost += 1;
        }
    }
    audit.summary_miscounts += c.miscounts;
    audit.duplicated += c.duplicated;
    audit.out_of_order += c.out_of_order;
}

fn summarize(
    plan: &Plan,
    counters: &Counters,
    stats: Vec<(usize, ReaderStats)>,
    connect: hdrhistogram::Histogram<u64>,
    send_secs: f64,
    total_secs: f64,
) -> Report {
    let mut latency = histogram();
    let mut ack = histogram();
    let mut acked: HashMap<i64, HashSet<i64>> = HashMap::new();
    for (_, s) in &stats {
        latency.add(&s.latency).expect("same bounds");
        ack.add(&s.ack).expect("same bounds");
        for &(chat, seq) in &s.acked {
            acked.entry(chat).or_default().insert(seq);
        }
    }
    let mut audit = Audit::default();
    let chats_of: HashMap<usize, Vec<i64>> =
        plan.chats
            .iter()
            .fold(HashMap::new(), |mut m, (id, members)| {
                for &c in members {
                    m.entry(c).or_insert_with(Vec::new).push(*id);
                }
                m
            });
    for (i, s) in &stats {
        for chat in chats_of.get(i).into_iter().flatten() {
            let want = acked.get(chat).cloned().unwrap_or_default();
            audit_one(&mut audit, &want, s.chats.get(chat));
        }
    }
    let delivered = counters.delivered.load(Ordering::Relaxed);
    let mut extra = std::collections::BTreeMap::new();
    extra.insert(
        "offered_messages_per_sec".into(),
        plan.senders.len() as f64 * plan.rate_per_sender,
    );
    extra.insert("drain_secs".into(), (total_secs - send_secs).max(0.0));
    frame_rates(plan, &stats, total_secs, &mut extra);
    Report {
        scenario: plan.name.clone(),
        params: plan.params.clone(),
        connections: plan.tokens.len(),
        duration_secs: send_secs,
        sent: counters.sent.load(Ordering::Relaxed),
        acked: counters.acked.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        delivered,
        deliveries_per_sec: delivered as f64 / total_secs.max(0.001),
        latency_ms: Percentiles::of(&latency),
        ack_ms: Percentiles::of(&ack),
        connect_ms: Percentiles::of(&connect),
        audit: Some(audit),
        rss_per_conn_kib: None,
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarized_ranges_excuse_only_the_messages_they_cover() {
        // Received 1-3 live, a summary covered 4-6, 7 and 9 live again; 8
        // was neither delivered nor summarized.
        let seen = conn::ChatSeen {
            seen: [1, 2, 3, 7, 9].into(),
            last: 9,
            summaries: 1,
            covered: vec![(3, 6)],
            ..Default::default()
        };
        let want: HashSet<i64> = (1..=9).collect();
        let mut audit = Audit::default();
        audit_one(&mut audit, &want, Some(&seen));
        assert_eq!((audit.expected, audit.summarized, audit.lost), (9, 3, 1));
        assert_eq!(audit.summary_miscounts, 0);
        // A connection that saw nothing lost everything.
        let mut audit = Audit::default();
        audit_one(&mut audit, &want, None);
        assert_eq!(audit.lost, 9);
    }
}
