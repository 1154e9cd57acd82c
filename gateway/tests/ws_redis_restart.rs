//! Redis dies and comes back empty: writes fail loudly meanwhile, then the
//! pool recovers on its own (scripts re-loaded, consumer groups re-created,
//! subscriptions restored) without clients reconnecting.

mod common;

use std::time::Duration;

use common::{
    realtime::{Client, Pool},
    redis_server::RedisServer,
};
use sqlx::PgPool;

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn pool_recovers_after_redis_restart(pool: PgPool) {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let p = Pool::start_with(pool.clone(), 2, |c| c.redis_url = url.clone()).await;
    let (ada, bob, chat) = p.pair().await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    let mut b = Client::connect(p.gw(1), &bob).await;
    let id = a.say(chat, "before").await;
    a.answer(&id).await;
    b.expect("message.new").await;

    redis.kill().await;
    let id = a.say(chat, "while Redis is down").await;
    let answer = a.answer(&id).await;
    assert_eq!(answer["type"], "error");
    assert_eq!(answer["payload"]["code"], "unavailable");

    redis.restart().await;
    // Retry until the pool is back (the client's normal retry loop).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let ack = loop {
        let id = a.say(chat, "after").await;
        let answer = a.answer(&id).await;
        if answer["type"] == "ack" {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pool did not recover: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(ack["payload"]["seq"], 2);
    let got = b
        .expect_where("message.new", |f| f["payload"]["message"]["seq"] == 2)
        .await;
    assert_eq!(got["payload"]["message"]["content"], "after");
}
