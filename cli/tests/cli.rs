//! The `writelane` command as users run it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_writelane"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("exit")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn token_of_stdin() {
    let out = run(
        &["token"],
        r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#,
    );
    assert!(out.status.success());
    let t = text(&out.stdout);
    assert!(t.trim().starts_with("c1:sha256:"), "{t}");
    assert_eq!(
        t.trim(),
        writelane_core::policy_token(
            r#"{"Statement":[{"Resource":"*","Action":["S3:getobject"],"Effect":"Allow"}]}"#
        )
        .unwrap()
    );
}

#[test]
fn token_refuses_a_malformed_document() {
    let out = run(
        &["token"],
        r#"{"Statement":{"Effect":"Perhaps","Action":"a:b"}}"#,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Statement[0].Effect"));
}

#[test]
fn check_prints_the_effective_policy_or_names_the_field() {
    let out = run(
        &["check"],
        r#"{"preset":"aws-standard","service":"dynamodb"}"#,
    );
    assert!(out.status.success());
    let p = writelane_core::Policy::from_json(&text(&out.stdout)).expect("round-trips");
    assert_eq!(p.retry.transient.base_ms, 25);
    let out = run(&["check"], r#"{"retry":{"conflict":{"cap_ms":-1}}}"#);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("retry.conflict.cap_ms"));
}

#[test]
fn simulate_json_meets_the_targets() {
    let out = run(
        &[
            "simulate",
            "--model",
            "brooker",
            "--writers",
            "50",
            "--runs",
            "2",
            "--json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let wl = reports[0]["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["strategy"] == "writelane")
        .expect("writelane row")
        .clone();
    assert_eq!(wl["writes_per_success"], 1.0);
    assert_eq!(wl["lost_updates"], 0.0);
    assert!(wl["makespan_ratio"].as_f64().unwrap() <= 1.10);
}

#[test]
fn the_default_run_prints_both_sizes() {
    let out = run(&[], "");
    assert!(out.status.success());
    let t = text(&out.stdout);
    assert!(
        t.contains("N = 10 writers") && t.contains("N = 100 writers"),
        "{t}"
    );
    assert!(t.contains("writelane"));
}

#[test]
fn bad_options_are_usage_errors() {
    for args in [
        vec!["simulate", "--model", "dynamo"],
        vec!["simulate", "--writers", "0"],
        vec!["simulate", "--runs"],
        vec!["simulate", "--strategies", "yolo"],
        vec!["frobnicate"],
        vec!["vectors"],
        vec!["vectors", "--out", "x", "--lane-out", "y"],
    ] {
        let out = run(&args, "");
        // writelane's usage code is sysexits' EX_USAGE, not clap's 2 (see exit.rs).
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.starts_with("writelane: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(&format!("try 'writelane {} --help'", args[0])) || args[0] == "frobnicate",
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn every_subcommand_answers_help() {
    for args in [
        vec!["--help"],
        vec!["simulate", "--help"],
        vec!["token", "--help"],
        vec!["check", "--help"],
        vec!["vectors", "--help"],
        vec!["completions", "--help"],
        vec!["help", "simulate"],
    ] {
        let out = run(&args, "");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains("Usage: writelane"), "{args:?}");
    }
    let out = run(&["--version"], "");
    assert_eq!(
        text(&out.stdout).trim(),
        format!("writelane {}", writelane_core::VERSION)
    );
}

#[test]
fn simulate_keeps_the_order_of_the_strategies_given() {
    let out = run(
        &[
            "simulate",
            "--writers",
            "5",
            "--runs",
            "1",
            "--strategies",
            "writelane,immediate",
            "--json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: Vec<&str> = reports[0]["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["writelane", "immediate"]);
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_writelane()"),
        ("zsh", "#compdef writelane"),
        ("fish", "complete -c writelane"),
    ] {
        let out = run(&["completions", shell], "");
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("simulate"), "{shell}");
    }
    let out = run(&["completions", "tcsh"], "");
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn output_cut_short_by_a_reader_ends_quietly() {
    // `writelane simulate | head -1`: the reader goes away; no panic, no backtrace.
    let mut child = Command::new(env!("CARGO_BIN_EXE_writelane"))
        .args(["simulate", "--writers", "10,20,30,40", "--runs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("exit");
    let err = text(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
}
