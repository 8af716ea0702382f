//! The checked-in `docs/openapi.json` must match the generated document.

use std::path::PathBuf;

fn checked_in_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

#[test]
fn openapi_document_is_up_to_date() {
    let generated = netherbrain_http::openapi_json();
    let path = checked_in_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is out of date; regenerate it with\n    \
         UPDATE_OPENAPI=1 cargo test -p netherbrain-http --test openapi"
    );
}

#[test]
fn every_route_is_documented() {
    let doc = serde_json::to_value(netherbrain_http::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/health",
        "/api/auth/login",
        "/api/auth/me",
        "/api/users/{id}/reset-password",
        "/api/keys/{id}/revoke",
        "/api/presets/import",
        "/api/presets/{id}/export",
        "/api/workspaces/{id}/delete",
        "/api/conversations/run",
        "/api/conversations/{id}/fork",
        "/api/conversations/{id}/events",
        "/api/conversations/{id}/turns",
        "/api/sessions/{id}/resume",
        "/api/sessions/{id}/events",
        "/api/toolsets",
        "/api/models",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Public routes opt out of the global bearer requirement.
    assert_eq!(
        doc["paths"]["/api/health"]["get"]["security"],
        serde_json::json!([{}])
    );
}

// ---- the core wire types' schemas match their serde form ----

use netherbrain_core::agent::{AgentLimits, CompactionStrategy, ToolDecision};
use netherbrain_core::provider::{ModelSettings, ReasoningEffort};
use netherbrain_core::{
    AgentEvent, ApprovalPolicy, ContentPart, ConversationId, EventEnvelope, ImageSource, Message,
    PresetConfig, Role, RunResult, SessionId, SessionStatus, ToolCall, ToolResult,
    ToolResultStatus, Usage, UsageByModel,
};
use netherbrain_http::dto::RunInput;
use serde::Serialize;
use serde_json::{Value, json};

/// Validates instances against one component schema of the published
/// document (formats checked).
struct Component {
    name: &'static str,
    validator: jsonschema::Validator,
}

impl Component {
    fn new(doc: &Value, name: &'static str) -> Self {
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "no component schema `{name}`"
        );
        // The document's `#/components/schemas/…` references resolve
        // against this root, which carries the components.
        let root = json!({
            "$ref": format!("#/components/schemas/{name}"),
            "components": doc["components"],
        });
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("`{name}` does not compile: {e}"));
        Self { name, validator }
    }

    /// Asserts that `value`'s serde form is valid; returns that form.
    fn accepts(&self, value: &impl Serialize) -> Value {
        let json = serde_json::to_value(value).unwrap();
        let errors: Vec<String> = self
            .validator
            .iter_errors(&json)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} rejects its own serde form {json}:\n  {}",
            self.name,
            errors.join("\n  ")
        );
        json
    }

    /// Asserts that a hand-written value is invalid.
    fn rejects(&self, json: Value) {
        assert!(
            !self.validator.is_valid(&json),
            "{} accepts the invalid {json}",
            self.name
        );
    }
}

fn document() -> Value {
    netherbrain_http::openapi()
}

/// The `const` values of `tag` across a tagged enum's `oneOf` variants.
fn tags(doc: &Value, name: &str, tag: &str) -> std::collections::BTreeSet<String> {
    let variants = doc["components"]["schemas"][name]["oneOf"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} is not a oneOf"));
    variants
        .iter()
        .map(|v| {
            v["properties"][tag]["const"]
                .as_str()
                .unwrap_or_else(|| panic!("a {name} variant has no `{tag}` const: {v}"))
                .to_owned()
        })
        .collect()
}

/// The values a string enum's schema allows (`enum`, or `oneOf` of `const`s
/// when its variants carry descriptions).
fn enum_values(doc: &Value, name: &str) -> Vec<String> {
    let schema = &doc["components"]["schemas"][name];
    let values: Vec<&Value> = match schema["enum"].as_array() {
        Some(values) => values.iter().collect(),
        None => schema["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is neither enum nor oneOf: {schema}"))
            .iter()
            .map(|v| &v["const"])
            .collect(),
    };
    values
        .into_iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{name}: {v}"))
                .to_owned()
        })
        .collect()
}

/// Every property `name`'s schema declares is present (and not null) in
/// `value`: the sample exercises every field.
fn assert_every_field(doc: &Value, name: &str, value: &Value) {
    let properties = doc["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{name} has no properties"));
    for field in properties.keys() {
        assert!(
            !value[field].is_null(),
            "the {name} sample leaves `{field}` out: {value}"
        );
    }
}

fn call(id: &str) -> ToolCall {
    ToolCall::new(id, "add", json!({"a": 1, "b": 2}))
}

fn usage() -> UsageByModel {
    let mut by_model = UsageByModel::default();
    by_model.add(
        "gpt-4o",
        Usage {
            input_tokens: 12,
            output_tokens: 5,
            cache_read_tokens: 3,
            cache_write_tokens: 1,
            reasoning_tokens: 2,
            requests: 1,
        },
    );
    by_model
}

fn every_event() -> Vec<AgentEvent> {
    let thread_id = ConversationId::new();
    let run_id = SessionId::new();
    let mut finished = RunResult::new(SessionStatus::AwaitingToolResults);
    finished.usage = usage();
    finished.deferred_tool_calls = vec![call("c1"), ToolCall::new("c2", "raw", json!("{not json"))];
    let m = || "m1".to_owned();
    let mut events = vec![
        AgentEvent::RunStarted { thread_id, run_id },
        AgentEvent::TextMessageStart {
            message_id: m(),
            role: Role::Assistant,
        },
        AgentEvent::TextMessageContent {
            message_id: m(),
            delta: "Hi".into(),
        },
        AgentEvent::TextMessageEnd { message_id: m() },
        AgentEvent::ReasoningStart { message_id: m() },
        AgentEvent::ReasoningMessageStart {
            message_id: m(),
            role: Role::Assistant,
        },
        AgentEvent::ReasoningMessageContent {
            message_id: m(),
            delta: "hmm".into(),
        },
        AgentEvent::ReasoningMessageEnd { message_id: m() },
        AgentEvent::ReasoningEnd { message_id: m() },
        AgentEvent::ToolCallStart {
            tool_call_id: "c1".into(),
            tool_call_name: "add".into(),
            parent_message_id: Some(m()),
        },
        AgentEvent::ToolCallStart {
            tool_call_id: "c1".into(),
            tool_call_name: "add".into(),
            parent_message_id: None,
        },
        AgentEvent::ToolCallArgs {
            tool_call_id: "c1".into(),
            delta: "{\"a\":".into(),
        },
        AgentEvent::ToolCallEnd {
            tool_call_id: "c1".into(),
        },
        AgentEvent::RunFinished {
            thread_id,
            run_id,
            result: finished,
        },
        AgentEvent::RunFinished {
            thread_id,
            run_id,
            result: RunResult::new(SessionStatus::Committed),
        },
        AgentEvent::RunError {
            message: "rate limited".into(),
            code: Some("rate_limited".into()),
        },
        AgentEvent::RunError {
            message: "boom".into(),
            code: None,
        },
        AgentEvent::Custom {
            name: netherbrain_core::custom::STEERING_RECEIVED.into(),
            value: json!({"text": "also check the logs"}),
        },
        AgentEvent::Custom {
            name: "x".into(),
            value: Value::Null,
        },
    ];
    for status in [
        ToolResultStatus::Success,
        ToolResultStatus::Error,
        ToolResultStatus::Cancel,
        ToolResultStatus::Denied,
    ] {
        events.push(AgentEvent::ToolCallResult {
            message_id: "t1".into(),
            tool_call_id: "c1".into(),
            content: "3".into(),
            role: Role::Tool,
            status,
        });
    }
    events
}

fn every_part() -> Vec<ContentPart> {
    vec![
        ContentPart::text("hello"),
        ContentPart::Image {
            source: ImageSource::Url {
                url: "https://example.com/cat.png".into(),
            },
        },
        ContentPart::Image {
            source: ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into(),
            },
        },
        ContentPart::Reasoning {
            text: "thinking".into(),
            signature: Some("sig".into()),
        },
        ContentPart::Reasoning {
            text: "thinking".into(),
            signature: None,
        },
        ContentPart::ToolCall(call("c1")),
        ContentPart::ToolResult(ToolResult::new("c1", "3", ToolResultStatus::Denied)),
        ContentPart::Summary {
            text: "earlier: greetings".into(),
        },
    ]
}

fn full_preset() -> PresetConfig {
    PresetConfig::new("openai", "gpt-4o-mini")
        .with_system_prompt("You are helpful.")
        .with_settings(
            ModelSettings::default()
                .with_temperature(0.25)
                .with_top_p(0.9)
                .with_max_tokens(512)
                .with_reasoning_effort(ReasoningEffort::High)
                .with_stop(vec!["END".into()]),
        )
        .with_toolsets(vec!["clock".into()])
        .with_tool_policy("clock", netherbrain_core::ToolPolicy::Deny)
        .with_tool_options("clock", serde_json::json!({"zone": "UTC"}))
        .with_mcp_server(
            "git",
            netherbrain_core::tool::McpServerConfig::stdio("mcp-server-git")
                .with_args(["--repository", "."])
                .with_env("LOG_LEVEL", "warning")
                .with_env_from("GITHUB_TOKEN", "MCP_GITHUB_TOKEN"),
        )
        .with_mcp_server(
            "docs",
            netherbrain_core::tool::McpServerConfig::http("http://127.0.0.1:8000/mcp")
                .with_header("X-Team", "platform")
                .with_header_from_env("Authorization", "DOCS_MCP_AUTHORIZATION")
                .with_timeout_secs(10),
        )
        .with_approval(ApprovalPolicy::Tools {
            names: vec!["shell".into()],
        })
        .with_limits(
            AgentLimits::default()
                .with_max_tool_rounds(5)
                .with_tool_timeout(std::time::Duration::from_millis(1500))
                .with_max_parallel_tool_calls(2)
                .with_context_budget(Some(32_000))
                .with_compaction(CompactionStrategy::Truncate)
                .with_max_provider_retries(1),
        )
        .with_memory(
            netherbrain_core::MemorySettings::injected()
                .with_top_k(3)
                .with_token_budget(300),
        )
        .with_daily_token_budget(Some(250_000))
}

#[test]
fn every_agent_event_matches_its_schema() {
    let doc = document();
    let schema = Component::new(&doc, "AgentEvent");
    let frame = Component::new(&doc, "ServerSentEvent");
    let envelope = Component::new(&doc, "EventEnvelope");
    let session_id = SessionId::new();
    let mut seen = std::collections::BTreeSet::new();
    for (seq, event) in every_event().into_iter().enumerate() {
        let json = schema.accepts(&event);
        seen.insert(json["type"].as_str().unwrap().to_owned());
        // What the SSE responses carry, as `crate::sse` writes it.
        frame.accepts(&json!({
            "id": (seq + 1).to_string(),
            "event": event.type_name(),
            "data": json,
        }));
        envelope.accepts(&EventEnvelope::new(session_id, seq as u64 + 1, event));
    }
    assert_eq!(
        seen,
        tags(&doc, "AgentEvent", "type"),
        "a variant has no sample"
    );

    schema.rejects(json!({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1"}));
    schema.rejects(json!({"type": "TEXT_MESSAGE_CONTENT", "message_id": "m1", "delta": "x"}));
    schema.rejects(json!({"type": "RUN_STARTED", "threadId": "not-a-uuid", "runId": session_id}));
    schema.rejects(json!({"type": "NOT_AN_EVENT"}));
    schema.rejects(
        json!({"type": "RUN_FINISHED", "threadId": session_id, "runId": session_id,
        "result": {"status": "done"}}),
    );
    frame.rejects(json!({"id": "x", "event": "TEXT_MESSAGE_END",
        "data": {"type": "TEXT_MESSAGE_END", "messageId": "m"}}));
    envelope.rejects(
        json!({"session_id": session_id, "seq": 1, "at": "yesterday",
        "event": {"type": "TEXT_MESSAGE_END", "messageId": "m"}}),
    );
}

#[test]
fn messages_with_every_content_part_match_their_schema() {
    let doc = document();
    let message = Component::new(&doc, "Message");
    let part = Component::new(&doc, "ContentPart");
    let mut seen = std::collections::BTreeSet::new();
    for p in every_part() {
        seen.insert(part.accepts(&p)["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        tags(&doc, "ContentPart", "type"),
        "a part kind has no sample"
    );
    assert_eq!(tags(&doc, "ImageSource", "kind").len(), 2);

    let roles = [Role::System, Role::User, Role::Assistant, Role::Tool];
    let role_names: Vec<String> = roles.iter().map(|r| r.as_str().to_owned()).collect();
    assert_eq!(role_names, enum_values(&doc, "Role"));
    for role in roles {
        message.accepts(&Message::new(role, every_part()));
    }
    message.accepts(&Message::tool(vec![ToolResult::success("c1", "ok")]));

    // `RunInput` takes text or messages.
    let input = Component::new(&doc, "RunInput");
    input.accepts(&RunInput::Text("hi".into()));
    input.accepts(&RunInput::Messages(vec![
        Message::user("hi"),
        Message::assistant("hello"),
    ]));
    input.rejects(json!({"role": "user"}));

    message.rejects(json!({"role": "robot", "content": []}));
    message.rejects(json!({"role": "user"}));
    part.rejects(json!({"type": "video", "url": "https://example.com/v.mp4"}));
    part.rejects(json!({"type": "text"}));
    part.rejects(json!({"type": "tool_call", "id": "c1", "name": "add"}));
    part.rejects(
        json!({"type": "tool_result", "call_id": "c1", "content": "x", "status": "maybe"}),
    );
    part.rejects(json!({"type": "image", "source": {"kind": "file", "path": "/etc/passwd"}}));
}

#[test]
fn a_full_preset_config_matches_its_schema() {
    let doc = document();
    let schema = Component::new(&doc, "PresetConfig");
    let json = schema.accepts(&full_preset());
    assert_every_field(&doc, "PresetConfig", &json);
    assert_every_field(&doc, "ModelSettings", &json["settings"]);
    assert_every_field(&doc, "AgentLimits", &json["limits"]);
    assert_eq!(json["limits"]["tool_timeout_secs"], json!(1.5));

    // The minimal form and every approval mode and compaction strategy.
    schema.accepts(&PresetConfig::new("anthropic", "claude"));
    let policies = [
        ApprovalPolicy::ToolDefault,
        ApprovalPolicy::Always,
        ApprovalPolicy::Never,
        ApprovalPolicy::Tools { names: vec![] },
    ];
    let mut modes = std::collections::BTreeSet::new();
    for policy in policies {
        let json = schema.accepts(&PresetConfig::new("p", "m").with_approval(policy));
        modes.insert(json["approval"]["mode"].as_str().unwrap().to_owned());
    }
    assert_eq!(modes, tags(&doc, "ApprovalPolicy", "mode"));
    let limits = Component::new(&doc, "AgentLimits");
    for strategy in [CompactionStrategy::Summarize, CompactionStrategy::Truncate] {
        limits.accepts(&AgentLimits::default().with_compaction(strategy));
    }
    // serde refuses a negative timeout (`Duration`), and so does the schema.
    let negative = json!({"tool_timeout_secs": -1.0});
    assert!(serde_json::from_value::<AgentLimits>(negative.clone()).is_err());
    limits.rejects(negative);
    let settings = Component::new(&doc, "ModelSettings");
    for effort in [
        ReasoningEffort::Low,
        ReasoningEffort::Medium,
        ReasoningEffort::High,
    ] {
        settings.accepts(&ModelSettings::default().with_reasoning_effort(effort));
    }

    schema.rejects(json!({"profile": "openai"}));
    schema.rejects(json!({"profile": "openai", "model": "m", "approval": {"mode": "sometimes"}}));
    schema
        .rejects(json!({"profile": "openai", "model": "m", "limits": {"tool_timeout_secs": "2"}}));
    schema.rejects(
        json!({"profile": "openai", "model": "m", "limits": {"tool_timeout": {"secs": 2}},
        "settings": {"reasoning_effort": "extreme"}}),
    );
}

#[test]
fn usage_statuses_and_decisions_match_their_schemas() {
    let doc = document();
    let by_model = Component::new(&doc, "UsageByModel");
    let json = by_model.accepts(&usage());
    assert_every_field(&doc, "Usage", &json["gpt-4o"]);
    by_model.accepts(&UsageByModel::default());
    by_model.rejects(json!({"gpt-4o": {"input_tokens": -1}}));

    let status = Component::new(&doc, "SessionStatus");
    let statuses = [
        SessionStatus::Created,
        SessionStatus::Running,
        SessionStatus::Committed,
        SessionStatus::AwaitingToolResults,
        SessionStatus::Interrupted,
        SessionStatus::Failed,
    ];
    for s in statuses {
        status.accepts(&s);
    }
    assert_eq!(enum_values(&doc, "SessionStatus").len(), statuses.len());
    status.rejects(json!("done"));

    let decision = Component::new(&doc, "ToolDecision");
    let mut seen = std::collections::BTreeSet::new();
    for d in [
        ToolDecision::approve("c1"),
        ToolDecision::deny("c1", Some("too risky".into())),
        ToolDecision::deny("c1", None),
        ToolDecision::result("c1", "42", true),
    ] {
        seen.insert(
            decision.accepts(&d)["decision"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(seen, tags(&doc, "ToolDecision", "decision"));
    decision.rejects(json!({"decision": "maybe", "call_id": "c1"}));
    decision.rejects(json!({"decision": "result", "call_id": "c1"}));
}

/// Every `$ref` in the document names a component, and no component is
/// left a placeholder.
#[test]
fn every_reference_resolves() {
    fn walk(value: &Value, components: &Value, refs: &mut usize) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let (kind, name) = target
                        .strip_prefix("#/components/")
                        .and_then(|rest| rest.split_once('/'))
                        .unwrap_or_else(|| panic!("unexpected reference {target}"));
                    assert!(
                        matches!(kind, "schemas" | "responses"),
                        "unexpected reference {target}"
                    );
                    assert!(
                        components[kind].get(name).is_some(),
                        "dangling reference {target}"
                    );
                    *refs += 1;
                }
                map.values().for_each(|v| walk(v, components, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, components, refs)),
            _ => {}
        }
    }
    let doc = document();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        assert_ne!(
            schema,
            &json!({}),
            "component {name} is an empty placeholder"
        );
    }
    let mut refs = 0;
    walk(&doc, &doc["components"], &mut refs);
    assert!(refs > 100, "only {refs} references");
    // The fields named in the brief point at the typed schemas.
    let field = |schema: &str, field: &str| {
        doc["components"]["schemas"][schema]["properties"][field].clone()
    };
    assert_eq!(
        field("Turn", "messages")["items"]["$ref"],
        "#/components/schemas/Message"
    );
    assert_eq!(
        field("PresetView", "config")["$ref"],
        "#/components/schemas/PresetConfig"
    );
    assert_eq!(
        field("RunConversationRequest", "input")["$ref"],
        "#/components/schemas/RunInput"
    );
    assert_eq!(
        field("SessionView", "usage")["$ref"],
        "#/components/schemas/UsageByModel"
    );
    assert_eq!(
        doc["paths"]["/api/sessions/{id}/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
            ["schema"]["$ref"],
        "#/components/schemas/ServerSentEvent"
    );
    // The served form and the value agree.
    let text: Value = serde_json::from_str(&netherbrain_http::openapi_json()).unwrap();
    assert_eq!(text, doc);
}
