//! The test suite every [`StateStore`] backend must pass.
//!
//! Available with the `testing` feature.
//!
//! Each `pub async fn` here checks one behaviour of the contract documented
//! on [`StateStore`] against a **fresh, empty** store and panics with a
//! message naming the broken rule. Backends do not call them one by one:
//! the [`store_conformance_tests!`](crate::store_conformance_tests) macro
//! expands to one `#[tokio::test]` per function, so every behaviour runs in
//! parallel and is reported on its own.
//!
//! # Using it from a backend
//!
//! Enable the `testing` feature in the backend's dev-dependencies, add
//! `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency, and
//! write one integration test file:
//!
//! ```ignore
//! // tests/store_sqlite.rs
//! use std::sync::Arc;
//! use netherbrain_core::store::StateStore;
//!
//! netherbrain_core::store_conformance_tests!(async {
//!     // Called once per test: return a fresh, empty store.
//!     Arc::new(my_backend::SqliteStore::in_memory().await.unwrap()) as Arc<dyn StateStore>
//! });
//! ```
//!
//! The expression is evaluated anew for every test, so a backend that
//! needs a database per test (a temporary file, a fresh Postgres schema)
//! creates it there. The tests are named after the functions below (e.g.
//! `session_busy_while_running`); to run several backends from one file,
//! invoke the macro once per backend inside its own `mod`. For the
//! in-memory store:
//!
//! ```ignore
//! use std::sync::Arc;
//! use netherbrain_core::store::{MemoryStore, StateStore};
//!
//! netherbrain_core::store_conformance_tests!(async {
//!     Arc::new(MemoryStore::new()) as Arc<dyn StateStore>
//! });
//! ```
//!
//! A single function can also be run directly, e.g. while debugging:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use netherbrain_core::store::{conformance, MemoryStore};
//! conformance::user_create_and_get(&MemoryStore::new()).await;
//! # }
//! ```
//!
//! # Timing
//!
//! Where a rule depends on time order (listings by last activity, API keys
//! newest first) the tests sleep a few milliseconds between steps, so
//! backends with millisecond or microsecond timestamps pass too.

// Patches are built the way other crates must build these
// `#[non_exhaustive]` types: `Default` then field assignments.
#![allow(clippy::field_reassign_with_default)]

use std::time::Duration;

use serde_json::Value;

use super::{
    Conversation, Metadata, NewConversation, NewPreset, NewSession, NewUser, NewWorkspace, Preset,
    Session, StateStore, StoreError, StoreResult, User, UserRole, Workspace,
};
use crate::ids::{ConversationId, UserId};
use crate::message::Message;
use crate::preset::PresetConfig;

mod catalog;
mod concurrency;
mod conversations;
mod gateway;
mod memories;
mod providers;
mod sessions;
mod tasks;
mod users;
mod validation;

pub use catalog::*;
pub use concurrency::*;
pub use conversations::*;
pub use gateway::*;
pub use memories::*;
pub use providers::*;
pub use sessions::*;
pub use tasks::*;
pub use users::*;
pub use validation::*;

/// Expands to one test per function of [`store::conformance`], named
/// after it and run against a fresh store.
///
/// `$make` is an expression evaluating to a future whose output is an
/// `Arc<dyn StateStore>`; it is evaluated once per test. The calling crate
/// needs `tokio` (features `macros`, `rt-multi-thread`) as a
/// dev-dependency and `netherbrain-core` with the `testing` feature.
///
/// ```ignore
/// use std::sync::Arc;
/// use netherbrain_core::store::{MemoryStore, StateStore};
///
/// mod memory {
///     use super::*;
///     netherbrain_core::store_conformance_tests!(async {
///         Arc::new(MemoryStore::new()) as Arc<dyn StateStore>
///     });
/// }
/// ```
///
/// `concurrent_create_session_single_winner` runs on a two-worker
/// multi-threaded runtime; every other test on tokio's default test
/// runtime.
///
/// [`store::conformance`]: crate::store::conformance
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@plain $make;
            ping,
            user_create_and_get,
            user_duplicate_username_conflicts,
            user_invalid_input_is_rejected,
            user_update_list_and_count,
            user_not_found,
            user_temporary_password_roundtrips,
            api_key_create_and_lookup,
            api_key_duplicate_prefix_conflicts,
            api_key_list_newest_first,
            api_key_revoke,
            api_key_expiry,
            preset_crud,
            preset_duplicate_name_conflicts,
            preset_invalid_input_is_rejected,
            preset_delete_while_referenced_conflicts,
            workspace_crud,
            workspace_owner_roundtrips,
            workspace_duplicate_name_conflicts,
            workspace_metadata_merge,
            workspace_delete_while_referenced_conflicts,
            conversation_create_and_get,
            conversation_create_requires_references,
            conversation_update_merges_metadata,
            conversation_invalid_update_changes_nothing,
            conversation_status,
            conversation_fork_origin_is_kept,
            conversation_delegated_from_is_kept,
            conversation_reserved_metadata_is_rejected,
            list_orders_by_last_activity,
            list_pages_with_cursor,
            list_owner_isolation,
            list_status_filter,
            list_workspace_filter,
            list_metadata_filter,
            list_rejects_bad_cursor_and_limit,
            search_title_summary_and_messages,
            giant_messages_are_kept_and_searchable,
            search_prefers_title_matches,
            search_owner_isolation,
            search_rejects_bad_input,
            session_create_stores_input,
            session_create_requires_references,
            session_busy_while_running,
            session_finish,
            session_finish_twice_conflicts,
            session_finish_commits_its_tail,
            session_list_and_active,
            session_history_follows_fork,
            session_history_follows_a_chain,
            session_history_deep_chain,
            append_messages_and_events,
            append_rejects_non_increasing_seq,
            append_requires_running_session,
            list_events_after_and_limit,
            recover_interrupts_running_sessions,
            leases_guard_running_sessions,
            mailbox_post_and_take,
            session_usage_filters_by_time_owner_and_preset,
            user_password_hash_is_checked,
            nul_characters_are_rejected,
            workspace_invalid_input_is_rejected,
            append_rejects_seq_above_max,
            search_query_is_trimmed_before_its_length_check,
            search_matches_word_prefixes,
            session_create_requires_preset,
            gateway_bind_chat_and_delivery_mark,
            gateway_pairing_approve_and_expiry,
            gateway_rejects_bad_input,
            provider_crud,
            provider_rejects_bad_input,
            memory_create_get_list_update_delete,
            memory_full_is_a_conflict,
            memory_search_ranks_and_isolates,
            memory_rejects_bad_input,
            task_create_get_list_update_delete,
            task_conflicts_and_references,
            task_rejects_bad_input,
            task_due_and_claim,
        );
        $crate::store_conformance_tests!(@arc $make;
            concurrent_create_session_single_winner,
            concurrent_task_claim_single_winner,
        );
    };
    (@plain $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $name() {
                let store: ::std::sync::Arc<dyn $crate::store::StateStore> = $make.await;
                $crate::store::conformance::$name(&*store).await;
            }
        )*
    };
    (@arc $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store: ::std::sync::Arc<dyn $crate::store::StateStore> = $make.await;
                $crate::store::conformance::$name(store).await;
            }
        )*
    };
}

// ---- helpers shared by the submodules ----

/// A short pause so consecutive timestamps differ on every backend.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

/// A JSON object literal as [`Metadata`]; panics on non-objects.
fn meta(value: Value) -> Metadata {
    match value {
        Value::Object(map) => map,
        other => panic!("test bug: metadata must be an object, got {other}"),
    }
}

/// Unwraps a result the test expects to succeed.
#[track_caller]
fn ok<T>(result: StoreResult<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: expected success, got error: {err}"),
    }
}

/// Unwraps an error the test expects.
#[track_caller]
fn err<T: std::fmt::Debug>(result: StoreResult<T>, what: &str) -> StoreError {
    match result {
        Ok(value) => panic!("{what}: expected an error, got Ok({value:?})"),
        Err(err) => err,
    }
}

#[track_caller]
fn expect_conflict<T: std::fmt::Debug>(result: StoreResult<T>, what: &str) {
    let e = err(result, what);
    assert!(
        matches!(e, StoreError::Conflict(_)),
        "{what}: expected StoreError::Conflict, got {e:?}"
    );
}

#[track_caller]
fn expect_invalid<T: std::fmt::Debug>(result: StoreResult<T>, what: &str) {
    let e = err(result, what);
    assert!(
        matches!(e, StoreError::Invalid(_)),
        "{what}: expected StoreError::Invalid, got {e:?}"
    );
}

#[track_caller]
fn expect_not_found<T: std::fmt::Debug>(result: StoreResult<T>, what: &str) {
    let e = err(result, what);
    assert!(
        e.is_not_found(),
        "{what}: expected StoreError::NotFound, got {e:?}"
    );
}

async fn new_user(store: &dyn StateStore, username: &str) -> User {
    ok(
        store
            .create_user(NewUser::new(username, UserRole::User))
            .await,
        "create_user",
    )
}

async fn new_preset(store: &dyn StateStore, name: &str) -> Preset {
    ok(
        store
            .create_preset(NewPreset::new(
                name,
                PresetConfig::new("openai", "gpt-test"),
            ))
            .await,
        "create_preset",
    )
}

async fn new_workspace(store: &dyn StateStore, name: &str) -> Workspace {
    ok(
        store.create_workspace(NewWorkspace::new(name)).await,
        "create_workspace",
    )
}

async fn new_conversation(store: &dyn StateStore, owner: UserId, title: &str) -> Conversation {
    ok(
        store
            .create_conversation(NewConversation::new(owner).with_title(title))
            .await,
        "create_conversation",
    )
}

async fn start_session(
    store: &dyn StateStore,
    conversation: ConversationId,
    text: &str,
) -> Session {
    ok(
        store
            .create_session(NewSession::new(conversation, vec![Message::user(text)]))
            .await,
        "create_session",
    )
}

/// Ids of a listing, for comparisons.
fn conversation_ids(items: &[Conversation]) -> Vec<ConversationId> {
    items.iter().map(|c| c.id).collect()
}

/// Checks the store answers.
pub async fn ping(store: &dyn StateStore) {
    ok(store.ping().await, "ping");
}
