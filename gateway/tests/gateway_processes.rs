//! Two real `gateway` processes (the built binary) and a worker: the
//! deployment shape, minus HAProxy. Also checks SIGTERM drains cleanly.

mod common;

use std::{process::Stdio, time::Duration};

use common::realtime::{Client, Pool};
use sqlx::PgPool;
use tokio::process::{Child, Command};

struct GatewayProcess {
    child: Child,
    app: common::TestApp,
}

async fn spawn_gateway(p: &Pool, name: &str) -> GatewayProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = &p.config;
    let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &c.database_url)
        .env("REDIS_URL", &c.redis_url)
        .env("REDIS_PREFIX", &c.redis_prefix)
        .env("JWT_SECRET", &c.jwt_secret)
        .env("INGEST_SHARDS", c.ingest_shards.to_string())
        .env("INSTANCE_ID", name)
        .env("DB_MAX_CONNECTIONS", "4")
        .env("DRAIN_GRACE_MS", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("gateway binary runs");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reuse the harness's client helpers against the process.
    let mut app = common::spawn_with(p.pool.clone(), |cfg| *cfg = c.clone()).await;
    app.shutdown();
    app.base = base;
    GatewayProcess { child, app }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn two_gateway_processes_fan_out_and_drain_on_sigterm(pool: PgPool) {
    let p = Pool::start(pool.clone(), 0).await;
    let mut g1 = spawn_gateway(&p, "proc1").await;
    let g2 = spawn_gateway(&p, "proc2").await;
    let ada = g1.app.signup("Ada", "Acme").await;
    let bob = g2.app.signup("Bob", "Acme").await;
    let chat = g1.app.create_chat(&ada, "single", None, &[bob.id]).await["id"]
        .as_i64()
        .unwrap();
    let mut a = Client::connect(&g1.app, &ada).await;
    let mut b = Client::connect(&g2.app, &bob).await;
    let id = a.say(chat, "across processes").await;
    assert_eq!(a.answer(&id).await["payload"]["seq"], 1);
    assert_eq!(
        b.expect("message.new").await["payload"]["message"]["content"],
        "across processes"
    );
    let id = b.say(chat, "and back").await;
    b.answer(&id).await;
    assert_eq!(
        a.expect("message.new").await["payload"]["message"]["content"],
        "and back"
    );

    // SIGTERM: the session gets 1001 and the process exits 0.
    let pid = g1.child.id().unwrap() as i32;
    send_sigterm(pid);
    assert_eq!(a.closed().await, Some(1001));
    let status = tokio::time::timeout(Duration::from_secs(15), g1.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "gateway exited with {status}");
}

fn send_sigterm(pid: i32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
