//! `writelane-batch`: N writers each submit an update (append their own item to one
//! entity's document) through one engine, which batches the updates queued behind the lane
//! holder into one read, one apply and one write (group commit).
//!
//! The server keeps the document of every version. A read returns the version; the
//! simulated host applies the batch's changes to that version's document and sends the
//! result with its write. `successes` counts updates committed (not writes), so writes per
//! success is the IAM write rate a change costs. A committed change missing from the final
//! document counts as a lost update, as does a write that landed on a version it had not
//! read.

use std::collections::BTreeSet;

use writelane_core::{
    Action, ApplyResult, Command, Engine, Failure, Input, OpId, Outcome, Policy, UpdateOptions,
};

use super::{Ev, Model, Reply, RunResult, World, ENTITY};

/// The policy: the `iam` preset, group commit at its defaults (64 changes a write, no
/// linger).
fn batch_policy() -> Policy {
    Policy::preset("iam").expect("preset")
}

/// Run `writers` updates of one entity through one engine.
pub(super) fn run(model: Model, writers: usize, seed: u64, trace: bool) -> RunResult {
    let mut w = World::new(model, seed);
    w.trace = trace;
    let mut engine = Engine::new(batch_policy(), seed.wrapping_mul(1000));
    // The document of each version, version 0 empty.
    let mut docs: Vec<BTreeSet<usize>> = vec![BTreeSet::new()];
    // The document each writer's write in flight carries.
    let mut carried: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); writers];
    // What each leader read, changed by its apply.
    let mut scratch: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); writers];
    let mut read_version: Vec<u64> = vec![0; writers];
    let ops: Vec<OpId> = (0..writers)
        .map(|_| {
            engine
                .submit_update(ENTITY, 0, UpdateOptions::default())
                .expect("valid")
        })
        .collect();
    let writer_of = |op: OpId| ops.iter().position(|&o| o == op).expect("known op");
    let mut committed: Vec<usize> = Vec::new();
    let mut timer_at: Option<u64> = None;
    let mut now = 0u64;
    loop {
        while let Some(action) = engine.poll_action() {
            match action {
                Action::Command(Command::Read { op }) => w.send_read(now, writer_of(op)),
                Action::Apply(apply) => {
                    let leader = writer_of(apply.op);
                    let mut doc = docs[read_version[leader] as usize].clone();
                    let results = apply
                        .ops
                        .iter()
                        .map(|&op| {
                            doc.insert(writer_of(op));
                            ApplyResult {
                                op,
                                applied: true,
                                code: None,
                            }
                        })
                        .collect();
                    scratch[leader] = doc;
                    engine
                        .handle(
                            now,
                            Input::ApplyDone {
                                op: apply.op,
                                results,
                            },
                        )
                        .expect("the simulator follows the contract");
                }
                Action::Command(Command::Write { op, base_token, .. }) => {
                    let writer = writer_of(op);
                    let base = base_token.and_then(|t| t.parse().ok()).unwrap_or(u64::MAX);
                    carried[writer] = scratch[writer].clone();
                    w.send_write(now, writer, base);
                }
                Action::Command(Command::Finish { op, outcome }) => {
                    let ok = matches!(outcome, Outcome::Committed { .. });
                    if ok {
                        committed.push(writer_of(op));
                    }
                    w.done(now, ok);
                }
                Action::Command(Command::Store { .. }) => unreachable!("no shared lanes here"),
            }
        }
        while engine.poll_event().is_some() {}
        let next = engine.poll_timeout();
        if next != timer_at {
            timer_at = next;
            if let Some(at) = next {
                w.at(at, Ev::EngineTimer { engine: 0, at });
            }
        }
        let Some((t, ev)) = w.pop() else {
            break;
        };
        now = t;
        let before = w.server.version;
        let landed_by = match ev {
            Ev::ServerWrite { writer, .. } | Ev::ServerCommit { writer, .. } => Some(writer),
            _ => None,
        };
        let Some(ev) = w.step_server(now, ev) else {
            if w.server.version > before {
                let writer = landed_by.expect("only writes make versions");
                docs.push(carried[writer].clone());
            }
            continue;
        };
        match ev {
            Ev::EngineTimer { at, .. } => {
                if timer_at != Some(at) {
                    continue;
                }
                timer_at = None;
                engine.handle_timeout(now).expect("time moves forward");
            }
            Ev::Client { writer, reply } => {
                let op = ops[writer];
                let input = match reply {
                    Reply::Version(v) => {
                        read_version[writer] = v;
                        Input::ReadDone {
                            op,
                            token: Some(v.to_string()),
                        }
                    }
                    Reply::Written(v) => Input::WriteDone {
                        op,
                        token: Some(v.to_string()),
                    },
                    Reply::Conflict => Input::WriteFailed {
                        op,
                        failure: Failure::code("ConcurrentModification").with_status(409),
                    },
                };
                engine
                    .handle(now, input)
                    .expect("the simulator follows the contract");
            }
            _ => unreachable!("server events are handled by the server"),
        }
    }
    let last = docs.last().expect("version 0 at least");
    let missing = committed.iter().filter(|c| !last.contains(c)).count() as u64;
    let mut r = w.result;
    r.lost_updates += missing;
    // Updates committed, not writes landed: the rate a change costs.
    r.successes = committed.len() as u64;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{compare, run_once};

    #[test]
    fn every_change_lands_and_none_is_lost() {
        for model in [Model::Iam, Model::Brooker] {
            for n in [1, 10, 100, 150] {
                let r = run_once(model, "writelane-batch", n, 3);
                assert_eq!(r.successes, n as u64, "{model:?} N={n}");
                assert_eq!(r.lost_updates, 0, "{model:?} N={n}");
                assert_eq!(r.gave_up, 0, "{model:?} N={n}");
                assert_eq!(r.conflicts, 0, "{model:?} N={n}");
            }
        }
    }

    #[test]
    fn batches_go_far_below_the_serial_limit() {
        for model in [Model::Iam, Model::Brooker] {
            let r = compare(model, 100, 5, 1, &["writelane-batch"]);
            let s = &r.strategies[0];
            assert!(s.writes_per_success <= 0.05, "{model:?}: {s:?}");
            assert!(s.makespan_ratio <= 0.10, "{model:?}: {s:?}");
            let r = compare(model, 10, 5, 1, &["writelane-batch"]);
            let s = &r.strategies[0];
            assert!(s.makespan_ratio <= 0.35, "{model:?}: {s:?}");
        }
    }
}
