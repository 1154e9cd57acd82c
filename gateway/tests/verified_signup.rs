//! Verified sign-up (SIGNUP_MODE=verified) and admission by e-mail domain,
//! against a real gateway and PostgreSQL, with the worker's real mailer
//! delivering the outbox to a directory the test reads like a mailbox.

mod common;

use common::{assert_error, spawn_with, TestApp, TestUser};
use fechatter_shared::config::{MailSettings, MailTransport, SignupMode};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::path::PathBuf;
use worker::mailer::{MailMetrics, Mailer};

struct Mailbox {
    dir: PathBuf,
    mailer: Mailer,
}

impl Mailbox {
    fn new(pool: &PgPool) -> Self {
        let dir = std::env::temp_dir().join(format!("fc-mail-{}", uuid::Uuid::new_v4().simple()));
        let settings = MailSettings {
            transport: MailTransport::File(dir.clone()),
            api_token: String::new(),
            from: "Fechatter <no-reply@test.local>".into(),
        };
        let metrics = MailMetrics::new(&fechatter_shared::metrics::Metrics::new("test"));
        Self {
            dir,
            mailer: Mailer::new(pool.clone(), settings, metrics),
        }
    }

    /// Delivers the outbox, then returns every mail to `to` (oldest first).
    async fn mails_to(&self, to: &str) -> Vec<String> {
        self.mailer.deliver_due().await.expect("outbox delivered");
        let mut found: Vec<(u64, String)> = std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let id = name.strip_suffix(".eml")?.parse().ok()?;
                Some((id, std::fs::read_to_string(e.path()).ok()?))
            })
            .filter(|(_, text)| text.contains(&format!("\r\nTo: {to}\r\n")))
            .collect();
        found.sort();
        found.into_iter().map(|(_, t)| t).collect()
    }

    /// The token of the newest sign-up link mailed to `to`.
    async fn link_token(&self, to: &str) -> String {
        let mails = self.mails_to(to).await;
        let last = mails.last().unwrap_or_else(|| panic!("no mail to {to}"));
        last.split("#token=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no link in {last}"))
            .to_string()
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn verified_app(pool: PgPool) -> TestApp {
    spawn_with(pool, |c| c.signup_mode = SignupMode::Verified).await
}

async fn signup(app: &TestApp, email: &str, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({ "fullname": "X", "email": email, "password": "correct horse battery" });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.call(Method::POST, "/api/signup", None, Some(body))
        .await
}

async fn follow(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/signup/verify",
        None,
        Some(json!({ "token": token })),
    )
    .await
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_as::<_, (i64,)>(sql)
        .fetch_one(pool)
        .await
        .unwrap()
        .0
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn signup_answers_the_same_whether_or_not_the_email_has_an_account(pool: PgPool) {
    let app = verified_app(pool.clone()).await;
    let mailbox = Mailbox::new(&pool);

    let (status, first) = signup(&app, "ada@acme.test", json!({ "workspace": "Acme" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(
        first,
        json!({ "status": "verification_sent", "expiresInSecs": 86400 })
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM users").await,
        0,
        "no account yet"
    );

    let token = mailbox.link_token("ada@acme.test").await;
    let (status, ada) = follow(&app, &token).await;
    assert_eq!(status, StatusCode::CREATED, "{ada}");
    assert_eq!(ada["user"]["role"], "owner");
    let ada = TestUser::from_auth(&ada);
    let (status, _) = app.get("/api/workspace/me", &ada).await;
    assert_eq!(status, StatusCode::OK, "the tokens work");

    // The link works once; unknown links look the same.
    let (status, body) = follow(&app, &token).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, other) = follow(&app, "not-a-token").await;
    assert_error(status, &other, 403, "forbidden");
    assert_eq!(body, other);

    // A taken address and a new one get the very same answer ...
    let (s1, taken) = signup(&app, "ADA@acme.test", json!({ "workspace": "Other" })).await;
    let (s2, fresh) = signup(&app, "bob@acme.test", json!({ "workspace": "Other" })).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(taken, fresh);
    // ... while the owner of the taken address is told, without a link.
    let to_ada = mailbox.mails_to("ADA@acme.test").await;
    assert_eq!(to_ada.len(), 1, "{to_ada:?}");
    assert!(
        to_ada[0].contains("already has an account"),
        "{}",
        to_ada[0]
    );
    assert!(!to_ada[0].contains("#token="));
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM signup_requests WHERE lower(email) = 'ada@acme.test'"
        )
        .await,
        1,
        "nothing pending for the taken address"
    );
    // Sent mail keeps no link in the database.
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM email_outbox WHERE sent_at IS NOT NULL AND body <> ''"
        )
        .await,
        0
    );
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn a_verified_address_of_an_allowed_domain_joins_without_invite(pool: PgPool) {
    let app = verified_app(pool.clone()).await;
    let mailbox = Mailbox::new(&pool);
    signup(&app, "olga@acme.test", json!({ "workspace": "Acme" })).await;
    let owner = TestUser::from_auth(
        &follow(&app, &mailbox.link_token("olga@acme.test").await)
            .await
            .1,
    );

    // Only the owner sets the list; public providers and junk are refused.
    let put = |user: &TestUser, domains: Value| {
        let (app, user) = (&app, user.clone());
        async move {
            app.call(
                Method::PUT,
                "/api/workspace/domains",
                Some(&user.token),
                Some(json!({ "domains": domains })),
            )
            .await
        }
    };
    let (status, body) = put(&owner, json!(["gmail.com"])).await;
    assert_error(status, &body, 422, "validation_failed");
    let (status, body) = put(&owner, json!(["not a domain"])).await;
    assert_error(status, &body, 422, "validation_failed");
    let (status, body) = put(&owner, json!(["Acme.TEST", "acme.test."])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "domains": ["acme.test"] }));

    let ws = owner.workspace_id;
    let (status, body) = signup(&app, "bob@acme.test", json!({ "workspaceId": ws })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, bob) = follow(&app, &mailbox.link_token("bob@acme.test").await).await;
    assert_eq!(status, StatusCode::CREATED, "{bob}");
    assert_eq!(bob["user"]["workspaceId"], ws);
    assert_eq!(bob["user"]["role"], "member");
    let bob = TestUser::from_auth(&bob);
    let (status, body) = put(&bob, json!(["bob.test"])).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = app.get("/api/workspace/domains", &bob).await;
    assert_error(status, &body, 403, "forbidden");

    // Another domain is refused at once (no mail, no Argon2 time).
    let (status, body) = signup(&app, "eve@evil.test", json!({ "workspaceId": ws })).await;
    assert_error(status, &body, 403, "forbidden");
    assert!(mailbox.mails_to("eve@evil.test").await.is_empty());

    // The list is checked again when the link is followed.
    signup(&app, "carl@acme.test", json!({ "workspaceId": ws })).await;
    let token = mailbox.link_token("carl@acme.test").await;
    let (status, body) = put(&owner, json!([])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = follow(&app, &token).await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(count(&pool, "SELECT count(*) FROM users").await, 2);
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn invites_are_checked_at_signup_and_redeemed_by_the_link(pool: PgPool) {
    let app = verified_app(pool.clone()).await;
    let mailbox = Mailbox::new(&pool);
    signup(&app, "olga@acme.test", json!({ "workspace": "Acme" })).await;
    let owner = TestUser::from_auth(
        &follow(&app, &mailbox.link_token("olga@acme.test").await)
            .await
            .1,
    );
    let (_, invite) = app
        .post(
            "/api/workspace/invites",
            &owner,
            json!({ "singleUse": true }),
        )
        .await;
    let token = invite["token"].as_str().unwrap();

    let (status, body) = signup(&app, "x@y.test", json!({ "inviteToken": "bogus" })).await;
    assert_error(status, &body, 403, "forbidden");

    // Two requests on one single-use invite: both accepted, one link wins.
    for email in ["m1@y.test", "m2@y.test"] {
        let (status, body) = signup(&app, email, json!({ "inviteToken": token })).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, m1) = follow(&app, &mailbox.link_token("m1@y.test").await).await;
    assert_eq!(status, StatusCode::CREATED, "{m1}");
    assert_eq!(m1["user"]["workspaceId"], owner.workspace_id);
    let (status, body) = follow(&app, &mailbox.link_token("m2@y.test").await).await;
    assert_error(status, &body, 403, "forbidden");
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn direct_mode_refuses_joining_by_domain(pool: PgPool) {
    let app = common::spawn(pool).await;
    let owner = app.signup("Olga", "Acme").await;
    let (status, body) = signup(
        &app,
        "bob@acme.test",
        json!({ "workspaceId": owner.workspace_id }),
    )
    .await;
    assert_error(status, &body, 403, "forbidden");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("SIGNUP_MODE=verified"));
    let (status, body) = signup(
        &app,
        "bob@acme.test",
        json!({ "workspace": "A", "workspaceId": 1 }),
    )
    .await;
    assert_error(status, &body, 422, "validation_failed");
}
