//! Status codes and the other enums of the C ABI. Every value is explicit and is never
//! renumbered or reused: a C program compiled against an older header keeps working.

#![allow(non_camel_case_types)]

use writelane_core::UsageError;

/// What a `wl_` function reports. `WL_STATUS_OK` is zero; every other value is an error
/// whose details (`wl_engine_last_error`, or the `wl_error` out-parameter of functions
/// without a handle) name the argument, field or rule at fault.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wl_status {
    /// Success.
    Ok = 0,
    /// A pointer argument that must not be NULL was NULL.
    NullArgument = 1,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 2,
    /// The policy JSON was refused; the error names the field path and the rule.
    InvalidPolicy = 3,
    /// The engine refused the call as misuse of its contract (see `wl_usage`); nothing
    /// changed.
    UsageError = 4,
    /// A caller buffer is too small; the needed length was written to the length
    /// out-parameter.
    BufferTooSmall = 5,
    /// Another thread is inside a call on the same handle; this call did nothing.
    Busy = 6,
    /// writelane panicked inside this call (a bug in writelane); the handle is poisoned.
    Panicked = 7,
    /// An earlier call on this handle panicked; the handle refuses every call but
    /// `wl_engine_last_error` and `wl_engine_free`.
    Poisoned = 8,
    /// `wl_policy_token` or an IAM document helper (`wl_iam_*`) refused a document or an
    /// argument of it (not JSON, or not the shape the change needs); the error names the
    /// argument or the path inside it.
    InvalidDocument = 9,
    /// An argument is out of range: an unknown enum value, a length above `PTRDIFF_MAX`,
    /// a NULL string with a non-zero length, or two settings that exclude each other.
    InvalidArgument = 10,
    /// A lease record is not one writelane wrote (it does not parse, or a field breaks a
    /// rule of the core's `LeaseRecord::validate`); the error's path is the field.
    InvalidRecord = 11,
}

impl wl_status {
    /// Every status, in value order. (Crate-private: cbindgen would emit it as a macro.)
    pub(crate) const ALL: [wl_status; 12] = [
        wl_status::Ok,
        wl_status::NullArgument,
        wl_status::InvalidUtf8,
        wl_status::InvalidPolicy,
        wl_status::UsageError,
        wl_status::BufferTooSmall,
        wl_status::Busy,
        wl_status::Panicked,
        wl_status::Poisoned,
        wl_status::InvalidDocument,
        wl_status::InvalidArgument,
        wl_status::InvalidRecord,
    ];

    /// The constant's name in the C header, NUL-terminated.
    pub fn name(self) -> &'static str {
        match self {
            wl_status::Ok => "WL_STATUS_OK\0",
            wl_status::NullArgument => "WL_STATUS_NULL_ARGUMENT\0",
            wl_status::InvalidUtf8 => "WL_STATUS_INVALID_UTF8\0",
            wl_status::InvalidPolicy => "WL_STATUS_INVALID_POLICY\0",
            wl_status::UsageError => "WL_STATUS_USAGE_ERROR\0",
            wl_status::BufferTooSmall => "WL_STATUS_BUFFER_TOO_SMALL\0",
            wl_status::Busy => "WL_STATUS_BUSY\0",
            wl_status::Panicked => "WL_STATUS_PANICKED\0",
            wl_status::Poisoned => "WL_STATUS_POISONED\0",
            wl_status::InvalidDocument => "WL_STATUS_INVALID_DOCUMENT\0",
            wl_status::InvalidArgument => "WL_STATUS_INVALID_ARGUMENT\0",
            wl_status::InvalidRecord => "WL_STATUS_INVALID_RECORD\0",
        }
    }

    /// The status with this value, if any.
    pub fn from_u32(value: u32) -> Option<wl_status> {
        wl_status::ALL.get(value as usize).copied()
    }
}

/// The kind of misuse behind `WL_STATUS_USAGE_ERROR` (the engine's usage errors).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wl_usage {
    /// No usage error (the last call failed for another reason, or did not fail).
    None = 0,
    /// `now_ms` was earlier than a `now_ms` already passed in.
    TimeWentBackwards = 1,
    /// No live operation has this id.
    UnknownOp = 2,
    /// The operation is not waiting for this input.
    UnexpectedInput = 3,
    /// The command this input answers has not been polled yet.
    CommandNotDrained = 4,
    /// The entity name is empty or longer than 2048 bytes.
    InvalidEntity = 5,
    /// A change token is longer than 1024 bytes.
    InvalidToken = 6,
    /// An error code is longer than 256 bytes.
    InvalidCode = 7,
    /// Exported state could not be imported.
    InvalidState = 8,
    /// A retry token names a scope this handle never issued.
    UnknownScope = 9,
    /// The retry strategy already keeps the most scopes it may.
    TooManyScopes = 10,
    /// The engine's owner (shared lanes) is missing, empty or over 256 bytes, or an
    /// operation's holder is over 1024 bytes.
    InvalidOwner = 11,
    /// An expected token was given for a writer with no read function: the revision
    /// cannot be checked without reading it.
    ExpectedNeedsRead = 12,
}

impl wl_usage {
    /// Every usage kind, in value order. (Crate-private: cbindgen would emit it as a macro.)
    pub(crate) const ALL: [wl_usage; 13] = [
        wl_usage::None,
        wl_usage::TimeWentBackwards,
        wl_usage::UnknownOp,
        wl_usage::UnexpectedInput,
        wl_usage::CommandNotDrained,
        wl_usage::InvalidEntity,
        wl_usage::InvalidToken,
        wl_usage::InvalidCode,
        wl_usage::InvalidState,
        wl_usage::UnknownScope,
        wl_usage::TooManyScopes,
        wl_usage::InvalidOwner,
        wl_usage::ExpectedNeedsRead,
    ];

    /// The core's snake_case name for the kind (as the conformance vectors spell it),
    /// NUL-terminated; `none` for [`wl_usage::None`].
    pub fn name(self) -> &'static str {
        match self {
            wl_usage::None => "none\0",
            wl_usage::TimeWentBackwards => "time_went_backwards\0",
            wl_usage::UnknownOp => "unknown_op\0",
            wl_usage::UnexpectedInput => "unexpected_input\0",
            wl_usage::CommandNotDrained => "command_not_drained\0",
            wl_usage::InvalidEntity => "invalid_entity\0",
            wl_usage::InvalidToken => "invalid_token\0",
            wl_usage::InvalidCode => "invalid_code\0",
            wl_usage::InvalidState => "invalid_state\0",
            wl_usage::UnknownScope => "unknown_scope\0",
            wl_usage::TooManyScopes => "too_many_scopes\0",
            wl_usage::InvalidOwner => "invalid_owner\0",
            wl_usage::ExpectedNeedsRead => "expected_needs_read\0",
        }
    }

    /// The kind of a core usage error.
    pub fn of(e: &UsageError) -> wl_usage {
        match e {
            UsageError::TimeWentBackwards { .. } => wl_usage::TimeWentBackwards,
            UsageError::UnknownOp { .. } => wl_usage::UnknownOp,
            UsageError::UnexpectedInput { .. } => wl_usage::UnexpectedInput,
            UsageError::CommandNotDrained { .. } => wl_usage::CommandNotDrained,
            UsageError::InvalidEntity { .. } => wl_usage::InvalidEntity,
            UsageError::InvalidToken { .. } => wl_usage::InvalidToken,
            UsageError::InvalidCode { .. } => wl_usage::InvalidCode,
            UsageError::InvalidState { .. } => wl_usage::InvalidState,
            UsageError::UnknownScope { .. } => wl_usage::UnknownScope,
            UsageError::TooManyScopes { .. } => wl_usage::TooManyScopes,
            UsageError::InvalidOwner { .. } => wl_usage::InvalidOwner,
            UsageError::ExpectedNeedsRead => wl_usage::ExpectedNeedsRead,
        }
    }
}

/// What a `wl_command` asks the host to do.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wl_command_kind {
    /// No command is pending; the other fields are zero.
    None = 0,
    /// Read the entity and report its change token with a `read_done` input.
    Read = 1,
    /// Perform the write (attempt `attempt`, based on `base_token`) and report
    /// `write_done` or `write_failed`.
    Write = 2,
    /// The operation is over; `outcome` says how. The operation id is forgotten.
    Finish = 3,
    /// Shared lanes: carry out `operation` (a lease-store operation as JSON text) with
    /// the store adapter and report `store_reply`.
    Store = 4,
    /// Group commit (only from `wl_engine_poll_action` and `wl_engine_poll_action_for`):
    /// `op` leads a batch of updates; `operation` is the step as JSON text,
    /// `{"type":"apply","op":L,"ops":[L,2,3]}`. Run each op's change function, in the
    /// order of `ops`, on the document the batch's read returned (each next one on the
    /// previous result), and report every op applied or refused with
    /// `WL_INPUT_KIND_APPLY_DONE`; the write that follows writes the result.
    Apply = 5,
}

/// What a `wl_input` reports. Used as the `uint32_t kind` field of `wl_input`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wl_input_kind {
    /// A read completed: `token` is the entity's change token (absent when the entity
    /// does not exist).
    ReadDone = 1,
    /// A read failed: `failure` says how.
    ReadFailed = 2,
    /// A write succeeded: `token` is the new change token, if known.
    WriteDone = 3,
    /// A write failed: `failure` says how.
    WriteFailed = 4,
    /// The host abandons the operation.
    Cancel = 5,
    /// A store command completed (shared lanes): `reply` is what the lease store
    /// answered, as JSON text (`{"reply":"found","record":...}`, `{"reply":"done"}`,
    /// `{"reply":"refused","current":...}`, `{"reply":"lost"}`,
    /// `{"reply":"unavailable"}`).
    StoreReply = 6,
    /// A `WL_COMMAND_KIND_APPLY` completed: `op` is the batch's leader (the command's
    /// `op`) and `reply` is the results as JSON text, one per op of the command in its
    /// order: `[{"op":L,"applied":true},{"op":2,"applied":false,"code":"ValueError"}]`
    /// (`code`, at most 256 bytes, names why a change was refused; the update gives up as
    /// `fatal` with it).
    ApplyDone = 7,
}

/// How an operation ended (in a `WL_COMMAND_KIND_FINISH` command).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wl_outcome {
    /// Not a finish command.
    None = 0,
    /// The write landed; `token` is the committed change token, if known.
    Committed = 1,
    /// The engine stopped trying; `reason` says why.
    GaveUp = 2,
}

/// Why an operation gave up.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wl_give_up_reason {
    /// The operation did not give up.
    None = 0,
    /// The class's attempt limit was reached (`error_class`, `code`).
    AttemptsExhausted = 1,
    /// A retry budget was empty (`error_class`, `budget_scope`, `code`).
    BudgetExhausted = 2,
    /// The deadline passed, or the next delay would pass it (`code`).
    DeadlineExceeded = 3,
    /// The failure is never retried (`code`, `http_status`).
    Fatal = 4,
    /// The entity is at a revision the writer has not seen (`expected`, `found`).
    StaleRevision = 5,
    /// The host cancelled the operation.
    Cancelled = 6,
    /// Shared lanes: the lease was lost (another process took it over, or a renewal
    /// failed); no write was started without it.
    LeaseLost = 7,
    /// Shared lanes: the lease store stayed unavailable; nothing was written.
    LockUnavailable = 8,
}

impl wl_give_up_reason {
    /// The snake_case name the JSON form uses, NUL-terminated.
    pub fn name(self) -> &'static str {
        match self {
            wl_give_up_reason::None => "none\0",
            wl_give_up_reason::AttemptsExhausted => "attempts_exhausted\0",
            wl_give_up_reason::BudgetExhausted => "budget_exhausted\0",
            wl_give_up_reason::DeadlineExceeded => "deadline_exceeded\0",
            wl_give_up_reason::Fatal => "fatal\0",
            wl_give_up_reason::StaleRevision => "stale_revision\0",
            wl_give_up_reason::Cancelled => "cancelled\0",
            wl_give_up_reason::LeaseLost => "lease_lost\0",
            wl_give_up_reason::LockUnavailable => "lock_unavailable\0",
        }
    }
}

/// The class a failure was put in by the policy's code table.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wl_error_class {
    /// No class applies.
    None = 0,
    /// Another writer changed the entity at the same time.
    Conflict = 1,
    /// The service asked callers to slow down.
    Throttle = 2,
    /// A failure a retry usually cures.
    Transient = 3,
    /// The reply was lost after the request was sent.
    Unknown = 4,
    /// Never retried.
    Fatal = 5,
}

impl wl_error_class {
    /// The class of a core error class.
    pub fn of(c: writelane_core::ErrorClass) -> wl_error_class {
        use writelane_core::ErrorClass as C;
        match c {
            C::Conflict => wl_error_class::Conflict,
            C::Throttle => wl_error_class::Throttle,
            C::Transient => wl_error_class::Transient,
            C::Unknown => wl_error_class::Unknown,
            C::Fatal => wl_error_class::Fatal,
        }
    }

    /// The snake_case name the JSON form uses, NUL-terminated.
    pub fn name(self) -> &'static str {
        match self {
            wl_error_class::None => "none\0",
            wl_error_class::Conflict => "conflict\0",
            wl_error_class::Throttle => "throttle\0",
            wl_error_class::Transient => "transient\0",
            wl_error_class::Unknown => "unknown\0",
            wl_error_class::Fatal => "fatal\0",
        }
    }
}

/// Which retry budget refused a retry.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wl_budget_scope {
    /// No budget was involved.
    None = 0,
    /// The engine's (or the retry scope's) bucket.
    Engine = 1,
    /// The entity's own bucket.
    Entity = 2,
}

impl wl_budget_scope {
    /// The snake_case name the JSON form uses, NUL-terminated.
    pub fn name(self) -> &'static str {
        match self {
            wl_budget_scope::None => "none\0",
            wl_budget_scope::Engine => "engine\0",
            wl_budget_scope::Entity => "entity\0",
        }
    }
}

/// Why the retry strategy refused a retry.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wl_refusal {
    /// The retry is allowed.
    None = 0,
    /// The failure's class is never retried.
    NotRetryable = 1,
    /// The class's attempt limit is reached.
    AttemptsExhausted = 2,
    /// The retry budget holds fewer tokens than the retry costs.
    BudgetExhausted = 3,
    /// The delay would pass the deadline.
    DeadlineExceeded = 4,
}

impl wl_refusal {
    /// The snake_case name the JSON form uses, NUL-terminated.
    pub fn name(self) -> &'static str {
        match self {
            wl_refusal::None => "none\0",
            wl_refusal::NotRetryable => "not_retryable\0",
            wl_refusal::AttemptsExhausted => "attempts_exhausted\0",
            wl_refusal::BudgetExhausted => "budget_exhausted\0",
            wl_refusal::DeadlineExceeded => "deadline_exceeded\0",
        }
    }
}
