//! `notify`: what notifications cost. Pairs of users in direct chats; each
//! sender sends at a fixed rate. Half the recipients are connected (not
//! focused on the chat): the time from a message's scheduled send to its
//! `notification.toast` is the toast latency. The other half are offline
//! with a webhook device pointing at a receiver this scenario starts on
//! loopback: pushes per second through the push worker, and the time from
//! send to the push's arrival. The pool's worker needs
//! `PUSH_WEBHOOK_SECRET` and `PUSH_WEBHOOK_ALLOW_HTTP=1` (`make bench`
//! sets them).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use futures::{SinkExt, StreamExt};
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

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Sender/recipient pairs (half of the recipients online).
    pub pairs: usize,
    /// Messages per second per sender.
    pub rate: f64,
    pub duration: Duration,
}

/// `t=<unix ns>` in a message, read back from a toast body or push.
fn stamp(text: &str) -> Option<u64> {
    text.split("t=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub async fn run(target: &Target, shape: Shape) -> Result<Report> {
    anyhow::ensure!(shape.pairs >= 2, "at least 2 pairs");
    let api = Api::new(&target.api);
    let accounts = signup_many(&api, shape.pairs * 2, &tag())
        .await
        .context("signing up users")?;
    let (senders, recipients) = accounts.split_at(shape.pairs);
    let mut chats = Vec::with_capacity(shape.pairs);
    for (s, r) in senders.iter().zip(recipients) {
        chats.push(api.create_chat(s, "single", None, &[r.id]).await?);
    }
    // The push receiver.
    let pushes: Arc<Mutex<Histogram<u64>>> = Arc::new(Mutex::new(histogram()));
    let times: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (p, t) = (pushes.clone(), times.clone());
    // One URL per device: a device (platform + token) belongs to one user.
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            let (p, t) = (p.clone(), t.clone());
            async move {
                let now = unix_nanos();
                if let Some(sent) = v["body"].as_str().and_then(stamp) {
                    let _ = p
                        .lock()
                        .unwrap()
                        .record((now.saturating_sub(sent) / 1000).max(1));
                }
                t.lock().unwrap().push(now);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let offline = &recipients[shape.pairs / 2..];
    for (i, r) in offline.iter().enumerate() {
        let device = json!({ "platform": "webhook", "token": format!("{hook}?device={i}") });
        api.post("/api/me/devices", Some(&r.token), device).await?;
    }
    // Online recipients read toasts.
    let toasts: Arc<Mutex<Histogram<u64>>> = Arc::new(Mutex::new(histogram()));
    let toast_frames = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut readers = Vec::new();
    for (i, r) in recipients[..shape.pairs / 2].iter().enumerate() {
        let (_sink, mut stream, _) = conn::connect(&target.ws_url(i, &r.token), i).await?;
        let (toasts, frames) = (toasts.clone(), toast_frames.clone());
        readers.push(tokio::spawn(async move {
            let _keep = _sink;
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                if !text
                    .as_str()
                    .starts_with("{\"type\":\"notification.toast\"")
                {
                    continue;
                }
                let now = unix_nanos();
                frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Grouped toasts ("N new messages") carry no preview to
                // time: the latency is that of each group's first toast.
                let v: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                if let Some(sent) = v["payload"]["body"].as_str().and_then(stamp) {
                    let _ = toasts
                        .lock()
                        .unwrap()
                        .record((now.saturating_sub(sent) / 1000).max(1));
                }
            }
        }));
    }
    // Senders.
    let started = Instant::now();
    let period = Duration::from_secs_f64(1.0 / shape.rate);
    let mut tasks = Vec::new();
    for (i, (s, chat)) in senders.iter().zip(&chats).enumerate() {
        let (mut sink, mut stream, _) = conn::connect(&target.ws_url(i, &s.token), i).await?;
        let (chat, deadline) = (*chat, started + shape.duration);
        tasks.push(tokio::spawn(async move {
            let drain = tokio::spawn(async move { while stream.next().await.is_some() {} });
            let mut at = Instant::now();
            let mut sent = 0u64;
            while at < deadline {
                tokio::time::sleep_until(at).await;
                let frame = json!({ "type": "message.send", "id": format!("n{i}-{sent}"), "timestamp": "",
                    "payload": { "chatId": chat, "content": format!("ping t={}", unix_nanos()) } });
                if sink.send(Message::Text(frame.to_string().into())).await.is_err() {
                    break;
                }
                sent += 1;
                at += period;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            drain.abort();
            sent
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await?;
    }
    for r in readers {
        r.abort();
    }
    server.abort();
    let toast = toasts.lock().unwrap().clone();
    let push = pushes.lock().unwrap().clone();
    let arrivals = times.lock().unwrap().clone();
    let push_secs = match (arrivals.iter().min(), arrivals.iter().max()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
        _ => f64::NAN,
    };
    let mut report = Report {
        scenario: "notify".into(),
        params: json!({ "pairs": shape.pairs, "ratePerSender": shape.rate,
                        "durationSecs": shape.duration.as_secs_f64() }),
        connections: shape.pairs + shape.pairs / 2,
        duration_secs: shape.duration.as_secs_f64(),
        sent,
        latency_ms: Percentiles::of(&toast),
        ..Default::default()
    };
    let x = &mut report.extra;
    x.insert("toasts_timed".into(), toast.len() as f64);
    x.insert(
        "toast_frames".into(),
        toast_frames.load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
    x.insert("pushes".into(), arrivals.len() as f64);
    x.insert("pushes_per_sec".into(), arrivals.len() as f64 / push_secs);
    if let Some(p) = Percentiles::of(&push) {
        x.insert("push_latency_p50_ms".into(), p.p50);
        x.insert("push_latency_p99_ms".into(), p.p99);
    }
    Ok(report)
}
