//! The flat structs of the C ABI.

#![allow(non_camel_case_types)]

use std::os::raw::c_char;
use std::ptr;

use crate::status::{
    wl_budget_scope, wl_command_kind, wl_error_class, wl_give_up_reason, wl_outcome, wl_refusal,
    wl_status, wl_usage,
};

/// Bytes in `wl_error.path`, the NUL included.
pub const WL_ERROR_PATH_CAP: usize = 256;
/// Bytes in `wl_error.message`, the NUL included.
pub const WL_ERROR_MESSAGE_CAP: usize = 1024;

/// A string as pointer and length in bytes (UTF-8).
///
/// In an argument struct a NULL `ptr` (with `len` 0) means "absent"; an empty string is a
/// non-NULL `ptr` with `len` 0. In a result, strings are borrowed from the handle until the
/// next call on the same handle; `len` is authoritative and the text is not necessarily
/// NUL-terminated unless the function says so.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wl_str {
    /// The first byte, or NULL for "absent".
    pub ptr: *const c_char,
    /// Length in bytes, without any NUL terminator.
    pub len: usize,
}

impl wl_str {
    /// The absent string.
    pub const ABSENT: wl_str = wl_str {
        ptr: ptr::null(),
        len: 0,
    };

    /// Borrow a Rust string.
    pub fn of(s: &str) -> wl_str {
        wl_str {
            ptr: s.as_ptr().cast(),
            len: s.len(),
        }
    }

    /// Borrow an optional Rust string.
    pub fn of_opt(s: Option<&str>) -> wl_str {
        s.map_or(wl_str::ABSENT, wl_str::of)
    }
}

/// Details of a failed call, copied into caller memory. Texts are NUL-terminated and cut
/// at a UTF-8 boundary when they do not fit; `path_len` and `message_len` give the full
/// lengths, so `message_len >= WL_ERROR_MESSAGE_CAP` means the message was cut.
#[repr(C)]
pub struct wl_error {
    /// The status the call returned.
    pub status: wl_status,
    /// For `WL_STATUS_USAGE_ERROR`, the kind of misuse; otherwise `WL_USAGE_NONE`.
    pub usage: wl_usage,
    /// Full length of the path text.
    pub path_len: usize,
    /// Full length of the message text.
    pub message_len: usize,
    /// What is at fault: a policy field path (`retry.conflict.base_ms`), a path inside a
    /// policy document (`Statement[0].Effect`), or an argument name (`entity`); may be
    /// empty.
    pub path: [c_char; WL_ERROR_PATH_CAP],
    /// The error in words, naming the field and the rule it broke.
    pub message: [c_char; WL_ERROR_MESSAGE_CAP],
}

/// Options of one logical write (`wl_engine_submit`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wl_submit_options {
    /// The change token the writer based its change on; absent when NULL. With token
    /// validation on, the engine refuses to write on another revision.
    pub expected: wl_str,
    /// Whether `deadline_ms` is set.
    pub has_deadline: bool,
    /// Overrides the policy's deadline: milliseconds from submission.
    pub deadline_ms: u64,
    /// Shared lanes: who holds the lease, in words (host, pipeline, run id), stored in
    /// the lease record for people debugging a stuck lease; NULL for none. At most 1024
    /// bytes.
    pub holder: wl_str,
    /// The writer has no read function: the engine never commands a read for this
    /// operation (a retry writes again on no known revision). With `expected` set the
    /// submit is refused (`WL_USAGE_EXPECTED_NEEDS_READ`). `false` in a zeroed struct.
    pub no_read: bool,
}

/// What the host observed when a call failed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wl_failure {
    /// The error code exactly as the service sent it (`ConcurrentModification`), or NULL.
    pub code: wl_str,
    /// The HTTP status, or 0 when there was no response.
    pub http_status: u16,
    /// Whether `retry_after_ms` is set.
    pub has_retry_after: bool,
    /// The service's retry-after hint in milliseconds.
    pub retry_after_ms: u64,
    /// The retry-after hint as header text (`x-amz-retry-after`), or NULL. Text that is
    /// not a whole number of milliseconds is ignored. Set at most one of this and
    /// `has_retry_after`.
    pub retry_after_header: wl_str,
    /// The request was sent and no reply came back: the write may have landed.
    pub outcome_unknown: bool,
    /// The change token the write would have produced, if known, or NULL.
    pub intended_token: wl_str,
}

/// What the host observed, fed back with `wl_engine_handle`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wl_input {
    /// One of `wl_input_kind` (`WL_INPUT_KIND_READ_DONE`, ...).
    pub kind: u32,
    /// The operation.
    pub op: u64,
    /// For read_done and write_done: the observed or new change token, or NULL.
    pub token: wl_str,
    /// For read_failed and write_failed: what went wrong.
    pub failure: wl_failure,
    /// For store_reply: the lease store's answer as JSON text (see
    /// `WL_INPUT_KIND_STORE_REPLY`).
    pub reply: wl_str,
}

/// A command for the host, from `wl_engine_poll_command`. Strings are borrowed from the
/// handle until the next call on it; a NULL `ptr` means absent (JSON `null`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wl_command {
    /// What to do; `WL_COMMAND_KIND_NONE` when nothing is pending.
    pub kind: wl_command_kind,
    /// The operation.
    pub op: u64,
    /// For write: the attempt number, from 1.
    pub attempt: u32,
    /// For write: the revision the write must be based on, if known.
    pub base_token: wl_str,
    /// For finish: how the operation ended.
    pub outcome: wl_outcome,
    /// For finish: write attempts made.
    pub attempts: u32,
    /// For a committed finish: the committed change token, if known.
    pub token: wl_str,
    /// For a gave-up finish: why.
    pub reason: wl_give_up_reason,
    /// For attempts_exhausted and budget_exhausted: the class of the last failure.
    pub error_class: wl_error_class,
    /// For budget_exhausted: which bucket was empty.
    pub budget_scope: wl_budget_scope,
    /// For attempts_exhausted, budget_exhausted, deadline_exceeded and fatal: the last
    /// error code, if any.
    pub code: wl_str,
    /// For fatal: the HTTP status, or 0 when absent.
    pub http_status: u16,
    /// For stale_revision: the token the writer based its change on.
    pub expected: wl_str,
    /// For stale_revision: the token found.
    pub found: wl_str,
    /// For store: the lease-store operation as JSON text, NUL-terminated:
    /// `{"op":"get","key":K}`, `{"op":"put_if_absent","key":K,"record":R}` or
    /// `{"op":"compare_and_swap","key":K,"expected_rvn":N,"record":R}`.
    pub operation: wl_str,
    /// For write: whether `fence` is set (shared lanes).
    pub has_fence: bool,
    /// For write under shared lanes: the lease epoch the write is made under.
    pub fence: u64,
}

impl wl_command {
    /// No command. Rust-only: C zero-fills a `wl_command` instead (cbindgen would spell this
    /// with Rust's enum variant names, which C does not have).
    ///
    /// cbindgen:ignore
    pub const NONE: wl_command = wl_command {
        kind: wl_command_kind::None,
        op: 0,
        attempt: 0,
        base_token: wl_str::ABSENT,
        outcome: wl_outcome::None,
        attempts: 0,
        token: wl_str::ABSENT,
        reason: wl_give_up_reason::None,
        error_class: wl_error_class::None,
        budget_scope: wl_budget_scope::None,
        code: wl_str::ABSENT,
        http_status: 0,
        expected: wl_str::ABSENT,
        found: wl_str::ABSENT,
        operation: wl_str::ABSENT,
        has_fence: false,
        fence: 0,
    };
}

/// Counters of an engine, over all entities.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct wl_counters {
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

/// A snapshot of an engine's global counters (`wl_engine_stats`); per-entity figures are
/// in `wl_engine_stats_json`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct wl_stats {
    /// Counters over all entities.
    pub global: wl_counters,
    /// Whether the engine has a budget (`budget` is meaningful).
    pub has_budget: bool,
    /// Tokens in the engine's budget.
    pub budget: u32,
    /// Operations live now.
    pub active_ops: u64,
    /// Telemetry events dropped because nobody drained them.
    pub dropped_events: u64,
}

/// The state of one logical call under the retry strategy: a plain value the caller
/// keeps between decisions and passes back unchanged.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct wl_retry_token {
    /// Index of the scope (budget partition) the token draws from.
    pub scope: u32,
    /// Attempts made so far; 1 once acquired.
    pub attempts: u32,
    /// Tokens the last retry took, refunded on success.
    pub last_cost: u32,
    /// The last delay, used by decorrelated jitter.
    pub last_delay_ms: u64,
    /// When the call started, for the deadline.
    pub started_ms: u64,
}

/// The retry strategy's decision after a failure (`wl_engine_retry_refresh`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wl_retry_decision {
    /// Whether to retry: then wait `delay_ms` and call again.
    pub retry: bool,
    /// Milliseconds to wait before the next attempt.
    pub delay_ms: u64,
    /// Budget tokens the retry took.
    pub cost: u32,
    /// The failure's class.
    pub error_class: wl_error_class,
    /// When `retry` is false: why not.
    pub refusal: wl_refusal,
}
