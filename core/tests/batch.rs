//! Group commit: updates queued behind the lane holder ride in its write.
//!
//! A small host keeps a document (a list of items) with a version token, carries out every
//! action the engine asks for, and applies each update's change on `Apply`.

use std::collections::{BTreeMap, HashMap};

use writelane_core::{
    Action, ApplyResult, Command, Engine, Failure, GiveUpReason, Input, OpId, Outcome, Policy,
    SubmitOptions, UpdateOptions, UsageError,
};

/// What an update's change does to the document.
#[derive(Clone)]
enum Change {
    /// Append an item (idempotent: present already, nothing changes).
    Add(&'static str),
    /// The change function refuses with this code.
    Refuse(&'static str),
}

struct Host {
    engine: Engine,
    now: u64,
    /// The stored document and its version.
    doc: Vec<String>,
    version: u64,
    /// What the last read returned, changed by the last apply: the next write's document.
    scratch: Vec<String>,
    changes: HashMap<OpId, Change>,
    /// Write failures to return, first first.
    write_failures: Vec<Failure>,
    /// The write is refused as fatal (`LimitExceeded`) while the document has more items.
    max_items: usize,
    outcomes: BTreeMap<OpId, Outcome>,
    writes: u32,
    applies: Vec<Vec<OpId>>,
    /// What each opaque write writes.
    opaque: HashMap<OpId, Vec<String>>,
}

fn token(version: u64) -> Option<String> {
    Some(format!("v{version}"))
}

impl Host {
    fn new(policy: &str) -> Host {
        Host {
            engine: Engine::new(Policy::from_json(policy).unwrap(), 7),
            now: 0,
            doc: Vec::new(),
            version: 0,
            scratch: Vec::new(),
            changes: HashMap::new(),
            write_failures: Vec::new(),
            max_items: usize::MAX,
            outcomes: BTreeMap::new(),
            writes: 0,
            applies: Vec::new(),
            opaque: HashMap::new(),
        }
    }

    fn update(&mut self, change: Change) -> OpId {
        let op = self
            .engine
            .submit_update("role/a", self.now, UpdateOptions::default())
            .unwrap();
        self.changes.insert(op, change);
        op
    }

    /// One action, carried out; `false` when there was none.
    fn step(&mut self) -> bool {
        let Some(action) = self.engine.poll_action() else {
            return false;
        };
        let input = match action {
            Action::Apply(apply) => {
                self.applies.push(apply.ops.clone());
                let results = apply
                    .ops
                    .iter()
                    .map(|&op| match &self.changes[&op] {
                        Change::Add(item) => {
                            if !self.scratch.iter().any(|i| i == item) {
                                self.scratch.push(item.to_string());
                            }
                            ApplyResult {
                                op,
                                applied: true,
                                code: None,
                            }
                        }
                        Change::Refuse(code) => ApplyResult {
                            op,
                            applied: false,
                            code: Some(code.to_string()),
                        },
                    })
                    .collect();
                Input::ApplyDone {
                    op: apply.op,
                    results,
                }
            }
            Action::Command(Command::Read { op }) => {
                self.scratch = self.doc.clone();
                Input::ReadDone {
                    op,
                    token: token(self.version),
                }
            }
            Action::Command(Command::Write { op, .. }) => {
                self.writes += 1;
                if let Some(doc) = self.opaque.get(&op) {
                    self.scratch = doc.clone();
                }
                if !self.write_failures.is_empty() {
                    let failure = self.write_failures.remove(0);
                    Input::WriteFailed { op, failure }
                } else if self.scratch.len() > self.max_items {
                    Input::WriteFailed {
                        op,
                        failure: Failure::code("LimitExceeded"),
                    }
                } else {
                    self.doc = self.scratch.clone();
                    self.version += 1;
                    Input::WriteDone {
                        op,
                        token: token(self.version),
                    }
                }
            }
            Action::Command(Command::Finish { op, outcome }) => {
                self.outcomes.insert(op, outcome);
                return true;
            }
            Action::Command(Command::Store { .. }) => panic!("no shared lanes here"),
        };
        self.engine.handle(self.now, input).unwrap();
        true
    }

    /// Carry out everything, firing timers, until nothing is left.
    fn run(&mut self) {
        loop {
            while self.step() {}
            match self.engine.poll_timeout() {
                Some(at) => {
                    self.now = self.now.max(at);
                    self.engine.handle_timeout(self.now).unwrap();
                }
                None => return,
            }
        }
    }

    fn committed(&self, op: OpId) -> (Option<String>, u32) {
        match &self.outcomes[&op] {
            Outcome::Committed { token, attempts } => (token.clone(), *attempts),
            other => panic!("{op} did not commit: {other:?}"),
        }
    }

    fn gave_up(&self, op: OpId) -> &GiveUpReason {
        match &self.outcomes[&op] {
            Outcome::GaveUp { reason, .. } => reason,
            other => panic!("{op} did not give up: {other:?}"),
        }
    }
}

const POLICY: &str = r#"{"preset": "iam"}"#;

#[test]
fn three_updates_queued_while_the_first_reads_share_one_write() {
    let mut h = Host::new(POLICY);
    let a = h.update(Change::Add("a"));
    let b = h.update(Change::Add("b"));
    let c = h.update(Change::Add("c"));
    h.run();
    assert_eq!(h.writes, 1);
    assert_eq!(h.applies, [vec![a, b, c]]);
    assert_eq!(h.doc, ["a", "b", "c"]);
    for op in [a, b, c] {
        assert_eq!(h.committed(op), (token(1), 1));
    }
    let stats = h.engine.stats();
    assert_eq!(stats.global.committed, 3);
    assert_eq!(stats.global.writes, 1);
    assert_eq!(stats.global.reads, 1);
    assert_eq!(stats.active_ops, 0);
}

#[test]
fn a_hundred_updates_take_two_writes() {
    let mut h = Host::new(POLICY);
    // The first gets the lane and reads at once; the rest queue behind it while it
    // writes, and ride in the next write (max_changes 64: 99 take two more).
    let first = h.update(Change::Add("first"));
    assert!(h.step()); // the first read goes out and returns
    let items: Vec<&'static str> = (0..99)
        .map(|i| &*Box::leak(format!("s{i}").into_boxed_str()))
        .collect();
    let ops: Vec<OpId> = items.iter().map(|i| h.update(Change::Add(i))).collect();
    h.run();
    assert_eq!(h.doc.len(), 100);
    assert_eq!(h.committed(first).0, token(1));
    assert_eq!(h.writes, 3, "one write for the first, two for 99 (64 + 35)");
    assert_eq!(h.committed(ops[0]), h.committed(ops[63]));
    assert_ne!(h.committed(ops[63]), h.committed(ops[64]));
}

#[test]
fn a_refused_change_leaves_the_batch_with_its_own_outcome() {
    let mut h = Host::new(POLICY);
    let a = h.update(Change::Add("a"));
    let b = h.update(Change::Refuse("ValueError"));
    let c = h.update(Change::Add("c"));
    h.run();
    assert_eq!(h.writes, 1);
    assert_eq!(h.doc, ["a", "c"]);
    assert_eq!(h.committed(a), (token(1), 1));
    assert_eq!(h.committed(c), (token(1), 1));
    assert_eq!(
        h.gave_up(b),
        &GiveUpReason::Fatal {
            code: Some("ValueError".into()),
            http_status: None
        }
    );
}

#[test]
fn the_leaders_refused_change_does_not_stop_its_batch() {
    let mut h = Host::new(POLICY);
    let a = h.update(Change::Refuse("KeyError"));
    let b = h.update(Change::Add("b"));
    h.run();
    assert_eq!(h.doc, ["b"]);
    assert!(matches!(h.gave_up(a), GiveUpReason::Fatal { .. }));
    assert_eq!(h.committed(b), (token(1), 1));
}

#[test]
fn a_fatal_write_is_bisected_until_only_the_breaking_change_fails() {
    let mut h = Host::new(POLICY);
    h.max_items = 4;
    let ops: Vec<OpId> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(|i| h.update(Change::Add(i)))
        .collect();
    h.run();
    // [a b c d e] fails; [a b c] commits; [d e] fails; [d] commits; [e] fails alone.
    assert_eq!(h.doc, ["a", "b", "c", "d"]);
    assert_eq!(
        h.applies,
        [
            vec![ops[0], ops[1], ops[2], ops[3], ops[4]],
            vec![ops[0], ops[1], ops[2]],
            vec![ops[3], ops[4]],
            vec![ops[3]],
            vec![ops[4]],
        ]
    );
    assert_eq!(h.writes, 5);
    for &op in &ops[..3] {
        assert_eq!(h.committed(op).0, token(1));
    }
    assert_eq!(h.committed(ops[3]).0, token(2));
    assert_eq!(
        h.gave_up(ops[4]),
        &GiveUpReason::Fatal {
            code: Some("LimitExceeded".into()),
            http_status: None
        }
    );
}

#[test]
fn a_member_cancelled_while_it_waits_is_not_applied() {
    let mut h = Host::new(POLICY);
    let a = h.update(Change::Add("a"));
    let b = h.update(Change::Add("b"));
    let c = h.update(Change::Add("c"));
    h.engine.handle(0, Input::Cancel { op: b }).unwrap();
    h.run();
    assert_eq!(h.gave_up(b), &GiveUpReason::Cancelled);
    assert_eq!(h.applies, [vec![a, c]]);
    assert_eq!(h.doc, ["a", "c"]);
}

#[test]
fn a_member_cancelled_in_the_batch_is_dropped_from_it() {
    let mut h = Host::new(POLICY);
    let a = h.update(Change::Add("a"));
    let b = h.update(Change::Add("b"));
    let c = h.update(Change::Add("c"));
    assert!(h.step()); // read: b and c join
    let Some(Action::Apply(apply)) = h.engine.poll_action() else {
        panic!("an apply")
    };
    assert_eq!(apply.ops, [a, b, c]);
    h.engine.handle(0, Input::Cancel { op: b }).unwrap();
    // The host answers for what it was sent; b's result is ignored.
    let results = apply
        .ops
        .iter()
        .map(|&op| ApplyResult {
            op,
            applied: true,
            code: None,
        })
        .collect();
    h.scratch = vec!["a".into(), "c".into()];
    h.engine
        .handle(0, Input::ApplyDone { op: a, results })
        .unwrap();
    h.run();
    assert_eq!(h.gave_up(b), &GiveUpReason::Cancelled);
    assert_eq!(h.committed(a).0, token(1));
    assert_eq!(h.committed(c).0, token(1));
}

#[test]
fn a_cancelled_leader_hands_its_batch_to_the_next_update() {
    let mut h = Host::new(POLICY);
    let a = h.update(Change::Add("a"));
    let b = h.update(Change::Add("b"));
    let c = h.update(Change::Add("c"));
    assert!(h.step()); // read
    h.engine.handle(0, Input::Cancel { op: a }).unwrap();
    h.run();
    assert_eq!(h.gave_up(a), &GiveUpReason::Cancelled);
    assert_eq!(h.applies.last().unwrap(), &vec![b, c]);
    assert_eq!(h.doc, ["b", "c"]);
    assert_eq!(h.committed(b), h.committed(c));
}

#[test]
fn a_conflict_on_a_batch_write_is_retried_for_the_whole_batch() {
    let mut h = Host::new(POLICY);
    h.write_failures
        .push(Failure::code("ConcurrentModification"));
    let ops: Vec<OpId> = ["a", "b", "c"]
        .into_iter()
        .map(|i| h.update(Change::Add(i)))
        .collect();
    h.run();
    assert_eq!(h.writes, 2);
    assert_eq!(
        h.applies.len(),
        2,
        "re-read and re-applied after the conflict"
    );
    for op in ops {
        assert_eq!(h.committed(op), (token(1), 2));
    }
    assert_eq!(h.engine.stats().global.conflicts, 1);
}

#[test]
fn a_batch_that_runs_out_of_attempts_gives_up_for_every_member() {
    let mut h = Host::new(r#"{"retry": {"conflict": {"max_attempts": 2}}}"#);
    for _ in 0..2 {
        h.write_failures
            .push(Failure::code("ConcurrentModification"));
    }
    let ops: Vec<OpId> = ["a", "b"]
        .into_iter()
        .map(|i| h.update(Change::Add(i)))
        .collect();
    h.run();
    for op in ops {
        assert!(matches!(
            h.gave_up(op),
            GiveUpReason::AttemptsExhausted { .. }
        ));
    }
    assert!(h.doc.is_empty());
}

#[test]
fn an_unknown_outcome_is_read_back_against_the_batch_token() {
    let mut h = Host::new(POLICY);
    let a = h.update(Change::Add("a"));
    let b = h.update(Change::Add("b"));
    assert!(h.step()); // read
    assert!(h.step()); // apply
    let Some(Action::Command(Command::Write { op, .. })) = h.engine.poll_action() else {
        panic!("a write")
    };
    // The write landed, but its reply was lost.
    h.doc = h.scratch.clone();
    h.version += 1;
    let failure = Failure {
        intended_token: token(1),
        ..Failure::unknown_outcome()
    };
    h.engine
        .handle(0, Input::WriteFailed { op, failure })
        .unwrap();
    h.run();
    assert_eq!(h.writes, 0, "no second write");
    assert_eq!(h.committed(a), (token(1), 1));
    assert_eq!(h.committed(b), (token(1), 1));
}

#[test]
fn opaque_writes_are_never_batched_and_nothing_passes_them() {
    let mut h = Host::new(POLICY);
    let a = h.update(Change::Add("a"));
    let w = h
        .engine
        .submit("role/a", 0, SubmitOptions::default())
        .unwrap();
    let b = h.update(Change::Add("b"));
    let c = h.update(Change::Add("c"));
    // The opaque write replaces the document with ["w"].
    h.opaque.insert(w, vec!["w".into()]);
    h.run();
    assert_eq!(h.applies, [vec![a], vec![b, c]]);
    assert_eq!(h.doc, ["w", "b", "c"]);
    assert_eq!(h.committed(w).0, token(2));
    assert_eq!(h.committed(c).0, token(3));
}

#[test]
fn max_changes_bounds_a_batch() {
    let mut h = Host::new(r#"{"batch": {"max_changes": 2}}"#);
    let ops: Vec<OpId> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(|i| h.update(Change::Add(i)))
        .collect();
    h.run();
    assert_eq!(
        h.applies,
        [vec![ops[0], ops[1]], vec![ops[2], ops[3]], vec![ops[4]]]
    );
    assert_eq!(h.writes, 3);
}

#[test]
fn a_linger_lets_later_updates_join_the_first_write() {
    let mut h = Host::new(r#"{"batch": {"linger_ms": 50}}"#);
    let a = h.update(Change::Add("a"));
    assert!(!h.step(), "the first update lingers before it reads");
    h.now = 20;
    let b = h.update(Change::Add("b"));
    h.run();
    assert_eq!(h.applies, [vec![a, b]]);
    assert_eq!(h.writes, 1);
    assert_eq!(h.now, 50);
}

#[test]
fn batch_fields_are_validated_with_their_name() {
    let e = Policy::from_json(r#"{"batch": {"max_changes": 0}}"#).unwrap_err();
    assert_eq!(e.path, "batch.max_changes");
    let e = Policy::from_json(r#"{"batch": {"max_changes": 5000}}"#).unwrap_err();
    assert_eq!(e.path, "batch.max_changes");
    let e = Policy::from_json(r#"{"batch": {"linger": 5}}"#).unwrap_err();
    assert_eq!(e.path, "batch.linger");
    // The default rule prints nothing, so policies print as before batching existed.
    assert!(!Policy::default().to_json().contains("batch"));
    let p = Policy::from_json(r#"{"batch": {"linger_ms": 5}}"#).unwrap();
    assert_eq!(Policy::from_json(&p.to_json()).unwrap(), p);
}

#[test]
fn wrong_apply_answers_are_usage_errors() {
    let mut h = Host::new(POLICY);
    let a = h.update(Change::Add("a"));
    let b = h.update(Change::Add("b"));
    assert!(h.step()); // read
    let ok = |op| ApplyResult {
        op,
        applied: true,
        code: None,
    };
    // Before the apply is polled.
    let early = h.engine.handle(
        0,
        Input::ApplyDone {
            op: a,
            results: vec![ok(a), ok(b)],
        },
    );
    assert!(matches!(early, Err(UsageError::CommandNotDrained { .. })));
    // poll_command leaves the apply for poll_action.
    assert_eq!(h.engine.poll_command(), None);
    assert!(matches!(h.engine.poll_action(), Some(Action::Apply(_))));
    for results in [vec![ok(a)], vec![ok(b), ok(a)], vec![ok(a), ok(b), ok(b)]] {
        let wrong = h.engine.handle(0, Input::ApplyDone { op: a, results });
        assert!(matches!(wrong, Err(UsageError::UnexpectedInput { .. })));
    }
    // To a member, or a read answer in its place.
    let member = h.engine.handle(
        0,
        Input::ApplyDone {
            op: b,
            results: vec![],
        },
    );
    assert!(matches!(member, Err(UsageError::UnexpectedInput { .. })));
    let read = h.engine.handle(0, Input::ReadDone { op: a, token: None });
    assert!(matches!(read, Err(UsageError::UnexpectedInput { .. })));
    let long = ApplyResult {
        op: b,
        applied: false,
        code: Some("x".repeat(10_000)),
    };
    let long = h.engine.handle(
        0,
        Input::ApplyDone {
            op: a,
            results: vec![ok(a), long],
        },
    );
    assert!(matches!(long, Err(UsageError::InvalidCode { .. })));
    // Nothing changed: the right answer is still accepted.
    h.engine
        .handle(
            0,
            Input::ApplyDone {
                op: a,
                results: vec![ok(a), ok(b)],
            },
        )
        .unwrap();
    h.scratch = vec!["a".into(), "b".into()];
    h.run();
    assert_eq!(h.committed(a), h.committed(b));
}

#[test]
fn actions_serialise_as_the_command_or_the_apply() {
    let mut h = Host::new(POLICY);
    let a = h.update(Change::Add("a"));
    let read = h.engine.poll_action().unwrap();
    assert_eq!(
        serde_json::to_string(&read).unwrap(),
        format!(r#"{{"type":"read","op":{}}}"#, a.0)
    );
    h.engine
        .handle(0, Input::ReadDone { op: a, token: None })
        .unwrap();
    let apply = h.engine.poll_action().unwrap();
    let text = serde_json::to_string(&apply).unwrap();
    assert_eq!(
        text,
        format!(r#"{{"type":"apply","op":{0},"ops":[{0}]}}"#, a.0)
    );
    assert_eq!(serde_json::from_str::<Action>(&text).unwrap(), apply);
}

mod random {
    use std::collections::{HashMap, HashSet};

    use proptest::prelude::*;
    use writelane_core::{
        Action, ApplyResult, Command, Engine, Failure, Input, OpId, Policy, SubmitOptions,
        UpdateOptions,
    };

    #[derive(Debug, Clone)]
    enum Step {
        Update(u8),
        Write(u8),
        Advance(u16),
        Timeout,
        /// Answer the pending action of op `n` (mod the live ones); the bits pick how.
        Answer(u8, u8),
        Cancel(u8),
        /// An apply_done with arbitrary results, for any op.
        WrongApply(u8, Vec<(u8, bool)>),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..2).prop_map(Step::Update),
            (0u8..2).prop_map(Step::Update),
            (0u8..2).prop_map(Step::Write),
            (0u16..3000).prop_map(Step::Advance),
            Just(Step::Timeout),
            (any::<u8>(), any::<u8>()).prop_map(|(n, how)| Step::Answer(n, how)),
            (any::<u8>(), any::<u8>()).prop_map(|(n, how)| Step::Answer(n, how)),
            (any::<u8>(), any::<u8>()).prop_map(|(n, how)| Step::Answer(n, how)),
            (1u8..20).prop_map(Step::Cancel),
            (
                1u8..20,
                proptest::collection::vec((1u8..20, any::<bool>()), 0..4)
            )
                .prop_map(|(op, r)| Step::WrongApply(op, r)),
        ]
    }

    const CODES: &[&str] = &["ConcurrentModification", "LimitExceeded", "Throttling", ""];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

        #[test]
        fn random_batches_keep_the_invariants(
            seed in any::<u64>(),
            max in 1u32..5,
            linger in 0u64..2,
            steps in proptest::collection::vec(step(), 1..150),
        ) {
            let policy = Policy::from_json(&format!(
                r#"{{"batch": {{"max_changes": {max}, "linger_ms": {}}}, "spike": {{"threshold": 2, "cooldown_ms": 100}}}}"#,
                linger * 40
            )).unwrap();
            let mut e = Engine::new(policy, seed);
            let mut now = 0u64;
            // Actions out, by op, waiting for an answer.
            let mut pending: HashMap<OpId, Action> = HashMap::new();
            let mut live: HashSet<OpId> = HashSet::new();
            let mut finished: HashSet<OpId> = HashSet::new();
            for s in steps {
                let _ = match s {
                    Step::Update(n) => e.submit_update(&format!("role/{n}"), now, UpdateOptions::default()).map(|op| { live.insert(op); }),
                    Step::Write(n) => e.submit(&format!("role/{n}"), now, SubmitOptions::default()).map(|op| { live.insert(op); }),
                    Step::Advance(ms) => { now += u64::from(ms); Ok(()) }
                    Step::Timeout => e.handle_timeout(now),
                    Step::Cancel(op) => e.handle(now, Input::Cancel { op: OpId(u64::from(op)) }),
                    Step::WrongApply(op, results) => e.handle(now, Input::ApplyDone {
                        op: OpId(u64::from(op)),
                        results: results.into_iter().map(|(o, applied)| ApplyResult { op: OpId(u64::from(o)), applied, code: None }).collect(),
                    }),
                    Step::Answer(n, how) => {
                        let mut keys: Vec<OpId> = pending.keys().copied().collect();
                        keys.sort();
                        if keys.is_empty() { Ok(()) } else {
                            let op = keys[n as usize % keys.len()];
                            let action = pending.remove(&op).unwrap();
                            let code = CODES[(how >> 4) as usize % CODES.len()];
                            let input = match action {
                                Action::Apply(a) => Input::ApplyDone {
                                    op: a.op,
                                    results: a.ops.iter().enumerate().map(|(i, &o)| ApplyResult {
                                        op: o,
                                        applied: (how >> (i % 8)) & 1 == 0 || how < 64,
                                        code: Some("Refused".into()),
                                    }).collect(),
                                },
                                Action::Command(Command::Read { op }) => if how % 5 == 0 {
                                    Input::ReadFailed { op, failure: Failure::code(code) }
                                } else {
                                    Input::ReadDone { op, token: Some(format!("v{}", how % 3)) }
                                },
                                Action::Command(Command::Write { op, .. }) => if how % 3 == 0 {
                                    let mut f = Failure::code(code);
                                    f.outcome_unknown = how % 7 == 0;
                                    Input::WriteFailed { op, failure: f }
                                } else {
                                    Input::WriteDone { op, token: Some(format!("v{}", how % 3)) }
                                },
                                _ => unreachable!("only answered actions are pending"),
                            };
                            e.handle(now, input)
                        }
                    }
                };
                while let Some(action) = e.poll_action() {
                    let op = action.op();
                    match action {
                        Action::Command(Command::Finish { .. }) => {
                            prop_assert!(finished.insert(op), "{op} finished twice");
                            prop_assert!(live.remove(&op));
                            pending.remove(&op);
                        }
                        Action::Apply(ref a) => {
                            prop_assert!(a.ops.len() <= max as usize, "a batch over max_changes");
                            prop_assert!(a.ops.iter().all(|o| live.contains(o)));
                            pending.insert(op, action);
                        }
                        Action::Command(Command::Store { .. }) => prop_assert!(false, "no store"),
                        _ => { pending.insert(op, action); }
                    }
                }
                // One op per entity has an action out (the lane holder, leading its batch).
                let mut per_entity: HashMap<String, u32> = HashMap::new();
                for op in pending.keys() {
                    let entity = e.entity_of(*op).expect("a pending op is live").to_string();
                    *per_entity.entry(entity).or_default() += 1;
                }
                prop_assert!(per_entity.values().all(|&n| n <= 1), "two holders: {pending:?}");
                let stats = e.stats();
                prop_assert_eq!(stats.global.committed + stats.global.gave_up, finished.len() as u64);
                prop_assert_eq!(stats.active_ops, live.len() as u64);
            }
        }
    }
}
