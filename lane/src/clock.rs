//! The lane's clock: milliseconds on a monotonic clock, and sleeping until one of them.

use crate::store::BoxFuture;

/// The clock a [`crate::Lane`] passes to its engine and sleeps on. The default is
/// [`TokioClock`]; tests inject a virtual one.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since some fixed start; never goes backwards.
    fn now_ms(&self) -> u64;
    /// Resolve once [`Clock::now_ms`] has reached `ms` (at once if it has).
    fn sleep_until(&self, ms: u64) -> BoxFuture<'_, ()>;
}

/// tokio's monotonic clock (`tokio::time::Instant`), counted from its creation; it follows
/// tokio's paused time in tests.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        TokioClock {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn sleep_until(&self, ms: u64) -> BoxFuture<'_, ()> {
        let at = self.start + std::time::Duration::from_millis(ms);
        Box::pin(tokio::time::sleep_until(at))
    }
}
