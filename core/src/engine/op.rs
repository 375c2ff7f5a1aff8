//! One logical write: what it was given, what it has done so far, and its [`Phase`], the
//! one value that says where it is.
//!
//! Everything that says where an operation is lives in its phase: whether a command waits
//! to be polled, which timer runs and until when, what follows once the lease client is
//! done, when it joined the lane's queue. The rest of [`Op`] is what the operation has
//! learned (attempts, failures, the base token), which no phase contradicts. The engine
//! changes phases in one place, [`super::Engine`]'s `enter`, which also moves the
//! operation's timer and queues the command the new phase carries.

use std::collections::VecDeque;

use super::types::{Apply, Command, OpId, Outcome};
use crate::classify::Failure;
use crate::entities::EntityId;
use crate::lease::{LeaseClient, StoreOp};

/// What a timer entry in the engine's timer set stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// The timer of an operation's phase (see [`Op::timer`]).
    Op(OpId),
    /// The end of an entity's conflict cool-down.
    SpikeEnd(EntityId),
}

/// Where an operation is. The names in parentheses are the phase names of the transition
/// table in the engine's module documentation.
#[derive(Debug)]
pub(super) enum Phase {
    /// (`queued`) Waiting for the entity's lane since `since`; the timer is the
    /// operation's deadline, if it has one.
    Queued {
        /// When it joined the queue (its submission).
        since: u64,
    },
    /// (`cooling`) Holding the lane, waiting out a conflict cool-down, or an update's
    /// linger (`batch.linger_ms`) for more updates to queue behind it.
    Cooling {
        /// The end of the cool-down: the timer.
        until: u64,
    },
    /// (`reading`, `reading (readback)`) A `Read` command is out.
    Reading {
        /// The read checks whether a write whose outcome was unknown landed.
        readback: bool,
        /// The host has taken the command; only then is an answer accepted.
        polled: bool,
    },
    /// (`writing`) A `Write` command is out; it is built from the operation's attempt
    /// count, base token and fence when the host polls it.
    Writing {
        /// The host has taken the command; only then is an answer accepted.
        polled: bool,
    },
    /// (`applying`) A batch's `Apply` is out: the host runs the changes on the document
    /// the batch read.
    Applying {
        /// The updates the `Apply` named, once the host has polled it (`None` before):
        /// the `apply_done` must answer for exactly these, in this order.
        sent: Option<Vec<OpId>>,
    },
    /// (`batched`) An update whose change rides in a batch another update leads: it
    /// waits for the batch's outcome. It does not hold the lane (the leader does) and
    /// has no timer.
    Batched {
        /// The batch's leader.
        leader: OpId,
    },
    /// (`backoff`) Waiting before the next call.
    Backoff {
        /// The end of the backoff.
        wake_at: u64,
        /// Shared lanes: when the lease falls due for renewal. The timer is the earlier of
        /// the two; a renewal on the way passes through `Leasing` and comes back here.
        renew_at: Option<u64>,
    },
    /// (`leasing (store)`, `leasing (timer)`) Shared lanes: the lease client is at work
    /// (acquiring, renewing, releasing) and the operation waits for it.
    Leasing {
        /// What the operation does once the lease client is done.
        then: Resume,
        /// What the lease client waits for.
        wait: LeaseWait,
    },
    /// (`finishing`) Over. The `Finish` command waits to be polled; polling it forgets the
    /// operation.
    Finishing {
        /// How the operation ended.
        outcome: Outcome,
    },
}

/// What a [`Phase::Leasing`] operation waits for.
#[derive(Debug)]
pub(super) enum LeaseWait {
    /// A store operation: `Some` until the host polls the `Store` command, then its
    /// `StoreReply`. `None` also when the client could not use a reply (one of the wrong
    /// kind) and waits for another.
    Reply {
        /// The store operation, until polled.
        operation: Option<StoreOp>,
    },
    /// Time: polling a record another owner holds, a lock-delay after a takeover, a retry
    /// of an unavailable store.
    Timer {
        /// When the lease client's timer fires: the operation's timer.
        at: u64,
    },
}

/// What an operation does once its lease client is done with the store.
#[derive(Debug)]
pub(super) enum Resume {
    /// The lease was being acquired: start the first attempt.
    Start,
    /// A renewal before a write: issue the write on this base.
    Write(Option<String>),
    /// A renewal during a backoff: go on waiting until `wake_at`.
    Backoff {
        /// The end of the backoff.
        wake_at: u64,
    },
    /// The release before finishing with this outcome.
    Finish(Outcome),
}

impl Phase {
    /// The phase's name in the transition table.
    #[cfg(test)]
    pub(super) fn name(&self) -> &'static str {
        match self {
            Phase::Queued { .. } => "queued",
            Phase::Cooling { .. } => "cooling",
            Phase::Reading {
                readback: false, ..
            } => "reading",
            Phase::Reading { readback: true, .. } => "reading (readback)",
            Phase::Writing { .. } => "writing",
            Phase::Applying { .. } => "applying",
            Phase::Batched { .. } => "batched",
            Phase::Backoff { .. } => "backoff",
            Phase::Leasing {
                wait: LeaseWait::Reply { .. },
                ..
            } => "leasing (store)",
            Phase::Leasing {
                wait: LeaseWait::Timer { .. },
                ..
            } => "leasing (timer)",
            Phase::Finishing { .. } => "finishing",
        }
    }

    /// What the phase waits for, in words, for [`crate::UsageError::UnexpectedInput`].
    pub(super) fn waiting_for(&self) -> &'static str {
        match self {
            Phase::Queued { .. } => "the lane",
            Phase::Cooling { .. } => "a conflict cool-down",
            Phase::Reading { .. } => "read_done or read_failed",
            Phase::Writing { .. } => "write_done or write_failed",
            Phase::Applying { .. } => "apply_done",
            Phase::Batched { .. } => "its batch's outcome",
            Phase::Backoff { .. } => "a backoff timeout",
            Phase::Leasing {
                wait: LeaseWait::Timer { .. },
                ..
            } => "a lease timeout",
            Phase::Leasing {
                wait: LeaseWait::Reply { .. },
                ..
            } => "store_reply",
            Phase::Finishing { .. } => "its finish command to be polled",
        }
    }

    /// Whether the phase carries a command the host has not polled yet.
    pub(super) fn has_command(&self) -> bool {
        match self {
            Phase::Reading { polled, .. } | Phase::Writing { polled } => !polled,
            Phase::Applying { sent } => sent.is_none(),
            Phase::Leasing {
                wait: LeaseWait::Reply { operation },
                ..
            } => operation.is_some(),
            Phase::Finishing { .. } => true,
            _ => false,
        }
    }

    /// Whether an operation in this phase holds its entity's lane, when lanes are on: from
    /// the grant to the finish.
    pub(super) fn holds_lane(&self) -> bool {
        !matches!(
            self,
            Phase::Queued { .. } | Phase::Batched { .. } | Phase::Finishing { .. }
        )
    }

    /// Whether the phase carries an `Apply` not polled yet (drained by `poll_action`
    /// only, never by `poll_command`).
    pub(super) fn has_apply(&self) -> bool {
        matches!(self, Phase::Applying { sent: None })
    }

    /// What follows the lease client's work, taken out of a `Leasing` phase to resume
    /// with (`Start` is left behind). The caller enters the next phase straight after.
    pub(super) fn take_then(&mut self) -> Resume {
        match self {
            Phase::Leasing { then, .. } => std::mem::replace(then, Resume::Start),
            _ => Resume::Start,
        }
    }
}

/// Per-operation state of shared lanes, boxed so local operations do not pay for it. It
/// lives from the start of the acquisition to the finish (or a cancel abandons it).
#[derive(Debug)]
pub(super) struct Shared {
    /// The lease client of this operation's entity.
    pub(super) client: LeaseClient,
    /// The epoch of the holding: the fence of every write.
    pub(super) fence: Option<u64>,
}

/// A batch: the updates one leader reads, applies and writes for. Only the leader has
/// one; its members are in [`Phase::Batched`].
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// The updates of the attempt being made, in FIFO order, the leader among them while
    /// its own change is still on.
    pub(super) active: Vec<OpId>,
    /// Halves split off by bisecting a fatal write, each waiting for its own attempt,
    /// the first to run first.
    pub(super) later: VecDeque<Vec<OpId>>,
    /// The leader's own outcome, once decided while it still leads the batch.
    pub(super) own: Option<Outcome>,
    /// What the last write left behind: `Some(token)` after a commit, `Some(None)` after a
    /// write that did not land or may have; `None` before any write. A shared lease's
    /// release stores it.
    pub(super) last_write: Option<Option<String>>,
}

impl Batch {
    /// Take `id` out of the batch, wherever it is.
    pub(super) fn remove(&mut self, id: OpId) {
        self.active.retain(|&m| m != id);
        for half in self.later.iter_mut() {
            half.retain(|&m| m != id);
        }
        self.later.retain(|half| !half.is_empty());
    }

    /// Every update still waiting for an outcome, in FIFO order.
    pub(super) fn members(&self) -> Vec<OpId> {
        self.active
            .iter()
            .chain(self.later.iter().flatten())
            .copied()
            .collect()
    }
}

/// One logical write.
#[derive(Debug)]
pub(super) struct Op {
    pub(super) entity: EntityId,
    pub(super) expected: Option<String>,
    pub(super) deadline_at: Option<u64>,
    /// Where the operation is.
    pub(super) phase: Phase,
    /// Write commands issued.
    pub(super) writes: u32,
    /// Failed calls (reads and writes).
    pub(super) failures: u32,
    pub(super) last_delay_ms: u64,
    pub(super) last_cost: u32,
    /// The token the next write is based on.
    pub(super) base: Option<String>,
    /// Boxed: only operations that failed once pay for it.
    pub(super) last_failure: Option<Box<Failure>>,
    pub(super) holder: Option<String>,
    /// The writer has no read function (see [`super::SubmitOptions::no_read`]).
    pub(super) no_read: bool,
    pub(super) shared: Option<Box<Shared>>,
    /// An update (a change the host applies on command), not an opaque write.
    pub(super) update: bool,
    /// The batch this update leads, from its grant to its finish.
    pub(super) batch: Option<Box<Batch>>,
}

impl Op {
    /// When the operation's timer fires, if its phase waits on time.
    pub(super) fn timer(&self) -> Option<u64> {
        match self.phase {
            Phase::Queued { .. } => self.deadline_at,
            Phase::Cooling { until } => Some(until),
            Phase::Backoff { wake_at, renew_at } => {
                Some(renew_at.map_or(wake_at, |renew| renew.min(wake_at)))
            }
            Phase::Leasing {
                wait: LeaseWait::Timer { at },
                ..
            } => Some(at),
            _ => None,
        }
    }

    /// The command the phase carries, marked as polled; `None` when there is none or it was
    /// already taken. A `Finish` is taken with [`Op::into_finish`] instead, since it ends
    /// the operation.
    pub(super) fn take_command(&mut self, id: OpId) -> Option<Command> {
        match &mut self.phase {
            Phase::Reading { polled, .. } if !*polled => {
                *polled = true;
                Some(Command::Read { op: id })
            }
            Phase::Writing { polled } if !*polled => {
                *polled = true;
                Some(Command::Write {
                    op: id,
                    attempt: self.writes,
                    base_token: self.base.clone(),
                    fence: self.shared.as_ref().and_then(|s| s.fence),
                })
            }
            Phase::Leasing {
                wait: LeaseWait::Reply { operation },
                ..
            } => operation
                .take()
                .map(|operation| Command::Store { op: id, operation }),
            _ => None,
        }
    }

    /// The `Apply` of an `applying` operation, marked as polled.
    pub(super) fn take_apply(&mut self, id: OpId) -> Option<Apply> {
        match &mut self.phase {
            Phase::Applying { sent } if sent.is_none() => {
                let ops = self
                    .batch
                    .as_ref()
                    .map(|b| b.active.clone())
                    .unwrap_or_default();
                *sent = Some(ops.clone());
                Some(Apply { op: id, ops })
            }
            _ => None,
        }
    }

    /// The `Finish` command of a finished operation.
    pub(super) fn into_finish(self, id: OpId) -> Option<Command> {
        match self.phase {
            Phase::Finishing { outcome } => Some(Command::Finish { op: id, outcome }),
            _ => None,
        }
    }
}
