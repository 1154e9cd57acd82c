//! The shipped haproxy.cfg in front of two gateways: REST and WebSocket
//! both pass through, health checks see both gateways, and two clients
//! chat through the proxy.

mod common;

use std::{process::Stdio, time::Duration};

use common::realtime::{Client, Pool};
use sqlx::PgPool;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn two_clients_chat_through_haproxy(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let (port, stats) = (free_port(), free_port());
    let addr = |i: usize| p.gw(i).base.trim_start_matches("http://").to_string();
    let socket = std::env::temp_dir().join(format!("fc-haproxy-{port}.sock"));
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../haproxy.cfg");
    let _haproxy = tokio::process::Command::new("haproxy")
        .args(["-f", cfg, "-db"])
        .env("HAPROXY_BIND", format!("127.0.0.1:{port}"))
        .env("HAPROXY_STATS_BIND", format!("127.0.0.1:{stats}"))
        .env("HAPROXY_STATS_SOCKET", &socket)
        .env("GATEWAY1_ADDR", addr(0))
        .env("GATEWAY2_ADDR", addr(1))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("haproxy is installed (make test installs it)");

    // Both gateways must be seen through the proxy.
    let http = reqwest::Client::new();
    let mut seen = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while seen.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "HAProxy did not reach both gateways: {seen:?}"
        );
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
        {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if let Some(i) = v["instance"].as_str() {
                    seen.insert(i.to_string());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A TestApp pointed at the proxy reuses the REST and WS helpers.
    let mut proxied = common::spawn_with(pool.clone(), |c| *c = p.config.clone()).await;
    proxied.shutdown();
    proxied.base = format!("http://127.0.0.1:{port}");
    let ada = proxied.signup("Ada", "Acme").await;
    let bob = proxied.signup("Bob", "Acme").await;
    let chat = proxied.create_chat(&ada, "single", None, &[bob.id]).await["id"]
        .as_i64()
        .unwrap();
    let mut a = Client::connect(&proxied, &ada).await;
    let mut b = Client::connect(&proxied, &bob).await;
    for (n, text) in ["one", "two", "three"].iter().enumerate() {
        let id = a.say(chat, text).await;
        assert_eq!(a.answer(&id).await["payload"]["seq"], n as i64 + 1);
        assert_eq!(
            b.expect("message.new").await["payload"]["message"]["content"],
            *text
        );
    }
}
