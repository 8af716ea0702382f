//! Provider profiles stored from Settings.

use std::collections::BTreeMap;

use super::{expect_conflict, expect_invalid, expect_not_found, ok, tick};
use crate::provider::ProviderKind;
use crate::store::{NewStoredProvider, ProviderPatch, SealedSecret, StateStore};

/// A change that makes a new profile invalid, and what it is.
type BadCase = (&'static str, Box<dyn Fn(&mut NewStoredProvider)>);

fn sealed(byte: u8) -> SealedSecret {
    SealedSecret::new(vec![byte; 12], (0..48).map(|i| byte ^ i).collect())
}

/// Profiles are created, read back equal (sealed key bytes included),
/// listed by name, patched (kept, replaced and cleared fields) and deleted;
/// a taken name conflicts and unknown names are not found.
pub async fn provider_crud(store: &dyn StateStore) {
    let mut new = NewStoredProvider::new("zeta", ProviderKind::Openai);
    new.base_url = Some("http://127.0.0.1:11434/v1".into());
    new.models = vec!["llama3.2".into(), "qwen3".into()];
    new.default_model = Some("qwen3".into());
    new.headers = BTreeMap::from([("x-team".to_owned(), "blue".to_owned())]);
    new.api_key = Some(sealed(7));
    let created = ok(store.create_provider(new.clone()).await, "create_provider");
    assert_eq!(created.name, "zeta");
    assert_eq!(created.api_key, Some(sealed(7)));
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(
        ok(store.get_provider("zeta").await, "get_provider"),
        created
    );
    expect_conflict(store.create_provider(new).await, "duplicate name");

    ok(
        store
            .create_provider(NewStoredProvider::new("alpha", ProviderKind::Anthropic))
            .await,
        "create second",
    );
    let names: Vec<String> = ok(store.list_providers().await, "list_providers")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["alpha", "zeta"]);

    tick().await;
    let mut patch = ProviderPatch::default();
    patch.models = Some(vec!["qwen3".into()]);
    let kept = ok(store.update_provider("zeta", patch).await, "update models");
    assert_eq!(kept.models, ["qwen3"]);
    assert_eq!(kept.api_key, Some(sealed(7)), "the key is kept");
    assert_eq!(kept.base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
    assert!(kept.updated_at > created.updated_at);
    assert_eq!(kept.created_at, created.created_at);

    let mut patch = ProviderPatch::default();
    patch.api_key = Some(Some(sealed(9)));
    patch.kind = Some(ProviderKind::Anthropic);
    let replaced = ok(store.update_provider("zeta", patch).await, "replace key");
    assert_eq!(replaced.api_key, Some(sealed(9)));
    assert_eq!(replaced.kind, ProviderKind::Anthropic);

    let mut patch = ProviderPatch::default();
    patch.api_key = Some(None);
    patch.base_url = Some(None);
    patch.default_model = Some(None);
    patch.headers = Some(BTreeMap::new());
    let cleared = ok(store.update_provider("zeta", patch).await, "clear");
    assert_eq!(cleared.api_key, None);
    assert_eq!(cleared.base_url, None);
    assert_eq!(cleared.default_model, None);
    assert!(cleared.headers.is_empty());
    assert_eq!(
        ok(store.get_provider("zeta").await, "get after update"),
        cleared
    );

    expect_not_found(
        store
            .update_provider("nope", ProviderPatch::default())
            .await,
        "update unknown",
    );
    ok(store.delete_provider("zeta").await, "delete_provider");
    expect_not_found(store.get_provider("zeta").await, "get deleted");
    expect_not_found(store.delete_provider("zeta").await, "delete twice");
    assert_eq!(ok(store.list_providers().await, "list").len(), 1);
}

/// Bad names, URLs, models, headers and sealed keys are rejected on create
/// and update, and a rejected update changes nothing.
pub async fn provider_rejects_bad_input(store: &dyn StateStore) {
    let cases: Vec<BadCase> = vec![
        ("empty name", Box::new(|p| p.name = String::new())),
        ("spaced name", Box::new(|p| p.name = "a b".into())),
        ("nul name", Box::new(|p| p.name = "a\0".into())),
        (
            "ftp url",
            Box::new(|p| p.base_url = Some("ftp://example.com".into())),
        ),
        (
            "url without host",
            Box::new(|p| p.base_url = Some("http://".into())),
        ),
        ("empty model", Box::new(|p| p.models = vec![String::new()])),
        (
            "duplicate model",
            Box::new(|p| p.models = vec!["m".into(), "m".into()]),
        ),
        (
            "default not listed",
            Box::new(|p| p.default_model = Some("other".into())),
        ),
        (
            "bad header name",
            Box::new(|p| {
                p.headers.insert("bad header".into(), "v".into());
            }),
        ),
        (
            "header value with newline",
            Box::new(|p| {
                p.headers.insert("x-ok".into(), "a\nb".into());
            }),
        ),
        (
            "short nonce",
            Box::new(|p| p.api_key = Some(SealedSecret::new(vec![1; 3], vec![0; 32]))),
        ),
    ];
    for (what, change) in cases {
        let mut new = NewStoredProvider::new("good", ProviderKind::Openai);
        change(&mut new);
        expect_invalid(store.create_provider(new).await, what);
    }
    assert!(ok(store.list_providers().await, "list").is_empty());

    let mut new = NewStoredProvider::new("good", ProviderKind::Openai);
    new.models = vec!["m".into()];
    new.default_model = Some("m".into());
    let created = ok(store.create_provider(new).await, "create");
    let mut patch = ProviderPatch::default();
    patch.models = Some(vec!["n".into()]);
    expect_invalid(
        store.update_provider("good", patch).await,
        "models without the default",
    );
    let mut patch = ProviderPatch::default();
    patch.base_url = Some(Some("not a url".into()));
    expect_invalid(store.update_provider("good", patch).await, "bad url");
    assert_eq!(ok(store.get_provider("good").await, "get"), created);
}
