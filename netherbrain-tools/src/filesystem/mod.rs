//! The `filesystem` tool set: view, write, edit, ls, glob, grep, mkdir,
//! move and copy inside the workspace's project directories.
//!
//! Every path is opened through a `cap-std` directory capability of a
//! project directory ([`Workspace`]): `..`, absolute paths outside and
//! symlinks leading outside fail at the moment of opening. Files over
//! [`FsLimits::max_file_bytes`] are refused, binary files are reported
//! (size only), and outputs are capped.

mod walk;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use cap_std::fs::Dir;
use netherbrain_core::schemars::{self, JsonSchema};
use netherbrain_core::tool::{
    DynTool, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSet,
};
use serde::Deserialize;

use crate::confine::{Workspace, io_error};

/// Limits of the filesystem tools.
///
/// ```
/// let limits = netherbrain_tools::filesystem::FsLimits::default();
/// assert_eq!(limits.max_file_bytes, 4 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsLimits {
    /// Largest file read, written, edited or searched.
    pub max_file_bytes: u64,
    /// Most text returned by one call.
    pub max_output_bytes: usize,
    /// Most entries or matches listed by one call.
    pub max_results: usize,
    /// Most entries a glob or grep walks.
    pub max_walk: usize,
}

impl Default for FsLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 4 * 1024 * 1024,
            max_output_bytes: 256 * 1024,
            max_results: 500,
            max_walk: 50_000,
        }
    }
}

/// The `filesystem` tool set.
#[derive(Debug, Clone, Default)]
pub struct Filesystem {
    limits: Arc<FsLimits>,
}

impl Filesystem {
    /// The set with default limits.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The set with these limits.
    #[must_use]
    pub fn with_limits(limits: FsLimits) -> Self {
        Self {
            limits: Arc::new(limits),
        }
    }

    /// The tools as a registry (for tests and embedding).
    ///
    /// # Errors
    ///
    /// Never in practice: the names and schemas are fixed.
    pub fn registry(&self) -> Result<ToolRegistry, netherbrain_core::tool::RegistryError> {
        let l = &self.limits;
        ToolRegistry::new()
            .with(View(l.clone()))?
            .with(Ls(l.clone()))?
            .with(GlobTool(l.clone()))?
            .with(Grep(l.clone()))?
            .with(Write(l.clone()))?
            .with(Edit(l.clone()))?
            .with(Mkdir)?
            .with(Move)?
            .with(Copy(l.clone()))
    }
}

#[async_trait]
impl ToolSet for Filesystem {
    fn name(&self) -> &str {
        "filesystem"
    }

    async fn tools(&self) -> Result<Vec<Arc<dyn DynTool>>, ToolError> {
        let registry = self
            .registry()
            .map_err(|e| ToolError::failed(e.to_string()))?;
        Ok(registry
            .definitions()
            .iter()
            .filter_map(|d| registry.get(&d.name).cloned())
            .collect())
    }
}

/// Runs blocking filesystem work with the call's workspace.
async fn blocking<F>(ctx: ToolContext, f: F) -> Result<ToolOutput, ToolError>
where
    F: FnOnce(&Workspace) -> Result<String, ToolError> + Send + 'static,
{
    let dirs = ctx.project_dirs.clone();
    tokio::task::spawn_blocking(move || {
        let ws = Workspace::from_dirs(&dirs)?;
        f(&ws).map(ToolOutput::text)
    })
    .await
    .map_err(|e| ToolError::failed(format!("the filesystem task failed: {e}")))?
}

/// Reads a whole file, refusing one over the limit; `Err` names binaries.
fn read_text(dir: &Dir, rel: &Path, shown: &str, limits: &FsLimits) -> Result<String, ToolError> {
    let file = dir.open(rel).map_err(|e| io_error(shown, &e))?;
    let meta = file.metadata().map_err(|e| io_error(shown, &e))?;
    if meta.is_dir() {
        return Err(ToolError::failed(format!(
            "`{shown}` is a directory; use filesystem_ls"
        )));
    }
    if meta.len() > limits.max_file_bytes {
        return Err(ToolError::failed(format!(
            "`{shown}` is {} bytes, over the limit of {} bytes",
            meta.len(),
            limits.max_file_bytes
        )));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limits.max_file_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(shown, &e))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limits.max_file_bytes {
        return Err(ToolError::failed(format!(
            "`{shown}` is over the limit of {} bytes",
            limits.max_file_bytes
        )));
    }
    text_or_binary(bytes, shown)
}

fn text_or_binary(bytes: Vec<u8>, shown: &str) -> Result<String, ToolError> {
    let len = bytes.len();
    if bytes.iter().take(8192).any(|b| *b == 0) {
        return Err(ToolError::failed(format!(
            "`{shown}` is a binary file ({len} bytes); its content is not shown"
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        ToolError::failed(format!(
            "`{shown}` is a binary file ({len} bytes, not UTF-8); its content is not shown"
        ))
    })
}

/// Cuts text at `max` bytes (on a character boundary) with a note.
pub(crate) fn cap_output(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let total = text.len();
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(&format!(
        "\n[output truncated: {total} bytes, showing the first {cut}]"
    ));
    text
}

// ---- view ----

/// Arguments of `filesystem_view`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewArgs {
    /// File path: relative to the first project directory, or absolute inside one.
    pub path: String,
    /// First line to show (1-based, default 1).
    #[serde(default)]
    pub start_line: Option<u64>,
    /// Last line to show (inclusive, default: the end).
    #[serde(default)]
    pub end_line: Option<u64>,
}

#[derive(Debug)]
struct View(Arc<FsLimits>);

#[async_trait]
impl Tool for View {
    type Args = ViewArgs;
    fn name(&self) -> &str {
        "filesystem_view"
    }
    fn description(&self) -> &str {
        "Shows a text file with line numbers, optionally only a line range. Binary files are reported, not shown."
    }
    async fn call(&self, args: ViewArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let limits = self.0.clone();
        blocking(ctx, move |ws| {
            let (dir, rel) = ws.resolve(&args.path)?;
            let text = read_text(dir, &rel, &args.path, &limits)?;
            let start = args.start_line.unwrap_or(1).max(1);
            let end = args.end_line.unwrap_or(u64::MAX);
            if end < start {
                return Err(ToolError::failed("end_line is before start_line"));
            }
            let mut out = String::new();
            let mut total: u64 = 0;
            for (i, line) in text.lines().enumerate() {
                let n = u64::try_from(i).unwrap_or(u64::MAX) + 1;
                total = n;
                if n >= start && n <= end {
                    out.push_str(&format!("{n:>6}\t{line}\n"));
                }
            }
            if out.is_empty() {
                return Ok(if total == 0 {
                    format!("`{}` is empty", args.path)
                } else {
                    format!(
                        "`{}` has {total} lines; none in the requested range",
                        args.path
                    )
                });
            }
            Ok(cap_output(out, limits.max_output_bytes))
        })
        .await
    }
}

// ---- ls ----

/// Arguments of `filesystem_ls`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LsArgs {
    /// Directory (default: the first project directory).
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug)]
struct Ls(Arc<FsLimits>);

#[async_trait]
impl Tool for Ls {
    type Args = LsArgs;
    fn name(&self) -> &str {
        "filesystem_ls"
    }
    fn description(&self) -> &str {
        "Lists a directory: one entry per line with its kind (file, dir, link) and size. Without a path, lists the project directories' first one."
    }
    async fn call(&self, args: LsArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let limits = self.0.clone();
        blocking(ctx, move |ws| {
            let path = args.path.unwrap_or_else(|| ".".to_owned());
            let (dir, rel) = ws.resolve(&path)?;
            let mut entries: Vec<String> = Vec::new();
            for entry in dir.read_dir(&rel).map_err(|e| io_error(&path, &e))? {
                let entry = entry.map_err(|e| io_error(&path, &e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let kind = entry.file_type().map_err(|e| io_error(&path, &e))?;
                let line = if kind.is_symlink() {
                    format!("link  {name}")
                } else if kind.is_dir() {
                    format!("dir   {name}/")
                } else {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    format!("file  {name}  ({size} bytes)")
                };
                entries.push(line);
            }
            entries.sort();
            let total = entries.len();
            entries.truncate(limits.max_results);
            let mut out = format!("{} ({total} entries)\n", ws.display(dir, &rel));
            out.push_str(&entries.join("\n"));
            if total > limits.max_results {
                out.push_str(&format!(
                    "\n[{} more not shown]",
                    total - limits.max_results
                ));
            }
            Ok(cap_output(out, limits.max_output_bytes))
        })
        .await
    }
}

// ---- glob ----

/// Arguments of `filesystem_glob`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GlobArgs {
    /// A glob over paths relative to `path`, e.g. `src/**/*.rs`.
    pub pattern: String,
    /// Directory to search (default: the first project directory).
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug)]
struct GlobTool(Arc<FsLimits>);

#[async_trait]
impl Tool for GlobTool {
    type Args = GlobArgs;
    fn name(&self) -> &str {
        "filesystem_glob"
    }
    fn description(&self) -> &str {
        "Finds files whose path (relative to the search directory) matches a glob such as `**/*.rs`. Skips .git and does not follow symlinks."
    }
    async fn call(&self, args: GlobArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let limits = self.0.clone();
        blocking(ctx, move |ws| {
            let matcher = globset::Glob::new(&args.pattern)
                .map_err(|e| ToolError::InvalidArguments(format!("bad glob: {e}")))?
                .compile_matcher();
            let path = args.path.unwrap_or_else(|| ".".to_owned());
            let (dir, rel) = ws.resolve(&path)?;
            let base = dir.open_dir(&rel).map_err(|e| io_error(&path, &e))?;
            let mut found = Vec::new();
            let walked = walk::walk(&base, limits.max_walk, &mut |p, _| {
                if matcher.is_match(p) {
                    found.push(p.display().to_string());
                }
                found.len() < limits.max_results
            })
            .map_err(|e| io_error(&path, &e))?;
            found.sort();
            let mut out = if found.is_empty() {
                format!("no file matches `{}`", args.pattern)
            } else {
                found.join("\n")
            };
            if found.len() >= limits.max_results || walked.truncated {
                out.push_str("\n[results truncated]");
            }
            Ok(cap_output(out, limits.max_output_bytes))
        })
        .await
    }
}

// ---- grep ----

/// Arguments of `filesystem_grep`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrepArgs {
    /// A regular expression (Rust `regex` syntax).
    pub pattern: String,
    /// Directory or file to search (default: the first project directory).
    #[serde(default)]
    pub path: Option<String>,
    /// Only files whose relative path matches this glob.
    #[serde(default)]
    pub glob: Option<String>,
    /// Case-insensitive.
    #[serde(default)]
    pub ignore_case: bool,
}

#[derive(Debug)]
struct Grep(Arc<FsLimits>);

#[async_trait]
impl Tool for Grep {
    type Args = GrepArgs;
    fn name(&self) -> &str {
        "filesystem_grep"
    }
    fn description(&self) -> &str {
        "Searches text files for a regular expression; prints `path:line: text` per match. Skips binary and oversized files, .git and symlinks."
    }
    async fn call(&self, args: GrepArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let limits = self.0.clone();
        blocking(ctx, move |ws| {
            let re = regex::RegexBuilder::new(&args.pattern)
                .case_insensitive(args.ignore_case)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| ToolError::InvalidArguments(format!("bad regex: {e}")))?;
            let filter = args
                .glob
                .as_deref()
                .map(|g| globset::Glob::new(g).map(|g| g.compile_matcher()))
                .transpose()
                .map_err(|e| ToolError::InvalidArguments(format!("bad glob: {e}")))?;
            let path = args.path.unwrap_or_else(|| ".".to_owned());
            let (dir, rel) = ws.resolve(&path)?;
            let mut out: Vec<String> = Vec::new();
            let search = |out: &mut Vec<String>, d: &Dir, p: &Path, shown: &Path| {
                let Ok(text) = read_text(d, p, &shown.display().to_string(), &limits) else {
                    return;
                };
                for (i, line) in text.lines().enumerate() {
                    if re.is_match(line) && out.len() < limits.max_results {
                        out.push(format!("{}:{}: {line}", shown.display(), i + 1));
                    }
                }
            };
            let meta = dir.metadata(&rel).map_err(|e| io_error(&path, &e))?;
            let mut truncated = false;
            if meta.is_file() {
                search(&mut out, dir, &rel, Path::new(&path));
            } else {
                let base = dir.open_dir(&rel).map_err(|e| io_error(&path, &e))?;
                let walked = walk::walk(&base, limits.max_walk, &mut |p, is_file| {
                    if is_file && filter.as_ref().is_none_or(|f| f.is_match(p)) {
                        search(&mut out, &base, p, p);
                    }
                    out.len() < limits.max_results
                })
                .map_err(|e| io_error(&path, &e))?;
                truncated = walked.truncated;
            }
            let mut text = if out.is_empty() {
                format!("no match for `{}`", args.pattern)
            } else {
                out.join("\n")
            };
            if out.len() >= limits.max_results || truncated {
                text.push_str("\n[results truncated]");
            }
            Ok(cap_output(text, limits.max_output_bytes))
        })
        .await
    }
}

// ---- write ----

/// Arguments of `filesystem_write`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteArgs {
    /// File path; missing parent directories are created.
    pub path: String,
    /// The whole new content.
    pub content: String,
}

#[derive(Debug)]
struct Write(Arc<FsLimits>);

#[async_trait]
impl Tool for Write {
    type Args = WriteArgs;
    fn name(&self) -> &str {
        "filesystem_write"
    }
    fn description(&self) -> &str {
        "Writes a file (creating or replacing it) with the given content."
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: WriteArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let limits = self.0.clone();
        blocking(ctx, move |ws| {
            if u64::try_from(args.content.len()).unwrap_or(u64::MAX) > limits.max_file_bytes {
                return Err(ToolError::failed(format!(
                    "the content is {} bytes, over the limit of {} bytes",
                    args.content.len(),
                    limits.max_file_bytes
                )));
            }
            let (dir, rel) = ws.resolve(&args.path)?;
            if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                dir.create_dir_all(parent)
                    .map_err(|e| io_error(&args.path, &e))?;
            }
            dir.write(&rel, args.content.as_bytes())
                .map_err(|e| io_error(&args.path, &e))?;
            Ok(format!(
                "wrote {} bytes to {}",
                args.content.len(),
                ws.display(dir, &rel)
            ))
        })
        .await
    }
}

// ---- edit ----

/// One replacement of `filesystem_edit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditOp {
    /// The exact text to replace; must occur exactly once unless `replace_all`.
    pub old_text: String,
    /// The replacement.
    pub new_text: String,
    /// Replace every occurrence.
    #[serde(default)]
    pub replace_all: bool,
}

/// Arguments of `filesystem_edit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EditArgs {
    /// File path.
    pub path: String,
    /// Replacements applied in order; the file is written only if all apply.
    pub edits: Vec<EditOp>,
}

#[derive(Debug)]
struct Edit(Arc<FsLimits>);

#[async_trait]
impl Tool for Edit {
    type Args = EditArgs;
    fn name(&self) -> &str {
        "filesystem_edit"
    }
    fn description(&self) -> &str {
        "Edits a text file by exact string replacement; several edits apply in order and the file changes only if every one applies."
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: EditArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let limits = self.0.clone();
        blocking(ctx, move |ws| {
            if args.edits.is_empty() {
                return Err(ToolError::InvalidArguments("no edits given".into()));
            }
            let (dir, rel) = ws.resolve(&args.path)?;
            let mut text = read_text(dir, &rel, &args.path, &limits)?;
            let mut replaced = 0usize;
            for (i, op) in args.edits.iter().enumerate() {
                if op.old_text.is_empty() {
                    return Err(ToolError::failed(format!("edit {}: old_text is empty", i + 1)));
                }
                let count = text.matches(&op.old_text).count();
                match (count, op.replace_all) {
                    (0, _) => {
                        return Err(ToolError::failed(format!(
                            "edit {}: old_text not found; the file is unchanged",
                            i + 1
                        )));
                    }
                    (1, _) | (_, true) => {
                        text = text.replace(&op.old_text, &op.new_text);
                        replaced += count;
                    }
                    (n, false) => {
                        return Err(ToolError::failed(format!(
                            "edit {}: old_text occurs {n} times; give more context or set replace_all; the file is unchanged",
                            i + 1
                        )));
                    }
                }
            }
            if u64::try_from(text.len()).unwrap_or(u64::MAX) > limits.max_file_bytes {
                return Err(ToolError::failed("the edited file would exceed the size limit"));
            }
            dir.write(&rel, text.as_bytes())
                .map_err(|e| io_error(&args.path, &e))?;
            Ok(format!(
                "applied {} edit(s), {replaced} replacement(s), to {}",
                args.edits.len(),
                ws.display(dir, &rel)
            ))
        })
        .await
    }
}

// ---- mkdir ----

/// Arguments of `filesystem_mkdir`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirArgs {
    /// Directory to create, with missing parents.
    pub path: String,
}

#[derive(Debug)]
struct Mkdir;

#[async_trait]
impl Tool for Mkdir {
    type Args = MkdirArgs;
    fn name(&self) -> &str {
        "filesystem_mkdir"
    }
    fn description(&self) -> &str {
        "Creates a directory and its missing parents."
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: MkdirArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        blocking(ctx, move |ws| {
            let (dir, rel) = ws.resolve(&args.path)?;
            dir.create_dir_all(&rel)
                .map_err(|e| io_error(&args.path, &e))?;
            Ok(format!("created {}", ws.display(dir, &rel)))
        })
        .await
    }
}

// ---- move / copy ----

/// Arguments of `filesystem_move` and `filesystem_copy`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveArgs {
    /// Source path.
    pub from: String,
    /// Destination path (its parent must exist).
    pub to: String,
}

#[derive(Debug)]
struct Move;

#[async_trait]
impl Tool for Move {
    type Args = MoveArgs;
    fn name(&self) -> &str {
        "filesystem_move"
    }
    fn description(&self) -> &str {
        "Moves or renames a file or directory inside the project directories."
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: MoveArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        blocking(ctx, move |ws| {
            let (from_dir, from) = ws.resolve(&args.from)?;
            let (to_dir, to) = ws.resolve(&args.to)?;
            if from == Path::new(".") || to == Path::new(".") {
                return Err(ToolError::failed(
                    "a project directory itself cannot be moved",
                ));
            }
            from_dir
                .rename(&from, to_dir, &to)
                .map_err(|e| io_error(&format!("{} -> {}", args.from, args.to), &e))?;
            Ok(format!(
                "moved {} to {}",
                ws.display(from_dir, &from),
                ws.display(to_dir, &to)
            ))
        })
        .await
    }
}

#[derive(Debug)]
struct Copy(Arc<FsLimits>);

#[async_trait]
impl Tool for Copy {
    type Args = MoveArgs;
    fn name(&self) -> &str {
        "filesystem_copy"
    }
    fn description(&self) -> &str {
        "Copies a file inside the project directories."
    }
    fn requires_approval(&self) -> bool {
        true
    }
    async fn call(&self, args: MoveArgs, ctx: ToolContext) -> Result<ToolOutput, ToolError> {
        let limits = self.0.clone();
        blocking(ctx, move |ws| {
            let (from_dir, from) = ws.resolve(&args.from)?;
            let (to_dir, to) = ws.resolve(&args.to)?;
            let meta = from_dir
                .metadata(&from)
                .map_err(|e| io_error(&args.from, &e))?;
            if !meta.is_file() {
                return Err(ToolError::failed(format!("`{}` is not a file", args.from)));
            }
            if meta.len() > limits.max_file_bytes {
                return Err(ToolError::failed(format!(
                    "`{}` is {} bytes, over the limit of {} bytes",
                    args.from,
                    meta.len(),
                    limits.max_file_bytes
                )));
            }
            let n = from_dir
                .copy(&from, to_dir, &to)
                .map_err(|e| io_error(&format!("{} -> {}", args.from, args.to), &e))?;
            Ok(format!(
                "copied {n} bytes from {} to {}",
                ws.display(from_dir, &from),
                ws.display(to_dir, &to)
            ))
        })
        .await
    }
}
