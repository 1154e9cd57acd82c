//! Sessions end everywhere at once: logout, refresh-token reuse, password
//! change and deactivation close the session's (or user's) open WebSockets
//! on every gateway with 4401 within a second, and REST refuses their
//! tokens. Concurrent refreshes with one token do not count as theft.

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_error,
    realtime::{Client, Pool},
    TestApp, TestUser,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

async fn signin(app: &TestApp, email: &str) -> TestUser {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/signin",
            None,
            Some(json!({ "email": email, "password": "correct horse battery" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    TestUser::from_auth(&body)
}

async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/refresh",
        None,
        Some(json!({ "refreshToken": token })),
    )
    .await
}

/// Asserts the client is closed with 4401 within 1 s (plus scheduling
/// slack of the shared test machine, reported if exceeded).
async fn closes_with_4401(c: &mut Client, started: Instant) {
    assert_eq!(c.closed().await, Some(4401));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn logout_closes_that_session_everywhere_and_only_it(pool: PgPool) {
    let p = Pool::start(pool, 2).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let laptop = signin(p.gw(0), "ada@acme.test").await;
    // The phone session's sockets on both gateways; the laptop on one.
    let mut phone1 = Client::connect(p.gw(0), &ada).await;
    let mut phone2 = Client::connect(p.gw(1), &ada).await;
    let mut lap = Client::connect(p.gw(1), &laptop).await;

    let started = Instant::now();
    let (status, _) = p
        .gw(0)
        .call(
            Method::POST,
            "/api/logout",
            Some(&ada.token),
            Some(json!({ "refreshToken": ada.refresh })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let notice = phone2.expect("session.revoked").await;
    assert_eq!(notice["payload"]["sessionId"], ada.session.to_string());
    closes_with_4401(&mut phone2, started).await;
    closes_with_4401(&mut phone1, started).await;
    // REST refuses the session's access token on every gateway.
    for gw in [p.gw(0), p.gw(1)] {
        let (status, body) = gw.get("/api/users", &ada).await;
        assert_error(status, &body, 401, "unauthorized");
    }
    // A new WebSocket with it is refused at the upgrade.
    let refused =
        tokio_tungstenite::connect_async(format!("{}?token={}", p.gw(1).ws_url(), ada.token)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 401)
        }
        other => panic!("upgrade with a revoked token: {other:?}"),
    }
    // The laptop session is untouched.
    let ping = lap.send("ping", json!({})).await;
    assert_eq!(lap.answer(&ping).await["type"], "ack");
    let (status, _) = p.gw(0).get("/api/users", &laptop).await;
    assert_eq!(status, StatusCode::OK);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn deactivation_and_password_change_end_sessions(pool: PgPool) {
    let p = Pool::start(pool, 2).await;
    let owner = p.gw(0).signup("Olga", "Acme").await;
    let mia = p.gw(0).signup("Mia", "Acme").await;
    let mia2 = signin(p.gw(1), "mia@acme.test").await;
    let mut a = Client::connect(p.gw(0), &mia).await;
    let mut b = Client::connect(p.gw(1), &mia2).await;

    // Password change: the other session ends, the current one stays.
    let started = Instant::now();
    let (status, body) = p
        .gw(0)
        .post(
            "/api/me/password",
            &mia,
            json!({ "currentPassword": "correct horse battery", "newPassword": "another long one" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    closes_with_4401(&mut b, started).await;
    let (status, body) = refresh(p.gw(1), &mia2.refresh).await;
    assert_error(status, &body, 401, "unauthorized");
    let ping = a.send("ping", json!({})).await;
    assert_eq!(
        a.answer(&ping).await["type"],
        "ack",
        "current session lives"
    );
    // A wrong current password changes nothing.
    let (status, body) = p
        .gw(0)
        .post(
            "/api/me/password",
            &mia,
            json!({ "currentPassword": "nope nope nope", "newPassword": "whatever long" }),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");

    // Deactivation: every session of the user ends.
    let started = Instant::now();
    let (status, _) = p
        .gw(1)
        .post(
            &format!("/api/workspace/users/{}/deactivate", mia.id),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    closes_with_4401(&mut a, started).await;
    let (status, body) = p.gw(0).get("/api/users", &mia).await;
    assert_error(status, &body, 401, "unauthorized");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn concurrent_refreshes_share_one_successor_but_late_reuse_is_theft(pool: PgPool) {
    let p = Pool::start(pool.clone(), 2).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    // Two tabs refresh with the same token at once, through two gateways.
    let (r1, r2) = tokio::join!(
        refresh(p.gw(0), &ada.refresh),
        refresh(p.gw(1), &ada.refresh)
    );
    assert_eq!(r1.0, StatusCode::OK, "{}", r1.1);
    assert_eq!(r2.0, StatusCode::OK, "{}", r2.1);
    assert_eq!(r1.1["refreshToken"], r2.1["refreshToken"], "one successor");
    assert_eq!(r1.1["sessionId"], ada.session.to_string());
    // The family lives on: the successor refreshes again.
    let next = r1.1["refreshToken"].as_str().unwrap().to_string();
    let (status, body) = refresh(p.gw(0), &next).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tab = TestUser::from_auth(&body);
    let mut socket = Client::connect(p.gw(1), &tab).await;

    // The original token again after the grace window: theft. The family
    // is revoked and the session's socket closes.
    sqlx::query("UPDATE refresh_tokens SET rotated_at = rotated_at - interval '11 seconds'")
        .execute(&pool)
        .await
        .unwrap();
    let started = Instant::now();
    let (status, body) = refresh(p.gw(0), &ada.refresh).await;
    assert_error(status, &body, 401, "unauthorized");
    closes_with_4401(&mut socket, started).await;
    let (status, body) = refresh(p.gw(0), &tab.refresh).await;
    assert_error(status, &body, 401, "unauthorized");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn in_band_refresh_cannot_extend_or_switch_a_session(pool: PgPool) {
    let p = Pool::start(pool, 1).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let other = signin(p.gw(0), "ada@acme.test").await;
    let mut a = Client::connect(p.gw(0), &ada).await;
    // A token of another session of the same user is refused.
    let id = a
        .send("auth.refresh", json!({ "accessToken": other.token }))
        .await;
    assert_eq!(a.answer(&id).await["payload"]["code"], "forbidden");
    // A fresh token of this session works, and its expiry is RFC 3339.
    let now = chrono::Utc::now().timestamp();
    let fresh = p.gw(0).mint(&ada, "Ada", now, now + 600);
    let id = a
        .send("auth.refresh", json!({ "accessToken": fresh }))
        .await;
    let ack = a.answer(&id).await;
    assert_eq!(
        ack["payload"]["expiresAt"],
        fechatter_shared::protocol::rfc3339(now + 600)
    );
    // Once the session is revoked (here: the Redis mark only, as if the
    // Pub/Sub notice were lost), a fresh token of it is refused in band.
    use fred::{interfaces::KeysInterface, types::Expiration};
    let state = &p.gw(0).state;
    let _: () = state
        .redis
        .set(
            state.keys.revoked_session(ada.id, &ada.session),
            "1",
            Some(Expiration::EX(60)),
            None,
            false,
        )
        .await
        .unwrap();
    let id = a
        .send("auth.refresh", json!({ "accessToken": fresh }))
        .await;
    assert_eq!(a.answer(&id).await["payload"]["code"], "unauthorized");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_revocation_that_missed_a_fresh_successor_still_ends_the_family(pool: PgPool) {
    let p = Pool::start(pool.clone(), 1).await;
    let ada = p.gw(0).signup("Ada", "Acme").await;
    let (status, body) = refresh(p.gw(0), &ada.refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let successor = body["refreshToken"].as_str().unwrap().to_string();
    // What a revoking UPDATE racing a rotation leaves behind: the old token
    // revoked, the successor inserted meanwhile still unrevoked.
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE token_hash = $1")
        .bind(fechatter_shared::token::hash_refresh_token(&ada.refresh))
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = refresh(p.gw(0), &successor).await;
    assert_error(status, &body, 401, "unauthorized");
}
