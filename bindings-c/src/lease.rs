//! Lease helpers that need no handle: the core's lease-record check, owner ids and the
//! force-release of a stuck lease. Each takes its texts as pointer + length and copies its
//! result, JSON text, into a caller buffer (the needed length is always reported), so a
//! host's store adapter and tools decide nothing themselves.

use std::os::raw::c_char;

use writelane_core::lease::{
    finish_force_release, owner_id, plan_force_release, ForceReleasePlan, LeaseRecord, RecordError,
    StoreOp, StoreReply,
};

use crate::guard::{bytes_arg, copy_out, out_arg, str_arg, without_handle, Fail};
use crate::status::wl_status;
use crate::types::wl_error;

/// A record the core refused: the status, the field as the path (under `arg` when the
/// record is part of a larger argument) and the rule.
fn record_fail(arg: Option<&str>, e: RecordError) -> Fail {
    let path = match (arg, e.field.as_str()) {
        (None, field) => field.to_string(),
        (Some(arg), "$") => arg.to_string(),
        (Some(arg), field) => format!("{arg}.{field}"),
    };
    let message = match arg {
        Some(arg) => format!("`{arg}`: {e}"),
        None => e.to_string(),
    };
    Fail::new(wl_status::InvalidRecord, path, message)
}

/// Parse and validate a lease record exactly as a store returned it (the JSON text the
/// file, Redis and memory stores keep; a DynamoDB adapter builds the same object from the
/// item's attributes), with the core's `LeaseRecord::from_json`. Store adapters never
/// check a record themselves: they pass its bytes here.
///
/// On success copies the record's canonical JSON text into `buf` (capacity `cap`) with a
/// NUL; `*out_len` always receives its length without the NUL. The text is the core's:
/// the six fields `{"owner","epoch","rvn","lease_ms","committed_token","holder"}` of a
/// version 1 record, and for a version 2 record (the queue-like hand-off) `"version":2`
/// first and, after `holder`, those of `"beat"`, `"next_ticket"`, `"hold_ms"` and
/// `"queue"` (an array of `{"owner","ticket","beat"}`, at most 64) that are not zero or
/// empty; a queue given as JSON text (as DynamoDB adapters keep it) comes back as the
/// array. An adapter writes back the whole text, never only the six fields. A record that
/// is not UTF-8, does not parse or breaks a rule (owner over `256` bytes, epoch 0, rvn
/// outside `1..=2^53-1`, lease outside `1..=86400000` ms, token over 1024 bytes, holder
/// over 1024 bytes, a version other than 1 or 2, a version 2 field in a version 1 record,
/// a queue over 64 tickets, a ticket's owner empty, repeated or the record's owner, ticket
/// numbers not increasing or not below `next_ticket`) is `WL_STATUS_INVALID_RECORD`:
/// `out_error->path` is the field (`$` for the whole record, `queue[3].owner` for a
/// ticket's), the message the rule.
///
/// Errors also `WL_STATUS_BUFFER_TOO_SMALL`, `WL_STATUS_NULL_ARGUMENT` (`record`,
/// `out_len`; `buf` when `cap > 0`). `record` is bytes, not necessarily UTF-8; `out_error`
/// may be NULL.
#[no_mangle]
pub unsafe extern "C" fn wl_lease_record_check(
    record: *const c_char,
    record_len: usize,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        without_handle(out_error, || {
            let len = out_arg(out_len, "out_len")?;
            *len = 0;
            let bytes = bytes_arg(record, record_len, "record", false)?.unwrap_or_default();
            let rec = LeaseRecord::from_json(bytes).map_err(|e| record_fail(None, e))?;
            copy_out(&rec.to_json(), buf, cap, len, "buf")
        })
    }
}

/// The owner id of one process in lease records, as every binding writes it:
/// `HOST:PID:ENTROPY`, the entropy as 16 hex digits (the core's `lease::owner_id`). The
/// host supplies its host name (UTF-8; characters outside printable ASCII and `:` become
/// `_`, the name is cut to 200 bytes, an empty one becomes `host`), its process id and 64
/// random bits. Copied into `buf` (capacity `cap`) with a NUL; `*out_len` always receives
/// the length without the NUL (at most 228). Pass the result to `wl_engine_new_for_store`
/// or `wl_engine_new_with_owner`.
///
/// Errors: `WL_STATUS_BUFFER_TOO_SMALL`, `WL_STATUS_NULL_ARGUMENT`,
/// `WL_STATUS_INVALID_UTF8`. `out_error` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn wl_owner_id(
    host: *const c_char,
    host_len: usize,
    pid: u32,
    entropy: u64,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        without_handle(out_error, || {
            let len = out_arg(out_len, "out_len")?;
            *len = 0;
            let host = str_arg(host, host_len, "host")?;
            copy_out(&owner_id(host, pid, entropy), buf, cap, len, "buf")
        })
    }
}

/// Step one of an operator's force-release of a stuck lease (the core's
/// `lease::plan_force_release`): given the record a `get` of `key` returned (`found`, its
/// bytes as the store returned them; NULL with length 0 when there is none), decide.
///
/// Writes `*out_swap` and copies JSON text into `buf` (capacity `cap`, with a NUL;
/// `*out_len` always receives the length without the NUL):
/// - `*out_swap` false: nothing to write; `buf` holds the result (`{"result":"no_record"}`,
///   `{"result":"already_free","record":R}` or `{"result":"changed","current":R}` when
///   `has_expected_rvn` and the record's rvn is not `expected_rvn`);
/// - `*out_swap` true: `buf` holds the compare-and-swap to carry out,
///   `{"op":"compare_and_swap","key":K,"expected_rvn":N,"record":R}` (owner empty, epoch
///   plus one, a new rvn drawn from `entropy`, no token, no holder; the record is never
///   deleted). Carry it out and pass it with the store's reply to
///   `wl_force_release_finish`.
///
/// `entropy` is 64 random bits of the host's. Errors: `WL_STATUS_INVALID_RECORD` (`path`
/// `found.FIELD`), `WL_STATUS_INVALID_ARGUMENT` (an empty key; NULL `found` with a
/// length), `WL_STATUS_BUFFER_TOO_SMALL`, `WL_STATUS_NULL_ARGUMENT`,
/// `WL_STATUS_INVALID_UTF8`. `out_error` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn wl_force_release_plan(
    key: *const c_char,
    key_len: usize,
    found: *const c_char,
    found_len: usize,
    has_expected_rvn: bool,
    expected_rvn: u64,
    entropy: u64,
    out_swap: *mut bool,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        without_handle(out_error, || {
            let len = out_arg(out_len, "out_len")?;
            *len = 0;
            let swap = out_arg(out_swap, "out_swap")?;
            *swap = false;
            let key = str_arg(key, key_len, "key")?;
            if key.is_empty() {
                return Err(Fail::invalid("key", "must not be empty"));
            }
            let found = match bytes_arg(found, found_len, "found", true)? {
                Some(bytes) => {
                    Some(LeaseRecord::from_json(bytes).map_err(|e| record_fail(Some("found"), e))?)
                }
                None => None,
            };
            let expected = has_expected_rvn.then_some(expected_rvn);
            let text = match plan_force_release(key, found, expected, entropy) {
                ForceReleasePlan::Done(result) => serde_json::to_string(&result),
                ForceReleasePlan::Swap(op) => {
                    *swap = true;
                    serde_json::to_string(&op)
                }
            }
            .expect("force-release values always serialise");
            copy_out(&text, buf, cap, len, "buf")
        })
    }
}

/// Step two of a force-release (the core's `lease::finish_force_release`): `operation` is
/// the compare-and-swap `wl_force_release_plan` gave (JSON text), `reply` what the store
/// answered, as for `WL_INPUT_KIND_STORE_REPLY` (`{"reply":"done"}`,
/// `{"reply":"refused","current":R|null}`, `{"reply":"lost"}`, `{"reply":"unavailable"}`).
///
/// Writes `*out_known`: true with the result in `buf` (`{"result":"released","record":R}`
/// when the swap landed, also when it was refused by exactly the record it wrote: a retried
/// request whose first try landed; `{"result":"changed","current":R}` when the record
/// changed in between: read it again and decide again); false when the outcome is unknown
/// (`lost` or `unavailable`), with an empty text in `buf`: read the record again. The text
/// is copied with a NUL; `*out_len` always receives its length without the NUL.
///
/// Errors: `WL_STATUS_INVALID_ARGUMENT` (`operation` is not a compare-and-swap operation,
/// `reply` is not a store reply; the JSON error in the message), `WL_STATUS_BUFFER_TOO_SMALL`,
/// `WL_STATUS_NULL_ARGUMENT`, `WL_STATUS_INVALID_UTF8`. `out_error` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn wl_force_release_finish(
    operation: *const c_char,
    operation_len: usize,
    reply: *const c_char,
    reply_len: usize,
    out_known: *mut bool,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        without_handle(out_error, || {
            let len = out_arg(out_len, "out_len")?;
            *len = 0;
            let known = out_arg(out_known, "out_known")?;
            *known = false;
            let op_text = str_arg(operation, operation_len, "operation")?;
            let reply_text = str_arg(reply, reply_len, "reply")?;
            let op: StoreOp = serde_json::from_str(op_text).map_err(|e| {
                Fail::invalid("operation", format!("is not a store operation: {e}"))
            })?;
            if !matches!(op, StoreOp::CompareAndSwap { .. }) {
                return Err(Fail::invalid(
                    "operation",
                    "must be the compare_and_swap wl_force_release_plan gave",
                ));
            }
            let reply: StoreReply = serde_json::from_str(reply_text)
                .map_err(|e| Fail::invalid("reply", format!("is not a store reply: {e}")))?;
            let text = match finish_force_release(&op, reply) {
                Some(result) => {
                    *known = true;
                    serde_json::to_string(&result).expect("force-release results serialise")
                }
                None => String::new(),
            };
            copy_out(&text, buf, cap, len, "buf")
        })
    }
}
