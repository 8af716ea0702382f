//! The `schedule` tool set: it acts for the owner of the run's conversation
//! and runs the run's preset (from the store, never from the arguments),
//! asks for approval before creating or cancelling, and reports bad
//! schedules and foreign ids as error results.

use std::sync::Arc;
use std::time::Duration;

use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{
    MemoryStore, NewConversation, NewPreset, NewSession, NewUser, UserRole,
};
use netherbrain_core::tasks::{TaskConfig, Tasks};
use netherbrain_core::tool::{ToolContext, ToolError};
use netherbrain_core::{Message, PresetConfig};
use netherbrain_tools::schedule::ScheduleTools;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn tasks_are_the_run_owners_with_the_runs_preset_and_creation_asks() {
    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    let bob = store
        .create_user(NewUser::new("bob", UserRole::User))
        .await
        .unwrap();
    let preset = store
        .create_preset(NewPreset::new("assistant", PresetConfig::new("local", "m")))
        .await
        .unwrap();
    let chat = |owner| {
        let store = store.clone();
        async move {
            let c = store
                .create_conversation(NewConversation::new(owner))
                .await
                .unwrap();
            let s = store
                .create_session(
                    NewSession::new(c.id, vec![Message::user("hi")]).with_preset(Some(preset.id)),
                )
                .await
                .unwrap();
            ToolContext::new(s.id, c.id)
        }
    };
    let in_ada = chat(ada.id).await;
    let in_bob = chat(bob.id).await;
    let tasks = Tasks::new(store.clone(), TaskConfig::default());
    let tools = ScheduleTools::new(tasks).registry().unwrap();
    assert!(tools.get("schedule_create").unwrap().requires_approval());
    assert!(tools.get("schedule_cancel").unwrap().requires_approval());
    assert!(!tools.get("schedule_list").unwrap().requires_approval());

    let out = tools
        .call(
            "schedule_create",
            json!({
                "name": "morning",
                "cron": "0 7 * * *",
                "timezone": "Europe/Berlin",
                "prompt": "Summarise the alerts",
                "target": "this_conversation",
            }),
            in_ada.clone(),
            T,
        )
        .await
        .unwrap();
    let created: Value = serde_json::from_str(&out.content).unwrap();
    let id = created["scheduled"]["id"].as_str().unwrap().to_owned();
    let stored = store.list_tasks(ada.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].owner, ada.id);
    assert_eq!(stored[0].preset_id, preset.id, "the run's own preset");
    assert_eq!(stored[0].conversation_id, Some(in_ada.conversation_id));

    // No argument names a user; schedules are checked.
    let err = tools
        .call(
            "schedule_create",
            json!({"name": "x", "every_seconds": 3600, "prompt": "x", "user_id": bob.id}),
            in_ada.clone(),
            T,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::InvalidArguments(_)), "{err:?}");
    for bad in [
        json!({"name": "x", "prompt": "x"}),
        json!({"name": "x", "prompt": "x", "cron": "@daily", "every_seconds": 60}),
        json!({"name": "x", "prompt": "x", "cron": "99 * * * *"}),
        json!({"name": "x", "prompt": "x", "every_seconds": 5}),
    ] {
        let err = tools
            .call("schedule_create", bad.clone(), in_ada.clone(), T)
            .await
            .unwrap_err();
        assert!(matches!(err, ToolError::Failed(_)), "{bad}: {err:?}");
    }
    assert_eq!(store.list_tasks(ada.id).await.unwrap().len(), 1);

    // Bob sees none of Ada's tasks and cannot cancel them.
    let listed = tools
        .call("schedule_list", json!({}), in_bob.clone(), T)
        .await
        .unwrap();
    let listed: Value = serde_json::from_str(&listed.content).unwrap();
    assert_eq!(listed["tasks"], json!([]));
    let err = tools
        .call("schedule_cancel", json!({"id": id}), in_bob, T)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no task"), "{err}");
    tools
        .call("schedule_cancel", json!({"id": id}), in_ada, T)
        .await
        .unwrap();
    assert!(store.list_tasks(ada.id).await.unwrap().is_empty());
}
