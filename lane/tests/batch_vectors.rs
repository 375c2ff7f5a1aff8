//! The group-commit vectors (tests/vectors-lane/batch, format in tests/vectors-lane's
//! README) replayed through `Lane::update` and `Lane::run`: one task per run on tokio's
//! paused clock, a document store whose reads and writes take `call_ms`, and change
//! functions that append an item or raise.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::vectors;
use serde_json::{json, Value};
use writelane::{
    Attempt, Event, Failure, GiveUpReason, Lane, LaneOptions, Outcome, Policy, RunOptions,
    TokioClock, UpdateOptions,
};

/// The vector's document store and what the replay saw.
struct World {
    items: Vec<String>,
    version: u64,
    writes: usize,
    calls: Vec<Value>,
    call_ms: u64,
    write_fails: BTreeMap<usize, Failure>,
    max_items: Option<usize>,
    start: tokio::time::Instant,
}

impl World {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

type Shared = Arc<Mutex<World>>;

async fn read(world: Shared, run: usize) -> Result<(Vec<String>, Option<String>), Failure> {
    let ms = {
        let mut w = world.lock().unwrap();
        let at = w.now();
        w.calls.push(json!({"at": at, "call": "read", "run": run}));
        w.call_ms
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let w = world.lock().unwrap();
    Ok((w.items.clone(), Some(format!("v{}", w.version))))
}

async fn write(world: Shared, run: usize, doc: Vec<String>, a: Attempt) -> Result<(), Failure> {
    let ms = {
        let mut w = world.lock().unwrap();
        let at = w.now();
        w.calls.push(
            json!({"at": at, "call": "write", "run": run, "attempt": a.number,
                            "base_token": a.base_token, "document": doc}),
        );
        w.call_ms
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let mut w = world.lock().unwrap();
    let k = w.writes;
    w.writes += 1;
    if let Some(f) = w.write_fails.get(&k) {
        return Err(f.clone());
    }
    if w.max_items.is_some_and(|m| doc.len() > m) {
        return Err(Failure::code("LimitExceeded").with_status(409));
    }
    w.items = doc;
    w.version += 1;
    a.set_token(format!("v{}", w.version));
    Ok(())
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

/// One run, as its task: start at `at_ms`, then update or write.
async fn one_run(lane: Lane, world: Shared, i: usize, run: Value) -> Value {
    let start = world.lock().unwrap().start;
    let at = run["at_ms"].as_u64().unwrap();
    tokio::time::sleep_until(start + Duration::from_millis(at)).await;
    let reader = {
        let world = Arc::clone(&world);
        move || read(Arc::clone(&world), i)
    };
    let report = if let Some(items) = run["write"].as_array() {
        let items: Vec<String> = items
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        let world = Arc::clone(&world);
        let token_reader = move || {
            let r = reader.clone();
            async move { r().await.map(|(_, token)| token) }
        };
        lane.run(
            "role/app",
            move |a: Attempt| write(Arc::clone(&world), i, items.clone(), a),
            Some(token_reader),
            RunOptions::default(),
        )
        .await
    } else {
        let update = run["update"].clone();
        let changes = Arc::clone(&world);
        let writer = Arc::clone(&world);
        lane.update(
            "role/app",
            reader,
            move |doc: &Vec<String>| {
                let mut w = changes.lock().unwrap();
                let at = w.now();
                w.calls.push(json!({"at": at, "change": i}));
                if let Some(t) = update["raise"].as_str() {
                    // The error's type name is the code the engine is told.
                    return Err(Failure::code(t));
                }
                let item = update["add"].as_str().unwrap();
                let mut doc = doc.clone();
                if !doc.iter().any(|d| d == item) {
                    doc.push(item.to_string());
                }
                Ok(doc)
            },
            move |doc, a| write(Arc::clone(&writer), i, doc, a),
            UpdateOptions::default(),
        )
        .await
    };
    outcome_json(&report.expect("the lane follows the contract").outcome)
}

/// Fold the change calls after each read into the vector's `apply` entries.
fn applies(calls: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut leader = None;
    for c in calls {
        if let Some(j) = c.get("change") {
            let last_is_apply = out.last().is_some_and(|l| l["call"] == "apply");
            if !last_is_apply {
                out.push(json!({"at": c["at"], "call": "apply", "run": leader, "runs": []}));
            }
            let last = out.last_mut().unwrap();
            last["runs"].as_array_mut().unwrap().push(j.clone());
            continue;
        }
        if c["call"] == "read" {
            leader = Some(c["run"].clone());
        }
        out.push(c);
    }
    out
}

async fn replay(v: &Value) -> Value {
    let policy = Policy::from_value(&v["policy"]).unwrap();
    let options = LaneOptions {
        clock: Some(Arc::new(TokioClock::new())),
        seed: v["seed"].as_u64(),
        ..LaneOptions::default()
    };
    let lane = Lane::new(policy, options).unwrap();
    let world = Arc::new(Mutex::new(World {
        items: Vec::new(),
        version: 0,
        writes: 0,
        calls: Vec::new(),
        call_ms: v["call_ms"].as_u64().unwrap(),
        write_fails: v["write_fails"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, f)| {
                let failure = Failure::code(f["code"].as_str().unwrap())
                    .with_status(f["status"].as_u64().unwrap() as u16);
                (k.parse().unwrap(), failure)
            })
            .collect(),
        max_items: v["max_items"].as_u64().map(|m| m as usize),
        start: tokio::time::Instant::now(),
    }));
    let runs = v["runs"].as_array().unwrap();
    let tasks: Vec<_> = runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let task = tokio::spawn(one_run(lane.clone(), Arc::clone(&world), i, run.clone()));
            if let Some(at) = run["cancel_at_ms"].as_u64() {
                let abort = task.abort_handle();
                let start = world.lock().unwrap().start;
                tokio::spawn(async move {
                    tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                    abort.abort();
                });
            }
            task
        })
        .collect();
    let mut outcomes = Vec::new();
    let mut end = 0;
    for task in tasks {
        let outcome = task.await.unwrap_or(Value::Null);
        end = end.max(world.lock().unwrap().now());
        outcomes.push(outcome);
    }
    // A cancelled run's outcome, from telemetry: op ids follow the runs' start order.
    for _ in 0..10_000 {
        if lane.stats().active_ops == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    for e in lane.events() {
        if let Event::GaveUp {
            op,
            attempts,
            reason,
            ..
        } = e
        {
            let i = op.0 as usize - 1;
            if outcomes[i].is_null() {
                outcomes[i] = json!({"status": "gave_up", "reason": reason,
                                     "attempts": attempts, "code": null});
            }
        }
    }
    let mut w = world.lock().unwrap();
    let calls = applies(std::mem::take(&mut w.calls));
    json!({"calls": calls, "outcomes": outcomes, "document": w.items, "end_ms": end})
}

#[test]
fn every_batch_vector_replays_through_lane_update() {
    let all = vectors("tests/vectors-lane/batch");
    assert_eq!(all.len(), 6, "the group-commit vectors");
    for (name, v) in all {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let got = rt.block_on(replay(&v));
        assert_eq!(got, v["expect"], "{name}");
    }
}
