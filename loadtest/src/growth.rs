//! `growth`: does the pool slow down as the message table grows (issue 13
//! item 5, seed 002 §7.5)?
//!
//! One probe chat with a fixed history (`probe_messages` messages and their
//! events, written straight into PostgreSQL with frames of the real shape)
//! is measured at each table size of `sizes`, while filler chats grow
//! `messages` and `chat_events` to that many rows between the stages
//! (generated in PostgreSQL: sending ten million messages through the
//! pipeline would take hours and measure the write path, not the table).
//! After each fill the tables are vacuumed, analyzed and checkpointed
//! (fill time includes it), so a stage measures a settled table, not one
//! that autovacuum and the checkpointer are still working through. Then,
//! through the running pool:
//!
//! * send: `message.send` to ack in a second chat of the same members (the
//!   durable path: inserts into the grown tables, index maintenance, the
//!   idempotency check), so the probe chat itself never changes;
//! * sync from PostgreSQL: `sync.request` from 300 messages before the
//!   probe's end; its topic stream never held the fixture history, so
//!   every answer comes from `chat_events` (`source: "database"`, checked);
//! * REST paging: `GET /api/chat/{id}/messages?beforeSeq=..` at random
//!   depths of the probe history.
//!
//! The fill is bounded by `sizes` (at most 20M rows), every stage by its
//! sample counts, and the scenario refuses a non-loopback database.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use futures::{stream, StreamExt, TryStreamExt};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::{postgres::PgPoolOptions, PgPool};

use crate::{
    client::{Account, Api, Session},
    report::{histogram, Percentiles, Report},
    target::{ensure_loopback, Target},
    traffic::{signup_many, tag},
};

#[derive(Debug, Clone)]
pub struct Shape {
    /// Table sizes (messages rows) at which the probe is measured, ascending.
    pub sizes: Vec<u64>,
    /// Messages of the probe chat's history.
    pub probe_messages: i64,
    /// Filler chats the growth is spread over.
    pub filler_chats: i64,
    /// Samples per measurement and stage.
    pub samples: usize,
    /// Ends with the archival stage (`crate::growth_archive`).
    pub archive: bool,
}

/// Users of the probe chat: senders and syncers take turns, so no
/// per-user budget (10 sends/s, 10 syncs then 1 per 2 s) throttles.
const USERS: usize = 10;
/// Rows written by one fill statement.
const FILL_BATCH: i64 = 50_000;
/// How far back each sync starts.
const SYNC_BACK: i64 = 300;

pub async fn run(target: &Target, database_url: &str, shape: Shape) -> Result<Report> {
    ensure_loopback(database_url)?;
    let api = Api::new(&target.api);
    // 1. The probe chat and its history; filler chats.
    let users = signup_many(&api, USERS, &tag()).await?;
    let ids: Vec<i64> = users.iter().map(|a| a.id).collect();
    let probe = api
        .create_chat(&users[0], "group", Some("probe"), &ids[1..])
        .await?;
    let sending = api
        .create_chat(&users[0], "group", Some("sends"), &ids[1..])
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .connect(database_url)
        .await
        .context("connecting to the pool's PostgreSQL")?;
    append(&pool, &[probe], (1, shape.probe_messages), &ids).await?;
    let fillers = filler_chats(&pool, users[0].id, shape.filler_chats).await?;
    let mut report = Report {
        scenario: "growth".into(),
        params: json!({ "sizes": shape.sizes, "probeMessages": shape.probe_messages,
                        "fillerChats": shape.filler_chats, "samples": shape.samples }),
        ..Report::default()
    };
    // 2. A warm-up round, not recorded (connections, caches, plans).
    let chats = (probe, sending);
    Stage::measure(&api, &users, chats, shape.probe_messages, USERS).await?;
    // 3. Each stage: grow, then measure.
    let mut filled = 0;
    for &size in &shape.sizes {
        let started = Instant::now();
        let rows;
        (filled, rows) = grow(&pool, &fillers, filled, &ids, size).await?;
        let fill_secs = started.elapsed().as_secs_f64();
        let stage =
            Stage::measure(&api, &users, chats, shape.probe_messages, shape.samples).await?;
        eprintln!(
            "growth: {rows} messages (filled and settled in {fill_secs:.0} s): {}",
            stage.line()
        );
        stage.record(&mut report, size, rows, fill_secs);
    }
    // 4. The archival job over the grown table, measured while it runs
    //    and after it.
    if shape.archive {
        let workspace = workspace_of(&pool, users[0].id).await?;
        let round = std::sync::atomic::AtomicUsize::new(0);
        let measure = || async {
            let stage =
                Stage::measure(&api, &users, chats, shape.probe_messages, shape.samples).await?;
            let n = round.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            eprintln!("growth: during archival, round {n}: {}", stage.line());
            anyhow::Ok(stage)
        };
        let (archival, rounds) = crate::growth_archive::run(&pool, workspace, measure).await?;
        eprintln!(
            "growth: archival moved {} messages in {:.0} s",
            archival.moved, archival.secs
        );
        let after =
            Stage::measure(&api, &users, chats, shape.probe_messages, shape.samples).await?;
        for (i, round) in rounds.iter().enumerate() {
            round.record_as(&mut report, &format!("archive_during_{}", i + 1));
        }
        eprintln!("growth: after archival: {}", after.line());
        archival.record(&mut report);
        after.record_as(&mut report, "archive_after");
    }
    report.acked = report.sent;
    Ok(report)
}

async fn workspace_of(pool: &PgPool, user: i64) -> Result<i64> {
    let (w,): (i64,) = sqlx::query_as("SELECT workspace_id FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(pool)
        .await?;
    Ok(w)
}

/// Messages `from..=to` of each of `chats` with their `message.new`
/// events, sent by `senders` in turn, at most `FILL_BATCH` seqs per
/// statement; then the chats' counters.
async fn append(
    pool: &PgPool,
    chats: &[i64],
    (from, to): (i64, i64),
    senders: &[i64],
) -> Result<()> {
    let mut start = from;
    while start <= to {
        let end = (start + FILL_BATCH - 1).min(to);
        insert_rows(pool, chats, start, end, senders).await?;
        start = end + 1;
    }
    sqlx::query("UPDATE chats SET last_seq = $2, last_event = $2 WHERE id = ANY($1)")
        .bind(chats)
        .bind(to)
        .execute(pool)
        .await?;
    Ok(())
}

/// Inserts messages `from..=to` of each of `chats`, and one stored
/// `message.new` frame per message, the way the worker writes them.
async fn insert_rows(
    pool: &PgPool,
    chats: &[i64],
    from: i64,
    to: i64,
    senders: &[i64],
) -> Result<()> {
    sqlx::query(
        r#"WITH m AS (
             INSERT INTO messages (chat_id, seq, sender_id, content, client_id, created_at)
             SELECT c, g, $4[1 + g % cardinality($4)],
                    'message ' || g || ' about ' || md5((c * g)::text), 'fixture-' || g,
                    now() - (($3 - g) * interval '1 second')
             FROM unnest($1::bigint[]) AS c, generate_series($2::bigint, $3::bigint) AS g
             RETURNING id, chat_id, seq, sender_id, content, client_id, created_at)
           INSERT INTO chat_events (chat_id, seq, sub, kind, client_id, user_id, message_id, frame, event_seq, created_at)
           SELECT chat_id, seq, 0, 'message.new', client_id, sender_id, id,
                  format('{"type":"message.new","id":"fx-%s-%s","timestamp":"%s","payload":{"chatId":%s,"eventId":"%s-0","message":{"id":%s,"chatId":%s,"seq":%s,"senderId":%s,"content":%s,"clientId":"%s","replyTo":null,"mentions":[],"priority":"normal","createdAt":"%s","editedAt":null,"deletedAt":null},"eventSeq":%s}}',
                         chat_id, seq, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                         chat_id, seq, id, chat_id, seq, sender_id, to_json(content)::text, client_id,
                         to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), seq),
                  seq, created_at
           FROM m"#,
    )
    .bind(chats)
    .bind(from)
    .bind(to)
    .bind(senders)
    .execute(pool)
    .await
    .with_context(|| format!("filling {} chats, seqs {from}..={to}", chats.len()))?;
    Ok(())
}

/// `n` group chats beside the probe, owned by `owner`, nobody connected.
async fn filler_chats(pool: &PgPool, owner: i64, n: i64) -> Result<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "INSERT INTO chats (workspace_id, type, name, owner_id)
         SELECT u.workspace_id, 'group', 'filler-' || g, u.id
         FROM users u, generate_series(1, $2) AS g WHERE u.id = $1
         RETURNING id",
    )
    .bind(owner)
    .bind(n)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Grows `messages` to about `size` rows through the filler chats, whose
/// messages so far are seqs 1..=`filled` (each statement a few chats, two
/// statements at a time), then lets the tables settle.
/// Returns the fillers' new last seq and the table's rows.
async fn grow(
    pool: &PgPool,
    fillers: &[i64],
    filled: i64,
    senders: &[i64],
    size: u64,
) -> Result<(i64, u64)> {
    let have = crate::growth_archive::exact_rows(pool, "messages").await?;
    if have >= size {
        return Ok((filled, have));
    }
    let per_chat = (size - have).div_ceil(fillers.len() as u64) as i64;
    let chats_per_statement = (FILL_BATCH / per_chat).clamp(1, 100) as usize;
    let seqs = (filled + 1, filled + per_chat);
    let groups: Vec<&[i64]> = fillers.chunks(chats_per_statement).collect();
    let total = groups.len();
    stream::iter(groups.into_iter().enumerate())
        .map(|(i, chats)| async move {
            append(pool, chats, seqs, senders).await?;
            if i % 20 == 0 {
                eprintln!(
                    "growth: filling towards {size} rows, statement group {} of {total}",
                    i + 1
                );
            }
            anyhow::Ok(())
        })
        .buffer_unordered(2)
        .try_collect::<Vec<()>>()
        .await?;
    settle(pool).await?;
    Ok((seqs.1, have + per_chat as u64 * fillers.len() as u64))
}

/// Brings the tables to the state a gradually grown table is in: vacuumed
/// and analyzed, dirty pages written. Right after a bulk load, autovacuum
/// and the checkpointer work through it for minutes, beside the
/// measurement (one run measured send p50 84 ms at 10M rows that way, the
/// next 11 ms).
async fn settle(pool: &PgPool) -> Result<()> {
    for table in ["messages", "chat_events"] {
        sqlx::query(&format!("VACUUM (ANALYZE) {table}"))
            .execute(pool)
            .await
            .with_context(|| format!("vacuuming {table}"))?;
    }
    sqlx::query("CHECKPOINT")
        .execute(pool)
        .await
        .context("CHECKPOINT (the growth scenario needs a superuser connection)")?;
    Ok(())
}

/// What one stage measured.
struct Stage {
    send: Percentiles,
    sync: Percentiles,
    page: Percentiles,
}

impl Stage {
    async fn measure(
        api: &Api,
        users: &[Account],
        (probe, sending): (i64, i64),
        history: i64,
        samples: usize,
    ) -> Result<Self> {
        let send = sends(api, users, sending, samples).await?;
        let sync = syncs(api, users, probe, history, samples).await?;
        let page = pages(api, &users[0], probe, history, samples).await?;
        Ok(Self { send, sync, page })
    }

    fn record(&self, report: &mut Report, size: u64, rows: u64, fill_secs: f64) {
        let prefix = format!("rows_{size}");
        report
            .extra
            .insert(format!("{prefix}_actual_rows"), rows as f64);
        report
            .extra
            .insert(format!("{prefix}_fill_secs"), fill_secs);
        self.record_as(report, &prefix);
    }

    /// The stage's percentiles as `<prefix>_<measure>_p50_ms` and `_p99_ms`.
    fn record_as(&self, report: &mut Report, prefix: &str) {
        for (name, p) in [
            ("send", &self.send),
            ("sync", &self.sync),
            ("page", &self.page),
        ] {
            report
                .extra
                .insert(format!("{prefix}_{name}_p50_ms"), p.p50);
            report
                .extra
                .insert(format!("{prefix}_{name}_p99_ms"), p.p99);
        }
        report.sent += self.send.count;
    }

    /// One line for the progress output.
    fn line(&self) -> String {
        format!(
            "send p50 {:.1} / p99 {:.1} ms, sync from PostgreSQL p50 {:.1} / p99 {:.1} ms, \
             REST page p50 {:.1} / p99 {:.1} ms",
            self.send.p50,
            self.send.p99,
            self.sync.p50,
            self.sync.p99,
            self.page.p50,
            self.page.p99
        )
    }
}

/// `samples` sends into `chat`, senders in turn, one at a time (about
/// 20/s): send to ack.
async fn sends(api: &Api, users: &[Account], chat: i64, samples: usize) -> Result<Percentiles> {
    let mut sessions: Vec<Session> = stream::iter(users)
        .then(|u| Session::connect(api, u))
        .try_collect()
        .await?;
    let mut h = histogram();
    for i in 0..samples {
        let s = &mut sessions[i % USERS];
        let started = Instant::now();
        let id = s
            .send(
                "message.send",
                json!({ "chatId": chat, "content": format!("probe {i}"),
                                           "clientId": uuid::Uuid::new_v4().to_string() }),
            )
            .await?;
        s.answer(&id, Duration::from_secs(30)).await?;
        h.record(started.elapsed().as_micros().max(1) as u64)?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in sessions {
        s.close().await;
    }
    Percentiles::of(&h).context("no send measured")
}

/// `samples` syncs of the probe chat from `SYNC_BACK` messages before the
/// fixture's end (so from PostgreSQL), users in turn: request to ack.
async fn syncs(
    api: &Api,
    users: &[Account],
    probe: i64,
    history: i64,
    samples: usize,
) -> Result<Percentiles> {
    let mut h = histogram();
    let mut sessions: Vec<Session> = stream::iter(users)
        .then(|u| Session::connect(api, u))
        .try_collect()
        .await?;
    let cursor = (history - SYNC_BACK).max(0);
    for i in 0..samples {
        let s = &mut sessions[i % USERS];
        let started = Instant::now();
        let mut chats = serde_json::Map::new();
        chats.insert(probe.to_string(), json!(cursor));
        let id = s.send("sync.request", json!({ "chats": chats })).await?;
        let response = s
            .wait_for(
                |f| f["type"] == "sync.response" && f["payload"]["chatId"] == probe,
                Duration::from_secs(30),
            )
            .await?;
        s.answer(&id, Duration::from_secs(30)).await?;
        h.record(started.elapsed().as_micros().max(1) as u64)?;
        check_sync(&response)?;
        // Each user's sync budget refills at 1 per 2 s after its burst:
        // users in turn, 5 requests/s in all, never wait for a token.
        tokio::time::sleep(Duration::from_millis(2_000 / USERS as u64 + 10)).await;
    }
    for s in sessions {
        s.close().await;
    }
    Percentiles::of(&h).context("no sync measured")
}

/// A sync answer read from PostgreSQL with a full page of events.
fn check_sync(response: &Value) -> Result<()> {
    let p = &response["payload"];
    ensure!(
        p["source"] == "database" && p["tooLarge"] == false,
        "sync answered from {} (expected database): {p}",
        p["source"]
    );
    let events = p["events"].as_array().map_or(0, Vec::len);
    if events == 0 {
        bail!("sync answered without events: {p}");
    }
    Ok(())
}

/// `samples` REST pages of 50 at random depths of the probe history.
async fn pages(
    api: &Api,
    user: &Account,
    probe: i64,
    history: i64,
    samples: usize,
) -> Result<Percentiles> {
    let mut h = histogram();
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    for _ in 0..samples {
        let before = rng.random_range(51..=history.max(52));
        let started = Instant::now();
        let res = api
            .http()
            .get(format!("{}/api/chat/{probe}/messages", api.base))
            .query(&[("beforeSeq", before.to_string()), ("limit", "50".into())])
            .bearer_auth(&user.token)
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        h.record(started.elapsed().as_micros().max(1) as u64)?;
        let n = body["messages"].as_array().map_or(0, Vec::len);
        ensure!(
            status.is_success() && n == 50,
            "page before {before}: {status}, {n} messages"
        );
    }
    Percentiles::of(&h).context("no page measured")
}
