#!/usr/bin/env bash
# Installs what the IAM contention lab needs (idempotent). Other bindings' setup.sh call it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python3}"
"$py" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
