//! `/api/providers/*` through the real router over TCP, on a SQLite file:
//! admin only, the API key encrypted at rest and never returned, kept or
//! cleared on update, config file profiles read-only, and the models list
//! of a (wiremock) endpoint through the real OpenAI adapter.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{TestServer, assert_error, start_providers};
use netherbrain_core::provider::{ProviderKind, ProviderProfile};
use netherbrain_core::store::StateStore;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "sk-plaintext-9f8e7d6c5b4a";

/// A server on a SQLite file in `dir`, with one config file profile
/// `from-file`.
async fn server(dir: &Path) -> TestServer {
    let url = format!("sqlite://{}", dir.join("nb.db").display());
    let store: Arc<dyn StateStore> = netherbrain_store::connect(&url).await.expect("sqlite");
    let from_file = ProviderProfile::new("from-file", ProviderKind::Openai)
        .with_base_url("http://127.0.0.1:9/v1")
        .with_models(vec!["file-model".into()]);
    start_providers(store, vec![from_file], dir).await
}

async fn post(s: &TestServer, path: &str, token: &str, body: Value) -> reqwest::Response {
    s.http
        .post(s.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn get(s: &TestServer, path: &str, token: &str) -> reqwest::Response {
    s.http
        .get(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

/// The body as text, after checking the status.
async fn ok_text(resp: reqwest::Response) -> String {
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status.as_u16(), 200, "{text}");
    text
}

/// Every byte SQLite wrote for the database (main file and WAL).
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["nb.db", "nb.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            bytes.extend(b);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A wiremock OpenAI-compatible endpoint whose models list needs the key.
async fn endpoint() -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(header("authorization", format!("Bearer {SECRET}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "data": [{"id": "llama3.2", "object": "model"}, {"id": "qwen3", "object": "model"}]
        })))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"message": "upstream-detail-do-not-relay"}})),
        )
        .mount(&mock)
        .await;
    mock
}

#[tokio::test]
async fn only_admins_manage_providers() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let (_, _, user_token) = s.user_token("bob").await;
    assert_error(
        get(&s, "/api/providers/list", &user_token).await,
        403,
        "forbidden",
    )
    .await;
    let body = json!({"name": "mine", "kind": "openai"});
    assert_error(
        post(&s, "/api/providers/create", &user_token, body).await,
        403,
        "forbidden",
    )
    .await;
    for verb in ["update", "delete", "test"] {
        assert_error(
            post(
                &s,
                &format!("/api/providers/from-file/{verb}"),
                &user_token,
                json!({}),
            )
            .await,
            403,
            "forbidden",
        )
        .await;
    }
    assert!(s.store.list_providers().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_key_is_encrypted_at_rest_and_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let mock = endpoint().await;
    assert!(
        !dir.path().join("secret.key").exists(),
        "the key file is created on first need"
    );
    let created = ok_text(
        post(
            &s,
            "/api/providers/create",
            &s.admin_token,
            json!({
                "name": "remote",
                "kind": "openai",
                "base_url": format!("{}/v1", mock.uri()),
                "models": ["qwen3", "llama3.2"],
                "api_key": SECRET,
            }),
        )
        .await,
    )
    .await;
    assert!(!created.contains(SECRET), "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["has_api_key"], true);
    assert_eq!(created["source"], "settings");
    assert_eq!(created["editable"], true);
    assert_eq!(created["default_model"], "qwen3");
    assert!(created.get("api_key").is_none());

    let list = ok_text(get(&s, "/api/providers/list", &s.admin_token).await).await;
    assert!(!list.contains(SECRET), "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    let names: Vec<(&str, &str, bool)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["source"].as_str().unwrap(),
                p["editable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("from-file", "config", false), ("remote", "settings", true)]
    );

    // At rest: the row is there, the plaintext key is not.
    let raw = database_bytes(dir.path());
    assert!(contains(&raw, "remote"), "the row was written");
    assert!(!contains(&raw, SECRET), "the key is stored encrypted");
    let sealed = s
        .store
        .get_provider("remote")
        .await
        .unwrap()
        .api_key
        .unwrap();
    assert!(!contains(&sealed.ciphertext, SECRET));
    let key_file = dir.path().join("secret.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }

    // The catalog was rebuilt: discovery shows the new profile at once.
    let models: Value = get(&s, "/api/models", &s.admin_token)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        models["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "remote" && p["models"] == json!(["qwen3", "llama3.2"])),
        "{models}"
    );

    // The stored key opens and reaches the endpoint (wiremock checks it).
    let tested: Value = post(&s, "/api/providers/remote/test", &s.admin_token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        tested,
        json!({"ok": true, "models": ["llama3.2", "qwen3"], "error": null})
    );
}

#[tokio::test]
async fn update_keeps_replaces_or_clears_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let mock = endpoint().await;
    let base = format!("{}/v1", mock.uri());
    ok_text(
        post(
            &s,
            "/api/providers/create",
            &s.admin_token,
            json!({"name": "remote", "kind": "openai", "base_url": base, "api_key": "sk-wrong"}),
        )
        .await,
    )
    .await;
    let test = || async {
        post(&s, "/api/providers/remote/test", &s.admin_token, json!({}))
            .await
            .json::<Value>()
            .await
            .unwrap()
    };
    let refused = test().await;
    assert_eq!(refused["ok"], false);
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("401"), "{error}");
    assert!(
        !error.contains("upstream-detail"),
        "the upstream body is not relayed: {error}"
    );

    // Replace the key.
    let updated: Value = post(
        &s,
        "/api/providers/remote/update",
        &s.admin_token,
        json!({"api_key": SECRET}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(updated["has_api_key"], true);
    assert_eq!(test().await["ok"], true);

    // Omitting it keeps it.
    let updated: Value = post(
        &s,
        "/api/providers/remote/update",
        &s.admin_token,
        json!({"models": ["m1"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(updated["has_api_key"], true);
    assert_eq!(updated["models"], json!(["m1"]));
    assert_eq!(test().await["ok"], true, "the kept key still opens");

    // An empty string clears it.
    let updated: Value = post(
        &s,
        "/api/providers/remote/update",
        &s.admin_token,
        json!({"api_key": ""}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(updated["has_api_key"], false);
    assert!(
        s.store
            .get_provider("remote")
            .await
            .unwrap()
            .api_key
            .is_none()
    );
    assert_eq!(test().await["ok"], false);
}

#[tokio::test]
async fn config_profiles_are_read_only_and_their_names_taken() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let body = json!({"name": "from-file", "kind": "openai"});
    assert_error(
        post(&s, "/api/providers/create", &s.admin_token, body).await,
        409,
        "conflict",
    )
    .await;
    let update = post(
        &s,
        "/api/providers/from-file/update",
        &s.admin_token,
        json!({"models": ["x"]}),
    )
    .await;
    assert_error(update, 409, "conflict").await;
    let delete = post(
        &s,
        "/api/providers/from-file/delete",
        &s.admin_token,
        json!({}),
    )
    .await;
    assert_error(delete, 409, "conflict").await;

    // A Settings name taken twice conflicts too.
    let body = json!({"name": "twice", "kind": "anthropic"});
    ok_text(post(&s, "/api/providers/create", &s.admin_token, body.clone()).await).await;
    assert_error(
        post(&s, "/api/providers/create", &s.admin_token, body).await,
        409,
        "conflict",
    )
    .await;
    assert_error(
        post(&s, "/api/providers/nope/update", &s.admin_token, json!({})).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn bad_input_is_a_json_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    for body in [
        json!({"name": "has space", "kind": "openai"}),
        json!({"name": "ok", "kind": "openai", "base_url": "ftp://example.com"}),
        json!({"name": "ok", "kind": "openai", "models": [" padded "]}),
    ] {
        let resp = post(&s, "/api/providers/create", &s.admin_token, body.clone()).await;
        assert_error(resp, 422, "invalid").await;
    }
    let resp = post(
        &s,
        "/api/providers/create",
        &s.admin_token,
        json!({"name": "ok", "kind": "gopher"}),
    )
    .await;
    let status = resp.status().as_u16();
    assert!(matches!(status, 400 | 422), "{status}");
    assert!(s.store.list_providers().await.unwrap().is_empty());
}

#[tokio::test]
async fn delete_rebuilds_the_catalog_and_presets_keep_it_alive() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nb.db").display());
    let store: Arc<dyn StateStore> = netherbrain_store::connect(&url).await.unwrap();
    // No config file profile: the first provider gets the `default` preset.
    let s = start_providers(store, Vec::new(), dir.path()).await;
    let body = json!({"name": "only", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["m1", "m2"]});
    ok_text(post(&s, "/api/providers/create", &s.admin_token, body).await).await;
    let presets = s.store.list_presets().await.unwrap();
    assert_eq!(presets.len(), 1);
    assert_eq!(presets[0].name, "default");
    assert_eq!(
        (
            presets[0].config.profile.as_str(),
            presets[0].config.model.as_str()
        ),
        ("only", "m1")
    );
    assert_eq!(s.state.catalog().profiles().len(), 1);

    // A second provider makes no second preset.
    let body = json!({"name": "second", "kind": "openai", "models": ["x"]});
    ok_text(post(&s, "/api/providers/create", &s.admin_token, body).await).await;
    assert_eq!(s.store.list_presets().await.unwrap().len(), 1);

    // The preset keeps `only` from being deleted; `second` goes.
    assert_error(
        post(&s, "/api/providers/only/delete", &s.admin_token, json!({})).await,
        409,
        "conflict",
    )
    .await;
    let resp = post(
        &s,
        "/api/providers/second/delete",
        &s.admin_token,
        json!({}),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 204);
    let names: Vec<String> = s
        .state
        .catalog()
        .profiles()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["only"]);
}
