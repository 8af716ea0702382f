//! Runs the built `netherbrain` binary with temporary data directories.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_netherbrain");

/// A command with a clean environment: no NETHER_* or provider variables,
/// HOME and XDG directories inside `home`, working directory `home`.
fn cmd(home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .current_dir(home)
        .stdin(Stdio::null());
    c
}

fn run(c: &mut Command) -> Output {
    c.output().expect("run netherbrain")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    o
}

fn one_line_error(o: &Output) {
    assert!(!o.status.success(), "expected failure: {}", stdout(o));
    let err = stderr(o);
    let lines: Vec<_> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error"), "{err}");
}

#[test]
fn every_command_has_help() {
    let home = TempDir::new().unwrap();
    for args in [
        &["--help"][..],
        &["agent", "--help"],
        &["gateway", "--help"],
        &["gateway", "pair", "--help"],
        &["db", "--help"],
        &["db", "upgrade", "--help"],
        &["db", "current", "--help"],
        &["db", "history", "--help"],
        &["chat", "--help"],
        &["presets", "--help"],
        &["presets", "import", "--help"],
        &["presets", "list", "--help"],
        &["keys", "--help"],
        &["keys", "create", "--help"],
        &["keys", "list", "--help"],
        &["keys", "revoke", "--help"],
        &["config", "--help"],
        &["config", "show", "--help"],
    ] {
        let o = ok(run(cmd(home.path()).args(args)));
        assert!(stdout(&o).contains("Usage:"), "{args:?}: {}", stdout(&o));
    }
    let o = ok(run(cmd(home.path()).args(["gateway", "--help"])));
    assert!(stdout(&o).contains("--runtime-url"));
    let o = ok(run(cmd(home.path()).arg("--version")));
    assert!(stdout(&o).starts_with("netherbrain "));
}

#[test]
fn bad_arguments_fail_with_one_line() {
    let home = TempDir::new().unwrap();
    for args in [
        &["--bogus"][..],
        &["agent", "--port", "notaport"],
        &["agent", "--bind", "0.0.0.0:1", "--port", "2"],
        &["keys", "create"],
        &["keys", "create", "--name", "x", "--expires-in", "3y"],
        &["keys", "revoke", "not-a-uuid"],
        &["db", "sideways"],
        &["frobnicate"],
    ] {
        let o = run(cmd(home.path()).args(args));
        one_line_error(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    // Runtime errors: exit 1, one line.
    let o = run(cmd(home.path()).args(["--config", "/nonexistent/nb.toml", "config", "show"]));
    one_line_error(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not exist"));
    let o = run(cmd(home.path()).args(["--database-url", "mysql://x/y", "db", "current"]));
    one_line_error(&o);
    let o = run(cmd(home.path())
        .env("NETHER_PORT", "high")
        .args(["config", "show"]));
    one_line_error(&o);
    assert!(stderr(&o).contains("NETHER_PORT"));
}

#[test]
fn gateway_explains_what_it_needs() {
    let home = TempDir::new().unwrap();
    let o = run(cmd(home.path()).arg("gateway"));
    assert_eq!(o.status.code(), Some(1));
    one_line_error(&o);
    assert!(stderr(&o).contains("--runtime-url"), "{}", stderr(&o));
    let o = run(cmd(home.path()).args(["gateway", "--runtime-url", "http://127.0.0.1:9"]));
    assert_eq!(o.status.code(), Some(1));
    one_line_error(&o);
    assert!(stderr(&o).contains("--api-key"), "{}", stderr(&o));
    // The first command that opens the store creates the admin and prints
    // its token; a later one only reports its own error.
    let first = ok(run(cmd(home.path()).args(["keys", "list"])));
    assert!(
        stderr(&first).contains("Created the `admin` account"),
        "{}",
        stderr(&first)
    );
    let o = run(cmd(home.path()).args(["gateway", "pair", "NOSUCHCODE"]));
    one_line_error(&o);
    assert!(
        stderr(&o).contains("no pending pairing") || stderr(&o).contains("admin"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_show_redacts_the_bot_token() {
    let home = TempDir::new().unwrap();
    let file = home.path().join("nb.toml");
    std::fs::write(
        &file,
        "[gateway]\nedit_interval_ms = 1500\n[gateway.telegram]\ntoken = \"123:SECRET-bot-token\"\napi_url = \"http://127.0.0.1:8081/\"\n",
    )
    .unwrap();
    let o = ok(run(cmd(home.path())
        .arg("--config")
        .arg(&file)
        .args(["config", "show"])));
    let out = stdout(&o);
    assert!(!out.contains("SECRET"), "{out}");
    assert!(out.contains("[gateway.telegram]"), "{out}");
    assert!(out.contains("token = \"<redacted>\""), "{out}");
    assert!(
        out.contains("api_url = \"http://127.0.0.1:8081/\""),
        "{out}"
    );
    let o = ok(run(cmd(home.path())
        .env("NETHER_TELEGRAM_TOKEN", "999:ENV-SECRET")
        .args(["config", "show"])));
    assert!(!stdout(&o).contains("ENV-SECRET"));
    assert!(stdout(&o).contains("token = \"<redacted>\""));
}

#[test]
fn config_show_redacts_the_webhook_secret() {
    let home = TempDir::new().unwrap();
    let file = home.path().join("nb.toml");
    std::fs::write(
        &file,
        "[gateway.telegram]\ntoken = \"123:SECRET-bot-token\"\nwebhook_url = \"https://bot.example.com/tg\"\nwebhook_listen = \"127.0.0.1:8443\"\nwebhook_secret = \"SECRET-hook-0123456789-abcdefghijkl\"\n",
    )
    .unwrap();
    let o = ok(run(cmd(home.path())
        .arg("--config")
        .arg(&file)
        .args(["config", "show"])));
    let out = stdout(&o);
    assert!(!out.contains("SECRET"), "{out}");
    assert!(
        out.contains("webhook_url = \"https://bot.example.com/tg\""),
        "{out}"
    );
    assert!(out.contains("webhook_listen = \"127.0.0.1:8443\""), "{out}");
    assert!(out.contains("webhook_secret = \"<redacted>\""), "{out}");
    // From the environment, the secret too short: one line, no secret.
    let o = run(cmd(home.path())
        .env("NETHER_TELEGRAM_TOKEN", "999:ENV-SECRET")
        .env("NETHER_TELEGRAM_WEBHOOK_URL", "https://bot.example.com/tg")
        .env("NETHER_TELEGRAM_WEBHOOK_LISTEN", "127.0.0.1:8443")
        .env("NETHER_TELEGRAM_WEBHOOK_SECRET", "SECRET-short")
        .args(["config", "show"]));
    one_line_error(&o);
    assert!(stderr(&o).contains("webhook secret"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("SECRET"), "{}", stderr(&o));
    // Without the secret: it says which setting is missing.
    let o = run(cmd(home.path())
        .env("NETHER_TELEGRAM_TOKEN", "999:ENV-SECRET")
        .env("NETHER_TELEGRAM_WEBHOOK_URL", "https://bot.example.com/tg")
        .env("NETHER_TELEGRAM_WEBHOOK_LISTEN", "127.0.0.1:8443")
        .args(["config", "show"]));
    one_line_error(&o);
    assert!(
        stderr(&o).contains("NETHER_TELEGRAM_WEBHOOK_SECRET"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_show_redacts_the_discord_token() {
    let home = TempDir::new().unwrap();
    let file = home.path().join("nb.toml");
    std::fs::write(
        &file,
        "[gateway.discord]\ntoken = \"MTIz.SECRET-discord-token\"\napi_url = \"http://127.0.0.1:8082\"\n",
    )
    .unwrap();
    let o = ok(run(cmd(home.path())
        .arg("--config")
        .arg(&file)
        .env("NETHER_DISCORD_GATEWAY_URL", "ws://127.0.0.1:8083")
        .args(["config", "show"])));
    let out = stdout(&o);
    assert!(!out.contains("SECRET"), "{out}");
    assert!(out.contains("[gateway.discord]"), "{out}");
    assert!(out.contains("token = \"<redacted>\""), "{out}");
    assert!(out.contains("api_url = \"http://127.0.0.1:8082\""), "{out}");
    assert!(
        out.contains("gateway_url = \"ws://127.0.0.1:8083\""),
        "{out}"
    );
    let o = ok(run(cmd(home.path())
        .env("NETHER_DISCORD_TOKEN", "MTIz.ENV-SECRET")
        .args(["config", "show"])));
    assert!(!stdout(&o).contains("ENV-SECRET"));
    assert!(stdout(&o).contains("[gateway.discord]"));
}

#[test]
fn config_show_redacts_secrets_and_shows_precedence() {
    let home = TempDir::new().unwrap();
    let file = home.path().join("nb.toml");
    std::fs::write(
        &file,
        r#"
port = 1111
host = "127.0.0.2"
auth_token = "file-token-very-secret-123"
database_url = "postgres://nb:pg-password-xyz@db.example:5432/nb"
log = "debug"

[[providers]]
name = "local"
kind = "openai"
base_url = "http://127.0.0.1:11434/v1"
api_key = "sk-inline-secret-456"
headers = { Authorization = "Bearer header-secret-789", "X-Title" = "nb" }
models = ["llama3.2"]
"#,
    )
    .unwrap();
    let show = |extra_env: &[(&str, &str)], args: &[&str]| {
        let mut c = cmd(home.path());
        c.arg("--config")
            .arg(&file)
            .args(["config", "show"])
            .args(args);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        stdout(&ok(run(&mut c)))
    };

    let out = show(&[], &[]);
    for secret in [
        "file-token-very-secret-123",
        "pg-password-xyz",
        "sk-inline-secret-456",
        "header-secret-789",
    ] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    assert!(out.contains("<redacted>"));
    assert!(out.contains("port = 1111  # config file"), "{out}");
    assert!(out.contains("host = \"127.0.0.2\"  # config file"), "{out}");
    assert!(
        out.contains("postgres://nb:<redacted>@db.example:5432/nb"),
        "{out}"
    );
    assert!(out.contains("name = \"local\""), "{out}");
    // The output is TOML.
    let parsed: toml::Table = out.parse().expect("config show prints TOML");
    assert_eq!(parsed["port"].as_integer(), Some(1111));

    let out = show(&[("NETHER_PORT", "2222")], &[]);
    assert!(out.contains("port = 2222  # env NETHER_PORT"), "{out}");
    let out = show(&[("NETHER_PORT", "2222")], &["--port", "3333"]);
    assert!(out.contains("port = 3333  # flag --port"), "{out}");
    assert!(out.contains("host = \"127.0.0.2\"  # config file"), "{out}");

    // .env sits between the real environment and the file.
    std::fs::write(
        home.path().join(".env"),
        "NETHER_PORT=4444\nNETHER_LOG=warn\n",
    )
    .unwrap();
    let out = show(&[], &[]);
    assert!(out.contains("port = 4444  # .env NETHER_PORT"), "{out}");
    let out = show(&[("NETHER_PORT", "2222")], &[]);
    assert!(out.contains("port = 2222  # env NETHER_PORT"), "{out}");
    std::fs::remove_file(home.path().join(".env")).unwrap();

    // The default file location is used when it exists.
    let default = home.path().join("config/netherbrain/config.toml");
    std::fs::create_dir_all(default.parent().unwrap()).unwrap();
    std::fs::write(&default, "port = 5555\n").unwrap();
    let out = stdout(&ok(run(cmd(home.path()).args(["config", "show"]))));
    assert!(out.contains("port = 5555  # config file"), "{out}");
}

#[test]
fn config_show_derives_provider_profiles() {
    let home = TempDir::new().unwrap();
    let out = stdout(&ok(run(cmd(home.path())
        .env("OPENAI_API_KEY", "sk-env-secret")
        .env("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
        .args(["config", "show"]))));
    assert!(out.contains("name = \"openai\""), "{out}");
    assert!(out.contains("api_key_env = \"OPENAI_API_KEY\""), "{out}");
    assert!(!out.contains("sk-env-secret"));
}

#[test]
fn db_commands_on_a_fresh_sqlite_database() {
    let home = TempDir::new().unwrap();
    let data = home.path().join("nbdata");
    let db = |sub: &str| {
        let o = ok(run(cmd(home.path())
            .arg("--data-dir")
            .arg(&data)
            .args(["db", sub])));
        stdout(&o)
    };
    let history = db("history");
    assert!(history.contains("(pending)"), "{history}");
    let current = db("current");
    assert!(current.contains("no migrations applied"), "{current}");
    let upgrade = db("upgrade");
    assert!(upgrade.contains("applied"), "{upgrade}");
    assert!(data.join("netherbrain.db").exists());
    let current = db("current");
    assert!(current.contains("applied"), "{current}");
    let history = db("history");
    assert!(!history.contains("(pending)"), "{history}");
    assert!(db("upgrade").contains("up to date"));
}

const PRESETS: &str = r#"
[[presets]]
name = "helper"
description = "A helpful assistant"
[presets.config]
profile = "openai"
model = "gpt-test"
system_prompt = "Be brief."

[[presets]]
name = "other"
[presets.config]
profile = "openai"
model = "gpt-other"
"#;

#[test]
fn presets_import_and_list() {
    let home = TempDir::new().unwrap();
    let data = home.path().join("d");
    let file = home.path().join("presets.toml");
    std::fs::write(&file, PRESETS).unwrap();
    let nb = || {
        let mut c = cmd(home.path());
        c.arg("--data-dir")
            .arg(&data)
            .env("OPENAI_API_KEY", "sk-test");
        c
    };
    let o = ok(run(nb().args(["presets", "import"]).arg(&file)));
    assert!(
        stdout(&o).contains("created preset helper"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("created preset other"));
    let o = ok(run(nb().args(["presets", "import"]).arg(&file)));
    assert!(
        stdout(&o).contains("updated preset helper"),
        "{}",
        stdout(&o)
    );
    let o = ok(run(nb().args(["presets", "list"])));
    let list = stdout(&o);
    assert!(
        list.contains("helper") && list.contains("gpt-test"),
        "{list}"
    );
    assert!(list.contains("other"));

    // A profile that is not configured is a clear error.
    let bad = home.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[config]\nprofile = \"nope\"\nmodel = \"m\"\n",
    )
    .unwrap();
    let o = run(nb().args(["presets", "import"]).arg(&bad));
    one_line_error(&o);
    assert!(
        stderr(&o).contains("provider profile `nope`"),
        "{}",
        stderr(&o)
    );
    // Not TOML, missing file.
    std::fs::write(&bad, "name = ").unwrap();
    one_line_error(&run(nb().args(["presets", "import"]).arg(&bad)));
    one_line_error(&run(nb().args(["presets", "import", "missing.toml"])));
}

#[test]
fn keys_create_list_revoke() {
    let home = TempDir::new().unwrap();
    let data = home.path().join("d");
    let nb = || {
        let mut c = cmd(home.path());
        c.arg("--data-dir").arg(&data);
        c
    };
    let o = ok(run(nb().args([
        "keys",
        "create",
        "--name",
        "ci",
        "--expires-in",
        "30d",
    ])));
    let token = stdout(&o).trim().to_owned();
    assert!(token.starts_with("nb_"), "{token}");
    assert_eq!(token.lines().count(), 1);
    assert!(stderr(&o).contains("shown only once"));
    let o = ok(run(nb().args(["keys", "list"])));
    let list = stdout(&o);
    let line = list
        .lines()
        .find(|l| l.contains(" ci "))
        .expect("key listed");
    assert!(line.ends_with("active"), "{list}");
    assert!(!list.contains(&token), "the secret must not be listed");
    let id = line.split_whitespace().next().unwrap().to_owned();
    ok(run(nb().args(["keys", "revoke", &id])));
    let o = ok(run(nb().args(["keys", "list", "--user", "admin"])));
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with(&id) && l.ends_with("revoked")),
        "{}",
        stdout(&o)
    );
    let o = run(nb().args(["keys", "revoke", &id]));
    one_line_error(&o);
    assert!(stderr(&o).contains("already revoked"));
    let o = run(nb().args(["keys", "list", "--user", "nobody"]));
    one_line_error(&o);
    assert!(stderr(&o).contains("no user named `nobody`"));
}

fn sse_text(parts: &[&str]) -> String {
    let mut body = String::new();
    for p in parts {
        body.push_str(&format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
            serde_json::Value::String((*p).to_owned())
        ));
    }
    body.push_str(
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
    );
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_one_shot_in_process() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            sse_text(&["Hello ", "from ", "the mock."]),
            "text/event-stream",
        ))
        .mount(&provider)
        .await;
    let home = TempDir::new().unwrap();
    let data = home.path().join("d");
    let file = home.path().join("presets.toml");
    std::fs::write(&file, PRESETS).unwrap();
    let base_url = format!("{}/v1", provider.uri());
    let nb = || {
        let mut c = cmd(home.path());
        c.arg("--data-dir")
            .arg(&data)
            .env("OPENAI_BASE_URL", &base_url)
            .env("OPENAI_API_KEY", "sk-test");
        c
    };
    ok(run(nb().args(["presets", "import"]).arg(&file)));
    // Two presets and no --preset: a clear error.
    let o = run(nb().args(["chat", "-m", "hi"]));
    one_line_error(&o);
    assert!(stderr(&o).contains("--preset"), "{}", stderr(&o));

    let o = ok(run(nb().args([
        "chat",
        "--preset",
        "helper",
        "-m",
        "Say hello",
    ])));
    assert_eq!(stdout(&o).trim(), "Hello from the mock.", "{}", stderr(&o));
    let requests = provider.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["model"], "gpt-test");
    assert!(body.to_string().contains("Say hello"));
    assert!(body.to_string().contains("Be brief."));

    let o = run(nb().args(["chat", "--preset", "nope", "-m", "x"]));
    one_line_error(&o);
    let o = run(nb().args([
        "chat",
        "--url",
        "http://127.0.0.1:1",
        "--token",
        "t",
        "-m",
        "x",
    ]));
    // An unreachable server is a one-line error.
    one_line_error(&o);

    // Remote: the same question through a running server. The database
    // already has its admin (the commands above bootstrapped it), so use an
    // operator token.
    let token = "operator-token-for-remote-chat";
    let mut agent = Agent::spawn_with(
        home.path(),
        &data,
        &["--auth-token", token],
        &[
            ("OPENAI_BASE_URL", base_url.as_str()),
            ("OPENAI_API_KEY", "sk-test"),
        ],
    );
    agent.wait_ready().await;
    let o = ok(run(nb()
        .args([
            "chat",
            "--preset",
            "helper",
            "-m",
            "Say hello remotely",
            "--url",
        ])
        .arg(agent.url(""))
        .args(["--token", token])));
    assert_eq!(stdout(&o).trim(), "Hello from the mock.", "{}", stderr(&o));
    assert!(agent.terminate().success());
    let requests = provider.received_requests().await.unwrap();
    assert!(String::from_utf8_lossy(&requests.last().unwrap().body).contains("Say hello remotely"));
}

/// The README run command: `netherbrain agent` on a fresh data directory.
struct Agent {
    child: Child,
    port: u16,
    stdout: std::sync::mpsc::Receiver<String>,
}

impl Agent {
    fn spawn(home: &Path, data: &Path, extra: &[&str]) -> Self {
        Self::spawn_with(home, data, extra, &[])
    }

    fn spawn_with(home: &Path, data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut c = cmd(home);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .arg("agent")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agent");
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            port,
            stdout: rx,
        }
    }

    /// Waits for `/api/health`.
    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(self.url("/api/health")).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "no healthy server within 20 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn readme_run_command_starts_a_working_server() {
    let home = TempDir::new().unwrap();
    let data = home.path().join("fresh");
    let started = Instant::now();
    let mut agent = Agent::spawn(home.path(), &data, &[]);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        if let Ok(r) = http.get(agent.url("/api/health")).send().await
            && r.status() == 200
        {
            break started.elapsed();
        }
        if let Some(status) = agent.child.try_wait().unwrap() {
            panic!("agent exited early ({status}): {}", agent.stderr());
        }
        assert!(Instant::now() < deadline, "no healthy server within 20 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    eprintln!(
        "startup to ready (exec → /api/health 200): {} ms",
        ready.as_millis()
    );

    // The one-time admin token is printed on stdout.
    let mut token = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while token.is_none() && Instant::now() < deadline {
        if let Ok(line) = agent.stdout.recv_timeout(Duration::from_millis(100)) {
            let t = line.trim();
            if t.starts_with("nb_") {
                token = Some(t.to_owned());
            }
        }
    }
    let token = token.expect("the admin token is printed once");
    let me: serde_json::Value = http
        .get(agent.url("/api/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "admin");
    assert_eq!(
        http.get(agent.url("/api/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let status = agent.terminate();
    assert!(status.success(), "exit {status}: {}", agent.stderr());
    let log = agent.stderr();
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
    assert!(log.contains("ready"), "{log}");
    assert!(!log.contains(&token), "the token must not be logged");

    // A second start on the same data: no new token, same admin works.
    let mut again = Agent::spawn(home.path(), &data, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http
            .get(again.url("/api/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(again.terminate().success());
    let printed: Vec<String> = again.stdout.try_iter().collect();
    assert!(!printed.iter().any(|l| l.contains("nb_")), "{printed:?}");
}

#[test]
fn agent_reports_an_unusable_address_in_one_line() {
    let home = TempDir::new().unwrap();
    let data = home.path().join("d");
    // An address this machine does not have: one `error:` line, exit 1.
    let o = run(cmd(home.path()).arg("--data-dir").arg(&data).args([
        "agent",
        "--bind",
        "203.0.113.1:1",
    ]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).lines().last().unwrap().starts_with("error: "),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_repl_reads_lines_until_eof() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(sse_text(&["pong"]), "text/event-stream"),
        )
        .mount(&provider)
        .await;
    let home = TempDir::new().unwrap();
    let file = home.path().join("one.toml");
    std::fs::write(
        &file,
        "name = \"solo\"\n[config]\nprofile = \"openai\"\nmodel = \"m\"\n",
    )
    .unwrap();
    let base_url = format!("{}/v1", provider.uri());
    let nb = || {
        let mut c = cmd(home.path());
        c.arg("--data-dir")
            .arg(home.path().join("d"))
            .env("OPENAI_BASE_URL", &base_url);
        c
    };
    ok(run(nb().args(["presets", "import"]).arg(&file)));
    let mut child = nb()
        .arg("chat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"ping\n\nping again\n").unwrap();
        // Dropping stdin is Ctrl-D.
    }
    let o = child.wait_with_output().unwrap();
    let o = ok(o);
    assert_eq!(stdout(&o).matches("pong").count(), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("conversation "), "{}", stderr(&o));
    // The second message continued the same conversation.
    let requests = provider.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let second = String::from_utf8_lossy(&requests[1].body).into_owned();
    assert!(
        second.contains("ping again") && second.contains("pong"),
        "{second}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_a_run_in_flight() {
    // The provider answers after a minute: the run is still going when
    // SIGTERM arrives, so the drain must interrupt it after the timeout.
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(sse_text(&["too late"]), "text/event-stream")
                .set_delay(Duration::from_secs(60)),
        )
        .mount(&provider)
        .await;
    let home = TempDir::new().unwrap();
    let data = home.path().join("d");
    let file = home.path().join("slow.toml");
    std::fs::write(
        &file,
        "name = \"slow\"\n[config]\nprofile = \"openai\"\nmodel = \"m\"\n",
    )
    .unwrap();
    let base_url = format!("{}/v1", provider.uri());
    let env = [("OPENAI_BASE_URL", base_url.as_str())];
    ok(run(cmd(home.path())
        .arg("--data-dir")
        .arg(&data)
        .envs(env)
        .args(["presets", "import"])
        .arg(&file)));
    let token = "operator-token-for-the-drain-test";
    let mut agent = Agent::spawn_with(
        home.path(),
        &data,
        &["--auth-token", token, "--graceful-shutdown-timeout", "1"],
        &env,
    );
    agent.wait_ready().await;
    let http = reqwest::Client::new();
    let presets: serde_json::Value = http
        .get(agent.url("/api/presets/list"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let preset_id = presets["items"][0]["id"].as_str().unwrap().to_owned();
    let started: serde_json::Value = http
        .post(agent.url("/api/conversations/run"))
        .bearer_auth(token)
        .json(&serde_json::json!({"preset_id": preset_id, "input": "hi", "stream": false}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let session_id: uuid::Uuid = started["session_id"].as_str().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while provider.received_requests().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the provider was never called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stopping = Instant::now();
    let status = agent.terminate();
    let took = stopping.elapsed();
    assert!(status.success(), "exit {status}: {}", agent.stderr());
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "did not wait for the run: {took:?}"
    );

    let store = netherbrain_store::connect(&format!(
        "sqlite://{}",
        data.join("netherbrain.db").display()
    ))
    .await
    .unwrap();
    let session = store.get_session(session_id.into()).await.unwrap();
    assert_eq!(session.status, netherbrain_core::SessionStatus::Interrupted);
    let log = agent.stderr();
    assert!(log.contains("interrupted=1"), "{log}");
}

#[test]
fn config_show_redacts_urls_and_headers_and_loads_back() {
    let home = TempDir::new().unwrap();
    let file = home.path().join("nb.toml");
    std::fs::write(
        &file,
        r#"
[[providers]]
name = "proxy"
kind = "openai"
base_url = "https://user:url-password-111@llm.example/v1?api_key=url-key-222"
api_key = "sk-planted-inline-333"
[providers.headers]
Cookie = "session=cookie-secret-444"
X-Title = "netherbrain"

[[providers]]
name = "other"
kind = "anthropic"
api_key_env = "NB_TEST_UNSET_KEY"
"#,
    )
    .unwrap();
    let out = stdout(&ok(run(cmd(home.path())
        .env("NETHER_S3_BUCKET", "b")
        .env("NETHER_S3_ENDPOINT", "https://ak:s3-secret-555@s3.example")
        .arg("--config")
        .arg(&file)
        .args(["config", "show"]))));
    for secret in [
        "url-password-111",
        "url-key-222",
        "sk-planted-inline-333",
        "cookie-secret-444",
        "s3-secret-555",
    ] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    assert!(out.contains("X-Title = \"netherbrain\""), "{out}");
    assert!(out.contains("[providers.headers]"), "{out}");
    assert!(!out.contains("\n[headers]"), "{out}");
    // The output is a config file the binary loads again, to the same show.
    let again = home.path().join("shown.toml");
    std::fs::write(&again, &out).unwrap();
    let reloaded = stdout(&ok(run(cmd(home.path())
        .arg("--config")
        .arg(&again)
        .args(["config", "show"]))));
    assert!(reloaded.contains("name = \"proxy\""), "{reloaded}");
    assert!(reloaded.contains("name = \"other\""), "{reloaded}");
}
