//! Provider profiles added from Settings (`/api/providers/*`) through the
//! real binary: a profile added over the API serves the next run without a
//! restart, its API key is kept encrypted beside the database, and it (and
//! its key) survive a restart.

use anyhow::{Result, ensure};
use netherbrain_tests::{Agent, FakeProvider, Reply};
use serde_json::json;

const KEY: &str = "sk-e2e-settings-3c2b1a";

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_added_from_settings_answers_at_once_and_after_a_restart() -> Result<()> {
    // The config file's profile (`fake`) answers one way, the profile added
    // from Settings (another server) the other.
    let configured = FakeProvider::start().await;
    configured
        .answer(Reply::text(&["from the config file"]))
        .await;
    let added = FakeProvider::start().await;
    added.answer(Reply::text(&["from ", "Settings"])).await;
    let mut agent = Agent::start(&configured, &[]).await?;
    let admin = agent.admin();

    let created = admin
        .post(
            "/api/providers/create",
            &json!({
                "name": "settings-fake",
                "kind": "openai",
                "base_url": added.base_url(),
                "models": ["added-model"],
                "api_key": KEY,
            }),
        )
        .await?;
    ensure!(created["has_api_key"] == true, "{created}");
    ensure!(!created.to_string().contains(KEY), "{created}");
    let preset = admin
        .post(
            "/api/presets/create",
            &json!({"name": "via-settings", "config": {"profile": "settings-fake", "model": "added-model"}}),
        )
        .await?;
    let preset_id = preset["id"].as_str().unwrap_or_default().to_owned();

    let run = admin
        .run_streamed(json!({"preset_id": preset_id, "input": "who answers?"}))
        .await?;
    ensure!(run.text() == "from Settings", "{:?}", run.text());
    ensure!(
        configured.requests().await.is_empty(),
        "the config file's profile was used"
    );

    let key_file = agent.data_dir().join("secret.key");
    ensure!(key_file.exists(), "the key file is in the data directory");
    let database = std::fs::read(agent.data_dir().join("netherbrain.db"))?;
    let wal = std::fs::read(agent.data_dir().join("netherbrain.db-wal")).unwrap_or_default();
    for bytes in [&database, &wal] {
        ensure!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "the API key is stored in plain text"
        );
    }

    agent.restart().await?;
    let admin = agent.admin();
    let list = admin.get("/api/providers/list").await?;
    let sources: Vec<(String, String)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["source"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    ensure!(
        sources
            == [
                ("fake".to_owned(), "config".to_owned()),
                ("settings-fake".to_owned(), "settings".to_owned())
            ],
        "{list}"
    );
    ensure!(
        list["items"][1]["problem"].is_null(),
        "the stored key opens after the restart: {list}"
    );
    let run = admin
        .run_streamed(json!({"preset_id": preset_id, "input": "still there?"}))
        .await?;
    ensure!(run.text() == "from Settings", "{:?}", run.text());
    ensure!(added.requests().await.len() == 2, "both runs used it");
    Ok(())
}
