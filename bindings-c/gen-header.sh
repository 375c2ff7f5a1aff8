#!/usr/bin/env bash
# Regenerate include/writelane.h with the pinned cbindgen.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
want="0.29.4"
have="$(cbindgen --version | awk '{print $2}')"
if [[ "$have" != "$want" ]]; then
  echo "cbindgen $want is required, found $have (run bindings-c/setup.sh)" >&2
  exit 1
fi
out="${1:-$here/include/writelane.h}"
cbindgen --quiet --config "$here/cbindgen.toml" --crate writelane-c --output "$out" "$here"
