//! The lane engine: the whole write discipline as a sans-IO state machine.
//!
//! The host submits logical writes, drains [`Command`]s and carries them out, feeds back
//! what it observed as [`Input`]s, and calls [`Engine::handle_timeout`] when
//! [`Engine::poll_timeout`] says so. The engine never reads a clock, sleeps or performs IO.
//! The contract the host keeps is written on [`Engine`].
//!
//! # Phases
//!
//! Each operation is in one phase, and the phase is the whole of where it is: which
//! command is out, which timer runs, what follows a lease step. What an operation has
//! learned (attempts, failures, the token its next write is based on) is kept beside it.
//!
//! | phase | the operation | command it carries | its timer |
//! |---|---|---|---|
//! | `queued` | waits for the entity's lane | — | its deadline, if any |
//! | `cooling` | holds the lane, waits out a conflict cool-down | — | the end of the cool-down |
//! | `reading` | reads the entity before a write | `read` | — |
//! | `reading (readback)` | reads whether a write whose outcome was unknown landed | `read` | — |
//! | `writing` | writes | `write` | — |
//! | `applying` | a batch's leader: the host applies the batch's changes | `apply` | — |
//! | `batched` | an update riding in another's batch, waiting for its outcome | — | — |
//! | `backoff` | waits before the next call | — | the end of the backoff, or a lease renewal before it |
//! | `leasing (store)` | shared lanes: a lease-store operation is out | `store` | — |
//! | `leasing (timer)` | shared lanes: the lease client waits (a held record, a lock-delay, an unavailable store) | — | the lease client's |
//! | `finishing` | is over; polling its `finish` command forgets it | `finish` | — |
//!
//! # Transitions
//!
//! Every transition an input causes, in one table. [`Engine::handle`] and
//! [`Engine::handle_timeout`] are one `match` each over (phase, input), with an arm per
//! row naming its step; `timeout` is the operation's timer firing in
//! [`Engine::handle_timeout`]. A cell not in the table is refused with
//! [`UsageError::UnexpectedInput`] naming what the phase waits for, and an answer to a
//! command the host has not polled yet with [`UsageError::CommandNotDrained`]; both change
//! nothing. `finishing` accepts no input. A test drives real engines into every phase,
//! feeds each of the eight inputs, and checks that exactly these cells are accepted and
//! lead where the table says.
//!
//! "Retry" means: the policy allows another call (class, attempts, budgets, deadline) and
//! the operation enters `backoff`, or reads or writes at once when the delay is 0; else it
//! gives up. "Write" means: with a shared lease too short for the write, `leasing (store)`
//! renews it first; else `writing`. Wherever an operation finishes while it holds a shared
//! lease, it passes through `leasing (store)` to release it first.
//!
//! | phase | input | step | next phase | commands |
//! |---|---|---|---|---|
//! | `queued` | `timeout` | `lane_deadline`: the deadline came in the queue, give up | `finishing` | `finish` |
//! | `queued` | `cancel` | `cancel`: give up | `finishing` | `finish` |
//! | `cooling` | `timeout` | `begin`: acquire the lease (shared lanes), or read, or write | `reading`, `writing`, `leasing (store)` | `read`, `write`, `store` |
//! | `cooling` | `cancel` | `cancel`: give up | `finishing` | `finish` |
//! | `reading` | `read_done` | `read_done`: the expected revision, write on it; another, give up; an update gathers its batch and applies | `writing`, `leasing (store)`, `finishing`, `applying` | `write`, `store`, `finish`, `apply` |
//! | `reading` | `read_failed` | `read_failed`: retry, or give up | `backoff`, `reading`, `writing`, `leasing (store)`, `finishing` | `read`, `write`, `store`, `finish` |
//! | `reading` | `cancel` | `cancel`: give up | `finishing`, `leasing (store)` | `finish`, `store` |
//! | `reading (readback)` | `read_done` | `read_done`: the write landed, commit; it did not, retry | `finishing`, `leasing (store)`, `backoff`, `reading`, `writing` | `finish`, `store`, `read`, `write` |
//! | `reading (readback)` | `read_failed` | `read_failed`: retry, or give up | `backoff`, `reading`, `writing`, `leasing (store)`, `finishing` | `read`, `write`, `store`, `finish` |
//! | `reading (readback)` | `cancel` | `cancel`: give up | `finishing`, `leasing (store)` | `finish`, `store` |
//! | `writing` | `write_done` | `commit`; a batch's next half reads | `finishing`, `leasing (store)`, `reading` | `finish`, `store`, `read` |
//! | `writing` | `write_failed` | `write_failed`: unknown outcome, read back; else retry, or give up | `reading (readback)`, `backoff`, `reading`, `writing`, `leasing (store)`, `finishing` | `read`, `write`, `store`, `finish` |
//! | `writing` | `cancel` | `cancel`: give up | `finishing`, `leasing (store)` | `finish`, `store` |
//! | `applying` | `apply_done` | `apply_done`: refused changes give up; write the rest, or the next half reads, or finish | `writing`, `leasing (store)`, `reading`, `finishing` | `write`, `store`, `read`, `finish` |
//! | `applying` | `cancel` | `cancel`: give up, the batch's other updates back to the head of the queue | `finishing`, `leasing (store)` | `finish`, `store` |
//! | `batched` | `cancel` | `cancel`: leave the batch, give up | `finishing` | `finish` |
//! | `backoff` | `timeout` | `renew_in_backoff`: a renewal falls due first; else `after_backoff`: read or write | `leasing (store)`, `reading`, `writing` | `store`, `read`, `write` |
//! | `backoff` | `cancel` | `cancel`: give up | `finishing`, `leasing (store)` | `finish`, `store` |
//! | `leasing (store)` | `store_reply` | `store_replied`: the lease client goes on, or the operation resumes, or gives up (lease lost, store unavailable) | `leasing (store)`, `leasing (timer)`, `reading`, `writing`, `backoff`, `finishing` | `store`, `read`, `write`, `finish` |
//! | `leasing (store)` | `cancel` | `cancel`: give up, abandoning the store operation | `finishing` | `finish` |
//! | `leasing (timer)` | `timeout` | `lease_timer`: poll the record again, or the lock-delay is over | `leasing (store)`, `reading`, `writing` | `store`, `read`, `write` |
//! | `leasing (timer)` | `cancel` | `cancel`: give up | `finishing` | `finish` |
//!
//! Two transitions follow no input of the operation's own. [`Engine::submit`] puts an
//! operation in `queued` when its entity's lane is busy and grants it the lane at once
//! otherwise; when an operation finishes, the first `queued` one of its entity is granted
//! the lane. Granting enters `cooling` while a cool-down runs (or gives up at once when the
//! deadline falls inside it), and otherwise begins as in `cooling`'s `timeout` row.

//! # Group commit
//!
//! An operation submitted with [`Engine::submit_update`] is an *update*: a change the host
//! applies to the entity's document, rather than an opaque write. The table's `applying`
//! and `batched` rows are theirs; in words:
//!
//! - an update always reads, and its `read_done` gathers the updates queued right behind
//!   it (FIFO, up to `batch.max_changes`, stopping at an opaque write, which is never
//!   batched) into its batch; they enter `batched`, which holds no lane, carries no
//!   command and has no timer, and accepts only `cancel`. The leader then enters
//!   `applying` and carries an [`Apply`] naming the batch's updates (drained by
//!   [`Engine::poll_action`]; `poll_command` leaves it);
//! - `applying` + `apply_done`: a refused change gives its update up as `fatal` with the
//!   host's code; the rest are written with one `write` (`writing`), or, if none is left,
//!   the batch goes on as below. `applying` + `cancel` cancels the leader;
//! - the batch's `write_done` (or a read-back that finds its token) commits every update
//!   in it with the write's token and attempts. A `fatal` `write_failed` of a batch of
//!   more than one change splits it in halves, the second kept for later, and reads again
//!   for the first (a split spends no attempt); a batch of one gives its update up. Then
//!   the next half reads, or, with none left, the leader finishes with its own outcome.
//!   Every other failure is retried, or given up, for the whole batch: conflicts,
//!   attempts, budgets, deadline and the lease are the leader's.
//!
//! A `cancel` of a `batched` update takes it out of the batch (a write already out with
//! its change may still land, as for any write cancelled mid-way). A cancelled leader
//! gives its batch's other updates back to the head of the queue, in order; the first
//! leads the next batch. An update granted the lane waits `batch.linger_ms` in `cooling`
//! first (never past its deadline), so that more updates can queue behind it.

mod entity;
mod op;
#[cfg(test)]
mod tests;
mod types;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use crate::backoff::{plan_retry, refill_on_success, Bucket, Refusal, RetryRequest};
use crate::classify::{classify, ErrorClass, Failure};
use crate::entities::{Entities, EntityId};
use crate::error::UsageError;
use crate::lease::{LeaseClient, LeaseEvent, StoreReply};
use crate::limits::MAX_ENTITY_LEN;
use crate::policy::{LaneMode, Policy};
use crate::rng::DecisionRng;

use entity::{Counter, Entity};
use op::{Batch, LeaseWait, Op, Phase, Resume, Shared, Timer};
use types::{check_code, check_token};
pub use types::{
    Action, Apply, ApplyResult, Command, Counters, EngineState, EntityRecord, EntityStats, Event,
    GiveUpReason, Input, OpId, Outcome, Stats, SubmitOptions, UpdateOptions, MAX_QUEUED_EVENTS,
    STATE_VERSION,
};

/// The write-discipline engine: every operation of one host, on every entity.
///
/// # The sans-IO contract
///
/// The engine performs no IO, reads no clock, never sleeps and draws no OS randomness. The
/// host tells it the time, carries out its commands and reports what happened. Its
/// methods come in groups:
///
/// - **constructors**: [`Engine::new`], [`Engine::with_owner`] (shared lanes need an
///   owner id);
/// - **getters**, which change nothing: [`Engine::policy`], [`Engine::stats`],
///   [`Engine::export_state`], [`Engine::entity_of`];
/// - **mutators**: [`Engine::submit`] starts an operation, [`Engine::import_state`]
///   restores what an earlier engine learned;
/// - **`handle_*`**: [`Engine::handle`] feeds what the host observed for one operation,
///   [`Engine::handle_timeout`] fires every timer that is due;
/// - **`poll_*`**, which drain what the engine decided: [`Engine::poll_command`] (or
///   [`Engine::poll_command_for`] one operation), [`Engine::poll_timeout`] (or
///   [`Engine::poll_timeout_for`]), [`Engine::poll_event`].
///
/// The rules:
///
/// 1. **Time** is a `u64` of milliseconds on a monotonic clock the host chooses, passed as
///    `now` to every call that can change state. It never goes backwards: an earlier
///    `now` is refused with [`UsageError::TimeWentBackwards`].
/// 2. **Drain commands after every call** to `submit`, `handle` or `handle_timeout`: poll
///    until [`Engine::poll_command`] returns `None` and carry each command out. Each
///    operation has **at most one pending command** (a `Read`, a `Write`, a `Store` or its
///    `Finish`), and an answer to a command is accepted only once the command has been
///    polled ([`UsageError::CommandNotDrained`]); a `Cancel` is accepted at any time
///    before the finish.
/// 3. **Answer each command** with the matching input: `Read` with `ReadDone` or
///    `ReadFailed`, `Write` with `WriteDone` or `WriteFailed`, `Store` with `StoreReply`.
///    `Finish` needs no answer; once it is polled the operation is forgotten.
/// 4. **Then ask for the time**: [`Engine::poll_timeout`] is the earliest time at which
///    [`Engine::handle_timeout`] must be called. Waiting for a lane, backing off, cooling
///    down and lease polling are all timeouts, never sleeps inside the engine. Calling
///    `handle_timeout` early or late is safe: it fires what is due at `now`.
/// 5. **Drain events** with [`Engine::poll_event`] when convenient; at most
///    [`MAX_QUEUED_EVENTS`] are kept, the oldest dropped first and counted.
///
/// Misuse is a typed [`UsageError`] and changes nothing: an unknown operation, an input its
/// phase does not wait for (the transition table is in the documentation of
/// `src/engine/mod.rs`), a malformed token, code, entity or owner. No input sequence makes
/// the engine panic.
///
/// The same policy, seed and inputs give the same commands, on every platform and in every
/// binding.
#[derive(Debug)]
pub struct Engine {
    policy: Policy,
    rng: DecisionRng,
    now: u64,
    next_op: u64,
    /// Unkeyed hashing: op ids are the engine's own counter, and the engine draws no OS
    /// randomness.
    ops: HashMap<OpId, Op, BuildHasherDefault<DefaultHasher>>,
    entities: Entities<Entity>,
    /// Operations whose phase carries a command not polled yet, in the order they got it.
    ready: VecDeque<OpId>,
    /// Every armed timer: each operation's phase timer ([`Op::timer`]) and cool-down ends.
    timers: BTreeSet<(u64, Timer)>,
    events: VecDeque<Event>,
    dropped_events: u64,
    bucket: Option<Bucket>,
    counters: Counters,
    /// Who this engine is in lease records (shared lanes).
    owner: Option<String>,
}

/// What the engine checks in an input before it acts on it.
enum Check<'a> {
    /// Nothing (a cancel; a store reply, whose record the lease client judges).
    Nothing,
    /// The length of a change token.
    Token(Option<&'a str>),
    /// The lengths of a failure's intended token and error code.
    Failure(&'a Failure),
    /// The lengths of the codes of refused changes.
    Results(&'a [ApplyResult]),
}

/// Constructors.
impl Engine {
    /// An engine under `policy`, drawing jitter from a ChaCha generator seeded with `seed`.
    pub fn new(policy: Policy, seed: u64) -> Engine {
        let bucket = policy
            .budget
            .enabled
            .then(|| Bucket::new(policy.budget.initial, policy.budget.capacity));
        Engine {
            policy,
            rng: DecisionRng::new(seed),
            now: 0,
            next_op: 1,
            ops: HashMap::default(),
            entities: Entities::new(seed),
            ready: VecDeque::new(),
            timers: BTreeSet::new(),
            events: VecDeque::new(),
            dropped_events: 0,
            bucket,
            counters: Counters::default(),
            owner: None,
        }
    }

    /// An engine that writes lease records as `owner` (unique per process, such as
    /// `host:pid:random`); shared lanes need one.
    pub fn with_owner(policy: Policy, seed: u64, owner: &str) -> Result<Engine, UsageError> {
        crate::lease::check_owner(owner)?;
        let mut engine = Engine::new(policy, seed);
        engine.owner = Some(owner.to_string());
        Ok(engine)
    }
}

/// Getters: they change nothing.
impl Engine {
    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Counters and budget levels now.
    pub fn stats(&self) -> Stats {
        let now = self.now;
        Stats {
            global: self.counters,
            budget: self.bucket.map(|b| b.level),
            active_ops: self.ops.len() as u64,
            dropped_events: self.dropped_events,
            entities: self
                .entities
                .iter()
                .map(|(name, e)| {
                    (
                        name.to_string(),
                        EntityStats {
                            counters: e.counters(),
                            budget: e.bucket.map(|b| b.level),
                            queued: e.queued() as u32,
                            busy: e.busy,
                            cooling: e.cooling_until().is_some_and(|u| u > now),
                            committed_token: e.committed.as_deref().map(String::from),
                        },
                    )
                })
                .collect(),
        }
    }

    /// What the engine learned: committed tokens and budget levels.
    pub fn export_state(&self) -> EngineState {
        EngineState {
            version: STATE_VERSION,
            budget: self.bucket.map(|b| b.level),
            entities: self
                .entities
                .iter()
                .filter(|(_, e)| {
                    e.committed.is_some() || e.bucket.is_some_and(|b| b.level < b.capacity)
                })
                .map(|(name, e)| {
                    (
                        name.to_string(),
                        EntityRecord {
                            committed_token: e.committed.as_deref().map(String::from),
                            budget: e.bucket.map(|b| b.level),
                        },
                    )
                })
                .collect(),
        }
    }

    /// The name of the entity an operation writes, while the operation is live.
    pub fn entity_of(&self, id: OpId) -> Option<&str> {
        self.ops.get(&id).map(|op| &**self.entities.name(op.entity))
    }
}

/// Mutators.
impl Engine {
    /// Start one logical write of `entity` at `now`. Drain commands afterwards: the
    /// operation may already have one.
    pub fn submit(
        &mut self,
        entity: &str,
        now: u64,
        options: SubmitOptions,
    ) -> Result<OpId, UsageError> {
        self.submit_op(entity, now, options, false)
    }

    /// Start one update of `entity` at `now`: a change the host applies to the entity's
    /// document when the engine says so, rather than an opaque write. Updates queued
    /// behind the lane holder join its batch (group commit): the batch's leader reads
    /// once, the host applies every change in FIFO order ([`Apply`]), and one write
    /// carries them all. Every update of the batch finishes with that write's outcome and
    /// token. Hosts that submit updates drain with [`Engine::poll_action`], which also
    /// returns the `Apply` step; change functions may run more than once, on fresher
    /// documents (after a conflict, or when a fatal write is bisected).
    pub fn submit_update(
        &mut self,
        entity: &str,
        now: u64,
        options: UpdateOptions,
    ) -> Result<OpId, UsageError> {
        let options = SubmitOptions {
            deadline_ms: options.deadline_ms,
            holder: options.holder,
            ..SubmitOptions::default()
        };
        self.submit_op(entity, now, options, true)
    }

    fn submit_op(
        &mut self,
        entity: &str,
        now: u64,
        options: SubmitOptions,
        update: bool,
    ) -> Result<OpId, UsageError> {
        if entity.is_empty() || entity.len() > MAX_ENTITY_LEN {
            return Err(UsageError::InvalidEntity {
                reason: format!(
                    "length {} is outside 1..={MAX_ENTITY_LEN} bytes",
                    entity.len()
                ),
            });
        }
        check_token(options.expected.as_deref())?;
        if self.policy.lanes.mode == LaneMode::Shared && self.owner.is_none() {
            return Err(UsageError::InvalidOwner {
                reason: "shared lanes need an owner: build the engine with Engine::with_owner"
                    .into(),
            });
        }
        if options
            .holder
            .as_ref()
            .is_some_and(|h| h.len() > crate::lease::MAX_HOLDER_LEN)
        {
            return Err(UsageError::InvalidOwner {
                reason: format!("holder is over {} bytes", crate::lease::MAX_HOLDER_LEN),
            });
        }
        if options.no_read && options.expected.is_some() {
            return Err(UsageError::ExpectedNeedsRead);
        }
        self.advance(now)?;
        let op_id = OpId(self.next_op);
        self.next_op += 1;
        let eid = self.entity_id(entity);
        let deadline_ms = options.deadline_ms.or(self.policy.deadline_ms);
        self.ops.insert(
            op_id,
            Op {
                entity: eid,
                expected: options.expected,
                deadline_at: deadline_ms.map(|d| now.saturating_add(d)),
                // Not entered yet: the grant below, or queueing, enters the first phase.
                phase: Phase::Queued { since: now },
                writes: 0,
                failures: 0,
                last_delay_ms: 0,
                last_cost: 0,
                base: None,
                last_failure: None,
                holder: options.holder,
                no_read: options.no_read,
                shared: None,
                update,
                batch: None,
            },
        );
        self.count(eid, Counter::Submitted);
        let name = self.name(eid);
        self.emit(Event::Submitted {
            op: op_id,
            entity: name.clone(),
            at: now,
        });
        let lanes = self.policy.lanes.mode != LaneMode::None;
        let e = &mut self.entities[eid];
        if lanes && e.busy {
            let queue = &mut e.extra().queue;
            queue.push_back(op_id);
            let ahead = queue.len() as u32;
            self.count(eid, Counter::LaneWaits);
            self.emit(Event::LaneWaitStarted {
                op: op_id,
                entity: name,
                at: now,
                ahead,
            });
            // Entering arms the deadline, if there is one.
            self.enter(op_id, Phase::Queued { since: now });
        } else {
            self.grant(op_id);
        }
        Ok(op_id)
    }

    /// Restore what an earlier engine exported. Levels are clamped to this policy's
    /// capacities; tokens replace what this engine knows.
    pub fn import_state(&mut self, state: &EngineState) -> Result<(), UsageError> {
        if state.version != STATE_VERSION {
            return Err(UsageError::InvalidState {
                reason: format!("version {} is not {STATE_VERSION}", state.version),
            });
        }
        for (name, rec) in &state.entities {
            if name.is_empty() || name.len() > MAX_ENTITY_LEN {
                return Err(UsageError::InvalidState {
                    reason: format!("entity name of {} bytes", name.len()),
                });
            }
            check_token(rec.committed_token.as_deref())?;
        }
        if let (Some(b), Some(level)) = (self.bucket.as_mut(), state.budget) {
            b.level = level.min(b.capacity);
        }
        for (name, rec) in &state.entities {
            let id = self.entity_id(name);
            let e = &mut self.entities[id];
            e.committed = rec.committed_token.as_deref().map(Box::from);
            if let (Some(b), Some(level)) = (e.bucket.as_mut(), rec.budget) {
                b.level = level.min(b.capacity);
            }
        }
        Ok(())
    }
}

/// `handle_*`: what the host observed, and the passing of time. Each is one `match` over
/// (phase, input), the transition table of the module documentation.
impl Engine {
    /// Feed what the host observed for one operation. Drain commands afterwards.
    ///
    /// Refused, changing nothing, in this order: an unknown operation; an input the
    /// operation's phase does not wait for; an answer to a command not polled yet; a token
    /// or code over its length limit; a `now` earlier than the last.
    pub fn handle(&mut self, now: u64, input: Input) -> Result<(), UsageError> {
        let id = input.op();
        let Some(op) = self.ops.get(&id) else {
            return Err(UsageError::UnknownOp { op: id });
        };
        let name = input.name();
        match (&op.phase, input) {
            // An answer to a command the host has not taken yet.
            (
                Phase::Reading { polled: false, .. },
                Input::ReadDone { .. } | Input::ReadFailed { .. },
            )
            | (
                Phase::Writing { polled: false },
                Input::WriteDone { .. } | Input::WriteFailed { .. },
            )
            | (
                Phase::Leasing {
                    wait: LeaseWait::Reply { operation: Some(_) },
                    ..
                },
                Input::StoreReply { .. },
            )
            | (Phase::Applying { sent: None }, Input::ApplyDone { .. }) => {
                return Err(UsageError::CommandNotDrained {
                    op: id,
                    input: name,
                })
            }
            (phase, Input::Cancel { .. }) if !matches!(phase, Phase::Finishing { .. }) => {
                self.admit(now, Check::Nothing)?.cancel(id)
            }
            (&Phase::Reading { readback, .. }, Input::ReadDone { token, .. }) => self
                .admit(now, Check::Token(token.as_deref()))?
                .read_done(id, readback, token),
            (Phase::Reading { .. }, Input::ReadFailed { failure, .. }) => self
                .admit(now, Check::Failure(&failure))?
                .read_failed(id, failure),
            (Phase::Writing { .. }, Input::WriteDone { token, .. }) => self
                .admit(now, Check::Token(token.as_deref()))?
                .commit(id, token),
            (Phase::Writing { .. }, Input::WriteFailed { failure, .. }) => self
                .admit(now, Check::Failure(&failure))?
                .write_failed(id, failure),
            (
                Phase::Leasing {
                    wait: LeaseWait::Reply { .. },
                    ..
                },
                Input::StoreReply { reply, .. },
            ) => self.admit(now, Check::Nothing)?.store_replied(id, reply),
            (Phase::Applying { sent: Some(sent) }, Input::ApplyDone { results, .. }) => {
                if results.len() != sent.len() || results.iter().zip(sent).any(|(r, &s)| r.op != s)
                {
                    return Err(UsageError::UnexpectedInput {
                        op: id,
                        input: name,
                        waiting_for: "an apply_done with one result per op of its apply, in order",
                    });
                }
                self.admit(now, Check::Results(&results))?
                    .apply_done(id, results)
            }
            (phase, _) => {
                return Err(UsageError::UnexpectedInput {
                    op: id,
                    input: name,
                    waiting_for: phase.waiting_for(),
                })
            }
        }
        Ok(())
    }

    /// Fire every timer due at or before `now`: ends of backoffs, cool-downs, lane-wait
    /// deadlines, lease renewals and polls. Drain commands afterwards.
    pub fn handle_timeout(&mut self, now: u64) -> Result<(), UsageError> {
        self.advance(now)?;
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, timer));
            let phase = match timer {
                Timer::Op(id) => self.ops.get(&id).map(|op| &op.phase),
                Timer::SpikeEnd(_) => None,
            };
            match (timer, phase) {
                (Timer::SpikeEnd(eid), _) => self.spike_over(eid, at),
                (Timer::Op(id), Some(Phase::Queued { .. })) => self.lane_deadline(id),
                (Timer::Op(id), Some(Phase::Cooling { .. })) => self.begin(id),
                (
                    Timer::Op(id),
                    Some(&Phase::Backoff {
                        wake_at,
                        renew_at: Some(_),
                    }),
                ) if now < wake_at => self.renew_in_backoff(id, wake_at),
                (Timer::Op(id), Some(Phase::Backoff { .. })) => self.after_backoff(id),
                (
                    Timer::Op(id),
                    Some(Phase::Leasing {
                        wait: LeaseWait::Timer { .. },
                        ..
                    }),
                ) => self.lease_timer(id),
                // No other phase arms a timer, and a finished operation has none.
                (Timer::Op(_), _) => {}
            }
        }
        Ok(())
    }
}

/// `poll_*`: what the engine decided. Drain them after every call that changes state.
impl Engine {
    /// The next command for any operation, in the order they became ready. A batch's
    /// [`Apply`] is left for [`Engine::poll_action`]: hosts that submit updates drain
    /// with that instead.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        let mut i = 0;
        while let Some(&id) = self.ready.get(i) {
            if self.ops.get(&id).is_some_and(|op| op.phase.has_apply()) {
                i += 1;
                continue;
            }
            self.ready.remove(i);
            if let Some(cmd) = self.take_command(id) {
                return Some(cmd);
            }
        }
        None
    }

    /// The pending command of one operation, for hosts that drive each operation from
    /// its own thread or task (an `Apply` is left for [`Engine::poll_action_for`]).
    #[must_use]
    pub fn poll_command_for(&mut self, id: OpId) -> Option<Command> {
        if self.ops.get(&id).is_some_and(|op| op.phase.has_apply()) {
            return None;
        }
        let cmd = self.take_command(id)?;
        if let Some(pos) = self.ready.iter().position(|&r| r == id) {
            self.ready.remove(pos);
        }
        Some(cmd)
    }

    /// The next command or [`Apply`] for any operation, in the order they became ready:
    /// [`Engine::poll_command`] for hosts that submit updates.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        while let Some(id) = self.ready.pop_front() {
            if let Some(action) = self.take_action(id) {
                return Some(action);
            }
        }
        None
    }

    /// The pending command or [`Apply`] of one operation.
    #[must_use]
    pub fn poll_action_for(&mut self, id: OpId) -> Option<Action> {
        let action = self.take_action(id)?;
        if let Some(pos) = self.ready.iter().position(|&r| r == id) {
            self.ready.remove(pos);
        }
        Some(action)
    }

    /// When [`Engine::handle_timeout`] must next be called, if anything waits on time.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// When one operation's timer fires, if it waits on time.
    #[must_use]
    pub fn poll_timeout_for(&self, id: OpId) -> Option<u64> {
        self.ops.get(&id).and_then(Op::timer)
    }

    /// The next telemetry event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// Bookkeeping.
impl Engine {
    fn advance(&mut self, now: u64) -> Result<(), UsageError> {
        if now < self.now {
            return Err(UsageError::TimeWentBackwards {
                last: self.now,
                now,
            });
        }
        self.now = now;
        Ok(())
    }

    /// Admit an input the transition table accepts: check its fields, then the time.
    /// Nothing has changed when this fails.
    fn admit(&mut self, now: u64, check: Check<'_>) -> Result<&mut Self, UsageError> {
        match check {
            Check::Nothing => {}
            Check::Token(token) => check_token(token)?,
            Check::Failure(failure) => {
                check_token(failure.intended_token.as_deref())?;
                check_code(failure.code.as_deref())?;
            }
            Check::Results(results) => {
                for r in results {
                    check_code(r.code.as_deref())?;
                }
            }
        }
        self.advance(now)?;
        Ok(self)
    }

    fn entity_id(&mut self, name: &str) -> EntityId {
        let budget = &self.policy.budget;
        let bucket = match (budget.enabled, budget.per_entity_capacity) {
            (true, Some(cap)) => Some(Bucket::new(cap, cap)),
            _ => None,
        };
        self.entities.find_or_insert_with(name, || Entity {
            bucket,
            ..Entity::default()
        })
    }

    fn emit(&mut self, event: Event) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.dropped_events += 1;
        }
        self.events.push_back(event);
    }

    fn name(&self, entity: EntityId) -> Arc<str> {
        self.entities.name(entity).clone()
    }

    fn count(&mut self, entity: EntityId, which: Counter) {
        self.count_by(entity, which, 1);
    }

    fn count_by(&mut self, entity: EntityId, which: Counter, n: u64) {
        *self.counters.field_mut(which) += n;
        *self.entities[entity].counter_mut(which) += n;
    }

    fn op_mut(&mut self, id: OpId) -> &mut Op {
        self.ops.get_mut(&id).expect("live op")
    }

    fn shared_mut(&mut self, id: OpId) -> &mut Shared {
        self.op_mut(id)
            .shared
            .as_mut()
            .expect("an op of shared lanes")
    }

    /// Whether an operation holds its entity's lane now.
    fn holds_lane(&self, id: OpId) -> bool {
        self.policy.lanes.mode != LaneMode::None && self.ops[&id].phase.holds_lane()
    }

    /// Put an operation in `phase`: the one place phases change. The old phase's timer is
    /// disarmed (if it has not fired) and the new one's armed, and a command the new phase
    /// carries is queued for polling.
    fn enter(&mut self, id: OpId, phase: Phase) {
        let op = self.ops.get_mut(&id).expect("live op");
        if let Some(at) = op.timer() {
            self.timers.remove(&(at, Timer::Op(id)));
        }
        op.phase = phase;
        if let Some(at) = op.timer() {
            self.timers.insert((at, Timer::Op(id)));
        }
        if op.phase.has_command() {
            self.ready.push_back(id);
        }
    }

    /// The pending command of one operation, marked as polled; a polled `Finish` forgets
    /// the operation.
    fn take_command(&mut self, id: OpId) -> Option<Command> {
        let op = self.ops.get_mut(&id)?;
        if let Phase::Finishing { .. } = op.phase {
            return self.ops.remove(&id)?.into_finish(id);
        }
        op.take_command(id)
    }

    /// The pending command or `Apply` of one operation, marked as polled.
    fn take_action(&mut self, id: OpId) -> Option<Action> {
        let op = self.ops.get_mut(&id)?;
        if op.phase.has_apply() {
            return op.take_apply(id).map(Action::Apply);
        }
        self.take_command(id).map(Action::Command)
    }
}

/// Steps: each names one row (or part of a row) of the transition table.
impl Engine {
    /// The op holds the lane (or needs none): wait out a cool-down, or begin.
    fn grant(&mut self, id: OpId) {
        let now = self.now;
        let eid = self.ops[&id].entity;
        let lanes = self.policy.lanes.mode != LaneMode::None;
        if lanes {
            self.entities[eid].busy = true;
        }
        let batch_rule = self.policy.batch;
        let op = self.ops.get_mut(&id).expect("live op");
        let mut linger = None;
        if op.update {
            op.batch = Some(Box::new(Batch {
                active: vec![id],
                ..Batch::default()
            }));
            let linger_ms = batch_rule.linger_ms;
            if lanes && linger_ms > 0 && batch_rule.max_changes > 1 {
                // Never linger past the update's own deadline.
                let end = now.saturating_add(linger_ms);
                linger = Some(op.deadline_at.map_or(end, |d| d.min(end)));
            }
        }
        let cooling = self.entities[eid].cooling_until().filter(|&u| u > now);
        if let Some(until) = cooling.max(linger) {
            // Holding the lane from here on, so that giving up hands it on.
            self.enter(id, Phase::Cooling { until });
            if self.ops[&id].deadline_at.is_some_and(|d| d < until) {
                self.give_up(id, GiveUpReason::DeadlineExceeded { code: None });
            }
            return;
        }
        self.begin(id);
    }

    /// `queued` + `timeout`: the deadline came while waiting for the lane.
    fn lane_deadline(&mut self, id: OpId) {
        let code = self.ops[&id]
            .last_failure
            .as_ref()
            .and_then(|f| f.code.clone());
        self.give_up(id, GiveUpReason::DeadlineExceeded { code });
    }

    /// Start the operation in earnest: acquire the shared lease first when lanes are
    /// shared, else go straight to the first attempt.
    fn begin(&mut self, id: OpId) {
        if self.policy.lanes.mode != LaneMode::Shared {
            self.start_attempt(id);
            return;
        }
        let seed = self.rng.uniform(0, u64::MAX);
        let owner = self.owner.clone().unwrap_or_default();
        let key = self.name(self.ops[&id].entity);
        let rule = self.policy.lease;
        let op = self.op_mut(id);
        let mut client = LeaseClient::new(&key, &owner, op.holder.clone(), rule, seed);
        client.acquire();
        op.shared = Some(Box::new(Shared {
            client,
            fence: None,
        }));
        self.pump_lease(id, Resume::Start);
    }

    /// Act on what the operation's lease client did: forward its store operation, react to
    /// its events, or, once the lease is usable, go on with `then`.
    fn pump_lease(&mut self, id: OpId, then: Resume) {
        let now = self.now;
        let eid = self.ops[&id].entity;
        loop {
            if let Some(operation) = self.shared_mut(id).client.poll_op() {
                self.count(eid, Counter::StoreOps);
                let wait = LeaseWait::Reply {
                    operation: Some(operation),
                };
                self.enter(id, Phase::Leasing { then, wait });
                return;
            }
            let Some(event) = self.shared_mut(id).client.poll_event() else {
                break;
            };
            let name = self.name(eid);
            match event {
                LeaseEvent::Acquired {
                    epoch,
                    committed_token,
                    takeover,
                } => {
                    self.shared_mut(id).fence = Some(epoch);
                    // The record is the truth across machines: its token is the last commit.
                    self.entities[eid].committed = committed_token.map(String::into_boxed_str);
                    self.emit(Event::LeaseAcquired {
                        op: id,
                        entity: name,
                        at: now,
                        epoch,
                        takeover,
                    });
                }
                LeaseEvent::Released => {
                    if let Resume::Finish(outcome) = then {
                        self.finish(id, outcome);
                    }
                    return;
                }
                LeaseEvent::Lost | LeaseEvent::Unavailable => {
                    let lost = event == LeaseEvent::Lost;
                    if lost {
                        self.emit(Event::LeaseLost {
                            op: id,
                            entity: name,
                            at: now,
                        });
                    }
                    match then {
                        // Releasing after the outcome was decided: the outcome stands.
                        Resume::Finish(outcome) => self.finish(id, outcome),
                        _ if lost => self.give_up(id, GiveUpReason::LeaseLost),
                        _ => self.give_up(id, GiveUpReason::LockUnavailable),
                    }
                    return;
                }
            }
        }
        let client = &self.shared_mut(id).client;
        if !client.holding() {
            // Polling a held lease, or waiting out a lock-delay; with no timer, the client
            // could not use the last reply and waits for another.
            let wait = match client.poll_timeout() {
                Some(at) => LeaseWait::Timer { at },
                None => LeaseWait::Reply { operation: None },
            };
            self.enter(id, Phase::Leasing { then, wait });
            return;
        }
        match then {
            Resume::Start => self.start_attempt(id),
            Resume::Write(base) => self.issue_write(id, base),
            Resume::Backoff { wake_at } => self.wait_backoff(id, wake_at),
            Resume::Finish(outcome) => self.finish(id, outcome),
        }
    }

    /// `leasing (store)` + `store_reply`: the lease client judges the reply.
    fn store_replied(&mut self, id: OpId, reply: StoreReply) {
        let now = self.now;
        let then = self.op_mut(id).phase.take_then();
        self.shared_mut(id).client.handle(now, reply);
        self.pump_lease(id, then);
    }

    /// `leasing (timer)` + `timeout`: the lease client's timer fired.
    fn lease_timer(&mut self, id: OpId) {
        let now = self.now;
        let then = self.op_mut(id).phase.take_then();
        self.shared_mut(id).client.handle_timeout(now);
        self.pump_lease(id, then);
    }

    /// Wait out a backoff that ends at `wake_at`, waking for lease renewals on the way.
    fn wait_backoff(&mut self, id: OpId, wake_at: u64) {
        let renew_at = self.ops[&id]
            .shared
            .as_ref()
            .and_then(|s| s.client.poll_timeout());
        self.enter(id, Phase::Backoff { wake_at, renew_at });
    }

    /// `backoff` + `timeout`, a lease renewal falling due before `wake_at`: renew, then
    /// go on waiting.
    fn renew_in_backoff(&mut self, id: OpId, wake_at: u64) {
        let now = self.now;
        self.shared_mut(id).client.handle_timeout(now);
        self.pump_lease(id, Resume::Backoff { wake_at });
    }

    /// Read before writing, or write at once on a token the engine already trusts.
    fn start_attempt(&mut self, id: OpId) {
        if self.ops[&id].update {
            // An update always reads: the host applies the changes to what it read.
            self.issue_read(id, false);
            return;
        }
        let eid = self.ops[&id].entity;
        let tokens = self.policy.tokens;
        let handoff = if tokens.handoff && self.policy.lanes.mode != LaneMode::None {
            self.entities[eid].committed.as_deref().map(String::from)
        } else {
            None
        };
        let op = &self.ops[&id];
        let first = op.writes == 0 && op.failures == 0;
        let trusted = match (&handoff, &op.expected) {
            (Some(h), Some(e)) => first && h == e,
            (Some(_), None) => first,
            _ => false,
        };
        if tokens.validate && !trusted {
            self.issue_read(id, false);
        } else {
            let base = if trusted {
                handoff
            } else {
                op.base.clone().or_else(|| op.expected.clone())
            };
            self.issue_write(id, base);
        }
    }

    fn issue_read(&mut self, id: OpId, readback: bool) {
        if self.ops[&id].no_read {
            self.read_done(id, readback, None);
            return;
        }
        let eid = self.ops[&id].entity;
        self.count(eid, Counter::Reads);
        let polled = false;
        self.enter(id, Phase::Reading { readback, polled });
    }

    fn issue_write(&mut self, id: OpId, base: Option<String>) {
        let (now, max_write) = (self.now, self.policy.lease.max_write_ms);
        let op = self.op_mut(id);
        if let Some(shared) = op.shared.as_mut() {
            // Never start a write the lease might not outlast: renew first.
            if !shared.client.may_write(now, max_write) {
                shared.client.renew_now(now);
                self.pump_lease(id, Resume::Write(base));
                return;
            }
        }
        op.writes += 1;
        op.base = base;
        let eid = op.entity;
        self.count(eid, Counter::Writes);
        self.enter(id, Phase::Writing { polled: false });
    }

    /// Hand the entity's lane to the first operation waiting for it.
    fn release_lane(&mut self, eid: EntityId) {
        self.entities[eid].busy = false;
        let Some(next) = self.entities[eid].pop_waiting() else {
            return;
        };
        let since = match self.ops[&next].phase {
            Phase::Queued { since } => since,
            _ => self.now,
        };
        let waited = self.now.saturating_sub(since);
        self.count_by(eid, Counter::LaneWaitMs, waited);
        let name = self.name(eid);
        self.emit(Event::LaneWaitEnded {
            op: next,
            entity: name,
            at: self.now,
            waited_ms: waited,
        });
        self.grant(next);
    }

    fn finish(&mut self, id: OpId, outcome: Outcome) {
        let held = self.holds_lane(id);
        if let Some(pos) = self.ready.iter().position(|&r| r == id) {
            // A superseded command (cancel before polling) must not be delivered.
            self.ready.remove(pos);
        }
        self.enter(id, Phase::Finishing { outcome });
        if held {
            let eid = self.ops[&id].entity;
            self.release_lane(eid);
        }
    }

    /// Finish, releasing the shared lease first when the operation holds one.
    fn conclude(&mut self, id: OpId, outcome: Outcome) {
        let now = self.now;
        let holding = self.ops[&id]
            .shared
            .as_ref()
            .is_some_and(|s| s.client.holding());
        if !holding {
            self.finish(id, outcome);
            return;
        }
        // After any write attempt the record's token may be stale: store the committed
        // token, or none (the next holder reads) when the write gave up or its token is
        // unknown.
        let batch_write = self.ops[&id]
            .batch
            .as_ref()
            .and_then(|b| b.last_write.clone());
        let written = match &outcome {
            _ if batch_write.is_some() => batch_write,
            Outcome::Committed { token, .. } => Some(token.clone()),
            Outcome::GaveUp { .. } if self.ops[&id].writes > 0 => Some(None),
            Outcome::GaveUp { .. } => None,
        };
        self.shared_mut(id).client.release(now, written);
        self.pump_lease(id, Resume::Finish(outcome));
    }

    /// Any phase but `finishing` + `cancel`: give up. A store operation in flight is
    /// abandoned with the operation; a lease it may still win expires on its own.
    fn cancel(&mut self, id: OpId) {
        let op = self.op_mut(id);
        if let Phase::Leasing { .. } = op.phase {
            op.shared = None;
        }
        if let Phase::Batched { leader } = op.phase {
            // Out of its batch; a write already out with its change may still land.
            if let Some(batch) = self.ops.get_mut(&leader).and_then(|l| l.batch.as_mut()) {
                batch.remove(id);
            }
        }
        if self.ops[&id].batch.is_some() {
            self.requeue_members(id);
        }
        self.give_up(id, GiveUpReason::Cancelled);
    }

    fn give_up(&mut self, id: OpId, reason: GiveUpReason) {
        if self.ops[&id].batch.is_some() {
            self.give_up_batch(id, reason);
            return;
        }
        let (eid, attempts) = {
            let op = &self.ops[&id];
            (op.entity, op.writes)
        };
        self.entities[eid].remove_waiting(id);
        self.count(eid, Counter::GaveUp);
        let name = self.name(eid);
        self.emit(Event::GaveUp {
            op: id,
            entity: name,
            at: self.now,
            attempts,
            reason: reason.name().to_string(),
        });
        self.conclude(id, Outcome::GaveUp { reason, attempts });
    }

    /// `writing` + `write_done` (and a read-back that found the write landed).
    fn commit(&mut self, id: OpId, token: Option<String>) {
        if self.ops[&id].batch.is_some() {
            self.commit_batch(id, token);
            return;
        }
        let (eid, attempts, last_cost, failures) = {
            let op = &self.ops[&id];
            (op.entity, op.writes, op.last_cost, op.failures)
        };
        if self.policy.budget.enabled {
            let e = &mut self.entities[eid];
            refill_on_success(
                &self.policy,
                last_cost,
                failures > 0,
                [self.bucket.as_mut(), e.bucket.as_mut()],
            );
        }
        self.entities[eid].committed = token.as_deref().map(Box::from);
        self.count(eid, Counter::Committed);
        let name = self.name(eid);
        self.emit(Event::Committed {
            op: id,
            entity: name,
            at: self.now,
            attempts,
        });
        self.conclude(id, Outcome::Committed { token, attempts });
    }

    fn note_conflict(&mut self, id: OpId, failure: &Failure) {
        let now = self.now;
        let (eid, attempt) = {
            let op = &self.ops[&id];
            (op.entity, op.writes)
        };
        self.count(eid, Counter::Conflicts);
        let name = self.name(eid);
        self.emit(Event::Conflict {
            op: id,
            entity: name.clone(),
            at: now,
            attempt,
            code: failure.code.clone(),
        });
        let spike = self.policy.spike;
        if !spike.enabled {
            return;
        }
        let e = self.entities[eid]
            .extra()
            .spike
            .get_or_insert_with(Box::default);
        while e
            .recent_conflicts
            .front()
            .is_some_and(|&t| now - t >= spike.window_ms)
        {
            e.recent_conflicts.pop_front();
        }
        e.recent_conflicts.push_back(now);
        while e.recent_conflicts.len() > spike.threshold as usize {
            e.recent_conflicts.pop_front();
        }
        let cooling = e.cooling_until.is_some_and(|u| u > now);
        if !cooling && e.recent_conflicts.len() >= spike.threshold as usize {
            let until = now.saturating_add(spike.cooldown_ms);
            let conflicts = e.recent_conflicts.len() as u32;
            e.cooling_until = Some(until);
            e.recent_conflicts.clear();
            self.count(eid, Counter::Spikes);
            self.timers.insert((until, Timer::SpikeEnd(eid)));
            self.emit(Event::SpikeStarted {
                entity: name,
                at: now,
                conflicts,
                until,
            });
        }
    }

    /// The cool-down of an entity that ended at `at` is over (unless a later one replaced
    /// it).
    fn spike_over(&mut self, eid: EntityId, at: u64) {
        let spike = self.entities[eid].spike_mut();
        if let Some(spike) = spike.filter(|s| s.cooling_until == Some(at)) {
            spike.cooling_until = None;
            let name = self.name(eid);
            self.emit(Event::SpikeEnded { entity: name, at });
        }
    }

    /// Decide what follows a failed call of `class`: the table's "retry, or give up".
    fn retry_or_give_up(&mut self, id: OpId, class: ErrorClass, failure: Failure) {
        let now = self.now;
        let policy = &self.policy;
        let op = self.ops.get_mut(&id).expect("live op");
        let entity = &mut self.entities[op.entity];
        let code = failure.code.clone();
        let plan = plan_retry(
            policy,
            &mut self.rng,
            RetryRequest {
                class,
                attempts: op.failures,
                previous_delay_ms: op.last_delay_ms,
                retry_after_ms: failure.retry_after_ms,
                now,
                deadline_at: op.deadline_at,
                buckets: [self.bucket.as_mut(), entity.bucket.as_mut()],
            },
        );
        op.last_failure = Some(Box::new(failure));
        let eid = op.entity;
        match plan {
            Ok(plan) => {
                op.last_delay_ms = plan.delay_ms;
                op.last_cost = plan.cost;
                let failures = op.failures;
                self.count(eid, Counter::Retries);
                let name = self.name(eid);
                self.emit(Event::RetryScheduled {
                    op: id,
                    entity: name,
                    at: now,
                    failures,
                    delay_ms: plan.delay_ms,
                    class,
                    cost: plan.cost,
                });
                if plan.delay_ms == 0 {
                    self.after_backoff(id);
                } else {
                    self.wait_backoff(id, now + plan.delay_ms);
                }
            }
            Err(refusal) => {
                let reason = match refusal {
                    Refusal::NotRetryable { .. } => GiveUpReason::Fatal {
                        code,
                        http_status: self.ops[&id].last_failure.as_ref().and_then(|f| f.status),
                    },
                    Refusal::AttemptsExhausted { class, .. } => {
                        GiveUpReason::AttemptsExhausted { class, code }
                    }
                    Refusal::BudgetExhausted {
                        class,
                        scope,
                        needed,
                        available,
                    } => {
                        self.count(eid, Counter::BudgetRefusals);
                        let name = self.name(eid);
                        self.emit(Event::BudgetRefused {
                            op: id,
                            entity: name,
                            at: now,
                            scope,
                            needed,
                            available,
                        });
                        GiveUpReason::BudgetExhausted { class, scope, code }
                    }
                    Refusal::DeadlineExceeded { .. } => GiveUpReason::DeadlineExceeded { code },
                };
                self.give_up(id, reason);
            }
        }
    }

    /// `backoff` + `timeout` (or a delay of 0): the next call.
    fn after_backoff(&mut self, id: OpId) {
        // An update always reads: the host applies the changes to what it read.
        if self.policy.tokens.validate || self.ops[&id].update {
            self.issue_read(id, false);
        } else {
            let base = self.ops[&id].base.clone();
            self.issue_write(id, base);
        }
    }

    /// `reading` + `read_done`: a read found the entity at `token`. After an unknown write
    /// outcome (`readback`), see whether that write landed; else check the revision and
    /// write on it.
    fn read_done(&mut self, id: OpId, readback: bool, token: Option<String>) {
        let now = self.now;
        if readback {
            let intended = self.ops[&id]
                .last_failure
                .as_ref()
                .and_then(|f| f.intended_token.clone());
            if intended.is_some() && intended == token {
                self.commit(id, token);
            } else {
                let failure = self.ops[&id]
                    .last_failure
                    .as_deref()
                    .cloned()
                    .unwrap_or_default();
                self.op_mut(id).base = token;
                self.retry_or_give_up(id, ErrorClass::Unknown, failure);
            }
            return;
        }
        if self.ops[&id].update {
            // The updates queued by now join: their changes apply to what was just read.
            self.gather(id);
            self.op_mut(id).base = token;
            if self.batch(id).active.is_empty() {
                self.next_segment(id);
            } else {
                self.enter(id, Phase::Applying { sent: None });
            }
            return;
        }
        let expected = self.ops[&id].expected.clone();
        if expected.is_some() && expected != token {
            let eid = self.ops[&id].entity;
            self.count(eid, Counter::StaleRevisions);
            let name = self.name(eid);
            self.emit(Event::StaleRevision {
                op: id,
                entity: name,
                at: now,
                expected: expected.clone(),
                found: token.clone(),
            });
            self.give_up(
                id,
                GiveUpReason::StaleRevision {
                    expected,
                    found: token,
                },
            );
        } else {
            self.issue_write(id, token);
        }
    }

    /// `reading` + `read_failed`: a fatal failure gives up; any other is retried as a
    /// failed read (an unknown read outcome is just a failed read).
    fn read_failed(&mut self, id: OpId, failure: Failure) {
        self.op_mut(id).failures += 1;
        let class = classify(&self.policy.codes, &failure);
        if class == ErrorClass::Fatal {
            self.give_up(
                id,
                GiveUpReason::Fatal {
                    code: failure.code,
                    http_status: failure.status,
                },
            );
        } else {
            let class = if class == ErrorClass::Unknown {
                ErrorClass::Transient
            } else {
                class
            };
            self.retry_or_give_up(id, class, failure);
        }
    }

    /// `writing` + `write_failed`: by class, give up, read back, or retry (a conflict is
    /// counted for spike detection first).
    fn write_failed(&mut self, id: OpId, failure: Failure) {
        let op = self.op_mut(id);
        op.failures += 1;
        if let Some(batch) = op.batch.as_mut() {
            // The write did not land, or may have: the next holder must read.
            batch.last_write = Some(None);
        }
        let class = classify(&self.policy.codes, &failure);
        match class {
            ErrorClass::Fatal if self.ops[&id].batch.is_some() => self.fatal_batch(id, failure),
            ErrorClass::Fatal => self.give_up(
                id,
                GiveUpReason::Fatal {
                    code: failure.code,
                    http_status: failure.status,
                },
            ),
            ErrorClass::Unknown => {
                self.op_mut(id).last_failure = Some(Box::new(failure));
                self.issue_read(id, true);
            }
            ErrorClass::Conflict => {
                self.note_conflict(id, &failure);
                self.retry_or_give_up(id, class, failure);
            }
            _ => self.retry_or_give_up(id, class, failure),
        }
    }
}

/// Group commit: the steps of a batch, which its leader carries out for every member.
impl Engine {
    fn batch(&self, id: OpId) -> &Batch {
        self.ops[&id].batch.as_deref().expect("a batch leader")
    }

    fn batch_mut(&mut self, id: OpId) -> &mut Batch {
        self.op_mut(id)
            .batch
            .as_deref_mut()
            .expect("a batch leader")
    }

    /// When a batch's read returns: take the updates queued right behind the leader into
    /// the batch, in FIFO order, up to `batch.max_changes`. An opaque write in the queue stops
    /// the gathering (it keeps its place; nothing passes it), and so does a bisection in
    /// progress.
    fn gather(&mut self, id: OpId) {
        if self.policy.lanes.mode == LaneMode::None {
            return;
        }
        let max = self.policy.batch.max_changes as usize;
        let eid = self.ops[&id].entity;
        loop {
            let batch = self.batch(id);
            if !batch.later.is_empty() || batch.active.len() >= max {
                return;
            }
            let next = self.entities[eid]
                .extra
                .as_ref()
                .and_then(|x| x.queue.front().copied());
            let Some(next) = next.filter(|n| self.ops.get(n).is_some_and(|o| o.update)) else {
                return;
            };
            self.entities[eid].pop_waiting();
            let since = match self.ops[&next].phase {
                Phase::Queued { since } => since,
                _ => self.now,
            };
            let waited = self.now.saturating_sub(since);
            self.count_by(eid, Counter::LaneWaitMs, waited);
            let name = self.name(eid);
            self.emit(Event::LaneWaitEnded {
                op: next,
                entity: name,
                at: self.now,
                waited_ms: waited,
            });
            self.enter(next, Phase::Batched { leader: id });
            self.batch_mut(id).active.push(next);
        }
    }

    /// `applying` + `apply_done`: refused changes leave the batch with their own outcome;
    /// the rest are written in one write.
    fn apply_done(&mut self, id: OpId, results: Vec<ApplyResult>) {
        let attempts = self.ops[&id].writes;
        for r in results {
            // A member cancelled since the `Apply` went out has its outcome already.
            if r.applied || !self.batch(id).active.contains(&r.op) {
                continue;
            }
            self.batch_mut(id).remove(r.op);
            let reason = GiveUpReason::Fatal {
                code: r.code,
                http_status: None,
            };
            self.settle(id, r.op, Outcome::GaveUp { reason, attempts });
        }
        if self.batch(id).active.is_empty() {
            self.next_segment(id);
        } else {
            let base = self.ops[&id].base.clone();
            self.issue_write(id, base);
        }
    }

    /// A batch's write landed (or a read-back found it did): every update in it commits
    /// with its token.
    fn commit_batch(&mut self, id: OpId, token: Option<String>) {
        let (eid, last_cost, failures) = {
            let op = &self.ops[&id];
            (op.entity, op.last_cost, op.failures)
        };
        if self.policy.budget.enabled {
            let e = &mut self.entities[eid];
            refill_on_success(
                &self.policy,
                last_cost,
                failures > 0,
                [self.bucket.as_mut(), e.bucket.as_mut()],
            );
        }
        self.entities[eid].committed = token.as_deref().map(Box::from);
        let attempts = self.ops[&id].writes;
        let batch = self.batch_mut(id);
        batch.last_write = Some(token.clone());
        let members = std::mem::take(&mut batch.active);
        for m in members {
            let token = token.clone();
            self.settle(id, m, Outcome::Committed { token, attempts });
        }
        // The next half of a bisection starts afresh.
        let op = self.op_mut(id);
        op.failures = 0;
        op.last_delay_ms = 0;
        self.next_segment(id);
    }

    /// `writing` + `write_failed`, fatal, in a batch: bisect it so that only the change
    /// that breaks the write fails. A batch of one change gives that change up.
    fn fatal_batch(&mut self, id: OpId, failure: Failure) {
        let attempts = self.ops[&id].writes;
        let batch = self.batch_mut(id);
        if batch.active.len() > 1 {
            let mid = batch.active.len().div_ceil(2);
            let second = batch.active.split_off(mid);
            batch.later.push_front(second);
            // A split is not a retry: it spends no attempt of the policy's.
            let op = self.op_mut(id);
            op.failures = op.failures.saturating_sub(1);
            self.issue_read(id, false);
            return;
        }
        let members = std::mem::take(&mut batch.active);
        for m in members {
            let reason = GiveUpReason::Fatal {
                code: failure.code.clone(),
                http_status: failure.status,
            };
            self.settle(id, m, Outcome::GaveUp { reason, attempts });
        }
        let op = self.op_mut(id);
        op.failures = 0;
        op.last_delay_ms = 0;
        op.last_failure = Some(Box::new(failure));
        self.next_segment(id);
    }

    /// The batch gives up for every update still in it, with one reason.
    fn give_up_batch(&mut self, id: OpId, reason: GiveUpReason) {
        let attempts = self.ops[&id].writes;
        let eid = self.ops[&id].entity;
        self.entities[eid].remove_waiting(id);
        let batch = self.batch_mut(id);
        let members = batch.members();
        batch.active.clear();
        batch.later.clear();
        for m in members {
            let reason = reason.clone();
            self.settle(id, m, Outcome::GaveUp { reason, attempts });
        }
        self.wrap_up(id);
    }

    /// One update of the leader's batch has its outcome: finish it (the leader keeps its
    /// own until the batch is over, and is counted then).
    fn settle(&mut self, leader: OpId, member: OpId, outcome: Outcome) {
        if member == leader {
            self.batch_mut(leader).own = Some(outcome);
        } else if self.ops.contains_key(&member) {
            self.tally(member, &outcome);
            self.finish(member, outcome);
        }
    }

    /// Count an update's outcome and tell telemetry, as it finishes.
    fn tally(&mut self, member: OpId, outcome: &Outcome) {
        let eid = self.ops[&member].entity;
        let name = self.name(eid);
        let at = self.now;
        match &outcome {
            Outcome::Committed { attempts, .. } => {
                self.count(eid, Counter::Committed);
                self.emit(Event::Committed {
                    op: member,
                    entity: name,
                    at,
                    attempts: *attempts,
                });
            }
            Outcome::GaveUp { reason, attempts } => {
                self.count(eid, Counter::GaveUp);
                self.emit(Event::GaveUp {
                    op: member,
                    entity: name,
                    at,
                    attempts: *attempts,
                    reason: reason.name().to_string(),
                });
            }
        }
    }

    /// The attempt's updates all have outcomes: start the next half of a bisection, or
    /// end the batch.
    fn next_segment(&mut self, id: OpId) {
        let batch = self.batch_mut(id);
        if !batch.active.is_empty() {
            return;
        }
        if let Some(half) = batch.later.pop_front() {
            batch.active = half;
            self.issue_read(id, false);
            return;
        }
        self.wrap_up(id);
    }

    /// The batch is over: the leader finishes with its own outcome, releasing the shared
    /// lease and handing the lane on.
    fn wrap_up(&mut self, id: OpId) {
        let attempts = self.ops[&id].writes;
        let own = self.batch_mut(id).own.take().unwrap_or(Outcome::GaveUp {
            reason: GiveUpReason::Cancelled,
            attempts,
        });
        self.tally(id, &own);
        self.conclude(id, own);
    }

    /// A leader is cancelled: the updates of its batch go back to the head of the queue,
    /// in their order, and the first of them leads the next batch.
    fn requeue_members(&mut self, id: OpId) {
        let now = self.now;
        let eid = self.ops[&id].entity;
        let batch = self.batch_mut(id);
        let members: Vec<OpId> = batch.members().into_iter().filter(|&m| m != id).collect();
        for &m in &members {
            batch.remove(m);
        }
        for &m in members.iter().rev() {
            self.entities[eid].extra().queue.push_front(m);
        }
        for m in members {
            self.enter(m, Phase::Queued { since: now });
        }
    }
}
