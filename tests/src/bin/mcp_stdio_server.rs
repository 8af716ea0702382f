//! A small MCP server over stdio, written with `rmcp`, for the MCP tests.
//!
//! Tools: `lookup` (read-only: a fact about a key), `add` (two integers),
//! `fail` (always an error result), `spawn_child` (starts a `sleep`, to test
//! that the whole process group is killed) and `crash` (exits the process,
//! to test reconnecting). When `MCP_TEST_PID_FILE` is set, the server writes its
//! process id there at start; every variable named in `MCP_TEST_ECHO_ENV`
//! can be read back with `env`.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct LookupArgs {
    /// What to look up.
    key: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// First addend.
    a: i64,
    /// Second addend.
    b: i64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EnvArgs {
    /// Variable to read.
    name: String,
}

#[derive(Debug, Clone)]
struct TestServer {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl TestServer {
    /// Looks up a fact by key.
    #[tool(annotations(read_only_hint = true))]
    fn lookup(&self, Parameters(LookupArgs { key }): Parameters<LookupArgs>) -> String {
        match key.as_str() {
            "capital-of-atlantis" => "The capital of Atlantis is Poseidonia.".to_owned(),
            other => format!("nothing known about {other}"),
        }
    }

    /// Adds two integers.
    #[tool]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    /// Always fails.
    #[tool(annotations(read_only_hint = true))]
    fn fail(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("the fail tool failed, as it does")])
    }

    /// Reads one of the server's environment variables.
    #[tool(annotations(read_only_hint = true))]
    fn env(&self, Parameters(EnvArgs { name }): Parameters<EnvArgs>) -> String {
        std::env::var(&name).unwrap_or_else(|_| format!("{name} is not set"))
    }

    /// Starts a long-running child process (in the server's process group)
    /// and returns its process id.
    #[tool(annotations(read_only_hint = true))]
    fn spawn_child(&self) -> String {
        match std::process::Command::new("sleep").arg("300").spawn() {
            Ok(child) => child.id().to_string(),
            Err(e) => format!("cannot start sleep: {e}"),
        }
    }

    /// Exits the server process at once.
    #[tool(annotations(read_only_hint = true))]
    fn crash(&self) -> String {
        std::process::exit(3);
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    if let Ok(path) = std::env::var("MCP_TEST_PID_FILE") {
        std::fs::write(path, std::process::id().to_string())?;
    }
    eprintln!("mcp test server starting");
    let server = TestServer {
        tool_router: TestServer::tool_router(),
    }
    .serve(rmcp::transport::stdio())
    .await?;
    server.waiting().await?;
    Ok(())
}
