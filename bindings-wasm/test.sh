#!/usr/bin/env bash
# Builds the writelane npm package (Rust -> wasm32 -> wasm-bindgen glue) and runs every
# test of the binding: the crate's native unit tests, then `node --test` over the
# conformance vectors, the Lane and RetryStrategy suites, the IAM lab end-to-end tests
# and the packed-tarball example (which includes the strict TypeScript check).
#
#   bash bindings-wasm/test.sh           everything
#   bash bindings-wasm/test.sh --quick   the build, the native unit tests, and the test files
#                                        that start no server: conformance vectors, Engine,
#                                        Lane, RetryStrategy, shared lanes over the memory
#                                        store (no IAM lab, Redis, moto, writer processes
#                                        or npm pack)
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

pinned="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)"
installed="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$installed" != "$pinned" ]; then
  echo "wasm-bindgen-cli $pinned is required (found '${installed:-none}'); run bindings-wasm/setup.sh" >&2
  exit 1
fi

target_dir="$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
cargo build --release --target wasm32-unknown-unknown -p writelane-wasm
wasm-bindgen --target nodejs --no-typescript --out-dir pkg --out-name writelane_wasm \
  "$target_dir/wasm32-unknown-unknown/release/writelane_wasm.wasm"

if [ "${WRITELANE_RUST_CHECKED:-}" = 1 ]; then
  echo "cargo test -p writelane-wasm skipped: the rust suite of scripts/test-all.sh ran it (WRITELANE_RUST_CHECKED=1)"
else
  cargo test -p writelane-wasm
fi

if [ "$quick" = 1 ]; then
  node --test test/vectors.test.js test/engine.test.js test/lane.test.js test/strategy.test.js test/shared.test.js \
    test/lane-vectors.test.js test/schema.test.js
else
  node --test test/*.test.js
fi
