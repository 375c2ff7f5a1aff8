//! # libwritelane: the C ABI of writelane
//!
//! One allocated type, the opaque `wl_engine` handle, holds a lane engine and the
//! decision-only retry strategy under one policy. Every function is prefixed `wl_`,
//! returns a `wl_status` (or a plain value that cannot fail), and runs inside a panic
//! guard: a panic (always a bug in writelane) poisons that handle only.
//!
//! Rules, repeated in the header and the README:
//!
//! - Strings in are pointer + length in bytes, UTF-8, and are copied before the call
//!   returns. A required string may not be NULL; in a struct a NULL `ptr` means absent.
//! - Strings out are borrowed from the handle until the next call on the same handle, or
//!   copied into a caller buffer whose needed length is always reported.
//! - The last error is kept per handle (`wl_engine_last_error`), never per thread.
//! - A handle may be used from any thread, but from one thread at a time: a call that
//!   finds another call in progress on the same handle returns `WL_STATUS_BUSY`.
//! - Time is integer milliseconds on a monotonic clock the host chooses; it never goes
//!   backwards on one handle.

#![deny(missing_docs)]
#![allow(non_camel_case_types, clippy::missing_safety_doc)]

mod entities;
mod guard;
mod iam;
mod lease;
mod status;
mod types;
#[cfg(target_family = "wasm")]
mod wasm;

use std::io::Write as _;
use std::os::raw::c_char;

use writelane_core::lease::StoreReply;
use writelane_core::{
    parse_retry_after, policy_token, Action, ApplyResult, Command, EngineState, Failure,
    GiveUpReason, Input, OpId, Outcome, Policy, Refusal, RetryStrategy, RetryToken, SubmitOptions,
    UpdateOptions,
};

pub use guard::wl_engine;
use guard::{in_arg, opt_str, out_arg, str_arg, with_handle, without_handle, Access, Fail, Inner};
pub use iam::{
    wl_iam_add_trust_principal, wl_iam_put_statement, wl_iam_remove_statement, wl_iam_set_tags,
};
pub use lease::{
    wl_force_release_finish, wl_force_release_plan, wl_lease_record_check, wl_owner_id,
};
pub use status::{
    wl_budget_scope, wl_command_kind, wl_error_class, wl_give_up_reason, wl_input_kind, wl_outcome,
    wl_refusal, wl_status, wl_usage,
};
pub use types::{
    wl_command, wl_counters, wl_error, wl_failure, wl_input, wl_retry_decision, wl_retry_token,
    wl_stats, wl_str, wl_submit_options, WL_ERROR_MESSAGE_CAP, WL_ERROR_PATH_CAP,
};

/// Major version of the library (from its Cargo.toml).
pub const WL_VERSION_MAJOR: u32 = 0;
/// Minor version of the library.
pub const WL_VERSION_MINOR: u32 = 1;
/// Patch version of the library.
pub const WL_VERSION_PATCH: u32 = 0;
/// The version as text, from Cargo.toml (the header spells it `#define WL_VERSION "..."`
/// from cbindgen.toml; cli/tests/versions.rs checks that both follow the workspace).
pub const WL_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The layout generation of the C ABI: every struct, enum and function signature of the
/// header. It changes when a program compiled against an older header could misread the
/// library (a struct grew or changed, a signature changed); see "ABI policy" in
/// bindings-c/README.md. 0.1.0 spelled its ABI as `0x000100`; 2 is the ABI where
/// `wl_submit_options`, `wl_input`, `wl_command` and `wl_counters` gained their shared-lane
/// fields.
pub const WL_ABI_VERSION: u32 = 2;
/// Length of a token from `wl_policy_token` (`c1:sha256:` and 64 hex digits), without
/// the NUL.
pub const WL_POLICY_TOKEN_LEN: usize = 74;

// The same text as WL_VERSION with the NUL that C needs.
static VERSION_CSTR: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's `WL_ABI_VERSION`. A program checks at start-up that it equals the
/// header's `WL_ABI_VERSION` it was compiled with, and refuses to run otherwise (the
/// structs it passes would be misread). Never fails.
#[no_mangle]
pub extern "C" fn wl_abi_version() -> u32 {
    WL_ABI_VERSION
}

/// The library's version as static NUL-terminated text (`"0.1.0"`). Never fails; the
/// caller must not free it.
#[no_mangle]
pub extern "C" fn wl_version() -> *const c_char {
    VERSION_CSTR.as_ptr().cast()
}

/// The header name of a status value (`"WL_STATUS_BUSY"`), static and NUL-terminated;
/// `"WL_STATUS_UNKNOWN"` for a value that is no status. Never fails.
#[no_mangle]
pub extern "C" fn wl_status_name(status: u32) -> *const c_char {
    wl_status::from_u32(status)
        .map_or("WL_STATUS_UNKNOWN\0", wl_status::name)
        .as_ptr()
        .cast()
}

/// The snake_case name of a usage kind as the conformance vectors spell it
/// (`"time_went_backwards"`), static and NUL-terminated; `"unknown"` for a value that is
/// no kind. Never fails.
#[no_mangle]
pub extern "C" fn wl_usage_name(usage: u32) -> *const c_char {
    wl_usage::ALL
        .get(usage as usize)
        .map_or("unknown\0", |u| u.name())
        .as_ptr()
        .cast()
}

/// Build an engine handle from a policy given as JSON text (a preset name as a JSON
/// string such as `"\"iam\""`, or an object with an optional `preset`, `service` and
/// overrides) and a seed for the jitter generator.
///
/// On success writes the new handle to `*out_engine`; the caller owns it and frees it
/// with `wl_engine_free`. On failure `*out_engine` is set to NULL (when `out_engine` is
/// not NULL) and nothing is allocated; the details go to `*out_error` when it is not NULL
/// (`WL_STATUS_INVALID_POLICY`: `path` is the policy field, `message` names the rule).
///
/// `policy` must not be NULL; `out_error` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_new(
    policy: *const c_char,
    policy_len: usize,
    seed: u64,
    out_engine: *mut *mut wl_engine,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe { new_engine(policy, policy_len, seed, None, false, out_engine, out_error) }
}

/// Build an engine handle, as `wl_engine_new` does, that writes lease records as `owner`
/// (1..=256 bytes, unique per process, such as `host:pid:random`). A policy with
/// `"lanes": {"mode": "shared"}` needs one: each lane holder then acquires a lease in a
/// store the writers share (`WL_COMMAND_KIND_STORE` commands) before it writes.
///
/// Errors as `wl_engine_new`, plus `WL_STATUS_USAGE_ERROR` (`invalid_owner`).
/// `policy` and `owner` must not be NULL; `out_error` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_new_with_owner(
    policy: *const c_char,
    policy_len: usize,
    seed: u64,
    owner: *const c_char,
    owner_len: usize,
    out_engine: *mut *mut wl_engine,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        new_engine(
            policy,
            policy_len,
            seed,
            Some((owner, owner_len)),
            false,
            out_engine,
            out_error,
        )
    }
}

/// Build an engine handle for a host that carries out store commands with a lease store:
/// as `wl_engine_new_with_owner`, but the policy's lanes are shared whatever it said
/// (`Policy::for_store`: a store is how a user asks for one writer per entity across
/// machines, so `"aws-standard"`, whose lanes are `none`, and an explicit `local` mode
/// both become `shared`). Every driver given a store applies exactly this rule; the
/// effective policy (`wl_engine_policy_json`) shows `"mode":"shared"`.
///
/// Errors as `wl_engine_new_with_owner`. `policy` and `owner` must not be NULL;
/// `out_error` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_new_for_store(
    policy: *const c_char,
    policy_len: usize,
    seed: u64,
    owner: *const c_char,
    owner_len: usize,
    out_engine: *mut *mut wl_engine,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        new_engine(
            policy,
            policy_len,
            seed,
            Some((owner, owner_len)),
            true,
            out_engine,
            out_error,
        )
    }
}

unsafe fn new_engine(
    policy: *const c_char,
    policy_len: usize,
    seed: u64,
    owner: Option<(*const c_char, usize)>,
    for_store: bool,
    out_engine: *mut *mut wl_engine,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        without_handle(out_error, || {
            let out = out_arg(out_engine, "out_engine")?;
            *out = std::ptr::null_mut();
            let text = str_arg(policy, policy_len, "policy")?;
            let owner = match owner {
                Some((ptr, len)) => Some(str_arg(ptr, len, "owner")?),
                None => None,
            };
            let mut policy = Policy::from_json(text)
                .map_err(|e| Fail::new(wl_status::InvalidPolicy, e.path.clone(), e.to_string()))?;
            if for_store {
                policy = policy.for_store();
            }
            let mut budget_free = policy.clone();
            budget_free.budget.enabled = false;
            let engine = match owner {
                Some(owner) => writelane_core::Engine::with_owner(policy.clone(), seed, owner)?,
                None => writelane_core::Engine::new(policy.clone(), seed),
            };
            let inner = Inner {
                engine,
                strategy: RetryStrategy::new(policy, seed),
                delays: RetryStrategy::new(budget_free, seed),
                last_error: None,
                last_command: None,
                operation: String::new(),
                scratch: String::new(),
            };
            *out = Box::into_raw(Box::new(wl_engine::new(inner)));
            Ok(())
        })
    }
}

/// Free a handle. NULL is fine (nothing happens). Must not be called twice on the same
/// handle, nor while another thread is inside a call on it; using the handle afterwards
/// is undefined behaviour. Strings borrowed from the handle die with it.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_free(engine: *mut wl_engine) {
    if engine.is_null() {
        return;
    }
    // SAFETY: the caller passes a handle from `wl_engine_new`, once.
    let boxed = unsafe { Box::from_raw(engine) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(boxed)));
}

/// Copy the error of the last call on this handle that returned something other than
/// `WL_STATUS_OK` into `*out_error`; a handle whose last call succeeded reports
/// `WL_STATUS_OK` with empty texts. Calls refused with `WL_STATUS_BUSY` or
/// `WL_STATUS_POISONED` leave the last error as it was, so after `WL_STATUS_PANICKED` it
/// keeps the panic's message. Works on a poisoned handle.
///
/// Returns `WL_STATUS_OK`, or `WL_STATUS_NULL_ARGUMENT` / `WL_STATUS_BUSY`.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_last_error(
    engine: *const wl_engine,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::LastError, |inner| {
            let out = out_arg(out_error, "out_error")?;
            match &inner.last_error {
                Some(fail) => fail.write_to(out),
                None => guard::clear_error(out),
            }
            Ok(())
        })
    }
}

/// Start one logical write of `entity` (pointer + length, 1..=2048 bytes) at `now_ms`,
/// writing its operation id (from 1) to `*out_op`. `options` may be NULL for the
/// defaults.
///
/// Errors: `WL_STATUS_USAGE_ERROR` (`invalid_entity`, `invalid_token`,
/// `time_went_backwards`; `invalid_owner` for a holder over 1024 bytes, or shared lanes
/// on an engine built without an owner; `expected_needs_read` for `expected` together with
/// `no_read`), `WL_STATUS_NULL_ARGUMENT`,
/// `WL_STATUS_INVALID_UTF8`, `WL_STATUS_INVALID_ARGUMENT` (a NULL string with a length).
#[no_mangle]
pub unsafe extern "C" fn wl_engine_submit(
    engine: *mut wl_engine,
    entity: *const c_char,
    entity_len: usize,
    now_ms: u64,
    options: *const wl_submit_options,
    out_op: *mut u64,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_op, "out_op")?;
            let entity = str_arg(entity, entity_len, "entity")?;
            let opts = match options.as_ref() {
                None => SubmitOptions::default(),
                Some(o) => SubmitOptions {
                    expected: opt_str(&o.expected, "options.expected")?.map(str::to_owned),
                    deadline_ms: o.has_deadline.then_some(o.deadline_ms),
                    holder: opt_str(&o.holder, "options.holder")?.map(str::to_owned),
                    no_read: o.no_read,
                },
            };
            *out = inner.engine.submit(entity, now_ms, opts)?.0;
            Ok(())
        })
    }
}

/// Argument names of a failure's fields, for error messages.
struct FailureNames {
    whole: &'static str,
    code: &'static str,
    header: &'static str,
    intended: &'static str,
}

const INPUT_FAILURE: FailureNames = FailureNames {
    whole: "input.failure",
    code: "input.failure.code",
    header: "input.failure.retry_after_header",
    intended: "input.failure.intended_token",
};

const FAILURE: FailureNames = FailureNames {
    whole: "failure",
    code: "failure.code",
    header: "failure.retry_after_header",
    intended: "failure.intended_token",
};

/// Convert a C failure.
unsafe fn failure_of(f: &wl_failure, names: &FailureNames) -> Result<Failure, Fail> {
    let header = unsafe { opt_str(&f.retry_after_header, names.header) }?;
    if header.is_some() && f.has_retry_after {
        return Err(Fail::invalid(
            names.whole,
            "set at most one of retry_after_ms and retry_after_header",
        ));
    }
    Ok(Failure {
        code: unsafe { opt_str(&f.code, names.code) }?.map(str::to_owned),
        status: (f.http_status != 0).then_some(f.http_status),
        retry_after_ms: match header {
            Some(text) => parse_retry_after(text),
            None => f.has_retry_after.then_some(f.retry_after_ms),
        },
        outcome_unknown: f.outcome_unknown,
        intended_token: unsafe { opt_str(&f.intended_token, names.intended) }?.map(str::to_owned),
    })
}

/// Feed what the host observed for one operation, at `now_ms`.
///
/// For `WL_INPUT_KIND_STORE_REPLY`, `input->reply` is the store's answer as JSON text,
/// and for `WL_INPUT_KIND_APPLY_DONE` the per-op results as JSON text (see
/// `wl_input_kind`); the other kinds ignore it.
///
/// Errors: `WL_STATUS_USAGE_ERROR` (`unknown_op`, `unexpected_input`,
/// `command_not_drained`, `invalid_token`, `invalid_code`, `time_went_backwards`),
/// `WL_STATUS_INVALID_ARGUMENT` (unknown `kind`; a `reply` that is not a store reply, or
/// not a list of apply results, with `path` `input.reply` and the JSON error in the
/// message), `WL_STATUS_NULL_ARGUMENT`,
/// `WL_STATUS_INVALID_UTF8`. A refused call changes nothing.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_handle(
    engine: *mut wl_engine,
    now_ms: u64,
    input: *const wl_input,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let i = in_arg(input, "input")?;
            let op = OpId(i.op);
            let input = match i.kind {
                1 => Input::ReadDone {
                    op,
                    token: opt_str(&i.token, "input.token")?.map(str::to_owned),
                },
                2 => Input::ReadFailed {
                    op,
                    failure: failure_of(&i.failure, &INPUT_FAILURE)?,
                },
                3 => Input::WriteDone {
                    op,
                    token: opt_str(&i.token, "input.token")?.map(str::to_owned),
                },
                4 => Input::WriteFailed {
                    op,
                    failure: failure_of(&i.failure, &INPUT_FAILURE)?,
                },
                5 => Input::Cancel { op },
                6 => {
                    let text = str_arg(i.reply.ptr, i.reply.len, "input.reply")?;
                    let reply = serde_json::from_str::<StoreReply>(text).map_err(|e| {
                        Fail::invalid(
                            "input.reply",
                            format!("input.reply is not a store reply: {e}"),
                        )
                    })?;
                    Input::StoreReply { op, reply }
                }
                7 => {
                    let text = str_arg(i.reply.ptr, i.reply.len, "input.reply")?;
                    let results = serde_json::from_str::<Vec<ApplyResult>>(text).map_err(|e| {
                        Fail::invalid(
                            "input.reply",
                            format!(
                                "input.reply is not a list of apply results \
                                 ([{{\"op\":N,\"applied\":true}}, ...]): {e}"
                            ),
                        )
                    })?;
                    Input::ApplyDone { op, results }
                }
                other => {
                    return Err(Fail::invalid(
                        "input.kind",
                        format!("{other} is not a wl_input_kind (1..=7)"),
                    ))
                }
            };
            inner.engine.handle(now_ms, input)?;
            Ok(())
        })
    }
}

/// Fire every timer due at or before `now_ms` (ends of back-offs and cool-downs, lane-wait
/// deadlines). Errors: `WL_STATUS_USAGE_ERROR` (`time_went_backwards`).
#[no_mangle]
pub unsafe extern "C" fn wl_engine_handle_timeout(
    engine: *mut wl_engine,
    now_ms: u64,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            inner.engine.handle_timeout(now_ms)?;
            Ok(())
        })
    }
}

fn fill_command(cmd: &Command) -> wl_command {
    let mut out = wl_command::NONE;
    match cmd {
        Command::Read { op } => {
            out.kind = wl_command_kind::Read;
            out.op = op.0;
        }
        Command::Write {
            op,
            attempt,
            base_token,
            fence,
        } => {
            out.kind = wl_command_kind::Write;
            out.op = op.0;
            out.attempt = *attempt;
            out.base_token = wl_str::of_opt(base_token.as_deref());
            out.has_fence = fence.is_some();
            out.fence = fence.unwrap_or(0);
        }
        Command::Store { op, .. } => {
            out.kind = wl_command_kind::Store;
            out.op = op.0;
            // `operation` is filled by `hand_out` from the handle's operation text.
        }
        Command::Finish { op, outcome } => {
            out.kind = wl_command_kind::Finish;
            out.op = op.0;
            match outcome {
                Outcome::Committed { token, attempts } => {
                    out.outcome = wl_outcome::Committed;
                    out.attempts = *attempts;
                    out.token = wl_str::of_opt(token.as_deref());
                }
                Outcome::GaveUp { reason, attempts } => {
                    out.outcome = wl_outcome::GaveUp;
                    out.attempts = *attempts;
                    fill_reason(&mut out, reason);
                }
            }
        }
    }
    out
}

fn fill_reason(out: &mut wl_command, reason: &GiveUpReason) {
    match reason {
        GiveUpReason::AttemptsExhausted { class, code } => {
            out.reason = wl_give_up_reason::AttemptsExhausted;
            out.error_class = wl_error_class::of(*class);
            out.code = wl_str::of_opt(code.as_deref());
        }
        GiveUpReason::BudgetExhausted { class, scope, code } => {
            out.reason = wl_give_up_reason::BudgetExhausted;
            out.error_class = wl_error_class::of(*class);
            out.budget_scope = match scope {
                writelane_core::BudgetScope::Engine => wl_budget_scope::Engine,
                writelane_core::BudgetScope::Entity => wl_budget_scope::Entity,
            };
            out.code = wl_str::of_opt(code.as_deref());
        }
        GiveUpReason::DeadlineExceeded { code } => {
            out.reason = wl_give_up_reason::DeadlineExceeded;
            out.code = wl_str::of_opt(code.as_deref());
        }
        GiveUpReason::Fatal { code, http_status } => {
            out.reason = wl_give_up_reason::Fatal;
            out.code = wl_str::of_opt(code.as_deref());
            out.http_status = http_status.unwrap_or(0);
        }
        GiveUpReason::StaleRevision { expected, found } => {
            out.reason = wl_give_up_reason::StaleRevision;
            out.expected = wl_str::of_opt(expected.as_deref());
            out.found = wl_str::of_opt(found.as_deref());
        }
        GiveUpReason::Cancelled => out.reason = wl_give_up_reason::Cancelled,
        GiveUpReason::LeaseLost => out.reason = wl_give_up_reason::LeaseLost,
        GiveUpReason::LockUnavailable => out.reason = wl_give_up_reason::LockUnavailable,
    }
}

fn hand_out(inner: &mut Inner, cmd: Option<Command>, out: &mut wl_command) {
    hand_out_action(inner, cmd.map(Action::Command), out)
}

/// Put `text` and a NUL into the handle's operation text and borrow it into `out`.
fn operation_out(inner: &mut Inner, mut text: String, out: &mut wl_command) {
    let len = text.len();
    text.push('\0');
    inner.operation = text;
    out.operation = wl_str {
        ptr: inner.operation.as_ptr().cast(),
        len,
    };
}

fn hand_out_action(inner: &mut Inner, action: Option<Action>, out: &mut wl_command) {
    let apply = match action {
        Some(Action::Apply(apply)) => {
            inner.last_command = None;
            Some(apply)
        }
        Some(Action::Command(cmd)) => {
            inner.last_command = Some(cmd);
            None
        }
        None => {
            inner.last_command = None;
            None
        }
    };
    if let Some(apply) = apply {
        *out = wl_command::NONE;
        out.kind = wl_command_kind::Apply;
        out.op = apply.op.0;
        let text = serde_json::to_string(&apply).expect("apply steps serialise");
        operation_out(inner, text, out);
        return;
    }
    *out = match &inner.last_command {
        Some(c) => fill_command(c),
        None => wl_command::NONE,
    };
    if let Some(Command::Store { operation, .. }) = &inner.last_command {
        let text = serde_json::to_string(operation).expect("store operations serialise");
        operation_out(inner, text, out);
    }
}

/// Take the next command for any operation, in the order they became ready, into
/// `*out_command`; its `kind` is `WL_COMMAND_KIND_NONE` when nothing is pending. Strings
/// in the command are borrowed until the next call on this handle. After a
/// `WL_COMMAND_KIND_FINISH` the operation id is forgotten.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_poll_command(
    engine: *mut wl_engine,
    out_command: *mut wl_command,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_command, "out_command")?;
            let cmd = inner.engine.poll_command();
            hand_out(inner, cmd, out);
            Ok(())
        })
    }
}

/// Take the pending command of one operation (for hosts that drive each operation from
/// its own thread), as `wl_engine_poll_command` does. An unknown or finished `op` gives
/// `WL_COMMAND_KIND_NONE`.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_poll_command_for(
    engine: *mut wl_engine,
    op: u64,
    out_command: *mut wl_command,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_command, "out_command")?;
            let cmd = inner.engine.poll_command_for(OpId(op));
            hand_out(inner, cmd, out);
            Ok(())
        })
    }
}

/// Start one update of `entity` (pointer + length, 1..=2048 bytes) at `now_ms` (group
/// commit), writing its operation id to `*out_op`: a change the host applies to the
/// entity's document when the engine says so, rather than an opaque write. Updates queued
/// behind the lane holder join its batch: the batch's leader reads once, the host applies
/// every member's change in FIFO order (`WL_COMMAND_KIND_APPLY`), and one write carries
/// them all; every update of the batch finishes with that write's outcome and token. A
/// host that submits updates drains with `wl_engine_poll_action` (or `_for`), which also
/// hands out the apply step, and keeps each live update's change function where the
/// leader's driver can call it. A change may run more than once, on fresher documents
/// (after a conflict, or when a write refused as fatal is split in halves): it must be a
/// pure function of the document.
///
/// `options` may be NULL for the defaults; only its `has_deadline`/`deadline_ms` and
/// `holder` apply: an update always reads and is based on what it read, so `expected`
/// must be absent and `no_read` false.
///
/// Errors: as `wl_engine_submit`, and `WL_STATUS_INVALID_ARGUMENT` (`options.expected`,
/// `options.no_read` set).
#[no_mangle]
pub unsafe extern "C" fn wl_engine_submit_update(
    engine: *mut wl_engine,
    entity: *const c_char,
    entity_len: usize,
    now_ms: u64,
    options: *const wl_submit_options,
    out_op: *mut u64,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_op, "out_op")?;
            let entity = str_arg(entity, entity_len, "entity")?;
            let opts = match options.as_ref() {
                None => UpdateOptions::default(),
                Some(o) => {
                    if opt_str(&o.expected, "options.expected")?.is_some() {
                        return Err(Fail::invalid(
                            "options.expected",
                            "an update is based on what it reads: leave expected absent",
                        ));
                    }
                    if o.no_read {
                        return Err(Fail::invalid(
                            "options.no_read",
                            "an update always reads the document it changes: leave no_read false",
                        ));
                    }
                    UpdateOptions {
                        deadline_ms: o.has_deadline.then_some(o.deadline_ms),
                        holder: opt_str(&o.holder, "options.holder")?.map(str::to_owned),
                    }
                }
            };
            *out = inner.engine.submit_update(entity, now_ms, opts)?.0;
            Ok(())
        })
    }
}

/// Take the next command or apply step for any operation, in the order they became
/// ready, into `*out_command`, as `wl_engine_poll_command` does; hosts that submit updates
/// drain with this. A `WL_COMMAND_KIND_APPLY` carries the step as JSON text in
/// `operation` (NUL-terminated, borrowed until the next call on this handle); answer it
/// with `WL_INPUT_KIND_APPLY_DONE`. (`wl_engine_poll_command` never hands out an apply
/// step, so hosts without updates are unchanged.)
#[no_mangle]
pub unsafe extern "C" fn wl_engine_poll_action(
    engine: *mut wl_engine,
    out_command: *mut wl_command,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_command, "out_command")?;
            let action = inner.engine.poll_action();
            hand_out_action(inner, action, out);
            Ok(())
        })
    }
}

/// Take the pending command or apply step of one operation, as `wl_engine_poll_action`
/// does (for hosts that drive each operation from its own thread). An unknown or finished
/// `op` gives `WL_COMMAND_KIND_NONE`.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_poll_action_for(
    engine: *mut wl_engine,
    op: u64,
    out_command: *mut wl_command,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_command, "out_command")?;
            let action = inner.engine.poll_action_for(OpId(op));
            hand_out_action(inner, action, out);
            Ok(())
        })
    }
}

/// When `wl_engine_handle_timeout` must next be called: writes `true` and the time to
/// `*out_has` and `*out_at_ms`, or `false` (and 0) when nothing waits on time.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_poll_timeout(
    engine: *const wl_engine,
    out_has: *mut bool,
    out_at_ms: *mut u64,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let has = out_arg(out_has, "out_has")?;
            let at = out_arg(out_at_ms, "out_at_ms")?;
            let t = inner.engine.poll_timeout();
            *has = t.is_some();
            *at = t.unwrap_or(0);
            Ok(())
        })
    }
}

/// When one operation's timer fires, as `wl_engine_poll_timeout` reports it (`false`
/// when the operation waits on no timer, or is unknown).
#[no_mangle]
pub unsafe extern "C" fn wl_engine_poll_timeout_for(
    engine: *const wl_engine,
    op: u64,
    out_has: *mut bool,
    out_at_ms: *mut u64,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let has = out_arg(out_has, "out_has")?;
            let at = out_arg(out_at_ms, "out_at_ms")?;
            let t = inner.engine.poll_timeout_for(OpId(op));
            *has = t.is_some();
            *at = t.unwrap_or(0);
            Ok(())
        })
    }
}

/// When each of `n` operations' timers fires, in one call (for drivers that keep many
/// operations waiting and must notice when one's timer moves): `out_at_ms[i]` receives
/// the time of `ops[i]`'s timer as `wl_engine_poll_timeout_for` reports it, or
/// `UINT64_MAX` when that operation waits on no timer or is unknown. `ops` and
/// `out_at_ms` may be NULL when `n` is 0.
///
/// Errors: `WL_STATUS_NULL_ARGUMENT` (`ops`, `out_at_ms` with `n > 0`),
/// `WL_STATUS_INVALID_ARGUMENT` (`n` above `PTRDIFF_MAX / 8`).
#[no_mangle]
pub unsafe extern "C" fn wl_engine_poll_timeouts_for(
    engine: *const wl_engine,
    ops: *const u64,
    n: usize,
    out_at_ms: *mut u64,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            if n == 0 {
                return Ok(());
            }
            if n > isize::MAX as usize / 8 {
                return Err(Fail::invalid("n", format!("{n} is above PTRDIFF_MAX / 8")));
            }
            if ops.is_null() {
                return Err(Fail::null("ops"));
            }
            if out_at_ms.is_null() {
                return Err(Fail::null("out_at_ms"));
            }
            // SAFETY: the caller promises `n` readable and `n` writable u64s.
            let ops = std::slice::from_raw_parts(ops, n);
            let out = std::slice::from_raw_parts_mut(out_at_ms, n);
            for (op, at) in ops.iter().zip(out.iter_mut()) {
                *at = inner.engine.poll_timeout_for(OpId(*op)).unwrap_or(u64::MAX);
            }
            Ok(())
        })
    }
}

/// Serialise into the handle's scratch text, NUL-terminated, and borrow it.
fn scratch_json<T: serde::Serialize>(inner: &mut Inner, value: &T, out: &mut wl_str) {
    let mut buf = std::mem::take(&mut inner.scratch).into_bytes();
    buf.clear();
    serde_json::to_writer(&mut buf, value).expect("writelane values always serialise");
    let len = buf.len();
    buf.write_all(b"\0").expect("writing to a Vec cannot fail");
    // serde_json writes UTF-8 and NUL is a valid UTF-8 character.
    inner.scratch = String::from_utf8(buf).expect("serde_json writes UTF-8");
    *out = wl_str {
        ptr: inner.scratch.as_ptr().cast(),
        len,
    };
}

/// Take the next telemetry event as JSON text (the core's form, tagged by `type`) into
/// `*out_json`, NUL-terminated and borrowed until the next call on this handle; `ptr` is
/// NULL when no event is queued.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_poll_event(
    engine: *mut wl_engine,
    out_json: *mut wl_str,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_json, "out_json")?;
            match inner.engine.poll_event() {
                Some(ev) => scratch_json(inner, &ev, out),
                None => *out = wl_str::ABSENT,
            }
            Ok(())
        })
    }
}

/// Drop every queued telemetry event without serialising it (for hosts that do not read
/// events; the queue is bounded, so this only saves memory). Writes how many were dropped
/// to `*out_cleared`; `out_cleared` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_clear_events(
    engine: *mut wl_engine,
    out_cleared: *mut u64,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let mut n = 0;
            while inner.engine.poll_event().is_some() {
                n += 1;
            }
            if let Some(out) = out_cleared.as_mut() {
                *out = n;
            }
            Ok(())
        })
    }
}

/// Copy the engine's global counters and budget level into `*out_stats`.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_stats(
    engine: *const wl_engine,
    out_stats: *mut wl_stats,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_stats, "out_stats")?;
            let s = inner.engine.stats();
            let g = s.global;
            *out = wl_stats {
                global: wl_counters {
                    submitted: g.submitted,
                    committed: g.committed,
                    gave_up: g.gave_up,
                    reads: g.reads,
                    writes: g.writes,
                    conflicts: g.conflicts,
                    retries: g.retries,
                    budget_refusals: g.budget_refusals,
                    stale_revisions: g.stale_revisions,
                    lane_waits: g.lane_waits,
                    lane_wait_ms: g.lane_wait_ms,
                    spikes: g.spikes,
                    store_ops: g.store_ops,
                },
                has_budget: s.budget.is_some(),
                budget: s.budget.unwrap_or(0),
                active_ops: s.active_ops,
                dropped_events: s.dropped_events,
            };
            Ok(())
        })
    }
}

/// The full statistics (global and per entity) as JSON text into `*out_json`,
/// NUL-terminated and borrowed until the next call on this handle.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_stats_json(
    engine: *mut wl_engine,
    out_json: *mut wl_str,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_json, "out_json")?;
            let stats = inner.engine.stats();
            scratch_json(inner, &stats, out);
            Ok(())
        })
    }
}

/// What the engine learned (committed tokens, budget levels) as JSON text into
/// `*out_json`, NUL-terminated and borrowed until the next call on this handle. Feed it
/// to `wl_engine_import_state` of a later engine.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_export_state(
    engine: *mut wl_engine,
    out_json: *mut wl_str,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_json, "out_json")?;
            let state = inner.engine.export_state();
            scratch_json(inner, &state, out);
            Ok(())
        })
    }
}

/// Restore state exported by `wl_engine_export_state` (JSON text, pointer + length).
/// Errors: `WL_STATUS_USAGE_ERROR` (`invalid_state`: malformed JSON, a wrong version, a
/// bad entity or token), `WL_STATUS_NULL_ARGUMENT`, `WL_STATUS_INVALID_UTF8`.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_import_state(
    engine: *mut wl_engine,
    state_json: *const c_char,
    state_len: usize,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let text = str_arg(state_json, state_len, "state_json")?;
            let state: EngineState = serde_json::from_str(text).map_err(|e| {
                Fail::usage(writelane_core::UsageError::InvalidState {
                    reason: format!("malformed state JSON: {e}"),
                })
            })?;
            inner.engine.import_state(&state)?;
            Ok(())
        })
    }
}

/// Copy the effective policy as JSON text into `buf` (capacity `cap` bytes), with a NUL.
/// `*out_len` always receives the text's length without the NUL; when `cap` is not larger
/// than that, returns `WL_STATUS_BUFFER_TOO_SMALL` (and writes an empty string when
/// `cap > 0`). `buf` may be NULL when `cap` is 0, to ask for the length.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_policy_json(
    engine: *const wl_engine,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let len = out_arg(out_len, "out_len")?;
            let text = inner.engine.policy().to_json();
            guard::copy_out(&text, buf, cap, len, "buf")
        })
    }
}

/// Retry strategy: start a logical call in `scope` (a budget partition such as a service
/// name; pointer + length) at `now_ms`, writing its token to `*out_token`. The strategy's
/// clock is separate from the engine's but must not go backwards either.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_retry_acquire(
    engine: *mut wl_engine,
    scope: *const c_char,
    scope_len: usize,
    now_ms: u64,
    out_token: *mut wl_retry_token,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_token, "out_token")?;
            let scope = str_arg(scope, scope_len, "scope")?;
            let t = inner.strategy.acquire(scope, now_ms)?;
            *out = token_out(&t);
            Ok(())
        })
    }
}

fn decision_of(
    decision: Result<writelane_core::RetryPlan, Refusal>,
    strategy: &RetryStrategy,
    f: &Failure,
) -> wl_retry_decision {
    match decision {
        Ok(plan) => wl_retry_decision {
            retry: true,
            delay_ms: plan.delay_ms,
            cost: plan.cost,
            error_class: wl_error_class::of(plan.class),
            refusal: wl_refusal::None,
        },
        Err(refusal) => {
            let (refusal, class) = match refusal {
                Refusal::NotRetryable { class } => (wl_refusal::NotRetryable, class),
                Refusal::AttemptsExhausted { class, .. } => (wl_refusal::AttemptsExhausted, class),
                Refusal::BudgetExhausted { class, .. } => (wl_refusal::BudgetExhausted, class),
                Refusal::DeadlineExceeded { .. } => (
                    wl_refusal::DeadlineExceeded,
                    writelane_core::classify(&strategy.policy().codes, f),
                ),
            };
            wl_retry_decision {
                retry: false,
                delay_ms: 0,
                cost: 0,
                error_class: wl_error_class::of(class),
                refusal,
            }
        }
    }
}

fn token_out(t: &RetryToken) -> wl_retry_token {
    wl_retry_token {
        scope: t.scope,
        attempts: t.attempts,
        last_cost: t.last_cost,
        last_delay_ms: t.last_delay_ms,
        started_ms: t.started_ms,
    }
}

fn token_in(t: &wl_retry_token) -> RetryToken {
    RetryToken {
        scope: t.scope,
        attempts: t.attempts,
        last_cost: t.last_cost,
        last_delay_ms: t.last_delay_ms,
        started_ms: t.started_ms,
    }
}

/// Retry strategy: the call holding `*token` just failed with `*failure` at `now_ms`.
/// Writes the decision to `*out_decision`; on a retry, `*token` is updated in place (wait
/// `delay_ms`, call again, and pass the same token on the next failure). A refusal
/// (`retry` false, `refusal` saying why) is a normal outcome, not an error.
///
/// Errors: `WL_STATUS_USAGE_ERROR` (`unknown_scope`, `time_went_backwards`),
/// `WL_STATUS_INVALID_ARGUMENT`, `WL_STATUS_NULL_ARGUMENT`, `WL_STATUS_INVALID_UTF8`.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_retry_refresh(
    engine: *mut wl_engine,
    token: *mut wl_retry_token,
    failure: *const wl_failure,
    now_ms: u64,
    out_decision: *mut wl_retry_decision,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let tok = out_arg(token, "token")?;
            let f = failure_of(in_arg(failure, "failure")?, &FAILURE)?;
            let out = out_arg(out_decision, "out_decision")?;
            let mut t = token_in(tok);
            let decision = inner.strategy.refresh(&mut t, &f, now_ms)?;
            *tok = token_out(&t);
            *out = decision_of(decision, &inner.strategy, &f);
            Ok(())
        })
    }
}

/// Retry strategy, for SDKs that split the budget from the backoff (the AWS SDK for Go v2
/// asks for a retry token, then separately for the delay of attempt N): the decision for
/// retry number `attempt` (the attempt that just failed, from 1) after `*failure`, from
/// the policy's rule for the failure's class, **without touching any budget**. Jitter is
/// drawn from a generator of its own (seeded like the others). A refusal is
/// `not_retryable`, `attempts_exhausted` (the class's attempt limit) or
/// `deadline_exceeded` (the delay alone exceeds the policy deadline).
///
/// Errors: `WL_STATUS_INVALID_ARGUMENT` (`attempt` 0), `WL_STATUS_USAGE_ERROR`
/// (`time_went_backwards`), `WL_STATUS_NULL_ARGUMENT`, `WL_STATUS_INVALID_UTF8`.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_retry_delay(
    engine: *mut wl_engine,
    attempt: u32,
    failure: *const wl_failure,
    now_ms: u64,
    out_decision: *mut wl_retry_decision,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let f = failure_of(in_arg(failure, "failure")?, &FAILURE)?;
            let out = out_arg(out_decision, "out_decision")?;
            if attempt == 0 {
                return Err(Fail::invalid("attempt", "attempts count from 1"));
            }
            let mut t = inner.delays.acquire("", now_ms)?;
            t.attempts = attempt;
            let decision = inner.delays.refresh(&mut t, &f, now_ms)?;
            *out = decision_of(decision, &inner.delays, &f);
            Ok(())
        })
    }
}

/// The class the policy's code table puts `*failure` in, written to `*out_class`.
/// Classification is by error code first (both `X` and `XException` spellings match),
/// then by HTTP status; an unknown outcome is its own class.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_classify(
    engine: *const wl_engine,
    failure: *const wl_failure,
    out_class: *mut wl_error_class,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let f = failure_of(in_arg(failure, "failure")?, &FAILURE)?;
            let out = out_arg(out_class, "out_class")?;
            *out = wl_error_class::of(writelane_core::classify(&inner.engine.policy().codes, &f));
            Ok(())
        })
    }
}

/// Retry strategy: the call holding `*token` succeeded; refund the last retry's cost (or
/// add the success reward after a first-try success).
/// Errors: `WL_STATUS_USAGE_ERROR` (`unknown_scope`), `WL_STATUS_NULL_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_retry_success(
    engine: *mut wl_engine,
    token: *const wl_retry_token,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let t = token_in(in_arg(token, "token")?);
            inner.strategy.record_success(&t)?;
            Ok(())
        })
    }
}

/// Retry strategy: tokens left in `scope`'s budget (its initial level if the scope is
/// new), written to `*out_level`.
#[no_mangle]
pub unsafe extern "C" fn wl_engine_retry_capacity(
    engine: *const wl_engine,
    scope: *const c_char,
    scope_len: usize,
    out_level: *mut u32,
) -> wl_status {
    unsafe {
        with_handle(engine, Access::Normal, |inner| {
            let out = out_arg(out_level, "out_level")?;
            let scope = str_arg(scope, scope_len, "scope")?;
            *out = inner.strategy.capacity(scope);
            Ok(())
        })
    }
}

/// The canonical change token of an IAM policy document (JSON text, possibly
/// URL-encoded; pointer + length), copied into `buf` (capacity `cap`) with a NUL;
/// `*out_len` always receives the length without the NUL (`WL_POLICY_TOKEN_LEN` on
/// success). Semantically equal documents give equal tokens.
///
/// Errors: `WL_STATUS_INVALID_DOCUMENT` (`out_error->path` is the place in the document,
/// such as `Statement[0].Effect`), `WL_STATUS_BUFFER_TOO_SMALL`,
/// `WL_STATUS_NULL_ARGUMENT`, `WL_STATUS_INVALID_UTF8`. `out_error` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn wl_policy_token(
    document: *const c_char,
    document_len: usize,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        without_handle(out_error, || {
            let len = out_arg(out_len, "out_len")?;
            *len = 0;
            let doc = str_arg(document, document_len, "document")?;
            let token = policy_token(doc).map_err(|e| {
                Fail::new(wl_status::InvalidDocument, e.path.clone(), e.to_string())
            })?;
            guard::copy_out(&token, buf, cap, len, "buf")
        })
    }
}

#[cfg(test)]
mod tests;
