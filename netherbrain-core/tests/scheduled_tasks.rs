//! Scheduled tasks on a mocked clock: a slot fires once, a missed slot is
//! caught up once (or recorded as missed), a busy target conversation is
//! recorded, two schedulers never run one slot twice, and tasks belong to
//! their owner.

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::auth::Principal;
use netherbrain_core::conversation::{ConversationService, SendMessage, ServiceError};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{MemoryStore, NewPreset, NewUser, Preset, User, UserRole};
use netherbrain_core::tasks::{
    Clock, ManualClock, Scheduler, SlotOutcome, TaskChange, TaskConfig, TaskSchedule, TaskSpec,
    Tasks,
};
use netherbrain_core::testing::{InstantProvider, ScriptedProvider, ScriptedResponse};
use netherbrain_core::{Message, PresetConfig, SessionStatus};

struct World {
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    ada: User,
    preset: Preset,
}

async fn world() -> World {
    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    let preset = store
        .create_preset(NewPreset::new(
            "assistant",
            PresetConfig::new("local", "tiny"),
        ))
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 12, 1, 6, 0, 0).unwrap(),
    ));
    World {
        store,
        clock,
        ada,
        preset,
    }
}

/// A service (one "process") over the world's store and clock.
fn service(
    w: &World,
    provider: Arc<dyn netherbrain_core::provider::Provider>,
) -> ConversationService {
    let catalog = AgentCatalog::new().with_provider("local", provider, vec!["tiny".into()]);
    let tasks = Tasks::new(w.store.clone(), TaskConfig::default()).with_clock(w.clock.clone());
    ConversationService::builder(w.store.clone())
        .catalog(Arc::new(catalog))
        .tasks(tasks)
        .build()
}

fn instant() -> Arc<dyn netherbrain_core::provider::Provider> {
    Arc::new(InstantProvider::new(0, "none"))
}

#[tokio::test]
async fn a_slot_fires_once_on_the_mocked_clock_with_the_prompt_as_the_owner() {
    let w = world().await;
    let service = service(&w, instant());
    let who = Principal::of(&w.ada);
    let spec = TaskSpec::new(
        "morning",
        TaskSchedule::cron("0 7 * * *", "Europe/Berlin"),
        w.preset.id,
        "Summarise my alerts",
    );
    let task = service.create_task(&who, None, spec).await.unwrap();
    // 7:00 in Berlin is 6:00 UTC; the clock shows 6:00, so the next is tomorrow.
    assert_eq!(
        task.next_run_at,
        Utc.with_ymd_and_hms(2026, 12, 2, 6, 0, 0).unwrap()
    );
    let scheduler = Scheduler::new(service.clone());
    assert!(scheduler.run_due().await.unwrap().is_empty(), "not due yet");

    w.clock.advance(TimeDelta::days(1) + TimeDelta::seconds(2));
    let fired = scheduler.run_due().await.unwrap();
    let [SlotOutcome::Started { session_id, .. }] = fired.as_slice() else {
        panic!("expected one started run, got {fired:?}");
    };
    assert!(
        scheduler.run_due().await.unwrap().is_empty(),
        "a slot runs once"
    );
    let done = service.runtime().wait(*session_id).await.unwrap();
    assert_eq!(done.status, SessionStatus::Committed);
    assert_eq!(done.input[0].text(), "Summarise my alerts");
    let conversation = w
        .store
        .get_conversation(done.conversation_id)
        .await
        .unwrap();
    assert_eq!(conversation.owner, w.ada.id, "the run is the owner's");
    assert_eq!(conversation.title.as_deref(), Some("morning"));

    let after = service.task(&who, None, task.id).await.unwrap();
    assert_eq!(after.last_session_id, Some(*session_id));
    assert_eq!(after.last_error, None);
    assert_eq!(
        after.next_run_at,
        Utc.with_ymd_and_hms(2026, 12, 3, 6, 0, 0).unwrap()
    );
}

#[tokio::test]
async fn a_missed_slot_runs_once_with_catch_up_and_is_recorded_without() {
    let w = world().await;
    let service = service(&w, instant());
    let who = Principal::of(&w.ada);
    let hourly = |name: &str, catch_up: bool| {
        TaskSpec::new(name, TaskSchedule::every(3600), w.preset.id, "ping").with_catch_up(catch_up)
    };
    let caught = service
        .create_task(&who, None, hourly("caught", true))
        .await
        .unwrap();
    let missed = service
        .create_task(&who, None, hourly("missed", false))
        .await
        .unwrap();
    // The server was down for five hours: five slots passed.
    w.clock
        .advance(TimeDelta::hours(5) + TimeDelta::minutes(30));
    let scheduler = Scheduler::new(service.clone());
    let outcomes = scheduler.run_due().await.unwrap();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, SlotOutcome::Started { task_id, .. } if *task_id == caught.id))
    );
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, SlotOutcome::Missed { task_id, .. } if *task_id == missed.id))
    );
    assert!(
        scheduler.run_due().await.unwrap().is_empty(),
        "the missed slots run at most once in all"
    );
    let now = w.clock.now();
    for id in [caught.id, missed.id] {
        let task = service.task(&who, None, id).await.unwrap();
        assert!(task.next_run_at > now, "the next slot is ahead");
        assert_eq!(
            task.next_run_at,
            caught.next_run_at + TimeDelta::hours(5),
            "the cadence keeps"
        );
    }
    let missed = service.task(&who, None, missed.id).await.unwrap();
    assert!(missed.last_error.unwrap().contains("missed"));
    assert_eq!(missed.last_session_id, None);
}

#[tokio::test]
async fn a_busy_target_conversation_is_recorded_and_the_next_slot_still_runs() {
    let w = world().await;
    // The first run hangs, keeping the conversation busy.
    let provider = Arc::new(ScriptedProvider::new([
        ScriptedResponse::builder().hang().build(),
        ScriptedResponse::text("done"),
    ]));
    let service = service(&w, provider.clone());
    let who = Principal::of(&w.ada);
    let sent = service
        .send(
            &who,
            SendMessage::new_conversation(w.preset.id, vec![Message::user("long job")]),
        )
        .await
        .unwrap();
    let conversation = sent.handle().conversation_id;
    // The long job is under way (its model call is made) before the slot.
    while provider.requests().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let task = service
        .create_task(
            &who,
            None,
            TaskSpec::new("check", TaskSchedule::every(60), w.preset.id, "status?")
                .with_conversation(Some(conversation)),
        )
        .await
        .unwrap();
    w.clock.advance(TimeDelta::seconds(61));
    let scheduler = Scheduler::new(service.clone());
    let outcomes = scheduler.run_due().await.unwrap();
    assert!(
        matches!(outcomes.as_slice(), [SlotOutcome::Failed { error, .. }] if error.contains("busy")),
        "{outcomes:?}"
    );
    let recorded = service.task(&who, None, task.id).await.unwrap();
    assert!(recorded.last_error.unwrap().contains("busy"));

    service
        .interrupt(
            &who,
            netherbrain_core::conversation::RunTarget::Conversation(conversation),
        )
        .await
        .unwrap();
    service
        .runtime()
        .wait(sent.handle().session_id)
        .await
        .unwrap();
    w.clock.advance(TimeDelta::seconds(60));
    let outcomes = scheduler.run_due().await.unwrap();
    let [SlotOutcome::Started { session_id, .. }] = outcomes.as_slice() else {
        panic!("expected a started run, got {outcomes:?}");
    };
    let run = service.runtime().wait(*session_id).await.unwrap();
    assert_eq!(
        run.conversation_id, conversation,
        "it goes to its conversation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_sharing_a_store_never_run_one_slot_twice() {
    let w = world().await;
    let a = service(&w, instant());
    let b = service(&w, instant());
    let who = Principal::of(&w.ada);
    for i in 0..20 {
        a.create_task(
            &who,
            None,
            TaskSpec::new(
                format!("t{i}"),
                TaskSchedule::every(60),
                w.preset.id,
                "ping",
            ),
        )
        .await
        .unwrap();
    }
    let (sa, sb) = (Scheduler::new(a.clone()), Scheduler::new(b.clone()));
    let mut started = 0;
    for _ in 0..3 {
        w.clock.advance(TimeDelta::seconds(60));
        let (ra, rb) = tokio::join!(sa.run_due(), sb.run_due());
        let all: Vec<_> = ra.unwrap().into_iter().chain(rb.unwrap()).collect();
        assert_eq!(all.len(), 20, "each due slot is handled by one scheduler");
        started += all
            .iter()
            .filter(|o| matches!(o, SlotOutcome::Started { .. }))
            .count();
        // Let the runs finish before the next slot.
        for o in &all {
            if let SlotOutcome::Started { session_id, .. } = o {
                let _ = a.runtime().wait(*session_id).await;
                let _ = b.runtime().wait(*session_id).await;
            }
        }
    }
    assert_eq!(started, 60);
    let mut sessions = 0;
    for c in w
        .store
        .list_conversations(
            netherbrain_core::store::ConversationQuery::for_owner(w.ada.id).with_limit(200),
        )
        .await
        .unwrap()
        .items
    {
        sessions += w.store.list_sessions(c.id).await.unwrap().len();
    }
    assert_eq!(sessions, 60, "one run per slot");
}

#[tokio::test]
async fn tasks_belong_to_their_owner_and_refuse_bad_input() {
    let w = world().await;
    let service = service(&w, instant());
    let bob = w
        .store
        .create_user(NewUser::new("bob", UserRole::User))
        .await
        .unwrap();
    let ada = Principal::of(&w.ada);
    let bob = Principal::of(&bob);
    let bobs_conversation = service
        .create(
            &bob,
            netherbrain_core::store::NewConversation::new(bob.user_id()),
        )
        .await
        .unwrap();
    let spec = |schedule| TaskSpec::new("t", schedule, w.preset.id, "hi");
    // Below the minimum interval (60 s by default).
    let e = service
        .create_task(&ada, None, spec(TaskSchedule::every(5)))
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::Invalid(_)), "{e:?}");
    let e = service
        .create_task(&ada, None, spec(TaskSchedule::cron("0 25 * * *", "UTC")))
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::Invalid(_)), "{e:?}");
    // Another user's conversation is not a target.
    let e = service
        .create_task(
            &ada,
            None,
            spec(TaskSchedule::every(60)).with_conversation(Some(bobs_conversation.id)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, ServiceError::Store(ref s) if s.is_not_found()),
        "{e:?}"
    );
    // Another user's task is not there; naming another user needs admin.
    let task = service
        .create_task(&ada, None, spec(TaskSchedule::every(60)))
        .await
        .unwrap();
    assert!(service.task(&bob, None, task.id).await.is_err());
    assert!(service.delete_task(&bob, None, task.id).await.is_err());
    assert!(service.run_task(&bob, None, task.id).await.is_err());
    assert!(service.list_tasks(&bob, Some(w.ada.id)).await.is_err());
    // Pausing keeps it; resuming moves the next slot ahead of now.
    let paused = service
        .update_task(&ada, None, task.id, TaskChange::enabled(false))
        .await
        .unwrap();
    assert!(!paused.enabled);
    w.clock.advance(TimeDelta::hours(3));
    assert!(
        Scheduler::new(service.clone())
            .run_due()
            .await
            .unwrap()
            .is_empty()
    );
    let resumed = service
        .update_task(&ada, None, task.id, TaskChange::enabled(true))
        .await
        .unwrap();
    assert_eq!(resumed.next_run_at, w.clock.now() + TimeDelta::seconds(60));
    // Run now: outside the schedule, recorded on the task.
    let handle = service.run_task(&ada, None, task.id).await.unwrap();
    let run = service.runtime().wait(handle.session_id).await.unwrap();
    assert_eq!(run.input[0].text(), "hi");
    let after = service.task(&ada, None, task.id).await.unwrap();
    assert_eq!(after.last_session_id, Some(handle.session_id));
    assert_eq!(after.next_run_at, resumed.next_run_at, "the schedule stays");
}
