//! # writelane
//!
//! The Rust driver of [`writelane_core`]: an async [`Lane`] on tokio that runs logical
//! writes of cloud entities (IAM roles, users, policies) under the write discipline, and
//! lease-store adapters that let writers on different machines share one lane per entity.
//!
//! ```
//! use writelane::{Lane, LaneOptions, Policy, RunOptions};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let lane = Lane::new(Policy::preset("iam")?, LaneOptions::default())?;
//! let report = lane
//!     .run(
//!         "arn:aws:iam::123456789012:role/deploy",
//!         |attempt| async move { attempt.set_token("v2"); Ok::<_, std::io::Error>(()) },
//!         Some(|| async { Ok(Some("v1".to_string())) }),
//!         RunOptions::default(),
//!     )
//!     .await?;
//! let token = report.into_result()?; // Some("v2"), or the reason it gave up as an error
//! # assert_eq!(token.as_deref(), Some("v2")); Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! The driver is thin: the engine decides every step (lanes, leases, backoff, budgets,
//! what a store reply means); the lane sleeps where the engine says, calls your `read`
//! and `write` and the store adapter, and feeds back what happened. A [`Store`] has three
//! operations (get, put-if-absent, compare-and-swap) and turns its failures into
//! [`StoreReply::Lost`] or [`StoreReply::Unavailable`]. Adapters: [`MemoryStore`] (always),
//! `FileStore` (feature `file`, on by default), `RedisStore` (`redis`), `DynamoDbStore`
//! (`dynamodb`) and `S3Store` (`s3`).
//!
//! A writer that is one piece of work of unknown length (a command, as `writelane hold`
//! runs) takes its leases with a [`LeaseHolder`] instead: the same records and rules, with
//! several entities acquired in sorted order, renewals until the work ends, and a signal
//! when a lease is lost ([`Holding::lost`]).

#![deny(missing_docs)]

mod clock;
mod hold;
mod lane;
#[cfg(feature = "otel")]
pub mod otel;
pub mod store;
mod types;

pub use clock::{Clock, TokioClock};
pub use hold::{HoldError, HoldOptions, Holding, LeaseHolder, LeaseStatus};
pub use lane::Lane;
pub use store::{apply, force_release, BoxFuture, ForceReleaseError, MemoryStore, Store};
pub use types::{
    default_owner, Attempt, Classify, Error, GaveUp, LaneOptions, NoRead, RunOptions, RunReport,
    UpdateOptions,
};

#[cfg(all(unix, feature = "file"))]
pub use store::file::FileStore;

#[cfg(feature = "redis")]
pub use store::redis::RedisStore;

#[cfg(feature = "dynamodb")]
pub use store::dynamodb::DynamoDbStore;

#[cfg(feature = "s3")]
pub use store::s3::S3Store;

pub use writelane_core::lease::{
    owner_id, ForceReleaseResult, LeaseRecord, LeaseRule, StoreOp, StoreReply,
    DEFAULT_STORE_TIMEOUT_MS, MAX_HOLDER_LEN,
};
pub use writelane_core::{
    Event, Failure, GiveUpReason, OpId, Outcome, Policy, PolicyError, Stats, UsageError,
};
