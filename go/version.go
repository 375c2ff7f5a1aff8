package writelane

// PackageVersion is the writelane release this Go package belongs to: the workspace
// version of Cargo.toml (cli/tests/versions.rs fails when they differ). The linked
// library reports its own version through Version; the tests check that they agree.
const PackageVersion = "0.1.0"
