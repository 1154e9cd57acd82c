//! `presence`: N connected users of one workspace, each watching S others,
//! a share of them changing state every minute (`presence.update`
//! alternating `dnd` and `online`). Reports what watchers receive
//! (`presence.changed` frames and entries per second), change-to-watcher
//! latency (bounded below by the 2 s batching by design), Redis commands
//! per second (INFO, when `--redis` is given) and gateway CPU (from their
//! `/metrics`, when `--gateway` URLs are given).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::{ensure, Context, Result};
use futures::{stream, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    client::Api,
    conn::{self, unix_nanos},
    report::{histogram, Percentiles, Report},
    target::Target,
    traffic::{signup_many, tag},
};

/// The shape of one run.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub users: usize,
    pub watch: usize,
    /// Share of users changing state per minute, in percent.
    pub churn_pct_per_min: f64,
    pub duration: Duration,
}

/// Latest change per user: (status, when it was sent, Unix ns).
type Changes = Arc<Mutex<HashMap<i64, (String, u64)>>>;

#[derive(Default)]
struct Seen {
    frames: AtomicU64,
    entries: AtomicU64,
}

pub async fn run(target: &Target, shape: Shape, redis: Option<&str>) -> Result<Report> {
    ensure!(
        shape.watch < shape.users && shape.watch <= 500,
        "watch must be < users and <= 500"
    );
    let accounts = signup_many(&Api::new(&target.api), shape.users, &tag())
        .await
        .context("signing up users")?;
    let ids: Vec<i64> = accounts.iter().map(|a| a.id).collect();
    let conns: Vec<_> = stream::iter(accounts.iter().enumerate())
        .map(|(i, a)| {
            let url = target.ws_url(i, &a.token);
            async move { conn::connect(&url, i).await }
        })
        .buffered(256)
        .collect()
        .await;
    let changes: Changes = Arc::default();
    let seen = Arc::new(Seen::default());
    let latency = Arc::new(Mutex::new(histogram()));
    let mut sinks = Vec::with_capacity(conns.len());
    let mut readers = Vec::with_capacity(conns.len());
    for (i, c) in conns.into_iter().enumerate() {
        let (mut sink, stream, _) = c.with_context(|| format!("connection {i}"))?;
        // Watch the next `watch` users (wrapping): every user is watched
        // by exactly `watch` others.
        let watched: Vec<i64> = (1..=shape.watch)
            .map(|k| ids[(i + k) % ids.len()])
            .collect();
        let frame = json!({ "type": "presence.subscribe", "id": format!("sub-{i}"),
                            "timestamp": "", "payload": { "userIds": watched } });
        sink.send(Message::Text(frame.to_string().into())).await?;
        readers.push(tokio::spawn(read(
            stream,
            changes.clone(),
            seen.clone(),
            latency.clone(),
        )));
        sinks.push(sink);
    }
    // Let the subscriptions and the initial online announcements settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (frames0, entries0) = (
        seen.frames.load(Ordering::Relaxed),
        seen.entries.load(Ordering::Relaxed),
    );
    latency.lock().unwrap().reset();
    let redis0 = match redis {
        Some(addr) => Some(redis_commands(addr).await?),
        None => None,
    };
    let cpu0 = gateway_cpu(target).await;

    let started = Instant::now();
    let per_sec = shape.users as f64 * shape.churn_pct_per_min / 100.0 / 60.0;
    let tick = Duration::from_millis(100);
    let mut owed = 0.0;
    let mut next_user = 0usize;
    let mut changed = 0u64;
    let mut dnd = vec![false; shape.users];
    while started.elapsed() < shape.duration {
        owed += per_sec * tick.as_secs_f64();
        while owed >= 1.0 {
            owed -= 1.0;
            let u = next_user % shape.users;
            next_user += 1;
            dnd[u] = !dnd[u];
            let status = if dnd[u] { "dnd" } else { "online" };
            changes
                .lock()
                .unwrap()
                .insert(ids[u], (status.to_string(), unix_nanos()));
            let frame = json!({ "type": "presence.update", "id": format!("p-{u}-{changed}"),
                                "timestamp": "", "payload": { "status": status } });
            sinks[u]
                .send(Message::Text(frame.to_string().into()))
                .await?;
            changed += 1;
        }
        tokio::time::sleep(tick).await;
    }
    let window = started.elapsed().as_secs_f64();
    // Changes sent at the end still arrive within a batch window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let frames = seen.frames.load(Ordering::Relaxed) - frames0;
    let entries = seen.entries.load(Ordering::Relaxed) - entries0;
    let redis_ops = match (redis, redis0) {
        (Some(addr), Some(before)) => Some(redis_commands(addr).await? - before),
        _ => None,
    };
    let cpu = match (cpu0, gateway_cpu(target).await) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    for r in &readers {
        r.abort();
    }
    for mut s in sinks {
        let _ = s.close().await;
    }
    let elapsed = window + 3.0;
    let mut report = Report {
        scenario: "presence".into(),
        params: json!({ "users": shape.users, "watchEach": shape.watch,
                        "churnPctPerMin": shape.churn_pct_per_min,
                        "durationSecs": shape.duration.as_secs_f64() }),
        connections: shape.users,
        duration_secs: window,
        sent: changed,
        latency_ms: Percentiles::of(&latency.lock().unwrap()),
        ..Default::default()
    };
    let x = &mut report.extra;
    x.insert("changes_per_sec".into(), changed as f64 / window);
    x.insert("presence_frames_per_sec".into(), frames as f64 / elapsed);
    x.insert("presence_entries_per_sec".into(), entries as f64 / elapsed);
    x.insert(
        "entries_per_change".into(),
        entries as f64 / (changed as f64).max(1.0),
    );
    if let Some(ops) = redis_ops {
        x.insert("redis_commands_per_sec".into(), ops as f64 / elapsed);
        x.insert(
            "redis_commands_per_change".into(),
            ops as f64 / (changed as f64).max(1.0),
        );
    }
    if let Some(cpu) = cpu {
        x.insert("gateway_cpu_percent".into(), cpu / elapsed * 100.0);
    }
    Ok(report)
}

/// Counts `presence.changed` frames and entries; an entry matching the
/// latest change sent for its user records the change-to-watcher latency.
async fn read(
    mut stream: conn::Stream,
    changes: Changes,
    seen: Arc<Seen>,
    latency: Arc<Mutex<Histogram<u64>>>,
) {
    while let Some(Ok(msg)) = stream.next().await {
        let Message::Text(text) = msg else { continue };
        if !text.as_str().starts_with("{\"type\":\"presence.changed\"") {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let now = unix_nanos();
        seen.frames.fetch_add(1, Ordering::Relaxed);
        for e in v["payload"]["changes"].as_array().into_iter().flatten() {
            seen.entries.fetch_add(1, Ordering::Relaxed);
            let (Some(user), Some(status)) = (e["userId"].as_i64(), e["status"].as_str()) else {
                continue;
            };
            let sent = changes.lock().unwrap().get(&user).cloned();
            if let Some((want, at)) = sent {
                if want == status {
                    let us = now.saturating_sub(at) / 1000;
                    let _ = latency.lock().unwrap().record(us.max(1));
                }
            }
        }
    }
}

/// Redis's `total_commands_processed` (INFO stats).
async fn redis_commands(addr: &str) -> Result<u64> {
    let stats = crate::redis_info::section(addr, "stats").await?;
    Ok(crate::redis_info::field(&stats, "total_commands_processed") as u64)
}

/// Sum of the gateways' `process_cpu_seconds_total`, when known.
async fn gateway_cpu(target: &Target) -> Option<f64> {
    if target.metrics.is_empty() {
        return None;
    }
    crate::connections::gateway_metric(target, "process_cpu_seconds_total")
        .await
        .ok()
}
