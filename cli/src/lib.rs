//! Library side of the `writelane` command line: the contention simulator, the
//! conformance-vector generator, the exit codes and the argument parsers the subcommands
//! share, so tests can drive them directly.

pub mod args;
pub mod exit;
pub mod lanevectors;
pub mod schema;
pub mod sim;
pub mod vectors;
