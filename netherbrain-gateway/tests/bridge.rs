//! The bridge through the in-memory test channel, over the in-process
//! conversation service with scripted providers and the memory store.

use std::sync::Arc;
use std::time::Duration;

use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::channel::{
    CancellationToken, ChannelCapabilities, InboundMessage, MemoryChannel, SenderRef,
};
use netherbrain_core::conversation::ConversationService;
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{MemoryStore, NewPreset, NewUser, UserRole};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::tool::{
    DynTool, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSet,
};
use netherbrain_core::{PresetConfig, SessionStatus, UserId};
use netherbrain_gateway::{AllowEntry, Bridge, BridgeConfig, LocalRuntime};

const OWNER: &str = "100";

struct Fixture {
    store: Arc<MemoryStore>,
    provider: Arc<ScriptedProvider>,
    service: ConversationService,
    channel: MemoryChannel,
    ada: UserId,
    config: BridgeConfig,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct DeleteArgs {
    path: String,
}

#[derive(Debug)]
struct Delete;

#[async_trait::async_trait]
impl Tool for Delete {
    type Args = DeleteArgs;
    fn name(&self) -> &str {
        "delete"
    }
    fn description(&self) -> &str {
        "Deletes a file"
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: DeleteArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        Ok(format!("deleted {}", args.path).into())
    }
}

#[derive(Debug)]
struct Files;

#[async_trait::async_trait]
impl ToolSet for Files {
    fn name(&self) -> &str {
        "files"
    }
    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        let registry = ToolRegistry::new()
            .with(Delete)
            .map_err(ToolError::failed)?;
        Ok(registry.get("delete").into_iter().cloned().collect())
    }
}

async fn fixture(responses: Vec<ScriptedResponse>, caps: ChannelCapabilities) -> Fixture {
    fixture_with(ScriptedProvider::new(responses), caps).await
}

async fn fixture_with(provider: ScriptedProvider, caps: ChannelCapabilities) -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap()
        .id;
    let provider = Arc::new(provider);
    let catalog = AgentCatalog::new()
        .with_provider("local", provider.clone(), vec!["tiny".into()])
        .with_toolset(Arc::new(Files));
    store
        .create_preset(NewPreset::new(
            "tiny",
            PresetConfig::new("local", "tiny").with_toolsets(vec!["files".into()]),
        ))
        .await
        .unwrap();
    let service = ConversationService::new(store.clone(), Arc::new(catalog));
    let channel = MemoryChannel::new("test").with_capabilities(caps);
    let config = BridgeConfig::default()
        .with_edit_interval(Duration::from_millis(250))
        .with_retry_base(Duration::from_millis(50))
        .allow(AllowEntry::new("test", OWNER, ada));
    Fixture {
        store,
        provider,
        service,
        channel,
        ada,
        config,
    }
}

impl Fixture {
    fn start(&self) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let bridge = Bridge::new(
            Arc::new(LocalRuntime::new(self.service.clone())),
            self.store.clone(),
            vec![Arc::new(self.channel.clone())],
            self.config.clone(),
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move { bridge.run(cancel).await.unwrap() }
        });
        (cancel, task)
    }

    /// Waits until some message in `chat` reads `text`.
    async fn wait_text(&self, chat: &str, text: &str) {
        let chat = self.channel.chat(chat);
        for _ in 0..400 {
            if self
                .channel
                .sent_to(&chat)
                .iter()
                .any(|m| m.text.contains(text))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "no message with {text:?}; sent: {:#?}",
            self.channel.sent_to(&chat)
        );
    }
}

fn edit_caps() -> ChannelCapabilities {
    ChannelCapabilities::new().with_edit_in_place(true)
}

#[tokio::test]
async fn an_allowed_user_gets_the_reply_and_the_chat_is_bound() {
    let f = fixture(vec![ScriptedResponse::text("Hello **there**")], edit_caps()).await;
    let (cancel, task) = f.start();
    f.channel.inject_text("c1", OWNER, "hi");
    f.wait_text("c1", "Hello **there**").await;

    let binding = f.store.chat_binding("test", "c1").await.unwrap().unwrap();
    assert_eq!(binding.user_id, f.ada);
    let conversation = f
        .store
        .get_conversation(binding.conversation_id)
        .await
        .unwrap();
    assert_eq!(
        conversation.owner, f.ada,
        "the same conversation the API sees"
    );
    // The delivery mark reaches the terminal event.
    let mut marked = None;
    for _ in 0..200 {
        let b = f.store.chat_binding("test", "c1").await.unwrap().unwrap();
        if let Some(session) = b.delivered_session_id {
            marked = Some((session, b.delivered_seq));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (session, seq) = marked.expect("the delivery mark is recorded");
    assert_eq!(seq, f.store.last_event_seq(session).await.unwrap());
    assert!(f.channel.typing_count(&f.channel.chat("c1")) > 0);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn an_unknown_user_gets_one_pairing_code_and_nothing_runs() {
    let f = fixture(vec![ScriptedResponse::text("secret")], edit_caps()).await;
    let (cancel, task) = f.start();
    f.channel.inject_text("c9", "999", "let me in");
    f.wait_text("c9", "netherbrain gateway pair").await;
    f.channel.inject_text("c9", "999", "again");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        f.channel.sent_to(&f.channel.chat("c9")).len(),
        1,
        "one code"
    );
    assert_eq!(f.provider.requests().len(), 0, "no model call");
    assert!(f.store.chat_binding("test", "c9").await.unwrap().is_none());
    assert_eq!(
        f.store
            .list_conversations(Default::default())
            .await
            .unwrap()
            .items
            .len(),
        0
    );

    // Approving the code lets them in.
    let pending = f.store.pending_pairings(chrono::Utc::now()).await.unwrap();
    assert_eq!(pending.len(), 1);
    let text = &f.channel.sent_to(&f.channel.chat("c9"))[0].text;
    assert!(text.contains(&pending[0].code));
    f.store
        .approve_pairing(&pending[0].code, f.ada, chrono::Utc::now())
        .await
        .unwrap();
    f.channel.inject_text("c9", "999", "now?");
    f.wait_text("c9", "secret").await;
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_long_reply_is_split_at_the_limit() {
    let long: String = (0..60)
        .map(|i| format!("line {i} of the answer\n"))
        .collect();
    let f = fixture(
        vec![ScriptedResponse::text(long.clone())],
        edit_caps().with_max_message_len(200),
    )
    .await;
    let (cancel, task) = f.start();
    f.channel.inject_text("c1", OWNER, "long please");
    f.wait_text("c1", "line 59 of the answer").await;
    let sent = f.channel.sent_to(&f.channel.chat("c1"));
    assert!(sent.len() > 5, "{sent:#?}");
    assert!(sent.iter().all(|m| m.text.chars().count() <= 200));
    let joined: String = sent.iter().map(|m| m.text.clone() + "\n").collect();
    for i in 0..60 {
        assert!(joined.contains(&format!("line {i} of the answer")));
    }
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_message_during_a_run_steers_and_stop_interrupts() {
    let f = fixture(
        vec![ScriptedResponse::builder().text("working").hang().build()],
        edit_caps(),
    )
    .await;
    let (cancel, task) = f.start();
    f.channel.inject_text("c1", OWNER, "start");
    f.wait_text("c1", "working").await;
    let steer = f.channel.inject_text("c1", OWNER, "also this");
    for _ in 0..200 {
        if !f.channel.reactions().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reactions = f.channel.reactions();
    assert_eq!(reactions.len(), 1, "acknowledged with a reaction");
    assert_eq!(reactions[0].message_id, steer.message_id);
    assert_eq!(f.provider.requests().len(), 1, "never a second run");

    f.channel.inject_text("c1", OWNER, "/stop");
    f.wait_text("c1", "Stopped").await;
    let binding = f.store.chat_binding("test", "c1").await.unwrap().unwrap();
    let session = f
        .store
        .latest_session(binding.conversation_id)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..200 {
        let s = f.store.get_session(session.id).await.unwrap();
        if s.status == SessionStatus::Interrupted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        f.store.get_session(session.id).await.unwrap().status,
        SessionStatus::Interrupted
    );
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn commands_new_preset_status_help() {
    let f = fixture(vec![ScriptedResponse::text("one")], edit_caps()).await;
    let (cancel, task) = f.start();
    f.channel.inject_text("c1", OWNER, "hi");
    f.wait_text("c1", "one").await;
    let first = f.store.chat_binding("test", "c1").await.unwrap().unwrap();
    f.channel.inject_text("c1", OWNER, "/new");
    f.wait_text("c1", "New conversation").await;
    let second = f.store.chat_binding("test", "c1").await.unwrap().unwrap();
    assert_ne!(first.conversation_id, second.conversation_id);

    f.channel.inject_text("c1", OWNER, "/preset");
    f.wait_text("c1", "• tiny ✓").await;
    f.channel.inject_text("c1", OWNER, "/preset nope");
    f.wait_text("c1", "No preset is named").await;
    f.channel.inject_text("c1", OWNER, "/status");
    f.wait_text("c1", &second.conversation_id.to_string()).await;
    f.channel.inject_text("c1", OWNER, "/help@my_bot");
    f.wait_text("c1", "/stop — ").await;
    assert_eq!(f.channel.commands().len(), 5, "commands registered");
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn edits_are_throttled_per_chat() {
    let mut response = ScriptedResponse::builder();
    for i in 0..40 {
        response = response.text(format!("w{i} "));
    }
    let provider =
        ScriptedProvider::new(vec![response.build()]).with_event_delay(Duration::from_millis(15));
    let f = fixture_with(provider, edit_caps()).await;
    let (cancel, task) = f.start();
    let started = std::time::Instant::now();
    f.channel.inject_text("c1", OWNER, "stream");
    f.wait_text("c1", "w39").await;
    let elapsed = started.elapsed();
    let sent = f.channel.sent_to(&f.channel.chat("c1"));
    let updates: usize = sent.iter().map(|m| m.versions.len()).sum();
    // One update per 250 ms at most, plus the first send.
    let allowed = (elapsed.as_millis() / 250) as usize + 2;
    assert!(updates <= allowed, "{updates} updates in {elapsed:?}");
    assert!(updates >= 2, "it streamed: {sent:#?}");
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_restarted_bridge_delivers_what_the_chat_missed() {
    let f = fixture(
        vec![
            ScriptedResponse::text("first"),
            ScriptedResponse::text("missed answer"),
        ],
        edit_caps(),
    )
    .await;
    let (cancel, task) = f.start();
    f.channel.inject_text("c1", OWNER, "hi");
    f.wait_text("c1", "first").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    task.await.unwrap();

    // While the gateway is down, a run finishes in the conversation.
    let binding = f.store.chat_binding("test", "c1").await.unwrap().unwrap();
    let who = netherbrain_core::auth::Principal::user(f.ada);
    let sent = f
        .service
        .send(
            &who,
            netherbrain_core::conversation::SendMessage::to(
                binding.conversation_id,
                vec![netherbrain_core::Message::user("from the API")],
            ),
        )
        .await
        .unwrap();
    use futures::StreamExt;
    let _: Vec<_> = f
        .service
        .events(&who, sent.handle().session_id, 0)
        .await
        .unwrap()
        .collect()
        .await;

    let (cancel, task) = f.start();
    f.wait_text("c1", "missed answer").await;
    let texts: Vec<String> = f
        .channel
        .sent_to(&f.channel.chat("c1"))
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        texts.iter().filter(|t| t.contains("first")).count(),
        1,
        "nothing delivered twice: {texts:?}"
    );
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn approval_buttons_resume_the_run_and_refuse_others() {
    let f = fixture(
        vec![
            ScriptedResponse::builder()
                .tool_call("call_1", "delete", r#"{"path":"a.txt"}"#)
                .build(),
            ScriptedResponse::text("deleted it"),
        ],
        edit_caps(),
    )
    .await;
    let mut f = f;
    let bob = f
        .store
        .create_user(NewUser::new("bob", UserRole::User))
        .await
        .unwrap()
        .id;
    f.config = f.config.clone().allow(AllowEntry::new("test", "200", bob));
    let (cancel, task) = f.start();
    f.channel.inject_text("g1", OWNER, "delete a.txt");
    f.wait_text("g1", "Allow it?").await;
    let ask = f
        .channel
        .sent_to(&f.channel.chat("g1"))
        .into_iter()
        .find(|m| !m.buttons.is_empty())
        .unwrap();
    assert_eq!(ask.buttons[0].data, "approve:call_1");

    // Someone else presses: refused.
    f.channel.inject(InboundMessage::button_press(
        f.channel.chat("g1"),
        SenderRef::new("200"),
        "approve:call_1",
        ask.message.message_id.clone(),
    ));
    f.wait_text("g1", "Only the conversation's owner").await;
    assert_eq!(f.provider.requests().len(), 1);

    f.channel.inject(InboundMessage::button_press(
        f.channel.chat("g1"),
        SenderRef::new(OWNER),
        "approve:call_1",
        ask.message.message_id.clone(),
    ));
    f.wait_text("g1", "deleted it").await;
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn files_without_an_attachment_store_are_refused_politely() {
    use netherbrain_core::channel::{
        AttachmentKind, ChatRef, InboundAttachment, InboundMessage, SenderRef,
    };
    let f = fixture(vec![ScriptedResponse::text("never")], edit_caps()).await;
    let (cancel, task) = f.start();
    f.channel.inject(
        InboundMessage::new(
            ChatRef::new("test", "c5"),
            SenderRef::new(OWNER),
            "look",
            "m1",
        )
        .with_attachment(InboundAttachment::new("f1", AttachmentKind::Image)),
    );
    f.wait_text("c5", "can't take files").await;
    assert!(f.provider.requests().is_empty(), "no run");
    assert!(f.store.chat_binding("test", "c5").await.unwrap().is_none());
    cancel.cancel();
    task.await.unwrap();
}
