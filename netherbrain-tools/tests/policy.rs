//! The approval policy is the agent loop's: defaults (writing and shell
//! tools ask, reading tools run), per-tool `auto`/`ask`/`deny` from the
//! preset, denials returned to the model; `ask_user` waits for an answer.

use std::sync::Arc;

use netherbrain_core::agent::{AgentCatalog, CollectingSink, RunControl, RunRequest, ToolDecision};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::{
    ApprovalPolicy, ConversationId, Message, PresetConfig, SessionId, SessionStatus, ToolPolicy,
    ToolResultStatus,
};

fn catalog(provider: Arc<ScriptedProvider>) -> AgentCatalog {
    netherbrain_tools::builtin().into_iter().fold(
        AgentCatalog::new().with_provider("p", provider, vec!["m".into()]),
        AgentCatalog::with_toolset,
    )
}

fn calls() -> ScriptedResponse {
    ScriptedResponse::builder()
        .tool_call("c_view", "filesystem_view", r#"{"path":"a.txt"}"#)
        .tool_call(
            "c_write",
            "filesystem_write",
            r#"{"path":"b.txt","content":"new"}"#,
        )
        .tool_call("c_shell", "shell_run", r#"{"command":"echo hi"}"#)
        .build()
}

fn statuses(sink: &CollectingSink) -> Vec<(String, ToolResultStatus)> {
    sink.messages
        .iter()
        .flat_map(Message::tool_results)
        .map(|r| (r.call_id.clone(), r.status))
        .collect()
}

#[tokio::test]
async fn defaults_ask_for_writers_and_the_shell_and_run_readers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\n").unwrap();
    let provider = Arc::new(ScriptedProvider::new([calls()]));
    let config =
        PresetConfig::new("p", "m").with_toolsets(vec!["filesystem".into(), "shell".into()]);
    let agent = catalog(provider).agent(&config).await.unwrap();
    let request = RunRequest::new(ConversationId::new(), SessionId::new())
        .with_user_text("go")
        .with_project_dirs(vec![dir.path().to_owned()]);
    let mut sink = CollectingSink::new();
    let outcome = agent.run(request, RunControl::default(), &mut sink).await;
    assert_eq!(outcome.status, SessionStatus::AwaitingToolResults);
    let deferred: Vec<&str> = outcome
        .deferred_tool_calls
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(deferred, ["c_write", "c_shell"]);
    assert_eq!(
        statuses(&sink),
        [("c_view".to_owned(), ToolResultStatus::Success)]
    );
    assert!(
        !dir.path().join("b.txt").exists(),
        "nothing written before approval"
    );
}

#[tokio::test]
async fn preset_policies_deny_and_auto_per_tool_and_denials_reach_the_model() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\n").unwrap();
    let provider = Arc::new(ScriptedProvider::new([
        calls(),
        ScriptedResponse::text("done"),
    ]));
    let config = PresetConfig::new("p", "m")
        .with_toolsets(vec!["filesystem".into(), "shell".into()])
        .with_tool_policy("shell_run", ToolPolicy::Deny)
        .with_tool_policy("filesystem_write", ToolPolicy::Auto)
        .with_tool_options("shell", serde_json::json!({"sandbox": "none"}));
    let agent = catalog(provider.clone()).agent(&config).await.unwrap();
    let request = RunRequest::new(ConversationId::new(), SessionId::new())
        .with_user_text("go")
        .with_project_dirs(vec![dir.path().to_owned()]);
    let mut sink = CollectingSink::new();
    let outcome = agent.run(request, RunControl::default(), &mut sink).await;
    assert_eq!(outcome.status, SessionStatus::Committed);
    assert_eq!(
        statuses(&sink),
        [
            ("c_view".to_owned(), ToolResultStatus::Success),
            ("c_write".to_owned(), ToolResultStatus::Success),
            ("c_shell".to_owned(), ToolResultStatus::Denied),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b.txt")).unwrap(),
        "new"
    );
    // the second model request carries the denial
    let second = format!("{:?}", provider.requests()[1].messages);
    assert!(
        second.contains("denied by this agent's approval policy"),
        "{second}"
    );

    // `"*"` and ApprovalPolicy::Always: explicit entries still win
    let strict = PresetConfig::new("p", "m")
        .with_approval(ApprovalPolicy::Always)
        .with_tool_policy("filesystem_view", ToolPolicy::Auto);
    assert_eq!(
        strict.policy_for("filesystem_view", false),
        ToolPolicy::Auto
    );
    assert_eq!(strict.policy_for("web_fetch", false), ToolPolicy::Ask);
    let none = PresetConfig::new("p", "m").with_tool_policy("*", ToolPolicy::Deny);
    assert_eq!(none.policy_for("web_fetch", false), ToolPolicy::Deny);
}

#[tokio::test]
async fn ask_user_waits_for_the_answer_and_the_run_continues_with_it() {
    let provider = Arc::new(ScriptedProvider::new([
        ScriptedResponse::builder()
            .tool_call(
                "c_ask",
                "ask_user",
                r#"{"question":"Which colour?","options":["red","blue"]}"#,
            )
            .build(),
        ScriptedResponse::text("Blue it is."),
    ]));
    // even a preset that never asks for approval waits for the user
    let config = PresetConfig::new("p", "m")
        .with_toolsets(vec!["ask_user".into()])
        .with_approval(ApprovalPolicy::Never);
    let agent = catalog(provider.clone()).agent(&config).await.unwrap();
    let conversation = ConversationId::new();
    let request = RunRequest::new(conversation, SessionId::new()).with_user_text("paint it");
    let mut sink = CollectingSink::new();
    let first = agent.run(request, RunControl::default(), &mut sink).await;
    assert_eq!(first.status, SessionStatus::AwaitingToolResults);
    assert_eq!(first.deferred_tool_calls[0].name, "ask_user");
    assert_eq!(
        first.deferred_tool_calls[0].arguments["question"],
        "Which colour?"
    );

    let resume = RunRequest::new(conversation, SessionId::new())
        .with_history(first.new_messages.clone())
        .with_resume(vec![ToolDecision::Result {
            call_id: "c_ask".into(),
            content: "blue".into(),
            is_error: false,
        }]);
    let mut sink = CollectingSink::new();
    let second = agent.run(resume, RunControl::default(), &mut sink).await;
    assert_eq!(second.status, SessionStatus::Committed);
    assert_eq!(second.final_message.as_deref(), Some("Blue it is."));
    let last = format!("{:?}", provider.requests()[1].messages);
    assert!(last.contains("blue"), "{last}");
}
