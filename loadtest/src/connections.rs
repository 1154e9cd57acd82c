//! Connection scenarios: `idle` (hold N idle connections and measure the
//! gateways' resident memory per connection) and `ramp` (open N
//! connections at a fixed rate and measure handshake latency).

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{stream, StreamExt};
use serde_json::json;
use tokio::time::Instant;

use crate::{
    client::Api,
    conn,
    report::{histogram, Percentiles, Report},
    target::Target,
    traffic::{signup_many, tag},
};

/// Tokens for `n` connections, `per_user` connections per user (the
/// gateways' MAX_CONNECTIONS_PER_USER must allow it).
pub async fn tokens(target: &Target, n: usize, per_user: usize) -> Result<Vec<String>> {
    let users = n.div_ceil(per_user.max(1));
    let accounts = signup_many(&Api::new(&target.api), users, &tag()).await?;
    Ok((0..n).map(|i| accounts[i % users].token.clone()).collect())
}

/// Sum of the gateways' resident memory, from their `/metrics`.
pub async fn gateway_rss(target: &Target) -> Result<u64> {
    Ok(gateway_metric(target, "process_resident_memory_bytes").await? as u64)
}

/// Sum over the gateways of one unlabelled metric on their `/metrics`.
pub async fn gateway_metric(target: &Target, name: &str) -> Result<f64> {
    let http = crate::tls::http_client();
    let mut total = 0.0;
    for base in &target.metrics {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let line = text
            .lines()
            .find(|l| l.contains(&format!("{name} ")) && !l.starts_with('#'))
            .with_context(|| format!("{base}/metrics has no {name}"))?;
        total += line.rsplit(' ').next().unwrap_or("0").parse::<f64>()?;
    }
    Ok(total)
}

pub async fn idle(target: &Target, n: usize, per_user: usize, hold: Duration) -> Result<Report> {
    anyhow::ensure!(
        !target.metrics.is_empty(),
        "idle needs --gateway URLs to read memory from"
    );
    let tokens = tokens(target, n, per_user).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = gateway_rss(target).await?;
    let started = Instant::now();
    let mut connect = histogram();
    let mut open = Vec::with_capacity(n);
    let mut errors = 0;
    let results: Vec<_> = stream::iter(tokens.iter().enumerate())
        .map(|(i, t)| {
            let url = target.ws_url(i, t);
            async move { conn::connect(&url, i).await }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    for r in results {
        match r {
            Ok((sink, stream, us)) => {
                let _ = connect.record(us.max(1));
                // Keep reading so server pings are answered.
                open.push((sink, tokio::spawn(drain(stream))));
            }
            Err(_) => errors += 1,
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(hold).await;
    let after = gateway_rss(target).await?;
    let held = open.len();
    for (_, reader) in &open {
        reader.abort();
    }
    drop(open);
    let mut report = Report {
        scenario: "idle".into(),
        params: json!({ "connections": n, "perUser": per_user, "holdSecs": hold.as_secs_f64() }),
        connections: held,
        duration_secs: connect_secs,
        errors,
        connect_ms: Percentiles::of(&connect),
        rss_per_conn_kib: (held > 0)
            .then(|| (after.saturating_sub(before)) as f64 / held as f64 / 1024.0),
        ..Default::default()
    };
    report
        .extra
        .insert("rss_before_mib".into(), before as f64 / 1048576.0);
    report
        .extra
        .insert("rss_after_mib".into(), after as f64 / 1048576.0);
    report.extra.insert(
        "connections_per_sec".into(),
        held as f64 / connect_secs.max(0.001),
    );
    Ok(report)
}

async fn drain(mut stream: conn::Stream) {
    while let Some(Ok(_)) = stream.next().await {}
}

pub async fn ramp(target: &Target, n: usize, rate: f64, per_user: usize) -> Result<Report> {
    let tokens = tokens(target, n, per_user).await?;
    let start = Instant::now() + Duration::from_millis(100);
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = Vec::with_capacity(n);
    for (i, token) in tokens.into_iter().enumerate() {
        let url = target.ws_url(i, &token);
        let at = start + period * i as u32;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            // Measured from the scheduled start: a backlog shows as latency.
            let r = conn::connect(&url, i).await;
            (at.elapsed().as_micros() as u64, r)
        }));
    }
    let mut connect = histogram();
    let mut errors = 0;
    let mut open = Vec::new();
    for t in tasks {
        let (us, r) = t.await?;
        match r {
            Ok(c) => {
                let _ = connect.record(us.max(1));
                open.push(c);
            }
            Err(_) => errors += 1,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let held = open.len();
    drop(open);
    let mut report = Report {
        scenario: "ramp".into(),
        params: json!({ "connections": n, "ratePerSec": rate }),
        connections: held,
        duration_secs: secs,
        errors,
        connect_ms: Percentiles::of(&connect),
        ..Default::default()
    };
    report.extra.insert(
        "achieved_connections_per_sec".into(),
        held as f64 / secs.max(0.001),
    );
    Ok(report)
}
