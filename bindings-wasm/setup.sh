#!/usr/bin/env bash
# Installs everything the writelane npm package needs to build and test (idempotent):
# the wasm32 Rust target, wasm-bindgen-cli at exactly the version Cargo.toml pins, the
# npm dev dependencies from package-lock.json, and the IAM contention lab's Python needs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 18 ]; then
  echo "writelane needs Node 18 or later (found $(node --version))" >&2
  exit 1
fi

rustup target add wasm32-unknown-unknown

# The CLI must be the same version as the wasm-bindgen crate, or the glue does not match.
pinned="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' "$here/Cargo.toml")"
if [ -z "$pinned" ]; then
  echo "bindings-wasm/Cargo.toml must pin wasm-bindgen with =" >&2
  exit 1
fi
installed="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$installed" != "$pinned" ]; then
  cargo install wasm-bindgen-cli --version "=$pinned" --locked
fi

(cd "$here" && npm ci --no-audit --no-fund)

bash "$repo/tests/iamlab/setup.sh"
