//! The workspace's dependency rules (`docs/architecture.md`), read from
//! `cargo metadata` and `cargo tree`:
//!
//! - the direction is `cli → http, gateway, store, tools, cluster → core`:
//!   core depends on no workspace crate, store, http, tools and cluster only
//!   on core, the gateway on core and at most http's client, and nothing
//!   depends on the cli;
//! - `netherbrain-http` with only its `client` feature resolves no server
//!   stack (axum, utoipa, …), so a remote program can use the client;
//! - the cli reaches the server through `netherbrain-http`, not through
//!   axum or tower directly.
//!
//! Direction rules look at normal and build dependencies, the ones a
//! published crate carries; dev-dependencies only build tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CORE: &str = "netherbrain-core";
const STORE: &str = "netherbrain-store";
const HTTP: &str = "netherbrain-http";
const GATEWAY: &str = "netherbrain-gateway";
const CLI: &str = "netherbrain-cli";
const TOOLS: &str = "netherbrain-tools";
const CLUSTER: &str = "netherbrain-cluster";

/// Each library crate and the workspace crates it may depend on.
const DIRECTION: &[(&str, &[&str])] = &[
    (CORE, &[]),
    (STORE, &[CORE]),
    (HTTP, &[CORE]),
    (GATEWAY, &[CORE, HTTP]),
    (TOOLS, &[CORE]),
    (CLUSTER, &[CORE]),
    (CLI, &[CORE, STORE, HTTP, GATEWAY, TOOLS, CLUSTER]),
];

/// `publish = false` members (examples, benchmarks, these tests): they may
/// use every library crate, but not the cli.
const HARNESSES: &[&str] = &[
    "netherbrain-examples",
    "netherbrain-benches",
    "netherbrain-tests",
];

/// Crates of the server stack that the http client must not pull.
const SERVER_STACK: &[&str] = &[
    "axum",
    "axum-core",
    "utoipa",
    "argon2",
    "metrics-exporter-prometheus",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

/// Runs cargo (the one running these tests) in the workspace, offline.
fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(args)
        .arg("--offline")
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?}: {e}"));
    assert!(
        output.status.success(),
        "cargo {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo prints UTF-8")
}

/// One declared dependency of a workspace member.
#[derive(Debug)]
struct Dependency {
    /// The package depended on (not its local alias).
    name: String,
    /// `None` for normal, `"dev"` or `"build"`.
    kind: Option<String>,
    uses_default_features: bool,
    features: Vec<String>,
}

impl Dependency {
    fn ships(&self) -> bool {
        self.kind.as_deref() != Some("dev")
    }
}

/// A workspace member and its declared dependencies.
#[derive(Debug)]
struct Member {
    name: String,
    dependencies: Vec<Dependency>,
}

impl Member {
    /// Its normal and build dependencies on workspace crates other than
    /// itself.
    fn shipped_workspace_deps<'a>(
        &'a self,
        members: &'a BTreeSet<String>,
    ) -> impl Iterator<Item = &'a Dependency> {
        self.dependencies
            .iter()
            .filter(|d| d.ships() && d.name != self.name && members.contains(&d.name))
    }
}

fn members() -> Vec<Member> {
    let metadata: Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps"]))
            .expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    packages
        .iter()
        .map(|package| Member {
            name: package["name"].as_str().expect("name").to_owned(),
            dependencies: package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| Dependency {
                    name: d["name"].as_str().expect("dependency name").to_owned(),
                    kind: d["kind"].as_str().map(str::to_owned),
                    uses_default_features: d["uses_default_features"].as_bool().unwrap_or(true),
                    features: d["features"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

fn member<'a>(members: &'a [Member], name: &str) -> &'a Member {
    members
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is no longer a workspace member"))
}

/// The package names `cargo tree` resolves (`--prefix none`, one per line
/// as `name vX.Y.Z …`).
fn tree(args: &[&str]) -> BTreeSet<String> {
    let mut full = vec!["tree", "-e", "normal", "--prefix", "none"];
    full.extend_from_slice(args);
    cargo(&full)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn assert_no_violations(rule: &str, violations: &[String]) {
    assert!(
        violations.is_empty(),
        "{rule}:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn workspace_crates_depend_in_one_direction() {
    let members = members();
    let names: BTreeSet<String> = members.iter().map(|m| m.name.clone()).collect();
    let mut violations = Vec::new();
    for member in &members {
        let allowed: Vec<&str> = if let Some((_, allowed)) =
            DIRECTION.iter().find(|(name, _)| *name == member.name)
        {
            allowed.to_vec()
        } else if HARNESSES.contains(&member.name.as_str()) {
            DIRECTION
                .iter()
                .map(|(name, _)| *name)
                .filter(|n| *n != CLI)
                .collect()
        } else {
            violations.push(format!(
                "{} is a workspace member these rules do not know; add it to DIRECTION or HARNESSES",
                member.name
            ));
            continue;
        };
        for dep in member.shipped_workspace_deps(&names) {
            if !allowed.contains(&dep.name.as_str()) {
                violations.push(format!(
                    "{} depends on {} (allowed: {})",
                    member.name,
                    dep.name,
                    if allowed.is_empty() {
                        "no workspace crate".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ));
            }
        }
    }
    assert_no_violations(
        "the dependency direction is cli → http, gateway, store, tools, cluster → core",
        &violations,
    );
}

#[test]
fn nothing_depends_on_the_cli() {
    let violations: Vec<String> = members()
        .iter()
        .filter(|m| m.name != CLI)
        .flat_map(|m| {
            m.dependencies.iter().filter(|d| d.name == CLI).map(|d| {
                format!(
                    "{} depends on {CLI} ({})",
                    m.name,
                    d.kind.as_deref().unwrap_or("normal")
                )
            })
        })
        .collect();
    assert_no_violations("the cli is the top of the graph", &violations);
}

#[test]
fn the_gateway_uses_at_most_the_http_client() {
    let members = members();
    let violations: Vec<String> = member(&members, GATEWAY)
        .dependencies
        .iter()
        .filter(|d| d.ships() && d.name == HTTP)
        .filter(|d| d.uses_default_features || d.features.iter().any(|f| f != "client"))
        .map(|d| {
            format!(
                "{GATEWAY} depends on {HTTP} with default features {} and features {:?}; \
                 use `default-features = false, features = [\"client\"]`",
                d.uses_default_features, d.features
            )
        })
        .collect();
    assert_no_violations(
        "the gateway talks to a server only through the client",
        &violations,
    );
    let stack: Vec<String> = tree(&["-p", GATEWAY])
        .into_iter()
        .filter(|name| SERVER_STACK.contains(&name.as_str()))
        .collect();
    assert_no_violations(&format!("{GATEWAY} resolves the server stack"), &stack);
}

#[test]
fn the_http_client_resolves_no_server_stack() {
    let client = ["-p", HTTP, "--no-default-features", "--features", "client"];
    let resolved = tree(&client);
    assert!(
        resolved.contains("reqwest"),
        "the client feature no longer pulls reqwest: {resolved:?}"
    );
    let mut violations: Vec<String> = resolved
        .iter()
        .filter(|name| SERVER_STACK.contains(&name.as_str()))
        .map(|name| format!("{HTTP} --features client resolves {name}"))
        .collect();
    // reqwest itself depends on tower and tower-http (timeouts, redirects),
    // so they may be resolved, but only below reqwest.
    let direct = tree(&[&client[..], &["--depth", "1"]].concat());
    for dep in ["tower", "tower-http"] {
        if direct.contains(dep) {
            violations.push(format!(
                "{HTTP} --features client depends on {dep} directly"
            ));
        }
        if resolved.contains(dep) {
            let dependents = tree(&[&client[..], &["--depth", "1", "-i", dep]].concat());
            for dependent in dependents.iter().filter(|d| *d != dep) {
                if !["reqwest", "tower-http"].contains(&dependent.as_str()) {
                    violations.push(format!(
                        "{HTTP} --features client pulls {dep} through {dependent}, not only reqwest"
                    ));
                }
            }
        }
    }
    assert_no_violations(
        "the typed client builds without the server (`--no-default-features --features client`)",
        &violations,
    );
}

/// Expected to fail until the cli starts the server through a
/// `netherbrain-http` function instead of using axum and tower itself
/// (issue 7).
#[test]
fn the_cli_depends_on_neither_axum_nor_tower() {
    let members = members();
    let violations: Vec<String> = member(&members, CLI)
        .dependencies
        .iter()
        .filter(|d| d.ships() && ["axum", "axum-core", "tower", "tower-http"].contains(&d.name.as_str()))
        .map(|d| {
            format!(
                "{CLI} depends on {} directly; serve through netherbrain-http instead of building the router or calling it in-process",
                d.name
            )
        })
        .collect();
    assert_no_violations("the cli holds no server plumbing", &violations);
}

/// Core is the SDK: no server, no database driver, no Redis or chat
/// client, with all its features (`docs/architecture.md`).
#[test]
fn core_pulls_no_server_driver_or_platform_client() {
    let resolved = tree(&["-p", CORE, "--all-features"]);
    let violations: Vec<String> = ["axum", "sqlx", "redis", "teloxide", "twilight-http"]
        .iter()
        .filter(|name| resolved.contains(**name))
        .map(|name| format!("{CORE} resolves {name}"))
        .collect();
    assert_no_violations(
        "core depends on no server, database driver or platform client",
        &violations,
    );
}
