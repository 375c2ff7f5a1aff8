#!/usr/bin/env bash
# Builds the WebAssembly module of the writelane npm package and its wasm-bindgen glue
# (Rust -> wasm32-unknown-unknown -> wasm-bindgen --target nodejs). test.sh and pack.sh
# both build through here.
#
#   bash bindings-wasm/build.sh                          the release profile into pkg/ (what the
#                                                        tests load; keeps the name section, so
#                                                        a trap's stack names Rust functions)
#   bash bindings-wasm/build.sh --dist --out-dir DIR     the release artifact: the workspace's
#                                                        `dist` profile (no debug info, LTO, one
#                                                        codegen unit), and no name or producers
#                                                        section, into DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
profile=release
out_dir="$here/pkg"
while [ "$#" -gt 0 ]; do
  case "$1" in
    --dist) profile=dist ;;
    --out-dir)
      [ "$#" -ge 2 ] || { echo "build.sh: --out-dir needs a directory" >&2; exit 2; }
      out_dir="$2"
      shift
      ;;
    *) echo "usage: bash bindings-wasm/build.sh [--dist] [--out-dir DIR]" >&2; exit 2 ;;
  esac
  shift
done
cd "$here"

pinned="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)"
installed="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$installed" != "$pinned" ]; then
  echo "wasm-bindgen-cli $pinned is required (found '${installed:-none}'); run bindings-wasm/setup.sh" >&2
  exit 1
fi

target_dir="$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
cargo build --profile "$profile" --target wasm32-unknown-unknown -p writelane-wasm
strip_flags=()
if [ "$profile" = dist ]; then
  # wasm-bindgen drops DWARF unless told to keep it; the name section (function names for
  # stack traces, about 100 KB) and the producers section are dropped here too.
  strip_flags=(--remove-name-section --remove-producers-section)
fi
mkdir -p "$out_dir"
wasm-bindgen --target nodejs --no-typescript "${strip_flags[@]}" --out-dir "$out_dir" --out-name writelane_wasm \
  "$target_dir/wasm32-unknown-unknown/$profile/writelane_wasm.wasm"
