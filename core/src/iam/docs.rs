//! Changes for the common IAM shapes, as pure functions on JSON documents: put a
//! statement by `Sid` into a policy document, add a principal to a trust policy, set tags.
//!
//! They are the `change` functions of updates (see [`crate::Engine::submit_update`]) and
//! are idempotent: applying one again to its own result changes nothing, so re-applying
//! after a conflict, on a fresher document, is safe. Each takes the document and returns
//! the new one; the input is never modified. Malformed input is a [`DocError`] naming the
//! field.

use serde_json::{Map, Value};

/// A document or an argument does not have the shape the change needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct DocError {
    /// The field, as a path into the document (`Statement[2].Sid`), or the argument.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(path: impl Into<String>, reason: impl Into<String>) -> DocError {
    DocError {
        path: path.into(),
        reason: reason.into(),
    }
}

/// A policy document's `Statement` as a list (IAM accepts a single statement object too),
/// and the document's other fields.
fn statements(doc: &Value) -> Result<(Map<String, Value>, Vec<Value>), DocError> {
    let Value::Object(map) = doc else {
        return Err(err("$", "a policy document must be a JSON object"));
    };
    let mut map = map.clone();
    let list = match map.remove("Statement") {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(one @ Value::Object(_)) => vec![one],
        Some(_) => return Err(err("Statement", "must be an object or a list of objects")),
    };
    for (i, s) in list.iter().enumerate() {
        if !s.is_object() {
            return Err(err(format!("Statement[{i}]"), "must be an object"));
        }
    }
    Ok((map, list))
}

fn with_statements(mut map: Map<String, Value>, list: Vec<Value>) -> Value {
    map.entry("Version")
        .or_insert_with(|| Value::String("2012-10-17".into()));
    map.insert("Statement".into(), Value::Array(list));
    Value::Object(map)
}

fn sid_of(statement: &Value) -> Option<&str> {
    statement.get("Sid").and_then(Value::as_str)
}

/// Append `statement` to a policy document, or replace the statement with the same
/// `Sid`. The statement must have a non-empty string `Sid`: without one, a second
/// application could not find the first. A missing `Version` becomes `2012-10-17`; a
/// single-statement `Statement` becomes a list. `doc` may be `null` (no policy yet).
pub fn put_statement(doc: &Value, statement: &Value) -> Result<Value, DocError> {
    let sid = match statement.get("Sid") {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        _ => {
            return Err(err(
                "statement.Sid",
                "a statement put by Sid needs a non-empty string Sid",
            ))
        }
    };
    let empty = Value::Object(Map::new());
    let (map, mut list) = statements(if doc.is_null() { &empty } else { doc })?;
    match list.iter().position(|s| sid_of(s) == Some(sid)) {
        Some(i) => list[i] = statement.clone(),
        None => list.push(statement.clone()),
    }
    Ok(with_statements(map, list))
}

/// Remove the statement with this `Sid`, if there is one.
pub fn remove_statement(doc: &Value, sid: &str) -> Result<Value, DocError> {
    let (map, mut list) = statements(doc)?;
    list.retain(|s| sid_of(s) != Some(sid));
    Ok(with_statements(map, list))
}

/// Add a principal to a role's trust policy: `kind` is `AWS`, `Service` or `Federated`,
/// `principal` an ARN, account id or service name. It goes into the statement with this
/// `Sid`, which is created (`Allow`, `sts:AssumeRole`) when missing; a principal already
/// there is not added twice. A single value becomes a list only when a second one joins.
pub fn add_trust_principal(
    doc: &Value,
    sid: &str,
    kind: &str,
    principal: &str,
) -> Result<Value, DocError> {
    if !matches!(kind, "AWS" | "Service" | "Federated") {
        return Err(err("kind", "must be AWS, Service or Federated"));
    }
    if sid.is_empty() || principal.is_empty() {
        return Err(err(
            if sid.is_empty() { "sid" } else { "principal" },
            "must not be empty",
        ));
    }
    let empty = Value::Object(Map::new());
    let (map, mut list) = statements(if doc.is_null() { &empty } else { doc })?;
    let i = match list.iter().position(|s| sid_of(s) == Some(sid)) {
        Some(i) => i,
        None => {
            list.push(serde_json::json!({
                "Sid": sid,
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {},
            }));
            list.len() - 1
        }
    };
    let path = format!("Statement[{i}].Principal");
    let statement = list[i].as_object_mut().expect("checked: an object");
    let principals = statement
        .entry("Principal")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(principals) = principals else {
        return Err(err(path, "must be an object to add a principal to"));
    };
    let value = Value::String(principal.into());
    match principals.get_mut(kind) {
        None => {
            principals.insert(kind.into(), value);
        }
        Some(one @ Value::String(_)) => {
            if *one != value {
                let first = one.take();
                *one = Value::Array(vec![first, value]);
            }
        }
        Some(Value::Array(items)) => {
            if !items.contains(&value) {
                items.push(value);
            }
        }
        Some(_) => return Err(err(format!("{path}.{kind}"), "must be a string or a list")),
    }
    Ok(with_statements(map, list))
}

/// Set tags in an IAM tag list (`[{"Key": ..., "Value": ...}]`): a key present gets the
/// new value in place, a new key is appended. `null` is an empty list.
pub fn set_tags(tags: &Value, set: &[(&str, &str)]) -> Result<Value, DocError> {
    let mut list = match tags {
        Value::Null => Vec::new(),
        Value::Array(items) => items.clone(),
        _ => return Err(err("$", "a tag list must be a JSON list")),
    };
    for (i, t) in list.iter().enumerate() {
        if t.get("Key").and_then(Value::as_str).is_none() {
            return Err(err(format!("[{i}].Key"), "must be a string"));
        }
    }
    for &(key, value) in set {
        if key.is_empty() {
            return Err(err("key", "must not be empty"));
        }
        let tag = serde_json::json!({"Key": key, "Value": value});
        match list
            .iter()
            .position(|t| t.get("Key").and_then(Value::as_str) == Some(key))
        {
            Some(i) => list[i] = tag,
            None => list.push(tag),
        }
    }
    Ok(Value::Array(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn twice<F: Fn(&Value) -> Result<Value, DocError>>(doc: Value, f: F) -> Value {
        let once = f(&doc).unwrap();
        assert_eq!(f(&once).unwrap(), once, "idempotent");
        once
    }

    #[test]
    fn put_statement_appends_then_replaces_by_sid() {
        let s1 = json!({"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"});
        let doc = twice(Value::Null, |d| put_statement(d, &s1));
        assert_eq!(doc, json!({"Version": "2012-10-17", "Statement": [s1]}));
        let s2 = json!({"Sid": "B", "Effect": "Deny", "Action": "*", "Resource": "*"});
        let doc = twice(doc, |d| put_statement(d, &s2));
        assert_eq!(doc["Statement"].as_array().unwrap().len(), 2);
        let s1b = json!({"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "*"});
        let doc = twice(doc, |d| put_statement(d, &s1b));
        assert_eq!(doc["Statement"], json!([s1b, s2]));
        let single = json!({"Version": "2012-10-17", "Statement": s2});
        assert_eq!(
            put_statement(&single, &s1).unwrap()["Statement"],
            json!([s2, s1])
        );
        let doc = remove_statement(&doc, "A").unwrap();
        assert_eq!(doc["Statement"], json!([s2]));
    }

    #[test]
    fn put_statement_refuses_what_it_cannot_find_again() {
        let e = put_statement(&Value::Null, &json!({"Effect": "Allow"})).unwrap_err();
        assert_eq!(e.path, "statement.Sid");
        let e = put_statement(&json!({"Statement": [1]}), &json!({"Sid": "A"})).unwrap_err();
        assert_eq!(e.path, "Statement[0]");
        let e = put_statement(&json!([]), &json!({"Sid": "A"})).unwrap_err();
        assert_eq!(e.path, "$");
    }

    #[test]
    fn trust_principals_are_added_once() {
        let doc = twice(Value::Null, |d| {
            add_trust_principal(d, "Trust", "Service", "lambda.amazonaws.com")
        });
        assert_eq!(
            doc["Statement"][0]["Principal"],
            json!({"Service": "lambda.amazonaws.com"})
        );
        let doc = twice(doc, |d| {
            add_trust_principal(d, "Trust", "Service", "ec2.amazonaws.com")
        });
        let doc = twice(doc, |d| {
            add_trust_principal(d, "Trust", "AWS", "arn:aws:iam::123456789012:root")
        });
        assert_eq!(
            doc["Statement"][0]["Principal"],
            json!({
                "Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"],
                "AWS": "arn:aws:iam::123456789012:root"
            })
        );
        assert_eq!(doc["Statement"][0]["Action"], "sts:AssumeRole");
        let e = add_trust_principal(&doc, "Trust", "Root", "x").unwrap_err();
        assert_eq!(e.path, "kind");
        let star = json!({"Statement": [{"Sid": "T", "Principal": "*"}]});
        let e = add_trust_principal(&star, "T", "AWS", "x").unwrap_err();
        assert_eq!(e.path, "Statement[0].Principal");
    }

    #[test]
    fn tags_are_set_in_place_or_appended() {
        let tags = twice(Value::Null, |t| {
            set_tags(t, &[("team", "a"), ("env", "prod")])
        });
        let tags = twice(tags, |t| set_tags(t, &[("team", "b")]));
        assert_eq!(
            tags,
            json!([{"Key": "team", "Value": "b"}, {"Key": "env", "Value": "prod"}])
        );
        let e = set_tags(&json!([{"Value": "x"}]), &[("a", "b")]).unwrap_err();
        assert_eq!(e.path, "[0].Key");
    }
}
