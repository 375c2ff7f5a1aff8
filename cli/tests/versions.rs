//! One version everywhere: the workspace version of the root Cargo.toml is the only source,
//! and every other place that states writelane's version must say the same. A release bumps
//! `[workspace.package] version` and then whatever this test names.

use std::fs;
use std::path::{Path, PathBuf};

/// The repository root (this crate lives in cli/).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The text between the first pair of double quotes after `prefix` on the first line that
/// starts with `prefix` (leading spaces ignored).
fn quoted_after(text: &str, prefix: &str) -> Option<String> {
    let line = text.lines().find(|l| l.trim_start().starts_with(prefix))?;
    let rest = &line.trim_start()[prefix.len()..];
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    Some(rest[start..start + len].to_string())
}

/// The value of `#define NAME VALUE` in a header, as written.
fn define(header: &str, name: &str) -> Option<String> {
    let prefix = format!("#define {name} ");
    header
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.trim().to_string())
}

/// The workspace version, from the `[workspace.package]` table of the root Cargo.toml.
fn workspace_version() -> String {
    let manifest = read("Cargo.toml");
    let table = manifest
        .split("[workspace.package]")
        .nth(1)
        .expect("the root Cargo.toml has a [workspace.package] table");
    let table = table.split("\n[").next().unwrap_or(table);
    quoted_after(table, "version =").expect("[workspace.package] states a version")
}

/// The members of the workspace, from `members = [...]` in the root Cargo.toml.
fn members() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members ="))
        .expect("the root Cargo.toml lists its members");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Every place that states a version and disagrees with `want`, as "FILE: WHAT" lines.
fn disagreements(want: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let mut other = Vec::new();
    let mut check = |file: &str, what: &str, found: Option<String>| match found {
        Some(v) if v == want => {}
        Some(v) => bad.push(format!("{file}: {what} is {v}, the workspace says {want}")),
        None => bad.push(format!(
            "{file}: {what} is missing (the workspace says {want})"
        )),
    };

    // Every crate takes the workspace version, and a path dependency on a writelane crate
    // (needed with a version for publishing) names the same version.
    for member in members() {
        let file = format!("{member}/Cargo.toml");
        let manifest = read(&file);
        let package = manifest.split("\n[").next().unwrap_or(&manifest);
        if !package
            .lines()
            .any(|l| l.trim() == "version.workspace = true")
        {
            check(
                &file,
                "[package] version",
                quoted_after(package, "version ="),
            );
        }
        for line in manifest.lines().map(str::trim_start) {
            if line.starts_with("writelane") && line.contains("path = ") {
                if let Some(at) = line.find("version = ") {
                    let dep = line.split_whitespace().next().unwrap_or(line);
                    let what = format!("the version of its dependency {dep}");
                    check(&file, &what, quoted_after(&line[at..], "version ="));
                }
            }
        }
    }

    // Python: maturin takes the crate's version when pyproject declares it dynamic.
    let pyproject = read("bindings-python/pyproject.toml");
    let project = pyproject
        .split("[project]")
        .nth(1)
        .map(|t| t.split("\n[").next().unwrap_or(t))
        .unwrap_or("");
    if let Some(v) = quoted_after(project, "version =") {
        other.push(format!(
            "bindings-python/pyproject.toml: [project] states version {v}; it must be \
             dynamic = [\"version\"] so maturin takes the workspace's {want}"
        ));
    }
    if !project
        .lines()
        .any(|l| l.trim_start().starts_with("dynamic =") && l.contains("\"version\""))
    {
        other
            .push("bindings-python/pyproject.toml: [project] lacks dynamic = [\"version\"]".into());
    }

    // Node: the package and its lock file.
    let package: serde_json::Value =
        serde_json::from_str(&read("bindings-wasm/package.json")).expect("package.json is JSON");
    check(
        "bindings-wasm/package.json",
        "\"version\"",
        package["version"].as_str().map(str::to_string),
    );
    let lock: serde_json::Value = serde_json::from_str(&read("bindings-wasm/package-lock.json"))
        .expect("package-lock.json is JSON");
    check(
        "bindings-wasm/package-lock.json",
        "\"version\"",
        lock["version"].as_str().map(str::to_string),
    );
    check(
        "bindings-wasm/package-lock.json",
        "packages[\"\"].version",
        lock["packages"][""]["version"].as_str().map(str::to_string),
    );

    // C: cbindgen.toml writes WL_VERSION into the header; the header's MAJOR/MINOR/PATCH
    // come from bindings-c/src/lib.rs.
    check(
        "bindings-c/cbindgen.toml",
        "#define WL_VERSION",
        quoted_after(&read("bindings-c/cbindgen.toml"), "#define WL_VERSION "),
    );
    {
        let file = "bindings-c/include/writelane.h";
        let header = read(file);
        check(
            file,
            "WL_VERSION",
            quoted_after(&header, "#define WL_VERSION "),
        );
        let parts = ["MAJOR", "MINOR", "PATCH"]
            .map(|p| define(&header, &format!("WL_VERSION_{p}")).unwrap_or_else(|| "?".into()));
        check(file, "WL_VERSION_MAJOR.MINOR.PATCH", Some(parts.join(".")));
    }

    // Go: the package's own constant.
    check(
        "go/version.go",
        "PackageVersion",
        quoted_after(&read("go/version.go"), "const PackageVersion ="),
    );
    bad.extend(other);
    bad
}

#[test]
fn every_package_states_the_workspace_version() {
    let want = workspace_version();
    assert!(
        want.split('.').count() == 3 && want.split('.').all(|p| p.parse::<u32>().is_ok()),
        "Cargo.toml: [workspace.package] version {want} is not MAJOR.MINOR.PATCH"
    );
    let bad = disagreements(&want);
    assert!(bad.is_empty(), "versions disagree:\n{}", bad.join("\n"));
}

#[test]
fn a_different_workspace_version_is_reported_with_each_file() {
    // Against a version nobody states, every place is named with both versions, so the
    // check above cannot pass by reading nothing.
    let bad = disagreements("9.9.9");
    for file in [
        "lane/Cargo.toml",
        "trail/Cargo.toml",
        "cli/Cargo.toml",
        "bindings-wasm/package.json",
        "bindings-wasm/package-lock.json",
        "bindings-c/cbindgen.toml",
        "bindings-c/include/writelane.h",
        "go/version.go",
    ] {
        assert!(
            bad.iter()
                .any(|b| b.starts_with(file) && b.contains("9.9.9")),
            "{file} is not checked: {bad:#?}"
        );
    }
    let want = workspace_version();
    assert!(
        bad.iter().all(|b| b.contains(&format!("is {want}"))),
        "{bad:#?}"
    );
}
