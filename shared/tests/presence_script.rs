//! lua/presence_update.lua against a real Redis: the aggregation rules of
//! seed 002 §4.1, announcements only on change, the dead-gateway sweep,
//! and the lifetime of a hash without connections.

use fechatter_shared::{
    presence::{self, Op, Status},
    redis::Keys,
};
use fred::prelude::*;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn setup() -> (Client, Keys) {
    let client = fechatter_shared::redis::connect(&redis_url(), std::time::Duration::from_secs(5))
        .await
        .expect("local Redis");
    fechatter_shared::scripts::load_all(&client).await.unwrap();
    (
        client,
        Keys::new(format!("t{}", uuid::Uuid::new_v4().simple())),
    )
}

async fn apply(c: &Client, k: &Keys, op: Op<'_>) -> (Status, bool) {
    let o = presence::update(c, k, 7, op).await.unwrap();
    (o.status, o.changed)
}

fn conn(field: &str, active: bool) -> Op<'_> {
    Op::Conn {
        field,
        active,
        manual: None,
    }
}

#[tokio::test]
async fn devices_aggregate_and_only_changes_are_announced() {
    let (c, k) = setup().await;
    let sub =
        fred::prelude::Builder::from_config(fred::prelude::Config::from_url(&redis_url()).unwrap())
            .build_subscriber_client()
            .unwrap();
    sub.init().await.unwrap();
    sub.ssubscribe(k.presence_channel(7)).await.unwrap();
    let mut rx = sub.message_rx();

    let (a, b) = ("c:gw1|1", "c:gw2|1");
    assert_eq!(apply(&c, &k, conn(a, true)).await, (Status::Online, true));
    assert_eq!(
        apply(&c, &k, conn(b, false)).await,
        (Status::Online, false),
        "one active device suffices"
    );
    assert_eq!(
        apply(&c, &k, conn(a, false)).await,
        (Status::Away, true),
        "all idle: away"
    );
    assert_eq!(apply(&c, &k, Op::Manual("dnd")).await, (Status::Dnd, true));
    assert_eq!(
        apply(&c, &k, conn(a, true)).await,
        (Status::Dnd, false),
        "manual wins over activity"
    );
    assert_eq!(apply(&c, &k, Op::Manual("")).await, (Status::Online, true));
    assert_eq!(
        apply(&c, &k, Op::Drop { field: a }).await,
        (Status::Away, true)
    );
    assert_eq!(
        apply(&c, &k, Op::Drop { field: b }).await,
        (Status::Offline, true)
    );
    assert_eq!(
        apply(&c, &k, Op::Drop { field: b }).await,
        (Status::Offline, false)
    );

    let mut announced = Vec::new();
    while let Ok(Ok(m)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), rx.recv()).await
    {
        let text = m.value.as_string().unwrap();
        announced.push(presence::Announcement::parse(&text).unwrap().status);
    }
    assert_eq!(
        announced,
        [
            Status::Online,
            Status::Away,
            Status::Dnd,
            Status::Online,
            Status::Away,
            Status::Offline
        ]
    );
    // Without connections the hash expires (PostgreSQL keeps what lasts).
    let ttl: i64 = c.pttl(k.presence(7)).await.unwrap();
    assert!(ttl > 0 && ttl <= presence::IDLE_HASH_TTL_MS as i64, "{ttl}");
}

#[tokio::test]
async fn a_sweep_removes_one_gateways_connections_only() {
    let (c, k) = setup().await;
    let dead = presence::conn_field("gw-dead~1", 4);
    let alive = presence::conn_field("gw-alive~2", 9);
    apply(&c, &k, conn(&dead, true)).await;
    apply(&c, &k, conn(&alive, false)).await;
    let prefix = presence::node_prefix("gw-dead~1");
    assert_eq!(
        apply(&c, &k, Op::Node { prefix: &prefix }).await,
        (Status::Away, true)
    );
    let prefix = presence::node_prefix("gw-alive~2");
    assert_eq!(
        apply(&c, &k, Op::Node { prefix: &prefix }).await,
        (Status::Offline, true)
    );
    // The manual state restored at connect applies at once.
    let field = presence::conn_field("gw-alive~2", 10);
    let op = Op::Conn {
        field: &field,
        active: true,
        manual: Some("brb"),
    };
    assert_eq!(apply(&c, &k, op).await, (Status::Brb, true));
    let now = presence::current(&c, &k, &[7, 8]).await.unwrap();
    assert_eq!(now[0].map(|(s, _)| s), Some(Status::Brb));
    assert_eq!(now[1], None, "unknown user");
}
