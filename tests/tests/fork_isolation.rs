//! Fork across users (security regression): a conversation's fork parent
//! must never come from user-writable metadata. User B names user A's
//! session in `metadata.forked_from` — on create, or on update — and runs
//! the conversation: the server must refuse the reserved key with a 4xx
//! JSON error, or, if it accepts it, must not feed A's history to B's run.

use anyhow::{Result, anyhow};
use netherbrain_tests::{Agent, Api, FakeProvider, PresetDoc, Reply};
use serde_json::{Value, json};

/// Only user A ever says this.
const SECRET: &str = "A-SECRET-PURPLE-OTTER-42";

struct Setup {
    provider: FakeProvider,
    agent: Agent,
    bob: Api,
    preset: String,
    alices_conversation: String,
    alices_session: String,
}

/// Alice has a conversation with a committed run containing the secret.
async fn setup() -> Result<Setup> {
    let provider = FakeProvider::start().await;
    provider.answer(Reply::text(&["Noted."])).await;
    let agent = Agent::start(&provider, &[PresetDoc::new("shared")]).await?;
    let admin = agent.admin();
    let preset = admin.preset_id("shared").await?;
    let alice = admin.create_user("alice").await?;
    let bob = admin.create_user("bob").await?;
    let run = alice
        .run_streamed(json!({
            "preset_id": preset,
            "input": format!("Remember the launch code: {SECRET}"),
        }))
        .await?;
    assert_eq!(
        run.status().as_deref(),
        Some("committed"),
        "{:?}",
        run.events
    );
    Ok(Setup {
        provider,
        agent,
        bob,
        preset,
        alices_conversation: run.conversation_id,
        alices_session: run.session_id,
    })
}

impl Setup {
    fn forked_from(&self) -> Value {
        json!({"forked_from": {
            "conversation_id": self.alices_conversation,
            "session_id": self.alices_session,
        }})
    }

    /// `Ok(None)`: refused as it should be (a 4xx JSON error); `Ok(Some)`:
    /// accepted, with the JSON body.
    async fn refused_or_accepted(&self, path: &str, body: &Value) -> Result<Option<Value>> {
        let resp = self.bob.post_request(path, body).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status.is_success() {
            return Ok(Some(serde_json::from_str(&text)?));
        }
        assert!(
            status.is_client_error(),
            "POST {path} must be refused with a 4xx, not {status}: {text}"
        );
        let error: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow!("POST {path}: {status} without a JSON error ({e}): {text}"))?;
        assert!(error["error"]["code"].is_string(), "{error}");
        Ok(None)
    }

    /// Bob runs `conversation`; the model must not see Alice's secret.
    async fn assert_bobs_run_sees_nothing_of_alice(&self, conversation: &str) -> Result<()> {
        let before = self.provider.requests().await.len();
        let marker = "B-RUN what did we talk about?";
        let resp = self
            .bob
            .post_request(
                "/api/conversations/run",
                &json!({"conversation_id": conversation, "input": marker, "stream": true}),
            )
            .send()
            .await?;
        let status = resp.status();
        if status.is_success() {
            let events = netherbrain_tests::sse::read(resp).await?;
            assert!(
                events.last().is_some_and(|e| e.event.starts_with("RUN_")),
                "{events:?}"
            );
        } else {
            let text = resp.text().await?;
            assert!(status.is_client_error(), "run: {status}: {text}");
        }
        let requests = self.provider.requests().await;
        for request in &requests[before..] {
            assert!(
                !request.mentions(SECRET) && !request.body.to_string().contains(SECRET),
                "cross-user history leak: user B's run sent user A's conversation to the \
                 model through metadata.forked_from:\n{:#?}",
                request.messages()
            );
        }
        // Nor did the refusal or the run change Alice's conversation.
        let turns = self
            .agent
            .admin()
            .get(&format!(
                "/api/conversations/{}/turns",
                self.alices_conversation
            ))
            .await?;
        assert_eq!(turns["items"].as_array().map(Vec::len), Some(1), "{turns}");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_with_another_users_fork_parent_leaks_nothing() -> Result<()> {
    let s = setup().await?;
    let body = json!({"default_preset": s.preset, "metadata": s.forked_from()});
    let Some(created) = s
        .refused_or_accepted("/api/conversations/create", &body)
        .await?
    else {
        return Ok(());
    };
    let id = created["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no id in {created}"))?;
    s.assert_bobs_run_sees_nothing_of_alice(id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn update_with_another_users_fork_parent_leaks_nothing() -> Result<()> {
    let s = setup().await?;
    let created = s
        .bob
        .post(
            "/api/conversations/create",
            &json!({"default_preset": s.preset}),
        )
        .await?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no id in {created}"))?;
    let body = json!({"metadata": s.forked_from()});
    if s.refused_or_accepted(&format!("/api/conversations/{id}/update"), &body)
        .await?
        .is_none()
    {
        return Ok(());
    }
    s.assert_bobs_run_sees_nothing_of_alice(id).await
}
