//! Generates a CloudTrail export tree for the benchmark (trail/bench.sh): gzipped
//! `{"Records": [...]}` files in the `AWSLogs/ACCOUNT/CloudTrail/us-east-1/YYYY/MM/DD/`
//! layout, about 2 MB of records each, shaped like real records (full userIdentity,
//! tlsDetails, user agents of Terraform, the CLI, boto3, the JS and Go SDKs), with IAM
//! writes on thousands of entities among IAM reads and other services' records.
//! Deterministic for a seed.
//!
//! `cargo run --release -p writelane-trail --example gen_trail -- OUT_DIR SIZE_MB [SEED]`
//!
//! Writes OUT_DIR/MANIFEST: `bytes RECORDS_BYTES`, `records N`, `files N` (uncompressed).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

const ACCOUNTS: [&str; 3] = ["111122223333", "444455556666", "777788889999"];
const ROLES: usize = 3000;
const USERS: usize = 600;
const FILE_BYTES: usize = 2 << 20;
const WRITERS: [(&str, &str); 6] = [
    ("deploy-pipeline", "APN/1.0 HashiCorp/1.0 Terraform/1.9.8 (+https://www.terraform.io) terraform-provider-aws/5.80.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.32.6 ua/2.1 os/linux lang/go#1.23.3 md/GOOS#linux md/GOARCH#amd64 api/iam#1.38.2 cfg/retry-mode#standard"),
    ("drift-remediator", "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#5.10.224-234.876.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.3 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.84"),
    ("platform-sync", "aws-sdk-go-v2/1.32.6 ua/2.1 os/linux lang/go#1.23.3 md/GOOS#linux md/GOARCH#amd64 api/iam#1.38.2 cfg/retry-mode#standard"),
    ("account-factory", "aws-sdk-js/3.699.0 ua/2.1 os/linux#5.10.228-219.884.amzn2.x86_64 lang/js md/nodejs#20.18.0 api/iam#3.699.0 m/N,E,e cfg/retry-mode#standard"),
    ("ops-admin", "aws-cli/2.22.10 md/awscrt#0.22.0 ua/2.0 os/linux#6.8.0-49-generic md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.24 md/prompt#off md/command#iam.tag-role"),
    ("cdk-exec", "cloudformation.amazonaws.com"),
];
const WRITES: [&str; 6] = [
    "PutRolePolicy",
    "AttachRolePolicy",
    "TagRole",
    "UpdateAssumeRolePolicy",
    "DetachRolePolicy",
    "UpdateRole",
];
const READS: [&str; 4] = [
    "GetRole",
    "ListRolePolicies",
    "GetRolePolicy",
    "ListAttachedRolePolicies",
];
const OTHER: [(&str, &str); 4] = [
    ("sts.amazonaws.com", "AssumeRole"),
    ("s3.amazonaws.com", "GetBucketAcl"),
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("kms.amazonaws.com", "Decrypt"),
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn time(sec: u64) -> String {
    // 2026-11-01T00:00:00Z plus sec, within November.
    let day = sec / 86_400;
    let s = sec % 86_400;
    format!(
        "2026-11-{:02}T{:02}:{:02}:{:02}Z",
        day + 1,
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn record(out: &mut String, rng: &mut Rng, n: u64, account: &str, sec: u64) {
    let (w, ua) = WRITERS[rng.below(WRITERS.len())];
    let cfn = w == "cdk-exec";
    let roll = rng.below(100);
    let (source, name, read_only) = if roll < 25 {
        ("iam.amazonaws.com", WRITES[rng.below(WRITES.len())], false)
    } else if roll < 70 {
        ("iam.amazonaws.com", READS[rng.below(READS.len())], true)
    } else {
        let (s, a) = OTHER[rng.below(OTHER.len())];
        (s, a, a != "AssumeRole")
    };
    let role = format!("app-{:04}", rng.below(ROLES));
    let params = match name {
        "PutRolePolicy" => format!(
            r#"{{"roleName":"{role}","policyName":"inline-{}","policyDocument":"{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {{\n      \"Effect\": \"Allow\",\n      \"Action\": [\"s3:GetObject\", \"s3:PutObject\"],\n      \"Resource\": \"arn:aws:s3:::bucket-{}/*\"\n    }}\n  ]\n}}"}}"#,
            rng.below(3),
            rng.below(4)
        ),
        "AttachRolePolicy" | "DetachRolePolicy" => format!(
            r#"{{"roleName":"{role}","policyArn":"arn:aws:iam::{account}:policy/shared-{}"}}"#,
            rng.below(200)
        ),
        "TagRole" => format!(
            r#"{{"roleName":"{role}","tags":[{{"key":"team","value":"t{}"}}]}}"#,
            rng.below(40)
        ),
        "UpdateAssumeRolePolicy" => format!(
            r#"{{"roleName":"{role}","policyDocument":"{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":{{\"Service\":\"lambda.amazonaws.com\"}},\"Action\":\"sts:AssumeRole\"}}]}}"}}"#
        ),
        "UpdateRole" => format!(r#"{{"roleName":"{role}","maxSessionDuration":3600}}"#),
        "AssumeRole" => format!(
            r#"{{"roleArn":"arn:aws:iam::{account}:role/{role}","roleSessionName":"s{}","durationSeconds":3600}}"#,
            rng.below(1000)
        ),
        "GetBucketAcl" => format!(
            r#"{{"bucketName":"bucket-{}","Host":"bucket.s3.amazonaws.com","acl":""}}"#,
            rng.below(50)
        ),
        "DescribeInstances" => {
            r#"{"instancesSet":{},"filterSet":{},"maxResults":1000}"#.to_string()
        }
        "Decrypt" => r#"{"encryptionAlgorithm":"SYMMETRIC_DEFAULT"}"#.to_string(),
        _ if rng.below(5) == 0 => format!(r#"{{"userName":"user-{:03}"}}"#, rng.below(USERS)),
        _ => format!(r#"{{"roleName":"{role}"}}"#),
    };
    let error = if !read_only && rng.below(100) < 6 {
        [
            r#""errorCode":"ConcurrentModificationException","errorMessage":"Rate exceeded","#,
            r#""errorCode":"EntityTemporarilyUnmodifiable","errorMessage":"The role is being modified","#,
            r#""errorCode":"AccessDenied","errorMessage":"User is not authorized","#,
        ][rng.below(3)]
    } else {
        ""
    };
    let (ip, invoked) = if cfn {
        (
            "cloudformation.amazonaws.com",
            r#""invokedBy":"cloudformation.amazonaws.com","#,
        )
    } else {
        ("203.0.113.17", "")
    };
    let session = format!("{w}-run-{}", rng.below(400));
    let _ = write!(
        out,
        r#"{{"eventVersion":"1.09","userIdentity":{{"type":"AssumedRole","principalId":"AROAEXAMPLE{n:08}:{session}","arn":"arn:aws:sts::{account}:assumed-role/{w}/{session}","accountId":"{account}","accessKeyId":"ASIAEXAMPLE{n:08}",{invoked}"sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROAEXAMPLE{w}","arn":"arn:aws:iam::{account}:role/{w}","accountId":"{account}","userName":"{w}"}},"attributes":{{"creationDate":"{t}","mfaAuthenticated":"false"}}}}}},"eventTime":"{t}","eventSource":"{source}","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"{ip}","userAgent":"{ua}",{error}"requestParameters":{params},"responseElements":null,"requestID":"{:08x}-{:04x}-4a5b-9c8d-{:012x}","eventID":"{:08x}-{:04x}-4e5f-8a9b-{:012x}","readOnly":{read_only},"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{account}","eventCategory":"Management","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"{}"}}}}"#,
        rng.next() as u32,
        rng.next() as u16,
        rng.next() & 0xffff_ffff_ffff,
        n as u32,
        (n >> 32) as u16,
        rng.next() & 0xffff_ffff_ffff,
        source,
        t = time(sec),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: gen_trail OUT_DIR SIZE_MB [SEED]");
        std::process::exit(64);
    }
    let out = PathBuf::from(&args[1]);
    let size_mb: u64 = args[2].parse().unwrap_or(1100);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let files = (size_mb << 20).div_ceil(FILE_BYTES as u64);
    let bytes = AtomicU64::new(0);
    let records = AtomicU64::new(0);
    let next = AtomicU64::new(0);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let f = next.fetch_add(1, Ordering::Relaxed);
                if f >= files {
                    break;
                }
                let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    ^ (f + 1).wrapping_mul(0xd6e8_feb8_6659_fd93)
                    | 1);
                let account = ACCOUNTS[(f % 3) as usize];
                // Files of one account follow in time; each covers ~5 minutes, and its
                // records are not in order (as CloudTrail's are not).
                let start = (f / 3) * 300 % (29 * 86_400);
                let day = start / 86_400 + 1;
                let dir = out.join(format!(
                    "AWSLogs/{account}/CloudTrail/us-east-1/2026/11/{day:02}"
                ));
                std::fs::create_dir_all(&dir).expect("create the output directory");
                let mut body = String::with_capacity(FILE_BYTES + 4096);
                body.push_str("{\"Records\":[");
                let mut n = 0u64;
                while body.len() < FILE_BYTES {
                    if n > 0 {
                        body.push(',');
                    }
                    let sec = start + rng.below(300) as u64;
                    record(&mut body, &mut rng, (f << 20) + n, account, sec);
                    n += 1;
                }
                body.push_str("]}");
                let name = format!(
                    "{account}_CloudTrail_us-east-1_{}_{f:06x}.json.gz",
                    time(start).replace([':', '-'], "")
                );
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
                gz.write_all(body.as_bytes()).expect("compress");
                std::fs::write(dir.join(name), gz.finish().expect("compress"))
                    .expect("write a file");
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                records.fetch_add(n, Ordering::Relaxed);
            });
        }
    });
    let manifest = format!(
        "bytes {}\nrecords {}\nfiles {files}\nseed {seed}\n",
        bytes.into_inner(),
        records.into_inner()
    );
    std::fs::write(out.join("MANIFEST"), &manifest).expect("write MANIFEST");
    print!("{manifest}");
}
