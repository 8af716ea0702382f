//! Gateway load: N Telegram chats (default 200) stream a reply at once
//! through the bridge (in-process runtime, memory store) and the real
//! teloxide client against a fake Bot API on loopback. Reports the most
//! message updates (sends + edits) any chat got in any one-second window —
//! the bridge promises at most one per `edit_interval` — and the added
//! delay from a model delta to the first update that shows it.
//!
//! ```sh
//! cargo run --release -p netherbrain-benches --bin gateway_load -- [CHATS] [DELTAS]
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::channel::CancellationToken;
use netherbrain_core::conversation::ConversationService;
use netherbrain_core::provider::{
    FinishReason, ModelRequest, Provider, ProviderEvent, ProviderStream,
};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{MemoryStore, NewPreset, NewUser, UserRole};
use netherbrain_core::{PresetConfig, Usage};
use netherbrain_gateway::telegram::{TelegramChannel, TelegramConfig};
use netherbrain_gateway::{AllowEntry, Bridge, BridgeConfig, LocalRuntime};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const DELTA_EVERY: Duration = Duration::from_millis(50);

/// When each delta (a unique word) was emitted.
type Emitted = Arc<Mutex<HashMap<String, Instant>>>;

/// Streams `deltas` words `c<chat>w<i>` one per [`DELTA_EVERY`].
#[derive(Debug)]
struct TimedProvider {
    deltas: usize,
    emitted: Emitted,
}

impl Provider for TimedProvider {
    fn name(&self) -> &str {
        "timed"
    }
    fn stream(&self, request: ModelRequest) -> ProviderStream {
        let chat = request
            .messages
            .last()
            .map(|m| m.text())
            .unwrap_or_default();
        let emitted = self.emitted.clone();
        let words: Vec<String> = (0..self.deltas).map(|i| format!("{chat}w{i} ")).collect();
        let text = futures::stream::iter(words).then(move |word| {
            let emitted = emitted.clone();
            async move {
                tokio::time::sleep(DELTA_EVERY).await;
                emitted
                    .lock()
                    .unwrap()
                    .insert(word.trim().to_owned(), Instant::now());
                Ok(ProviderEvent::TextDelta(word))
            }
        });
        let end = futures::stream::iter([
            Ok(ProviderEvent::Usage(Usage::default())),
            Ok(ProviderEvent::Finish(FinishReason::Stop)),
        ]);
        text.chain(end).boxed()
    }
}

#[derive(Debug, Default)]
struct FakeBot {
    updates: Mutex<Vec<Value>>,
    /// Per chat: when each update (send or edit) arrived, and its text.
    shown: Mutex<HashMap<i64, Vec<(Instant, String)>>>,
    next: std::sync::atomic::AtomicI64,
}

struct Responder(Arc<FakeBot>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let name = request
            .url
            .path()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let ok = |result: Value| {
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": result}))
        };
        match name.as_str() {
            "getupdates" => {
                let ready: Vec<Value> = std::mem::take(&mut *self.0.updates.lock().unwrap());
                if ready.is_empty() {
                    ok(json!([])).set_delay(Duration::from_millis(100))
                } else {
                    ok(json!(ready))
                }
            }
            "sendmessage" | "editmessagetext" => {
                let chat = body["chat_id"].as_i64().unwrap_or(0);
                let text = body["text"].as_str().unwrap_or_default().to_owned();
                self.0
                    .shown
                    .lock()
                    .unwrap()
                    .entry(chat)
                    .or_default()
                    .push((Instant::now(), text.clone()));
                let id = body["message_id"].as_i64().unwrap_or_else(|| {
                    self.0
                        .next
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                        + 1
                });
                ok(
                    json!({"message_id": id, "date": 1_700_000_000, "text": text,
                    "chat": {"id": chat, "type": "group", "title": "load"}}),
                )
            }
            _ => ok(json!(true)),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let chats: i64 = args.next().map_or(Ok(200), |a| a.parse())?;
    let deltas: usize = args.next().map_or(Ok(60), |a| a.parse())?;

    let server = MockServer::start().await;
    let bot = Arc::new(FakeBot::default());
    Mock::given(method("POST"))
        .respond_with(Responder(bot.clone()))
        .mount(&server)
        .await;

    let emitted: Emitted = Arc::default();
    let store = Arc::new(MemoryStore::new());
    let user = store
        .create_user(NewUser::new("load", UserRole::User))
        .await?;
    let provider = Arc::new(TimedProvider {
        deltas,
        emitted: emitted.clone(),
    });
    let catalog = AgentCatalog::new().with_provider("timed", provider, vec!["m".into()]);
    store
        .create_preset(NewPreset::new("load", PresetConfig::new("timed", "m")))
        .await?;
    let service = ConversationService::new(store.clone(), Arc::new(catalog));
    let channel = TelegramChannel::new(
        TelegramConfig::new("1:load")
            .with_api_url(server.uri())
            .with_poll_timeout(Duration::from_secs(1)),
    )?;
    let mut config = BridgeConfig::default();
    for chat in 0..chats {
        config = config.allow(AllowEntry::new(
            "telegram",
            (1000 + chat).to_string(),
            user.id,
        ));
    }
    let interval = config.edit_interval;
    let bridge = Bridge::new(
        Arc::new(LocalRuntime::new(service)),
        store,
        vec![Arc::new(channel)],
        config,
    );
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let cancel = cancel.clone();
        async move { bridge.run(cancel).await }
    });

    let started = Instant::now();
    {
        let mut updates = bot.updates.lock().unwrap();
        for chat in 0..chats {
            updates.push(json!({"update_id": chat + 1, "message": {
                "message_id": chat + 1, "date": 1_700_000_000,
                "chat": {"id": -(chat + 1), "type": "group", "title": "load"},
                "from": {"id": 1000 + chat, "is_bot": false, "first_name": "L"},
                "text": format!("c{chat}"),
            }}));
        }
    }
    let last_word = |chat: i64| format!("c{chat}w{}", deltas - 1);
    loop {
        let done = {
            let shown = bot.shown.lock().unwrap();
            (0..chats).all(|c| {
                shown
                    .get(&-(c + 1))
                    .is_some_and(|u| u.iter().any(|(_, t)| t.contains(&last_word(c))))
            })
        };
        if done || started.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wall = started.elapsed();
    cancel.cancel();
    let _ = task.await;

    let shown = bot.shown.lock().unwrap();
    let emitted = emitted.lock().unwrap();
    let (mut max_per_s, mut updates, mut delays, mut complete) = (0usize, 0usize, Vec::new(), 0);
    for chat in 0..chats {
        let Some(list) = shown.get(&-(chat + 1)) else {
            continue;
        };
        updates += list.len();
        complete += usize::from(list.iter().any(|(_, t)| t.contains(&last_word(chat))));
        for (i, (at, _)) in list.iter().enumerate() {
            let in_window = list[i..]
                .iter()
                .take_while(|(b, _)| b.duration_since(*at) < Duration::from_secs(1))
                .count();
            max_per_s = max_per_s.max(in_window);
        }
        for w in 0..deltas {
            let word = format!("c{chat}w{w}");
            let (Some(sent), Some((seen, _))) = (
                emitted.get(&word),
                list.iter()
                    .find(|(_, t)| t.contains(&format!("{word} ")) || t.ends_with(&word)),
            ) else {
                continue;
            };
            delays.push(seen.saturating_duration_since(*sent));
        }
    }
    delays.sort();
    let pct = |p: usize| {
        delays
            .get((delays.len() * p / 100).min(delays.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "chats={chats} deltas/chat={deltas} delta_every={DELTA_EVERY:?} edit_interval={interval:?}"
    );
    println!(
        "complete={complete}/{chats} wall={wall:.2?} updates={updates} ({:.1}/chat)",
        updates as f64 / chats as f64
    );
    println!("max updates per chat in any 1 s window: {max_per_s}");
    println!(
        "delta→shown delay: p50={:?} p90={:?} p99={:?} max={:?}",
        pct(50),
        pct(90),
        pct(99),
        delays.last().copied().unwrap_or_default()
    );
    Ok(())
}
