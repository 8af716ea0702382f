//! The web UI: the single-page app built from `web/` and embedded from
//! `netherbrain-http/webui-dist/` (the committed production build, rebuilt
//! by `web/build.sh`; `scripts/test` checks it matches the source).
//!
//! It is the router's fallback, so every API route answers first:
//!
//! - `GET`/`HEAD` of an embedded file serves it; files under `assets/`
//!   have content hashes in their names and are cached for a year
//!   (`immutable`), everything else is `no-cache`.
//! - `GET`/`HEAD` of any other path outside the API (a client route such as
//!   `/c/<id>` or `/settings`) serves `index.html`, `no-cache`.
//! - Paths under `/api`, `/v1` and `/metrics`, other methods, and paths
//!   that look like a missing file (`/missing.js`) stay JSON `404`s: the
//!   app never hides an API error.
//!
//! Every UI response carries a strict Content-Security-Policy: scripts,
//! styles and connections from this origin only, images also from `data:`
//! and `blob:` (attachments), no frames, no plugins.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use include_dir::{Dir, File, include_dir};

use crate::error::ApiError;

/// The committed production build of `web/`.
static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/webui-dist");

/// The policy every UI response carries.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

/// Path prefixes that belong to the API: never answered with the app.
const API_PREFIXES: [&str; 3] = ["/api", "/v1", "/metrics"];

/// The router's fallback: the UI for browser paths, JSON `404` otherwise.
pub(crate) async fn fallback(req: Request) -> Response {
    let path = req.uri().path();
    if !(req.method() == Method::GET || req.method() == Method::HEAD) || is_api_path(path) {
        return ApiError::not_found("no such route").into_response();
    }
    let relative = path.trim_start_matches('/');
    if !relative.is_empty()
        && let Some(file) = DIST.get_file(relative)
    {
        let cache = if relative.starts_with("assets/") {
            IMMUTABLE
        } else {
            NO_CACHE
        };
        return file_response(file, cache);
    }
    if looks_like_file(relative) {
        return ApiError::not_found("no such file").into_response();
    }
    match DIST.get_file("index.html") {
        Some(index) => file_response(index, NO_CACHE),
        None => ApiError::not_found("the web UI is not built into this binary").into_response(),
    }
}

fn is_api_path(path: &str) -> bool {
    API_PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// A last segment with an extension (`x.js`, `favicon.ico`) names a file,
/// not a client route: a missing one is a `404`, not the app.
fn looks_like_file(relative: &str) -> bool {
    relative
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

fn file_response(file: &'static File<'static>, cache: &'static str) -> Response {
    let mut response = (StatusCode::OK, file.contents()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(file.path().to_str().unwrap_or_default())),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or_default();
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_recognised_by_segment() {
        assert!(is_api_path("/api"));
        assert!(is_api_path("/api/nope"));
        assert!(is_api_path("/v1/models"));
        assert!(is_api_path("/metrics"));
        assert!(!is_api_path("/apidocs"));
        assert!(!is_api_path("/c/123"));
        assert!(!is_api_path("/"));
    }

    #[test]
    fn file_like_paths_are_not_client_routes() {
        assert!(looks_like_file("assets/missing.js"));
        assert!(looks_like_file("favicon.ico"));
        assert!(!looks_like_file("c/0190a-b"));
        assert!(!looks_like_file("settings/keys"));
    }

    #[test]
    fn the_build_has_an_index() {
        assert!(DIST.get_file("index.html").is_some());
    }
}
