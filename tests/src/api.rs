//! A bearer-authenticated JSON client of the HTTP API, over plain reqwest.
//!
//! Deliberately untyped: the tests state the wire format they rely on, so
//! they keep holding whatever the server's Rust types become.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::sse::{self, Sse};

/// The answer to a streamed run: its ids (from the response headers) and
/// every event until the stream ended.
#[derive(Debug, Clone)]
pub struct StreamedRun {
    /// `x-conversation-id`.
    pub conversation_id: String,
    /// `x-session-id`.
    pub session_id: String,
    /// The events, in order.
    pub events: Vec<Sse>,
}

impl StreamedRun {
    /// The text of every `TEXT_MESSAGE_CONTENT` delta, concatenated.
    pub fn text(&self) -> String {
        sse::text(&self.events)
    }

    /// The status in the final `RUN_FINISHED` (`committed`, …), if any.
    pub fn status(&self) -> Option<String> {
        self.events
            .iter()
            .rev()
            .find(|e| e.event == "RUN_FINISHED")
            .and_then(|e| e.data["result"]["status"].as_str())
            .map(str::to_owned)
    }
}

/// A client of one server with one bearer token.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// A client of `base` (`http://127.0.0.1:PORT`) with `token`.
    pub fn new(base: impl Into<String>, token: &str) -> Self {
        Self {
            http: crate::http_client(),
            base: base.into(),
            token: token.to_owned(),
        }
    }

    /// The token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A `GET` with the token.
    pub fn get_request(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// A `POST` of `body` as JSON with the token.
    pub fn post_request(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
    }

    /// `GET path`; the JSON body of a 2xx answer.
    ///
    /// # Errors
    ///
    /// Transport errors, or a non-2xx answer (status and body in the message).
    pub async fn get(&self, path: &str) -> Result<Value> {
        json_ok(self.get_request(path).send().await, &format!("GET {path}")).await
    }

    /// `POST path` with a JSON body; the JSON body of a 2xx answer.
    ///
    /// # Errors
    ///
    /// Transport errors, or a non-2xx answer (status and body in the message).
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        json_ok(
            self.post_request(path, body).send().await,
            &format!("POST {path}"),
        )
        .await
    }

    /// The id of the preset named `name`.
    ///
    /// # Errors
    ///
    /// When there is none.
    pub async fn preset_id(&self, name: &str) -> Result<String> {
        let list = self.get("/api/presets/list").await?;
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .and_then(|p| p["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no preset named `{name}` in {list}"))
    }

    /// Creates a user (admin only) and an API key for them; returns a
    /// client with that key.
    ///
    /// # Errors
    ///
    /// When either call fails.
    pub async fn create_user(&self, username: &str) -> Result<Api> {
        let user = self
            .post(
                "/api/users/create",
                &json!({"username": username, "role": "user"}),
            )
            .await?;
        let user_id = user["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no user id in {user}"))?;
        let key = self
            .post(
                "/api/keys/create",
                &json!({"name": format!("{username}-e2e"), "user_id": user_id}),
            )
            .await?;
        let secret = key["secret"]
            .as_str()
            .ok_or_else(|| anyhow!("no secret in the created key"))?;
        Ok(Self::new(self.base.clone(), secret))
    }

    /// `POST /api/conversations/run` with `stream: true`, read to the end.
    ///
    /// # Errors
    ///
    /// A non-2xx answer, a response that is not an event stream or lacks
    /// the id headers, or a malformed event.
    pub async fn run_streamed(&self, mut body: Value) -> Result<StreamedRun> {
        body["stream"] = json!(true);
        let resp = self
            .post_request("/api/conversations/run", &body)
            .send()
            .await
            .context("POST /api/conversations/run")?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("POST /api/conversations/run: {status}: {text}");
        }
        let header = |name: &str| -> Result<String> {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("the streamed run has no `{name}` header"))
        };
        let content_type = header("content-type")?;
        if !content_type.starts_with("text/event-stream") {
            bail!("a streamed run answered `{content_type}`");
        }
        let conversation_id = header("x-conversation-id")?;
        let session_id = header("x-session-id")?;
        let events = sse::read(resp).await?;
        Ok(StreamedRun {
            conversation_id,
            session_id,
            events,
        })
    }

    /// `POST /api/conversations/run` with `stream: false`: `(conversation
    /// id, session id)` of the started run.
    ///
    /// # Errors
    ///
    /// A non-2xx answer or a body without the ids.
    pub async fn run_detached(&self, mut body: Value) -> Result<(String, String)> {
        body["stream"] = json!(false);
        let started = self.post("/api/conversations/run", &body).await?;
        let id = |key: &str| {
            started[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("no `{key}` in {started}"))
        };
        Ok((id("conversation_id")?, id("session_id")?))
    }

    /// A session's events after `after` (`Last-Event-ID`), read until the
    /// stream ends (after the terminal event).
    ///
    /// # Errors
    ///
    /// A non-2xx answer or a malformed event.
    pub async fn session_events(&self, session_id: &str, after: u64) -> Result<Vec<Sse>> {
        let path = format!("/api/sessions/{session_id}/events");
        let resp = self
            .get_request(&path)
            .header("last-event-id", after.to_string())
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("GET {path}: {status}: {text}");
        }
        sse::read(resp).await
    }
}

async fn json_ok(resp: reqwest::Result<reqwest::Response>, what: &str) -> Result<Value> {
    let resp = resp.with_context(|| what.to_owned())?;
    let status = resp.status();
    let text = resp.text().await.with_context(|| what.to_owned())?;
    if !status.is_success() {
        bail!("{what}: {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: not JSON: {text}"))
}
