//! Test harness: a real gateway on an ephemeral port, backed by the fresh
//! PostgreSQL database `#[sqlx::test]` created for the test and the local
//! Redis under a unique key prefix.
#![allow(dead_code)]

pub mod haproxy;
pub mod process;
pub mod promql;
pub mod proxy;
pub mod realtime;
pub mod redis_cluster;
pub mod redis_server;

use fechatter_shared::Config;
use gateway::AppState;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub base: String,
    pub config: Config,
    pub http: reqwest::Client,
    pub state: AppState,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    /// Stops the gateway gracefully (sessions get close 1001).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    pub fn ws_url(&self) -> String {
        self.base.replacen("http://", "ws://", 1) + "/ws"
    }
}

/// The URL of the database `pool` points at, for configs and child processes.
pub fn database_url(pool: &PgPool) -> String {
    let db = pool
        .connect_options()
        .get_database()
        .unwrap_or("postgres")
        .to_string();
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => base,
    }
}

pub async fn spawn(pool: PgPool) -> TestApp {
    spawn_with(pool, |_| {}).await
}

pub async fn spawn_with(pool: PgPool, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::for_tests(&database_url(&pool));
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_on(pool, config, listener).await
}

/// A gateway with exactly `config`, serving on `listener` (a test that
/// restarts a gateway binds the same port again).
pub async fn spawn_on(pool: PgPool, config: Config, listener: tokio::net::TcpListener) -> TestApp {
    let redis =
        fechatter_shared::redis::connect(&config.redis_url, std::time::Duration::from_secs(5))
            .await
            .expect("local Redis must be running for tests");
    let state = AppState::connect(config, pool, redis)
        .await
        .expect("gateway state");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(gateway::serve(state.clone(), listener, shutdown.clone()));
    TestApp {
        base,
        config: state.config.clone(),
        http: reqwest::Client::new(),
        state,
        shutdown,
    }
}

/// A signed-up user with its tokens.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: i64,
    pub workspace_id: i64,
    pub token: String,
    pub refresh: String,
    /// The session (refresh-token family) of `token`.
    pub session: uuid::Uuid,
}

impl TestUser {
    pub fn from_auth(body: &Value) -> Self {
        TestUser {
            id: body["user"]["id"].as_i64().unwrap(),
            workspace_id: body["user"]["workspaceId"].as_i64().unwrap(),
            token: body["accessToken"].as_str().unwrap().to_string(),
            refresh: body["refreshToken"].as_str().unwrap().to_string(),
            session: body["sessionId"].as_str().unwrap().parse().unwrap(),
        }
    }
}

impl TestApp {
    /// Sends a request; `token` adds a bearer header, `body` a JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("gateway answers");
        let status = res.status();
        let text = res.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, user: &TestUser) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(&user.token), None).await
    }

    pub async fn post(&self, path: &str, user: &TestUser, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(&user.token), Some(body))
            .await
    }

    /// Signs up `name`: the first user of a workspace name (in this test's
    /// database) creates it and owns it, later ones join it through an
    /// invite of the owner's, as real clients must.
    pub async fn signup(&self, name: &str, workspace: &str) -> TestUser {
        let email = format!("{}@{}.test", name.to_lowercase(), workspace.to_lowercase());
        let mut body = json!({
            "fullname": name,
            "email": email,
            "password": "correct horse battery",
        });
        match self.invite_into(workspace).await {
            Some(token) => body["inviteToken"] = token.into(),
            None => body["workspace"] = workspace.into(),
        }
        let (status, body) = self
            .call(Method::POST, "/api/signup", None, Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "signup failed: {body}");
        TestUser::from_auth(&body)
    }

    /// A fresh invite into the (first) workspace called `name`, if any.
    pub async fn invite_into(&self, name: &str) -> Option<String> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT w.id, u.id FROM workspaces w JOIN users u ON u.workspace_id = w.id
             WHERE w.name = $1 AND u.role = 'owner' ORDER BY w.id LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.state.pool)
        .await
        .unwrap();
        let (workspace, owner) = row?;
        let (_, token) = fechatter_shared::store::invite::create(
            &self.state.pool,
            workspace,
            owner,
            None,
            true,
            std::time::Duration::from_secs(600),
        )
        .await
        .unwrap();
        Some(token)
    }

    /// An access token of `user`'s session with explicit times.
    pub fn mint(&self, user: &TestUser, name: &str, iat: i64, exp: i64) -> String {
        self.state
            .tokens
            .issue_at(
                &fechatter_shared::token::Subject {
                    user_id: user.id,
                    workspace_id: user.workspace_id,
                    name,
                    session_id: user.session,
                },
                iat,
                exp,
            )
            .unwrap()
    }

    /// Creates a chat and returns its JSON, asserting 201.
    pub async fn create_chat(
        &self,
        owner: &TestUser,
        kind: &str,
        name: Option<&str>,
        members: &[i64],
    ) -> Value {
        let (status, body) = self
            .post(
                "/api/chat",
                owner,
                json!({ "type": kind, "name": name, "members": members }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create chat failed: {body}");
        body
    }
}

/// Asserts an error response with the documented shape and code.
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(
        status.as_u16(),
        want_status,
        "unexpected status, body: {body}"
    );
    assert_eq!(body["error"]["code"], want_code, "unexpected body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
