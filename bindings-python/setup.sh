#!/usr/bin/env bash
# Installs what the Python binding's tests need (idempotent): a virtualenv in
# bindings-python/.venv with maturin, pytest, boto3, moto (for the IAM lab and as the
# DynamoDB lease store), redis-py, tenacity, mypy and the OpenTelemetry API and SDK (the
# writelane.otel tests) at exact versions; redis-server from Debian packages (the Redis
# lease store's tests start their own); plus the Rust toolchain's cargo (expected on the
# machine).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python3}"
command -v cargo >/dev/null || { echo "setup.sh: cargo is required" >&2; exit 1; }
if ! command -v redis-server >/dev/null; then
    if command -v apt-get >/dev/null; then
        sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
        $sudo_ apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq redis-server >/dev/null
    else
        echo "setup.sh: install redis-server (the Redis lease store tests need it)" >&2; exit 1
    fi
fi
if [ ! -x "$here/.venv/bin/python" ]; then
    "$py" -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-dev.txt"
echo "setup.sh: ready ($("$here/.venv/bin/python" --version))"
