//! The pool's queries are correct when `DATABASE_URL` is PgBouncer in
//! transaction pooling (`make test` runs this crate's tests through one
//! with 5 server connections per database): many clients' prepared
//! statements, interleaved on shared server connections, each get their
//! own answer. Before PgBouncer 1.21 (no `max_prepared_statements`) this
//! exact load returned other clients' results (docs/architecture.md,
//! "PgBouncer"). Straight to PostgreSQL it passes trivially.

use fechatter_shared::{config::DbRole, Config};
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn concurrent_prepared_statements_get_their_own_answers(pool: PgPool) {
    let db = pool.connect_options().get_database().unwrap().to_string();
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let mut config = Config::for_tests(&url);
    config.db_max_connections = Some(16);
    let pool = fechatter_shared::store::connect(&config, DbRole::Gateway)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..32i64)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..100i64 {
                    let n = t * 1000 + i;
                    let (got, want): (i64, i64) = match i % 4 {
                        0 => (
                            sqlx::query_scalar("SELECT $1::int8 + 1")
                                .bind(n)
                                .fetch_one(&pool)
                                .await
                                .unwrap(),
                            n + 1,
                        ),
                        1 => (
                            sqlx::query_scalar("SELECT $1::int8 * 2")
                                .bind(n)
                                .fetch_one(&pool)
                                .await
                                .unwrap(),
                            n * 2,
                        ),
                        2 => (
                            sqlx::query_scalar("SELECT length($1::text)::int8")
                                .bind(n.to_string())
                                .fetch_one(&pool)
                                .await
                                .unwrap(),
                            n.to_string().len() as i64,
                        ),
                        _ => {
                            // A transaction with session-free settings, as
                            // message search runs.
                            let mut tx = pool.begin().await.unwrap();
                            sqlx::query("SET LOCAL statement_timeout = 3000")
                                .execute(&mut *tx)
                                .await
                                .unwrap();
                            let got = sqlx::query_scalar("SELECT $1::int8 - 7")
                                .bind(n)
                                .fetch_one(&mut *tx)
                                .await
                                .unwrap();
                            tx.commit().await.unwrap();
                            (got, n - 7)
                        }
                    };
                    assert_eq!(got, want, "task {t}, query {i}: another client's answer");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
