//! One load-test connection: connect (spreading source addresses over
//! 127.0.0.0/8 so tens of thousands of sockets do not exhaust one address's
//! ephemeral ports), send scheduled messages, read and account for frames.
//!
//! Timing is coordinated-omission aware: every message carries the time it
//! was *scheduled* to be sent, and latencies are measured from that time,
//! so a stalled sender shows up as latency instead of silently sending
//! fewer messages.

use std::{
    collections::{HashMap, HashSet},
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{anyhow, Context, Result};
use futures::{
    stream::{SplitSink, SplitStream},
    SinkExt, StreamExt,
};
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::{net::TcpSocket, net::TcpStream, sync::watch, time::Instant};
use tokio_tungstenite::{
    tungstenite::{protocol::WebSocketConfig, Message},
    MaybeTlsStream, WebSocketStream,
};

use crate::report::histogram;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type Sink = SplitSink<Ws, Message>;
pub type Stream = SplitStream<Ws>;

/// Live totals shown by the progress line.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub errors: AtomicU64,
    pub delivered: AtomicU64,
    /// Deliveries owed for acked messages (members of the chat).
    pub expected: AtomicU64,
    /// Messages told by `chat.summary` instead of delivered.
    pub summarized: AtomicU64,
    /// When the latest delivery arrived (Unix nanoseconds), for throughput.
    pub last_delivery: AtomicU64,
}

pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

/// Connects connection number `n` to `url` and waits for `session.ready`.
/// Returns the halves and the handshake time in microseconds.
pub async fn connect(url: &str, n: usize) -> Result<(Sink, Stream, u64)> {
    let source = Ipv4Addr::new(127, 0, (n / 250 % 250) as u8, (n % 250) as u8 + 1);
    connect_from(url, source, 8 * 1024).await
}

/// [`connect`] from a given loopback `source` address with WebSocket
/// buffers of `buffer` bytes (small for idle connections held by the
/// hundred thousand).
pub async fn connect_from(
    url: &str,
    source: Ipv4Addr,
    buffer: usize,
) -> Result<(Sink, Stream, u64)> {
    let started = Instant::now();
    let addr = socket_addr(url)?;
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .context("binding a loopback source address")?;
    let tcp = socket
        .connect(addr)
        .await
        .with_context(|| format!("TCP connect to {addr}"))?;
    tcp.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(buffer)
        .write_buffer_size(buffer);
    // `wss://` goes through TLS with the trusted certificates (see tls.rs).
    let (ws, _) = tokio_tungstenite::client_async_tls_with_config(
        url,
        tcp,
        Some(config),
        crate::tls::ws_connector(),
    )
    .await
    .context("WebSocket upgrade")?;
    let (sink, mut stream) = ws.split();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains("\"session.ready\"") => break,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => return Err(anyhow!("closed before session.ready")),
            Err(_) => return Err(anyhow!("no session.ready within 30 s")),
        }
    }
    Ok((sink, stream, started.elapsed().as_micros() as u64))
}

fn socket_addr(url: &str) -> Result<SocketAddr> {
    let parsed = reqwest::Url::parse(url)?;
    let host = match parsed.host_str() {
        Some("localhost") | None => "127.0.0.1".to_string(),
        Some(h) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
    };
    let port = parsed.port_or_known_default().unwrap_or(80);
    Ok(SocketAddr::new(host.parse()?, port))
}

/// Sends `message.send` to `chat` at `rate` per second from `start` until
/// `until`, stamping each with its scheduled time.
#[allow(clippy::too_many_arguments)]
pub async fn send_loop(
    mut sink: Sink,
    sender: usize,
    chat: i64,
    rate: f64,
    start: Instant,
    start_unix: u64,
    until: Instant,
    counters: Arc<Counters>,
) -> Sink {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut n: u64 = 0;
    loop {
        let offset = period * n as u32;
        let at = start + offset;
        if at >= until {
            return sink;
        }
        tokio::time::sleep_until(at).await;
        let intended = start_unix + offset.as_nanos() as u64;
        let frame = format!(
            r#"{{"type":"message.send","id":"lt-{sender}-{n}-{intended}","timestamp":"","payload":{{"chatId":{chat},"content":"lt|{intended}|{sender}"}}}}"#
        );
        if sink.send(Message::Text(frame.into())).await.is_err() {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            return sink;
        }
        counters.sent.fetch_add(1, Ordering::Relaxed);
        n += 1;
    }
}

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    chat_id: Option<i64>,
    /// The message of a `message.new`; an `error`'s payload has a text
    /// `message` instead (it must still parse, or the error goes uncounted).
    message: Option<MessageField>,
    ref_id: Option<String>,
    seq: Option<i64>,
    /// Of a `chat.summary`.
    new_messages: Option<u64>,
    last_seq: Option<i64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MessageField {
    Message(Msg),
    Text(#[allow(dead_code)] String),
}

#[derive(Deserialize)]
struct Msg {
    seq: i64,
    content: String,
}

/// What one connection saw of one chat.
#[derive(Default, Debug)]
pub struct ChatSeen {
    pub seen: HashSet<i64>,
    pub last: i64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// `chat.summary` frames (summary mode), and the seq ranges they
    /// covered: (after, upto], from the last message received live (or
    /// the previous summary) to the summary's `lastSeq`.
    pub summaries: u64,
    pub covered: Vec<(i64, i64)>,
    /// Summaries whose `newMessages` is not the length of their range
    /// (seqs are gap-free, and a connection with a constant focus gets
    /// none of a summarized range live).
    pub miscounts: u64,
}

impl ChatSeen {
    /// A `chat.summary` of `n` new messages up to `upto`: it covers the
    /// seqs after the last one received live or covered before.
    pub fn on_summary(&mut self, n: u64, upto: i64) {
        self.summaries += 1;
        let after = self
            .covered
            .last()
            .map_or(self.last, |c| c.1.max(self.last));
        if n != (upto - after).max(0) as u64 {
            self.miscounts += 1;
        }
        if upto > after {
            self.covered.push((after, upto));
        }
    }

    /// Was `seq` told by a summary rather than delivered?
    pub fn covered(&self, seq: i64) -> bool {
        self.covered.iter().any(|&(a, b)| a < seq && seq <= b)
    }
}

/// What one connection measured.
pub struct ReaderStats {
    pub latency: Histogram<u64>,
    pub ack: Histogram<u64>,
    pub chats: HashMap<i64, ChatSeen>,
    /// (chat, seq) of this connection's acked messages.
    pub acked: Vec<(i64, i64)>,
    /// Text frames received, of any type.
    pub frames: u64,
}

/// Reads frames until `stop` flips, accounting for deliveries and acks.
/// A sending connection sends to `send_chat`, which has `members` member
/// connections: each ack adds that many owed deliveries to
/// `counters.expected`.
pub async fn read_loop(
    mut stream: Stream,
    mut stop: watch::Receiver<bool>,
    send_chat: Option<(i64, u64)>,
    counters: Arc<Counters>,
) -> ReaderStats {
    let mut stats = ReaderStats {
        latency: histogram(),
        ack: histogram(),
        chats: HashMap::new(),
        acked: Vec::new(),
        frames: 0,
    };
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = stop.changed() => break,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            _ => break,
        };
        let now = unix_nanos();
        stats.frames += 1;
        let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else {
            continue;
        };
        let Some(p) = frame.payload else { continue };
        match frame.kind.as_str() {
            "message.new" => {
                let (Some(chat), Some(MessageField::Message(m))) = (p.chat_id, p.message) else {
                    continue;
                };
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                counters.last_delivery.fetch_max(now, Ordering::Relaxed);
                if let Some(sent) = m
                    .content
                    .split('|')
                    .nth(1)
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    let _ = stats
                        .latency
                        .record((now.saturating_sub(sent) / 1000).max(1));
                }
                let seen = stats.chats.entry(chat).or_default();
                if !seen.seen.insert(m.seq) {
                    seen.duplicated += 1;
                } else if m.seq < seen.last {
                    seen.out_of_order += 1;
                }
                seen.last = seen.last.max(m.seq);
            }
            "ack" => {
                let Some(r) = p.ref_id else { continue };
                let mut parts = r.split('-');
                if parts.next() != Some("lt") {
                    continue;
                }
                counters.acked.fetch_add(1, Ordering::Relaxed);
                if let Some(sent) = parts.nth(2).and_then(|t| t.parse::<u64>().ok()) {
                    let _ = stats.ack.record((now.saturating_sub(sent) / 1000).max(1));
                }
                if let (Some(seq), Some((chat, members))) = (p.seq, send_chat) {
                    stats.acked.push((chat, seq));
                    counters.expected.fetch_add(members, Ordering::Relaxed);
                }
            }
            "error" => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            "chat.summary" => {
                let (Some(chat), Some(n), Some(upto)) = (p.chat_id, p.new_messages, p.last_seq)
                else {
                    continue;
                };
                stats.chats.entry(chat).or_default().on_summary(n, upto);
                counters.summarized.fetch_add(n, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_cover_what_came_after_the_last_live_message() {
        let mut c = ChatSeen {
            last: 3,
            ..Default::default()
        };
        c.on_summary(4, 7); // 4-7
        c.on_summary(2, 9); // 8-9
        c.on_summary(0, 9); // the live one: nothing new
        assert_eq!(c.covered, [(3, 7), (7, 9)]);
        assert_eq!(c.miscounts, 0);
        c.last = 12; // 10-12 live again
        c.on_summary(5, 15); // 13-15 is 3 messages, not 5
        assert_eq!(c.miscounts, 1);
        assert!(c.covered(8) && !c.covered(11) && c.covered(15));
    }

    #[test]
    fn error_frames_parse_so_they_are_counted() {
        let error = r#"{"type":"error","id":"x","payload":{"refId":"lt-1-2-3","code":"unavailable","message":"message ingest is saturated, retry after 500 ms","retryAfterMs":500}}"#;
        let f: Frame = serde_json::from_str(error).unwrap();
        assert_eq!(f.kind, "error");
        assert_eq!(f.payload.unwrap().ref_id.as_deref(), Some("lt-1-2-3"));
        let new =
            r#"{"type":"message.new","payload":{"chatId":4,"message":{"seq":7,"content":"x|1"}}}"#;
        let f: Frame = serde_json::from_str(new).unwrap();
        let p = f.payload.unwrap();
        assert!(matches!(
            p.message,
            Some(MessageField::Message(Msg { seq: 7, .. }))
        ));
    }
}
