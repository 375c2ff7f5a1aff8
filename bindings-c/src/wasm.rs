//! Exports of the WebAssembly build only (the Go module's embedded `writelane.wasm`), kept
//! out of the header: a WebAssembly host has no `malloc` of its own in the module's memory,
//! and lays the structs out from the offsets `wl_wasm_layout` reports.
//!
//! cbindgen:ignore

use std::alloc::{alloc, dealloc, Layout};
use std::mem::{offset_of, size_of};

use crate::types::{
    wl_command, wl_error, wl_failure, wl_input, wl_retry_decision, wl_retry_token, wl_str,
    wl_submit_options,
};

/// Alignment of every block handed out: enough for any struct of the ABI (u64 fields).
const ALIGN: usize = 8;

/// Allocates `size` bytes (8-aligned) in the module's memory for the host to write
/// arguments into or receive results in. Returns 0 when `size` is 0 or memory is
/// exhausted. Free with `wl_wasm_free` and the same size.
///
/// cbindgen:ignore
#[no_mangle]
pub extern "C" fn wl_wasm_alloc(size: usize) -> *mut u8 {
    match Layout::from_size_align(size, ALIGN) {
        // SAFETY: the layout has a non-zero size.
        Ok(layout) if size > 0 => unsafe { alloc(layout) },
        _ => std::ptr::null_mut(),
    }
}

/// Frees a block from `wl_wasm_alloc` of `size` bytes; a NULL `ptr` is fine.
///
/// # Safety
/// `ptr` comes from `wl_wasm_alloc(size)` and is freed once.
///
/// cbindgen:ignore
#[no_mangle]
pub unsafe extern "C" fn wl_wasm_free(ptr: *mut u8, size: usize) {
    if ptr.is_null() || size == 0 {
        return;
    }
    if let Ok(layout) = Layout::from_size_align(size, ALIGN) {
        // SAFETY: the caller passes a block of this layout from wl_wasm_alloc.
        unsafe { dealloc(ptr, layout) }
    }
}

/// The layout of the ABI's structs in this build, as (size, then field offsets) in a fixed
/// order that the Go package's `wasmLayout` lists too; the host checks its own constants
/// against it once before it uses the module.
pub fn layout() -> Vec<u32> {
    macro_rules! at {
        ($t:ty, $($f:ident),*) => { vec![size_of::<$t>() as u32, $(offset_of!($t, $f) as u32),*] };
    }
    [
        at!(wl_str, ptr, len),
        at!(
            wl_error,
            status,
            usage,
            path_len,
            message_len,
            path,
            message
        ),
        at!(
            wl_submit_options,
            expected,
            has_deadline,
            deadline_ms,
            holder,
            no_read
        ),
        at!(
            wl_failure,
            code,
            http_status,
            has_retry_after,
            retry_after_ms,
            retry_after_header,
            outcome_unknown,
            intended_token
        ),
        at!(wl_input, kind, op, token, failure, reply),
        at!(
            wl_command,
            kind,
            op,
            attempt,
            base_token,
            outcome,
            attempts,
            token,
            reason,
            error_class,
            budget_scope,
            code,
            http_status,
            expected,
            found,
            operation,
            has_fence,
            fence
        ),
        at!(
            wl_retry_token,
            scope,
            attempts,
            last_cost,
            last_delay_ms,
            started_ms
        ),
        at!(
            wl_retry_decision,
            retry,
            delay_ms,
            cost,
            error_class,
            refusal
        ),
    ]
    .concat()
}

/// Writes the layout (see `layout`) as u32 values to `out` (room for `cap`), and returns
/// how many there are; nothing is written when `cap` is too small.
///
/// # Safety
/// `out` is valid for `cap` u32 writes (NULL is fine with `cap` 0).
///
/// cbindgen:ignore
#[no_mangle]
pub unsafe extern "C" fn wl_wasm_layout(out: *mut u32, cap: usize) -> usize {
    let values = layout();
    if !out.is_null() && cap >= values.len() {
        // SAFETY: the caller gives room for cap values.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len()) };
    }
    values.len()
}
