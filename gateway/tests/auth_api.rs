//! Sign-up, sign-in, refresh rotation, logout and token failures.

mod common;

use common::{assert_error, spawn};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn signup_creates_or_joins_workspace(pool: PgPool) {
    let app = spawn(pool).await;
    let ada = app.signup("Ada", "Acme").await;
    let bob = app.signup("Bob", "Acme").await; // joins with an invite (helper)
    let eve = app.signup("Eve", "Evil").await;
    assert_eq!(ada.workspace_id, bob.workspace_id);
    assert_ne!(ada.workspace_id, eve.workspace_id);

    let (status, body) = app
        .call(
            Method::POST,
            "/api/signup",
            None,
            Some(json!({
                "fullname": "Ada Again", "email": "ADA@acme.test",
                "password": "another password", "workspace": "Acme"
            })),
        )
        .await;
    assert_error(status, &body, 409, "conflict");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn signup_response_shape(pool: PgPool) {
    let app = spawn(pool).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/signup",
            None,
            Some(json!({
                "fullname": "Grace", "email": "grace@navy.test",
                "password": "hopper1906", "workspace": "Navy"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["accessToken"].is_string());
    assert!(body["refreshToken"].is_string());
    assert_eq!(body["expiresIn"], 900);
    assert!(body["user"]["id"].is_i64());
    assert_eq!(body["user"]["fullname"], "Grace");
    assert_eq!(body["user"]["email"], "grace@navy.test");
    assert!(body["user"]["workspaceId"].is_i64());
    assert!(body["user"].get("passwordHash").is_none());
    assert_eq!(body["user"]["role"], "owner");
    assert_eq!(body["user"]["active"], true);
    assert!(body["sessionId"].as_str().is_some_and(|s| s.len() == 36));
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn signup_validation(pool: PgPool) {
    let app = spawn(pool).await;
    for (body, why) in [
        (
            json!({"fullname": "", "email": "a@b.co", "password": "12345678", "workspace": "w"}),
            "empty name",
        ),
        (
            json!({"fullname": "A", "email": "nope", "password": "12345678", "workspace": "w"}),
            "bad email",
        ),
        (
            json!({"fullname": "A", "email": "a@b.co", "password": "short", "workspace": "w"}),
            "short password",
        ),
        (
            json!({"fullname": "A", "email": "a@b.co", "password": "12345678", "workspace": "  "}),
            "blank workspace",
        ),
        (
            json!({"fullname": "A", "email": "a@b.co", "password": "12345678"}),
            "missing workspace",
        ),
        (
            json!({"fullname": 5, "email": "a@b.co", "password": "12345678", "workspace": "w"}),
            "wrong type",
        ),
    ] {
        let (status, resp) = app
            .call(Method::POST, "/api/signup", None, Some(body))
            .await;
        assert_error(status, &resp, 422, "validation_failed");
        assert!(!resp.to_string().is_empty(), "{why}");
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn signin_checks_password(pool: PgPool) {
    let app = spawn(pool).await;
    app.signup("Ada", "Acme").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/signin",
            None,
            Some(json!({
                "email": "ada@acme.test", "password": "correct horse battery"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["fullname"], "Ada");

    let (status, body) = app
        .call(
            Method::POST,
            "/api/signin",
            None,
            Some(json!({
                "email": "ada@acme.test", "password": "wrong password"
            })),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");

    let (status, unknown) = app
        .call(
            Method::POST,
            "/api/signin",
            None,
            Some(json!({
                "email": "nobody@acme.test", "password": "whatever1"
            })),
        )
        .await;
    assert_error(status, &unknown, 401, "invalid_credentials");
    assert_eq!(
        body, unknown,
        "unknown email and wrong password look the same"
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn refresh_rotates_and_detects_reuse(pool: PgPool) {
    let app = spawn(pool).await;
    let ada = app.signup("Ada", "Acme").await;
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/api/refresh",
                None,
                Some(json!({ "refreshToken": token })),
            )
            .await
        }
    };
    let (status, first) = refresh(ada.refresh.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let second_token = first["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(second_token, ada.refresh);
    let (status, _) = app
        .get(
            "/api/users",
            &common::TestUser {
                token: first["accessToken"].as_str().unwrap().into(),
                ..ada.clone()
            },
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Reusing the rotated token after the grace window revokes the family,
    // including the new token. (The rotation is moved 11 s into the past
    // rather than waiting.)
    sqlx::query("UPDATE refresh_tokens SET rotated_at = rotated_at - interval '11 seconds'")
        .execute(&app.state.pool)
        .await
        .unwrap();
    let (status, body) = refresh(ada.refresh.clone()).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = refresh(second_token).await;
    assert_error(status, &body, 401, "unauthorized");

    let (status, body) = refresh("made-up".into()).await;
    assert_error(status, &body, 401, "unauthorized");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn logout_revokes_refresh_token(pool: PgPool) {
    let app = spawn(pool).await;
    let ada = app.signup("Ada", "Acme").await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/logout",
            Some(&ada.token),
            Some(json!({ "refreshToken": ada.refresh })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/refresh",
            None,
            Some(json!({ "refreshToken": ada.refresh })),
        )
        .await;
    assert_error(status, &body, 401, "unauthorized");
    // Logout without an access token is refused.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/logout",
            None,
            Some(json!({ "refreshToken": "x" })),
        )
        .await;
    assert_error(status, &body, 401, "unauthorized");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn bad_access_tokens_are_refused(pool: PgPool) {
    let app = spawn(pool).await;
    let ada = app.signup("Ada", "Acme").await;
    let (status, body) = app.call(Method::GET, "/api/users", None, None).await;
    assert_error(status, &body, 401, "unauthorized");

    let now = chrono::Utc::now().timestamp();
    let expired = app.mint(&ada, "Ada", now - 600, now - 60);
    let (status, body) = app
        .call(Method::GET, "/api/users", Some(&expired), None)
        .await;
    assert_error(status, &body, 401, "token_expired");

    let forged = fechatter_shared::token::TokenKeys::new(
        "not-the-secret",
        std::time::Duration::from_secs(60),
    )
    .issue(&fechatter_shared::token::Subject {
        user_id: ada.id,
        workspace_id: ada.workspace_id,
        name: "Ada",
        session_id: ada.session,
    })
    .unwrap();
    let (status, body) = app
        .call(Method::GET, "/api/users", Some(&forged), None)
        .await;
    assert_error(status, &body, 401, "unauthorized");

    let res = app
        .http
        .get(format!("{}/api/users", app.base))
        .header("authorization", format!("Basic {}", ada.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn users_are_listed_per_workspace(pool: PgPool) {
    let app = spawn(pool).await;
    let ada = app.signup("Ada", "Acme").await;
    let bob = app.signup("Bob", "Acme").await;
    let eve = app.signup("Eve", "Evil").await;
    let (status, body) = app.get("/api/users", &ada).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<i64> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![ada.id, bob.id]);
    assert!(!body.to_string().contains("Eve"));
    let (_, body) = app.get("/api/users", &eve).await;
    assert_eq!(body.as_array().unwrap().len(), 1);
}
