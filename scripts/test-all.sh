#!/usr/bin/env bash
# Every test in every language: the Rust workspace (format, lints, unit, snapshot and
# property tests, the conformance-vector regeneration check), then each binding's own
# set-up and tests. Installs what it needs from the package registries; safe to re-run.
#
#   bash scripts/test-all.sh               every suite (what CI runs)
#   bash scripts/test-all.sh SUITE...      only the named suites, always in the order below
#   bash scripts/test-all.sh --list        the suites and what each runs
#
# Suites:
#   rust    cargo fmt --check, clippy and cargo test of the whole workspace, and
#           cargo publish --workspace --dry-run of the publishable crates
#   python  bindings-python: setup.sh, then test.sh
#   node    bindings-wasm: setup.sh, then test.sh
#   c       bindings-c (the C ABI): setup.sh, then test.sh
#   go      the Go package: bindings-c/setup.sh, then go/test.sh
#   lane    the Rust driver crate and the writelane CLI with every store feature, against
#           redis-server and a moto server that lane/test.sh starts (moto from the python
#           suite's venv when it exists)
#   trail   writelane trail: its HTML report in headless Chromium (Debian's, installed when
#           missing; trail/test-html.sh) and its s3:// input on moto (trail/test-s3.sh, with
#           the python suite's venv)
#   mixed   Python, Node and Go writers and `writelane hold` sharing one lease (uses what
#           python, node and go built: run it with them, e.g.
#           `bash scripts/test-all.sh python node go mixed`)
#   dist    the release artifacts: scripts/dist.sh (manylinux2014 wheels and sdist, the npm
#           tarball, the C tarballs, SHA256SUMS in dist/), then scripts/test-dist.sh
#           installs and runs each with no cargo or rustc on the PATH
#
# Each setup.sh runs at most once per run (c and go share bindings-c/setup.sh). Once the
# rust suite has passed, WRITELANE_RUST_CHECKED=1 is exported so the bindings' test.sh do not
# repeat its fmt, clippy and cargo test of their crates. An unknown suite name exits 2.
# Each binding's test.sh also has a --quick tier (no servers) for use on its own.
set -uo pipefail
cd "$(dirname "$0")/.."

suites=(rust python node c go lane trail mixed dist)

describe() {
  case $1 in
    rust) echo "rust: fmt, clippy, tests, vectors, publish dry run" ;;
    python) echo "python: bindings-python" ;;
    node) echo "node: bindings-wasm" ;;
    c) echo "c: bindings-c, the C ABI" ;;
    go) echo "go: go/, the Go module (both backends) and its e2e tests" ;;
    lane) echo "lane: the Rust driver and the CLI with every store (redis, DynamoDB and S3 on moto)" ;;
    trail) echo "trail: writelane trail's HTML report in headless Chromium and its s3:// input on moto" ;;
    mixed) echo "mixed: Python, Node and Go writers and writelane hold sharing one lease" ;;
    dist) echo "dist: the release artifacts (scripts/dist.sh), installed and run without a Rust toolchain (scripts/test-dist.sh)" ;;
  esac
}

selected=" "
for arg in "$@"; do
  case " ${suites[*]} " in
    *" ${arg} "*) selected+="${arg} " ;;
    *)
      if [ "${arg}" = --list ]; then
        for name in "${suites[@]}"; do describe "${name}"; done
        exit 0
      fi
      echo "test-all.sh: unknown suite '${arg}' (suites: ${suites[*]}; or --list)" >&2
      exit 2
      ;;
  esac
done
[ "${selected}" = " " ] && selected=" ${suites[*]} "

passed=0
failed=0
failures=()

suite() {
  local name=$1
  shift
  echo
  echo "=== $(describe "${name}")"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== ${name}: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failures+=("${name}")
    echo "=== ${name}: FAILED ($((SECONDS - start)) s)"
    return 1
  fi
}

# setup DIR: DIR/setup.sh, once per run.
set_up=" "
setup() {
  case "${set_up}" in *" $1 "*) return 0 ;; esac
  bash "$1/setup.sh" && set_up+="$1 "
}

suite_rust() {
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
  cargo fmt --all -- --check &&
    cargo clippy --workspace --all-targets --locked -- -D warnings &&
    cargo test --workspace --locked &&
    # The lease protocol's model checker in full (the debug run above uses smaller bounds):
    # exhaustive runs of real engines with every fault kind, and the broken variants it must
    # catch (model/README.md; a few minutes).
    cargo test -p writelane-model --release --locked &&
    # Every publishable crate (writelane-core, writelane, writelane-trail, writelane-cli)
    # packages and builds as crates.io would get it: cargo resolves the ones that depend on
    # each other through a local registry of the packaged crates (reads the crates.io index
    # only; about 30 s).
    cargo publish --workspace --dry-run -q --allow-dirty --locked
}
# The IAM entity table in the core is generated from botocore's IAM model (pinned in the
# venv): --check fails when the committed table no longer matches it.
suite_python() {
  setup bindings-python && bash bindings-python/test.sh &&
    bindings-python/.venv/bin/python scripts/gen-iam-entities.py --check
}
suite_node() { setup bindings-wasm && bash bindings-wasm/test.sh; }
suite_c() { setup bindings-c && bash bindings-c/test.sh; }
suite_go() { setup bindings-c && bash go/test.sh; }
suite_lane() { bash lane/test.sh; }
suite_trail() { bash trail/test-html.sh && bash trail/test-s3.sh; }
# The C checks of test-dist.sh need cc and pkg-config (bindings-c/setup.sh); dist.sh installs
# its own tools.
suite_dist() { setup bindings-c && bash scripts/dist.sh && bash scripts/test-dist.sh; }

# Writers in three languages sharing one lease store: needs the Python wheel installed and
# the npm package built (the Go writer is pure Go: its module embeds the library).
suite_mixed() {
  local missing=""
  bindings-python/.venv/bin/python -c 'import writelane' 2>/dev/null || missing+=", the Python binding (python suite)"
  [ -f bindings-wasm/pkg/writelane_wasm.js ] && [ -d bindings-wasm/node_modules ] || missing+=", the npm package (node suite)"
  if [ -n "${missing}" ]; then
    echo "mixed: not built: ${missing#, }; run it with them: bash scripts/test-all.sh python node mixed"
    return 1
  fi
  # The writelane command with every store (the lane suite built it already: then a no-op).
  cargo build -q -p writelane-cli --all-features --locked &&
    WRITELANE_BIN="$PWD/target/debug/writelane" node bindings-wasm/test/mixed-languages.js
}

for name in "${suites[@]}"; do
  case "${selected}" in *" ${name} "*) ;; *) continue ;; esac
  if suite "${name}" "suite_${name}" && [ "${name}" = rust ]; then
    export WRITELANE_RUST_CHECKED=1
  fi
done

echo
if [ "${failed}" -gt 0 ]; then
  echo "failed suites: ${failures[*]} (re-run them: bash scripts/test-all.sh ${failures[*]})"
fi
echo "suites: ${passed} passed, ${failed} failed"
[ "${failed}" -eq 0 ]
