//! Library side of the `writelane` command line: the contention simulator, the
//! conformance-vector generator, `writelane lease`, and what the subcommands share (exit
//! codes, argument parsers, the store a URL names), so tests can drive them directly.

pub mod args;
pub mod batchvectors;
pub mod exit;
pub mod lanevectors;
pub mod lease;
pub mod schema;
pub mod sim;
pub mod store;
pub mod vectors;
