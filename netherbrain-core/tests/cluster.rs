//! Runtimes sharing one store: a run on one is read whole from another
//! (live through a cluster, or by reading the store without one), and
//! commands sent to another reach it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use netherbrain_core::agent::Agent;
use netherbrain_core::cluster::{Cluster, LocalCluster, RunCommand};
use netherbrain_core::runtime::{Runtime, RuntimeError, StartRun};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{MemoryStore, NewConversation, NewUser, UserRole};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::{AgentEvent, ConversationId, EventEnvelope, Message, SessionStatus};

async fn conversation(store: &MemoryStore) -> ConversationId {
    let user = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    store
        .create_conversation(NewConversation::new(user.id))
        .await
        .unwrap()
        .id
}

fn agent(response: ScriptedResponse, delay: Duration) -> Arc<Agent> {
    let provider = Arc::new(ScriptedProvider::new([response]).with_event_delay(delay));
    Arc::new(Agent::builder(provider, "m").build())
}

fn long_answer() -> ScriptedResponse {
    let mut builder = ScriptedResponse::builder();
    for i in 0..20 {
        builder = builder.text(format!("word {i} "));
    }
    builder.build()
}

fn json(events: &[EventEnvelope]) -> Vec<String> {
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect()
}

/// Two runtimes on one store; joined to one cluster when `cluster`.
fn pair(store: &Arc<MemoryStore>, cluster: bool) -> (Runtime, Runtime) {
    let a = Runtime::new(store.clone());
    let b = Runtime::new(store.clone());
    if cluster {
        let shared: Arc<dyn Cluster> = Arc::new(LocalCluster::new());
        a.join_cluster(shared.clone());
        b.join_cluster(shared);
    }
    (a, b)
}

async fn read_from_both(cluster: bool) {
    let store = Arc::new(MemoryStore::new());
    let id = conversation(&store).await;
    let (a, b) = pair(&store, cluster);
    let run = a
        .start(StartRun::new(
            id,
            agent(long_answer(), Duration::from_millis(10)),
            vec![Message::user("hi")],
        ))
        .await
        .unwrap();
    // B attaches while the run goes, from the start and from a resume point.
    let from_b = b.subscribe(run.session_id, 0).await.unwrap();
    let resumed_b = b.subscribe(run.session_id, 3).await.unwrap();
    let from_a = a.subscribe(run.session_id, 0).await.unwrap();
    let (from_a, from_b, resumed_b): (Vec<_>, Vec<_>, Vec<_>) =
        tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(from_a.collect(), from_b.collect(), resumed_b.collect())
        })
        .await
        .unwrap();
    assert!(from_a.len() > 20, "{} events", from_a.len());
    assert!(matches!(
        from_a.last().map(|e| &e.event),
        Some(AgentEvent::RunFinished { .. })
    ));
    assert_eq!(json(&from_a), json(&from_b), "B reads what A shows");
    assert_eq!(json(&from_a[3..]), json(&resumed_b), "a resume on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_read_whole_from_another_runtime_through_the_cluster() {
    read_from_both(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cluster_another_runtime_follows_the_run_in_the_store() {
    read_from_both(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_sent_to_another_runtime_reach_the_run() {
    let store = Arc::new(MemoryStore::new());
    let id = conversation(&store).await;
    let (a, b) = pair(&store, true);
    let hanging = ScriptedResponse::builder().text("thinking").hang().build();
    let run = a
        .start(StartRun::new(
            id,
            agent(hanging, Duration::ZERO),
            vec![Message::user("hi")],
        ))
        .await
        .unwrap();
    let session = store.get_session(run.session_id).await.unwrap();
    assert!(!b.is_running(run.session_id));
    b.command_elsewhere(
        &session,
        RunCommand::Steer {
            text: "be brief".into(),
        },
    )
    .await
    .unwrap();
    let blank = b
        .command_elsewhere(&session, RunCommand::Steer { text: " ".into() })
        .await;
    assert!(
        matches!(blank, Err(RuntimeError::InvalidInput(_))),
        "{blank:?}"
    );
    b.command_elsewhere(&session, RunCommand::Interrupt)
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), a.wait(run.session_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.status, SessionStatus::Interrupted);
    // The run has ended: a command for it says so.
    let late = b.command_elsewhere(&ended, RunCommand::Interrupt).await;
    assert!(matches!(late, Err(RuntimeError::NotRunning(_))), "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cluster_a_run_elsewhere_is_out_of_reach() {
    let store = Arc::new(MemoryStore::new());
    let id = conversation(&store).await;
    let (a, b) = pair(&store, false);
    let hanging = ScriptedResponse::builder().text("thinking").hang().build();
    let run = a
        .start(StartRun::new(
            id,
            agent(hanging, Duration::ZERO),
            vec![Message::user("hi")],
        ))
        .await
        .unwrap();
    let session = store.get_session(run.session_id).await.unwrap();
    let refused = b.command_elsewhere(&session, RunCommand::Interrupt).await;
    assert!(
        matches!(refused, Err(RuntimeError::RunningElsewhere(_))),
        "{refused:?}"
    );
    a.interrupt(run.session_id).unwrap();
}
