//! Faults below the server: the disk under SQLite fills up, Postgres
//! restarts mid-run. Each ends with a clear error or a finished run, the
//! server keeps serving, nothing committed is lost, and service comes back
//! when the fault goes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use netherbrain_tests::{Agent, AgentOptions, FakeProvider, PATIENCE, PresetDoc, Reply};
use serde_json::json;

/// A tmpfs of `size` mounted on a temp directory, unmounted when dropped.
/// Mounting needs root, as the test machines and CI have.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<Self> {
        let dir = tempfile::TempDir::new()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .context("running mount")?;
        ensure!(
            status.success(),
            "mounting a {size} tmpfs failed: this test needs root (as on the CI machine)"
        );
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> Result<PathBuf> {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path)?;
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => return Err(e.into()),
            }
        }
        // Fill the last bytes too.
        let small = [0u8; 512];
        while file.write(&small).is_ok_and(|n| n > 0) {}
        Ok(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// SQLite on a full disk: a run that cannot be recorded is refused with a
/// clear `503` (or ends with a clear error), earlier turns stay readable,
/// and once space returns runs work again on an intact database.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_on_a_full_disk_fails_clearly_and_recovers() -> Result<()> {
    let disk = SmallDisk::mount("16m")?;
    let provider = FakeProvider::start().await;
    provider.answer(Reply::text(&["noted"])).await;
    let database = format!("sqlite://{}", disk.path().join("netherbrain.db").display());
    let agent = Agent::start_with(
        &provider,
        &[PresetDoc::new("p")],
        AgentOptions::default().database_url(&database),
    )
    .await?;
    let admin = agent.admin();
    let preset = admin.preset_id("p").await?;
    let before = admin
        .run_streamed(json!({"preset_id": preset, "input": "remember the milk"}))
        .await?;
    ensure!(before.text() == "noted", "{:?}", before.events);

    let filler = disk.fill()?;
    // Large inputs, so the write needs pages the disk no longer has.
    let big = "spill ".repeat(40_000);
    let mut refused = 0;
    for _ in 0..5 {
        let resp = admin
            .post_request(
                "/api/conversations/run",
                &json!({"preset_id": preset, "input": big, "stream": true}),
            )
            .send()
            .await?;
        let status = resp.status();
        let body = resp.text().await?;
        if status.is_success() {
            // Recorded after all (pages were free): the run must still end.
            ensure!(
                body.contains("RUN_FINISHED") || body.contains("RUN_ERROR"),
                "{body}"
            );
            continue;
        }
        ensure!(status == 503, "a full disk answered {status}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body)?;
        ensure!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("full")),
            "the error says what failed: {body}"
        );
        refused += 1;
    }
    ensure!(refused > 0, "no run was refused on a full disk");
    // The server keeps serving reads meanwhile.
    let turns = admin
        .get(&format!(
            "/api/conversations/{}/turns",
            before.conversation_id
        ))
        .await?;
    ensure!(turns.to_string().contains("remember the milk"), "{turns}");

    std::fs::remove_file(&filler)?;
    let after = admin
        .run_streamed(json!({"preset_id": preset, "input": "space is back"}))
        .await?;
    ensure!(after.text() == "noted", "{:?}", after.events);
    let turns = admin
        .get(&format!(
            "/api/conversations/{}/turns",
            before.conversation_id
        ))
        .await?;
    ensure!(turns.to_string().contains("remember the milk"), "{turns}");
    drop(agent);

    // The file passes SQLite's own integrity check.
    let check = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
        ])
        .arg(disk.path().join("netherbrain.db"))
        .output()?;
    let verdict = String::from_utf8_lossy(&check.stdout);
    ensure!(
        verdict.trim() == "ok",
        "integrity_check: {verdict} {}",
        String::from_utf8_lossy(&check.stderr)
    );
    Ok(())
}

/// A private Postgres cluster on a free port, owned by the `postgres`
/// user, so restarting it disturbs no other test. Stopped when dropped.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

impl PrivatePostgres {
    fn start() -> Result<Self> {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL's binaries (/usr/lib/postgresql)")?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .max()
            .context("no PostgreSQL version installed")?;
        let bin = version.join("bin");
        let dir = tempfile::TempDir::new()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let as_postgres = |args: &[&str]| -> Result<()> {
            let out = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .output()
                .context("runuser")?;
            if !out.status.success() {
                bail!(
                    "{args:?}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(())
        };
        let data = dir.path().join("data");
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()?;
        ensure!(chown.success(), "chown the cluster directory");
        let initdb = bin.join("initdb");
        as_postgres(&[
            &initdb.to_string_lossy(),
            "-D",
            &data.to_string_lossy(),
            "-U",
            "postgres",
            "--auth=trust",
        ])?;
        let cluster = Self { dir, port, bin };
        cluster.pg_ctl(&["start", "-w"])?;
        let _ = as_postgres;
        Ok(cluster)
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        let data = self.dir.path().join("data");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("pg_ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
    }
}

/// Postgres restarted while a run streams: the run ends with a terminal
/// event (finished, or a clear error), the server keeps serving, the turn
/// committed before survives, and new runs work once Postgres is back.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_mid_run() -> Result<()> {
    let postgres = PrivatePostgres::start()?;
    let provider = FakeProvider::start().await;
    provider
        .answer_when(
            "slow",
            Reply::text(&["late ", "answer"]).after(Duration::from_secs(3)),
        )
        .await;
    provider.answer(Reply::text(&["fine"])).await;
    let agent = Agent::start_with(
        &provider,
        &[PresetDoc::new("p")],
        AgentOptions::default().database_url(&postgres.url()),
    )
    .await?;
    let admin = agent.admin();
    let preset = admin.preset_id("p").await?;
    let first = admin
        .run_streamed(json!({"preset_id": preset, "input": "hello"}))
        .await?;
    ensure!(first.text() == "fine", "{:?}", first.events);

    let streaming = {
        let admin = admin.clone();
        let preset = preset.clone();
        let conversation = first.conversation_id.clone();
        tokio::spawn(async move {
            admin
                .run_streamed(json!({"preset_id": preset, "conversation_id": conversation, "input": "slow one"}))
                .await
        })
    };
    provider.wait_for(2).await?;
    postgres.pg_ctl(&["restart", "-m", "fast", "-w"])?;
    let run = tokio::time::timeout(PATIENCE, streaming)
        .await
        .context("the run did not end after the restart")???;
    let last = run.events.last().context("no events")?;
    ensure!(
        last.event == "RUN_FINISHED" || last.event == "RUN_ERROR",
        "the run ended with {last:?}"
    );

    // The server keeps serving, the first turn is intact, new runs work
    // (the pool reconnects; allow it a few tries).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let again = loop {
        match admin
            .run_streamed(json!({"preset_id": preset, "input": "after the restart"}))
            .await
        {
            Ok(run) => break run,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    };
    ensure!(again.text() == "fine", "{:?}", again.events);
    let turns = admin
        .get(&format!(
            "/api/conversations/{}/turns",
            first.conversation_id
        ))
        .await?;
    ensure!(turns.to_string().contains("hello"), "{turns}");
    Ok(())
}
