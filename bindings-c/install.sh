#!/usr/bin/env bash
# Install libwritelane (static and shared), writelane.h and the pkg-config files under PREFIX.
#
#   bindings-c/install.sh PREFIX
#   bindings-c/install.sh --lib-dir DIR --relocatable PREFIX     (what scripts/dist.sh does)
#
#   --lib-dir DIR   take libwritelane.a and libwritelane.so from DIR (a cargo output folder,
#                   e.g. target/aarch64-unknown-linux-gnu/dist) instead of building the
#                   release library of this checkout
#   --relocatable   the .pc files name their prefix as ${pcfiledir}/../.. (where the .pc file
#                   is, two folders up) instead of PREFIX, so the tree works wherever it is
#                   moved or extracted
#
# The layout: lib/libwritelane.a, lib/libwritelane.so.VERSION with the symlinks
# libwritelane.so.MAJOR (the soname bindings-c/build.rs gives it) and libwritelane.so,
# include/writelane.h, lib/pkgconfig/writelane.pc and writelane-static.pc. Afterwards, with
# PREFIX/lib/pkgconfig on PKG_CONFIG_PATH:  cc app.c $(pkg-config --cflags --libs writelane)
# or, static:       cc app.c $(pkg-config --cflags --libs writelane-static)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
usage="usage: install.sh [--lib-dir DIR] [--relocatable] PREFIX"
lib_dir=""
relocatable=0
prefix=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --lib-dir)
      [ "$#" -ge 2 ] || { echo "$usage" >&2; exit 2; }
      lib_dir="$2"
      shift
      ;;
    --relocatable) relocatable=1 ;;
    -*) echo "$usage" >&2; exit 2 ;;
    *)
      [ -z "$prefix" ] || { echo "$usage" >&2; exit 2; }
      prefix="$1"
      ;;
  esac
  shift
done
[ -n "$prefix" ] || { echo "$usage" >&2; exit 2; }
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
if [ -z "$lib_dir" ]; then
  (cd "$root" && cargo build --release -q -p writelane-c)
  lib_dir="${CARGO_TARGET_DIR:-$root/target}/release"
fi
for lib in libwritelane.a libwritelane.so; do
  [ -f "$lib_dir/$lib" ] || { echo "install.sh: no $lib in $lib_dir" >&2; exit 1; }
done
version="$(sed -n 's/^#define WL_VERSION "\(.*\)"$/\1/p' "$here/include/writelane.h")"
major="${version%%.*}"
pc_prefix="$prefix"
if [ "$relocatable" = 1 ]; then
  # shellcheck disable=SC2016 # pkg-config expands ${pcfiledir}, not the shell
  pc_prefix='${pcfiledir}/../..'
fi
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 644 "$lib_dir/libwritelane.a" "$prefix/lib/libwritelane.a"
install -m 755 "$lib_dir/libwritelane.so" "$prefix/lib/libwritelane.so.$version"
ln -sf "libwritelane.so.$version" "$prefix/lib/libwritelane.so.$major"
ln -sf "libwritelane.so.$major" "$prefix/lib/libwritelane.so"
install -m 644 "$here/include/writelane.h" "$prefix/include/writelane.h"
for pc in writelane writelane-static; do
  sed -e "s|@PREFIX@|$pc_prefix|" -e "s|@VERSION@|$version|" "$here/$pc.pc.in" >"$prefix/lib/pkgconfig/$pc.pc"
done
echo "installed writelane $version under $prefix"
