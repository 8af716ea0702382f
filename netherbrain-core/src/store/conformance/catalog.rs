//! Presets and workspaces.

use serde_json::json;

use super::{
    expect_conflict, expect_invalid, expect_not_found, meta, new_preset, new_user, new_workspace,
    ok, tick,
};
use crate::ids::{PresetId, WorkspaceId};
use crate::preset::PresetConfig;
use crate::store::{
    NewConversation, NewPreset, NewWorkspace, PresetPatch, StateStore, WorkspacePatch, validate,
};

/// Presets: create, get by id and name, list by name, update, delete.
pub async fn preset_crud(store: &dyn StateStore) {
    let config = PresetConfig::new("openai", "gpt-4o-mini").with_system_prompt("Be brief.");
    let coder = ok(
        store
            .create_preset(NewPreset::new("coder", config.clone()).with_description("writes code"))
            .await,
        "create_preset",
    );
    assert_eq!(coder.name, "coder");
    assert_eq!(coder.description.as_deref(), Some("writes code"));
    assert_eq!(coder.config, config, "the configuration must round-trip");
    let assistant = new_preset(store, "assistant").await;

    assert_eq!(ok(store.get_preset(coder.id).await, "get_preset"), coder);
    assert_eq!(
        ok(
            store.get_preset_by_name("coder").await,
            "get_preset_by_name"
        ),
        coder
    );
    let names: Vec<String> = ok(store.list_presets().await, "list_presets")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        names,
        ["assistant", "coder"],
        "list_presets must order by name"
    );

    tick().await;
    let new_config = PresetConfig::new("anthropic", "claude-test");
    let mut patch = PresetPatch::default();
    patch.name = Some("reviewer".into());
    patch.description = Some(None);
    patch.config = Some(new_config.clone());
    let updated = ok(store.update_preset(coder.id, patch).await, "update_preset");
    assert_eq!(updated.name, "reviewer");
    assert_eq!(
        updated.description, None,
        "Some(None) clears the description"
    );
    assert_eq!(updated.config, new_config);
    assert_eq!(updated.created_at, coder.created_at);
    assert!(
        updated.updated_at > coder.updated_at,
        "updated_at must advance"
    );
    assert_eq!(ok(store.get_preset(coder.id).await, "get_preset"), updated);
    expect_not_found(
        store.get_preset_by_name("coder").await,
        "get_preset_by_name(old name after rename)",
    );

    ok(store.delete_preset(coder.id).await, "delete_preset");
    expect_not_found(store.get_preset(coder.id).await, "get_preset after delete");
    expect_not_found(store.delete_preset(coder.id).await, "delete_preset twice");
    expect_not_found(
        store
            .update_preset(PresetId::new(), PresetPatch::default())
            .await,
        "update_preset(unknown)",
    );
    assert_eq!(
        ok(store.list_presets().await, "list_presets"),
        vec![assistant],
        "only the remaining preset is listed"
    );
}

/// Preset names are unique, on create and on rename.
pub async fn preset_duplicate_name_conflicts(store: &dyn StateStore) {
    new_preset(store, "one").await;
    let two = new_preset(store, "two").await;
    expect_conflict(
        store
            .create_preset(NewPreset::new("one", PresetConfig::new("p", "m")))
            .await,
        "create_preset with a taken name",
    );
    let mut patch = PresetPatch::default();
    patch.name = Some("one".into());
    expect_conflict(
        store.update_preset(two.id, patch).await,
        "renaming a preset to a taken name",
    );
    assert_eq!(
        ok(store.get_preset(two.id).await, "get_preset"),
        two,
        "a conflicting rename must change nothing"
    );
    // Renaming to its own name is not a conflict.
    let mut patch = PresetPatch::default();
    patch.name = Some("two".into());
    ok(
        store.update_preset(two.id, patch).await,
        "renaming to the same name",
    );
    assert_eq!(ok(store.list_presets().await, "list_presets").len(), 2);
}

/// Empty or over-long names and over-long descriptions are rejected.
pub async fn preset_invalid_input_is_rejected(store: &dyn StateStore) {
    let config = PresetConfig::new("p", "m");
    expect_invalid(
        store
            .create_preset(NewPreset::new("", config.clone()))
            .await,
        "create_preset with an empty name",
    );
    expect_invalid(
        store
            .create_preset(NewPreset::new(
                "x".repeat(validate::MAX_NAME_LEN + 1),
                config.clone(),
            ))
            .await,
        "create_preset with an over-long name",
    );
    expect_invalid(
        store
            .create_preset(
                NewPreset::new("ok", config.clone())
                    .with_description("d".repeat(validate::MAX_TEXT_LEN + 1)),
            )
            .await,
        "create_preset with an over-long description",
    );
    assert!(ok(store.list_presets().await, "list_presets").is_empty());
    let preset = new_preset(store, "valid").await;
    let mut patch = PresetPatch::default();
    patch.name = Some("  ".into());
    expect_invalid(
        store.update_preset(preset.id, patch).await,
        "update_preset with a blank name",
    );
    assert_eq!(ok(store.get_preset(preset.id).await, "get_preset"), preset);
}

/// A preset named as a conversation's default cannot be deleted.
pub async fn preset_delete_while_referenced_conflicts(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let preset = new_preset(store, "default").await;
    let conversation = ok(
        store
            .create_conversation(NewConversation::new(user.id).with_default_preset(preset.id))
            .await,
        "create_conversation",
    );
    expect_conflict(
        store.delete_preset(preset.id).await,
        "delete_preset while a conversation names it as default",
    );
    ok(
        store.get_preset(preset.id).await,
        "the preset must still exist",
    );

    let mut patch = crate::store::ConversationPatch::default();
    patch.default_preset = Some(None);
    ok(
        store.update_conversation(conversation.id, patch).await,
        "update_conversation clearing the default preset",
    );
    ok(
        store.delete_preset(preset.id).await,
        "delete_preset once no conversation names it",
    );
}

/// A workspace's owner is stored, read back, changed and cleared.
pub async fn workspace_owner_roundtrips(store: &dyn StateStore) {
    let ann = new_user(store, "ws-ann").await;
    let bob = new_user(store, "ws-bob").await;
    let ws = ok(
        store
            .create_workspace(NewWorkspace::new("owned").with_owner(ann.id))
            .await,
        "create_workspace with an owner",
    );
    assert_eq!(ws.owner, Some(ann.id));
    assert_eq!(
        ok(store.get_workspace(ws.id).await, "get_workspace").owner,
        Some(ann.id)
    );
    assert_eq!(new_workspace(store, "unowned").await.owner, None);
    let mut patch = WorkspacePatch::default();
    patch.owner = Some(Some(bob.id));
    let moved = ok(store.update_workspace(ws.id, patch).await, "update owner");
    assert_eq!(moved.owner, Some(bob.id));
    let mut patch = WorkspacePatch::default();
    patch.name = Some("renamed".into());
    let renamed = ok(store.update_workspace(ws.id, patch).await, "rename");
    assert_eq!(
        renamed.owner,
        Some(bob.id),
        "a patch without owner keeps it"
    );
    let mut patch = WorkspacePatch::default();
    patch.owner = Some(None);
    let cleared = ok(store.update_workspace(ws.id, patch).await, "clear owner");
    assert_eq!(cleared.owner, None);
    assert_eq!(
        ok(store.get_workspace(ws.id).await, "get_workspace").owner,
        None
    );
}

/// Workspaces: create, get, list by name, update, delete.
pub async fn workspace_crud(store: &dyn StateStore) {
    let home = ok(
        store
            .create_workspace(
                NewWorkspace::new("home")
                    .with_project_dirs(vec!["/srv/home".into(), "/srv/notes".into()])
                    .with_metadata(meta(json!({"color": "blue"}))),
            )
            .await,
        "create_workspace",
    );
    assert_eq!(home.name, "home");
    assert_eq!(home.project_dirs, ["/srv/home", "/srv/notes"]);
    assert_eq!(home.metadata, meta(json!({"color": "blue"})));
    let attic = new_workspace(store, "attic").await;

    assert_eq!(
        ok(store.get_workspace(home.id).await, "get_workspace"),
        home
    );
    let names: Vec<String> = ok(store.list_workspaces().await, "list_workspaces")
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(
        names,
        ["attic", "home"],
        "list_workspaces must order by name"
    );

    tick().await;
    let mut patch = WorkspacePatch::default();
    patch.name = Some("house".into());
    patch.project_dirs = Some(vec!["/srv/house".into()]);
    let updated = ok(
        store.update_workspace(home.id, patch).await,
        "update_workspace",
    );
    assert_eq!(updated.name, "house");
    assert_eq!(updated.project_dirs, ["/srv/house"]);
    assert_eq!(
        updated.metadata, home.metadata,
        "metadata untouched without a patch"
    );
    assert!(
        updated.updated_at > home.updated_at,
        "updated_at must advance"
    );
    assert_eq!(
        ok(store.get_workspace(home.id).await, "get_workspace"),
        updated
    );

    ok(store.delete_workspace(attic.id).await, "delete_workspace");
    expect_not_found(
        store.get_workspace(attic.id).await,
        "get_workspace after delete",
    );
    expect_not_found(
        store.delete_workspace(attic.id).await,
        "delete_workspace twice",
    );
    expect_not_found(
        store
            .update_workspace(WorkspaceId::new(), WorkspacePatch::default())
            .await,
        "update_workspace(unknown)",
    );
    expect_invalid(
        store.create_workspace(NewWorkspace::new("")).await,
        "create_workspace with an empty name",
    );
    assert_eq!(
        ok(store.list_workspaces().await, "list_workspaces"),
        vec![updated]
    );
}

/// Workspace names are unique, on create and on rename.
pub async fn workspace_duplicate_name_conflicts(store: &dyn StateStore) {
    new_workspace(store, "alpha").await;
    let beta = new_workspace(store, "beta").await;
    expect_conflict(
        store.create_workspace(NewWorkspace::new("alpha")).await,
        "create_workspace with a taken name",
    );
    let mut patch = WorkspacePatch::default();
    patch.name = Some("alpha".into());
    expect_conflict(
        store.update_workspace(beta.id, patch).await,
        "renaming a workspace to a taken name",
    );
    assert_eq!(
        ok(store.get_workspace(beta.id).await, "get_workspace"),
        beta
    );
}

/// Workspace metadata patches are shallow-merged; `null` removes a key;
/// oversized metadata is rejected and changes nothing.
pub async fn workspace_metadata_merge(store: &dyn StateStore) {
    let ws = ok(
        store
            .create_workspace(
                NewWorkspace::new("meta")
                    .with_metadata(meta(json!({"a": 1, "b": {"x": 1}, "c": "keep"}))),
            )
            .await,
        "create_workspace",
    );
    let mut patch = WorkspacePatch::default();
    patch.metadata = Some(meta(json!({"a": null, "b": {"y": 2}, "d": [1, 2]})));
    let updated = ok(
        store.update_workspace(ws.id, patch).await,
        "update_workspace",
    );
    assert_eq!(
        updated.metadata,
        meta(json!({"b": {"y": 2}, "c": "keep", "d": [1, 2]})),
        "metadata must be shallow-merged with null removing keys"
    );
    assert_eq!(
        ok(store.get_workspace(ws.id).await, "get_workspace").metadata,
        updated.metadata
    );

    let mut patch = WorkspacePatch::default();
    patch.metadata = Some(meta(
        json!({"big": "z".repeat(validate::MAX_METADATA_BYTES + 1)}),
    ));
    patch.name = Some("renamed".into());
    expect_invalid(
        store.update_workspace(ws.id, patch).await,
        "update_workspace with oversized metadata",
    );
    assert_eq!(
        ok(store.get_workspace(ws.id).await, "get_workspace"),
        updated,
        "a rejected update must change nothing"
    );
    expect_invalid(
        store
            .create_workspace(NewWorkspace::new("huge").with_metadata(meta(
                json!({"big": "z".repeat(validate::MAX_METADATA_BYTES + 1)}),
            )))
            .await,
        "create_workspace with oversized metadata",
    );
}

/// A workspace with conversations cannot be deleted.
pub async fn workspace_delete_while_referenced_conflicts(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let ws = new_workspace(store, "busy").await;
    ok(
        store
            .create_conversation(NewConversation::new(user.id).with_workspace(ws.id))
            .await,
        "create_conversation in a workspace",
    );
    expect_conflict(
        store.delete_workspace(ws.id).await,
        "delete_workspace while conversations belong to it",
    );
    ok(
        store.get_workspace(ws.id).await,
        "the workspace must still exist",
    );
}
