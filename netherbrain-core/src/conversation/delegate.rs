//! Subagents: a run hands a task to another preset, which runs in a new
//! child conversation of the same owner (the `delegate` tool).
//!
//! The child records the delegating run in the server-owned
//! [`Conversation::delegated_from`]; it is started like any run (the
//! owner's run quota applies). In the foreground the tool waits for the
//! child's answer (interrupting the parent interrupts the child); in the
//! background it returns at once, and the child's result is posted to the
//! **parent conversation's** mailbox when it ends, then delivered: steered
//! into the parent's running session, or — when the parent is idle — as
//! the input of a new parent run. Both carry a `subagent_completed` event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::send::{Launch, SendMessage};
use super::{ConversationService, FeedNotice, Inner, ServiceError};
use crate::agent::RunOverrides;
use crate::auth::Principal;
use crate::event::{AgentEvent, SubagentCompleted, SubagentStarted};
use crate::ids::{ConversationId, SessionId};
use crate::message::{Message, Role};
use crate::runtime::{Runtime, RuntimeError};
use crate::session::SessionStatus;
use crate::store::{
    Conversation, DelegatedFrom, MailboxEntry, NewConversation, NewMailboxEntry, Session,
    StoreError,
};
use crate::tool::ToolContext;

/// How far and how wide subagents may go.
///
/// ```
/// use netherbrain_core::conversation::DelegateLimits;
/// let limits = DelegateLimits::default();
/// assert_eq!((limits.max_depth, limits.max_children), (2, 4));
/// let tighter = limits.with_max_depth(1).with_max_children(2);
/// assert_eq!(tighter.max_depth, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DelegateLimits {
    /// Levels of subagents below a conversation that was not delegated
    /// (`0`: no subagents; `2`: a subagent's subagent, no deeper).
    pub max_depth: u32,
    /// Subagents one parent run may have going at once.
    pub max_children: usize,
}

impl Default for DelegateLimits {
    fn default() -> Self {
        Self {
            max_depth: 2,
            max_children: 4,
        }
    }
}

impl DelegateLimits {
    /// Sets [`max_depth`](Self::max_depth).
    #[must_use]
    pub fn with_max_depth(mut self, depth: u32) -> Self {
        self.max_depth = depth;
        self
    }

    /// Sets [`max_children`](Self::max_children).
    #[must_use]
    pub fn with_max_children(mut self, children: usize) -> Self {
        self.max_children = children;
        self
    }
}

/// A task for a subagent.
///
/// ```
/// use netherbrain_core::conversation::Delegation;
/// let d = Delegation::new("researcher", "Find the release date").in_background();
/// assert!(d.background);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delegation {
    /// The name of the preset the child runs.
    pub preset: String,
    /// The task, the child's first user message.
    pub task: String,
    /// Return at once; the result reaches the parent conversation later.
    pub background: bool,
}

impl Delegation {
    /// A foreground task.
    ///
    /// ```
    /// let d = netherbrain_core::conversation::Delegation::new("helper", "Sum 2 and 2");
    /// assert!(!d.background);
    /// ```
    #[must_use]
    pub fn new(preset: impl Into<String>, task: impl Into<String>) -> Self {
        Self {
            preset: preset.into(),
            task: task.into(),
            background: false,
        }
    }

    /// Runs the task in the background.
    #[must_use]
    pub fn in_background(mut self) -> Self {
        self.background = true;
        self
    }
}

/// How a subagent's run ended.
///
/// ```
/// # use netherbrain_core::conversation::SubagentResult;
/// # fn f(r: SubagentResult) {
/// if let Some(answer) = &r.answer { println!("{answer}"); }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SubagentResult {
    /// The child conversation.
    pub child_conversation_id: ConversationId,
    /// The child's session.
    pub child_session_id: SessionId,
    /// The preset it ran.
    pub preset: String,
    /// Its final status.
    pub status: SessionStatus,
    /// Its final answer, if it gave one.
    pub answer: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl SubagentResult {
    fn of(session: &Session, preset: &str) -> Self {
        Self {
            child_conversation_id: session.conversation_id,
            child_session_id: session.id,
            preset: preset.to_owned(),
            status: session.status,
            answer: session.final_message.clone(),
            error: session.error.clone(),
        }
    }

    /// The answer, or what stands in for it.
    fn text(&self) -> String {
        match (&self.answer, &self.error) {
            (Some(answer), _) if self.status == SessionStatus::Committed => answer.clone(),
            (_, Some(error)) => format!("the subagent's run {}: {error}", self.status),
            (Some(answer), None) => format!("(the run ended {}) {answer}", self.status),
            (None, None) => format!("the subagent's run ended {} without an answer", self.status),
        }
    }

    fn completed(&self) -> SubagentCompleted {
        SubagentCompleted::new(
            self.child_conversation_id,
            self.child_session_id,
            self.status,
            &self.text(),
        )
    }
}

/// What [`delegate`](ConversationService::delegate) did.
///
/// ```
/// use netherbrain_core::conversation::Delegated;
/// fn describe(d: &Delegated) -> String {
///     match d {
///         Delegated::Finished(result) => format!("answered: {:?}", result.answer),
///         Delegated::Started { child_conversation_id, .. } => format!("working in {child_conversation_id}"),
///         _ => "?".into(),
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delegated {
    /// A foreground subagent ended (interrupted too, when the parent was).
    Finished(SubagentResult),
    /// A background subagent started; its result will reach the parent
    /// conversation.
    Started {
        /// The child conversation.
        child_conversation_id: ConversationId,
        /// The child's session.
        child_session_id: SessionId,
    },
}

/// What a subagent's result looks like in the parent's mailbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SubagentMail {
    subagent_result: SubagentResult,
}

/// Subagents going per parent run (the fan-out limit).
#[derive(Debug, Default)]
pub(super) struct Children(Arc<Mutex<HashMap<SessionId, usize>>>);

/// One slot of [`Children`], given back when dropped.
#[derive(Debug)]
struct ChildSlot {
    counts: Weak<Mutex<HashMap<SessionId, usize>>>,
    parent: SessionId,
}

impl Children {
    fn acquire(&self, parent: SessionId, limit: usize) -> Result<ChildSlot, ServiceError> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(parent).or_insert(0);
        if *n >= limit {
            return Err(ServiceError::Conflict(format!(
                "this run already has {limit} subagent(s) going, the most it may; wait for one to finish"
            )));
        }
        *n += 1;
        Ok(ChildSlot {
            counts: Arc::downgrade(&self.0),
            parent,
        })
    }
}

impl Drop for ChildSlot {
    fn drop(&mut self) {
        if let Some(counts) = self.counts.upgrade() {
            let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = counts.get_mut(&self.parent) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&self.parent);
                }
            }
        }
    }
}

/// Interrupts a foreground child whose wait is abandoned (the tool timed
/// out or the parent stopped).
struct InterruptOnDrop {
    runtime: Runtime,
    session_id: SessionId,
    armed: bool,
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.runtime.interrupt(self.session_id);
        }
    }
}

/// How often a result is offered to the parent before it is left in the
/// mailbox (runs starting and ending in between).
const DELIVERY_ATTEMPTS: usize = 4;

/// A service that does not keep the service alive (held by the `delegate`
/// tool set, which the service's own catalog holds).
///
/// ```
/// # use std::sync::Arc;
/// # use netherbrain_core::conversation::ConversationService;
/// # let store = Arc::new(netherbrain_core::store::MemoryStore::new());
/// let service = ConversationService::builder(store).build();
/// let weak = service.downgrade();
/// assert!(weak.upgrade().is_some());
/// drop(service);
/// assert!(weak.upgrade().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct WeakConversationService(Weak<Inner>);

impl WeakConversationService {
    /// The service, while it exists.
    #[must_use]
    pub fn upgrade(&self) -> Option<ConversationService> {
        self.0.upgrade().map(|inner| ConversationService { inner })
    }
}

impl ConversationService {
    /// A handle that does not keep the service alive.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # let store = Arc::new(netherbrain_core::store::MemoryStore::new());
    /// let service = netherbrain_core::conversation::ConversationService::builder(store).build();
    /// assert!(service.downgrade().upgrade().is_some());
    /// ```
    #[must_use]
    pub fn downgrade(&self) -> WeakConversationService {
        WeakConversationService(Arc::downgrade(&self.inner))
    }

    /// Starts a subagent for the tool call `ctx` serves: a run of the
    /// preset named in `delegation` in a new conversation owned by the
    /// parent conversation's owner, recording the parent run as its
    /// [`delegated_from`](Conversation::delegated_from). Streams
    /// `subagent_started` (and, in the foreground, `subagent_completed`)
    /// through `ctx`.
    ///
    /// In the foreground this waits for the child's end; cancelling `ctx`
    /// interrupts the child. In the background it returns at once; when the
    /// child ends its result is posted to the parent conversation's
    /// mailbox, then steered into the parent's running session or, when
    /// the parent is idle, made the input of a new parent run — both with a
    /// `subagent_completed` event.
    ///
    /// # Errors
    ///
    /// `Invalid` for an empty task or a delegation deeper than
    /// `limits.max_depth`; `Conflict` when the parent run has
    /// `limits.max_children` subagents going; `NotFound` for an unknown
    /// preset; the errors of starting a run (the owner's run quota, a
    /// preset the catalog cannot build, draining).
    pub async fn delegate(
        &self,
        ctx: &ToolContext,
        limits: DelegateLimits,
        delegation: Delegation,
    ) -> Result<Delegated, ServiceError> {
        let store = &self.inner.store;
        let task = delegation.task.trim();
        if task.is_empty() {
            return Err(ServiceError::Invalid("the task must not be empty".into()));
        }
        let parent = store.get_conversation(ctx.conversation_id).await?;
        let parent_session = store.get_session(ctx.session_id).await?;
        if parent_session.conversation_id != parent.id {
            return Err(StoreError::not_found("session", ctx.session_id).into());
        }
        // The parent's principal: its stored owner, never anything the
        // model or a request says.
        let owner = store.get_user(parent.owner).await?;
        let who = Principal::of(&owner);
        let depth = self.delegation_depth(&parent, limits.max_depth).await?;
        if depth >= limits.max_depth {
            return Err(ServiceError::Invalid(format!(
                "subagents may be nested at most {} level(s) deep; do this task yourself",
                limits.max_depth
            )));
        }
        let preset = match store.get_preset_by_name(&delegation.preset).await {
            Ok(preset) => preset,
            Err(StoreError::NotFound { .. }) => {
                return Err(ServiceError::NotFound(format!(
                    "unknown preset `{}`",
                    delegation.preset
                )));
            }
            Err(e) => return Err(e.into()),
        };
        self.catalog().check(&preset.config)?;
        let slot = self
            .inner
            .children
            .acquire(ctx.session_id, limits.max_children)?;

        let workspace_id = match parent.workspace_id {
            Some(ws) if self.check_attach(&who, ws).await.is_ok() => Some(ws),
            _ => None,
        };
        let mut new = NewConversation::new(owner.id)
            .with_default_preset(preset.id)
            .with_delegated_from(DelegatedFrom::new(parent.id, ctx.session_id))
            .with_title(child_title(&preset.name, task));
        new.workspace_id = workspace_id;
        let child = store.create_conversation(new).await?;
        self.inner.feed.publish(FeedNotice::Updated {
            conversation_id: child.id,
        });
        let preset_name = preset.name.clone();
        let handle = self
            .launch(Launch {
                conversation: &child,
                preset_id: Some(preset.id),
                preset: Some(preset),
                parent: None,
                input: vec![Message::user(task)],
                resume: Vec::new(),
                session_id: None,
                overrides: RunOverrides::default(),
                notices: Vec::new(),
            })
            .await?;
        tracing::info!(
            parent_conversation_id = %parent.id,
            child_conversation_id = %child.id,
            child_session_id = %handle.session_id,
            preset = %preset_name,
            background = delegation.background,
            "subagent started"
        );
        ctx.emit(
            SubagentStarted::new(
                child.id,
                handle.session_id,
                preset_name.clone(),
                delegation.background,
            )
            .event(),
        )
        .await;

        let runtime = self.inner.runtime.clone();
        if delegation.background {
            let service = self.clone();
            let parent_id = parent.id;
            let child_session = handle.session_id;
            let span = tracing::info_span!("subagent", %child_session, parent_conversation_id = %parent_id);
            tokio::spawn(
                async move {
                    let ended = runtime.wait(child_session).await;
                    drop(slot);
                    match ended {
                        Ok(session) => {
                            let result = SubagentResult::of(&session, &preset_name);
                            service.deliver_result(&who, parent_id, &result).await;
                        }
                        Err(e) => tracing::warn!(error = %e, "lost the subagent's session"),
                    }
                }
                .instrument(span),
            );
            return Ok(Delegated::Started {
                child_conversation_id: child.id,
                child_session_id: handle.session_id,
            });
        }

        let mut guard = InterruptOnDrop {
            runtime: runtime.clone(),
            session_id: handle.session_id,
            armed: true,
        };
        let session = tokio::select! {
            ended = runtime.wait(handle.session_id) => ended?,
            () = ctx.cancel.cancelled() => {
                let _ = runtime.interrupt(handle.session_id);
                runtime.wait(handle.session_id).await?
            }
        };
        guard.armed = false;
        drop(slot);
        let result = SubagentResult::of(&session, &preset_name);
        ctx.emit(result.completed().event()).await;
        Ok(Delegated::Finished(result))
    }

    /// How many delegations lie above `conversation` (0 for one that was
    /// not delegated); stops counting past `max`.
    async fn delegation_depth(
        &self,
        conversation: &Conversation,
        max: u32,
    ) -> Result<u32, ServiceError> {
        let mut depth = 0;
        let mut origin = conversation.delegated_from;
        while let Some(from) = origin {
            depth += 1;
            if depth > max {
                break;
            }
            origin = match self
                .inner
                .store
                .get_conversation(from.conversation_id)
                .await
            {
                Ok(c) => c.delegated_from,
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
        }
        Ok(depth)
    }

    /// Posts a background subagent's result to the parent conversation's
    /// mailbox and delivers it; failures are logged (the entry stays in the
    /// mailbox).
    async fn deliver_result(
        &self,
        who: &Principal,
        parent: ConversationId,
        result: &SubagentResult,
    ) {
        let content = match serde_json::to_value(SubagentMail {
            subagent_result: result.clone(),
        }) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a subagent result");
                return;
            }
        };
        let entry = NewMailboxEntry::new(parent, Some(result.child_session_id), content);
        if let Err(e) = self.inner.store.post_mailbox(entry).await {
            tracing::warn!(error = %e, "cannot post a subagent result to the parent's mailbox");
            return;
        }
        if let Err(e) = self.deliver_mailbox(who, parent).await {
            tracing::warn!(error = %e, "subagent result left in the parent's mailbox");
        }
    }

    /// Whether a steered session took `text`: a run that was just ending
    /// may not have, which shows once it is over.
    async fn steer_taken(&self, session_id: SessionId, text: &str) -> Result<bool, ServiceError> {
        self.inner.runtime.wait(session_id).await?;
        let messages = self.inner.store.session_messages(session_id).await?;
        Ok(messages
            .iter()
            .any(|m| m.role == Role::User && m.text() == text))
    }

    /// Takes a conversation's undelivered mailbox and hands it to the
    /// conversation: as steering of its running session (waiting for that
    /// run to end to see it was taken), else as the input of a new run
    /// (started as `who`).
    async fn deliver_mailbox(
        &self,
        who: &Principal,
        conversation_id: ConversationId,
    ) -> Result<(), ServiceError> {
        let store = &self.inner.store;
        let entries = store.take_mailbox(conversation_id).await?;
        if entries.is_empty() {
            return Ok(());
        }
        let (text, notices) = mail_input(&entries);
        let mut failure = None;
        for _ in 0..DELIVERY_ATTEMPTS {
            match self.inner.runtime.steer_conversation_with_notices(
                conversation_id,
                text.clone(),
                notices.clone(),
            ) {
                Ok(session_id) => match self.steer_taken(session_id, &text).await {
                    Ok(true) => return Ok(()),
                    // the run was just ending: deliver again
                    Ok(false) => continue,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                },
                Err(RuntimeError::NoActiveSession(_)) => {}
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            }
            let mut message = SendMessage::to(conversation_id, vec![Message::user(text.clone())]);
            message.notices = notices.clone();
            match self.send(who, message).await {
                Ok(_) => return Ok(()),
                Err(ServiceError::Runtime(RuntimeError::Busy { .. })) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Not delivered: put it back for later.
        for entry in entries {
            store
                .post_mailbox(NewMailboxEntry::new(
                    conversation_id,
                    entry.source_session_id,
                    entry.content,
                ))
                .await?;
        }
        Err(failure.unwrap_or_else(|| {
            ServiceError::Conflict("the parent conversation stayed busy elsewhere".into())
        }))
    }
}

/// The child conversation's title.
fn child_title(preset: &str, task: &str) -> String {
    let first_line = task.lines().next().unwrap_or_default();
    let mut short: String = first_line.chars().take(60).collect();
    if short.len() < first_line.len() {
        short.push('…');
    }
    format!("Subagent ({preset}): {short}")
}

/// The user message and the events that bring mailbox entries to a run.
fn mail_input(entries: &[MailboxEntry]) -> (String, Vec<AgentEvent>) {
    let mut parts = Vec::with_capacity(entries.len());
    let mut notices = Vec::new();
    for entry in entries {
        match serde_json::from_value::<SubagentMail>(entry.content.clone()) {
            Ok(SubagentMail {
                subagent_result: result,
            }) => {
                notices.push(result.completed().event());
                parts.push(format!(
                    "[subagent result] The background subagent (preset `{}`, conversation {}) finished: {}.\n\n{}",
                    result.preset,
                    result.child_conversation_id,
                    result.status,
                    result.text()
                ));
            }
            Err(_) => parts.push(format!("[mailbox] {}", entry.content)),
        }
    }
    (parts.join("\n\n"), notices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_slots_count_per_parent_and_come_back() {
        let children = Children::default();
        let (a, b) = (SessionId::new(), SessionId::new());
        let first = children.acquire(a, 2).unwrap();
        let _second = children.acquire(a, 2).unwrap();
        assert!(matches!(
            children.acquire(a, 2),
            Err(ServiceError::Conflict(_))
        ));
        assert!(children.acquire(b, 2).is_ok());
        drop(first);
        assert!(children.acquire(a, 2).is_ok());
        assert!(children.acquire(SessionId::new(), 0).is_err());
    }

    #[test]
    fn titles_are_short() {
        let title = child_title("helper", &format!("{}\nmore", "x".repeat(100)));
        assert!(title.starts_with("Subagent (helper): xxx"));
        assert!(title.ends_with('…'));
        assert!(!title.contains("more"));
    }

    #[test]
    fn mail_becomes_text_and_events() {
        let result = SubagentResult {
            child_conversation_id: ConversationId::new(),
            child_session_id: SessionId::new(),
            preset: "helper".into(),
            status: SessionStatus::Committed,
            answer: Some("the answer is 42".into()),
            error: None,
        };
        let content = serde_json::to_value(SubagentMail {
            subagent_result: result.clone(),
        })
        .unwrap();
        let entry: MailboxEntry = serde_json::from_value(serde_json::json!({
            "id": crate::ids::MailboxId::new(),
            "conversation_id": ConversationId::new(),
            "source_session_id": result.child_session_id,
            "content": content,
            "created_at": chrono::Utc::now(),
            "delivered_at": null,
        }))
        .unwrap();
        let (text, notices) = mail_input(&[entry]);
        assert!(text.contains("the answer is 42"), "{text}");
        assert!(text.contains("preset `helper`"), "{text}");
        assert_eq!(notices, vec![result.completed().event()]);
    }
}
