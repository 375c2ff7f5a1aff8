//! Decision costs: an uncontended write's whole lifecycle, one retry decision, and lane
//! hand-off with short and long queues (the cost per hand-off must not grow with the queue).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use writelane_core::{Command, Engine, Failure, Input, Policy, RetryStrategy, SubmitOptions};

/// Submit one write and drive it to its end, answering reads and writes at once.
fn one_uncontended_write(engine: &mut Engine, now: u64) {
    let op = engine
        .submit(
            "arn:aws:iam::123456789012:role/app",
            now,
            SubmitOptions::default(),
        )
        .unwrap();
    while let Some(cmd) = engine.poll_command() {
        match cmd {
            Command::Read { op } => engine
                .handle(
                    now,
                    Input::ReadDone {
                        op,
                        token: Some("v1".into()),
                    },
                )
                .unwrap(),
            Command::Write { op, .. } => engine
                .handle(
                    now,
                    Input::WriteDone {
                        op,
                        token: Some("v2".into()),
                    },
                )
                .unwrap(),
            Command::Finish { outcome, .. } => {
                black_box(outcome);
            }
            Command::Store { .. } => unreachable!("local lanes"),
        }
    }
    while let Some(ev) = engine.poll_event() {
        black_box(ev);
    }
    black_box(op);
}

fn uncontended_lifecycle(c: &mut Criterion) {
    // With hand-off the committed token is known after the first write, so the engine goes
    // straight to the write; without it every write reads first.
    for (name, policy) in [
        (
            "uncontended write, token handed off: submit, write, committed",
            "{}",
        ),
        (
            "uncontended write with a read: submit, read, write, committed",
            r#"{"tokens":{"handoff":false}}"#,
        ),
    ] {
        let mut engine = Engine::new(Policy::from_json(policy).unwrap(), 1);
        let mut now = 0u64;
        c.bench_function(name, |b| {
            b.iter(|| {
                now += 1;
                one_uncontended_write(&mut engine, now);
            })
        });
    }
}

fn retry_decision(c: &mut Criterion) {
    let mut strategy = RetryStrategy::new(Policy::preset("iam").unwrap(), 1);
    let failure = Failure::code("ConcurrentModification").with_status(409);
    let fresh = strategy.acquire("iam", 0).unwrap();
    c.bench_function("one retry decision (RetryStrategy::refresh)", |b| {
        b.iter(|| {
            let mut token = fresh;
            let plan = strategy
                .refresh(&mut token, black_box(&failure), 0)
                .unwrap();
            // Keep the bucket full so every decision takes the same path.
            strategy.record_success(&token).unwrap();
            black_box(plan)
        })
    });
}

/// An engine with `waiting` writers queued behind a holder whose write is in flight.
fn queued_engine(waiting: usize) -> (Engine, u64) {
    let policy = Policy::from_json(r#"{"deadline_ms":null}"#).unwrap();
    let mut e = Engine::new(policy, 1);
    for _ in 0..=waiting {
        e.submit("role/hot", 0, SubmitOptions::default()).unwrap();
    }
    let Some(Command::Read { op }) = e.poll_command() else {
        unreachable!("the holder reads first")
    };
    e.handle(
        0,
        Input::ReadDone {
            op,
            token: Some("v0".into()),
        },
    )
    .unwrap();
    while e.poll_event().is_some() {}
    let Some(Command::Write { op, .. }) = e.poll_command() else {
        unreachable!("then writes")
    };
    (e, op.0)
}

fn lane_handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("lane hand-off");
    for waiting in [10usize, 1_000, 100_000] {
        // Steady state: each iteration the holder commits, the next writer gets the lane
        // and its write command, and one new writer joins the back of the queue, so the
        // queue length stays `waiting` throughout.
        let (mut e, mut holder) = queued_engine(waiting);
        let mut now = 1;
        group.bench_function(format!("{waiting} writers waiting"), |b| {
            b.iter(|| {
                now += 1;
                let op = writelane_core::OpId(holder);
                e.handle(
                    now,
                    Input::WriteDone {
                        op,
                        token: Some("v1".into()),
                    },
                )
                .unwrap();
                black_box(e.poll_command());
                let Some(Command::Write { op: next, .. }) = e.poll_command() else {
                    unreachable!("the next writer writes on the handed-off token")
                };
                holder = next.0;
                e.submit("role/hot", now, SubmitOptions::default()).unwrap();
                while let Some(ev) = e.poll_event() {
                    black_box(ev);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, uncontended_lifecycle, retry_decision, lane_handoff);
criterion_main!(benches);
