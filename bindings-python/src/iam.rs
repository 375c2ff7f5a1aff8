//! The core's entity table (`writelane_core::iam`) for the lane middleware of
//! `writelane.botocore`: which lanes an SDK call takes.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use writelane_core::iam::{
    Access, Context, EntityError, Operation, ServiceTable, Source, Value, IAM,
};

use crate::raise;

/// The services that have an entity table, by SDK service id (`iam`).
pub(crate) const SERVICES: &[(&str, &ServiceTable)] = &[("iam", &IAM)];

fn table(service: &str) -> Option<&'static ServiceTable> {
    SERVICES
        .iter()
        .find(|(name, _)| *name == service)
        .map(|(_, t)| *t)
}

/// `(operation, parameter, reason)` of an entity error; `parameter` is the request
/// parameter in the API's spelling, `params` for the request as a whole, `caller` for the
/// calling user.
fn entity_error_args(e: &EntityError) -> (&'static str, &'static str, String) {
    let (operation, parameter) = match *e {
        EntityError::NotAnObject { operation } => (operation, "params"),
        EntityError::Missing {
            operation,
            parameter,
        }
        | EntityError::NotText {
            operation,
            parameter,
        }
        | EntityError::BadArn {
            operation,
            parameter,
            ..
        }
        | EntityError::TooLong {
            operation,
            parameter,
            ..
        } => (operation, parameter),
        EntityError::CallerUnknown { operation } => (operation, "caller"),
    };
    (operation, parameter, e.to_string())
}

/// The services with an entity table.
#[pyfunction]
fn entity_services() -> Vec<&'static str> {
    SERVICES.iter().map(|(name, _)| *name).collect()
}

/// Which lanes a call takes: `("write", keys)` with the entity keys sorted (the order
/// lanes are taken in), `("read", [])`, or `("unknown", [])` for an operation the table
/// does not know. `params` is the request: a dict (only the parameters the operation's
/// entry names are looked at, without converting the rest) or JSON text. Raises
/// `UsageError` for a service with no table or parameters that are neither, `EntityError`
/// naming the parameter when a write's entity cannot be determined.
#[pyfunction]
#[pyo3(signature = (service, operation, params, account=None, partition=None, caller_user=None))]
fn entity_keys(
    py: Python<'_>,
    service: &str,
    operation: &str,
    params: &Bound<'_, PyAny>,
    account: Option<&str>,
    partition: Option<&str>,
    caller_user: Option<&str>,
) -> PyResult<(&'static str, Vec<String>)> {
    let Some(table) = table(service) else {
        return Err(raise(
            py,
            "UsageError",
            (
                "invalid_argument",
                format!("service: no entity table for {service:?}"),
            ),
        ));
    };
    let op = match table.access(operation) {
        Access::Read => return Ok(("read", Vec::new())),
        Access::Unknown => return Ok(("unknown", Vec::new())),
        Access::Write(op) => op,
    };
    let ctx = Context {
        account: account.filter(|a| !a.is_empty()),
        partition: partition.filter(|p| !p.is_empty()).unwrap_or("aws"),
        caller_user,
    };
    let result = if let Ok(dict) = params.downcast::<PyDict>() {
        entities_of_dict(op, dict, &ctx)?
    } else if let Ok(text) = params.downcast::<PyString>() {
        let value: serde_json::Value = serde_json::from_str(&text.to_cow()?).map_err(|e| {
            raise(
                py,
                "UsageError",
                ("invalid_argument", format!("params: not JSON: {e}")),
            )
        })?;
        op.entities(&value, &ctx)
    } else {
        return Err(raise(
            py,
            "UsageError",
            (
                "invalid_argument",
                "params: expected a dict or JSON text".to_owned(),
            ),
        ));
    };
    match result {
        Ok(entities) => Ok(("write", entities.iter().map(|e| e.key()).collect())),
        Err(e) => Err(raise(py, "EntityError", entity_error_args(&e))),
    }
}

/// The entities of a request given as a dict: only the parameters the entry names are
/// read (`None` counts as absent, a value that is not a `str` as not text).
fn entities_of_dict(
    op: &Operation,
    dict: &Bound<'_, PyDict>,
    ctx: &Context<'_>,
) -> PyResult<Result<Vec<writelane_core::iam::Entity>, EntityError>> {
    let mut found: Vec<(&'static str, Option<String>)> = Vec::new();
    for slot in op.slots {
        if let Source::Param { upper, lower, .. } = slot.source {
            for name in [upper, lower] {
                match dict.get_item(name)? {
                    Some(v) if !v.is_none() => {
                        let text = match v.downcast::<PyString>() {
                            Ok(s) => Some(s.to_cow()?.into_owned()),
                            Err(_) => None,
                        };
                        found.push((name, text));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(op.entities_by(
        |name| match found.iter().find(|(n, _)| *n == name) {
            None => Value::Absent,
            Some((_, Some(text))) => Value::Text(text),
            Some((_, None)) => Value::NotText,
        },
        ctx,
    ))
}

/// Register this module's functions on `writelane._native`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(entity_services, m)?)?;
    m.add_function(wrap_pyfunction!(entity_keys, m)?)?;
    Ok(())
}
