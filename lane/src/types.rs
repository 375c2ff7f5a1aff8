//! What a run is given and gives back: options, attempts, reports and errors, and how a
//! user's error is classified.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use writelane_core::lease::owner_id;
use writelane_core::{Failure, GiveUpReason, OpId, Outcome, PolicyError, UsageError};

use crate::clock::Clock;
use crate::store::Store;

/// Why a lane could not be built or a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine refused a call: a malformed entity, token or owner, or an expected token
    /// without a read function. Nothing was changed.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The policy cannot drive this lane (shared lanes without a store).
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// How an error of a user's `read` or `write` is classified: the error code as the
/// service sent it, the HTTP status, a retry-after hint, or an unknown outcome. The
/// policy then decides whether it is retried.
pub trait Classify {
    /// What the engine is told about this error.
    fn failure(&self) -> Failure;
}

impl Classify for Failure {
    fn failure(&self) -> Failure {
        self.clone()
    }
}

/// Any other error of the user's: no code, no status, so the policy classifies it fatal.
impl Classify for Box<dyn std::error::Error + Send + Sync> {
    fn failure(&self) -> Failure {
        Failure::default()
    }
}

/// A connection that dropped or timed out after the request went out is an unknown
/// outcome; one refused before it went out is `ConnectionError` (transient by default);
/// any other IO error has no code (fatal by default).
impl Classify for std::io::Error {
    fn failure(&self) -> Failure {
        use std::io::ErrorKind::*;
        match self.kind() {
            TimedOut | ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                Failure::unknown_outcome()
            }
            ConnectionRefused => Failure::code("ConnectionError"),
            _ => Failure::default(),
        }
    }
}

/// One write attempt, as the engine commands it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The logical write this attempt belongs to (op ids grow in submission order).
    pub op: OpId,
    /// Attempt number, from 1.
    pub number: u32,
    /// The revision the write must be based on, if known.
    pub base_token: Option<String>,
    /// With shared lanes, the lease epoch this write is made under.
    pub fence: Option<u64>,
    pub(crate) produced: Arc<Mutex<Option<String>>>,
}

impl Attempt {
    /// Report the change token of the revision this write produced; the engine hands it
    /// to the next writer (and, with shared lanes, stores it in the lease record).
    pub fn set_token(&self, token: impl Into<String>) {
        *lock(&self.produced) = Some(token.into());
    }
}

/// The type of an absent read function: `None::<NoRead<MyError>>`.
pub type NoRead<E> = fn() -> std::future::Ready<Result<Option<String>, E>>;

/// How a [`Lane`](crate::Lane) is built. Every field is optional.
#[derive(Clone, Default)]
pub struct LaneOptions {
    /// A lease store shared with writers on other machines: the lane then runs
    /// `policy.for_store()` (shared lanes, whatever the policy said).
    pub store: Option<Arc<dyn Store>>,
    /// This process in lease records; default [`default_owner`] when there is a store.
    pub owner: Option<String>,
    /// Who holds the lease, in words, for people debugging a stuck lease (every run's
    /// default; [`RunOptions::holder`] overrides it).
    pub holder: Option<String>,
    /// The clock; default [`TokioClock`](crate::TokioClock).
    pub clock: Option<Arc<dyn Clock>>,
    /// The engine's seed; default random.
    pub seed: Option<u64>,
}

/// Options of one [`Lane::run`](crate::Lane::run).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The change token the writer based its change on (needs a read function).
    pub expected: Option<String>,
    /// Overrides the policy's deadline, in milliseconds from the start of the run.
    pub deadline_ms: Option<u64>,
    /// Overrides the lane's holder text for this run.
    pub holder: Option<String>,
}

/// Options of one [`Lane::update`](crate::Lane::update).
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// Overrides the policy's deadline, in milliseconds from the start of the update. It
    /// runs while the update waits for the lane; in a batch, the leader's rules apply.
    pub deadline_ms: Option<u64>,
    /// Overrides the lane's holder text for this update.
    pub holder: Option<String>,
}

/// How a run ended: the engine's outcome (data, not an error), and the last error the
/// user's functions returned, carried.
#[derive(Debug)]
pub struct RunReport<E> {
    /// Committed, or gave up and why.
    pub outcome: Outcome,
    /// The last error `read` or `write` returned, if any.
    pub last_error: Option<E>,
}

impl<E> RunReport<E> {
    /// The committed token, or the reason the run gave up as an error (for `?`).
    pub fn into_result(self) -> Result<Option<String>, GaveUp<E>> {
        match self.outcome {
            Outcome::Committed { token, .. } => Ok(token),
            Outcome::GaveUp { reason, attempts } => Err(GaveUp {
                reason,
                attempts,
                last_error: self.last_error,
            }),
        }
    }
}

/// A run that gave up, as an error: the reason, the attempts made and the user's last
/// error.
#[derive(Debug, thiserror::Error)]
#[error("gave up after {attempts} attempts: {}", reason.name())]
pub struct GaveUp<E> {
    /// Why.
    pub reason: GiveUpReason,
    /// Write attempts made.
    pub attempts: u32,
    /// The last error `read` or `write` returned, if any.
    #[source]
    pub last_error: Option<E>,
}

/// The owner id of this process in lease records: `HOST:PID:RANDOM` (the core's
/// [`owner_id`]).
pub fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    owner_id(host.trim(), std::process::id(), entropy())
}

/// 64 random bits from the standard library's randomly keyed hasher.
pub(crate) fn entropy() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
