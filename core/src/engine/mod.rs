//! The lane engine: the whole write discipline as a sans-IO state machine.
//!
//! The host submits logical writes, drains [`Command`]s and carries them out, feeds back
//! what it observed as [`Input`]s, and calls [`Engine::handle_timeout`] when
//! [`Engine::poll_timeout`] says so. The engine never reads a clock, sleeps or performs IO.

mod entity;
mod op;
mod types;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use crate::backoff::{plan_retry, refill_on_success, Bucket, Refusal, RetryRequest};
use crate::classify::{classify, ErrorClass, Failure};
use crate::entities::{Entities, EntityId};
use crate::error::UsageError;
use crate::lease::{LeaseClient, LeaseEvent};
use crate::limits::MAX_ENTITY_LEN;
use crate::policy::{LaneMode, Policy};
use crate::rng::DecisionRng;

use entity::{Counter, Entity};
use op::{Op, Phase, Resume, Shared, Timer};
use types::{check_code, check_token};
pub use types::{
    Command, Counters, EngineState, EntityRecord, EntityStats, Event, GiveUpReason, Input, OpId,
    Outcome, Stats, SubmitOptions, MAX_QUEUED_EVENTS, STATE_VERSION,
};

/// The write-discipline engine. See the module documentation for the run loop.
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
    ready: VecDeque<OpId>,
    timers: BTreeSet<(u64, Timer)>,
    events: VecDeque<Event>,
    dropped_events: u64,
    bucket: Option<Bucket>,
    counters: Counters,
    /// Who this engine is in lease records (shared lanes).
    owner: Option<String>,
}

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

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

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

    /// Start one logical write of `entity` at `now`.
    pub fn submit(
        &mut self,
        entity: &str,
        now: u64,
        options: SubmitOptions,
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
                phase: Phase::Queued,
                polled: false,
                pending: None,
                timer: None,
                writes: 0,
                failures: 0,
                last_delay_ms: 0,
                last_cost: 0,
                base: None,
                last_failure: None,
                holds_lane: false,
                queued_at: now,
                holder: options.holder,
                no_read: options.no_read,
                shared: None,
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
            if let Some(d) = self.ops[&op_id].deadline_at {
                self.set_timer(op_id, d);
            }
        } else {
            self.grant(op_id);
        }
        Ok(op_id)
    }

    fn op_mut(&mut self, id: OpId) -> &mut Op {
        self.ops.get_mut(&id).expect("live op")
    }

    fn set_timer(&mut self, id: OpId, at: u64) {
        let op = self.ops.get_mut(&id).expect("live op");
        if let Some(old) = op.timer.replace(at) {
            self.timers.remove(&(old, Timer::Op(id)));
        }
        self.timers.insert((at, Timer::Op(id)));
    }

    fn clear_timer(&mut self, id: OpId) {
        if let Some(op) = self.ops.get_mut(&id) {
            if let Some(old) = op.timer.take() {
                self.timers.remove(&(old, Timer::Op(id)));
            }
        }
    }

    fn queue_command(&mut self, id: OpId, cmd: Command) {
        let op = self.op_mut(id);
        op.pending = Some(cmd);
        op.polled = false;
        self.ready.push_back(id);
    }

    /// The op holds the lane (or needs none): wait out a cool-down, or start.
    fn grant(&mut self, id: OpId) {
        let now = self.now;
        let eid = self.ops[&id].entity;
        if self.policy.lanes.mode != LaneMode::None {
            self.entities[eid].busy = true;
            self.op_mut(id).holds_lane = true;
        }
        if let Some(until) = self.entities[eid].cooling_until().filter(|&u| u > now) {
            if self.ops[&id].deadline_at.is_some_and(|d| d < until) {
                self.give_up(id, GiveUpReason::DeadlineExceeded { code: None });
                return;
            }
            self.op_mut(id).phase = Phase::Cooling;
            self.set_timer(id, until);
            return;
        }
        self.begin(id);
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
            resume: Resume::Start,
            wake_at: None,
            fence: None,
        }));
        self.pump_lease(id);
    }

    fn shared_mut(&mut self, id: OpId) -> &mut Shared {
        self.op_mut(id)
            .shared
            .as_mut()
            .expect("an op of shared lanes")
    }

    /// Act on what the operation's lease client did: forward its store operation, react to
    /// its events, or resume the operation once the lease is usable.
    fn pump_lease(&mut self, id: OpId) {
        let now = self.now;
        let eid = self.ops[&id].entity;
        loop {
            if let Some(operation) = self.shared_mut(id).client.poll_op() {
                self.clear_timer(id);
                self.op_mut(id).phase = Phase::Leasing;
                self.count(eid, Counter::StoreOps);
                self.queue_command(id, Command::Store { op: id, operation });
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
                    if let Resume::Finish(outcome) =
                        std::mem::replace(&mut self.shared_mut(id).resume, Resume::Start)
                    {
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
                    match std::mem::replace(&mut self.shared_mut(id).resume, Resume::Start) {
                        // Releasing after the outcome was decided: the outcome stands.
                        Resume::Finish(outcome) => self.finish(id, outcome),
                        _ if lost => self.give_up(id, GiveUpReason::LeaseLost),
                        _ => self.give_up(id, GiveUpReason::LockUnavailable),
                    }
                    return;
                }
            }
        }
        let shared = self.shared_mut(id);
        if !shared.client.holding() {
            // Polling a held lease, or waiting out a lock-delay.
            let at = shared.client.poll_timeout();
            self.op_mut(id).phase = Phase::Leasing;
            if let Some(at) = at {
                self.set_timer(id, at);
            }
            return;
        }
        match std::mem::replace(&mut shared.resume, Resume::Start) {
            Resume::Start => self.start_attempt(id),
            Resume::Write(base) => self.issue_write(id, base),
            Resume::Backoff => self.wait_backoff(id),
            Resume::Finish(outcome) => self.finish(id, outcome),
        }
    }

    /// Wait out a backoff whose end is `wake_at`, waking for lease renewals on the way.
    fn wait_backoff(&mut self, id: OpId) {
        let op = self.op_mut(id);
        op.phase = Phase::Backoff;
        let Some(shared) = op.shared.as_ref() else {
            return;
        };
        let wake = shared.wake_at.unwrap_or(0);
        let at = shared
            .client
            .poll_timeout()
            .map_or(wake, |renew| renew.min(wake));
        self.set_timer(id, at);
    }

    /// Read before writing, or write at once on a token the engine already trusts.
    fn start_attempt(&mut self, id: OpId) {
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
        self.op_mut(id).phase = Phase::Reading { readback };
        self.count(eid, Counter::Reads);
        self.queue_command(id, Command::Read { op: id });
    }

    fn issue_write(&mut self, id: OpId, base: Option<String>) {
        let (now, max_write) = (self.now, self.policy.lease.max_write_ms);
        let op = self.op_mut(id);
        if let Some(shared) = op.shared.as_mut() {
            // Never start a write the lease might not outlast: renew first.
            if !shared.client.may_write(now, max_write) {
                shared.client.renew_now(now);
                shared.resume = Resume::Write(base);
                self.pump_lease(id);
                return;
            }
        }
        let fence = op.shared.as_ref().and_then(|s| s.fence);
        op.phase = Phase::Writing;
        op.writes += 1;
        op.base = base.clone();
        let (attempt, eid) = (op.writes, op.entity);
        self.count(eid, Counter::Writes);
        self.queue_command(
            id,
            Command::Write {
                op: id,
                attempt,
                base_token: base,
                fence,
            },
        );
    }

    fn release_lane(&mut self, id: OpId) {
        let op = self.op_mut(id);
        if !std::mem::take(&mut op.holds_lane) {
            return;
        }
        let eid = op.entity;
        self.entities[eid].busy = false;
        if let Some(next) = self.entities[eid].pop_waiting() {
            self.clear_timer(next);
            let waited = self.now.saturating_sub(self.ops[&next].queued_at);
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
    }

    fn finish(&mut self, id: OpId, outcome: Outcome) {
        self.clear_timer(id);
        let op = self.op_mut(id);
        op.phase = Phase::Finishing;
        if let Some(pos) = self.ready.iter().position(|&r| r == id) {
            // A superseded command (cancel before polling) must not be delivered.
            self.ready.remove(pos);
        }
        self.queue_command(id, Command::Finish { op: id, outcome });
        self.release_lane(id);
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
        let written = match &outcome {
            Outcome::Committed { token, .. } => Some(token.clone()),
            Outcome::GaveUp { .. } if self.ops[&id].writes > 0 => Some(None),
            Outcome::GaveUp { .. } => None,
        };
        self.clear_timer(id);
        let shared = self.shared_mut(id);
        shared.client.release(now, written);
        shared.resume = Resume::Finish(outcome);
        self.pump_lease(id);
    }

    fn give_up(&mut self, id: OpId, reason: GiveUpReason) {
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

    fn commit(&mut self, id: OpId, token: Option<String>) {
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

    /// Decide what follows a failed call of `class`.
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
                op.phase = Phase::Backoff;
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
                } else if let Some(shared) = self.op_mut(id).shared.as_mut() {
                    shared.wake_at = Some(now + plan.delay_ms);
                    self.wait_backoff(id);
                } else {
                    self.set_timer(id, now + plan.delay_ms);
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

    fn after_backoff(&mut self, id: OpId) {
        if self.policy.tokens.validate {
            self.issue_read(id, false);
        } else {
            let base = self.ops[&id].base.clone();
            self.issue_write(id, base);
        }
    }

    /// A read found the entity at `token`: after an unknown write outcome (`readback`),
    /// see whether that write landed; else check the revision and write on it.
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

    /// Feed what the host observed for one operation.
    pub fn handle(&mut self, now: u64, input: Input) -> Result<(), UsageError> {
        let id = input.op();
        let Some(op) = self.ops.get(&id) else {
            return Err(UsageError::UnknownOp { op: id });
        };
        let waiting_for = match op.phase {
            Phase::Queued => "the lane",
            Phase::Cooling => "a conflict cool-down",
            Phase::Reading { .. } => "read_done or read_failed",
            Phase::Writing => "write_done or write_failed",
            Phase::Backoff => "a backoff timeout",
            Phase::Leasing if op.timer.is_some() => "a lease timeout",
            Phase::Leasing => "store_reply",
            Phase::Finishing => "its finish command to be polled",
        };
        let fits = matches!(
            (&input, op.phase),
            (Input::Cancel { .. }, p) if p != Phase::Finishing
        ) || matches!(
            (&input, op.phase),
            (
                Input::ReadDone { .. } | Input::ReadFailed { .. },
                Phase::Reading { .. }
            ) | (
                Input::WriteDone { .. } | Input::WriteFailed { .. },
                Phase::Writing
            )
        ) || (matches!(input, Input::StoreReply { .. })
            && op.phase == Phase::Leasing
            && op.timer.is_none());
        if !fits {
            return Err(UsageError::UnexpectedInput {
                op: id,
                input: input.name(),
                waiting_for,
            });
        }
        if !matches!(input, Input::Cancel { .. }) && !op.polled {
            return Err(UsageError::CommandNotDrained {
                op: id,
                input: input.name(),
            });
        }
        match &input {
            Input::ReadDone { token, .. } | Input::WriteDone { token, .. } => {
                check_token(token.as_deref())?
            }
            Input::ReadFailed { failure, .. } | Input::WriteFailed { failure, .. } => {
                check_token(failure.intended_token.as_deref())?;
                check_code(failure.code.as_deref())?;
            }
            Input::Cancel { .. } | Input::StoreReply { .. } => {}
        }
        let readback = matches!(op.phase, Phase::Reading { readback: true });
        self.advance(now)?;
        match input {
            Input::Cancel { .. } => {
                if self.ops[&id].phase == Phase::Leasing {
                    // The store operation in flight is abandoned with the operation; a lease
                    // it may still win expires on its own.
                    self.op_mut(id).shared = None;
                }
                self.give_up(id, GiveUpReason::Cancelled)
            }
            Input::StoreReply { reply, .. } => {
                self.shared_mut(id).client.handle(now, reply);
                self.pump_lease(id);
            }
            Input::ReadDone { token, .. } => self.read_done(id, readback, token),
            Input::ReadFailed { failure, .. } => {
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
                    // Retry the read: an unknown read outcome is just a failed read.
                    let class = if class == ErrorClass::Unknown {
                        ErrorClass::Transient
                    } else {
                        class
                    };
                    self.retry_or_give_up(id, class, failure);
                }
            }
            Input::WriteDone { token, .. } => self.commit(id, token),
            Input::WriteFailed { failure, .. } => {
                self.op_mut(id).failures += 1;
                let class = classify(&self.policy.codes, &failure);
                match class {
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
        Ok(())
    }

    /// Fire every timer due at or before `now`: ends of backoffs, cool-downs, lane-wait
    /// deadlines.
    pub fn handle_timeout(&mut self, now: u64) -> Result<(), UsageError> {
        self.advance(now)?;
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, timer));
            match timer {
                Timer::SpikeEnd(eid) => {
                    let spike = self.entities[eid].spike_mut();
                    if let Some(spike) = spike.filter(|s| s.cooling_until == Some(at)) {
                        spike.cooling_until = None;
                        let name = self.name(eid);
                        self.emit(Event::SpikeEnded { entity: name, at });
                    }
                }
                Timer::Op(id) => {
                    let Some(op) = self.ops.get_mut(&id) else {
                        continue;
                    };
                    op.timer = None;
                    match op.phase {
                        Phase::Queued => {
                            let code = op.last_failure.as_ref().and_then(|f| f.code.clone());
                            self.give_up(id, GiveUpReason::DeadlineExceeded { code });
                        }
                        Phase::Cooling => self.begin(id),
                        Phase::Leasing => {
                            self.shared_mut(id).client.handle_timeout(now);
                            self.pump_lease(id);
                        }
                        Phase::Backoff => match op.shared.as_mut() {
                            // A renewal falls due before the backoff ends.
                            Some(s) if s.wake_at.is_some_and(|w| now < w) => {
                                s.client.handle_timeout(now);
                                s.resume = Resume::Backoff;
                                self.pump_lease(id);
                            }
                            _ => self.after_backoff(id),
                        },
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// The next command for any operation, in the order they became ready.
    pub fn poll_command(&mut self) -> Option<Command> {
        while let Some(id) = self.ready.pop_front() {
            if let Some(cmd) = self.take_command(id) {
                return Some(cmd);
            }
        }
        None
    }

    /// The pending command of one operation, for hosts that drive each operation from
    /// its own thread or task.
    pub fn poll_command_for(&mut self, id: OpId) -> Option<Command> {
        let cmd = self.take_command(id)?;
        if let Some(pos) = self.ready.iter().position(|&r| r == id) {
            self.ready.remove(pos);
        }
        Some(cmd)
    }

    fn take_command(&mut self, id: OpId) -> Option<Command> {
        let op = self.ops.get_mut(&id)?;
        let cmd = op.pending.take()?;
        op.polled = true;
        if matches!(cmd, Command::Finish { .. }) {
            self.ops.remove(&id);
        }
        Some(cmd)
    }

    /// When [`Engine::handle_timeout`] must next be called, if anything waits on time.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// When one operation's timer fires, if it waits on time.
    pub fn poll_timeout_for(&self, id: OpId) -> Option<u64> {
        self.ops.get(&id).and_then(|op| op.timer)
    }

    /// The next telemetry event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
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

    /// The name of the entity an operation writes, while the operation is live.
    pub fn entity_of(&self, id: OpId) -> Option<&str> {
        self.ops.get(&id).map(|op| &**self.entities.name(op.entity))
    }
}
