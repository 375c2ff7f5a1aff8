#!/usr/bin/env bash
# Builds the writelane npm package (Rust -> wasm32 -> wasm-bindgen glue) and runs every
# test of the binding: the crate's native unit tests, then `node --test` over the
# conformance vectors, the Lane and RetryStrategy suites, the IAM lab end-to-end tests
# and the packed-tarball example (which includes the strict TypeScript check).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
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

cargo test -p writelane-wasm

node --test test/*.test.js
