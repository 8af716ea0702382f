//! The embedded web UI through the real router: the app for browser paths,
//! cache headers, the Content-Security-Policy, and JSON 404s for the API.

mod common;

use common::{assert_error, start};

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn index_and_client_routes_serve_the_app_uncached_with_a_strict_csp() {
    let s = start().await;
    for path in [
        "/",
        "/c/0190b7a2-1111-7000-8000-000000000000",
        "/settings/keys",
    ] {
        let resp = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header(&resp, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&resp, "cache-control"), "no-cache");
        let csp = header(&resp, "content-security-policy").to_owned();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(!csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
        let body = resp.text().await.unwrap();
        assert!(body.contains("<div id=\"root\"></div>"), "{path}: {body}");
    }
    s.stop().await;
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_typed() {
    let s = start().await;
    let index = s
        .http
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = index
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("index.html names its script");
    assert!(script.starts_with("/assets/"), "{script}");
    let resp = s.http.get(s.url(script)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        header(&resp, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(!resp.bytes().await.unwrap().is_empty());
    let icon = s.http.get(s.url("/favicon.svg")).send().await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(header(&icon, "content-type"), "image/svg+xml");
    assert_eq!(header(&icon, "cache-control"), "no-cache");
    s.stop().await;
}

#[tokio::test]
async fn api_paths_missing_files_and_writes_stay_json_404s() {
    let s = start().await;
    for path in [
        "/api",
        "/api/nope",
        "/api/conversations/x/y/z",
        "/v1/nope",
        "/metrics/x",
        "/assets/missing-123.js",
        "/robots.txt",
    ] {
        let resp = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(header(&resp, "content-type"), "application/json", "{path}");
        assert_error(resp, 404, "not_found").await;
    }
    let resp = s.http.post(s.url("/")).send().await.unwrap();
    assert_error(resp, 404, "not_found").await;
    let resp = s.http.post(s.url("/c/abc")).send().await.unwrap();
    assert_error(resp, 404, "not_found").await;
    s.stop().await;
}
