//! Realtime test harness: several gateways and workers sharing one fresh
//! database and one Redis key prefix, and a small WebSocket client.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use fechatter_shared::Config;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, protocol::frame::coding::CloseCode, Message},
    MaybeTlsStream, WebSocketStream,
};
use tokio_util::sync::CancellationToken;

use super::{spawn_with, TestApp, TestUser};

/// Gateways and workers of one test.
pub struct Pool {
    pub pool: PgPool,
    pub config: Config,
    pub gateways: Vec<TestApp>,
    pub workers: Vec<TestWorker>,
}

pub struct TestWorker {
    /// `http://127.0.0.1:<port>`: the worker's `/metrics` and `/health/simple`.
    pub base: String,
    pub shutdown: CancellationToken,
    pub hooks: Arc<worker::Hooks>,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Pool {
    /// `gateways` gateways and one worker.
    pub async fn start(pool: PgPool, gateways: usize) -> Self {
        Self::start_with(pool, gateways, |_| {}).await
    }

    pub async fn start_with(pool: PgPool, gateways: usize, tweak: impl Fn(&mut Config)) -> Self {
        let mut p = Self::start_without_worker(pool, gateways, tweak).await;
        p.add_worker().await;
        p
    }

    /// Gateways only; the test starts workers itself.
    pub async fn start_without_worker(
        pool: PgPool,
        gateways: usize,
        tweak: impl Fn(&mut Config),
    ) -> Self {
        let mut config = Config::for_tests(&super::database_url(&pool));
        config.ingest_shards = 4;
        tweak(&mut config);
        let mut out = Self {
            pool: pool.clone(),
            config: config.clone(),
            gateways: Vec::new(),
            workers: Vec::new(),
        };
        for i in 0..gateways {
            let mut c = config.clone();
            c.instance_id = format!("gw{i}");
            let app = spawn_with(pool.clone(), |cfg| *cfg = c.clone()).await;
            out.gateways.push(app);
        }
        out
    }

    /// Starts one more worker (in-process) with a fresh instance id.
    pub async fn add_worker(&mut self) -> Arc<worker::Hooks> {
        let c = self.config.clone();
        self.add_worker_with(c).await
    }

    /// Starts a worker with its own configuration (e.g. another DATABASE_URL).
    pub async fn add_worker_with(&mut self, mut c: Config) -> Arc<worker::Hooks> {
        c.instance_id = format!("worker{}", uuid::Uuid::new_v4().simple());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let hooks = Arc::new(worker::Hooks::default());
        let handle = tokio::spawn(worker::run_with_hooks(
            c,
            listener,
            shutdown.clone(),
            hooks.clone(),
        ));
        self.workers.push(TestWorker {
            base,
            shutdown,
            hooks: hooks.clone(),
            handle,
        });
        hooks
    }

    pub fn gw(&self, i: usize) -> &TestApp {
        &self.gateways[i]
    }

    /// Ada and Bob of one workspace with a single chat between them.
    pub async fn pair(&self) -> (TestUser, TestUser, i64) {
        let ada = self.gw(0).signup("Ada", "Acme").await;
        let bob = self.gw(0).signup("Bob", "Acme").await;
        let chat = self
            .gw(0)
            .create_chat(&ada, "single", None, &[bob.id])
            .await["id"]
            .as_i64()
            .unwrap();
        (ada, bob, chat)
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client speaking the Fechatter protocol.
pub struct Client {
    pub ws: Socket,
    pub user: TestUser,
    /// The `session.ready` frame this connection began with.
    pub ready: Value,
    next: u64,
    /// Every ack/error seen, by refId, so `answer` finds answers that
    /// arrived while waiting for something else.
    answers: std::collections::HashMap<String, Value>,
}

/// Default wait for an expected frame.
pub const WAIT: Duration = Duration::from_secs(10);

impl Client {
    /// Connects with `?token=` and waits for `session.ready`.
    pub async fn connect(app: &TestApp, user: &TestUser) -> Self {
        let url = format!("{}?token={}", app.ws_url(), user.token);
        Self::open(url.into_client_request().unwrap(), user).await
    }

    /// Connects to the gateway at `base` (http://host:port) with `?token=`.
    pub async fn connect_url(base: &str, user: &TestUser) -> Self {
        let url = format!(
            "{}/ws?token={}",
            base.replacen("http://", "ws://", 1),
            user.token
        );
        Self::open(url.into_client_request().unwrap(), user).await
    }

    /// Connects with the token in the Authorization header.
    pub async fn connect_with_header(app: &TestApp, user: &TestUser) -> Self {
        let mut req = app.ws_url().into_client_request().unwrap();
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", user.token).parse().unwrap(),
        );
        Self::open(req, user).await
    }

    async fn open(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
        user: &TestUser,
    ) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket connects");
        let mut c = Self {
            ws,
            user: user.clone(),
            ready: Value::Null,
            next: 0,
            answers: Default::default(),
        };
        c.ready = c.expect("session.ready").await;
        c
    }

    /// Sends a frame with a fresh id; returns the id.
    pub async fn send(&mut self, kind: &str, payload: Value) -> String {
        self.next += 1;
        let id = format!("{}-{}", uuid::Uuid::new_v4().simple(), self.next);
        self.send_with_id(&id, kind, payload).await;
        id
    }

    pub async fn send_with_id(&mut self, id: &str, kind: &str, payload: Value) {
        let frame = json!({ "type": kind, "id": id, "timestamp": chrono::Utc::now().to_rfc3339(), "payload": payload });
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends a message; returns the frame id.
    pub async fn say(&mut self, chat: i64, content: &str) -> String {
        self.send(
            "message.send",
            json!({ "chatId": chat, "content": content }),
        )
        .await
    }

    /// The next JSON frame, or None on timeout / close.
    pub async fn next_frame(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("server sends JSON");
                    if v["type"] == "ack" || v["type"] == "error" {
                        if let Some(r) = v["payload"]["refId"].as_str() {
                            self.answers.insert(r.to_string(), v.clone());
                        }
                    }
                    return Some(v);
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Skips frames until one of `kind` arrives; panics on timeout.
    pub async fn expect(&mut self, kind: &str) -> Value {
        self.expect_where(kind, |_| true).await
    }

    pub async fn expect_where(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await {
                Some(f) if f["type"] == kind && pred(&f) => return f,
                Some(_) => continue,
                None => panic!("no {kind} frame within {WAIT:?} for user {}", self.user.id),
            }
        }
    }

    /// The ack or error answering frame `id`, or None when none came
    /// within `wait` (a real client then retries with the same id).
    pub async fn try_answer(&mut self, id: &str, wait: Duration) -> Option<Value> {
        if let Some(v) = self.answers.remove(id) {
            return Some(v);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            self.next_frame(left).await?;
            if let Some(v) = self.answers.remove(id) {
                return Some(v);
            }
        }
    }

    /// The ack or error answering frame `id`.
    pub async fn answer(&mut self, id: &str) -> Value {
        if let Some(v) = self.answers.remove(id) {
            return v;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame(left).await {
                Some(f)
                    if (f["type"] == "ack" || f["type"] == "error")
                        && f["payload"]["refId"] == id =>
                {
                    self.answers.remove(id);
                    return f;
                }
                Some(_) => continue,
                None => panic!("no answer to {id}"),
            }
        }
    }

    /// Collects every frame of `kind` arriving within `wait`.
    pub async fn collect(&mut self, kind: &str, wait: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.next_frame(left).await {
                Some(f) if f["type"] == kind => out.push(f),
                Some(_) => {}
                None => return out,
            }
        }
    }

    /// Waits for the server's close frame; returns its code.
    pub async fn closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return None,
                Err(_) => panic!("connection not closed within {WAIT:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// Seqs of the `message.new` frames, in arrival order.
pub fn seqs(frames: &[Value]) -> Vec<i64> {
    frames
        .iter()
        .map(|f| f["payload"]["message"]["seq"].as_i64().unwrap())
        .collect()
}
