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
//!
//! # Group commit
//!
//! A writer whose write is a *change* to a document (append a statement, add a trust
//! principal, set tags) submits it with [`Engine::submit_update`]. Updates queued behind
//! the lane holder ride in its write: the leader reads once, the host applies every change
//! in FIFO order on an [`Apply`], and one write carries them all. Hosts that submit updates
//! drain with [`Engine::poll_action`] (commands and `Apply`) instead of `poll_command`:
//!
//! ```
//! use writelane_core::{Action, ApplyResult, Command, Engine, Input, Policy, UpdateOptions};
//!
//! let mut engine = Engine::new(Policy::preset("iam").unwrap(), 42);
//! let ops: Vec<_> = (0..3)
//!     .map(|_| engine.submit_update("role/deploy", 0, UpdateOptions::default()).unwrap())
//!     .collect();
//! let mut writes = 0;
//! while let Some(action) = engine.poll_action() {
//!     let input = match action {
//!         Action::Command(Command::Read { op }) => Input::ReadDone { op, token: Some("v1".into()) },
//!         // Run each op's change on the document read, in order.
//!         Action::Apply(apply) => Input::ApplyDone {
//!             op: apply.op,
//!             results: apply.ops.iter().map(|&op| ApplyResult { op, applied: true, code: None }).collect(),
//!         },
//!         Action::Command(Command::Write { op, .. }) => { writes += 1; Input::WriteDone { op, token: Some("v2".into()) } }
//!         Action::Command(Command::Finish { .. }) => continue,
//!         Action::Command(Command::Store { .. }) => unreachable!("local lanes"),
//!     };
//!     engine.handle(0, input).unwrap();
//! }
//! assert_eq!((writes, engine.stats().global.committed), (1, 3));
//! ```
//!
//! [`iam::docs`] has idempotent changes for the common IAM shapes.
//!
//! # The contract
//!
//! [`Engine`]'s documentation states it in full; in short, in the manner of quinn-proto
//! and str0m:
//!
//! 1. the methods come in groups: constructors, getters, mutators (`submit`,
//!    `import_state`), `handle_*` (`handle`, `handle_timeout`) and `poll_*`
//!    (`poll_command`, `poll_timeout`, `poll_event`, each `#[must_use]`);
//! 2. time is a `u64` of milliseconds on a monotonic clock the host chooses, and never goes
//!    backwards;
//! 3. after every `submit`, `handle` or `handle_timeout`, drain the commands; an operation
//!    has at most one pending command, answered by exactly one input once polled;
//! 4. then sleep until [`Engine::poll_timeout`] and call [`Engine::handle_timeout`];
//! 5. misuse is a typed [`UsageError`] that changes nothing; no input makes the engine
//!    panic.
//!
//! # The state machine
//!
//! Each operation is in one phase, and the phase is all of its state: `queued` (for the
//! lane), `cooling` (a conflict cool-down, or an update's linger), `reading` (plain, or a
//! read-back after an unknown write outcome), `applying` (a batch's `Apply`), `batched` (an
//! update riding in another's batch), `writing`, `backoff`, `leasing` (a lease-store
//! operation, or the lease client's timer; shared lanes only) and `finishing`. In the manner of h11, every
//! transition is in one table, in the module documentation of the engine (`src/engine/`,
//! shown by `cargo doc --document-private-items`): phase, input, step, next phase and the
//! commands emitted. [`Engine::handle`] and [`Engine::handle_timeout`] are one `match` each
//! over (phase, input) with an arm per row, and a test drives real engines into every phase
//! and checks that exactly the listed cells are accepted.
//!
//! # Modules
//!
//! The engine (`engine/`: public data types, entities, the operation and its phase, the
//! engine itself) sits on top; below it, with no cycles between them: [`policy`] (presets,
//! overrides, validation), [`lease`] (the shared-lease client and record), `backoff`
//! (delays and budgets), `classify` (error classes), `strategy` ([`RetryStrategy`]),
//! `token` (canonical policy tokens), [`iam`] (which entity each IAM write touches, generated
//! from the IAM API model), and the leaves `limits` (every bound on inputs),
//! `rng` (the seeded generator), `ids` ([`OpId`]) and `error` ([`UsageError`],
//! [`PolicyError`]).

#![deny(missing_docs)]

mod backoff;
mod classify;
mod engine;
mod entities;
mod error;
pub mod iam;
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
    Action, Apply, ApplyResult, Command, Counters, Engine, EngineState, EntityRecord, EntityStats,
    Event, GiveUpReason, Input, Outcome, Stats, SubmitOptions, UpdateOptions, MAX_QUEUED_EVENTS,
    STATE_VERSION,
};
pub use error::UsageError;
pub use ids::OpId;
pub use limits::{MAX_ENTITY_LEN, MAX_TOKEN_LEN};
pub use policy::{Policy, PolicyError};
pub use strategy::{RetryStrategy, RetryToken, MAX_SCOPES};
pub use token::{canonical_policy, policy_token, TokenError, TOKEN_PREFIX};

/// The crate version, for bindings that report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
