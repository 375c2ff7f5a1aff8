//! Retry-strategy mode: decisions only, in the shape of the AWS SDKs' `RetryStrategyV2`
//! (acquire a token, refresh it on each failure, record the success). SDK adapters in every
//! binding are thin wrappers over this type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backoff::{plan_retry, refill_on_success, Bucket, Refusal, RetryPlan, RetryRequest};
use crate::classify::{classify, Failure};
use crate::error::UsageError;
use crate::policy::Policy;
use crate::rng::DecisionRng;

/// Most scopes one strategy keeps buckets for; a caller minting a scope per request would
/// otherwise grow memory without bound.
pub const MAX_SCOPES: usize = 10_000;

/// The state of one logical call, held by the caller between decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryToken {
    /// Index of the scope (budget partition) the token draws from.
    pub scope: u32,
    /// Attempts made so far; `1` once acquired (the first call counts).
    pub attempts: u32,
    /// Tokens the last retry took, refunded on success.
    pub last_cost: u32,
    /// The last delay, used by decorrelated jitter.
    pub last_delay_ms: u64,
    /// When the call started, for the deadline.
    pub started_ms: u64,
}

/// Decision-only retry strategy with one budget bucket per scope.
#[derive(Debug, Clone)]
pub struct RetryStrategy {
    policy: Policy,
    rng: DecisionRng,
    scope_index: BTreeMap<String, u32>,
    buckets: Vec<Bucket>,
    last_now: u64,
}

impl RetryStrategy {
    /// A strategy under `policy`, drawing jitter from a generator seeded with `seed`.
    pub fn new(policy: Policy, seed: u64) -> Self {
        RetryStrategy {
            policy,
            rng: DecisionRng::new(seed),
            scope_index: BTreeMap::new(),
            buckets: Vec::new(),
            last_now: 0,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn scope_id(&mut self, scope: &str) -> Result<u32, UsageError> {
        if let Some(&id) = self.scope_index.get(scope) {
            return Ok(id);
        }
        if self.buckets.len() >= MAX_SCOPES {
            return Err(UsageError::TooManyScopes { limit: MAX_SCOPES });
        }
        let id = self.buckets.len() as u32;
        let b = &self.policy.budget;
        self.buckets.push(Bucket::new(b.initial, b.capacity));
        self.scope_index.insert(scope.to_string(), id);
        Ok(id)
    }

    fn check_time(&mut self, now: u64) -> Result<(), UsageError> {
        if now < self.last_now {
            return Err(UsageError::TimeWentBackwards {
                last: self.last_now,
                now,
            });
        }
        self.last_now = now;
        Ok(())
    }

    /// Start a logical call in `scope` (a budget partition: a service, an endpoint).
    pub fn acquire(&mut self, scope: &str, now: u64) -> Result<RetryToken, UsageError> {
        self.check_time(now)?;
        Ok(RetryToken {
            scope: self.scope_id(scope)?,
            attempts: 1,
            last_cost: 0,
            last_delay_ms: 0,
            started_ms: now,
        })
    }

    /// Decide whether the call that just failed may be retried. On `Ok`, wait `delay_ms` and
    /// call again with the updated token; on a refusal, give up with its reason.
    pub fn refresh(
        &mut self,
        token: &mut RetryToken,
        failure: &Failure,
        now: u64,
    ) -> Result<Result<RetryPlan, Refusal>, UsageError> {
        self.check_time(now)?;
        let Some(bucket) = self.buckets.get_mut(token.scope as usize) else {
            return Err(UsageError::UnknownScope { scope: token.scope });
        };
        let class = classify(&self.policy.codes, failure);
        let budgeted = self.policy.budget.enabled;
        let plan = plan_retry(
            &self.policy,
            &mut self.rng,
            RetryRequest {
                class,
                attempts: token.attempts,
                previous_delay_ms: token.last_delay_ms,
                retry_after_ms: failure.retry_after_ms,
                now,
                deadline_at: self
                    .policy
                    .deadline_ms
                    .map(|d| token.started_ms.saturating_add(d)),
                buckets: [budgeted.then_some(bucket), None],
            },
        );
        if let Ok(p) = &plan {
            token.attempts += 1;
            token.last_cost = p.cost;
            token.last_delay_ms = p.delay_ms;
        }
        Ok(plan)
    }

    /// The call succeeded: refund the last retry's cost, or add the success reward when
    /// the first attempt succeeded.
    pub fn record_success(&mut self, token: &RetryToken) -> Result<(), UsageError> {
        let Some(bucket) = self.buckets.get_mut(token.scope as usize) else {
            return Err(UsageError::UnknownScope { scope: token.scope });
        };
        if self.policy.budget.enabled {
            refill_on_success(
                &self.policy,
                token.last_cost,
                token.attempts > 1,
                [Some(bucket), None],
            );
        }
        Ok(())
    }

    /// Tokens left in `scope`'s bucket (its initial level if the scope is new).
    pub fn capacity(&self, scope: &str) -> u32 {
        match self.scope_index.get(scope) {
            Some(&id) => self.buckets[id as usize].level,
            None => self.policy.budget.initial,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> Policy {
        Policy::from_json(
            r#"{"preset":"aws-standard","retry":{
                "conflict":{"jitter":"none"},"throttle":{"jitter":"none"},
                "transient":{"jitter":"none"},"unknown":{"jitter":"none"}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn aws_standard_step_by_step() {
        let mut s = RetryStrategy::new(no_jitter(), 0);
        let mut t = s.acquire("iam", 0).unwrap();
        let f = Failure::code("InternalFailure").with_status(500);
        let p = s.refresh(&mut t, &f, 0).unwrap().unwrap();
        assert_eq!((p.delay_ms, p.cost), (50, 14));
        assert_eq!(s.capacity("iam"), 486);
        let p = s.refresh(&mut t, &f, 50).unwrap().unwrap();
        assert_eq!(p.delay_ms, 100);
        assert_eq!(s.capacity("iam"), 472);
        let r = s.refresh(&mut t, &f, 150).unwrap().unwrap_err();
        assert_eq!(r.reason(), "attempts_exhausted");
        assert_eq!(s.capacity("iam"), 472, "a refusal charges nothing");
        s.record_success(&t).unwrap();
        assert_eq!(
            s.capacity("iam"),
            486,
            "success refunds the last retry's cost"
        );
    }

    #[test]
    fn throttling_costs_five_and_starts_at_one_second() {
        let mut s = RetryStrategy::new(no_jitter(), 0);
        let mut t = s.acquire("x", 0).unwrap();
        let p = s
            .refresh(&mut t, &Failure::code("Throttling").with_status(400), 0)
            .unwrap()
            .unwrap();
        assert_eq!((p.delay_ms, p.cost), (1000, 5));
    }

    #[test]
    fn quota_refusal_is_distinct_and_free() {
        let p = Policy::from_json(r#"{"preset":"aws-standard","budget":{"initial":13}}"#).unwrap();
        let mut s = RetryStrategy::new(p, 0);
        let mut t = s.acquire("x", 0).unwrap();
        let r = s
            .refresh(&mut t, &Failure::code("InternalError"), 0)
            .unwrap()
            .unwrap_err();
        assert_eq!(r.reason(), "budget_exhausted");
        assert_eq!(s.capacity("x"), 13);
        let fresh = s.acquire("x", 0).unwrap();
        s.record_success(&fresh).unwrap();
        assert_eq!(s.capacity("x"), 14, "first-try success adds one");
    }

    #[test]
    fn non_retryable_fails_at_once() {
        let mut s = RetryStrategy::new(no_jitter(), 0);
        let mut t = s.acquire("x", 0).unwrap();
        let r = s
            .refresh(&mut t, &Failure::default().with_status(404), 0)
            .unwrap()
            .unwrap_err();
        assert_eq!(r.reason(), "not_retryable");
    }

    #[test]
    fn time_going_backwards_is_misuse() {
        let mut s = RetryStrategy::new(no_jitter(), 0);
        s.acquire("x", 10).unwrap();
        assert!(matches!(
            s.acquire("x", 5),
            Err(UsageError::TimeWentBackwards { .. })
        ));
    }
}
