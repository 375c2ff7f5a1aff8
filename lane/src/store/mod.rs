//! Lease stores: the three operations every adapter implements, the call a lane makes
//! (bounded by the policy's store timeout), a safe force-release, the memory store, store
//! URLs ([`open`]) and the administrative operations beside the three ([`StoreAdmin`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use writelane_core::lease::{
    finish_force_release, plan_force_release, ForceReleasePlan, ForceReleaseResult, LeaseRecord,
    StoreOp, StoreReply,
};

pub mod admin;
pub mod url;

pub use admin::{AdminError, Entry, InitReport, StoreAdmin};
pub use url::{open, OpenError, OpenOptions, OpenedStore, StoreLocation};

#[cfg(all(unix, feature = "file"))]
pub mod file;

#[cfg(feature = "redis")]
pub mod redis;

#[cfg(any(feature = "dynamodb", feature = "s3"))]
mod aws;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;

#[cfg(feature = "s3")]
pub mod s3;

/// A boxed future that is `Send`, as the [`Store`] and [`crate::Clock`] traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A lease store: one record per key (the entity's name) and three strongly consistent
/// operations. An adapter never interprets a record (the core parses and validates what
/// it reads, [`LeaseRecord::from_json`]) and never panics: a failure is
/// [`StoreReply::Unavailable`] when the request surely did not take effect, and
/// [`StoreReply::Lost`] when it was sent and no reply came back. A lane bounds every call
/// by its policy's `lease.store_timeout_ms` and reports a call still running then as
/// `Lost`; adapters also bound their own requests by the timeout they were built with.
pub trait Store: Send + Sync {
    /// Read the record at `key`: [`StoreReply::Found`] (with `None` when there is none).
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreReply>;

    /// Create the record if there is none: [`StoreReply::Done`], or
    /// [`StoreReply::Refused`] with the record found.
    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply>;

    /// Replace the record if its rvn is `expected_rvn`: [`StoreReply::Done`], or
    /// [`StoreReply::Refused`] with the record found (`None` when there is none).
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected_rvn: u64,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply>;
}

/// Carry out one store operation with `store`, bounded by `timeout_ms` (a call with no
/// reply by then is `Lost`). A reply of the wrong kind for the operation (an adapter's
/// bug) is `Lost` too: reading back is always safe.
pub async fn apply(store: &dyn Store, operation: StoreOp, timeout_ms: u64) -> StoreReply {
    let is_get = matches!(operation, StoreOp::Get { .. });
    let call = async {
        match &operation {
            StoreOp::Get { key } => store.get(key).await,
            StoreOp::PutIfAbsent { key, record } => store.put_if_absent(key, record).await,
            StoreOp::CompareAndSwap {
                key,
                expected_rvn,
                record,
            } => store.compare_and_swap(key, *expected_rvn, record).await,
        }
    };
    let reply = tokio::time::timeout(Duration::from_millis(timeout_ms), call)
        .await
        .unwrap_or(StoreReply::Lost);
    match (is_get, reply) {
        (true, StoreReply::Done | StoreReply::Refused { .. })
        | (false, StoreReply::Found { .. }) => StoreReply::Lost,
        (_, reply) => reply,
    }
}

/// A force-release whose outcome could not be learned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForceReleaseError {
    /// The read of the record got no answer; nothing was written.
    #[error("the lease store did not answer the read of {key:?}: nothing was written")]
    ReadUnanswered {
        /// The key.
        key: String,
    },
    /// The compare-and-swap got no answer (`lost` or `unavailable`): it may or may not
    /// have landed. Read the record again.
    #[error("the compare-and-swap of {key:?} got no answer ({reply}): read the record again")]
    SwapUnanswered {
        /// The key.
        key: String,
        /// `lost` or `unavailable`.
        reply: &'static str,
    },
}

/// Free a stuck lease at `key` as the core plans it: read the record, then replace it by
/// compare-and-swap (never delete it) with a free record whose epoch is bumped and whose
/// token is cleared. With `expected_rvn`, only the holding the operator inspected is
/// released. `entropy` draws the new rvn (`None`: random). Each call is bounded by
/// `timeout_ms`.
pub async fn force_release(
    store: &dyn Store,
    key: &str,
    expected_rvn: Option<u64>,
    entropy: Option<u64>,
    timeout_ms: u64,
) -> Result<ForceReleaseResult, ForceReleaseError> {
    let get = StoreOp::Get {
        key: key.to_string(),
    };
    let StoreReply::Found { record } = apply(store, get, timeout_ms).await else {
        return Err(ForceReleaseError::ReadUnanswered {
            key: key.to_string(),
        });
    };
    let entropy = entropy.unwrap_or_else(crate::types::entropy);
    match plan_force_release(key, record, expected_rvn, entropy) {
        ForceReleasePlan::Done(result) => Ok(result),
        ForceReleasePlan::Swap(swap) => {
            let reply = apply(store, swap.clone(), timeout_ms).await;
            let name = if reply == StoreReply::Lost {
                "lost"
            } else {
                "unavailable"
            };
            finish_force_release(&swap, reply).ok_or(ForceReleaseError::SwapUnanswered {
                key: key.to_string(),
                reply: name,
            })
        }
    }
}

/// A lease store in memory (the core's reference store behind a mutex): for tests, and
/// for several lanes of one process that should share leases as machines would.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<writelane_core::lease::MemoryStore>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The record at `key`, if any.
    pub fn record(&self, key: &str) -> Option<LeaseRecord> {
        self.lock().record(key).cloned()
    }

    /// Put `record` at `key` directly (for tests that stage another holder).
    pub fn set(&self, key: &str, record: Option<LeaseRecord>) {
        self.lock().set(key, record);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, writelane_core::lease::MemoryStore> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, op: StoreOp) -> BoxFuture<'_, StoreReply> {
        let reply = self.lock().apply(op);
        Box::pin(std::future::ready(reply))
    }
}

impl Store for MemoryStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreReply> {
        self.apply(StoreOp::Get {
            key: key.to_string(),
        })
    }

    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        self.apply(StoreOp::PutIfAbsent {
            key: key.to_string(),
            record: record.clone(),
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected_rvn: u64,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        self.apply(StoreOp::CompareAndSwap {
            key: key.to_string(),
            expected_rvn,
            record: record.clone(),
        })
    }
}
