//! Error classification: what the host observed, and which class the policy puts it in.

use serde::{Deserialize, Deserializer, Serialize};

/// The class of a failed call, which decides whether and how it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Another writer changed the entity at the same time.
    Conflict,
    /// The service asked callers to slow down.
    Throttle,
    /// A failure a retry usually cures.
    Transient,
    /// The reply was lost after the request was sent.
    Unknown,
    /// Never retried.
    Fatal,
}

impl ErrorClass {
    /// The class name as it appears in JSON and telemetry.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Conflict => "conflict",
            ErrorClass::Throttle => "throttle",
            ErrorClass::Transient => "transient",
            ErrorClass::Unknown => "unknown",
            ErrorClass::Fatal => "fatal",
        }
    }
}

/// What the host observed when a call failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// The error code exactly as the service sent it (`ConcurrentModification`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The HTTP status, if there was a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The service's retry-after hint in milliseconds (`x-amz-retry-after`). In JSON a
    /// number or the header text; text that is not a whole number of milliseconds is
    /// ignored, as the AWS SDKs ignore it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "retry_after_hint"
    )]
    pub retry_after_ms: Option<u64>,
    /// The request was sent and no reply came back (a read timeout, a dropped
    /// connection): the write may or may not have landed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outcome_unknown: bool,
    /// The change token the write would have produced, if the host knows it. After an
    /// unknown outcome, a read-back that finds this token proves the write landed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_token: Option<String>,
}

impl Failure {
    /// A failure with an error code.
    pub fn code(code: impl Into<String>) -> Self {
        Failure {
            code: Some(code.into()),
            ..Failure::default()
        }
    }

    /// Set the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Set the retry-after hint from header text; text that is not a whole number of
    /// milliseconds is ignored.
    pub fn with_retry_after_header(mut self, header: &str) -> Self {
        self.retry_after_ms = parse_retry_after(header);
        self
    }

    /// A reply lost after the request was sent.
    pub fn unknown_outcome() -> Self {
        Failure {
            outcome_unknown: true,
            ..Failure::default()
        }
    }
}

/// Parse an `x-amz-retry-after` header: a whole number of milliseconds, surrounding
/// whitespace allowed. Anything else is `None`.
pub fn parse_retry_after(header: &str) -> Option<u64> {
    let t = header.trim();
    if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

fn retry_after_hint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Hint {
        Millis(u64),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<Hint>::deserialize(d)? {
        Some(Hint::Millis(ms)) => Some(ms),
        Some(Hint::Text(text)) => parse_retry_after(&text),
        Some(Hint::Other(_)) | None => None,
    })
}

/// Which error codes and HTTP statuses belong to which class. Codes match as given and
/// with or without an `Exception` suffix; an exact match always wins, which is how IAM's
/// `LimitExceeded` (fatal) and `LimitExceededException` (throttle) stay apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeTable {
    /// Codes of the conflict class.
    pub conflict: Vec<String>,
    /// Codes of the throttle class.
    pub throttle: Vec<String>,
    /// Codes of the transient class.
    pub transient: Vec<String>,
    /// Codes that are fatal even though a suffix variant is listed elsewhere.
    pub fatal: Vec<String>,
    /// HTTP statuses that mean throttling when no code matched.
    pub throttle_statuses: Vec<u16>,
    /// HTTP statuses that mean a transient failure when no code matched.
    pub transient_statuses: Vec<u16>,
}

fn matches_code(entry: &str, code: &str) -> bool {
    const SUFFIX: &str = "Exception";
    entry == code
        || entry.strip_suffix(SUFFIX) == Some(code)
        || code.strip_suffix(SUFFIX) == Some(entry)
}

/// Classify a failure under a code table. An unknown outcome is its own class; then an
/// exact code match in any list wins, then a match with or without the `Exception`
/// suffix, then the HTTP status; anything else is fatal.
pub fn classify(table: &CodeTable, failure: &Failure) -> ErrorClass {
    if failure.outcome_unknown {
        return ErrorClass::Unknown;
    }
    if let Some(code) = failure.code.as_deref() {
        let lists = [
            (&table.fatal, ErrorClass::Fatal),
            (&table.conflict, ErrorClass::Conflict),
            (&table.throttle, ErrorClass::Throttle),
            (&table.transient, ErrorClass::Transient),
        ];
        for (list, class) in lists {
            if list.iter().any(|e| e == code) {
                return class;
            }
        }
        for (list, class) in lists {
            if list.iter().any(|e| matches_code(e, code)) {
                return class;
            }
        }
    }
    if let Some(status) = failure.status {
        if table.throttle_statuses.contains(&status) {
            return ErrorClass::Throttle;
        }
        if table.transient_statuses.contains(&status) {
            return ErrorClass::Transient;
        }
    }
    ErrorClass::Fatal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;

    fn class(f: Failure) -> ErrorClass {
        classify(&Policy::default().codes, &f)
    }

    #[test]
    fn design_table() {
        use ErrorClass::*;
        assert_eq!(
            class(Failure::code("ConcurrentModification").with_status(409)),
            Conflict
        );
        assert_eq!(
            class(Failure::code("ConcurrentModificationException")),
            Conflict
        );
        assert_eq!(
            class(Failure::code("EntityTemporarilyUnmodifiable").with_status(409)),
            Conflict
        );
        assert_eq!(
            class(Failure::code("LimitExceeded").with_status(409)),
            Fatal
        );
        assert_eq!(class(Failure::code("LimitExceededException")), Throttle);
        assert_eq!(
            class(Failure::code("Throttling").with_status(400)),
            Throttle
        );
        assert_eq!(class(Failure::code("SlowDownException")), Throttle);
        assert_eq!(
            class(Failure::code("InternalFailure").with_status(500)),
            Transient
        );
        assert_eq!(class(Failure::code("AccessDenied").with_status(403)), Fatal);
        assert_eq!(class(Failure::code("NoSuchEntity").with_status(404)), Fatal);
        assert_eq!(class(Failure::default().with_status(404)), Fatal);
        assert_eq!(class(Failure::default().with_status(429)), Throttle);
        assert_eq!(class(Failure::default().with_status(503)), Transient);
        assert_eq!(class(Failure::code("Whatever").with_status(502)), Transient);
        assert_eq!(class(Failure::unknown_outcome()), Unknown);
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after("1500"), Some(1500));
        assert_eq!(parse_retry_after(" 20 "), Some(20));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
        assert_eq!(parse_retry_after("1.5"), None);
        assert_eq!(parse_retry_after(""), None);
        let f: Failure = serde_json::from_str(r#"{"retry_after_ms":"abc"}"#).unwrap();
        assert_eq!(f.retry_after_ms, None);
        let f: Failure = serde_json::from_str(r#"{"retry_after_ms":"250"}"#).unwrap();
        assert_eq!(f.retry_after_ms, Some(250));
    }
}
