#!/usr/bin/env bash
# The s3:// input tests of writelane-trail against a moto server on a free local port.
# Not part of `cargo test --workspace`, which builds without the s3 feature. Python with
# moto: $PYTHON, else bindings-python/.venv/bin/python (the python suite's), else
# `moto_server` on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-bindings-python/.venv/bin/python}"
if "$py" -c 'import moto.server' 2>/dev/null; then
  moto=("$py" -m moto.server)
elif command -v moto_server >/dev/null; then
  moto=(moto_server)
else
  echo "trail/test-s3.sh: no moto server: run bindings-python/setup.sh, or pip install 'moto[server]'" >&2
  exit 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${moto[@]}" -H 127.0.0.1 -p "$port" >/tmp/writelane-trail-moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
  sleep 0.1
done
export WRITELANE_TEST_MOTO_ENDPOINT="http://127.0.0.1:$port"
cargo test -p writelane-trail --features s3 --test s3_moto "$@"
