//! `writelane trail` end to end: the fixtures of trail/tests/fixtures through the binary,
//! its exit codes, stdin, --json.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../trail/tests/fixtures")
}

fn writelane() -> Command {
    Command::new(env!("CARGO_BIN_EXE_writelane"))
}

#[test]
fn the_terminal_report_names_the_colliding_writers() {
    let out = writelane()
        .arg("trail")
        .arg(fixtures().join("trail"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1. 111122223333:role/app-runtime"), "{text}");
    assert!(
        text.contains("deploy-pipeline (111122223333) × drift-remediator: 1 incident on 1 entity"),
        "{text}"
    );
    assert!(text.contains("(boto3, retry mode legacy)"), "{text}");
    assert!(text.contains("fight on inline policy app-access"), "{text}");
    // No progress bar when stderr is not a terminal.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_from_stdin_with_filters_and_buckets() {
    let mut child = writelane()
        .args([
            "trail",
            "--json",
            "--bucket",
            "1d",
            "--account",
            "111122223333",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let body = std::fs::read(fixtures().join("lookup-events.json")).unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["schema"], "writelane-trail/1");
    assert_eq!(report["settings"]["bucket_ms"], 86_400_000);
    assert_eq!(report["totals"]["conflicts"], 4);
    assert_eq!(report["buckets"][0]["start"], "2026-11-30T00:00:00Z");
    let entities = report["entities"].as_array().unwrap();
    assert_eq!(entities.len(), 1);
    assert_eq!(entities[0]["timeline"].as_array().unwrap().len(), 6);
}

#[test]
fn nothing_readable_exits_66_and_lists_why() {
    let out = writelane()
        .args(["trail"])
        .arg(fixtures().join("bad/truncated.json.gz"))
        .arg(fixtures().join("bad/not-json.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("truncated.json.gz: skipped whole: truncated gzip"),
        "{text}"
    );
    assert!(
        text.contains("not-json.json: skipped whole: not JSON"),
        "{text}"
    );
}

#[test]
fn wrong_arguments_exit_64() {
    let out = writelane()
        .args(["trail", "/no/such/trail/dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/trail/dir"));
    let out = writelane()
        .args(["trail", "--window", "10", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = writelane()
        .args(["trail", "--since", "yesterday", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = writelane().args(["trail"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
#[cfg(not(feature = "s3"))]
fn an_s3_input_without_the_s3_feature_exits_78() {
    let out = writelane()
        .args(["trail", "s3://bucket/AWSLogs/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("s3 feature"));
}
