#!/usr/bin/env bash
# The s3:// input tests of writelane-trail against a moto server on a free local port
# (moto_server: pip install 'moto[server]'). Not part of `cargo test --workspace`, which
# builds without the s3 feature.
set -euo pipefail
cd "$(dirname "$0")/.."
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >/tmp/writelane-trail-moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
  sleep 0.1
done
export WRITELANE_TEST_MOTO_ENDPOINT="http://127.0.0.1:$port"
cargo test -p writelane-trail --features s3 --test s3_moto "$@"
