//! Group commit: the engine's cost of forming a batch and carrying it through its read,
//! apply and write, per batch and per update, against the same updates written one by one
//! as opaque writes through the lane.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use writelane_core::{
    Action, ApplyResult, Command, Engine, Input, Policy, SubmitOptions, UpdateOptions,
};

const ENTITY: &str = "arn:aws:iam::123456789012:role/app";

/// Submit `n` updates at once and drive them to their end: one read, one apply and one
/// write per `batch.max_changes`.
fn updates(engine: &mut Engine, now: u64, n: usize) {
    for _ in 0..n {
        engine
            .submit_update(ENTITY, now, UpdateOptions::default())
            .unwrap();
    }
    while let Some(action) = engine.poll_action() {
        let input = match action {
            Action::Command(Command::Read { op }) => Input::ReadDone {
                op,
                token: Some("v1".into()),
            },
            Action::Apply(apply) => Input::ApplyDone {
                op: apply.op,
                results: apply
                    .ops
                    .iter()
                    .map(|&op| ApplyResult {
                        op,
                        applied: true,
                        code: None,
                    })
                    .collect(),
            },
            Action::Command(Command::Write { op, .. }) => Input::WriteDone {
                op,
                token: Some("v2".into()),
            },
            Action::Command(Command::Finish { outcome, .. }) => {
                black_box(outcome);
                continue;
            }
            Action::Command(Command::Store { .. }) => unreachable!("local lanes"),
        };
        engine.handle(now, input).unwrap();
    }
}

/// The same `n` changes as opaque writes: each reads (or takes the hand-off) and writes.
fn writes(engine: &mut Engine, now: u64, n: usize) {
    for _ in 0..n {
        engine
            .submit(ENTITY, now, SubmitOptions::default())
            .unwrap();
    }
    while let Some(cmd) = engine.poll_command() {
        let input = match cmd {
            Command::Read { op } => Input::ReadDone {
                op,
                token: Some("v1".into()),
            },
            Command::Write { op, .. } => Input::WriteDone {
                op,
                token: Some("v2".into()),
            },
            Command::Finish { outcome, .. } => {
                black_box(outcome);
                continue;
            }
            Command::Store { .. } => unreachable!("local lanes"),
        };
        engine.handle(now, input).unwrap();
    }
}

fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("group commit");
    for n in [1usize, 8, 64] {
        group.bench_with_input(BenchmarkId::new("updates in one batch", n), &n, |b, &n| {
            let mut engine = Engine::new(Policy::preset("iam").unwrap(), 1);
            let mut now = 0;
            b.iter(|| {
                now += 1;
                updates(&mut engine, now, n);
            });
        });
        group.bench_with_input(
            BenchmarkId::new("opaque writes, one by one", n),
            &n,
            |b, &n| {
                let mut engine = Engine::new(Policy::preset("iam").unwrap(), 1);
                let mut now = 0;
                b.iter(|| {
                    now += 1;
                    writes(&mut engine, now, n);
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
