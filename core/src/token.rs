//! Canonical change tokens for IAM policy documents.
//!
//! Two documents that IAM treats as the same policy get the same token: the URL-encoded
//! form IAM returns is decoded, a single statement equals a one-element list, scalar-or-list
//! fields become sorted, de-duplicated lists, `Effect`, action names and condition keys are
//! compared without case, `"Principal": "*"` equals `{"AWS": "*"}`, a 12-digit account id
//! equals its root ARN, and statement order does not matter. `Sid` and `Version` matter.
//! The canonical form is hashed with SHA-256 and prefixed with the canonicaliser version,
//! so a future change of the rules yields tokens that never collide with these.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

/// Prefix of every token this canonicaliser produces.
pub const TOKEN_PREFIX: &str = "c1:sha256:";
/// Largest document accepted (IAM's own limits are far smaller).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// A policy document could not be canonicalised: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy document at `{path}`: {rule}")]
pub struct TokenError {
    /// Path inside the document (`Statement[1].Effect`), or `$` for the whole document.
    pub path: String,
    /// What is wrong.
    pub rule: String,
}

fn err(path: impl Into<String>, rule: impl Into<String>) -> TokenError {
    TokenError {
        path: path.into(),
        rule: rule.into(),
    }
}

/// A JSON value whose objects keep sorted keys and refuse duplicates.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
                Ok(Json::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Number(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Number(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
                Ok(Json::Number(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::String(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Json, E> {
                Ok(Json::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: Json = map.next_value()?;
                    if out.contains_key(&key) {
                        return Err(de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    out.insert(key, value);
                }
                Ok(Json::Object(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Json {
    /// Compact encoding with sorted keys: the canonical bytes that get hashed.
    fn encode(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => {
                out.push_str(&serde_json::to_string(s).expect("strings always encode"))
            }
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.encode(out);
                }
                out.push(']');
            }
            Json::Object(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).expect("strings always encode"));
                    out.push(':');
                    v.encode(out);
                }
                out.push('}');
            }
        }
    }

    fn encoded(&self) -> String {
        let mut s = String::new();
        self.encode(&mut s);
        s
    }
}

fn percent_decode(text: &str) -> Result<String, TokenError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| err("$", format!("bad percent-escape at byte {i}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| err("$", "URL-decoded document is not UTF-8"))
}

/// Sorted, de-duplicated list of strings from a string or a list of strings.
fn string_list(v: &Json, path: &str, fold_case: bool) -> Result<Json, TokenError> {
    let items: Vec<&Json> = match v {
        Json::Array(items) if items.is_empty() => {
            return Err(err(path, "must not be an empty list"))
        }
        Json::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Json::String(s) => out.push(if fold_case {
                s.to_ascii_lowercase()
            } else {
                s.clone()
            }),
            _ => return Err(err(format!("{path}[{i}]"), "must be a string")),
        }
    }
    out.sort();
    out.dedup();
    Ok(Json::Array(out.into_iter().map(Json::String).collect()))
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn principal(v: &Json, path: &str) -> Result<Json, TokenError> {
    let map = match v {
        Json::String(s) if s == "*" => {
            let mut m = BTreeMap::new();
            m.insert(
                "AWS".to_string(),
                Json::Array(vec![Json::String("*".into())]),
            );
            return Ok(Json::Object(m));
        }
        Json::Object(map) => map,
        _ => return Err(err(path, "must be \"*\" or an object of principal types")),
    };
    let mut out = BTreeMap::new();
    for (kind, ids) in map {
        let p = format!("{path}.{kind}");
        let Json::Array(list) = string_list(ids, &p, false)? else {
            unreachable!("string_list returns a list")
        };
        let mut ids: Vec<String> = list
            .into_iter()
            .map(|j| match j {
                Json::String(s) if kind == "AWS" && is_account_id(&s) => {
                    format!("arn:aws:iam::{s}:root")
                }
                Json::String(s) => s,
                _ => unreachable!("string_list returns strings"),
            })
            .collect();
        ids.sort();
        ids.dedup();
        out.insert(
            kind.clone(),
            Json::Array(ids.into_iter().map(Json::String).collect()),
        );
    }
    Ok(Json::Object(out))
}

fn condition(v: &Json, path: &str) -> Result<Json, TokenError> {
    let Json::Object(ops) = v else {
        return Err(err(path, "must be an object of condition operators"));
    };
    let mut out = BTreeMap::new();
    for (op, keys) in ops {
        let p = format!("{path}.{op}");
        let Json::Object(keys) = keys else {
            return Err(err(p, "must be an object of condition keys"));
        };
        let mut norm = BTreeMap::new();
        for (key, values) in keys {
            let kp = format!("{p}.{key}");
            let as_strings = |j: &Json| -> Result<Json, TokenError> {
                Ok(match j {
                    Json::String(s) => Json::String(s.clone()),
                    Json::Bool(b) => Json::String(b.to_string()),
                    Json::Number(n) => Json::String(n.clone()),
                    _ => return Err(err(&kp, "values must be strings, numbers or booleans")),
                })
            };
            let list = match values {
                Json::Array(items) => items
                    .iter()
                    .map(as_strings)
                    .collect::<Result<Vec<_>, _>>()?,
                other => vec![as_strings(other)?],
            };
            let normalised = string_list(&Json::Array(list), &kp, false)?;
            if norm.insert(key.to_ascii_lowercase(), normalised).is_some() {
                return Err(err(kp, "condition key repeated with different case"));
            }
        }
        out.insert(op.clone(), Json::Object(norm));
    }
    Ok(Json::Object(out))
}

fn statement(v: &Json, path: &str) -> Result<Json, TokenError> {
    let Json::Object(map) = v else {
        return Err(err(path, "a statement must be an object"));
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let p = format!("{path}.{key}");
        let norm = match key.as_str() {
            "Sid" => match value {
                Json::String(_) => value.clone(),
                _ => return Err(err(p, "must be a string")),
            },
            "Effect" => match value {
                Json::String(s) if s.eq_ignore_ascii_case("allow") => Json::String("Allow".into()),
                Json::String(s) if s.eq_ignore_ascii_case("deny") => Json::String("Deny".into()),
                _ => return Err(err(p, "must be \"Allow\" or \"Deny\"")),
            },
            "Action" | "NotAction" => string_list(value, &p, true)?,
            "Resource" | "NotResource" => string_list(value, &p, false)?,
            "Principal" | "NotPrincipal" => principal(value, &p)?,
            "Condition" => condition(value, &p)?,
            other => return Err(err(p, format!("unknown statement element {other:?}"))),
        };
        out.insert(key.clone(), norm);
    }
    if !out.contains_key("Effect") {
        return Err(err(format!("{path}.Effect"), "is required"));
    }
    if !out.contains_key("Action") && !out.contains_key("NotAction") {
        return Err(err(
            format!("{path}.Action"),
            "Action or NotAction is required",
        ));
    }
    Ok(Json::Object(out))
}

/// The canonical JSON form of a policy document (the bytes that are hashed).
pub fn canonical_policy(document: &str) -> Result<String, TokenError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(err(
            "$",
            format!(
                "document is {} bytes; the limit is {MAX_DOCUMENT_BYTES}",
                document.len()
            ),
        ));
    }
    let trimmed = document.trim();
    let decoded;
    let text = if trimmed.starts_with('{') {
        trimmed
    } else if trimmed.starts_with('%') {
        decoded = percent_decode(trimmed)?;
        decoded.trim()
    } else {
        return Err(err("$", "expected a JSON object or its URL-encoded form"));
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let doc = Json::deserialize(&mut de)
        .and_then(|d| de.end().map(|_| d))
        .map_err(|e| {
            err(
                "$",
                format!(
                    "malformed JSON at line {} column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
    let Json::Object(map) = doc else {
        return Err(err("$", "a policy document must be an object"));
    };
    let mut out = BTreeMap::new();
    for (key, value) in &map {
        match key.as_str() {
            "Version" | "Id" => match value {
                Json::String(_) => {
                    out.insert(key.clone(), value.clone());
                }
                _ => return Err(err(key.as_str(), "must be a string")),
            },
            "Statement" => {
                let items: Vec<&Json> = match value {
                    Json::Array(items) => items.iter().collect(),
                    Json::Object(_) => vec![value],
                    _ => return Err(err("Statement", "must be an object or a list of objects")),
                };
                if items.is_empty() {
                    return Err(err("Statement", "must hold at least one statement"));
                }
                let mut stmts = Vec::with_capacity(items.len());
                for (i, s) in items.iter().enumerate() {
                    let norm = statement(s, &format!("Statement[{i}]"))?;
                    stmts.push((norm.encoded(), norm));
                }
                // Order by canonical encoding so statement order does not matter.
                stmts.sort_by(|a, b| a.0.cmp(&b.0));
                stmts.dedup_by(|a, b| a.0 == b.0);
                out.insert(
                    key.clone(),
                    Json::Array(stmts.into_iter().map(|s| s.1).collect()),
                );
            }
            other => return Err(err(other, format!("unknown policy element {other:?}"))),
        }
    }
    if !out.contains_key("Statement") {
        return Err(err("Statement", "is required"));
    }
    Ok(Json::Object(out).encoded())
}

/// The change token of a policy document: `c1:sha256:<hex of the canonical form>`.
pub fn policy_token(document: &str) -> Result<String, TokenError> {
    let canonical = canonical_policy(document)?;
    let digest = Sha256::digest(canonical.as_bytes());
    let mut out = String::with_capacity(TOKEN_PREFIX.len() + 64);
    out.push_str(TOKEN_PREFIX);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(doc: &str) -> String {
        policy_token(doc).unwrap()
    }

    const BASE: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::b/*"}]}"#;

    #[test]
    fn shape_of_token() {
        let t = tok(BASE);
        assert!(t.starts_with("c1:sha256:"));
        assert_eq!(t.len(), TOKEN_PREFIX.len() + 64);
    }

    #[test]
    fn equivalent_documents_share_a_token() {
        let same = [
            // single statement object, scalar resource as list, reordered and repeated actions
            r#"{"Statement":{"Resource":["arn:aws:s3:::b/*"],"Action":["S3:PutObject","s3:getobject","s3:GetObject"],"Effect":"allow","Sid":"A"},"Version":"2012-10-17"}"#,
            // whitespace
            "\n{ \"Version\" : \"2012-10-17\", \"Statement\" : [ { \"Sid\":\"A\", \"Effect\":\"Allow\", \"Action\":[\"s3:PutObject\",\"s3:GetObject\"], \"Resource\":\"arn:aws:s3:::b/*\" } ] }\n",
            // URL-encoded, as IAM returns it
            "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Sid%22%3A%22A%22%2C%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%5B%22s3%3AGetObject%22%2C%22s3%3APutObject%22%5D%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Ab%2F*%22%7D%5D%7D",
        ];
        for doc in same {
            assert_eq!(tok(doc), tok(BASE), "{doc}");
        }
    }

    #[test]
    fn statement_order_does_not_matter() {
        let a = r#"{"Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*"},{"Effect":"Deny","Action":"c:d","Resource":"*"}]}"#;
        let b = r#"{"Statement":[{"Effect":"Deny","Action":"c:d","Resource":"*"},{"Effect":"Allow","Action":"a:b","Resource":"*"}]}"#;
        assert_eq!(tok(a), tok(b));
    }

    #[test]
    fn principals_and_conditions() {
        let star = r#"{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Principal":"*"}}"#;
        let aws_star = r#"{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"AWS":["*"]}}}"#;
        assert_eq!(tok(star), tok(aws_star));
        let id = r#"{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"AWS":"123456789012"}}}"#;
        let arn = r#"{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"AWS":"arn:aws:iam::123456789012:root"}}}"#;
        assert_eq!(tok(id), tok(arn));
        let c1 = r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}}"#;
        let c2 = r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"AWS:securetransport":[true]}}}}"#;
        assert_eq!(tok(c1), tok(c2));
    }

    #[test]
    fn different_documents_differ() {
        let differ = [
            BASE.replace("\"Sid\":\"A\"", "\"Sid\":\"B\""),
            BASE.replace("2012-10-17", "2008-10-17"),
            BASE.replace("Allow", "Deny"),
            BASE.replace("b/*", "B/*"),
            BASE.replace("\"s3:GetObject\",", ""),
        ];
        for doc in differ {
            assert_ne!(tok(&doc), tok(BASE), "{doc}");
        }
        let c1 = r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:username":"Bob"}}}}"#;
        let c2 = r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:username":"bob"}}}}"#;
        assert_ne!(tok(c1), tok(c2), "condition values keep their case");
    }

    #[test]
    fn malformed_documents_are_refused() {
        let cases = [
            (r#"{"Statement":[],"Statement":[]}"#, "$"),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"a:b","Action":"c:d"}}"#,
                "$",
            ),
            (
                r#"{"Statement":{"Effect":"Maybe","Action":"a:b"}}"#,
                "Statement[0].Effect",
            ),
            (r#"{"Statement":{"Action":"a:b"}}"#, "Statement[0].Effect"),
            (
                r#"{"Statement":{"Effect":"Allow","Action":[]}}"#,
                "Statement[0].Action",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":[1]}}"#,
                "Statement[0].Action[0]",
            ),
            (r#"{"Version":"2012-10-17"}"#, "Statement"),
            (r#"{"Statement":[]}"#, "Statement"),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"a:b","Colour":"red"}}"#,
                "Statement[0].Colour",
            ),
            (r#"{"Statement":"#, "$"),
            ("%7B%2", "$"),
            ("[]", "$"),
            ("", "$"),
        ];
        for (doc, path) in cases {
            let e = policy_token(doc).unwrap_err();
            assert_eq!(e.path, path, "{doc}: {e}");
        }
    }
}
