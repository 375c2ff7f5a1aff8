#!/usr/bin/env bash
# Installs everything the C and Go tests of bindings-c need (idempotent):
# a C compiler, valgrind and pkg-config (apt), cbindgen =0.29.4 (cargo), a Go toolchain,
# the wasm32 target (rustup), wazero and the AWS SDK for Go v2 of the go/ modules (Go module
# proxy) and the IAM lab's Python packages (moto[server], which the DynamoDB store tests
# also run).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || missing+=(golang-go)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${missing[@]}"
fi

want_cbindgen="0.29.4"
if [ "$(cbindgen --version 2>/dev/null | awk '{print $2}')" != "$want_cbindgen" ]; then
  cargo install cbindgen --version "=$want_cbindgen" --locked
fi

export PATH="$PATH:/usr/local/go/bin"
# The Go module (go/) embeds the library compiled to wasm32; go/test.sh rebuilds it to
# check that the committed one is fresh.
rustup target add wasm32-unknown-unknown
(cd "$root/go" && go mod download)
(cd "$root/go/e2e" && go mod download)
(cd "$root/go/dynamodbstore" && go mod download)
(cd "$root/go/s3store" && go mod download)
(cd "$root/go/otel" && go mod download)

bash "$root/tests/iamlab/setup.sh"
echo "bindings-c: setup done"
