//! The lane-driver vectors replay from their JSON alone, as every binding replays them: a
//! check that `tests/vectors-lane/README.md` says all a driver needs.

use std::path::PathBuf;

use serde_json::{json, Value};
use writelane_core::lease::{
    finish_force_release, owner_id, plan_force_release, ForceReleasePlan, LeaseRecord, MemoryStore,
    StoreOp, StoreReply,
};
use writelane_core::{
    Command, Engine, Failure, GiveUpReason, Input, Outcome, Policy, SubmitOptions,
};

fn files() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors-lane");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/vectors-lane exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect()
}

/// Carry out `op` on `store` with the fault named in the vector, if any.
fn store_call(store: &mut MemoryStore, op: StoreOp, fault: Option<&str>) -> StoreReply {
    let key = match &op {
        StoreOp::Get { key }
        | StoreOp::PutIfAbsent { key, .. }
        | StoreOp::CompareAndSwap { key, .. } => key.clone(),
    };
    let get = matches!(op, StoreOp::Get { .. });
    match fault {
        None => store.apply(op),
        Some("lost") => {
            store.apply(op);
            StoreReply::Lost
        }
        Some("dropped") => StoreReply::Lost,
        Some("unavailable") => StoreReply::Unavailable,
        Some("retried") if get => store.apply(op),
        Some("retried") => {
            store.apply(op);
            StoreReply::Refused {
                current: store.record(&key).cloned(),
            }
        }
        Some(other) => panic!("unknown fault {other}"),
    }
}

/// What a scripted call feeds the engine: `Ok(token)` or the failure.
fn scripted(call: &Value) -> Result<Option<String>, Failure> {
    if let Some(t) = call.get("token") {
        return Ok(t.as_str().map(String::from));
    }
    if call.get("raise").is_some() {
        return Err(Failure::default());
    }
    let f = &call["fail"];
    if f["unknown"] == true {
        return Err(Failure::unknown_outcome());
    }
    Err(Failure {
        code: f["code"].as_str().map(String::from),
        status: f["status"].as_u64().map(|s| s as u16),
        retry_after_ms: f["retry_after_ms"].as_u64(),
        ..Failure::default()
    })
}

fn replay_lane(doc: &Value) -> Value {
    let run = &doc["run"];
    let lane = &doc["lane"];
    let usage = |kind: &str| json!({"calls": [], "outcome": {"status": "usage_error", "kind": kind}, "end_ms": 0});
    let mut policy = Policy::from_json(&doc["policy"].to_string()).expect("policy");
    let mut store = MemoryStore::new();
    let faults = &lane["store"]["faults"];
    if let Some(records) = lane["store"]["records"].as_object() {
        policy = policy.for_store();
        for (k, r) in records {
            store.set(
                k,
                Some(serde_json::from_value::<LeaseRecord>(r.clone()).unwrap()),
            );
        }
    }
    let seed = doc["seed"].as_u64().unwrap();
    let mut engine = match lane["owner"].as_str() {
        Some(owner) => Engine::with_owner(policy, seed, owner).unwrap(),
        None => Engine::new(policy, seed),
    };
    let entity = run["entity"].as_str().unwrap();
    let options = SubmitOptions {
        expected: run["expected"].as_str().map(String::from),
        deadline_ms: run["deadline_ms"].as_u64(),
        holder: lane["holder"].as_str().map(String::from),
        no_read: run["has_read"] == false,
    };
    let mut clock = 0;
    let op = match engine.submit(entity, clock, options) {
        Ok(op) => op,
        Err(e) => return usage(e.kind()),
    };
    let (reads, writes) = (
        run["reads"].as_array().unwrap(),
        run["writes"].as_array().unwrap(),
    );
    let (mut r, mut w, mut user, mut stores) = (0, 0, 0, 0);
    let mut cancelled = false;
    let cancel_at = run["cancel"]["at_ms"].as_u64();
    let cancel_call = run["cancel"]["during_call"].as_u64().map(|k| k as usize);
    let mut calls = Vec::new();
    let outcome = loop {
        let Some(cmd) = engine.poll_command_for(op) else {
            let due = engine.poll_timeout_for(op).expect("waits on time");
            match cancel_at {
                Some(t) if !cancelled && t <= due => {
                    clock = clock.max(t);
                    cancelled = true;
                    engine.handle(clock, Input::Cancel { op }).unwrap();
                }
                _ => {
                    clock = clock.max(due);
                    engine.handle_timeout(clock).unwrap();
                }
            }
            continue;
        };
        let call = match cmd {
            Command::Finish { outcome, .. } => break outcome,
            Command::Store { operation, .. } => {
                calls.push(json!({"at": clock, "call": "store", "operation": operation}));
                let reply = store_call(&mut store, operation, faults[stores.to_string()].as_str());
                stores += 1;
                engine
                    .handle(clock, Input::StoreReply { op, reply })
                    .unwrap();
                continue;
            }
            Command::Read { .. } => {
                calls.push(json!({"at": clock, "call": "read"}));
                r += 1;
                &reads[r - 1]
            }
            Command::Write {
                attempt,
                base_token,
                fence,
                ..
            } => {
                calls.push(json!({"at": clock, "call": "write", "attempt": attempt, "base_token": base_token, "fence": fence}));
                w += 1;
                &writes[w - 1]
            }
        };
        user += 1;
        if cancel_call == Some(user - 1) {
            cancelled = true;
            engine.handle(clock, Input::Cancel { op }).unwrap();
            continue;
        }
        clock += call["ms"].as_u64().unwrap_or(0);
        let is_read = calls.last().unwrap()["call"] == "read";
        let input = match (scripted(call), is_read) {
            (Ok(token), true) => Input::ReadDone { op, token },
            (Ok(token), false) => Input::WriteDone { op, token },
            (Err(failure), true) => Input::ReadFailed { op, failure },
            (Err(failure), false) => Input::WriteFailed { op, failure },
        };
        engine.handle(clock, input).unwrap();
    };
    let outcome = match outcome {
        Outcome::Committed { token, attempts } => {
            json!({"status": "committed", "token": token, "attempts": attempts})
        }
        Outcome::GaveUp { reason, attempts } => {
            let code = match &reason {
                GiveUpReason::AttemptsExhausted { code, .. }
                | GiveUpReason::BudgetExhausted { code, .. }
                | GiveUpReason::DeadlineExceeded { code }
                | GiveUpReason::Fatal { code, .. } => code.clone(),
                _ => None,
            };
            json!({"status": "gave_up", "reason": reason.name(), "attempts": attempts, "code": code})
        }
    };
    let mut expect = json!({"calls": calls, "outcome": outcome, "end_ms": clock});
    if lane["store"].is_object() {
        expect["store_after"] = json!({ entity: store.record(entity) });
    }
    expect
}

fn replay_force_release(doc: &Value) -> Value {
    let record: Option<LeaseRecord> = serde_json::from_value(doc["record"].clone()).unwrap();
    let key = doc["key"].as_str().unwrap();
    let mut store = MemoryStore::new();
    store.set(key, record.clone());
    let plan = plan_force_release(
        key,
        record,
        doc["expected_rvn"].as_u64(),
        doc["entropy"].as_u64().unwrap(),
    );
    let result = match plan {
        ForceReleasePlan::Done(result) => json!(result),
        ForceReleasePlan::Swap(swap) => {
            let reply = store_call(&mut store, swap.clone(), doc["fault"].as_str());
            finish_force_release(&swap, reply).map_or(json!({"error": "unavailable"}), |r| json!(r))
        }
    };
    json!({ "result": result })
}

#[test]
fn every_lane_vector_replays_from_its_json() {
    let all = files();
    assert!(all.len() >= 30, "lane vectors exist");
    for (name, doc) in all {
        let got = match doc["kind"].as_str() {
            Some("lane") => replay_lane(&doc),
            Some("force_release") => replay_force_release(&doc),
            Some("owner_id") => json!({"owner": owner_id(
                doc["host"].as_str().unwrap(),
                doc["pid"].as_u64().unwrap() as u32,
                doc["entropy"].as_u64().unwrap(),
            )}),
            other => panic!("{name}: unknown kind {other:?}"),
        };
        assert_eq!(got, doc["expect"], "{name}");
    }
}
