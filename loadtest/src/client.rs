//! A minimal Fechatter client: REST sign-up and chat creation, and a
//! WebSocket session that sends frames and waits for answers.
//!
//! It is deliberately independent of the server crates except for the
//! protocol constants, so it exercises the wire format the way a third-party
//! client would.

use std::{collections::HashMap, time::Duration};

use anyhow::{anyhow, bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

/// A signed-up user.
#[derive(Debug, Clone)]
/// Which workspace a sign-up lands in.
pub enum Join {
    /// A new workspace of this name (the user owns it).
    New(String),
    /// The workspace of this invite token.
    Invite(String),
}

pub struct Account {
    pub id: i64,
    pub name: String,
    pub token: String,
}

/// REST calls against `base` (e.g. `http://127.0.0.1:8080`).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: crate::tls::http_client(),
        }
    }

    /// The underlying HTTP client (for requests the helpers do not cover).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Result<Value> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.with_context(|| format!("POST {path}"))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path} answered {status}: {body}");
        }
        Ok(body)
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Result<Value> {
        let res = self
            .http
            .patch(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("PATCH {path}"))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("PATCH {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Signs up into a new workspace named `workspace`, or with `invite`
    /// into the workspace it admits to.
    pub async fn signup(&self, name: &str, email: &str, join: &Join) -> Result<Account> {
        let mut body = json!({ "fullname": name, "email": email, "password": "demo-password-1" });
        match join {
            Join::New(workspace) => body["workspace"] = json!(workspace),
            Join::Invite(token) => body["inviteToken"] = json!(token),
        }
        let body = self.post("/api/signup", None, body).await?;
        Ok(Account {
            id: body["user"]["id"]
                .as_i64()
                .ok_or_else(|| anyhow!("no user id in {body}"))?,
            name: name.to_string(),
            token: body["accessToken"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// A multi-use invite into `owner`'s workspace, valid for a day.
    pub async fn invite(&self, owner: &Account) -> Result<String> {
        let body = self
            .post(
                "/api/workspace/invites",
                Some(&owner.token),
                json!({ "expiresInSecs": 86_400 }),
            )
            .await?;
        body["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no invite token in {body}"))
    }

    /// Creates a chat and returns its id.
    pub async fn create_chat(
        &self,
        owner: &Account,
        kind: &str,
        name: Option<&str>,
        members: &[i64],
    ) -> Result<i64> {
        let body = self
            .post(
                "/api/chat",
                Some(&owner.token),
                json!({ "type": kind, "name": name, "members": members }),
            )
            .await?;
        body["id"]
            .as_i64()
            .ok_or_else(|| anyhow!("no chat id in {body}"))
    }

    pub fn ws_url(&self, token: &str) -> String {
        let base = self
            .base
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        format!("{base}/ws?token={token}")
    }
}

/// One WebSocket session.
pub struct Session {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next: u64,
    /// Frames read while waiting for something else, oldest first.
    backlog: Vec<Value>,
    answers: HashMap<String, Value>,
}

impl Session {
    /// Connects and waits for `session.ready`.
    pub async fn connect(api: &Api, account: &Account) -> Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            api.ws_url(&account.token),
            None,
            false,
            crate::tls::ws_connector(),
        )
        .await
        .context("WebSocket connect")?;
        let mut s = Self {
            ws,
            next: 0,
            backlog: Vec::new(),
            answers: HashMap::new(),
        };
        s.wait_for(|f| f["type"] == "session.ready", Duration::from_secs(10))
            .await?;
        Ok(s)
    }

    /// Sends a frame; returns its id.
    pub async fn send(&mut self, kind: &str, payload: Value) -> Result<String> {
        self.next += 1;
        let id = format!("{}-{}", uuid::Uuid::new_v4().simple(), self.next);
        let frame =
            json!({ "type": kind, "id": id, "timestamp": now_rfc3339(), "payload": payload });
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await?;
        Ok(id)
    }

    /// Reads the next JSON frame (None on close or timeout).
    pub async fn read(&mut self, wait: Duration) -> Result<Option<Value>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Ok(None),
                Ok(Some(m)) => m?,
            };
            match next {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str())?;
                    if v["type"] == "ack" || v["type"] == "error" {
                        if let Some(r) = v["payload"]["refId"].as_str() {
                            self.answers.insert(r.to_string(), v.clone());
                        }
                    }
                    return Ok(Some(v));
                }
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
    }

    /// The first frame (backlog first) matching `pred`.
    pub async fn wait_for(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        wait: Duration,
    ) -> Result<Value> {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return Ok(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await? {
                Some(f) if pred(&f) => return Ok(f),
                Some(f) => self.backlog.push(f),
                None => bail!("timed out or closed while waiting"),
            }
        }
    }

    /// The ack (Ok) or error (Err) answering frame `id`.
    pub async fn answer(&mut self, id: &str, wait: Duration) -> Result<Value> {
        let f = match self.answers.remove(id) {
            Some(f) => f,
            None => {
                let f = self.wait_for(|f| f["payload"]["refId"] == id, wait).await?;
                self.answers.remove(id);
                f
            }
        };
        if f["type"] == "ack" {
            Ok(f)
        } else {
            Err(anyhow!("frame {id} refused: {}", f["payload"]))
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}
