//! Sessions, the session log, recovery and the mailbox.

use serde_json::json;

use super::{
    err, expect_conflict, expect_invalid, expect_not_found, new_conversation, new_preset, new_user,
    ok, start_session, tick,
};
use crate::event::{AgentEvent, EventEnvelope};
use crate::ids::{ConversationId, EventSeq, SessionId};
use crate::message::{Message, ToolCall};
use crate::session::SessionStatus;
use crate::store::{
    NewMailboxEntry, NewSession, SessionAppend, SessionFinish, StateStore, StoreError,
};
use crate::usage::{Usage, UsageByModel};

fn text_event(session: SessionId, seq: EventSeq, delta: &str) -> EventEnvelope {
    EventEnvelope::new(
        session,
        seq,
        AgentEvent::TextMessageContent {
            message_id: "m1".into(),
            delta: delta.into(),
        },
    )
}

/// `(seq, event)` pairs, for comparisons that ignore timestamp precision.
fn seq_events(events: &[EventEnvelope]) -> Vec<(EventSeq, AgentEvent)> {
    events.iter().map(|e| (e.seq, e.event.clone())).collect()
}

/// A new session is `running`, keeps the caller's id, parent and preset,
/// and its input is readable as its first messages as soon as
/// `create_session` returns.
pub async fn session_create_stores_input(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let preset = new_preset(store, "p").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let input = vec![
        Message::system("context"),
        Message::user("What is the capital of France?"),
    ];
    let id = SessionId::new();
    let session = ok(
        store
            .create_session(
                NewSession::new(conversation.id, input.clone())
                    .with_id(id)
                    .with_preset(Some(preset.id)),
            )
            .await,
        "create_session",
    );
    assert_eq!(session.id, id, "the caller's id must be used");
    assert_eq!(session.conversation_id, conversation.id);
    assert_eq!(
        session.status,
        SessionStatus::Running,
        "sessions start running"
    );
    assert_eq!(session.preset_id, Some(preset.id));
    assert_eq!(session.parent_session_id, None);
    assert_eq!(session.input, input);
    assert_eq!(session.finished_at, None);
    assert_eq!(session.final_message, None);
    assert!(session.usage.is_empty());
    assert_eq!(
        ok(store.session_messages(id).await, "session_messages"),
        input,
        "the input must be stored as the session's first messages"
    );
    assert_eq!(ok(store.get_session(id).await, "get_session"), session);
    assert_eq!(ok(store.last_event_seq(id).await, "last_event_seq"), 0);
    assert!(ok(store.list_events(id, 0, 100).await, "list_events").is_empty());
    expect_not_found(
        store.get_session(SessionId::new()).await,
        "get_session(unknown)",
    );
    expect_not_found(
        store.session_messages(SessionId::new()).await,
        "session_messages(unknown)",
    );
}

/// Sessions need an existing conversation and parent; ids are unique.
pub async fn session_create_requires_references(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    expect_not_found(
        store
            .create_session(NewSession::new(
                ConversationId::new(),
                vec![Message::user("x")],
            ))
            .await,
        "create_session in an unknown conversation",
    );
    expect_not_found(
        store
            .create_session(
                NewSession::new(conversation.id, vec![Message::user("x")])
                    .with_parent(Some(SessionId::new())),
            )
            .await,
        "create_session with an unknown parent",
    );
    assert!(
        ok(store.list_sessions(conversation.id).await, "list_sessions").is_empty(),
        "failed creates must not store a session"
    );
    let first = start_session(store, conversation.id, "one").await;
    ok(
        store
            .finish_session(first.id, SessionFinish::new(SessionStatus::Committed))
            .await,
        "finish_session",
    );
    expect_conflict(
        store
            .create_session(NewSession::new(conversation.id, vec![]).with_id(first.id))
            .await,
        "create_session with a taken id",
    );
}

/// While a session runs, another `create_session` is `Busy` naming it and
/// stores nothing.
pub async fn session_busy_while_running(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let running = start_session(store, conversation.id, "first").await;
    let second = SessionId::new();
    let e = err(
        store
            .create_session(
                NewSession::new(conversation.id, vec![Message::user("second")]).with_id(second),
            )
            .await,
        "create_session while one runs",
    );
    assert_eq!(
        e,
        StoreError::Busy { active: running.id },
        "the error must name the running session"
    );
    expect_not_found(store.get_session(second).await, "the refused session");
    assert_eq!(
        ok(store.list_sessions(conversation.id).await, "list_sessions").len(),
        1
    );
    // Another conversation is not affected.
    let other = new_conversation(store, user.id, "other").await;
    start_session(store, other.id, "parallel").await;
}

/// Finishing stores the outcome and `finished_at`, frees the conversation
/// for the next session; finishing as a non-terminal status is `Invalid`.
pub async fn session_finish(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let session = start_session(store, conversation.id, "hi").await;
    expect_invalid(
        store
            .finish_session(session.id, SessionFinish::new(SessionStatus::Running))
            .await,
        "finish_session as running",
    );
    tick().await;
    let mut usage = UsageByModel::default();
    usage.add(
        "gpt-test",
        Usage {
            input_tokens: 10,
            output_tokens: 5,
            requests: 1,
            ..Usage::default()
        },
    );
    let call = ToolCall::new("call-1", "shell", json!({"cmd": "ls"}));
    let mut finish = SessionFinish::new(SessionStatus::AwaitingToolResults);
    finish.final_message = Some("Let me check.".into());
    finish.deferred_tool_calls = vec![call.clone()];
    finish.usage = usage.clone();
    let finished = ok(
        store.finish_session(session.id, finish).await,
        "finish_session",
    );
    assert_eq!(finished.status, SessionStatus::AwaitingToolResults);
    assert_eq!(finished.final_message.as_deref(), Some("Let me check."));
    assert_eq!(finished.deferred_tool_calls, [call]);
    assert_eq!(finished.usage, usage);
    let finished_at = finished
        .finished_at
        .expect("finish_session must set finished_at");
    assert!(finished_at > session.created_at);
    assert_eq!(
        ok(store.get_session(session.id).await, "get_session"),
        finished
    );
    assert_eq!(
        ok(
            store.active_session(conversation.id).await,
            "active_session"
        ),
        None,
        "a finished session is not active"
    );

    let next = start_session(store, conversation.id, "again").await;
    let mut failed = SessionFinish::new(SessionStatus::Failed);
    failed.error = Some("provider exploded".into());
    let failed = ok(
        store.finish_session(next.id, failed).await,
        "finish as failed",
    );
    assert_eq!(failed.status, SessionStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("provider exploded"));
}

/// Finishing a session that is not running is a conflict and changes
/// nothing; unknown sessions are `NotFound`.
pub async fn session_finish_twice_conflicts(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let session = start_session(store, conversation.id, "hi").await;
    let first = ok(
        store
            .finish_session(session.id, SessionFinish::new(SessionStatus::Committed))
            .await,
        "finish_session",
    );
    expect_conflict(
        store
            .finish_session(session.id, SessionFinish::new(SessionStatus::Failed))
            .await,
        "finishing a finished session",
    );
    assert_eq!(
        ok(store.get_session(session.id).await, "get_session"),
        first,
        "a conflicting finish must change nothing"
    );
    expect_not_found(
        store
            .finish_session(
                SessionId::new(),
                SessionFinish::new(SessionStatus::Committed),
            )
            .await,
        "finish_session(unknown)",
    );
}

/// `list_sessions` is oldest first; `active_session` names the running
/// one; unknown conversations are `NotFound`.
pub async fn session_list_and_active(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    assert_eq!(
        ok(
            store.active_session(conversation.id).await,
            "active_session"
        ),
        None
    );
    let mut ids = Vec::new();
    for i in 0..3 {
        let s = start_session(store, conversation.id, &format!("turn {i}")).await;
        assert_eq!(
            ok(
                store.active_session(conversation.id).await,
                "active_session"
            )
            .map(|s| s.id),
            Some(s.id),
            "active_session must name the running session"
        );
        ok(
            store
                .finish_session(s.id, SessionFinish::new(SessionStatus::Committed))
                .await,
            "finish_session",
        );
        assert_eq!(
            ok(
                store.latest_session(conversation.id).await,
                "latest_session"
            )
            .map(|s| (s.id, s.status)),
            Some((s.id, SessionStatus::Committed)),
            "latest_session must be the newest session, finished or not"
        );
        ids.push(s.id);
        tick().await;
    }
    let listed: Vec<SessionId> = ok(store.list_sessions(conversation.id).await, "list_sessions")
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, ids, "list_sessions must be oldest first");
    expect_not_found(
        store.list_sessions(ConversationId::new()).await,
        "list_sessions(unknown)",
    );
    expect_not_found(
        store.active_session(ConversationId::new()).await,
        "active_session(unknown)",
    );
    assert_eq!(
        ok(
            store.latest_session(ConversationId::new()).await,
            "latest_session(unknown)"
        ),
        None,
        "an unknown conversation has no latest session"
    );
}

/// `session_history` follows parents, also into another conversation
/// (a fork): ancestors' messages oldest first, then the session's own.
pub async fn session_history_follows_fork(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let original = new_conversation(store, user.id, "original").await;
    let s1 = start_session(store, original.id, "q1").await;
    ok(
        store
            .append(
                s1.id,
                SessionAppend::new(vec![Message::assistant("a1")], vec![]),
            )
            .await,
        "append",
    );
    ok(
        store
            .finish_session(s1.id, SessionFinish::new(SessionStatus::Committed))
            .await,
        "finish",
    );
    let s2 = ok(
        store
            .create_session(
                NewSession::new(original.id, vec![Message::user("q2")]).with_parent(Some(s1.id)),
            )
            .await,
        "create_session with parent",
    );
    ok(
        store
            .append(
                s2.id,
                SessionAppend::new(vec![Message::assistant("a2")], vec![]),
            )
            .await,
        "append",
    );
    ok(
        store
            .finish_session(s2.id, SessionFinish::new(SessionStatus::Committed))
            .await,
        "finish",
    );
    // Fork from s1 into a new conversation.
    let fork = new_conversation(store, user.id, "fork").await;
    let f1 = ok(
        store
            .create_session(
                NewSession::new(fork.id, vec![Message::user("q2-alt")]).with_parent(Some(s1.id)),
            )
            .await,
        "create_session forking from another conversation",
    );
    assert_eq!(f1.parent_session_id, Some(s1.id));

    let texts = |messages: Vec<Message>| messages.iter().map(Message::text).collect::<Vec<_>>();
    assert_eq!(
        texts(ok(store.session_history(s2.id).await, "session_history s2")),
        ["q1", "a1", "q2", "a2"],
        "history is the parent's messages, then the session's own"
    );
    assert_eq!(
        texts(ok(
            store.session_history(f1.id).await,
            "session_history fork"
        )),
        ["q1", "a1", "q2-alt"],
        "a fork sees its parent's history, not its siblings'"
    );
    assert_eq!(
        texts(ok(
            store.session_history(s1.id).await,
            "session_history root"
        )),
        ["q1", "a1"]
    );
    assert_eq!(
        texts(ok(
            store.session_messages(f1.id).await,
            "session_messages fork"
        )),
        ["q2-alt"],
        "session_messages holds only the session's own messages"
    );
    expect_not_found(
        store.session_history(SessionId::new()).await,
        "session_history(unknown)",
    );
}

/// Appends add messages after the input and events in order.
pub async fn append_messages_and_events(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let s = start_session(store, conversation.id, "hi").await;
    let first = SessionAppend::new(
        vec![Message::assistant("Hello")],
        vec![text_event(s.id, 1, "Hel"), text_event(s.id, 2, "lo")],
    );
    ok(store.append(s.id, first.clone()).await, "append");
    ok(
        store.append(s.id, SessionAppend::default()).await,
        "an empty append",
    );
    let second = SessionAppend::new(
        vec![Message::user("more"), Message::assistant("sure")],
        vec![text_event(s.id, 3, "sure")],
    );
    ok(store.append(s.id, second.clone()).await, "append");
    let texts: Vec<String> = ok(store.session_messages(s.id).await, "session_messages")
        .iter()
        .map(Message::text)
        .collect();
    assert_eq!(
        texts,
        ["hi", "Hello", "more", "sure"],
        "messages in append order"
    );
    let events = ok(store.list_events(s.id, 0, 100).await, "list_events");
    let mut want = first.events.clone();
    want.extend(second.events.clone());
    assert_eq!(seq_events(&events), seq_events(&want), "events in order");
    assert!(events.iter().all(|e| e.session_id == s.id));
    assert_eq!(ok(store.last_event_seq(s.id).await, "last_event_seq"), 3);

    // Gaps are allowed as long as numbers increase.
    ok(
        store
            .append(
                s.id,
                SessionAppend::new(vec![], vec![text_event(s.id, 10, "x")]),
            )
            .await,
        "append with a gap",
    );
    assert_eq!(ok(store.last_event_seq(s.id).await, "last_event_seq"), 10);
    expect_not_found(
        store
            .append(SessionId::new(), SessionAppend::default())
            .await,
        "append to an unknown session",
    );
}

/// An append whose event numbers do not increase (against the stored ones
/// or within the batch) is a conflict and stores nothing, messages
/// included.
pub async fn append_rejects_non_increasing_seq(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let s = start_session(store, conversation.id, "hi").await;
    ok(
        store
            .append(
                s.id,
                SessionAppend::new(
                    vec![Message::assistant("ok")],
                    vec![text_event(s.id, 1, "a"), text_event(s.id, 2, "b")],
                ),
            )
            .await,
        "append",
    );
    let cases = [
        (vec![text_event(s.id, 2, "dup")], "a stored number"),
        (vec![text_event(s.id, 1, "old")], "a lower number"),
        (
            vec![text_event(s.id, 3, "c"), text_event(s.id, 3, "c again")],
            "a duplicate within the batch",
        ),
        (
            vec![text_event(s.id, 5, "c"), text_event(s.id, 4, "back")],
            "a decrease within the batch",
        ),
    ];
    for (events, what) in cases {
        expect_conflict(
            store
                .append(
                    s.id,
                    SessionAppend::new(vec![Message::assistant("must not be stored")], events),
                )
                .await,
            &format!("append with {what}"),
        );
    }
    assert_eq!(
        ok(store.session_messages(s.id).await, "session_messages").len(),
        2,
        "a rejected append must not store its messages"
    );
    assert_eq!(
        ok(store.list_events(s.id, 0, 100).await, "list_events").len(),
        2,
        "a rejected append must not store any event"
    );
    assert_eq!(ok(store.last_event_seq(s.id).await, "last_event_seq"), 2);

    // An event of another session is invalid.
    expect_invalid(
        store
            .append(
                s.id,
                SessionAppend::new(vec![], vec![text_event(SessionId::new(), 3, "x")]),
            )
            .await,
        "append with an event of another session",
    );
}

/// Only a running session accepts appends.
pub async fn append_requires_running_session(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let s = start_session(store, conversation.id, "hi").await;
    ok(
        store
            .finish_session(s.id, SessionFinish::new(SessionStatus::Interrupted))
            .await,
        "finish_session",
    );
    expect_conflict(
        store
            .append(
                s.id,
                SessionAppend::new(
                    vec![Message::assistant("late")],
                    vec![text_event(s.id, 1, "x")],
                ),
            )
            .await,
        "append to a finished session",
    );
    assert_eq!(
        ok(store.session_messages(s.id).await, "session_messages").len(),
        1,
        "nothing may be appended to a finished session"
    );
    assert_eq!(ok(store.last_event_seq(s.id).await, "last_event_seq"), 0);
}

/// `list_events` returns events strictly after `after`, at most `limit`.
pub async fn list_events_after_and_limit(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let s = start_session(store, conversation.id, "hi").await;
    let events: Vec<EventEnvelope> = (1..=10)
        .map(|i| text_event(s.id, i, &i.to_string()))
        .collect();
    ok(
        store
            .append(s.id, SessionAppend::new(vec![], events[..4].to_vec()))
            .await,
        "append",
    );
    ok(
        store
            .append(s.id, SessionAppend::new(vec![], events[4..].to_vec()))
            .await,
        "append",
    );
    let seqs = |events: Vec<EventEnvelope>| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(ok(store.list_events(s.id, 0, 100).await, "list_events")),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(ok(store.list_events(s.id, 3, 4).await, "list_events")),
        [4, 5, 6, 7],
        "after is exclusive, limit caps"
    );
    assert_eq!(
        seqs(ok(store.list_events(s.id, 8, 100).await, "list_events")),
        [9, 10]
    );
    assert!(ok(store.list_events(s.id, 10, 100).await, "list_events").is_empty());
    assert!(ok(store.list_events(s.id, 99, 100).await, "list_events").is_empty());
    let got = ok(store.list_events(s.id, 0, 1).await, "list_events");
    assert_eq!(
        seq_events(&got),
        seq_events(&events[..1]),
        "events round-trip"
    );
    assert_eq!(ok(store.last_event_seq(s.id).await, "last_event_seq"), 10);
    expect_not_found(
        store.list_events(SessionId::new(), 0, 10).await,
        "list_events(unknown)",
    );
    expect_not_found(
        store.last_event_seq(SessionId::new()).await,
        "last_event_seq(unknown)",
    );
}

/// Recovery marks every running session interrupted (with `finished_at`)
/// and returns their ids; finished sessions are untouched; the
/// conversations accept new sessions afterwards.
pub async fn recover_interrupts_running_sessions(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let c1 = new_conversation(store, user.id, "c1").await;
    let c2 = new_conversation(store, user.id, "c2").await;
    let c3 = new_conversation(store, user.id, "c3").await;
    let r1 = start_session(store, c1.id, "one").await;
    let r2 = start_session(store, c2.id, "two").await;
    let done = start_session(store, c3.id, "three").await;
    let done = ok(
        store
            .finish_session(done.id, SessionFinish::new(SessionStatus::Committed))
            .await,
        "finish_session",
    );
    ok(
        store
            .append(
                r1.id,
                SessionAppend::new(vec![Message::assistant("partial")], vec![]),
            )
            .await,
        "append",
    );

    let mut recovered = ok(
        store.recover_sessions(chrono::Utc::now()).await,
        "recover_sessions",
    );
    recovered.sort();
    let mut want = vec![r1.id, r2.id];
    want.sort();
    assert_eq!(
        recovered, want,
        "recover_sessions must return the running sessions"
    );
    for id in [r1.id, r2.id] {
        let s = ok(store.get_session(id).await, "get_session");
        assert_eq!(s.status, SessionStatus::Interrupted);
        assert!(
            s.finished_at.is_some(),
            "recovered sessions get finished_at"
        );
    }
    assert_eq!(
        ok(store.get_session(done.id).await, "get_session"),
        done,
        "committed sessions are untouched"
    );
    assert_eq!(
        ok(store.session_messages(r1.id).await, "session_messages").len(),
        2,
        "what a recovered session produced is kept"
    );
    assert!(
        ok(
            store.recover_sessions(chrono::Utc::now()).await,
            "recover_sessions again"
        )
        .is_empty(),
        "a second recovery finds nothing"
    );
    start_session(store, c1.id, "after recovery").await;
}

/// Posted entries are taken oldest first, marked delivered, and taken only
/// once; other conversations' entries stay.
pub async fn mailbox_post_and_take(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let c = new_conversation(store, user.id, "c").await;
    let other = new_conversation(store, user.id, "other").await;
    let source = start_session(store, other.id, "subagent").await;
    assert!(ok(store.take_mailbox(c.id).await, "take_mailbox").is_empty());

    let first = ok(
        store
            .post_mailbox(NewMailboxEntry::new(
                c.id,
                Some(source.id),
                json!({"result": 1}),
            ))
            .await,
        "post_mailbox",
    );
    assert_eq!(first.conversation_id, c.id);
    assert_eq!(first.source_session_id, Some(source.id));
    assert_eq!(first.content, json!({"result": 1}));
    assert_eq!(first.delivered_at, None);
    tick().await;
    ok(
        store
            .post_mailbox(NewMailboxEntry::new(c.id, None, json!("second")))
            .await,
        "post_mailbox",
    );
    ok(
        store
            .post_mailbox(NewMailboxEntry::new(other.id, None, json!("elsewhere")))
            .await,
        "post_mailbox",
    );

    let taken = ok(store.take_mailbox(c.id).await, "take_mailbox");
    let contents: Vec<_> = taken.iter().map(|e| e.content.clone()).collect();
    assert_eq!(
        contents,
        [json!({"result": 1}), json!("second")],
        "oldest first"
    );
    assert_eq!(taken[0].id, first.id);
    assert!(
        taken.iter().all(|e| e.delivered_at.is_some()),
        "taken entries are marked delivered"
    );
    assert!(
        ok(store.take_mailbox(c.id).await, "take_mailbox again").is_empty(),
        "entries are taken only once"
    );
    assert_eq!(
        ok(store.take_mailbox(other.id).await, "take_mailbox other").len(),
        1,
        "other conversations keep their entries"
    );
    expect_not_found(
        store
            .post_mailbox(NewMailboxEntry::new(ConversationId::new(), None, json!(1)))
            .await,
        "post_mailbox to an unknown conversation",
    );
    expect_not_found(
        store.take_mailbox(ConversationId::new()).await,
        "take_mailbox(unknown)",
    );
}

/// Runs `links` sessions in `conversation`, each the child of the one
/// before (the first the child of `parent`), each with input
/// `"{label}{i}"` and an answer, and returns the last.
async fn chain(
    store: &dyn StateStore,
    conversation: ConversationId,
    parent: Option<SessionId>,
    label: &str,
    links: usize,
) -> SessionId {
    let mut parent = parent;
    for i in 0..links {
        let session = ok(
            store
                .create_session(
                    NewSession::new(conversation, vec![Message::user(format!("{label}{i}"))])
                        .with_parent(parent),
                )
                .await,
            "create_session in a chain",
        );
        ok(
            store
                .append(
                    session.id,
                    SessionAppend::new(vec![Message::assistant(format!("re {label}{i}"))], vec![]),
                )
                .await,
            "append in a chain",
        );
        ok(
            store
                .finish_session(session.id, SessionFinish::new(SessionStatus::Committed))
                .await,
            "finish in a chain",
        );
        parent = Some(session.id);
    }
    parent.unwrap_or_else(|| panic!("test bug: a chain needs at least one link"))
}

/// A chain of several sessions across a fork, with a session that has no
/// messages in the middle: its history is every ancestor's messages, root
/// first, each session's in order.
pub async fn session_history_follows_a_chain(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let original = new_conversation(store, user.id, "original").await;
    let third = chain(store, original.id, None, "a", 3).await;
    // A run without input or output (e.g. a resume that was interrupted).
    let empty = ok(
        store
            .create_session(NewSession::new(original.id, vec![]).with_parent(Some(third)))
            .await,
        "create_session without input",
    );
    ok(
        store
            .finish_session(empty.id, SessionFinish::new(SessionStatus::Interrupted))
            .await,
        "finish",
    );
    let fork = new_conversation(store, user.id, "fork").await;
    let last = chain(store, fork.id, Some(empty.id), "b", 2).await;

    let texts = |messages: Vec<Message>| messages.iter().map(Message::text).collect::<Vec<_>>();
    assert_eq!(
        texts(ok(store.session_history(last).await, "session_history")),
        [
            "a0", "re a0", "a1", "re a1", "a2", "re a2", "b0", "re b0", "b1", "re b1"
        ],
        "history is the chain's messages, root first"
    );
    assert!(
        ok(store.session_history(empty.id).await, "session_history")
            .iter()
            .map(Message::text)
            .eq(["a0", "re a0", "a1", "re a1", "a2", "re a2"]),
        "a session without messages sees its ancestors' history"
    );
}

/// A chain of 300 sessions gives the whole history, in order.
pub async fn session_history_deep_chain(store: &dyn StateStore) {
    const LINKS: usize = 300;
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "deep").await;
    let last = chain(store, conversation.id, None, "q", LINKS).await;
    let history = ok(store.session_history(last).await, "session_history");
    let expected: Vec<String> = (0..LINKS)
        .flat_map(|i| [format!("q{i}"), format!("re q{i}")])
        .collect();
    assert_eq!(
        history.iter().map(Message::text).collect::<Vec<_>>(),
        expected,
        "a deep chain's history is complete and in order"
    );
}

/// A finish's tail (the run's last messages and events) commits with the
/// status change; a tail that breaks the log's rules changes nothing, and
/// the session keeps running.
pub async fn session_finish_commits_its_tail(store: &dyn StateStore) {
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let session = start_session(store, conversation.id, "hi").await;
    ok(
        store
            .append(
                session.id,
                SessionAppend::new(vec![], vec![text_event(session.id, 1, "a")]),
            )
            .await,
        "append",
    );
    // Out of order: refused, nothing written, still running.
    let bad = SessionFinish::new(SessionStatus::Committed).with_tail(SessionAppend::new(
        vec![Message::assistant("lost")],
        vec![text_event(session.id, 1, "again")],
    ));
    expect_conflict(
        store.finish_session(session.id, bad).await,
        "finish_session with an out-of-order tail",
    );
    let still = ok(store.get_session(session.id).await, "get_session");
    assert_eq!(
        still.status,
        SessionStatus::Running,
        "a refused finish changes nothing"
    );
    assert_eq!(
        ok(store.session_messages(session.id).await, "session_messages").len(),
        1,
        "a refused tail writes no message"
    );
    // Another session's events are invalid.
    let foreign = SessionFinish::new(SessionStatus::Committed).with_tail(SessionAppend::new(
        vec![],
        vec![text_event(SessionId::new(), 2, "x")],
    ));
    expect_invalid(
        store.finish_session(session.id, foreign).await,
        "finish_session with another session's event",
    );

    let finish = SessionFinish::new(SessionStatus::Committed).with_tail(SessionAppend::new(
        vec![Message::assistant("done")],
        vec![
            text_event(session.id, 2, "b"),
            text_event(session.id, 3, "c"),
        ],
    ));
    let finished = ok(
        store.finish_session(session.id, finish).await,
        "finish_session",
    );
    assert_eq!(finished.status, SessionStatus::Committed);
    let messages = ok(store.session_messages(session.id).await, "session_messages");
    assert_eq!(
        messages.iter().map(Message::text).collect::<Vec<_>>(),
        ["hi", "done"],
        "the tail's messages follow the session's own"
    );
    let events = ok(store.list_events(session.id, 0, 100).await, "list_events");
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3],
        "the tail's events are stored"
    );
    assert_eq!(
        ok(store.last_event_seq(session.id).await, "last_event_seq"),
        3
    );
    let history = ok(store.session_history(session.id).await, "session_history");
    assert_eq!(history.len(), 2);
}

/// Leases: a session under a live lease is left alone by recovery, its
/// owner (only) renews it, and once it expires recovery interrupts it and
/// appends a terminal `RUN_FINISHED` (interrupted) after its last event.
pub async fn leases_guard_running_sessions(store: &dyn StateStore) {
    use crate::store::SessionLease;
    use chrono::{Duration, Utc};
    let user = new_user(store, "owner").await;
    let conversation = new_conversation(store, user.id, "c").await;
    let now = Utc::now();
    let session = ok(
        store
            .create_session(
                NewSession::new(conversation.id, vec![Message::user("hi")])
                    .with_lease(SessionLease::new("process-a", now + Duration::seconds(30))),
            )
            .await,
        "create_session with a lease",
    );
    let lease = session.lease.clone().expect("the lease is stored");
    assert_eq!(lease.owner, "process-a");
    assert_eq!(
        ok(store.get_session(session.id).await, "get_session").lease,
        Some(lease.clone()),
        "the lease reads back"
    );
    ok(
        store
            .append(
                session.id,
                SessionAppend::new(
                    vec![],
                    vec![
                        text_event(session.id, 1, "a"),
                        text_event(session.id, 2, "b"),
                    ],
                ),
            )
            .await,
        "append",
    );
    assert!(
        ok(store.expired_sessions(now).await, "expired_sessions").is_empty(),
        "a live lease has not expired"
    );
    assert!(
        ok(store.recover_sessions(now).await, "recover_sessions").is_empty(),
        "a live lease is not recovered"
    );
    // Only the owner renews.
    assert!(
        ok(
            store
                .renew_leases("process-b", &[session.id], now + Duration::seconds(60))
                .await,
            "renew_leases by another"
        )
        .is_empty()
    );
    let later = now + Duration::seconds(120);
    assert_eq!(
        ok(
            store
                .renew_leases("process-a", &[session.id, SessionId::new()], later)
                .await,
            "renew_leases"
        ),
        [session.id],
        "the owner's running session is renewed; unknown ids are skipped"
    );
    assert!(
        ok(
            store.recover_sessions(now + Duration::seconds(90)).await,
            "recover_sessions"
        )
        .is_empty(),
        "a renewed lease is not recovered"
    );
    // Expired: listed without change, then recovered, with a terminal
    // event after the last one.
    assert_eq!(
        ok(
            store.expired_sessions(later + Duration::seconds(1)).await,
            "expired_sessions"
        ),
        [session.id]
    );
    assert_eq!(
        ok(store.get_session(session.id).await, "get_session").status,
        SessionStatus::Running,
        "listing expired sessions changes nothing"
    );
    assert_eq!(
        ok(
            store.recover_sessions(later + Duration::seconds(1)).await,
            "recover_sessions expired"
        ),
        [session.id]
    );
    let recovered = ok(store.get_session(session.id).await, "get_session");
    assert_eq!(recovered.status, SessionStatus::Interrupted);
    assert_eq!(recovered.lease, None, "a finished session holds no lease");
    let events = ok(store.list_events(session.id, 0, 10).await, "list_events");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(
        matches!(&events[2].event, AgentEvent::RunFinished { result, .. } if result.status == SessionStatus::Interrupted),
        "recovery ends the log with RUN_FINISHED (interrupted): {:?}",
        events[2].event
    );
    assert!(
        ok(
            store.renew_leases("process-a", &[session.id], later).await,
            "renew after recovery"
        )
        .is_empty(),
        "a recovered session cannot be renewed"
    );
    // A finished session drops its lease too.
    let next = ok(
        store
            .create_session(
                NewSession::new(conversation.id, vec![])
                    .with_lease(SessionLease::new("process-a", now + Duration::seconds(30))),
            )
            .await,
        "create_session",
    );
    let finished = ok(
        store
            .finish_session(next.id, SessionFinish::new(SessionStatus::Committed))
            .await,
        "finish_session",
    );
    assert_eq!(finished.lease, None);
}

/// The usage of sessions created since a time, of one owner's
/// conversations or one preset's runs, oldest first.
pub async fn session_usage_filters_by_time_owner_and_preset(store: &dyn StateStore) {
    let ada = new_user(store, "ada").await;
    let bob = new_user(store, "bob").await;
    let preset = new_preset(store, "assistant").await;
    let spent = |input, output| {
        let mut u = UsageByModel::default();
        u.add(
            "m",
            Usage {
                input_tokens: input,
                output_tokens: output,
                ..Usage::default()
            },
        );
        u
    };
    let run = |owner, with_preset: bool, usage: UsageByModel| async move {
        let c = new_conversation(store, owner, "c").await;
        let new = NewSession::new(c.id, vec![Message::user("hi")])
            .with_preset(with_preset.then_some(preset.id));
        let s = ok(store.create_session(new).await, "create_session");
        let mut finish = SessionFinish::new(SessionStatus::Committed);
        finish.usage = usage;
        ok(store.finish_session(s.id, finish).await, "finish_session");
        s
    };
    let old = run(ada.id, true, spent(1, 1)).await;
    tick().await;
    let since =
        ok(store.get_session(old.id).await, "get").created_at + chrono::TimeDelta::microseconds(1);
    tick().await;
    let first = run(ada.id, true, spent(10, 5)).await;
    tick().await;
    let second = run(ada.id, false, spent(3, 2)).await;
    let bobs = run(bob.id, true, spent(7, 7)).await;

    let all = ok(
        store
            .session_usage(crate::store::UsageQuery::since(since))
            .await,
        "all",
    );
    assert_eq!(
        all.iter().map(|u| u.session_id).collect::<Vec<_>>(),
        [first.id, second.id, bobs.id],
        "sessions since the time, oldest first"
    );
    let adas = ok(
        store
            .session_usage(crate::store::UsageQuery::since(since).for_owner(ada.id))
            .await,
        "ada's",
    );
    assert_eq!(
        adas.iter().map(|u| u.session_id).collect::<Vec<_>>(),
        [first.id, second.id]
    );
    assert_eq!(adas[0].usage.total().total_tokens(), 15);
    assert_eq!(adas[0].preset_id, Some(preset.id));
    let presets = ok(
        store
            .session_usage(crate::store::UsageQuery::since(since).for_preset(preset.id))
            .await,
        "the preset's",
    );
    assert_eq!(
        presets.iter().map(|u| u.session_id).collect::<Vec<_>>(),
        [first.id, bobs.id]
    );
    let both = ok(
        store
            .session_usage(
                crate::store::UsageQuery::since(since)
                    .for_owner(bob.id)
                    .for_preset(preset.id),
            )
            .await,
        "bob's with the preset",
    );
    assert_eq!(both.len(), 1);
}
