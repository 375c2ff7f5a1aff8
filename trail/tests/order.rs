//! Property: the order of files and of records within them (and how files are spread over
//! threads) does not change the analysis.

use std::io::Write;

use proptest::prelude::*;
use writelane_trail::{analyze, Input, Knobs, Options};

const WRITERS: [(&str, &str); 3] = [
    ("deploy-pipeline", "aws-cli/2.22.10 cfg/retry-mode#standard"),
    (
        "drift-remediator",
        "Boto3/1.34.84 cfg/retry-mode#legacy Botocore/1.34.84",
    ),
    ("platform-sync", "aws-sdk-go-v2/1.32.6 ua/2.1"),
];
const DOCS: [&str; 2] = [
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#,
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"}]}"#,
];

/// One generated write: (writer, role, second, document, outcome 0 ok / 1 conflict / 2 denied).
type Spec = (usize, usize, i64, usize, u8);

fn record(i: usize, (w, role, sec, doc, outcome): Spec) -> serde_json::Value {
    let (name, ua) = WRITERS[w];
    let mut r = serde_json::json!({
        "eventVersion": "1.09",
        "eventTime": writelane_trail::time::format(1_796_000_000 + sec),
        "eventSource": "iam.amazonaws.com",
        "eventName": "PutRolePolicy",
        "eventID": format!("ev-{i:06}"),
        "readOnly": false,
        "recipientAccountId": "111122223333",
        "userAgent": ua,
        "userIdentity": {
            "type": "AssumedRole",
            "arn": format!("arn:aws:sts::111122223333:assumed-role/{name}/run-{}", i % 3),
            "sessionContext": {"sessionIssuer": {"arn": format!("arn:aws:iam::111122223333:role/{name}")}}
        },
        "requestParameters": {"roleName": format!("role-{role}"), "policyName": "p", "policyDocument": DOCS[doc]}
    });
    match outcome {
        1 => r["errorCode"] = "ConcurrentModificationException".into(),
        2 => r["errorCode"] = "AccessDenied".into(),
        _ => {}
    }
    r
}

fn analyse(dir: &std::path::Path, threads: usize) -> writelane_trail::Report {
    let options = Options {
        threads,
        knobs: Knobs {
            bucket_ms: Some(60_000),
            ..Knobs::default()
        },
        ..Options::default()
    };
    analyze(&[Input::Path(dir.to_path_buf())], &options).unwrap()
}

fn write_files(dir: &std::path::Path, files: &[Vec<serde_json::Value>]) {
    for (n, records) in files.iter().enumerate() {
        let body = serde_json::json!({ "Records": records }).to_string();
        if n % 2 == 0 {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(body.as_bytes()).unwrap();
            std::fs::write(dir.join(format!("f{n:03}.json.gz")), gz.finish().unwrap()).unwrap();
        } else {
            std::fs::write(dir.join(format!("f{n:03}.json")), body).unwrap();
        }
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..3usize,
        0..3usize,
        0..90i64,
        0..2usize,
        prop_oneof![4 => Just(0u8), 3 => Just(1u8), 1 => Just(2u8)],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn file_and_record_order_do_not_change_the_result(
        specs in prop::collection::vec(spec(), 1..80),
        files in 1usize..6,
        seed in any::<u64>(),
        threads in 1usize..4,
    ) {
        let records: Vec<serde_json::Value> =
            specs.iter().enumerate().map(|(i, s)| record(i, *s)).collect();

        let one = tempfile::tempdir().unwrap();
        write_files(one.path(), std::slice::from_ref(&records));
        let base = analyse(one.path(), 1);

        // Shuffle the records (a fixed-seed Fisher-Yates) and deal them into files.
        let mut shuffled = records;
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let j = (state % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        let mut dealt = vec![Vec::new(); files];
        for (i, r) in shuffled.into_iter().enumerate() {
            dealt[(i * 7 + (seed as usize % 5)) % files].push(r);
        }
        let many = tempfile::tempdir().unwrap();
        write_files(many.path(), &dealt);
        let other = analyse(many.path(), threads);

        prop_assert_eq!(&other.entities, &base.entities);
        prop_assert_eq!(&other.writers, &base.writers);
        prop_assert_eq!(&other.pairs, &base.pairs);
        prop_assert_eq!(&other.totals, &base.totals);
        prop_assert_eq!(&other.buckets, &base.buckets);
        prop_assert_eq!(other.reading.records, base.reading.records);
    }
}
