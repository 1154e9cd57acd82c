//! Chat CRUD, chat-type rules, membership management and workspace isolation.

mod common;

use common::{assert_error, TestApp, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

struct World {
    app: TestApp,
    /// Commits chat changes (PATCH and ownership transfers go through
    /// the ingest shard like every chat write).
    _worker: common::realtime::TestWorker,
    ada: TestUser,
    bob: TestUser,
    cat: TestUser,
    eve: TestUser, // another workspace
}

async fn world(pool: PgPool) -> World {
    let mut pool = common::realtime::Pool::start(pool, 1).await;
    let app = pool.gateways.remove(0);
    let _worker = pool.workers.remove(0);
    let ada = app.signup("Ada", "Acme").await;
    let bob = app.signup("Bob", "Acme").await;
    let cat = app.signup("Cat", "Acme").await;
    let eve = app.signup("Eve", "Evil").await;
    World {
        app,
        _worker,
        ada,
        bob,
        cat,
        eve,
    }
}

fn ids(members: &Value) -> Vec<i64> {
    let mut v: Vec<i64> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userId"].as_i64().unwrap())
        .collect();
    v.sort();
    v
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn single_chat_rules(pool: PgPool) {
    let w = world(pool).await;
    let chat = w.app.create_chat(&w.ada, "single", None, &[w.bob.id]).await;
    assert_eq!(chat["type"], "single");
    assert_eq!(chat["memberCount"], 2);
    assert_eq!(chat["ownerId"], w.ada.id);
    assert!(chat["name"].is_null());

    // Same pair again, from either side: the existing chat, not a new one.
    let (status, again) = w
        .app
        .post(
            "/api/chat",
            &w.bob,
            json!({"type": "single", "members": [w.ada.id]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], chat["id"]);

    for members in [json!([]), json!([w.ada.id]), json!([w.bob.id, w.cat.id])] {
        let (status, body) = w
            .app
            .post(
                "/api/chat",
                &w.ada,
                json!({"type": "single", "members": members}),
            )
            .await;
        assert_error(status, &body, 422, "validation_failed");
    }
    // A user of another workspace is an unknown user.
    let (status, body) = w
        .app
        .post(
            "/api/chat",
            &w.ada,
            json!({"type": "single", "members": [w.eve.id]}),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn group_and_channel_rules(pool: PgPool) {
    let w = world(pool).await;
    let (status, body) = w
        .app
        .post(
            "/api/chat",
            &w.ada,
            json!({"type": "group", "members": [w.bob.id]}),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
    let group = w
        .app
        .create_chat(&w.ada, "group", Some("trio"), &[w.bob.id, w.cat.id])
        .await;
    assert_eq!(group["memberCount"], 3);

    let (status, body) = w
        .app
        .post(
            "/api/chat",
            &w.ada,
            json!({"type": "group", "members": [w.bob.id, w.eve.id]}),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&w.eve.id.to_string()));

    let private = w
        .app
        .create_chat(&w.ada, "private_channel", Some("secret"), &[w.bob.id])
        .await;
    assert_eq!(private["memberCount"], 2);
    let public = w
        .app
        .create_chat(&w.ada, "public_channel", Some("general"), &[])
        .await;
    assert_eq!(public["memberCount"], 1);

    let (status, body) = w
        .app
        .post(
            "/api/chat",
            &w.ada,
            json!({"type": "public_channel", "name": "x", "members": [w.bob.id]}),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
    let (status, body) = w
        .app
        .post("/api/chat", &w.ada, json!({"type": "private_channel"}))
        .await;
    assert_error(status, &body, 422, "validation_failed");
    let (status, body) = w
        .app
        .post(
            "/api/chat",
            &w.ada,
            json!({"type": "town_hall", "name": "x"}),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn visibility_and_listing(pool: PgPool) {
    let w = world(pool).await;
    let private = w
        .app
        .create_chat(&w.ada, "private_channel", Some("secret"), &[])
        .await;
    let public = w
        .app
        .create_chat(&w.ada, "public_channel", Some("general"), &[])
        .await;
    let pid = private["id"].as_i64().unwrap();
    let gid = public["id"].as_i64().unwrap();

    let (_, list) = w.app.get("/api/chat", &w.ada).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, list) = w.app.get("/api/chat", &w.bob).await;
    assert_eq!(list.as_array().unwrap().len(), 0);

    // Bob may see the public channel, not the private one.
    let (status, _) = w.app.get(&format!("/api/chat/{gid}"), &w.bob).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = w.app.get(&format!("/api/chat/{pid}"), &w.bob).await;
    assert_error(status, &body, 404, "not_found");
    // Eve (other workspace) sees neither, and cannot tell them from missing ids.
    for id in [pid, gid, 999_999] {
        let (status, body) = w.app.get(&format!("/api/chat/{id}"), &w.eve).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = w.app.get(&format!("/api/chat/{id}/members"), &w.eve).await;
        assert_error(status, &body, 404, "not_found");
        let (status, body) = w
            .app
            .post(&format!("/api/chat/{id}/join"), &w.eve, json!({}))
            .await;
        assert_error(status, &body, 404, "not_found");
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn update_and_delete_permissions(pool: PgPool) {
    let w = world(pool).await;
    let group = w
        .app
        .create_chat(&w.ada, "group", Some("trio"), &[w.bob.id, w.cat.id])
        .await;
    let id = group["id"].as_i64().unwrap();
    let path = format!("/api/chat/{id}");

    let (status, body) = w
        .app
        .call(
            Method::PATCH,
            &path,
            Some(&w.bob.token),
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = w
        .app
        .call(
            Method::PATCH,
            &path,
            Some(&w.ada.token),
            Some(json!({"name": "renamed", "description": "d"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "renamed");
    assert_eq!(body["description"], "d");
    for bad in [json!({"name": "  "}), json!({"name": "a\0b"})] {
        let (status, body) = w
            .app
            .call(Method::PATCH, &path, Some(&w.ada.token), Some(bad))
            .await;
        assert_error(status, &body, 422, "validation_failed");
    }
    let (status, body) = w
        .app
        .call(
            Method::PATCH,
            &path,
            Some(&w.eve.token),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_error(status, &body, 404, "not_found");

    let single = w.app.create_chat(&w.ada, "single", None, &[w.bob.id]).await;
    let (status, body) = w
        .app
        .call(
            Method::PATCH,
            &format!("/api/chat/{}", single["id"]),
            Some(&w.ada.token),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");

    let (status, body) = w
        .app
        .call(Method::DELETE, &path, Some(&w.bob.token), None)
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, _) = w
        .app
        .call(Method::DELETE, &path, Some(&w.ada.token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = w.app.get(&path, &w.ada).await;
    assert_error(status, &body, 404, "not_found");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn member_management(pool: PgPool) {
    let w = world(pool).await;
    let dan = w.app.signup("Dan", "Acme").await;
    let chan = w
        .app
        .create_chat(&w.ada, "private_channel", Some("ops"), &[w.bob.id])
        .await;
    let id = chan["id"].as_i64().unwrap();
    let members = format!("/api/chat/{id}/members");

    // Plain members cannot invite to a private channel; the owner can.
    let (status, body) = w
        .app
        .post(&members, &w.bob, json!({"userIds": [w.cat.id]}))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = w
        .app
        .post(
            &members,
            &w.ada,
            json!({"userIds": [w.cat.id, dan.id, w.cat.id]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), {
        let mut v = vec![w.ada.id, w.bob.id, w.cat.id, dan.id];
        v.sort();
        v
    });
    // Foreign users and empty lists are rejected.
    let (status, body) = w
        .app
        .post(&members, &w.ada, json!({"userIds": [w.eve.id]}))
        .await;
    assert_error(status, &body, 422, "validation_failed");
    let (status, body) = w.app.post(&members, &w.ada, json!({"userIds": []})).await;
    assert_error(status, &body, 422, "validation_failed");

    // Members may leave; removing others needs owner/admin; the owner stays.
    let (status, body) = w
        .app
        .call(
            Method::DELETE,
            &members,
            Some(&w.bob.token),
            Some(json!({"userIds": [w.cat.id]})),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = w
        .app
        .call(
            Method::DELETE,
            &members,
            Some(&w.bob.token),
            Some(json!({"userIds": [w.bob.id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!ids(&body).contains(&w.bob.id));
    let (status, body) = w
        .app
        .call(
            Method::DELETE,
            &members,
            Some(&w.ada.token),
            Some(json!({"userIds": [w.ada.id]})),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");

    // Ownership transfer: only the owner, only to a member.
    let transfer = |to: i64| format!("/api/chat/{id}/members/{to}");
    let (status, body) = w
        .app
        .call(Method::PATCH, &transfer(w.cat.id), Some(&w.cat.token), None)
        .await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = w
        .app
        .call(Method::PATCH, &transfer(w.bob.id), Some(&w.ada.token), None)
        .await;
    assert_error(status, &body, 422, "validation_failed");
    let (status, body) = w
        .app
        .call(Method::PATCH, &transfer(w.cat.id), Some(&w.ada.token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ownerId"], w.cat.id);
    let (_, list) = w.app.get(&members, &w.cat).await;
    let role_of = |uid: i64| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|m| m["userId"] == uid)
            .unwrap()["role"]
            .clone()
    };
    assert_eq!(role_of(w.cat.id), "owner");
    assert_eq!(role_of(w.ada.id), "admin");
    // The former owner, now admin, can remove Dan.
    let (status, body) = w
        .app
        .call(
            Method::DELETE,
            &members,
            Some(&w.ada.token),
            Some(json!({"userIds": [dan.id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Single chats have fixed members.
    let single = w.app.create_chat(&w.ada, "single", None, &[w.bob.id]).await;
    let (status, body) = w
        .app
        .post(
            &format!("/api/chat/{}/members", single["id"]),
            &w.ada,
            json!({"userIds": [w.cat.id]}),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn join_public_channels_only(pool: PgPool) {
    let w = world(pool).await;
    let public = w
        .app
        .create_chat(&w.ada, "public_channel", Some("general"), &[])
        .await;
    let group = w
        .app
        .create_chat(&w.ada, "group", None, &[w.bob.id, w.cat.id])
        .await;
    let private = w
        .app
        .create_chat(&w.ada, "private_channel", Some("p"), &[])
        .await;

    let (status, body) = w
        .app
        .post(
            &format!("/api/chat/{}/join", public["id"]),
            &w.bob,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["memberCount"], 2);
    // Joining again is idempotent.
    let (status, body) = w
        .app
        .post(
            &format!("/api/chat/{}/join", public["id"]),
            &w.bob,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["memberCount"].clone()),
        (StatusCode::OK, json!(2))
    );
    let (_, list) = w.app.get("/api/chat", &w.bob).await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == public["id"]));

    let (status, body) = w
        .app
        .post(
            &format!("/api/chat/{}/join", private["id"]),
            &w.bob,
            json!({}),
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    let dan = w.app.signup("Dan", "Acme").await;
    let (status, body) = w
        .app
        .post(&format!("/api/chat/{}/join", group["id"]), &dan, json!({}))
        .await;
    assert_error(status, &body, 404, "not_found");
}
