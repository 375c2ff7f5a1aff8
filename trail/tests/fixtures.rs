//! The analysis over the project's fixtures (trail/tests/fixtures, written by make.py):
//! records shaped like real CloudTrail records in every container writelane trail reads.

use std::path::PathBuf;

use writelane_trail::report::Report;
use writelane_trail::{analyze, Filter, Input, Knobs, Options};

fn fixture(path: &str) -> Input {
    Input::Path(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path),
    )
}

fn run(inputs: &[Input]) -> Report {
    analyze(inputs, &Options::default()).unwrap()
}

fn run_with(inputs: &[Input], knobs: Knobs, filter: Filter) -> Report {
    let options = Options {
        knobs,
        filter,
        ..Options::default()
    };
    analyze(inputs, &options).unwrap()
}

const APP: &str = "111122223333:role/app-runtime";
const APP_OTHER: &str = "444455556666:role/app-runtime";
const TF: &str = "arn:aws:iam::111122223333:role/deploy-pipeline";
const LAMBDA: &str = "arn:aws:iam::111122223333:role/drift-remediator";
const CFN: &str =
    "arn:aws:iam::111122223333:role/cdk-hnb659fds-cfn-exec-role-111122223333-us-east-1#cloudformation";
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

#[test]
fn the_export_tree_is_read_recursively_without_digests() {
    let r = run(&[fixture("trail")]);
    assert_eq!(r.schema, "writelane-trail/1");
    assert_eq!(r.reading.files_read, 3, "{:?}", r.reading);
    assert_eq!(r.reading.files_skipped, 0);
    assert_eq!(r.reading.records, 16);
    assert!(r.reading.problems.is_empty(), "{:?}", r.reading.problems);
}

#[test]
fn writes_conflicts_reads_and_other_errors_are_told_apart() {
    let r = run(&[fixture("trail")]);
    let t = &r.totals;
    // GetRole, ListRolePolicies, GetUser are reads; AssumeRole is STS.
    assert_eq!(t.reads, 3);
    assert_eq!(t.other_sources, 1);
    assert_eq!(t.writes, 12);
    // Both spellings of both conflict codes.
    assert_eq!(t.conflicts, 4);
    // AccessDenied is counted, and is not a conflict.
    assert_eq!(t.other_errors.get("AccessDenied"), Some(&1));
    assert_eq!(t.other_errors.len(), 1);
}

#[test]
fn the_same_role_name_in_two_accounts_is_two_entities() {
    let r = run(&[fixture("trail")]);
    let ids: Vec<&str> = r.entities.iter().map(|e| e.id.as_str()).collect();
    assert!(ids.contains(&APP) && ids.contains(&APP_OTHER), "{ids:?}");
    let other = r.entities.iter().find(|e| e.id == APP_OTHER).unwrap();
    assert_eq!(other.writes, 2);
    assert_eq!(other.writers.len(), 1);
    assert!(other.incidents.is_empty());
    // The most contended entity comes first.
    assert_eq!(r.entities[0].id, APP);
}

#[test]
fn writers_are_roles_users_and_cloudformation_with_their_tools() {
    let r = run(&[fixture("trail")]);
    let w = |id: &str| {
        r.writers
            .iter()
            .find(|w| w.id == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    let tf = w(TF);
    assert_eq!(
        (tf.name.as_str(), tf.kind.as_str(), tf.runs),
        ("deploy-pipeline", "role", 2)
    );
    assert_eq!(tf.tools[0].tool, "terraform");
    assert_eq!(tf.tools[0].retry_mode.as_deref(), Some("standard"));
    let lambda = w(LAMBDA);
    assert_eq!(lambda.tools[0].tool, "boto3");
    assert_eq!(lambda.tools[0].retry_mode.as_deref(), Some("legacy"));
    assert_eq!((lambda.writes, lambda.conflicts), (5, 3));
    let cfn = w(CFN);
    assert!(cfn.via_cloudformation);
    assert_eq!(cfn.tools[0].tool, "cloudformation");
    let alice = w(ALICE);
    assert_eq!(
        (alice.kind.as_str(), alice.tools[0].tool.as_str()),
        ("user", "aws-cli")
    );
    // The writer with the most conflicts first.
    assert_eq!(r.writers[0].id, LAMBDA);
}

#[test]
fn overlapping_writers_make_an_incident_and_pairs() {
    let r = run(&[fixture("trail")]);
    let app = r.entities.iter().find(|e| e.id == APP).unwrap();
    assert_eq!(app.incidents.len(), 1, "{:?}", app.incidents);
    let inc = &app.incidents[0];
    assert_eq!(inc.start, "2026-11-30T12:00:01Z");
    assert_eq!(inc.end, "2026-11-30T12:00:07Z");
    let mut expected = vec![TF, LAMBDA, CFN, ALICE];
    expected.sort();
    assert_eq!(inc.writers, expected);
    assert_eq!((inc.writes, inc.conflicts), (7, 4));
    assert_eq!(r.pairs.len(), 6);
    assert!(r.pairs.iter().all(|p| p.a < p.b && p.entities == [APP]));
    // A one-second window: Terraform at :01 is alone, the remediator's :03 and :04 are
    // one writer, and from :04 the remediator and CloudFormation (:05) overlap.
    let r2 = run_with(
        &[fixture("trail")],
        Knobs {
            window_ms: 1_000,
            ..Knobs::default()
        },
        Filter::default(),
    );
    let app2 = r2.entities.iter().find(|e| e.id == APP).unwrap();
    assert_eq!(app2.incidents.len(), 1, "{:?}", app2.incidents);
    let inc2 = &app2.incidents[0];
    assert_eq!(
        (inc2.start.as_str(), inc2.end.as_str()),
        ("2026-11-30T12:00:04Z", "2026-11-30T12:00:05Z")
    );
    assert_eq!(inc2.writers, [CFN, LAMBDA]);
}

#[test]
fn the_lambdas_immediate_replay_is_flagged_with_its_tool_and_retry_mode() {
    let r = run(&[fixture("trail")]);
    let app = r.entities.iter().find(|e| e.id == APP).unwrap();
    assert_eq!(app.replays.len(), 1, "{:?}", app.replays);
    let rp = &app.replays[0];
    assert_eq!(rp.writer, LAMBDA);
    assert_eq!(rp.action, "PutRolePolicy");
    assert_eq!((rp.calls, rp.conflicts), (4, 3));
    assert_eq!(
        (rp.start.as_str(), rp.end.as_str()),
        ("2026-11-30T12:00:03Z", "2026-11-30T12:00:05Z")
    );
    assert_eq!(
        (rp.tool.as_str(), rp.retry_mode.as_deref()),
        ("boto3", Some("legacy"))
    );
    assert_eq!(app.timeline.iter().filter(|e| e.replay).count(), 4);
    // Asking for 5 calls finds none.
    let r5 = run_with(
        &[fixture("trail")],
        Knobs {
            replay_calls: 5,
            ..Knobs::default()
        },
        Filter::default(),
    );
    assert_eq!(r5.totals.replays, 0);
}

#[test]
fn the_policy_fight_names_its_writers_and_the_statement_they_disagree_on() {
    let r = run(&[fixture("trail")]);
    let app = r.entities.iter().find(|e| e.id == APP).unwrap();
    assert_eq!(app.fights.len(), 1, "{:?}", app.fights);
    let f = &app.fights[0];
    assert_eq!(f.document, "inline policy app-access");
    assert_eq!(f.writers, [TF, LAMBDA]);
    // A (Terraform) -> B (remediator, URL-encoded) -> A (Terraform) -> B (remediator).
    assert_eq!(f.reverts, 2);
    assert_eq!(f.revisions.len(), 4);
    assert_eq!(f.revisions[0].token, f.revisions[2].token);
    assert_eq!(f.revisions[1].token, f.revisions[3].token);
    assert_ne!(f.revisions[0].token, f.revisions[1].token);
    let back = f.diffs.iter().find(|d| d.to_writer == TF).unwrap();
    assert!(back.added.is_empty());
    assert_eq!(back.removed.len(), 1);
    assert!(back.removed[0].contains("DenyDelete"), "{:?}", back.removed);
    let forth = f.diffs.iter().find(|d| d.to_writer == LAMBDA).unwrap();
    assert_eq!(forth.added, back.removed);
}

#[test]
fn every_container_gives_the_same_analysis() {
    let busy = "trail/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/30/111122223333_CloudTrail_us-east-1_20261130T1205Z_busy.json.gz";
    let base = run(&[fixture(busy)]);
    assert_eq!(base.totals.writes, 6);
    for other in ["lookup-events.json", "eventbridge.jsonl", "records.jsonl"] {
        let r = run(&[fixture(other)]);
        assert_eq!(r.entities, base.entities, "{other}");
        assert_eq!(r.writers, base.writers, "{other}");
        assert_eq!(r.totals, base.totals, "{other}");
    }
    // The same events from two containers count once (CloudTrail's eventID).
    let both = run(&[fixture(busy), fixture("lookup-events.json")]);
    assert_eq!(both.entities, base.entities);
}

#[test]
fn bad_input_is_skipped_and_counted_per_file_with_its_reason() {
    let r = run(&[fixture("bad"), fixture("records.jsonl")]);
    assert_eq!(r.reading.files_read, 2, "{:?}", r.reading);
    assert_eq!(r.reading.files_skipped, 3);
    let reason = |file: &str| -> Vec<String> {
        r.reading
            .problems
            .iter()
            .filter(|p| p.file.ends_with(file))
            .map(|p| p.reason.clone())
            .collect()
    };
    assert_eq!(reason("truncated.json.gz"), ["truncated gzip"]);
    assert!(
        reason("not-json.json")[0].starts_with("not JSON"),
        "{:?}",
        reason("not-json.json")
    );
    assert!(reason("not-json.json.gz")[0].starts_with("not JSON"));
    let bad = reason("bad-records.json");
    assert_eq!(
        bad,
        [
            "record without eventSource",
            "record without eventTime",
            "unknown major eventVersion \"2\""
        ]
    );
    assert!(r
        .reading
        .problems
        .iter()
        .filter(|p| p.file.ends_with("bad-records.json"))
        .all(|p| !p.whole_file && p.records == 1));
    assert_eq!(r.reading.records_skipped, 3);
    // The good record of bad-records.json is a duplicate (same eventID) of one in
    // records.jsonl: it counts once.
    assert_eq!(r.totals.writes, 6);
}

#[test]
fn a_path_that_does_not_exist_is_an_argument_error() {
    let err = analyze(&[fixture("no-such-dir")], &Options::default()).unwrap_err();
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[test]
fn filters_keep_what_they_name() {
    let only = |filter: Filter| run_with(&[fixture("trail")], Knobs::default(), filter);
    let r = only(Filter {
        accounts: vec!["444455556666".into()],
        ..Filter::default()
    });
    assert!(r.entities.iter().all(|e| e.account == "444455556666"));
    // The role, and the AWS managed policy attached in that account.
    let ids: Vec<&str> = r.entities.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, [APP_OTHER, "444455556666:policy/aws:ReadOnlyAccess"]);
    assert_eq!(r.totals.filtered_out, 10);
    let r = only(Filter {
        entities: vec!["*:role/app-*".into()],
        ..Filter::default()
    });
    assert_eq!(r.entities.len(), 2);
    let r = only(Filter {
        entities: vec!["app-runtime".into()],
        ..Filter::default()
    });
    assert_eq!(r.entities.len(), 2);
    let r = only(Filter {
        writers: vec!["drift-*".into()],
        ..Filter::default()
    });
    assert_eq!(r.writers.len(), 1);
    assert_eq!(r.totals.writes, 5);
    let since = writelane_trail::time::parse("2026-11-30T12:00:05Z");
    let until = writelane_trail::time::parse("2026-11-30T12:01:00Z");
    let r = only(Filter {
        since,
        until,
        ..Filter::default()
    });
    assert!(r
        .entities
        .iter()
        .all(|e| e.first_seen.as_str() >= "2026-11-30T12:00:05Z"
            && e.last_seen.as_str() < "2026-11-30T12:01:00Z"));
    // :05 (the remediator, CloudFormation), :07 (alice), :40 (Terraform).
    assert_eq!(r.totals.writes, 4);
}

#[test]
fn buckets_give_conflict_rates_over_time() {
    let r = run_with(
        &[fixture("trail")],
        Knobs {
            bucket_ms: Some(60_000),
            ..Knobs::default()
        },
        Filter::default(),
    );
    let starts: Vec<&str> = r.buckets.iter().map(|b| b.start.as_str()).collect();
    assert_eq!(
        starts,
        [
            "2026-11-30T12:00:00Z",
            "2026-11-30T12:01:00Z",
            "2026-11-30T12:02:00Z"
        ]
    );
    let first = &r.buckets[0];
    assert_eq!((first.writes, first.conflicts, first.incidents), (10, 4, 1));
    assert_eq!(first.conflict_permille, 400);
    let app = r.entities.iter().find(|e| e.id == APP).unwrap();
    assert_eq!(
        app.buckets.iter().map(|b| b.writes).sum::<u64>(),
        app.writes
    );
}

#[test]
fn the_json_report_round_trips() {
    let r = run(&[fixture("trail")]);
    let text = serde_json::to_string(&r).unwrap();
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    let text = writelane_trail::render::text(&r, 20);
    assert!(
        text.contains("deploy-pipeline (111122223333) × drift-remediator: 1 incident on 1 entity"),
        "{text}"
    );
    assert!(text.contains("immediate replay: drift-remediator repeated PutRolePolicy 4 times"));
}

#[test]
fn a_source_added_takes_its_entity_from_resources() {
    let dir = tempfile::tempdir().unwrap();
    let rec = |t: &str, role: &str, id: &str, error: &str| {
        format!(
            r#"{{"eventVersion":"1.09","eventTime":"2026-11-30T12:00:{t}Z","eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","eventID":"{id}","readOnly":false,"recipientAccountId":"111122223333",{error}"userIdentity":{{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/{role}/r","sessionContext":{{"sessionIssuer":{{"arn":"arn:aws:iam::111122223333:role/{role}"}}}}}},"requestParameters":{{"bucketName":"logs"}},"resources":[{{"accountId":"111122223333","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::logs"}}]}}"#
        ) + "\n"
    };
    let body = rec("01", "deploy-pipeline", "a", "")
        + &rec(
            "03",
            "drift-remediator",
            "b",
            r#""errorCode":"OperationAborted","#,
        )
        + &rec("04", "drift-remediator", "c", "");
    std::fs::write(dir.path().join("s3.jsonl"), body).unwrap();
    let input = [Input::Path(dir.path().to_path_buf())];
    let without = run(&input);
    assert_eq!(
        (without.totals.writes, without.totals.other_sources),
        (0, 3)
    );
    let with = run_with(
        &input,
        Knobs::default(),
        Filter {
            extra_sources: vec!["s3.amazonaws.com".into()],
            ..Filter::default()
        },
    );
    assert_eq!(with.totals.writes, 3);
    assert_eq!(
        with.settings.sources,
        ["iam.amazonaws.com", "s3.amazonaws.com"]
    );
    let e = &with.entities[0];
    assert_eq!(e.id, "111122223333:AWS::S3::Bucket/arn:aws:s3:::logs");
    assert_eq!(
        (e.kind.as_str(), e.name.as_str()),
        ("AWS::S3::Bucket", "arn:aws:s3:::logs")
    );
    assert_eq!(e.incidents.len(), 1);
    assert_eq!(e.other_errors.get("OperationAborted"), Some(&1));
}

#[test]
fn streamed_json_is_the_report_with_its_timelines() {
    let inputs = [fixture("trail"), fixture("bad")];
    let options = Options {
        knobs: Knobs {
            bucket_ms: Some(60_000),
            ..Knobs::default()
        },
        ..Options::default()
    };
    let full = analyze(&inputs, &options).unwrap();
    assert!(full
        .entities
        .iter()
        .all(|e| e.timeline.len() as u64 == e.writes));
    let mut out = Vec::new();
    let shell = writelane_trail::analyze_to_json(&inputs, &options, &mut out).unwrap();
    assert!(shell.entities.iter().all(|e| e.timeline.is_empty()));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        serde_json::to_string(&full).unwrap()
    );
}
