//! The driver: one engine behind a mutex, shared by every run of a [`Lane`]. Each run
//! carries out its own operation's commands; after every engine call the lane hands each
//! new command to the run of its operation and wakes that run only (or a sleeping run
//! whose timer moved), never every waiter.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use writelane_core::lease::{StoreOp, StoreReply};
use writelane_core::policy::LaneMode;
use writelane_core::{
    Action, ApplyResult, Command, Engine, Event, Failure, Input, OpId, Policy, PolicyError, Stats,
    SubmitOptions, UpdateOptions, UsageError,
};

use crate::clock::{Clock, TokioClock};
use crate::store::{apply, Store};
use crate::types::{default_owner, entropy, lock, Attempt, Classify, Error};
use crate::types::{LaneOptions, RunOptions, RunReport, UpdateOptions as LaneUpdateOptions};

/// A change function with its document type erased, so that the leader of a batch can
/// run every member's change: `Ok` the changed document, `Err` the error it returned (and
/// the code the engine is told), `None` a document of another type.
type ErasedChange = Arc<dyn Fn(&dyn Any) -> Option<Result<Box<dyn Any>, Refusal>> + Send + Sync>;

/// A change function's error, boxed for its own run, with the code the engine is told.
struct Refusal {
    code: Option<String>,
    error: Box<dyn Any + Send>,
}

/// Runs logical writes under the write discipline. Clone it freely: clones share one
/// engine, so writes to one entity from every task go one at a time, first come first
/// served. `Send + Sync`; it needs a tokio runtime to run.
#[derive(Clone)]
pub struct Lane {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn Store>>,
    store_timeout_ms: u64,
    holder: Option<String>,
    /// Whether `State::otel` is set, read without the lock at each write.
    #[cfg(feature = "otel")]
    otel_on: std::sync::atomic::AtomicBool,
}

struct State {
    engine: Engine,
    now: u64,
    runs: HashMap<OpId, Slot>,
    /// The errors updates' change functions returned, kept by the leader that ran them
    /// for the update's own run, which takes its error with its finish.
    refused: HashMap<OpId, Box<dyn Any + Send>>,
    /// OpenTelemetry, when on: it takes the events after every engine call.
    #[cfg(feature = "otel")]
    otel: Option<crate::otel::Recorder>,
}

/// When a write was called, for telemetry (nothing without the `otel` feature).
#[cfg(feature = "otel")]
type WriteMark = Option<crate::otel::WriteStart>;
#[cfg(not(feature = "otel"))]
#[derive(Clone, Copy)]
struct WriteMark;

/// What one run shares with the lane: the command (or `Apply`) the engine has for it, and
/// whether it sleeps (on which timer). An update's slot also keeps its change function,
/// which the leader of its batch runs, and the error that function returned.
struct Slot {
    cmd: Option<Action>,
    wake: Arc<Notify>,
    asleep: Option<Option<u64>>,
    change: Option<ErasedChange>,
}

impl Shared {
    /// Lock the state; the clock is read under the lock, so times never go backwards.
    fn enter(&self) -> (MutexGuard<'_, State>, u64) {
        let mut st = lock(&self.state);
        st.now = st.now.max(self.clock.now_ms());
        let now = st.now;
        (st, now)
    }
}

impl State {
    /// After every engine call: hand each new command to its run, and wake the sleeping
    /// runs that got one or whose timer moved.
    fn route(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(otel) = self.otel.as_mut() {
            while let Some(event) = self.engine.poll_event() {
                otel.event(event);
            }
        }
        while let Some(cmd) = self.engine.poll_action() {
            if let Some(slot) = self.runs.get_mut(&cmd.op()) {
                slot.cmd = Some(cmd);
                if slot.asleep.take().is_some() {
                    slot.wake.notify_one();
                }
            }
        }
        let engine = &self.engine;
        for (&op, slot) in self.runs.iter_mut() {
            if slot
                .asleep
                .is_some_and(|at| at != engine.poll_timeout_for(op))
            {
                slot.asleep = None;
                slot.wake.notify_one();
            }
        }
    }
}

/// Cancels its operation when a run is dropped before its finish.
struct RunGuard {
    lane: Lane,
    op: OpId,
    finished: bool,
    runtime: Option<tokio::runtime::Handle>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let op = self.op;
        {
            let (mut st, now) = self.lane.shared.enter();
            st.refused.remove(&op);
            let Some(slot) = st.runs.get_mut(&op) else {
                return;
            };
            if matches!(slot.cmd, Some(Action::Command(Command::Finish { .. }))) {
                st.runs.remove(&op);
                return;
            }
            // A command not carried out is superseded by the cancel.
            slot.cmd = None;
            let _ = st.engine.handle(now, Input::Cancel { op });
            st.route();
        }
        // What the engine still asks (releasing the lease) is carried out in the background.
        match &self.runtime {
            Some(rt) => drop(rt.spawn(self.lane.clone().drain(op))),
            None => drop(lock(&self.lane.shared.state).runs.remove(&op)),
        }
    }
}

impl Lane {
    /// A lane under `policy`. With a store the lane runs `policy.for_store()`; without
    /// one, a policy with shared lanes is refused.
    pub fn new(policy: Policy, options: LaneOptions) -> Result<Lane, Error> {
        let LaneOptions {
            store,
            owner,
            holder,
            clock,
            seed,
        } = options;
        let policy = match store {
            Some(_) => policy.for_store(),
            None if policy.lanes.mode == LaneMode::Shared => {
                return Err(Error::Policy(PolicyError {
                    path: "lanes.mode".into(),
                    rule: "shared lanes need a lease store (LaneOptions::store)".into(),
                }))
            }
            None => policy,
        };
        let store_timeout_ms = policy.lease.store_timeout_ms;
        let seed = seed.unwrap_or_else(entropy);
        let engine = match owner.or_else(|| store.as_ref().map(|_| default_owner())) {
            Some(owner) => Engine::with_owner(policy, seed, &owner)?,
            None => Engine::new(policy, seed),
        };
        let state = State {
            engine,
            now: 0,
            runs: HashMap::new(),
            refused: HashMap::new(),
            #[cfg(feature = "otel")]
            otel: None,
        };
        Ok(Lane {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                clock: clock.unwrap_or_else(|| Arc::new(TokioClock::new())),
                store,
                store_timeout_ms,
                holder,
                #[cfg(feature = "otel")]
                otel_on: Default::default(),
            }),
        })
    }

    /// Send this lane's metrics and a span per run to OpenTelemetry (feature `otel`; see
    /// [`crate::otel`]): `Lane::new(policy, options)?.with_telemetry(Telemetry::global())`.
    /// Runs started before the call have no span; clones of the lane share its telemetry.
    #[cfg(feature = "otel")]
    pub fn with_telemetry(self, telemetry: crate::otel::Telemetry) -> Lane {
        let weak = Arc::downgrade(&self.shared);
        let gauge = telemetry.budget_gauge(move || {
            let shared = weak.upgrade()?;
            let budget = lock(&shared.state).engine.stats().budget;
            budget
        });
        let mut st = lock(&self.shared.state);
        let shared_lanes = st.engine.policy().lanes.mode == LaneMode::Shared;
        let mut recorder = crate::otel::Recorder::new(telemetry, shared_lanes);
        recorder.gauge = Some(gauge);
        st.otel = Some(recorder);
        drop(st);
        self.shared
            .otel_on
            .store(true, std::sync::atomic::Ordering::Release);
        self
    }

    /// Telemetry: a run's span starts when its operation is submitted.
    #[allow(unused_variables)]
    fn otel_started(st: &mut State, op: OpId, entity: &str) {
        #[cfg(feature = "otel")]
        if let Some(otel) = st.otel.as_mut() {
            otel.started(op, entity);
        }
    }

    /// Telemetry: when a write is called.
    fn write_mark(&self) -> WriteMark {
        #[cfg(feature = "otel")]
        return self
            .shared
            .otel_on
            .load(std::sync::atomic::Ordering::Acquire)
            .then(crate::otel::WriteStart::now);
        #[cfg(not(feature = "otel"))]
        WriteMark
    }

    /// Telemetry: `fut` (a read or a write of `op`) runs in the context of `op`'s span.
    #[cfg(feature = "otel")]
    fn in_span<F: Future>(&self, op: OpId, fut: F) -> opentelemetry::context::WithContext<F> {
        use opentelemetry::context::{Context, FutureExt};
        let cx = match self
            .shared
            .otel_on
            .load(std::sync::atomic::Ordering::Acquire)
        {
            true => lock(&self.shared.state)
                .otel
                .as_ref()
                .and_then(|otel| otel.context(op)),
            false => None,
        };
        fut.with_context(cx.unwrap_or_else(Context::current))
    }

    /// Telemetry: `fut` as it is (no `otel` feature).
    #[cfg(not(feature = "otel"))]
    fn in_span<F: Future>(&self, _op: OpId, fut: F) -> F {
        fut
    }

    /// Telemetry: the write of `op`'s attempt returned.
    #[allow(unused_variables)]
    fn write_done(&self, op: OpId, attempt: u32, mark: WriteMark) {
        #[cfg(feature = "otel")]
        if let Some(start) = mark {
            if let Some(otel) = lock(&self.shared.state).otel.as_mut() {
                otel.write_done(op, attempt, start);
            }
        }
    }

    /// The policy in force (after `for_store`).
    pub fn policy(&self) -> Policy {
        lock(&self.shared.state).engine.policy().clone()
    }

    /// Counters and budget levels now.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.state).engine.stats()
    }

    /// Drain the telemetry events queued so far.
    pub fn events(&self) -> Vec<Event> {
        let mut st = lock(&self.shared.state);
        #[cfg(feature = "otel")]
        if let Some(otel) = st.otel.as_mut() {
            return otel.take_events();
        }
        std::iter::from_fn(|| st.engine.poll_event()).collect()
    }

    /// Perform one logical write of `entity`: wait for its lane (or lease), call `read`
    /// and `write` as the engine commands, sleep out backoffs, and report the outcome.
    /// Without a read function the engine never asks for one. Dropping the future cancels
    /// the write and releases the lane or the lease (in the background).
    pub async fn run<W, WF, R, RF, E>(
        &self,
        entity: &str,
        mut write: W,
        mut read: Option<R>,
        options: RunOptions,
    ) -> Result<RunReport<E>, Error>
    where
        W: FnMut(Attempt) -> WF,
        WF: Future<Output = Result<(), E>>,
        R: FnMut() -> RF,
        RF: Future<Output = Result<Option<String>, E>>,
        E: Classify,
    {
        let mut guard = self.submit(entity, options, read.is_none())?;
        let mut last_error = None;
        loop {
            let Action::Command(cmd) = self.next_command(guard.op).await else {
                unreachable!("only updates lead batches")
            };
            let input = match cmd {
                Command::Finish { outcome, .. } => {
                    guard.finished = true;
                    return Ok(RunReport {
                        outcome,
                        last_error,
                    });
                }
                Command::Store { op, operation } => Input::StoreReply {
                    op,
                    reply: self.store_call(operation).await,
                },
                Command::Read { op } => match read.as_mut() {
                    Some(read) => match self.in_span(op, read()).await {
                        Ok(token) => Input::ReadDone { op, token },
                        Err(e) => Input::ReadFailed {
                            op,
                            failure: last_error.insert(e).failure(),
                        },
                    },
                    // Never commanded without a read function (`no_read`).
                    None => Input::ReadDone { op, token: None },
                },
                Command::Write {
                    op,
                    attempt,
                    base_token,
                    fence,
                } => {
                    let produced = Arc::new(Mutex::new(None));
                    let number = attempt;
                    let attempt = Attempt {
                        op,
                        number,
                        base_token,
                        fence,
                        produced: Arc::clone(&produced),
                    };
                    let mark = self.write_mark();
                    let result = self.in_span(op, write(attempt)).await;
                    self.write_done(op, number, mark);
                    match result {
                        Ok(()) => Input::WriteDone {
                            op,
                            token: lock(&produced).take(),
                        },
                        Err(e) => Input::WriteFailed {
                            op,
                            failure: last_error.insert(e).failure(),
                        },
                    }
                }
            };
            self.step(input)?;
        }
    }

    /// Perform one update of `entity` (group commit): `change` is this writer's change to
    /// the entity's document. Updates queued behind the lane holder ride in its write:
    /// the leader of the batch calls `read` once, runs every member's `change` in FIFO
    /// order on the document, and calls `write` once with the result; every update of the
    /// batch ends with that write's outcome and token. So `read` and `write` may be called
    /// by another update's run, and `change` may be called more than once, on fresher
    /// documents (after a conflict, or when a write refused as fatal is split in halves to
    /// find the change that breaks it): it must be a pure function of the document.
    ///
    /// `read` returns the document and its change token; `write` writes the document and
    /// may report the new token with [`Attempt::set_token`]. A `change` that returns an
    /// error excludes this update from the write: it gives up as `fatal` with the error's
    /// code (or `ChangeRefused`), and the error is the report's `last_error`. All updates
    /// of one entity must use one document type `D`; an update whose `D` differs from its
    /// leader's gives up (`DocumentType`). Dropping the future cancels the update.
    pub async fn update<D, R, RF, C, W, WF, E>(
        &self,
        entity: &str,
        mut read: R,
        change: C,
        mut write: W,
        options: LaneUpdateOptions,
    ) -> Result<RunReport<E>, Error>
    where
        D: Clone + Send + 'static,
        R: FnMut() -> RF,
        RF: Future<Output = Result<(D, Option<String>), E>>,
        C: Fn(&D) -> Result<D, E> + Send + Sync + 'static,
        W: FnMut(D, Attempt) -> WF,
        WF: Future<Output = Result<(), E>>,
        E: Classify + Send + 'static,
    {
        let erased: ErasedChange = Arc::new(move |doc: &dyn Any| {
            let doc = doc.downcast_ref::<D>()?;
            Some(match change(doc) {
                Ok(new) => Ok(Box::new(new) as Box<dyn Any>),
                Err(e) => Err(Refusal {
                    code: Some(e.failure().code.unwrap_or_else(|| "ChangeRefused".into())),
                    error: Box::new(e),
                }),
            })
        });
        let mut guard = {
            let holder = options.holder.or_else(|| self.shared.holder.clone());
            let submit = UpdateOptions {
                deadline_ms: options.deadline_ms,
                holder,
            };
            let (mut st, now) = self.shared.enter();
            let op = st.engine.submit_update(entity, now, submit)?;
            Self::otel_started(&mut st, op, entity);
            let slot = Slot {
                cmd: None,
                wake: Arc::new(Notify::new()),
                asleep: None,
                change: Some(erased),
            };
            st.runs.insert(op, slot);
            st.route();
            RunGuard {
                lane: self.clone(),
                op,
                finished: false,
                runtime: tokio::runtime::Handle::try_current().ok(),
            }
        };
        let mut last_error: Option<E> = None;
        // What the last read returned, then changed by the apply: what the write writes.
        let mut doc: Option<D> = None;
        loop {
            let input = match self.next_command(guard.op).await {
                Action::Command(Command::Finish { op, outcome }) => {
                    guard.finished = true;
                    // This update's own change error, when the leader stored one.
                    let refused = lock(&self.shared.state).refused.remove(&op);
                    if let Some(e) = refused.and_then(|b| b.downcast::<E>().ok()) {
                        last_error = Some(*e);
                    }
                    return Ok(RunReport {
                        outcome,
                        last_error,
                    });
                }
                Action::Command(Command::Store { op, operation }) => Input::StoreReply {
                    op,
                    reply: self.store_call(operation).await,
                },
                Action::Command(Command::Read { op }) => match self.in_span(op, read()).await {
                    Ok((d, token)) => {
                        doc = Some(d);
                        Input::ReadDone { op, token }
                    }
                    Err(e) => Input::ReadFailed {
                        op,
                        failure: last_error.insert(e).failure(),
                    },
                },
                Action::Apply(apply) => {
                    let changes: Vec<Option<ErasedChange>> = {
                        let st = lock(&self.shared.state);
                        apply
                            .ops
                            .iter()
                            .map(|m| st.runs.get(m).and_then(|s| s.change.clone()))
                            .collect()
                    };
                    let mut current = doc.clone();
                    let mut refusals = Vec::new();
                    let results = apply
                        .ops
                        .iter()
                        .zip(changes)
                        .map(|(&m, change)| {
                            let outcome = match (change, current.as_ref()) {
                                (Some(change), Some(d)) => change(d),
                                _ => None,
                            };
                            match outcome {
                                Some(Ok(new)) => {
                                    current =
                                        new.downcast::<D>().ok().map(|b| *b).or(current.take());
                                    ApplyResult {
                                        op: m,
                                        applied: true,
                                        code: None,
                                    }
                                }
                                Some(Err(refusal)) => {
                                    refusals.push((m, refusal.error));
                                    ApplyResult {
                                        op: m,
                                        applied: false,
                                        code: refusal.code,
                                    }
                                }
                                // Another document type, or a member gone (cancelled).
                                None => ApplyResult {
                                    op: m,
                                    applied: false,
                                    code: Some("DocumentType".into()),
                                },
                            }
                        })
                        .collect();
                    doc = current;
                    {
                        let mut st = lock(&self.shared.state);
                        for (m, error) in refusals {
                            if st.runs.contains_key(&m) {
                                st.refused.insert(m, error);
                            }
                        }
                    }
                    Input::ApplyDone {
                        op: apply.op,
                        results,
                    }
                }
                Action::Command(Command::Write {
                    op,
                    attempt,
                    base_token,
                    fence,
                }) => {
                    let produced = Arc::new(Mutex::new(None));
                    let attempt = Attempt {
                        op,
                        number: attempt,
                        base_token,
                        fence,
                        produced: Arc::clone(&produced),
                    };
                    let Some(d) = doc.clone() else {
                        // A write is commanded only after a read and an apply.
                        unreachable!("an update writes what it read and changed")
                    };
                    let (number, mark) = (attempt.number, self.write_mark());
                    let result = self.in_span(op, write(d, attempt)).await;
                    self.write_done(op, number, mark);
                    match result {
                        Ok(()) => Input::WriteDone {
                            op,
                            token: lock(&produced).take(),
                        },
                        Err(e) => Input::WriteFailed {
                            op,
                            failure: last_error.insert(e).failure(),
                        },
                    }
                }
            };
            self.step(input)?;
        }
    }

    fn submit(&self, entity: &str, options: RunOptions, no_read: bool) -> Result<RunGuard, Error> {
        let holder = options.holder.or_else(|| self.shared.holder.clone());
        let submit = SubmitOptions {
            expected: options.expected,
            deadline_ms: options.deadline_ms,
            holder,
            no_read,
        };
        let (mut st, now) = self.shared.enter();
        let op = st.engine.submit(entity, now, submit)?;
        Self::otel_started(&mut st, op, entity);
        let wake = Arc::new(Notify::new());
        let slot = Slot {
            cmd: None,
            wake,
            asleep: None,
            change: None,
        };
        st.runs.insert(op, slot);
        st.route();
        Ok(RunGuard {
            lane: self.clone(),
            op,
            finished: false,
            runtime: tokio::runtime::Handle::try_current().ok(),
        })
    }

    /// The next command of `op`, sleeping until the engine has one: on the operation's
    /// timer (then firing the timers that are due) or until the lane wakes it.
    async fn next_command(&self, op: OpId) -> Action {
        loop {
            let (wake, at) = {
                let mut st = lock(&self.shared.state);
                let st = &mut *st;
                let slot = st.runs.get_mut(&op).expect("a live run has a slot");
                if let Some(cmd) = slot.cmd.take() {
                    if let Action::Command(Command::Finish { .. }) = cmd {
                        st.runs.remove(&op);
                    }
                    return cmd;
                }
                let at = st.engine.poll_timeout_for(op);
                slot.asleep = Some(at);
                (Arc::clone(&slot.wake), at)
            };
            let Some(at) = at else {
                wake.notified().await;
                continue;
            };
            tokio::select! {
                biased;
                () = wake.notified() => {}
                () = self.shared.clock.sleep_until(at) => {
                    let (mut st, now) = self.shared.enter();
                    if let Some(slot) = st.runs.get_mut(&op) {
                        slot.asleep = None;
                    }
                    // Refused only for time going backwards, which `enter` rules out.
                    let _ = st.engine.handle_timeout(now);
                    st.route();
                }
            }
        }
    }

    /// Feed what was observed. A refusal ends the run with the error, and its guard
    /// cancels the operation.
    fn step(&self, input: Input) -> Result<(), UsageError> {
        let (mut st, now) = self.shared.enter();
        let result = st.engine.handle(now, input);
        st.route();
        result
    }

    async fn store_call(&self, operation: StoreOp) -> StoreReply {
        match &self.shared.store {
            Some(store) => apply(store.as_ref(), operation, self.shared.store_timeout_ms).await,
            None => StoreReply::Unavailable,
        }
    }

    /// Carry out what a cancelled operation still asks (a release) until its finish.
    async fn drain(self, op: OpId) {
        loop {
            let cmd = match self.next_command(op).await {
                Action::Command(cmd) => cmd,
                // Never asked: a cancelled leader hands its batch on. Were it asked, it ends.
                Action::Apply(_) => {
                    lock(&self.shared.state).runs.remove(&op);
                    return;
                }
            };
            let input = match cmd {
                Command::Finish { .. } => return,
                Command::Store { op, operation } => Input::StoreReply {
                    op,
                    reply: self.store_call(operation).await,
                },
                // A cancelled operation calls no user function; were it to ask, it ends.
                Command::Read { op } => Input::ReadFailed {
                    op,
                    failure: Failure::default(),
                },
                Command::Write { op, .. } => Input::WriteFailed {
                    op,
                    failure: Failure::default(),
                },
            };
            if self.step(input).is_err() {
                lock(&self.shared.state).runs.remove(&op);
                return;
            }
        }
    }
}
