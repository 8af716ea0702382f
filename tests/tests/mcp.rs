//! MCP servers as tools, against real servers: the stdio server written
//! with `rmcp` in this crate (`src/bin/mcp_stdio_server.rs`) and a
//! streamable-HTTP server from the official `mcp` Python package
//! (`python/mcp_http_server.py`, installed by `scripts/test`).

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use netherbrain_core::agent::{Agent, AgentCatalog};
use netherbrain_core::testing::ScriptedProvider;
use netherbrain_core::tool::{McpServerConfig, ToolContext, ToolError};
use netherbrain_core::{PresetConfig, ToolPolicy};
use netherbrain_tools::mcp::Mcp;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const SERVER: &str = env!("CARGO_BIN_EXE_mcp-stdio-server");
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

fn catalog() -> AgentCatalog {
    AgentCatalog::new()
        .with_provider("p", Arc::new(ScriptedProvider::new([])), vec!["m".into()])
        .with_mcp(Arc::new(Mcp::new()))
}

fn stdio(pid_file: &Path) -> McpServerConfig {
    McpServerConfig::stdio(SERVER)
        .with_env("MCP_TEST_PID_FILE", pid_file.to_string_lossy())
        .with_env("GREETING", "hello from the preset")
        // Cargo sets CARGO_MANIFEST_DIR for the test process.
        .with_env_from("FROM_SERVER_ENV", "CARGO_MANIFEST_DIR")
}

fn names(agent: &Agent) -> Vec<String> {
    agent
        .tools()
        .definitions()
        .into_iter()
        .map(|d| d.name)
        .collect()
}

async fn call(agent: &Agent, tool: &str, args: serde_json::Value) -> Result<String, ToolError> {
    agent
        .tools()
        .call(tool, args, ToolContext::default(), CALL_TIMEOUT)
        .await
        .map(|o| o.content)
}

fn pid(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purposes; /proc shows its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2) != Some("Z"))
        .unwrap_or(false)
}

/// Waits (bounded) until the process has exited.
async fn wait_dead(pid: i32) -> bool {
    for _ in 0..200 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn stdio_server_tools_are_namespaced_validated_and_called() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let config = PresetConfig::new("p", "m").with_mcp_server("test", stdio(&pid_file));
    let agent = catalog().agent(&config).await.unwrap();
    assert_eq!(
        names(&agent),
        [
            "mcp_test_add",
            "mcp_test_crash",
            "mcp_test_env",
            "mcp_test_fail",
            "mcp_test_lookup",
            "mcp_test_spawn_child"
        ]
    );
    // Read-only tools run; the others ask by default.
    assert_eq!(agent.policy_for("mcp_test_lookup", false), ToolPolicy::Auto);
    let add = agent.tools().get("mcp_test_add").unwrap();
    assert!(add.requires_approval());
    assert!(
        !agent
            .tools()
            .get("mcp_test_lookup")
            .unwrap()
            .requires_approval()
    );

    let fact = call(
        &agent,
        "mcp_test_lookup",
        json!({"key": "capital-of-atlantis"}),
    )
    .await
    .unwrap();
    assert_eq!(fact, "The capital of Atlantis is Poseidonia.");
    assert_eq!(
        call(&agent, "mcp_test_add", json!({"a": 2, "b": 40}))
            .await
            .unwrap(),
        "42"
    );

    // The server's input schema is validated before anything is sent.
    let bad = call(&agent, "mcp_test_add", json!({"a": "two", "b": 1})).await;
    assert!(
        matches!(bad, Err(ToolError::InvalidArguments(_))),
        "{bad:?}"
    );
    let missing = call(&agent, "mcp_test_lookup", json!({})).await;
    assert!(
        matches!(missing, Err(ToolError::InvalidArguments(_))),
        "{missing:?}"
    );

    // An error result reaches the model as an error.
    let failed = call(&agent, "mcp_test_fail", json!({})).await;
    assert_eq!(
        failed,
        Err(ToolError::Failed("the fail tool failed, as it does".into()))
    );

    // The environment: declared variables and env_from, nothing else.
    let env = |name: &str| call(&agent, "mcp_test_env", json!({"name": name}));
    assert_eq!(env("GREETING").await.unwrap(), "hello from the preset");
    assert_eq!(
        env("FROM_SERVER_ENV").await.unwrap(),
        env!("CARGO_MANIFEST_DIR")
    );
    // The test process's own variables are not passed on under their names.
    assert_eq!(
        env("CARGO_MANIFEST_DIR").await.unwrap(),
        "CARGO_MANIFEST_DIR is not set"
    );
}

#[tokio::test]
async fn a_crashed_stdio_server_is_restarted_and_killed_when_the_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let config = PresetConfig::new("p", "m").with_mcp_server("test", stdio(&pid_file));
    let agent = catalog().agent(&config).await.unwrap();
    let first = pid(&pid_file).expect("the server wrote its pid");

    // The process exits in the middle of the call: an error for the model.
    let crashed = call(&agent, "mcp_test_crash", json!({})).await;
    assert!(matches!(crashed, Err(ToolError::Failed(_))), "{crashed:?}");
    assert!(wait_dead(first).await, "the crashed server is gone");

    // The next call reconnects: a new process answers.
    let fact = call(
        &agent,
        "mcp_test_lookup",
        json!({"key": "capital-of-atlantis"}),
    )
    .await
    .unwrap();
    assert!(fact.contains("Poseidonia"));
    let second = pid(&pid_file).unwrap();
    assert_ne!(first, second);
    assert!(alive(second));

    // A process the server started, in its process group.
    let grandchild: i32 = call(&agent, "mcp_test_spawn_child", json!({}))
        .await
        .unwrap()
        .parse()
        .expect("a process id");
    assert!(alive(grandchild));

    // The run's agent is dropped: the server's process group is killed.
    drop(agent);
    assert!(wait_dead(second).await, "the server outlived its run");
    assert!(
        wait_dead(grandchild).await,
        "a process the server started outlived its run"
    );
}

#[tokio::test]
async fn tool_lists_are_cached_until_refreshed_and_processes_start_on_first_call() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let config = PresetConfig::new("p", "m").with_mcp_server("test", stdio(&pid_file));
    let catalog = catalog();
    let first = catalog.agent(&config).await.unwrap();
    let first_pid = pid(&pid_file).unwrap();
    drop(first);
    assert!(wait_dead(first_pid).await);
    std::fs::remove_file(&pid_file).unwrap();

    // Listed from the cache: no process until a tool is called.
    let second = catalog.agent(&config).await.unwrap();
    assert_eq!(names(&second).len(), 6);
    assert!(pid(&pid_file).is_none(), "a cached list starts no server");
    assert_eq!(
        call(&second, "mcp_test_add", json!({"a": 1, "b": 1}))
            .await
            .unwrap(),
        "2"
    );
    let second_pid = pid(&pid_file).expect("the first call started the server");
    drop(second);
    assert!(wait_dead(second_pid).await);
    std::fs::remove_file(&pid_file).unwrap();

    // After a refresh the next agent lists again, starting the server.
    catalog.refresh_tools();
    let third = catalog.agent(&config).await.unwrap();
    assert_eq!(names(&third).len(), 6);
    assert!(pid(&pid_file).is_some(), "a refreshed list asks the server");
}

#[tokio::test]
async fn a_server_that_fails_to_start_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let config = PresetConfig::new("p", "m")
        .with_mcp_server("broken", McpServerConfig::stdio("/nonexistent/mcp-server"))
        .with_mcp_server("exits", McpServerConfig::stdio("/bin/false"))
        .with_mcp_server(
            "missing-secret",
            McpServerConfig::stdio(SERVER).with_env_from("X", "MCP_TEST_UNSET_VARIABLE"),
        )
        .with_mcp_server("test", stdio(&pid_file));
    let agent = catalog().agent(&config).await.unwrap();
    let names = names(&agent);
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("mcp_test_")));
}

#[tokio::test]
async fn malformed_server_declarations_are_refused_by_the_catalog() {
    let catalog = catalog();
    for (name, server) in [
        ("both", McpServerConfig::stdio("x").with_header("A", "b")),
        ("bad name!", McpServerConfig::stdio("x")),
        ("none", McpServerConfig::default()),
        (
            "leak",
            McpServerConfig::stdio("x").with_env_from("K", "NETHER_MASTER_KEY"),
        ),
        ("ftp", McpServerConfig::http("ftp://127.0.0.1/")),
    ] {
        let config = PresetConfig::new("p", "m").with_mcp_server(name, server);
        assert!(catalog.check(&config).is_err(), "{name} accepted");
    }
}

/// The Python server on a free loopback port; killed when dropped.
struct PythonServer {
    /// Held so the process lives as long as the test needs it.
    _child: tokio::process::Child,
    url: String,
}

async fn python_server(token: &str) -> PythonServer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/mcp_http_server.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .env("MCP_TEST_TOKEN", token)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let port = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(port) = line.strip_prefix("PORT ") {
                return port.trim().to_owned();
            }
        }
        panic!("the Python MCP server exited without a port (is the `mcp` package installed?)");
    })
    .await
    .expect("the Python MCP server started");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    PythonServer {
        _child: child,
        url: format!("http://127.0.0.1:{port}/mcp"),
    }
}

#[tokio::test]
async fn python_streamable_http_server_with_a_secret_header_from_the_environment() {
    // The server wants `X-Test-Token: <MCP_TEST_TOKEN>`; the preset takes
    // the value from a variable of this process (Cargo sets CARGO_PKG_NAME).
    let server = python_server(env!("CARGO_PKG_NAME")).await;
    let config = PresetConfig::new("p", "m")
        .with_mcp_server(
            "py",
            McpServerConfig::http(&server.url)
                .with_header_from_env("X-Test-Token", "CARGO_PKG_NAME")
                .with_header("X-Other", "literal"),
        )
        .with_mcp_server(
            "denied",
            McpServerConfig::http(&server.url).with_header("X-Test-Token", "wrong"),
        );
    let agent = catalog().agent(&config).await.unwrap();
    // The server with the wrong token is skipped; the other one is listed.
    assert_eq!(names(&agent), ["mcp_py_multiply", "mcp_py_weather"]);
    let schema = &agent
        .tools()
        .get("mcp_py_multiply")
        .unwrap()
        .definition()
        .parameters;
    assert_eq!(schema["type"], "object");

    assert_eq!(
        call(&agent, "mcp_py_weather", json!({"city": "Lisbon"}))
            .await
            .unwrap(),
        "It is sunny in Lisbon, 21 degrees."
    );
    let product = call(&agent, "mcp_py_multiply", json!({"a": 6, "b": 7}))
        .await
        .unwrap();
    assert!(product.contains("42"), "{product}");
    let bad = call(&agent, "mcp_py_multiply", json!({"a": 6})).await;
    assert!(
        matches!(bad, Err(ToolError::InvalidArguments(_))),
        "{bad:?}"
    );
    drop(agent);
    drop(server);
}

#[tokio::test]
async fn an_http_server_that_is_down_is_skipped() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = PresetConfig::new("p", "m").with_mcp_server(
        "down",
        McpServerConfig::http(format!("http://127.0.0.1:{port}/mcp")).with_timeout_secs(10),
    );
    let agent = catalog().agent(&config).await.unwrap();
    assert!(agent.tools().is_empty());
}
