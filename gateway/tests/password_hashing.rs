//! Password hashing under a sign-up burst, on the real `gateway` binary
//! with the production Argon2id cost (19 MiB, 2 iterations): memory stays
//! bounded (hashing threads reuse their Argon2 blocks) and a saturated
//! hashing queue answers 503 + Retry-After instead of queueing without
//! bound.

mod common;

use std::time::Duration;

use common::process::{start_gateway, GatewayProcess};

use futures::StreamExt;
use serde_json::json;
use sqlx::PgPool;
use tokio::process::Child;

/// Stated bound: after 1,000 sign-ups the gateway's RSS is under this.
/// (Before the hashing pool: 250 sign-ups took one gateway to 3.1 GB.)
const RSS_BOUND_MB: u64 = 150;

async fn start(pool: &PgPool, threads: &str, queue: &str) -> GatewayProcess {
    let c = fechatter_shared::Config::for_tests(&common::database_url(pool));
    let extra = [
        ("ARGON2_THREADS", threads),
        ("ARGON2_QUEUE", queue),
        ("AUTH_IP_PER_MINUTE", "1000000"),
        ("AUTH_ACCOUNT_PER_MINUTE", "1000000"),
        ("DB_MAX_CONNECTIONS", "8"),
    ];
    start_gateway(&c, "hashing", &extra).await
}

fn rss_mb(child: &Child) -> u64 {
    let pid = child.id().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

/// Fires `n` sign-ups, `concurrency` at a time; returns their statuses.
async fn burst(base: &str, n: usize, concurrency: usize, tag: &str) -> Vec<(u16, Option<String>)> {
    let http = reqwest::Client::new();
    futures::stream::iter(0..n)
        .map(|i| {
            let http = http.clone();
            async move {
                let res = http
                    .post(format!("{base}/api/signup"))
                    .json(&json!({
                        "fullname": format!("u{i}"),
                        "email": format!("u{i}-{tag}@burst.test"),
                        "password": "correct horse battery",
                        "workspace": format!("w{i}"),
                    }))
                    .send()
                    .await
                    .expect("the gateway answers");
                let retry = res
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                (res.status().as_u16(), retry)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_thousand_signups_leave_the_gateway_small(pool: PgPool) {
    let gw = start(&pool, "2", "10000").await;
    let before = rss_mb(&gw.child);
    let statuses = burst(&gw.base, 1000, 64, "mem").await;
    assert!(
        statuses.iter().all(|(s, _)| *s == 201),
        "every sign-up succeeds"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_mb(&gw.child);
    println!("gateway RSS: {before} MB before, {after} MB after 1000 sign-ups");
    assert!(
        after < RSS_BOUND_MB,
        "RSS {after} MB after 1000 sign-ups (bound {RSS_BOUND_MB} MB, {before} MB before)"
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_saturated_hashing_queue_sheds_with_503_and_retry_after(pool: PgPool) {
    let gw = start(&pool, "1", "2").await;
    let statuses = burst(&gw.base, 40, 40, "sat").await;
    let shed: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    let created = statuses.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(shed.len() + created, 40, "only 201 or 503: {statuses:?}");
    assert!(!shed.is_empty(), "40 at once exceed 1 thread + 2 queued");
    assert!(created >= 3, "the admitted ones are served");
    assert!(
        shed.iter().all(|(_, r)| r.as_deref() == Some("1")),
        "{shed:?}"
    );
    // After the burst the gateway serves normally again.
    let later = burst(&gw.base, 3, 1, "later").await;
    assert!(later.iter().all(|(s, _)| *s == 201), "{later:?}");
}
