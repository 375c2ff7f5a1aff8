//! The checked-in conformance vectors are exactly what the core generates, and replaying
//! each file from its JSON alone (as every binding does) reproduces every expectation.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{json, Value};
use writelane_core::{
    parse_retry_after, policy_token, Engine, EngineState, Failure, Input, Policy, RetryStrategy,
    RetryToken, SubmitOptions,
};

fn vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn lease_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors-lease")
}

fn checked_in() -> Vec<(String, Value)> {
    checked_in_from(&vector_dir())
}

fn checked_in_from(dir: &std::path::Path) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/vectors exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable");
            let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (stem, serde_json::from_str(&text).expect("valid JSON"))
        })
        .collect()
}

#[test]
fn regeneration_changes_nothing() {
    same_as_generated(writelane_cli::vectors::all(), &vector_dir());
}

#[test]
fn lane_regeneration_changes_nothing() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors-lane");
    same_as_generated(writelane_cli::lanevectors::lane(), &dir);
}

#[test]
fn batch_regeneration_changes_nothing() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors-lane/batch");
    let generated = writelane_cli::batchvectors::batch();
    assert_eq!(generated.len(), 6, "the six group-commit scenarios");
    same_files(generated, &dir);
}

#[test]
fn event_schema_regeneration_changes_nothing() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/schema/events.json");
    let disk = std::fs::read_to_string(path).expect("tests/schema/events.json exists");
    assert_eq!(
        writelane_cli::schema::render(),
        disk,
        "tests/schema/events.json is stale: regenerate the vectors"
    );
}

#[test]
fn lease_regeneration_changes_nothing() {
    same_as_generated(writelane_cli::vectors::lease(), &lease_dir());
}

fn same_as_generated(generated: Vec<writelane_cli::vectors::Vector>, dir: &std::path::Path) {
    assert!(generated.len() >= 10, "vectors exist");
    same_files(generated, dir);
}

fn same_files(generated: Vec<writelane_cli::vectors::Vector>, dir: &std::path::Path) {
    let on_disk = checked_in_from(dir);
    let names: Vec<&str> = on_disk.iter().map(|(s, _)| s.as_str()).collect();
    let gen_names: Vec<&str> = generated.iter().map(|v| v.stem.as_str()).collect();
    assert_eq!(
        names, gen_names,
        "vector files differ from the generator: run `cargo run -p writelane-cli -- vectors --out tests/vectors --lease-out tests/vectors-lease --lane-out tests/vectors-lane`"
    );
    for (v, (stem, disk)) in generated.iter().zip(&on_disk) {
        let text = writelane_cli::vectors::render(v);
        let disk_text = std::fs::read_to_string(dir.join(format!("{stem}.json"))).expect("read");
        assert_eq!(text, disk_text, "{stem} is stale: regenerate the vectors");
        assert_eq!(&v.json, disk);
    }
}

fn failure_from(v: &Value) -> Failure {
    let mut f = v.clone();
    let hint = f.get("retry_after_ms").cloned();
    if let Some(obj) = f.as_object_mut() {
        obj.remove("retry_after_ms");
    }
    let mut failure: Failure = serde_json::from_value(f).expect("failure");
    failure.retry_after_ms = match hint {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => parse_retry_after(&s),
        _ => None,
    };
    failure
}

fn replay_engine(name: &str, doc: &Value) {
    let policy = Policy::from_json(&doc["policy"].to_string()).expect("policy");
    let seed = doc["seed"].as_u64().expect("seed");
    let mut engine = match doc.get("owner").and_then(Value::as_str) {
        Some(owner) => Engine::with_owner(policy, seed, owner).expect("owner"),
        None => Engine::new(policy, seed),
    };
    if let Some(state) = doc.get("import_state") {
        let state: EngineState = serde_json::from_value(state.clone()).expect("state");
        engine.import_state(&state).expect("import");
    }
    for (i, step) in doc["steps"].as_array().expect("steps").iter().enumerate() {
        let at = step["at"].as_u64().expect("at");
        let result = if let Some(s) = step.get("submit") {
            let opts = SubmitOptions {
                expected: s
                    .get("expected")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                deadline_ms: s.get("deadline_ms").and_then(Value::as_u64),
                holder: s.get("holder").and_then(Value::as_str).map(str::to_string),
                no_read: s.get("no_read").and_then(Value::as_bool).unwrap_or(false),
            };
            engine
                .submit(s["entity"].as_str().expect("entity"), at, opts)
                .map(|op| assert_eq!(json!(op), step["op"], "{name} step {i}: op id"))
        } else if let Some(input) = step.get("input") {
            let mut input = input.clone();
            let parsed: Input = if let Some(f) = input.get("failure").cloned() {
                input["failure"] = json!({});
                let mut parsed: Input = serde_json::from_value(input).expect("input");
                match &mut parsed {
                    Input::ReadFailed { failure, .. } | Input::WriteFailed { failure, .. } => {
                        *failure = failure_from(&f)
                    }
                    _ => unreachable!(),
                }
                parsed
            } else {
                serde_json::from_value(input).expect("input")
            };
            engine.handle(at, parsed)
        } else {
            engine.handle_timeout(at)
        };
        assert_eq!(
            result.err().map(|e| e.kind()),
            step.get("error").and_then(Value::as_str),
            "{name} step {i}: error"
        );
        let mut commands = Vec::new();
        while let Some(c) = engine.poll_command() {
            commands.push(serde_json::to_value(c).expect("json"));
        }
        assert_eq!(
            Value::Array(commands),
            step["commands"],
            "{name} step {i}: commands"
        );
        let mut events = Vec::new();
        while let Some(e) = engine.poll_event() {
            events.push(serde_json::to_value(e).expect("json"));
        }
        assert_eq!(
            Value::Array(events),
            step["events"],
            "{name} step {i}: events"
        );
        assert_eq!(
            json!(engine.poll_timeout()),
            step["next_timeout"],
            "{name} step {i}: timeout"
        );
    }
    let stats = engine.stats();
    assert_eq!(
        json!({"global": stats.global, "budget": stats.budget}),
        doc["final_stats"],
        "{name}: final stats"
    );
}

fn replay_strategy(name: &str, doc: &Value) {
    let policy = Policy::from_json(&doc["policy"].to_string()).expect("policy");
    let mut s = RetryStrategy::new(policy, doc["seed"].as_u64().expect("seed"));
    let mut tokens: HashMap<String, RetryToken> = HashMap::new();
    for (i, step) in doc["steps"].as_array().expect("steps").iter().enumerate() {
        let at = step["at"].as_u64().expect("at");
        if let Some(a) = step.get("acquire") {
            let t = s
                .acquire(a["scope"].as_str().expect("scope"), at)
                .expect("acquire");
            tokens.insert(a["token"].as_str().expect("token").into(), t);
        } else if let Some(r) = step.get("refresh") {
            let t = tokens
                .get_mut(r["token"].as_str().expect("token"))
                .expect("known token");
            let got = match s
                .refresh(t, &failure_from(&r["failure"]), at)
                .expect("valid")
            {
                Ok(p) => json!({"delay_ms": p.delay_ms, "cost": p.cost, "class": p.class}),
                Err(refusal) => json!({"refused": refusal.reason()}),
            };
            assert_eq!(got, step["result"], "{name} step {i}");
        } else if let Some(x) = step.get("success") {
            let t = tokens[x["token"].as_str().expect("token")];
            s.record_success(&t).expect("valid");
        }
        let scope = step["capacity"]["scope"].as_str().expect("scope");
        assert_eq!(
            json!(s.capacity(scope)),
            step["capacity"]["level"],
            "{name} step {i}: capacity"
        );
    }
}

#[test]
fn every_lease_vector_replays_from_its_json() {
    let vectors = checked_in_from(&lease_dir());
    assert!(vectors.len() >= 8);
    for (name, doc) in vectors {
        replay_engine(&name, &doc);
    }
}

#[test]
fn every_vector_replays_from_its_json() {
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for (name, doc) in checked_in() {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        match kind.as_str() {
            "engine" => replay_engine(&name, &doc),
            "strategy" => replay_strategy(&name, &doc),
            "policy_error" => {
                let e = Policy::from_json(&doc["policy"].to_string()).expect_err("refused");
                assert_eq!(
                    e.path,
                    doc["error"]["path"].as_str().expect("path"),
                    "{name}"
                );
                assert!(
                    e.to_string()
                        .contains(doc["error"]["rule"].as_str().expect("rule")),
                    "{name}"
                );
            }
            "token" => {
                let got = policy_token(doc["document"].as_str().expect("document"));
                match (got, doc.get("token")) {
                    (Ok(t), Some(want)) => assert_eq!(json!(t), *want, "{name}"),
                    (Err(e), None) => assert_eq!(
                        e.path,
                        doc["error"]["path"].as_str().expect("path"),
                        "{name}"
                    ),
                    (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
                }
            }
            other => panic!("{name}: unknown kind {other}"),
        }
        *kinds.entry(kind).or_default() += 1;
    }
    for kind in ["engine", "strategy", "policy_error", "token"] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} vectors"
        );
    }
}
