//! Paths the model names, resolved inside the project directories.

use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use netherbrain_core::tool::{ToolContext, ToolError};

/// The project directories of one call, opened as capabilities: every
/// path is opened beneath one of them, never outside.
#[derive(Debug)]
pub struct Workspace {
    roots: Vec<(PathBuf, Dir)>,
}

impl Workspace {
    /// Opens the context's project directories.
    ///
    /// # Errors
    ///
    /// The conversation has no workspace with a project directory, or none
    /// can be opened.
    pub fn open(ctx: &ToolContext) -> Result<Self, ToolError> {
        Self::from_dirs(&ctx.project_dirs)
    }

    /// Opens directories.
    ///
    /// # Errors
    ///
    /// No directory, or one cannot be opened.
    pub fn from_dirs(dirs: &[PathBuf]) -> Result<Self, ToolError> {
        if dirs.is_empty() {
            return Err(ToolError::failed(
                "this conversation has no workspace with a project directory; file and shell tools are unavailable",
            ));
        }
        let mut roots = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let opened = Dir::open_ambient_dir(dir, ambient_authority()).map_err(|e| {
                ToolError::failed(format!(
                    "cannot open project directory {}: {e}",
                    dir.display()
                ))
            })?;
            roots.push((dir.clone(), opened));
        }
        Ok(Self { roots })
    }

    /// The first project directory (where relative paths and the shell
    /// start).
    #[must_use]
    pub fn primary(&self) -> &Path {
        &self.roots[0].0
    }

    /// The project directories.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.roots.iter().map(|(p, _)| p.as_path())
    }

    /// Resolves a path the model gave: relative to the first project
    /// directory, or absolute inside one of them. Returns the directory
    /// capability and the path relative to it (`.` for the root itself).
    ///
    /// # Errors
    ///
    /// An absolute path outside every project directory, or one with `..`
    /// components.
    pub fn resolve(&self, path: &str) -> Result<(&Dir, PathBuf), ToolError> {
        let given = Path::new(path.trim());
        let (dir, rest) = if given.is_absolute() {
            self.roots
                .iter()
                .find_map(|(root, dir)| given.strip_prefix(root).ok().map(|rest| (dir, rest)))
                .ok_or_else(|| {
                    ToolError::failed(format!(
                        "`{path}` is outside the project directories ({})",
                        self.shown()
                    ))
                })?
        } else {
            (&self.roots[0].1, given)
        };
        let mut clean = PathBuf::new();
        for c in rest.components() {
            match c {
                Component::Normal(part) => clean.push(part),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(ToolError::failed(format!(
                        "`{path}`: `..` is not allowed in paths"
                    )));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(ToolError::failed(format!("`{path}` is not a valid path")));
                }
            }
        }
        if clean.as_os_str().is_empty() {
            clean.push(".");
        }
        Ok((dir, clean))
    }

    /// The absolute path to show the model for a resolved one.
    #[must_use]
    pub fn display(&self, dir: &Dir, rel: &Path) -> String {
        let root = self
            .roots
            .iter()
            .find(|(_, d)| std::ptr::eq(d, dir))
            .map_or_else(|| self.primary(), |(p, _)| p.as_path());
        if rel == Path::new(".") {
            root.display().to_string()
        } else {
            root.join(rel).display().to_string()
        }
    }

    fn shown(&self) -> String {
        self.roots
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An I/O error as a result for the model, naming the path; escapes
/// (which cap-std reports as permission errors) are said plainly.
pub(crate) fn io_error(path: &str, e: &std::io::Error) -> ToolError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ToolError::failed(format!("`{path}` does not exist")),
        std::io::ErrorKind::PermissionDenied => ToolError::failed(format!(
            "`{path}` is refused: it leads outside the project directories or is not permitted"
        )),
        _ => ToolError::failed(format!("`{path}`: {e}")),
    }
}
