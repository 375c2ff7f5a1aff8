//! One repository URL everywhere: `repository` in `[workspace.package]` of the root
//! Cargo.toml is the only source of the Go module path, which is its host and path plus
//! `/go`. Every go.mod under go/ (module lines, requires, replaces) and every import of the
//! package or its sub-packages must use it; scripts/set-repository.sh rewrites them all.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

/// `https://github.com/OWNER/NAME` of `[workspace.package] repository`, as host/path + "/go".
fn module_path() -> String {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).expect("reading Cargo.toml");
    let table = manifest
        .split("[workspace.package]")
        .nth(1)
        .expect("the root Cargo.toml has a [workspace.package] table");
    let table = table.split("\n[").next().unwrap_or(table);
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with("repository ="))
        .expect("[workspace.package] states a repository");
    let url = line
        .split('"')
        .nth(1)
        .expect("repository is a quoted string");
    let rest = url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("repository {url} is not an https:// URL"));
    format!("{}/go", rest.trim_end_matches('/').trim_end_matches(".git"))
}

/// Every file under `dir` whose name ends with one of `suffixes`.
fn files(dir: &Path, suffixes: &[&str], out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files(&path, suffixes, out);
        } else if suffixes.iter().any(|s| path.to_string_lossy().ends_with(s)) {
            out.push(path);
        }
    }
}

/// The places in `text` that name the Go module (a path ending in `writelane/go` or
/// `writelane/go/SUB`, in a go.mod line or a quoted import) with another prefix than
/// `want`: (line number, the path found).
fn wrong_paths(text: &str, want: &str) -> Vec<(usize, String)> {
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for word in line.split(|c: char| c.is_whitespace() || c == '"' || c == '`') {
            let base = word.split_once("/go/").map_or(word, |(b, _)| b);
            let base = base.strip_suffix("/go").map_or(base, |b| b);
            let names_module = word != base
                && (word.ends_with("/go") || word.contains("/go/"))
                && base.contains('/')
                && base.contains('.')
                && base.ends_with("/writelane");
            if names_module && !(word == want || word.starts_with(&format!("{want}/"))) {
                bad.push((n + 1, word.to_string()));
            }
        }
    }
    bad
}

#[test]
fn every_go_module_path_and_import_follows_the_repository() {
    let want = module_path();
    let mut paths = Vec::new();
    files(&root().join("go"), &["go.mod", ".go"], &mut paths);
    let mut bad = Vec::new();
    let mut modules = 0;
    for path in &paths {
        let text = fs::read_to_string(path).expect("reading a Go file");
        let rel = path.strip_prefix(root()).unwrap().display().to_string();
        if rel.ends_with("go.mod") {
            let module = text
                .lines()
                .find_map(|l| l.strip_prefix("module "))
                .unwrap_or_else(|| panic!("{rel} has no module line"));
            let sub = rel
                .strip_prefix("go/")
                .and_then(|r| r.strip_suffix("go.mod"))
                .map(|r| r.trim_end_matches('/'))
                .unwrap_or("");
            let expected = if sub.is_empty() {
                want.clone()
            } else {
                format!("{want}/{sub}")
            };
            if module.trim() != expected {
                bad.push(format!("{rel}: module {} (want {expected})", module.trim()));
            }
            modules += 1;
        }
        for (line, found) in wrong_paths(&text, &want) {
            bad.push(format!("{rel}:{line}: {found} (want {want}...)"));
        }
    }
    for readme in ["go/README.md", "README.md"] {
        let text = fs::read_to_string(root().join(readme)).expect("reading a README");
        for (line, found) in wrong_paths(&text, &want) {
            bad.push(format!("{readme}:{line}: {found} (want {want}...)"));
        }
    }
    assert!(modules >= 4, "found {modules} go.mod files under go/");
    assert!(
        bad.is_empty(),
        "module paths disagree with Cargo.toml's repository:\n{}",
        bad.join("\n")
    );
}

#[test]
fn a_path_with_another_owner_is_found() {
    let want = "github.com/writelane/writelane/go";
    let text = "module github.com/someone/writelane/go\nimport writelane \"github.com/writelane/writelane/go\"\n\t\"example.org/x/writelane/go/s3store\"\nfoo/go bar";
    let bad = wrong_paths(text, want);
    assert_eq!(
        bad,
        vec![
            (1, "github.com/someone/writelane/go".to_string()),
            (3, "example.org/x/writelane/go/s3store".to_string())
        ]
    );
}
