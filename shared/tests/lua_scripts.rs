//! Every Lua script against the real local Redis, each test under its own
//! key prefix.

use std::{collections::HashMap, time::Duration};

use fechatter_shared::{
    redis::{connect, Keys},
    scripts::{self, Appended, ChatEvent, ChatPublished, Decision, LeaseGrant, Limit},
    wake::StreamId,
};
use fred::prelude::*;

const KEEP: scripts::TopicRetention = scripts::TopicRetention {
    max_len: 100,
    idle_ttl_ms: 60_000,
};

async fn redis() -> (Client, Keys) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = connect(&url, Duration::from_secs(5))
        .await
        .expect("local Redis");
    scripts::load_all(&client).await.unwrap();
    (
        client,
        Keys::new(format!("t{}", uuid::Uuid::new_v4().simple())),
    )
}

#[tokio::test]
async fn token_bucket_allows_burst_then_denies_with_wait() {
    let (client, keys) = redis().await;
    let key = keys.rate_limit(1, "send");
    let limit = Limit {
        capacity: 3.0,
        per_second: 1.0,
    };
    for _ in 0..3 {
        assert_eq!(
            scripts::take_token(&client, &key, limit, 1.0)
                .await
                .unwrap(),
            Decision::Allowed
        );
    }
    match scripts::take_token(&client, &key, limit, 1.0)
        .await
        .unwrap()
    {
        Decision::Denied { retry_after_ms } => {
            assert!((1..=1000).contains(&retry_after_ms), "{retry_after_ms}")
        }
        Decision::Allowed => panic!("fourth token must be denied"),
    }
    let ttl: i64 = client.pttl(&key).await.unwrap();
    assert!(ttl > 0, "bucket key must expire, pttl={ttl}");
    // Another user's bucket is independent.
    let other = keys.rate_limit(2, "send");
    assert_eq!(
        scripts::take_token(&client, &other, limit, 1.0)
            .await
            .unwrap(),
        Decision::Allowed
    );
}

#[tokio::test]
async fn token_bucket_refills() {
    let (client, keys) = redis().await;
    let key = keys.rate_limit(1, "typing");
    let limit = Limit {
        capacity: 1.0,
        per_second: 20.0,
    };
    assert_eq!(
        scripts::take_token(&client, &key, limit, 1.0)
            .await
            .unwrap(),
        Decision::Allowed
    );
    assert!(matches!(
        scripts::take_token(&client, &key, limit, 1.0)
            .await
            .unwrap(),
        Decision::Denied { .. }
    ));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        scripts::take_token(&client, &key, limit, 1.0)
            .await
            .unwrap(),
        Decision::Allowed
    );
}

#[tokio::test]
async fn user_publish_appends_in_order_and_wakes() {
    let (client, keys) = redis().await;
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let subscriber = Builder::from_config(Config::from_url(&url).unwrap())
        .build_subscriber_client()
        .unwrap();
    subscriber.init().await.unwrap();
    let channel = keys.user_channel(5);
    let mut rx = subscriber.message_rx();
    subscriber.ssubscribe(channel.clone()).await.unwrap();
    let stream = keys.user_stream(5);

    let none = scripts::user_publish(&client, &stream, KEEP, &channel, &[])
        .await
        .unwrap();
    assert!(none.is_empty());
    let exists: bool = client.exists(&stream).await.unwrap();
    assert!(!exists, "no frames, no stream");
    let first = scripts::user_publish(&client, &stream, KEEP, &channel, &["{\"n\":1}"])
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // Several frames in one call: appended in order, one wake each.
    let more = scripts::user_publish(
        &client,
        &stream,
        KEEP,
        &channel,
        &["{\"n\":2}", "{\"n\":3}"],
    )
    .await
    .unwrap();
    assert_eq!(more.len(), 2);
    let ids: Vec<StreamId> = first
        .iter()
        .chain(&more)
        .map(|id| id.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let mut wakes = Vec::new();
    for _ in 0..3 {
        let msg = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        wakes.push(msg.value.as_string().unwrap());
    }
    assert_eq!(
        wakes,
        vec![
            format!("0-0 {}\n{{\"n\":1}}", ids[0]),
            format!("{} {}\n{{\"n\":2}}", ids[0], ids[1]),
            format!("{} {}\n{{\"n\":3}}", ids[1], ids[2]),
        ]
    );
    let frames = fechatter_shared::topic::read(&client, &stream, "-", 10)
        .await
        .unwrap();
    let stored: Vec<&str> = frames.iter().map(|(_, f)| f.as_str()).collect();
    assert_eq!(stored, ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]);
    // Every call renews the idle lifetime.
    let ttl: i64 = client.pttl(&stream).await.unwrap();
    assert!(
        ttl > 0 && ttl <= 60_000,
        "user stream expires when idle: {ttl}"
    );
}

#[tokio::test]
async fn connection_limit_evicts_oldest() {
    let (client, keys) = redis().await;
    let key = keys.connections(9);
    for (member, want) in [
        ("gw|1", vec![]),
        ("gw|2", vec![]),
        ("gw|3", vec!["gw|1".to_string()]),
    ] {
        let evicted = scripts::register_connection(&client, &key, member, 2, 60)
            .await
            .unwrap();
        assert_eq!(evicted, want);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let members: Vec<String> = client
        .zrange(&key, 0, -1, None, false, None, false)
        .await
        .unwrap();
    assert_eq!(members, vec!["gw|2", "gw|3"]);
}

#[tokio::test]
async fn leases_are_exclusive_renewable_and_expire() {
    let (client, keys) = redis().await;
    let key = keys.ingest_lease(0);
    assert!(scripts::acquire_lease(&client, &key, "a", 200)
        .await
        .unwrap());
    assert!(!scripts::acquire_lease(&client, &key, "b", 200)
        .await
        .unwrap());
    assert!(
        scripts::acquire_lease(&client, &key, "a", 200)
            .await
            .unwrap(),
        "renewal"
    );
    assert!(!scripts::release_lease(&client, &key, "b").await.unwrap());
    assert!(scripts::release_lease(&client, &key, "a").await.unwrap());
    assert!(scripts::acquire_lease(&client, &key, "b", 100)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        scripts::acquire_lease(&client, &key, "a", 100)
            .await
            .unwrap(),
        "expired lease is free"
    );
}

#[tokio::test]
async fn scripts_reload_after_cache_flush() {
    let (client, keys) = redis().await;
    let _: () = client.script_flush(false).await.unwrap();
    let key = keys.rate_limit(3, "read");
    let d = scripts::take_token(
        &client,
        &key,
        Limit {
            capacity: 1.0,
            per_second: 1.0,
        },
        1.0,
    )
    .await
    .unwrap();
    assert_eq!(d, Decision::Allowed);
}

#[tokio::test]
async fn ingest_append_refuses_a_full_shard_and_queues_a_write_once() {
    let (client, keys) = redis().await;
    let shard = keys.ingest_shard(0);
    let marker = |n: usize| keys.ingest_pending(&shard, 1, 7, &format!("f{n}"));
    let append = |n: usize| {
        let (client, shard, marker) = (client.clone(), shard.clone(), marker(n));
        async move {
            let bounds = scripts::IngestBounds {
                max_len: 3,
                max_wait_ms: 0,
            };
            let entry = format!("{{\"n\":{n}}}");
            scripts::ingest_append(&client, &shard, &marker, bounds, "e", &entry)
                .await
                .unwrap()
        }
    };
    assert!(matches!(append(0).await, Appended::Added(_)));
    // A retry of the same write (same user and frame id) is not appended.
    assert_eq!(append(0).await, Appended::AlreadyQueued);
    assert!(matches!(append(1).await, Appended::Added(_)));
    assert!(matches!(append(2).await, Appended::Added(_)));
    assert_eq!(
        append(3).await,
        Appended::Full,
        "a full shard refuses instead of growing"
    );
    let len: u64 = client.xlen(&shard).await.unwrap();
    assert_eq!(len, 3);
    // The marker expires on its own if no worker ever clears it.
    let ttl: i64 = client.ttl(marker(0)).await.unwrap();
    assert!(
        ttl > 0 && ttl <= scripts::PENDING_MARKER_SECS as i64,
        "{ttl}"
    );
    // A processed entry (deleted, marker cleared) makes room and lets a
    // retry through again.
    let first: Vec<(String, std::collections::HashMap<String, String>)> =
        client.xrange(&shard, "-", "+", Some(1)).await.unwrap();
    let _: i64 = client.xdel(&shard, &first[0].0).await.unwrap();
    let _: i64 = client.del(marker(0)).await.unwrap();
    assert!(matches!(append(0).await, Appended::Added(_)));
}

#[tokio::test]
async fn ingest_append_refuses_while_the_oldest_entry_waits_too_long() {
    let (client, keys) = redis().await;
    let shard = keys.ingest_shard(1);
    let bounds = scripts::IngestBounds {
        max_len: 100,
        max_wait_ms: 1000,
    };
    let append = |n: u32| {
        let (client, shard) = (client.clone(), shard.clone());
        let marker = keys.ingest_pending(&shard, 1, 7, &format!("w{n}"));
        async move {
            scripts::ingest_append(&client, &shard, &marker, bounds, "e", "{}")
                .await
                .unwrap()
        }
    };
    // An empty shard, and one whose oldest entry is fresh, accept.
    let Appended::Added(id) = append(0).await else {
        panic!("an empty shard accepts")
    };
    assert!(matches!(append(1).await, Appended::Added(_)));
    // An entry appended 5 s ago (by this server's clock: entry ids are its
    // milliseconds) still waits.
    let now_ms: u64 = id.split('-').next().unwrap().parse().unwrap();
    let old = format!("{}-0", now_ms - 5000);
    let _: i64 = client.del(&shard).await.unwrap();
    let _: String = client
        .xadd(&shard, false, None, old.as_str(), ("e", "{}"))
        .await
        .unwrap();
    match append(2).await {
        Appended::Lagging(waited) => assert!((5000..7000).contains(&waited), "{waited}"),
        other => panic!("a lagging shard refuses: {other:?}"),
    }
    let len: u64 = client.xlen(&shard).await.unwrap();
    assert_eq!(len, 1, "nothing appended");
    // Without a limit the same shard accepts; once settled, it accepts.
    let unbounded = scripts::IngestBounds {
        max_wait_ms: 0,
        ..bounds
    };
    let marker = keys.ingest_pending(&shard, 1, 7, "w3");
    assert!(matches!(
        scripts::ingest_append(&client, &shard, &marker, unbounded, "e", "{}")
            .await
            .unwrap(),
        Appended::Added(_)
    ));
    let _: i64 = client.xdel(&shard, old.as_str()).await.unwrap();
    assert!(matches!(append(4).await, Appended::Added(_)));
}

#[tokio::test]
async fn a_probe_takes_nothing() {
    let (client, keys) = redis().await;
    let key = keys.auth_rate_limit("acct:probe");
    let limit = Limit {
        capacity: 1.0,
        per_second: 0.01,
    };
    for _ in 0..3 {
        let probed = scripts::probe_token(&client, &key, limit, 1.0)
            .await
            .unwrap();
        assert_eq!(probed, Decision::Allowed);
    }
    assert_eq!(
        scripts::take_token(&client, &key, limit, 1.0)
            .await
            .unwrap(),
        Decision::Allowed
    );
    let probed = scripts::probe_token(&client, &key, limit, 1.0)
        .await
        .unwrap();
    assert!(matches!(probed, Decision::Denied { retry_after_ms } if retry_after_ms > 0));
}

#[tokio::test]
async fn lease_takes_are_told_from_renewals() {
    let (client, keys) = redis().await;
    let key = keys.ingest_lease(1);
    let take = |holder: &'static str| {
        let (client, key) = (client.clone(), key.clone());
        async move {
            scripts::take_lease(&client, &key, holder, 5000)
                .await
                .unwrap()
        }
    };
    assert_eq!(take("a").await, LeaseGrant::Taken);
    assert_eq!(take("a").await, LeaseGrant::Renewed);
    assert_eq!(take("b").await, LeaseGrant::Refused);
    // Redis forgot the lease (restart without persistence): a new take.
    let _: i64 = client.del(&key).await.unwrap();
    assert_eq!(take("a").await, LeaseGrant::Taken);
}

#[tokio::test]
async fn chat_publish_keeps_event_order_and_refuses_older_epochs() {
    let (client, keys) = redis().await;
    let (stream, meta, channel) = (
        keys.chat_topic(9),
        keys.chat_topic_meta(9),
        keys.chat_channel(9),
    );
    let publish = |id: &'static str, event_seq: i64, epoch: i64| {
        let (client, stream, meta, channel) = (
            client.clone(),
            stream.clone(),
            meta.clone(),
            channel.clone(),
        );
        async move {
            let event = ChatEvent {
                id,
                event_seq,
                frame: "{}",
            };
            scripts::chat_publish(&client, (&stream, &meta), event, epoch, KEEP, &channel)
                .await
                .unwrap()
        }
    };
    // A stream without bookkeeping accepts any first event.
    assert_eq!(publish("3-0", 5, 1).await, ChatPublished::Appended);
    assert_eq!(publish("3-0", 5, 1).await, ChatPublished::Duplicate(5));
    assert_eq!(publish("3-1", 6, 1).await, ChatPublished::Appended);
    // Event 8 after 6: 7 is missing, nothing appended.
    assert_eq!(publish("4-1", 8, 1).await, ChatPublished::Gap(6));
    assert_eq!(publish("4-0", 7, 1).await, ChatPublished::Appended);
    assert_eq!(publish("4-1", 8, 1).await, ChatPublished::Appended);
    // A newer holder publishes; the old one is refused from then on.
    assert_eq!(publish("5-0", 9, 4).await, ChatPublished::Appended);
    assert_eq!(publish("6-0", 10, 1).await, ChatPublished::Fenced(4));
    assert_eq!(publish("6-0", 10, 4).await, ChatPublished::Appended);
    let ids: Vec<(String, HashMap<String, String>)> =
        client.xrange(&stream, "-", "+", None).await.unwrap();
    let ids: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["3-0", "3-1", "4-0", "4-1", "5-0", "6-0"]);
    let ttl: i64 = client.pttl(&meta).await.unwrap();
    assert!(ttl > 0, "the bookkeeping expires with the stream");
}

#[tokio::test]
async fn fanout_lag_reports_the_pools_highest_fresh_lag() {
    let (client, keys) = redis().await;
    let key = keys.fanout_lag();
    let ages = scripts::LagReportAges {
        fresh_ms: 300,
        forget_ms: 600,
    };
    assert_eq!(
        scripts::fanout_lag(&client, &key, "gw-a", 40, ages)
            .await
            .unwrap(),
        40
    );
    assert_eq!(
        scripts::fanout_lag(&client, &key, "gw-b", 700, ages)
            .await
            .unwrap(),
        700
    );
    // gw-a's newer report replaces its older one; gw-b's still counts.
    assert_eq!(
        scripts::fanout_lag(&client, &key, "gw-a", 10, ages)
            .await
            .unwrap(),
        700
    );
    // A report written long ago (a crashed gateway, junk) is deleted; one
    // past `fresh_ms` no longer counts.
    let _: () = client
        .hset(&key, [("gw-old", "9000 1"), ("junk", "x")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        scripts::fanout_lag(&client, &key, "gw-a", 25, ages)
            .await
            .unwrap(),
        25
    );
    let fields: Vec<String> = client.hkeys(&key).await.unwrap();
    let mut fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["gw-a", "gw-b"],
        "gw-b is stale but not forgotten yet"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    scripts::fanout_lag(&client, &key, "gw-a", 0, ages)
        .await
        .unwrap();
    let fields: Vec<String> = client.hkeys(&key).await.unwrap();
    assert_eq!(fields, ["gw-a"]);
    let _: () = client.del(&key).await.unwrap();
}
