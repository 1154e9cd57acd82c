//! `search`: search latency over a large message table (issue 10).
//!
//! A fixture writes the messages straight into PostgreSQL (posting a
//! million messages through the pipeline would take longer than the whole
//! bench and measure the write path, not search): `chats` group chats
//! every searcher is a member of, plus `other_chats` private channels of
//! two outsiders (messages the searchers must never see, and that an
//! index must skip), with texts drawn from a skewed pseudo-word
//! vocabulary (a few words are common, most are rare, like real text).
//! Then, one query at a time through the REST API, three typical kinds:
//! two words in one chat, two words over all of the searcher's chats, and
//! a `from:` filter with a word. The latency is the whole HTTP request as
//! a client sees it. Searchers take turns so the per-user search budget
//! (5/s) does not throttle the measurement; a 429 is waited out and not
//! counted.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{stream, StreamExt, TryStreamExt};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::{postgres::PgPoolOptions, PgPool};

use crate::{
    client::{Account, Api},
    report::{histogram, Percentiles, Report},
    target::{ensure_loopback, Target},
    traffic::{signup_many, tag},
};

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Messages written by the fixture.
    pub messages: usize,
    /// Chats every searcher is a member of.
    pub chats: usize,
    /// Chats of outsiders.
    pub other_chats: usize,
    /// Queries measured per kind.
    pub samples: usize,
    /// Users taking turns to search.
    pub searchers: usize,
}

const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ne", "ru", "ta", "vi", "so", "pe", "da", "ri", "mo", "lu", "fe", "zi", "ba",
];
/// Words in the vocabulary.
const VOCABULARY: usize = 3000;

/// Pseudo-words of two or three syllables: `kalo`, `kalomi`, ….
fn vocabulary() -> Vec<String> {
    let mut words = Vec::with_capacity(VOCABULARY);
    'outer: for a in SYLLABLES {
        for b in SYLLABLES {
            for c in std::iter::once("").chain(SYLLABLES) {
                words.push(format!("{a}{b}{c}"));
                if words.len() == VOCABULARY {
                    break 'outer;
                }
            }
        }
    }
    words
}

pub async fn run(target: &Target, database_url: &str, shape: Shape) -> Result<Report> {
    ensure_loopback(database_url)?;
    let api = Api::new(&target.api);
    let tag = tag();
    // 1. Users: searchers (lt0..), then two outsiders.
    let accounts = signup_many(&api, shape.searchers + 2, &tag).await?;
    let (searchers, outsiders) = accounts.split_at(shape.searchers);
    let chats = make_chats(&api, searchers, outsiders, shape).await?;
    // 2. The fixture, in PostgreSQL.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(database_url)
        .await
        .context("connecting to the pool's PostgreSQL")?;
    let started = Instant::now();
    let senders: Vec<i64> = searchers.iter().map(|a| a.id).collect();
    fill(&pool, &chats, &senders, outsiders, shape).await?;
    let fixture_secs = started.elapsed().as_secs_f64();
    // 3. Queries.
    let mut report = Report {
        scenario: "search".into(),
        params: json!({ "messages": shape.messages, "memberChats": shape.chats,
                        "otherChats": shape.other_chats, "samplesPerKind": shape.samples }),
        ..Report::default()
    };
    report.extra.insert("fixture_secs".into(), fixture_secs);
    let words = vocabulary();
    let mut all = histogram();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for kind in ["one_chat", "global", "from"] {
        let mut h = histogram();
        let mut results = 0usize;
        for i in 0..shape.samples {
            let searcher = &searchers[i % searchers.len()];
            let (a, b) = (
                pick(&mut rng, &words, 20..400),
                pick(&mut rng, &words, 0..80),
            );
            let (q, chat) = match kind {
                "one_chat" => (
                    format!("{a} {b}"),
                    Some(chats.member[i % chats.member.len()]),
                ),
                "global" => (format!("{a} {b}"), None),
                _ => (format!("from:@lt{} {a}", i % searchers.len()), None),
            };
            let (took, found) = timed_search(&api, searcher, &q, chat).await?;
            h.record(took.as_micros().max(1) as u64)?;
            all.record(took.as_micros().max(1) as u64)?;
            results += found;
            report.sent += 1;
        }
        if let Some(p) = Percentiles::of(&h) {
            report.extra.insert(format!("{kind}_p50_ms"), p.p50);
            report.extra.insert(format!("{kind}_p99_ms"), p.p99);
        }
        let mean = results as f64 / shape.samples.max(1) as f64;
        report.extra.insert(format!("{kind}_mean_results"), mean);
    }
    report.latency_ms = Percentiles::of(&all);
    report.acked = report.sent;
    Ok(report)
}

/// A word of the given frequency ranks: queries pair a middling word
/// (ranks 20-400) with a common one (ranks 0-80), as people type them.
fn pick<'a>(rng: &mut impl Rng, words: &'a [String], ranks: std::ops::Range<usize>) -> &'a str {
    &words[rng.random_range(ranks)]
}

struct Chats {
    member: Vec<i64>,
    other: Vec<i64>,
}

async fn make_chats(
    api: &Api,
    searchers: &[Account],
    outsiders: &[Account],
    shape: Shape,
) -> Result<Chats> {
    let ids: Vec<i64> = searchers.iter().map(|a| a.id).collect();
    let owner = &searchers[0];
    let member = stream::iter(0..shape.chats)
        .map(|i| {
            let (ids, name) = (&ids, format!("room-{i}"));
            async move {
                api.create_chat(owner, "group", Some(&name), &ids[1..])
                    .await
            }
        })
        .buffered(16)
        .try_collect()
        .await?;
    let other = stream::iter(0..shape.other_chats)
        .map(|i| {
            let name = format!("hidden-{i}");
            let (a, b) = (&outsiders[0], outsiders[1].id);
            async move {
                api.create_chat(a, "private_channel", Some(&name), &[b])
                    .await
            }
        })
        .buffered(16)
        .try_collect()
        .await?;
    Ok(Chats { member, other })
}

/// Writes `shape.messages` messages spread evenly over all chats, one
/// statement per chat, and refreshes the planner's statistics.
async fn fill(
    pool: &PgPool,
    chats: &Chats,
    senders: &[i64],
    outsiders: &[Account],
    shape: Shape,
) -> Result<()> {
    let words = vocabulary();
    let total = chats.member.len() + chats.other.len();
    let per_chat = (shape.messages / total.max(1)).max(1) as i64;
    let outsider_ids: Vec<i64> = outsiders.iter().map(|a| a.id).collect();
    let jobs = chats
        .member
        .iter()
        .map(|&c| (c, senders.to_vec()))
        .chain(chats.other.iter().map(|&c| (c, outsider_ids.clone())));
    for (n, (chat, senders)) in jobs.enumerate() {
        sqlx::query(
            "INSERT INTO messages (chat_id, seq, sender_id, content, client_id, created_at)
             SELECT $1, g, $2[1 + (g % cardinality($2))],
                    (SELECT string_agg($3[1 + floor(power(random(), 3) * cardinality($3))::int], ' ')
                     FROM generate_series(1, 4 + (g % 13))),
                    'fixture-' || g,
                    now() - random() * interval '365 days'
             FROM generate_series(1, $4) AS g",
        )
        .bind(chat)
        .bind(&senders)
        .bind(&words)
        .bind(per_chat)
        .execute(pool)
        .await
        .with_context(|| format!("filling chat {chat}"))?;
        sqlx::query("UPDATE chats SET last_seq = $2 WHERE id = $1")
            .bind(chat)
            .bind(per_chat)
            .execute(pool)
            .await?;
        if n % 25 == 0 {
            eprintln!("search fixture: {} of {total} chats", n + 1);
        }
    }
    sqlx::query("ANALYZE messages").execute(pool).await?;
    Ok(())
}

/// One search; waits out a 429 (not timed) and retries.
async fn timed_search(
    api: &Api,
    user: &Account,
    q: &str,
    chat: Option<i64>,
) -> Result<(Duration, usize)> {
    let mut query = vec![("q", q.to_string()), ("limit", "20".to_string())];
    if let Some(c) = chat {
        query.push(("chatId", c.to_string()));
    }
    for _ in 0..50 {
        let started = Instant::now();
        let res = api
            .http()
            .get(format!("{}/api/search/messages", api.base))
            .bearer_auth(&user.token)
            .query(&query)
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let took = started.elapsed();
        if status.as_u16() == 429 {
            let ms = body["error"]["retryAfterMs"].as_u64().unwrap_or(200);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            continue;
        }
        if !status.is_success() {
            bail!("search {q:?} answered {status}: {body}");
        }
        let found = body["results"].as_array().map_or(0, Vec::len);
        return Ok((took, found));
    }
    bail!("search {q:?} stayed rate limited")
}

/// Target: every query kind answers within 100 ms at p99 with a million
/// messages. The search box debounces 300 ms (seed §5.5); an answer
/// within a further 100 ms feels immediate, and p99 (not the median) is
/// what a user typing a dozen queries a day meets.
pub const TARGET_P99_MS: f64 = 100.0;

/// The BENCHMARKS.md targets row of a search report.
pub fn target_row(r: &Report) -> String {
    let p99s: Vec<f64> = ["one_chat", "global", "from"]
        .iter()
        .map(|k| {
            r.extra
                .get(&format!("{k}_p99_ms"))
                .copied()
                .unwrap_or(f64::NAN)
        })
        .collect();
    let worst = p99s.iter().copied().fold(f64::NAN, f64::max);
    let met = if worst < TARGET_P99_MS {
        "yes"
    } else {
        "**no**"
    };
    format!(
        "| search: p99 < {TARGET_P99_MS:.0} ms for each typical query over {} messages | p99 {:.1} / {:.1} / {:.1} ms (one chat / all chats / `from:`) | {met} |",
        r.params["messages"], p99s[0], p99s[1], p99s[2]
    )
}

/// The BENCHMARKS.md section of a search report.
pub fn section(r: &Report) -> String {
    let get = |k: &str| r.extra.get(k).copied().unwrap_or(f64::NAN);
    let mut s = String::from("\n## Search\n\n");
    s.push_str("PostgreSQL backend. A fixture wrote the messages straight into PostgreSQL (skewed pseudo-word vocabulary, 4-16 words each, spread over a year) in chats of the searchers and chats of outsiders; then one query at a time through HAProxy and the REST API, searchers taking turns. Latency is the whole HTTP request.\n\n");
    s.push_str("| query kind | example | p50 ms | p99 ms | mean results (limit 20) |\n|---|---|---|---|---|\n");
    for (kind, example) in [
        ("one_chat", "`two words`, `chatId` of one chat"),
        ("global", "`two words` over all of the caller's chats"),
        ("from", "`from:@name word`"),
    ] {
        s.push_str(&format!(
            "| {kind} | {example} | {:.1} | {:.1} | {:.1} |\n",
            get(&format!("{kind}_p50_ms")),
            get(&format!("{kind}_p99_ms")),
            get(&format!("{kind}_mean_results"))
        ));
    }
    s.push_str(&format!(
        "\nParameters `{}`; the fixture took {:.0} s.\n",
        r.params,
        get("fixture_secs")
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_is_distinct_words() {
        let words = vocabulary();
        assert_eq!(words.len(), VOCABULARY);
        let unique: std::collections::HashSet<_> = words.iter().collect();
        assert_eq!(unique.len(), VOCABULARY);
        assert!(words
            .iter()
            .all(|w| w.chars().all(|c| c.is_ascii_lowercase())));
    }
}
