//! The transition table of the module documentation, checked against real engines: every
//! phase is reached by driving an engine as a host would, every input is fed to it, and a
//! cell is accepted exactly when the table lists it, leading to a phase the table names.

use super::*;
use crate::lease::{LeaseRecord, MemoryStore, StoreOp};

/// One row of the transition table.
struct Row {
    phase: &'static str,
    input: &'static str,
    step: &'static str,
    next: &'static [&'static str],
    commands: &'static [&'static str],
}

const fn row(
    phase: &'static str,
    input: &'static str,
    step: &'static str,
    next: &'static [&'static str],
    commands: &'static [&'static str],
) -> Row {
    Row {
        phase,
        input,
        step,
        next,
        commands,
    }
}

const FINISH: &[&str] = &["finishing"];
const FINISH_OR_RELEASE: &[&str] = &["finishing", "leasing (store)"];
const RETRY: &[&str] = &[
    "backoff",
    "reading",
    "writing",
    "leasing (store)",
    "finishing",
];
const RETRY_COMMANDS: &[&str] = &["read", "write", "store", "finish"];

/// The table, row for row as the module documentation shows it.
const TRANSITIONS: &[Row] = &[
    row(
        "queued",
        "timeout",
        "`lane_deadline`: the deadline came in the queue, give up",
        FINISH,
        &["finish"],
    ),
    row("queued", "cancel", "`cancel`: give up", FINISH, &["finish"]),
    row(
        "cooling",
        "timeout",
        "`begin`: acquire the lease (shared lanes), or read, or write",
        &["reading", "writing", "leasing (store)"],
        &["read", "write", "store"],
    ),
    row(
        "cooling",
        "cancel",
        "`cancel`: give up",
        FINISH,
        &["finish"],
    ),
    row(
        "reading",
        "read_done",
        "`read_done`: the expected revision, write on it; another, give up; an update gathers its batch and applies",
        &["writing", "leasing (store)", "finishing", "applying"],
        &["write", "store", "finish", "apply"],
    ),
    row(
        "reading",
        "read_failed",
        "`read_failed`: retry, or give up",
        RETRY,
        RETRY_COMMANDS,
    ),
    row(
        "reading",
        "cancel",
        "`cancel`: give up",
        FINISH_OR_RELEASE,
        &["finish", "store"],
    ),
    row(
        "reading (readback)",
        "read_done",
        "`read_done`: the write landed, commit; it did not, retry",
        &[
            "finishing",
            "leasing (store)",
            "backoff",
            "reading",
            "writing",
        ],
        &["finish", "store", "read", "write"],
    ),
    row(
        "reading (readback)",
        "read_failed",
        "`read_failed`: retry, or give up",
        RETRY,
        RETRY_COMMANDS,
    ),
    row(
        "reading (readback)",
        "cancel",
        "`cancel`: give up",
        FINISH_OR_RELEASE,
        &["finish", "store"],
    ),
    row(
        "writing",
        "write_done",
        "`commit`; a batch's next half reads",
        &["finishing", "leasing (store)", "reading"],
        &["finish", "store", "read"],
    ),
    row(
        "writing",
        "write_failed",
        "`write_failed`: unknown outcome, read back; else retry, or give up",
        &[
            "reading (readback)",
            "backoff",
            "reading",
            "writing",
            "leasing (store)",
            "finishing",
        ],
        RETRY_COMMANDS,
    ),
    row(
        "writing",
        "cancel",
        "`cancel`: give up",
        FINISH_OR_RELEASE,
        &["finish", "store"],
    ),
    row(
        "applying",
        "apply_done",
        "`apply_done`: refused changes give up; write the rest, or the next half reads, or finish",
        &["writing", "leasing (store)", "reading", "finishing"],
        &["write", "store", "read", "finish"],
    ),
    row(
        "applying",
        "cancel",
        "`cancel`: give up, the batch's other updates back to the head of the queue",
        FINISH_OR_RELEASE,
        &["finish", "store"],
    ),
    row(
        "batched",
        "cancel",
        "`cancel`: leave the batch, give up",
        FINISH,
        &["finish"],
    ),
    row(
        "backoff",
        "timeout",
        "`renew_in_backoff`: a renewal falls due first; else `after_backoff`: read or write",
        &["leasing (store)", "reading", "writing"],
        &["store", "read", "write"],
    ),
    row(
        "backoff",
        "cancel",
        "`cancel`: give up",
        FINISH_OR_RELEASE,
        &["finish", "store"],
    ),
    row(
        "leasing (store)",
        "store_reply",
        "`store_replied`: the lease client goes on, or the operation resumes, or gives up \
         (lease lost, store unavailable)",
        &[
            "leasing (store)",
            "leasing (timer)",
            "reading",
            "writing",
            "backoff",
            "finishing",
        ],
        &["store", "read", "write", "finish"],
    ),
    row(
        "leasing (store)",
        "cancel",
        "`cancel`: give up, abandoning the store operation",
        FINISH,
        &["finish"],
    ),
    row(
        "leasing (timer)",
        "timeout",
        "`lease_timer`: poll the record again, or the lock-delay is over",
        &["leasing (store)", "reading", "writing"],
        &["store", "read", "write"],
    ),
    row(
        "leasing (timer)",
        "cancel",
        "`cancel`: give up",
        FINISH,
        &["finish"],
    ),
];

/// Every phase of the table, in the order of the phase table.
const PHASES: &[&str] = &[
    "queued",
    "cooling",
    "reading",
    "reading (readback)",
    "writing",
    "applying",
    "batched",
    "backoff",
    "leasing (store)",
    "leasing (timer)",
    "finishing",
];

/// Every input kind: the seven of [`Input`], and the operation's timer firing.
const INPUTS: &[&str] = &[
    "read_done",
    "read_failed",
    "write_done",
    "write_failed",
    "cancel",
    "store_reply",
    "apply_done",
    "timeout",
];

/// The command a phase carries, if any.
fn command_of(phase: &str) -> Option<&'static str> {
    match phase {
        "reading" | "reading (readback)" => Some("read"),
        "writing" => Some("write"),
        "applying" => Some("apply"),
        "leasing (store)" => Some("store"),
        "finishing" => Some("finish"),
        _ => None,
    }
}

fn render(row: &Row) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "| `{}` | `{}` | {} | {} | {} |",
        row.phase,
        row.input,
        row.step,
        list(row.next),
        list(row.commands)
    )
}

#[test]
fn the_module_documentation_shows_the_table() {
    let source = include_str!("mod.rs");
    let doc: Vec<&str> = source
        .lines()
        .filter_map(|l| l.strip_prefix("//! "))
        .skip_while(|l| !l.starts_with("| phase | input |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let table: Vec<String> = TRANSITIONS.iter().map(render).collect();
    assert_eq!(
        doc, table,
        "the module documentation and TRANSITIONS differ"
    );
}

#[test]
fn the_table_is_consistent() {
    for row in TRANSITIONS {
        assert!(PHASES.contains(&row.phase), "{}", row.phase);
        assert!(INPUTS.contains(&row.input), "{}", row.input);
        for next in row.next {
            assert!(PHASES.contains(next), "{next}");
        }
        // The commands column is what the next phases carry.
        let mut commands: Vec<&str> = row.next.iter().filter_map(|p| command_of(p)).collect();
        commands.dedup();
        let mut listed = row.commands.to_vec();
        commands.sort_unstable();
        commands.dedup();
        listed.sort_unstable();
        assert_eq!(commands, listed, "{} + {}", row.phase, row.input);
        let same = TRANSITIONS
            .iter()
            .filter(|r| (r.phase, r.input) == (row.phase, row.input))
            .count();
        assert_eq!(same, 1, "one row per cell: {} + {}", row.phase, row.input);
    }
    assert!(
        !TRANSITIONS.iter().any(|r| r.phase == "finishing"),
        "finishing accepts nothing"
    );
}

/// A host driving one engine: it polls every command, keeps the last store operation it
/// was given, and answers store operations from a memory store.
struct Host {
    engine: Engine,
    store: MemoryStore,
    last_store: Option<StoreOp>,
}

const LOCAL: &str = r#"{"retry":{"conflict":{"jitter":"none","base_ms":100}}}"#;
const SHARED: &str =
    r#"{"lanes":{"mode":"shared"},"retry":{"conflict":{"jitter":"none","base_ms":100}}}"#;
const ENTITY: &str = "role/app";

impl Host {
    fn new(policy: &str) -> Host {
        let policy = Policy::from_json(policy).unwrap();
        let engine = if policy.lanes.mode == LaneMode::Shared {
            Engine::with_owner(policy, 7, "host:1:me").unwrap()
        } else {
            Engine::new(policy, 7)
        };
        Host {
            engine,
            store: MemoryStore::new(),
            last_store: None,
        }
    }

    fn submit(&mut self, options: SubmitOptions) -> OpId {
        let now = self.engine.now;
        self.engine.submit(ENTITY, now, options).unwrap()
    }

    /// Poll every command; the last store operation is kept to answer.
    fn poll(&mut self) {
        while let Some(cmd) = self.engine.poll_command() {
            if let Command::Store { operation, .. } = cmd {
                self.last_store = Some(operation);
            }
        }
    }

    fn feed(&mut self, input: Input) {
        let now = self.engine.now;
        self.engine.handle(now, input).unwrap();
        self.poll();
    }

    /// Answer the last store operation from the store.
    fn reply(&mut self, op: OpId) {
        let operation = self.last_store.take().expect("a store operation to answer");
        let reply = self.store.apply(operation);
        self.feed(Input::StoreReply { op, reply });
    }

    fn phase(&self, op: OpId) -> &'static str {
        self.engine.ops[&op].phase.name()
    }
}

/// An engine with one operation in `phase`, its command (if any) polled.
fn drive_into(phase: &str) -> (Host, OpId) {
    let conflict = || Failure::code("ConcurrentModification").with_status(409);
    let (host, op) = match phase {
        "queued" => {
            let mut h = Host::new(LOCAL);
            h.submit(SubmitOptions::default());
            let op = h.submit(SubmitOptions {
                deadline_ms: Some(60_000),
                ..SubmitOptions::default()
            });
            h.poll();
            (h, op)
        }
        "cooling" => {
            let spike =
                r#"{"spike":{"enabled":true,"threshold":1,"window_ms":1000,"cooldown_ms":5000}}"#;
            let mut h = Host::new(spike);
            let first = h.submit(SubmitOptions::default());
            let op = h.submit(SubmitOptions::default());
            h.poll();
            h.feed(Input::ReadDone {
                op: first,
                token: Some("v1".into()),
            });
            h.feed(Input::WriteFailed {
                op: first,
                failure: conflict(),
            });
            // The first writer's cancel hands the lane on during the cool-down.
            h.feed(Input::Cancel { op: first });
            (h, op)
        }
        "reading" | "writing" | "reading (readback)" | "backoff" => {
            let mut h = Host::new(LOCAL);
            let op = h.submit(SubmitOptions::default());
            h.poll();
            if phase != "reading" {
                h.feed(Input::ReadDone {
                    op,
                    token: Some("v1".into()),
                });
            }
            if phase == "reading (readback)" {
                h.feed(Input::WriteFailed {
                    op,
                    failure: Failure::unknown_outcome(),
                });
            }
            if phase == "backoff" {
                h.feed(Input::WriteFailed {
                    op,
                    failure: conflict(),
                });
            }
            (h, op)
        }
        "leasing (store)" | "leasing (timer)" => {
            let mut h = Host::new(SHARED);
            if phase == "leasing (timer)" {
                // Another owner holds the lease: the client polls it on a timer.
                let record = LeaseRecord {
                    owner: "host:2:other".into(),
                    epoch: 1,
                    rvn: 5,
                    lease_ms: 10_000,
                    committed_token: None,
                    holder: None,
                    ..Default::default()
                };
                h.store.set(ENTITY, Some(record));
            }
            let op = h.submit(SubmitOptions::default());
            h.poll();
            if phase == "leasing (timer)" {
                h.reply(op);
            }
            (h, op)
        }
        "applying" | "batched" => {
            let mut h = Host::new(LOCAL);
            let now = h.engine.now;
            let leader = h
                .engine
                .submit_update(ENTITY, now, UpdateOptions::default())
                .unwrap();
            let member = h
                .engine
                .submit_update(ENTITY, now, UpdateOptions::default())
                .unwrap();
            h.poll();
            h.feed(Input::ReadDone {
                op: leader,
                token: Some("v1".into()),
            });
            // The apply is drained by poll_action only.
            assert!(matches!(h.engine.poll_action(), Some(Action::Apply(_))));
            (h, if phase == "applying" { leader } else { member })
        }
        "finishing" => {
            let mut h = Host::new(LOCAL);
            let op = h.submit(SubmitOptions::default());
            h.poll();
            h.engine.handle(0, Input::Cancel { op }).unwrap();
            (h, op)
        }
        other => panic!("no way into {other}"),
    };
    assert_eq!(host.phase(op), phase, "driving into {phase}");
    (host, op)
}

/// Feed `input` to an operation in `phase`: whether it was accepted, and the phase after.
fn feed(phase: &str, input: &str) -> Option<&'static str> {
    let (mut h, op) = drive_into(phase);
    let now = h.engine.now;
    let input = match input {
        "timeout" => {
            let at = h.engine.poll_timeout_for(op)?;
            h.engine.handle_timeout(at).unwrap();
            return Some(h.phase(op));
        }
        "read_done" => Input::ReadDone {
            op,
            token: Some("v1".into()),
        },
        "read_failed" => Input::ReadFailed {
            op,
            failure: Failure::code("Throttling"),
        },
        "write_done" => Input::WriteDone {
            op,
            token: Some("v2".into()),
        },
        "write_failed" => Input::WriteFailed {
            op,
            failure: Failure::code("ConcurrentModification").with_status(409),
        },
        "cancel" => Input::Cancel { op },
        "apply_done" => {
            let ops = match &h.engine.ops[&op].phase {
                Phase::Applying { sent: Some(ops) } => ops.clone(),
                _ => Vec::new(),
            };
            let results = ops
                .into_iter()
                .map(|op| ApplyResult {
                    op,
                    applied: true,
                    code: None,
                })
                .collect();
            Input::ApplyDone { op, results }
        }
        "store_reply" => {
            let reply = match h.last_store.take() {
                Some(operation) => h.store.apply(operation),
                None => StoreReply::Lost,
            };
            Input::StoreReply { op, reply }
        }
        other => panic!("unknown input {other}"),
    };
    match h.engine.handle(now, input) {
        Ok(()) => Some(h.phase(op)),
        Err(UsageError::UnexpectedInput { waiting_for, .. }) => {
            let expected = h.engine.ops[&op].phase.waiting_for();
            assert_eq!(waiting_for, expected);
            None
        }
        Err(e) => panic!("{phase} + {e}"),
    }
}

#[test]
fn every_phase_accepts_exactly_the_inputs_of_the_table() {
    for &phase in PHASES {
        for &input in INPUTS {
            let row = TRANSITIONS
                .iter()
                .find(|r| r.phase == phase && r.input == input);
            match (feed(phase, input), row) {
                (None, None) => {}
                (Some(next), Some(row)) => assert!(
                    row.next.contains(&next),
                    "{phase} + {input} led to {next}, not one of {:?}",
                    row.next
                ),
                (Some(next), None) => {
                    panic!("{phase} + {input} was accepted (led to {next}) but is not in the table")
                }
                (None, Some(_)) => panic!("{phase} + {input} is in the table but was refused"),
            }
        }
    }
}

#[test]
fn an_answer_before_its_command_is_polled_is_not_drained() {
    for (phase, input) in [
        ("reading", "read_done"),
        ("writing", "write_done"),
        ("leasing (store)", "store_reply"),
    ] {
        let policy = if phase == "leasing (store)" {
            SHARED
        } else {
            r#"{"tokens":{"validate":false}}"#
        };
        let mut h = Host::new(if phase == "reading" { LOCAL } else { policy });
        let op = h.submit(SubmitOptions::default());
        assert_eq!(h.phase(op), phase);
        let input = match input {
            "read_done" => Input::ReadDone { op, token: None },
            "write_done" => Input::WriteDone { op, token: None },
            _ => Input::StoreReply {
                op,
                reply: StoreReply::Lost,
            },
        };
        let got = h.engine.handle(0, input);
        assert!(
            matches!(got, Err(UsageError::CommandNotDrained { .. })),
            "{phase}: {got:?}"
        );
        // A cancel needs no polled command.
        h.engine.handle(0, Input::Cancel { op }).unwrap();
    }
}
