//! The core's entity table (`writelane_core::iam`) for the lane middleware of
//! `writelane.botocore`: which lanes an SDK call takes.

use pyo3::prelude::*;
use writelane_core::iam::{Access, Context, EntityError, ServiceTable, IAM};

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
/// does not know. `params` is the request as JSON text. Raises `UsageError` for a service
/// with no table or parameters that are not JSON, `EntityError` naming the parameter when
/// a write's entity cannot be determined.
#[pyfunction]
#[pyo3(signature = (service, operation, params, account=None, partition=None, caller_user=None))]
fn entity_keys(
    py: Python<'_>,
    service: &str,
    operation: &str,
    params: &str,
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
    let params: serde_json::Value = serde_json::from_str(params).map_err(|e| {
        raise(
            py,
            "UsageError",
            ("invalid_argument", format!("params: not JSON: {e}")),
        )
    })?;
    let ctx = Context {
        account: account.filter(|a| !a.is_empty()),
        partition: partition.filter(|p| !p.is_empty()).unwrap_or("aws"),
        caller_user,
    };
    match op.entities(&params, &ctx) {
        Ok(entities) => Ok(("write", entities.iter().map(|e| e.key()).collect())),
        Err(e) => Err(raise(py, "EntityError", entity_error_args(&e))),
    }
}

/// Register this module's functions on `writelane._native`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(entity_services, m)?)?;
    m.add_function(wrap_pyfunction!(entity_keys, m)?)?;
    Ok(())
}
