//! Scripted agents for the conversation and streaming tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use netherbrain_core::PresetConfig;
use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::provider::ProviderEvent;
use netherbrain_core::schemars::{self, JsonSchema};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::tool::{
    DynTool, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSet,
};
use netherbrain_http::client::Client;
use netherbrain_http::dto::CreatePresetRequest;
use serde::Deserialize;
use uuid::Uuid;

/// Profile name of the scripted provider.
pub const PROFILE: &str = "local";
/// Its model.
pub const MODEL: &str = "tiny";

/// A catalog with `provider` as profile `local` and the `ops` tool set.
pub fn catalog(provider: Arc<ScriptedProvider>) -> AgentCatalog {
    AgentCatalog::new()
        .with_provider(PROFILE, provider, vec![MODEL.to_owned()])
        .with_toolset(Arc::new(OpsTools))
}

/// Creates a preset on the scripted provider (with the `ops` tool set).
pub async fn preset(admin: &Client, name: &str) -> Uuid {
    admin
        .create_preset(&CreatePresetRequest {
            name: name.to_owned(),
            description: None,
            config: PresetConfig::new(PROFILE, MODEL)
                .with_system_prompt("Be brief.")
                .with_toolsets(vec!["ops".to_owned()]),
        })
        .await
        .expect("create preset")
        .id
}

/// A response streaming `n` text deltas `w0 w1 …`.
pub fn many_deltas(n: usize) -> ScriptedResponse {
    let mut b = ScriptedResponse::builder();
    for i in 0..n {
        b = b.event(ProviderEvent::TextDelta(format!("w{i} ")));
    }
    b.build()
}

/// Arguments of [`Deploy`].
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeployArgs {
    /// Target.
    pub target: String,
}

/// A tool that needs approval.
#[derive(Debug)]
pub struct Deploy;

#[async_trait]
impl Tool for Deploy {
    type Args = DeployArgs;
    fn name(&self) -> &str {
        "deploy"
    }
    fn description(&self) -> &str {
        "Deploys to a target"
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: DeployArgs, _ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        Ok(ToolOutput::text(format!("deployed to {}", args.target)))
    }
}

/// The `ops` tool set: [`Deploy`].
#[derive(Debug)]
pub struct OpsTools;

#[async_trait]
impl ToolSet for OpsTools {
    fn name(&self) -> &str {
        "ops"
    }
    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        let registry = ToolRegistry::new()
            .with(Deploy)
            .map_err(ToolError::failed)?;
        Ok(vec![registry.get("deploy").expect("deploy").clone()])
    }
}

/// One parsed SSE event.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    pub id: u64,
    pub event: String,
    pub data: serde_json::Value,
}

/// Reads at most `limit` events of an SSE response (all when `None`).
pub async fn read_sse(resp: reqwest::Response, limit: Option<usize>) -> Vec<Sse> {
    use eventsource_stream::Eventsource;
    let mut stream = resp.bytes_stream().eventsource();
    let mut out = Vec::new();
    while let Some(event) = stream.next().await {
        let event = event.expect("sse");
        out.push(Sse {
            id: event.id.parse().expect("numeric id"),
            event: event.event,
            data: serde_json::from_str(&event.data).expect("json data"),
        });
        if limit.is_some_and(|n| out.len() >= n) {
            break;
        }
    }
    out
}

/// Replaces UUIDs and 32-hex-digit ids with placeholders.
pub fn redact(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let is_hex = |c: char| c.is_ascii_hexdigit();
    while i < chars.len() {
        if i + 36 <= chars.len() {
            let cand: String = chars[i..i + 36].iter().collect();
            if Uuid::parse_str(&cand).is_ok() && cand.matches('-').count() == 4 {
                out.push_str("[uuid]");
                i += 36;
                continue;
            }
        }
        if i + 32 <= chars.len() && chars[i..i + 32].iter().all(|c| is_hex(*c)) {
            out.push_str("[hex]");
            i += 32;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Replaces UUID strings with `[uuid]` and `*_at` timestamps with
/// `[timestamp]`, recursively.
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key.ends_with("_at") && v.is_string() {
                    *v = serde_json::Value::String("[timestamp]".into());
                } else {
                    redact_json(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::String(s) => {
            let r = redact(s);
            if r != *s {
                *s = r;
            }
        }
        _ => {}
    }
}

/// Collects a session's events through the typed client.
pub async fn finish(client: &Client, session_id: Uuid) -> Vec<netherbrain_core::EventEnvelope> {
    let mut stream = client.stream_session_events(session_id, 0);
    let mut out = Vec::new();
    while let Some(e) = stream.next().await {
        out.push(e.expect("event"));
    }
    out
}
