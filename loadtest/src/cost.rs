//! The durable write path's cost per committed message (issue 13 item 1),
//! so that making it cheaper starts from numbers rather than guesses.
//!
//! Runs the `chats` traffic (small group chats, one sender each) at a
//! fixed offered rate and reads, right before and after, the counters of
//! every process on the path:
//!
//! * Redis: calls per command (`INFO commandstats`);
//! * PostgreSQL: transactions, rows inserted/updated/deleted
//!   (`pg_stat_database` of the pool's database) and WAL bytes
//!   (`pg_current_wal_lsn`, the whole server);
//! * CPU seconds of the gateways, the worker, Redis, PostgreSQL and
//!   HAProxy, by process name from `/proc` (so the machine must otherwise
//!   be idle, as under `make bench`), and of the load generator itself.
//!
//! Everything is divided by the messages committed (acked sends) in the
//! window. PostgreSQL publishes its statistics up to a second late, so
//! the second snapshot waits for them.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use anyhow::{Context, Result};
use serde_json::json;

use crate::{redis_info, report::Report, target::Target, traffic};

/// The load: `chats` chats of `size` members, one sender each at `rate`
/// messages/s, for `duration`.
pub struct Shape {
    /// `group` (every message alerts every member) or `private_channel`.
    pub kind: String,
    pub users: usize,
    pub chats: usize,
    pub size: usize,
    pub rate: f64,
    pub duration: Duration,
}

/// Process names whose CPU is counted (`/proc/<pid>/stat` comm). The load
/// generator (`loadtest`, this process and its helpers) shares the cores
/// and is reported beside the pool, not in it.
const PROCESSES: [&str; 6] = [
    "gateway",
    "worker",
    "redis-server",
    "postgres",
    "haproxy",
    "loadtest",
];
/// Redis commands listed one by one (the rest are summed as "other").
const TOP_COMMANDS: usize = 8;

#[derive(Default)]
struct Counters {
    redis_calls: BTreeMap<String, u64>,
    pg: [i64; 5],
    cpu: BTreeMap<String, f64>,
}

pub async fn run(target: &Target, shape: Shape, redis: &str, database: &str) -> Result<Report> {
    crate::target::ensure_loopback(database)?;
    let db = sqlx::PgPool::connect(database)
        .await
        .context("connecting to the pool's database")?;
    let mut plan = traffic::chats_plan_of(
        target,
        &shape.kind,
        shape.users,
        shape.chats,
        shape.size,
        shape.rate,
        shape.duration,
    )
    .await?;
    // Counters are read once every client is connected, so that sign-ups
    // and handshakes are not charged to the messages.
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let (resume, resume_rx) = tokio::sync::oneshot::channel();
    plan.gate = Some(traffic::Gate {
        connected: connected_tx,
        resume: resume_rx,
    });
    let observe = async {
        connected.await.context("the run ended before connecting")?;
        settle_pg_stats().await;
        let before = snapshot(redis, &db).await?;
        let _ = resume.send(());
        Ok::<_, anyhow::Error>((before, std::time::Instant::now()))
    };
    let (report, observed) = tokio::join!(traffic::run(target, plan), observe);
    let (before, started) = observed?;
    let mut report = report?;
    // The sending window plus the drain: when the commits happened.
    let window = started.elapsed().as_secs_f64();
    settle_pg_stats().await;
    let after = snapshot(redis, &db).await?;
    report.scenario = "write-cost".into();
    report.params = json!({
        "chatType": shape.kind, "chats": shape.chats, "size": shape.size, "ratePerChat": shape.rate,
        "offeredPerSec": shape.chats as f64 * shape.rate, "secs": shape.duration.as_secs(),
    });
    figures(&mut report, &before, &after, window);
    Ok(report)
}

async fn settle_pg_stats() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

async fn snapshot(redis: &str, db: &sqlx::PgPool) -> Result<Counters> {
    let stats = redis_info::section(redis, "commandstats").await?;
    let pg: (i64, i64, i64, i64, i64) = sqlx::query_as(
        "select xact_commit, tup_inserted, tup_updated, tup_deleted, \
                pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint \
           from pg_stat_database where datname = current_database()",
    )
    .fetch_one(db)
    .await?;
    Ok(Counters {
        redis_calls: command_calls(&stats),
        pg: [pg.0, pg.1, pg.2, pg.3, pg.4],
        cpu: cpu_by_process(),
    })
}

/// `cmdstat_<name>:calls=N,...` lines of `INFO commandstats`.
fn command_calls(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}

/// CPU seconds (user + system) per process name in [`PROCESSES`].
fn cpu_by_process() -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((name, secs)) = parse_stat(&stat) {
            if PROCESSES.contains(&name) {
                *out.entry(name.to_string()).or_insert(0.0) += secs;
            }
        }
    }
    out
}

/// (comm, utime + stime in seconds) of a `/proc/<pid>/stat` line; the
/// kernel reports them in USER_HZ, 100 per second on Linux.
fn parse_stat(stat: &str) -> Option<(&str, f64)> {
    let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / 100.0))
}

fn figures(report: &mut Report, before: &Counters, after: &Counters, window: f64) {
    let msgs = report.acked.max(1) as f64;
    let x = &mut report.extra;
    x.insert("committed".into(), report.acked as f64);
    x.insert("window_secs".into(), window);
    x.insert(
        "committed_per_sec".into(),
        report.acked as f64 / window.max(0.001),
    );
    let mut calls: Vec<(String, u64)> = after
        .redis_calls
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v - before.redis_calls.get(k).copied().unwrap_or(0),
            )
        })
        .filter(|(_, d)| *d > 0)
        .collect();
    calls.sort_by_key(|c| std::cmp::Reverse(c.1));
    let total: u64 = calls.iter().map(|(_, d)| d).sum();
    x.insert("redis_commands_per_msg".into(), total as f64 / msgs);
    let other: u64 = calls.iter().skip(TOP_COMMANDS).map(|(_, d)| d).sum();
    for (name, d) in calls.iter().take(TOP_COMMANDS) {
        x.insert(
            format!("redis_{}_per_msg", name.replace('|', "_")),
            *d as f64 / msgs,
        );
    }
    x.insert("redis_other_per_msg".into(), other as f64 / msgs);
    let pg = |i: usize| (after.pg[i] - before.pg[i]) as f64 / msgs;
    x.insert("pg_transactions_per_msg".into(), pg(0));
    x.insert("pg_rows_inserted_per_msg".into(), pg(1));
    x.insert("pg_rows_updated_per_msg".into(), pg(2));
    x.insert("pg_rows_deleted_per_msg".into(), pg(3));
    x.insert("wal_bytes_per_msg".into(), pg(4));
    for name in PROCESSES {
        let d = after.cpu.get(name).copied().unwrap_or(0.0)
            - before.cpu.get(name).copied().unwrap_or(0.0);
        x.insert(
            format!("cpu_us_per_msg_{}", name.replace('-', "_")),
            d * 1e6 / msgs,
        );
    }
}

/// BENCHMARKS.md's "Write path cost model" section.
pub fn section(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## Write path cost model\n");
    let _ = writeln!(s, "`loadtest write-cost`: the `chats` load (`{}`) with every process's counters read before and after, divided by the {} messages committed ({:.0}/s over the sending window and the drain; ack p99 {:.1} ms). CPU by process name from /proc (the machine is otherwise idle under `make bench`); WAL is the whole server's.\n",
        r.params, r.acked, r.extra.get("committed_per_sec").copied().unwrap_or(0.0),
        r.ack_ms.as_ref().map(|a| a.p99).unwrap_or(f64::NAN));
    let _ = writeln!(s, "| per committed message | value |\n|---|---|");
    for (k, v) in &r.extra {
        if let Some(name) = k.strip_suffix("_per_msg") {
            let _ = writeln!(s, "| {} | {v:.2} |", name.replace('_', " "));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_lines_give_calls_per_command() {
        let info = "# Commandstats\r\ncmdstat_xadd:calls=120,usec=900,usec_per_call=7.5\r\n\
                    cmdstat_client|setname:calls=3,usec=1\r\ncmdstat_evalsha:calls=40,usec=4000\r\n";
        let calls = command_calls(info);
        assert_eq!(calls["xadd"], 120);
        assert_eq!(calls["client|setname"], 3);
        assert_eq!(calls["evalsha"], 40);
        assert_eq!(calls.len(), 3);
    }

    #[test]
    fn proc_stat_gives_the_name_and_cpu_seconds() {
        let stat = "4242 (redis-server) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 5 0 100 1000 200";
        assert_eq!(parse_stat(stat), Some(("redis-server", 3.0)));
        let odd = "7 (tokio (x) w) R 1 7 7 0 -1 0 0 0 0 0 12 8 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat(odd), Some(("tokio (x) w", 0.2)));
    }

    #[test]
    fn this_process_is_found_in_proc() {
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (name, secs) = parse_stat(&own).expect("a parsable stat line");
        assert!(!name.is_empty());
        assert!(secs >= 0.0);
    }
}
