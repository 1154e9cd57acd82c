//! The durability contract under failure: a worker dying between commit
//! and publish, PostgreSQL stalling or vanishing, Redis restarting.
//! Acks only after commit; recipients only see committed messages; after
//! recovery everything arrives exactly once, in seq order.

mod common;

use std::time::Duration;

use common::{
    proxy::Proxy,
    realtime::{seqs, Client, Pool},
};
use sqlx::PgPool;

async fn count_messages(pool: &PgPool) -> i64 {
    sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM messages")
        .fetch_one(pool)
        .await
        .unwrap()
        .0
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn worker_killed_after_commit_loses_and_duplicates_nothing(pool: PgPool) {
    let mut p = Pool::start_without_worker(pool.clone(), 2, |_| {}).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(1), &bob).await;

    let hooks = p.add_worker().await;
    hooks
        .crash_after_commit
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let first = a.say(chat, "survives the crash").await;
    let mut crashed = p.workers.pop().unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), &mut crashed.handle)
        .await
        .unwrap()
        .unwrap();
    assert!(outcome.is_err(), "the worker died");
    // Committed, but neither acked nor delivered.
    assert_eq!(count_messages(&pool).await, 1);
    assert!(b
        .collect("message.new", Duration::from_millis(300))
        .await
        .is_empty());

    // Meanwhile more messages queue up behind it.
    let second = a.say(chat, "queued while no worker runs").await;
    // A new worker takes over once the dead one's lease expires (2 s in tests).
    p.add_worker().await;
    let ack1 = a.answer(&first).await;
    let ack2 = a.answer(&second).await;
    assert_eq!(
        (
            ack1["payload"]["seq"].as_i64(),
            ack2["payload"]["seq"].as_i64()
        ),
        (Some(1), Some(2))
    );
    let mut got = vec![b.expect("message.new").await, b.expect("message.new").await];
    got.extend(b.collect("message.new", Duration::from_millis(500)).await);
    assert_eq!(seqs(&got), vec![1, 2], "exactly once, in order");
    assert_eq!(count_messages(&pool).await, 2);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn stalled_postgres_means_no_ack_and_no_delivery_until_commit(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(0), &bob).await;
    // The worker builds the search index at start, partition by partition
    // with CREATE INDEX CONCURRENTLY, which waits for open transactions:
    // holding the table lock meanwhile would deadlock with it.
    search_index_built(&pool).await;

    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let id = a.say(chat, "waits for the lock").await;
    assert!(
        a.next_frame(Duration::from_millis(800)).await.is_none(),
        "no ack before commit"
    );
    assert!(
        b.next_frame(Duration::from_millis(100)).await.is_none(),
        "no delivery before commit"
    );
    lock.rollback().await.unwrap();
    assert_eq!(a.answer(&id).await["payload"]["seq"], 1);
    assert_eq!(
        b.expect("message.new").await["payload"]["message"]["seq"],
        1
    );
    assert!(b
        .collect("message.new", Duration::from_millis(300))
        .await
        .is_empty());
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn postgres_outage_delays_but_loses_nothing(pool: PgPool) {
    let mut p = Pool::start_without_worker(pool.clone(), 1, |_| {}).await;
    let (ada, bob, chat) = p.pair().await;
    // The worker reaches PostgreSQL through a proxy the test can cut.
    let url = common::database_url(&pool);
    let (scheme_host, db) = url.rsplit_once('/').unwrap();
    let host = scheme_host
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or("127.0.0.1:5432");
    let proxy = Proxy::start(host.to_string()).await;
    let mut c = p.config.clone();
    c.database_url = format!(
        "{}@{}/{db}",
        scheme_host.rsplit_once('@').unwrap().0,
        proxy.addr
    );
    p.add_worker_with(c).await;

    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(0), &bob).await;
    let warmup = a.say(chat, "before").await;
    a.answer(&warmup).await;
    b.expect("message.new").await;

    proxy.cut();
    let ids = [a.say(chat, "during 1").await, a.say(chat, "during 2").await];
    assert!(
        a.collect("ack", Duration::from_millis(1500))
            .await
            .is_empty(),
        "nothing acked while PostgreSQL is away"
    );
    assert!(b
        .collect("message.new", Duration::from_millis(100))
        .await
        .is_empty());
    proxy.restore();
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(a.answer(id).await["payload"]["seq"], n as i64 + 2);
    }
    let mut got = vec![b.expect("message.new").await, b.expect("message.new").await];
    got.extend(b.collect("message.new", Duration::from_millis(500)).await);
    assert_eq!(seqs(&got), vec![2, 3]);
    assert_eq!(count_messages(&pool).await, 3);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn workers_share_the_shards_and_keep_delivering(pool: PgPool) {
    let mut p = Pool::start_without_worker(pool.clone(), 1, |_| {}).await;
    p.add_worker().await;
    let keys = p.gw(0).state.keys.clone();
    let redis = p.gw(0).state.redis.clone();
    let holders = || {
        let (keys, redis) = (keys.clone(), redis.clone());
        async move {
            let mut by_holder: std::collections::HashMap<String, u32> = Default::default();
            for shard in 0..4 {
                let h: Option<String> =
                    fred::prelude::KeysInterface::get(&redis, keys.ingest_lease(shard))
                        .await
                        .unwrap();
                if let Some(h) = h {
                    *by_holder.entry(h).or_default() += 1;
                }
            }
            by_holder
        }
    };
    // One worker alone takes every shard...
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while holders().await.values().sum::<u32>() < 4 {
        assert!(std::time::Instant::now() < deadline, "shards not taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and hands half over when a second one joins.
    p.add_worker().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let split = holders().await;
        if split.len() == 2 && split.values().all(|&n| n == 2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "shards not shared: {split:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Chats on every shard still get their messages committed and delivered.
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let bob = p.gw(0).signup("Bob", "Acme").await;
    let mut chats = Vec::new();
    for n in 0..4 {
        let c = p
            .gw(0)
            .create_chat(&ada, "private_channel", Some(&format!("c{n}")), &[bob.id])
            .await;
        chats.push(c["id"].as_i64().unwrap());
    }
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(0), &bob).await;
    for &chat in &chats {
        let id = a.say(chat, "hello").await;
        assert_eq!(a.answer(&id).await["payload"]["seq"], 1);
    }
    let got = b.collect("message.new", Duration::from_secs(2)).await;
    let mut got_chats: Vec<i64> = got
        .iter()
        .map(|f| f["payload"]["chatId"].as_i64().unwrap())
        .collect();
    got_chats.sort();
    assert_eq!(got_chats, chats);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_lagging_shard_refuses_writes_with_a_retry_hint(pool: PgPool) {
    // Back-pressure (INGEST_MAX_WAIT_MS): with no worker, the first write
    // waits in its shard; once it has waited longer than the bound, new
    // writes to the shard are refused, not queued behind it.
    let mut p = Pool::start_without_worker(pool.clone(), 1, |c| {
        c.ingest_max_wait = Duration::from_millis(300);
    })
    .await;
    let (ada, _bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let first = a.say(chat, "waits for a worker").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = a.say(chat, "refused while the shard lags").await;
    let refused = a.answer(&second).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"]["code"], "unavailable", "{refused}");
    assert_eq!(refused["payload"]["retryAfterMs"], 500, "{refused}");
    // A worker catches up: the first is committed, and the refused write,
    // sent again with its id, goes through.
    p.add_worker().await;
    assert_eq!(a.answer(&first).await["payload"]["seq"], 1);
    // (The first entry leaves the shard just after its ack: a retry that
    // races it may be refused once more, and is retried, as a client does.)
    let mut ack = refused;
    for _ in 0..5 {
        a.send_with_id(
            &second,
            "message.send",
            serde_json::json!({ "chatId": chat, "content": "refused while the shard lags" }),
        )
        .await;
        ack = a.answer(&second).await;
        if ack["type"] == "ack" {
            break;
        }
        assert_eq!(ack["payload"]["code"], "unavailable", "{ack}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["payload"]["seq"], 2);
    assert_eq!(count_messages(&pool).await, 2);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_lagging_fan_out_anywhere_in_the_pool_refuses_writes(pool: PgPool) {
    // Back-pressure (FANOUT_MAX_LAG_MS): this test plays a second gateway
    // that delivers 900 ms after commit; within a tick (250 ms) this
    // gateway refuses new writes with a retry hint, and accepts them again
    // once that gateway reports a low lag.
    let p = Pool::start_with(pool.clone(), 1, |c| {
        c.fanout_max_lag = Duration::from_millis(200);
    })
    .await;
    let (ada, _bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let first = a.say(chat, "delivered in time").await;
    assert_eq!(a.answer(&first).await["payload"]["seq"], 1);

    let state = &p.gw(0).state;
    let now = gateway::metrics::now_ms();
    let _: () = fred::prelude::HashesInterface::hset(
        &state.redis,
        state.keys.fanout_lag(),
        ("other-gateway~1", format!("900 {now}")),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = a.say(chat, "refused while fan-out lags").await;
    let refused = a.answer(&second).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"]["code"], "unavailable", "{refused}");
    assert_eq!(refused["payload"]["retryAfterMs"], 1000, "{refused}");
    assert_eq!(
        count_messages(&pool).await,
        1,
        "a refused write is not queued"
    );

    // The other gateway caught up: writes pass again (a report that goes
    // stale stops counting too: shared/tests/lua_scripts.rs).
    let now = gateway::metrics::now_ms();
    let _: () = fred::prelude::HashesInterface::hset(
        &state.redis,
        state.keys.fanout_lag(),
        ("other-gateway~1", format!("0 {now}")),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    a.send_with_id(
        &second,
        "message.send",
        serde_json::json!({ "chatId": chat, "content": "refused while fan-out lags" }),
    )
    .await;
    let ack = a.answer(&second).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["payload"]["seq"], 2);
}

/// Waits until the worker's background build of `messages_search` is done.
async fn search_index_built(pool: &PgPool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let valid: Option<(bool,)> = sqlx::query_as(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('messages_search')",
        )
        .fetch_optional(pool)
        .await
        .unwrap();
        if valid == Some((true,)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "search index not built in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
