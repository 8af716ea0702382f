//! Users and API keys.

use chrono::{Duration as ChronoDuration, Utc};

use super::{expect_conflict, expect_invalid, expect_not_found, new_user, ok, tick};
use crate::ids::{ApiKeyId, UserId};
use crate::store::{NewApiKey, NewUser, StateStore, UserPatch, UserRole, validate};

/// A created user can be read back by id and by username, unchanged.
pub async fn user_create_and_get(store: &dyn StateStore) {
    let created = ok(
        store
            .create_user(
                NewUser::new("ada", UserRole::Admin)
                    .with_display_name("Ada Lovelace")
                    .with_password_hash("$argon2id$v=19$fake"),
            )
            .await,
        "create_user",
    );
    assert_eq!(created.username, "ada");
    assert_eq!(created.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(created.role, UserRole::Admin);
    assert_eq!(
        created.password_hash.as_deref(),
        Some("$argon2id$v=19$fake"),
        "the password hash must be stored"
    );
    assert!(created.active, "new users are active");

    let by_id = ok(store.get_user(created.id).await, "get_user");
    assert_eq!(
        by_id, created,
        "get_user must return what create_user returned"
    );
    let by_name = ok(
        store.get_user_by_username("ada").await,
        "get_user_by_username",
    );
    assert_eq!(by_name, created, "get_user_by_username must find the user");
}

/// A second user with the same username is a conflict.
pub async fn user_duplicate_username_conflicts(store: &dyn StateStore) {
    new_user(store, "bob").await;
    expect_conflict(
        store
            .create_user(NewUser::new("bob", UserRole::Admin))
            .await,
        "create_user with a taken username",
    );
    assert_eq!(
        ok(store.count_users().await, "count_users"),
        1,
        "a conflicting create must not add a user"
    );
}

/// Bad usernames and over-long display names are rejected and nothing is
/// stored.
pub async fn user_invalid_input_is_rejected(store: &dyn StateStore) {
    for bad in [
        "",
        "has space",
        "ünïcode",
        &"x".repeat(validate::MAX_USERNAME_LEN + 1),
    ] {
        expect_invalid(
            store.create_user(NewUser::new(bad, UserRole::User)).await,
            &format!("create_user with username {bad:?}"),
        );
    }
    expect_invalid(
        store
            .create_user(
                NewUser::new("carol", UserRole::User)
                    .with_display_name("x".repeat(validate::MAX_NAME_LEN + 1)),
            )
            .await,
        "create_user with an over-long display name",
    );
    assert_eq!(
        ok(store.count_users().await, "count_users"),
        0,
        "rejected users must not be stored"
    );

    let user = new_user(store, "dave").await;
    let mut patch = UserPatch::default();
    patch.display_name = Some(Some("y".repeat(validate::MAX_NAME_LEN + 1)));
    patch.active = Some(false);
    expect_invalid(
        store.update_user(user.id, patch).await,
        "update_user with an over-long display name",
    );
    assert_eq!(
        ok(store.get_user(user.id).await, "get_user"),
        user,
        "a rejected update must change nothing"
    );
}

/// Updates change only the patched fields; listing is by username;
/// counting counts.
pub async fn user_update_list_and_count(store: &dyn StateStore) {
    assert_eq!(ok(store.count_users().await, "count_users"), 0);
    let zed = new_user(store, "zed").await;
    let amy = new_user(store, "amy").await;
    let max = new_user(store, "max").await;
    assert_eq!(ok(store.count_users().await, "count_users"), 3);

    let listed = ok(store.list_users().await, "list_users");
    let names: Vec<&str> = listed.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(
        names,
        ["amy", "max", "zed"],
        "list_users must order by username"
    );

    tick().await;
    let mut patch = UserPatch::default();
    patch.display_name = Some(Some("Zed".into()));
    patch.role = Some(UserRole::Admin);
    patch.active = Some(false);
    patch.password_hash = Some("hash-2".into());
    let updated = ok(store.update_user(zed.id, patch).await, "update_user");
    assert_eq!(updated.id, zed.id);
    assert_eq!(updated.username, "zed");
    assert_eq!(updated.display_name.as_deref(), Some("Zed"));
    assert_eq!(updated.role, UserRole::Admin);
    assert!(!updated.active);
    assert_eq!(updated.password_hash.as_deref(), Some("hash-2"));
    assert_eq!(
        updated.created_at, zed.created_at,
        "created_at must not change"
    );
    assert!(
        updated.updated_at > zed.updated_at,
        "updated_at must advance"
    );
    assert_eq!(ok(store.get_user(zed.id).await, "get_user"), updated);

    // An empty patch changes nothing but is fine; clearing works.
    let mut patch = UserPatch::default();
    patch.display_name = Some(None);
    let cleared = ok(store.update_user(zed.id, patch).await, "update_user clear");
    assert_eq!(
        cleared.display_name, None,
        "Some(None) clears the display name"
    );
    assert_eq!(cleared.role, UserRole::Admin, "unpatched fields stay");

    // The others are untouched.
    assert_eq!(ok(store.get_user(amy.id).await, "get_user"), amy);
    assert_eq!(ok(store.get_user(max.id).await, "get_user"), max);
}

/// A temporary password is kept on create, set and cleared by a patch, and
/// left alone by patches that do not name it; new users have none.
pub async fn user_temporary_password_roundtrips(store: &dyn StateStore) {
    let plain = new_user(store, "plain").await;
    assert!(
        !plain.must_change_password,
        "a new user has no temporary password"
    );
    let temp = ok(
        store
            .create_user(
                NewUser::new("temp", UserRole::User)
                    .with_password_hash("$argon2id$v=19$fake")
                    .with_temporary_password(),
            )
            .await,
        "create_user(temporary password)",
    );
    assert!(temp.must_change_password, "create must keep the flag");
    assert_eq!(ok(store.get_user(temp.id).await, "get_user"), temp);

    let mut patch = UserPatch::default();
    patch.display_name = Some(Some("Temp".into()));
    let renamed = ok(store.update_user(temp.id, patch).await, "update_user");
    assert!(
        renamed.must_change_password,
        "a patch without the flag must leave it"
    );

    let mut patch = UserPatch::default();
    patch.password_hash = Some("hash-2".into());
    patch.must_change_password = Some(false);
    let changed = ok(store.update_user(temp.id, patch).await, "update_user");
    assert!(!changed.must_change_password, "a patch clears the flag");
    assert_eq!(ok(store.get_user(temp.id).await, "get_user"), changed);

    let mut patch = UserPatch::default();
    patch.must_change_password = Some(true);
    let reset = ok(store.update_user(plain.id, patch).await, "update_user");
    assert!(reset.must_change_password, "a patch sets the flag");
    assert_eq!(
        ok(
            store.get_user_by_username("plain").await,
            "get_user_by_username"
        ),
        reset
    );
}

/// Unknown users are `NotFound` everywhere.
pub async fn user_not_found(store: &dyn StateStore) {
    expect_not_found(store.get_user(UserId::new()).await, "get_user(unknown)");
    expect_not_found(
        store.get_user_by_username("nobody").await,
        "get_user_by_username(unknown)",
    );
    expect_not_found(
        store.update_user(UserId::new(), UserPatch::default()).await,
        "update_user(unknown)",
    );
    assert!(ok(store.list_users().await, "list_users").is_empty());
}

/// Keys are stored with their hash and found by prefix; keys need an
/// existing user and a valid name.
pub async fn api_key_create_and_lookup(store: &dyn StateStore) {
    let user = new_user(store, "keyholder").await;
    let key = ok(
        store
            .create_api_key(NewApiKey::new(
                user.id,
                "laptop",
                "nb_abc123",
                "hash-of-key",
            ))
            .await,
        "create_api_key",
    );
    assert_eq!(key.user_id, user.id);
    assert_eq!(key.name, "laptop");
    assert_eq!(key.prefix, "nb_abc123");
    assert_eq!(key.hash, "hash-of-key");
    assert_eq!(key.revoked_at, None);
    assert_eq!(key.expires_at, None);
    assert!(key.is_usable(Utc::now()));

    let found = ok(
        store.get_api_key_by_prefix("nb_abc123").await,
        "get_api_key_by_prefix",
    );
    assert_eq!(found, key, "lookup by prefix must return the stored key");
    expect_not_found(
        store.get_api_key_by_prefix("nb_nope").await,
        "get_api_key_by_prefix(unknown)",
    );
    expect_not_found(
        store
            .create_api_key(NewApiKey::new(UserId::new(), "x", "nb_orphan", "h"))
            .await,
        "create_api_key for an unknown user",
    );
    expect_invalid(
        store
            .create_api_key(NewApiKey::new(user.id, "", "nb_empty_name", "h"))
            .await,
        "create_api_key with an empty name",
    );
    expect_invalid(
        store
            .create_api_key(NewApiKey::new(user.id, "empty prefix", "", "h"))
            .await,
        "create_api_key with an empty prefix",
    );
    assert_eq!(
        ok(store.list_api_keys(user.id).await, "list_api_keys").len(),
        1,
        "rejected keys must not be stored"
    );
}

/// Prefixes are unique across all users.
pub async fn api_key_duplicate_prefix_conflicts(store: &dyn StateStore) {
    let a = new_user(store, "a").await;
    let b = new_user(store, "b").await;
    ok(
        store
            .create_api_key(NewApiKey::new(a.id, "one", "nb_same", "h1"))
            .await,
        "create_api_key",
    );
    expect_conflict(
        store
            .create_api_key(NewApiKey::new(b.id, "two", "nb_same", "h2"))
            .await,
        "create_api_key with a taken prefix",
    );
    assert!(ok(store.list_api_keys(b.id).await, "list_api_keys").is_empty());
}

/// A user's keys are listed newest first, and only theirs.
pub async fn api_key_list_newest_first(store: &dyn StateStore) {
    let user = new_user(store, "lister").await;
    let other = new_user(store, "other").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let key = ok(
            store
                .create_api_key(NewApiKey::new(
                    user.id,
                    format!("k{i}"),
                    format!("nb_k{i}"),
                    "h",
                ))
                .await,
            "create_api_key",
        );
        ids.push(key.id);
        tick().await;
    }
    ok(
        store
            .create_api_key(NewApiKey::new(other.id, "theirs", "nb_theirs", "h"))
            .await,
        "create_api_key",
    );
    let listed: Vec<ApiKeyId> = ok(store.list_api_keys(user.id).await, "list_api_keys")
        .iter()
        .map(|k| k.id)
        .collect();
    ids.reverse();
    assert_eq!(
        listed, ids,
        "list_api_keys must list the user's keys newest first"
    );
    assert!(
        ok(
            store.list_api_keys(UserId::new()).await,
            "list_api_keys(unknown)"
        )
        .is_empty(),
        "an unknown user has no keys"
    );
}

/// Revoking sets `revoked_at` (the key stays findable); revoking twice is
/// a conflict; unknown keys are `NotFound`.
pub async fn api_key_revoke(store: &dyn StateStore) {
    let user = new_user(store, "revoker").await;
    let key = ok(
        store
            .create_api_key(NewApiKey::new(user.id, "k", "nb_rev", "h"))
            .await,
        "create_api_key",
    );
    let revoked = ok(store.revoke_api_key(key.id).await, "revoke_api_key");
    assert!(revoked.revoked_at.is_some(), "revoke must set revoked_at");
    assert!(
        !revoked.is_usable(Utc::now()),
        "a revoked key is not usable"
    );
    let found = ok(
        store.get_api_key_by_prefix("nb_rev").await,
        "get_api_key_by_prefix after revoke",
    );
    assert_eq!(found, revoked, "revoked keys are still found by prefix");
    expect_conflict(store.revoke_api_key(key.id).await, "revoking twice");
    expect_not_found(
        store.revoke_api_key(ApiKeyId::new()).await,
        "revoke_api_key(unknown)",
    );
}

/// Expiry is stored and honoured by [`ApiKey::is_usable`](crate::store::ApiKey::is_usable).
pub async fn api_key_expiry(store: &dyn StateStore) {
    let user = new_user(store, "expirer").await;
    let past = Utc::now() - ChronoDuration::hours(1);
    let future = Utc::now() + ChronoDuration::hours(1);
    ok(
        store
            .create_api_key(NewApiKey::new(user.id, "old", "nb_old", "h").with_expires_at(past))
            .await,
        "create_api_key expired",
    );
    ok(
        store
            .create_api_key(NewApiKey::new(user.id, "new", "nb_new", "h").with_expires_at(future))
            .await,
        "create_api_key fresh",
    );
    let expired = ok(
        store.get_api_key_by_prefix("nb_old").await,
        "lookup expired",
    );
    let fresh = ok(store.get_api_key_by_prefix("nb_new").await, "lookup fresh");
    let stored = expired.expires_at.expect("expiry must be stored");
    assert!(
        (stored - past).num_milliseconds().abs() <= 1,
        "the stored expiry must be the one given"
    );
    assert!(
        !expired.is_usable(Utc::now()),
        "a key past its expiry is not usable"
    );
    assert!(
        fresh.is_usable(Utc::now()),
        "a key before its expiry is usable"
    );
    assert!(
        !fresh.is_usable(future + ChronoDuration::seconds(1)),
        "a key is not usable after its expiry"
    );
}
