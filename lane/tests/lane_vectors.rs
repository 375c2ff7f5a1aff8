//! Every lane-driver vector (tests/vectors-lane: kinds `lane`, `force_release` and
//! `owner_id`) replayed through the crate's public API: `Lane::run` with a virtual
//! clock, scripted read and write functions and a fault-injecting memory store;
//! `force_release`; `owner_id` and `default_owner`.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use common::{block_on, vectors, FakeClock, FaultStore};
use serde_json::{json, Value};
use writelane::{
    force_release, Attempt, Classify, Event, Failure, ForceReleaseError, GiveUpReason, Lane,
    LaneOptions, LeaseRecord, MemoryStore, Outcome, Policy, RunOptions, Store,
};

/// What a scripted function raises.
#[derive(Debug)]
enum Raised {
    /// The language's SDK error (or a timeout).
    Sdk(Failure),
    /// A plain exception of the user's.
    Plain(String),
}

impl Classify for Raised {
    fn failure(&self) -> Failure {
        match self {
            Raised::Sdk(f) => f.clone(),
            Raised::Plain(_) => Failure::default(),
        }
    }
}

/// The scripted world of one run: results of reads and writes, and the calls seen.
struct Script {
    reads: VecDeque<Value>,
    writes: VecDeque<Value>,
    user_calls: usize,
    cancel_during: Option<usize>,
    calls: Arc<Mutex<Vec<Value>>>,
    clock: Arc<FakeClock>,
}

/// Outcome of a scripted call: a token (for a write: set with `set_token`), or an error.
enum Scripted {
    Token(Option<String>),
    Raise(Raised),
    /// The harness cancels the run during this call.
    Cancel,
}

impl Script {
    fn call(&mut self, call: Value, result: Option<Value>) -> Scripted {
        self.calls.lock().unwrap().push(call);
        let result = result.expect("a scripted result for every call");
        let k = self.user_calls;
        self.user_calls += 1;
        if self.cancel_during == Some(k) {
            self.cancel_during = None;
            return Scripted::Cancel;
        }
        if let Some(ms) = result.get("ms").and_then(Value::as_u64) {
            self.clock.advance_to(self.clock.now() + ms);
        }
        if let Some(t) = result.get("token") {
            return Scripted::Token(t.as_str().map(str::to_string));
        }
        if let Some(m) = result.get("raise") {
            return Scripted::Raise(Raised::Plain(m.as_str().unwrap().to_string()));
        }
        let f = &result["fail"];
        if f["unknown"] == json!(true) {
            return Scripted::Raise(Raised::Sdk(Failure::unknown_outcome()));
        }
        Scripted::Raise(Raised::Sdk(Failure {
            code: f["code"].as_str().map(str::to_string),
            status: f["status"].as_u64().map(|s| s as u16),
            retry_after_ms: f["retry_after_ms"].as_u64(),
            ..Failure::default()
        }))
    }
}

fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Committed { token, attempts } => {
            json!({"status": "committed", "token": token, "attempts": attempts})
        }
        Outcome::GaveUp { reason, attempts } => {
            let code = match reason {
                GiveUpReason::AttemptsExhausted { code, .. }
                | GiveUpReason::BudgetExhausted { code, .. }
                | GiveUpReason::DeadlineExceeded { code }
                | GiveUpReason::Fatal { code, .. } => code.clone(),
                _ => None,
            };
            json!({"status": "gave_up", "reason": reason.name(), "attempts": attempts, "code": code})
        }
    }
}

/// Replay one `lane` vector; the result in the vector's `expect` form.
async fn replay_lane(v: &Value) -> Value {
    let run = &v["run"];
    let cancel = &run["cancel"];
    let clock = FakeClock::new(cancel["at_ms"].as_u64());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let policy = Policy::from_value(&v["policy"]).unwrap();
    let entity = run["entity"].as_str().unwrap();
    let store = v["lane"]["store"].as_object().map(|spec| {
        let inner = MemoryStore::new();
        for (k, r) in spec["records"].as_object().unwrap() {
            let record: LeaseRecord = serde_json::from_value(r.clone()).unwrap();
            inner.set(k, Some(record));
        }
        let faults = spec["faults"].as_object().unwrap().iter();
        Arc::new(FaultStore {
            inner,
            faults: faults
                .map(|(i, f)| (i.parse().unwrap(), f.as_str().unwrap().to_string()))
                .collect::<BTreeMap<_, _>>(),
            count: Mutex::new(0),
            calls: Arc::clone(&calls),
            clock: Arc::clone(&clock),
        })
    });
    let usage = |kind: &str| json!({"calls": [], "outcome": {"status": "usage_error", "kind": kind}, "end_ms": 0});
    let options = LaneOptions {
        store: store.clone().map(|s| s as Arc<dyn Store>),
        owner: v["lane"]["owner"].as_str().map(str::to_string),
        holder: v["lane"]["holder"].as_str().map(str::to_string),
        clock: Some(clock.clone()),
        seed: v["seed"].as_u64(),
    };
    let lane = match Lane::new(policy, options) {
        Ok(lane) => lane,
        Err(writelane::Error::Usage(e)) => return usage(e.kind()),
        Err(e) => panic!("lane refused: {e}"),
    };
    let script = Arc::new(Mutex::new(Script {
        reads: run["reads"].as_array().unwrap().iter().cloned().collect(),
        writes: run["writes"].as_array().unwrap().iter().cloned().collect(),
        user_calls: 0,
        cancel_during: cancel["during_call"].as_u64().map(|k| k as usize),
        calls: Arc::clone(&calls),
        clock: Arc::clone(&clock),
    }));
    let cancelled = Arc::new(tokio::sync::Notify::new());
    let write = |a: Attempt| {
        let (script, cancelled, clock) = (script.clone(), cancelled.clone(), clock.clone());
        async move {
            let call = json!({"at": clock.now(), "call": "write", "attempt": a.number,
                              "base_token": a.base_token, "fence": a.fence});
            let scripted = {
                let mut s = script.lock().unwrap();
                let result = s.writes.pop_front();
                s.call(call, result)
            };
            match scripted {
                Scripted::Token(t) => {
                    if let Some(t) = t {
                        a.set_token(t);
                    }
                    Ok(())
                }
                Scripted::Raise(e) => Err(e),
                Scripted::Cancel => {
                    cancelled.notify_one();
                    std::future::pending().await
                }
            }
        }
    };
    let read = || {
        let (script, cancelled, clock) = (script.clone(), cancelled.clone(), clock.clone());
        async move {
            let scripted = {
                let mut s = script.lock().unwrap();
                let result = s.reads.pop_front();
                s.call(json!({"at": clock.now(), "call": "read"}), result)
            };
            match scripted {
                Scripted::Token(t) => Ok(t),
                Scripted::Raise(e) => Err(e),
                Scripted::Cancel => {
                    cancelled.notify_one();
                    std::future::pending().await
                }
            }
        }
    };
    let options = RunOptions {
        expected: run["expected"].as_str().map(str::to_string),
        deadline_ms: run["deadline_ms"].as_u64(),
        holder: None,
    };
    let read = run["has_read"].as_bool().unwrap().then_some(read);
    let outcome = tokio::select! {
        report = lane.run(entity, write, read, options) => match report {
            Ok(report) => {
                let out = outcome_json(&report.outcome);
                // A user's own exception is carried back, and classified fatal with no code.
                if let Some(Raised::Plain(message)) = &report.last_error {
                    assert!(!message.is_empty());
                    assert_eq!((&out["reason"], &out["code"]), (&json!("fatal"), &Value::Null));
                }
                out
            }
            Err(writelane::Error::Usage(e)) => return usage(e.kind()),
            Err(e) => panic!("run failed: {e}"),
        },
        () = clock.cancelled.notified() => cancelled_outcome(&lane).await,
        () = cancelled.notified() => cancelled_outcome(&lane).await,
    };
    let s = script.lock().unwrap();
    assert!(
        s.reads.is_empty() && s.writes.is_empty(),
        "unused scripted results"
    );
    let mut expect =
        json!({"calls": *calls.lock().unwrap(), "outcome": outcome, "end_ms": clock.now()});
    if let Some(store) = &store {
        expect["store_after"] = json!({ entity: store.inner.record(entity) });
    }
    expect
}

/// The run was dropped: wait until the lane has carried out what the cancelled operation
/// still asked (a release), and read its outcome from the telemetry.
async fn cancelled_outcome(lane: &Lane) -> Value {
    for _ in 0..10_000 {
        if lane.stats().active_ops == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        lane.stats().active_ops,
        0,
        "the cancelled operation never finished"
    );
    let gave_up = lane.events().into_iter().find_map(|e| match e {
        Event::GaveUp {
            attempts, reason, ..
        } => {
            Some(json!({"status": "gave_up", "reason": reason, "attempts": attempts, "code": null}))
        }
        _ => None,
    });
    gave_up.expect("a gave_up event")
}

async fn replay_force_release(v: &Value) -> Value {
    let key = v["key"].as_str().unwrap();
    let inner = MemoryStore::new();
    inner.set(key, serde_json::from_value(v["record"].clone()).unwrap());
    let mut faults = BTreeMap::new();
    if let Some(f) = v["fault"].as_str() {
        faults.insert(1, f.to_string()); // call 0 is the read; the fault hits the swap
    }
    let store = FaultStore {
        inner,
        faults,
        count: Mutex::new(0),
        calls: Arc::default(),
        clock: FakeClock::new(None),
    };
    let result = force_release(
        &store,
        key,
        v["expected_rvn"].as_u64(),
        v["entropy"].as_u64(),
        2_000,
    )
    .await;
    match result {
        Ok(r) => json!({ "result": r }),
        Err(ForceReleaseError::SwapUnanswered { .. }) => {
            json!({"result": {"error": "unavailable"}})
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn every_lane_vector() {
    let all = vectors("tests/vectors-lane");
    assert!(all.len() >= 38, "found only {} lane vectors", all.len());
    let mut kinds = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, v) in &all {
        let kind = v["kind"].as_str().unwrap();
        *kinds.entry(kind.to_string()).or_insert(0) += 1;
        let got = match kind {
            "lane" => block_on(replay_lane(v)),
            "force_release" => block_on(replay_force_release(v)),
            "owner_id" => json!({"owner": writelane::owner_id(
                v["host"].as_str().unwrap(),
                v["pid"].as_u64().unwrap() as u32,
                v["entropy"].as_u64().unwrap(),
            )}),
            other => panic!("{name}: unknown kind {other}"),
        };
        if got != v["expect"] {
            failures.push(format!(
                "{name}:\n  expected {}\n  got      {}",
                v["expect"], got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(kinds["lane"] >= 29 && kinds["force_release"] >= 6 && kinds["owner_id"] >= 3);
}

#[test]
fn default_owner_is_host_pid_and_random_bits() {
    let a = writelane::default_owner();
    let b = writelane::default_owner();
    let parts: Vec<&str> = a.rsplitn(3, ':').collect();
    assert_eq!(parts.len(), 3, "{a}");
    assert_eq!(parts[0].len(), 16, "{a}");
    assert!(parts[0].bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    assert_eq!(parts[1], std::process::id().to_string());
    assert!(!parts[2].is_empty());
    assert_ne!(a, b, "two owners of one process must differ");
}
