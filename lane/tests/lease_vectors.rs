//! The lease vectors (tests/vectors-lease) are engine-level: steps of inputs at given
//! times and the commands the engine must emit. The CLI's tests replay them through the
//! core. Here they are replayed through the driver instead: each command the vector's
//! engine emits must be carried out by `Lane::run` at the same virtual time — a store
//! command by the lane's store, a read or write by the user's functions — and answered
//! with the vector's next input at that input's time, and the lane's telemetry and final
//! counters must equal the vector's. This proves the driver issues every command, sleeps
//! exactly until the engine's timeouts, and adds no call of its own.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use common::{block_on, vectors, FakeClock};
use serde_json::{json, Value};
use writelane::{
    Attempt, BoxFuture, Failure, LaneOptions, LeaseRecord, Policy, RunOptions, Store, StoreOp,
    StoreReply,
};

/// The vector's inputs in order, and the commands the driver carried out.
struct World {
    steps: VecDeque<Value>,
    clock: Arc<FakeClock>,
    seen: Vec<Value>,
}

impl World {
    /// Record a command, then answer it with the next input (of one of `kinds`), at its time.
    fn answer(&mut self, command: Value, kinds: &[&str]) -> Value {
        self.seen
            .push(json!({"at": self.clock.now(), "command": command}));
        // Timeouts already happened: the driver slept until them.
        while self
            .steps
            .front()
            .is_some_and(|s| s.get("timeout").is_some())
        {
            self.steps.pop_front();
        }
        let step = self.steps.pop_front().expect("an input for every command");
        let kind = step["input"]["type"].as_str().unwrap();
        assert!(
            kinds.contains(&kind),
            "the driver carried out {command}, the vector has {kind}"
        );
        self.clock.advance_to(step["at"].as_u64().unwrap());
        step["input"].clone()
    }
}

struct ScriptStore(Arc<Mutex<World>>);

impl ScriptStore {
    fn carry(&self, op: StoreOp) -> BoxFuture<'_, StoreReply> {
        let command = json!({"op": 1, "operation": op, "type": "store"});
        let input = self.0.lock().unwrap().answer(command, &["store_reply"]);
        Box::pin(std::future::ready(
            serde_json::from_value(input["reply"].clone()).unwrap(),
        ))
    }
}

impl Store for ScriptStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreReply> {
        self.carry(StoreOp::Get { key: key.into() })
    }

    fn put_if_absent<'a>(&'a self, key: &'a str, r: &'a LeaseRecord) -> BoxFuture<'a, StoreReply> {
        self.carry(StoreOp::PutIfAbsent {
            key: key.into(),
            record: r.clone(),
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected_rvn: u64,
        r: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        self.carry(StoreOp::CompareAndSwap {
            key: key.into(),
            expected_rvn,
            record: r.clone(),
        })
    }
}

/// Replay one vector through a lane; compare commands, times, events and counters.
async fn replay(v: &Value) -> Result<(), String> {
    let clock = FakeClock::new(None);
    let mut steps: VecDeque<Value> = v["steps"].as_array().unwrap().iter().cloned().collect();
    let submit = steps.pop_front().unwrap();
    let entity = submit["submit"]["entity"].as_str().unwrap().to_string();
    let mut expected = Vec::new();
    let mut events = Vec::new();
    for step in v["steps"].as_array().unwrap() {
        for c in step["commands"].as_array().unwrap() {
            if c["type"] != "finish" {
                expected.push(json!({"at": step["at"], "command": c}));
            }
        }
        events.extend(step["events"].as_array().unwrap().iter().cloned());
    }
    let finish = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["commands"].as_array().unwrap())
        .find(|c| c["type"] == "finish")
        .cloned();
    if expected.is_empty() || finish.is_none() {
        return Err("the vector has no commands".into());
    }
    let world = Arc::new(Mutex::new(World {
        steps,
        clock: Arc::clone(&clock),
        seen: Vec::new(),
    }));
    let lane = writelane::Lane::new(
        Policy::from_value(&v["policy"]).unwrap(),
        LaneOptions {
            store: Some(Arc::new(ScriptStore(Arc::clone(&world)))),
            owner: Some(v["owner"].as_str().unwrap().to_string()),
            holder: None,
            clock: Some(clock.clone()),
            seed: v["seed"].as_u64(),
        },
    )
    .map_err(|e| e.to_string())?;
    let write = |a: Attempt| {
        let world = Arc::clone(&world);
        async move {
            let command = json!({"attempt": a.number, "base_token": a.base_token,
                                 "fence": a.fence, "op": 1, "type": "write"});
            let input = world
                .lock()
                .unwrap()
                .answer(command, &["write_done", "write_failed"]);
            match input["type"].as_str() {
                Some("write_done") => {
                    if let Some(t) = input["token"].as_str() {
                        a.set_token(t);
                    }
                    Ok(())
                }
                _ => Err(serde_json::from_value::<Failure>(input["failure"].clone()).unwrap()),
            }
        }
    };
    let read = || {
        let world = Arc::clone(&world);
        async move {
            let command = json!({"op": 1, "type": "read"});
            let input = world.lock().unwrap().answer(command, &["read_done"]);
            Ok::<_, Failure>(input["token"].as_str().map(str::to_string))
        }
    };
    let report = lane
        .run(&entity, write, Some(read), RunOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let got_finish = json!({"op": 1, "outcome": report.outcome, "type": "finish"});
    let seen = world.lock().unwrap().seen.clone();
    let got_events: Vec<Value> = lane.events().iter().map(|e| json!(e)).collect();
    let stats = lane.stats();
    let checks = [
        ("commands", json!(expected), json!(seen)),
        ("finish", json!(finish), got_finish),
        ("events", json!(events), json!(got_events)),
        (
            "counters",
            v["final_stats"]["global"].clone(),
            json!(stats.global),
        ),
        (
            "budget",
            v["final_stats"]["budget"].clone(),
            json!(stats.budget),
        ),
    ];
    for (what, want, got) in checks {
        if want != got {
            return Err(format!("{what}:\n  expected {want}\n  got      {got}"));
        }
    }
    Ok(())
}

#[test]
fn lease_vectors_through_the_lane() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, v) in vectors("tests/vectors-lease") {
        if v["owner"].is_null() {
            // An engine without an owner: a lane always has one (see the test below).
            assert_eq!(name, "011-lease-needs-owner.json");
            continue;
        }
        replayed += 1;
        if let Err(e) = block_on(replay(&v)) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(replayed >= 10, "replayed only {replayed}");
}

/// The vector `011-lease-needs-owner` refuses a shared-lane submit on an engine built
/// without an owner. A lane cannot be in that state: without a store, a shared-lane
/// policy is refused up front; with one, the lane has an owner ([`writelane::default_owner`]).
#[test]
fn a_lane_always_has_an_owner_for_shared_lanes() {
    let v = &vectors("tests/vectors-lease")
        .into_iter()
        .find(|(n, _)| n == "011-lease-needs-owner.json")
        .unwrap()
        .1;
    let policy = Policy::from_value(&v["policy"]).unwrap();
    let refused = writelane::Lane::new(policy.clone(), LaneOptions::default());
    assert!(
        matches!(&refused, Err(writelane::Error::Policy(e)) if e.path == "lanes.mode"),
        "{:?}",
        refused.err()
    );
    let store = Arc::new(writelane::MemoryStore::new());
    let lane = writelane::Lane::new(
        policy,
        LaneOptions {
            store: Some(store.clone()),
            ..LaneOptions::default()
        },
    )
    .unwrap();
    let report = block_on(lane.run(
        "role/app",
        |a: Attempt| async move {
            a.set_token("v2");
            Ok::<_, Failure>(())
        },
        None::<writelane::NoRead<Failure>>,
        RunOptions::default(),
    ))
    .unwrap();
    assert_eq!(report.into_result().unwrap(), Some("v2".into()));
    let record = store.record("role/app").unwrap();
    assert_eq!(record.owner, "", "released");
    assert_eq!(record.committed_token.as_deref(), Some("v2"));
}
