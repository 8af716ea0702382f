//! How many SQL statements a call runs, counted from sqlx's statement log
//! (target `sqlx::query`), on both backends.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{NewConversation, NewSession, NewUser, SessionFinish, UserRole};
use netherbrain_core::{Message, SessionId, SessionStatus};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, filter::LevelFilter};

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

/// Counts sqlx's per-statement events.
struct Counter;

impl<S: tracing::Subscriber> Layer<S> for Counter {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A chain of `links` committed sessions; returns the last.
async fn chain(store: &dyn StateStore, links: usize) -> SessionId {
    let user = store
        .create_user(NewUser::new("owner", UserRole::User))
        .await
        .unwrap();
    let conversation = store
        .create_conversation(NewConversation::new(user.id))
        .await
        .unwrap();
    let mut parent = None;
    for i in 0..links {
        let session = store
            .create_session(
                NewSession::new(conversation.id, vec![Message::user(format!("q{i}"))])
                    .with_parent(parent),
            )
            .await
            .unwrap();
        store
            .finish_session(session.id, SessionFinish::new(SessionStatus::Committed))
            .await
            .unwrap();
        parent = Some(session.id);
    }
    parent.unwrap()
}

/// Statements `session_history` runs for a chain of 50 sessions.
async fn history_statements(store: Arc<dyn StateStore>) -> usize {
    let last = chain(store.as_ref(), 50).await;
    // SQLite's worker thread logs a statement just after its result is
    // back: let the log settle around the call.
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(100));
    settle().await;
    let before = STATEMENTS.load(Ordering::SeqCst);
    let history = store.session_history(last).await.unwrap();
    settle().await;
    let count = STATEMENTS.load(Ordering::SeqCst) - before;
    assert_eq!(history.len(), 50);
    count
}

// One test, so no other test's statements are counted.
#[tokio::test]
async fn session_history_is_one_statement() {
    tracing_subscriber::registry()
        .with(Counter.with_filter(LevelFilter::DEBUG))
        .init();
    assert_eq!(
        history_statements(support::sqlite().await).await,
        1,
        "SQLite"
    );
    assert_eq!(
        history_statements(support::postgres().await).await,
        1,
        "Postgres"
    );
}
