//! `s3://BUCKET/PREFIX` inputs against a moto server (trail/test-s3.sh starts one and sets
//! WRITELANE_TEST_MOTO_ENDPOINT). Built only with the `s3` feature.
#![cfg(feature = "s3")]

use std::io::{Read, Write};
use std::path::PathBuf;

use writelane_trail::{analyze, Input, Options};

/// One unsigned request to the moto server (it takes them); the status line must be 200.
fn put(endpoint: &str, path: &str, body: &[u8]) {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(
        conn,
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(body).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
        "{reply}"
    );
}

#[test]
fn objects_under_a_prefix_are_read_and_a_bad_one_is_skipped() {
    let endpoint = std::env::var("WRITELANE_TEST_MOTO_ENDPOINT")
        .expect("WRITELANE_TEST_MOTO_ENDPOINT must be set (trail/test-s3.sh sets it)");
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let bucket = format!("trail{}", std::process::id());
    put(&endpoint, &format!("/{bucket}"), b"");
    let day = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/30";
    let local = fixtures.join("trail").join(day);
    for entry in std::fs::read_dir(&local).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        put(
            &endpoint,
            &format!("/{bucket}/{day}/{name}"),
            &std::fs::read(&path).unwrap(),
        );
    }
    put(
        &endpoint,
        &format!("/{bucket}/{day}/cut.json.gz"),
        &std::fs::read(fixtures.join("bad/truncated.json.gz")).unwrap(),
    );
    // Outside the prefix: not read.
    put(&endpoint, &format!("/{bucket}/elsewhere/x.json"), b"{}");

    let url = format!("s3://{bucket}/AWSLogs/?region=us-east-1&endpoint={endpoint}");
    let report = analyze(&[Input::parse(&url).unwrap()], &Options::default()).unwrap();
    assert_eq!(report.reading.files_read, 2, "{:?}", report.reading);
    assert_eq!(report.reading.files_skipped, 1);
    assert_eq!(report.reading.problems[0].reason, "truncated gzip");
    assert!(report.reading.problems[0].file.ends_with("/cut.json.gz"));
    // The same analysis as the local files.
    let local_report = analyze(&[Input::Path(local)], &Options::default()).unwrap();
    assert_eq!(report.entities, local_report.entities);
    assert_eq!(report.totals, local_report.totals);

    // A bucket that does not exist fails the run with the SDK's reason.
    let missing = format!("s3://no-such-{bucket}/x?region=us-east-1&endpoint={endpoint}");
    let err = analyze(&[Input::parse(&missing).unwrap()], &Options::default()).unwrap_err();
    assert!(err.to_string().contains("cannot list"), "{err}");
}
