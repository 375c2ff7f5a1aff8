//! # writelane-core
//!
//! The write discipline for cloud control planes as a sans-IO engine: one writer per
//! entity, a re-read and change-token check before every retry, jittered exponential
//! backoff with bounded attempts, retry budgets, conflict-spike cool-downs, and telemetry
//! for every decision.
//!
//! The engine never reads a clock, sleeps, draws OS randomness or performs IO. The host
//! passes `now` (integer milliseconds on a monotonic clock of its choosing) into every
//! call, carries out the [`Command`]s it drains, and feeds back what it observed:
//!
//! ```
//! use writelane_core::{Command, Engine, Input, Policy, SubmitOptions};
//!
//! let mut engine = Engine::new(Policy::preset("iam").unwrap(), 42);
//! let op = engine.submit("arn:aws:iam::123456789012:role/deploy", 0, SubmitOptions::default()).unwrap();
//! let mut now = 0;
//! loop {
//!     while let Some(cmd) = engine.poll_command() {
//!         match cmd {
//!             Command::Read { op } => engine.handle(now, Input::ReadDone { op, token: Some("v1".into()) }).unwrap(),
//!             Command::Write { op, .. } => engine.handle(now, Input::WriteDone { op, token: Some("v2".into()) }).unwrap(),
//!             Command::Finish { outcome, .. } => { println!("{outcome:?}"); return; }
//!             Command::Store { .. } => unreachable!("only shared lanes use a lease store"),
//!         }
//!     }
//!     // Nothing to do now: sleep until the engine's next timeout, then tell it.
//!     now = engine.poll_timeout().expect("a waiting op has a timeout");
//!     engine.handle_timeout(now).unwrap();
//! }
//! ```
//!
//! Decisions are integer arithmetic on a seeded ChaCha generator: the same policy, seed and
//! inputs give the same commands in every language binding.

#![deny(missing_docs)]

mod backoff;
mod classify;
mod engine;
mod entities;
mod error;
mod ids;
pub mod lease;
mod limits;
pub mod policy;
mod rng;
mod strategy;
mod token;

pub use backoff::{
    backoff_ceiling, clamp_hint, sawtooth_window, Bucket, BudgetScope, Refusal, RetryPlan,
};
pub use classify::{classify, parse_retry_after, ErrorClass, Failure};
pub use engine::{
    Command, Counters, Engine, EngineState, EntityRecord, EntityStats, Event, GiveUpReason, Input,
    Outcome, Stats, SubmitOptions, MAX_QUEUED_EVENTS, STATE_VERSION,
};
pub use error::UsageError;
pub use ids::OpId;
pub use limits::{MAX_ENTITY_LEN, MAX_TOKEN_LEN};
pub use policy::{Policy, PolicyError};
pub use strategy::{RetryStrategy, RetryToken, MAX_SCOPES};
pub use token::{canonical_policy, policy_token, TokenError, TOKEN_PREFIX};

/// The crate version, for bindings that report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
