#!/usr/bin/env bash
# Every test of the Go module (go/), under both backends: the default one (the C ABI of
# bindings-c compiled to WebAssembly, embedded, run by wazero: pure Go) and the cgo one
# (build tag writelane_cgo: the static C library through pkg-config).
#
#   bash go/test.sh           everything (what scripts/test-all.sh's go suite runs): gofmt;
#                             the embedded .wasm rebuilt and compared byte for byte;
#                             CGO_ENABLED=0 go vet + go test (vectors, driver, concurrency,
#                             cancellation, Retryer, examples, file-store processes); builds
#                             and vet for linux, darwin/arm64 and windows/amd64 without cgo;
#                             go vet + go test -race with the writelane_cgo tag; the README's
#                             examples; the end-to-end tests with the AWS SDK for Go v2
#                             against the IAM lab; the DynamoDB and S3 lease stores against
#                             a moto server (behind tests/iamlab/moto_atomic.py); the
#                             OpenTelemetry module (go/otel) with the real SDK after runs
#                             against the IAM lab, and a check that the main module
#                             requires no OpenTelemetry and no AWS SDK; the SDK lane
#                             middleware (go/awsv2), its lab tests being in go/e2e
#   bash go/test.sh --quick   gofmt, go vet and go test of the package and of go/awsv2 under
#                             both backends (the cgo one with -race), without the helper-process tests,
#                             the freshness rebuild, the IAM lab or moto
#
# Set up first with bindings-c/setup.sh. Run from anywhere.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "usage: bash go/test.sh [--quick]" >&2; exit 2 ;;
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
# check NAME CMD...: one pass or one failure for a command (builds, the freshness check).
check() {
  local name="$1"
  shift
  if "$@" >"$work/check.log" 2>&1; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    cat "$work/check.log"
    failed=$((failed + 1))
  fi
}
step() { echo; echo "== $*"; }
# gofmt_check DIR: fail naming the files gofmt would change.
gofmt_check() {
  local unformatted
  unformatted="$(cd "$1" && gofmt -l .)"
  [ -z "$unformatted" ] || { echo "gofmt would change (in $1): $unformatted"; exit 1; }
}
# gotest LOG ARGS...: go test -v ARGS in the current directory, its tally added.
gotest() {
  local log="$1"
  shift
  go test -count=1 -v "$@" 2>&1 | tee "$log" | grep -E '^(\s*--- |ok|FAIL|PASS)' || true
  grep -q '^ok' "$log" && ! grep -q '^FAIL' "$log" || { tail -40 "$log"; exit 1; }
  gotally "$log"
}

step "gofmt"
for dir in "$here" "$here/dynamodbstore" "$here/s3store" "$here/e2e" "$here/otel" "$here/awsv2"; do gofmt_check "$dir"; done

# The cgo backend links target/release/libwritelane.a (the same cargo command as
# bindings-c/test.sh: nothing is built twice) through a writelane-static.pc that points at
# it and at bindings-c/include, as the C release tarball's lib/pkgconfig does for its prefix.
step "libwritelane.a (release) and a writelane-static.pc for it"
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --release -q -p writelane-c --locked)
mkdir -p "$work/pkgconfig"
sed -e "s|@PREFIX@|$root|" -e "s|@VERSION@|$(cd "$root" && cargo pkgid -p writelane-c | sed 's/.*[#@]//')|" \
  -e "s|^libdir=.*|libdir=$target/release|" -e "s|^includedir=.*|includedir=$root/bindings-c/include|" \
  "$root/bindings-c/writelane-static.pc.in" >"$work/pkgconfig/writelane-static.pc"
export PKG_CONFIG_PATH="$work/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --libs writelane-static

cd "$here"
skip=()
[ "$quick" = 1 ] && skip=(-skip 'AcrossProcesses|FileStoreProcesses')

step "default backend (wasm, pure Go): CGO_ENABLED=0 go vet, go test"
CGO_ENABLED=0 go vet ./...
CGO_ENABLED=0 gotest "$work/wasm.log" "${skip[@]}" ./...

step "cgo backend (-tags writelane_cgo): go vet, go test -race"
go vet -tags writelane_cgo ./...
gotest "$work/cgo.log" -race -tags writelane_cgo "${skip[@]}" ./...

# The SDK lane middleware's own tests answer IAM in process (no lab): quick ones too.
step "go/awsv2 (the AWS SDK for Go v2 lane middleware, a module of its own): go vet, go test under both backends"
cd "$here/awsv2"
CGO_ENABLED=0 go vet ./...
go vet -tags writelane_cgo ./...
CGO_ENABLED=0 gotest "$work/awsv2.log" ./...
gotest "$work/awsv2-cgo.log" -race -tags writelane_cgo ./...
cd "$here"

if [ "$quick" = 1 ]; then
  echo
  echo "go (quick): ${passed} passed, ${failed} failed"
  [ "$failed" -eq 0 ]
  exit
fi

# gen-wasm.sh's build is reproducible (paths remapped, see go/README.md): the committed
# module must be the bytes the sources give now.
step "the embedded module is fresh: internal/wasm/writelane.wasm rebuilt by gen-wasm.sh and compared"
fresh() {
  bash "$here/gen-wasm.sh" "$work/writelane.wasm"
  cmp "$here/internal/wasm/writelane.wasm" "$work/writelane.wasm" ||
    { echo "go/internal/wasm/writelane.wasm is stale: run bash go/gen-wasm.sh and commit it"; return 1; }
}
check "internal/wasm/writelane.wasm is what go/gen-wasm.sh builds from these sources" fresh

step "builds without cgo: linux, darwin/arm64, windows/amd64 (go build and go vet), and the sub-modules"
for platform in linux/amd64 darwin/arm64 windows/amd64; do
  check "CGO_ENABLED=0 GOOS=${platform%/*} GOARCH=${platform#*/} go build + go vet ./..." \
    env CGO_ENABLED=0 GOOS="${platform%/*}" GOARCH="${platform#*/}" sh -c 'go build ./... && go vet ./...'
done
for sub in dynamodbstore s3store e2e e2e/laneworker otel awsv2; do
  check "$sub: CGO_ENABLED=0 go build + go vet" \
    sh -c "cd '$here/$sub' && CGO_ENABLED=0 go build -o /dev/null ./... && CGO_ENABLED=0 go vet ./..."
done

step "the README's examples (default backend, the module replaced by this checkout)"
for tag in go-example go-shared-example; do
  mkdir -p "$work/$tag"
  awk -v tag="<!-- $tag -->" '$0 == tag {on = 1; next} on && /^```go/ {grab = 1; next} grab && /^```/ {exit} grab {print}' \
    "$here/README.md" >"$work/$tag/main.go"
  [ -s "$work/$tag/main.go" ] || { echo "go/README.md has no $tag"; exit 1; }
  printf 'module readme\n\ngo 1.25.0\n\nrequire github.com/writelane/writelane/go v0.0.0\n\nreplace github.com/writelane/writelane/go => %s\n' "$here" >"$work/$tag/go.mod"
  cp "$here/go.sum" "$work/$tag/go.sum"
  (cd "$work/$tag" && go mod tidy)
  out="$(cd "$work/$tag" && CGO_ENABLED=0 go run .)"
  echo "$tag: $out"
  case "$tag:$out" in
    go-example:*"committed on attempt 2"*) passed=$((passed + 1)) ;;
    go-shared-example:*'writing under epoch 1, held by "deploy pipeline, run 42"'*'done: <nil>'*) passed=$((passed + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done

step "Go end-to-end: AWS SDK for Go v2 against the IAM contention lab (default backend)"
cd "$here/e2e"
gotest "$work/e2e.log" ./...

step "Go: OpenTelemetry (go/otel, a module of its own) with the real SDK, after runs against the IAM lab"
# `go get` of the main module must pull no OpenTelemetry: only go/otel requires it.
no_otel() { ! (cd "$here" && go list -m all | grep opentelemetry); }
check "the main module (go/) requires no OpenTelemetry module" no_otel
# Nor the AWS SDK: only the store modules, go/awsv2 and the tests require it.
no_sdk() { ! (cd "$here" && go list -m all | grep -E 'aws-sdk-go-v2|smithy-go'); }
check "the main module (go/) requires no AWS SDK module" no_sdk
cd "$here/otel"
go vet ./...
gotest "$work/otel.log" -race ./...

step "Go: the DynamoDB lease store (AWS SDK for Go v2) against a moto server, same conformance suite"
cd "$here/dynamodbstore"
gotest "$work/dynamodb.log" -race ./...

step "Go: the S3 lease store (AWS SDK for Go v2) against a moto server, same conformance suite"
cd "$here/s3store"
gotest "$work/s3.log" -race ./...

echo
echo "go: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
