//! The built-in tool sets of Netherbrain agents.
//!
//! A preset enables a set by name in `toolsets`; the binary registers
//! every set of [`builtin`] in its agent catalog.
//!
//! | set | tools | default policy |
//! | --- | --- | --- |
//! | `filesystem` | `filesystem_view`, `filesystem_ls`, `filesystem_glob`, `filesystem_grep` | auto |
//! | | `filesystem_write`, `filesystem_edit`, `filesystem_mkdir`, `filesystem_move`, `filesystem_copy` | ask |
//! | `shell` | `shell_run` | ask |
//! | `web` | `web_fetch` | auto |
//! | `ask_user` | `ask_user` (answered by the user) | — |
//! | `delegate` | `delegate` (a subagent: another preset in a child conversation) | auto |
//! | `schedule` | `schedule_list` | auto |
//! | | `schedule_create`, `schedule_cancel` (the run's user's scheduled tasks, running the run's preset; registered by the binary with the server's [`Tasks`](netherbrain_core::tasks::Tasks), not part of [`builtin`]) | ask |
//! | `memory` | `memory_remember`, `memory_recall`, `memory_forget` (the run's user's long-term memories; registered by the binary with the server's [`Memories`](netherbrain_core::memory::Memories), not part of [`builtin`]) | auto |
//!
//! MCP servers a preset declares (`mcp_servers`) become tools
//! `mcp_<server>_<tool>` through [`mcp::Mcp`], registered with
//! [`AgentCatalog::with_mcp`](netherbrain_core::agent::AgentCatalog::with_mcp).
//!
//! File and shell tools are confined to the workspace's project
//! directories ([`ToolContext::project_dirs`](netherbrain_core::tool::ToolContext)).
//! Paths are opened with `cap-std` (`openat2` with `RESOLVE_BENEATH` where
//! the kernel has it), so `..`, absolute paths outside and symlinks that
//! lead outside are refused at the moment of opening, including a symlink
//! swapped in after any earlier check.
//!
//! [`builtin`] gives the sets that need nothing else; the `delegate` set
//! needs the conversation service ([`delegate::Delegate::bind`]), so the
//! binary adds it itself.
//!
//! ```
//! let sets = netherbrain_tools::builtin();
//! let names: Vec<&str> = sets.iter().map(|s| s.name()).collect();
//! assert_eq!(names, ["filesystem", "shell", "web", "ask_user"]);
//! ```

pub mod ask_user;
mod confine;
pub mod delegate;
pub mod filesystem;
pub mod mcp;
pub mod memory;
pub mod schedule;
pub mod shell;
pub mod web;

use std::sync::Arc;

use netherbrain_core::tool::ToolSet;

pub use confine::Workspace;

/// Every built-in tool set, with default limits.
#[must_use]
pub fn builtin() -> Vec<Arc<dyn ToolSet>> {
    vec![
        Arc::new(filesystem::Filesystem::new()),
        Arc::new(shell::Shell::new()),
        Arc::new(web::Web::new()),
        Arc::new(ask_user::AskUser::new()),
    ]
}
