//! Observability: every metric the Grafana dashboard and the Prometheus
//! alert rules name is exposed by a running gateway or worker, delivery
//! latency is observed end to end, and client writes carry a trace id into
//! the ingest stream.
//!
//! The metric check parses every PromQL expression of
//! `deploy/grafana/dashboards/*.json` and `deploy/prometheus/alerts.yml`,
//! so a panel or alert naming a metric that does not exist (a typo, a
//! renamed metric) fails here instead of showing an empty graph or an
//! alert that can never fire.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{
    promql::{metric_names, referenced_metrics, yaml_exprs},
    realtime::{Client, Pool},
};
use fred::prelude::*;
use serde_json::{json, Value};
use sqlx::PgPool;

/// Names Prometheus itself creates for each target: allowed in rules
/// though no process exposes them.
const SCRAPE_GENERATED: [&str; 1] = ["up"];

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn dashboard_and_alerts_name_only_exposed_metrics(pool: PgPool) {
    let p = Pool::start(pool, 1).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(0), &bob).await;
    // A little traffic, so histograms have samples: a message delivered,
    // typing, a sync and a search.
    let id = a.say(chat, "hello metrics").await;
    assert_eq!(a.answer(&id).await["type"], "ack");
    b.expect("message.new").await;
    a.send("typing.start", json!({ "chatId": chat })).await;
    let sync = b
        .send("sync.request", json!({ "chats": { chat.to_string(): 0 } }))
        .await;
    assert_eq!(b.answer(&sync).await["type"], "ack");
    let (status, _) = p.gw(0).get("/api/search/messages?q=hello", &ada).await;
    assert_eq!(status, 200);

    let gateway_url = format!("{}/metrics", p.gw(0).base);
    let worker_url = format!("{}/metrics", p.workers[0].base);
    // The worker's backlog gauges appear once it leased shards and
    // refreshed them (every 5 s); the dependency probes run at start.
    let (gateway, worker) = wait_for(&gateway_url, &worker_url, |g, w| {
        w.contains("fechatter_ingest_consumer_lag{")
            && w.contains("fechatter_dependency_up{")
            && g.contains("fechatter_dependency_up{")
            && sample_count(g, "fechatter_delivery_latency_seconds") >= 1.0
    })
    .await;

    // The message was observed from commit to socket write, and published.
    assert!(sample_count(&gateway, "fechatter_delivery_latency_seconds") >= 1.0);
    assert!(sample_count(&worker, "fechatter_topic_publish_seconds") >= 1.0);
    assert!(gateway.contains(r#"fechatter_sync_reads_total{path="sync",source="redis"} 1"#));

    let mut exposed = families(&gateway);
    exposed.extend(families(&worker));
    let referenced = referenced_metrics();
    assert!(
        referenced.len() >= 30,
        "expected the dashboard and alerts to name at least 30 metrics, found {referenced:?}"
    );
    let missing: Vec<_> = referenced
        .iter()
        .filter(|(name, _)| !is_exposed(name, &exposed))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics named in deploy/ but exposed by no gateway or worker: {missing:?}"
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_client_write_carries_a_trace_id_into_the_ingest_stream(pool: PgPool) {
    // No worker: the entry stays in the shard where it can be read.
    let p = Pool::start_without_worker(pool, 1, |_| {}).await;
    let (ada, _bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let id = a.say(chat, "traced").await;
    let state = &p.gw(0).state;
    let stream = state.keys.ingest(chat, state.config.ingest_shards);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let entry = loop {
        let entries: Vec<(String, BTreeMap<String, String>)> =
            state.redis.xrange(&stream, "-", "+", None).await.unwrap();
        let found = entries
            .into_iter()
            .filter_map(|(_, f)| serde_json::from_str::<Value>(f.get("e")?).ok())
            .find(|e| e["refId"] == id.as_str());
        if let Some(e) = found {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "entry never appended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let trace = entry["traceId"].as_str().expect("entry has a traceId");
    assert_eq!(trace.len(), 32, "{entry}");
    assert!(trace.bytes().all(|c| c.is_ascii_hexdigit()), "{entry}");
}

/// Scrapes both endpoints until `ready` holds (at most 30 s).
async fn wait_for(
    gateway_url: &str,
    worker_url: &str,
    ready: impl Fn(&str, &str) -> bool,
) -> (String, String) {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let gateway = scrape(&http, gateway_url).await;
        let worker = scrape(&http, worker_url).await;
        if ready(&gateway, &worker) {
            return (gateway, worker);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics not ready within 30 s\n--- gateway\n{gateway}\n--- worker\n{worker}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn scrape(http: &reqwest::Client, url: &str) -> String {
    let res = http
        .get(url)
        .send()
        .await
        .expect("metrics endpoint answers");
    assert!(res.status().is_success(), "{url}: {}", res.status());
    res.text().await.unwrap()
}

/// Metric families of an exposition, by name, with their type.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let (name, kind) = l.split_once(' ')?;
            Some((name.to_string(), kind.to_string()))
        })
        .collect()
}

/// `<name>_count` of a histogram without labels.
fn sample_count(text: &str, histogram: &str) -> f64 {
    let prefix = format!("{histogram}_count ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A series name is exposed if it is a family, or a histogram/summary
/// family plus one of its series suffixes, or generated by Prometheus.
fn is_exposed(name: &str, exposed: &BTreeMap<String, String>) -> bool {
    if exposed.contains_key(name) || SCRAPE_GENERATED.contains(&name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .and_then(|base| exposed.get(base))
            .is_some_and(|kind| kind == "histogram" || kind == "summary")
    })
}

#[test]
fn metric_names_are_found_in_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le, route) (rate(fechatter_http_request_duration_seconds_bucket{job="gateway", route=~"a|b"}[$__rate_interval])))"#
        ),
        ["fechatter_http_request_duration_seconds_bucket"]
    );
    assert_eq!(
        names("sum(a_lag) + sum(b_pending) > 1e3 and deriv(sum(a_lag)[10m:1m]) > 0 or vector(0)"),
        ["a_lag", "b_pending"]
    );
    assert_eq!(
        names(r#"count(x_up == 0) or on (instance) group_left (dependency) up{job="w"} offset 5m"#),
        ["up", "x_up"]
    );
    assert_eq!(
        names(r#"sum without (instance) (rate(m_total{a="sum(nope)"}[5m])) / ignoring (le) n"#),
        ["m_total", "n"]
    );
}

#[test]
fn rule_exprs_are_read_inline_and_as_blocks() {
    let rules = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 1m\n      - alert: B\n        expr: |\n          sum(x)\n          and\n          sum(y)\n        labels:\n          s: w\n";
    assert_eq!(yaml_exprs(rules), ["up == 0", "sum(x) and sum(y)"]);
}

#[test]
fn a_made_up_metric_is_not_exposed() {
    let exposed = families(
        "# TYPE fechatter_a_seconds histogram\nfechatter_a_seconds_count 1\n# TYPE fechatter_b_total counter\n",
    );
    assert!(is_exposed("fechatter_a_seconds_bucket", &exposed));
    assert!(is_exposed("fechatter_b_total", &exposed));
    assert!(is_exposed("up", &exposed));
    assert!(!is_exposed("fechatter_b_total_count", &exposed));
    assert!(!is_exposed("fechatter_made_up_total", &exposed));
}
