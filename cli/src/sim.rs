//! The contention simulator: N writers each perform one read-modify-write of one entity,
//! all starting together, in deterministic virtual time, against a model of the service.
//!
//! Two models. `iam`: a write holds the entity for a service time and a write arriving
//! while another is in flight fails with `ConcurrentModification`. `brooker`: optimistic
//! concurrency on a version number, the setup of the AWS Architecture Blog post
//! "Exponential Backoff And Jitter" (2015). The uncoordinated strategies follow the post's
//! formulas; `aws-standard` and `writelane` run the real engine.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use writelane_core::lease::{LeaseRecord, MemoryStore, StoreOp, StoreReply};
use writelane_core::{Command, Engine, Failure, Input, OpId, Outcome, Policy, SubmitOptions};

mod batch;
pub mod trail;

/// Which server the writers contend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// Writes hold the entity for a service time; overlapping writes conflict.
    Iam,
    /// Optimistic concurrency on a version number, writes take no service time.
    Brooker,
}

impl Model {
    /// Parse a model name.
    pub fn parse(s: &str) -> Option<Model> {
        match s {
            "iam" => Some(Model::Iam),
            "brooker" => Some(Model::Brooker),
            _ => None,
        }
    }
}

/// Every strategy, in report order.
pub const STRATEGIES: &[&str] = &[
    "immediate",
    "exponential",
    "full-jitter",
    "equal-jitter",
    "decorrelated",
    "aws-standard",
    "writelane",
    "writelane-lease",
    "writelane-solo",
    "writelane-batch",
];

/// Model constants, in milliseconds.
const ONE_WAY_MEAN: f64 = 10.0;
const ONE_WAY_SD: f64 = 2.0;
const SERVICE_MS: u64 = 20;
const SERVICE_SPREAD: u64 = 5;
/// The post's backoff parameters.
const POST_BASE: u64 = 5;
const POST_CAP: u64 = 2000;
/// Uncoordinated writers stop after this many attempts (the post's clients never give up;
/// this bound only keeps a broken strategy from running forever).
const BASELINE_MAX_ATTEMPTS: u32 = 10_000;

const ENTITY: &str = "arn:aws:iam::123456789012:role/app";

/// What one run of one strategy measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    /// Read calls that reached the server.
    pub reads: u64,
    /// Write calls that reached the server.
    pub writes: u64,
    /// Writes refused with a conflict.
    pub conflicts: u64,
    /// Writes that landed.
    pub successes: u64,
    /// Writes that landed on a revision their writer had not read.
    pub lost_updates: u64,
    /// Writers that gave up.
    pub gave_up: u64,
    /// Lease-store operations (writelane-lease only).
    pub store_ops: u64,
    /// Registrations in the lease record's queue that landed (writelane-lease only).
    pub registrations: u64,
    /// Compare-and-swap attempts to register, landed or refused (writelane-lease only).
    pub registration_attempts: u64,
    /// The most later arrivals that got the lease while one registered waiter was queued
    /// (writelane-lease only): 0 when hand-offs are FIFO.
    pub overtaken_max: u64,
    /// When the last writer finished.
    pub makespan_ms: u64,
    /// Completion times of successful writers, sorted.
    #[serde(skip)]
    pub completions: Vec<u64>,
    /// Every call that reached the server, in the order the server handled it; recorded
    /// only by [`run_traced`].
    #[serde(skip)]
    pub calls: Vec<Call>,
}

/// What a call that reached the server did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// A read of the entity.
    Read,
    /// A write that landed.
    Write,
    /// A write refused with `ConcurrentModification`.
    Conflict,
}

/// One call as the server saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Call {
    /// Virtual time at which the call completed at the server: a read or a refused write
    /// on arrival, a landed write when it commits.
    pub at_ms: u64,
    /// The writer that made it, `0..writers`.
    pub writer: usize,
    /// What it did.
    pub kind: CallKind,
    /// For a write, the version it was based on, when the writer had one.
    pub base: Option<u64>,
    /// The server's version after the call: the version a read saw, the version a landed
    /// write made, the version a refused write met.
    pub version: u64,
}

/// A strategy's results averaged over runs.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The strategy.
    pub strategy: String,
    /// Mean reads per run.
    pub reads: f64,
    /// Mean writes per run.
    pub writes: f64,
    /// Mean conflicts per run.
    pub conflicts: f64,
    /// Server calls (reads + writes) per successful write.
    pub calls_per_success: f64,
    /// Writes per successful write.
    pub writes_per_success: f64,
    /// Mean makespan.
    pub makespan_ms: f64,
    /// Completion-time percentiles over all runs' successful writers.
    pub p50_ms: u64,
    /// 95th percentile.
    pub p95_ms: u64,
    /// 99th percentile.
    pub p99_ms: u64,
    /// Mean lost updates per run.
    pub lost_updates: f64,
    /// Mean gave-ups per run.
    pub gave_up: f64,
    /// Lease-store operations per successful write (writelane-lease only).
    pub store_ops_per_success: f64,
    /// Compare-and-swap attempts per registration in the queue (writelane-lease only).
    pub attempts_per_registration: f64,
    /// The most later arrivals that overtook one registered waiter, over all runs
    /// (writelane-lease only).
    pub overtaken_max: u64,
    /// Makespan over the fastest possible schedule.
    pub makespan_ratio: f64,
}

/// One comparison: model, N, and every strategy.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The model.
    pub model: Model,
    /// Writers.
    pub writers: u32,
    /// Runs averaged.
    pub runs: u32,
    /// First seed; run r uses seed + r.
    pub seed: u64,
    /// The fewest writes that can do the job: N.
    pub min_writes: u32,
    /// The fastest possible makespan for the model.
    pub fastest_makespan_ms: u64,
    /// Per strategy.
    pub strategies: Vec<Summary>,
}

/// The fastest possible makespan: one write at a time back to back, each a round trip
/// (plus the service time in the iam model); `brooker` adds the one read the first
/// writer needs.
pub fn fastest_makespan(model: Model, writers: u32) -> u64 {
    let rtt = (2.0 * ONE_WAY_MEAN) as u64;
    match model {
        Model::Iam => writers as u64 * (SERVICE_MS + rtt),
        Model::Brooker => writers as u64 * rtt + rtt,
    }
}

struct Net {
    rng: ChaCha8Rng,
}

impl Net {
    fn unit(&mut self) -> f64 {
        // 53 random bits to a float in [0, 1).
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// |Normal(10 ms, sd 2 ms)|, rounded to whole milliseconds (Box-Muller).
    fn one_way(&mut self) -> u64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (ONE_WAY_MEAN + ONE_WAY_SD * z).abs().round() as u64
    }

    fn uniform(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.rng.next_u64() % (hi - lo + 1)
    }

    fn service(&mut self) -> u64 {
        self.uniform(SERVICE_MS - SERVICE_SPREAD, SERVICE_MS + SERVICE_SPREAD)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reply {
    Version(u64),
    Written(u64),
    Conflict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// A read reaches the server.
    ServerRead { writer: usize },
    /// A write based on `base` reaches the server.
    ServerWrite { writer: usize, base: u64 },
    /// An in-flight write commits (iam model).
    ServerCommit { writer: usize, base: u64 },
    /// A reply reaches the writer.
    Client { writer: usize, reply: Reply },
    /// A backoff ends (uncoordinated writers).
    Wake { writer: usize },
    /// An engine's timeout (engine-driven writers).
    EngineTimer { engine: usize, at: u64 },
    /// A lease-store operation (an index into the run's operation list) reaches the store.
    StoreArrive { machine: usize, op: usize },
    /// The store's reply (an index into the run's reply list) reaches the machine.
    StoreReturn { machine: usize, reply: usize },
}

struct Server {
    model: Model,
    version: u64,
    busy_until: u64,
}

struct World {
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    net: Net,
    server: Server,
    result: RunResult,
    /// Whether to record every call in `result.calls`.
    trace: bool,
}

impl World {
    fn new(model: Model, seed: u64) -> World {
        World {
            queue: BinaryHeap::new(),
            seq: 0,
            net: Net {
                rng: ChaCha8Rng::seed_from_u64(seed),
            },
            server: Server {
                model,
                version: 0,
                busy_until: 0,
            },
            result: RunResult::default(),
            trace: false,
        }
    }

    /// Records a call after the server handled it; `base` is the version a write was
    /// based on (`u64::MAX` when the writer had none).
    fn record(&mut self, at_ms: u64, writer: usize, kind: CallKind, base: Option<u64>) {
        if self.trace {
            self.result.calls.push(Call {
                at_ms,
                writer,
                kind,
                base: base.filter(|b| *b != u64::MAX),
                version: self.server.version,
            });
        }
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, ev)));
    }

    fn send_read(&mut self, now: u64, writer: usize) {
        let d = self.net.one_way();
        self.at(now + d, Ev::ServerRead { writer });
    }

    fn send_write(&mut self, now: u64, writer: usize, base: u64) {
        let d = self.net.one_way();
        self.at(now + d, Ev::ServerWrite { writer, base });
    }

    fn reply(&mut self, now: u64, writer: usize, reply: Reply) {
        let d = self.net.one_way();
        self.at(now + d, Ev::Client { writer, reply });
    }

    /// Server-side handling; returns a client-side event for the driver, if any.
    fn step_server(&mut self, now: u64, ev: Ev) -> Option<Ev> {
        match ev {
            Ev::ServerRead { writer } => {
                self.result.reads += 1;
                self.record(now, writer, CallKind::Read, None);
                let v = self.server.version;
                self.reply(now, writer, Reply::Version(v));
                None
            }
            Ev::ServerWrite { writer, base } => {
                self.result.writes += 1;
                match self.server.model {
                    Model::Brooker => {
                        if base == self.server.version {
                            self.server.version += 1;
                            self.result.successes += 1;
                            self.record(now, writer, CallKind::Write, Some(base));
                            let v = self.server.version;
                            self.reply(now, writer, Reply::Written(v));
                        } else {
                            self.result.conflicts += 1;
                            self.record(now, writer, CallKind::Conflict, Some(base));
                            self.reply(now, writer, Reply::Conflict);
                        }
                    }
                    Model::Iam => {
                        if now < self.server.busy_until {
                            self.result.conflicts += 1;
                            self.record(now, writer, CallKind::Conflict, Some(base));
                            self.reply(now, writer, Reply::Conflict);
                        } else {
                            let svc = self.net.service();
                            self.server.busy_until = now + svc;
                            self.at(now + svc, Ev::ServerCommit { writer, base });
                        }
                    }
                }
                None
            }
            Ev::ServerCommit { writer, base } => {
                if base != self.server.version {
                    self.result.lost_updates += 1;
                }
                self.server.version += 1;
                self.result.successes += 1;
                self.record(now, writer, CallKind::Write, Some(base));
                let v = self.server.version;
                self.reply(now, writer, Reply::Written(v));
                None
            }
            other => Some(other),
        }
    }

    fn pop(&mut self) -> Option<(u64, Ev)> {
        self.queue.pop().map(|Reverse((t, _, ev))| (t, ev))
    }

    fn done(&mut self, now: u64, committed: bool) {
        if committed {
            self.result.completions.push(now);
        } else {
            self.result.gave_up += 1;
        }
        self.result.makespan_ms = self.result.makespan_ms.max(now);
    }
}

/// The post's backoff before retry number `attempt` (1 for the first retry).
fn post_delay(strategy: &str, attempt: u32, previous: u64, rng: &mut Net) -> u64 {
    let exp = POST_BASE
        .saturating_mul(1u64 << attempt.min(40))
        .min(POST_CAP);
    match strategy {
        "immediate" => 0,
        "exponential" => exp,
        "full-jitter" => rng.uniform(0, exp),
        "equal-jitter" => exp / 2 + rng.uniform(0, exp / 2),
        "decorrelated" => rng
            .uniform(POST_BASE, previous.saturating_mul(3).max(POST_BASE))
            .min(POST_CAP),
        other => unreachable!("not an uncoordinated strategy: {other}"),
    }
}

fn run_uncoordinated(
    model: Model,
    strategy: &str,
    writers: usize,
    seed: u64,
    trace: bool,
) -> RunResult {
    let mut w = World::new(model, seed);
    w.trace = trace;
    let mut attempts = vec![0u32; writers];
    let mut sleep = vec![POST_BASE; writers];
    for i in 0..writers {
        w.send_read(0, i);
    }
    while let Some((now, ev)) = w.pop() {
        let Some(ev) = w.step_server(now, ev) else {
            continue;
        };
        match ev {
            Ev::Client { writer, reply } => match reply {
                Reply::Version(v) => w.send_write(now, writer, v),
                Reply::Written(_) => w.done(now, true),
                Reply::Conflict => {
                    attempts[writer] += 1;
                    if attempts[writer] >= BASELINE_MAX_ATTEMPTS {
                        w.done(now, false);
                        continue;
                    }
                    let d = post_delay(strategy, attempts[writer], sleep[writer], &mut w.net);
                    sleep[writer] = d;
                    w.at(now + d, Ev::Wake { writer });
                }
            },
            Ev::Wake { writer } => w.send_read(now, writer),
            _ => unreachable!("server events are handled by the server"),
        }
    }
    w.result
}

/// Engines drive the writers: `shared` puts every writer on one engine (writelane's
/// lanes); otherwise each writer has its own (a separate process per writer).
fn run_engine(
    model: Model,
    policy: &Policy,
    shared: bool,
    writers: usize,
    seed: u64,
    trace: bool,
) -> RunResult {
    let mut w = World::new(model, seed);
    w.trace = trace;
    let engine_count = if shared { 1 } else { writers };
    let mut engines: Vec<Engine> = (0..engine_count)
        .map(|i| {
            Engine::new(
                policy.clone(),
                seed.wrapping_mul(1000).wrapping_add(i as u64),
            )
        })
        .collect();
    let mut timer_at: Vec<Option<u64>> = vec![None; engine_count];
    // op of each writer, and writer of each (engine, op).
    let mut op_of: Vec<Option<OpId>> = vec![None; writers];
    let engine_of = |writer: usize| if shared { 0 } else { writer };
    let writer_of = |engine: usize, op: OpId, op_of: &[Option<OpId>]| -> usize {
        if shared {
            op_of.iter().position(|o| *o == Some(op)).expect("known op")
        } else {
            engine
        }
    };
    let validate = policy.tokens.validate;
    if validate {
        for (i, slot) in op_of.iter_mut().enumerate() {
            let e = engine_of(i);
            *slot = Some(
                engines[e]
                    .submit(ENTITY, 0, SubmitOptions::default())
                    .expect("valid"),
            );
        }
    } else {
        // Without validation the writer reads for itself, then submits its write.
        for i in 0..writers {
            w.send_read(0, i);
        }
    }
    let drain = |w: &mut World,
                 engines: &mut [Engine],
                 timer_at: &mut [Option<u64>],
                 e: usize,
                 now: u64,
                 op_of: &[Option<OpId>]| {
        while let Some(cmd) = engines[e].poll_command() {
            let writer = writer_of(e, cmd.op(), op_of);
            match cmd {
                Command::Read { .. } => w.send_read(now, writer),
                Command::Write { base_token, .. } => {
                    let base = base_token.and_then(|t| t.parse().ok()).unwrap_or(u64::MAX);
                    w.send_write(now, writer, base);
                }
                Command::Finish { outcome, .. } => {
                    w.done(now, matches!(outcome, Outcome::Committed { .. }));
                }
                Command::Store { .. } => unreachable!("these strategies use no shared lanes"),
            }
        }
        while engines[e].poll_event().is_some() {}
        let next = engines[e].poll_timeout();
        if next != timer_at[e] {
            timer_at[e] = next;
            if let Some(at) = next {
                w.at(at, Ev::EngineTimer { engine: e, at });
            }
        }
    };
    for e in 0..engine_count {
        drain(&mut w, &mut engines, &mut timer_at, e, 0, &op_of);
    }
    while let Some((now, ev)) = w.pop() {
        let Some(ev) = w.step_server(now, ev) else {
            continue;
        };
        let e = match ev {
            Ev::EngineTimer { engine, at } => {
                if timer_at[engine] != Some(at) {
                    continue;
                }
                timer_at[engine] = None;
                engines[engine]
                    .handle_timeout(now)
                    .expect("time moves forward");
                engine
            }
            Ev::Client { writer, reply } => {
                let e = engine_of(writer);
                let input = match (reply, op_of[writer]) {
                    (Reply::Version(v), None) => {
                        // A self-reading writer submits its write based on what it read.
                        let opts = SubmitOptions {
                            expected: Some(v.to_string()),
                            deadline_ms: None,
                            holder: None,
                            no_read: false,
                        };
                        op_of[writer] = Some(engines[e].submit(ENTITY, now, opts).expect("valid"));
                        None
                    }
                    (Reply::Version(v), Some(op)) => Some(Input::ReadDone {
                        op,
                        token: Some(v.to_string()),
                    }),
                    (Reply::Written(v), Some(op)) => Some(Input::WriteDone {
                        op,
                        token: Some(v.to_string()),
                    }),
                    (Reply::Conflict, Some(op)) => Some(Input::WriteFailed {
                        op,
                        failure: Failure::code("ConcurrentModification").with_status(409),
                    }),
                    (_, None) => unreachable!("only reads precede a submit"),
                };
                if let Some(input) = input {
                    engines[e]
                        .handle(now, input)
                        .expect("the simulator follows the contract");
                }
                e
            }
            _ => unreachable!("server events are handled by the server"),
        };
        drain(&mut w, &mut engines, &mut timer_at, e, now, &op_of);
    }
    w.result
}

/// The policy of the simulated machines: the `iam` preset with shared lanes and a short
/// lease poll, so hand-offs between machines are quick.
fn lease_policy() -> Policy {
    Policy::from_json(
        r#"{"preset":"iam","lanes":{"mode":"shared"},
            "lease":{"lease_ms":10000,"renew_ms":3000,"lock_delay_ms":1000,"poll_ms":20,
                     "max_write_ms":200}}"#,
    )
    .expect("a valid policy")
}

/// Writers on N machines: each has its own engine with shared lanes; they share a
/// simulated lease store with network latency. The committed token travels in the lease
/// record, so the next holder on any machine writes without reading.
/// Who registered in the lease record's queue in which order, and how often a registered
/// waiter saw a later arrival get the lease first.
#[derive(Default)]
struct Fairness {
    /// Owners in the order their tickets first appeared.
    registered: Vec<String>,
    /// Later arrivals that got the lease while each owner was queued.
    overtaken: std::collections::BTreeMap<String, u64>,
}

impl Fairness {
    /// A write of the record landed: `before` became `after`.
    fn landed(
        &mut self,
        result: &mut RunResult,
        before: Option<&LeaseRecord>,
        after: Option<&LeaseRecord>,
    ) {
        let Some(after) = after else { return };
        for t in &after.queue {
            if !self.registered.contains(&t.owner) {
                self.registered.push(t.owner.clone());
            }
        }
        let Some(before) = before else { return };
        let new_holding =
            !after.owner.is_empty() && (after.owner != before.owner || after.epoch > before.epoch);
        if !new_holding {
            return;
        }
        let place = |o: &str| self.registered.iter().position(|r| r == o);
        let taker = place(&after.owner).unwrap_or(usize::MAX);
        for waiter in &before.queue {
            if waiter.owner != after.owner && place(&waiter.owner).is_some_and(|p| p < taker) {
                let n = self.overtaken.entry(waiter.owner.clone()).or_default();
                *n += 1;
                result.overtaken_max = result.overtaken_max.max(*n);
            }
        }
    }
}

fn run_lease(model: Model, writers: usize, seed: u64, trace: bool) -> RunResult {
    let mut w = World::new(model, seed);
    w.trace = trace;
    let policy = lease_policy();
    let mut engines: Vec<Engine> = (0..writers)
        .map(|i| {
            let s = seed.wrapping_mul(1000).wrapping_add(i as u64);
            Engine::with_owner(policy.clone(), s, &format!("machine-{i}")).expect("valid owner")
        })
        .collect();
    let mut ops: Vec<Option<OpId>> = vec![None; writers];
    let mut timers: Vec<Option<u64>> = vec![None; writers];
    let mut store = MemoryStore::new();
    let mut in_flight: Vec<Option<StoreOp>> = Vec::new();
    let mut replies: Vec<Option<StoreReply>> = Vec::new();
    let mut fairness = Fairness::default();

    let drain = |w: &mut World,
                 engine: &mut Engine,
                 timer: &mut Option<u64>,
                 in_flight: &mut Vec<Option<StoreOp>>,
                 m: usize,
                 now: u64| {
        while let Some(cmd) = engine.poll_command() {
            match cmd {
                Command::Read { .. } => w.send_read(now, m),
                Command::Write { base_token, .. } => {
                    let base = base_token.and_then(|t| t.parse().ok()).unwrap_or(u64::MAX);
                    w.send_write(now, m, base);
                }
                Command::Store { operation, .. } => {
                    w.result.store_ops += 1;
                    in_flight.push(Some(operation));
                    let d = w.net.one_way();
                    w.at(
                        now + d,
                        Ev::StoreArrive {
                            machine: m,
                            op: in_flight.len() - 1,
                        },
                    );
                }
                Command::Finish { outcome, .. } => {
                    w.done(now, matches!(outcome, Outcome::Committed { .. }));
                }
            }
        }
        while engine.poll_event().is_some() {}
        let next = engine.poll_timeout();
        if next != *timer {
            *timer = next;
            if let Some(at) = next {
                w.at(at, Ev::EngineTimer { engine: m, at });
            }
        }
    };
    for m in 0..writers {
        ops[m] = Some(
            engines[m]
                .submit(ENTITY, 0, SubmitOptions::default())
                .expect("valid"),
        );
        drain(
            &mut w,
            &mut engines[m],
            &mut timers[m],
            &mut in_flight,
            m,
            0,
        );
    }
    while let Some((now, ev)) = w.pop() {
        let Some(ev) = w.step_server(now, ev) else {
            continue;
        };
        let m = match ev {
            Ev::StoreArrive { machine, op } => {
                let op = in_flight[op].take().expect("each operation arrives once");
                let before = store.record(ENTITY).cloned();
                let me = format!("machine-{machine}");
                let registering = matches!(&op, StoreOp::CompareAndSwap { record, .. }
                    if record.queue.iter().any(|t| t.owner == me)
                        && before.as_ref().is_some_and(|b| b.owner != me
                            && !b.queue.iter().any(|t| t.owner == me)));
                let reply = store.apply(op);
                if reply == StoreReply::Done {
                    fairness.landed(&mut w.result, before.as_ref(), store.record(ENTITY));
                }
                if registering {
                    w.result.registration_attempts += 1;
                    w.result.registrations += u64::from(reply == StoreReply::Done);
                }
                replies.push(Some(reply));
                let d = w.net.one_way();
                let reply = replies.len() - 1;
                w.at(now + d, Ev::StoreReturn { machine, reply });
                continue;
            }
            Ev::StoreReturn { machine, reply } => {
                let reply = replies[reply].take().expect("each reply returns once");
                let op = ops[machine].expect("a live op");
                engines[machine]
                    .handle(now, Input::StoreReply { op, reply })
                    .expect("the simulator follows the contract");
                machine
            }
            Ev::EngineTimer { engine, at } => {
                if timers[engine] != Some(at) {
                    continue;
                }
                timers[engine] = None;
                engines[engine]
                    .handle_timeout(now)
                    .expect("time moves forward");
                engine
            }
            Ev::Client { writer, reply } => {
                let op = ops[writer].expect("a reply answers a live op");
                let input = match reply {
                    Reply::Version(v) => Input::ReadDone {
                        op,
                        token: Some(v.to_string()),
                    },
                    Reply::Written(v) => Input::WriteDone {
                        op,
                        token: Some(v.to_string()),
                    },
                    Reply::Conflict => Input::WriteFailed {
                        op,
                        failure: Failure::code("ConcurrentModification").with_status(409),
                    },
                };
                engines[writer]
                    .handle(now, input)
                    .expect("the simulator follows the contract");
                writer
            }
            _ => unreachable!("server events are handled by the server"),
        };
        drain(
            &mut w,
            &mut engines[m],
            &mut timers[m],
            &mut in_flight,
            m,
            now,
        );
    }
    w.result
}

fn sim_policy(name: &str) -> Policy {
    match name {
        // The SDK's standard mode: replays the same request, no re-read, 3 attempts.
        "aws-standard" => Policy::preset("aws-standard").expect("preset"),
        // Writers with nothing between them: the iam preset with sawtooth pacing for
        // conflicts. Sawtooth windows fall back to the base every phase, so the same span of
        // time takes more attempts than with doubling windows.
        "writelane-solo" => Policy::from_json(
            r#"{"preset":"iam","retry":{"conflict":{"jitter":"sawtooth","max_attempts":40}}}"#,
        )
        .expect("a valid policy"),
        // The default preset, as users get it.
        _ => Policy::preset("iam").expect("preset"),
    }
}

/// Run one strategy once.
pub fn run_once(model: Model, strategy: &str, writers: u32, seed: u64) -> RunResult {
    run(model, strategy, writers, seed, false)
}

/// Run one strategy once and record every call the server handled in
/// [`RunResult::calls`] (for `simulate --trail`); the figures are those of [`run_once`].
pub fn run_traced(model: Model, strategy: &str, writers: u32, seed: u64) -> RunResult {
    run(model, strategy, writers, seed, true)
}

fn run(model: Model, strategy: &str, writers: u32, seed: u64, trace: bool) -> RunResult {
    let n = writers as usize;
    let mut r = match strategy {
        "aws-standard" => run_engine(model, &sim_policy(strategy), false, n, seed, trace),
        "writelane" => run_engine(model, &sim_policy(strategy), true, n, seed, trace),
        "writelane-lease" => run_lease(model, n, seed, trace),
        // One engine per writer and no store: backoff alone, sawtooth pacing.
        "writelane-solo" => run_engine(model, &sim_policy(strategy), false, n, seed, trace),
        // Updates through one engine, batched behind the lane holder (group commit).
        "writelane-batch" => batch::run(model, n, seed, trace),
        other => run_uncoordinated(model, other, n, seed, trace),
    };
    r.completions.sort_unstable();
    r
}

fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as u64 * p).div_ceil(100)).saturating_sub(1) as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Run every strategy `runs` times and summarise.
pub fn compare(model: Model, writers: u32, runs: u32, seed: u64, strategies: &[&str]) -> Report {
    let fastest = fastest_makespan(model, writers);
    let summaries = strategies
        .iter()
        .map(|&s| {
            let results: Vec<RunResult> = (0..runs)
                .map(|r| run_once(model, s, writers, seed + r as u64))
                .collect();
            let runs_f = runs as f64;
            let sum = |f: fn(&RunResult) -> u64| results.iter().map(f).sum::<u64>() as f64;
            let mut all: Vec<u64> = results
                .iter()
                .flat_map(|r| r.completions.iter().copied())
                .collect();
            all.sort_unstable();
            let successes = sum(|r| r.successes).max(1.0);
            let makespan = sum(|r| r.makespan_ms) / runs_f;
            Summary {
                strategy: s.to_string(),
                reads: sum(|r| r.reads) / runs_f,
                writes: sum(|r| r.writes) / runs_f,
                conflicts: sum(|r| r.conflicts) / runs_f,
                calls_per_success: (sum(|r| r.reads) + sum(|r| r.writes)) / successes,
                writes_per_success: sum(|r| r.writes) / successes,
                makespan_ms: makespan,
                p50_ms: percentile(&all, 50),
                p95_ms: percentile(&all, 95),
                p99_ms: percentile(&all, 99),
                lost_updates: sum(|r| r.lost_updates) / runs_f,
                gave_up: sum(|r| r.gave_up) / runs_f,
                store_ops_per_success: sum(|r| r.store_ops) / successes,
                attempts_per_registration: sum(|r| r.registration_attempts)
                    / sum(|r| r.registrations).max(1.0),
                overtaken_max: results.iter().map(|r| r.overtaken_max).max().unwrap_or(0),
                makespan_ratio: makespan / fastest as f64,
            }
        })
        .collect();
    Report {
        model,
        writers,
        runs,
        seed,
        min_writes: writers,
        fastest_makespan_ms: fastest,
        strategies: summaries,
    }
}

/// The report as a text table.
pub fn render(report: &Report) -> String {
    let model = match report.model {
        Model::Iam => {
            "iam (writes hold the entity 20±5 ms; overlapping writes get ConcurrentModification)"
        }
        Model::Brooker => "brooker (optimistic concurrency on a version; base 5 ms, cap 2 s)",
    };
    let mut out = format!(
        "model {model}\nN = {} writers, one read-modify-write each, {} run(s) from seed {}\n\
         limits: {} writes; fastest possible makespan {} ms\n\n",
        report.writers, report.runs, report.seed, report.min_writes, report.fastest_makespan_ms
    );
    out.push_str(&format!(
        "{:<15} {:>8} {:>8} {:>9} {:>10} {:>10} {:>10} {:>7} {:>7} {:>7} {:>7} {:>6} {:>8} {:>9}\n",
        "strategy",
        "reads",
        "writes",
        "conflicts",
        "calls/ok",
        "writes/ok",
        "makespan",
        "x best",
        "p50",
        "p95",
        "p99",
        "lost",
        "gave up",
        "store/ok"
    ));
    for s in &report.strategies {
        out.push_str(&format!(
            "{:<15} {:>8.1} {:>8.1} {:>9.1} {:>10.2} {:>10.2} {:>8.0}ms {:>7.2} {:>7} {:>7} {:>7} {:>6.1} {:>8.1} {:>9}\n",
            s.strategy, s.reads, s.writes, s.conflicts, s.calls_per_success, s.writes_per_success,
            s.makespan_ms, s.makespan_ratio, s.p50_ms, s.p95_ms, s.p99_ms, s.lost_updates, s.gave_up,
            if s.store_ops_per_success > 0.0 { format!("{:.1}", s.store_ops_per_success) } else { "-".into() }
        ));
    }
    for s in report
        .strategies
        .iter()
        .filter(|s| s.attempts_per_registration > 0.0)
    {
        out.push_str(&format!(
            "\n{}: {:.1} compare-and-swap attempts per registration in the lease queue; \
             at most {} later arrival(s) got the lease while one registered waiter was queued\n",
            s.strategy, s.attempts_per_registration, s.overtaken_max
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writelane_makes_one_write_per_writer_without_lost_updates() {
        for model in [Model::Iam, Model::Brooker] {
            for n in [1, 10, 100] {
                let r = run_once(model, "writelane", n, 1);
                assert_eq!(r.writes, n as u64, "{model:?} N={n}");
                assert_eq!(r.successes, n as u64);
                assert_eq!(r.conflicts, 0);
                assert_eq!(r.lost_updates, 0);
                assert_eq!(r.reads, 1, "only the first holder reads");
            }
        }
    }

    #[test]
    fn writelane_makespan_targets() {
        let b = compare(Model::Brooker, 100, 3, 1, &["writelane"]);
        assert!(
            b.strategies[0].makespan_ratio <= 1.10,
            "{}",
            b.strategies[0].makespan_ratio
        );
        let i = compare(Model::Iam, 100, 3, 1, &["writelane"]);
        assert!(
            i.strategies[0].makespan_ratio <= 1.05,
            "{}",
            i.strategies[0].makespan_ratio
        );
    }

    #[test]
    fn uncoordinated_strategies_conflict() {
        for s in [
            "immediate",
            "exponential",
            "full-jitter",
            "equal-jitter",
            "decorrelated",
        ] {
            let r = run_once(Model::Iam, s, 10, 1);
            assert!(r.conflicts > 0, "{s}");
            assert_eq!(
                r.successes, 10,
                "{s}: every uncoordinated writer gets through eventually"
            );
        }
        let r = run_once(Model::Iam, "full-jitter", 100, 1);
        assert!(
            r.lost_updates > 0,
            "read-modify-write without a lane loses updates"
        );
    }

    #[test]
    fn brooker_figures_have_the_posts_shape() {
        // The post: no backoff does by far the most work; plain exponential is the slowest
        // to finish; full and decorrelated jitter do the least work.
        let r = compare(Model::Brooker, 100, 3, 7, &STRATEGIES[..5]);
        let get = |name: &str| {
            r.strategies
                .iter()
                .find(|s| s.strategy == name)
                .expect("strategy")
        };
        let work = |name: &str| get(name).calls_per_success;
        assert!(work("immediate") > work("exponential"));
        assert!(work("exponential") > work("equal-jitter"));
        assert!(work("equal-jitter") > work("full-jitter"));
        assert!(work("exponential") > work("decorrelated"));
        assert!(get("exponential").makespan_ms > get("full-jitter").makespan_ms);
        assert!(get("exponential").makespan_ms > get("decorrelated").makespan_ms);
    }

    #[test]
    fn aws_standard_replays_and_loses_updates_or_gives_up() {
        let r = run_once(Model::Brooker, "aws-standard", 20, 1);
        assert!(r.gave_up > 0, "replaying a stale version cannot succeed");
        let r = run_once(Model::Iam, "aws-standard", 20, 1);
        assert!(r.lost_updates + r.gave_up > 0);
    }

    #[test]
    fn lease_across_machines_makes_one_write_per_writer() {
        for model in [Model::Iam, Model::Brooker] {
            let r = run_once(model, "writelane-lease", 100, 2);
            assert_eq!(r.successes, 100, "{model:?}");
            assert!(
                r.writes as f64 <= 1.05 * r.successes as f64,
                "{model:?}: {} writes",
                r.writes
            );
            assert_eq!(r.lost_updates, 0);
            assert_eq!(r.conflicts, 0);
            assert!(
                r.store_ops >= 2 * 100,
                "a look and a release at least, per write"
            );
            // Waiters queue in the record and are served in the order they registered.
            assert!(
                r.registrations >= 50,
                "{model:?}: {} registered",
                r.registrations
            );
            assert!(r.registration_attempts >= r.registrations);
            assert_eq!(
                r.overtaken_max, 0,
                "{model:?}: FIFO among registered waiters"
            );
        }
    }

    #[test]
    fn solo_sawtooth_beats_full_jitter_at_one_hundred_writers() {
        // The targets for writers with no lane or lease between them, at N = 100: at most
        // 0.75x full jitter's writes per success, and finished no later.
        for model in [Model::Iam, Model::Brooker] {
            let r = compare(model, 100, 5, 1, &["full-jitter", "writelane-solo"]);
            let (full, solo) = (&r.strategies[0], &r.strategies[1]);
            assert_eq!(solo.gave_up, 0.0, "{model:?}");
            assert!(
                solo.writes_per_success <= 0.75 * full.writes_per_success,
                "{model:?}: {} vs {} writes per success",
                solo.writes_per_success,
                full.writes_per_success
            );
            assert!(
                solo.makespan_ms <= full.makespan_ms,
                "{model:?}: makespan {} vs {}",
                solo.makespan_ms,
                full.makespan_ms
            );
        }
    }

    #[test]
    fn deterministic() {
        let a = run_once(Model::Iam, "full-jitter", 50, 3);
        let b = run_once(Model::Iam, "full-jitter", 50, 3);
        assert_eq!(
            (a.writes, a.makespan_ms, a.completions),
            (b.writes, b.makespan_ms, b.completions)
        );
    }
}
