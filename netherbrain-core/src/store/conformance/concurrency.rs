//! Behaviour under concurrent calls.

use std::sync::Arc;

use super::{new_conversation, new_user, ok};
use crate::ids::SessionId;
use crate::message::Message;
use crate::store::{NewSession, StateStore, StoreError};

/// Eight concurrent `create_session` calls on one conversation: exactly
/// one succeeds, every other is `Busy` naming the winner, and only the
/// winner is stored.
///
/// Takes an `Arc` because the calls run on spawned tasks; run it on a
/// multi-threaded runtime.
pub async fn concurrent_create_session_single_winner(store: Arc<dyn StateStore>) {
    const TASKS: usize = 8;
    let user = new_user(&*store, "racer").await;
    let conversation = new_conversation(&*store, user.id, "race").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .create_session(NewSession::new(
                    conversation.id,
                    vec![Message::user(format!("attempt {i}"))],
                ))
                .await
        }));
    }
    let mut winners: Vec<SessionId> = Vec::new();
    let mut busy: Vec<SessionId> = Vec::new();
    for task in tasks {
        match task.await.expect("create_session task panicked") {
            Ok(session) => winners.push(session.id),
            Err(StoreError::Busy { active }) => busy.push(active),
            Err(other) => panic!("concurrent create_session: unexpected error {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent create_session may succeed, got {winners:?}"
    );
    assert_eq!(busy.len(), TASKS - 1, "every other call must be Busy");
    assert!(
        busy.iter().all(|id| *id == winners[0]),
        "Busy must name the running session"
    );
    let sessions = ok(store.list_sessions(conversation.id).await, "list_sessions");
    assert_eq!(
        sessions.iter().map(|s| s.id).collect::<Vec<_>>(),
        winners,
        "only the winner is stored"
    );
}
