//! The seeded generator every random decision draws from: jitter, lease record versions,
//! lease poll jitter. ChaCha8 from a host-chosen seed, so the same seed gives the same
//! decisions on every platform and in every binding; the engine draws no OS randomness.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// The seeded generator every decision draws from.
#[derive(Debug, Clone)]
pub(crate) struct DecisionRng(ChaCha8Rng);

impl DecisionRng {
    pub(crate) fn new(seed: u64) -> Self {
        DecisionRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform integer in `[lo, hi]` by rejection sampling, so the result does not depend on
    /// any library's distribution code.
    pub(crate) fn uniform(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo;
        if span == u64::MAX {
            return self.0.next_u64();
        }
        let n = span + 1;
        // Largest multiple of n that fits; draws at or above it are rejected.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.0.next_u64();
            if x < zone {
                return lo + x % n;
            }
        }
    }
}
