//! The built `gateway` binary as a child process, configured like a test
//! configuration: the deployment shape, for tests that need a real
//! process (signals, memory, several processes).
#![allow(dead_code)]

use std::{process::Stdio, time::Duration};

use fechatter_shared::Config;
use tokio::process::{Child, Command};

pub struct GatewayProcess {
    pub child: Child,
    pub base: String,
}

/// Starts the gateway binary with `c`'s database, Redis, prefix, secret and
/// shards plus `extra` variables; returns once it answers /health/live.
pub async fn start_gateway(c: &Config, name: &str, extra: &[(&str, &str)]) -> GatewayProcess {
    let port = super::haproxy::free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &c.database_url)
        .env("REDIS_URL", &c.redis_url)
        .env("REDIS_PREFIX", &c.redis_prefix)
        .env("JWT_SECRET", &c.jwt_secret)
        .env("INGEST_SHARDS", c.ingest_shards.to_string())
        .env("INSTANCE_ID", name)
        .env(
            "SIGNUP_MODE",
            match c.signup_mode {
                fechatter_shared::config::SignupMode::Direct => "direct",
                fechatter_shared::config::SignupMode::Verified => "verified",
            },
        )
        .env("DB_MAX_CONNECTIONS", "4")
        .env("DRAIN_GRACE_MS", "0")
        .env("FANOUT_MAX_LAG_MS", "0")
        .env("RUST_LOG", "warn");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("gateway binary runs");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{base}/health/live")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    GatewayProcess { child, base }
}
