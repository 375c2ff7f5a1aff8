#!/usr/bin/env bash
# Install libwritelane (static and shared), writelane.h and writelane.pc under PREFIX.
#   bindings-c/install.sh PREFIX
# Builds the release library first if needed. Afterwards, with PREFIX/lib/pkgconfig on
# PKG_CONFIG_PATH:  cc app.c $(pkg-config --cflags --libs writelane)
# or, static:       cc app.c $(pkg-config --cflags --libs writelane-static)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
prefix="${1:?usage: install.sh PREFIX}"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --release -q -p writelane-c)
version="$(sed -n 's/^#define WL_VERSION "\(.*\)"$/\1/p' "$here/include/writelane.h")"
major="${version%%.*}"
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 644 "$target/release/libwritelane.a" "$prefix/lib/libwritelane.a"
install -m 755 "$target/release/libwritelane.so" "$prefix/lib/libwritelane.so.$version"
ln -sf "libwritelane.so.$version" "$prefix/lib/libwritelane.so.$major"
ln -sf "libwritelane.so.$major" "$prefix/lib/libwritelane.so"
install -m 644 "$here/include/writelane.h" "$prefix/include/writelane.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/writelane.pc.in" > "$prefix/lib/pkgconfig/writelane.pc"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/writelane-static.pc.in" > "$prefix/lib/pkgconfig/writelane-static.pc"
echo "installed writelane $version under $prefix"
