//! `writelane._native`: the pyo3 extension under the `writelane` Python package.
//!
//! This crate only converts between Python values and the core's types; every decision
//! stays in `writelane-core`. Structured values (policies, inputs, stats, events, outcomes)
//! cross the boundary as the core's JSON form, which the pure-Python layer turns into
//! Python objects. Errors are raised as the public exception classes of
//! `writelane._errors`, never as `RuntimeError` or a panic.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod iam;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use writelane_core as core;
use writelane_core::iam::docs;
use writelane_core::lease::{self, LeaseRecord, StoreOp, StoreReply};
use writelane_core::{
    Action, ApplyResult, Command, Engine, Input, OpId, Outcome, Policy, SubmitOptions,
    UpdateOptions,
};

/// A command in the tuple form the Python driver reads: `(kind, number, text, fence)`.
///
/// `kind` 0 = read; 1 = write (`number` = attempt, `text` = base token, `fence` = the
/// lease epoch with shared lanes); 2 = finish, committed (`number` = attempts, `text` =
/// token); 3 = finish, gave up (`number` = attempts, `text` = the outcome as JSON);
/// 5 = store (`text` = the store operation as JSON); 6 = apply a batch's changes (`text`
/// = the ops whose changes to apply, in order, as a JSON list).
type Cmd = (u8, u64, Option<String>, Option<u64>);

/// The command kind of a lease-store operation.
const STORE: u8 = 5;

/// The step kind of a batch's `Apply`.
const APPLY: u8 = 6;

/// Lock an engine. Rule: no Python code may run while a lock is held (no exception is
/// built, no Python object allocated), or a thread waiting for the lock while holding the
/// GIL could deadlock with the holder; errors are converted after the guard is dropped.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code path panics while holding the lock; recover the data if one ever did.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Build an exception of `writelane._errors.<name>` with `args`.
fn raise<'py, A>(py: Python<'py>, name: &str, args: A) -> PyErr
where
    A: pyo3::call::PyCallArgs<'py>,
{
    let built = py
        .import("writelane._errors")
        .and_then(|m| m.getattr(name))
        .and_then(|cls| cls.call1(args));
    match built {
        Ok(value) => PyErr::from_value(value),
        Err(err) => err,
    }
}

fn policy_error(py: Python<'_>, e: &core::PolicyError) -> PyErr {
    raise(py, "PolicyError", (e.path.clone(), e.rule.clone()))
}

fn usage_error(py: Python<'_>, e: &core::UsageError) -> PyErr {
    raise(py, "UsageError", (e.kind(), e.to_string()))
}

fn bad_input(py: Python<'_>, what: &str, e: &serde_json::Error) -> PyErr {
    raise(
        py,
        "UsageError",
        (
            "invalid_input",
            format!("{what} does not match the schema: {e}"),
        ),
    )
}

fn parse_policy(py: Python<'_>, text: &str) -> PyResult<Policy> {
    Policy::from_json(text).map_err(|e| policy_error(py, &e))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // The core's types always serialise (plain data, string keys).
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

fn cmd_tuple(cmd: Command) -> Cmd {
    match cmd {
        Command::Read { .. } => (0, 0, None, None),
        Command::Write {
            attempt,
            base_token,
            fence,
            ..
        } => (1, u64::from(attempt), base_token, fence),
        Command::Finish { outcome, .. } => match outcome {
            Outcome::Committed { token, attempts } => (2, u64::from(attempts), token, None),
            gave_up @ Outcome::GaveUp { attempts, .. } => {
                (3, u64::from(attempts), Some(to_json(&gave_up)), None)
            }
        },
        Command::Store { operation, .. } => (STORE, 0, Some(to_json(&operation)), None),
    }
}

fn action_tuple(action: Action) -> Cmd {
    match action {
        Action::Command(cmd) => cmd_tuple(cmd),
        Action::Apply(apply) => (APPLY, 0, Some(to_json(&apply.ops)), None),
    }
}

/// An engine under `policy`, writing lease records as `owner` when one is given. With
/// `store` (the host carries out store commands) the policy is the core's
/// [`Policy::for_store`]: lanes are shared whatever the policy said.
fn build_engine(
    py: Python<'_>,
    policy: &str,
    seed: u64,
    owner: Option<&str>,
    store: bool,
) -> PyResult<Engine> {
    let mut policy = parse_policy(py, policy)?;
    if store {
        policy = policy.for_store();
    }
    match owner {
        None => Ok(Engine::new(policy, seed)),
        Some(owner) => Engine::with_owner(policy, seed, owner).map_err(|e| usage_error(py, &e)),
    }
}

/// Parse a store reply given as the core's JSON form.
fn parse_reply(py: Python<'_>, reply: &str) -> PyResult<StoreReply> {
    serde_json::from_str(reply).map_err(|e| bad_input(py, "reply", &e))
}

fn record_error(py: Python<'_>, e: &lease::RecordError) -> PyErr {
    raise(py, "RecordError", (e.field.clone(), e.rule.clone()))
}

/// A lease record as a Python dict of the fields of the core's JSON form, in its order: the
/// six version 1 fields (`owner`, `epoch`, `rvn`, `lease_ms`, `committed_token`, `holder`)
/// and, in a version 2 record, `version` first and those of `beat`, `next_ticket`,
/// `hold_ms` and `queue` (a list of `{owner, ticket, beat}` dicts) the core writes (it
/// leaves out zeros and an empty queue). Built from `LeaseRecord::to_json` by Python's
/// `json`, so a dict written back is the record the core wrote, field for field.
fn record_dict<'py>(py: Python<'py>, record: &LeaseRecord) -> PyResult<Bound<'py, PyDict>> {
    let value = py
        .import("json")?
        .call_method1("loads", (record.to_json(),))?;
    Ok(value.downcast_into::<PyDict>()?)
}

/// The bytes of a `bytes` or `str` argument.
fn bytes_of(py: Python<'_>, what: &str, data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = data.downcast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = data.downcast::<PyString>() {
        return Ok(s.to_cow()?.as_bytes().to_vec());
    }
    let found = data.get_type().name()?.to_string();
    Err(raise(
        py,
        "UsageError",
        (
            "invalid_argument",
            format!("{what}: expected bytes or str, found {found}"),
        ),
    ))
}

/// Parse and validate a lease record as a store holds it (JSON text or bytes): the core's
/// `LeaseRecord::from_json`. Returns the record as a dict; raises `RecordError` naming the
/// field and the rule.
#[pyfunction]
fn parse_record<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let parsed = LeaseRecord::from_json(&bytes_of(py, "data", data)?);
    match parsed {
        Ok(record) => record_dict(py, &record),
        Err(e) => Err(record_error(py, &e)),
    }
}

/// A store operation in the core's JSON form, parsed and its record validated by the core:
/// `(op, key, expected_rvn, record)`, with `record` a dict (`None` for `get`). Raises
/// `RecordError` for a bad record and `UsageError` for anything else malformed.
/// A store operation as `store_op` returns it: `(op, key, expected_rvn, record)`.
type StoreOpTuple<'py> = (
    &'static str,
    String,
    Option<u64>,
    Option<Bound<'py, PyDict>>,
);

#[pyfunction]
fn store_op<'py>(py: Python<'py>, text: &str) -> PyResult<StoreOpTuple<'py>> {
    let op: StoreOp = serde_json::from_str(text).map_err(|e| bad_input(py, "operation", &e))?;
    let (kind, key, rvn, record) = match op {
        StoreOp::Get { key } => ("get", key, None, None),
        StoreOp::PutIfAbsent { key, record } => ("put_if_absent", key, None, Some(record)),
        StoreOp::CompareAndSwap {
            key,
            expected_rvn,
            record,
        } => ("compare_and_swap", key, Some(expected_rvn), Some(record)),
    };
    let record = match record {
        None => None,
        Some(r) => {
            if let Err(e) = r.validate() {
                return Err(record_error(py, &e));
            }
            Some(record_dict(py, &r)?)
        }
    };
    Ok((kind, key, rvn, record))
}

/// The owner id of this process in lease records, formatted by the core from the host
/// name, the process id and 64 random bits: `HOST:PID:16-hex-digits`.
#[pyfunction]
fn owner_id(host: &str, pid: u32, entropy: u64) -> String {
    lease::owner_id(host, pid, entropy)
}

/// Check an owner id given by the user (the core's rule); raises `UsageError`
/// (`invalid_owner`).
#[pyfunction]
fn check_owner(py: Python<'_>, owner: &str) -> PyResult<()> {
    lease::check_owner(owner).map_err(|e| usage_error(py, &e))
}

/// The policy a lane with a lease store runs (`Policy::for_store`), as JSON.
#[pyfunction]
fn policy_for_store(py: Python<'_>, text: &str) -> PyResult<String> {
    Ok(parse_policy(py, text)?.for_store().to_json())
}

/// Plan a force-release of `key` from the record a `get` found (JSON, or `None`):
/// `(True, result JSON)` when nothing is to be written, else `(False, the
/// compare-and-swap operation as JSON)`.
#[pyfunction]
#[pyo3(signature = (key, found, expected_rvn, entropy))]
fn plan_force_release(
    py: Python<'_>,
    key: &str,
    found: Option<&str>,
    expected_rvn: Option<u64>,
    entropy: u64,
) -> PyResult<(bool, String)> {
    let found = match found {
        None => None,
        Some(text) => {
            Some(LeaseRecord::from_json(text.as_bytes()).map_err(|e| record_error(py, &e))?)
        }
    };
    Ok(
        match lease::plan_force_release(key, found, expected_rvn, entropy) {
            lease::ForceReleasePlan::Done(result) => (true, to_json(&result)),
            lease::ForceReleasePlan::Swap(op) => (false, to_json(&op)),
        },
    )
}

/// The result of a force-release's compare-and-swap (`swap` as planned, `reply` the
/// store's reply, both JSON): the result as JSON, or `None` when the outcome is unknown.
#[pyfunction]
fn finish_force_release(py: Python<'_>, swap: &str, reply: &str) -> PyResult<Option<String>> {
    let swap: StoreOp = serde_json::from_str(swap).map_err(|e| bad_input(py, "swap", &e))?;
    let reply = parse_reply(py, reply)?;
    Ok(lease::finish_force_release(&swap, reply).map(|r| to_json(&r)))
}

/// The effective policy for JSON text (a preset name as a JSON string, or an object of
/// overrides), as pretty JSON. Raises `PolicyError` naming the field.
#[pyfunction]
fn policy_json(py: Python<'_>, text: &str) -> PyResult<String> {
    Ok(parse_policy(py, text)?.to_json())
}

/// The canonical change token of an IAM policy document (`c1:sha256:...`). Raises
/// `TokenError` naming the offending path.
#[pyfunction]
fn policy_token(py: Python<'_>, document: &str) -> PyResult<String> {
    core::policy_token(document).map_err(|e| raise(py, "TokenError", (e.path, e.rule)))
}

/// The canonical form of an IAM policy document that `policy_token` hashes.
#[pyfunction]
fn canonical_policy(py: Python<'_>, document: &str) -> PyResult<String> {
    core::canonical_policy(document).map_err(|e| raise(py, "TokenError", (e.path, e.rule)))
}

/// Parse an `x-amz-retry-after` header (whole milliseconds); anything else is `None`.
#[pyfunction]
fn parse_retry_after(text: &str) -> Option<u64> {
    core::parse_retry_after(text)
}

/// Parse a JSON argument of an IAM-shape helper; raises `DocumentError` naming it.
fn doc_arg(py: Python<'_>, name: &str, text: &str) -> PyResult<serde_json::Value> {
    serde_json::from_str(text)
        .map_err(|e| raise(py, "DocumentError", (name, format!("not JSON: {e}"))))
}

fn doc_result(
    py: Python<'_>,
    result: Result<serde_json::Value, docs::DocError>,
) -> PyResult<String> {
    match result {
        Ok(value) => Ok(to_json(&value)),
        Err(e) => Err(raise(py, "DocumentError", (e.path, e.reason))),
    }
}

/// `writelane_core::iam::docs::put_statement` over JSON text: append `statement` to the
/// policy document `doc` (`null`: none yet), or replace the one with its `Sid`.
#[pyfunction]
fn iam_put_statement(py: Python<'_>, doc: &str, statement: &str) -> PyResult<String> {
    let (doc, statement) = (
        doc_arg(py, "doc", doc)?,
        doc_arg(py, "statement", statement)?,
    );
    doc_result(py, docs::put_statement(&doc, &statement))
}

/// `writelane_core::iam::docs::remove_statement` over JSON text.
#[pyfunction]
fn iam_remove_statement(py: Python<'_>, doc: &str, sid: &str) -> PyResult<String> {
    let doc = doc_arg(py, "doc", doc)?;
    doc_result(py, docs::remove_statement(&doc, sid))
}

/// `writelane_core::iam::docs::add_trust_principal` over JSON text.
#[pyfunction]
fn iam_add_trust_principal(
    py: Python<'_>,
    doc: &str,
    sid: &str,
    kind: &str,
    principal: &str,
) -> PyResult<String> {
    let doc = doc_arg(py, "doc", doc)?;
    doc_result(py, docs::add_trust_principal(&doc, sid, kind, principal))
}

/// `writelane_core::iam::docs::set_tags` over JSON text: `set` is `(key, value)` pairs.
#[pyfunction]
fn iam_set_tags(py: Python<'_>, tags: &str, set: Vec<(String, String)>) -> PyResult<String> {
    let tags = doc_arg(py, "tags", tags)?;
    let pairs: Vec<(&str, &str)> = set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    doc_result(py, docs::set_tags(&tags, &pairs))
}

/// The sans-IO engine, one call at a time; values cross as the core's JSON text.
#[pyclass(module = "writelane._native", frozen)]
struct NativeEngine {
    engine: Mutex<Engine>,
}

#[pymethods]
impl NativeEngine {
    /// An engine under the policy given as JSON text, with a jitter seed, writing lease
    /// records as `owner` (needed by shared lanes).
    #[new]
    #[pyo3(signature = (policy, seed, owner=None))]
    fn new(py: Python<'_>, policy: &str, seed: u64, owner: Option<&str>) -> PyResult<Self> {
        Ok(NativeEngine {
            engine: Mutex::new(build_engine(py, policy, seed, owner, false)?),
        })
    }

    /// Start one logical write; returns its op id. `no_read`: the writer has no read
    /// function (the engine never commands a read for it).
    #[pyo3(signature = (entity, now, expected=None, deadline_ms=None, holder=None, no_read=false))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        entity: &str,
        now: u64,
        expected: Option<String>,
        deadline_ms: Option<u64>,
        holder: Option<String>,
        no_read: bool,
    ) -> PyResult<u64> {
        let options = SubmitOptions {
            expected,
            deadline_ms,
            holder,
            no_read,
        };
        let result = lock(&self.engine).submit(entity, now, options);
        result.map(|op| op.0).map_err(|e| usage_error(py, &e))
    }

    /// Start one update (group commit); returns its op id.
    #[pyo3(signature = (entity, now, deadline_ms=None, holder=None))]
    fn submit_update(
        &self,
        py: Python<'_>,
        entity: &str,
        now: u64,
        deadline_ms: Option<u64>,
        holder: Option<String>,
    ) -> PyResult<u64> {
        let options = UpdateOptions {
            deadline_ms,
            holder,
        };
        let result = lock(&self.engine).submit_update(entity, now, options);
        result.map(|op| op.0).map_err(|e| usage_error(py, &e))
    }

    /// The next command or batch `Apply` as JSON, or `None`.
    fn poll_action(&self) -> Option<String> {
        lock(&self.engine).poll_action().map(|a| to_json(&a))
    }

    /// One op's pending command or `Apply` as JSON, or `None`.
    fn poll_action_for(&self, op: u64) -> Option<String> {
        lock(&self.engine)
            .poll_action_for(OpId(op))
            .map(|a| to_json(&a))
    }

    /// Feed one input given as the core's JSON form.
    fn handle(&self, py: Python<'_>, now: u64, input: &str) -> PyResult<()> {
        let input: Input = serde_json::from_str(input).map_err(|e| bad_input(py, "input", &e))?;
        let result = lock(&self.engine).handle(now, input);
        result.map_err(|e| usage_error(py, &e))
    }

    /// Fire the timers due at `now`.
    fn handle_timeout(&self, py: Python<'_>, now: u64) -> PyResult<()> {
        let result = lock(&self.engine).handle_timeout(now);
        result.map_err(|e| usage_error(py, &e))
    }

    /// The next command as JSON, or `None`.
    fn poll_command(&self) -> Option<String> {
        lock(&self.engine).poll_command().map(|c| to_json(&c))
    }

    /// One op's pending command as JSON, or `None`.
    fn poll_command_for(&self, op: u64) -> Option<String> {
        lock(&self.engine)
            .poll_command_for(OpId(op))
            .map(|c| to_json(&c))
    }

    /// When `handle_timeout` must next be called.
    fn poll_timeout(&self) -> Option<u64> {
        lock(&self.engine).poll_timeout()
    }

    /// When one op's timer fires.
    fn poll_timeout_for(&self, op: u64) -> Option<u64> {
        lock(&self.engine).poll_timeout_for(OpId(op))
    }

    /// The next event as JSON, or `None`.
    fn poll_event(&self) -> Option<String> {
        lock(&self.engine).poll_event().map(|e| to_json(&e))
    }

    /// The stats as JSON.
    fn stats(&self) -> String {
        to_json(&lock(&self.engine).stats())
    }

    /// The exportable state as JSON.
    fn export_state(&self) -> String {
        to_json(&lock(&self.engine).export_state())
    }

    /// Restore exported state given as JSON.
    fn import_state(&self, py: Python<'_>, state: &str) -> PyResult<()> {
        let state: core::EngineState =
            serde_json::from_str(state).map_err(|e| bad_input(py, "state", &e))?;
        let result = lock(&self.engine).import_state(&state);
        result.map_err(|e| usage_error(py, &e))
    }

    /// The policy in force, as JSON.
    fn policy(&self) -> String {
        lock(&self.engine).policy().to_json()
    }
}

struct LaneInner {
    engine: Engine,
    /// Commands (and batches' `Apply` steps) drained for ops whose driver has not taken
    /// them yet.
    mailbox: HashMap<u64, Action, OpBuild>,
    /// The timer each op waiting on time was last handed: when the engine moves it (a
    /// queued op given the lane during a spike's cool-down waits on a new timer, with no
    /// command), its thread is woken to take the new one.
    timers: HashMap<u64, Option<u64>, OpBuild>,
    last_now: u64,
}

/// What one step of a lane's driver returns, flattened: `(kind, number, text, timer,
/// woken)`. `kind` is -1 when the op has no command (then `timer` is when its timer
/// fires, if it waits on time), else a [`Cmd`] kind (for a write, `timer` carries the
/// fence); `woken` lists the other ops that received a command during the call (`None`
/// when none did).
type Step = (i8, u64, Option<String>, Option<u64>, Option<Vec<u64>>);

/// What `submit` returns: the op id, a [`Step`], and the result of a write carried out
/// during the call.
type Submitted = (
    u64,
    i8,
    u64,
    Option<String>,
    Option<u64>,
    Option<Vec<u64>>,
    Option<Py<PyAny>>,
);

/// The step kind that reports that the `write` called by `submit` raised.
const RAISED: i8 = 4;

/// One write attempt, passed to the caller's `write` function: `number` counts attempts
/// from 1, `base_token` is the change token the write must be based on (what the last
/// read found, or `None`), `entity` is the entity's name, `fence` the lease epoch the
/// write is made under (shared lanes; `None` otherwise). The write reports the token of
/// the revision it produced with `set_token`, so the engine can hand it to the next writer.
#[pyclass(module = "writelane", name = "Attempt", frozen)]
struct Attempt {
    #[pyo3(get)]
    number: u32,
    #[pyo3(get)]
    base_token: Option<String>,
    #[pyo3(get)]
    entity: Py<PyString>,
    #[pyo3(get)]
    fence: Option<u64>,
    /// What `set_token` recorded; a lock because the class is frozen (shared by threads).
    token: Mutex<Option<String>>,
}

impl Attempt {
    fn build(
        number: u32,
        base_token: Option<String>,
        entity: Py<PyString>,
        fence: Option<u64>,
    ) -> Self {
        Attempt {
            number,
            base_token,
            entity,
            fence,
            token: Mutex::new(None),
        }
    }

    /// The token reported by `set_token`, taken out of the attempt.
    fn take_token(&self) -> Option<String> {
        lock(&self.token).take()
    }
}

#[pymethods]
impl Attempt {
    #[new]
    #[pyo3(signature = (number, base_token, entity, fence=None))]
    fn new(
        number: u32,
        base_token: Option<String>,
        entity: Bound<'_, PyString>,
        fence: Option<u64>,
    ) -> Self {
        Attempt::build(number, base_token, entity.unbind(), fence)
    }

    /// Report the change token of the revision this write produced (an ETag, a
    /// `VersionId`, `policy_token` of the document written). When the write succeeds the
    /// engine hands it to the next writer of the entity, which then skips its read, and
    /// with a lease store it is stored in the lease record for writers on other machines.
    /// A later call replaces an earlier one. Raises `UsageError` for a token that is not a
    /// `str`, not UTF-8, or longer than 1024 bytes.
    fn set_token(&self, py: Python<'_>, token: &Bound<'_, PyAny>) -> PyResult<()> {
        let Ok(text) = token.downcast::<PyString>() else {
            let found = token.get_type().name()?.to_string();
            return Err(raise(
                py,
                "UsageError",
                (
                    "invalid_argument",
                    format!("token: expected str, found {found}"),
                ),
            ));
        };
        let Ok(text) = text.to_cow() else {
            return Err(raise(
                py,
                "UsageError",
                ("invalid_argument", "token: not valid UTF-8"),
            ));
        };
        if text.len() > core::MAX_TOKEN_LEN {
            let message = format!(
                "token: {} bytes is over the limit of {}",
                text.len(),
                core::MAX_TOKEN_LEN
            );
            return Err(raise(py, "UsageError", ("invalid_token", message)));
        }
        *lock(&self.token) = Some(text.into_owned());
        Ok(())
    }

    /// The token reported with `set_token` so far, or `None`.
    #[getter]
    fn token(&self) -> Option<String> {
        lock(&self.token).clone()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let fence = match self.fence {
            Some(f) => format!(", fence={f}"),
            None => String::new(),
        };
        Ok(format!(
            "Attempt(number={}, base_token={:?}, entity={:?}{fence})",
            self.number,
            self.base_token,
            self.entity.bind(py).to_cow()?
        ))
    }
}

impl LaneInner {
    /// Drain every command into the mailbox; hand back `me`'s, else its timer.
    fn collect(&mut self, me: u64) -> Step {
        let mut woken: Option<Vec<u64>> = None;
        // The op's own command usually comes straight out of the engine: keep it off the
        // mailbox then.
        let mut own = if self.mailbox.is_empty() {
            None
        } else {
            self.mailbox.remove(&me)
        };
        // `poll_action` is `poll_command` plus the `Apply` steps of updates' batches.
        while let Some(cmd) = self.engine.poll_action() {
            let op = cmd.op().0;
            if op == me && own.is_none() {
                own = Some(cmd);
                continue;
            }
            if op != me {
                woken.get_or_insert_with(Vec::new).push(op);
            }
            self.mailbox.insert(op, cmd);
        }
        for (&op, told) in self.timers.iter_mut() {
            if op == me || self.mailbox.contains_key(&op) {
                continue;
            }
            let now = self.engine.poll_timeout_for(OpId(op));
            if now != *told {
                *told = now;
                let list = woken.get_or_insert_with(Vec::new);
                if !list.contains(&op) {
                    list.push(op);
                }
            }
        }
        match own {
            Some(cmd) => {
                self.timers.remove(&me);
                // A write's fence travels in the timer slot (a command has no timer).
                let (kind, number, text, fence) = action_tuple(cmd);
                (kind as i8, number, text, fence, woken)
            }
            None => {
                let timer = self.engine.poll_timeout_for(OpId(me));
                self.timers.insert(me, timer);
                (-1, 0, None, timer, woken)
            }
        }
    }
}

/// A cheap hasher for op ids (sequential integers): Fibonacci hashing.
#[derive(Default, Clone, Copy)]
struct OpHasher(u64);

impl std::hash::Hasher for OpHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type OpBuild = std::hash::BuildHasherDefault<OpHasher>;

/// The engine behind a `writelane.Lane`, shared by the threads and tasks that drive one
/// operation each. The lane's clock is read before the lock is taken and kept monotonic
/// under it, so time never runs backwards between threads: milliseconds since the lane was
/// created, or what the injected clock's `now_ms()` says.
#[pyclass(module = "writelane._native", frozen)]
struct NativeLane {
    inner: Mutex<LaneInner>,
    origin: Instant,
    /// An injected clock (an object with `now_ms()`), or `None` for the monotonic clock.
    clock: Option<Py<PyAny>>,
}

impl NativeLane {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The injected clock's reading (Python code: called before any lock is taken).
    fn clock_ms(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        let Some(clock) = &self.clock else {
            return Ok(None);
        };
        let value = clock.bind(py).call_method0(pyo3::intern!(py, "now_ms"))?;
        match value.extract::<u64>() {
            Ok(ms) => Ok(Some(ms)),
            Err(_) => Err(raise(
                py,
                "UsageError",
                (
                    "invalid_argument",
                    format!(
                        "clock.now_ms: must return an int of milliseconds in 0..2**64, returned {}",
                        value.repr()?
                    ),
                ),
            )),
        }
    }

    /// Lock the engine and advance its clock (`clock`: the injected clock's reading).
    fn locked(&self, clock: Option<u64>) -> (MutexGuard<'_, LaneInner>, u64) {
        let mut inner = lock(&self.inner);
        let now = clock
            .unwrap_or_else(|| self.elapsed_ms())
            .max(inner.last_now);
        inner.last_now = now;
        (inner, now)
    }

    fn input(&self, py: Python<'_>, op: u64, input: Input) -> PyResult<Step> {
        let clock = self.clock_ms(py)?;
        let result = {
            let (mut inner, now) = self.locked(clock);
            inner.engine.handle(now, input).map(|()| inner.collect(op))
        };
        result.map_err(|e| usage_error(py, &e))
    }
}

#[pymethods]
impl NativeLane {
    /// A lane engine under the policy given as JSON text, writing lease records as
    /// `owner` (needed by shared lanes). `store`: the host carries out store commands, so
    /// the policy runs as the core's `Policy::for_store` (shared lanes). `clock`: an object
    /// whose `now_ms()` gives the time instead of the lane's monotonic clock.
    #[new]
    #[pyo3(signature = (policy, seed, owner=None, store=false, clock=None))]
    fn new(
        py: Python<'_>,
        policy: &str,
        seed: u64,
        owner: Option<&str>,
        store: bool,
        clock: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        Ok(NativeLane {
            inner: Mutex::new(LaneInner {
                engine: build_engine(py, policy, seed, owner, store)?,
                mailbox: HashMap::default(),
                timers: HashMap::default(),
                last_now: 0,
            }),
            origin: Instant::now(),
            clock,
        })
    }

    /// Milliseconds on the lane's clock.
    fn now_ms(&self, py: Python<'_>) -> PyResult<u64> {
        let clock = self.clock_ms(py)?;
        let last = lock(&self.inner).last_now;
        Ok(last.max(clock.unwrap_or_else(|| self.elapsed_ms())))
    }

    /// Nanoseconds until the lane's clock reaches `at_ms` (0 if it has).
    fn remaining_ns(&self, at_ms: u64) -> u64 {
        let due = Duration::from_millis(at_ms);
        u64::try_from(due.saturating_sub(self.origin.elapsed()).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Submit one logical write: `(op, kind, number, text, timer, woken, result)`. With
    /// `has_read` false the op is submitted `no_read` (the engine never commands a read).
    /// With `write`, a first command that is a write is carried out here, saving a round
    /// trip: `result` is then what `write` returned and the step is the one after it, or,
    /// if `write` raised, `kind` is [`RAISED`] and `result` the exception.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (entity, expected=None, deadline_ms=None, has_read=true, write=None, holder=None))]
    fn submit(
        &self,
        py: Python<'_>,
        entity: Bound<'_, PyString>,
        expected: Option<String>,
        deadline_ms: Option<u64>,
        has_read: bool,
        write: Option<Bound<'_, PyAny>>,
        holder: Option<String>,
    ) -> PyResult<Submitted> {
        let name = entity.to_cow()?;
        let clock = self.clock_ms(py)?;
        let submitted = {
            let (mut inner, now) = self.locked(clock);
            let options = SubmitOptions {
                expected,
                deadline_ms,
                holder,
                no_read: !has_read,
            };
            inner
                .engine
                .submit(&name, now, options)
                .map(|op| (op.0, inner.collect(op.0)))
        };
        let (op, (kind, number, text, timer, woken)) =
            submitted.map_err(|e| usage_error(py, &e))?;
        let Some(write) = write.filter(|_| kind == 1) else {
            return Ok((op, kind, number, text, timer, woken, None));
        };
        // The lock is released: the write may take long, and other threads go on.
        let number = u32::try_from(number).unwrap_or(u32::MAX);
        let called = Bound::new(py, Attempt::build(number, text, entity.unbind(), timer)).and_then(
            |attempt| {
                let value = write.call1((&attempt,))?;
                Ok((value, attempt.get().take_token()))
            },
        );
        match called {
            Ok((value, token)) => {
                let done = Input::WriteDone {
                    op: OpId(op),
                    token,
                };
                let step = self.input(py, op, done);
                let (kind, number, text, timer, more) = step?;
                let woken = match (woken, more) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        Some(a)
                    }
                    (a, b) => a.or(b),
                };
                Ok((op, kind, number, text, timer, woken, Some(value.unbind())))
            }
            Err(err) => Ok((
                op,
                RAISED,
                0,
                None,
                None,
                woken,
                Some(err.into_value(py).into_any()),
            )),
        }
    }

    /// Submit one update (group commit): `(op, step)`. Its first command is always a read
    /// (or, queued behind the lane's holder, none yet).
    #[pyo3(signature = (entity, deadline_ms=None, holder=None))]
    fn submit_update(
        &self,
        py: Python<'_>,
        entity: &str,
        deadline_ms: Option<u64>,
        holder: Option<String>,
    ) -> PyResult<(u64, Step)> {
        let clock = self.clock_ms(py)?;
        let submitted = {
            let (mut inner, now) = self.locked(clock);
            let options = UpdateOptions {
                deadline_ms,
                holder,
            };
            inner
                .engine
                .submit_update(entity, now, options)
                .map(|op| (op.0, inner.collect(op.0)))
        };
        submitted.map_err(|e| usage_error(py, &e))
    }

    /// The leader `op` applied its batch's changes: `results` is `(op, applied, code)` for
    /// each op of the `Apply`, in its order (`code` names why a change was refused).
    fn apply_done(
        &self,
        py: Python<'_>,
        op: u64,
        results: Vec<(u64, bool, Option<String>)>,
    ) -> PyResult<Step> {
        let results = results
            .into_iter()
            .map(|(m, applied, code)| ApplyResult {
                op: OpId(m),
                applied,
                code,
            })
            .collect();
        self.input(
            py,
            op,
            Input::ApplyDone {
                op: OpId(op),
                results,
            },
        )
    }

    /// The read found the entity at `token` (`None`: it does not exist).
    #[pyo3(signature = (op, token=None))]
    fn read_done(&self, py: Python<'_>, op: u64, token: Option<String>) -> PyResult<Step> {
        self.input(
            py,
            op,
            Input::ReadDone {
                op: OpId(op),
                token,
            },
        )
    }

    /// The write landed, producing `token` if known.
    #[pyo3(signature = (op, token=None))]
    fn write_done(&self, py: Python<'_>, op: u64, token: Option<String>) -> PyResult<Step> {
        self.input(
            py,
            op,
            Input::WriteDone {
                op: OpId(op),
                token,
            },
        )
    }

    /// The read (`write=False`) or write failed.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (op, write, code=None, status=None, retry_after_ms=None, retry_after_text=None, outcome_unknown=false))]
    fn failed(
        &self,
        py: Python<'_>,
        op: u64,
        write: bool,
        code: Option<String>,
        status: Option<u16>,
        retry_after_ms: Option<u64>,
        retry_after_text: Option<&str>,
        outcome_unknown: bool,
    ) -> PyResult<Step> {
        let failure = core::Failure {
            code,
            status,
            retry_after_ms: retry_after_ms
                .or_else(|| retry_after_text.and_then(core::parse_retry_after)),
            outcome_unknown,
            intended_token: None,
        };
        let id = OpId(op);
        let input = if write {
            Input::WriteFailed { op: id, failure }
        } else {
            Input::ReadFailed { op: id, failure }
        };
        self.input(py, op, input)
    }

    /// The lease store answered `op`'s store command: `reply` in the core's JSON form.
    fn store_reply(&self, py: Python<'_>, op: u64, reply: &str) -> PyResult<Step> {
        let reply = parse_reply(py, reply)?;
        self.input(
            py,
            op,
            Input::StoreReply {
                op: OpId(op),
                reply,
            },
        )
    }

    /// The host abandons the op.
    fn cancel(&self, py: Python<'_>, op: u64) -> PyResult<Step> {
        self.input(py, op, Input::Cancel { op: OpId(op) })
    }

    /// Fire due timers, then report `op`'s command or timer.
    fn timeout(&self, py: Python<'_>, op: u64) -> PyResult<Step> {
        let clock = self.clock_ms(py)?;
        let result = {
            let (mut inner, now) = self.locked(clock);
            inner.engine.handle_timeout(now).map(|()| inner.collect(op))
        };
        result.map_err(|e| usage_error(py, &e))
    }

    /// `op`'s command if another thread drained it, else its timer.
    fn poll(&self, op: u64) -> Step {
        lock(&self.inner).collect(op)
    }

    /// Forget `op`'s leftovers after its driver gave up on it.
    fn forget(&self, op: u64) {
        let mut inner = lock(&self.inner);
        inner.mailbox.remove(&op);
        inner.timers.remove(&op);
    }

    /// Every queued event as a JSON array.
    fn drain_events(&self) -> String {
        let mut inner = lock(&self.inner);
        let mut events = Vec::new();
        while let Some(e) = inner.engine.poll_event() {
            events.push(e);
        }
        to_json(&events)
    }

    /// The stats as JSON.
    fn stats(&self) -> String {
        to_json(&lock(&self.inner).engine.stats())
    }

    /// The exportable state as JSON.
    fn export_state(&self) -> String {
        to_json(&lock(&self.inner).engine.export_state())
    }

    /// Restore exported state given as JSON.
    fn import_state(&self, py: Python<'_>, state: &str) -> PyResult<()> {
        let state: core::EngineState =
            serde_json::from_str(state).map_err(|e| bad_input(py, "state", &e))?;
        let result = lock(&self.inner).engine.import_state(&state);
        result.map_err(|e| usage_error(py, &e))
    }

    /// The policy in force, as JSON.
    fn policy(&self) -> String {
        lock(&self.inner).engine.policy().to_json()
    }
}

/// The state of one logical call under a `RetryStrategy`, held by the caller.
#[pyclass(module = "writelane._native", name = "RetryToken")]
struct NativeToken {
    token: core::RetryToken,
}

#[pymethods]
impl NativeToken {
    /// Attempts made so far (1 once acquired).
    #[getter]
    fn attempts(&self) -> u32 {
        self.token.attempts
    }

    /// Budget tokens the last retry took.
    #[getter]
    fn last_cost(&self) -> u32 {
        self.token.last_cost
    }

    /// The last delay in milliseconds.
    #[getter]
    fn last_delay_ms(&self) -> u64 {
        self.token.last_delay_ms
    }

    /// When the call started, in the strategy's milliseconds.
    #[getter]
    fn started_ms(&self) -> u64 {
        self.token.started_ms
    }

    fn __repr__(&self) -> String {
        format!(
            "RetryToken(attempts={}, last_cost={}, last_delay_ms={})",
            self.token.attempts, self.token.last_cost, self.token.last_delay_ms
        )
    }
}

struct StrategyInner {
    strategy: core::RetryStrategy,
    last_now: u64,
}

/// The core's decision-only retry strategy.
#[pyclass(module = "writelane._native", frozen)]
struct NativeStrategy {
    inner: Mutex<StrategyInner>,
}

impl StrategyInner {
    /// `clamp`: the time came from a shared clock, so keep it monotonic; otherwise the
    /// caller chose it and the core judges it.
    fn now(&mut self, now: u64, clamp: bool) -> u64 {
        let now = if clamp { now.max(self.last_now) } else { now };
        self.last_now = self.last_now.max(now);
        now
    }
}

#[pymethods]
impl NativeStrategy {
    /// A strategy under the policy given as JSON text.
    #[new]
    fn new(py: Python<'_>, policy: &str, seed: u64) -> PyResult<Self> {
        Ok(NativeStrategy {
            inner: Mutex::new(StrategyInner {
                strategy: core::RetryStrategy::new(parse_policy(py, policy)?, seed),
                last_now: 0,
            }),
        })
    }

    /// Start a logical call in `scope`.
    fn acquire(&self, py: Python<'_>, scope: &str, now: u64, clamp: bool) -> PyResult<NativeToken> {
        let result = {
            let mut inner = lock(&self.inner);
            let now = inner.now(now, clamp);
            inner.strategy.acquire(scope, now)
        };
        result
            .map(|token| NativeToken { token })
            .map_err(|e| usage_error(py, &e))
    }

    /// Decide a retry: `(delay_ms, cost, class)`, or raise `RetryRefused`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (token, now, clamp, code=None, status=None, retry_after_ms=None, retry_after_text=None, outcome_unknown=false))]
    fn refresh(
        &self,
        py: Python<'_>,
        mut token: PyRefMut<'_, NativeToken>,
        now: u64,
        clamp: bool,
        code: Option<String>,
        status: Option<u16>,
        retry_after_ms: Option<u64>,
        retry_after_text: Option<&str>,
        outcome_unknown: bool,
    ) -> PyResult<(u64, u32, &'static str)> {
        let failure = core::Failure {
            code,
            status,
            retry_after_ms: retry_after_ms
                .or_else(|| retry_after_text.and_then(core::parse_retry_after)),
            outcome_unknown,
            intended_token: None,
        };
        let decision = {
            let mut inner = lock(&self.inner);
            let now = inner.now(now, clamp);
            inner.strategy.refresh(&mut token.token, &failure, now)
        };
        match decision {
            Err(e) => Err(usage_error(py, &e)),
            Ok(Ok(plan)) => Ok((plan.delay_ms, plan.cost, plan.class.as_str())),
            Ok(Err(refusal)) => Err(raise(
                py,
                "RetryRefused",
                (refusal.reason(), to_json(&refusal)),
            )),
        }
    }

    /// The call succeeded.
    fn record_success(&self, py: Python<'_>, token: PyRef<'_, NativeToken>) -> PyResult<()> {
        let result = lock(&self.inner).strategy.record_success(&token.token);
        result.map_err(|e| usage_error(py, &e))
    }

    /// Tokens left in `scope`'s bucket.
    fn capacity(&self, scope: &str) -> u32 {
        lock(&self.inner).strategy.capacity(scope)
    }

    /// The policy in force, as JSON.
    fn policy(&self) -> String {
        lock(&self.inner).strategy.policy().to_json()
    }
}

/// The `writelane._native` module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CORE_VERSION", core::VERSION)?;
    m.add("PRESETS", core::policy::PRESETS.to_vec())?;
    m.add("DEFAULT_STORE_TIMEOUT_MS", lease::DEFAULT_STORE_TIMEOUT_MS)?;
    m.add("MAX_RVN", lease::MAX_RVN)?;
    m.add("MAX_OWNER_LEN", lease::MAX_OWNER_LEN)?;
    m.add("MAX_HOLDER_LEN", lease::MAX_HOLDER_LEN)?;
    m.add_function(wrap_pyfunction!(policy_json, m)?)?;
    m.add_function(wrap_pyfunction!(policy_token, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_policy, m)?)?;
    m.add_function(wrap_pyfunction!(parse_retry_after, m)?)?;
    m.add_function(wrap_pyfunction!(parse_record, m)?)?;
    m.add_function(wrap_pyfunction!(store_op, m)?)?;
    m.add_function(wrap_pyfunction!(owner_id, m)?)?;
    m.add_function(wrap_pyfunction!(check_owner, m)?)?;
    m.add_function(wrap_pyfunction!(policy_for_store, m)?)?;
    m.add_function(wrap_pyfunction!(plan_force_release, m)?)?;
    m.add_function(wrap_pyfunction!(finish_force_release, m)?)?;
    m.add_function(wrap_pyfunction!(iam_put_statement, m)?)?;
    m.add_function(wrap_pyfunction!(iam_remove_statement, m)?)?;
    m.add_function(wrap_pyfunction!(iam_add_trust_principal, m)?)?;
    m.add_function(wrap_pyfunction!(iam_set_tags, m)?)?;
    m.add_class::<NativeEngine>()?;
    m.add_class::<NativeLane>()?;
    m.add_class::<NativeStrategy>()?;
    m.add_class::<NativeToken>()?;
    m.add_class::<Attempt>()?;
    iam::register(m)?;
    Ok(())
}
