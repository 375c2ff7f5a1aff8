//! The handle, its busy/poisoned flags, the panic guard and argument conversion.

use std::cell::UnsafeCell;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};

use writelane_core::{Command, Engine, RetryStrategy, UsageError};

use crate::status::{wl_status, wl_usage};
use crate::types::{wl_error, wl_str, WL_ERROR_MESSAGE_CAP, WL_ERROR_PATH_CAP};

/// Bit set while a call holds the handle.
const BUSY: u8 = 1;
/// Bit set once a call on the handle panicked.
const POISONED: u8 = 2;

/// The details of a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailData {
    pub status: wl_status,
    pub usage: wl_usage,
    pub path: String,
    pub message: String,
}

/// The error of one failed call, kept per handle. Boxed, so that the `Result`s of the
/// success path stay one word wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail(Box<FailData>);

impl std::ops::Deref for Fail {
    type Target = FailData;
    fn deref(&self) -> &FailData {
        &self.0
    }
}

impl Fail {
    #[cold]
    pub fn new(status: wl_status, path: impl Into<String>, message: impl Into<String>) -> Fail {
        Fail(Box::new(FailData {
            status,
            usage: wl_usage::None,
            path: path.into(),
            message: message.into(),
        }))
    }

    #[cold]
    pub fn null(arg: &str) -> Fail {
        Fail::new(
            wl_status::NullArgument,
            arg,
            format!("argument `{arg}` must not be NULL"),
        )
    }

    #[cold]
    pub fn invalid(arg: &str, rule: impl std::fmt::Display) -> Fail {
        Fail::new(wl_status::InvalidArgument, arg, format!("`{arg}`: {rule}"))
    }

    #[cold]
    pub fn usage(e: UsageError) -> Fail {
        Fail(Box::new(FailData {
            status: wl_status::UsageError,
            usage: wl_usage::of(&e),
            path: String::new(),
            message: e.to_string(),
        }))
    }

    pub fn panicked(payload: &(dyn std::any::Any + Send)) -> Fail {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Fail::new(
            wl_status::Panicked,
            "",
            format!("writelane panicked (a bug in writelane): {what}"),
        )
    }

    /// Copy into a caller's `wl_error`, truncating at a UTF-8 boundary when a text does not
    /// fit (the full lengths are reported).
    pub fn write_to(&self, out: &mut wl_error) {
        out.status = self.status;
        out.usage = self.usage;
        out.path_len = self.path.len();
        out.message_len = self.message.len();
        copy_truncated(&self.path, &mut out.path[..]);
        copy_truncated(&self.message, &mut out.message[..]);
    }
}

impl From<UsageError> for Fail {
    fn from(e: UsageError) -> Fail {
        Fail::usage(e)
    }
}

fn copy_truncated(text: &str, buf: &mut [c_char]) {
    let mut n = text.len().min(buf.len() - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    for (dst, &src) in buf.iter_mut().zip(&text.as_bytes()[..n]) {
        *dst = src as c_char;
    }
    buf[n] = 0;
}

/// Clear a caller's `wl_error` to "no error".
pub(crate) fn clear_error(out: &mut wl_error) {
    out.status = wl_status::Ok;
    out.usage = wl_usage::None;
    out.path_len = 0;
    out.message_len = 0;
    out.path[0] = 0;
    out.message[0] = 0;
}

const _: () = assert!(WL_ERROR_PATH_CAP > 0 && WL_ERROR_MESSAGE_CAP > 0);

/// What one handle owns.
pub(crate) struct Inner {
    pub engine: Engine,
    pub strategy: RetryStrategy,
    /// The same policy with budgets off, for `wl_engine_retry_delay`.
    pub delays: RetryStrategy,
    pub last_error: Option<Fail>,
    /// The last command handed out; its strings are borrowed by the caller.
    pub last_command: Option<Command>,
    /// The operation of the last store command handed out, as NUL-terminated JSON.
    pub operation: String,
    /// Text handed out by the last JSON-returning call, NUL-terminated.
    pub scratch: String,
}

/// An engine handle: the lane engine and the decision-only retry strategy under one
/// policy, with the last error of the last failed call.
///
/// Create with `wl_engine_new`, destroy with `wl_engine_free`. Every call on a handle is
/// exclusive: a call that finds another call in progress on the same handle returns
/// `WL_STATUS_BUSY` and does nothing.
pub struct wl_engine {
    flags: AtomicU8,
    inner: UnsafeCell<Inner>,
}

// SAFETY: `inner` is only touched by the one call that set the BUSY bit (an acquire
// fetch_or that saw it clear), and released with a release store, so accesses from
// different threads never overlap and are ordered.
unsafe impl Sync for wl_engine {}
unsafe impl Send for wl_engine {}

impl wl_engine {
    pub(crate) fn new(inner: Inner) -> wl_engine {
        wl_engine {
            flags: AtomicU8::new(0),
            inner: UnsafeCell::new(inner),
        }
    }
}

/// Which calls a poisoned handle still serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Refused with `POISONED` once the handle is poisoned.
    Normal,
    /// Reads only the last error: served even on a poisoned handle.
    LastError,
}

/// Run `f` on the handle: refuse if another call holds it or it is poisoned, catch any
/// panic (poisoning the handle), keep the error of a failed call as the handle's last
/// error and clear it on success.
///
/// # Safety
/// `h` must be NULL or a live handle from `wl_engine_new`.
#[inline]
pub(crate) unsafe fn with_handle<F>(h: *const wl_engine, access: Access, f: F) -> wl_status
where
    F: FnOnce(&mut Inner) -> Result<(), Fail>,
{
    let Some(handle) = (unsafe { h.as_ref() }) else {
        return wl_status::NullArgument;
    };
    // One compare-and-swap takes an idle handle; anything else is busy or poisoned.
    let mut idle = 0;
    if let Err(now) = handle
        .flags
        .compare_exchange(0, BUSY, Ordering::Acquire, Ordering::Relaxed)
    {
        if now & BUSY != 0 {
            return wl_status::Busy;
        }
        if access == Access::Normal {
            return wl_status::Poisoned;
        }
        // Reading the last error of a poisoned handle.
        if handle
            .flags
            .compare_exchange(
                POISONED,
                POISONED | BUSY,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return wl_status::Busy;
        }
        idle = POISONED;
    }
    // SAFETY: this call set the BUSY bit, so it has exclusive access until it clears it.
    let inner = unsafe { &mut *handle.inner.get() };
    let status = match catch_unwind(AssertUnwindSafe(|| f(inner))) {
        Ok(Ok(())) => {
            if access == Access::Normal && inner.last_error.is_some() {
                inner.last_error = None;
            }
            wl_status::Ok
        }
        Ok(Err(fail)) => {
            let status = fail.status;
            if access == Access::Normal {
                inner.last_error = Some(fail);
            }
            status
        }
        Err(payload) => {
            let fail = Fail::panicked(&*payload);
            // Dropping the payload could itself panic; keep it from unwinding further.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            inner.last_error = Some(fail);
            inner.last_command = None;
            idle = POISONED;
            wl_status::Panicked
        }
    };
    // Only the holder changes the flags while BUSY is set, so a plain store releases.
    handle.flags.store(idle, Ordering::Release);
    status
}

/// Run `f` (a call without a handle) inside a panic guard, reporting a failure into the
/// caller's optional `wl_error`.
///
/// # Safety
/// `out_error` must be NULL or point to a writable `wl_error`.
pub(crate) unsafe fn without_handle<F>(out_error: *mut wl_error, f: F) -> wl_status
where
    F: FnOnce() -> Result<(), Fail>,
{
    let result = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let fail = Fail::panicked(&*payload);
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            Err(fail)
        }
    };
    let out = unsafe { out_error.as_mut() };
    match result {
        Ok(()) => {
            if let Some(out) = out {
                clear_error(out);
            }
            wl_status::Ok
        }
        Err(fail) => {
            if let Some(out) = out {
                fail.write_to(out);
            }
            fail.status
        }
    }
}

/// A required string argument given as pointer and length.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes.
#[inline]
pub(crate) unsafe fn str_arg<'a>(
    ptr: *const c_char,
    len: usize,
    name: &str,
) -> Result<&'a str, Fail> {
    if ptr.is_null() {
        return Err(Fail::null(name));
    }
    unsafe { bytes_to_str(ptr, len, name) }
}

/// An optional string in a struct: a NULL pointer means absent.
///
/// # Safety
/// A non-NULL `s.ptr` must point to `s.len` readable bytes.
#[inline]
pub(crate) unsafe fn opt_str<'a>(s: &wl_str, name: &str) -> Result<Option<&'a str>, Fail> {
    if s.ptr.is_null() {
        if s.len != 0 {
            return Err(Fail::invalid(
                name,
                format!(
                    "a NULL pointer with length {}; NULL means absent and needs length 0",
                    s.len
                ),
            ));
        }
        return Ok(None);
    }
    unsafe { bytes_to_str(s.ptr, s.len, name).map(Some) }
}

/// Bytes given as pointer and length, not necessarily UTF-8 (what a store returned). With
/// `optional`, a NULL pointer (with length 0) is absent; otherwise NULL is refused.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes.
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const c_char,
    len: usize,
    name: &str,
    optional: bool,
) -> Result<Option<&'a [u8]>, Fail> {
    if ptr.is_null() {
        return match (optional, len) {
            (false, _) => Err(Fail::null(name)),
            (true, 0) => Ok(None),
            (true, _) => Err(Fail::invalid(
                name,
                format!("a NULL pointer with length {len}; NULL means absent and needs length 0"),
            )),
        };
    }
    if len > isize::MAX as usize {
        return Err(Fail::invalid(
            name,
            format!("length {len} is above PTRDIFF_MAX"),
        ));
    }
    // SAFETY: the caller promises `len` readable bytes at a non-NULL `ptr`.
    Ok(Some(unsafe {
        std::slice::from_raw_parts(ptr.cast::<u8>(), len)
    }))
}

#[inline]
unsafe fn bytes_to_str<'a>(ptr: *const c_char, len: usize, name: &str) -> Result<&'a str, Fail> {
    if len > isize::MAX as usize {
        return Err(Fail::invalid(
            name,
            format!("length {len} is above PTRDIFF_MAX"),
        ));
    }
    // SAFETY: the caller promises `len` readable bytes at a non-NULL `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8. (A fast path for the usual names and codes.)
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|e| {
        Fail::new(
            wl_status::InvalidUtf8,
            name,
            format!(
                "`{name}` is not valid UTF-8: invalid byte at offset {}",
                e.valid_up_to()
            ),
        )
    })
}

/// A required out-parameter.
///
/// # Safety
/// A non-NULL `ptr` must be valid for writes of `T`.
#[inline]
pub(crate) unsafe fn out_arg<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Fail> {
    unsafe { ptr.as_mut() }.ok_or_else(|| Fail::null(name))
}

/// A required in-parameter.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads of `T`.
#[inline]
pub(crate) unsafe fn in_arg<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Fail> {
    unsafe { ptr.as_ref() }.ok_or_else(|| Fail::null(name))
}

/// Copy `text` into a caller buffer with a NUL terminator; the length without the NUL is
/// always written to `out_len`.
///
/// # Safety
/// A non-NULL `buf` must be valid for `cap` bytes of writes.
pub(crate) unsafe fn copy_out(
    text: &str,
    buf: *mut c_char,
    cap: usize,
    out_len: &mut usize,
    buf_name: &str,
) -> Result<(), Fail> {
    *out_len = text.len();
    if buf.is_null() && cap != 0 {
        return Err(Fail::null(buf_name));
    }
    if cap <= text.len() {
        if cap > 0 {
            // SAFETY: cap > 0 bytes are writable.
            unsafe { *buf = 0 };
        }
        return Err(Fail::new(
            wl_status::BufferTooSmall,
            buf_name,
            format!(
                "`{buf_name}` holds {cap} bytes; {} are needed (the text and its NUL)",
                text.len() + 1
            ),
        ));
    }
    // SAFETY: cap > text.len() bytes are writable and do not overlap `text`.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    Ok(())
}
