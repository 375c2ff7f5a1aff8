//! One logical write: its options, its progress and its phase.

use super::types::{Command, OpId, Outcome};
use crate::classify::Failure;
use crate::entities::EntityId;
use crate::lease::LeaseClient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Op(OpId),
    SpikeEnd(EntityId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for the entity's lane; the timer, if any, is the deadline.
    Queued,
    /// Waiting out a conflict cool-down.
    Cooling,
    /// A read is outstanding; `readback` when it checks whether an unknown write landed.
    Reading { readback: bool },
    /// A write is outstanding.
    Writing,
    /// Waiting before the next call.
    Backoff,
    /// Shared lanes: a lease-store operation is outstanding, or the lease client waits
    /// (polling a held lease, a lock-delay); what follows is in `Shared::resume`.
    Leasing,
    /// Over; the `Finish` command is queued.
    Finishing,
}

/// What an operation does once its lease client is done with the store.
#[derive(Debug)]
pub(super) enum Resume {
    /// The lease was just acquired: start the first attempt.
    Start,
    /// A renewal before a write: issue the write on this base.
    Write(Option<String>),
    /// A renewal during a backoff: go on waiting.
    Backoff,
    /// The release before finishing with this outcome.
    Finish(Outcome),
}

/// Per-operation state of shared lanes, boxed so local operations do not pay for it.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) client: LeaseClient,
    pub(super) resume: Resume,
    /// End of the current backoff, while the lease is renewed during it.
    pub(super) wake_at: Option<u64>,
    pub(super) fence: Option<u64>,
}

#[derive(Debug)]
pub(super) struct Op {
    pub(super) entity: EntityId,
    pub(super) expected: Option<String>,
    pub(super) deadline_at: Option<u64>,
    pub(super) phase: Phase,
    /// The pending command has been polled (inputs are accepted only then).
    pub(super) polled: bool,
    pub(super) pending: Option<Command>,
    pub(super) timer: Option<u64>,
    pub(super) writes: u32,
    pub(super) failures: u32,
    pub(super) last_delay_ms: u64,
    pub(super) last_cost: u32,
    /// The token the next write is based on.
    pub(super) base: Option<String>,
    /// Boxed: only operations that failed once pay for it.
    pub(super) last_failure: Option<Box<Failure>>,
    pub(super) holds_lane: bool,
    pub(super) queued_at: u64,
    pub(super) holder: Option<String>,
    /// The writer has no read function (see [`SubmitOptions::no_read`]).
    pub(super) no_read: bool,
    pub(super) shared: Option<Box<Shared>>,
}
