//! The telemetry event schema, generated from the core's `Event` type so that the Python
//! and TypeScript event types can be checked against it instead of copied by hand.
//!
//! Each variant is serialised twice, once with every optional field set and once with
//! none, and the JSON types seen give the schema; a field that is `null` in the second is
//! nullable. The `match` in [`sample`] is exhaustive, so a new event variant fails to
//! compile until it is given samples here.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};
use writelane_core::{BudgetScope, ErrorClass, Event, GiveUpReason, OpId};

/// Schema format version.
pub const SCHEMA_VERSION: u32 = 1;

/// Two samples of the variant `like` is: every optional field set, and none set.
fn sample(like: &Event) -> (Event, Event) {
    let (op, entity, at) = (OpId(7), Arc::<str>::from("role/app"), 1_000);
    let e = || entity.clone();
    match like {
        Event::Submitted { .. } => {
            let v = Event::Submitted {
                op,
                entity: e(),
                at,
            };
            (v.clone(), v)
        }
        Event::LaneWaitStarted { .. } => {
            let v = Event::LaneWaitStarted {
                op,
                entity: e(),
                at,
                ahead: 2,
            };
            (v.clone(), v)
        }
        Event::LaneWaitEnded { .. } => {
            let v = Event::LaneWaitEnded {
                op,
                entity: e(),
                at,
                waited_ms: 30,
            };
            (v.clone(), v)
        }
        Event::Conflict { .. } => {
            let v = |code: Option<&str>| Event::Conflict {
                op,
                entity: e(),
                at,
                attempt: 1,
                code: code.map(str::to_string),
            };
            (v(Some("ConcurrentModification")), v(None))
        }
        Event::RetryScheduled { .. } => {
            let v = Event::RetryScheduled {
                op,
                entity: e(),
                at,
                failures: 1,
                delay_ms: 40,
                class: ErrorClass::Conflict,
                cost: 5,
            };
            (v.clone(), v)
        }
        Event::BudgetRefused { .. } => {
            let v = Event::BudgetRefused {
                op,
                entity: e(),
                at,
                scope: BudgetScope::Entity,
                needed: 5,
                available: 1,
            };
            (v.clone(), v)
        }
        Event::StaleRevision { .. } => {
            let v = |t: Option<&str>| Event::StaleRevision {
                op,
                entity: e(),
                at,
                expected: t.map(str::to_string),
                found: t.map(str::to_string),
            };
            (v(Some("v1")), v(None))
        }
        Event::Committed { .. } => {
            let v = Event::Committed {
                op,
                entity: e(),
                at,
                attempts: 1,
            };
            (v.clone(), v)
        }
        Event::GaveUp { .. } => {
            let v = Event::GaveUp {
                op,
                entity: e(),
                at,
                attempts: 3,
                reason: "attempts_exhausted".into(),
            };
            (v.clone(), v)
        }
        Event::SpikeStarted { .. } => {
            let v = Event::SpikeStarted {
                entity: e(),
                at,
                conflicts: 5,
                until: 6_000,
            };
            (v.clone(), v)
        }
        Event::SpikeEnded { .. } => {
            let v = Event::SpikeEnded { entity: e(), at };
            (v.clone(), v)
        }
        Event::LeaseAcquired { .. } => {
            let v = Event::LeaseAcquired {
                op,
                entity: e(),
                at,
                epoch: 4,
                takeover: false,
            };
            (v.clone(), v)
        }
        Event::LeaseLost { .. } => {
            let v = Event::LeaseLost {
                op,
                entity: e(),
                at,
            };
            (v.clone(), v)
        }
    }
}

/// One instance of every variant, in declaration order (the list [`sample`] completes).
fn variants() -> Vec<Event> {
    let (op, entity, at) = (OpId(0), Arc::<str>::from("x"), 0);
    let e = || entity.clone();
    vec![
        Event::Submitted {
            op,
            entity: e(),
            at,
        },
        Event::LaneWaitStarted {
            op,
            entity: e(),
            at,
            ahead: 0,
        },
        Event::LaneWaitEnded {
            op,
            entity: e(),
            at,
            waited_ms: 0,
        },
        Event::Conflict {
            op,
            entity: e(),
            at,
            attempt: 0,
            code: None,
        },
        Event::RetryScheduled {
            op,
            entity: e(),
            at,
            failures: 0,
            delay_ms: 0,
            class: ErrorClass::Conflict,
            cost: 0,
        },
        Event::BudgetRefused {
            op,
            entity: e(),
            at,
            scope: BudgetScope::Engine,
            needed: 0,
            available: 0,
        },
        Event::StaleRevision {
            op,
            entity: e(),
            at,
            expected: None,
            found: None,
        },
        Event::Committed {
            op,
            entity: e(),
            at,
            attempts: 0,
        },
        Event::GaveUp {
            op,
            entity: e(),
            at,
            attempts: 0,
            reason: String::new(),
        },
        Event::SpikeStarted {
            entity: e(),
            at,
            conflicts: 0,
            until: 0,
        },
        Event::SpikeEnded { entity: e(), at },
        Event::LeaseAcquired {
            op,
            entity: e(),
            at,
            epoch: 0,
            takeover: false,
        },
        Event::LeaseLost {
            op,
            entity: e(),
            at,
        },
    ]
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The values a string field may take, where the core fixes them.
fn enum_values(field: &str) -> Option<Vec<String>> {
    let names = |vs: Vec<Value>| {
        vs.into_iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    match field {
        "class" => Some(names(
            [
                ErrorClass::Conflict,
                ErrorClass::Throttle,
                ErrorClass::Transient,
                ErrorClass::Unknown,
                ErrorClass::Fatal,
            ]
            .iter()
            .map(|c| json!(c))
            .collect(),
        )),
        "scope" => Some(names(
            [BudgetScope::Engine, BudgetScope::Entity]
                .iter()
                .map(|s| json!(s))
                .collect(),
        )),
        "reason" => Some(
            [
                GiveUpReason::AttemptsExhausted {
                    class: ErrorClass::Conflict,
                    code: None,
                },
                GiveUpReason::BudgetExhausted {
                    class: ErrorClass::Conflict,
                    scope: BudgetScope::Engine,
                    code: None,
                },
                GiveUpReason::DeadlineExceeded { code: None },
                GiveUpReason::Fatal {
                    code: None,
                    http_status: None,
                },
                GiveUpReason::StaleRevision {
                    expected: None,
                    found: None,
                },
                GiveUpReason::Cancelled,
                GiveUpReason::LeaseLost,
                GiveUpReason::LockUnavailable,
            ]
            .iter()
            .map(|r| r.name().to_string())
            .collect(),
        ),
        _ => None,
    }
}

/// The schema document: per event type, its fields with JSON type and nullability.
pub fn events() -> Value {
    let mut events = BTreeMap::new();
    for like in variants() {
        let (full, empty) = sample(&like);
        let (full, empty) = (json!(full), json!(empty));
        let name = full["type"]
            .as_str()
            .expect("events are tagged")
            .to_string();
        let mut fields = BTreeMap::new();
        for (field, value) in full.as_object().expect("events are objects") {
            if field == "type" {
                continue;
            }
            let mut spec = json!({
                "type": json_type(value),
                "nullable": empty.get(field).is_some_and(Value::is_null),
            });
            if let Some(values) = enum_values(field) {
                spec["enum"] = json!(values);
            }
            fields.insert(field.clone(), spec);
        }
        events.insert(name, json!({"fields": fields}));
    }
    json!({
        "description": "The telemetry events of writelane-core (writelane_core::Event) as JSON: each event is an object whose `type` is one of the keys of `events`, with exactly the listed fields. `type` is the JSON type (`integer` values are whole milliseconds or counts below 2^53), `nullable` says the field may be null, `enum` lists the values a string may take. Generated by `writelane vectors`; bindings check their event types against it.",
        "version": SCHEMA_VERSION,
        "events": events,
    })
}

/// Write the schema to `path`.
pub fn write_events(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, render())
}

/// The schema file's text.
pub fn render() -> String {
    serde_json::to_string_pretty(&events()).expect("the schema serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant's place in [`variants`]; exhaustive, so a new variant must be placed.
    fn index(e: &Event) -> usize {
        match e {
            Event::Submitted { .. } => 0,
            Event::LaneWaitStarted { .. } => 1,
            Event::LaneWaitEnded { .. } => 2,
            Event::Conflict { .. } => 3,
            Event::RetryScheduled { .. } => 4,
            Event::BudgetRefused { .. } => 5,
            Event::StaleRevision { .. } => 6,
            Event::Committed { .. } => 7,
            Event::GaveUp { .. } => 8,
            Event::SpikeStarted { .. } => 9,
            Event::SpikeEnded { .. } => 10,
            Event::LeaseAcquired { .. } => 11,
            Event::LeaseLost { .. } => 12,
        }
    }

    #[test]
    fn every_variant_is_in_the_schema() {
        let all = variants();
        for (i, e) in all.iter().enumerate() {
            assert_eq!(index(e), i);
        }
        assert_eq!(all.len(), 13);
        assert_eq!(events()["events"].as_object().unwrap().len(), all.len());
    }

    #[test]
    fn optional_fields_are_nullable_and_required_ones_not() {
        let s = events();
        assert_eq!(s["events"]["conflict"]["fields"]["code"]["nullable"], true);
        assert_eq!(
            s["events"]["conflict"]["fields"]["attempt"]["nullable"],
            false
        );
        assert_eq!(
            s["events"]["conflict"]["fields"]["attempt"]["type"],
            "integer"
        );
        assert_eq!(
            s["events"]["lease_acquired"]["fields"]["takeover"]["type"],
            "boolean"
        );
        assert!(s["events"]["gave_up"]["fields"]["reason"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("lock_unavailable")));
    }
}
