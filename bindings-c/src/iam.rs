//! The IAM document helpers of group commit (the core's `iam::docs`): the change functions
//! of the common IAM shapes, as JSON text in and JSON text out. They are thin wrappers: the
//! rules are the core's. Each is idempotent (applying it again to its own result changes
//! nothing), so re-applying it after a conflict, on a fresher document, is safe.
//!
//! Every helper copies the new document, JSON text, into a caller buffer (capacity `cap`)
//! with a NUL; `*out_len` always receives its length without the NUL. A text that is not
//! JSON, or a document without the shape the change needs, is
//! `WL_STATUS_INVALID_DOCUMENT`: `out_error->path` names the argument (`document`,
//! `statement`) or the field inside the document (`Statement[2]`, `statement.Sid`), the
//! message the rule. Object keys come out sorted.

use std::os::raw::c_char;

use serde_json::Value;
use writelane_core::iam::docs;

use crate::guard::{copy_out, out_arg, str_arg, without_handle, Fail};
use crate::status::wl_status;
use crate::types::wl_error;

/// Parse the JSON text of argument `arg`.
fn json_arg(text: &str, arg: &str) -> Result<Value, Fail> {
    serde_json::from_str(text).map_err(|e| {
        Fail::new(
            wl_status::InvalidDocument,
            arg,
            format!("`{arg}` is not JSON: {e}"),
        )
    })
}

/// A document the core refused, with the argument it came from in the message.
fn doc_fail(arg: &str, e: docs::DocError) -> Fail {
    Fail::new(
        wl_status::InvalidDocument,
        e.path.clone(),
        format!("`{arg}`: {e}"),
    )
}

/// Serialise the result into the caller's buffer.
unsafe fn result_out(
    doc: &Value,
    buf: *mut c_char,
    cap: usize,
    len: &mut usize,
) -> Result<(), Fail> {
    let text = serde_json::to_string(doc).expect("JSON values always serialise");
    unsafe { copy_out(&text, buf, cap, len, "buf") }
}

/// Append `statement` (a JSON object with a non-empty string `Sid`) to the policy
/// `document` (JSON text; `null` when the entity has no policy yet), or replace the
/// statement with the same `Sid`. A missing `Version` becomes `2012-10-17`; a single
/// statement object becomes a list.
///
/// Errors: `WL_STATUS_INVALID_DOCUMENT` (path `document` or `statement` for text that is
/// not JSON, `statement.Sid`, `$`, `Statement`, `Statement[i]` for a wrong shape),
/// `WL_STATUS_BUFFER_TOO_SMALL`, `WL_STATUS_NULL_ARGUMENT`, `WL_STATUS_INVALID_UTF8`.
/// `out_error` may be NULL; `buf` may be NULL when `cap` is 0.
#[no_mangle]
pub unsafe extern "C" fn wl_iam_put_statement(
    document: *const c_char,
    document_len: usize,
    statement: *const c_char,
    statement_len: usize,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        without_handle(out_error, || {
            let len = out_arg(out_len, "out_len")?;
            *len = 0;
            let doc = json_arg(str_arg(document, document_len, "document")?, "document")?;
            let st = json_arg(str_arg(statement, statement_len, "statement")?, "statement")?;
            let new = docs::put_statement(&doc, &st).map_err(|e| doc_fail("document", e))?;
            result_out(&new, buf, cap, len)
        })
    }
}

/// Remove the statement whose `Sid` is `sid` from the policy `document` (JSON text), if
/// there is one.
///
/// Errors as `wl_iam_put_statement`.
#[no_mangle]
pub unsafe extern "C" fn wl_iam_remove_statement(
    document: *const c_char,
    document_len: usize,
    sid: *const c_char,
    sid_len: usize,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        without_handle(out_error, || {
            let len = out_arg(out_len, "out_len")?;
            *len = 0;
            let doc = json_arg(str_arg(document, document_len, "document")?, "document")?;
            let sid = str_arg(sid, sid_len, "sid")?;
            let new = docs::remove_statement(&doc, sid).map_err(|e| doc_fail("document", e))?;
            result_out(&new, buf, cap, len)
        })
    }
}

/// Add `principal` (an ARN, account id or service name) of `kind` (`AWS`, `Service` or
/// `Federated`) to a role's trust policy `document` (JSON text; `null` for none), in the
/// statement whose `Sid` is `sid`, which is created (`Allow`, `sts:AssumeRole`) when
/// missing. A principal already there is not added twice.
///
/// Errors as `wl_iam_put_statement` (paths `kind`, `sid`, `principal`,
/// `Statement[i].Principal` too).
#[no_mangle]
pub unsafe extern "C" fn wl_iam_add_trust_principal(
    document: *const c_char,
    document_len: usize,
    sid: *const c_char,
    sid_len: usize,
    kind: *const c_char,
    kind_len: usize,
    principal: *const c_char,
    principal_len: usize,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        without_handle(out_error, || {
            let len = out_arg(out_len, "out_len")?;
            *len = 0;
            let doc = json_arg(str_arg(document, document_len, "document")?, "document")?;
            let sid = str_arg(sid, sid_len, "sid")?;
            let kind = str_arg(kind, kind_len, "kind")?;
            let principal = str_arg(principal, principal_len, "principal")?;
            let new = docs::add_trust_principal(&doc, sid, kind, principal)
                .map_err(|e| doc_fail("document", e))?;
            result_out(&new, buf, cap, len)
        })
    }
}

/// Set tags in an IAM tag list `tags` (JSON text `[{"Key":K,"Value":V}, ...]`; `null`
/// for none): each tag of `set` (JSON text of the same shape, applied in order) replaces
/// the value of its key in place, or is appended.
///
/// Errors as `wl_iam_put_statement` (paths `tags`, `set`, `set[i].Key`, `set[i].Value`,
/// `[i].Key`, `key` too).
#[no_mangle]
pub unsafe extern "C" fn wl_iam_set_tags(
    tags: *const c_char,
    tags_len: usize,
    set: *const c_char,
    set_len: usize,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        without_handle(out_error, || {
            let len = out_arg(out_len, "out_len")?;
            *len = 0;
            let current = json_arg(str_arg(tags, tags_len, "tags")?, "tags")?;
            let wanted = json_arg(str_arg(set, set_len, "set")?, "set")?;
            let Value::Array(items) = &wanted else {
                return Err(Fail::new(
                    wl_status::InvalidDocument,
                    "set",
                    "`set` must be a JSON list of {\"Key\": ..., \"Value\": ...}",
                ));
            };
            let mut pairs = Vec::with_capacity(items.len());
            for (i, t) in items.iter().enumerate() {
                let field = |name: &str| {
                    t.get(name).and_then(Value::as_str).ok_or_else(|| {
                        Fail::new(
                            wl_status::InvalidDocument,
                            format!("set[{i}].{name}"),
                            format!("`set[{i}].{name}` must be a string"),
                        )
                    })
                };
                pairs.push((field("Key")?, field("Value")?));
            }
            let new = docs::set_tags(&current, &pairs).map_err(|e| doc_fail("tags", e))?;
            result_out(&new, buf, cap, len)
        })
    }
}
