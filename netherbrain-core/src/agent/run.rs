//! The loop of one run.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures::{FutureExt, StreamExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::builder::Agent;
use super::history;
use super::limits::CompactionStrategy;
use super::request::{
    RunControl, RunFailure, RunOutcome, RunRequest, ToolDecision, pending_tool_calls,
};
use super::sink::{RunSink, SinkError};
use crate::event::{AgentEvent, RunResult, custom};
use crate::ids::{ConversationId, SessionId};
use crate::message::{ContentPart, Message, Role, ToolCall, ToolResult, ToolResultStatus};
use crate::preset::ToolPolicy;
use crate::provider::{
    AccumulatorUpdate, FinishReason, ModelRequest, ModelResponse, ProviderError,
    ResponseAccumulator, ToolDefinition,
};
use crate::session::SessionStatus;
use crate::tool::{ToolContext, ToolError, ToolEvents};
use crate::usage::{Usage, UsageByModel};

/// Content of the result of a call the run did not finish.
/// Events tool calls may have waiting for the stream at once.
const TOOL_EVENTS: usize = 64;

const CANCELLED: &str = "the tool call was cancelled because the run was interrupted";

/// Instructions for the compaction call.
const SUMMARY_PROMPT: &str = "You compact conversations. Summarise the conversation you are given \
so that an assistant can continue it without the original: keep the user's goals and latest \
request, decisions made, facts learned, tool results that still matter, open questions and \
next steps. Be concise and factual; write the summary only.";

/// Why a run stopped early.
enum Halt {
    Interrupted,
    Failed(RunFailure),
    Sink(SinkError),
}

impl From<SinkError> for Halt {
    fn from(e: SinkError) -> Self {
        Self::Sink(e)
    }
}

/// How a run that did not halt ended.
enum Ending {
    Committed,
    Awaiting(Vec<ToolCall>),
}

type Step<T> = Result<T, Halt>;

/// What one streaming attempt produced.
enum Attempt {
    Done(ModelResponse),
    /// Failed before anything of the round was emitted: may be retried.
    Retry(ProviderError),
}

/// The text or reasoning block currently open in the event stream.
#[derive(Clone, PartialEq, Eq)]
enum Block {
    None,
    Text,
    Reasoning(String),
}

/// Event state of one model round.
struct RoundEvents {
    message_id: String,
    block: Block,
    emitted: bool,
}

pub(super) struct Runner<'a> {
    agent: &'a Agent,
    conversation_id: ConversationId,
    session_id: SessionId,
    project_dirs: Vec<PathBuf>,
    control: RunControl,
    sink: &'a mut dyn RunSink,
    /// What the model sees.
    view: Vec<Message>,
    /// Input plus everything created.
    new_messages: Vec<Message>,
    usage: UsageByModel,
    final_message: Option<String>,
    tool_defs: Vec<ToolDefinition>,
    id_prefix: String,
    next_id: u64,
    /// When the run must stop ([`AgentLimits::run_timeout`]).
    deadline: Option<tokio::time::Instant>,
    /// Model calls completed so far.
    model_calls: u32,
    /// Why the last model call ended, when it was not a normal stop or
    /// tool calls ([`RunResult::finish_reason`]).
    finish_reason: Option<FinishReason>,
    /// The preset's system prompt with the recalled memories.
    system_prompt: Option<String>,
}

impl<'a> Runner<'a> {
    pub(super) fn new(
        agent: &'a Agent,
        request: &RunRequest,
        control: RunControl,
        sink: &'a mut dyn RunSink,
    ) -> Self {
        Self {
            agent,
            conversation_id: request.conversation_id,
            session_id: request.session_id,
            project_dirs: request.project_dirs.clone(),
            control,
            sink,
            view: Vec::new(),
            new_messages: Vec::new(),
            usage: UsageByModel::default(),
            final_message: None,
            tool_defs: agent.tools.definitions(),
            id_prefix: format!("msg_{}_", request.session_id.as_uuid().simple()),
            next_id: 0,
            deadline: agent
                .limits
                .run_timeout
                .map(|t| tokio::time::Instant::now() + t),
            model_calls: 0,
            finish_reason: None,
            system_prompt: agent.system_prompt.clone(),
        }
    }

    /// Runs to the end and reports.
    pub(super) async fn execute(mut self, request: RunRequest) -> RunOutcome {
        let span = tracing::info_span!(
            "agent_run",
            session_id = %self.session_id,
            conversation_id = %self.conversation_id,
            model = %self.agent.model,
        );
        tracing::debug!(parent: &span, "run started");
        let result = self.drive(request).instrument(span.clone()).await;
        let (status, deferred, error) = match result {
            Ok(Ending::Committed) => (SessionStatus::Committed, Vec::new(), None),
            Ok(Ending::Awaiting(calls)) => (SessionStatus::AwaitingToolResults, calls, None),
            Err(Halt::Interrupted) => (SessionStatus::Interrupted, Vec::new(), None),
            Err(Halt::Failed(f)) => (SessionStatus::Failed, Vec::new(), Some(f)),
            Err(Halt::Sink(e)) => (
                SessionStatus::Failed,
                Vec::new(),
                Some(RunFailure::new("sink", e.to_string())),
            ),
        };
        let mut outcome = RunOutcome::new(status);
        let terminal = if let Some(failure) = &error {
            tracing::warn!(parent: &span, code = %failure.code, message = %failure.message, "run failed");
            AgentEvent::RunError {
                message: failure.message.clone(),
                code: Some(failure.code.clone()),
            }
        } else {
            tracing::debug!(parent: &span, %status, "run finished");
            let mut result = RunResult::new(status);
            result.usage = self.usage.clone();
            result.deferred_tool_calls = deferred.clone();
            result.finish_reason = self.finish_reason;
            AgentEvent::RunFinished {
                thread_id: self.conversation_id,
                run_id: self.session_id,
                result,
            }
        };
        outcome.error = error;
        if let Err(e) = self.sink.event(terminal).await
            && outcome.error.is_none()
        {
            tracing::warn!(parent: &span, error = %e, "sink failed on the final event");
            outcome.status = SessionStatus::Failed;
            outcome.error = Some(RunFailure::new("sink", e.to_string()));
        }
        outcome.new_messages = self.new_messages;
        outcome.usage = self.usage;
        outcome.final_message = self.final_message;
        outcome.deferred_tool_calls = deferred;
        outcome
    }

    async fn drive(&mut self, request: RunRequest) -> Step<Ending> {
        self.emit(AgentEvent::RunStarted {
            thread_id: self.conversation_id,
            run_id: self.session_id,
        })
        .await?;
        let RunRequest {
            history,
            input,
            resume,
            notices,
            memories,
            ..
        } = request;
        for notice in notices {
            self.emit(notice).await?;
        }
        if let Some(recalled) = memories {
            self.system_prompt = Some(match self.system_prompt.take() {
                Some(system) => format!("{system}\n\n{}", recalled.prompt),
                None => recalled.prompt.clone(),
            });
            self.emit(AgentEvent::Custom {
                name: crate::memory::MEMORIES_RECALLED.to_owned(),
                value: serde_json::to_value(recalled.event()).unwrap_or_default(),
            })
            .await?;
        }
        let pending = if resume.is_empty() {
            Vec::new()
        } else {
            validate_resume(&history, &input, &resume).map_err(Halt::Failed)?
        };
        let mut all = history;
        all.extend(input.iter().cloned());
        self.view = history::from_last_summary(&all).to_vec();
        drop(all);
        self.new_messages = input;
        if !pending.is_empty() {
            self.resume(pending, resume).await?;
        }
        self.view = history::repair(std::mem::take(&mut self.view));
        self.compact().await?;

        let mut tool_rounds: u32 = 0;
        let mut first = true;
        loop {
            self.check_deadline()?;
            if !first {
                self.steer().await?;
            }
            first = false;
            let response = self.model_round().await?;
            if response.tool_calls.is_empty() {
                if self.steer().await? {
                    continue;
                }
                return Ok(Ending::Committed);
            }
            if tool_rounds >= self.agent.limits.max_tool_rounds {
                let n = self.agent.limits.max_tool_rounds;
                let content = format!("not executed: the run reached its limit of {n} tool rounds");
                let results = response
                    .tool_calls
                    .iter()
                    .map(|c| ToolResult::error(c.call.id.clone(), content.clone()))
                    .collect();
                self.publish_results(results).await?;
                return Err(Halt::Failed(RunFailure::new(
                    "max_tool_rounds",
                    format!("the model asked for more tools after {n} tool rounds"),
                )));
            }
            tool_rounds += 1;
            let deferred = self.run_tools(response).await?;
            if !deferred.is_empty() {
                return Ok(Ending::Awaiting(deferred));
            }
        }
    }

    fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}{}", self.id_prefix, self.next_id)
    }

    async fn emit(&mut self, event: AgentEvent) -> Step<()> {
        self.sink.event(event).await.map_err(Halt::Sink)
    }

    /// Persists and records created messages.
    async fn persist(&mut self, messages: Vec<Message>) -> Step<()> {
        self.sink.messages(&messages).await?;
        for m in &messages {
            if m.role == Role::Assistant {
                let text = m.text();
                self.final_message = (!text.is_empty()).then_some(text);
            }
        }
        self.view.extend(messages.iter().cloned());
        self.new_messages.extend(messages);
        Ok(())
    }

    fn is_cancelled(&self) -> bool {
        self.control.cancel.is_cancelled()
    }

    // ----- steering -----

    /// Injects queued steering text; returns whether there was any.
    async fn steer(&mut self) -> Step<bool> {
        let steers = self.control.steering.drain_steers();
        if steers.is_empty() {
            return Ok(false);
        }
        tracing::debug!(count = steers.len(), "steering received");
        let mut texts = Vec::with_capacity(steers.len());
        for steer in steers {
            for notice in steer.notices {
                self.emit(notice).await?;
            }
            texts.push(steer.text);
        }
        let messages = texts.iter().map(Message::user).collect();
        self.persist(messages).await?;
        for text in texts {
            self.emit(AgentEvent::Custom {
                name: custom::STEERING_RECEIVED.to_owned(),
                value: json!({ "text": text }),
            })
            .await?;
        }
        Ok(true)
    }

    // ----- model rounds -----

    fn model_request(&self) -> ModelRequest {
        // A run's tool choice binds its first model call only; later calls
        // (after tool results) are the model's to decide, or a `required`
        // choice would never let the run end.
        let tool_choice = if self.model_calls == 0 {
            self.agent.tool_choice.clone()
        } else {
            None
        };
        let mut request = ModelRequest::new(self.agent.model.clone(), self.view.clone())
            .with_tools(self.tool_defs.clone())
            .with_settings(self.agent.settings.clone())
            .with_tool_choice(tool_choice);
        if let Some(system) = &self.system_prompt {
            request = request.with_system(system.clone());
        }
        request
    }

    fn add_usage(&mut self, mut usage: Usage) {
        usage.requests = usage.requests.max(1);
        self.usage.add(&self.agent.model, usage);
    }

    /// One model round with retries; persists the assistant message and
    /// emits the usage snapshot.
    async fn model_round(&mut self) -> Step<ModelResponse> {
        let mut attempt: u32 = 0;
        let response = loop {
            match self.stream_once().await? {
                Attempt::Done(response) => break response,
                Attempt::Retry(err)
                    if err.is_retryable() && attempt < self.agent.limits.max_provider_retries =>
                {
                    attempt += 1;
                    let delay = retry_delay(&err, attempt);
                    tracing::warn!(error = %err, attempt, ?delay, "retrying the model call");
                    tokio::select! {
                        biased;
                        () = self.control.cancel.cancelled() => return Err(Halt::Interrupted),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Attempt::Retry(err) => return Err(self.provider_failure(&err)),
            }
        };
        self.model_calls += 1;
        self.finish_reason = response
            .finish_reason
            .filter(|r| !matches!(r, FinishReason::Stop | FinishReason::ToolCalls));
        self.emit(AgentEvent::Custom {
            name: custom::USAGE_SNAPSHOT.to_owned(),
            value: serde_json::to_value(&self.usage).unwrap_or_default(),
        })
        .await?;
        Ok(response)
    }

    fn provider_failure(&self, err: &ProviderError) -> Halt {
        if matches!(err, ProviderError::Cancelled) && self.is_cancelled() {
            return Halt::Interrupted;
        }
        Halt::Failed(RunFailure::new(err.code(), err.to_string()))
    }

    /// A failure once the run is past its deadline.
    fn check_deadline(&self) -> Step<()> {
        match self.deadline {
            Some(deadline) if tokio::time::Instant::now() >= deadline => {
                Err(self.deadline_failure())
            }
            _ => Ok(()),
        }
    }

    fn deadline_failure(&self) -> Halt {
        let secs = self.agent.limits.run_timeout.map_or(0, |t| t.as_secs());
        Halt::Failed(RunFailure::new(
            "deadline",
            format!("the run exceeded its time limit of {secs} s"),
        ))
    }

    async fn stream_once(&mut self) -> Step<Attempt> {
        if self.is_cancelled() {
            return Err(Halt::Interrupted);
        }
        let deadline = self.deadline;
        let past_deadline = async move {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(past_deadline);
        let max_output = self.agent.limits.max_output_bytes;
        let mut output: u64 = 0;
        let mut stream = self.agent.provider.stream(self.model_request());
        let mut acc = ResponseAccumulator::new();
        let mut round = RoundEvents {
            message_id: self.fresh_id(),
            block: Block::None,
            emitted: false,
        };
        let cancel = self.control.cancel.clone();
        loop {
            let item = tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    drop(stream);
                    self.abandon_round(acc, &mut round).await?;
                    return Err(Halt::Interrupted);
                }
                () = &mut past_deadline => {
                    drop(stream);
                    self.abandon_round(acc, &mut round).await?;
                    return Err(self.deadline_failure());
                }
                item = stream.next() => item,
            };
            match item {
                Some(Ok(event)) => {
                    output += streamed_bytes(&event);
                    for update in acc.push(event) {
                        self.emit_update(&mut round, update).await?;
                    }
                    if output > max_output {
                        drop(stream);
                        tracing::warn!(
                            bytes = output,
                            "the model's output passed the round's limit"
                        );
                        self.abandon_round(acc, &mut round).await?;
                        return Err(Halt::Failed(RunFailure::new(
                            "output_limit",
                            format!(
                                "the model's answer passed the limit of {max_output} bytes in one round"
                            ),
                        )));
                    }
                }
                Some(Err(err)) => {
                    drop(stream);
                    if !round.emitted {
                        self.add_usage(acc.usage());
                        return Ok(Attempt::Retry(err));
                    }
                    tracing::warn!(error = %err, "the model stream failed mid-round");
                    let halt = self.provider_failure(&err);
                    self.abandon_round(acc, &mut round).await?;
                    return Err(halt);
                }
                None => break,
            }
        }
        drop(stream);
        for update in acc.close() {
            self.emit_update(&mut round, update).await?;
        }
        self.close_block(&mut round).await?;
        let response = acc.finish();
        self.add_usage(response.usage);
        if !response.message.content.is_empty() {
            self.persist(vec![response.message.clone()]).await?;
        }
        Ok(Attempt::Done(response))
    }

    /// Ends a round that will not complete: closes its events, keeps what
    /// arrived and gives its calls `cancel` results.
    async fn abandon_round(
        &mut self,
        mut acc: ResponseAccumulator,
        round: &mut RoundEvents,
    ) -> Step<()> {
        for update in acc.close() {
            self.emit_update(round, update).await?;
        }
        self.close_block(round).await?;
        let response = acc.finish();
        self.add_usage(response.usage);
        if response.message.content.is_empty() {
            return Ok(());
        }
        self.persist(vec![response.message]).await?;
        let results: Vec<ToolResult> = response
            .tool_calls
            .iter()
            .map(|c| ToolResult::new(c.call.id.clone(), CANCELLED, ToolResultStatus::Cancel))
            .collect();
        self.publish_results(results).await
    }

    async fn close_block(&mut self, round: &mut RoundEvents) -> Step<()> {
        match std::mem::replace(&mut round.block, Block::None) {
            Block::None => {}
            Block::Text => {
                self.emit(AgentEvent::TextMessageEnd {
                    message_id: round.message_id.clone(),
                })
                .await?;
            }
            Block::Reasoning(id) => {
                self.emit(AgentEvent::ReasoningMessageEnd {
                    message_id: id.clone(),
                })
                .await?;
                self.emit(AgentEvent::ReasoningEnd { message_id: id })
                    .await?;
            }
        }
        Ok(())
    }

    async fn emit_update(
        &mut self,
        round: &mut RoundEvents,
        update: AccumulatorUpdate,
    ) -> Step<()> {
        round.emitted = true;
        match update {
            AccumulatorUpdate::TextDelta(delta) => {
                if round.block != Block::Text {
                    self.close_block(round).await?;
                    self.emit(AgentEvent::TextMessageStart {
                        message_id: round.message_id.clone(),
                        role: Role::Assistant,
                    })
                    .await?;
                    round.block = Block::Text;
                }
                self.emit(AgentEvent::TextMessageContent {
                    message_id: round.message_id.clone(),
                    delta,
                })
                .await
            }
            AccumulatorUpdate::ReasoningDelta(delta) => {
                let id = match &round.block {
                    Block::Reasoning(id) => id.clone(),
                    _ => {
                        self.close_block(round).await?;
                        let id = self.fresh_id();
                        self.emit(AgentEvent::ReasoningStart {
                            message_id: id.clone(),
                        })
                        .await?;
                        self.emit(AgentEvent::ReasoningMessageStart {
                            message_id: id.clone(),
                            role: Role::Assistant,
                        })
                        .await?;
                        round.block = Block::Reasoning(id.clone());
                        id
                    }
                };
                self.emit(AgentEvent::ReasoningMessageContent {
                    message_id: id,
                    delta,
                })
                .await
            }
            AccumulatorUpdate::ToolCallStarted { id, name } => {
                self.close_block(round).await?;
                self.emit(AgentEvent::ToolCallStart {
                    tool_call_id: id,
                    tool_call_name: name,
                    parent_message_id: Some(round.message_id.clone()),
                })
                .await
            }
            AccumulatorUpdate::ToolCallArgs { id, fragment } => {
                self.emit(AgentEvent::ToolCallArgs {
                    tool_call_id: id,
                    delta: fragment,
                })
                .await
            }
            AccumulatorUpdate::ToolCallEnded { id } => {
                self.emit(AgentEvent::ToolCallEnd { tool_call_id: id })
                    .await
            }
        }
    }

    // ----- tools -----

    /// Runs the calls of a round; returns the calls deferred for approval.
    async fn run_tools(&mut self, response: ModelResponse) -> Step<Vec<ToolCall>> {
        let mut results: Vec<Option<ToolResult>> = Vec::with_capacity(response.tool_calls.len());
        let mut to_run: Vec<(usize, ToolCall)> = Vec::new();
        let mut deferred: Vec<ToolCall> = Vec::new();
        for accumulated in response.tool_calls {
            let call = accumulated.call;
            if let Some(error) = accumulated.error {
                results.push(Some(ToolResult::error(call.id, error)));
                continue;
            }
            match self.agent.tools.get(&call.name) {
                None => results.push(Some(ToolResult::error(
                    call.id.clone(),
                    unknown_tool(&self.agent.tools, &call.name),
                ))),
                Some(tool) => match self.agent.policy_for(&call.name, tool.requires_approval()) {
                    ToolPolicy::Deny => {
                        tracing::info!(tool = %call.name, call_id = %call.id, "denied by the approval policy");
                        results.push(Some(ToolResult::new(
                            call.id,
                            format!("`{}` is denied by this agent's approval policy", call.name),
                            ToolResultStatus::Denied,
                        )));
                    }
                    _ if tool.deferred() => {
                        results.push(None);
                        deferred.push(call);
                    }
                    ToolPolicy::Ask => {
                        results.push(None);
                        deferred.push(call);
                    }
                    _ => {
                        to_run.push((results.len(), call));
                        results.push(None);
                    }
                },
            }
        }
        let (slots, calls): (Vec<usize>, Vec<ToolCall>) = to_run.into_iter().unzip();
        for (slot, result) in slots.into_iter().zip(self.execute_tools(calls).await?) {
            results[slot] = Some(result);
        }
        if self.is_cancelled() {
            // deferred calls will not be decided on: the run is over
            let mut out: Vec<ToolResult> = results.into_iter().flatten().collect();
            out.extend(
                deferred
                    .iter()
                    .map(|c| ToolResult::new(c.id.clone(), CANCELLED, ToolResultStatus::Cancel)),
            );
            self.publish_results(out).await?;
            return Err(Halt::Interrupted);
        }
        self.publish_results(results.into_iter().flatten().collect())
            .await?;
        Ok(deferred)
    }

    /// Executes calls (see [`ToolExec::execute`]), streaming the events the
    /// tools send ([`ToolContext::emit`]) while they run.
    async fn execute_tools(&mut self, calls: Vec<ToolCall>) -> Step<Vec<ToolResult>> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let (events, mut rx) = ToolEvents::channel(TOOL_EVENTS);
        let exec = ToolExec {
            agent: self.agent,
            session_id: self.session_id,
            conversation_id: self.conversation_id,
            project_dirs: &self.project_dirs,
            cancel: &self.control.cancel,
            events,
        };
        let sink = &mut *self.sink;
        let results = {
            let run = exec.execute(calls);
            futures::pin_mut!(run);
            loop {
                tokio::select! {
                    results = &mut run => break results,
                    Some(event) = rx.recv() => sink.event(event).await.map_err(Halt::Sink)?,
                }
            }
        };
        drop(exec);
        rx.close();
        while let Ok(event) = rx.try_recv() {
            sink.event(event).await.map_err(Halt::Sink)?;
        }
        Ok(results)
    }

    /// Emits one `TOOL_CALL_RESULT` per result and persists them as one
    /// tool message.
    async fn publish_results(&mut self, results: Vec<ToolResult>) -> Step<()> {
        if results.is_empty() {
            return Ok(());
        }
        let message_id = self.fresh_id();
        let message = Message::tool(results);
        self.persist(vec![message.clone()]).await?;
        for result in message.tool_results() {
            self.sink
                .event(AgentEvent::ToolCallResult {
                    message_id: message_id.clone(),
                    tool_call_id: result.call_id.clone(),
                    content: result.content.clone(),
                    role: Role::Tool,
                    status: result.status,
                })
                .await?;
        }
        Ok(())
    }

    // ----- resume -----

    async fn resume(&mut self, pending: Vec<ToolCall>, decisions: Vec<ToolDecision>) -> Step<()> {
        let mut by_id: HashMap<String, ToolDecision> = decisions
            .into_iter()
            .map(|d| (d.call_id().to_owned(), d))
            .collect();
        let mut results: Vec<Option<ToolResult>> = Vec::with_capacity(pending.len());
        let mut to_run: Vec<(usize, ToolCall)> = Vec::new();
        for call in pending {
            match by_id.remove(&call.id) {
                Some(ToolDecision::Approve { .. }) => {
                    to_run.push((results.len(), call));
                    results.push(None);
                }
                Some(ToolDecision::Deny { reason, .. }) => {
                    let content = match reason.as_deref().map(str::trim) {
                        Some(reason) if !reason.is_empty() => {
                            format!("denied by the user: {reason}")
                        }
                        _ => "denied by the user".to_owned(),
                    };
                    results.push(Some(ToolResult::new(
                        call.id,
                        content,
                        ToolResultStatus::Denied,
                    )));
                }
                Some(ToolDecision::Result {
                    content, is_error, ..
                }) => {
                    let status = if is_error {
                        ToolResultStatus::Error
                    } else {
                        ToolResultStatus::Success
                    };
                    results.push(Some(ToolResult::new(call.id, content, status)));
                }
                // validated before: every pending call has a decision
                None => results.push(Some(ToolResult::new(
                    call.id,
                    history::UNANSWERED_CALL,
                    ToolResultStatus::Cancel,
                ))),
            }
        }
        let (slots, calls): (Vec<usize>, Vec<ToolCall>) = to_run.into_iter().unzip();
        for (slot, result) in slots.into_iter().zip(self.execute_tools(calls).await?) {
            results[slot] = Some(result);
        }
        self.publish_results(results.into_iter().flatten().collect())
            .await?;
        if self.is_cancelled() {
            return Err(Halt::Interrupted);
        }
        Ok(())
    }

    // ----- compaction -----

    async fn compact(&mut self) -> Step<()> {
        let Some(budget) = self.agent.limits.context_budget else {
            return Ok(());
        };
        let system = self.agent.system_prompt.as_deref();
        let before = history::estimate(system, &self.view);
        if before <= budget {
            return Ok(());
        }
        if self.agent.limits.compaction == CompactionStrategy::Summarize {
            match self.summarize(before).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(Halt::Failed(failure)) => {
                    tracing::warn!(code = %failure.code, message = %failure.message,
                        "summarisation failed; truncating instead");
                }
                Err(halt) => return Err(halt),
            }
        }
        let cut = history::truncation_cut(system, &self.view, budget);
        if cut == 0 {
            return Ok(());
        }
        self.view.drain(..cut);
        let after = history::estimate(system, &self.view);
        tracing::info!(removed = cut, before, after, "history truncated");
        self.emit_compaction("truncate", cut, before, after).await
    }

    async fn emit_compaction(
        &mut self,
        strategy: &str,
        removed: usize,
        before: u64,
        after: u64,
    ) -> Step<()> {
        self.emit(AgentEvent::Custom {
            name: custom::COMPACTION.to_owned(),
            value: json!({
                "strategy": strategy,
                "removed_messages": removed,
                "estimated_tokens_before": before,
                "estimated_tokens_after": after,
            }),
        })
        .await
    }

    /// Summarises the whole view (so the persisted summary stands for
    /// everything before it in the log) and keeps the latest user turn
    /// verbatim for this request. `Ok(false)`: nothing to summarise.
    async fn summarize(&mut self, before: u64) -> Step<bool> {
        let split = history::latest_user_turn(&self.view);
        if split == 0 {
            return Ok(false);
        }
        let request = ModelRequest::new(
            self.agent.model.clone(),
            vec![Message::user(format!(
                "Summarise this conversation:\n\n{}",
                transcript(&self.view)
            ))],
        )
        .with_system(SUMMARY_PROMPT)
        .with_settings(self.agent.settings.clone());
        let mut stream = self.agent.provider.stream(request);
        let mut acc = ResponseAccumulator::new();
        let cancel = self.control.cancel.clone();
        loop {
            let item = tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(Halt::Interrupted),
                item = stream.next() => item,
            };
            match item {
                Some(Ok(event)) => {
                    acc.push(event);
                }
                Some(Err(err)) => {
                    self.add_usage(acc.usage());
                    return Err(Halt::Failed(RunFailure::new(err.code(), err.to_string())));
                }
                None => break,
            }
        }
        let response = acc.finish();
        self.add_usage(response.usage);
        let text = response.message.text();
        if text.trim().is_empty() {
            return Err(Halt::Failed(RunFailure::new(
                "compaction",
                "the model returned an empty summary",
            )));
        }
        let summary = Message::new(Role::User, vec![ContentPart::Summary { text }]);
        self.sink.messages(std::slice::from_ref(&summary)).await?;
        self.new_messages.push(summary.clone());
        let recent = self.view.split_off(split);
        self.view = std::iter::once(summary).chain(recent).collect();
        let after = history::estimate(self.agent.system_prompt.as_deref(), &self.view);
        tracing::info!(removed = split, before, after, "history summarised");
        self.emit_compaction("summarize", split, before, after)
            .await?;
        Ok(true)
    }
}

/// Checks resume decisions against the pending calls; returns the pending
/// calls.
fn validate_resume(
    history: &[Message],
    input: &[Message],
    decisions: &[ToolDecision],
) -> Result<Vec<ToolCall>, RunFailure> {
    let invalid = |message: String| RunFailure::new("invalid_resume", message);
    if !input.is_empty() {
        return Err(invalid(
            "a resume carries tool decisions only, no input messages".to_owned(),
        ));
    }
    let pending = pending_tool_calls(history);
    if pending.is_empty() {
        return Err(invalid(
            "no tool calls are waiting for a decision".to_owned(),
        ));
    }
    let pending_ids: HashSet<&str> = pending.iter().map(|c| c.id.as_str()).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    for decision in decisions {
        let id = decision.call_id();
        if !pending_ids.contains(id) {
            return Err(invalid(format!(
                "tool call `{id}` is not waiting for a decision"
            )));
        }
        if !seen.insert(id) {
            return Err(invalid(format!(
                "tool call `{id}` has more than one decision"
            )));
        }
    }
    let missing: Vec<&str> = pending
        .iter()
        .map(|c| c.id.as_str())
        .filter(|id| !seen.contains(id))
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "no decision for tool call(s): {}",
            missing.join(", ")
        )));
    }
    Ok(pending)
}

/// How long to wait before retrying a model call.
fn retry_delay(err: &ProviderError, attempt: u32) -> Duration {
    let backoff = Duration::from_millis(250) * 2u32.saturating_pow(attempt.saturating_sub(1));
    let delay = match err {
        ProviderError::RateLimited {
            retry_after: Some(after),
            ..
        } => *after,
        _ => backoff,
    };
    delay.min(Duration::from_secs(60))
}

/// A plain-text rendering of messages for the summariser, so the request
/// carries no tool-call structure providers might reject without tools.
fn transcript(messages: &[Message]) -> String {
    let mut out = String::new();
    for message in messages {
        for part in &message.content {
            let line = match part {
                ContentPart::Text { text } => format!("{}: {text}", message.role.as_str()),
                ContentPart::Summary { text } => format!("summary of earlier conversation: {text}"),
                ContentPart::ToolCall(call) => {
                    format!(
                        "assistant called tool `{}` with {}",
                        call.name, call.arguments
                    )
                }
                ContentPart::ToolResult(result) => format!(
                    "tool result for {} ({:?}): {}",
                    result.call_id, result.status, result.content
                ),
                ContentPart::Image { .. } => format!("{}: [image]", message.role.as_str()),
                // reasoning is not needed to continue
                _ => continue,
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn unknown_tool(tools: &crate::tool::ToolRegistry, name: &str) -> String {
    if tools.is_empty() {
        return format!("unknown tool `{name}`; no tools are available");
    }
    let names: Vec<String> = tools.definitions().into_iter().map(|d| d.name).collect();
    format!(
        "unknown tool `{name}`; available tools: {}",
        names.join(", ")
    )
}

/// What executing tool calls needs (borrowed apart from the sink, which
/// is not `Sync`).
struct ToolExec<'a> {
    agent: &'a Agent,
    session_id: SessionId,
    conversation_id: ConversationId,
    project_dirs: &'a [PathBuf],
    cancel: &'a CancellationToken,
    events: ToolEvents,
}

impl ToolExec<'_> {
    /// Executes calls concurrently (bounded), results in call order.
    async fn execute(&self, calls: Vec<ToolCall>) -> Vec<ToolResult> {
        if calls.is_empty() {
            return Vec::new();
        }
        let limit = self.agent.limits.max_parallel_tool_calls.max(1);
        let futures = calls.into_iter().map(|call| self.execute_one(call));
        futures::stream::iter(futures)
            .buffered(limit)
            .collect()
            .await
    }

    async fn execute_one(&self, call: ToolCall) -> ToolResult {
        if self.cancel.is_cancelled() {
            return ToolResult::new(call.id, CANCELLED, ToolResultStatus::Cancel);
        }
        let ctx = ToolContext::new(self.session_id, self.conversation_id)
            .with_cancel(self.cancel.child_token())
            .with_call_id(call.id.clone())
            .with_project_dirs(self.project_dirs.to_vec())
            .with_options(self.agent.tool_options.clone())
            .with_events(self.events.clone());
        let call_fut = self.agent.tools.call(
            &call.name,
            call.arguments,
            ctx,
            self.agent.limits.tool_timeout,
        );
        // a panicking tool must not take the run (or the runtime) down
        let result = match AssertUnwindSafe(call_fut).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(tool = %call.name, call_id = %call.id, %detail, "tool panicked");
                Err(ToolError::failed(format!("the tool crashed: {detail}")))
            }
        };
        tracing::debug!(tool = %call.name, call_id = %call.id, ok = result.is_ok(), "tool call");
        match result {
            Ok(output) => ToolResult::success(call.id, output.content),
            Err(ToolError::Cancelled) => {
                ToolResult::new(call.id, CANCELLED, ToolResultStatus::Cancel)
            }
            Err(ToolError::UnknownTool(name)) => {
                ToolResult::error(call.id, unknown_tool(&self.agent.tools, &name))
            }
            Err(err) => ToolResult::error(call.id, err.to_string()),
        }
    }
}

/// Bytes of model output an event carries (text, reasoning, tool
/// arguments).
fn streamed_bytes(event: &crate::provider::ProviderEvent) -> u64 {
    use crate::provider::ProviderEvent;
    let n = match event {
        ProviderEvent::TextDelta(t) | ProviderEvent::ReasoningDelta(t) => t.len(),
        ProviderEvent::ToolCallArgs { fragment, .. } => fragment.len(),
        _ => 0,
    };
    u64::try_from(n).unwrap_or(u64::MAX)
}
