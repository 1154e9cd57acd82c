//! The reference web client (web/, issue 12), served by every gateway at
//! `/` so a deployment needs no separate web server: the gateways are the
//! origin of both the page and the API it calls (same origin: no CORS,
//! `?token=` WebSockets to `/ws`).
//!
//! The build output `web/dist` is compiled in (`include_bytes!`), so a
//! gateway binary carries the client that matches its protocol. Caching:
//! the page (`/`) is always revalidated (`no-cache` plus an ETag, 304 when
//! unchanged), and it names its script and style sheet with a content hash
//! (`/app.js?v=<hash>`), which may then be cached for a year (`immutable`):
//! a new gateway build changes the page's links, never a cached file's
//! meaning. Text is served gzip-compressed when the client accepts it
//! (compressed once, at start). Every answer carries a strict
//! Content-Security-Policy: scripts and styles only from this origin,
//! connections only to it (`'self'` covers its ws/wss URLs in CSP 3), no
//! framing.
//!
//! `WEB_DIR` (development) serves a directory from disk instead, read on
//! every request and never cached, so `npm run build` shows at once.

use std::{path::Path, sync::LazyLock};

use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use bytes::Bytes;
use fechatter_shared::{token::short_digest, AppError};
use serde::Deserialize;

use crate::state::AppState;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One file of the client, ready to serve (the bodies are shared by
/// every answer, not copied).
struct Asset {
    content_type: &'static str,
    body: Bytes,
    gzip: Bytes,
    /// The first 16 hex digits of the body's SHA-256.
    hash: String,
}

impl Asset {
    fn new(content_type: &'static str, body: Vec<u8>) -> Self {
        Self {
            content_type,
            hash: short_digest(&body),
            gzip: gzip(&body).into(),
            body: body.into(),
        }
    }
}

/// The compiled-in client: the page (with hashed links) and its two files.
struct Bundle {
    page: Asset,
    script: Asset,
    style: Asset,
}

static BUNDLE: LazyLock<Bundle> = LazyLock::new(|| {
    let script = Asset::new(
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/dist/app.js").to_vec(),
    );
    let style = Asset::new(
        "text/css; charset=utf-8",
        include_bytes!("../../web/dist/app.css").to_vec(),
    );
    let page = include_str!("../../web/dist/index.html")
        .replace("\"/app.js\"", &format!("\"/app.js?v={}\"", script.hash))
        .replace("\"/app.css\"", &format!("\"/app.css?v={}\"", style.hash));
    Bundle {
        page: Asset::new("text/html; charset=utf-8", page.into_bytes()),
        script,
        style,
    }
});

#[derive(Deserialize)]
struct Version {
    v: Option<String>,
}

/// The page answers at every client-side route that opens the app: `/`,
/// the mailed sign-up link (`/signup/verify#token=…`) and invite links.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/signup/verify", get(page))
        .route("/invite", get(page))
        .route("/app.js", get(script))
        .route("/app.css", get(style))
}

async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match &state.config.web_dir {
        Some(dir) => from_disk(dir, "index.html", "text/html; charset=utf-8").await,
        None => serve(&BUNDLE.page, &headers, false),
    }
}

async fn script(
    State(state): State<AppState>,
    Query(version): Query<Version>,
    headers: HeaderMap,
) -> Response {
    file(&state, "app.js", &BUNDLE.script, version, &headers).await
}

async fn style(
    State(state): State<AppState>,
    Query(version): Query<Version>,
    headers: HeaderMap,
) -> Response {
    file(&state, "app.css", &BUNDLE.style, version, &headers).await
}

/// The script or the style sheet: from `WEB_DIR` when set, else the
/// compiled-in `asset`, immutable when the URL names its version.
async fn file(
    state: &AppState,
    name: &str,
    asset: &Asset,
    version: Version,
    headers: &HeaderMap,
) -> Response {
    match &state.config.web_dir {
        Some(dir) => from_disk(dir, name, asset.content_type).await,
        None => serve(asset, headers, version.v.as_deref() == Some(&asset.hash)),
    }
}

/// Answers with `asset`: 304 when the client holds this version, gzip
/// when accepted, cached for a year when the URL named this version. The
/// gzip and the plain body are two representations, so their (strong)
/// ETags differ: `"<hash>-gz"` and `"<hash>"`.
fn serve(asset: &Asset, headers: &HeaderMap, immutable: bool) -> Response {
    let gzip = accepts_gzip(headers);
    let etag = if gzip {
        format!("\"{}-gz\"", asset.hash)
    } else {
        format!("\"{}\"", asset.hash)
    };
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if gzip {
        let mut r = asset.gzip.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        asset.body.clone().into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    secure(response)
}

/// `WEB_DIR`: the file as it is on disk now, never cached.
async fn from_disk(dir: &Path, name: &str, content_type: &'static str) -> Response {
    match tokio::fs::read(dir.join(name)).await {
        Ok(body) => {
            let mut r = body.into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            secure(r)
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), name, error = %e, "WEB_DIR file unreadable");
            AppError::not_found("no such file in WEB_DIR").into_response()
        }
    }
}

/// The security headers of every web answer.
fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        })
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn gzip_is_chosen_only_when_accepted() {
        assert!(accepts_gzip(&headers(
            header::ACCEPT_ENCODING,
            "gzip, deflate, br"
        )));
        assert!(accepts_gzip(&headers(
            header::ACCEPT_ENCODING,
            "GZIP;q=0.5"
        )));
        assert!(!accepts_gzip(&headers(header::ACCEPT_ENCODING, "gzip;q=0")));
        assert!(!accepts_gzip(&headers(header::ACCEPT_ENCODING, "br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn etags_match_strong_weak_lists_and_star() {
        let tag = "\"0123456789abcdef\"";
        for sent in [
            tag,
            "W/\"0123456789abcdef\"",
            "\"x\", \"0123456789abcdef\"",
            "*",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(sent).unwrap());
            assert!(if_none_match(&h, tag), "{sent}");
        }
        assert!(!if_none_match(
            &headers(header::IF_NONE_MATCH, "\"other\""),
            tag
        ));
    }

    #[test]
    fn the_page_links_its_files_by_content_hash() {
        let page = String::from_utf8(BUNDLE.page.body.to_vec()).unwrap();
        assert!(page.contains(&format!("/app.js?v={}", BUNDLE.script.hash)));
        assert!(page.contains(&format!("/app.css?v={}", BUNDLE.style.hash)));
        assert_eq!(BUNDLE.script.hash.len(), 16);
    }

    #[test]
    fn compressed_files_decompress_to_the_originals() {
        use std::io::Read;
        for asset in [&BUNDLE.page, &BUNDLE.script, &BUNDLE.style] {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&asset.gzip[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, asset.body);
        }
    }
}
