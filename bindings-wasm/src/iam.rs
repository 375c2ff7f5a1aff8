//! The core's entity table (`writelane_core::iam`) for the lane middleware of the npm
//! package (`lane.plugin()`): which lanes an SDK call takes.

use wasm_bindgen::prelude::*;
use writelane_core::iam::{Access, Context, EntityError, ServiceTable, Source, IAM};

/// The services that have an entity table, by SDK service id (lowercase: `iam`).
const SERVICES: &[(&str, &ServiceTable)] = &[("iam", &IAM)];

fn table(service: &str) -> Option<&'static ServiceTable> {
    SERVICES
        .iter()
        .find(|(name, _)| *name == service)
        .map(|(_, t)| *t)
}

fn failure(operation: &str, parameter: &str, reason: String) -> String {
    serde_json::json!({
        "ok": false,
        "operation": operation,
        "parameter": parameter,
        "reason": reason,
    })
    .to_string()
}

/// The request parameter an entity error names (API spelling; `params` for the request as
/// a whole, `caller` for the calling user).
fn parameter(e: &EntityError) -> &'static str {
    match *e {
        EntityError::NotAnObject { .. } => "params",
        EntityError::Missing { parameter, .. }
        | EntityError::NotText { parameter, .. }
        | EntityError::BadArn { parameter, .. }
        | EntityError::TooLong { parameter, .. } => parameter,
        EntityError::CallerUnknown { .. } => "caller",
    }
}

/// The services with an entity table, as a JSON list.
#[wasm_bindgen(js_name = entityServices)]
pub fn entity_services() -> String {
    let names: Vec<&str> = SERVICES.iter().map(|(name, _)| *name).collect();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned())
}

/// The request parameters (both spellings) that name the entities of write `operation`,
/// as a JSON list, or `null` when it is not a write of a table: a caller may pass only
/// these to `entityKeys`.
#[wasm_bindgen(js_name = entityParams)]
pub fn entity_params(service: &str, operation: &str) -> String {
    let Some(op) = table(service).and_then(|t| t.operation(operation)) else {
        return "null".to_owned();
    };
    let mut names: Vec<&str> = Vec::new();
    for slot in op.slots {
        if let Source::Param { upper, lower, .. } = slot.source {
            names.push(upper);
            names.push(lower);
        }
    }
    serde_json::to_string(&names).unwrap_or_else(|_| "null".to_owned())
}

/// Which lanes a call takes. `params` is the request as JSON text; `account` and
/// `partition` may be empty (unknown; partition `aws`). Returns
/// `{"ok": true, "access": "write"|"read"|"unknown", "keys": [...]}` with the keys sorted
/// (the order lanes are taken in), or `{"ok": false, "operation", "parameter", "reason"}`
/// (`parameter` is `service` for a service with no table, `params` for text that is not
/// JSON or not an object).
#[wasm_bindgen(js_name = entityKeys)]
pub fn entity_keys(
    service: &str,
    operation: &str,
    params: &str,
    account: &str,
    partition: &str,
) -> String {
    let Some(table) = table(service) else {
        return failure(
            operation,
            "service",
            format!("service: no entity table for {service:?}"),
        );
    };
    let op = match table.access(operation) {
        Access::Read => return r#"{"ok":true,"access":"read","keys":[]}"#.to_owned(),
        Access::Unknown => return r#"{"ok":true,"access":"unknown","keys":[]}"#.to_owned(),
        Access::Write(op) => op,
    };
    let params: serde_json::Value = match serde_json::from_str(params) {
        Ok(v) => v,
        Err(e) => return failure(operation, "params", format!("params: not JSON: {e}")),
    };
    let ctx = Context {
        account: Some(account).filter(|a| !a.is_empty()),
        partition: if partition.is_empty() {
            "aws"
        } else {
            partition
        },
        caller_user: None,
    };
    match op.entities(&params, &ctx) {
        Ok(entities) => {
            let keys: Vec<String> = entities.iter().map(|e| e.key()).collect();
            serde_json::json!({"ok": true, "access": "write", "keys": keys}).to_string()
        }
        Err(e) => failure(op.name, parameter(&e), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn keys_reads_unknown_and_errors() {
        let w = parse(&entity_keys(
            "iam",
            "AddUserToGroup",
            r#"{"UserName":"u","GroupName":"g"}"#,
            "123456789012",
            "",
        ));
        assert_eq!(w["access"], "write");
        assert_eq!(
            w["keys"],
            serde_json::json!([
                "arn:aws:iam::123456789012:group/g",
                "arn:aws:iam::123456789012:user/u"
            ])
        );
        assert_eq!(
            parse(&entity_keys("iam", "GetRole", "{}", "", ""))["access"],
            "read"
        );
        assert_eq!(
            parse(&entity_keys("iam", "Frob", "{}", "", ""))["access"],
            "unknown"
        );
        let e = parse(&entity_keys("iam", "PutRolePolicy", "{}", "", ""));
        assert_eq!(e["ok"], false);
        assert_eq!(e["parameter"], "RoleName");
        assert_eq!(
            parse(&entity_keys("s3", "PutObject", "{}", "", ""))["parameter"],
            "service"
        );
        assert_eq!(
            parse(&entity_keys("iam", "PutRolePolicy", "[", "", ""))["parameter"],
            "params"
        );
        assert_eq!(parse(&entity_services()), serde_json::json!(["iam"]));
        assert_eq!(
            parse(&entity_params("iam", "AddUserToGroup")),
            serde_json::json!(["GroupName", "groupName", "UserName", "userName"])
        );
        assert_eq!(
            parse(&entity_params("iam", "GetRole")),
            serde_json::Value::Null
        );
    }
}
