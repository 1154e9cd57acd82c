//! The web client as the gateway serves it: the page at `/` and at the
//! client-side routes, its script and style sheet linked by content hash,
//! the cache rules (revalidated page, immutable hashed files, 304 on a
//! matching ETag), gzip, the security headers, and `WEB_DIR` serving from
//! disk. The browser tests (web_client.rs) use the same routes through
//! HAProxy.

mod common;

use common::{spawn, spawn_with};
use reqwest::{header, StatusCode};
use sqlx::PgPool;

const CSP_START: &str = "default-src 'self'; script-src 'self'; style-src 'self'";

/// The `?v=` links of the page, e.g. "/app.js?v=0123…".
fn linked(page: &str, file: &str) -> String {
    let start = page.find(&format!("\"/{file}?v=")).expect("hashed link") + 1;
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_string()
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn the_page_is_served_at_the_app_routes_and_revalidated(pool: PgPool) {
    let app = spawn(pool).await;
    let first = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let h = first.headers().clone();
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(h[header::CACHE_CONTROL], "no-cache");
    assert!(h[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .starts_with(CSP_START));
    assert!(h[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    let etag = h[header::ETAG].to_str().unwrap().to_string();
    let page = first.text().await.unwrap();
    assert!(page.contains("<title>"), "{page}");
    linked(&page, "app.js");
    linked(&page, "app.css");

    // Unchanged: 304 without a body.
    let again = app
        .http
        .get(format!("{}/", app.base))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()[header::ETAG], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());

    // The mailed sign-up link and invite links open the same page.
    for path in ["/index.html", "/signup/verify", "/invite"] {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.text().await.unwrap(), page, "{path}");
    }
    // Other paths stay JSON 404s, HEAD works without a body.
    let missing = app
        .http
        .get(format!("{}/nope.html", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let head = app
        .http
        .head(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.bytes().await.unwrap().is_empty());
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn hashed_files_are_immutable_and_gzipped_on_request(pool: PgPool) {
    let app = spawn(pool).await;
    let page = app
        .http
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (file, ctype) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
    ] {
        let hashed = linked(&page, file);
        let res = app
            .http
            .get(format!("{}{hashed}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], ctype);
        assert_eq!(
            res.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert!(res.headers().get(header::CONTENT_ENCODING).is_none());
        let plain_etag = res.headers()[header::ETAG].to_str().unwrap().to_string();
        let plain = res.bytes().await.unwrap();
        assert!(!plain.is_empty());

        // Without the version (or with a stale one) it is revalidated.
        for url in [format!("/{file}"), format!("/{file}?v=0000")] {
            let res = app
                .http
                .get(format!("{}{url}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache", "{url}");
        }

        let zipped = app
            .http
            .get(format!("{}{hashed}", app.base))
            .header(header::ACCEPT_ENCODING, "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(zipped.headers()[header::VARY], "Accept-Encoding");
        // Two representations, two strong validators; each revalidates
        // only itself.
        let zipped_etag = zipped.headers()[header::ETAG].to_str().unwrap().to_string();
        assert_eq!(
            zipped_etag,
            format!("{}-gz\"", plain_etag.trim_end_matches('"'))
        );
        for (accept, tag, want) in [
            ("gzip", &zipped_etag, StatusCode::NOT_MODIFIED),
            ("gzip", &plain_etag, StatusCode::OK),
            ("identity", &plain_etag, StatusCode::NOT_MODIFIED),
        ] {
            let res = app
                .http
                .get(format!("{}{hashed}", app.base))
                .header(header::ACCEPT_ENCODING, accept)
                .header(header::IF_NONE_MATCH, tag.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), want, "{file}: {accept} with {tag}");
        }
        let body = zipped.bytes().await.unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out).unwrap();
        assert_eq!(out, plain, "{file}: gzip decodes to the plain file");
    }
}

#[sqlx::test(migrator = "fechatter_shared::MIGRATOR")]
async fn web_dir_serves_files_from_disk_uncached(pool: PgPool) {
    let dir = std::env::temp_dir().join(format!("fc-web-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<title>dev build 1</title>").unwrap();
    std::fs::write(dir.join("app.js"), "console.log(1)").unwrap();
    let web_dir = dir.clone();
    let app = spawn_with(pool, move |c| c.web_dir = Some(web_dir)).await;
    let get = |path: &'static str| app.http.get(format!("{}{path}", app.base)).send();

    let res = get("/").await.unwrap();
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(res.text().await.unwrap(), "<title>dev build 1</title>");
    // A rebuild shows at once.
    std::fs::write(dir.join("index.html"), "<title>dev build 2</title>").unwrap();
    assert_eq!(
        get("/").await.unwrap().text().await.unwrap(),
        "<title>dev build 2</title>"
    );
    let js = get("/app.js").await.unwrap();
    assert_eq!(
        js.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(js.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    // A file missing from the directory: the JSON 404.
    let css = get("/app.css").await.unwrap();
    assert_eq!(css.status(), StatusCode::NOT_FOUND);
    std::fs::remove_dir_all(&dir).unwrap();
}
