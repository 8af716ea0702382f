//! Finding (and if needed building) the `netherbrain` binary.
//!
//! Cargo builds another package's binary only when that package is part of
//! the build, as in `cargo test --workspace`. These tests use
//! `target/<profile>/netherbrain` next to the test executable's `deps/`;
//! when it is missing (`cargo test -p netherbrain-tests` on a fresh target
//! directory) it is built once per test process with
//! `cargo build -p netherbrain-cli --bin netherbrain`. An existing binary is
//! not rebuilt: after changing the server, run the workspace tests or that
//! `cargo build` first (see `tests/README.md`). `NETHERBRAIN_TEST_BIN`
//! names another binary to test instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};

/// The binary to test; see the module docs. Panics with the build's output
/// when it cannot be provided.
pub fn path() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match locate() {
        Ok(bin) => bin,
        Err(e) => panic!("cannot provide the netherbrain binary: {e:#}"),
    })
}

fn locate() -> Result<PathBuf> {
    // a binary named explicitly wins (e.g. one copied out of a target
    // directory shared by several checkouts)
    if let Some(bin) = std::env::var_os("NETHERBRAIN_TEST_BIN").map(PathBuf::from) {
        if bin.is_file() {
            return Ok(bin);
        }
        bail!("NETHERBRAIN_TEST_BIN={} is not a file", bin.display());
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .filter(|deps| deps.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent)
        .ok_or_else(|| {
            anyhow!(
                "{} is not in a cargo `deps/` directory; run through `cargo test`",
                exe.display()
            )
        })?;
    let bin = profile_dir.join(format!("netherbrain{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() {
        return Ok(bin);
    }
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| anyhow!("no target directory above {}", profile_dir.display()))?;
    eprintln!("{} is missing: building it", bin.display());
    build(&workspace_root(), target_dir, profile)?;
    if !bin.is_file() {
        bail!("cargo built, but {} does not exist", bin.display());
    }
    Ok(bin)
}

fn build(root: &Path, target_dir: &Path, profile: &str) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "-p", "netherbrain-cli", "--bin", "netherbrain"])
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let out = build.output().context("running cargo build")?;
    if !out.status.success() {
        bail!(
            "`cargo build -p netherbrain-cli --bin netherbrain` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}
