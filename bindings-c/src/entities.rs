//! The entity table of the core (`writelane_core::iam`) for hosts that put SDK calls in
//! lanes: which entities an AWS control-plane call writes, keyed as every binding and
//! `writelane trail` key them. The table and its rules are the core's; this is a thin
//! wrapper over it, JSON text in and out.

use std::os::raw::c_char;

use serde_json::{json, Value};
use writelane_core::iam::{Access, Context, EntityError, ServiceTable, Source, IAM};

use crate::guard::{bytes_arg, copy_out, out_arg, str_arg, without_handle, Fail};
use crate::status::wl_status;
use crate::types::wl_error;

/// The service tables, each known by its ARN namespace (the part of its CloudTrail
/// `eventSource` before the first dot: `iam`).
static TABLES: &[&ServiceTable] = &[&IAM];

/// The table of `service`: its ARN namespace (`iam`), its CloudTrail `eventSource`
/// (`iam.amazonaws.com`) or an SDK's service id (`IAM`), in any case.
fn table_for(service: &str) -> Option<&'static ServiceTable> {
    TABLES.iter().copied().find(|t| {
        let ns = t.event_source.split('.').next().unwrap_or(t.event_source);
        service.eq_ignore_ascii_case(ns) || service.eq_ignore_ascii_case(t.event_source)
    })
}

/// An optional JSON text argument: NULL with length 0 is absent (JSON `null`).
unsafe fn opt_json(ptr: *const c_char, len: usize, arg: &str) -> Result<Value, Fail> {
    let Some(bytes) = (unsafe { bytes_arg(ptr, len, arg, true)? }) else {
        return Ok(Value::Null);
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Fail::new(
            wl_status::InvalidUtf8,
            arg,
            format!(
                "`{arg}` is not valid UTF-8: invalid byte at offset {}",
                e.valid_up_to()
            ),
        )
    })?;
    serde_json::from_str(text).map_err(|e| {
        Fail::new(
            wl_status::InvalidDocument,
            arg,
            format!("`{arg}` is not JSON: {e}"),
        )
    })
}

/// The string field `name` of the context object, if present.
fn context_field<'a>(ctx: &'a Value, name: &str) -> Result<Option<&'a str>, Fail> {
    match ctx.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(Fail::new(
            wl_status::InvalidDocument,
            format!("context.{name}"),
            format!("`context.{name}` must be a non-empty string"),
        )),
    }
}

/// The result object of `wl_iam_entities` for `service`'s operation `operation`.
fn entities(service: &str, operation: &str, params: &Value, ctx: &Value) -> Result<Value, Fail> {
    if operation.is_empty() {
        return Err(Fail::invalid("operation", "must not be empty"));
    }
    if !matches!(params, Value::Object(_) | Value::Null) {
        return Err(Fail::new(
            wl_status::InvalidDocument,
            "params",
            "`params` must be a JSON object (or null)",
        ));
    }
    if !matches!(ctx, Value::Object(_) | Value::Null) {
        return Err(Fail::new(
            wl_status::InvalidDocument,
            "context",
            "`context` must be a JSON object (or null)",
        ));
    }
    if let Value::Object(map) = ctx {
        if let Some(k) = map
            .keys()
            .find(|k| !["account", "partition", "caller_user"].contains(&k.as_str()))
        {
            return Err(Fail::new(
                wl_status::InvalidDocument,
                format!("context.{k}"),
                format!("`context.{k}` is not a field (account, partition, caller_user)"),
            ));
        }
    }
    let context = Context {
        account: context_field(ctx, "account")?,
        partition: context_field(ctx, "partition")?.unwrap_or("aws"),
        caller_user: context_field(ctx, "caller_user")?,
    };
    let Some(table) = table_for(service) else {
        return Ok(json!({"access": "untracked", "keys": [], "params": []}));
    };
    let op = match table.access(operation) {
        Access::Read => return Ok(json!({"access": "read", "keys": [], "params": []})),
        Access::Unknown => return Ok(json!({"access": "unknown", "keys": [], "params": []})),
        Access::Write(op) => op,
    };
    let names: Vec<&str> = op
        .slots
        .iter()
        .filter_map(|s| match s.source {
            Source::Param { upper, .. } => Some(upper),
            Source::Caller | Source::Fixed(_) => None,
        })
        .collect();
    Ok(match op.entities(params, &context) {
        Ok(found) => {
            let keys: Vec<String> = found.iter().map(|e| e.key()).collect();
            json!({"access": "write", "keys": keys, "params": names})
        }
        Err(e) => {
            let parameter = match &e {
                EntityError::Missing { parameter, .. }
                | EntityError::NotText { parameter, .. }
                | EntityError::BadArn { parameter, .. }
                | EntityError::TooLong { parameter, .. } => Value::from(*parameter),
                EntityError::NotAnObject { .. } => Value::from("params"),
                EntityError::CallerUnknown { .. } => Value::from("caller_user"),
            };
            json!({"access": "write", "keys": [], "params": names,
                   "undetermined": e.to_string(), "parameter": parameter})
        }
    })
}

/// Which entities a call of `service`'s operation `operation` writes, by the core's entity
/// table, as a JSON object copied into `buf` (capacity `cap`) with a NUL; `*out_len`
/// always receives its length without the NUL:
///
/// - `access`: `"write"` (in the table), `"read"` (named like the service's reads: it
///   touches no lane), `"unknown"` (neither: an operation newer than the table; let it
///   through unserialised and count it) or `"untracked"` (no table for `service`).
/// - `keys`: the entities' canonical keys, sorted, without duplicates: the order in
///   which to take their lanes. Empty unless `access` is `"write"`; empty too for a write
///   that creates an entity only its response names.
/// - `params`: for a write, the request parameters (API spelling) its entities are read
///   from, so that a host may send only those.
/// - `undetermined` and `parameter`, for a write whose entities cannot be determined
///   from `params` (a required parameter missing, not a string, an ARN of the wrong type,
///   the calling user unknown): the reason, and the parameter at fault. Such a call
///   should go through unserialised and be counted, never refused.
///
/// `service` is the table's ARN namespace (`iam`), its CloudTrail event source
/// (`iam.amazonaws.com`) or an SDK's service id (`IAM`), in any case. `params` is the
/// request's parameters as a JSON object in the API's spelling (`RoleName`) or
/// CloudTrail's (`roleName`); NULL with length 0, or `null`, is none. `context` is a JSON
/// object with the optional string fields `account` (keys are ARNs when it is known),
/// `partition` (default `aws`) and `caller_user` (for operations that act on the calling
/// IAM user when `UserName` is absent); NULL with length 0 is none.
///
/// Errors: `WL_STATUS_NULL_ARGUMENT` (`service`, `operation`, `out_len`; `buf` when `cap`
/// is not 0), `WL_STATUS_INVALID_UTF8`, `WL_STATUS_INVALID_ARGUMENT` (an empty
/// `operation`; a NULL `params` or `context` with a length), `WL_STATUS_INVALID_DOCUMENT`
/// (`params` or `context` not JSON or not an object, a `context` field that is not a
/// non-empty string or not a field: the path names it), `WL_STATUS_BUFFER_TOO_SMALL`.
/// `out_error` may be NULL. Nothing is kept between calls.
#[no_mangle]
pub unsafe extern "C" fn wl_iam_entities(
    service: *const c_char,
    service_len: usize,
    operation: *const c_char,
    operation_len: usize,
    params: *const c_char,
    params_len: usize,
    context: *const c_char,
    context_len: usize,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_error: *mut wl_error,
) -> wl_status {
    unsafe {
        without_handle(out_error, || {
            let len = out_arg(out_len, "out_len")?;
            *len = 0;
            let service = str_arg(service, service_len, "service")?;
            let operation = str_arg(operation, operation_len, "operation")?;
            let params = opt_json(params, params_len, "params")?;
            let ctx = opt_json(context, context_len, "context")?;
            let out = entities(service, operation, &params, &ctx)?;
            let text = serde_json::to_string(&out).expect("JSON values always serialise");
            copy_out(&text, buf, cap, len, "buf")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::null;

    fn blank() -> wl_error {
        // SAFETY: wl_error is plain data; all zeros is WL_STATUS_OK with empty texts.
        unsafe { std::mem::zeroed() }
    }

    /// Call the export; the status and the text (or the error's path).
    fn call(
        service: &str,
        op: &str,
        params: Option<&str>,
        ctx: Option<&str>,
    ) -> (wl_status, String) {
        let mut buf = vec![0 as c_char; 4096];
        let mut n = 0usize;
        let mut err = blank();
        let (p, pl) = params.map_or((null(), 0), |p| (p.as_ptr().cast(), p.len()));
        let (c, cl) = ctx.map_or((null(), 0), |c| (c.as_ptr().cast(), c.len()));
        let st = unsafe {
            wl_iam_entities(
                service.as_ptr().cast(),
                service.len(),
                op.as_ptr().cast(),
                op.len(),
                p,
                pl,
                c,
                cl,
                buf.as_mut_ptr(),
                buf.len(),
                &mut n,
                &mut err,
            )
        };
        if st == wl_status::Ok {
            let bytes: Vec<u8> = buf[..n].iter().map(|&b| b as u8).collect();
            (st, String::from_utf8(bytes).unwrap())
        } else {
            let path: Vec<u8> = err.path[..err.path_len].iter().map(|&b| b as u8).collect();
            (st, String::from_utf8(path).unwrap())
        }
    }

    fn ok(service: &str, op: &str, params: Option<&str>, ctx: Option<&str>) -> Value {
        let (st, text) = call(service, op, params, ctx);
        assert_eq!(st, wl_status::Ok, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn writes_reads_unknown_and_untracked() {
        let v = ok(
            "IAM",
            "PutRolePolicy",
            Some(r#"{"RoleName":"app","PolicyName":"p","PolicyDocument":"{}"}"#),
            None,
        );
        assert_eq!(
            v,
            json!({"access":"write","keys":["role/app"],"params":["RoleName"]})
        );
        let v = ok(
            "iam",
            "PutRolePolicy",
            Some(r#"{"RoleName":"app"}"#),
            Some(r#"{"account":"123456789012"}"#),
        );
        assert_eq!(v["keys"], json!(["arn:aws:iam::123456789012:role/app"]));
        // Two entities, sorted by key (group before user), whatever the parameter order.
        let v = ok(
            "iam.amazonaws.com",
            "AddUserToGroup",
            Some(r#"{"UserName":"zed","GroupName":"admins"}"#),
            None,
        );
        assert_eq!(v["keys"], json!(["group/admins", "user/zed"]));
        assert_eq!(
            ok("iam", "GetRolePolicy", Some(r#"{"RoleName":"app"}"#), None)["access"],
            "read"
        );
        assert_eq!(ok("iam", "FrobnicateRole", None, None)["access"], "unknown");
        assert_eq!(ok("sts", "AssumeRole", None, None)["access"], "untracked");
        // CloudTrail's spelling.
        assert_eq!(
            ok("iam", "DeleteRole", Some(r#"{"roleName":"app"}"#), None)["keys"],
            json!(["role/app"])
        );
    }

    #[test]
    fn undetermined_entities_are_data() {
        let v = ok("iam", "PutRolePolicy", None, None);
        assert_eq!(v["access"], "write");
        assert_eq!(v["keys"], json!([]));
        assert_eq!(v["parameter"], "RoleName");
        assert!(v["undetermined"]
            .as_str()
            .unwrap()
            .contains("missing parameter RoleName"));
        let v = ok(
            "iam",
            "AttachRolePolicy",
            Some(r#"{"RoleName":"a","PolicyArn":"arn:aws:iam::1:role/x"}"#),
            None,
        );
        assert_eq!(v["parameter"], "PolicyArn");
        let v = ok("iam", "CreateAccessKey", Some("{}"), None);
        assert_eq!(v["parameter"], "caller_user");
        let v = ok(
            "iam",
            "CreateAccessKey",
            Some("{}"),
            Some(r#"{"caller_user":"alice"}"#),
        );
        assert_eq!(v["keys"], json!(["user/alice"]));
    }

    #[test]
    fn bad_input_is_typed() {
        assert_eq!(
            call("iam", "PutRolePolicy", Some("{"), None),
            (wl_status::InvalidDocument, "params".into())
        );
        assert_eq!(
            call("iam", "PutRolePolicy", Some("[1]"), None),
            (wl_status::InvalidDocument, "params".into())
        );
        assert_eq!(
            call("iam", "PutRolePolicy", None, Some("3")),
            (wl_status::InvalidDocument, "context".into())
        );
        assert_eq!(
            call("iam", "PutRolePolicy", None, Some(r#"{"acount":"1"}"#)),
            (wl_status::InvalidDocument, "context.acount".into())
        );
        assert_eq!(
            call("iam", "PutRolePolicy", None, Some(r#"{"account":7}"#)),
            (wl_status::InvalidDocument, "context.account".into())
        );
        assert_eq!(
            call("iam", "", None, None),
            (wl_status::InvalidArgument, "operation".into())
        );
        let bad = [b'{', 0xff, b'}'];
        let mut n = 0usize;
        let mut err = blank();
        let st = unsafe {
            wl_iam_entities(
                b"iam".as_ptr().cast(),
                3,
                b"X".as_ptr().cast(),
                1,
                bad.as_ptr().cast(),
                3,
                null(),
                0,
                std::ptr::null_mut(),
                0,
                &mut n,
                &mut err,
            )
        };
        assert_eq!(st, wl_status::InvalidUtf8);
        let st = unsafe {
            wl_iam_entities(
                null(),
                0,
                b"X".as_ptr().cast(),
                1,
                null(),
                0,
                null(),
                0,
                std::ptr::null_mut(),
                0,
                &mut n,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(st, wl_status::NullArgument);
        let st = unsafe {
            wl_iam_entities(
                b"iam".as_ptr().cast(),
                3,
                b"X".as_ptr().cast(),
                1,
                null(),
                5,
                null(),
                0,
                std::ptr::null_mut(),
                0,
                &mut n,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(st, wl_status::InvalidArgument);
        // Too small a buffer reports the length needed.
        let mut small = [0 as c_char; 4];
        let st = unsafe {
            wl_iam_entities(
                b"iam".as_ptr().cast(),
                3,
                b"GetRole".as_ptr().cast(),
                7,
                null(),
                0,
                null(),
                0,
                small.as_mut_ptr(),
                4,
                &mut n,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(st, wl_status::BufferTooSmall);
        assert_eq!(n, r#"{"access":"read","keys":[],"params":[]}"#.len());
    }
}
