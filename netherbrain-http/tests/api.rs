//! The API through the real router over TCP, against `MemoryStore`.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{TestServer, assert_error, config, start, start_flaky, start_roots, start_with};
use netherbrain_core::PresetConfig;
use netherbrain_core::store::{NewConversation, StateStore, StoreError};
use netherbrain_http::client::ClientError;
use netherbrain_http::dto::{
    CreateApiKeyRequest, CreatePresetRequest, CreateUserRequest, CreateWorkspaceRequest,
    ImportAction, Role, UpdatePresetRequest, UpdateUserRequest, UpdateWorkspaceRequest,
};
use netherbrain_http::{AppState, LoginRateLimit, ServeError, ServerConfig, check_bind_allowed};
use serde_json::json;

fn api_status(e: &ClientError) -> u16 {
    e.status()
        .unwrap_or_else(|| panic!("not an API error: {e}"))
}

fn preset_req(name: &str) -> CreatePresetRequest {
    CreatePresetRequest {
        name: name.to_owned(),
        description: Some("writes code".to_owned()),
        config: PresetConfig::new("openai", "gpt-4o-mini").with_system_prompt("You are terse."),
    }
}

#[tokio::test]
async fn health_needs_no_auth_and_other_routes_do() {
    let s = start().await;
    let health = s.anon.health().await.unwrap();
    assert_eq!(health.status, "ok");
    assert_eq!(health.store, "ok");
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));

    let resp = s.http.get(s.url("/api/users/list")).send().await.unwrap();
    assert_eq!(
        resp.headers().get("www-authenticate").unwrap(),
        "Bearer",
        "401 names the scheme"
    );
    assert_error(resp, 401, "unauthorized").await;
    let resp = s
        .http
        .get(s.url("/api/presets/list"))
        .bearer_auth("nb_abcdefgh_wrongwrongwrongwrongwrongwrongwrongwrong")
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "unauthorized").await;
    s.stop().await;
}

#[tokio::test]
async fn bootstrap_then_login_and_me() {
    let s = start().await;
    assert!(s.admin_token.starts_with("nb_"));
    // A second bootstrap changes nothing.
    assert_eq!(
        netherbrain_http::bootstrap_admin(s.store.as_ref(), None)
            .await
            .unwrap(),
        None
    );
    let me = s.admin.me().await.unwrap();
    assert_eq!(me.username, "admin");
    assert_eq!(me.role, Role::Admin);
    assert!(!me.has_password);

    let (bob, bob_client) = s.user("bob", Role::User).await;
    let me = bob_client.me().await.unwrap();
    assert_eq!(me.id, bob.id);

    let login = s.anon.login("bob", "bob-password").await.unwrap();
    assert!(login.token.starts_with("nb_"));
    assert!(login.expires_at > Utc::now() + chrono::Duration::days(29));
    assert_eq!(login.user.username, "bob");
    // Login tokens are API keys named `login`.
    let keys = bob_client.list_keys(None).await.unwrap();
    assert!(
        keys.iter()
            .all(|k| k.name == "login" && k.expires_at.is_some())
    );

    // Logout revokes the token used.
    let token_client = s.anon.with_token(login.token);
    token_client.logout().await.unwrap();
    assert_eq!(api_status(&token_client.me().await.unwrap_err()), 401);
    s.stop().await;
}

#[tokio::test]
async fn wrong_password_is_401_then_429() {
    let s =
        start_with(config().with_login_rate_limit(LoginRateLimit::new(4, Duration::from_secs(60))))
            .await;
    // Logs carol in once: attempts count whether they succeed or not.
    s.user("carol", Role::User).await;
    for _ in 0..3 {
        let e = s.anon.login("carol", "not-the-password").await.unwrap_err();
        assert_eq!(api_status(&e), 401);
    }
    let resp = s
        .http
        .post(s.url("/api/auth/login"))
        .json(&json!({"username": "carol", "password": "carol-password"}))
        .send()
        .await
        .unwrap();
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_error(resp, 429, "rate_limited").await;
    // Unknown users are 401 too, with the same message.
    let e = s.anon.login("nobody", "whatever-pw").await.unwrap_err();
    assert_eq!(api_status(&e), 401);
    s.stop().await;
}

#[tokio::test]
async fn admin_only_writes_are_403_for_users() {
    let s = start().await;
    let (_, user) = s.user("dave", Role::User).await;
    let e = user.create_preset(&preset_req("p")).await.unwrap_err();
    assert_eq!(e.code(), Some("forbidden"));
    assert_eq!(api_status(&e), 403);
    let e = user
        .create_user(&CreateUserRequest {
            username: "eve".into(),
            password: None,
            display_name: None,
            role: Role::Admin,
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 403);
    assert_eq!(api_status(&user.list_users().await.unwrap_err()), 403);
    let e = user
        .create_workspace(&CreateWorkspaceRequest {
            name: "w".into(),
            project_dirs: vec![],
            metadata: Default::default(),
            owner: None,
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 403);
    // Reads are fine.
    assert!(user.list_presets().await.unwrap().is_empty());
    assert!(user.list_workspaces().await.unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn users_crud() {
    let s = start().await;
    let created = s
        .admin
        .create_user(&CreateUserRequest {
            username: "frank".into(),
            password: Some("frank-password".into()),
            display_name: Some("Frank".into()),
            role: Role::User,
        })
        .await
        .unwrap();
    assert!(created.has_password);
    assert!(created.active);

    let dup = s
        .admin
        .create_user(&CreateUserRequest {
            username: "frank".into(),
            password: None,
            display_name: None,
            role: Role::User,
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&dup), 409);
    let bad = s
        .admin
        .create_user(&CreateUserRequest {
            username: "no spaces".into(),
            password: None,
            display_name: None,
            role: Role::User,
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&bad), 422);
    let short = s
        .admin
        .create_user(&CreateUserRequest {
            username: "gina".into(),
            password: Some("short".into()),
            display_name: None,
            role: Role::User,
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&short), 422);

    let users = s.admin.list_users().await.unwrap();
    let names: Vec<_> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["admin", "frank"]);
    assert_eq!(s.admin.get_user(created.id).await.unwrap(), created);

    // Update: set role, clear display name.
    let updated = s
        .admin
        .update_user(
            created.id,
            &serde_json::from_value::<UpdateUserRequest>(
                json!({"display_name": null, "role": "admin"}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(updated.display_name, None);
    assert_eq!(updated.role, Role::Admin);
    let untouched = s
        .admin
        .update_user(created.id, &UpdateUserRequest::default())
        .await
        .unwrap();
    assert_eq!(untouched.role, Role::Admin);

    // Reset password, then the new one logs in.
    s.admin
        .reset_password(created.id, "brand-new-password")
        .await
        .unwrap();
    let login = s.anon.login("frank", "brand-new-password").await.unwrap();
    let frank = s.anon.with_token(login.token);
    assert_eq!(frank.me().await.unwrap().username, "frank");

    // Deactivation stops the user's tokens at once; self-deactivation is refused.
    let me = s.admin.me().await.unwrap();
    assert_eq!(
        api_status(&s.admin.deactivate_user(me.id).await.unwrap_err()),
        409
    );
    let deactivated = s.admin.deactivate_user(created.id).await.unwrap();
    assert!(!deactivated.active);
    assert_eq!(api_status(&frank.me().await.unwrap_err()), 401);
    assert_eq!(
        api_status(
            &s.anon
                .login("frank", "brand-new-password")
                .await
                .unwrap_err()
        ),
        401
    );
    s.admin.activate_user(created.id).await.unwrap();
    assert_eq!(frank.me().await.unwrap().username, "frank");

    // Unknown ids are 404, malformed ids 400 — both JSON.
    let resp = s
        .http
        .get(s.url(&format!("/api/users/{}", uuid::Uuid::now_v7())))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "not_found").await;
    let resp = s
        .http
        .get(s.url("/api/users/not-a-uuid"))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "bad_request").await;

    // Hashes never leave the server.
    let text = s
        .http
        .get(s.url("/api/users/list"))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !text.contains("argon2") && !text.contains("password_hash"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test]
async fn last_admin_cannot_be_demoted() {
    let s = start().await;
    let me = s.admin.me().await.unwrap();
    let e = s
        .admin
        .update_user(
            me.id,
            &UpdateUserRequest {
                display_name: None,
                role: Some(Role::User),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 409);
    s.stop().await;
}

#[tokio::test]
async fn api_keys_lifecycle() {
    let s = start().await;
    let (henry, henry_client) = s.user("henry", Role::User).await;
    let (_, ivy_client) = s.user("ivy", Role::User).await;

    let created = henry_client
        .create_key(&CreateApiKeyRequest {
            name: "ci".into(),
            expires_at: None,
            user_id: None,
        })
        .await
        .unwrap();
    assert!(
        created
            .secret
            .starts_with(&format!("nb_{}_", created.key.prefix))
    );
    assert_eq!(created.key.user_id, henry.id);
    assert!(created.key.usable);

    // The secret is never shown again.
    let listing = s
        .http
        .get(s.url("/api/keys/list"))
        .bearer_auth(&created.secret)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains(&created.key.prefix));
    assert!(!listing.contains(&created.secret));
    assert!(!listing.contains("hash"));

    // The key authenticates.
    let with_key = s.anon.with_token(created.secret.clone());
    assert_eq!(with_key.me().await.unwrap().id, henry.id);

    // Another user cannot see or revoke it.
    let e = ivy_client.revoke_key(created.key.id).await.unwrap_err();
    assert_eq!(api_status(&e), 404);
    let e = ivy_client.list_keys(Some(henry.id)).await.unwrap_err();
    assert_eq!(api_status(&e), 403);
    let e = ivy_client
        .create_key(&CreateApiKeyRequest {
            name: "sneaky".into(),
            expires_at: None,
            user_id: Some(henry.id),
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 403);

    // Revoke: then 401; revoking twice is 409.
    let revoked = henry_client.revoke_key(created.key.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(!revoked.usable);
    assert_eq!(api_status(&with_key.me().await.unwrap_err()), 401);
    assert_eq!(
        api_status(&henry_client.revoke_key(created.key.id).await.unwrap_err()),
        409
    );

    // Names are validated.
    let e = henry_client
        .create_key(&CreateApiKeyRequest {
            name: String::new(),
            expires_at: None,
            user_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 422);

    // Expiry must be in the future.
    let e = henry_client
        .create_key(&CreateApiKeyRequest {
            name: "old".into(),
            expires_at: Some(Utc::now() - chrono::Duration::hours(1)),
            user_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 422);

    // Expired keys stop authenticating.
    let short_lived = henry_client
        .create_key(&CreateApiKeyRequest {
            name: "short".into(),
            expires_at: Some(Utc::now() + chrono::Duration::milliseconds(700)),
            user_id: None,
        })
        .await
        .unwrap();
    let short_client = s.anon.with_token(short_lived.secret);
    assert_eq!(short_client.me().await.unwrap().id, henry.id);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(api_status(&short_client.me().await.unwrap_err()), 401);

    // Admins manage anyone's keys.
    let for_henry = s
        .admin
        .create_key(&CreateApiKeyRequest {
            name: "issued".into(),
            expires_at: Some(Utc::now() + chrono::Duration::days(1)),
            user_id: Some(henry.id),
        })
        .await
        .unwrap();
    assert_eq!(for_henry.key.user_id, henry.id);
    let henry_keys = s.admin.list_keys(Some(henry.id)).await.unwrap();
    assert!(henry_keys.iter().any(|k| k.id == for_henry.key.id));
    let resp = s
        .http
        .post(s.url(&format!(
            "/api/keys/{}/revoke?user_id={}",
            for_henry.key.id, henry.id
        )))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn presets_crud_and_toml_round_trip() {
    let s = start().await;
    let preset = s.admin.create_preset(&preset_req("coder")).await.unwrap();
    assert_eq!(preset.name, "coder");
    assert_eq!(preset.config.model, "gpt-4o-mini");
    let e = s
        .admin
        .create_preset(&preset_req("coder"))
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 409);
    assert_eq!(s.admin.get_preset(preset.id).await.unwrap(), preset);
    assert_eq!(s.admin.list_presets().await.unwrap().len(), 1);

    let updated = s
        .admin
        .update_preset(
            preset.id,
            &serde_json::from_value::<UpdatePresetRequest>(json!({"description": null})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(updated.description, None);
    assert_eq!(updated.config, preset.config);

    // Export, then import the export under another name: same config.
    let toml_text = s.admin.export_preset(preset.id).await.unwrap();
    assert!(toml_text.contains("name = \"coder\""), "{toml_text}");
    let renamed = toml_text.replace("name = \"coder\"", "name = \"coder-2\"");
    let imported = s.admin.import_presets(&renamed).await.unwrap();
    assert_eq!(imported.items.len(), 1);
    assert_eq!(imported.items[0].action, ImportAction::Created);
    assert_eq!(imported.items[0].preset.config, preset.config);
    // Importing the original again replaces it by name.
    let again = s.admin.import_presets(&toml_text).await.unwrap();
    assert_eq!(again.items[0].action, ImportAction::Updated);
    assert_eq!(again.items[0].preset.id, preset.id);

    // Several presets at once.
    let many = r#"
[[presets]]
name = "a"
[presets.config]
profile = "openai"
model = "m1"

[[presets]]
name = "b"
description = "second"
[presets.config]
profile = "anthropic"
model = "m2"
toolsets = ["files"]
"#;
    let out = s.admin.import_presets(many).await.unwrap();
    assert_eq!(out.items.len(), 2);
    assert_eq!(out.items[1].preset.config.toolsets, ["files"]);

    // Bad documents, wrong content type.
    let e = s.admin.import_presets("name = ").await.unwrap_err();
    assert_eq!(api_status(&e), 400);
    let e = s.admin.import_presets("name = \"x\"").await.unwrap_err();
    assert_eq!(api_status(&e), 422);
    let resp = s
        .http
        .post(s.url("/api/presets/import"))
        .bearer_auth(&s.admin_token)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 415, "unsupported_media_type").await;

    // Delete: 409 while a conversation uses it, then fine.
    let owner = s.admin.me().await.unwrap().id;
    let conversation = s
        .store
        .create_conversation(
            NewConversation::new(owner.into())
                .with_default_preset(netherbrain_core::PresetId::from_uuid(preset.id)),
        )
        .await
        .unwrap();
    let e = s.admin.delete_preset(preset.id).await.unwrap_err();
    assert_eq!(api_status(&e), 409);
    let _ = conversation;
    let b = &out.items[1].preset;
    s.admin.delete_preset(b.id).await.unwrap();
    assert_eq!(
        api_status(&s.admin.get_preset(b.id).await.unwrap_err()),
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn workspaces_crud_and_project_dir_rules() {
    let roots = tempfile::tempdir().unwrap();
    let root = roots.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("code")).unwrap();
    std::fs::create_dir_all(root.join("other")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("escape")).unwrap();
    let s = start_roots(vec![root.clone()]).await;
    let dir = |name: &str| root.join(name).to_str().unwrap().to_owned();
    let escape = dir("escape");
    let dotdot = format!("{}/code/../../", root.display());
    let missing = dir("missing");
    // Malformed paths fail the schema (422); well-formed ones the
    // operator's roots do not allow are 403; a missing directory is 404.
    for (bad, status) in [
        ("relative/path", 422),
        ("/srv/../etc", 422),
        ("", 422),
        ("/", 403),
        ("/etc", 403),
        (escape.as_str(), 403),
        (dotdot.as_str(), 422),
        (missing.as_str(), 404),
    ] {
        let e = s
            .admin
            .create_workspace(&CreateWorkspaceRequest {
                name: "w".into(),
                project_dirs: vec![bad.into()],
                metadata: Default::default(),
                owner: None,
            })
            .await
            .unwrap_err();
        assert_eq!(api_status(&e), status, "{bad:?}");
    }
    let ws = s
        .admin
        .create_workspace(&CreateWorkspaceRequest {
            name: "home".into(),
            // stored canonical
            project_dirs: vec![format!("{}/./code/", roots.path().display())],
            metadata: json!({"a": 1, "b": 2}).as_object().unwrap().clone(),
            owner: None,
        })
        .await
        .unwrap();
    assert_eq!(ws.project_dirs, [dir("code")]);
    let e = s
        .admin
        .create_workspace(&CreateWorkspaceRequest {
            name: "home".into(),
            project_dirs: vec![],
            metadata: Default::default(),
            owner: None,
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 409);

    let updated = s
        .admin
        .update_workspace(
            ws.id,
            &UpdateWorkspaceRequest {
                name: None,
                project_dirs: Some(vec![dir("other")]),
                metadata: Some(json!({"b": null, "c": 3}).as_object().unwrap().clone()),
                owner: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(updated.metadata),
        json!({"a": 1, "c": 3})
    );
    assert_eq!(updated.project_dirs, [dir("other")]);
    for (bad, status) in [("/srv/../x", 422), (escape.as_str(), 403), ("/", 403)] {
        let e = s
            .admin
            .update_workspace(
                ws.id,
                &UpdateWorkspaceRequest {
                    project_dirs: Some(vec![bad.into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(api_status(&e), status, "{bad:?}");
    }

    // Metadata must be an object.
    let resp = s
        .http
        .post(s.url("/api/workspaces/create"))
        .bearer_auth(&s.admin_token)
        .json(&json!({"name": "x", "metadata": [1, 2]}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "invalid").await;

    assert_eq!(s.admin.list_workspaces().await.unwrap().len(), 1);
    assert_eq!(s.admin.get_workspace(ws.id).await.unwrap().name, "home");
    s.admin.delete_workspace(ws.id).await.unwrap();
    assert_eq!(
        api_status(&s.admin.get_workspace(ws.id).await.unwrap_err()),
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn only_the_owner_or_an_admin_attaches_a_workspace() {
    let roots = tempfile::tempdir().unwrap();
    let s = start_roots(vec![roots.path().to_owned()]).await;
    let (ann, _, ann_token) = s.user_token("ann").await;
    let (_, _, bob_token) = s.user_token("bob").await;
    let owned = s
        .admin
        .create_workspace(&CreateWorkspaceRequest {
            name: "ann's".into(),
            project_dirs: vec![roots.path().to_str().unwrap().to_owned()],
            metadata: Default::default(),
            owner: Some(ann.id),
        })
        .await
        .unwrap();
    assert_eq!(owned.owner, Some(ann.id));
    let admins = s
        .admin
        .create_workspace(&CreateWorkspaceRequest {
            name: "admin's".into(),
            project_dirs: vec![roots.path().to_str().unwrap().to_owned()],
            metadata: Default::default(),
            owner: None,
        })
        .await
        .unwrap();
    // Without project directories a workspace grants no file access:
    // anyone may attach it (the default workspace is one).
    let shared = s
        .admin
        .create_workspace(&CreateWorkspaceRequest {
            name: "shared".into(),
            project_dirs: vec![],
            metadata: Default::default(),
            owner: None,
        })
        .await
        .unwrap();
    let attach = |ws: uuid::Uuid| json!({"workspace_id": ws});
    let create = |token: &str, body: serde_json::Value| {
        s.http
            .post(s.url("/api/conversations/create"))
            .bearer_auth(token.to_owned())
            .json(&body)
            .send()
    };
    let ok = create(&ann_token, attach(owned.id)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let resp = create(&bob_token, attach(owned.id)).await.unwrap();
    assert_error(resp, 403, "forbidden").await;
    let resp = create(&ann_token, attach(admins.id)).await.unwrap();
    assert_error(resp, 403, "forbidden").await;
    let ok = create(&s.admin_token, attach(owned.id)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let ok = create(&bob_token, attach(shared.id)).await.unwrap();
    assert_eq!(ok.status(), 200);
    // an unknown owner is refused
    let e = s
        .admin
        .create_workspace(&CreateWorkspaceRequest {
            name: "nobody's".into(),
            project_dirs: vec![],
            metadata: Default::default(),
            owner: Some(uuid::Uuid::now_v7()),
        })
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 404);
    s.stop().await;
}

#[tokio::test]
async fn bad_bodies_are_4xx_json_never_500() {
    let s = start().await;
    let post = |path: &str| s.http.post(s.url(path)).bearer_auth(&s.admin_token);
    // Malformed JSON.
    let resp = post("/api/users/create")
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "bad_request").await;
    // Wrong types.
    let resp = post("/api/users/create")
        .json(&json!({"username": 42}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "invalid").await;
    let resp = post("/api/users/create")
        .json(&json!({"username": "x", "role": "emperor"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "invalid").await;
    // Missing fields.
    let resp = post("/api/presets/create")
        .json(&json!({"name": "p"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "invalid").await;
    // Wrong content type, no body.
    let resp = post("/api/keys/create")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_error(resp, 415, "unsupported_media_type").await;
    let resp = post("/api/auth/login").send().await.unwrap();
    assert_error(resp, 415, "unsupported_media_type").await;
    // Bad query.
    let resp = s
        .http
        .get(s.url("/api/keys/list?user_id=nope"))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "bad_request").await;
    s.stop().await;
}

#[tokio::test]
async fn oversize_body_is_413_json() {
    let s = start_with(config().with_body_limit(16 * 1024)).await;
    let big = "x".repeat(64 * 1024);
    let resp = s
        .http
        .post(s.url("/api/presets/create"))
        .bearer_auth(&s.admin_token)
        .json(&json!({"name": big, "config": {"profile": "p", "model": "m"}}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 413, "payload_too_large").await;
    let resp = s
        .http
        .post(s.url("/api/presets/import"))
        .bearer_auth(&s.admin_token)
        .header("content-type", "application/toml")
        .body(format!("name = \"{big}\""))
        .send()
        .await
        .unwrap();
    assert_error(resp, 413, "payload_too_large").await;
    s.stop().await;
}

#[tokio::test]
async fn unknown_route_404_and_wrong_method_405_are_json() {
    let s = start().await;
    let resp = s.http.get(s.url("/api/nope")).send().await.unwrap();
    assert_error(resp, 404, "not_found").await;
    // `/` is the web UI now (tests/webui.rs); a write there is still a JSON 404
    let resp = s.http.post(s.url("/")).send().await.unwrap();
    assert_error(resp, 404, "not_found").await;
    let resp = s.http.delete(s.url("/api/health")).send().await.unwrap();
    assert_error(resp, 405, "method_not_allowed").await;
    let resp = s
        .http
        .get(s.url("/api/users/create"))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    assert!(matches!(resp.status().as_u16(), 405), "{}", resp.status());
    s.stop().await;
}

#[tokio::test]
async fn non_loopback_bind_needs_auth() {
    let store = std::sync::Arc::new(netherbrain_core::store::MemoryStore::new());
    let dyn_store: std::sync::Arc<dyn StateStore> = store.clone();
    let open = AppState::new(dyn_store.clone(), ServerConfig::default());
    let public: std::net::SocketAddr = "0.0.0.0:9001".parse().unwrap();
    let loopback: std::net::SocketAddr = "127.0.0.1:9001".parse().unwrap();
    assert!(check_bind_allowed(loopback, &open).await.is_ok());
    let err = check_bind_allowed(public, &open).await.unwrap_err();
    assert!(matches!(err, ServeError::InsecureBind { .. }), "{err}");
    assert!(err.to_string().contains("NETHER_AUTH_TOKEN"));

    // serve() refuses too.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = netherbrain_http::serve(listener, open.clone(), async {})
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::InsecureBind { .. }));

    // An operator token, or an admin with a password, is enough.
    let with_token = AppState::new(
        dyn_store.clone(),
        ServerConfig::default().with_auth_token(Some("x".repeat(32))),
    );
    assert!(check_bind_allowed(public, &with_token).await.is_ok());
    netherbrain_http::bootstrap_admin(store.as_ref(), None)
        .await
        .unwrap()
        .unwrap();
    // The bootstrapped admin has only a key: still refused.
    assert!(check_bind_allowed(public, &open).await.is_err());
    use netherbrain_core::store::UserStore as _;
    let admin = store.get_user_by_username("admin").await.unwrap();
    let mut patch = netherbrain_core::store::UserPatch::default();
    patch.password_hash = Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into());
    store.update_user(admin.id, patch).await.unwrap();
    assert!(check_bind_allowed(public, &open).await.is_ok());
}

#[tokio::test]
async fn operator_token_acts_as_bootstrap_admin() {
    let token = "operator-token-0123456789abcdef".to_owned();
    let s = start_with(config().with_auth_token(Some(token.clone()))).await;
    let me = s.admin.me().await.unwrap();
    assert_eq!(me.username, "admin");
    assert_eq!(me.role, Role::Admin);
    // Nothing derived from the operator token is stored or listed.
    let keys = s.admin.list_keys(None).await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    assert_eq!(s.admin.me().await.unwrap().username, "admin");
    // The operator token cannot be logged out.
    assert_eq!(api_status(&s.admin.logout().await.unwrap_err()), 409);
    // Short operator tokens are refused at bootstrap.
    let empty = netherbrain_core::store::MemoryStore::new();
    assert!(matches!(
        netherbrain_http::bootstrap_admin(&empty, Some("short")).await,
        Err(netherbrain_core::auth::AuthError::WeakOperatorToken)
    ));
    s.stop().await;
}

#[tokio::test]
async fn change_password() {
    let s = start().await;
    let (_, jo) = s.user("jo", Role::User).await;
    let e = jo
        .change_password(Some("wrong-password"), "another-password")
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 401);
    let e = jo
        .change_password(Some("jo-password"), "short")
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 422);
    jo.change_password(Some("jo-password"), "another-password")
        .await
        .unwrap();
    s.anon.login("jo", "another-password").await.unwrap();
    // A token-only account sets its first password without a current one.
    let admin = s
        .admin
        .change_password(None, "admin-password")
        .await
        .unwrap();
    assert!(admin.has_password);
    s.anon.login("admin", "admin-password").await.unwrap();
    s.stop().await;
}

/// A password an admin sets is temporary: login says so, the login token
/// can only read the user, change the password and log out until the user
/// picks a new one; other keys of the user are not held back.
#[tokio::test]
async fn temporary_password_must_be_changed_first() {
    let s = start().await;
    let kim = s
        .admin
        .create_user(&CreateUserRequest {
            username: "kim".into(),
            password: Some("kim-temporary".into()),
            display_name: None,
            role: Role::User,
        })
        .await
        .unwrap();
    assert!(kim.must_change_password);
    let token_only = s
        .admin
        .create_user(&CreateUserRequest {
            username: "tom".into(),
            password: None,
            display_name: None,
            role: Role::User,
        })
        .await
        .unwrap();
    assert!(!token_only.must_change_password);

    let login = s.anon.login("kim", "kim-temporary").await.unwrap();
    assert!(login.user.must_change_password);
    let kim_client = s.anon.with_token(login.token.clone());
    assert!(kim_client.me().await.unwrap().must_change_password);
    let held_back = |path: &'static str| {
        let req = s.http.get(s.url(path)).bearer_auth(&login.token);
        async move { assert_error(req.send().await.unwrap(), 403, "password_change_required").await }
    };
    held_back("/api/conversations/list").await;
    held_back("/api/keys/list").await;
    // The OpenAI-compatible routes answer in OpenAI's error shape.
    let resp = s
        .http
        .get(s.url("/v1/models"))
        .bearer_auth(&login.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let e = kim_client
        .create_key(&CreateApiKeyRequest {
            name: "escape".into(),
            expires_at: None,
            user_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("password_change_required"));
    // A key the admin made for kim is not a login token.
    let key = s
        .admin
        .create_key(&CreateApiKeyRequest {
            name: "laptop".into(),
            expires_at: None,
            user_id: Some(kim.id),
        })
        .await
        .unwrap();
    s.anon
        .with_token(key.secret.clone())
        .list_keys(None)
        .await
        .unwrap();

    // The temporary password cannot be kept.
    let e = kim_client
        .change_password(Some("kim-temporary"), "kim-temporary")
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 422);
    let changed = kim_client
        .change_password(Some("kim-temporary"), "kim-own-password")
        .await
        .unwrap();
    assert!(!changed.must_change_password);
    // The same token now works everywhere.
    kim_client.list_keys(None).await.unwrap();
    let again = s.anon.login("kim", "kim-own-password").await.unwrap();
    assert!(!again.user.must_change_password);

    // A reset makes it temporary again and logs kim out.
    let reset = s
        .admin
        .reset_password(kim.id, "kim-second-temporary")
        .await
        .unwrap();
    assert!(reset.must_change_password);
    assert_eq!(api_status(&kim_client.me().await.unwrap_err()), 401);
    let login = s.anon.login("kim", "kim-second-temporary").await.unwrap();
    assert!(login.user.must_change_password);
    let kim_client = s.anon.with_token(login.token);
    assert_eq!(
        kim_client.list_keys(None).await.unwrap_err().code(),
        Some("password_change_required")
    );
    // The token-only admin setting its own first password is not held back.
    let admin = s
        .admin
        .change_password(None, "admin-password")
        .await
        .unwrap();
    assert!(!admin.must_change_password);
    let admin_login = s.anon.login("admin", "admin-password").await.unwrap();
    assert!(!admin_login.user.must_change_password);
    s.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_and_request_ids_echo() {
    let s = start().await;
    s.anon.health().await.unwrap();
    s.anon.health().await.unwrap();
    let _ = s.http.get(s.url("/api/nope")).send().await.unwrap();

    let resp = s
        .http
        .get(s.url("/api/health"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers().get("x-request-id").unwrap(), "req-123");
    let resp = s.http.get(s.url("/api/nope")).send().await.unwrap();
    let generated = resp
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");

    let text = s.anon.metrics().await.unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("netherbrain_http_requests_total")
                && l.contains("route=\"/api/health\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no health counter in:\n{text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{line}");
    assert!(text.contains("route=\"unmatched\""));
    assert!(text.contains("netherbrain_active_sessions 0"));
    assert!(text.contains("netherbrain_http_request_duration_seconds_bucket"));

    // The runtime's series are there to update.
    s.state.metrics().record_tokens("gpt-4o-mini", 100, 20);
    let text = s.anon.metrics().await.unwrap();
    assert!(text.contains("netherbrain_tokens_total{model=\"gpt-4o-mini\",kind=\"input\"} 100"));
    s.stop().await;
}

#[tokio::test]
async fn metrics_can_require_auth() {
    let s = start_with(config().with_metrics_require_auth(true)).await;
    let resp = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_error(resp, 401, "unauthorized").await;
    assert!(s.admin.metrics().await.unwrap().contains("netherbrain_"));
    s.stop().await;
}

#[tokio::test]
async fn openapi_is_served() {
    let s = start().await;
    let doc = s.anon.openapi().await.unwrap();
    assert!(doc["paths"]["/api/users/create"]["post"].is_object());
    assert_eq!(
        doc,
        serde_json::to_value(netherbrain_http::openapi()).unwrap()
    );
    s.stop().await;
}

#[tokio::test]
async fn store_failures_map_to_503_and_opaque_500() {
    let s = start_flaky().await;
    let flaky = s.flaky.clone().unwrap();
    flaky.fail_with(Some(StoreError::Unavailable(
        "connection refused to 10.0.0.7".into(),
    )));
    let resp = s.http.get(s.url("/api/health")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let health: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["store"], "unavailable");
    let resp = s
        .http
        .get(s.url("/api/presets/list"))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    let body = assert_error(resp, 503, "unavailable").await;
    assert!(!body.to_string().contains("10.0.0.7"), "{body}");

    flaky.fail_with(Some(StoreError::Backend("syntax error near SELECT".into())));
    let resp = s
        .http
        .get(s.url("/api/presets/list"))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    let body = assert_error(resp, 500, "internal").await;
    assert!(!body.to_string().contains("SELECT"), "{body}");

    flaky.fail_with(None);
    assert_eq!(s.anon.health().await.unwrap().status, "ok");
    s.stop().await;
}

mod snapshots {
    use super::*;

    #[tokio::test]
    async fn response_shapes() {
        let s = start().await;
        let resp = s.http.get(s.url("/api/nope")).send().await.unwrap();
        let body: serde_json::Value = resp.json().await.unwrap();
        insta::assert_json_snapshot!("error_not_found", body);

        let resp = s
            .http
            .post(s.url("/api/users/create"))
            .bearer_auth(&s.admin_token)
            .json(&json!({"username": "kim", "password": "kim-password", "display_name": "Kim", "role": "user"}))
            .send()
            .await
            .unwrap();
        let user: serde_json::Value = resp.json().await.unwrap();
        insta::assert_json_snapshot!("user", user, {
            ".id" => "[id]",
            ".created_at" => "[timestamp]",
            ".updated_at" => "[timestamp]",
        });

        let preset = s.admin.create_preset(&preset_req("coder")).await.unwrap();
        insta::assert_json_snapshot!("preset", preset, {
            ".id" => "[id]",
            ".created_at" => "[timestamp]",
            ".updated_at" => "[timestamp]",
        });

        let key = s
            .admin
            .create_key(&CreateApiKeyRequest {
                name: "ci".into(),
                expires_at: None,
                user_id: None,
            })
            .await
            .unwrap();
        insta::assert_json_snapshot!("created_key", key, {
            ".key.id" => "[id]",
            ".key.user_id" => "[id]",
            ".key.prefix" => "[prefix]",
            ".key.created_at" => "[timestamp]",
            ".secret" => "[secret]",
        });

        let export = s.admin.export_preset(preset.id).await.unwrap();
        insta::assert_snapshot!("preset_export", export);
        let _: &TestServer = &s;
        s.stop().await;
    }
}

#[tokio::test]
async fn an_admin_approves_a_gateway_pairing_code() {
    use netherbrain_core::store::NewPairing;
    use netherbrain_http::dto::ApprovePairingRequest;
    let s = start().await;
    let expires = Utc::now() + chrono::Duration::minutes(10);
    for (code, sender) in [("K7QX2M9P", "4242"), ("ZZ23ABCD", "77")] {
        s.store
            .create_pairing(NewPairing::new(code, "telegram", sender, sender, expires))
            .await
            .unwrap();
    }
    let (user_view, user) = s.user("gina", Role::User).await;
    let req = |code: &str, user_id| ApprovePairingRequest {
        code: code.to_owned(),
        user_id,
    };

    // Not an admin: refused, the code stays pending.
    let e = user
        .approve_pairing(&req("K7QX2M9P", None))
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 403);
    assert_eq!(s.store.pending_pairings(Utc::now()).await.unwrap().len(), 2);
    // Unknown code, empty code, unknown user.
    let e = s
        .admin
        .approve_pairing(&req("NOPE1234", None))
        .await
        .unwrap_err();
    assert_eq!((api_status(&e), e.code()), (404, Some("not_found")));
    let e = s.admin.approve_pairing(&req("  ", None)).await.unwrap_err();
    assert_eq!(api_status(&e), 422);
    let e = s
        .admin
        .approve_pairing(&req("K7QX2M9P", Some(uuid::Uuid::new_v4())))
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 404);

    // The admin pairs the sender as themself (the default)…
    let me = s.admin.me().await.unwrap();
    let paired = s
        .admin
        .approve_pairing(&req(" K7QX2M9P ", None))
        .await
        .unwrap();
    assert_eq!(
        (
            paired.channel.as_str(),
            paired.sender_id.as_str(),
            paired.user_id
        ),
        ("telegram", "4242", me.id)
    );
    let identity = s
        .store
        .gateway_identity("telegram", "4242")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.user_id, netherbrain_core::UserId::from(me.id));
    // …or as another user; a code works once.
    let paired = s
        .admin
        .approve_pairing(&req("ZZ23ABCD", Some(user_view.id)))
        .await
        .unwrap();
    assert_eq!(paired.user_id, user_view.id);
    let e = s
        .admin
        .approve_pairing(&req("ZZ23ABCD", None))
        .await
        .unwrap_err();
    assert_eq!(api_status(&e), 404);
    assert!(
        s.store
            .pending_pairings(Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    s.stop().await;
}
