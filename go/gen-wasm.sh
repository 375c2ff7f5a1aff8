#!/usr/bin/env bash
# Builds the C ABI (bindings-c, writelane-c) for wasm32-unknown-unknown with the go-wasm
# profile of Cargo.toml and writes it to go/internal/wasm/writelane.wasm, the module the Go
# package embeds (or to the path given).
#
#   bash go/gen-wasm.sh [OUT]
#
# The build is reproducible: the checkout's and cargo's home paths, which rustc writes into
# panic messages, are remapped to fixed names, so the same sources and toolchain give the
# same bytes in any clone (go/test.sh rebuilds and compares).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="${1:-$here/internal/wasm/writelane.wasm}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
target="${CARGO_TARGET_DIR:-$root/target}"
# Both spellings of each path, as given and with symlinks resolved (rustc sees one of them).
flags=()
for dir in "$root=/writelane" "$(cd "$root" && pwd -P)=/writelane" \
  "$cargo_home=/cargo" "$(cd "$cargo_home" && pwd -P)=/cargo"; do
  case " ${flags[*]-} " in *" --remap-path-prefix=$dir "*) ;; *) flags+=("--remap-path-prefix=$dir") ;; esac
done
export RUSTFLAGS="${flags[*]}"
(cd "$root" && cargo build -q --locked --target wasm32-unknown-unknown -p writelane-c --profile go-wasm)
cp "$target/wasm32-unknown-unknown/go-wasm/writelane.wasm" "$out"
