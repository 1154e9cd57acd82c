//! A chat client that behaves like a real one under failures, so the
//! chaos scenario measures what users would see rather than what a naive
//! load generator sees: it reconnects with exponential backoff and jitter,
//! asks `sync.request` from the last seq it holds after every reconnect
//! and on every gap, drops repeated events by frame id, applies events in
//! seq order (buffering ones that arrive ahead of a gap), and retries a
//! write that got no answer within 5 s with the same frame id, or (option)
//! right after a reconnect (docs/protocol.md, Frames and Sync).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{json, Value};
use tokio::{sync::watch, time::Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::conn;

/// A write with no answer is sent again (same frame id) after this long.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Longest reconnect delay before jitter.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// What every client shares with the orchestrator, read while it runs.
pub struct Shared {
    pub epoch: Instant,
    /// Per client: the highest seq it holds with nothing missing below.
    pub applied: Vec<AtomicI64>,
    pub max_acked: AtomicI64,
    /// Writes generated and not yet acked.
    pub pending: AtomicI64,
    /// Senders generate messages while this is set.
    pub sending: AtomicBool,
}

impl Shared {
    pub fn secs(&self, at: Instant) -> f64 {
        at.duration_since(self.epoch).as_secs_f64()
    }
}

pub struct Spec {
    pub idx: usize,
    pub url: String,
    pub chat: i64,
    /// Messages per second this client sends (0: it only reads).
    pub rate: f64,
    pub backoff: Duration,
    pub resend_on_reconnect: bool,
}

/// One write and what became of it (times in seconds since the epoch).
#[derive(Debug, Clone)]
pub struct Write {
    pub id: String,
    pub first: f64,
    pub attempts: u32,
    pub ack: Option<(i64, f64)>,
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct Log {
    /// Seqs in the order they were applied (shown to the user).
    pub applied: Vec<i64>,
    pub applied_at: HashMap<i64, f64>,
    /// Times of receptions of a frame id already seen (live or sync).
    pub raw_dups: Vec<f64>,
    /// A new frame id for a seq already held: a duplicate dedupe misses.
    pub dup_after_dedupe: u64,
    /// Events that arrived ahead of a gap and waited for it to fill.
    pub ahead_of_gap: u64,
    pub disconnects: Vec<f64>,
    pub connects: u32,
    pub connect_failures: u32,
    pub syncs: u32,
    pub sync_too_large: u32,
    pub errors: BTreeMap<String, u64>,
    pub writes: Vec<Write>,
}

struct Pending {
    w: usize,
    last: Option<Instant>,
    not_before: Instant,
}

struct State {
    spec: Spec,
    shared: Arc<Shared>,
    log: Log,
    seen: HashSet<String>,
    ahead: BTreeSet<i64>,
    last: i64,
    outbox: HashMap<String, Pending>,
    generated: u64,
    send_start: Option<Instant>,
    sync_sent: Option<(String, Instant)>,
    sync_not_before: Instant,
    want_sync: bool,
    frames: u64,
}

/// Runs until `stop` flips; returns what the client saw.
pub async fn run(spec: Spec, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) -> Log {
    let mut st = State {
        spec,
        shared,
        log: Log::default(),
        seen: HashSet::new(),
        ahead: BTreeSet::new(),
        last: 0,
        outbox: HashMap::new(),
        generated: 0,
        send_start: None,
        sync_sent: None,
        sync_not_before: Instant::now(),
        want_sync: false,
        frames: 0,
    };
    let mut failures = 0u32;
    while !*stop.borrow() {
        let url = st.spec.url.clone();
        match tokio::time::timeout(Duration::from_secs(10), conn::connect(&url, st.spec.idx)).await
        {
            Ok(Ok((sink, stream, _))) => {
                failures = 0;
                st.log.connects += 1;
                if st.session(sink, stream, &mut stop).await {
                    break;
                }
                let now = st.shared.secs(Instant::now());
                st.log.disconnects.push(now);
            }
            _ => {
                st.log.connect_failures += 1;
                failures += 1;
            }
        }
        let delay = backoff(st.spec.backoff, failures);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
        }
    }
    st.log
}

/// `base` doubled per failed attempt, capped, times a jitter of 0.5-1.5.
fn backoff(base: Duration, failures: u32) -> Duration {
    let d = base.saturating_mul(1 << failures.min(16)).min(BACKOFF_CAP);
    d.mul_f64(rand::rng().random_range(0.5..1.5))
}

impl State {
    /// One connection; true when it ended because of `stop`.
    async fn session(
        &mut self,
        mut sink: conn::Sink,
        mut stream: conn::Stream,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        self.sync_sent = None;
        // A reconnect always syncs from the last seq held.
        self.want_sync = self.log.connects > 1 || self.last > 0;
        if self.spec.resend_on_reconnect {
            for p in self.outbox.values_mut() {
                p.last = None;
            }
        }
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            let ok = tokio::select! {
                m = stream.next() => match m {
                    Some(Ok(Message::Text(t))) => self.on_frame(t.as_str(), &mut sink).await,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => false,
                    Some(Ok(_)) => true,
                },
                _ = tick.tick() => self.on_tick(&mut sink).await,
                _ = stop.changed() => {
                    let _ = sink.close().await;
                    return true;
                }
            };
            if !ok {
                return false;
            }
        }
    }

    async fn send(&mut self, sink: &mut conn::Sink, kind: &str, id: &str, payload: Value) -> bool {
        let frame = json!({ "type": kind, "id": id, "timestamp": "", "payload": payload });
        sink.send(Message::Text(frame.to_string().into()))
            .await
            .is_ok()
    }

    /// Generates due messages, (re)sends writes, asks for a sync when needed.
    async fn on_tick(&mut self, sink: &mut conn::Sink) -> bool {
        let now = Instant::now();
        self.generate(now);
        let due: Vec<String> = self
            .outbox
            .iter()
            .filter(|(_, p)| {
                p.not_before <= now && p.last.is_none_or(|l| now.duration_since(l) >= RETRY_AFTER)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(p) = self.outbox.get_mut(&id) else {
                continue;
            };
            p.last = Some(now);
            self.log.writes[p.w].attempts += 1;
            let payload = json!({ "chatId": self.spec.chat, "content": format!("chaos {id}") });
            if !self.send(sink, "message.send", &id, payload).await {
                return false;
            }
        }
        let stale = self
            .sync_sent
            .as_ref()
            .is_some_and(|(_, at)| now.duration_since(*at) >= RETRY_AFTER);
        if (self.want_sync && self.sync_sent.is_none() || stale) && self.sync_not_before <= now {
            return self.request_sync(sink, json!(self.last)).await;
        }
        true
    }

    /// Queues the messages due by `now` (each stamped with the time it
    /// was due: a client that is offline queues them, as an app would).
    fn generate(&mut self, now: Instant) {
        if self.spec.rate <= 0.0 || !self.shared.sending.load(Ordering::Relaxed) {
            return;
        }
        let start = *self.send_start.get_or_insert(now);
        let period = Duration::from_secs_f64(1.0 / self.spec.rate);
        loop {
            let at = start + period.mul_f64(self.generated as f64);
            if at > now {
                return;
            }
            let id = format!("cx{}-{}", self.spec.idx, self.generated);
            self.generated += 1;
            self.log.writes.push(Write {
                id: id.clone(),
                first: self.shared.secs(at),
                attempts: 0,
                ack: None,
            });
            self.shared.pending.fetch_add(1, Ordering::Relaxed);
            let w = self.log.writes.len() - 1;
            self.outbox.insert(
                id,
                Pending {
                    w,
                    last: None,
                    not_before: now,
                },
            );
        }
    }

    async fn request_sync(&mut self, sink: &mut conn::Sink, cursor: Value) -> bool {
        self.frames += 1;
        let id = format!("sync{}-{}", self.spec.idx, self.frames);
        self.sync_sent = Some((id.clone(), Instant::now()));
        self.want_sync = false;
        self.log.syncs += 1;
        let payload = json!({ "chats": { self.spec.chat.to_string(): cursor } });
        self.send(sink, "sync.request", &id, payload).await
    }

    async fn on_frame(&mut self, text: &str, sink: &mut conn::Sink) -> bool {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return true;
        };
        let p = &v["payload"];
        match v["type"].as_str().unwrap_or_default() {
            "message.new" => self.receive(&v),
            "sync.response" => {
                if p["tooLarge"] == true {
                    self.log.sync_too_large += 1;
                }
                for e in p["events"].as_array().into_iter().flatten() {
                    self.receive(e);
                }
                if p["hasMore"] == true {
                    return self.request_sync(sink, p["cursor"].clone()).await;
                }
                self.sync_sent = None;
                // Still a hole: events after the sync's page arrived live.
                self.want_sync = !self.ahead.is_empty();
            }
            "ack" => self.on_ack(p),
            "error" => self.on_error(p),
            _ => {}
        }
        true
    }

    fn receive(&mut self, frame: &Value) {
        let p = &frame["payload"];
        if frame["type"] != "message.new" || p["chatId"].as_i64() != Some(self.spec.chat) {
            return;
        }
        let (Some(id), Some(seq)) = (frame["id"].as_str(), p["message"]["seq"].as_i64()) else {
            return;
        };
        let now = self.shared.secs(Instant::now());
        if !self.seen.insert(id.to_string()) {
            self.log.raw_dups.push(now);
            return;
        }
        if seq <= self.last || !self.ahead.insert(seq) {
            self.log.dup_after_dedupe += 1;
            return;
        }
        while self.ahead.remove(&(self.last + 1)) {
            self.last += 1;
            self.log.applied.push(self.last);
            self.log.applied_at.insert(self.last, now);
        }
        self.shared.applied[self.spec.idx].store(self.last, Ordering::Relaxed);
        if !self.ahead.is_empty() {
            self.log.ahead_of_gap += 1;
            self.want_sync = true;
        }
    }

    fn on_ack(&mut self, p: &Value) {
        let Some(r) = p["refId"].as_str() else { return };
        if self.sync_sent.as_ref().is_some_and(|(id, _)| id == r) {
            self.sync_sent = None;
            return;
        }
        let Some(pending) = self.outbox.remove(r) else {
            return;
        };
        let now = self.shared.secs(Instant::now());
        if let Some(seq) = p["seq"].as_i64() {
            self.log.writes[pending.w].ack = Some((seq, now));
            self.shared.max_acked.fetch_max(seq, Ordering::Relaxed);
        }
        self.shared.pending.fetch_sub(1, Ordering::Relaxed);
    }

    fn on_error(&mut self, p: &Value) {
        let code = p["code"].as_str().unwrap_or("unknown").to_string();
        *self.log.errors.entry(code.clone()).or_default() += 1;
        let wait = Duration::from_millis(p["retryAfterMs"].as_u64().unwrap_or(1000));
        let Some(r) = p["refId"].as_str() else { return };
        if self.sync_sent.as_ref().is_some_and(|(id, _)| id == r) {
            self.sync_sent = None;
            self.want_sync = true;
            self.sync_not_before = Instant::now() + wait;
        } else if let Some(pending) = self.outbox.get_mut(r) {
            // Nothing was queued (rate limit, Redis away): retry, same id.
            pending.last = None;
            pending.not_before = Instant::now() + wait;
        }
    }
}
