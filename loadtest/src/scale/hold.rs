//! `loadtest hold`: one process's share of `loadtest scale`. A process
//! may hold only as many sockets as its open-files limit allows (20,000
//! here), so the scale scenario runs many of these, each from its own
//! loopback source address (whose ephemeral ports it then has to itself).
//!
//! The coordinator drives it through stdin/stdout, one JSON line per phase:
//! it signs up its users and says `tokens`; on `connect` it opens its
//! connections and says `ready` with what it measured; on `close` (or when
//! stdin closes, or at `--max-secs` whatever happens) it closes them and
//! exits. Every phase waits at most until the deadline.

use std::{collections::BTreeSet, net::Ipv4Addr, time::Duration};

use anyhow::{bail, Result};
use futures::{stream, SinkExt, StreamExt};
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines, Stdin},
    time::Instant,
};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    conn,
    connections::tokens,
    report::{histogram, Percentiles},
    target::Target,
};

/// Distinct connect errors a process reports (the rest are only counted).
const ERROR_SAMPLES: usize = 5;
/// How often a held connection sends a `ping` frame (well inside the
/// gateways' default `IDLE_TIMEOUT_MS` of 5 minutes).
const KEEPALIVE: Duration = Duration::from_secs(120);

/// One process's share.
#[derive(Debug, Clone, clap::Args)]
pub struct HoldArgs {
    /// Loopback source address of every connection of this process.
    #[arg(long)]
    pub source: Ipv4Addr,
    #[arg(long)]
    pub connections: usize,
    /// Connections per signed-up user.
    #[arg(long, default_value_t = 10)]
    pub per_user: usize,
    /// WebSocket read and write buffer of each client connection, bytes.
    #[arg(long, default_value_t = 1024)]
    pub buffer: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Exit by then whatever happens.
    #[arg(long, default_value_t = 900)]
    pub max_secs: u64,
}

pub async fn run(target: &Target, a: &HoldArgs) -> Result<()> {
    if !a.source.is_loopback() {
        bail!("--source must be a loopback address, not {}", a.source);
    }
    let deadline = Instant::now() + Duration::from_secs(a.max_secs);
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let tokens = tokens(target, a.connections, a.per_user).await?;
    say(json!({ "phase": "tokens", "users": a.connections.div_ceil(a.per_user.max(1)) }));
    if !wait_for(&mut stdin, "connect", deadline).await {
        return Ok(());
    }
    let started = Instant::now();
    let results: Vec<_> = stream::iter(tokens.iter().enumerate())
        .map(|(i, t)| {
            let url = target.ws_url(i, t);
            async move {
                // Read at once, not after the last connect: the server
                // closes a connection that leaves its pings unanswered.
                let (sink, stream, us) = conn::connect_from(&url, a.source, a.buffer).await?;
                anyhow::Ok((tokio::spawn(keep(sink, stream)), us))
            }
        })
        .buffer_unordered(a.concurrency.max(1))
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    let mut connect = histogram();
    let mut samples = BTreeSet::new();
    let (mut open, mut errors) = (Vec::with_capacity(results.len()), 0u64);
    for r in results {
        match r {
            Ok((task, us)) => {
                let _ = connect.record(us.max(1));
                open.push(task);
            }
            Err(e) => {
                errors += 1;
                if samples.len() < ERROR_SAMPLES {
                    samples.insert(format!("{e:#}"));
                }
            }
        }
    }
    let closed = open.iter().filter(|t| t.is_finished()).count();
    say(json!({
        "phase": "ready",
        "connections": open.len() - closed,
        "closedBeforeReady": closed,
        "errors": errors,
        "errorSamples": samples,
        "connectMs": Percentiles::of(&connect),
        "connectSecs": secs,
        "rssKib": own_rss_kib(),
    }));
    wait_for(&mut stdin, "close", deadline).await;
    for task in &open {
        task.abort();
    }
    drop(open);
    say(json!({ "phase": "closed" }));
    Ok(())
}

/// Waits for `word` on stdin; false when stdin closed or the deadline
/// passed first.
async fn wait_for(stdin: &mut Lines<BufReader<Stdin>>, word: &str, deadline: Instant) -> bool {
    loop {
        match tokio::time::timeout_at(deadline, stdin.next_line()).await {
            Ok(Ok(Some(line))) if line.trim() == word => return true,
            Ok(Ok(Some(_))) => continue,
            _ => return false,
        }
    }
}

fn say(line: serde_json::Value) {
    println!("{line}");
}

/// Holds one connection open: reads everything (so server pings are
/// answered) and sends a `ping` frame every [`KEEPALIVE`], as a client
/// must (the gateway closes connections silent for `IDLE_TIMEOUT_MS`).
async fn keep(mut sink: conn::Sink, mut stream: conn::Stream) {
    let mut n = 0u64;
    // One clock across frames: the server's own pings must not postpone ours.
    let mut due = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
    loop {
        tokio::select! {
            msg = stream.next() => {
                if !matches!(msg, Some(Ok(_))) {
                    return;
                }
            }
            _ = due.tick() => {
                n += 1;
                let ping = format!(r#"{{"type":"ping","id":"k{n}","payload":{{}}}}"#);
                if sink.send(Message::Text(ping.into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// This process's resident memory, KiB.
fn own_rss_kib() -> u64 {
    super::system::status_kib("self", "VmRSS").unwrap_or(0)
}
