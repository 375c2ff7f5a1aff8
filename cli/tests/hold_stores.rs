//! `writelane hold` on the server stores, one test per store feature: two holds crossing
//! on two entities go one at a time, and a forced release stops the command with exit 76.
//! The servers come from lane/test.sh: WRITELANE_TEST_REDIS_URL (redis-server) and
//! WRITELANE_TEST_MOTO_ENDPOINT (a moto server for DynamoDB and S3).
#![cfg(any(feature = "redis", feature = "dynamodb", feature = "s3"))]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use writelane::store::{open, OpenOptions};
use writelane::ForceReleaseResult;

const BIN: &str = env!("CARGO_BIN_EXE_writelane");

/// A 2 s lease renewed every 500 ms (store requests bounded by 500 ms).
const POLICY: &str = r#"{"lease":{"lease_ms":2000,"renew_ms":500,"lock_delay_ms":200,"poll_ms":50,"max_write_ms":1000,"store_timeout_ms":500}}"#;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set (lane/test.sh sets it)"))
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{name}{}x{nanos}", std::process::id())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn hold(url: &str, extra: &[&str], entities: &[&str], script: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(["hold", "--store", url, "--policy", POLICY])
        .args(extra)
        .args(entities)
        .args(["--", "sh", "-c", script])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn finish(child: std::process::Child, limit: Duration) -> Output {
    let pid = child.id();
    let start = Instant::now();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if start.elapsed() > limit {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("hold {pid} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.join().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The scenario every store passes.
fn holds_serialise_and_a_forced_release_stops_the_command(url: &str) {
    let dir = scratch("hold-store");
    let log = dir.join("log");
    let (a, b) = (unique("role/a"), unique("role/b"));
    let script = format!("echo in >> {0}; sleep 0.3; echo out >> {0}", log.display());
    let children: Vec<_> = [[&a, &b], [&b, &a], [&a, &b]]
        .iter()
        .map(|order| {
            hold(url, &[], &[order[0].as_str(), order[1].as_str()], &script)
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = finish(child, Duration::from_secs(30));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "in\nout\n".repeat(3),
        "one at a time"
    );

    let started = dir.join("started");
    let child = hold(
        url,
        &["--grace", "5s"],
        &[a.as_str()],
        &format!(
            "trap 'exit 7' TERM; touch {}; while :; do sleep 0.05; done",
            started.display()
        ),
    )
    .spawn()
    .unwrap();
    let start = Instant::now();
    while !started.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = runtime();
    let result = rt.block_on(async {
        let opened = open(url, &OpenOptions { timeout_ms: 2_000 }).await.unwrap();
        writelane::force_release(opened.store.as_ref(), &a, None, None, 2_000).await
    });
    match result {
        Ok(ForceReleaseResult::Released { record }) => assert_eq!(record.epoch, 5),
        other => panic!("not released: {other:?}"),
    }
    let out = finish(child, Duration::from_secs(15));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(76), "{err}");
    assert!(err.contains("it exited 7"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[cfg(feature = "redis")]
fn on_redis() {
    holds_serialise_and_a_forced_release_stops_the_command(&env("WRITELANE_TEST_REDIS_URL"));
}

#[test]
#[cfg(feature = "dynamodb")]
fn on_dynamodb() {
    let url = format!(
        "dynamodb://{}?region=us-east-1&endpoint={}",
        unique("holdtest"),
        env("WRITELANE_TEST_MOTO_ENDPOINT")
    );
    let rt = runtime();
    rt.block_on(async {
        let opened = open(&url, &OpenOptions::default()).await.unwrap();
        opened.admin.init().await.unwrap();
    });
    holds_serialise_and_a_forced_release_stops_the_command(&url);
}

#[test]
#[cfg(feature = "s3")]
fn on_s3() {
    let endpoint = env("WRITELANE_TEST_MOTO_ENDPOINT");
    let bucket = unique("holdtest");
    create_bucket(&endpoint, &bucket);
    let url = format!("s3://{bucket}/leases/?region=us-east-1&endpoint={endpoint}");
    holds_serialise_and_a_forced_release_stops_the_command(&url);
}

/// `PUT /BUCKET` on the moto server (it takes unsigned requests).
#[cfg(feature = "s3")]
fn create_bucket(endpoint: &str, bucket: &str) {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(
        conn,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
        "{reply}"
    );
}
