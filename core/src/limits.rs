//! Bounds the core enforces on what it is given: policy fields, entity names, change
//! tokens, error codes. They live apart from the modules that check them so that the
//! policy, the lease rules and the engine can share them without depending on each other.

/// Upper bound for any delay, deadline or window in a policy: one day.
pub const MAX_DELAY_MS: u64 = 86_400_000;
/// Upper bound for attempt counts: more than this is a misconfiguration, not a policy.
pub const MAX_ATTEMPTS: u32 = 100;
/// Upper bound for budget capacities and costs.
pub const MAX_TOKENS: u32 = 1_000_000;
/// Upper bound for the spike-detection threshold (it sizes a per-entity ring).
pub const MAX_SPIKE_THRESHOLD: u32 = 1_000;
/// Upper bound for a policy document given as JSON text.
pub const MAX_POLICY_JSON_BYTES: usize = 64 * 1024;

/// Longest entity name accepted (an ARN is at most 2048 characters).
pub const MAX_ENTITY_LEN: usize = 2048;
/// Longest change token accepted.
pub const MAX_TOKEN_LEN: usize = 1024;
/// Longest error code accepted in a failure.
pub(crate) const MAX_CODE_LEN: usize = 256;

/// The most changes one batched write may carry (`batch.max_changes`).
pub const MAX_BATCH_CHANGES: u32 = 1_024;

/// `batch.max_changes` when the policy does not set it.
pub const DEFAULT_BATCH_MAX_CHANGES: u32 = 64;
