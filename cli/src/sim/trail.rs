//! `writelane simulate --trail DIR`: the IAM calls of each simulated strategy written as
//! CloudTrail log files, so `writelane trail` can show what that contention looks like and
//! a test can check the analyzer against the simulator's own counts.
//!
//! Layout: `DIR/<strategy>/AWSLogs/<account>/CloudTrail/us-east-1/YYYY/MM/DD/` with one
//! gzipped `{"Records": [...]}` file per writer count and run. Each strategy has a folder
//! and an account of its own ([`account_of`]), so a whole `DIR` can be read at once
//! without strategies mixing (the analyzer never merges accounts).
//!
//! Time: run `k` (counting writer counts, then runs) starts at [`BASE_EPOCH_S`] plus `k`
//! hours, and virtual milliseconds are added to it; `eventTime` keeps whole seconds, as
//! CloudTrail does, and marks when the call completed at the server. Runs an hour apart
//! never fall into one overlap window.
//!
//! Writers: every simulated writer is an assumed role of its own
//! (`sim-<strategy>-writer-<i>`), with the run as its session name, except under the
//! `writelane` strategy, whose writers are the lanes of one process: one role
//! (`sim-writelane`), one session per writer. Reads are `GetRolePolicy` (read-only),
//! writes `PutRolePolicy` on the role `app`, each writer with a policy document of its
//! own; a refused write is an error record with `errorCode` `ConcurrentModification`.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::json;

use super::{run_traced, CallKind, Model, STRATEGIES};

/// 2026-01-05T00:00:00Z: the start of the first simulated run.
pub const BASE_EPOCH_S: u64 = 1_767_571_200;

/// The role every simulated writer writes to.
pub const ROLE: &str = "app";

/// The inline policy every simulated writer puts.
pub const POLICY_NAME: &str = "app-policy";

/// The region IAM's events are delivered in.
const REGION: &str = "us-east-1";

/// The account a strategy's calls are recorded in: `2000000000` followed by the
/// strategy's two-digit position in [`STRATEGIES`] (`200000000006` for `writelane`).
pub fn account_of(strategy: &str) -> Option<String> {
    STRATEGIES
        .iter()
        .position(|s| *s == strategy)
        .map(|i| format!("2000000000{i:02}"))
}

/// What was written for one strategy.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StrategyTrail {
    /// The strategy.
    pub strategy: String,
    /// Its account.
    pub account: String,
    /// Its folder under `DIR`.
    pub folder: PathBuf,
    /// Files written.
    pub files: u64,
    /// Read records.
    pub reads: u64,
    /// Write records that succeeded.
    pub writes: u64,
    /// Write records refused with `ConcurrentModification`.
    pub conflicts: u64,
}

/// A file that could not be written.
#[derive(Debug)]
pub struct TrailWriteError {
    /// The file or folder.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

impl fmt::Display for TrailWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for TrailWriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Simulates every strategy for every writer count and run (the same seeds as
/// [`super::compare`], so the same figures) and writes its calls under `dir`.
/// `strategies` must be names from [`STRATEGIES`]; others are skipped.
pub fn write_trail(
    dir: &Path,
    model: Model,
    writers: &[u32],
    runs: u32,
    seed: u64,
    strategies: &[&str],
) -> Result<Vec<StrategyTrail>, TrailWriteError> {
    let mut out = Vec::new();
    for &strategy in strategies {
        let Some(account) = account_of(strategy) else {
            continue;
        };
        let folder = dir.join(strategy);
        let mut summary = StrategyTrail {
            strategy: strategy.to_owned(),
            account: account.clone(),
            folder: folder.clone(),
            ..StrategyTrail::default()
        };
        for (ni, &n) in writers.iter().enumerate() {
            for r in 0..runs {
                let slot = ni as u64 * runs as u64 + r as u64;
                let start_s = BASE_EPOCH_S + slot * 3600;
                let result = run_traced(model, strategy, n, seed + r as u64);
                let (y, m, d) = civil_from_days((start_s / 86_400) as i64);
                let day_dir = folder
                    .join("AWSLogs")
                    .join(&account)
                    .join("CloudTrail")
                    .join(REGION)
                    .join(format!("{y:04}"))
                    .join(format!("{m:02}"))
                    .join(format!("{d:02}"));
                std::fs::create_dir_all(&day_dir).map_err(|source| TrailWriteError {
                    path: day_dir.clone(),
                    source,
                })?;
                let path = day_dir.join(format!(
                    "{account}_CloudTrail_{REGION}_{}_n{n}r{r}.json.gz",
                    compact_time(start_s)
                ));
                let run = Run {
                    strategy,
                    account: &account,
                    writers: n,
                    run: r,
                    start_s,
                };
                write_file(&path, &run, &result.calls).map_err(|source| TrailWriteError {
                    path: path.clone(),
                    source,
                })?;
                summary.files += 1;
                for call in &result.calls {
                    match call.kind {
                        CallKind::Read => summary.reads += 1,
                        CallKind::Write => summary.writes += 1,
                        CallKind::Conflict => summary.conflicts += 1,
                    }
                }
            }
        }
        out.push(summary);
    }
    Ok(out)
}

/// One simulated run's place in the trail.
struct Run<'a> {
    strategy: &'a str,
    account: &'a str,
    writers: u32,
    run: u32,
    start_s: u64,
}

fn write_file(path: &Path, run: &Run<'_>, calls: &[super::Call]) -> io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut gz = GzEncoder::new(io::BufWriter::new(file), Compression::fast());
    gz.write_all(b"{\"Records\":[")?;
    // The document at each version: the writers whose statements it holds. A write puts
    // what it read plus its own statement, so a write based on a stale version drops the
    // statements written since (a lost update the trail shows).
    let mut contents: Vec<Vec<usize>> = vec![Vec::new()];
    for (seq, call) in calls.iter().enumerate() {
        if seq > 0 {
            gz.write_all(b",")?;
        }
        let document = match call.kind {
            CallKind::Read => None,
            CallKind::Write | CallKind::Conflict => {
                let fallback = match call.kind {
                    CallKind::Write => call.version.saturating_sub(1),
                    _ => call.version,
                };
                let base = call.base.unwrap_or(fallback);
                let mut writers = contents
                    .get(base as usize)
                    .or_else(|| contents.get(fallback as usize))
                    .cloned()
                    .unwrap_or_default();
                if let Err(at) = writers.binary_search(&call.writer) {
                    writers.insert(at, call.writer);
                }
                let text = policy_document(&writers, run.run);
                if call.kind == CallKind::Write && call.version as usize == contents.len() {
                    contents.push(writers);
                }
                Some(text)
            }
        };
        serde_json::to_writer(&mut gz, &record(run, seq as u64, call, document))?;
    }
    gz.write_all(b"]}\n")?;
    gz.finish()?.flush()
}

/// The role and session name of writer `i`.
fn identity(run: &Run<'_>, writer: usize) -> (String, String) {
    if run.strategy == "writelane" {
        (
            "sim-writelane".to_owned(),
            format!("n{}-run{}-writer-{writer}", run.writers, run.run),
        )
    } else {
        (
            format!("sim-{}-writer-{writer}", run.strategy),
            format!("n{}-run{}", run.writers, run.run),
        )
    }
}

/// What each strategy's writers would send as `userAgent`: the SDK and its retry mode
/// (writelane's strategies retry in the engine, so their SDK's own retries are off).
fn user_agent(strategy: &str) -> String {
    let mode = match strategy {
        "aws-standard" => "standard",
        s if s.starts_with("writelane") => "standard",
        _ => "legacy",
    };
    let lib = if strategy.starts_with("writelane") {
        format!(" lib/writelane#{}", writelane_core::VERSION)
    } else {
        String::new()
    };
    format!(
        "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.2 \
         md/pyimpl#CPython cfg/retry-mode#{mode}{lib} Botocore/1.35.0"
    )
}

fn record(
    run: &Run<'_>,
    seq: u64,
    call: &super::Call,
    document: Option<String>,
) -> serde_json::Value {
    let (role, session) = identity(run, call.writer);
    let account = run.account;
    let event_s = run.start_s + call.at_ms / 1000;
    let id = event_id(run.start_s, account, seq);
    // A stable fake role id per role, so every record of one role agrees.
    let role_id = format!("AROA{:016X}", fnv(role.as_bytes()));
    let mut params = json!({"roleName": ROLE, "policyName": POLICY_NAME});
    let read = call.kind == CallKind::Read;
    if let Some(document) = document {
        params["policyDocument"] = json!(document);
    }
    let mut rec = json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": format!("{role_id}:{session}"),
            "arn": format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
            "accountId": account,
            "accessKeyId": format!("ASIA{:016X}", fnv(session.as_bytes()) ^ fnv(role.as_bytes())),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role_id,
                    "arn": format!("arn:aws:iam::{account}:role/{role}"),
                    "accountId": account,
                    "userName": role,
                },
                "attributes": {
                    "creationDate": rfc3339(run.start_s),
                    "mfaAuthenticated": "false",
                },
            },
        },
        "eventTime": rfc3339(event_s),
        "eventSource": "iam.amazonaws.com",
        "eventName": if read { "GetRolePolicy" } else { "PutRolePolicy" },
        "awsRegion": REGION,
        "sourceIPAddress": if run.strategy == "writelane" {
            "10.0.0.1".to_owned()
        } else {
            format!("10.0.{}.{}", call.writer / 256, call.writer % 256)
        },
        "userAgent": user_agent(run.strategy),
        "requestParameters": params,
        "responseElements": null,
        "requestID": id.clone(),
        "eventID": id,
        "readOnly": read,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": account,
        "eventCategory": "Management",
    });
    if call.kind == CallKind::Conflict {
        rec["errorCode"] = json!("ConcurrentModification");
        rec["errorMessage"] =
            json!("Cannot modify the role app: another modification is in progress.");
    }
    rec
}

/// The policy holding one statement per writer in `writers`. The statement ids name the
/// run, so each run (a deployment cycle) has revisions of its own and a later run never
/// looks like a revert of an earlier one.
fn policy_document(writers: &[usize], run: u32) -> String {
    let statements: Vec<serde_json::Value> = writers
        .iter()
        .map(|w| {
            json!({
                "Sid": format!("Writer{w}Run{run}"),
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": format!("arn:aws:s3:::bucket-{w}/*"),
            })
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// FNV-1a, for stable made-up identifiers.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A UUID-shaped id, unique per account, run and record.
fn event_id(start_s: u64, account: &str, seq: u64) -> String {
    let hi = fnv(format!("{account}/{start_s}").as_bytes());
    let lo = fnv(&seq.to_le_bytes()) ^ hi.rotate_left(17);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xfff,
        (lo >> 48) & 0xfff,
        (lo & 0xffff_ffff_ffff) ^ seq
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(epoch_s: u64) -> String {
    let (y, m, d) = civil_from_days((epoch_s / 86_400) as i64);
    let secs = epoch_s % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `YYYYMMDDTHHMMZ`, as in CloudTrail's file names.
fn compact_time(epoch_s: u64) -> String {
    let (y, m, d) = civil_from_days((epoch_s / 86_400) as i64);
    let secs = epoch_s % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn dates_format_like_cloudtrail() {
        assert_eq!(rfc3339(BASE_EPOCH_S), "2026-01-05T00:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(
            compact_time(BASE_EPOCH_S + 3 * 3600 + 125),
            "20260105T0302Z"
        );
    }

    #[test]
    fn files_hold_every_call_of_every_run() {
        let dir = std::env::temp_dir().join(format!("writelane-simtrail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let written =
            write_trail(&dir, Model::Iam, &[10], 2, 1, &["full-jitter", "writelane"]).unwrap();
        assert_eq!(written.len(), 2);
        for s in &written {
            let expected: Vec<_> = (0..2)
                .map(|r| super::super::run_once(Model::Iam, &s.strategy, 10, 1 + r))
                .collect();
            assert_eq!(s.files, 2);
            assert_eq!(
                s.conflicts,
                expected.iter().map(|r| r.conflicts).sum::<u64>()
            );
            assert_eq!(s.writes, expected.iter().map(|r| r.successes).sum::<u64>());
            assert_eq!(s.reads, expected.iter().map(|r| r.reads).sum::<u64>());
            // Read the files back: gzip, one Records array, the right error records.
            let day = s.folder.join(format!(
                "AWSLogs/{}/CloudTrail/us-east-1/2026/01/05",
                s.account
            ));
            let mut conflicts = 0;
            let mut records = 0;
            for entry in std::fs::read_dir(&day).unwrap() {
                let mut text = String::new();
                flate2::read::GzDecoder::new(std::fs::File::open(entry.unwrap().path()).unwrap())
                    .read_to_string(&mut text)
                    .unwrap();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                for rec in v["Records"].as_array().unwrap() {
                    records += 1;
                    assert_eq!(rec["recipientAccountId"], s.account.as_str());
                    assert!(rec["eventTime"]
                        .as_str()
                        .unwrap()
                        .starts_with("2026-01-05T0"));
                    if rec["errorCode"] == "ConcurrentModification" {
                        conflicts += 1;
                        assert_eq!(rec["readOnly"], false);
                    }
                }
            }
            assert_eq!(conflicts, s.conflicts, "{}", s.strategy);
            assert_eq!(records, s.reads + s.writes + s.conflicts);
        }
        assert!(written[0].conflicts > 0, "full jitter collides");
        assert_eq!(written[1].conflicts, 0, "writelane does not");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
