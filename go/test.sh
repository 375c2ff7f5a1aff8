#!/usr/bin/env bash
# Every test of the Go package (bindings-c/go), which links the C library of bindings-c:
# gofmt, go vet, go test -race (vectors, driver, concurrency, cancellation, Retryer,
# examples, file-store processes), the README's Go examples, the end-to-end tests with the
# AWS SDK for Go v2 against the IAM lab, and the DynamoDB and S3 lease stores against a moto
# server (behind tests/iamlab/moto_atomic.py).
#
#   bash bindings-c/go/test.sh           everything (what scripts/test-all.sh's go suite runs)
#   bash bindings-c/go/test.sh --quick   gofmt, go vet and go test -race of the package only:
#                                        no IAM lab, no moto, no helper processes, no e2e
#
# Builds target/release/libwritelane.a first with the same cargo command as
# bindings-c/test.sh (cargo does nothing when it is up to date, so after bindings-c/test.sh
# nothing is built twice). Run from anywhere; set up first with bindings-c/setup.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "usage: bash bindings-c/go/test.sh [--quick]" >&2; exit 2 ;;
  esac
done
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "go/test.sh: no Go toolchain; run bindings-c/setup.sh" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
# gotally LOG: add the --- PASS / --- FAIL lines of a `go test -v` log.
gotally() {
  local p f
  p=$(grep -cE -- '^\s*--- PASS' "$1" || true)
  f=$(grep -cE -- '^\s*--- FAIL' "$1" || true)
  passed=$((passed + p))
  failed=$((failed + f))
}
step() { echo; echo "== $*"; }
# gofmt_check DIR: fail naming the files gofmt would change.
gofmt_check() {
  local unformatted
  unformatted="$(cd "$1" && gofmt -l .)"
  [ -z "$unformatted" ] || { echo "gofmt would change (in $1): $unformatted"; exit 1; }
}

# cgo.go links ${SRCDIR}/../../target/release/libwritelane.a: the workspace's target dir.
step "libwritelane (release), as bindings-c/test.sh builds it"
target="${CARGO_TARGET_DIR:-$root/target}"
if [ "$(cd "$root" && realpath -m "$target")" != "$(realpath -m "$root/target")" ]; then
  echo "go/test.sh: the Go package links $root/target/release/libwritelane.a; unset CARGO_TARGET_DIR ($target)" >&2
  exit 1
fi
(cd "$root" && cargo build --release -q -p writelane-c --locked)
echo "$target/release/libwritelane.a"

if [ "$quick" = 1 ]; then
  step "Go (quick): gofmt, go vet, go test -race without the helper-process tests"
  gofmt_check "$here"
  cd "$here"
  go vet ./...
  go test -race -count=1 -v -skip 'AcrossProcesses|FileStoreProcesses' . 2>&1 | tee "$work/go.log" | grep -E '^(--- |ok|FAIL|PASS)' || true
  grep -q '^ok' "$work/go.log" || { tail -40 "$work/go.log"; exit 1; }
  gotally "$work/go.log"
  echo
  echo "bindings-c/go (quick): ${passed} passed, ${failed} failed"
  [ "$failed" -eq 0 ]
  exit
fi

step "Go: gofmt, go vet, go test -race (vectors, driver, concurrency, cancellation, Retryer, examples)"
cd "$here"
gofmt_check "$here"
go vet ./...
go test -race -count=1 -v . 2>&1 | tee "$work/go.log" | grep -E '^(--- |ok|FAIL|PASS)' || true
grep -q '^ok' "$work/go.log" || { tail -40 "$work/go.log"; exit 1; }
gotally "$work/go.log"

step "Go: the README's examples"
for tag in go-example go-shared-example; do
  mkdir -p "$work/$tag"
  awk -v tag="<!-- $tag -->" '$0 == tag {on = 1; next} on && /^```go/ {grab = 1; next} grab && /^```/ {exit} grab {print}' \
    "$here/../README.md" >"$work/$tag/main.go"
  [ -s "$work/$tag/main.go" ] || { echo "README has no $tag"; exit 1; }
  printf 'module readme\n\ngo 1.22\n\nrequire writelane v0.0.0\n\nreplace writelane => %s\n' "$here" >"$work/$tag/go.mod"
  out="$(cd "$work/$tag" && go run .)"
  echo "$tag: $out"
  case "$tag:$out" in
    go-example:*"committed on attempt 2"*) passed=$((passed + 1)) ;;
    go-shared-example:*'writing under epoch 1, held by "deploy pipeline, run 42"'*'done: <nil>'*) passed=$((passed + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done

step "Go end-to-end: AWS SDK for Go v2 against the IAM contention lab"
cd "$here/e2e"
go vet ./...
go test -count=1 -v ./... 2>&1 | tee "$work/e2e.log" | grep -E '^(--- |ok|FAIL|PASS|\s+e2e_test)' || true
grep -q '^ok' "$work/e2e.log" || { tail -40 "$work/e2e.log"; exit 1; }
gotally "$work/e2e.log"

step "Go: the DynamoDB lease store (AWS SDK for Go v2) against a moto server, same conformance suite"
cd "$here/dynamodbstore"
gofmt_check "$here/dynamodbstore"
go vet ./...
go test -race -count=1 -v ./... 2>&1 | tee "$work/dynamodb.log" | grep -E '^(\s*--- |ok|FAIL|PASS)' || true
grep -q '^ok' "$work/dynamodb.log" || { tail -40 "$work/dynamodb.log"; exit 1; }
gotally "$work/dynamodb.log"

step "Go: the S3 lease store (AWS SDK for Go v2) against a moto server, same conformance suite"
cd "$here/s3store"
gofmt_check "$here/s3store"
go vet ./...
go test -race -count=1 -v ./... 2>&1 | tee "$work/s3.log" | grep -E '^(\s*--- |ok|FAIL|PASS)' || true
grep -q '^ok' "$work/s3.log" || { tail -40 "$work/s3.log"; exit 1; }
gotally "$work/s3.log"

echo
echo "bindings-c/go: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
