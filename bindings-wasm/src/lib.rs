//! # writelane-wasm
//!
//! The WebAssembly layer of the `writelane` npm package. It exposes the sans-IO engine and
//! the decision-only retry strategy of `writelane-core` to JavaScript through
//! `wasm-bindgen`, and nothing else: every decision stays in the core, and the JavaScript
//! layer on top (`js/index.js`) only drives it with timers and the user's async functions.
//!
//! ## The boundary
//!
//! - Milliseconds, operation ids and seeds cross as `f64` (JavaScript numbers, never
//!   BigInt) and are checked here to be whole, non-negative and at most 2^53 - 1.
//! - Copying a string into WebAssembly costs far more than a decision, so the hot path
//!   takes integer handles: entity names, error codes and retry scopes are interned once
//!   (`internEntity`, `internCode`, `internScope`) and named by their handle afterwards.
//! - Commands are polled into a one-command register and read field by field
//!   (`cmdOp`, `cmdAttempt`, `cmdBaseToken`, ...), so the common path allocates no JSON.
//!   Events, stats, outcomes of give-ups and policies cross as JSON text in the core's
//!   serde form, the same form the conformance vectors use.
//! - Nothing here throws. A call that the core refuses returns a sentinel (`-1`, or
//!   [`STATUS_ERROR`]) and keeps the error, which `takeError` hands over as JSON
//!   `{"kind": ..., "message": ...}`; the JavaScript layer turns it into a typed `Error`.
//!   No input causes a panic: every number and handle is checked before use.
//!
//! The crate also builds for the host target (it is a workspace member checked by
//! clippy), where its types are plain Rust and its unit tests run.

#![deny(missing_docs)]

mod iam;

use serde::Serialize;
use wasm_bindgen::prelude::*;
use writelane_core::{
    iam::docs,
    lease::{self, ForceReleasePlan, LeaseRecord, RecordError, StoreOp, StoreReply, MAX_RVN},
    parse_retry_after, policy_token as core_policy_token, Action, Apply, ApplyResult, Command,
    Engine, EngineState, ErrorClass, Failure, Input, OpId, Outcome, Policy, PolicyError, Refusal,
    RetryStrategy, RetryToken, SubmitOptions, UpdateOptions, UsageError, MAX_ENTITY_LEN,
};

/// The largest integer a JavaScript number holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// Most error codes one engine or strategy interns; the JavaScript layer sends any code
/// beyond this as text (see `Engine::handle_json`).
pub const MAX_INTERNED_CODES: usize = 4096;

/// Most retry scopes one strategy interns (the core keeps at most this many buckets too).
pub const MAX_INTERNED_SCOPES: usize = writelane_core::MAX_SCOPES;

/// Returned by calls with no value when they succeed.
pub const STATUS_OK: i32 = 0;
/// Returned by calls with no value when they fail; `takeError` tells why.
pub const STATUS_ERROR: i32 = -1;

/// No command is ready.
pub const CMD_NONE: u32 = 0;
/// Read the entity and report its change token.
pub const CMD_READ: u32 = 1;
/// Perform the write.
pub const CMD_WRITE: u32 = 2;
/// The operation is over; see `cmdOutcomeStatus`.
pub const CMD_FINISH: u32 = 3;
/// Carry out a lease-store operation (shared lanes); see `cmdStoreJson`.
pub const CMD_STORE: u32 = 4;
/// Apply a batch's changes (updates, polled with `pollAction`); see `cmdApplyOps`.
pub const CMD_APPLY: u32 = 5;

/// Why a call was refused: the core's usage-error kind (or `invalid_argument` for a value
/// that never reached the core) and a message naming the argument or rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Fault {
    kind: String,
    message: String,
}

impl Fault {
    fn argument(message: impl Into<String>) -> Self {
        Fault {
            kind: "invalid_argument".into(),
            message: message.into(),
        }
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"kind":"internal","message":"error could not be encoded"}"#.into()
        })
    }
}

impl From<UsageError> for Fault {
    fn from(e: UsageError) -> Self {
        Fault {
            kind: e.kind().into(),
            message: e.to_string(),
        }
    }
}

/// Serialise a value of the core; the core's types always serialise.
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// A whole number of milliseconds (or an id, or a seed) from a JavaScript number.
fn whole(value: f64, what: &str) -> Result<u64, Fault> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= MAX_SAFE_INTEGER {
        Ok(value as u64)
    } else {
        Err(Fault::argument(format!(
            "{what} must be a whole number from 0 to 2^53-1, got {value}"
        )))
    }
}

/// Like [`whole`], with any negative number meaning "absent".
fn optional_whole(value: f64, what: &str) -> Result<Option<u64>, Fault> {
    if value < 0.0 {
        Ok(None)
    } else {
        whole(value, what).map(Some)
    }
}

/// A `u32` counter from a JavaScript number.
fn small(value: f64, what: &str) -> Result<u32, Fault> {
    let v = whole(value, what)?;
    u32::try_from(v).map_err(|_| Fault::argument(format!("{what} must be at most 2^32-1")))
}

fn class_index(class: ErrorClass) -> u32 {
    match class {
        ErrorClass::Conflict => 0,
        ErrorClass::Throttle => 1,
        ErrorClass::Transient => 2,
        ErrorClass::Unknown => 3,
        ErrorClass::Fatal => 4,
    }
}

/// Build a failure from handles and numbers; `-1` (any negative) means absent.
fn build_failure(
    codes: &[String],
    code: i32,
    status: i32,
    retry_after_ms: f64,
    outcome_unknown: bool,
    intended_token: Option<String>,
) -> Result<Failure, Fault> {
    let code = if code < 0 {
        None
    } else {
        match codes.get(code as usize) {
            Some(c) => Some(c.clone()),
            None => return Err(Fault::argument(format!("unknown error-code handle {code}"))),
        }
    };
    let status = if status < 0 {
        None
    } else {
        match u16::try_from(status) {
            Ok(s) => Some(s),
            Err(_) => {
                return Err(Fault::argument(format!(
                    "status must be an HTTP status (0 to 65535), got {status}"
                )))
            }
        }
    };
    Ok(Failure {
        code,
        status,
        retry_after_ms: optional_whole(retry_after_ms, "retry_after_ms")?,
        outcome_unknown,
        intended_token,
    })
}

/// Outcome of parsing a policy, as JSON for the JavaScript layer.
#[derive(Serialize)]
#[serde(untagged)]
enum PolicyResult {
    Ok {
        ok: bool,
        policy: Box<Policy>,
    },
    Err {
        ok: bool,
        path: String,
        rule: String,
    },
}

/// Parse and validate a policy given as JSON text (a preset name as a JSON string, an
/// object of overrides, or `null`). Returns JSON: `{"ok": true, "policy": {...}}` with the
/// complete effective policy, or `{"ok": false, "path": ..., "rule": ...}`.
#[wasm_bindgen(js_name = parsePolicy)]
pub fn parse_policy(text: &str) -> String {
    policy_result(Policy::from_json(text))
}

/// The policy a lane given a lease store runs (`Policy::for_store`: `lanes.mode` becomes
/// `shared`, whatever the text said), parsed from JSON text as [`parse_policy`] parses it
/// and answered in the same JSON form.
#[wasm_bindgen(js_name = policyForStore)]
pub fn policy_for_store(text: &str) -> String {
    policy_result(Policy::from_json(text).map(Policy::for_store))
}

fn policy_result(result: Result<Policy, PolicyError>) -> String {
    json(&match result {
        Ok(policy) => PolicyResult::Ok {
            ok: true,
            policy: Box::new(policy),
        },
        Err(e) => PolicyResult::Err {
            ok: false,
            path: e.path,
            rule: e.rule,
        },
    })
}

/// Outcome of computing a policy token, as JSON for the JavaScript layer.
#[derive(Serialize)]
#[serde(untagged)]
enum TokenResult {
    Ok {
        ok: bool,
        token: String,
    },
    Err {
        ok: bool,
        path: String,
        rule: String,
    },
}

/// The canonical change token of an IAM policy document (`c1:sha256:...`). Returns JSON:
/// `{"ok": true, "token": ...}` or `{"ok": false, "path": ..., "rule": ...}`.
#[wasm_bindgen(js_name = policyToken)]
pub fn policy_token(document: &str) -> String {
    json(&match core_policy_token(document) {
        Ok(token) => TokenResult::Ok { ok: true, token },
        Err(e) => TokenResult::Err {
            ok: false,
            path: e.path,
            rule: e.rule,
        },
    })
}

/// Parse an `x-amz-retry-after` header: whole milliseconds, or `-1` when the text is not
/// a whole number of milliseconds (such hints are ignored, as the AWS SDKs ignore them).
#[wasm_bindgen(js_name = parseRetryAfter)]
pub fn parse_retry_after_header(text: &str) -> f64 {
    match parse_retry_after(text) {
        Some(ms) if ms as f64 <= MAX_SAFE_INTEGER => ms as f64,
        _ => -1.0,
    }
}

/// The owner id of one process in lease records, formatted by the core
/// (`HOST:PID:16-hex-digits`) from the host name, process id and 64 random bits the
/// JavaScript layer supplies (`entropy` is a BigInt).
#[wasm_bindgen(js_name = ownerId)]
pub fn owner_id(host: &str, pid: u32, entropy: u64) -> String {
    lease::owner_id(host, pid, entropy)
}

/// Check an owner id the user chose: `undefined` when the core accepts it, else the error
/// as JSON `{"kind": "invalid_owner", "message": ...}`.
#[wasm_bindgen(js_name = checkOwner)]
pub fn check_owner(owner: &str) -> Option<String> {
    lease::check_owner(owner)
        .err()
        .map(|e| Fault::from(e).to_json())
}

/// Outcome of parsing a lease record or a store operation, as JSON for JavaScript.
#[derive(Serialize)]
#[serde(untagged)]
enum Parsed<T> {
    Ok {
        ok: bool,
        value: T,
    },
    Err {
        ok: bool,
        field: String,
        rule: String,
    },
}

impl<T> Parsed<T> {
    fn err(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Parsed::Err {
            ok: false,
            field: field.into(),
            rule: rule.into(),
        }
    }

    fn record_err(prefix: &str, e: RecordError) -> Self {
        let field = if e.field == "$" {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", e.field)
        };
        Parsed::err(field, e.rule)
    }
}

impl<T: Serialize> Parsed<T> {
    fn ok(value: T) -> String {
        json(&Parsed::Ok { ok: true, value })
    }
}

fn doc_result(result: Result<serde_json::Value, docs::DocError>) -> String {
    match result {
        Ok(value) => Parsed::ok(value),
        Err(e) => json(&Parsed::<()>::err(e.path, e.reason)),
    }
}

fn doc_arg(name: &str, text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| json(&Parsed::<()>::err(name, format!("not JSON: {e}"))))
}

/// `writelane_core::iam::docs::put_statement` over JSON text: append `statement` to the
/// policy document `doc` (`null`: none yet), or replace the one with its `Sid`. Returns
/// `{"ok": true, "value": DOC}` or `{"ok": false, "field": PATH, "rule": REASON}`.
#[wasm_bindgen(js_name = iamPutStatement)]
pub fn iam_put_statement(doc: &str, statement: &str) -> String {
    match (doc_arg("doc", doc), doc_arg("statement", statement)) {
        (Ok(d), Ok(s)) => doc_result(docs::put_statement(&d, &s)),
        (Err(e), _) | (_, Err(e)) => e,
    }
}

/// `writelane_core::iam::docs::remove_statement` over JSON text (as `iamPutStatement`).
#[wasm_bindgen(js_name = iamRemoveStatement)]
pub fn iam_remove_statement(doc: &str, sid: &str) -> String {
    match doc_arg("doc", doc) {
        Ok(d) => doc_result(docs::remove_statement(&d, sid)),
        Err(e) => e,
    }
}

/// `writelane_core::iam::docs::add_trust_principal` over JSON text (as `iamPutStatement`).
#[wasm_bindgen(js_name = iamAddTrustPrincipal)]
pub fn iam_add_trust_principal(doc: &str, sid: &str, kind: &str, principal: &str) -> String {
    match doc_arg("doc", doc) {
        Ok(d) => doc_result(docs::add_trust_principal(&d, sid, kind, principal)),
        Err(e) => e,
    }
}

/// `writelane_core::iam::docs::set_tags` over JSON text: `set` is a JSON list of
/// `[key, value]` pairs (as `iamPutStatement`).
#[wasm_bindgen(js_name = iamSetTags)]
pub fn iam_set_tags(tags: &str, set: &str) -> String {
    let pairs: Vec<(String, String)> = match serde_json::from_str(set) {
        Ok(p) => p,
        Err(e) => {
            return json(&Parsed::<()>::err(
                "set",
                format!("not a list of [key, value] pairs: {e}"),
            ))
        }
    };
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match doc_arg("tags", tags) {
        Ok(t) => doc_result(docs::set_tags(&t, &pairs)),
        Err(e) => e,
    }
}

/// Parse and validate a lease record as a store adapter read it (the JSON text the store
/// keeps, or the object built from DynamoDB attributes, as text). Returns JSON:
/// `{"ok": true, "value": RECORD}` or `{"ok": false, "field": ..., "rule": ...}` with the
/// field named by the core (`epoch`, `rvn`, ...; `record` for the record as a whole).
#[wasm_bindgen(js_name = parseRecord)]
pub fn parse_record(text: &str) -> String {
    match LeaseRecord::from_json(text.as_bytes()) {
        Ok(record) => Parsed::ok(record),
        Err(e) => json(&Parsed::<()>::record_err("record", e)),
    }
}

/// Parse a store operation in the core's JSON form (`{"op": "get", "key": ...}`) given by
/// a host that carries out operations itself. Returns JSON: `{"ok": true, "value": OP}`
/// or `{"ok": false, "field": ..., "rule": ...}` naming the field
/// (`operation.key`, `operation.expected_rvn`, `operation.record.rvn`, ...).
#[wasm_bindgen(js_name = parseStoreOp)]
pub fn parse_store_op(text: &str) -> String {
    match store_op(text) {
        Ok(op) => Parsed::ok(op),
        Err(e) => json(&e),
    }
}

fn store_op(text: &str) -> Result<StoreOp, Parsed<()>> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Parsed::err("operation", format!("is not JSON: {e}")))?;
    let Some(map) = value.as_object() else {
        return Err(Parsed::err("operation", "must be an object"));
    };
    let key = match map.get("key").and_then(|k| k.as_str()) {
        Some(k) if !k.is_empty() && k.len() <= MAX_ENTITY_LEN => k.to_string(),
        _ => {
            return Err(Parsed::err(
                "operation.key",
                format!("must be a string of 1 to {MAX_ENTITY_LEN} bytes"),
            ))
        }
    };
    let record = || -> Result<LeaseRecord, Parsed<()>> {
        let raw = map
            .get("record")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        LeaseRecord::from_json(raw.to_string().as_bytes())
            .map_err(|e| Parsed::record_err("operation.record", e))
    };
    match map.get("op").and_then(|o| o.as_str()) {
        Some("get") => Ok(StoreOp::Get { key }),
        Some("put_if_absent") => Ok(StoreOp::PutIfAbsent {
            key,
            record: record()?,
        }),
        Some("compare_and_swap") => {
            let expected_rvn = map
                .get("expected_rvn")
                .and_then(|r| r.as_u64())
                .filter(|r| *r <= MAX_RVN)
                .ok_or_else(|| {
                    Parsed::err(
                        "operation.expected_rvn",
                        format!("must be a whole number from 0 to {MAX_RVN}"),
                    )
                })?;
            Ok(StoreOp::CompareAndSwap {
                key,
                expected_rvn,
                record: record()?,
            })
        }
        _ => Err(Parsed::err(
            "operation.op",
            "must be get, put_if_absent or compare_and_swap",
        )),
    }
}

/// The next step of a force-release, as JSON: `{"done": RESULT}` (the core's
/// `ForceReleaseResult`) or `{"swap": OP}` (a compare-and-swap to carry out, then pass
/// with its reply to [`finish_force_release`]), or `{"error": {"kind", "message"}}` for a
/// bad argument. `found` is the record the store's `get` returned, as JSON (`undefined`:
/// none), already validated; `expected_rvn` negative means "any"; `entropy` is 64 random
/// bits (a BigInt) for the new rvn.
#[wasm_bindgen(js_name = planForceRelease)]
pub fn plan_force_release(
    key: &str,
    found: Option<String>,
    expected_rvn: f64,
    entropy: u64,
) -> String {
    let result = (|| -> Result<ForceReleasePlan, Fault> {
        let expected = optional_whole(expected_rvn, "expectedRvn")?;
        let found = match found {
            Some(text) => Some(
                LeaseRecord::from_json(text.as_bytes())
                    .map_err(|e| Fault::argument(e.to_string()))?,
            ),
            None => None,
        };
        Ok(lease::plan_force_release(key, found, expected, entropy))
    })();
    match result {
        Ok(ForceReleasePlan::Done(r)) => json(&serde_json::json!({ "done": r })),
        Ok(ForceReleasePlan::Swap(op)) => json(&serde_json::json!({ "swap": op })),
        Err(f) => json(&serde_json::json!({ "error": f })),
    }
}

/// The result of a force-release's compare-and-swap `swap` (as [`plan_force_release`]
/// gave it) given the store's `reply`, both JSON: the core's `ForceReleaseResult` as JSON,
/// `null` when the outcome is unknown (the reply was lost or the store unavailable), or
/// `{"error": {"kind", "message"}}` for malformed arguments.
#[wasm_bindgen(js_name = finishForceRelease)]
pub fn finish_force_release(swap: &str, reply: &str) -> String {
    let parsed = serde_json::from_str::<StoreOp>(swap)
        .map_err(|e| Fault::argument(format!("swap does not match the schema: {e}")))
        .and_then(|swap| {
            serde_json::from_str::<StoreReply>(reply)
                .map(|reply| (swap, reply))
                .map_err(|e| Fault::argument(format!("reply does not match the schema: {e}")))
        });
    match parsed {
        Ok((swap, reply)) => json(&lease::finish_force_release(&swap, reply)),
        Err(f) => json(&serde_json::json!({ "error": f })),
    }
}

/// The version of writelane-core this module was built from.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    writelane_core::VERSION.to_string()
}

/// The lane engine behind `Lane` and `Engine` in JavaScript. One instance per lane; it is
/// used from one JavaScript thread (WebAssembly instances are not shared between workers).
#[wasm_bindgen(js_name = RawEngine)]
pub struct RawEngine {
    engine: Engine,
    entities: Vec<String>,
    codes: Vec<String>,
    cmd: Option<Command>,
    /// The polled `Apply` step of a batch, when the register holds one instead of `cmd`.
    apply: Option<Apply>,
    error: Option<Fault>,
}

impl RawEngine {
    fn fail<T>(&mut self, fault: Fault, sentinel: T) -> T {
        self.error = Some(fault);
        sentinel
    }

    fn status(&mut self, result: Result<(), Fault>) -> i32 {
        match result {
            Ok(()) => STATUS_OK,
            Err(f) => self.fail(f, STATUS_ERROR),
        }
    }

    fn input(&mut self, now: f64, input: impl FnOnce(&Self) -> Result<Input, Fault>) -> i32 {
        let result = whole(now, "now").and_then(|now| {
            let input = input(self)?;
            self.engine.handle(now, input).map_err(Fault::from)
        });
        self.status(result)
    }

    fn op(op: f64) -> Result<OpId, Fault> {
        whole(op, "op").map(OpId)
    }

    fn store(&mut self, cmd: Option<Command>) -> u32 {
        let kind = match &cmd {
            None => CMD_NONE,
            Some(Command::Read { .. }) => CMD_READ,
            Some(Command::Write { .. }) => CMD_WRITE,
            Some(Command::Finish { .. }) => CMD_FINISH,
            Some(Command::Store { .. }) => CMD_STORE,
        };
        self.cmd = cmd;
        self.apply = None;
        kind
    }

    fn store_action(&mut self, action: Option<Action>) -> u32 {
        match action {
            Some(Action::Apply(apply)) => {
                self.cmd = None;
                self.apply = Some(apply);
                CMD_APPLY
            }
            Some(Action::Command(cmd)) => self.store(Some(cmd)),
            None => self.store(None),
        }
    }

    fn outcome(&self) -> Option<&Outcome> {
        match &self.cmd {
            Some(Command::Finish { outcome, .. }) => Some(outcome),
            _ => None,
        }
    }
}

#[wasm_bindgen(js_class = RawEngine)]
impl RawEngine {
    /// An engine under a policy already accepted by [`parse_policy`] (the complete JSON it
    /// returned, or any policy JSON), with jitter seeded by `seed`, writing lease records
    /// as `owner` when one is given (shared lanes need one). `undefined` if the policy, the
    /// seed or the owner is refused; the JavaScript layer validates them first.
    pub fn create(policy_json: &str, seed: f64, owner: Option<String>) -> Option<RawEngine> {
        let policy = Policy::from_json(policy_json).ok()?;
        let seed = whole(seed, "seed").ok()?;
        let engine = match owner {
            Some(owner) => Engine::with_owner(policy, seed, &owner).ok()?,
            None => Engine::new(policy, seed),
        };
        Some(RawEngine {
            engine,
            entities: Vec::new(),
            codes: Vec::new(),
            cmd: None,
            apply: None,
            error: None,
        })
    }

    /// The last error as JSON `{"kind", "message"}`, cleared by this call.
    #[wasm_bindgen(js_name = takeError)]
    pub fn take_error(&mut self) -> Option<String> {
        self.error.take().map(|f| f.to_json())
    }

    /// The effective policy as JSON.
    #[wasm_bindgen(js_name = policyJson)]
    pub fn policy_json(&self) -> String {
        json(self.engine.policy())
    }

    /// Intern an entity name; returns its handle, or `-1` if the name is empty or longer
    /// than the core accepts.
    #[wasm_bindgen(js_name = internEntity)]
    pub fn intern_entity(&mut self, name: String) -> i32 {
        if name.is_empty() || name.len() > MAX_ENTITY_LEN {
            let fault = UsageError::InvalidEntity {
                reason: format!(
                    "length {} is outside 1..={MAX_ENTITY_LEN} bytes",
                    name.len()
                ),
            };
            return self.fail(fault.into(), -1);
        }
        self.entities.push(name);
        (self.entities.len() - 1) as i32
    }

    /// Intern an error code; returns its handle, or `-1` once [`MAX_INTERNED_CODES`] are
    /// held (the caller then sends the code as text).
    #[wasm_bindgen(js_name = internCode)]
    pub fn intern_code(&mut self, code: String) -> i32 {
        if self.codes.len() >= MAX_INTERNED_CODES {
            return -1;
        }
        self.codes.push(code);
        (self.codes.len() - 1) as i32
    }

    /// Submit a write of the interned entity `entity` at `now`; `expected` is the token
    /// the writer based its change on, `deadline_ms` (negative: the policy's) overrides
    /// the policy's deadline, `holder` describes the writer in lease records (shared
    /// lanes), `no_read` says the writer has no read function (the engine then never
    /// commands a read). Returns the operation id, or `-1`.
    pub fn submit(
        &mut self,
        entity: u32,
        now: f64,
        expected: Option<String>,
        deadline_ms: f64,
        holder: Option<String>,
        no_read: bool,
    ) -> f64 {
        let result = (|| {
            let now = whole(now, "now")?;
            let deadline_ms = optional_whole(deadline_ms, "deadline_ms")?;
            let name = self
                .entities
                .get(entity as usize)
                .ok_or_else(|| Fault::argument(format!("unknown entity handle {entity}")))?;
            let options = SubmitOptions {
                expected,
                deadline_ms,
                holder,
                no_read,
            };
            self.engine.submit(name, now, options).map_err(Fault::from)
        })();
        match result {
            Ok(op) => op.0 as f64,
            Err(f) => self.fail(f, -1.0),
        }
    }

    /// Submit a write of an entity given by name (the vector runner's path); returns the
    /// operation id, or `-1`.
    #[wasm_bindgen(js_name = submitNamed)]
    pub fn submit_named(
        &mut self,
        entity: &str,
        now: f64,
        expected: Option<String>,
        deadline_ms: f64,
        holder: Option<String>,
        no_read: bool,
    ) -> f64 {
        let result = (|| {
            let now = whole(now, "now")?;
            let deadline_ms = optional_whole(deadline_ms, "deadline_ms")?;
            let options = SubmitOptions {
                expected,
                deadline_ms,
                holder,
                no_read,
            };
            self.engine
                .submit(entity, now, options)
                .map_err(Fault::from)
        })();
        match result {
            Ok(op) => op.0 as f64,
            Err(f) => self.fail(f, -1.0),
        }
    }

    /// Poll the next command of any operation into the register; returns its kind
    /// ([`CMD_NONE`], [`CMD_READ`], [`CMD_WRITE`], [`CMD_FINISH`]).
    #[wasm_bindgen(js_name = pollCommand)]
    pub fn poll_command(&mut self) -> u32 {
        let cmd = self.engine.poll_command();
        self.store(cmd)
    }

    /// Poll the pending command of one operation into the register; returns its kind.
    #[wasm_bindgen(js_name = pollCommandFor)]
    pub fn poll_command_for(&mut self, op: f64) -> u32 {
        let cmd = match Self::op(op) {
            Ok(op) => self.engine.poll_command_for(op),
            Err(_) => None,
        };
        self.store(cmd)
    }

    /// Submit an update (group commit) of the interned entity `entity` at `now`:
    /// `deadline_ms` (negative: the policy's) and `holder` as for [`RawEngine::submit`].
    /// Updates always read. Returns the operation id, or `-1`.
    #[wasm_bindgen(js_name = submitUpdate)]
    pub fn submit_update(
        &mut self,
        entity: u32,
        now: f64,
        deadline_ms: f64,
        holder: Option<String>,
    ) -> f64 {
        let result = (|| {
            let now = whole(now, "now")?;
            let deadline_ms = optional_whole(deadline_ms, "deadline_ms")?;
            let name = self
                .entities
                .get(entity as usize)
                .ok_or_else(|| Fault::argument(format!("unknown entity handle {entity}")))?;
            let options = UpdateOptions {
                deadline_ms,
                holder,
            };
            self.engine
                .submit_update(name, now, options)
                .map_err(Fault::from)
        })();
        match result {
            Ok(op) => op.0 as f64,
            Err(f) => self.fail(f, -1.0),
        }
    }

    /// Submit an update of an entity given by name (the sans-IO `Engine` wrapper's path);
    /// returns the operation id, or `-1`.
    #[wasm_bindgen(js_name = submitUpdateNamed)]
    pub fn submit_update_named(
        &mut self,
        entity: &str,
        now: f64,
        deadline_ms: f64,
        holder: Option<String>,
    ) -> f64 {
        let result = (|| {
            let now = whole(now, "now")?;
            let deadline_ms = optional_whole(deadline_ms, "deadline_ms")?;
            let options = UpdateOptions {
                deadline_ms,
                holder,
            };
            self.engine
                .submit_update(entity, now, options)
                .map_err(Fault::from)
        })();
        match result {
            Ok(op) => op.0 as f64,
            Err(f) => self.fail(f, -1.0),
        }
    }

    /// Poll the next command or batch `Apply` step of any operation into the register
    /// (the core's `poll_action`: hosts that submit updates drain with it); returns its
    /// kind ([`CMD_APPLY`] for an `Apply`).
    #[wasm_bindgen(js_name = pollAction)]
    pub fn poll_action(&mut self) -> u32 {
        let action = self.engine.poll_action();
        self.store_action(action)
    }

    /// Poll the pending command or `Apply` of one operation into the register.
    #[wasm_bindgen(js_name = pollActionFor)]
    pub fn poll_action_for(&mut self, op: f64) -> u32 {
        let action = match Self::op(op) {
            Ok(op) => self.engine.poll_action_for(op),
            Err(_) => None,
        };
        self.store_action(action)
    }

    /// The ops of a polled `Apply` whose changes to apply, in order (empty otherwise).
    #[wasm_bindgen(js_name = cmdApplyOps)]
    pub fn cmd_apply_ops(&self) -> Vec<f64> {
        match &self.apply {
            Some(apply) => apply.ops.iter().map(|o| o.0 as f64).collect(),
            None => Vec::new(),
        }
    }

    /// The leader `op` applied its batch's changes: `ops[i]` was applied when
    /// `applied[i]` is 1, else refused with the code `codes[i]` (JSON: a list of strings
    /// or nulls, one per op). The lists follow the `Apply`'s ops in order.
    #[wasm_bindgen(js_name = applyDone)]
    pub fn apply_done(
        &mut self,
        now: f64,
        op: f64,
        ops: &[f64],
        applied: &[u8],
        codes: &str,
    ) -> i32 {
        self.input(now, |_| {
            let codes: Vec<Option<String>> = serde_json::from_str(codes).map_err(|e| {
                Fault::argument(format!("codes: not a JSON list of strings or nulls: {e}"))
            })?;
            if applied.len() != ops.len() || codes.len() != ops.len() {
                return Err(Fault::argument(
                    "ops, applied, codes: must have one entry per op",
                ));
            }
            let results = ops
                .iter()
                .zip(applied)
                .zip(codes)
                .map(|((&m, &a), code)| {
                    Ok(ApplyResult {
                        op: Self::op(m)?,
                        applied: a != 0,
                        code,
                    })
                })
                .collect::<Result<Vec<_>, Fault>>()?;
            Ok(Input::ApplyDone {
                op: Self::op(op)?,
                results,
            })
        })
    }

    /// The polled command (or `Apply`) as the core's JSON, for the sans-IO `Engine`
    /// wrapper.
    #[wasm_bindgen(js_name = cmdJson)]
    pub fn cmd_json(&self) -> Option<String> {
        match &self.apply {
            Some(apply) => Some(json(apply)),
            None => self.cmd.as_ref().map(json),
        }
    }

    /// The operation of the polled command or `Apply` (`-1` when there is none).
    #[wasm_bindgen(js_name = cmdOp)]
    pub fn cmd_op(&self) -> f64 {
        match &self.apply {
            Some(apply) => apply.op.0 as f64,
            None => self.cmd.as_ref().map_or(-1.0, |c| c.op().0 as f64),
        }
    }

    /// The attempt number of a polled write (0 for other commands).
    #[wasm_bindgen(js_name = cmdAttempt)]
    pub fn cmd_attempt(&self) -> u32 {
        match &self.cmd {
            Some(Command::Write { attempt, .. }) => *attempt,
            _ => 0,
        }
    }

    /// The fence (lease epoch) of a polled write in shared lanes; `-1` when there is none.
    #[wasm_bindgen(js_name = cmdFence)]
    pub fn cmd_fence(&self) -> f64 {
        match &self.cmd {
            Some(Command::Write {
                fence: Some(fence), ..
            }) => *fence as f64,
            _ => -1.0,
        }
    }

    /// The store operation of a polled store command as the core's JSON
    /// (`{"op": "get", "key": ...}`).
    #[wasm_bindgen(js_name = cmdStoreJson)]
    pub fn cmd_store_json(&self) -> Option<String> {
        match &self.cmd {
            Some(Command::Store { operation, .. }) => Some(json(operation)),
            _ => None,
        }
    }

    /// The base token of a polled write, if any.
    #[wasm_bindgen(js_name = cmdBaseToken)]
    pub fn cmd_base_token(&self) -> Option<String> {
        match &self.cmd {
            Some(Command::Write { base_token, .. }) => base_token.clone(),
            _ => None,
        }
    }

    /// For a polled finish: `1` committed, `2` gave up (`0` for other commands).
    #[wasm_bindgen(js_name = cmdOutcomeStatus)]
    pub fn cmd_outcome_status(&self) -> u32 {
        match self.outcome() {
            Some(Outcome::Committed { .. }) => 1,
            Some(Outcome::GaveUp { .. }) => 2,
            None => 0,
        }
    }

    /// Write attempts made, for a polled finish.
    #[wasm_bindgen(js_name = cmdOutcomeAttempts)]
    pub fn cmd_outcome_attempts(&self) -> u32 {
        match self.outcome() {
            Some(Outcome::Committed { attempts, .. } | Outcome::GaveUp { attempts, .. }) => {
                *attempts
            }
            None => 0,
        }
    }

    /// The committed token of a polled finish, if known.
    #[wasm_bindgen(js_name = cmdOutcomeToken)]
    pub fn cmd_outcome_token(&self) -> Option<String> {
        match self.outcome() {
            Some(Outcome::Committed { token, .. }) => token.clone(),
            _ => None,
        }
    }

    /// The outcome of a polled finish as the core's JSON.
    #[wasm_bindgen(js_name = cmdOutcomeJson)]
    pub fn cmd_outcome_json(&self) -> Option<String> {
        self.outcome().map(json)
    }

    /// A read completed with the entity's token (`undefined`: the entity does not exist).
    #[wasm_bindgen(js_name = readDone)]
    pub fn read_done(&mut self, now: f64, op: f64, token: Option<String>) -> i32 {
        self.input(now, |_| {
            Ok(Input::ReadDone {
                op: Self::op(op)?,
                token,
            })
        })
    }

    /// A write succeeded, with the new revision's token if known.
    #[wasm_bindgen(js_name = writeDone)]
    pub fn write_done(&mut self, now: f64, op: f64, token: Option<String>) -> i32 {
        self.input(now, |_| {
            Ok(Input::WriteDone {
                op: Self::op(op)?,
                token,
            })
        })
    }

    /// A read failed. `code` is an interned code handle, `status` an HTTP status,
    /// `retry_after_ms` a hint; negative means absent.
    #[wasm_bindgen(js_name = readFailed)]
    #[allow(clippy::too_many_arguments)]
    pub fn read_failed(
        &mut self,
        now: f64,
        op: f64,
        code: i32,
        status: i32,
        retry_after_ms: f64,
        outcome_unknown: bool,
        intended_token: Option<String>,
    ) -> i32 {
        self.input(now, |me| {
            Ok(Input::ReadFailed {
                op: Self::op(op)?,
                failure: build_failure(
                    &me.codes,
                    code,
                    status,
                    retry_after_ms,
                    outcome_unknown,
                    intended_token,
                )?,
            })
        })
    }

    /// A write failed; arguments as for [`RawEngine::read_failed`].
    #[wasm_bindgen(js_name = writeFailed)]
    #[allow(clippy::too_many_arguments)]
    pub fn write_failed(
        &mut self,
        now: f64,
        op: f64,
        code: i32,
        status: i32,
        retry_after_ms: f64,
        outcome_unknown: bool,
        intended_token: Option<String>,
    ) -> i32 {
        self.input(now, |me| {
            Ok(Input::WriteFailed {
                op: Self::op(op)?,
                failure: build_failure(
                    &me.codes,
                    code,
                    status,
                    retry_after_ms,
                    outcome_unknown,
                    intended_token,
                )?,
            })
        })
    }

    /// A store command completed: the store's reply as the core's JSON
    /// (`{"reply": "found", "record": ...}`, `{"reply": "done"}`, ...).
    #[wasm_bindgen(js_name = storeReply)]
    pub fn store_reply(&mut self, now: f64, op: f64, reply: &str) -> i32 {
        self.input(now, |_| {
            let reply = serde_json::from_str::<StoreReply>(reply)
                .map_err(|e| Fault::argument(format!("reply does not match the schema: {e}")))?;
            Ok(Input::StoreReply {
                op: Self::op(op)?,
                reply,
            })
        })
    }

    /// The host abandons the operation.
    pub fn cancel(&mut self, now: f64, op: f64) -> i32 {
        self.input(now, |_| Ok(Input::Cancel { op: Self::op(op)? }))
    }

    /// Feed an input given as the core's JSON (`{"type": "read_done", "op": 1, ...}`).
    #[wasm_bindgen(js_name = handleJson)]
    pub fn handle_json(&mut self, now: f64, input: &str) -> i32 {
        self.input(now, |_| {
            serde_json::from_str::<Input>(input)
                .map_err(|e| Fault::argument(format!("input does not match the schema: {e}")))
        })
    }

    /// Fire every timer due at or before `now`.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now: f64) -> i32 {
        let result =
            whole(now, "now").and_then(|now| self.engine.handle_timeout(now).map_err(Fault::from));
        self.status(result)
    }

    /// When `handleTimeout` must next be called; `-1` when nothing waits on time.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> f64 {
        self.engine.poll_timeout().map_or(-1.0, |t| t as f64)
    }

    /// When one operation's timer fires; `-1` when it waits on none.
    #[wasm_bindgen(js_name = pollTimeoutFor)]
    pub fn poll_timeout_for(&self, op: f64) -> f64 {
        Self::op(op)
            .ok()
            .and_then(|op| self.engine.poll_timeout_for(op))
            .map_or(-1.0, |t| t as f64)
    }

    /// The next telemetry event as the core's JSON.
    #[wasm_bindgen(js_name = pollEvent)]
    pub fn poll_event(&mut self) -> Option<String> {
        self.engine.poll_event().map(|e| json(&e))
    }

    /// Every queued telemetry event, as one JSON array.
    #[wasm_bindgen(js_name = drainEvents)]
    pub fn drain_events(&mut self) -> String {
        let mut events = Vec::new();
        while let Some(e) = self.engine.poll_event() {
            events.push(e);
        }
        json(&events)
    }

    /// Counters and budget levels as the core's JSON.
    pub fn stats(&self) -> String {
        json(&self.engine.stats())
    }

    /// What the engine learned (committed tokens, budget levels) as JSON.
    #[wasm_bindgen(js_name = exportState)]
    pub fn export_state(&self) -> String {
        json(&self.engine.export_state())
    }

    /// Restore state exported earlier (JSON).
    #[wasm_bindgen(js_name = importState)]
    pub fn import_state(&mut self, state: &str) -> i32 {
        let result = serde_json::from_str::<EngineState>(state)
            .map_err(|e| Fault {
                kind: "invalid_state".into(),
                message: format!("invalid state: {e}"),
            })
            .and_then(|s| self.engine.import_state(&s).map_err(Fault::from));
        self.status(result)
    }
}

/// The decision-only retry strategy behind `RetryStrategy` in JavaScript. Tokens live
/// in JavaScript as plain numbers and are passed in field by field.
#[wasm_bindgen(js_name = RawStrategy)]
pub struct RawStrategy {
    strategy: RetryStrategy,
    scopes: Vec<String>,
    codes: Vec<String>,
    /// The failure of the last `refresh`, reused so that a repeated code is not copied.
    scratch: Failure,
    /// The code handle `scratch.code` holds (`-1`: none, `-2`: text).
    scratch_code: i32,
    last_cost: u32,
    last_class: u32,
    refusal: Option<Refusal>,
    error: Option<Fault>,
}

impl RawStrategy {
    fn token(
        scope: u32,
        attempts: f64,
        last_cost: f64,
        last_delay_ms: f64,
        started_ms: f64,
    ) -> Result<RetryToken, Fault> {
        Ok(RetryToken {
            scope,
            attempts: small(attempts, "attempts")?,
            last_cost: small(last_cost, "last_cost")?,
            last_delay_ms: whole(last_delay_ms, "last_delay_ms")?,
            started_ms: whole(started_ms, "started_ms")?,
        })
    }
}

/// `refresh` refused: the failure's class is never retried.
pub const REFUSED_NOT_RETRYABLE: f64 = -1.0;
/// `refresh` refused: the attempt limit is reached.
pub const REFUSED_ATTEMPTS_EXHAUSTED: f64 = -2.0;
/// `refresh` refused: the scope's budget is empty.
pub const REFUSED_BUDGET_EXHAUSTED: f64 = -3.0;
/// `refresh` refused: the delay would pass the deadline.
pub const REFUSED_DEADLINE_EXCEEDED: f64 = -4.0;
/// `refresh` was misused; `takeError` tells why.
pub const REFRESH_ERROR: f64 = -9.0;

#[wasm_bindgen(js_class = RawStrategy)]
impl RawStrategy {
    /// A strategy under a policy (JSON), seeded by `seed`; `undefined` if either is refused.
    pub fn create(policy_json: &str, seed: f64) -> Option<RawStrategy> {
        let policy = Policy::from_json(policy_json).ok()?;
        let seed = whole(seed, "seed").ok()?;
        Some(RawStrategy {
            strategy: RetryStrategy::new(policy, seed),
            scopes: Vec::new(),
            codes: Vec::new(),
            scratch: Failure::default(),
            scratch_code: -1,
            last_cost: 0,
            last_class: class_index(ErrorClass::Fatal),
            refusal: None,
            error: None,
        })
    }

    /// The last error as JSON `{"kind", "message"}`, cleared by this call.
    #[wasm_bindgen(js_name = takeError)]
    pub fn take_error(&mut self) -> Option<String> {
        self.error.take().map(|f| f.to_json())
    }

    /// The effective policy as JSON.
    #[wasm_bindgen(js_name = policyJson)]
    pub fn policy_json(&self) -> String {
        json(self.strategy.policy())
    }

    /// Intern a scope name; returns its handle, or `-1` once [`MAX_INTERNED_SCOPES`] are
    /// held.
    #[wasm_bindgen(js_name = internScope)]
    pub fn intern_scope(&mut self, name: String) -> i32 {
        if self.scopes.len() >= MAX_INTERNED_SCOPES {
            let fault: Fault = UsageError::TooManyScopes {
                limit: MAX_INTERNED_SCOPES,
            }
            .into();
            return self.fail(fault, -1);
        }
        self.scopes.push(name);
        (self.scopes.len() - 1) as i32
    }

    /// Intern an error code; returns its handle, or `-1` once [`MAX_INTERNED_CODES`] are
    /// held (the caller then passes the code with `setCodeText`).
    #[wasm_bindgen(js_name = internCode)]
    pub fn intern_code(&mut self, code: String) -> i32 {
        if self.codes.len() >= MAX_INTERNED_CODES {
            return -1;
        }
        self.codes.push(code);
        (self.codes.len() - 1) as i32
    }

    /// Start a call in the interned scope at `now`; returns the core's scope index for
    /// the token, or `-1`.
    pub fn acquire(&mut self, scope: u32, now: f64) -> f64 {
        let result = (|| {
            let now = whole(now, "now")?;
            let name = self
                .scopes
                .get(scope as usize)
                .ok_or_else(|| Fault::argument(format!("unknown scope handle {scope}")))?;
            self.strategy.acquire(name, now).map_err(Fault::from)
        })();
        match result {
            Ok(token) => token.scope as f64,
            Err(f) => self.fail(f, -1.0),
        }
    }

    /// Decide a retry of the call whose token is given field by field. Returns the delay
    /// in milliseconds (then `lastCost` and `lastClass` describe the retry), or one of the
    /// negative `REFUSED_*` values (then `lastRefusalJson` describes it), or
    /// [`REFRESH_ERROR`]. The failure is given as for `RawEngine::writeFailed`, or with
    /// `code = -2` and the text in `code_text` for an uninterned code.
    #[allow(clippy::too_many_arguments)]
    pub fn refresh(
        &mut self,
        scope: u32,
        attempts: f64,
        last_cost: f64,
        last_delay_ms: f64,
        started_ms: f64,
        code: i32,
        code_text: Option<String>,
        status: i32,
        retry_after_ms: f64,
        outcome_unknown: bool,
        now: f64,
    ) -> f64 {
        let result = (|| {
            let now = whole(now, "now")?;
            let mut token = Self::token(scope, attempts, last_cost, last_delay_ms, started_ms)?;
            // Only the code is heap data; keep it while the same handle repeats.
            if code != self.scratch_code || code == -2 {
                let failure = build_failure(&self.codes, code.max(-1), -1, -1.0, false, None)?;
                self.scratch.code = if code == -2 { code_text } else { failure.code };
                self.scratch_code = code;
            }
            let numbers = build_failure(&[], -1, status, retry_after_ms, false, None)?;
            self.scratch.status = numbers.status;
            self.scratch.retry_after_ms = numbers.retry_after_ms;
            self.scratch.outcome_unknown = outcome_unknown;
            self.strategy
                .refresh(&mut token, &self.scratch, now)
                .map_err(Fault::from)
        })();
        match result {
            Ok(Ok(plan)) => {
                self.last_cost = plan.cost;
                self.last_class = class_index(plan.class);
                self.refusal = None;
                plan.delay_ms as f64
            }
            Ok(Err(refusal)) => {
                let code = match refusal {
                    Refusal::NotRetryable { .. } => REFUSED_NOT_RETRYABLE,
                    Refusal::AttemptsExhausted { .. } => REFUSED_ATTEMPTS_EXHAUSTED,
                    Refusal::BudgetExhausted { .. } => REFUSED_BUDGET_EXHAUSTED,
                    Refusal::DeadlineExceeded { .. } => REFUSED_DEADLINE_EXCEEDED,
                };
                self.refusal = Some(refusal);
                code
            }
            Err(f) => self.fail(f, REFRESH_ERROR),
        }
    }

    /// Tokens the last allowed retry took.
    #[wasm_bindgen(js_name = lastCost)]
    pub fn last_cost(&self) -> u32 {
        self.last_cost
    }

    /// Class of the last allowed retry: 0 conflict, 1 throttle, 2 transient, 3 unknown.
    #[wasm_bindgen(js_name = lastClass)]
    pub fn last_class(&self) -> u32 {
        self.last_class
    }

    /// The last refusal as the core's JSON (`{"reason": ..., ...}`).
    #[wasm_bindgen(js_name = lastRefusalJson)]
    pub fn last_refusal_json(&self) -> Option<String> {
        self.refusal.as_ref().map(json)
    }

    /// The call succeeded: refund the last retry's cost or add the success reward.
    #[wasm_bindgen(js_name = recordSuccess)]
    pub fn record_success(
        &mut self,
        scope: u32,
        attempts: f64,
        last_cost: f64,
        last_delay_ms: f64,
        started_ms: f64,
    ) -> i32 {
        let result = Self::token(scope, attempts, last_cost, last_delay_ms, started_ms)
            .and_then(|t| self.strategy.record_success(&t).map_err(Fault::from));
        match result {
            Ok(()) => STATUS_OK,
            Err(f) => self.fail(f, STATUS_ERROR),
        }
    }

    /// Tokens left in the named scope's bucket.
    pub fn capacity(&self, scope: &str) -> u32 {
        self.strategy.capacity(scope)
    }
}

impl RawStrategy {
    fn fail<T>(&mut self, fault: Fault, sentinel: T) -> T {
        self.error = Some(fault);
        sentinel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(policy: &str) -> RawEngine {
        RawEngine::create(policy, 7.0, None).expect("valid policy")
    }

    #[test]
    fn numbers_are_checked() {
        assert_eq!(whole(5.0, "now"), Ok(5));
        for bad in [-1.0, 1.5, f64::NAN, f64::INFINITY, 9_007_199_254_740_992.0] {
            let e = whole(bad, "now").unwrap_err();
            assert_eq!(e.kind, "invalid_argument");
            assert!(e.message.contains("now"), "{}", e.message);
        }
        assert_eq!(optional_whole(-1.0, "x"), Ok(None));
        assert!(small(4_294_967_296.0, "attempts").is_err());
    }

    #[test]
    fn policy_results_are_json() {
        let ok: serde_json::Value = serde_json::from_str(&parse_policy("\"iam\"")).unwrap();
        assert_eq!(ok["ok"], true);
        assert_eq!(ok["policy"]["preset"], "iam");
        let bad: serde_json::Value =
            serde_json::from_str(&parse_policy(r#"{"retry":{"conflict":{"bsae_ms":1}}}"#)).unwrap();
        assert_eq!(bad["ok"], false);
        assert_eq!(bad["path"], "retry.conflict.bsae_ms");
        assert!(RawEngine::create("{", 1.0, None).is_none());
        assert!(RawEngine::create("\"iam\"", -3.0, None).is_none());
        assert!(RawEngine::create("\"iam\"", 1.0, Some(String::new())).is_none());
    }

    #[test]
    fn an_uncontended_write_through_handles() {
        let mut e = engine("\"iam\"");
        let h = e.intern_entity("role/app".into());
        assert_eq!(h, 0);
        let op = e.submit(h as u32, 0.0, None, -1.0, None, false);
        assert_eq!(op, 1.0);
        assert_eq!(e.poll_command(), CMD_READ);
        assert_eq!(e.cmd_op(), 1.0);
        assert_eq!(e.read_done(1.0, op, Some("v1".into())), STATUS_OK);
        assert_eq!(e.poll_command(), CMD_WRITE);
        assert_eq!(e.cmd_attempt(), 1);
        assert_eq!(e.cmd_base_token().as_deref(), Some("v1"));
        let code = e.intern_code("ConcurrentModification".into());
        assert_eq!(
            e.write_failed(2.0, op, code, 409, -1.0, false, None),
            STATUS_OK
        );
        assert_eq!(e.poll_command(), CMD_NONE);
        let at = e.poll_timeout();
        assert!(at >= 2.0);
        assert_eq!(e.handle_timeout(at), STATUS_OK);
        assert_eq!(e.poll_command(), CMD_READ);
        assert_eq!(e.read_done(at, op, Some("v2".into())), STATUS_OK);
        assert_eq!(e.poll_command(), CMD_WRITE);
        assert_eq!(e.cmd_attempt(), 2);
        assert_eq!(e.write_done(at, op, None), STATUS_OK);
        assert_eq!(e.poll_command(), CMD_FINISH);
        assert_eq!(e.cmd_outcome_status(), 1);
        assert_eq!(e.cmd_outcome_attempts(), 2);
        let stats: serde_json::Value = serde_json::from_str(&e.stats()).unwrap();
        assert_eq!(stats["global"]["conflicts"], 1);
        let events: serde_json::Value = serde_json::from_str(&e.drain_events()).unwrap();
        assert!(events.as_array().unwrap().len() >= 4);
    }

    #[test]
    fn shared_lanes_through_store_commands() {
        let policy = r#"{"lanes":{"mode":"shared"}}"#;
        let mut plain = engine(policy);
        let h = plain.intern_entity("role/app".into()) as u32;
        assert_eq!(plain.submit(h, 0.0, None, -1.0, None, false), -1.0);
        assert!(plain.take_error().unwrap().contains("invalid_owner"));

        let mut e = RawEngine::create(policy, 7.0, Some("host-a:1:x".into())).unwrap();
        let h = e.intern_entity("role/app".into()) as u32;
        let op = e.submit(h, 0.0, None, -1.0, Some("deploy run 4".into()), false);
        assert_eq!(e.poll_command(), CMD_STORE);
        let get: serde_json::Value = serde_json::from_str(&e.cmd_store_json().unwrap()).unwrap();
        assert_eq!(get["op"], "get");
        assert_eq!(get["key"], "role/app");
        let found = r#"{"reply":"found","record":null}"#;
        assert_eq!(e.store_reply(1.0, op, found), STATUS_OK);
        assert_eq!(e.poll_command(), CMD_STORE);
        let put: serde_json::Value = serde_json::from_str(&e.cmd_store_json().unwrap()).unwrap();
        assert_eq!(put["op"], "put_if_absent");
        assert_eq!(put["record"]["owner"], "host-a:1:x");
        assert_eq!(put["record"]["holder"], "deploy run 4");
        assert_eq!(e.store_reply(2.0, op, r#"{"reply":"done"}"#), STATUS_OK);
        assert_eq!(e.poll_command(), CMD_READ);
        assert_eq!(e.read_done(3.0, op, Some("v1".into())), STATUS_OK);
        assert_eq!(e.poll_command(), CMD_WRITE);
        assert_eq!(e.cmd_fence(), 1.0);
        assert_eq!(e.store_reply(4.0, op, r#"{"reply":"maybe"}"#), STATUS_ERROR);
        assert!(e.take_error().unwrap().contains("reply does not match"));
    }

    #[test]
    fn misuse_is_an_error_not_a_panic() {
        let mut e = engine("\"iam\"");
        assert_eq!(e.intern_entity(String::new()), -1);
        let err: serde_json::Value = serde_json::from_str(&e.take_error().unwrap()).unwrap();
        assert_eq!(err["kind"], "invalid_entity");
        assert_eq!(e.submit(99, 0.0, None, -1.0, None, false), -1.0);
        assert!(e.take_error().unwrap().contains("entity handle"));
        assert_eq!(e.read_done(0.0, 5.0, None), STATUS_ERROR);
        assert!(e.take_error().unwrap().contains("unknown_op"));
        assert_eq!(
            e.write_failed(0.0, 1.0, 42, -1, -1.0, false, None),
            STATUS_ERROR
        );
        assert!(e.take_error().unwrap().contains("error-code handle"));
        assert_eq!(
            e.write_failed(0.0, 1.0, -1, 70_000, -1.0, false, None),
            STATUS_ERROR
        );
        assert_eq!(e.handle_json(0.0, "{\"type\":\"nope\"}"), STATUS_ERROR);
        assert_eq!(e.handle_timeout(f64::NAN), STATUS_ERROR);
        assert_eq!(e.import_state("{}"), STATUS_ERROR);
        assert_eq!(e.poll_command_for(-5.0), CMD_NONE);
        assert_eq!(e.poll_timeout_for(1.5), -1.0);
        assert_eq!(
            e.take_error().map(|s| s.contains("invalid_state")),
            Some(true)
        );
    }

    #[test]
    fn strategy_follows_aws_standard() {
        let policy = r#"{"preset":"aws-standard","retry":{"transient":{"jitter":"none"}}}"#;
        let mut s = RawStrategy::create(policy, 0.0).unwrap();
        let h = s.intern_scope("iam".into()) as u32;
        let scope = s.acquire(h, 0.0) as u32;
        let code = s.intern_code("InternalFailure".into());
        let d = s.refresh(scope, 1.0, 0.0, 0.0, 0.0, code, None, 500, -1.0, false, 0.0);
        assert_eq!((d, s.last_cost(), s.last_class()), (50.0, 14, 2));
        assert_eq!(s.capacity("iam"), 486);
        let d = s.refresh(
            scope, 2.0, 14.0, 50.0, 0.0, code, None, 500, -1.0, false, 50.0,
        );
        assert_eq!(d, 100.0);
        let r = s.refresh(
            scope, 3.0, 14.0, 100.0, 0.0, code, None, 500, -1.0, false, 150.0,
        );
        assert_eq!(r, REFUSED_ATTEMPTS_EXHAUSTED);
        assert!(s
            .last_refusal_json()
            .unwrap()
            .contains("attempts_exhausted"));
        assert_eq!(s.record_success(scope, 3.0, 14.0, 100.0, 0.0), STATUS_OK);
        assert_eq!(s.capacity("iam"), 486);
        let r = s.refresh(
            scope,
            1.0,
            0.0,
            0.0,
            0.0,
            -2,
            Some("AccessDenied".into()),
            403,
            -1.0,
            false,
            150.0,
        );
        assert_eq!(r, REFUSED_NOT_RETRYABLE);
        assert_eq!(
            s.refresh(77, 1.0, 0.0, 0.0, 0.0, -1, None, 500, -1.0, false, 150.0),
            REFRESH_ERROR
        );
        assert!(s.take_error().unwrap().contains("unknown_scope"));
        assert_eq!(
            s.refresh(scope, 1.0, 0.0, 0.0, 0.0, -1, None, 500, -1.0, false, 1.0),
            REFRESH_ERROR
        );
        assert!(s.take_error().unwrap().contains("time_went_backwards"));
    }

    #[test]
    fn tokens_and_hints() {
        let ok: serde_json::Value =
            serde_json::from_str(&policy_token(
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#,
            ))
                .unwrap();
        assert_eq!(ok["ok"], true);
        assert!(ok["token"].as_str().unwrap().starts_with("c1:sha256:"));
        let bad: serde_json::Value = serde_json::from_str(&policy_token("{")).unwrap();
        assert_eq!(bad["ok"], false);
        assert_eq!(parse_retry_after_header(" 250 "), 250.0);
        assert_eq!(parse_retry_after_header("soon"), -1.0);
    }
    #[test]
    fn a_store_makes_lanes_shared_and_the_timeout_is_in_the_policy() {
        let v: serde_json::Value =
            serde_json::from_str(&policy_for_store("\"aws-standard\"")).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["policy"]["lanes"]["mode"], "shared");
        assert_eq!(v["policy"]["lease"]["store_timeout_ms"], 2000);
        let bad: serde_json::Value =
            serde_json::from_str(&policy_for_store(r#"{"lanes":{"mode":"x"}}"#)).unwrap();
        assert_eq!(bad["path"], "lanes.mode");
    }

    #[test]
    fn a_writer_without_read_is_never_asked_to_read() {
        let mut e = engine("\"iam\"");
        let h = e.intern_entity("role/app".into()) as u32;
        let op = e.submit(h, 0.0, None, -1.0, None, true);
        assert_eq!(e.poll_command(), CMD_WRITE);
        assert_eq!(e.write_done(0.0, op, None), STATUS_OK);
        assert_eq!(e.submit(h, 0.0, Some("v1".into()), -1.0, None, true), -1.0);
        assert!(e.take_error().unwrap().contains("expected_needs_read"));
    }

    #[test]
    fn owners_records_and_operations_go_through_the_core() {
        assert_eq!(owner_id("ci 7", 42, 0xc0ffee), "ci_7:42:0000000000c0ffee");
        assert_eq!(check_owner("runner-1"), None);
        assert!(check_owner("").unwrap().contains("invalid_owner"));
        let good = r#"{"owner":"a","epoch":1,"rvn":5,"lease_ms":400,"committed_token":null,"holder":null}"#;
        let ok: serde_json::Value = serde_json::from_str(&parse_record(good)).unwrap();
        assert_eq!(ok["value"]["rvn"], 5);
        let bad: serde_json::Value =
            serde_json::from_str(&parse_record(&good.replace("\"epoch\":1", "\"epoch\":0")))
                .unwrap();
        assert_eq!(
            (bad["ok"].clone(), bad["field"].clone()),
            (false.into(), "record.epoch".into())
        );
        let garbage: serde_json::Value = serde_json::from_str(&parse_record("{")).unwrap();
        assert_eq!(garbage["field"], "record");
        for (op, field) in [
            ("7", "operation"),
            (r#"{"op":"get"}"#, "operation.key"),
            (r#"{"op":"delete","key":"k"}"#, "operation.op"),
            (
                r#"{"op":"compare_and_swap","key":"k","expected_rvn":-1}"#,
                "operation.expected_rvn",
            ),
            (
                r#"{"op":"put_if_absent","key":"k","record":{}}"#,
                "operation.record",
            ),
        ] {
            let v: serde_json::Value = serde_json::from_str(&parse_store_op(op)).unwrap();
            assert_eq!(v["field"], field, "{op}");
        }
        let get: serde_json::Value =
            serde_json::from_str(&parse_store_op(r#"{"op":"get","key":"k"}"#)).unwrap();
        assert_eq!(get["value"]["op"], "get");
    }

    #[test]
    fn force_release_is_planned_and_finished_by_the_core() {
        let held = r#"{"owner":"a:1:00","epoch":5,"rvn":9,"lease_ms":400,"committed_token":"v","holder":null}"#;
        let none: serde_json::Value =
            serde_json::from_str(&plan_force_release("k", None, -1.0, 7)).unwrap();
        assert_eq!(none["done"]["result"], "no_record");
        let changed: serde_json::Value =
            serde_json::from_str(&plan_force_release("k", Some(held.into()), 8.0, 7)).unwrap();
        assert_eq!(changed["done"]["result"], "changed");
        let plan: serde_json::Value =
            serde_json::from_str(&plan_force_release("k", Some(held.into()), 9.0, 7)).unwrap();
        let swap = plan["swap"].to_string();
        assert_eq!(plan["swap"]["record"]["epoch"], 6);
        let done: serde_json::Value =
            serde_json::from_str(&finish_force_release(&swap, r#"{"reply":"done"}"#)).unwrap();
        assert_eq!(done["result"], "released");
        assert_eq!(finish_force_release(&swap, r#"{"reply":"lost"}"#), "null");
        assert!(finish_force_release("{}", "{}").contains("error"));
        assert!(plan_force_release("k", Some("{".into()), -1.0, 1).contains("error"));
    }
}
