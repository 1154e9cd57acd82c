//! The pool on a Redis Cluster (issue 11 item 1): a private three-master
//! cluster, two gateways and a worker. Chats are spread until their topics
//! live on every master; then messages, typing and read receipts flow
//! across the gateways, and every master shows the cluster rules at work:
//! sharded Pub/Sub only (no `PUBLISH`, which a cluster broadcasts to every
//! node), scripts run where their keys are, and ingest shards and topics
//! are spread over the masters.
//!
//! The rest of the message path runs against a cluster too: `make test`
//! runs the ws_messages, ws_state, ws_recovery and user_streams suites and
//! the Lua script tests a second time with `REDIS_URL` naming a cluster
//! (scripts/test.sh).

mod common;

use std::collections::{BTreeSet, HashMap};

use common::{
    realtime::{Client, Pool},
    redis_cluster::RedisCluster,
};
use fred::{prelude::*, types::InfoKind};
use serde_json::json;
use sqlx::PgPool;

/// Which master serves a hash slot: `redis-cli --cluster create` splits
/// the 16384 slots evenly, in the order the nodes are named.
fn master_of(key: &str) -> usize {
    match fred::util::redis_keyslot(key.as_bytes()) {
        0..=5460 => 0,
        5461..=10922 => 1,
        _ => 2,
    }
}

/// `INFO commandstats` of one node: command -> calls.
async fn command_calls(url: &str) -> HashMap<String, u64> {
    let node = fechatter_shared::redis::connect(url, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let info: String = node.info(Some(InfoKind::CommandStats)).await.unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.strip_prefix("calls=")?.split(',').next()?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn the_message_path_runs_on_a_three_master_cluster(pool: PgPool) {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let p = Pool::start_with(pool.clone(), 2, |c| c.redis_url = url.clone()).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let bob = p.gw(0).signup("Bob", "Acme").await;
    let cat = p.gw(0).signup("Cat", "Acme").await;
    let keys = p.gw(0).state.keys.clone();

    // Chats until their topics (and so their wakes) live on every master.
    let mut chats = Vec::new();
    let mut masters = BTreeSet::new();
    while masters.len() < 3 {
        let chat = p
            .gw(0)
            .create_chat(
                &ada,
                "group",
                Some(&format!("c{}", chats.len())),
                &[bob.id, cat.id],
            )
            .await["id"]
            .as_i64()
            .unwrap();
        masters.insert(master_of(&keys.chat_topic(chat)));
        chats.push(chat);
        assert!(chats.len() < 60, "chat ids never covered three masters");
    }

    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(1), &bob).await;
    for &chat in &chats {
        let id = a.say(chat, &format!("hello {chat}")).await;
        let ack = a.answer(&id).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        let got = b
            .expect_where("message.new", |f| f["payload"]["chatId"] == chat)
            .await;
        assert_eq!(
            got["payload"]["message"]["content"],
            format!("hello {chat}")
        );
        assert_eq!(got["payload"]["message"]["seq"], 1);

        b.send("typing.start", json!({ "chatId": chat })).await;
        let typing = a
            .expect_where("typing.indicator", |f| f["payload"]["chatId"] == chat)
            .await;
        assert_eq!(typing["payload"]["userId"], bob.id);

        b.send("read.mark", json!({ "chatId": chat, "seq": 1 }))
            .await;
        let receipt = a
            .expect_where("read.receipt", |f| f["payload"]["chatId"] == chat)
            .await;
        assert_eq!(receipt["payload"]["userId"], bob.id);
    }

    // Ingest shards spread over the masters too (4 shards in tests).
    let shard_masters: BTreeSet<usize> = (0..p.config.ingest_shards)
        .map(|s| master_of(&keys.ingest_shard(s)))
        .collect();
    assert!(shard_masters.len() >= 2, "{shard_masters:?}");

    for (i, node) in cluster.node_urls().iter().enumerate() {
        let calls = command_calls(node).await;
        assert!(
            !calls.contains_key("publish"),
            "master {i} saw PUBLISH (broadcast to every node): {calls:?}"
        );
        assert!(
            calls.get("spublish").copied().unwrap_or(0) > 0,
            "master {i} published no wake: {calls:?}"
        );
        assert!(
            calls.get("ssubscribe").copied().unwrap_or(0) > 0,
            "no gateway subscribed on master {i}: {calls:?}"
        );
        assert!(
            calls.get("evalsha").copied().unwrap_or(0) > 0,
            "no script ran on master {i}: {calls:?}"
        );
    }
}
