//! The checked-in `docs/openapi.json` must match the generated document.

use std::path::PathBuf;

fn checked_in_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

#[test]
fn openapi_document_is_up_to_date() {
    let generated = netherbrain_http::openapi_json();
    let path = checked_in_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is out of date; regenerate it with\n    \
         UPDATE_OPENAPI=1 cargo test -p netherbrain-http --test openapi"
    );
}

#[test]
fn every_route_is_documented() {
    let doc = serde_json::to_value(netherbrain_http::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/health",
        "/api/auth/login",
        "/api/auth/me",
        "/api/users/{id}/reset-password",
        "/api/keys/{id}/revoke",
        "/api/presets/import",
        "/api/presets/{id}/export",
        "/api/workspaces/{id}/delete",
        "/api/conversations/run",
        "/api/conversations/{id}/fork",
        "/api/conversations/{id}/events",
        "/api/conversations/{id}/turns",
        "/api/sessions/{id}/resume",
        "/api/sessions/{id}/events",
        "/api/toolsets",
        "/api/models",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Public routes opt out of the global bearer requirement.
    assert_eq!(
        doc["paths"]["/api/health"]["get"]["security"],
        serde_json::json!([{}])
    );
}
