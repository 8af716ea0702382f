//! `MemoryChannel` behaves like a platform under the `Channel` trait.

use std::sync::Arc;
use std::time::Duration;

use netherbrain_core::channel::{
    CancellationToken, Channel, ChannelCapabilities, ChannelError, ChatRef, InboundMessage,
    MarkupDialect, MemoryChannel, SenderRef,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

fn spawn_run(
    channel: &MemoryChannel,
    capacity: usize,
) -> (
    mpsc::Receiver<InboundMessage>,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), ChannelError>>,
) {
    let (tx, rx) = mpsc::channel(capacity);
    let cancel = CancellationToken::new();
    let dyn_channel: Arc<dyn Channel> = Arc::new(channel.clone());
    let task = tokio::spawn({
        let cancel = cancel.clone();
        async move { dyn_channel.run(tx, cancel).await }
    });
    (rx, cancel, task)
}

#[tokio::test]
async fn delivers_injected_messages_in_order_including_ones_queued_before_run() {
    let channel = MemoryChannel::new("test");
    let early = channel.inject_text("c1", "u1", "early");
    let (mut rx, cancel, task) = spawn_run(&channel, 1);
    let late = InboundMessage::new(
        ChatRef::new("test", "c2"),
        SenderRef::new("u2").with_display_name("Bob"),
        "late",
        "x-9",
    );
    channel.inject(late.clone());
    let third = channel.inject_text("c1", "u1", "third");

    for want in [early, late, third] {
        let got = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        assert_eq!(got, want);
    }
    assert_eq!(channel.inject_text("c", "u", "x").message_id, "in-3");
    cancel.cancel();
    assert_eq!(timeout(WAIT, task).await.unwrap().unwrap(), Ok(()));
}

#[tokio::test]
async fn cancel_stops_run_without_losing_queued_messages() {
    let channel = MemoryChannel::new("test");
    let (rx, cancel, task) = spawn_run(&channel, 1);
    cancel.cancel();
    assert_eq!(timeout(WAIT, task).await.unwrap().unwrap(), Ok(()));
    drop(rx);

    // Injected while nobody runs: delivered by the next run.
    let msg = channel.inject_text("c1", "u1", "kept");
    let (mut rx, cancel, task) = spawn_run(&channel, 1);
    assert_eq!(timeout(WAIT, rx.recv()).await.unwrap().unwrap(), msg);
    cancel.cancel();
    timeout(WAIT, task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn run_returns_closed_when_the_receiver_is_dropped() {
    let channel = MemoryChannel::new("test");
    let (rx, _cancel, task) = spawn_run(&channel, 1);
    drop(rx);
    channel.inject_text("c1", "u1", "nobody listens");
    assert_eq!(
        timeout(WAIT, task).await.unwrap().unwrap(),
        Err(ChannelError::Closed)
    );
}

#[tokio::test]
async fn send_records_messages_with_ids() {
    let channel = MemoryChannel::new("test");
    let c1 = channel.chat("c1");
    let c2 = channel.chat("c2");
    let a = channel.send(&c1, "one").await.unwrap();
    let b = channel.send(&c2, "two").await.unwrap();
    assert_ne!(a.message_id, b.message_id, "message ids are unique");
    assert_eq!(a.chat, c1);
    let sent = channel.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].message, a);
    assert_eq!(sent[0].text, "one");
    assert_eq!(sent[1].text, "two");
    assert_eq!(channel.sent_to(&c1).len(), 1);
    channel.clear_sent();
    assert!(channel.sent().is_empty());

    let foreign = ChatRef::new("telegram", "c1");
    assert!(matches!(
        channel.send(&foreign, "x").await,
        Err(ChannelError::Transport(_))
    ));
}

#[tokio::test]
async fn enforces_max_message_len_in_characters() {
    let channel = MemoryChannel::new("test")
        .with_capabilities(ChannelCapabilities::new().with_max_message_len(3));
    let chat = channel.chat("c");
    channel.send(&chat, "äöü").await.unwrap();
    assert_eq!(
        channel.send(&chat, "abcd").await,
        Err(ChannelError::TooLong { len: 4, max: 3 })
    );
    assert_eq!(channel.sent().len(), 1);
}

#[tokio::test]
async fn edit_is_unsupported_without_edit_in_place() {
    let channel = MemoryChannel::new("test");
    assert!(!channel.capabilities().edit_in_place);
    let sent = channel.send(&channel.chat("c"), "v1").await.unwrap();
    assert_eq!(
        channel.edit(&sent, "v2").await,
        Err(ChannelError::Unsupported)
    );
    assert_eq!(channel.sent()[0].text, "v1");
}

#[tokio::test]
async fn edit_in_place_records_versions() {
    let channel = MemoryChannel::new("test").with_capabilities(
        ChannelCapabilities::new()
            .with_edit_in_place(true)
            .with_max_message_len(10)
            .with_markup(MarkupDialect::TelegramHtml),
    );
    let caps = channel.capabilities();
    assert!(caps.edit_in_place);
    assert_eq!(caps.max_message_len, 10);
    assert_eq!(caps.markup, MarkupDialect::TelegramHtml);

    let chat = channel.chat("c");
    let sent = channel.send(&chat, "He").await.unwrap();
    channel.edit(&sent, "Hello").await.unwrap();
    channel.edit(&sent, "Hello!").await.unwrap();
    assert_eq!(
        channel.edit(&sent, "far too long text").await,
        Err(ChannelError::TooLong { len: 17, max: 10 })
    );
    let record = &channel.sent()[0];
    assert_eq!(record.text, "Hello!");
    assert_eq!(record.versions, ["He", "Hello", "Hello!"]);
    assert_eq!(record.edits(), 2);

    let unknown = netherbrain_core::channel::SentMessage::new(chat, "999");
    assert!(matches!(
        channel.edit(&unknown, "x").await,
        Err(ChannelError::Transport(_))
    ));
}

#[tokio::test]
async fn scripted_failures_come_in_order_then_calls_succeed() {
    let channel = MemoryChannel::new("test")
        .with_capabilities(ChannelCapabilities::new().with_edit_in_place(true));
    let chat = channel.chat("c");
    let sent = channel.send(&chat, "a").await.unwrap();
    channel.fail_next(ChannelError::RateLimited {
        retry_after: Some(Duration::from_secs(2)),
    });
    channel.fail_next(ChannelError::Transport("reset".into()));
    let first = channel.edit(&sent, "b").await.unwrap_err();
    assert_eq!(first.retry_after(), Some(Duration::from_secs(2)));
    assert_eq!(
        channel.send(&chat, "c").await,
        Err(ChannelError::Transport("reset".into()))
    );
    channel.edit(&sent, "b").await.unwrap();
    assert_eq!(channel.sent().len(), 1, "failed sends are not recorded");
}

#[tokio::test]
async fn handles_share_state_and_trait_is_object_safe() {
    let channel = MemoryChannel::new("shared");
    let boxed: Box<dyn Channel> = Box::new(channel.clone());
    assert_eq!(boxed.id(), "shared");
    boxed
        .send(&channel.chat("c"), "via trait object")
        .await
        .unwrap();
    assert_eq!(channel.sent()[0].text, "via trait object");
    channel.set_capabilities(ChannelCapabilities::new().with_edit_in_place(true));
    assert!(
        boxed.capabilities().edit_in_place,
        "capabilities are shared"
    );
}

#[test]
fn errors_display_and_classify() {
    assert_eq!(
        ChannelError::TooLong { len: 5, max: 4 }.to_string(),
        "message of 5 characters exceeds the limit of 4"
    );
    assert_eq!(
        ChannelError::RateLimited {
            retry_after: Some(Duration::from_secs(1))
        }
        .to_string(),
        "rate limited by the platform, retry after 1s"
    );
    assert_eq!(
        ChannelError::RateLimited { retry_after: None }.to_string(),
        "rate limited by the platform"
    );
    assert!(!ChannelError::TooLong { len: 1, max: 0 }.is_retryable());
    assert!(ChannelError::Transport("x".into()).is_retryable());
    assert_eq!(ChannelCapabilities::default().markup, MarkupDialect::Plain);
    assert_eq!(
        serde_json::to_string(&MarkupDialect::TelegramMarkdownV2).unwrap(),
        "\"telegram_markdown_v2\""
    );
}
