//! A request's overrides (`RunOverrides`): sampling settings capped by the
//! preset, the tool choice of the first model call only, client tools whose
//! calls end the run for the client, and the provider's stop reason on
//! `RUN_FINISHED`.

use std::sync::Arc;

use netherbrain_core::agent::{
    Agent, CollectingSink, OverrideError, RunControl, RunOverrides, RunRequest,
};
use netherbrain_core::provider::{ModelSettings, ProviderEvent, ToolChoice, ToolDefinition};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::tool::{
    RegistryError, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry,
};
use netherbrain_core::{AgentEvent, ConversationId, FinishReason, SessionId, SessionStatus};
use serde_json::json;

#[derive(serde::Deserialize, netherbrain_core::schemars::JsonSchema)]
struct NoArgs {}

#[derive(Debug)]
struct Clock;

#[async_trait::async_trait]
impl Tool for Clock {
    type Args = NoArgs;
    fn name(&self) -> &str {
        "clock"
    }
    fn description(&self) -> &str {
        "Tells the time"
    }
    async fn call(&self, _: NoArgs, _: ToolContext) -> Result<ToolOutput, ToolError> {
        Ok("12:00".into())
    }
}

fn weather() -> ToolDefinition {
    ToolDefinition::new(
        "get_weather",
        "Weather in a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )
}

fn agent(provider: Arc<ScriptedProvider>) -> Agent {
    Agent::builder(provider, "m")
        .settings(
            ModelSettings::default()
                .with_max_tokens(100)
                .with_temperature(0.7),
        )
        .tools(ToolRegistry::new().with(Clock).unwrap())
        .build()
}

fn request() -> RunRequest {
    RunRequest::new(ConversationId::new(), SessionId::new()).with_user_text("go")
}

fn finished(sink: &CollectingSink) -> netherbrain_core::RunResult {
    sink.events
        .iter()
        .find_map(|e| match e {
            AgentEvent::RunFinished { result, .. } => Some(result.clone()),
            _ => None,
        })
        .expect("RUN_FINISHED")
}

#[tokio::test]
async fn settings_are_capped_and_the_tool_choice_binds_the_first_call_only() {
    let provider = Arc::new(ScriptedProvider::new([
        ScriptedResponse::builder()
            .tool_call("c1", "clock", "{}")
            .build(),
        ScriptedResponse::text("It is noon."),
    ]));
    let agent = agent(provider.clone())
        .with_overrides(
            &RunOverrides::default()
                .with_temperature(0.1)
                .with_max_tokens(5000)
                .with_stop(vec!["END".into()])
                .with_tool_choice(ToolChoice::Required),
        )
        .unwrap();
    let mut sink = CollectingSink::new();
    let outcome = agent.run(request(), RunControl::default(), &mut sink).await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].settings.temperature, Some(0.1));
    assert_eq!(
        requests[0].settings.max_tokens,
        Some(100),
        "capped by the preset"
    );
    assert_eq!(requests[0].settings.stop, ["END"]);
    assert_eq!(requests[0].tool_choice, Some(ToolChoice::Required));
    assert_eq!(requests[1].tool_choice, None, "later calls are the model's");
    assert_eq!(finished(&sink).finish_reason, None, "a normal stop");
}

#[tokio::test]
async fn client_tool_calls_end_the_run_for_the_client() {
    let provider = Arc::new(ScriptedProvider::new([ScriptedResponse::builder()
        .tool_call("c_time", "clock", "{}")
        .tool_call("c_w", "get_weather", r#"{"city":"Oslo"}"#)
        .build()]));
    let agent = agent(provider.clone())
        .with_overrides(&RunOverrides::default().with_client_tools(vec![weather()]))
        .unwrap();
    let mut sink = CollectingSink::new();
    let outcome = agent.run(request(), RunControl::default(), &mut sink).await;
    assert_eq!(outcome.status, SessionStatus::AwaitingToolResults);
    let deferred: Vec<&str> = outcome
        .deferred_tool_calls
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(deferred, ["get_weather"]);
    assert_eq!(provider.requests()[0].tools.len(), 2);
    // the server's tool ran in the same round
    let results: Vec<String> = sink
        .messages
        .iter()
        .flat_map(|m| m.tool_results())
        .map(|r| r.content.clone())
        .collect();
    assert_eq!(results, ["12:00"]);
}

#[tokio::test]
async fn a_cut_off_answer_reports_length() {
    let provider = Arc::new(ScriptedProvider::new([ScriptedResponse::events(vec![
        ProviderEvent::TextDelta("The answer is".into()),
        ProviderEvent::Finish(FinishReason::Length),
    ])]));
    let mut sink = CollectingSink::new();
    let outcome = agent(provider)
        .run(request(), RunControl::default(), &mut sink)
        .await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    let result = finished(&sink);
    assert_eq!(result.finish_reason, Some(FinishReason::Length));
    let wire = serde_json::to_value(&result).unwrap();
    assert_eq!(wire["finishReason"], "length");
}

#[test]
fn overrides_that_cannot_apply_are_refused() {
    let a = || agent(Arc::new(ScriptedProvider::new([])));
    let dup = ToolDefinition::new("clock", "again", json!({"type": "object"}));
    assert!(matches!(
        a().with_overrides(&RunOverrides::default().with_client_tools(vec![dup])),
        Err(OverrideError::Tool(RegistryError::DuplicateName(_)))
    ));
    let not_object = ToolDefinition::new("x", "", json!({"type": "string"}));
    assert!(
        a().with_overrides(&RunOverrides::default().with_client_tools(vec![not_object]))
            .is_err()
    );
    assert!(
        a().with_overrides(
            &RunOverrides::default().with_tool_choice(ToolChoice::Function("nope".into()))
        )
        .is_err()
    );
    assert!(
        a().with_overrides(
            &RunOverrides::default().with_tool_choice(ToolChoice::Function("clock".into()))
        )
        .is_ok()
    );
    assert!(
        a().with_overrides(&RunOverrides::default().with_temperature(-0.5))
            .is_err()
    );
    assert!(
        a().with_overrides(&RunOverrides::default().with_stop(vec!["a".into(); 5]))
            .is_err()
    );
}
