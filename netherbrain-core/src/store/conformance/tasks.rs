//! Users' scheduled tasks and the claim of each slot.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::{
    expect_conflict, expect_invalid, expect_not_found, new_conversation, new_preset, new_user, ok,
};
use crate::ids::{PresetId, SessionId, TaskId, UserId};
use crate::store::{NewTask, StateStore, TaskPatch, TaskRun};
use crate::tasks::TaskSchedule;

/// A time at the stores' precision.
fn at(offset_secs: i64) -> DateTime<Utc> {
    let base = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    base + TimeDelta::seconds(offset_secs)
}

fn task(owner: UserId, name: &str, preset: PresetId, next: DateTime<Utc>) -> NewTask {
    NewTask::new(
        owner,
        name,
        TaskSchedule::cron("0 7 * * 1-5", "Europe/Berlin"),
        preset,
        "Summarise my alerts",
        next,
    )
}

/// A task is created with every field, read back equal, listed by name per
/// owner, changed, recorded and deleted.
pub async fn task_create_get_list_update_delete(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    let bob = new_user(store, "bob").await;
    let preset = new_preset(store, "assistant").await;
    let other = new_preset(store, "other").await;
    let conversation = new_conversation(store, ada.id, "alerts").await;
    let morning = ok(
        store
            .create_task(
                task(ada.id, "morning", preset.id, at(0))
                    .with_conversation(Some(conversation.id))
                    .with_catch_up(true),
                10,
            )
            .await,
        "create_task",
    );
    assert_eq!(morning.owner, ada.id);
    assert_eq!(morning.conversation_id, Some(conversation.id));
    assert!(morning.catch_up && morning.enabled);
    assert_eq!(morning.next_run_at, at(0));
    assert_eq!(morning.last_run_at, None);
    assert_eq!(
        ok(store.get_task(morning.id).await, "get_task"),
        morning,
        "a task reads back as created"
    );
    let alpha = ok(
        store
            .create_task(task(ada.id, "alpha", preset.id, at(10)), 10)
            .await,
        "create second",
    );
    ok(
        store
            .create_task(task(bob.id, "bobs", preset.id, at(10)), 10)
            .await,
        "create bob's",
    );
    let listed = ok(store.list_tasks(ada.id).await, "list_tasks");
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        [alpha.id, morning.id],
        "a user's tasks by name, and only theirs"
    );

    let mut patch = TaskPatch::default();
    patch.name = Some("evening".into());
    patch.schedule = Some(TaskSchedule::every(3600));
    patch.preset_id = Some(other.id);
    patch.prompt = Some("Good evening".into());
    patch.conversation_id = Some(None);
    patch.catch_up = Some(false);
    patch.enabled = Some(false);
    patch.next_run_at = Some(at(3600));
    let changed = ok(store.update_task(morning.id, patch).await, "update_task");
    assert_eq!(changed.name, "evening");
    assert_eq!(changed.schedule, TaskSchedule::every(3600));
    assert_eq!(changed.preset_id, other.id);
    assert_eq!(changed.prompt, "Good evening");
    assert_eq!(changed.conversation_id, None);
    assert!(!changed.catch_up && !changed.enabled);
    assert_eq!(changed.next_run_at, at(3600));
    assert!(changed.updated_at >= morning.updated_at);
    assert_eq!(ok(store.get_task(morning.id).await, "get changed"), changed);

    let session = SessionId::new();
    let recorded = ok(
        store
            .record_task_run(alpha.id, TaskRun::started(at(10), session))
            .await,
        "record started",
    );
    assert_eq!(recorded.last_run_at, Some(at(10)));
    assert_eq!(recorded.last_session_id, Some(session));
    assert_eq!(recorded.last_error, None);
    let skipped = ok(
        store
            .record_task_run(alpha.id, TaskRun::skipped(at(20), "busy"))
            .await,
        "record skipped",
    );
    assert_eq!(
        skipped.last_run_at,
        Some(at(10)),
        "a skipped slot keeps the last run"
    );
    assert_eq!(skipped.last_error.as_deref(), Some("busy"));
    assert_eq!(ok(store.get_task(alpha.id).await, "get recorded"), skipped);

    ok(store.delete_task(alpha.id).await, "delete_task");
    expect_not_found(store.get_task(alpha.id).await, "get deleted");
    expect_not_found(store.delete_task(alpha.id).await, "delete twice");
    expect_not_found(
        store.update_task(TaskId::new(), TaskPatch::default()).await,
        "update unknown",
    );
    expect_not_found(
        store
            .record_task_run(TaskId::new(), TaskRun::skipped(at(0), "x"))
            .await,
        "record unknown",
    );
}

/// Names are unique per owner, the list is bounded, references must exist
/// and a preset a task uses cannot be deleted.
pub async fn task_conflicts_and_references(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    let bob = new_user(store, "bob").await;
    let preset = new_preset(store, "assistant").await;
    let first = ok(
        store
            .create_task(task(ada.id, "daily", preset.id, at(0)), 2)
            .await,
        "create",
    );
    expect_conflict(
        store
            .create_task(task(ada.id, "daily", preset.id, at(0)), 2)
            .await,
        "the same name twice",
    );
    ok(
        store
            .create_task(task(bob.id, "daily", preset.id, at(0)), 2)
            .await,
        "another owner may use the name",
    );
    let second = ok(
        store
            .create_task(task(ada.id, "weekly", preset.id, at(0)), 2)
            .await,
        "second",
    );
    expect_conflict(
        store
            .create_task(task(ada.id, "third", preset.id, at(0)), 2)
            .await,
        "a full task list",
    );
    let mut rename = TaskPatch::default();
    rename.name = Some("daily".into());
    expect_conflict(
        store.update_task(second.id, rename).await,
        "renaming onto a taken name",
    );
    expect_not_found(
        store
            .create_task(task(UserId::new(), "x", preset.id, at(0)), 2)
            .await,
        "unknown owner",
    );
    expect_not_found(
        store
            .create_task(task(bob.id, "x", PresetId::new(), at(0)), 2)
            .await,
        "unknown preset",
    );
    expect_conflict(
        store.delete_preset(preset.id).await,
        "deleting a preset a task uses",
    );
    ok(store.delete_task(first.id).await, "delete");
}

/// Invalid tasks and patches are refused and change nothing.
pub async fn task_rejects_bad_input(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    let preset = new_preset(store, "assistant").await;
    let mut bad = task(ada.id, "x", preset.id, at(0));
    bad.schedule = TaskSchedule::cron("every morning", "UTC");
    expect_invalid(store.create_task(bad, 10).await, "a bad cron expression");
    let mut bad = task(ada.id, "x", preset.id, at(0));
    bad.schedule = TaskSchedule::cron("0 7 * * *", "Atlantis/Capital");
    expect_invalid(store.create_task(bad, 10).await, "an unknown time zone");
    let mut bad = task(ada.id, "x", preset.id, at(0));
    bad.schedule = TaskSchedule::every(0);
    expect_invalid(store.create_task(bad, 10).await, "a zero interval");
    let mut bad = task(ada.id, "x", preset.id, at(0));
    bad.prompt = "  ".into();
    expect_invalid(store.create_task(bad, 10).await, "an empty prompt");
    let mut bad = task(ada.id, "", preset.id, at(0));
    bad.prompt = "nul\0".into();
    expect_invalid(store.create_task(bad, 10).await, "an empty name");
    assert!(ok(store.list_tasks(ada.id).await, "list").is_empty());

    let good = ok(
        store
            .create_task(task(ada.id, "ok", preset.id, at(0)), 10)
            .await,
        "create",
    );
    let mut patch = TaskPatch::default();
    patch.prompt = Some(String::new());
    patch.name = Some("renamed".into());
    expect_invalid(store.update_task(good.id, patch).await, "an empty prompt");
    assert_eq!(
        ok(store.get_task(good.id).await, "get"),
        good,
        "a refused patch changes nothing"
    );
}

/// Due tasks are the enabled ones whose slot has come, earliest first; a
/// slot is claimed once, and a paused or rescheduled task's old slot not at
/// all.
pub async fn task_due_and_claim(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    let preset = new_preset(store, "assistant").await;
    let late = ok(
        store
            .create_task(task(ada.id, "late", preset.id, at(30)), 10)
            .await,
        "create late",
    );
    let early = ok(
        store
            .create_task(task(ada.id, "early", preset.id, at(10)), 10)
            .await,
        "create early",
    );
    let future = ok(
        store
            .create_task(task(ada.id, "future", preset.id, at(100)), 10)
            .await,
        "create future",
    );
    let mut paused = task(ada.id, "paused", preset.id, at(0));
    paused.enabled = false;
    ok(store.create_task(paused, 10).await, "create paused");

    let due = ok(store.due_tasks(at(30), 10).await, "due_tasks");
    assert_eq!(
        due.iter().map(|t| t.id).collect::<Vec<_>>(),
        [early.id, late.id],
        "enabled tasks due by now, earliest first"
    );
    assert_eq!(ok(store.due_tasks(at(30), 1).await, "limit").len(), 1);

    assert!(ok(
        store.claim_task(early.id, at(10), at(70)).await,
        "claim"
    ));
    assert!(
        !ok(store.claim_task(early.id, at(10), at(70)).await, "again"),
        "a slot is claimed once"
    );
    assert_eq!(
        ok(store.get_task(early.id).await, "get").next_run_at,
        at(70)
    );
    assert!(
        !ok(
            store.claim_task(TaskId::new(), at(10), at(70)).await,
            "unknown"
        ),
        "an unknown task has no slot to claim"
    );
    let mut pause = TaskPatch::default();
    pause.enabled = Some(false);
    ok(store.update_task(late.id, pause).await, "pause");
    assert!(
        !ok(store.claim_task(late.id, at(30), at(90)).await, "paused"),
        "a paused task's slot is not claimed"
    );
    let mut move_slot = TaskPatch::default();
    move_slot.next_run_at = Some(at(500));
    ok(store.update_task(future.id, move_slot).await, "reschedule");
    assert!(
        !ok(store.claim_task(future.id, at(100), at(160)).await, "stale"),
        "a rescheduled task's old slot is not claimed"
    );
    assert_eq!(
        ok(store.due_tasks(at(60), 10).await, "due after").len(),
        0,
        "nothing else is due"
    );
}

/// Many concurrent claims of one slot: exactly one wins.
pub async fn concurrent_task_claim_single_winner(store: Arc<dyn StateStore>) {
    let ada = new_user(store.as_ref(), "ada").await;
    let preset = new_preset(store.as_ref(), "assistant").await;
    let created = ok(
        store
            .create_task(task(ada.id, "racy", preset.id, at(0)), 10)
            .await,
        "create",
    );
    let mut claims = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        claims.push(tokio::spawn(async move {
            store.claim_task(created.id, at(0), at(60)).await
        }));
    }
    let mut won = 0;
    for claim in claims {
        if ok(claim.await.expect("claim task panicked"), "claim") {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one claim of a slot wins");
}
