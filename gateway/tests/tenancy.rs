//! Workspace admission (invites, roles, deactivation) and name privacy,
//! against a real gateway, PostgreSQL and Redis.

mod common;

use common::{assert_error, spawn, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

async fn signup_raw(app: &common::TestApp, email: &str, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({ "fullname": "X", "email": email, "password": "correct horse battery" });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.call(Method::POST, "/api/signup", None, Some(body))
        .await
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn typing_an_existing_workspace_name_creates_a_new_workspace(pool: PgPool) {
    let app = spawn(pool).await;
    let (status, ada) = signup_raw(&app, "ada@acme.test", json!({ "workspace": "Acme" })).await;
    assert_eq!(status, StatusCode::CREATED, "{ada}");
    assert_eq!(ada["user"]["role"], "owner");
    let (status, eve) = signup_raw(&app, "eve@evil.test", json!({ "workspace": "acme" })).await;
    assert_eq!(status, StatusCode::CREATED, "{eve}");
    assert_eq!(
        eve["user"]["role"], "owner",
        "Eve owns her own new workspace"
    );
    assert_ne!(eve["user"]["workspaceId"], ada["user"]["workspaceId"]);
    // Eve's directory holds only herself.
    let eve = TestUser::from_auth(&eve);
    let (_, users) = app.get("/api/users", &eve).await;
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    // Neither a workspace nor an invite: refused, nothing created.
    let (status, body) = signup_raw(&app, "x@y.test", json!({})).await;
    assert_error(status, &body, 422, "validation_failed");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn invites_admit_once_to_the_right_person_until_revoked_or_expired(pool: PgPool) {
    let app = spawn(pool.clone()).await;
    let owner = app.signup("Olga", "Acme").await;
    let invite = |body: Value| {
        let (app, owner) = (&app, &owner);
        async move { app.post("/api/workspace/invites", owner, body).await }
    };

    // Single-use: the first sign-up gets in, the second is refused.
    let (status, single) = invite(json!({ "singleUse": true })).await;
    assert_eq!(status, StatusCode::CREATED, "{single}");
    assert!(single["expiresAt"].as_str().unwrap().ends_with('Z'));
    let token = single["token"].as_str().unwrap();
    let (status, joined) = signup_raw(&app, "m1@acme.test", json!({ "inviteToken": token })).await;
    assert_eq!(status, StatusCode::CREATED, "{joined}");
    assert_eq!(joined["user"]["workspaceId"], owner.workspace_id);
    assert_eq!(joined["user"]["role"], "member");
    let (status, body) = signup_raw(&app, "m2@acme.test", json!({ "inviteToken": token })).await;
    assert_error(status, &body, 403, "forbidden");

    // Bound to an e-mail: anyone else is refused, the addressee admitted.
    let (_, bound) = invite(json!({ "email": "Bea@Acme.test" })).await;
    let token = bound["token"].as_str().unwrap();
    let (status, body) = signup_raw(&app, "eve@evil.test", json!({ "inviteToken": token })).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = signup_raw(&app, "bea@acme.test", json!({ "inviteToken": token })).await;
    assert_eq!(status, StatusCode::CREATED);

    // Revoked, expired and made-up invites are refused alike.
    let (_, revoked) = invite(json!({})).await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/workspace/invites/{}", revoked["id"]),
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, expired) = invite(json!({ "expiresInSecs": 60 })).await;
    sqlx::query(
        "UPDATE workspace_invites SET expires_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(expired["id"].as_i64().unwrap())
    .execute(&pool)
    .await
    .unwrap();
    for (email, token) in [
        ("r@acme.test", revoked["token"].as_str().unwrap()),
        ("e@acme.test", expired["token"].as_str().unwrap()),
        ("z@acme.test", "made-up"),
    ] {
        let (status, body) = signup_raw(&app, email, json!({ "inviteToken": token })).await;
        assert_error(status, &body, 403, "forbidden");
    }

    // The list shows every invite without secrets; members may not see it.
    let (status, list) = app.get("/api/workspace/invites", &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 4);
    assert!(list.to_string().find("\"token\"").is_none(), "{list}");
    let member = TestUser::from_auth(&joined);
    let (status, body) = app.get("/api/workspace/invites", &member).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = app.post("/api/workspace/invites", &member, json!({})).await;
    assert_error(status, &body, 403, "forbidden");
    // Another workspace's owner cannot revoke this workspace's invites.
    let stranger = app.signup("Sam", "Other").await;
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/api/workspace/invites/{}", single["id"]),
            Some(&stranger.token),
            None,
        )
        .await;
    assert_error(status, &body, 404, "not_found");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn roles_govern_who_deactivates_whom(pool: PgPool) {
    let app = spawn(pool).await;
    let owner = app.signup("Olga", "Acme").await;
    let adam = app.signup("Adam", "Acme").await;
    let mia = app.signup("Mia", "Acme").await;
    let path = |u: &TestUser, what: &str| format!("/api/workspace/users/{}/{what}", u.id);
    // A member cannot promote or deactivate anyone.
    let (status, body) = app
        .call(
            Method::PUT,
            &path(&adam, "role"),
            Some(&mia.token),
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = app.post(&path(&adam, "deactivate"), &mia, json!({})).await;
    assert_error(status, &body, 403, "forbidden");
    // The owner makes Adam an admin; Adam deactivates Mia but not Olga.
    let (status, promoted) = app
        .call(
            Method::PUT,
            &path(&adam, "role"),
            Some(&owner.token),
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_eq!(
        (status, promoted["role"].as_str()),
        (StatusCode::OK, Some("admin"))
    );
    let (status, body) = app
        .post(&path(&owner, "deactivate"), &adam, json!({}))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = app.post(&path(&mia, "deactivate"), &adam, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Mia can neither use her token, nor refresh, nor sign in.
    let (status, body) = app.get("/api/users", &mia).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/refresh",
            None,
            Some(json!({ "refreshToken": mia.refresh })),
        )
        .await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/signin",
            None,
            Some(json!({ "email": "mia@acme.test", "password": "correct horse battery" })),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    // The directory shows her as inactive; she cannot be added to chats.
    let (_, users) = app.get("/api/users", &owner).await;
    let mia_row = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == mia.id)
        .unwrap()
        .clone();
    assert_eq!(mia_row["active"], false);
    let (status, body) = app
        .post(
            "/api/chat",
            &owner,
            json!({ "type": "group", "name": "g", "members": [adam.id, mia.id] }),
        )
        .await;
    assert_eq!(status.as_u16() / 100, 4, "{body}");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn two_single_chats_for_one_pair_cannot_be_created_by_a_race(pool: PgPool) {
    let app = spawn(pool).await;
    let ada = app.signup("Ada", "Acme").await;
    let bob = app.signup("Bob", "Acme").await;
    let calls = (0..8).map(|i| {
        let (app, ada, bob) = (&app, &ada, &bob);
        async move {
            // Both directions at once.
            let (from, to) = if i % 2 == 0 { (ada, bob) } else { (bob, ada) };
            app.post(
                "/api/chat",
                from,
                json!({ "type": "single", "members": [to.id] }),
            )
            .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let ids: std::collections::HashSet<i64> = results
        .iter()
        .map(|(status, body)| {
            assert!(status.is_success(), "{status} {body}");
            body["id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one single chat per pair: {ids:?}");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn invites_die_with_their_creators_powers(pool: PgPool) {
    let app = spawn(pool).await;
    let owner = app.signup("Olga", "Acme").await;
    let adam = app.signup("Adam", "Acme").await;
    let promote = json!({ "role": "admin" });
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/workspace/users/{}/role", adam.id),
            Some(&owner.token),
            Some(promote),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, kept) = app.post("/api/workspace/invites", &adam, json!({})).await;
    let (_, later) = app.post("/api/workspace/invites", &adam, json!({})).await;
    // Still an admin: the invite works.
    let (status, _) = signup_raw(
        &app,
        "one@acme.test",
        json!({ "inviteToken": kept["token"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // Deactivated (e.g. fired): none of Adam's invites admits anyone.
    let (status, _) = app
        .post(
            &format!("/api/workspace/users/{}/deactivate", adam.id),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for invite in [&kept, &later] {
        let (status, body) = signup_raw(
            &app,
            "adam-again@evil.test",
            json!({ "inviteToken": invite["token"] }),
        )
        .await;
        assert_error(status, &body, 403, "forbidden");
    }
}
