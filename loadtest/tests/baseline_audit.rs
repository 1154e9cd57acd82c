//! The load tester measured against its own bare broadcaster: every
//! delivery accounted for, latencies and throughput reported, thresholds
//! evaluated. Proves the measuring instrument before it measures the pool.

use std::time::Duration;

use loadtest::{report::Threshold, target::Target, traffic};

#[tokio::test]
async fn fanout_against_the_baseline_is_fully_audited() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = Target::bare(listener.local_addr().unwrap());
    let server = tokio::spawn(loadtest::baseline::serve(listener));
    let plan = traffic::fanout_plan(&target, 20, 4, 20.0, Duration::from_secs(1))
        .await
        .unwrap();
    let report = traffic::run(&target, plan).await.unwrap();
    server.abort();

    assert_eq!(report.sent, 80, "4 senders x 20/s x 1 s");
    assert_eq!(report.acked, 80);
    assert_eq!(report.delivered, 80 * 20, "every member gets every message");
    let audit = report.audit.clone().unwrap();
    assert_eq!(
        (
            audit.expected,
            audit.lost,
            audit.duplicated,
            audit.out_of_order
        ),
        (1600, 0, 0, 0)
    );
    let latency = report.latency_ms.clone().unwrap();
    assert_eq!(latency.count, 1600);
    assert!(latency.p50 > 0.0 && latency.p50 <= latency.p99 && latency.p99 <= latency.max);
    assert!(report.deliveries_per_sec > 0.0);
    assert!(report
        .check(&[Threshold::parse("lost<1").unwrap()])
        .is_empty());
    assert_eq!(
        report
            .check(&[Threshold::parse("p50<0.000001ms").unwrap()])
            .len(),
        1
    );
}

#[tokio::test]
async fn non_loopback_targets_are_refused() {
    assert!(Target::new("http://192.168.1.10:8080", &[]).is_err());
    assert!(Target::new("http://127.0.0.1:8080", &["http://10.1.2.3:8081".into()]).is_err());
}
