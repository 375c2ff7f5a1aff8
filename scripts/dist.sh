#!/usr/bin/env bash
# Makes writelane's release artifacts in dist/ (emptied first), each built once under the
# workspace's `dist` cargo profile (no debug info, LTO, one codegen unit), in the one cargo
# target dir (target/, or CARGO_TARGET_DIR):
#
#   writelane-VERSION-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
#   writelane-VERSION-cp39-abi3-manylinux2014_aarch64.manylinux_2_17_aarch64.whl
#   writelane-VERSION.tar.gz                        the Python sdist (builds from itself)
#   writelane-VERSION.tgz                           the npm package (bindings-wasm/pack.sh)
#   writelane-VERSION-x86_64-linux-gnu.tar.gz       the C library, headers and pkg-config
#   writelane-VERSION-aarch64-linux-gnu.tar.gz      files (bindings-c/install.sh's layout)
#   SHA256SUMS                                      sha256sum -c SHA256SUMS checks them
#
#   bash scripts/dist.sh
#
# Linux code is linked by zig against glibc 2.17 symbols (manylinux2014: Amazon Linux 2,
# CentOS 7 and everything newer) for both architectures, so no cross toolchain or
# container is needed. The linker is `cargo-zigbuild zig cc` (what maturin --zig and cargo
# zigbuild run), through a wrapper per target, target/dist-tools/zig-linker/ARCH-linux-gnu.2.17,
# named in CARGO_TARGET_<ARCH>_UNKNOWN_LINUX_GNU_RUSTFLAGS (-C linker=...), which reaches
# only the units built for that target: build scripts and proc macros keep the default
# linker, as in every other build of the workspace. (A linker set in
# CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER, as maturin --zig and cargo zigbuild do, also
# applies to those host units on an x86_64 machine, and a unit whose linker changed is
# rebuilt with everything above it: each tool and each other build would rebuild the
# workspace for the next.) Installs what it needs: the aarch64 Rust target and llvm-tools
# (rustup), maturin, ziglang, cargo-zigbuild and auditwheel at the versions
# scripts/dist-requirements.txt pins (a virtualenv in target/dist-tools), and the npm
# package's build tools (bindings-wasm/setup.sh, when wasm-bindgen is not the pinned one).
# The version is the workspace's (cargo metadata), never typed here.
# scripts/test-dist.sh checks the artifacts in clean environments.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ "$#" -eq 0 ] || { echo "usage: bash scripts/dist.sh" >&2; exit 2; }

dist="$root/dist"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
export CARGO_TARGET_DIR="$target_dir"
tools="$target_dir/dist-tools"
arches=(x86_64 aarch64)
start=$SECONDS
step() { echo "== $* ($((SECONDS - start)) s)" >&2; }

step "tools"
for arch in "${arches[@]}"; do
  rustup target add "$arch-unknown-linux-gnu" >/dev/null 2>&1 ||
    rustup target add "$arch-unknown-linux-gnu"
done
rustup component add llvm-tools >/dev/null 2>&1 || rustup component add llvm-tools
host="$(rustc -vV | sed -n 's/^host: //p')"
objcopy="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-objcopy"
[ -x "$objcopy" ] || { echo "dist.sh: no llvm-objcopy at $objcopy (rustup component llvm-tools)" >&2; exit 1; }
[ -x "$tools/bin/python" ] || python3 -m venv "$tools"
"$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/scripts/dist-requirements.txt"
export PATH="$tools/bin:$PATH"
mkdir -p "$tools/zig-linker"
for arch in "${arches[@]}"; do
  linker="$tools/zig-linker/$arch-linux-gnu.2.17"
  printf '#!/bin/sh\nexec "%s" zig cc -- -g -fno-sanitize=all -target %s "$@"\n' \
    "$tools/bin/cargo-zigbuild" "$arch-linux-gnu.2.17" >"$linker.new"
  chmod +x "$linker.new"
  mv "$linker.new" "$linker"
  upper="$(echo "$arch" | tr '[:lower:]' '[:upper:]')"
  export "CARGO_TARGET_${upper}_UNKNOWN_LINUX_GNU_RUSTFLAGS=-Clinker=$linker"
done
pinned_bindgen="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' bindings-wasm/Cargo.toml)"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$pinned_bindgen" ]; then
  bash bindings-wasm/setup.sh
fi

version="$(cargo metadata --format-version 1 --no-deps --locked | "$tools/bin/python" -c '
import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "writelane-c"))')"
header_version="$(sed -n 's/^#define WL_VERSION "\(.*\)"$/\1/p' bindings-c/include/writelane.h)"
if [ "$header_version" != "$version" ]; then
  echo "dist.sh: writelane.h says $header_version, the workspace $version (cli/tests/versions.rs)" >&2
  exit 1
fi
# Reproducible archives: every file dated to the last commit.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
rm -rf "$dist"
mkdir -p "$dist"
work="$(mktemp -d "${TMPDIR:-/tmp}/writelane-dist.XXXXXX")"
trap 'rm -rf "$work"' EXIT

for arch in "${arches[@]}"; do
  step "wheel $arch (maturin, zig, manylinux2014, abi3)"
  # maturin checks the extension's glibc symbols against the manylinux2014 policy.
  maturin build --quiet --profile dist --locked --compatibility manylinux2014 \
    --target "$arch-unknown-linux-gnu" -m bindings-python/Cargo.toml -o "$dist"
done

step "sdist, and a wheel built from it alone (pip, maturin's build backend)"
maturin sdist -m bindings-python/Cargo.toml -o "$dist" 2>&1 | grep -v -e '^warning: manifest has no' -e '^  |$' -e '^  = note: see' >&2 || true
sdist="$dist/writelane-$version.tar.gz"
[ -f "$sdist" ] || { echo "dist.sh: maturin sdist wrote no $sdist" >&2; exit 1; }
# From a copy outside the checkout: the sdist carries core/ and its own workspace manifest.
# Its release build goes to target/HOST/release, which no other build of this checkout
# writes (a cdylib's name carries no hash, so sharing target/release would overwrite the
# tests' build of the same crate).
cp "$sdist" "$work/"
(cd "$work" && MATURIN_PEP517_ARGS="--target $host" \
  "$tools/bin/python" -m pip wheel --quiet \
  --disable-pip-version-check --no-deps --no-build-isolation -w "$work/from-sdist" "$work/$(basename "$sdist")")
ls "$work/from-sdist/writelane-$version"-*.whl >/dev/null

step "C libraries (zig, glibc 2.17)"
c_targets=()
for arch in "${arches[@]}"; do c_targets+=(--target "$arch-unknown-linux-gnu"); done
cargo build --quiet --profile dist --locked -p writelane-c "${c_targets[@]}"
for arch in "${arches[@]}"; do
  name="writelane-$version-$arch-linux-gnu"
  step "C tarball $name.tar.gz"
  stage="$work/$name"
  bash bindings-c/install.sh --lib-dir "$target_dir/$arch-unknown-linux-gnu/dist" --relocatable "$stage" >/dev/null
  # cargo strips the shared library (strip = "debuginfo") but copies the static one as
  # rustc made it: the standard library's objects carry DWARF and embedded LLVM bitcode
  # (for cross-language LTO), four fifths of the archive. Linking needs neither.
  "$objcopy" --strip-debug --remove-section=.llvmbc --remove-section=.llvmcmd "$stage/lib/libwritelane.a"
  install -m 644 LICENSE "$stage/LICENSE"
  install -m 644 bindings-c/README.md "$stage/README.md"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -C "$work" -cf - "$name" | gzip -n -9 >"$dist/$name.tar.gz"
done

step "npm package (bindings-wasm/pack.sh)"
bash bindings-wasm/pack.sh "$dist" >/dev/null

step "SHA256SUMS"
(cd "$dist" && find . -maxdepth 1 -type f -printf '%f\n' | LC_ALL=C sort | xargs sha256sum >"$work/SHA256SUMS")
mv "$work/SHA256SUMS" "$dist/SHA256SUMS"
(cd "$dist" && cut -d' ' -f3 SHA256SUMS | xargs wc -c) >&2
step "done: dist/ ($version)"
