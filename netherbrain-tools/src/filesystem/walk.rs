//! A bounded directory walk through a capability: no symlinks followed,
//! `.git` skipped.

use std::path::{Path, PathBuf};

use cap_std::fs::Dir;

/// How a walk ended.
pub(super) struct Walked {
    /// Stopped at the entry limit.
    pub(super) truncated: bool,
}

/// Visits every entry under `base` (paths relative to it), depth first.
/// `visit(path, is_file)` returns whether to go on.
pub(super) fn walk(
    base: &Dir,
    max: usize,
    visit: &mut dyn FnMut(&Path, bool) -> bool,
) -> std::io::Result<Walked> {
    let mut stack: Vec<PathBuf> = vec![PathBuf::from(".")];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let entries = match base.read_dir(&dir) {
            Ok(e) => e,
            Err(e) if dir == Path::new(".") => return Err(e),
            Err(_) => continue,
        };
        let mut names: Vec<(PathBuf, bool, bool)> = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == ".git" {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = if dir == Path::new(".") {
                PathBuf::from(&name)
            } else {
                dir.join(&name)
            };
            names.push((path, kind.is_dir(), kind.is_file()));
        }
        names.sort();
        for (path, is_dir, is_file) in names.into_iter().rev() {
            seen += 1;
            if seen > max {
                return Ok(Walked { truncated: true });
            }
            if !visit(&path, is_file) {
                return Ok(Walked { truncated: true });
            }
            if is_dir {
                stack.push(path);
            }
        }
    }
    Ok(Walked { truncated: false })
}
