//! Backoff arithmetic and retry budgets, shared by the engine and the retry strategy.
//! Integer milliseconds only: every binding must reach bit-identical decisions.

use serde::{Deserialize, Serialize};

use crate::classify::ErrorClass;
use crate::policy::{Jitter, Policy, RetryRule};
use crate::rng::DecisionRng;

/// The un-jittered delay before retry `retry_index` (0-based): `min(cap, base * 2^i)`.
pub fn backoff_ceiling(rule: &RetryRule, retry_index: u32) -> u64 {
    let factor = 1u64.checked_shl(retry_index.min(63)).unwrap_or(u64::MAX);
    rule.base_ms.saturating_mul(factor).min(rule.cap_ms)
}

/// The sawtooth window before retry `retry_index` (0-based): phase `p` (from 1) holds
/// `p + 1` retries with windows `base * 2^p` down to `base`, so the exponents run
/// 1 0, 2 1 0, 3 2 1 0, ...; capped at `cap`.
pub fn sawtooth_window(rule: &RetryRule, retry_index: u32) -> u64 {
    // Walk the phases: at most 13 of them within the policy's 100 attempts (and about
    // 92,000 for `u32::MAX`, still cheap).
    // Phase `phase` holds `phase + 1` retries, from index `first` on.
    let i = u64::from(retry_index);
    let (mut first, mut phase) = (0u64, 1u64);
    while i > first + phase {
        first += phase + 1;
        phase += 1;
    }
    let exponent = phase - (i - first);
    let factor = 1u64
        .checked_shl(exponent.min(63) as u32)
        .unwrap_or(u64::MAX);
    rule.base_ms.saturating_mul(factor).min(rule.cap_ms)
}

/// The jittered delay before retry `retry_index`; `previous_ms` is the last delay of the
/// same operation (used by decorrelated jitter; `0` before the first retry).
pub(crate) fn jittered_delay(
    rule: &RetryRule,
    retry_index: u32,
    previous_ms: u64,
    rng: &mut DecisionRng,
) -> u64 {
    match rule.jitter {
        Jitter::None => backoff_ceiling(rule, retry_index),
        Jitter::Full => rng.uniform(0, backoff_ceiling(rule, retry_index)),
        Jitter::Equal => {
            let ceiling = backoff_ceiling(rule, retry_index);
            let half = ceiling / 2;
            half + rng.uniform(0, ceiling - half)
        }
        Jitter::Decorrelated => {
            let previous = if previous_ms == 0 {
                rule.base_ms
            } else {
                previous_ms
            };
            let hi = previous.saturating_mul(3).max(rule.base_ms);
            rng.uniform(rule.base_ms, hi).min(rule.cap_ms)
        }
        Jitter::Sawtooth => rng.uniform(0, sawtooth_window(rule, retry_index)),
    }
}

/// Clamp a retry-after hint to `[delay, delay + max_extra]`.
pub fn clamp_hint(delay_ms: u64, hint_ms: u64, max_extra_ms: u64) -> u64 {
    hint_ms.clamp(delay_ms, delay_ms.saturating_add(max_extra_ms))
}

/// Which budget refused a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// The engine's (or retry strategy scope's) bucket.
    Engine,
    /// The entity's own bucket.
    Entity,
}

/// A token bucket: retries draw from it, successes refill it, never above capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Tokens available now.
    pub level: u32,
    /// The most the bucket holds.
    pub capacity: u32,
}

impl Bucket {
    /// A bucket holding `initial` tokens of `capacity`.
    pub fn new(initial: u32, capacity: u32) -> Self {
        Bucket {
            level: initial.min(capacity),
            capacity,
        }
    }

    /// Whether `cost` tokens are available.
    pub fn can_take(&self, cost: u32) -> bool {
        self.level >= cost
    }

    /// Take `cost` tokens; the caller checked [`Bucket::can_take`].
    pub fn take(&mut self, cost: u32) {
        self.level = self.level.saturating_sub(cost);
    }

    /// Return tokens, never above capacity.
    pub fn refill(&mut self, tokens: u32) {
        self.level = self.level.saturating_add(tokens).min(self.capacity);
    }
}

/// Why a retry was refused. Outcomes, not errors: the caller gives up with this reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// The error's class is never retried.
    NotRetryable {
        /// The failure's class.
        class: ErrorClass,
    },
    /// The class's attempt limit is reached.
    AttemptsExhausted {
        /// The failure's class.
        class: ErrorClass,
        /// Attempts made.
        attempts: u32,
    },
    /// A retry budget holds fewer tokens than the retry costs.
    BudgetExhausted {
        /// The failure's class.
        class: ErrorClass,
        /// Which bucket refused.
        scope: BudgetScope,
        /// Tokens the retry costs.
        needed: u32,
        /// Tokens the bucket held.
        available: u32,
    },
    /// The delay would pass the deadline.
    DeadlineExceeded {
        /// The delay that was computed.
        delay_ms: u64,
        /// Milliseconds left before the deadline.
        remaining_ms: u64,
    },
}

impl Refusal {
    /// The reason as a snake_case name (`attempts_exhausted`).
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotRetryable { .. } => "not_retryable",
            Refusal::AttemptsExhausted { .. } => "attempts_exhausted",
            Refusal::BudgetExhausted { .. } => "budget_exhausted",
            Refusal::DeadlineExceeded { .. } => "deadline_exceeded",
        }
    }
}

/// A retry that was allowed: how long to wait and what it cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPlan {
    /// Milliseconds to wait before the next attempt.
    pub delay_ms: u64,
    /// Budget tokens the retry took.
    pub cost: u32,
    /// The failure's class.
    pub class: ErrorClass,
}

/// Everything one retry decision needs to know about the operation.
pub(crate) struct RetryRequest<'a> {
    pub class: ErrorClass,
    /// Attempts made so far, counting the one that just failed.
    pub attempts: u32,
    pub previous_delay_ms: u64,
    pub retry_after_ms: Option<u64>,
    pub now: u64,
    pub deadline_at: Option<u64>,
    /// Buckets to draw from (engine, then entity), absent when budgets are off.
    pub buckets: [Option<&'a mut Bucket>; 2],
}

/// Decide one retry, in the AWS SDKs' order: retryable, attempts, quota, then the delay
/// and the deadline. Tokens are taken only when the retry is allowed.
pub(crate) fn plan_retry(
    policy: &Policy,
    rng: &mut DecisionRng,
    req: RetryRequest<'_>,
) -> Result<RetryPlan, Refusal> {
    let class = req.class;
    let Some(rule) = policy.rule(class) else {
        return Err(Refusal::NotRetryable { class });
    };
    if req.attempts >= rule.max_attempts {
        return Err(Refusal::AttemptsExhausted {
            class,
            attempts: req.attempts,
        });
    }
    let cost = if policy.budget.enabled { rule.cost } else { 0 };
    let [engine, entity] = req.buckets;
    for (bucket, scope) in [
        (&engine, BudgetScope::Engine),
        (&entity, BudgetScope::Entity),
    ] {
        if let Some(b) = bucket {
            if !b.can_take(cost) {
                return Err(Refusal::BudgetExhausted {
                    class,
                    scope,
                    needed: cost,
                    available: b.level,
                });
            }
        }
    }
    let mut delay = jittered_delay(
        rule,
        req.attempts.saturating_sub(1),
        req.previous_delay_ms,
        rng,
    );
    if let (true, Some(hint)) = (policy.retry_after.honour, req.retry_after_ms) {
        delay = clamp_hint(delay, hint, policy.retry_after.max_extra_ms);
    }
    if let Some(deadline) = req.deadline_at {
        let remaining = deadline.saturating_sub(req.now);
        if delay > remaining {
            return Err(Refusal::DeadlineExceeded {
                delay_ms: delay,
                remaining_ms: remaining,
            });
        }
    }
    for b in [engine, entity].into_iter().flatten() {
        b.take(cost);
    }
    Ok(RetryPlan {
        delay_ms: delay,
        cost,
        class,
    })
}

/// Refill buckets after a success: the cost of the retry that preceded it, or the
/// success reward when the first attempt succeeded.
pub(crate) fn refill_on_success(
    policy: &Policy,
    last_cost: u32,
    retried: bool,
    buckets: [Option<&mut Bucket>; 2],
) {
    let tokens = if retried {
        last_cost
    } else {
        policy.budget.success_reward
    };
    for b in buckets.into_iter().flatten() {
        b.refill(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(jitter: Jitter) -> RetryRule {
        RetryRule {
            max_attempts: 5,
            base_ms: 50,
            cap_ms: 20_000,
            jitter,
            cost: 14,
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let r = rule(Jitter::None);
        let got: Vec<u64> = (0..12).map(|i| backoff_ceiling(&r, i)).collect();
        assert_eq!(
            got,
            [50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 20000, 20000, 20000]
        );
        assert_eq!(backoff_ceiling(&r, 200), 20_000);
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut rng = DecisionRng::new(1);
        for i in 0..20 {
            let c = backoff_ceiling(&rule(Jitter::Full), i);
            let d = jittered_delay(&rule(Jitter::Full), i, 0, &mut rng);
            assert!(d <= c);
            let e = jittered_delay(&rule(Jitter::Equal), i, 0, &mut rng);
            assert!(e >= c / 2 && e <= c);
            let x = jittered_delay(&rule(Jitter::Decorrelated), i, d, &mut rng);
            assert!((50..=20_000).contains(&x));
        }
    }

    #[test]
    fn sawtooth_windows_climb_by_phase_and_shrink_within() {
        let r = RetryRule {
            base_ms: 100,
            cap_ms: 1_000,
            ..rule(Jitter::Sawtooth)
        };
        let got: Vec<u64> = (0..14).map(|i| sawtooth_window(&r, i)).collect();
        assert_eq!(
            got,
            [200, 100, 400, 200, 100, 800, 400, 200, 100, 1000, 800, 400, 200, 100]
        );
        // Far along, the loop still ends and the cap holds.
        assert_eq!(sawtooth_window(&r, u32::MAX), 1_000);
        let mut rng = DecisionRng::new(3);
        for i in 0..40 {
            let d = jittered_delay(&r, i, 0, &mut rng);
            assert!(d <= sawtooth_window(&r, i));
        }
    }

    #[test]
    fn uniform_covers_both_ends() {
        let mut rng = DecisionRng::new(9);
        let draws: Vec<u64> = (0..200).map(|_| rng.uniform(0, 3)).collect();
        for v in 0..=3 {
            assert!(draws.contains(&v));
        }
        assert_eq!(rng.uniform(7, 7), 7);
    }

    #[test]
    fn hints_are_clamped() {
        assert_eq!(clamp_hint(100, 50, 5000), 100);
        assert_eq!(clamp_hint(100, 1000, 5000), 1000);
        assert_eq!(clamp_hint(100, 60_000, 5000), 5100);
    }

    #[test]
    fn bucket_never_exceeds_capacity() {
        let mut b = Bucket::new(600, 500);
        assert_eq!(b.level, 500);
        b.take(14);
        b.refill(100);
        assert_eq!(b.level, 500);
        assert!(!Bucket::new(4, 500).can_take(5));
    }
}
