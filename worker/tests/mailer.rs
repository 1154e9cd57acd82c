//! The mailer's HTTP transport against a local mail API started by the
//! test: the exact request (bearer token, idempotency key, JSON body),
//! retry after a 5xx, give-up on a 4xx, and the body cleared once sent.

use std::sync::{Arc, Mutex};

use axum::{http::HeaderMap, http::StatusCode, routing::post, Json, Router};
use fechatter_shared::{
    config::{MailSettings, MailTransport},
    store::email::{self, Email},
};
use serde_json::Value;
use sqlx::PgPool;
use worker::mailer::{MailMetrics, Mailer};

#[derive(Default)]
struct Api {
    /// Status to answer next (then 200).
    script: Vec<u16>,
    seen: Vec<(HeaderMap, Value)>,
}

async fn start_api(api: Arc<Mutex<Api>>) -> String {
    let app = Router::new().route(
        "/send",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let api = api.clone();
            async move {
                let mut api = api.lock().unwrap();
                api.seen.push((headers, body));
                let status = if api.script.is_empty() {
                    200
                } else {
                    api.script.remove(0)
                };
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn mailer(pool: &PgPool, url: String) -> Mailer {
    let settings = MailSettings {
        transport: MailTransport::Http { url },
        api_token: "mail-api-secret".into(),
        from: "Fechatter <no-reply@test.local>".into(),
    };
    let metrics = MailMetrics::new(&fechatter_shared::metrics::Metrics::new("test"));
    Mailer::new(pool.clone(), settings, metrics)
}

async fn row(pool: &PgPool, id: i64) -> (bool, bool, i32, String, Option<String>) {
    sqlx::query_as(
        "SELECT sent_at IS NOT NULL, failed_at IS NOT NULL, attempts, body, last_error
         FROM email_outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn queue(pool: &PgPool, to: &str) -> i64 {
    email::enqueue(
        pool,
        &Email {
            recipient: to.into(),
            subject: "Hello".into(),
            body: "secret link".into(),
        },
    )
    .await
    .unwrap();
    sqlx::query_as::<_, (i64,)>("SELECT max(id) FROM email_outbox")
        .fetch_one(pool)
        .await
        .unwrap()
        .0
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_5xx_is_retried_with_the_same_idempotency_key_then_sent(pool: PgPool) {
    let api = Arc::new(Mutex::new(Api {
        script: vec![503],
        ..Default::default()
    }));
    let mailer = mailer(&pool, start_api(api.clone()).await);
    let id = queue(&pool, "ann@x.test").await;

    assert_eq!(mailer.deliver_due().await.unwrap(), 1);
    let (sent, failed, attempts, body, error) = row(&pool, id).await;
    assert!(!sent && !failed);
    assert_eq!((attempts, body.as_str()), (1, "secret link"));
    assert!(error.unwrap().contains("503"));
    assert_eq!(
        mailer.deliver_due().await.unwrap(),
        0,
        "backing off, not due yet"
    );

    sqlx::query("UPDATE email_outbox SET next_attempt_at = now() WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(mailer.deliver_due().await.unwrap(), 1);
    let (sent, _, attempts, body, _) = row(&pool, id).await;
    assert!(sent);
    assert_eq!((attempts, body.as_str()), (2, ""), "body cleared once sent");

    let api = api.lock().unwrap();
    assert_eq!(api.seen.len(), 2);
    for (headers, json) in &api.seen {
        assert_eq!(headers["authorization"], "Bearer mail-api-secret");
        assert_eq!(
            headers["idempotency-key"],
            format!("fechatter-mail-{id}").as_str()
        );
        assert_eq!(json["to"], "ann@x.test");
        assert_eq!(json["from"], "Fechatter <no-reply@test.local>");
        assert_eq!(json["subject"], "Hello");
        assert_eq!(json["text"], "secret link");
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_4xx_gives_up_at_once_and_an_unreachable_api_is_retried(pool: PgPool) {
    let api = Arc::new(Mutex::new(Api {
        script: vec![422],
        ..Default::default()
    }));
    let mailer = mailer(&pool, start_api(api).await);
    let id = queue(&pool, "bad@x.test").await;
    mailer.deliver_due().await.unwrap();
    let (sent, failed, _, body, error) = row(&pool, id).await;
    assert!(!sent && failed);
    assert_eq!(body, "", "a given-up body is cleared too");
    assert!(error.unwrap().contains("422"));

    // Nothing listens on this port: transient.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let unreachable = self::mailer(&pool, format!("http://{dead}/send"));
    let id = queue(&pool, "later@x.test").await;
    unreachable.deliver_due().await.unwrap();
    let (sent, failed, attempts, _, error) = row(&pool, id).await;
    assert!(!sent && !failed);
    assert_eq!(attempts, 1);
    assert!(error.unwrap().contains("unreachable"));
}
