//! Policies: how writelane classifies errors, backs off, budgets retries, serialises writers
//! and validates change tokens.
//!
//! A policy is a preset plus overrides. Overrides are merged into the preset's JSON form
//! field by field, so an override may name only the fields it changes. Every field is
//! checked: unknown fields, wrong JSON types, out-of-range numbers and inconsistent pairs
//! (a base delay above its cap, a zero attempt count) are refused with a [`PolicyError`]
//! that names the field path and the rule it broke.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::classify::ErrorClass;
use crate::lease::LeaseRule;

/// The preset used when a policy names none.
pub const DEFAULT_PRESET: &str = "iam";

/// Every preset name, in documentation order.
pub const PRESETS: &[&str] = &["iam", "aws-standard"];

pub use crate::classify::CodeTable;
pub use crate::error::PolicyError;
pub use crate::limits::{
    DEFAULT_BATCH_MAX_CHANGES, MAX_ATTEMPTS, MAX_BATCH_CHANGES, MAX_DELAY_MS,
    MAX_POLICY_JSON_BYTES, MAX_SPIKE_THRESHOLD, MAX_TOKENS,
};

/// How a delay is randomised. `r` below is drawn uniformly from the integers of the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// The ceiling itself: `min(cap, base * 2^i)`.
    None,
    /// Uniform in `[0, ceiling]` (the AWS SDKs' standard mode).
    Full,
    /// Half the ceiling plus uniform in `[0, ceiling / 2]`.
    Equal,
    /// `min(cap, uniform(base, 3 * previous delay))`.
    Decorrelated,
    /// Uniform in `[0, window]`, the window following a sawtooth: phase `p` (from 1) tries
    /// `base * 2^p`, `base * 2^(p-1)`, ..., `base`, then the next phase starts one doubling
    /// higher; `cap` bounds every window. For writers with no lane or lease between them:
    /// conflicts climb to the scale of the crowd, and within a phase the window shrinks as
    /// the crowd drains.
    Sawtooth,
}

/// Retry rule for one error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRule {
    /// Attempts allowed, counting the first call, when the last failure is of this class.
    /// `1` means the class is never retried.
    pub max_attempts: u32,
    /// Base delay in milliseconds; retry `i` (0-based) backs off up to `base_ms * 2^i`.
    pub base_ms: u64,
    /// Cap on any one delay, in milliseconds.
    pub cap_ms: u64,
    /// How the delay is randomised.
    pub jitter: Jitter,
    /// Budget tokens one retry of this class costs.
    pub cost: u32,
}

/// Retry rules per error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRules {
    /// Another writer changed the entity at the same time (`ConcurrentModification`, 409s).
    pub conflict: RetryRule,
    /// The service asked callers to slow down.
    pub throttle: RetryRule,
    /// The service failed in a way a retry usually cures (5xx, timeouts before sending).
    pub transient: RetryRule,
    /// The reply was lost after the request was sent and the read-back showed it did not land.
    pub unknown: RetryRule,
}

/// How retry-after hints from the service are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryAfterRule {
    /// Whether a hint replaces the computed delay at all.
    pub honour: bool,
    /// A hint is clamped to `[delay, delay + max_extra_ms]`, as the AWS SDKs do.
    pub max_extra_ms: u64,
}

/// Retry budgets: token buckets that a retry draws from and a success refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetRule {
    /// Whether budgets are kept at all.
    pub enabled: bool,
    /// Capacity of the bucket per engine (per scope in retry-strategy mode).
    pub capacity: u32,
    /// Tokens the bucket holds when first created; never above `capacity`.
    pub initial: u32,
    /// Tokens a success on the first attempt adds back.
    pub success_reward: u32,
    /// Capacity of a second bucket per entity, so one hot entity cannot drain the engine's.
    /// `null` keeps no per-entity bucket.
    pub per_entity_capacity: Option<u32>,
}

/// How writers of one entity are serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneMode {
    /// One write per entity at a time inside this engine, first come first served.
    Local,
    /// No serialisation: every write proceeds at once (plain retry behaviour).
    None,
    /// One write per entity across processes and machines: local lanes plus a fenced lease
    /// in a store the writers share (see [`crate::lease`]).
    Shared,
}

/// Lane settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneRule {
    /// How writers of one entity are serialised.
    pub mode: LaneMode,
}

/// Change-token validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRule {
    /// Read the entity before a write (and before every retry) and refuse to write on a
    /// revision the writer has not seen.
    pub validate: bool,
    /// With local lanes, hand the token committed by one lane holder to the next, which
    /// then writes without reading first. Safe while every writer of the entity goes
    /// through this engine; turn it off when other tools write the same entity.
    pub handoff: bool,
}

/// Conflict-spike detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeRule {
    /// Whether spikes are detected.
    pub enabled: bool,
    /// Length of the window conflicts are counted over.
    pub window_ms: u64,
    /// Conflicts within one window that start a cool-down.
    pub threshold: u32,
    /// How long new writes to the entity wait once a spike is detected.
    pub cooldown_ms: u64,
}

/// Group commit: how updates queued behind the lane holder join its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRule {
    /// The most changes one write carries: the lane holder's and the updates queued
    /// behind it, in FIFO order. `1` turns batching off. `1..=MAX_BATCH_CHANGES`.
    pub max_changes: u32,
    /// How long an update that gets the lane waits for more updates to queue behind it
    /// before it reads. `0` (the default) waits for none.
    pub linger_ms: u64,
}

impl Default for BatchRule {
    fn default() -> Self {
        BatchRule {
            max_changes: DEFAULT_BATCH_MAX_CHANGES,
            linger_ms: 0,
        }
    }
}

impl BatchRule {
    /// Whether the rule is the default one (then it is left out of the policy's JSON, so
    /// policies written before batching existed print byte for byte as before).
    pub fn is_default(&self) -> bool {
        *self == BatchRule::default()
    }
}

/// A complete, validated policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The preset this policy started from.
    pub preset: String,
    /// Service-specific defaults applied to the preset (`dynamodb`), if any.
    pub service: Option<String>,
    /// Time allowed for one logical write, from submission to its last attempt; `null` for
    /// none. A retry whose delay would pass it is refused.
    pub deadline_ms: Option<u64>,
    /// Retry rules per error class.
    pub retry: RetryRules,
    /// Retry-after hints.
    pub retry_after: RetryAfterRule,
    /// Retry budgets.
    pub budget: BudgetRule,
    /// Lane settings.
    pub lanes: LaneRule,
    /// Change-token validation.
    pub tokens: TokenRule,
    /// Conflict-spike detection.
    pub spike: SpikeRule,
    /// Lease timings, used with `lanes.mode = "shared"`.
    pub lease: LeaseRule,
    /// Error classification table.
    pub codes: CodeTable,
    /// Group commit of updates (see [`crate::Engine::submit_update`]).
    #[serde(default, skip_serializing_if = "BatchRule::is_default")]
    pub batch: BatchRule,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn default_codes() -> CodeTable {
    CodeTable {
        conflict: strings(&[
            "ConcurrentModification",
            "EntityTemporarilyUnmodifiable",
            "OperationAborted",
            "ConflictException",
            "ResourceConflictException",
            "ConcurrentOperationException",
            "PriorRequestNotComplete",
            "ConditionalRequestConflict",
        ]),
        throttle: strings(&[
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestThrottledException",
            "TooManyRequestsException",
            "ProvisionedThroughputExceededException",
            "TransactionInProgressException",
            "RequestLimitExceeded",
            "BandwidthLimitExceeded",
            "LimitExceededException",
            "RequestThrottled",
            "SlowDown",
            "EC2ThrottledException",
        ]),
        transient: strings(&[
            "RequestTimeout",
            "RequestTimeoutException",
            "InternalError",
            "InternalFailure",
            "ServiceUnavailable",
            "ConnectionError",
        ]),
        fatal: strings(&["LimitExceeded"]),
        throttle_statuses: vec![429],
        transient_statuses: vec![500, 502, 503, 504],
    }
}

impl Policy {
    /// The named preset, unchanged. `iam` is the default; `aws-standard` reproduces the
    /// AWS SDK standard retry mode.
    pub fn preset(name: &str) -> Result<Policy, PolicyError> {
        match name {
            "iam" => Ok(Self::iam()),
            "aws-standard" => Ok(Self::aws_standard()),
            other => Err(PolicyError::new(
                "preset",
                format!(
                    "unknown preset {other:?}; expected one of {}",
                    PRESETS.join(", ")
                ),
            )),
        }
    }

    /// Tuned for IAM writes: conflicts retried with full jitter for up to two minutes,
    /// local lanes, token validation, budgets per engine and per entity, spike cool-down.
    fn iam() -> Policy {
        Policy {
            preset: "iam".into(),
            service: None,
            deadline_ms: Some(120_000),
            retry: RetryRules {
                conflict: RetryRule {
                    max_attempts: 12,
                    base_ms: 200,
                    cap_ms: 15_000,
                    jitter: Jitter::Full,
                    cost: 5,
                },
                throttle: RetryRule {
                    max_attempts: 8,
                    base_ms: 1_000,
                    cap_ms: 20_000,
                    jitter: Jitter::Full,
                    cost: 5,
                },
                transient: RetryRule {
                    max_attempts: 5,
                    base_ms: 100,
                    cap_ms: 10_000,
                    jitter: Jitter::Full,
                    cost: 10,
                },
                unknown: RetryRule {
                    max_attempts: 5,
                    base_ms: 100,
                    cap_ms: 10_000,
                    jitter: Jitter::Full,
                    cost: 10,
                },
            },
            retry_after: RetryAfterRule {
                honour: true,
                max_extra_ms: 5_000,
            },
            budget: BudgetRule {
                enabled: true,
                capacity: 500,
                initial: 500,
                success_reward: 1,
                per_entity_capacity: Some(100),
            },
            lanes: LaneRule {
                mode: LaneMode::Local,
            },
            tokens: TokenRule {
                validate: true,
                handoff: true,
            },
            spike: SpikeRule {
                enabled: true,
                window_ms: 10_000,
                threshold: 5,
                cooldown_ms: 5_000,
            },
            lease: LeaseRule::default(),
            codes: default_codes(),
            batch: BatchRule::default(),
        }
    }

    /// The AWS SDK standard retry mode: 3 attempts, full jitter, base 50 ms (1 s for
    /// throttling), cap 20 s, a 500-token quota, 14 tokens a retry (5 for throttling).
    /// The conflict class is retried with the transient rule (the SDKs do not retry it;
    /// set `retry.conflict.max_attempts` to 1 for that).
    fn aws_standard() -> Policy {
        let transient = RetryRule {
            max_attempts: 3,
            base_ms: 50,
            cap_ms: 20_000,
            jitter: Jitter::Full,
            cost: 14,
        };
        Policy {
            preset: "aws-standard".into(),
            service: None,
            deadline_ms: None,
            retry: RetryRules {
                conflict: transient,
                throttle: RetryRule {
                    base_ms: 1_000,
                    cost: 5,
                    ..transient
                },
                transient,
                unknown: transient,
            },
            retry_after: RetryAfterRule {
                honour: true,
                max_extra_ms: 5_000,
            },
            budget: BudgetRule {
                enabled: true,
                capacity: 500,
                initial: 500,
                success_reward: 1,
                per_entity_capacity: None,
            },
            lanes: LaneRule {
                mode: LaneMode::None,
            },
            tokens: TokenRule {
                validate: false,
                handoff: false,
            },
            spike: SpikeRule {
                enabled: false,
                window_ms: 10_000,
                threshold: 5,
                cooldown_ms: 5_000,
            },
            lease: LeaseRule::default(),
            codes: default_codes(),
            batch: BatchRule::default(),
        }
    }

    /// Apply a service's defaults. DynamoDB: base 25 ms and 4 attempts for the
    /// non-throttling classes, as the AWS SDKs configure it.
    fn apply_service(&mut self, service: &str) -> Result<(), PolicyError> {
        match service {
            "dynamodb" => {
                for rule in [
                    &mut self.retry.conflict,
                    &mut self.retry.transient,
                    &mut self.retry.unknown,
                ] {
                    rule.base_ms = 25;
                    rule.max_attempts = 4;
                }
                self.retry.throttle.max_attempts = 4;
                self.service = Some(service.into());
                Ok(())
            }
            other => Err(PolicyError::new(
                "service",
                format!("unknown service {other:?}; expected \"dynamodb\" or null"),
            )),
        }
    }

    /// The policy a lane with a lease store runs: the same policy with `lanes.mode` set
    /// to `shared`, whatever the preset or the overrides said. A store is how a user asks
    /// for one writer per entity across machines, so every binding given a store applies
    /// this one rule (`aws-standard`, whose lanes are `none`, included) rather than
    /// refusing or guessing.
    pub fn for_store(mut self) -> Policy {
        self.lanes.mode = LaneMode::Shared;
        self
    }

    /// Build a policy from JSON text: either a preset name as a JSON string, or an object
    /// with an optional `preset` (default `iam`), an optional `service`, and overrides of
    /// any field of the effective policy.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        if text.len() > MAX_POLICY_JSON_BYTES {
            return Err(PolicyError::new(
                "$",
                format!(
                    "policy JSON is {} bytes; the limit is {MAX_POLICY_JSON_BYTES}",
                    text.len()
                ),
            ));
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            PolicyError::new(
                "$",
                format!(
                    "malformed JSON at line {} column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        Self::from_value(&value)
    }

    /// Build a policy from a parsed JSON value (see [`Policy::from_json`]).
    pub fn from_value(value: &Value) -> Result<Policy, PolicyError> {
        let overrides = match value {
            Value::String(name) => return Self::preset(name),
            Value::Null => return Self::preset(DEFAULT_PRESET),
            Value::Object(map) => map,
            other => {
                return Err(PolicyError::new(
                    "$",
                    format!("expected a preset name or an object, found {}", kind(other)),
                ))
            }
        };
        let preset_name = match overrides.get("preset") {
            None | Some(Value::Null) => DEFAULT_PRESET,
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(PolicyError::new(
                    "preset",
                    format!("expected a string, found {}", kind(other)),
                ))
            }
        };
        let mut base = Self::preset(preset_name)?;
        match overrides.get("service") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => base.apply_service(s)?,
            Some(other) => {
                return Err(PolicyError::new(
                    "service",
                    format!("expected a string or null, found {}", kind(other)),
                ))
            }
        }
        let mut merged = serde_json::to_value(&base).expect("a policy always serialises");
        // `batch` is left out of the JSON while it is the default; overrides may still name it.
        if let Value::Object(map) = &mut merged {
            map.entry("batch").or_insert_with(|| {
                serde_json::to_value(base.batch).expect("a batch rule always serialises")
            });
        }
        let mut rest = overrides.clone();
        rest.remove("preset");
        rest.remove("service");
        merge(&mut merged, &Value::Object(rest), "")?;
        check_enums(&merged)?;
        let mut policy: Policy = serde_json::from_value(merged)
            .map_err(|e| PolicyError::new("$", format!("does not match the schema: {e}")))?;
        let timeout_given = overrides
            .get("lease")
            .and_then(|l| l.get("store_timeout_ms"))
            .is_some();
        if !timeout_given {
            policy.lease.store_timeout_ms = policy.lease.default_store_timeout_ms();
        }
        policy.validate()?;
        Ok(policy)
    }

    /// The effective policy as pretty JSON. Feeding it to [`Policy::from_json`] gives the
    /// same policy back.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a policy always serialises")
    }

    /// Check ranges and consistency. Policies built by [`Policy::from_json`] are already
    /// validated; call this after changing fields by hand. Sections are checked in the
    /// order of the fields, and the first broken rule is reported.
    pub fn validate(&self) -> Result<(), PolicyError> {
        validate_deadline(self.deadline_ms)?;
        validate_retry(&self.retry)?;
        validate_retry_after(&self.retry_after)?;
        validate_budget(&self.budget)?;
        validate_spike(&self.spike)?;
        self.lease.validate()?;
        validate_codes(&self.codes)?;
        validate_batch(&self.batch)
    }

    /// The retry rule of a retryable class.
    pub fn rule(&self, class: ErrorClass) -> Option<&RetryRule> {
        use ErrorClass::*;
        match class {
            Conflict => Some(&self.retry.conflict),
            Throttle => Some(&self.retry.throttle),
            Transient => Some(&self.retry.transient),
            Unknown => Some(&self.retry.unknown),
            Fatal => None,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::iam()
    }
}

/// `deadline_ms`: none, or `1..=MAX_DELAY_MS`.
fn validate_deadline(deadline_ms: Option<u64>) -> Result<(), PolicyError> {
    match deadline_ms {
        Some(d) => range_u64("deadline_ms", d, 1, MAX_DELAY_MS),
        None => Ok(()),
    }
}

/// `retry.*`: each class's rule, in class order.
fn validate_retry(retry: &RetryRules) -> Result<(), PolicyError> {
    for (name, rule) in [
        ("conflict", &retry.conflict),
        ("throttle", &retry.throttle),
        ("transient", &retry.transient),
        ("unknown", &retry.unknown),
    ] {
        validate_retry_rule(name, rule)?;
    }
    Ok(())
}

/// `retry.<class>`: at least one attempt, delays in range with the base under the cap, a
/// cost in range.
fn validate_retry_rule(class: &str, rule: &RetryRule) -> Result<(), PolicyError> {
    let p = |f: &str| format!("retry.{class}.{f}");
    if rule.max_attempts == 0 {
        return Err(PolicyError::new(
            p("max_attempts"),
            "must be at least 1 (the first call counts as an attempt)",
        ));
    }
    range_u64(
        &p("max_attempts"),
        rule.max_attempts.into(),
        1,
        MAX_ATTEMPTS.into(),
    )?;
    range_u64(&p("base_ms"), rule.base_ms, 0, MAX_DELAY_MS)?;
    range_u64(&p("cap_ms"), rule.cap_ms, 0, MAX_DELAY_MS)?;
    if rule.base_ms > rule.cap_ms {
        return Err(PolicyError::new(
            p("base_ms"),
            format!(
                "must not exceed cap_ms ({} > {})",
                rule.base_ms, rule.cap_ms
            ),
        ));
    }
    range_u64(&p("cost"), rule.cost.into(), 0, MAX_TOKENS.into())
}

/// `retry_after`: the extra a hint may add is at most a day.
fn validate_retry_after(rule: &RetryAfterRule) -> Result<(), PolicyError> {
    range_u64(
        "retry_after.max_extra_ms",
        rule.max_extra_ms,
        0,
        MAX_DELAY_MS,
    )
}

/// `budget`: capacities and the reward in range, the initial level within the capacity.
fn validate_budget(b: &BudgetRule) -> Result<(), PolicyError> {
    range_u64("budget.capacity", b.capacity.into(), 0, MAX_TOKENS.into())?;
    if b.initial > b.capacity {
        return Err(PolicyError::new(
            "budget.initial",
            format!(
                "must not exceed budget.capacity ({} > {})",
                b.initial, b.capacity
            ),
        ));
    }
    range_u64(
        "budget.success_reward",
        b.success_reward.into(),
        0,
        MAX_TOKENS.into(),
    )?;
    if let Some(c) = b.per_entity_capacity {
        range_u64("budget.per_entity_capacity", c.into(), 0, MAX_TOKENS.into())?;
    }
    Ok(())
}

/// `spike`: a window of at least 1 ms, a threshold of at least one conflict, a cool-down
/// of at most a day.
fn validate_spike(s: &SpikeRule) -> Result<(), PolicyError> {
    range_u64("spike.window_ms", s.window_ms, 1, MAX_DELAY_MS)?;
    range_u64(
        "spike.threshold",
        s.threshold.into(),
        1,
        MAX_SPIKE_THRESHOLD.into(),
    )?;
    range_u64("spike.cooldown_ms", s.cooldown_ms, 0, MAX_DELAY_MS)
}

/// `batch`: `1..=MAX_BATCH_CHANGES` changes per write, a linger of at most a day.
fn validate_batch(b: &BatchRule) -> Result<(), PolicyError> {
    range_u64(
        "batch.max_changes",
        b.max_changes.into(),
        1,
        MAX_BATCH_CHANGES.into(),
    )?;
    range_u64("batch.linger_ms", b.linger_ms, 0, MAX_DELAY_MS)
}

/// `codes`: non-empty codes of at most 128 characters, HTTP statuses in `100..=599`.
fn validate_codes(codes: &CodeTable) -> Result<(), PolicyError> {
    for (name, list) in [
        ("conflict", &codes.conflict),
        ("throttle", &codes.throttle),
        ("transient", &codes.transient),
        ("fatal", &codes.fatal),
    ] {
        for (i, code) in list.iter().enumerate() {
            if code.is_empty() || code.len() > 128 {
                return Err(PolicyError::new(
                    format!("codes.{name}[{i}]"),
                    "must be a non-empty code of at most 128 characters",
                ));
            }
        }
    }
    for (name, list) in [
        ("throttle_statuses", &codes.throttle_statuses),
        ("transient_statuses", &codes.transient_statuses),
    ] {
        for (i, status) in list.iter().enumerate() {
            if !(100..=599).contains(status) {
                return Err(PolicyError::new(
                    format!("codes.{name}[{i}]"),
                    format!("must be an HTTP status in 100..=599, found {status}"),
                ));
            }
        }
    }
    Ok(())
}

fn range_u64(path: &str, v: u64, lo: u64, hi: u64) -> Result<(), PolicyError> {
    if v < lo || v > hi {
        Err(PolicyError::new(
            path,
            format!("must be in {lo}..={hi}, found {v}"),
        ))
    } else {
        Ok(())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a non-negative integer",
        Value::Number(n) if n.is_i64() => "a negative number",
        Value::Number(_) => "a fractional number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Fields whose preset value is `null` and what they accept instead.
fn nullable_number(path: &str) -> bool {
    matches!(path, "deadline_ms" | "budget.per_entity_capacity")
}

/// Merge `over` into `base`, refusing unknown fields and values of the wrong JSON type.
fn merge(base: &mut Value, over: &Value, path: &str) -> Result<(), PolicyError> {
    let (Value::Object(base_map), Value::Object(over_map)) = (&mut *base, over) else {
        unreachable!("merge is called on objects only")
    };
    for (key, value) in over_map {
        let field = join(path, key);
        let Some(slot) = base_map.get_mut(key) else {
            let known: Vec<&str> = base_map.keys().map(String::as_str).collect();
            return Err(PolicyError::new(
                field,
                format!("unknown field; expected one of {}", known.join(", ")),
            ));
        };
        merge_field(slot, value, &field)?;
    }
    Ok(())
}

fn merge_field(slot: &mut Value, value: &Value, field: &str) -> Result<(), PolicyError> {
    match (&*slot, value) {
        (Value::Object(_), Value::Object(_)) => merge(slot, value, field),
        (Value::Object(_), other) => Err(PolicyError::new(
            field,
            format!("expected an object, found {}", kind(other)),
        )),
        (Value::Array(items), Value::Array(new_items)) => {
            let element_is_number =
                items.first().is_some_and(Value::is_number) || field.ends_with("_statuses");
            for (i, item) in new_items.iter().enumerate() {
                let ok = if element_is_number {
                    item.as_u64().is_some_and(|n| n <= u16::MAX as u64)
                } else {
                    item.is_string()
                };
                if !ok {
                    let want = if element_is_number {
                        "an HTTP status number"
                    } else {
                        "a string"
                    };
                    return Err(PolicyError::new(
                        format!("{field}[{i}]"),
                        format!("expected {want}, found {}", kind(item)),
                    ));
                }
            }
            *slot = value.clone();
            Ok(())
        }
        (Value::Bool(_), Value::Bool(_)) | (Value::String(_), Value::String(_)) => {
            *slot = value.clone();
            Ok(())
        }
        (Value::Number(_), v) | (Value::Null, v) if nullable_number(field) || slot.is_number() => {
            match v {
                Value::Null if nullable_number(field) => {
                    *slot = Value::Null;
                    Ok(())
                }
                Value::Number(n) if n.is_u64() => {
                    let n = n.as_u64().unwrap_or(u64::MAX);
                    if n > u32::MAX as u64 && !field.ends_with("_ms") {
                        return Err(PolicyError::new(
                            field,
                            format!("must be at most {}, found {n}", u32::MAX),
                        ));
                    }
                    *slot = value.clone();
                    Ok(())
                }
                other => Err(PolicyError::new(
                    field,
                    format!(
                        "expected a non-negative integer{}, found {}",
                        if nullable_number(field) {
                            " or null"
                        } else {
                            ""
                        },
                        kind(other)
                    ),
                )),
            }
        }
        (expected, other) => Err(PolicyError::new(
            field,
            format!("expected {}, found {}", kind(expected), kind(other)),
        )),
    }
}

fn check_enums(merged: &Value) -> Result<(), PolicyError> {
    const JITTERS: &[&str] = &["none", "full", "equal", "decorrelated", "sawtooth"];
    for class in ["conflict", "throttle", "transient", "unknown"] {
        let v = &merged["retry"][class]["jitter"];
        let s = v.as_str().unwrap_or_default();
        if !JITTERS.contains(&s) {
            return Err(PolicyError::new(
                format!("retry.{class}.jitter"),
                format!(
                    "unknown jitter {s:?}; expected one of {}",
                    JITTERS.join(", ")
                ),
            ));
        }
    }
    let mode = merged["lanes"]["mode"].as_str().unwrap_or_default();
    if !["local", "none", "shared"].contains(&mode) {
        return Err(PolicyError::new(
            "lanes.mode",
            format!("unknown lane mode {mode:?}; expected local, none or shared"),
        ));
    }
    Ok(())
}

/// Parse a policy from a JSON object map (used by bindings that hold a map already).
pub fn from_map(map: Map<String, Value>) -> Result<Policy, PolicyError> {
    Policy::from_value(&Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> PolicyError {
        Policy::from_json(text).unwrap_err()
    }

    #[test]
    fn presets_validate_and_round_trip() {
        for name in PRESETS {
            let p = Policy::preset(name).unwrap();
            p.validate().unwrap();
            assert_eq!(Policy::from_json(&p.to_json()).unwrap(), p);
        }
    }

    #[test]
    fn default_is_iam() {
        assert_eq!(Policy::from_json("{}").unwrap().preset, "iam");
        assert_eq!(Policy::from_json("null").unwrap().preset, "iam");
        assert_eq!(
            Policy::from_json("\"aws-standard\"").unwrap().preset,
            "aws-standard"
        );
    }

    #[test]
    fn overrides_merge_field_by_field() {
        let p = Policy::from_json(r#"{"retry":{"conflict":{"base_ms":10}}}"#).unwrap();
        assert_eq!(p.retry.conflict.base_ms, 10);
        assert_eq!(p.retry.conflict.cap_ms, Policy::iam().retry.conflict.cap_ms);
    }

    #[test]
    fn unknown_preset_names_the_field() {
        let e = err(r#"{"preset":"nope"}"#);
        assert_eq!(e.path, "preset");
        assert!(e.rule.contains("unknown preset"));
    }

    #[test]
    fn unknown_field_names_the_path() {
        assert_eq!(
            err(r#"{"retry":{"conflict":{"bsae_ms":1}}}"#).path,
            "retry.conflict.bsae_ms"
        );
        assert_eq!(err(r#"{"colour":1}"#).path, "colour");
    }

    #[test]
    fn negative_fractional_and_wrong_types_are_refused() {
        let e = err(r#"{"budget":{"capacity":-1}}"#);
        assert_eq!(e.path, "budget.capacity");
        assert!(e.rule.contains("negative"));
        assert_eq!(err(r#"{"deadline_ms":1.5}"#).path, "deadline_ms");
        assert_eq!(
            err(r#"{"tokens":{"validate":"yes"}}"#).path,
            "tokens.validate"
        );
        assert_eq!(err(r#"{"retry":7}"#).path, "retry");
        assert_eq!(
            err(r#"{"codes":{"conflict":[1]}}"#).path,
            "codes.conflict[0]"
        );
    }

    #[test]
    fn inconsistent_values_are_refused() {
        let e = err(r#"{"retry":{"conflict":{"base_ms":500,"cap_ms":100}}}"#);
        assert_eq!(e.path, "retry.conflict.base_ms");
        assert!(e.rule.contains("cap_ms"));
        assert_eq!(
            err(r#"{"retry":{"throttle":{"max_attempts":0}}}"#).path,
            "retry.throttle.max_attempts"
        );
        assert_eq!(err(r#"{"budget":{"initial":600}}"#).path, "budget.initial");
        assert_eq!(err(r#"{"deadline_ms":999999999999}"#).path, "deadline_ms");
        assert_eq!(
            err(r#"{"retry":{"unknown":{"jitter":"wild"}}}"#).path,
            "retry.unknown.jitter"
        );
        assert_eq!(err(r#"{"lanes":{"mode":"global"}}"#).path, "lanes.mode");
        assert_eq!(
            err(r#"{"codes":{"throttle_statuses":[99]}}"#).path,
            "codes.throttle_statuses[0]"
        );
    }

    #[test]
    fn each_section_reports_its_first_broken_rule_word_for_word() {
        // Bindings and vectors compare these texts: one case per section validator.
        for (policy, message) in [
            (
                r#"{"deadline_ms":0}"#,
                "policy field `deadline_ms`: must be in 1..=86400000, found 0",
            ),
            (
                r#"{"retry":{"conflict":{"max_attempts":0}}}"#,
                "policy field `retry.conflict.max_attempts`: must be at least 1 (the first call counts as an attempt)",
            ),
            (
                r#"{"retry":{"unknown":{"cost":1000001}}}"#,
                "policy field `retry.unknown.cost`: must be in 0..=1000000, found 1000001",
            ),
            (
                r#"{"retry_after":{"max_extra_ms":86400001}}"#,
                "policy field `retry_after.max_extra_ms`: must be in 0..=86400000, found 86400001",
            ),
            (
                r#"{"budget":{"initial":600}}"#,
                "policy field `budget.initial`: must not exceed budget.capacity (600 > 500)",
            ),
            (
                r#"{"spike":{"threshold":1001}}"#,
                "policy field `spike.threshold`: must be in 1..=1000, found 1001",
            ),
            (
                r#"{"lease":{"renew_ms":6000}}"#,
                "policy field `lease.lease_ms`: must be at least twice renew_ms (10000 < 2 x 6000)",
            ),
            (
                r#"{"codes":{"transient_statuses":[500,600]}}"#,
                "policy field `codes.transient_statuses[1]`: must be an HTTP status in 100..=599, found 600",
            ),
            // Sections are checked in field order: the earliest broken one is reported.
            (
                r#"{"deadline_ms":0,"retry":{"conflict":{"max_attempts":0}},"codes":{"fatal":[""]}}"#,
                "policy field `deadline_ms`: must be in 1..=86400000, found 0",
            ),
        ] {
            assert_eq!(err(policy).to_string(), message, "{policy}");
        }
    }

    #[test]
    fn malformed_and_oversized_json_are_refused() {
        assert!(err("{").rule.contains("malformed JSON"));
        assert_eq!(err("[1]").path, "$");
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_POLICY_JSON_BYTES));
        assert!(err(&big).rule.contains("limit"));
    }

    #[test]
    fn dynamodb_service_flag() {
        let p = Policy::from_json(r#"{"preset":"aws-standard","service":"dynamodb"}"#).unwrap();
        assert_eq!(p.retry.transient.base_ms, 25);
        assert_eq!(p.retry.transient.max_attempts, 4);
        assert_eq!(p.retry.throttle.base_ms, 1_000);
        assert_eq!(err(r#"{"service":"s3"}"#).path, "service");
    }
}
