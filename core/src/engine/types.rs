//! The engine's public data: what the host passes in ([`SubmitOptions`], [`Input`]), what
//! it gets back ([`Command`], [`Outcome`], [`Event`]) and what it can inspect or persist
//! ([`Stats`], [`EngineState`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backoff::BudgetScope;
use crate::classify::{ErrorClass, Failure};
use crate::error::UsageError;
use crate::lease::{StoreOp, StoreReply};
use crate::limits::{MAX_CODE_LEN, MAX_TOKEN_LEN};

pub use crate::ids::OpId;

/// Telemetry events kept before the oldest are dropped (and counted in the stats).
pub const MAX_QUEUED_EVENTS: usize = 65_536;

/// Options of one logical write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitOptions {
    /// The change token the writer based its change on. With token validation on, the
    /// engine refuses to write if the entity is found at another revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// Overrides the policy's deadline for this write, in milliseconds from submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// With shared lanes: who holds the lease, in words (host, pipeline, run id,
    /// operation), stored in the lease record for people debugging a stuck lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The writer has no read function. The engine then never commands a `Read`: where it
    /// would, it goes on as if the entity had been read with no token (writes are based on
    /// no known revision, and an unknown write outcome is retried as not landed). An
    /// `expected` token cannot be checked without a read, so the two together are refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_read: bool,
}

/// Options of one update (see [`crate::Engine::submit_update`]). An update always reads
/// the entity, so it has no `no_read`; it is based on what it reads, so it has no
/// `expected`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOptions {
    /// Overrides the policy's deadline for this update, in milliseconds from submission.
    /// It runs while the update waits in the queue; once the update is in a batch, the
    /// batch follows its leader's deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// With shared lanes: who holds the lease, in words (see [`SubmitOptions::holder`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// What the host's change function made of one update's change, in an `apply_done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyResult {
    /// The update.
    pub op: OpId,
    /// The change was applied to the document; `false` when the change function refused
    /// or raised, which excludes the update from the write.
    pub applied: bool,
    /// For a refused change: a code naming why (an exception's type, say); the update
    /// gives up as `fatal` with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// What the host observed, fed back with [`crate::Engine::handle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Input {
    /// A `Read` command completed: the entity's current change token, or `None` if the
    /// entity does not exist.
    ReadDone {
        /// The operation.
        op: OpId,
        /// The observed token.
        #[serde(default)]
        token: Option<String>,
    },
    /// A `Read` command failed.
    ReadFailed {
        /// The operation.
        op: OpId,
        /// What went wrong.
        failure: Failure,
    },
    /// A `Write` command succeeded, with the new change token if the host knows it.
    WriteDone {
        /// The operation.
        op: OpId,
        /// The token of the revision the write produced.
        #[serde(default)]
        token: Option<String>,
    },
    /// A `Write` command failed.
    WriteFailed {
        /// The operation.
        op: OpId,
        /// What went wrong.
        failure: Failure,
    },
    /// The host abandons the operation (a cancelled context, an abort signal).
    Cancel {
        /// The operation.
        op: OpId,
    },
    /// A `Store` command completed (shared lanes): what the lease store answered.
    StoreReply {
        /// The operation.
        op: OpId,
        /// The store's answer.
        reply: StoreReply,
    },
    /// An [`Apply`] completed: one result per op of the command, in its order, each change
    /// applied to the document the batch read (and to the changes before it).
    ApplyDone {
        /// The batch's leader, the op the `Apply` named.
        op: OpId,
        /// Per update of the `Apply`, in its order.
        results: Vec<ApplyResult>,
    },
}

impl Input {
    pub(crate) fn op(&self) -> OpId {
        match self {
            Input::ReadDone { op, .. }
            | Input::ReadFailed { op, .. }
            | Input::WriteDone { op, .. }
            | Input::WriteFailed { op, .. }
            | Input::StoreReply { op, .. }
            | Input::ApplyDone { op, .. }
            | Input::Cancel { op } => *op,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Input::ReadDone { .. } => "read_done",
            Input::ReadFailed { .. } => "read_failed",
            Input::WriteDone { .. } => "write_done",
            Input::WriteFailed { .. } => "write_failed",
            Input::Cancel { .. } => "cancel",
            Input::StoreReply { .. } => "store_reply",
            Input::ApplyDone { .. } => "apply_done",
        }
    }
}

/// Something the host must do now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Read the entity and report its change token with `ReadDone`.
    Read {
        /// The operation.
        op: OpId,
    },
    /// Perform the write and report `WriteDone` or `WriteFailed`.
    Write {
        /// The operation.
        op: OpId,
        /// Attempt number, from 1.
        attempt: u32,
        /// The revision the write must be based on, if known.
        base_token: Option<String>,
        /// With shared lanes, the lease epoch this write is made under (a fence for
        /// services that can check one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fence: Option<u64>,
    },
    /// Carry out a lease-store operation (shared lanes) and report `StoreReply`.
    Store {
        /// The operation.
        op: OpId,
        /// What to do in the store.
        operation: StoreOp,
    },
    /// The operation is over; it is forgotten once this command is polled.
    Finish {
        /// The operation.
        op: OpId,
        /// How it ended.
        outcome: Outcome,
    },
}

impl Command {
    /// The operation the command belongs to.
    pub fn op(&self) -> OpId {
        match self {
            Command::Read { op }
            | Command::Write { op, .. }
            | Command::Store { op, .. }
            | Command::Finish { op, .. } => *op,
        }
    }
}

/// A batch's second step, between its `Read` and its `Write`: run each update's change
/// function, in this order, on the document the `Read` returned, and report each one
/// applied or refused with [`Input::ApplyDone`]. The `Write` that follows writes the
/// resulting document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "apply")]
pub struct Apply {
    /// The batch's leader: it carries the batch's `Read`, `Apply` and `Write` commands.
    pub op: OpId,
    /// The updates whose changes to apply, in FIFO order (the leader's among them unless
    /// its change was already refused or split off).
    pub ops: Vec<OpId>,
}

/// What a host that submits updates drains with [`crate::Engine::poll_action`]: every
/// [`Command`], and the [`Apply`] step of batches. In JSON it is the command or the apply
/// itself (`{"type": "apply", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Action {
    /// A command, as [`crate::Engine::poll_command`] returns it.
    Command(Command),
    /// Apply the batch's changes.
    Apply(Apply),
}

impl Action {
    /// The operation the action belongs to.
    pub fn op(&self) -> OpId {
        match self {
            Action::Command(c) => c.op(),
            Action::Apply(a) => a.op,
        }
    }
}

/// How a logical write ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The write landed.
    Committed {
        /// The change token of the committed revision, if known.
        token: Option<String>,
        /// Write attempts made.
        attempts: u32,
    },
    /// The engine stopped trying.
    GaveUp {
        /// Why.
        #[serde(flatten)]
        reason: GiveUpReason,
        /// Write attempts made.
        attempts: u32,
    },
}

/// Why a logical write gave up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum GiveUpReason {
    /// The class's attempt limit was reached.
    AttemptsExhausted {
        /// The class of the last failure.
        class: ErrorClass,
        /// The last error code.
        code: Option<String>,
    },
    /// A retry budget was empty.
    BudgetExhausted {
        /// The class of the last failure.
        class: ErrorClass,
        /// Which bucket was empty.
        scope: BudgetScope,
        /// The last error code.
        code: Option<String>,
    },
    /// The deadline passed, or the next delay would pass it.
    DeadlineExceeded {
        /// The last error code, if a failure preceded.
        code: Option<String>,
    },
    /// The failure is never retried.
    Fatal {
        /// The error code.
        code: Option<String>,
        /// The HTTP status.
        http_status: Option<u16>,
    },
    /// The entity is at a revision the writer has not seen.
    StaleRevision {
        /// The token the writer based its change on.
        expected: Option<String>,
        /// The token found.
        found: Option<String>,
    },
    /// The host cancelled the operation.
    Cancelled,
    /// The lease was lost before the write (shared lanes): another writer took it over, or
    /// a renewal failed. No write was made without it.
    LeaseLost,
    /// The lease store stayed unreachable (shared lanes); no write was made.
    LockUnavailable,
}

impl GiveUpReason {
    /// The reason as a snake_case name.
    pub fn name(&self) -> &'static str {
        match self {
            GiveUpReason::AttemptsExhausted { .. } => "attempts_exhausted",
            GiveUpReason::BudgetExhausted { .. } => "budget_exhausted",
            GiveUpReason::DeadlineExceeded { .. } => "deadline_exceeded",
            GiveUpReason::Fatal { .. } => "fatal",
            GiveUpReason::StaleRevision { .. } => "stale_revision",
            GiveUpReason::Cancelled => "cancelled",
            GiveUpReason::LeaseLost => "lease_lost",
            GiveUpReason::LockUnavailable => "lock_unavailable",
        }
    }
}

/// Telemetry: one record per decision, drained with [`crate::Engine::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A logical write was submitted.
    Submitted {
        /// The operation.
        op: OpId,
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
    },
    /// The write waits for the entity's lane.
    LaneWaitStarted {
        /// The operation.
        op: OpId,
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
        /// Writes ahead of it, counting the holder.
        ahead: u32,
    },
    /// The write got the lane after waiting.
    LaneWaitEnded {
        /// The operation.
        op: OpId,
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
        /// How long it waited.
        waited_ms: u64,
    },
    /// A write failed with a conflict.
    Conflict {
        /// The operation.
        op: OpId,
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
        /// The attempt that conflicted.
        attempt: u32,
        /// The error code.
        code: Option<String>,
    },
    /// A retry was scheduled.
    RetryScheduled {
        /// The operation.
        op: OpId,
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
        /// Failed calls so far.
        failures: u32,
        /// The wait before the next call.
        delay_ms: u64,
        /// The class of the failure.
        class: ErrorClass,
        /// Budget tokens it took.
        cost: u32,
    },
    /// A retry was refused by a budget.
    BudgetRefused {
        /// The operation.
        op: OpId,
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
        /// Which bucket.
        scope: BudgetScope,
        /// Tokens needed.
        needed: u32,
        /// Tokens available.
        available: u32,
    },
    /// The entity was found at a revision the writer has not seen.
    StaleRevision {
        /// The operation.
        op: OpId,
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
        /// What the writer based its change on.
        expected: Option<String>,
        /// What was found.
        found: Option<String>,
    },
    /// A write landed.
    Committed {
        /// The operation.
        op: OpId,
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
        /// Write attempts made.
        attempts: u32,
    },
    /// A write gave up.
    GaveUp {
        /// The operation.
        op: OpId,
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
        /// Write attempts made.
        attempts: u32,
        /// Why (snake_case reason name).
        reason: String,
    },
    /// Conflicts on the entity crossed the threshold: new writes wait until `until`.
    SpikeStarted {
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
        /// Conflicts counted in the window.
        conflicts: u32,
        /// End of the cool-down.
        until: u64,
    },
    /// The cool-down ended.
    SpikeEnded {
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
    },
    /// The operation holds the entity's shared lease.
    LeaseAcquired {
        /// The operation.
        op: OpId,
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
        /// The fence of this holding.
        epoch: u64,
        /// Whether a stale holder was taken over.
        takeover: bool,
    },
    /// The operation lost the entity's shared lease.
    LeaseLost {
        /// The operation.
        op: OpId,
        /// The entity.
        entity: Arc<str>,
        /// When.
        at: u64,
    },
}

/// Counters, globally and per entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Logical writes submitted.
    pub submitted: u64,
    /// Logical writes committed.
    pub committed: u64,
    /// Logical writes that gave up.
    pub gave_up: u64,
    /// Read commands issued.
    pub reads: u64,
    /// Write commands issued.
    pub writes: u64,
    /// Failures of the conflict class.
    pub conflicts: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Retries refused by a budget.
    pub budget_refusals: u64,
    /// Stale revisions found.
    pub stale_revisions: u64,
    /// Writes that waited for a lane.
    pub lane_waits: u64,
    /// Total milliseconds spent waiting for lanes.
    pub lane_wait_ms: u64,
    /// Conflict spikes detected.
    pub spikes: u64,
    /// Lease-store operations issued (shared lanes).
    pub store_ops: u64,
}

/// Per-entity view in [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityStats {
    /// Counters for this entity.
    pub counters: Counters,
    /// Tokens in the entity's budget, when per-entity budgets are on.
    pub budget: Option<u32>,
    /// Writes waiting for the lane.
    pub queued: u32,
    /// Whether a write holds the lane.
    pub busy: bool,
    /// Whether a conflict cool-down is running.
    pub cooling: bool,
    /// The last committed change token known.
    pub committed_token: Option<String>,
}

/// A snapshot of the engine's counters and budget levels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Counters over all entities.
    pub global: Counters,
    /// Tokens in the engine's budget, when budgets are on.
    pub budget: Option<u32>,
    /// Operations live now.
    pub active_ops: u64,
    /// Telemetry events dropped because nobody drained them.
    pub dropped_events: u64,
    /// Per entity, by name.
    pub entities: BTreeMap<String, EntityStats>,
}

/// What an engine learned and can persist: committed tokens and budget levels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineState {
    /// Format version of this document.
    pub version: u32,
    /// The engine budget's level.
    #[serde(default)]
    pub budget: Option<u32>,
    /// Per entity: the last committed token and the entity budget's level.
    #[serde(default)]
    pub entities: BTreeMap<String, EntityRecord>,
}

/// One entity in [`EngineState`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityRecord {
    /// The last committed change token.
    #[serde(default)]
    pub committed_token: Option<String>,
    /// The entity budget's level.
    #[serde(default)]
    pub budget: Option<u32>,
}

/// Current [`EngineState`] format version.
pub const STATE_VERSION: u32 = 1;

pub(crate) fn check_token(token: Option<&str>) -> Result<(), UsageError> {
    match token {
        Some(t) if t.len() > MAX_TOKEN_LEN => Err(UsageError::InvalidToken {
            reason: format!("{} bytes is over the limit of {MAX_TOKEN_LEN}", t.len()),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn check_code(code: Option<&str>) -> Result<(), UsageError> {
    match code {
        Some(c) if c.len() > MAX_CODE_LEN => Err(UsageError::InvalidCode {
            reason: format!("{} bytes is over the limit of {MAX_CODE_LEN}", c.len()),
        }),
        _ => Ok(()),
    }
}
