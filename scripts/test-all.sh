#!/usr/bin/env bash
# Every test in every language: the Rust workspace (format, lints, unit, snapshot and
# property tests, the conformance-vector regeneration check), then each binding's own
# set-up and tests. Installs what it needs from the package registries; safe to re-run.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
failures=()

suite() {
  local name=$1
  shift
  echo
  echo "=== ${name}"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== ${name}: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failures+=("${name}")
    echo "=== ${name}: FAILED ($((SECONDS - start)) s)"
  fi
}

rust() {
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
  cargo fmt --all -- --check &&
    cargo clippy --workspace --all-targets --locked -- -D warnings &&
    cargo test --workspace --locked
}

binding() {
  local dir=$1
  bash "${dir}/setup.sh" && bash "${dir}/test.sh"
}

suite "rust: fmt, clippy, tests, vectors" rust
for dir in bindings-python bindings-wasm bindings-c; do
  if [ -f "${dir}/test.sh" ]; then
    suite "${dir}" binding "${dir}"
  fi
done

# Writers in three languages sharing one lease store (needs every binding built above).
suite "mixed languages: Python, Node and Go writers sharing one lease" \
  node bindings-wasm/test/mixed-languages.js

echo
if [ "${failed}" -gt 0 ]; then
  echo "failed suites: ${failures[*]}"
fi
echo "suites: ${passed} passed, ${failed} failed"
[ "${failed}" -eq 0 ]
