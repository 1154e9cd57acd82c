//! The push worker against local receivers started by each test, with a
//! real PostgreSQL and Redis: each provider's exact request format and
//! credentials (webhook HMAC, FCM OAuth + v1 message, APNs over HTTP/2
//! with an ES256 token, Web Push encrypted per RFC 8291 with VAPID), retry
//! on 5xx, removal on 404/410, the dead-letter stream, and no second send
//! of a (message, device) once claimed — the state a crashed worker leaves.
//!
//! The keys in `tests/fixtures/` were generated for these tests only.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, http::HeaderMap, routing::post, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use fechatter_shared::{config::PushSettings, redis::Keys, store::push};
use fred::prelude::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use sqlx::PgPool;
use worker::push::{PushJob, PushMetrics, PushWorker};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// A local receiver: answers the scripted statuses in order (then 200)
/// and records every request.
#[derive(Default)]
struct Receiver {
    script: Vec<u16>,
    /// Statuses per path, before the shared script.
    by_path: std::collections::HashMap<String, Vec<u16>>,
    seen: Vec<(String, HeaderMap, Bytes)>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn serve(script: Vec<u16>, extra: Option<Router>) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(Receiver {
        script,
        ..Default::default()
    }));
    let s = shared.clone();
    let record = move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
        let s = s.clone();
        async move {
            let mut r = s.lock().unwrap();
            let path = uri.path().to_string();
            r.seen.push((path.clone(), headers, body));
            let scripted = r
                .by_path
                .get_mut(&path)
                .filter(|s| !s.is_empty())
                .map(|s| s.remove(0));
            let status = match scripted {
                Some(s) => s,
                None if !r.script.is_empty() => r.script.remove(0),
                None => 200,
            };
            (axum::http::StatusCode::from_u16(status).unwrap(), "{}")
        }
    };
    let mut app = Router::new().fallback(post(record));
    if let Some(extra) = extra {
        app = extra.merge(app);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, shared)
}

async fn redis() -> Client {
    fechatter_shared::redis::connect("redis://127.0.0.1:6379", Duration::from_secs(5))
        .await
        .unwrap()
}

async fn user(pool: &PgPool) -> i64 {
    let (ws,): (i64,) = sqlx::query_as("INSERT INTO workspaces (name) VALUES ('w') RETURNING id")
        .fetch_one(pool)
        .await
        .unwrap();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO users (workspace_id, fullname, email, password_hash) VALUES ($1, 'Bob', 'bob@w.test', 'x') RETURNING id",
    )
    .bind(ws)
    .fetch_one(pool)
    .await
    .unwrap();
    id
}

async fn worker_with(pool: &PgPool, settings: PushSettings) -> (PushWorker, Keys) {
    let keys = Keys::new(format!("t{}", uuid::Uuid::new_v4().simple()));
    let redis = redis().await;
    fechatter_shared::scripts::load_all(&redis).await.unwrap();
    let w = PushWorker {
        redis: redis.clone(),
        blocking: self::redis().await,
        pool: pool.clone(),
        keys: keys.clone(),
        consumer: "test-pusher".into(),
        providers: worker::push::providers(&settings).unwrap(),
        metrics: PushMetrics::new(&fechatter_shared::metrics::Metrics::new("test")),
    };
    (w, keys)
}

fn job(user_id: i64, message_id: i64) -> PushJob {
    PushJob {
        user_id,
        message_id,
        chat_id: 7,
        title: "Ada".into(),
        body: "are you there?".into(),
        priority: "normal".into(),
        collapse_key: "c7".into(),
        sent_at: chrono::Utc::now().to_rfc3339(),
    }
}

/// Queues `jobs`, runs the worker until the queue is drained.
async fn run(w: PushWorker, keys: &Keys, jobs: &[PushJob]) {
    let redis = w.redis.clone();
    for j in jobs {
        worker::push::enqueue(&redis, keys, j).await.unwrap();
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(w.run(stop.clone()));
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pending: fred::types::Value = redis
            .xpending(keys.push_queue(), worker::push::GROUP, ())
            .await
            .unwrap_or(fred::types::Value::Null);
        let len: i64 = redis.xlen(keys.push_queue()).await.unwrap();
        let idle = matches!(&pending, fred::types::Value::Array(a) if a.first().and_then(|v| v.as_i64()) == Some(0));
        if len == 0 && idle {
            break;
        }
    }
    stop.cancel();
    let _ = task.await;
}

async fn dead_letters(redis: &Client, keys: &Keys) -> i64 {
    redis.xlen(keys.push_dead()).await.unwrap()
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn webhooks_are_signed_retried_removed_and_sent_once(pool: PgPool) {
    let bob = user(&pool).await;
    let (base, rx) = serve(vec![], None).await;
    rx.lock().unwrap().by_path = [("/a", vec![503]), ("/gone", vec![410]), ("/bad", vec![400])]
        .into_iter()
        .map(|(p, s)| (p.to_string(), s))
        .collect();
    for path in ["/a", "/gone", "/bad"] {
        push::register(&pool, bob, "webhook", &format!("{base}{path}"), None)
            .await
            .unwrap();
    }
    let settings = PushSettings {
        webhook_secret: "hook-secret".into(),
        webhook_allow_http: true,
        ..Default::default()
    };
    let (w, keys) = worker_with(&pool, settings).await;
    let redis = w.redis.clone();
    // The same job twice (a retried enqueue): each device gets it once.
    run(w, &keys, &[job(bob, 11), job(bob, 11)]).await;

    let seen = rx.lock().unwrap().seen.clone();
    let mut paths: Vec<&str> = seen.iter().map(|(p, _, _)| p.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/a", "/a", "/bad", "/gone"],
        "503 retried once, then one each"
    );
    for (_, headers, body) in &seen {
        let ts: i64 = headers["x-fechatter-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let want =
            worker::push::webhook::signature("hook-secret", ts, std::str::from_utf8(body).unwrap());
        assert_eq!(headers["x-fechatter-signature"], want.as_str());
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            (v["messageId"].as_i64(), v["title"].as_str()),
            (Some(11), Some("Ada"))
        );
    }
    let devices: Vec<String> = push::list(&pool, bob)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert!(
        !devices.iter().any(|t| t.ends_with("/gone")),
        "410 removes the device"
    );
    assert_eq!(
        dead_letters(&redis, &keys).await,
        1,
        "the 400 is dead-lettered"
    );
    let outcomes: Vec<(String,)> =
        sqlx::query_as("SELECT outcome FROM push_deliveries ORDER BY device_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let outcomes: Vec<&str> = outcomes.iter().map(|(o,)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        ["sent", "failed"],
        "the removed device's claim went with it"
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_claimed_delivery_is_never_sent_again(pool: PgPool) {
    let bob = user(&pool).await;
    let (base, rx) = serve(vec![], None).await;
    let (device, _) = push::register(&pool, bob, "webhook", &format!("{base}/a"), None)
        .await
        .unwrap();
    // What a worker that died right after claiming leaves behind.
    assert!(push::claim(&pool, 12, device.id).await.unwrap());
    let settings = PushSettings {
        webhook_secret: "s".into(),
        webhook_allow_http: true,
        ..Default::default()
    };
    let (w, keys) = worker_with(&pool, settings).await;
    run(w, &keys, &[job(bob, 12), job(bob, 13)]).await;
    let seen = rx.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 1, "only message 13 is sent");
    let v: Value = serde_json::from_slice(&seen[0].2).unwrap();
    assert_eq!(v["messageId"], 13);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn fcm_gets_an_oauth_token_and_a_v1_message(pool: PgPool) {
    let bob = user(&pool).await;
    let tokens: Arc<Mutex<Vec<String>>> = Arc::default();
    let t = tokens.clone();
    let token_route = Router::new().route(
        "/token",
        post(move |body: String| {
            let t = t.clone();
            async move {
                t.lock().unwrap().push(body);
                axum::Json(json!({ "access_token": "ya29.test", "expires_in": 3600, "token_type": "Bearer" }))
            }
        }),
    );
    let (base, rx) = serve(vec![200, 404], Some(token_route)).await;
    let creds = json!({
        "type": "service_account", "project_id": "proj-1", "client_email": "push@proj-1.iam.test",
        "private_key": std::fs::read_to_string(format!("{FIXTURES}/fcm-test-key.pem")).unwrap(),
        "token_uri": format!("{base}/token"),
    });
    let creds_path = std::env::temp_dir().join(format!("fcm-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&creds_path, creds.to_string()).unwrap();
    push::register(&pool, bob, "fcm", "reg-token-1", None)
        .await
        .unwrap();
    push::register(&pool, bob, "fcm", "reg-token-gone", None)
        .await
        .unwrap();
    let settings = PushSettings {
        fcm_endpoint: base.clone(),
        fcm_credentials: creds_path.to_string_lossy().into(),
        ..Default::default()
    };
    let (w, keys) = worker_with(&pool, settings).await;
    run(w, &keys, &[job(bob, 21)]).await;
    let _ = std::fs::remove_file(&creds_path);

    // The token request: an RS256 assertion of the service account.
    let form = tokens
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("token requested");
    let assertion = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("assertion="))
        .unwrap();
    assert!(
        form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "{form}"
    );
    let public = std::fs::read(format!("{FIXTURES}/fcm-test-pub.pem")).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[format!("{base}/token")]);
    v.set_issuer(&["push@proj-1.iam.test"]);
    let claims =
        jsonwebtoken::decode::<Value>(assertion, &DecodingKey::from_rsa_pem(&public).unwrap(), &v)
            .expect("assertion verifies")
            .claims;
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/firebase.messaging"
    );

    let seen = rx.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 2, "one per device, token fetched once");
    for (path, headers, body) in &seen {
        assert_eq!(path, "/v1/projects/proj-1/messages:send");
        assert_eq!(headers["authorization"], "Bearer ya29.test");
        let m: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            m["message"]["notification"],
            json!({ "title": "Ada", "body": "are you there?" })
        );
        assert_eq!(m["message"]["android"]["collapse_key"], "c7");
        assert_eq!(m["message"]["data"]["messageId"], "21");
    }
    let left: Vec<String> = push::list(&pool, bob)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert_eq!(left.len(), 1, "the 404 device is removed: {left:?}");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn apns_gets_http2_with_an_es256_provider_token(pool: PgPool) {
    let bob = user(&pool).await;
    let (base, rx) = serve(vec![200, 410], None).await;
    push::register(&pool, bob, "apns", "devtoken1", None)
        .await
        .unwrap();
    push::register(&pool, bob, "apns", "devtoken2", None)
        .await
        .unwrap();
    let settings = PushSettings {
        apns_endpoint: base,
        apns_key: format!("{FIXTURES}/apns-test-key.p8"),
        apns_key_id: "KEY123".into(),
        apns_team_id: "TEAM456".into(),
        apns_topic: "com.fechatter.app".into(),
        ..Default::default()
    };
    let (w, keys) = worker_with(&pool, settings).await;
    run(w, &keys, &[job(bob, 31)]).await;
    let seen = rx.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 2);
    let public = std::fs::read(format!("{FIXTURES}/apns-test-pub.pem")).unwrap();
    for (path, headers, body) in &seen {
        assert!(path.starts_with("/3/device/devtoken"), "{path}");
        assert_eq!(headers["apns-topic"], "com.fechatter.app");
        assert_eq!(headers["apns-push-type"], "alert");
        assert_eq!(headers["apns-collapse-id"], "c7");
        let bearer = headers["authorization"]
            .to_str()
            .unwrap()
            .strip_prefix("bearer ")
            .unwrap();
        let header = jsonwebtoken::decode_header(bearer).unwrap();
        assert_eq!(
            (header.alg, header.kid.as_deref()),
            (Algorithm::ES256, Some("KEY123"))
        );
        let mut v = Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let claims =
            jsonwebtoken::decode::<Value>(bearer, &DecodingKey::from_ec_pem(&public).unwrap(), &v)
                .expect("provider token verifies")
                .claims;
        assert_eq!(claims["iss"], "TEAM456");
        let p: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(p["aps"]["alert"]["title"], "Ada");
    }
    assert_eq!(
        push::list(&pool, bob).await.unwrap().len(),
        1,
        "410 Unregistered removes"
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn web_push_is_encrypted_for_the_subscription_and_vapid_signed(pool: PgPool) {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let bob = user(&pool).await;
    let (base, rx) = serve(vec![], None).await;
    // The browser's side of the subscription.
    let ua = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let ua_public = ua.public_key().to_encoded_point(false);
    let auth: [u8; 16] = rand::random();
    let endpoint = format!("{base}/push/sub-1");
    push::register(
        &pool,
        bob,
        "webpush",
        &endpoint,
        Some((&B64.encode(ua_public.as_bytes()), &B64.encode(auth))),
    )
    .await
    .unwrap();
    let settings = PushSettings {
        vapid_private_key: format!("{FIXTURES}/vapid-test-key.pem"),
        vapid_subject: "mailto:ops@test.local".into(),
        // The receiver is a local http:// endpoint.
        webhook_allow_http: true,
        ..Default::default()
    };
    let (w, keys) = worker_with(&pool, settings).await;
    run(w, &keys, &[job(bob, 41)]).await;
    let seen = rx.lock().unwrap().seen.clone();
    let (path, headers, body) = seen.first().expect("pushed").clone();
    assert_eq!(path, "/push/sub-1");
    assert_eq!(headers["content-encoding"], "aes128gcm");
    assert_eq!(headers["topic"], "c7");

    // VAPID: `vapid t=<jwt>, k=<key>`, the JWT signed by k for our origin.
    let auth_header = headers["authorization"].to_str().unwrap();
    let (t, k) = auth_header
        .strip_prefix("vapid t=")
        .unwrap()
        .split_once(", k=")
        .unwrap();
    let k = p256::PublicKey::from_sec1_bytes(&B64.decode(k).unwrap()).unwrap();
    let pem = {
        use p256::pkcs8::EncodePublicKey;
        k.to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap()
    };
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(std::slice::from_ref(&base));
    let claims =
        jsonwebtoken::decode::<Value>(t, &DecodingKey::from_ec_pem(pem.as_bytes()).unwrap(), &v)
            .expect("VAPID verifies")
            .claims;
    assert_eq!(claims["sub"], "mailto:ops@test.local");

    // Decrypt as the browser would (RFC 8291).
    let (salt, rest) = body.split_at(16);
    let rs = u32::from_be_bytes(rest[..4].try_into().unwrap());
    assert_eq!(rs, 4096);
    let idlen = rest[4] as usize;
    let as_public = p256::PublicKey::from_sec1_bytes(&rest[5..5 + idlen]).unwrap();
    let sealed = &rest[5 + idlen..];
    let shared = p256::ecdh::diffie_hellman(ua.to_nonzero_scalar(), as_public.as_affine());
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(ua_public.as_bytes());
    info.extend_from_slice(&rest[5..5 + idlen]);
    let mut ikm = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(&auth), shared.raw_secret_bytes())
        .expand(&info, &mut ikm)
        .unwrap();
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    hk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .unwrap();
    hk.expand(b"Content-Encoding: nonce\0", &mut nonce).unwrap();
    use aes_gcm::{aead::Aead, KeyInit};
    let plain = aes_gcm::Aes128Gcm::new_from_slice(&cek)
        .unwrap()
        .decrypt(&nonce.into(), sealed)
        .unwrap();
    assert_eq!(plain.last(), Some(&2), "last-record delimiter");
    let msg: Value = serde_json::from_slice(&plain[..plain.len() - 1]).unwrap();
    assert_eq!(
        (msg["title"].as_str(), msg["body"].as_str()),
        (Some("Ada"), Some("are you there?"))
    );
}
