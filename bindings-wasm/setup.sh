#!/usr/bin/env bash
# Installs everything the writelane npm package needs to build and test (idempotent):
# the wasm32 Rust target, wasm-bindgen-cli at exactly the version Cargo.toml pins, the
# npm dev dependencies from package-lock.json (ioredis and @aws-sdk/client-dynamodb for
# the lease stores among them), redis-server from Debian for the Redis store's tests, and
# the IAM contention lab's Python needs (moto, whose server also plays DynamoDB).
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

if ! command -v redis-server >/dev/null 2>&1; then
  # Another setup may hold the dpkg lock for a while: wait for it rather than fail.
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; then
      break
    fi
    if [ "$attempt" = 10 ]; then
      echo "could not install redis-server" >&2
      exit 1
    fi
    sleep 15
  done
fi

bash "$repo/tests/iamlab/setup.sh"
