//! Version 2 lease records (the queue-like hand-off): parsing, the rules of the new fields
//! with errors naming the field, and version 1 records reading and writing as before.

use writelane_core::lease::{
    plan_force_release, ForceReleasePlan, LeaseRecord, StoreOp, Ticket, MAX_OWNER_LEN, MAX_QUEUE,
    MAX_RVN,
};

fn ticket(owner: &str, ticket: u64) -> Ticket {
    Ticket {
        owner: owner.to_string(),
        ticket,
        beat: 1,
    }
}

fn v2(queue: Vec<Ticket>) -> LeaseRecord {
    let next = queue.last().map_or(0, |t| t.ticket + 1);
    LeaseRecord {
        version: 2,
        owner: "host-a:1:00000000000000aa".into(),
        epoch: 3,
        rvn: 77,
        lease_ms: 10_000,
        committed_token: Some("v4".into()),
        holder: None,
        beat: 5,
        next_ticket: next,
        hold_ms: 1_200,
        queue,
    }
}

fn field_of(json: &str) -> String {
    LeaseRecord::from_json(json.as_bytes())
        .expect_err("the record is invalid")
        .field
}

#[test]
fn a_version_1_record_reads_and_writes_as_before() {
    let text = r#"{"committed_token":"v1","epoch":2,"holder":null,"lease_ms":400,"owner":"h:1:a","rvn":9}"#;
    let r = LeaseRecord::from_json(text.as_bytes()).unwrap();
    assert_eq!(r.version, 1);
    assert!(r.queue.is_empty());
    assert_eq!((r.beat, r.next_ticket, r.hold_ms), (0, 0, 0));
    let back: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    let want: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        back, want,
        "no version 2 field is written for a version 1 record"
    );
}

#[test]
fn a_version_2_record_round_trips_with_its_queue() {
    let r = v2(vec![ticket("b:2:x", 4), ticket("c:3:y", 6)]);
    r.validate().unwrap();
    let text = r.to_json();
    assert!(text.contains(r#""version":2"#), "{text}");
    assert!(text.contains(r#""queue":[{"#), "{text}");
    assert_eq!(LeaseRecord::from_json(text.as_bytes()).unwrap(), r);
}

#[test]
fn the_queue_may_come_as_json_text_as_dynamodb_keeps_it() {
    let r = v2(vec![ticket("b:2:x", 0)]);
    let mut v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    v["queue"] = serde_json::Value::String(r.queue_json());
    assert_eq!(LeaseRecord::from_json(v.to_string().as_bytes()).unwrap(), r);
    v["queue"] = serde_json::Value::String("[{\"owner\":1}]".into());
    let err = LeaseRecord::from_json(v.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.field, "$");
    assert!(err.rule.contains("queue"), "{err}");
}

#[test]
fn version_2_fields_are_refused_in_a_version_1_record() {
    for (extra, field) in [
        (r#","beat":1"#, "beat"),
        (r#","next_ticket":1"#, "next_ticket"),
        (r#","hold_ms":5"#, "hold_ms"),
        (r#","queue":[{"owner":"b","ticket":0,"beat":0}]"#, "queue"),
    ] {
        let text = format!(
            r#"{{"committed_token":null,"epoch":2,"holder":null,"lease_ms":400,"owner":"a","rvn":9{extra}}}"#
        );
        assert_eq!(field_of(&text), field, "{text}");
    }
}

#[test]
fn each_rule_of_version_2_names_its_field() {
    let ok = v2(vec![ticket("b", 1), ticket("c", 2)]);
    ok.validate().unwrap();
    let cases: Vec<(LeaseRecord, &str)> = vec![
        (
            LeaseRecord {
                version: 3,
                ..ok.clone()
            },
            "version",
        ),
        (
            LeaseRecord {
                version: 0,
                ..ok.clone()
            },
            "version",
        ),
        (
            LeaseRecord {
                beat: MAX_RVN + 1,
                ..ok.clone()
            },
            "beat",
        ),
        (
            LeaseRecord {
                next_ticket: MAX_RVN + 1,
                ..ok.clone()
            },
            "next_ticket",
        ),
        (
            LeaseRecord {
                hold_ms: u64::MAX,
                ..ok.clone()
            },
            "hold_ms",
        ),
        (v2(vec![ticket("b", 1), ticket("", 2)]), "queue[1].owner"),
        (
            v2(vec![ticket(&"o".repeat(MAX_OWNER_LEN + 1), 1)]),
            "queue[0].owner",
        ),
        (
            v2(vec![ticket("host-a:1:00000000000000aa", 1)]),
            "queue[0].owner",
        ),
        (v2(vec![ticket("b", 1), ticket("b", 2)]), "queue[1].owner"),
        (v2(vec![ticket("b", 2), ticket("c", 2)]), "queue[1].ticket"),
        (
            LeaseRecord {
                next_ticket: 10,
                ..v2(vec![ticket("b", 3), ticket("c", 2)])
            },
            "queue[1].ticket",
        ),
        (
            LeaseRecord {
                next_ticket: 2,
                ..ok.clone()
            },
            "queue[1].ticket",
        ),
        (
            v2(vec![Ticket {
                beat: MAX_RVN + 1,
                ..ticket("b", 0)
            }]),
            "queue[0].beat",
        ),
    ];
    for (record, field) in cases {
        let err = record.validate().expect_err(field);
        assert_eq!(err.field, field, "{err}");
        // The same error through the parser that adapters use.
        assert_eq!(field_of(&record.to_json()), field);
    }
}

#[test]
fn the_queue_is_bounded() {
    let full: Vec<Ticket> = (0..MAX_QUEUE as u64)
        .map(|i| ticket(&format!("w:{i}:x"), i))
        .collect();
    v2(full.clone()).validate().unwrap();
    let mut over = full;
    over.push(ticket("w:last:x", MAX_QUEUE as u64));
    assert_eq!(v2(over).validate().unwrap_err().field, "queue");
}

#[test]
fn a_full_queue_of_longest_owners_is_far_below_dynamodbs_item_limit() {
    let full: Vec<Ticket> = (0..MAX_QUEUE as u64)
        .map(|i| Ticket {
            owner: format!("{i:04}{}", "o".repeat(MAX_OWNER_LEN - 4)),
            ticket: MAX_RVN - MAX_QUEUE as u64 + i,
            beat: MAX_RVN,
        })
        .collect();
    let r = LeaseRecord {
        next_ticket: MAX_RVN,
        holder: Some("h".repeat(writelane_core::lease::MAX_HOLDER_LEN)),
        ..v2(full)
    };
    r.validate().unwrap();
    let bytes = r.to_json().len();
    assert!(bytes < 40_000, "{bytes} bytes");
    assert!(
        bytes > 16_000,
        "{bytes} bytes: the bound is measured, not assumed"
    );
}

#[test]
fn a_force_release_keeps_the_queue_for_its_head() {
    let held = v2(vec![ticket("b", 1), ticket("c", 2)]);
    let ForceReleasePlan::Swap(StoreOp::CompareAndSwap { record, .. }) =
        plan_force_release("k", Some(held.clone()), None, 9)
    else {
        panic!("a held record is swapped");
    };
    assert_eq!(record.owner, "");
    assert_eq!(record.epoch, held.epoch + 1);
    assert_eq!(record.beat, 0);
    assert_eq!(record.queue, held.queue);
    assert_eq!(record.version, 2);
    assert_eq!(record.committed_token, None);
    record.validate().unwrap();
}
