//! The crate's error types, one per concern: [`UsageError`] when the host misuses the
//! API, [`PolicyError`] when a policy breaks a rule. Outcomes of writes (a write gave up,
//! a revision was stale) are data in [`crate::Outcome`], never errors; a `UsageError`
//! means the host broke the contract and nothing was changed.

use crate::ids::OpId;

/// The host called the engine in a way the contract does not allow. The call changed
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// `now` was earlier than a `now` already passed in.
    #[error("time went backwards: now = {now} ms after {last} ms")]
    TimeWentBackwards {
        /// The latest time seen.
        last: u64,
        /// The time passed in.
        now: u64,
    },
    /// No operation with this id is live (it never existed or already finished).
    #[error("unknown operation {op}")]
    UnknownOp {
        /// The id passed in.
        op: OpId,
    },
    /// The operation is not waiting for this input.
    #[error("operation {op} got {input} while waiting for {waiting_for}")]
    UnexpectedInput {
        /// The operation.
        op: OpId,
        /// What was passed in (`read_done`, `write_done`, ...).
        input: &'static str,
        /// What the operation waits for.
        waiting_for: &'static str,
    },
    /// The command this input answers has not been taken with `poll_command` yet.
    #[error("operation {op} got {input} before its command was polled")]
    CommandNotDrained {
        /// The operation.
        op: OpId,
        /// What was passed in.
        input: &'static str,
    },
    /// The entity name is empty or too long.
    #[error("invalid entity name: {reason}")]
    InvalidEntity {
        /// What is wrong with it.
        reason: String,
    },
    /// A change token is too long.
    #[error("invalid change token: {reason}")]
    InvalidToken {
        /// What is wrong with it.
        reason: String,
    },
    /// The engine's owner (shared lanes) or an operation's holder is missing or malformed.
    #[error("invalid owner: {reason}")]
    InvalidOwner {
        /// What is wrong.
        reason: String,
    },
    /// An error code passed in is too long.
    #[error("invalid error code: {reason}")]
    InvalidCode {
        /// What is wrong with it.
        reason: String,
    },
    /// `expected` was given for a writer with no read function: the revision cannot be
    /// checked without reading it.
    #[error("expected needs a read function: without a read the revision cannot be checked")]
    ExpectedNeedsRead,
    /// Exported state could not be imported.
    #[error("invalid state: {reason}")]
    InvalidState {
        /// What is wrong with it.
        reason: String,
    },
    /// A retry token names a scope this strategy never issued.
    #[error("retry token names unknown scope {scope}")]
    UnknownScope {
        /// The scope index in the token.
        scope: u32,
    },
    /// The strategy already keeps the most scopes it may.
    #[error("too many retry scopes (limit {limit})")]
    TooManyScopes {
        /// The limit.
        limit: usize,
    },
}

impl UsageError {
    /// A stable snake_case name for the variant, for bindings that expose error codes.
    pub fn kind(&self) -> &'static str {
        match self {
            UsageError::TimeWentBackwards { .. } => "time_went_backwards",
            UsageError::UnknownOp { .. } => "unknown_op",
            UsageError::UnexpectedInput { .. } => "unexpected_input",
            UsageError::CommandNotDrained { .. } => "command_not_drained",
            UsageError::InvalidEntity { .. } => "invalid_entity",
            UsageError::InvalidToken { .. } => "invalid_token",
            UsageError::InvalidCode { .. } => "invalid_code",
            UsageError::InvalidOwner { .. } => "invalid_owner",
            UsageError::ExpectedNeedsRead => "expected_needs_read",
            UsageError::InvalidState { .. } => "invalid_state",
            UsageError::UnknownScope { .. } => "unknown_scope",
            UsageError::TooManyScopes { .. } => "too_many_scopes",
        }
    }
}

/// A policy could not be built: the field path and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy field `{path}`: {rule}")]
pub struct PolicyError {
    /// Dotted path of the offending field (`retry.conflict.base_ms`), or `$` for the whole
    /// document.
    pub path: String,
    /// The rule that was broken, in words.
    pub rule: String,
}

impl PolicyError {
    pub(crate) fn new(path: impl Into<String>, rule: impl Into<String>) -> Self {
        PolicyError {
            path: path.into(),
            rule: rule.into(),
        }
    }
}
