//! Reading CloudTrail records out of JSON text, whatever container they come in.
//!
//! One pass over the bytes with serde: each record is deserialized into [`RecordIn`], whose
//! strings borrow from the input where they can and whose unneeded fields are skipped, and
//! is handed to a [`Sink`] at once, so a file's records never exist together as JSON values.
//!
//! The containers, detected from the keys of each top-level value:
//! - `{"Records": [...]}`: a CloudTrail log file as delivered to S3;
//! - `{"Events": [{"CloudTrailEvent": "<record as a JSON string>"}, ...]}`: the output of
//!   `aws cloudtrail lookup-events`;
//! - `{"detail": {...}, ...}`: an EventBridge envelope;
//! - any other object: a record itself (JSON Lines, or one record per file);
//! - an array: each element is one of the above.
//!
//! Several top-level values may follow one another (JSON Lines, concatenated files).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One CloudTrail record: only the fields the analysis reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordIn<'a> {
    /// `1.08`, `1.09`, ...: only major version 1 is known.
    #[serde(borrow)]
    pub event_version: Option<Cow<'a, str>>,
    /// Completion time, `YYYY-MM-DDTHH:MM:SSZ`.
    #[serde(borrow)]
    pub event_time: Option<Cow<'a, str>>,
    /// The service, such as `iam.amazonaws.com`.
    #[serde(borrow)]
    pub event_source: Option<Cow<'a, str>>,
    /// The API action, such as `PutRolePolicy`.
    #[serde(borrow)]
    pub event_name: Option<Cow<'a, str>>,
    /// CloudTrail's unique id of the event (duplicates are delivered at times).
    #[serde(borrow, rename = "eventID")]
    pub event_id: Option<Cow<'a, str>>,
    /// The caller's address, or the service that called for it.
    #[serde(borrow, rename = "sourceIPAddress")]
    pub source_ip_address: Option<Cow<'a, str>>,
    /// The caller's user agent: tool, SDK, retry mode.
    #[serde(borrow)]
    pub user_agent: Option<Cow<'a, str>>,
    /// The error code of a failed call.
    #[serde(borrow)]
    pub error_code: Option<Cow<'a, str>>,
    /// `false` for writes.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub read_only: Option<bool>,
    /// The account the call was made in.
    #[serde(borrow)]
    pub recipient_account_id: Option<Cow<'a, str>>,
    /// Who called.
    #[serde(borrow)]
    pub user_identity: Option<UserIdentity<'a>>,
    /// The call's parameters, kept as text until the record is known to be a write.
    #[serde(borrow)]
    pub request_parameters: Option<&'a RawValue>,
    /// The resources named by the call (used for `--source` services).
    #[serde(borrow)]
    pub resources: Option<&'a RawValue>,
}

/// `userIdentity`: the caller.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity<'a> {
    /// `AssumedRole`, `IAMUser`, `Root`, `AWSService`, `FederatedUser`, ...
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    /// The caller's ARN (for an assumed role, the session's STS ARN).
    #[serde(borrow)]
    pub arn: Option<Cow<'a, str>>,
    /// The caller's account.
    #[serde(borrow)]
    pub account_id: Option<Cow<'a, str>>,
    /// An IAM user's name.
    #[serde(borrow)]
    pub user_name: Option<Cow<'a, str>>,
    /// The principal id (fallback identity).
    #[serde(borrow)]
    pub principal_id: Option<Cow<'a, str>>,
    /// The service that made the call on the caller's behalf (`cloudformation.amazonaws.com`).
    #[serde(borrow)]
    pub invoked_by: Option<Cow<'a, str>>,
    /// For temporary credentials: who issued them.
    #[serde(borrow)]
    pub session_context: Option<SessionContext<'a>>,
}

/// `userIdentity.sessionContext`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext<'a> {
    /// The role or user that issued the session.
    #[serde(borrow)]
    pub session_issuer: Option<SessionIssuer<'a>>,
}

/// `userIdentity.sessionContext.sessionIssuer`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer<'a> {
    /// `Role` or `IAMUser`.
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    /// The issuing role's ARN (with its path).
    #[serde(borrow)]
    pub arn: Option<Cow<'a, str>>,
    /// The issuing role's name.
    #[serde(borrow)]
    pub user_name: Option<Cow<'a, str>>,
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(match v {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            })
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_any(V)
}

/// Where records go as they are read.
pub trait Sink {
    /// One record.
    fn record(&mut self, record: &RecordIn<'_>);
    /// A value that should have been a record but could not be read as one.
    fn bad_record(&mut self, reason: String);
}

/// Read every record in `text` into `sink`. Fails on text that is not JSON, or not shaped
/// like any container of records; records handed over before the failure stay handed over.
pub fn read_records(text: &[u8], sink: &mut dyn Sink) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(text);
    loop {
        TopSeed { sink: &mut *sink }.deserialize(&mut de)?;
        // `end` succeeds only if nothing but whitespace is left; otherwise another value
        // follows (JSON Lines) and the next pass reads it or reports why it cannot.
        if de.end().is_ok() {
            return Ok(());
        }
    }
}

struct TopSeed<'s> {
    sink: &'s mut dyn Sink,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CloudTrail file, lookup-events output, an EventBridge event or a record")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(TopSeed {
                sink: &mut *self.sink,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut container = false;
        let mut fields: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "Records" => {
                    container = true;
                    map.next_value_seed(RecordList {
                        sink: &mut *self.sink,
                    })?;
                }
                "Events" => {
                    container = true;
                    map.next_value_seed(LookupEventList {
                        sink: &mut *self.sink,
                    })?;
                }
                "detail" => {
                    container = true;
                    map.next_value_seed(RecordSeed {
                        sink: &mut *self.sink,
                    })?;
                }
                _ => {
                    let raw: &'de RawValue = map.next_value()?;
                    if !container {
                        fields.push((key, raw));
                    }
                }
            }
        }
        if !container {
            let pairs = fields.into_iter().map(|(k, v)| (k.into_owned(), v));
            let de = de::value::MapDeserializer::<_, serde_json::Error>::new(pairs);
            match RecordIn::deserialize(de) {
                Ok(record) => self.sink.record(&record),
                Err(e) => self.sink.bad_record(format!("record not readable: {e}")),
            }
        }
        Ok(())
    }
}

struct RecordList<'s> {
    sink: &'s mut dyn Sink,
}

impl<'de> DeserializeSeed<'de> for RecordList<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordList<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of CloudTrail records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(RecordSeed {
                sink: &mut *self.sink,
            })?
            .is_some()
        {}
        Ok(())
    }
}

struct RecordSeed<'s> {
    sink: &'s mut dyn Sink,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let record = RecordIn::deserialize(d)?;
        self.sink.record(&record);
        Ok(())
    }
}

struct LookupEventList<'s> {
    sink: &'s mut dyn Sink,
}

impl<'de> DeserializeSeed<'de> for LookupEventList<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

/// One element of lookup-events' `Events`: the record is a JSON string inside it.
#[derive(Deserialize)]
struct LookupEvent<'a> {
    #[serde(borrow, rename = "CloudTrailEvent")]
    cloud_trail_event: Option<Cow<'a, str>>,
    #[serde(rename = "EventId", default)]
    _event_id: Option<IgnoredAny>,
}

impl<'de> Visitor<'de> for LookupEventList<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("lookup-events' list of events")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(event) = seq.next_element::<LookupEvent<'de>>()? {
            match event.cloud_trail_event {
                None => self
                    .sink
                    .bad_record("lookup-events entry without CloudTrailEvent".into()),
                Some(text) => match serde_json::from_str::<RecordIn<'_>>(&text) {
                    Ok(record) => self.sink.record(&record),
                    Err(e) => self
                        .sink
                        .bad_record(format!("CloudTrailEvent is not a record: {e}")),
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Names {
        names: Vec<String>,
        bad: Vec<String>,
    }
    impl Sink for Names {
        fn record(&mut self, r: &RecordIn<'_>) {
            self.names
                .push(r.event_name.as_deref().unwrap_or("?").to_string());
        }
        fn bad_record(&mut self, reason: String) {
            self.bad.push(reason);
        }
    }

    fn names(text: &str) -> Names {
        let mut n = Names::default();
        read_records(text.as_bytes(), &mut n).unwrap();
        n
    }

    #[test]
    fn every_container_yields_its_records() {
        assert_eq!(
            names(r#"{"Records":[{"eventName":"A"},{"eventName":"B"}]}"#).names,
            ["A", "B"]
        );
        assert_eq!(
            names(r#"{"Events":[{"EventId":"1","CloudTrailEvent":"{\"eventName\":\"C\"}"}],"NextToken":"x"}"#).names,
            ["C"]
        );
        assert_eq!(
            names(r#"{"version":"0","detail-type":"AWS API Call via CloudTrail","detail":{"eventName":"D"},"resources":[]}"#).names,
            ["D"]
        );
        assert_eq!(
            names("{\"eventName\":\"E\"}\n{\"eventName\":\"F\"}\n").names,
            ["E", "F"]
        );
        assert_eq!(
            names(r#"[{"eventName":"G"},{"detail":{"eventName":"H"}}]"#).names,
            ["G", "H"]
        );
    }

    #[test]
    fn escaped_strings_and_raw_parameters_are_read() {
        struct P(String);
        impl Sink for P {
            fn record(&mut self, r: &RecordIn<'_>) {
                self.0 = r.request_parameters.map(|p| p.get().to_string()).unwrap();
            }
            fn bad_record(&mut self, _: String) {}
        }
        let mut p = P(String::new());
        read_records(
            br#"{"eventName":"PutRolePolicy","requestParameters":{"roleName":"a\"b"}}"#,
            &mut p,
        )
        .unwrap();
        assert_eq!(p.0, r#"{"roleName":"a\"b"}"#);
    }

    #[test]
    fn not_json_and_wrong_shapes_fail() {
        let mut n = Names::default();
        assert!(read_records(b"hello", &mut n).is_err());
        assert!(read_records(b"{\"Records\":[{\"eventName\":\"A\"}", &mut n).is_err());
        assert!(read_records(b"42", &mut n).is_err());
        assert_eq!(n.names, ["A"]);
        let n = names(r#"{"eventName":{"nested":1}}"#);
        assert_eq!(n.bad.len(), 1);
        assert!(n.bad[0].contains("record not readable"), "{:?}", n.bad);
    }
}
