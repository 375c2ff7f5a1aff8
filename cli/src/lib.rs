//! Library side of the `writelane` command line: the contention simulator and the
//! conformance-vector generator, so tests can drive them directly.

pub mod lanevectors;
pub mod schema;
pub mod sim;
pub mod vectors;
