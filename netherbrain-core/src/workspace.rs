//! Where a workspace's project directories may lie.
//!
//! The operator sets the allowed roots (configuration; the binary's default
//! is `workspaces/` in the data directory). A project directory is
//! canonicalised (symlinks resolved, `..` removed) when a workspace is saved
//! and again when a run hands it to tools, and must then lie inside a root;
//! `/` is never accepted, not even as a root.
//!
//! ```
//! use netherbrain_core::workspace::WorkspaceRoots;
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::create_dir(dir.path().join("proj")).unwrap();
//! let roots = WorkspaceRoots::new(vec![dir.path().to_owned()]).unwrap();
//! let inside = dir.path().join("proj");
//! assert!(roots.confine(inside.to_str().unwrap()).is_ok());
//! assert!(roots.confine("/etc").is_err());
//! assert!(roots.confine("/").is_err());
//! ```

use std::path::{Path, PathBuf};

/// Why a root or a project directory was refused.
///
/// ```
/// use netherbrain_core::workspace::WorkspaceError;
/// let e = WorkspaceError::Root;
/// assert_eq!(e.to_string(), "`/` cannot be a workspace root or project directory");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkspaceError {
    /// `/` was given.
    #[error("`/` cannot be a workspace root or project directory")]
    Root,
    /// The path is not absolute.
    #[error("`{0}` is not an absolute path")]
    Relative(String),
    /// The path cannot be resolved (does not exist, no permission).
    #[error("`{path}` cannot be resolved: {message}")]
    Unresolvable {
        /// The path as given.
        path: String,
        /// What the operating system said.
        message: String,
    },
    /// The resolved path lies outside every allowed root.
    #[error("`{0}` is outside the allowed workspace roots")]
    Outside(String),
}

/// The directories project directories must lie under.
///
/// ```
/// use netherbrain_core::workspace::WorkspaceRoots;
/// assert!(WorkspaceRoots::default().roots().is_empty());
/// assert!(WorkspaceRoots::new(vec!["/".into()]).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceRoots {
    roots: Vec<PathBuf>,
}

impl WorkspaceRoots {
    /// Roots from paths, each canonicalised (so they must exist).
    ///
    /// # Errors
    ///
    /// A root that is `/`, relative or cannot be resolved.
    pub fn new(roots: Vec<PathBuf>) -> Result<Self, WorkspaceError> {
        let mut out = Vec::with_capacity(roots.len());
        for root in roots {
            let shown = root.display().to_string();
            if !root.is_absolute() {
                return Err(WorkspaceError::Relative(shown));
            }
            let canonical = canonical(&root, &shown)?;
            if canonical.parent().is_none() {
                return Err(WorkspaceError::Root);
            }
            out.push(canonical);
        }
        Ok(Self { roots: out })
    }

    /// The canonical roots.
    #[must_use]
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The canonical form of a project directory, if it lies inside a
    /// root (a root itself is allowed).
    ///
    /// # Errors
    ///
    /// `/`, a relative path, one that cannot be resolved, or one outside
    /// every root.
    pub fn confine(&self, dir: &str) -> Result<PathBuf, WorkspaceError> {
        let path = Path::new(dir);
        if !path.is_absolute() {
            return Err(WorkspaceError::Relative(dir.to_owned()));
        }
        let canonical = canonical(path, dir)?;
        if canonical.parent().is_none() {
            return Err(WorkspaceError::Root);
        }
        if self.roots.iter().any(|root| canonical.starts_with(root)) {
            Ok(canonical)
        } else {
            Err(WorkspaceError::Outside(dir.to_owned()))
        }
    }

    /// Confines every directory, as strings to store.
    ///
    /// # Errors
    ///
    /// The first directory [`confine`](Self::confine) refuses.
    pub fn confine_all(&self, dirs: &[String]) -> Result<Vec<String>, WorkspaceError> {
        dirs.iter()
            .map(|d| {
                let c = self.confine(d)?;
                c.into_os_string()
                    .into_string()
                    .map_err(|_| WorkspaceError::Unresolvable {
                        path: d.clone(),
                        message: "the resolved path is not UTF-8".to_owned(),
                    })
            })
            .collect()
    }
}

fn canonical(path: &Path, shown: &str) -> Result<PathBuf, WorkspaceError> {
    std::fs::canonicalize(path).map_err(|e| WorkspaceError::Unresolvable {
        path: shown.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_and_dotdot_are_resolved_before_the_check() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let roots = WorkspaceRoots::new(vec![root.clone()]).unwrap();
        let s = |p: PathBuf| p.to_str().unwrap().to_owned();
        assert!(roots.confine(&s(root.join("a"))).is_ok());
        assert!(roots.confine(&s(root.clone())).is_ok());
        assert!(matches!(
            roots.confine(&s(root.join("link"))),
            Err(WorkspaceError::Outside(_))
        ));
        assert!(matches!(
            roots.confine(&s(root.join("a/../../outside"))),
            Err(WorkspaceError::Outside(_))
        ));
        assert!(matches!(
            roots.confine("relative"),
            Err(WorkspaceError::Relative(_))
        ));
        assert!(matches!(roots.confine("/"), Err(WorkspaceError::Root)));
        assert!(matches!(
            roots.confine(&s(root.join("missing"))),
            Err(WorkspaceError::Unresolvable { .. })
        ));
        assert_eq!(
            WorkspaceRoots::new(vec!["/".into()]),
            Err(WorkspaceError::Root)
        );
        assert!(WorkspaceRoots::default().confine(&s(root)).is_err());
    }
}
