//! The group-commit vectors (`tests/vectors-lane/batch/`): several runs on one entity
//! through one lane, updates among them, replayed against a document store in virtual
//! time by a reference driver over the core engine. The format is in
//! `tests/vectors-lane/README.md` ("Group commit").

use std::collections::BTreeMap;

use serde_json::{json, Value};
use writelane_core::{
    Action, ApplyResult, Command, Engine, Failure, Input, OpId, Outcome, Policy, SubmitOptions,
    UpdateOptions,
};

use crate::vectors::Vector;

/// One run of a batch vector.
#[derive(Clone)]
enum Run {
    /// `lane.update` whose change appends an item (idempotent).
    Add(&'static str),
    /// `lane.update` whose change raises an error of the user's with this type name.
    Refuse(&'static str),
    /// `lane.run` whose write replaces the document with these items.
    Write(&'static [&'static str]),
}

struct Scenario {
    name: &'static str,
    description: &'static str,
    policy: Value,
    /// Per run: when it starts, what it is, when it is cancelled.
    runs: Vec<(u64, Run, Option<u64>)>,
    /// Every read and write call takes this long.
    call_ms: u64,
    /// Write call number (0-based) -> the failure it raises.
    write_fails: BTreeMap<usize, (&'static str, u16)>,
    /// A write whose document has more items fails with `LimitExceeded` (409).
    max_items: Option<usize>,
}

/// A user call in flight: when it returns, which op, and what it is.
struct InFlight {
    done_at: u64,
    op: OpId,
    write: bool,
}

fn outcome_json(outcome: &Outcome) -> Value {
    crate::lanevectors::outcome_json(outcome)
}

impl Scenario {
    fn new(name: &'static str, description: &'static str) -> Scenario {
        Scenario {
            name,
            description,
            policy: json!("iam"),
            runs: Vec::new(),
            call_ms: 10,
            write_fails: BTreeMap::new(),
            max_items: None,
        }
    }

    fn run(mut self, at: u64, run: Run) -> Self {
        self.runs.push((at, run, None));
        self
    }

    fn cancel_last_at(mut self, at: u64) -> Self {
        if let Some(last) = self.runs.last_mut() {
            last.2 = Some(at);
        }
        self
    }

    fn finish(self) -> Value {
        let policy = Policy::from_value(&self.policy).expect("vector policies are valid");
        let mut engine = Engine::new(policy, 1);
        let mut clock = 0u64;
        let mut doc: Vec<String> = Vec::new();
        let mut version = 0u64;
        let mut scratch: Vec<String> = Vec::new();
        let mut ops: Vec<Option<OpId>> = vec![None; self.runs.len()];
        let mut outcomes: Vec<Value> = vec![Value::Null; self.runs.len()];
        let mut cancelled = vec![false; self.runs.len()];
        let mut calls = Vec::new();
        let mut writes = 0usize;
        let mut in_flight: Option<InFlight> = None;
        let index = |ops: &[Option<OpId>], op: OpId| {
            ops.iter()
                .position(|&o| o == Some(op))
                .expect("an op of this vector")
        };
        let token = |v: u64| Some(format!("v{v}"));
        loop {
            // Carry out every action the engine has now.
            while let Some(action) = engine.poll_action() {
                match action {
                    Action::Command(Command::Read { op }) => {
                        calls.push(json!({"at": clock, "call": "read", "run": index(&ops, op)}));
                        in_flight = Some(InFlight {
                            done_at: clock + self.call_ms,
                            op,
                            write: false,
                        });
                    }
                    Action::Apply(apply) => {
                        let runs: Vec<usize> = apply.ops.iter().map(|&o| index(&ops, o)).collect();
                        calls.push(json!({"at": clock, "call": "apply", "run": index(&ops, apply.op), "runs": runs}));
                        let results = apply
                            .ops
                            .iter()
                            .map(|&op| match self.runs[index(&ops, op)].1 {
                                Run::Add(item) => {
                                    if !scratch.iter().any(|i| i == item) {
                                        scratch.push(item.to_string());
                                    }
                                    ApplyResult {
                                        op,
                                        applied: true,
                                        code: None,
                                    }
                                }
                                Run::Refuse(code) => ApplyResult {
                                    op,
                                    applied: false,
                                    code: Some(code.to_string()),
                                },
                                Run::Write(_) => unreachable!("opaque writes are never applied"),
                            })
                            .collect();
                        engine
                            .handle(
                                clock,
                                Input::ApplyDone {
                                    op: apply.op,
                                    results,
                                },
                            )
                            .expect("the reference driver follows the contract");
                    }
                    Action::Command(Command::Write {
                        op,
                        attempt,
                        base_token,
                        ..
                    }) => {
                        if let Run::Write(items) = self.runs[index(&ops, op)].1 {
                            scratch = items.iter().map(|s| s.to_string()).collect();
                        }
                        calls.push(json!({"at": clock, "call": "write", "run": index(&ops, op),
                            "attempt": attempt, "base_token": base_token, "document": scratch}));
                        in_flight = Some(InFlight {
                            done_at: clock + self.call_ms,
                            op,
                            write: true,
                        });
                    }
                    Action::Command(Command::Finish { op, outcome }) => {
                        outcomes[index(&ops, op)] = outcome_json(&outcome);
                    }
                    Action::Command(Command::Store { .. }) => unreachable!("no store here"),
                }
            }
            // The next event: a call returning, a run starting or cancelled, a timer.
            let call_at = in_flight.as_ref().map(|f| f.done_at);
            let start_at = self
                .runs
                .iter()
                .zip(&ops)
                .filter(|(_, op)| op.is_none())
                .map(|(r, _)| r.0)
                .min();
            let cancel_at = self
                .runs
                .iter()
                .enumerate()
                .filter(|(i, r)| r.2.is_some() && !cancelled[*i] && outcomes[*i].is_null())
                .filter_map(|(_, r)| r.2)
                .min();
            let timer_at = engine.poll_timeout();
            let Some(next) = [call_at, start_at, cancel_at, timer_at]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            clock = clock.max(next);
            if call_at == Some(next) {
                let call = in_flight.take().expect("a call in flight");
                let input = if call.write {
                    let fail = self.write_fails.get(&writes).copied();
                    writes += 1;
                    let too_big = self.max_items.is_some_and(|m| scratch.len() > m);
                    match fail {
                        Some((code, status)) => Input::WriteFailed {
                            op: call.op,
                            failure: Failure {
                                status: Some(status),
                                ..Failure::code(code)
                            },
                        },
                        None if too_big => Input::WriteFailed {
                            op: call.op,
                            failure: Failure {
                                status: Some(409),
                                ..Failure::code("LimitExceeded")
                            },
                        },
                        None => {
                            doc = scratch.clone();
                            version += 1;
                            Input::WriteDone {
                                op: call.op,
                                token: token(version),
                            }
                        }
                    }
                } else {
                    scratch = doc.clone();
                    Input::ReadDone {
                        op: call.op,
                        token: token(version),
                    }
                };
                // A cancelled run's answer may find it finished: that is no error.
                let _ = engine.handle(clock, input);
            } else if start_at == Some(next) {
                let i = (0..self.runs.len())
                    .find(|&i| ops[i].is_none() && self.runs[i].0 == next)
                    .expect("a run starts now");
                let op = match self.runs[i].1 {
                    Run::Write(_) => engine.submit("role/app", clock, SubmitOptions::default()),
                    _ => engine.submit_update("role/app", clock, UpdateOptions::default()),
                };
                ops[i] = Some(op.expect("valid submissions"));
            } else if cancel_at == Some(next) {
                let i = (0..self.runs.len())
                    .find(|&i| self.runs[i].2 == Some(next) && !cancelled[i])
                    .expect("a run is cancelled now");
                cancelled[i] = true;
                if let Some(op) = ops[i] {
                    // A call of this op in flight is abandoned: its answer is never fed.
                    if in_flight.as_ref().is_some_and(|f| f.op == op) {
                        in_flight = None;
                    }
                    let _ = engine.handle(clock, Input::Cancel { op });
                }
            } else {
                engine
                    .handle_timeout(clock)
                    .expect("time only moves forward");
            }
        }
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|(at, run, cancel)| {
                let mut v = match run {
                    Run::Add(item) => json!({"update": {"add": item}}),
                    Run::Refuse(code) => json!({"update": {"raise": code}}),
                    Run::Write(items) => json!({"write": items}),
                };
                v["at_ms"] = json!(at);
                v["cancel_at_ms"] = json!(cancel);
                v
            })
            .collect();
        let write_fails: BTreeMap<String, Value> = self
            .write_fails
            .iter()
            .map(|(k, (code, status))| (k.to_string(), json!({"code": code, "status": status})))
            .collect();
        json!({
            "name": self.name,
            "description": self.description,
            "kind": "batch",
            "policy": self.policy,
            "seed": 1,
            "entity": "role/app",
            "call_ms": self.call_ms,
            "max_items": self.max_items,
            "write_fails": write_fails,
            "runs": runs,
            "expect": {
                "calls": calls,
                "outcomes": outcomes,
                "document": doc,
                "end_ms": clock,
            },
        })
    }
}

/// The group-commit vectors.
pub fn batch() -> Vec<Vector> {
    use Run::*;
    let docs = vec![
        Scenario::new(
            "batch-of-three",
            "Three updates queued while the first reads ride in one write: one read, one apply of all three, one write; all three commit with its token.",
        )
        .run(0, Add("a"))
        .run(1, Add("b"))
        .run(2, Add("c"))
        .finish(),
        Scenario::new(
            "member-refuses",
            "The second change raises: it gives up (fatal, with the error's type as the code) and the other two are written.",
        )
        .run(0, Add("a"))
        .run(1, Refuse("ValueError"))
        .run(2, Add("c"))
        .finish(),
        {
            let mut s = Scenario::new(
                "fatal-write-bisected",
                "A write of five changes is refused as too large (LimitExceeded, fatal): the batch is split in halves and retried until only the change that breaks it fails.",
            )
            .run(0, Add("a"))
            .run(1, Add("b"))
            .run(2, Add("c"))
            .run(3, Add("d"))
            .run(4, Add("e"));
            s.max_items = Some(4);
            s.finish()
        },
        Scenario::new(
            "member-cancelled-while-waiting",
            "The second update is cancelled while it waits in the queue: it is not applied, the others are.",
        )
        .run(0, Add("a"))
        .run(1, Add("b"))
        .cancel_last_at(5)
        .run(2, Add("c"))
        .finish(),
        {
            let mut s = Scenario::new(
                "conflict-on-batch-write",
                "The batch's write conflicts: the whole batch backs off, re-reads, re-applies and writes again; every update commits on attempt 2.",
            )
            .run(0, Add("a"))
            .run(1, Add("b"))
            .run(2, Add("c"));
            s.write_fails.insert(0, ("ConcurrentModification", 409));
            s.finish()
        },
        Scenario::new(
            "mixed-writes-and-updates",
            "An opaque write queued between updates is never batched and nothing passes it: [a] is written, then the write, then [b, c] on top of it.",
        )
        .run(0, Add("a"))
        .run(1, Write(&["w"]))
        .run(2, Add("b"))
        .run(3, Add("c"))
        .finish(),
    ];
    docs.into_iter()
        .enumerate()
        .map(|(i, json)| Vector {
            stem: format!("{:03}-{}", i + 1, json["name"].as_str().unwrap_or("vector")),
            json,
        })
        .collect()
}

/// Write the group-commit vectors to `dir`.
pub fn write_batch(dir: &std::path::Path) -> std::io::Result<usize> {
    crate::vectors::write_set(dir, &batch())
}
