#!/usr/bin/env bash
# Installs what the Python binding's tests need (idempotent): a virtualenv in
# bindings-python/.venv with maturin, pytest, boto3, moto (for the IAM lab), tenacity and
# mypy at exact versions, plus the Rust toolchain's cargo (expected on the machine).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python3}"
command -v cargo >/dev/null || { echo "setup.sh: cargo is required" >&2; exit 1; }
if [ ! -x "$here/.venv/bin/python" ]; then
    "$py" -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-dev.txt"
echo "setup.sh: ready ($("$here/.venv/bin/python" --version))"
