//! `SIGHUP` reloads the configuration file of a running `netherbrain
//! agent`: new presets and changed provider profiles apply to the next run
//! without a restart; other changes are announced as needing one.

use anyhow::{Result, ensure};
use netherbrain_tests::{Agent, FakeProvider, PresetDoc, Reply, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_presets_and_providers_and_announces_the_rest() -> Result<()> {
    let first = FakeProvider::start().await;
    first.answer(Reply::text(&["from the first"])).await;
    let second = FakeProvider::start().await;
    second.answer(Reply::text(&["from the second"])).await;
    let agent = Agent::start(&first, &[PresetDoc::new("helper")]).await?;
    let admin = agent.admin();

    // The provider moves to another address, a preset is added, and a
    // setting that needs a restart changes.
    let path = agent.home().join("config.toml");
    let text = std::fs::read_to_string(&path)?;
    ensure!(text.contains(&first.base_url()), "{text}");
    let text = format!(
        "body_limit = 4096\n{}\n{}",
        text.replace(&first.base_url(), &second.base_url()),
        PresetDoc::new("later").toml()
    );
    std::fs::write(&path, text)?;
    agent.signal_hup()?;

    eventually("the reloaded preset", || async {
        let presets = admin.get("/api/presets/list").await?;
        let listed = presets["items"]
            .as_array()
            .or_else(|| presets.as_array())
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "later");
        Ok(listed.then_some(()))
    })
    .await?;
    eventually("the reload to finish", || async {
        Ok(agent
            .logs()
            .contains("configuration reloaded on SIGHUP")
            .then_some(()))
    })
    .await?;
    let later = admin.preset_id("later").await?;
    let run = admin
        .run_streamed(json!({"preset_id": later, "input": "who answers?"}))
        .await?;
    ensure!(run.text() == "from the second", "{:?}", run.text());
    ensure!(
        first.requests().await.is_empty(),
        "the old address was used"
    );
    eventually("the restart notice", || async {
        let logs = agent.logs();
        Ok(
            (logs.contains("apply only after a restart") && logs.contains("body_limit"))
                .then_some(()),
        )
    })
    .await?;

    // A broken file changes nothing and the server keeps serving.
    std::fs::write(&path, "port = \"not a port\"\n")?;
    agent.signal_hup()?;
    eventually("the failed reload", || async {
        Ok(agent
            .logs()
            .contains("configuration reload failed")
            .then_some(()))
    })
    .await?;
    let helper = admin.preset_id("helper").await?;
    let run = admin
        .run_streamed(json!({"preset_id": helper, "input": "still there?"}))
        .await?;
    ensure!(run.text() == "from the second", "{:?}", run.text());
    Ok(())
}
