#!/usr/bin/env bash
# Builds the writelane npm package (build.sh: Rust -> wasm32 -> wasm-bindgen glue into pkg/)
# and runs every test of the binding: the crate's native unit tests, then `node --test`
# over the conformance vectors, the Lane and RetryStrategy suites, the IAM lab end-to-end
# tests (lane.plugin() among them: test/sdk.test.js) and the deploy example installed from
# the tarball, then test-pack.sh over the
# tarball pack.sh made (a fresh project, no Rust toolchain, the README's CommonJS, ESM
# and strict TypeScript examples, and npm publish --dry-run's file list).
#
#   bash bindings-wasm/test.sh           everything
#   bash bindings-wasm/test.sh --quick   the build, the native unit tests, and the test files
#                                        that start no server: conformance vectors, Engine,
#                                        Lane, RetryStrategy, shared lanes over the memory
#                                        store (no IAM lab, Redis, moto, writer processes
#                                        or pack.sh and test-pack.sh)
#
# With WRITELANE_RUST_CHECKED=1 (scripts/test-all.sh sets it once its rust suite, which runs
# cargo test --workspace, has passed) the native unit tests are not run again here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "usage: bash bindings-wasm/test.sh [--quick]" >&2; exit 2 ;;
  esac
done
cd "$here"

bash "$here/build.sh"

if [ "${WRITELANE_RUST_CHECKED:-}" = 1 ]; then
  echo "cargo test -p writelane-wasm skipped: the rust suite of scripts/test-all.sh ran it (WRITELANE_RUST_CHECKED=1)"
else
  cargo test -p writelane-wasm
fi

if [ "$quick" = 1 ]; then
  node --test test/vectors.test.js test/engine.test.js test/lane.test.js test/strategy.test.js test/shared.test.js \
    test/lane-vectors.test.js test/batch-vectors.test.js test/schema.test.js
  exit
fi

# The tarball as released (pack.sh: the dist build), in a temporary directory: the node
# tests install it into the deploy example (test/package.test.js), and test-pack.sh
# installs it into a fresh project with no Rust toolchain on the PATH.
packdir="$(mktemp -d "${TMPDIR:-/tmp}/writelane-pack.XXXXXX")"
trap 'rm -rf "$packdir"' EXIT
pack_start=$SECONDS
tarball="$(bash "$here/pack.sh" "$packdir")"
echo "pack.sh: $((SECONDS - pack_start)) s"
WRITELANE_TGZ="$tarball" node --test test/*.test.js
# A smoke run of the lane plugin's benchmark keeps it working; its figures come from a full run.
node bench/middleware.js --quick >/dev/null
test_pack_start=$SECONDS
bash "$here/test-pack.sh" "$tarball"
echo "test-pack.sh: $((SECONDS - test_pack_start)) s"
