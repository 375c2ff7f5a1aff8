#!/usr/bin/env bash
# The Rust driver crate's and the writelane command's whole suites: fmt and clippy with
# every feature, then `cargo test -p writelane --all-features` and
# `cargo test -p writelane-cli --all-features` (writelane lease and hold on every store)
# against real servers this script starts and stops: redis-server (Debian's) and a moto
# server (DynamoDB and S3) behind tests/iamlab/moto_atomic.py, which carries requests out
# one at a time as the real services' conditional writes are atomic. The command's
# default-feature tests (the file store, and the messages of stores not built in) run
# too, and tests/hold/multiprocess.sh: four `writelane hold` processes per store appending
# to one role of the IAM lab, plus hold and Python writers mixed on DynamoDB and S3.
#
#   bash lane/test.sh           everything
#   bash lane/test.sh --quick   default features only, no servers (memory and file stores)
#
# Python with moto: $PYTHON, else bindings-python/.venv/bin/python, else lane/.venv
# (created here from tests/iamlab/requirements.txt). redis-server: installed with apt-get
# when missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"

# OpenTelemetry is the `otel` feature's alone: the command (the simulator included) and
# the driver's default features build none of it.
for pkg in writelane writelane-cli; do
  if cargo tree -p "$pkg" -e normal --locked | grep opentelemetry; then
    echo "lane/test.sh: $pkg pulls OpenTelemetry without the otel feature" >&2
    exit 1
  fi
done

if [ "${1:-}" = --quick ]; then
  cargo test -p writelane --locked
  cargo test -p writelane-cli --locked
  exit
fi

if [ -z "${WRITELANE_RUST_CHECKED:-}" ]; then
  cargo fmt -p writelane -p writelane-cli -- --check
  cargo clippy -p writelane --all-targets --all-features --locked -- -D warnings
  cargo clippy -p writelane-cli --all-targets --all-features --locked -- -D warnings
fi

has_moto() { "$1" -c 'import moto.server, werkzeug' >/dev/null 2>&1; }
py="${PYTHON:-}"
if [ -z "$py" ] || ! has_moto "$py"; then
  py="$root/bindings-python/.venv/bin/python"
fi
if ! [ -x "$py" ] || ! has_moto "$py"; then
  py="$here/.venv/bin/python"
  if ! [ -x "$py" ] || ! has_moto "$py"; then
    python3 -m venv "$here/.venv"
    PYTHON="$py" bash "$root/tests/iamlab/setup.sh"
  fi
fi
if ! command -v redis-server >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null
fi

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do
    if "$py" -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "lane/test.sh: $2 did not listen on port $1" >&2
  return 1
}

pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pids+=($!)
moto_port=$(free_port)
PYTHONWARNINGS=ignore "$py" "$root/tests/iamlab/moto_atomic.py" "$moto_port" >/dev/null 2>&1 &
pids+=($!)
wait_port "$redis_port" redis-server
wait_port "$moto_port" "moto server"

export WRITELANE_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export WRITELANE_TEST_MOTO_ENDPOINT="http://127.0.0.1:$moto_port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
cargo test -p writelane --all-features --locked
# One set of servers serves both crates.
# Both runs happen even when the first fails; the script fails if either does.
status=0
cargo test -p writelane-cli --all-features --locked --no-fail-fast || status=$?
# Four `writelane hold` processes per store against the IAM lab, on these servers, with the
# binary the run above built (every store feature; the next run rebuilds it without them).
WRITELANE_BIN="$root/target/debug/writelane" PYTHON="$py" bash "$root/tests/hold/multiprocess.sh" || status=$?
cargo test -p writelane-cli --locked --no-fail-fast || status=$?
exit "$status"
