//! The pool behind the shipped haproxy.cfg survives what operators do and
//! what dependencies do: a 5 s Redis + PostgreSQL outage does not make
//! HAProxy mark the gateways down or cut sockets, and a rolling restart of
//! both gateways answers no REST call with a 5xx.

mod common;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use common::{
    haproxy::Haproxy,
    proxy::Proxy,
    realtime::{Client, Pool},
    spawn_on, TestApp,
};
use serde_json::json;
use sqlx::{postgres::PgPoolOptions, PgPool};

fn host(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Both servers of both backends, as HAProxy's stats CSV reports them.
async fn server_states(h: &Haproxy) -> Vec<String> {
    let csv = reqwest::get(format!("http://127.0.0.1:{}/;csv", h.stats))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    csv.lines()
        .filter(|l| l.contains(",gw1,") || l.contains(",gw2,"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{}/{}={}", f[0], f[1], f[17])
        })
        .collect()
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_dependency_outage_does_not_take_the_pool_out_of_haproxy(pool: PgPool) {
    let redis = Proxy::start("127.0.0.1:6379".into()).await;
    // The database server of this run: PostgreSQL, or PgBouncer when
    // scripts/test.sh runs the suite through it.
    let url = common::database_url(&pool);
    let pg_host = url
        .rsplit_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host, _)| host.to_string())
        .unwrap_or_else(|| "127.0.0.1:5432".into());
    let pg = Proxy::start(pg_host.clone()).await;
    // Gateways reach Redis and PostgreSQL only through the cuttable proxies.
    let mut p = Pool::start_without_worker(pool.clone(), 0, |c| {
        c.redis_url = format!("redis://{}", redis.addr);
    })
    .await;
    p.add_worker().await;
    let db_url = url.replace(&pg_host, &pg.addr.to_string());
    for i in 0..2 {
        let gw_pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(2))
            .connect(&db_url)
            .await
            .unwrap();
        let mut c = p.config.clone();
        c.instance_id = format!("gw{i}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        p.gateways.push(spawn_on(gw_pool, c, listener).await);
    }
    let h = Haproxy::start(&host(p.gw(0)), &host(p.gw(1))).await;
    let mut via = common::spawn_with(pool.clone(), |c| *c = p.config.clone()).await;
    via.shutdown();
    via.base = h.url();
    let ada = via.signup("Ada", "Acme").await;
    let bob = via.signup("Bob", "Acme").await;
    let chat = via.create_chat(&ada, "single", None, &[bob.id]).await["id"]
        .as_i64()
        .unwrap();
    let mut a = Client::connect(&via, &ada).await;
    let mut b = Client::connect(&via, &bob).await;

    redis.cut();
    pg.cut();
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let res = http
            .get(format!("{}/health/live", h.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "liveness through HAProxy");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let states = server_states(&h).await;
    assert_eq!(states.len(), 4, "{states:?}");
    assert!(states.iter().all(|s| s.ends_with("=UP")), "{states:?}");
    // The readiness view does report the outage.
    let res = http
        .get(format!("{}/health", h.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    redis.restore();
    pg.restore();

    // The sockets opened before the outage still work. Like a real client,
    // retry an unanswered write with the same frame id (an answer can be
    // lost while a gateway's Redis subscription is being restored).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let payload = json!({ "chatId": chat, "content": "after the outage" });
    'retry: loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no ack after the outage"
        );
        a.send_with_id("after-1", "message.send", payload.clone())
            .await;
        let wait = std::time::Instant::now() + Duration::from_secs(5);
        while let Some(f) = a
            .next_frame(wait.saturating_duration_since(std::time::Instant::now()))
            .await
        {
            if f["payload"]["refId"] == "after-1" {
                if f["type"] == "ack" {
                    break 'retry;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue 'retry;
            }
        }
    }
    let got = b.expect("message.new").await;
    assert_eq!(got["payload"]["message"]["content"], "after the outage");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_rolling_restart_answers_no_rest_call_with_a_5xx(pool: PgPool) {
    // Fail the check for 2.5 s (> 2 check intervals of 1 s) before closing.
    let mut p = Pool::start_with(pool.clone(), 2, |c| {
        c.drain_grace = Duration::from_millis(2500)
    })
    .await;
    let h = Haproxy::start(&host(p.gw(0)), &host(p.gw(1))).await;
    let mut via = common::spawn_with(pool.clone(), |c| *c = p.config.clone()).await;
    via.shutdown();
    via.base = h.url();
    let ada = via.signup("Ada", "Acme").await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut loops = Vec::new();
    for _ in 0..3 {
        let (stop, ok, bad, failures) = (stop.clone(), ok.clone(), bad.clone(), failures.clone());
        let (url, token) = (h.url(), ada.token.clone());
        loops.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let res = http
                    .get(format!("{url}/api/chat"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        failures.lock().unwrap().push(format!("{other:?}"));
                        bad.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    for i in 0..2 {
        let addr: std::net::SocketAddr = host(p.gw(i)).parse().unwrap();
        p.gateways[i].shutdown();
        // The old process keeps its port until the drain grace is over.
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let mut c = p.config.clone();
        c.instance_id = format!("gw{i}-new");
        p.gateways[i] = spawn_on(pool.clone(), c, listener).await;
        // Let HAProxy see it up again (rise 2 x 1 s) before the next one.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert_eq!(bad.load(Ordering::Relaxed), 0, "{failures:?}");
    assert!(ok.load(Ordering::Relaxed) > 100, "the load kept flowing");
    // Both new gateways serve through the proxy.
    h.wait_for_both().await;
}
