//! Every publishable crate states a `rust-version` that its dependencies allow.
//!
//! A crate that says 1.80 while tokio needs 1.85 fails for its users at build time with an
//! error about tokio, not about writelane. This resolves the workspace's dependency graph
//! (default features, from Cargo.lock) for the host platform and compares each crate's
//! `rust-version` with the highest one among its normal and build dependencies. The host
//! filter keeps out dependencies of other targets that only a dev-dependency's features
//! switch on in the lock file (`getrandom` on WASI, through `rand` of the OpenTelemetry
//! SDK that the lane crate's tests use), which no user of the crates builds.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// "1.85" or "1.94.1" as comparable numbers (a missing patch is 0).
fn version_key(version: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = version
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect();
    parts.resize(3, 0);
    parts
}

#[test]
fn every_crate_states_a_rust_version_its_dependencies_allow() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let version = String::from_utf8_lossy(&version.stdout);
    let host = version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            host,
            "--manifest-path",
        ])
        .arg(workspace)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");

    let packages: HashMap<&str, &Value> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| (package["id"].as_str().expect("id"), package))
        .collect();
    let deps: HashMap<&str, Vec<&str>> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .map(|node| {
            let linked = node["deps"]
                .as_array()
                .expect("deps")
                .iter()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .expect("dep_kinds")
                        .iter()
                        .any(|kind| {
                            kind["kind"].is_null() || kind["kind"].as_str() == Some("build")
                        })
                })
                .map(|dep| dep["pkg"].as_str().expect("pkg"))
                .collect();
            (node["id"].as_str().expect("id"), linked)
        })
        .collect();

    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    for member in metadata["workspace_members"].as_array().expect("members") {
        let id = member.as_str().expect("member id");
        let package = packages[id];
        let name = package["name"].as_str().expect("name");
        let publishable =
            !matches!(package["publish"].as_array(), Some(registries) if registries.is_empty());
        if !publishable {
            continue;
        }
        let Some(stated) = package["rust_version"].as_str() else {
            problems.push(format!("{name}: no rust-version"));
            continue;
        };
        checked.insert(name.to_string());
        let mut stack = deps[id].clone();
        let mut seen = BTreeSet::new();
        while let Some(dep) = stack.pop() {
            if !seen.insert(dep) {
                continue;
            }
            let dependency = packages[dep];
            if let Some(needed) = dependency["rust_version"].as_str() {
                if version_key(needed) > version_key(stated) {
                    problems.push(format!(
                        "{name} states rust-version {stated}, but its dependency {} {} needs {needed}",
                        dependency["name"].as_str().unwrap_or("?"),
                        dependency["version"].as_str().unwrap_or("?"),
                    ));
                }
            }
            stack.extend(deps[dep].iter().copied());
        }
    }
    assert!(
        checked.contains("writelane-core") && checked.contains("writelane"),
        "the library crates were not checked: {checked:?}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn version_keys_compare_numerically() {
    assert!(version_key("1.85") > version_key("1.80"));
    assert!(version_key("1.94.1") > version_key("1.94"));
    assert!(version_key("1.100") > version_key("1.99.9"));
}
