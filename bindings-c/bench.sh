#!/usr/bin/env bash
# Per-decision cost through the C ABI against the same decisions in Rust directly, and
# through the Go module (wazero and cgo backends) against a bare call, all measured in this
# one run.
#   bash bindings-c/bench.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
export PATH="$PATH:/usr/local/go/bin"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$root"
cargo build --release -q -p writelane-c
echo "== Rust: the core directly vs the wl_ C functions (same process, interleaved)"
cargo bench -q -p writelane-c --bench decision | tee "$work/rust.txt"
rust_ns="$(sed -n 's/^rust_direct_ns_per_call=//p' "$work/rust.txt")"

echo "== C: the same cycle called from a C program"
cc -std=c11 -O2 -I"$here/include" "$here/tests/c/bench.c" "$target/release/libwritelane.a" \
  -lgcc_s -lutil -lrt -lpthread -lm -ldl -o "$work/bench"
"$work/bench" | tee "$work/c.txt"
c_ns="$(sed -n 's/^c_abi_from_c_ns_per_call=//p' "$work/c.txt")"
awk -v c="$c_ns" -v r="$rust_ns" 'BEGIN { printf "engine decision ratio C program/Rust direct: %.2fx (target <= 1.5x)\n", c / r }'

echo "== Go: decisions through the Go module, WebAssembly (wazero) and cgo backends, vs a bare call"
mkdir -p "$work/pkgconfig"
sed -e "s|@PREFIX@|$root|" -e "s|@VERSION@|0|" -e "s|^libdir=.*|libdir=$target/release|" \
  -e "s|^includedir=.*|includedir=$here/include|" "$here/writelane-static.pc.in" >"$work/pkgconfig/writelane-static.pc"
for backend in wasm cgo; do
  if [ "$backend" = cgo ]; then
    (cd "$root/go" && PKG_CONFIG_PATH="$work/pkgconfig" go test -tags writelane_cgo -run '^$' -bench . -benchtime 200000x .)
  else
    (cd "$root/go" && CGO_ENABLED=0 go test -run '^$' -bench . -benchtime 200000x .)
  fi | tee "$work/go-$backend.txt"
  bare="$(awk '/^BenchmarkBareCall/ {print $3}' "$work/go-$backend.txt")"
  eng="$(awk '/^BenchmarkEngineDecision/ {print $5}' "$work/go-$backend.txt")"
  strat="$(awk '/^BenchmarkStrategyDecision/ {print $5}' "$work/go-$backend.txt")"
  retry="$(awk '/^BenchmarkRetryDecision/ {print $3}' "$work/go-$backend.txt")"
  awk -v k="$backend" -v b="$bare" -v e="$eng" -v s="$strat" -v t="$retry" -v r="$rust_ns" 'BEGIN {
    printf "Go (%s) engine decision: %.1f ns/call = %.1fx a bare call (%.1f ns), %.2fx Rust direct\n", k, e, e / b, b, e / r
    printf "Go (%s) strategy decision: %.1f ns/call; one retry decision %.1f ns\n", k, s, t
  }'
done
