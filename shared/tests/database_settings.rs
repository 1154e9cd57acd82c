//! Settings the migrations give the database itself: every new session,
//! direct or through PgBouncer, starts with them.

use sqlx::{Connection, PgConnection, PgPool};

/// JIT compilation is off (migration 13): at 10M messages it cost the send
/// path ~67 ms per badge query for 0.01 ms of work.
#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn new_sessions_start_without_jit(pool: PgPool) {
    let mut fresh = PgConnection::connect_with(&pool.connect_options())
        .await
        .unwrap();
    let (jit,): (String,) = sqlx::query_as("SHOW jit")
        .fetch_one(&mut fresh)
        .await
        .unwrap();
    assert_eq!(jit, "off");
    fresh.close().await.unwrap();
}
