//! Two real `gateway` processes (the built binary) and a worker: the
//! deployment shape, minus HAProxy. Also checks SIGTERM drains cleanly.

mod common;

use std::time::Duration;

use common::realtime::{Client, Pool};
use sqlx::PgPool;
use tokio::process::Child;

struct GatewayProcess {
    child: Child,
    app: common::TestApp,
}

async fn spawn_gateway(p: &Pool, name: &str) -> GatewayProcess {
    let c = &p.config;
    let common::process::GatewayProcess { child, base } =
        common::process::start_gateway(c, name, &[]).await;
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
