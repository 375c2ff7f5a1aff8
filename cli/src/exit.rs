//! The exit codes of `writelane`, shared by every subcommand.
//!
//! writelane's own failures use the `sysexits(3)` codes (64 to 78) rather than small
//! numbers, because `writelane hold` passes its command's exit status through: a command
//! commonly exits 1 or 2 itself (`terraform plan -detailed-exitcode` exits 2 for "changes
//! present"), so writelane's usage error must not be 2. Argument errors found by the
//! parser exit [`EX_USAGE`] as well, so one code means "fix the command line" everywhere.
//!
//! | code | name | meaning |
//! |---:|---|---|
//! | 64 | `EX_USAGE` | bad usage: an unknown option, a bad value, an unknown store scheme, a store URL with no table or bucket, no store given, an empty entity, a policy error (its field path is named) |
//! | 65 | `EX_DATAERR` | the store holds a record for the entity that writelane cannot read (`lease release` writes nothing then) |
//! | 69 | `EX_UNAVAILABLE` | the lease store did not answer (unreachable, timed out, throttled) |
//! | 70 | `EX_SOFTWARE` | an internal error of writelane (a bug: please report it) |
//! | 75 | `EX_TEMPFAIL` | the lease is held by someone else: `hold` did not acquire it within `--wait`; `lease release` without `--force` refused to evict a live holder |
//! | 76 | `EX_PROTOCOL` | `hold` lost the lease while its command ran (a refused renewal, or the store unreachable past the lease); the command was stopped |
//! | 77 | `EX_NOPERM` | the store refused our credentials, or none were found |
//! | 78 | `EX_CONFIG` | the store is not set up: the DynamoDB table or the S3 bucket does not exist (`writelane lease init URL` creates the table), or a store feature is not built in |
//!
//! `writelane check` and `writelane token` exit 1 when the document they were given is
//! invalid: that is their verdict, not a usage error.

use std::fmt;
use std::process::ExitCode;

/// Bad usage: fix the command line (sysexits `EX_USAGE`).
pub const EX_USAGE: u8 = 64;
/// The store holds a record writelane cannot read (sysexits `EX_DATAERR`).
pub const EX_DATAERR: u8 = 65;
/// The lease store did not answer (sysexits `EX_UNAVAILABLE`).
pub const EX_UNAVAILABLE: u8 = 69;
/// An internal error of writelane (sysexits `EX_SOFTWARE`).
pub const EX_SOFTWARE: u8 = 70;
/// The lease is held by someone else: not acquired within `--wait`, or a release that
/// would evict a live holder without `--force` (sysexits `EX_TEMPFAIL`).
pub const EX_TEMPFAIL: u8 = 75;
/// `hold` lost the lease while its command ran (sysexits `EX_PROTOCOL`).
pub const EX_PROTOCOL: u8 = 76;
/// The lease lost while a command ran: the name `hold` uses for [`EX_PROTOCOL`].
pub const EX_LEASE_LOST: u8 = EX_PROTOCOL;
/// The store refused our credentials or none were found (sysexits `EX_NOPERM`).
pub const EX_NOPERM: u8 = 77;
/// The store is not set up: no such table or bucket, or its cargo feature is not built in
/// (sysexits `EX_CONFIG`).
pub const EX_CONFIG: u8 = 78;

/// The exit-code table as `--help` prints it (after the subcommand's own text).
pub const HELP: &str = "\
Exit codes (sysexits):
  64  usage: bad option or value, unknown store scheme, no store given, empty entity,
      policy error (its field path is named)
  65  the store holds a record writelane cannot read (nothing is written)
  69  the lease store did not answer
  70  internal error (a bug: please report it)
  75  the lease is held by someone else (hold: not acquired within --wait;
      lease release: a live holder, and no --force)
  76  hold: the lease was lost while the command ran; the command was stopped
  77  the store refused our credentials, or none were found
  78  the store is not set up: no such table or bucket (see `writelane lease init`),
      or its cargo feature is not built in";

/// A failure of a `writelane` subcommand: the one-line message printed to stderr and the
/// exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit code (one of the constants of this module).
    pub code: u8,
    /// One line naming the thing that failed and what to do about it.
    pub message: String,
}

impl Failure {
    /// A failure with exit code `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// A usage error ([`EX_USAGE`]).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(EX_USAGE, message)
    }

    /// The store did not answer ([`EX_UNAVAILABLE`]).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(EX_UNAVAILABLE, message)
    }

    /// An internal error ([`EX_SOFTWARE`]).
    pub fn software(message: impl Into<String>) -> Self {
        Self::new(EX_SOFTWARE, message)
    }

    /// Print the message as one line on stderr, prefixed with `context` (such as
    /// `writelane lease show`), and give the exit code.
    pub fn report(&self, context: &str) -> ExitCode {
        // One line whatever the message holds: a store's error text can carry newlines.
        let line = self.message.replace(['\n', '\r'], " ");
        eprintln!("{context}: {line}");
        ExitCode::from(self.code)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}
