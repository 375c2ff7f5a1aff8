//! `Lane::update` (group commit) against an in-memory IAM-like entity: a policy document
//! with a version, reads and writes that take time, and `ConcurrentModification` for a
//! write based on a version that is not the current one. Real tokio time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use writelane::{
    Attempt, Failure, Lane, LaneOptions, MemoryStore, Outcome, Policy, Store, UpdateOptions,
};
use writelane_core::iam::docs::put_statement;

/// A stand-in for an IAM role's inline policy.
#[derive(Default)]
struct Role {
    state: Mutex<(Value, u64)>,
    writes: Mutex<u32>,
    conflicts: Mutex<u32>,
    /// A write of a document larger than this is refused as `LimitExceeded` (fatal).
    max_statements: usize,
}

impl Role {
    async fn read(&self) -> Result<(Value, Option<String>), Failure> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let (doc, v) = self.state.lock().unwrap().clone();
        Ok((doc, Some(format!("v{v}"))))
    }

    async fn write(&self, doc: Value, a: Attempt) -> Result<(), Failure> {
        *self.writes.lock().unwrap() += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let n = doc["Statement"].as_array().map_or(0, Vec::len);
        if n > self.max_statements {
            return Err(Failure::code("LimitExceeded").with_status(409));
        }
        let mut state = self.state.lock().unwrap();
        if a.base_token != Some(format!("v{}", state.1)) {
            *self.conflicts.lock().unwrap() += 1;
            return Err(Failure::code("ConcurrentModification").with_status(409));
        }
        state.0 = doc;
        state.1 += 1;
        a.set_token(format!("v{}", state.1));
        Ok(())
    }
}

async fn append(lane: &Lane, role: &Arc<Role>, sid: String) -> writelane::RunReport<Failure> {
    let (r, w) = (Arc::clone(role), Arc::clone(role));
    let statement = json!({"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject",
                           "Resource": format!("arn:aws:s3:::bucket/{sid}")});
    lane.update(
        "role/app",
        move || {
            let r = Arc::clone(&r);
            async move { r.read().await }
        },
        move |doc: &Value| {
            put_statement(doc, &statement).map_err(|e| Failure::code(format!("Doc: {e}")))
        },
        move |doc, a| {
            let w = Arc::clone(&w);
            async move { w.write(doc, a).await }
        },
        UpdateOptions::default(),
    )
    .await
    .expect("the lane follows the contract")
}

fn sids(role: &Role) -> Vec<String> {
    let state = role.state.lock().unwrap();
    state.0["Statement"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|s| s["Sid"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_append_five_statements_each_in_few_writes() {
    let lane = Lane::new(Policy::default(), LaneOptions::default()).unwrap();
    let role = Arc::new(Role {
        max_statements: usize::MAX,
        ..Role::default()
    });
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (lane, role) = (lane.clone(), Arc::clone(&role));
            tokio::spawn(async move {
                for i in 0..5 {
                    let report = append(&lane, &role, format!("T{t}S{i}")).await;
                    assert!(
                        matches!(report.outcome, Outcome::Committed { .. }),
                        "{:?}",
                        report.outcome
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut present = sids(&role);
    present.sort();
    let mut want: Vec<String> = (0..8)
        .flat_map(|t| (0..5).map(move |i| format!("T{t}S{i}")))
        .collect();
    want.sort();
    assert_eq!(present, want, "all 40 changes present");
    let writes = *role.writes.lock().unwrap();
    assert_eq!(*role.conflicts.lock().unwrap(), 0);
    eprintln!("40 changes in {writes} writes");
    assert!(writes <= 20, "{writes} writes for 40 changes");
    let stats = lane.stats();
    assert_eq!(stats.global.committed, 40);
    assert_eq!(stats.global.writes, u64::from(writes));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_change_that_breaks_the_write_fails() {
    let lane = Lane::new(Policy::default(), LaneOptions::default()).unwrap();
    let role = Arc::new(Role {
        max_statements: 3,
        ..Role::default()
    });
    // Four appends at once; the document takes three statements.
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (lane, role) = (lane.clone(), Arc::clone(&role));
            tokio::spawn(async move { append(&lane, &role, format!("S{i}")).await })
        })
        .collect();
    let mut committed = 0;
    let mut failed = Vec::new();
    for t in tasks {
        let report = t.await.unwrap();
        match report.outcome {
            Outcome::Committed { .. } => committed += 1,
            Outcome::GaveUp { reason, .. } => failed.push((reason, report.last_error)),
        }
    }
    assert_eq!(committed, 3);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0.name(), "fatal");
    assert_eq!(sids(&role).len(), 3);
}

#[tokio::test]
async fn a_refused_change_reports_its_own_error() {
    let lane = Lane::new(Policy::default(), LaneOptions::default()).unwrap();
    let role = Arc::new(Role {
        max_statements: usize::MAX,
        ..Role::default()
    });
    let (r, w) = (Arc::clone(&role), Arc::clone(&role));
    let report = lane
        .update(
            "role/app",
            move || {
                let r = Arc::clone(&r);
                async move { r.read().await }
            },
            |_: &Value| Err(Failure::code("NotAllowedHere")),
            move |doc, a| {
                let w = Arc::clone(&w);
                async move { w.write(doc, a).await }
            },
            UpdateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.outcome.clone().status_name(), "gave_up");
    assert_eq!(
        report.last_error.and_then(|e| e.code).as_deref(),
        Some("NotAllowedHere")
    );
    assert_eq!(*role.writes.lock().unwrap(), 0);
}

trait StatusName {
    fn status_name(self) -> &'static str;
}

impl StatusName for Outcome {
    fn status_name(self) -> &'static str {
        match self {
            Outcome::Committed { .. } => "committed",
            Outcome::GaveUp { .. } => "gave_up",
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_machines_on_a_shared_lease_each_batch_their_own_queue() {
    let policy = Policy::from_json(
        r#"{"lease": {"lease_ms": 3000, "renew_ms": 1000, "lock_delay_ms": 100,
            "poll_ms": 20, "unavailable_ms": 5000, "max_write_ms": 500}}"#,
    )
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let machines: Vec<Lane> = (0..2)
        .map(|m| {
            let options = LaneOptions {
                store: Some(Arc::clone(&store)),
                owner: Some(format!("machine-{m}:1:000000000000000{m}")),
                ..LaneOptions::default()
            };
            Lane::new(policy.clone(), options).unwrap()
        })
        .collect();
    let role = Arc::new(Role {
        max_statements: usize::MAX,
        ..Role::default()
    });
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (lane, role) = (machines[t % 2].clone(), Arc::clone(&role));
            tokio::spawn(async move {
                for i in 0..5 {
                    let report = append(&lane, &role, format!("T{t}S{i}")).await;
                    assert!(
                        matches!(report.outcome, Outcome::Committed { .. }),
                        "{:?}",
                        report.outcome
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(sids(&role).len(), 40, "all 40 changes present");
    assert_eq!(*role.conflicts.lock().unwrap(), 0);
    let writes = *role.writes.lock().unwrap();
    eprintln!("two machines: 40 changes in {writes} writes");
    assert!(writes <= 20, "{writes} writes for 40 changes");
}
