//! Exhaustive model checking of shared lanes: K writers, each the real
//! [`writelane_core::Engine`] under a shared-lane policy ([`Policy::for_store`]) with its own
//! clock, one lease store (core's [`MemoryStore`], three operations, compare-and-swap on the
//! rvn), and the protected entity (IAM: it accepts any write and records who wrote it, under
//! which epoch, and when), checked with [stateright](https://docs.rs/stateright).
//!
//! Nothing of the protocol is re-implemented here: every decision (when to poll, when a
//! holder is stale, when to renew, what to write in the record, when to write the entity) is
//! the engine's and its lease client's. The model is the host, the network and the faults.
//!
//! # The model
//!
//! Time is discrete. `time` is real time in ticks (1 tick = 1 ms of the policy); each writer
//! has its own clock, which advances with real time unless a fault says otherwise. Each
//! writer submits one write of the entity at time 0.
//!
//! One step of the model is one of these actions (stateright explores every order):
//!
//! - **tick**: real time advances by one; every writer's clock advances by one, except a
//!   stalled one. A tick waits until the hosts did what was due: no timer of a writer is due
//!   on its clock, no store call is unanswered (a store call is answered or given up as lost
//!   within the tick: the store timeout is 1 tick), and no entity write has been in flight for
//!   `max_write_ms` (a write takes at most that long: the protocol's assumption).
//! - **timer wN**: the host calls `handle_timeout` at its clock. A due timer fires before
//!   any other step (hosts fire timers when due), the first writer's first.
//! - **store deliveries**, in any order among writers: a request applied and answered (one
//!   step: another writer's step in between changes nothing the reply says); a request
//!   lost (fault); applied with the reply lost (fault); the store unavailable (fault). A
//!   lost request or reply reaches the engine as `StoreReply::Lost`, as the driver reports
//!   a call with no answer by its timeout.
//! - **the entity applies a write** that is in flight (and the host reports `WriteDone`
//!   with the new revision's token).
//! - **crash wN** (fault): the process dies; a fresh engine with a new owner id (a new
//!   process) submits the same write again. Its store requests and entity writes already
//!   sent stay in the network and may still land (a store request may also never have
//!   left: dropping it costs no fault).
//! - **jump wN** (fault): the writer's clock jumps forward by `jump_ms`.
//! - **stall wN** (fault): the writer's clock stands still for the next tick.
//! - **force-release** (fault): an operator runs core's `plan_force_release` /
//!   `finish_force_release` on the record (read and swap in one step).
//!
//! Faults have budgets ([`Faults`]), the horizon bounds real time, so the state space is
//! finite.
//!
//! # The properties
//!
//! The same statements are in the documentation of `writelane_core::lease` and in
//! `model/README.md`. A *holding* is one epoch granted to one writer process; a write is *in
//! flight* from the moment the host sends it until the entity applies it; a holding is
//! *ended by the rule* when a writer replaced its record after reading that record's rvn
//! unchanged in at least `ceil(2 lease / poll) + 1` replies spanning at least a lease on the
//! taker's own clock, or *force-released* when an operator replaced it.
//!
//! 1. **Exclusion**: whenever writes of two holdings are in flight to the entity at once, the
//!    older holding had been ended by the rule (judged on the taker's own clock) or
//!    force-released before.
//! 2. **Real-time exclusion** (the strict form, what the lock-delay buys): with no writer's
//!    clock stalled, no force-release and at most two forward clock jumps in the run, writes
//!    of two holdings are never in flight at once. (With a third jump the checker finds an
//!    overlap: the bound is tight for these timings.)
//! 3. **Epochs only grow**: every record the store takes has an epoch at least that of every
//!    record it held before (a missing record after one existed counts as a regression when
//!    the next one starts lower).
//! 4. **Fenced writes**: every write the entity accepts carries an epoch that the store
//!    granted to that writer process.
//! 5. **Released tokens**: every free record written (a release, a force-release) carries
//!    the token of the last write the entity accepted, or none, unless a write of a holding
//!    already ended (by the rule or by force) landed earlier in the run.
//! 6. **No commit without acceptance**: an operation finishes `Committed` only after the
//!    entity accepted a write of that operation.
//! 7. **Liveness** (bounded, under fairness): in every run with the store available and no
//!    crash, every submitted operation has finished (committed or a typed give-up) when the
//!    run ends, i.e. at a state with no action left (the horizon reached, everything due
//!    done). It is checked as an `always` property on terminal states, not with stateright's
//!    `eventually`, whose check misses paths that end in cycles; the horizon is what makes
//!    it a bounded check.
//!
//! # States and soundness
//!
//! [`Engine`] is not `Clone` and not `Hash`. Each writer keeps the trace of calls it made to
//! its engine (replayed to get a mutable engine for the next step) and the engine itself
//! (behind an `Arc`) for reading. The state's hash uses the engine's `Debug` text, not the
//! trace: two paths that leave an engine in the same state merge. `Debug` prints every field
//! of the engine except the position of its two ChaCha generators (the engine's and the
//! lease client's): their `Debug` shows only the index into the current block of 32 draws.
//! A generator's seed is fixed by its writer (the engine's) or by the engine's draws (the
//! lease client's), and the index tells the number of draws exactly while fewer than 32 were
//! made, so the model asserts that each engine made at most 30 store operations (each lease
//! draw is followed by a store operation), and fingerprints are sound within that bound.
//! Everything else in the state (store record, network, entity, clocks, ghost facts the
//! properties need) is hashed as it is.
//!
//! Limits of what is shown: one entity; one write per process (a restarted process submits
//! it again); the entity's writes never fail and are never read (`no_read`); writes take at
//! most `max_write_ms` of real time and store calls less than a tick; the operator's read
//! and swap are one step; the values of time are small (lease 4 ticks), and the bounds
//! (writers, horizon, fault budgets) are those of each run in `tests/check.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stateright::{Checker, HasDiscoveries, Model, Property};
use writelane_core::lease::{
    finish_force_release, plan_force_release, ForceReleasePlan, ForceReleaseResult, LeaseRecord,
    LeaseRule, MemoryStore, StoreOp, StoreReply,
};
use writelane_core::{Command, Engine, GiveUpReason, Input, OpId, Outcome, Policy, SubmitOptions};

/// The entity the writers share, and so the record's key.
pub const ENTITY: &str = "role/app";

/// The most store operations one engine may make before its fingerprint could stop telling
/// its generators' positions apart (see the crate documentation).
pub const MAX_STORE_OPS_PER_ENGINE: u64 = 30;

/// Fault budgets for one run: how many of each kind may happen, in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Faults {
    /// Store requests lost before reaching the store.
    pub lost_requests: u32,
    /// Store replies lost after the store applied the request.
    pub lost_replies: u32,
    /// Store calls answered `Unavailable`.
    pub unavailable: u32,
    /// Writer processes killed (each restarts with a fresh engine).
    pub crashes: u32,
    /// Forward clock jumps.
    pub jumps: u32,
    /// Ticks for which one writer's clock stands still.
    pub stalls: u32,
    /// Operator force-releases.
    pub force_releases: u32,
}

/// A deliberate break of the protocol or its host, for checking that the checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// None: the real protocol.
    None,
    /// The policy's lock-delay is 0: a writer that took a lease over writes at once.
    NoLockDelay,
    /// The store's compare-and-swap ignores the rvn (a store without the condition).
    StoreIgnoresRvn,
    /// The store deletes the record on a release instead of keeping it free.
    ReleaseByDelete,
    /// The host sends its write when it submits, without waiting for the engine's grant.
    WriteBeforeGrant,
    /// The operator's tool keeps the dead holder's committed token in the free record.
    ForceReleaseKeepsToken,
    /// The host answers `WriteDone` as soon as it sent the write, before the entity took it.
    AckBeforeAccept,
    /// The host never calls `handle_timeout`.
    HostIgnoresTimers,
    /// A registration jumps the queue: the store puts a newly appended ticket first (and
    /// renumbers the tickets so that they still increase).
    QueueJumper,
}

/// One model-checking run's bounds.
#[derive(Debug, Clone)]
pub struct Config {
    /// Number of writers (each starts one write at time 0).
    pub writers: usize,
    /// Real time ends here.
    pub horizon: u64,
    /// The lease timings (ticks).
    pub rule: LeaseRule,
    /// How far a clock jump goes.
    pub jump_ms: u64,
    /// Fault budgets.
    pub faults: Faults,
    /// The protocol as it is, or a deliberate break.
    pub mutation: Mutation,
    /// At most this many faults in one run, of all kinds together.
    pub max_faults: u32,
    /// Property 2 applies to runs with at most this many clock jumps (2; a test raises it to
    /// show that 3 break it).
    pub real_time_jumps: u32,
    /// Check property 7 (the horizon must leave every writer time to finish).
    pub liveness: bool,
}

impl Config {
    /// The lease timings of every run: lease 4 ticks, renewal every 2, lock-delay 2, polls
    /// every 1–2 (half the poll interval plus jitter), writes and store calls at most 1.
    pub fn rule() -> LeaseRule {
        LeaseRule {
            lease_ms: 4,
            renew_ms: 2,
            lock_delay_ms: 2,
            poll_ms: 2,
            unavailable_ms: 2,
            max_write_ms: 1,
            store_timeout_ms: 1,
        }
    }

    /// `writers` writers, the standard timings, no faults, the real protocol.
    pub fn new(writers: usize, horizon: u64) -> Config {
        Config {
            writers,
            horizon,
            rule: Config::rule(),
            jump_ms: 4,
            faults: Faults::default(),
            mutation: Mutation::None,
            max_faults: u32::MAX,
            real_time_jumps: 2,
            liveness: true,
        }
    }

    /// At most `n` faults in one run.
    pub fn max_faults(mut self, n: u32) -> Config {
        self.max_faults = n;
        self
    }

    /// With these fault budgets.
    pub fn faults(mut self, faults: Faults) -> Config {
        self.faults = faults;
        self
    }

    /// With this mutation.
    pub fn mutation(mut self, mutation: Mutation) -> Config {
        self.mutation = mutation;
        self
    }

    fn policy(&self) -> Policy {
        let mut policy = Policy::default().for_store();
        policy.lease = self.rule;
        if self.mutation == Mutation::NoLockDelay {
            policy.lease.lock_delay_ms = 0;
        }
        policy
            .lease
            .validate()
            .expect("the model's lease timings are valid");
        policy
    }

    fn polls_needed(&self) -> u64 {
        (2 * self.rule.lease_ms).div_ceil(self.rule.poll_ms.max(1))
    }
}

/// One call made to a writer's engine: its trace, replayed to rebuild the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Submit(u64),
    Timeout(u64),
    Handle(u64, Input),
}

/// A writer's calls, as a list shared between states.
#[derive(Debug)]
struct Trace {
    call: Call,
    prev: Option<Arc<Trace>>,
}

/// How a writer's operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ended {
    /// Committed.
    Committed,
    /// Gave up for a typed reason: its name.
    GaveUp(&'static str),
}

/// One writer process.
#[derive(Clone)]
pub struct Writer {
    /// 1-based writer number.
    pub id: usize,
    /// Process incarnation, from 1; a crash starts the next.
    pub incarnation: u32,
    /// The writer's own clock.
    pub clock: u64,
    /// Its clock skips the next tick.
    pub stalled: bool,
    /// When its engine's next timer is due.
    timeout: Option<u64>,
    /// The calls made to its engine, newest first, sharing older calls with other states.
    trace: Option<Arc<Trace>>,
    fingerprint: u64,
    /// The live operation.
    pub op: Option<OpId>,
    /// How the operation ended.
    pub ended: Option<Ended>,
    /// The entity accepted a write of this process.
    pub accepted: bool,
    /// Every lease record this process saw in a store reply, by what the staleness rule
    /// watches ([`progress`]: the rvn of a version 1 record, the owner, epoch and beat of a
    /// version 2 holding) → (its clock at the first sighting, sightings).
    seen: BTreeMap<(String, u64, u64), (u64, u64)>,
}

impl Writer {
    fn owner(&self) -> String {
        owner(self.id, self.incarnation)
    }
}

fn owner(id: usize, incarnation: u32) -> String {
    format!("w{id}.{incarnation}")
}

/// The writer and incarnation an owner id names (the inverse of [`owner`]).
fn parse_owner(owner: &str) -> Option<(usize, u32)> {
    let (id, incarnation) = owner.strip_prefix('w')?.split_once('.')?;
    Some((id.parse().ok()?, incarnation.parse().ok()?))
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("id", &self.id)
            .field("incarnation", &self.incarnation)
            .field("clock", &self.clock)
            .field("op", &self.op)
            .field("ended", &self.ended)
            .finish()
    }
}

impl Hash for Writer {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.id.hash(h);
        self.incarnation.hash(h);
        self.clock.hash(h);
        self.stalled.hash(h);
        self.fingerprint.hash(h);
        self.op.hash(h);
        self.ended.hash(h);
        self.accepted.hash(h);
        self.seen.hash(h);
    }
}

/// A store call in the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCall {
    /// Writer number.
    pub writer: usize,
    /// Writer incarnation.
    pub incarnation: u32,
    /// The operation.
    pub op: OpId,
    /// The writer's clock when it was sent.
    pub sent_clock: u64,
    /// The request, not yet at the store.
    pub request: Option<StoreOp>,
}

/// A write of the entity in flight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityWrite {
    /// Writer number.
    pub writer: usize,
    /// Writer incarnation.
    pub incarnation: u32,
    /// The operation.
    pub op: OpId,
    /// The fence the write carries (none: written without a grant).
    pub fence: Option<u64>,
    /// Real time it was sent.
    pub sent: u64,
    /// The host will report it done when it lands (false: already acknowledged).
    pub report: bool,
}

/// Facts the properties need, gathered as the run goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// The highest epoch the store ever held.
    pub max_epoch: u64,
    /// Epochs whose holding was ended by the rule (a takeover after the rule's sightings).
    pub ended_by_rule: BTreeSet<u64>,
    /// Epochs whose holding an operator force-released.
    pub forced: BTreeSet<u64>,
    /// (writer, incarnation, epoch) the store granted.
    pub granted: BTreeSet<(usize, u32, u64)>,
    /// Writes the entity accepted.
    pub accepted: u64,
    /// The token of the last write the entity accepted.
    pub last_token: Option<String>,
    /// A write of an ended holding landed.
    pub zombie_landed: bool,
    /// Fault counts so far.
    pub used: Faults,
    /// Writes of two holdings were in flight at once (allowed by property 1).
    pub overlap_seen: bool,
    /// A takeover happened.
    pub takeover_seen: bool,
    /// Owners in the order their tickets first appeared in the store's queue.
    pub registered: Vec<String>,
    /// A release granted the lease to the head of the queue.
    pub grant_seen: bool,
    /// Violations, by property number (1-based), each the first reason found.
    pub violations: BTreeMap<u8, String>,
}

/// The whole state of the system.
#[derive(Debug, Clone)]
pub struct State {
    /// Real time.
    pub time: u64,
    /// The writers.
    pub writers: Vec<Writer>,
    /// The lease store.
    pub store: MemoryStore,
    /// Store calls in the network.
    pub calls: Vec<StoreCall>,
    /// Entity writes in flight.
    pub writes: Vec<EntityWrite>,
    /// Facts for the properties.
    pub ghost: Ghost,
}

fn hash_record<H: Hasher>(r: &LeaseRecord, h: &mut H) {
    r.owner.hash(h);
    r.epoch.hash(h);
    r.rvn.hash(h);
    r.lease_ms.hash(h);
    r.committed_token.hash(h);
    r.holder.hash(h);
    r.version.hash(h);
    r.beat.hash(h);
    r.next_ticket.hash(h);
    r.hold_ms.hash(h);
    for t in &r.queue {
        (&t.owner, t.ticket, t.beat).hash(h);
    }
}

fn hash_opt_record<H: Hasher>(r: Option<&LeaseRecord>, h: &mut H) {
    r.is_some().hash(h);
    if let Some(r) = r {
        hash_record(r, h);
    }
}

fn hash_op<H: Hasher>(op: &StoreOp, h: &mut H) {
    match op {
        StoreOp::Get { .. } => 0u8.hash(h),
        StoreOp::PutIfAbsent { record, .. } => {
            1u8.hash(h);
            hash_record(record, h);
        }
        StoreOp::CompareAndSwap {
            expected_rvn,
            record,
            ..
        } => {
            2u8.hash(h);
            expected_rvn.hash(h);
            hash_record(record, h);
        }
    }
}

impl Hash for State {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.time.hash(h);
        self.writers.hash(h);
        hash_opt_record(self.store.record(ENTITY), h);
        self.calls.len().hash(h);
        for c in &self.calls {
            (c.writer, c.incarnation, c.op, c.sent_clock).hash(h);
            c.request.is_some().hash(h);
            if let Some(op) = &c.request {
                hash_op(op, h);
            }
        }
        self.writes.hash(h);
        self.ghost.hash(h);
    }
}

/// One step of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Real time advances by one tick.
    Tick,
    /// The host of writer `w` (index) fires its due timers.
    Timer(usize),
    /// The store applies call `i`, and its answer reaches the writer.
    Apply(usize),
    /// The store applies call `i`; the reply is lost.
    ApplyLoseReply(usize),
    /// Call `i`'s request is lost.
    LoseRequest(usize),
    /// The store answers call `i` `Unavailable`.
    Unavailable(usize),
    /// The entity applies write `i`.
    EntityApplies(usize),
    /// Writer `w` crashes and restarts.
    Crash(usize),
    /// Writer `w`'s clock jumps forward.
    Jump(usize),
    /// Writer `w`'s clock stands still for the next tick.
    Stall(usize),
    /// An operator force-releases the record.
    ForceRelease,
}

/// The model: the configuration of one run.
#[derive(Debug, Clone)]
pub struct LeaseModel {
    /// The run's bounds.
    pub config: Config,
    policy: Policy,
}

impl LeaseModel {
    /// A model of `config`.
    pub fn new(config: Config) -> LeaseModel {
        let policy = config.policy();
        LeaseModel { config, policy }
    }

    fn fresh_engine(&self, id: usize, incarnation: u32) -> Engine {
        let seed = (id as u64) << 32 | u64::from(incarnation);
        Engine::with_owner(self.policy.clone(), seed, &owner(id, incarnation))
            .expect("a valid owner")
    }

    fn replay(&self, w: &Writer) -> Engine {
        let mut engine = self.fresh_engine(w.id, w.incarnation);
        let mut calls = Vec::new();
        let mut node = w.trace.as_deref();
        while let Some(n) = node {
            calls.push(&n.call);
            node = n.prev.as_deref();
        }
        for call in calls.into_iter().rev() {
            run_call(&mut engine, call).expect("a replayed call is accepted");
            while engine.poll_command().is_some() {}
            while engine.poll_event().is_some() {}
        }
        engine
    }

    fn new_writer(&self, id: usize, incarnation: u32, clock: u64) -> Writer {
        Writer {
            id,
            incarnation,
            clock,
            stalled: false,
            timeout: None,
            trace: None,
            fingerprint: 0,
            op: None,
            ended: None,
            accepted: false,
            seen: BTreeMap::new(),
        }
    }

    /// Make call `first` on writer `wi`'s engine, then carry out what it commands, feeding
    /// back what the host answers at once (a `Read`, a `WriteDone` of a mutated host).
    fn drive(&self, s: &mut State, wi: usize, first: Call) {
        let mut engine = self.replay(&s.writers[wi]);
        let mut trace = s.writers[wi].trace.clone();
        let mut queue = vec![first];
        while let Some(call) = queue.pop() {
            let result = run_call(&mut engine, &call);
            if let (Call::Submit(_), Ok(Some(op))) = (&call, &result) {
                s.writers[wi].op = Some(*op);
                if self.config.mutation == Mutation::WriteBeforeGrant {
                    let w = &s.writers[wi];
                    s.writes.push(EntityWrite {
                        writer: w.id,
                        incarnation: w.incarnation,
                        op: *op,
                        fence: None,
                        sent: s.time,
                        report: false,
                    });
                }
            }
            result.expect("the model feeds only inputs the engine waits for");
            trace = Some(Arc::new(Trace { call, prev: trace }));
            while engine.poll_event().is_some() {}
            while let Some(cmd) = engine.poll_command() {
                let w = &mut s.writers[wi];
                let now = w.clock;
                match cmd {
                    Command::Store { op, operation } => s.calls.push(StoreCall {
                        writer: w.id,
                        incarnation: w.incarnation,
                        op,
                        sent_clock: now,
                        request: Some(operation),
                    }),
                    Command::Write { op, fence, .. } => {
                        let ack = self.config.mutation == Mutation::AckBeforeAccept;
                        s.writes.push(EntityWrite {
                            writer: w.id,
                            incarnation: w.incarnation,
                            op,
                            fence,
                            sent: s.time,
                            report: !ack,
                        });
                        if ack {
                            queue.push(Call::Handle(now, Input::WriteDone { op, token: None }));
                        }
                    }
                    Command::Read { op } => {
                        let token = s.ghost.last_token.clone();
                        queue.push(Call::Handle(now, Input::ReadDone { op, token }));
                    }
                    Command::Finish { outcome, .. } => {
                        w.op = None;
                        w.ended = Some(match outcome {
                            Outcome::Committed { .. } => {
                                if !w.accepted {
                                    s.ghost.violations.entry(6).or_insert_with(|| {
                                        format!(
                                            "{} committed before the entity accepted its write",
                                            w.owner()
                                        )
                                    });
                                }
                                Ended::Committed
                            }
                            Outcome::GaveUp { reason, .. } => Ended::GaveUp(reason_name(&reason)),
                        });
                    }
                }
            }
        }
        let store_ops = engine.stats().global.store_ops;
        assert!(
            store_ops <= MAX_STORE_OPS_PER_ENGINE,
            "an engine made {store_ops} store operations: over the bound within which \
             fingerprints are sound; lower the horizon"
        );
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{engine:?}").hash(&mut h);
        let w = &mut s.writers[wi];
        w.fingerprint = h.finish();
        w.timeout = engine.poll_timeout();
        w.trace = trace;
    }

    /// The store's answer (or the driver's `Lost`) to `call` reaches its writer; a crashed
    /// process's answers go nowhere.
    fn answer(&self, s: &mut State, call: StoreCall, reply: StoreReply) {
        let Some(wi) = self.writer_index(s, call.writer, call.incarnation) else {
            return;
        };
        let w = &mut s.writers[wi];
        if w.op != Some(call.op) {
            return;
        }
        let record = match &reply {
            StoreReply::Found { record } => record.as_ref(),
            StoreReply::Refused { current } => current.as_ref(),
            _ => None,
        };
        if let Some(r) = record {
            let clock = w.clock;
            let seen = w.seen.entry(progress(r)).or_insert((clock, 0));
            seen.1 += 1;
        }
        let now = w.clock;
        let input = Input::StoreReply { op: call.op, reply };
        self.drive(s, wi, Call::Handle(now, input));
    }

    fn writer_index(&self, s: &State, id: usize, incarnation: u32) -> Option<usize> {
        s.writers
            .iter()
            .position(|w| w.id == id && w.incarnation == incarnation)
    }

    /// The store applies `op` for writer (`id`, `incarnation`): core's `MemoryStore`, or a
    /// mutated store. Ghost facts are gathered here.
    fn store_apply(&self, s: &mut State, call: &StoreCall, op: StoreOp) -> StoreReply {
        let before = s.store.record(ENTITY).cloned();
        let reply = match (&op, self.config.mutation) {
            (
                StoreOp::CompareAndSwap {
                    expected_rvn,
                    record,
                    ..
                },
                Mutation::ReleaseByDelete,
            ) if record.owner.is_empty()
                && before.as_ref().is_some_and(|b| b.rvn == *expected_rvn) =>
            {
                s.store.set(ENTITY, None);
                return StoreReply::Done;
            }
            (
                StoreOp::CompareAndSwap {
                    expected_rvn,
                    record,
                    ..
                },
                Mutation::QueueJumper,
            ) if before.as_ref().is_some_and(|b| {
                b.rvn == *expected_rvn
                    && record.queue.len() == b.queue.len() + 1
                    && !b.queue.is_empty()
            }) =>
            {
                let mut jumped = record.clone();
                let newest = jumped.queue.pop().expect("a ticket was appended");
                jumped.queue.insert(0, newest);
                let first = jumped.next_ticket - jumped.queue.len() as u64;
                for (i, t) in jumped.queue.iter_mut().enumerate() {
                    t.ticket = first + i as u64;
                }
                s.store.set(ENTITY, Some(jumped));
                StoreReply::Done
            }
            (StoreOp::CompareAndSwap { record, .. }, Mutation::StoreIgnoresRvn)
                if before.is_some() =>
            {
                s.store.set(ENTITY, Some(record.clone()));
                StoreReply::Done
            }
            _ => s.store.apply(op),
        };
        if reply != StoreReply::Done {
            return reply;
        }
        let new = s
            .store
            .record(ENTITY)
            .cloned()
            .expect("a record was written");
        self.note_record(s, before.as_ref(), &new);
        self.check_fifo(s, before.as_ref(), &new);
        let taker = owner(call.writer, call.incarnation);
        if new.owner == taker {
            s.ghost
                .granted
                .insert((call.writer, call.incarnation, new.epoch));
        } else if let Some((id, incarnation)) = parse_owner(&new.owner) {
            // A release that grants the lease to the head of the queue: the grantee holds
            // from the moment it sees the grant, with no write of its own.
            if before.as_ref().is_some_and(|b| new.epoch > b.epoch) {
                s.ghost.granted.insert((id, incarnation, new.epoch));
            }
        }
        match &before {
            Some(b) if !b.owner.is_empty() && b.owner != new.owner && new.owner == taker => {
                s.ghost.takeover_seen = true;
                let wi = self.writer_index(s, call.writer, call.incarnation);
                let by_rule = wi
                    .and_then(|wi| s.writers[wi].seen.get(&progress(b)))
                    .is_some_and(|&(first, count)| {
                        call.sent_clock.saturating_sub(first) >= b.lease_ms
                            && count > self.config.polls_needed()
                    });
                if by_rule {
                    s.ghost.ended_by_rule.insert(b.epoch);
                }
            }
            _ => {}
        }
        if new.owner.is_empty() {
            self.check_free_token(s, &new, "release");
        }
        reply
    }

    /// Property 8 for a record the store took over `before`: a new holding goes to the
    /// earliest registered waiter still queued. Checked in runs with no fault so far: a
    /// crash, a lost message, an unavailable store, a clock jump or stall may get a waiter
    /// judged dead by the rule (and then overtaken, as property 8 allows), and a
    /// force-release frees the record for its head.
    fn check_fifo(&self, s: &mut State, before: Option<&LeaseRecord>, new: &LeaseRecord) {
        for t in &new.queue {
            if !s.ghost.registered.contains(&t.owner) {
                s.ghost.registered.push(t.owner.clone());
            }
        }
        let Some(b) = before else { return };
        let new_holding = !new.owner.is_empty() && (b.owner != new.owner || new.epoch > b.epoch);
        if new_holding && new.beat == 0 && b.queue.first().is_some_and(|t| t.owner == new.owner) {
            s.ghost.grant_seen = true;
        }
        if !new_holding || s.ghost.used != Faults::default() {
            return;
        }
        let place = |o: &str| s.ghost.registered.iter().position(|r| r == o);
        let mine = place(&new.owner).unwrap_or(usize::MAX);
        if let Some(earlier) = b
            .queue
            .iter()
            .find(|t| t.owner != new.owner && place(&t.owner).is_some_and(|p| p < mine))
        {
            let why = format!(
                "{} got the lease (epoch {}) while {}, registered before it, was queued",
                new.owner, new.epoch, earlier.owner
            );
            s.ghost.violations.entry(8).or_insert(why);
        }
    }

    /// Property 3 for a record the store took over `before`.
    fn note_record(&self, s: &mut State, before: Option<&LeaseRecord>, new: &LeaseRecord) {
        let max = s.ghost.max_epoch;
        let new_holder =
            !new.owner.is_empty() && !matches!(before, Some(b) if b.owner == new.owner);
        if new.epoch < max || (new_holder && new.epoch <= max) {
            s.ghost.violations.entry(3).or_insert_with(|| {
                format!(
                    "the store took epoch {} for {} after holding epoch {max}",
                    new.epoch,
                    if new_holder {
                        "a new holder"
                    } else {
                        "a record"
                    }
                )
            });
        }
        s.ghost.max_epoch = s.ghost.max_epoch.max(new.epoch);
    }

    fn check_free_token(&self, s: &mut State, free: &LeaseRecord, by: &str) {
        let ok = free.committed_token.is_none()
            || free.committed_token == s.ghost.last_token
            || s.ghost.zombie_landed;
        if !ok {
            let last = s.ghost.last_token.clone();
            s.ghost.violations.entry(5).or_insert_with(|| {
                format!(
                    "a {by} stored token {:?} while the last accepted write is {last:?}",
                    free.committed_token
                )
            });
        }
    }

    /// Property 1 and 2, after every step.
    fn check_overlap(&self, s: &mut State) {
        for (i, a) in s.writes.iter().enumerate() {
            for b in &s.writes[i + 1..] {
                if (a.writer, a.incarnation) == (b.writer, b.incarnation) {
                    continue;
                }
                let (ea, eb) = (a.fence.unwrap_or(0), b.fence.unwrap_or(0));
                let older = ea.min(eb);
                s.ghost.overlap_seen = true;
                let ended = ea != eb
                    && (s.ghost.ended_by_rule.contains(&older) || s.ghost.forced.contains(&older));
                if !ended {
                    s.ghost.violations.entry(1).or_insert_with(|| {
                        format!(
                            "writes of w{}.{} (epoch {ea}) and w{}.{} (epoch {eb}) in flight \
                             at once, the older holding not ended by the rule",
                            a.writer, a.incarnation, b.writer, b.incarnation
                        )
                    });
                }
                let used = &s.ghost.used;
                if used.stalls == 0
                    && used.force_releases == 0
                    && used.jumps <= self.config.real_time_jumps
                {
                    s.ghost.violations.entry(2).or_insert_with(|| {
                        format!(
                            "writes of w{}.{} (epoch {ea}) and w{}.{} (epoch {eb}) in flight \
                             at once with no clock stalled, no force-release, {} jumps",
                            a.writer, a.incarnation, b.writer, b.incarnation, used.jumps
                        )
                    });
                }
            }
        }
    }

    fn due(&self, w: &Writer) -> bool {
        self.config.mutation != Mutation::HostIgnoresTimers
            && w.timeout.is_some_and(|at| at <= w.clock)
    }

    fn budget_left(&self, s: &State, pick: fn(&Faults) -> u32) -> bool {
        let u = &s.ghost.used;
        let total = u.lost_requests
            + u.lost_replies
            + u.unavailable
            + u.crashes
            + u.jumps
            + u.stalls
            + u.force_releases;
        pick(u) < pick(&self.config.faults) && total < self.config.max_faults
    }

    /// Whether the run may still reach a state where property 7 applies.
    pub fn liveness_applies(s: &State) -> bool {
        s.ghost.used.crashes == 0 && s.ghost.used.unavailable == 0
    }

    /// A readable line for one step taken from `s`, with what the engines did in answer.
    pub fn describe(&self, s: &State, action: &Action) -> String {
        let mut line = self.describe_action(s, action);
        let Some(next) = self.next_state(s, action.clone()) else {
            return line;
        };
        for w in &next.writes {
            let key = (w.writer, w.incarnation, w.op);
            let before = s
                .writes
                .iter()
                .filter(|o| (o.writer, o.incarnation, o.op) == key)
                .count();
            let after = next
                .writes
                .iter()
                .filter(|o| (o.writer, o.incarnation, o.op) == key)
                .count();
            if after > before {
                let epoch = w.fence.map_or("none".to_string(), |e| e.to_string());
                let _ = write!(
                    line,
                    "; w{}.{} writes the entity (epoch {epoch})",
                    w.writer, w.incarnation
                );
            }
        }
        for w in &next.writers {
            let old = s
                .writers
                .iter()
                .find(|o| (o.id, o.incarnation) == (w.id, w.incarnation));
            if let Some(ended) = w
                .ended
                .filter(|e| old.map_or(true, |o| o.ended != Some(*e)))
            {
                let _ = write!(line, "; w{}.{} finishes: {ended:?}", w.id, w.incarnation);
            }
        }
        line
    }

    fn describe_action(&self, s: &State, action: &Action) -> String {
        let wname = |wi: usize| {
            let w = &s.writers[wi];
            format!("w{}.{} (clock {})", w.id, w.incarnation, w.clock)
        };
        let call = |i: usize| {
            let c = &s.calls[i];
            format!("w{}.{}", c.writer, c.incarnation)
        };
        match action {
            Action::Tick => format!("tick → time {}", s.time + 1),
            Action::Timer(wi) => format!("{} fires its timer", wname(*wi)),
            Action::Apply(i) | Action::ApplyLoseReply(i) => {
                let c = &s.calls[*i];
                let op = c.request.as_ref().expect("a request");
                let mut after = s.clone();
                let reply = self.store_apply(&mut after, c, op.clone());
                let tail = if matches!(action, Action::ApplyLoseReply(_)) {
                    " (reply lost)"
                } else {
                    ""
                };
                format!(
                    "{} → store {} → {}{tail}",
                    call(*i),
                    show_op(op),
                    show_reply(&reply)
                )
            }
            Action::LoseRequest(i) => format!(
                "{} → store {} (request lost)",
                call(*i),
                show_op(s.calls[*i].request.as_ref().expect("a request"))
            ),
            Action::Unavailable(i) => format!(
                "{} → store {} → unavailable",
                call(*i),
                show_op(s.calls[*i].request.as_ref().expect("a request"))
            ),
            Action::EntityApplies(i) => {
                let w = &s.writes[*i];
                format!(
                    "entity accepts the write of w{}.{} (epoch {}) as t{}",
                    w.writer,
                    w.incarnation,
                    w.fence.map_or("none".to_string(), |e| e.to_string()),
                    s.ghost.accepted + 1
                )
            }
            Action::Crash(wi) => format!("{} crashes and restarts", wname(*wi)),
            Action::Jump(wi) => {
                format!("{} clock jumps +{}", wname(*wi), self.config.jump_ms)
            }
            Action::Stall(wi) => format!("{} clock stands still next tick", wname(*wi)),
            Action::ForceRelease => "operator force-releases the record".to_string(),
        }
    }

    /// The counterexample of property `name` as readable steps, one a line.
    pub fn explain(&self, name: &str, path: &stateright::Path<State, Action>) -> String {
        let mut out = String::new();
        let mut steps = path.clone().into_vec();
        let last = steps.pop();
        for (n, (state, action)) in steps.iter().enumerate() {
            if let Some(action) = action {
                let _ = writeln!(out, "{:3}. {}", n + 1, self.describe(state, action));
            }
        }
        if let Some((state, _)) = last {
            let number = name.as_bytes().first().map_or(0, |b| b.wrapping_sub(b'0'));
            if let Some(why) = state.ghost.violations.get(&number) {
                let _ = writeln!(out, "     property {number} fails: {why}");
            }
        }
        out
    }
}

fn reason_name(reason: &GiveUpReason) -> &'static str {
    match reason {
        GiveUpReason::LeaseLost => "lease_lost",
        GiveUpReason::LockUnavailable => "lock_unavailable",
        GiveUpReason::DeadlineExceeded { .. } => "deadline_exceeded",
        GiveUpReason::StaleRevision { .. } => "stale_revision",
        GiveUpReason::Cancelled => "cancelled",
        _ => "other",
    }
}

fn short(rvn: u64) -> u64 {
    rvn % 1000
}

fn show_record(r: &LeaseRecord) -> String {
    let owner = if r.owner.is_empty() { "free" } else { &r.owner };
    let token = r.committed_token.as_deref().unwrap_or("-");
    let queue = if r.version < 2 {
        String::new()
    } else {
        let tickets: Vec<String> = r
            .queue
            .iter()
            .map(|t| format!("{}#{}b{}", t.owner, t.ticket, t.beat))
            .collect();
        format!(" beat {} queue [{}]", r.beat, tickets.join(" "))
    };
    format!(
        "{{{owner} epoch {} rvn …{} token {token}{queue}}}",
        r.epoch,
        short(r.rvn)
    )
}

/// What the staleness rule watches in a record, as the core's lease client does: the rvn
/// of a version 1 record, the owner, epoch and beat of a version 2 holding.
fn progress(r: &LeaseRecord) -> (String, u64, u64) {
    if r.version < 2 {
        (String::new(), 0, r.rvn)
    } else {
        (r.owner.clone(), r.epoch, r.beat)
    }
}

fn show_op(op: &StoreOp) -> String {
    match op {
        StoreOp::Get { .. } => "get".to_string(),
        StoreOp::PutIfAbsent { record, .. } => format!("put-if-absent {}", show_record(record)),
        StoreOp::CompareAndSwap {
            expected_rvn,
            record,
            ..
        } => format!("CAS rvn …{}→{}", short(*expected_rvn), show_record(record)),
    }
}

fn show_reply(reply: &StoreReply) -> String {
    match reply {
        StoreReply::Found { record: Some(r) } => format!("found {}", show_record(r)),
        StoreReply::Found { record: None } => "found none".to_string(),
        StoreReply::Done => "done".to_string(),
        StoreReply::Refused { current: Some(r) } => format!("refused, {}", show_record(r)),
        StoreReply::Refused { current: None } => "refused, none".to_string(),
        StoreReply::Lost => "lost".to_string(),
        StoreReply::Unavailable => "unavailable".to_string(),
    }
}

/// Make one call on an engine; a submit returns its operation.
fn run_call(engine: &mut Engine, call: &Call) -> Result<Option<OpId>, writelane_core::UsageError> {
    match call {
        Call::Submit(now) => {
            let options = SubmitOptions {
                no_read: true,
                ..SubmitOptions::default()
            };
            engine.submit(ENTITY, *now, options).map(Some)
        }
        Call::Timeout(now) => engine.handle_timeout(*now).map(|_| None),
        Call::Handle(now, input) => engine.handle(*now, input.clone()).map(|_| None),
    }
}

impl Model for LeaseModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut s = State {
            time: 0,
            writers: (1..=self.config.writers)
                .map(|id| self.new_writer(id, 1, 0))
                .collect(),
            store: MemoryStore::new(),
            calls: Vec::new(),
            writes: Vec::new(),
            ghost: Ghost::default(),
        };
        for wi in 0..s.writers.len() {
            self.drive(&mut s, wi, Call::Submit(0));
        }
        self.check_overlap(&mut s);
        vec![s]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        let busy = !s.calls.is_empty()
            || s.writers.iter().any(|w| self.due(w))
            || s.writes
                .iter()
                .any(|w| s.time.saturating_sub(w.sent) >= self.config.rule.max_write_ms);
        if s.time < self.config.horizon && !busy {
            actions.push(Action::Tick);
        }
        // A due timer fires before anything else happens (hosts fire timers when due): one
        // writer at a time, the first; its store request then races the others'.
        if let Some(wi) = s.writers.iter().position(|w| self.due(w)) {
            actions.push(Action::Timer(wi));
            return;
        }
        for (i, c) in s.calls.iter().enumerate() {
            actions.push(Action::Apply(i));
            if self.writer_index(s, c.writer, c.incarnation).is_none() {
                // A crashed process's request may never have left the machine.
                actions.push(Action::LoseRequest(i));
                continue;
            }
            if self.budget_left(s, |f| f.lost_replies) {
                actions.push(Action::ApplyLoseReply(i));
            }
            if self.budget_left(s, |f| f.lost_requests) {
                actions.push(Action::LoseRequest(i));
            }
            if self.budget_left(s, |f| f.unavailable) {
                actions.push(Action::Unavailable(i));
            }
        }
        for i in 0..s.writes.len() {
            actions.push(Action::EntityApplies(i));
        }
        for (wi, w) in s.writers.iter().enumerate() {
            if w.op.is_some() && self.budget_left(s, |f| f.crashes) {
                actions.push(Action::Crash(wi));
            }
            if w.op.is_some() && self.budget_left(s, |f| f.jumps) {
                actions.push(Action::Jump(wi));
            }
            if w.op.is_some()
                && !w.stalled
                && s.time < self.config.horizon
                && self.budget_left(s, |f| f.stalls)
            {
                actions.push(Action::Stall(wi));
            }
        }
        if self.budget_left(s, |f| f.force_releases)
            && s.store.record(ENTITY).is_some_and(|r| !r.owner.is_empty())
        {
            actions.push(Action::ForceRelease);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Tick => {
                s.time += 1;
                for w in &mut s.writers {
                    if w.stalled {
                        w.stalled = false;
                    } else {
                        w.clock += 1;
                    }
                }
            }
            Action::Timer(wi) => {
                let now = s.writers[wi].clock;
                self.drive(&mut s, wi, Call::Timeout(now));
            }
            Action::Apply(i) | Action::ApplyLoseReply(i) => {
                let call = s.calls.remove(i);
                let op = call.request.clone().expect("a request");
                let reply = self.store_apply(&mut s, &call, op);
                let lose = matches!(action, Action::ApplyLoseReply(_));
                if lose {
                    s.ghost.used.lost_replies += 1;
                }
                self.answer(&mut s, call, if lose { StoreReply::Lost } else { reply });
            }
            Action::LoseRequest(i) => {
                let call = s.calls.remove(i);
                if self
                    .writer_index(&s, call.writer, call.incarnation)
                    .is_some()
                {
                    s.ghost.used.lost_requests += 1;
                }
                self.answer(&mut s, call, StoreReply::Lost);
            }
            Action::Unavailable(i) => {
                s.ghost.used.unavailable += 1;
                let call = s.calls.remove(i);
                self.answer(&mut s, call, StoreReply::Unavailable);
            }
            Action::EntityApplies(i) => {
                let write = s.writes.remove(i);
                s.ghost.accepted += 1;
                let token = format!("t{}", s.ghost.accepted);
                s.ghost.last_token = Some(token.clone());
                let epoch = write.fence.unwrap_or(0);
                if !s
                    .ghost
                    .granted
                    .contains(&(write.writer, write.incarnation, epoch))
                {
                    s.ghost.violations.entry(4).or_insert_with(|| {
                        format!(
                            "the entity accepted a write of w{}.{} under epoch {epoch}, \
                             never granted to it",
                            write.writer, write.incarnation
                        )
                    });
                }
                if s.ghost.ended_by_rule.contains(&epoch) || s.ghost.forced.contains(&epoch) {
                    s.ghost.zombie_landed = true;
                }
                if let Some(wi) = self.writer_index(&s, write.writer, write.incarnation) {
                    s.writers[wi].accepted = true;
                    if write.report && s.writers[wi].op == Some(write.op) {
                        let now = s.writers[wi].clock;
                        let input = Input::WriteDone {
                            op: write.op,
                            token: Some(token),
                        };
                        self.drive(&mut s, wi, Call::Handle(now, input));
                    }
                }
            }
            Action::Crash(wi) => {
                s.ghost.used.crashes += 1;
                let old = &s.writers[wi];
                let (id, incarnation, clock) = (old.id, old.incarnation + 1, old.clock);
                s.writers[wi] = self.new_writer(id, incarnation, clock);
                self.drive(&mut s, wi, Call::Submit(clock));
            }
            Action::Jump(wi) => {
                s.ghost.used.jumps += 1;
                s.writers[wi].clock += self.config.jump_ms;
            }
            Action::Stall(wi) => {
                s.ghost.used.stalls += 1;
                s.writers[wi].stalled = true;
            }
            Action::ForceRelease => {
                s.ghost.used.force_releases += 1;
                let found = s.store.record(ENTITY).cloned();
                let entropy = 0xF0_0000 + u64::from(s.ghost.used.force_releases);
                if let ForceReleasePlan::Swap(mut op) =
                    plan_force_release(ENTITY, found.clone(), None, entropy)
                {
                    if self.config.mutation == Mutation::ForceReleaseKeepsToken {
                        if let StoreOp::CompareAndSwap { record, .. } = &mut op {
                            record.committed_token =
                                found.as_ref().and_then(|f| f.committed_token.clone());
                        }
                    }
                    let reply = s.store.apply(op.clone());
                    if let Some(ForceReleaseResult::Released { record }) =
                        finish_force_release(&op, reply)
                    {
                        if let Some(f) = &found {
                            s.ghost.forced.insert(f.epoch);
                        }
                        self.note_record(&mut s, found.as_ref(), &record);
                        self.check_free_token(&mut s, &record, "force-release");
                    }
                }
            }
        }
        self.check_overlap(&mut s);
        Some(s)
    }

    fn format_step(&self, last: &State, action: Action) -> Option<String> {
        Some(self.describe(last, &action))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(P1, |_, s: &State| !s.ghost.violations.contains_key(&1)),
            Property::always(P2, |_, s: &State| !s.ghost.violations.contains_key(&2)),
            Property::always(P3, |_, s: &State| !s.ghost.violations.contains_key(&3)),
            Property::always(P4, |_, s: &State| !s.ghost.violations.contains_key(&4)),
            Property::always(P5, |_, s: &State| !s.ghost.violations.contains_key(&5)),
            Property::always(P6, |_, s: &State| !s.ghost.violations.contains_key(&6)),
            Property::always(P7, |m: &LeaseModel, s: &State| {
                if !m.config.liveness || !LeaseModel::liveness_applies(s) {
                    return true;
                }
                let mut next = Vec::new();
                m.actions(s, &mut next);
                !next.is_empty() || s.writers.iter().all(|w| w.ended.is_some())
            }),
            Property::always(P8, |_, s: &State| !s.ghost.violations.contains_key(&8)),
            Property::sometimes(SOME_COMMIT, |_, s: &State| {
                s.writers
                    .iter()
                    .filter(|w| w.ended == Some(Ended::Committed))
                    .count()
                    >= 2
            }),
            Property::sometimes(SOME_TAKEOVER, |_, s: &State| s.ghost.takeover_seen),
            Property::sometimes(SOME_GRANT, |_, s: &State| s.ghost.grant_seen),
        ]
    }
}

/// Property 1's name.
pub const P1: &str = "1 exclusion (unless ended by the rule or forced)";
/// Property 2's name.
pub const P2: &str = "2 real-time exclusion (no stall, no force-release, <= 2 jumps)";
/// Property 3's name.
pub const P3: &str = "3 epochs only grow";
/// Property 4's name.
pub const P4: &str = "4 every accepted write carries a granted epoch";
/// Property 5's name.
pub const P5: &str = "5 a free record's token is the last accepted write's, or none";
/// Property 6's name.
pub const P6: &str = "6 no commit before the entity accepted the write";
/// Property 7's name.
pub const P7: &str = "7 liveness: no crash, store available => every op finishes";
/// Property 8's name.
pub const P8: &str = "8 FIFO: a new holding goes to the earliest registered waiter (no faults)";
/// A coverage check: two writers commit in one run.
pub const SOME_COMMIT: &str = "coverage: two writers commit";
/// A coverage check: a release grants the lease to the head of the queue.
pub const SOME_GRANT: &str = "coverage: a release grants the queue's head";
/// A coverage check: a takeover happens.
pub const SOME_TAKEOVER: &str = "coverage: a takeover";

/// The safety and liveness properties (not the coverage checks).
pub const PROPERTIES: [&str; 8] = [P1, P2, P3, P4, P5, P6, P7, P8];

/// What one exhaustive run found.
#[derive(Debug)]
pub struct Report {
    /// States generated (with repeats).
    pub states: usize,
    /// Distinct states.
    pub unique: usize,
    /// Deepest path.
    pub depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Each property that failed, with its counterexample's length and readable steps.
    pub failures: BTreeMap<&'static str, (usize, String)>,
    /// The coverage checks that found an example.
    pub covered: BTreeSet<&'static str>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} states ({} distinct), depth {}, {:.1} s",
            self.states,
            self.unique,
            self.depth,
            self.elapsed.as_secs_f64()
        )?;
        for (name, (len, steps)) in &self.failures {
            writeln!(
                f,
                "property \"{name}\" fails; shortest counterexample ({len} steps):"
            )?;
            write!(f, "{steps}")?;
        }
        Ok(())
    }
}

/// Check `config` exhaustively (breadth-first, so each counterexample is a shortest one).
/// With `until`, stop once that property has failed.
pub fn check(config: Config, until: Option<&'static str>) -> Report {
    let model = LeaseModel::new(config);
    let start = Instant::now();
    let mut builder = model.clone().checker().threads(1);
    if let Some(name) = until {
        builder = builder.finish_when(HasDiscoveries::AnyOf(BTreeSet::from([name])));
    }
    let checker = builder.spawn_bfs().join();
    report(&model, &checker, start.elapsed())
}

/// Walk `config` at random for `duration` (for more writers than an exhaustive run allows).
pub fn simulate(config: Config, seed: u64, duration: Duration) -> Report {
    let model = LeaseModel::new(config);
    let start = Instant::now();
    let checker = model
        .clone()
        .checker()
        .threads(1)
        .timeout(duration)
        .spawn_simulation(seed, stateright::UniformChooser)
        .join();
    report(&model, &checker, start.elapsed())
}

fn report(model: &LeaseModel, checker: &impl Checker<LeaseModel>, elapsed: Duration) -> Report {
    let mut failures = BTreeMap::new();
    let mut covered = BTreeSet::new();
    for (name, path) in checker.discoveries() {
        if name == SOME_COMMIT || name == SOME_TAKEOVER || name == SOME_GRANT {
            covered.insert(name);
        } else {
            let len = path.clone().into_actions().len();
            failures.insert(name, (len, model.explain(name, &path)));
        }
    }
    Report {
        states: checker.state_count(),
        unique: checker.unique_state_count(),
        depth: checker.max_depth(),
        elapsed,
        failures,
        covered,
    }
}
