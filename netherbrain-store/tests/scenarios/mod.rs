//! Backend-specific behaviour checks, run against SQLite and Postgres via
//! [`scenario_tests!`]. Core's conformance suite covers the general
//! contract; these focus on what a SQL backend can get wrong (constraint
//! mapping, timestamps, paging, search syntax, concurrency).

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use netherbrain_core::store::*;
use netherbrain_core::{
    AgentEvent, ConversationId, EventEnvelope, Message, PresetConfig, SessionId, SessionStatus,
    UserId,
};
use serde_json::json;

pub type Store = Arc<dyn StateStore>;

/// Generates one `#[tokio::test]` per scenario for a store factory.
#[macro_export]
macro_rules! scenario_tests {
    ($make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = $make.await;
                scenarios::$name(store).await;
            }
        )*
    };
}

fn obj(v: serde_json::Value) -> Metadata {
    v.as_object().cloned().unwrap_or_default()
}

async fn user(s: &Store, name: &str) -> UserId {
    s.create_user(NewUser::new(name, UserRole::User))
        .await
        .unwrap()
        .id
}

async fn conversation(s: &Store, owner: UserId, title: &str) -> ConversationId {
    s.create_conversation(NewConversation::new(owner).with_title(title))
        .await
        .unwrap()
        .id
}

fn ev(session: SessionId, seq: u64) -> EventEnvelope {
    EventEnvelope::new(
        session,
        seq,
        AgentEvent::TextMessageEnd {
            message_id: format!("m{seq}"),
        },
    )
}

pub async fn users_roundtrip_and_conflicts(s: Store) {
    let u = s
        .create_user(
            NewUser::new("ada", UserRole::Admin)
                .with_display_name("Ada")
                .with_password_hash("$argon2id$x"),
        )
        .await
        .unwrap();
    assert_eq!(
        s.get_user(u.id).await.unwrap(),
        u,
        "timestamps round-trip exactly"
    );
    assert_eq!(s.get_user_by_username("ada").await.unwrap(), u);
    assert_eq!(u.password_hash.as_deref(), Some("$argon2id$x"));
    assert!(matches!(
        s.create_user(NewUser::new("ada", UserRole::User)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_user(NewUser::new("bad name", UserRole::User))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_user(NewUser::new("x".repeat(65), UserRole::User))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(s.get_user(UserId::new()).await.unwrap_err().is_not_found());
    assert!(
        s.get_user_by_username("nobody")
            .await
            .unwrap_err()
            .is_not_found()
    );
    s.create_user(NewUser::new("Zed", UserRole::User))
        .await
        .unwrap();
    s.create_user(NewUser::new("bob", UserRole::User))
        .await
        .unwrap();
    let names: Vec<_> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["Zed", "ada", "bob"], "byte order");
    assert_eq!(s.count_users().await.unwrap(), 3);
    let mut patch = UserPatch::default();
    patch.display_name = Some(None);
    patch.active = Some(false);
    let changed = s.update_user(u.id, patch).await.unwrap();
    assert_eq!(changed.display_name, None);
    assert!(!changed.active);
    assert_eq!(s.get_user(u.id).await.unwrap(), changed);
    assert!(
        s.update_user(UserId::new(), UserPatch::default())
            .await
            .unwrap_err()
            .is_not_found()
    );
}

pub async fn api_keys(s: Store) {
    let u = user(&s, "ada").await;
    let exp = chrono::Utc::now() + chrono::Duration::days(1);
    let k1 = s
        .create_api_key(NewApiKey::new(u, "laptop", "nb_aaaa", "h1").with_expires_at(exp))
        .await
        .unwrap();
    assert_eq!(
        k1.expires_at.map(|t| t.timestamp_micros()),
        Some(exp.timestamp_micros())
    );
    let k2 = s
        .create_api_key(NewApiKey::new(u, "phone", "nb_bbbb", "h2"))
        .await
        .unwrap();
    assert_eq!(s.get_api_key_by_prefix("nb_aaaa").await.unwrap(), k1);
    assert!(matches!(
        s.create_api_key(NewApiKey::new(u, "dup", "nb_aaaa", "h3"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        s.create_api_key(NewApiKey::new(UserId::new(), "x", "nb_cccc", "h"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    let keys = s.list_api_keys(u).await.unwrap();
    assert_eq!(
        keys.iter().map(|k| k.id).collect::<Vec<_>>(),
        [k2.id, k1.id],
        "newest first"
    );
    let revoked = s.revoke_api_key(k1.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(s.get_api_key_by_prefix("nb_aaaa").await.unwrap(), revoked);
    assert!(matches!(
        s.revoke_api_key(k1.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        s.revoke_api_key(netherbrain_core::ApiKeyId::new())
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.get_api_key_by_prefix("nope")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

pub async fn presets_and_workspaces(s: Store) {
    let cfg = PresetConfig::new("openai", "gpt-4o").with_system_prompt("be brief");
    let p = s
        .create_preset(NewPreset::new("coder", cfg.clone()).with_description("codes"))
        .await
        .unwrap();
    assert_eq!(s.get_preset(p.id).await.unwrap(), p);
    assert_eq!(s.get_preset_by_name("coder").await.unwrap(), p);
    assert!(matches!(
        s.create_preset(NewPreset::new("coder", cfg.clone())).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_preset(NewPreset::new("", cfg.clone())).await,
        Err(StoreError::Invalid(_))
    ));
    let other = s
        .create_preset(NewPreset::new("writer", cfg.clone()))
        .await
        .unwrap();
    let mut rename = PresetPatch::default();
    rename.name = Some("coder".into());
    assert!(matches!(
        s.update_preset(other.id, rename).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.get_preset(other.id).await.unwrap(),
        other,
        "failed update changed nothing"
    );
    let names: Vec<_> = s
        .list_presets()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["coder", "writer"]);

    let ws = s
        .create_workspace(
            NewWorkspace::new("home")
                .with_project_dirs(vec!["/srv/a".into()])
                .with_metadata(obj(json!({"a": 1, "b": 2}))),
        )
        .await
        .unwrap();
    assert_eq!(s.get_workspace(ws.id).await.unwrap(), ws);
    assert!(matches!(
        s.create_workspace(NewWorkspace::new("home")).await,
        Err(StoreError::Conflict(_))
    ));
    let mut patch = WorkspacePatch::default();
    patch.metadata = Some(obj(json!({"b": null, "c": {"d": true}})));
    let ws2 = s.update_workspace(ws.id, patch).await.unwrap();
    assert_eq!(
        serde_json::Value::Object(ws2.metadata.clone()),
        json!({"a": 1, "c": {"d": true}})
    );
    assert_eq!(s.get_workspace(ws.id).await.unwrap(), ws2);

    let u = user(&s, "ada").await;
    let c = s
        .create_conversation(
            NewConversation::new(u)
                .with_workspace(ws.id)
                .with_default_preset(p.id),
        )
        .await
        .unwrap();
    assert!(matches!(
        s.delete_preset(p.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.delete_workspace(ws.id).await,
        Err(StoreError::Conflict(_))
    ));
    s.delete_preset(other.id).await.unwrap();
    assert!(s.get_preset(other.id).await.unwrap_err().is_not_found());
    assert!(s.delete_preset(other.id).await.unwrap_err().is_not_found());
    let mut clear = ConversationPatch::default();
    clear.default_preset = Some(None);
    s.update_conversation(c.id, clear).await.unwrap();
    s.delete_preset(p.id).await.unwrap();
    let empty = s
        .create_workspace(NewWorkspace::new("empty"))
        .await
        .unwrap();
    s.delete_workspace(empty.id).await.unwrap();
    assert!(
        s.delete_workspace(empty.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
}

pub async fn conversations_create_update(s: Store) {
    let u = user(&s, "ada").await;
    let c = s
        .create_conversation(
            NewConversation::new(u)
                .with_title("Hello")
                .with_metadata(obj(json!({"k": "v"}))),
        )
        .await
        .unwrap();
    assert_eq!(s.get_conversation(c.id).await.unwrap(), c);
    assert_eq!(c.status, ConversationStatus::Active);
    assert!(
        s.create_conversation(NewConversation::new(UserId::new()))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.create_conversation(
            NewConversation::new(u).with_workspace(netherbrain_core::WorkspaceId::new())
        )
        .await
        .unwrap_err()
        .is_not_found()
    );
    assert!(
        s.create_conversation(
            NewConversation::new(u).with_default_preset(netherbrain_core::PresetId::new())
        )
        .await
        .unwrap_err()
        .is_not_found()
    );
    let mut dup = NewConversation::new(u);
    dup.id = c.id;
    assert!(matches!(
        s.create_conversation(dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.create_conversation(NewConversation::new(u).with_title("t".repeat(513)))
            .await,
        Err(StoreError::Invalid(_))
    ));
    let mut p = ConversationPatch::default();
    p.summary = Some(Some("x".repeat(validate::MAX_TEXT_LEN + 1)));
    assert!(matches!(
        s.update_conversation(c.id, p).await,
        Err(StoreError::Invalid(_))
    ));
    let mut p = ConversationPatch::default();
    p.title = Some(None);
    p.summary = Some(Some("sum".into()));
    p.metadata = Some(obj(json!({"k": null, "n": 1})));
    p.status = Some(ConversationStatus::Archived);
    let c2 = s.update_conversation(c.id, p).await.unwrap();
    assert_eq!(c2.title, None);
    assert_eq!(c2.summary.as_deref(), Some("sum"));
    assert_eq!(
        serde_json::Value::Object(c2.metadata.clone()),
        json!({"n": 1})
    );
    assert_eq!(s.get_conversation(c.id).await.unwrap(), c2);
    assert!(
        s.update_conversation(ConversationId::new(), ConversationPatch::default())
            .await
            .unwrap_err()
            .is_not_found()
    );
}

pub async fn list_paging_and_filters(s: Store) {
    let a = user(&s, "ada").await;
    let b = user(&s, "bob").await;
    let mut mine = Vec::new();
    for i in 0..7 {
        let meta = obj(
            json!({"i": i, "tags": ["x", if i % 2 == 0 { "even" } else { "odd" }], "nested": {"p": i % 3}}),
        );
        mine.push(
            s.create_conversation(NewConversation::new(a).with_metadata(meta))
                .await
                .unwrap()
                .id,
        );
    }
    s.create_conversation(NewConversation::new(b))
        .await
        .unwrap();
    // Activity moves conversation 2 to the top.
    let sess = s
        .create_session(NewSession::new(mine[2], vec![Message::user("hi")]))
        .await
        .unwrap();
    s.finish_session(sess.id, SessionFinish::new(SessionStatus::Committed))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_conversations(
                ConversationQuery::for_owner(a)
                    .with_limit(3)
                    .with_cursor(cursor),
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|c| c.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let mut expected = mine.clone();
    expected.retain(|id| *id != mine[2]);
    expected.reverse();
    expected.insert(0, mine[2]);
    assert_eq!(seen, expected, "newest activity first, every item once");

    let all = s
        .list_conversations(ConversationQuery::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 8);
    assert!(all.next_cursor.is_none());

    let even = s
        .list_conversations(
            ConversationQuery::for_owner(a)
                .with_metadata(obj(json!({"tags": ["even"]})))
                .with_limit(2),
        )
        .await
        .unwrap();
    assert_eq!(even.items.len(), 2);
    assert!(even.next_cursor.is_some());
    let rest = s
        .list_conversations(
            ConversationQuery::for_owner(a)
                .with_metadata(obj(json!({"tags": ["even"]})))
                .with_limit(2)
                .with_cursor(even.next_cursor),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    assert!(rest.next_cursor.is_none());
    let nested = s
        .list_conversations(
            ConversationQuery::default().with_metadata(obj(json!({"nested": {"p": 0}}))),
        )
        .await
        .unwrap();
    assert_eq!(nested.items.len(), 3);
    let none = s
        .list_conversations(ConversationQuery::default().with_metadata(obj(json!({"i": "0"}))))
        .await
        .unwrap();
    assert!(none.items.is_empty());

    let mut p = ConversationPatch::default();
    p.status = Some(ConversationStatus::Archived);
    s.update_conversation(mine[0], p).await.unwrap();
    let archived = s
        .list_conversations(ConversationQuery::default().with_status(ConversationStatus::Archived))
        .await
        .unwrap();
    assert_eq!(
        archived.items.iter().map(|c| c.id).collect::<Vec<_>>(),
        [mine[0]]
    );

    assert!(matches!(
        s.list_conversations(ConversationQuery::default().with_limit(0))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.list_conversations(ConversationQuery::default().with_limit(201))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.list_conversations(ConversationQuery::default().with_cursor(Some("garbage".into())))
            .await,
        Err(StoreError::Invalid(_))
    ));
}

pub async fn sessions_one_running(s: Store) {
    let u = user(&s, "ada").await;
    let c = conversation(&s, u, "t").await;
    let before = s.get_conversation(c).await.unwrap().last_activity_at;
    let s1 = s
        .create_session(NewSession::new(c, vec![Message::user("one")]))
        .await
        .unwrap();
    assert_eq!(s1.status, SessionStatus::Running);
    assert_eq!(s.get_session(s1.id).await.unwrap(), s1);
    assert!(s.get_conversation(c).await.unwrap().last_activity_at >= before);
    match s
        .create_session(NewSession::new(c, vec![Message::user("two")]))
        .await
    {
        Err(StoreError::Busy { active }) => assert_eq!(active, s1.id),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert_eq!(
        s.active_session(c).await.unwrap().map(|x| x.id),
        Some(s1.id)
    );
    assert!(matches!(
        s.finish_session(s1.id, SessionFinish::new(SessionStatus::Running))
            .await,
        Err(StoreError::Invalid(_))
    ));
    let mut fin = SessionFinish::new(SessionStatus::Committed);
    fin.final_message = Some("done".into());
    fin.usage.add("gpt", netherbrain_core::Usage::default());
    let done = s.finish_session(s1.id, fin.clone()).await.unwrap();
    assert_eq!(done.status, SessionStatus::Committed);
    assert!(done.finished_at.is_some());
    assert_eq!(s.get_session(s1.id).await.unwrap(), done);
    assert!(matches!(
        s.finish_session(s1.id, fin).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.active_session(c).await.unwrap().is_none());

    let s2 = s
        .create_session(NewSession::new(c, vec![Message::user("two")]).with_parent(Some(s1.id)))
        .await
        .unwrap();
    assert!(matches!(
        s.create_session(NewSession::new(c, vec![]).with_id(s1.id))
            .await,
        Err(StoreError::Busy { .. }) | Err(StoreError::Conflict(_))
    ));
    let history = s.session_history(s2.id).await.unwrap();
    assert_eq!(
        history.iter().map(Message::text).collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert_eq!(
        s.list_sessions(c)
            .await
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect::<Vec<_>>(),
        [s1.id, s2.id]
    );
    assert!(
        s.list_sessions(ConversationId::new())
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.create_session(NewSession::new(ConversationId::new(), vec![]))
            .await
            .unwrap_err()
            .is_not_found()
    );
    let c2 = conversation(&s, u, "other").await;
    assert!(
        s.create_session(NewSession::new(c2, vec![]).with_parent(Some(SessionId::new())))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.active_session(c2).await.unwrap().is_none(),
        "failed create left nothing"
    );

    let recovered = s.recover_sessions(chrono::Utc::now()).await.unwrap();
    assert_eq!(recovered, [s2.id]);
    assert_eq!(
        s.get_session(s2.id).await.unwrap().status,
        SessionStatus::Interrupted
    );
    assert!(
        s.recover_sessions(chrono::Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn concurrent_create_session_is_busy(s: Store) {
    let u = user(&s, "ada").await;
    let c = conversation(&s, u, "race").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.create_session(NewSession::new(c, vec![Message::user(format!("m{i}"))]))
                .await
        }));
    }
    let mut ok = Vec::new();
    let mut busy = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(sess) => ok.push(sess.id),
            Err(StoreError::Busy { active }) => busy.push(active),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok.len(), 1, "exactly one run starts");
    assert!(
        busy.iter().all(|a| *a == ok[0]),
        "Busy names the running session"
    );
}

pub async fn append_and_events(s: Store) {
    let u = user(&s, "ada").await;
    let c = conversation(&s, u, "t").await;
    let sess = s
        .create_session(NewSession::new(c, vec![Message::user("q")]))
        .await
        .unwrap();
    let id = sess.id;
    let events: Vec<_> = (1..=3).map(|i| ev(id, i)).collect();
    s.append(
        id,
        SessionAppend::new(vec![Message::assistant("a1")], events.clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        s.list_events(id, 0, 100).await.unwrap(),
        events,
        "events round-trip exactly"
    );
    assert_eq!(
        s.list_events(id, 1, 1).await.unwrap(),
        events[1..2].to_vec()
    );
    assert_eq!(s.last_event_seq(id).await.unwrap(), 3);
    assert!(matches!(
        s.append(id, SessionAppend::new(vec![], vec![ev(id, 3)]))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.append(id, SessionAppend::new(vec![], vec![ev(id, 5), ev(id, 4)]))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        s.append(
            id,
            SessionAppend::new(vec![], vec![ev(SessionId::new(), 9)])
        )
        .await
        .is_err()
    );
    // A failed append changes nothing.
    assert!(
        s.append(
            id,
            SessionAppend::new(vec![Message::assistant("lost")], vec![ev(id, 2)])
        )
        .await
        .is_err()
    );
    s.append(
        id,
        SessionAppend::new(vec![Message::assistant("a2")], vec![ev(id, 10)]),
    )
    .await
    .unwrap();
    let texts: Vec<_> = s
        .session_messages(id)
        .await
        .unwrap()
        .iter()
        .map(Message::text)
        .collect();
    assert_eq!(texts, ["q", "a1", "a2"]);
    assert_eq!(s.last_event_seq(id).await.unwrap(), 10);
    s.finish_session(id, SessionFinish::new(SessionStatus::Interrupted))
        .await
        .unwrap();
    assert!(matches!(
        s.append(
            id,
            SessionAppend::new(vec![Message::assistant("late")], vec![])
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    let unknown = SessionId::new();
    assert!(
        s.append(unknown, SessionAppend::default())
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.session_messages(unknown)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.list_events(unknown, 0, 10)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(s.last_event_seq(unknown).await.unwrap_err().is_not_found());
    // NUL characters and odd unicode survive.
    let sess2 = s
        .create_session(NewSession::new(
            c,
            vec![Message::user("nul\u{0}byte ✓ \u{1F600}")],
        ))
        .await
        .unwrap();
    assert_eq!(
        s.session_messages(sess2.id).await.unwrap()[0].text(),
        "nul\u{0}byte ✓ \u{1F600}"
    );
    // A model's output with NUL characters still commits.
    let mut fin = SessionFinish::new(SessionStatus::Committed);
    fin.final_message = Some("a\u{0}b".into());
    fin.error = Some("e\u{0}".into());
    let done = s.finish_session(sess2.id, fin).await.unwrap();
    assert_eq!(s.get_session(sess2.id).await.unwrap(), done);
}

pub async fn search(s: Store) {
    let a = user(&s, "ada").await;
    let b = user(&s, "bob").await;
    let rust = conversation(&s, a, "Learning Rust lifetimes").await;
    let cooking = conversation(&s, a, "Dinner").await;
    let mut p = ConversationPatch::default();
    p.summary = Some(Some("risotto with mushrooms".into()));
    s.update_conversation(cooking, p).await.unwrap();
    let bobs = conversation(&s, b, "Rust for bob").await;
    let sess = s
        .create_session(NewSession::new(
            cooking,
            vec![Message::user("how long to boil pasta?")],
        ))
        .await
        .unwrap();
    s.append(
        sess.id,
        SessionAppend::new(
            vec![Message::assistant("About ten minutes, café style")],
            vec![],
        ),
    )
    .await
    .unwrap();

    let ids = |v: Vec<Conversation>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let mut both = ids(s.search_conversations(None, "rust", 10).await.unwrap());
    both.sort();
    let mut expected = vec![rust, bobs];
    expected.sort();
    assert_eq!(both, expected);
    assert_eq!(
        ids(s.search_conversations(Some(a), "RUST", 10).await.unwrap()),
        [rust]
    );
    assert_eq!(
        ids(s
            .search_conversations(Some(a), "mushrooms", 10)
            .await
            .unwrap()),
        [cooking],
        "summary"
    );
    assert_eq!(
        ids(s.search_conversations(Some(a), "pasta", 10).await.unwrap()),
        [cooking],
        "input message"
    );
    assert_eq!(
        ids(s
            .search_conversations(Some(a), "minutes", 10)
            .await
            .unwrap()),
        [cooking],
        "appended message"
    );
    assert_eq!(
        ids(s
            .search_conversations(Some(a), "lifetime", 10)
            .await
            .unwrap()),
        [rust],
        "prefix"
    );
    assert_eq!(
        ids(s
            .search_conversations(Some(a), "pasta risotto", 10)
            .await
            .unwrap()),
        [cooking],
        "words across fields"
    );
    assert!(
        s.search_conversations(Some(a), "pasta lifetimes", 10)
            .await
            .unwrap()
            .is_empty(),
        "all words must match"
    );
    assert_eq!(
        ids(s.search_conversations(Some(a), "café", 10).await.unwrap()),
        [cooking],
        "unicode"
    );
    // Renaming re-indexes.
    let mut p = ConversationPatch::default();
    p.title = Some(Some("Borrow checker".into()));
    s.update_conversation(rust, p).await.unwrap();
    assert!(
        s.search_conversations(Some(a), "lifetimes", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(s.search_conversations(Some(a), "borrow", 10).await.unwrap()),
        [rust]
    );
    // Hostile input is never an error.
    for q in [
        "\"",
        "rust\" OR",
        "NEAR(a b)",
        "*",
        "a:*",
        "-x",
        "(((",
        "'; DROP TABLE conversations; --",
        "title:rust",
        "!&|<->",
        "***",
    ] {
        s.search_conversations(None, q, 10)
            .await
            .unwrap_or_else(|e| panic!("query {q:?}: {e}"));
    }
    assert!(matches!(
        s.search_conversations(None, &"a".repeat(513), 10).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.search_conversations(None, "  ", 10).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        s.search_conversations(None, "rust", 1).await.unwrap().len(),
        1
    );
}

pub async fn mailbox(s: Store) {
    let u = user(&s, "ada").await;
    let c = conversation(&s, u, "t").await;
    let sess = s.create_session(NewSession::new(c, vec![])).await.unwrap();
    let e1 = s
        .post_mailbox(NewMailboxEntry::new(c, Some(sess.id), json!({"result": 1})))
        .await
        .unwrap();
    let e2 = s
        .post_mailbox(NewMailboxEntry::new(c, None, json!("two")))
        .await
        .unwrap();
    let taken = s.take_mailbox(c).await.unwrap();
    assert_eq!(
        taken.iter().map(|e| e.id).collect::<Vec<_>>(),
        [e1.id, e2.id]
    );
    assert!(taken.iter().all(|e| e.delivered_at.is_some()));
    assert_eq!(taken[0].content, json!({"result": 1}));
    assert!(s.take_mailbox(c).await.unwrap().is_empty());
    assert!(
        s.take_mailbox(ConversationId::new())
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.post_mailbox(NewMailboxEntry::new(ConversationId::new(), None, json!(1)))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        s.post_mailbox(NewMailboxEntry::new(c, Some(SessionId::new()), json!(1)))
            .await
            .unwrap_err()
            .is_not_found()
    );
}

pub async fn bad_input_changes_nothing(s: Store) {
    let u = user(&s, "ada").await;
    let big = obj(json!({"blob": "x".repeat(validate::MAX_METADATA_BYTES)}));
    assert!(matches!(
        s.create_conversation(NewConversation::new(u).with_metadata(big.clone()))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_workspace(NewWorkspace::new("w").with_metadata(big))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_workspace(NewWorkspace::new("x".repeat(200))).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_preset(NewPreset::new("bad\nname", PresetConfig::new("p", "m")))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(s.list_workspaces().await.unwrap().is_empty());
    assert!(s.list_presets().await.unwrap().is_empty());
    assert!(
        s.list_conversations(ConversationQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // NUL characters in metadata are refused by every backend (core's
    // validation), never a backend error.
    let nul = obj(json!({"k": "a\u{0}b"}));
    assert!(matches!(
        s.create_conversation(NewConversation::new(u).with_metadata(nul))
            .await,
        Err(StoreError::Invalid(_))
    ));
    s.ping().await.unwrap();
}

pub async fn concurrent_appends_keep_every_message(s: Store) {
    let u = user(&s, "ada").await;
    let c = conversation(&s, u, "busy").await;
    let sess = s
        .create_session(NewSession::new(c, vec![Message::user("start")]))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.append(
                sess.id,
                SessionAppend::new(vec![Message::assistant(format!("m{i}"))], vec![]),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let texts: Vec<String> = s
        .session_messages(sess.id)
        .await
        .unwrap()
        .iter()
        .map(Message::text)
        .collect();
    assert_eq!(texts.len(), 17);
    for i in 0..16 {
        assert!(texts.contains(&format!("m{i}")));
    }
    // Events from racing appenders: exactly one of two equal sequence numbers wins.
    let a = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            s.append(sess.id, SessionAppend::new(vec![], vec![ev(sess.id, 1)]))
                .await
        })
    };
    let b = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            s.append(sess.id, SessionAppend::new(vec![], vec![ev(sess.id, 1)]))
                .await
        })
    };
    let results = [a.await.unwrap(), b.await.unwrap()];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(StoreError::Conflict(_))))
    );
    assert_eq!(s.list_events(sess.id, 0, 10).await.unwrap().len(), 1);
}
