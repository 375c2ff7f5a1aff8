#!/usr/bin/env bash
# Checks the release artifacts scripts/dist.sh wrote, as users outside this checkout get
# them: every check runs in a temporary directory with no cargo or rustc on the PATH and
# nothing from the checkout's target/ (only the files a check needs are copied).
#
#   bash scripts/test-dist.sh [DIST]      DIST defaults to dist/
#
# 1. SHA256SUMS lists every artifact, and sha256sum -c passes.
# 2. Python: a fresh venv installs the x86_64 wheel from DIST alone (pip --no-index
#    --only-binary, so never the sdist); boto3, moto, pytest and the OpenTelemetry API and
#    SDK (the README's telemetry example) at the versions
#    bindings-python/requirements-dev.txt pins come from the registry (or pip's cache).
#    The README's Python examples run against the IAM lab and a moto server behind
#    tests/iamlab/moto_atomic.py (bindings-python/tests/test_readme.py), the conformance
#    vectors replay, and the packaging tests check the wheel, all against the installed
#    wheel. `auditwheel show` finds the x86_64 wheel consistent with manylinux2014
#    (manylinux_2_17). The aarch64 wheel, which cannot run here: its tag (file name and
#    WHEEL) is cp39-abi3-manylinux2014_aarch64 and its extension's ELF machine AArch64.
#    Both extensions need no glibc symbol newer than 2.17 and carry no DWARF, and
#    `pip install --platform manylinux2014_ARCH --python-version 3.9 --target DIR` (how a
#    Lambda deployment package is made) takes each wheel for its architecture.
# 3. C: the x86_64 tarball holds exactly the documented files and is extracted to a fresh
#    prefix; bindings-c/examples/write_role.c and the README's C example compile with
#    `pkg-config --cflags --libs writelane` (shared, run through an rpath into the
#    prefix) and `pkg-config --static --cflags --libs writelane-static` (static: no
#    libwritelane.so needed) and run; the soname is libwritelane.so.0 and the symlinks
#    lead to it. The aarch64 tarball: the same files, the .so and every object of the .a
#    are AArch64. Both: glibc symbols at most 2.17, no DWARF in the .so or the .a.
# 4. Node: bindings-wasm/test-pack.sh over the npm tarball (a fresh project, the README's
#    CommonJS, ESM and TypeScript examples, npm publish --dry-run's file list).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ "$#" -le 1 ] || { echo "usage: bash scripts/test-dist.sh [DIST]" >&2; exit 2; }
dist="${1:-$root/dist}"
[ -f "$dist/SHA256SUMS" ] || { echo "test-dist.sh: no $dist/SHA256SUMS: run scripts/dist.sh first" >&2; exit 1; }
dist="$(cd "$dist" && pwd)"

passed=0
start=$SECONDS
step() { echo "== $* ($((SECONDS - start)) s)"; }
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*" >&2; exit 1; }

# The version is the workspace's: read from the root Cargo.toml's [workspace.package] (no
# cargo here), as cli/tests/versions.rs does.
version="$(awk '/^\[workspace.package\]/ {on = 1; next} /^\[/ {on = 0}
  on && /^version *=/ {gsub(/.*= *"|".*/, ""); print; exit}' "$root/Cargo.toml")"
[ -n "$version" ] || fail "no version in [workspace.package] of Cargo.toml"

# A PATH without the Rust toolchain: every directory holding cargo or rustc is left out.
clean_path=""
IFS=: read -ra path_dirs <<<"$PATH"
for dir in "${path_dirs[@]}"; do
  [ -n "$dir" ] || continue
  if [ -e "$dir/cargo" ] || [ -e "$dir/rustc" ] || [ -e "$dir/rustup" ]; then continue; fi
  case "$dir" in "$root/target"*) continue ;; esac
  clean_path="${clean_path:+$clean_path:}$dir"
done
export PATH="$clean_path"
unset CARGO_TARGET_DIR CARGO_HOME RUSTUP_HOME VIRTUAL_ENV PYTHONPATH
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
  fail "cargo or rustc is still on the PATH ($PATH)"
fi
for tool in python3 cc pkg-config readelf sha256sum tar unzip node npm; do
  command -v "$tool" >/dev/null || fail "$tool is not on the PATH without the Rust toolchain ($PATH)"
done
ok "no cargo or rustc on the PATH"

work="$(mktemp -d "${TMPDIR:-/tmp}/writelane-test-dist.XXXXXX")"
cleanup() {
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

x86_wheel="$dist/writelane-$version-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
arm_wheel="$dist/writelane-$version-cp39-abi3-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
sdist="$dist/writelane-$version.tar.gz"
npm_tgz="$dist/writelane-$version.tgz"
c_x86="$dist/writelane-$version-x86_64-linux-gnu.tar.gz"
c_arm="$dist/writelane-$version-aarch64-linux-gnu.tar.gz"

step "SHA256SUMS"
expected="$(printf '%s\n' "$x86_wheel" "$arm_wheel" "$sdist" "$npm_tgz" "$c_x86" "$c_arm" | xargs -n1 basename | LC_ALL=C sort)"
listed="$(awk '{print $2}' "$dist/SHA256SUMS" | LC_ALL=C sort)"
present="$(cd "$dist" && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%f\n' | LC_ALL=C sort)"
[ "$listed" = "$expected" ] || fail "SHA256SUMS lists:
$listed
expected:
$expected"
[ "$present" = "$expected" ] || fail "dist/ holds:
$present
expected:
$expected"
(cd "$dist" && sha256sum --quiet -c SHA256SUMS) || fail "sha256sum -c SHA256SUMS"
ok "SHA256SUMS covers the $(wc -l <"$dist/SHA256SUMS") artifacts and matches them"

# ELF helpers (readelf reads any architecture).
elf_machine() { readelf -h "$1" | sed -n 's/^ *Machine: *//p' | sort -u; }
# The newest GLIBC_x.y symbol version a file needs, "none" when it needs none.
glibc_max() {
  local found
  found="$(readelf -V -W "$1" | grep -o 'Name: GLIBC_[0-9.]*' | sed 's/.*GLIBC_//' | sort -V | tail -1)"
  echo "${found:-none}"
}
glibc_at_most_2_17() {
  local max
  max="$(glibc_max "$1")"
  [ "$max" = none ] || [ "$(printf '%s\n2.17\n' "$max" | sort -V | tail -1)" = 2.17 ] ||
    fail "$2 needs GLIBC_$max (more than 2.17)"
  echo "$2: newest glibc symbol version GLIBC_$max"
}
no_dwarf() {
  if readelf -S -W "$1" | grep -q -E ' \.(debug_|zdebug_)'; then fail "$2 carries DWARF debug sections"; fi
  if readelf -S -W "$1" | grep -q -E ' \.llvmbc '; then fail "$2 carries embedded LLVM bitcode"; fi
}

step "Python: the x86_64 wheel in a fresh venv"
py="$work/py"
mkdir -p "$py/src/bindings-python/tests" "$py/src/tests/iamlab"
cp "$root/bindings-python/README.md" "$py/src/bindings-python/"
for f in conftest.py storekit.py test_readme.py test_vectors.py test_lane_vectors.py test_packaging.py; do
  cp "$root/bindings-python/tests/$f" "$py/src/bindings-python/tests/"
done
cp "$root/tests/iamlab/iamlab.py" "$root/tests/iamlab/moto_atomic.py" "$py/src/tests/iamlab/"
cp -r "$root/tests/vectors" "$root/tests/vectors-lease" "$root/tests/vectors-lane" "$py/src/tests/"
python3 -m venv "$py/venv"
pip=("$py/venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install --no-index --find-links "$dist" --only-binary writelane "writelane==$version"
# The test dependencies at the python suite's pins, and auditwheel at dist.sh's.
grep -E '^(pytest|boto3|botocore|moto\[server\]|opentelemetry-api|opentelemetry-sdk)==' "$root/bindings-python/requirements-dev.txt" >"$py/requirements.txt"
grep -E '^auditwheel==' "$root/scripts/dist-requirements.txt" >>"$py/requirements.txt"
[ "$(wc -l <"$py/requirements.txt")" = 7 ] || fail "pins missing from requirements-dev.txt or dist-requirements.txt"
"${pip[@]}" install -r "$py/requirements.txt"
installed="$(cd "$work" && "$py/venv/bin/python" -c '
import importlib.metadata, writelane, writelane._native as n
print(importlib.metadata.version("writelane"), writelane.__file__, n.__file__)')"
read -r got_version pkg_file native_file <<<"$installed"
[ "$got_version" = "$version" ] || fail "the installed writelane is $got_version, not $version"
case "$pkg_file" in "$py/venv/"*site-packages/*) ;; *) fail "writelane imported from $pkg_file, not the venv" ;; esac
[ "$(elf_machine "$native_file")" = "Advanced Micro Devices X86-64" ] || fail "the installed extension is not x86-64"
ok "pip installed writelane $version from the x86_64 wheel ($(basename "$native_file"))"
(cd "$py/src/bindings-python/tests" &&
  WRITELANE_WHEEL="$x86_wheel" "$py/venv/bin/python" -m pytest -p no:cacheprovider -q \
    test_readme.py test_vectors.py test_lane_vectors.py test_packaging.py) | tee "$py/pytest.log"
summary="$(tail -1 "$py/pytest.log")"
grep -q -E '^[0-9]+ passed(, [0-9]+ warnings?)? in ' <<<"$summary" || fail "pytest: $summary (every test must pass, none skipped)"
ok "README examples (IAM lab, moto), conformance vectors and packaging tests: $summary"
"$py/venv/bin/auditwheel" show "$x86_wheel" | tee "$py/auditwheel.txt"
tr '\n' ' ' <"$py/auditwheel.txt" | grep -q -E 'consistent with the following platform tag: +"manylinux_2_17_x86_64"' ||
  fail "auditwheel does not find the x86_64 wheel consistent with manylinux_2_17 (manylinux2014)"
ok "auditwheel show: consistent with manylinux_2_17_x86_64 (manylinux2014)"

step "Python: the wheels' tags, ELF machines, glibc versions and debug info"
for wheel in "$x86_wheel" "$arm_wheel"; do
  case "$wheel" in *aarch64*) arch=aarch64 machine=AArch64 ;; *) arch=x86_64 machine="Advanced Micro Devices X86-64" ;; esac
  unpacked="$work/wheel-$arch"
  unzip -q "$wheel" -d "$unpacked"
  tags="$(sed -n 's/^Tag: //p' "$unpacked/writelane-$version.dist-info/WHEEL" | LC_ALL=C sort | tr '\n' ' ')"
  [ "$tags" = "cp39-abi3-manylinux2014_$arch cp39-abi3-manylinux_2_17_$arch " ] ||
    fail "the $arch wheel's WHEEL tags are: $tags"
  so="$unpacked/writelane/_native.abi3.so"
  [ -f "$so" ] || fail "the $arch wheel has no writelane/_native.abi3.so"
  [ "$(elf_machine "$so")" = "$machine" ] || fail "the $arch wheel's extension is $(elf_machine "$so")"
  glibc_at_most_2_17 "$so" "the $arch wheel's extension"
  no_dwarf "$so" "the $arch wheel's extension"
  ok "$arch wheel: tags $tags; $machine; no DWARF; $(wc -c <"$wheel") bytes"
  # A Lambda deployment package as AWS documents it (pip --platform --target), here for the
  # python3.9 runtime on Amazon Linux 2 (glibc 2.26): pip must take this wheel for it.
  lambda_dir="$work/lambda-$arch"
  "${pip[@]}" install --no-index --find-links "$dist" --platform "manylinux2014_$arch" \
    --python-version 3.9 --only-binary=:all: --target "$lambda_dir" "writelane==$version"
  [ "$(elf_machine "$lambda_dir/writelane/_native.abi3.so")" = "$machine" ] ||
    fail "pip --platform manylinux2014_$arch did not install the $arch wheel"
  ok "pip install --platform manylinux2014_$arch --python-version 3.9 --target (a Lambda package) takes the $arch wheel"
done

step "C: the tarballs"
for tarball in "$c_x86" "$c_arm"; do
  case "$tarball" in *aarch64*) arch=aarch64 machine=AArch64 ;; *) arch=x86_64 machine="Advanced Micro Devices X86-64" ;; esac
  name="writelane-$version-$arch-linux-gnu"
  listing="$(tar tzvf "$tarball" | awk '{line = $1 " " $6; if ($7 == "->") line = line " -> " $8; print line}' | LC_ALL=C sort)"
  want="$(LC_ALL=C sort <<EOF
drwxr-xr-x $name/
drwxr-xr-x $name/include/
drwxr-xr-x $name/lib/
drwxr-xr-x $name/lib/pkgconfig/
-rw-r--r-- $name/LICENSE
-rw-r--r-- $name/README.md
-rw-r--r-- $name/include/writelane.h
-rw-r--r-- $name/lib/libwritelane.a
-rwxr-xr-x $name/lib/libwritelane.so.$version
lrwxrwxrwx $name/lib/libwritelane.so -> libwritelane.so.${version%%.*}
lrwxrwxrwx $name/lib/libwritelane.so.${version%%.*} -> libwritelane.so.$version
-rw-r--r-- $name/lib/pkgconfig/writelane-static.pc
-rw-r--r-- $name/lib/pkgconfig/writelane.pc
EOF
)"
  [ "$listing" = "$want" ] || fail "$(basename "$tarball") holds:
$listing
expected:
$want"
  prefix="$work/c-$arch/prefix"
  mkdir -p "$prefix"
  tar xzf "$tarball" -C "$prefix" --strip-components=1
  lib="$prefix/lib"
  cmp -s "$lib/../include/writelane.h" "$root/bindings-c/include/writelane.h" || fail "$arch: include/writelane.h is not bindings-c's header"
  cmp -s "$prefix/LICENSE" "$root/LICENSE" || fail "$arch: LICENSE differs from the repository's"
  soname="$(readelf -d "$lib/libwritelane.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
  [ "$soname" = "libwritelane.so.${version%%.*}" ] || fail "$arch: the soname is '$soname'"
  [ "$(readlink -f "$lib/libwritelane.so")" = "$(readlink -f "$lib/libwritelane.so.$version")" ] || fail "$arch: libwritelane.so does not lead to libwritelane.so.$version"
  [ "$(elf_machine "$lib/libwritelane.so.$version")" = "$machine" ] || fail "$arch: libwritelane.so is $(elf_machine "$lib/libwritelane.so.$version")"
  [ "$(elf_machine "$lib/libwritelane.a")" = "$machine" ] || fail "$arch: the objects of libwritelane.a are: $(elf_machine "$lib/libwritelane.a")"
  members="$(readelf -h "$lib/libwritelane.a" | grep -c '^ *Machine:')"
  [ "$members" -gt 0 ] || fail "$arch: libwritelane.a has no ELF objects"
  glibc_at_most_2_17 "$lib/libwritelane.so.$version" "$arch libwritelane.so"
  no_dwarf "$lib/libwritelane.so.$version" "$arch libwritelane.so"
  no_dwarf "$lib/libwritelane.a" "$arch libwritelane.a"
  for pc in writelane writelane-static; do
    # shellcheck disable=SC2016 # the literal text of the .pc file
    grep -q -x 'prefix=${pcfiledir}/../..' "$lib/pkgconfig/$pc.pc" || fail "$arch: $pc.pc's prefix is not relocatable"
  done
  ok "$arch tarball: the documented files; soname $soname; .so and the $members objects of .a are $machine; no DWARF; $(wc -c <"$tarball") bytes"
done

step "C: the x86_64 prefix through pkg-config, shared and static"
prefix="$work/c-x86_64/prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion writelane)" = "$version" ] || fail "pkg-config --modversion writelane: $(pkg-config --modversion writelane)"
libdir="$(pkg-config --variable=libdir writelane)"
[ "$(cd "$libdir" && pwd -P)" = "$(cd "$prefix/lib" && pwd -P)" ] || fail "pkg-config's libdir $libdir is not the prefix's"
mkdir -p "$work/c-x86_64/src"
cp "$root/bindings-c/examples/write_role.c" "$work/c-x86_64/src/"
awk '/<!-- c-example -->/ {on = 1; next} on && /^```c/ {grab = 1; next} grab && /^```/ {exit} grab {print}' \
  "$root/bindings-c/README.md" >"$work/c-x86_64/src/readme_example.c"
[ -s "$work/c-x86_64/src/readme_example.c" ] || fail "bindings-c/README.md has no C example"
for src in "$work"/c-x86_64/src/*.c; do
  name="$(basename "$src" .c)"
  # shellcheck disable=SC2046 # pkg-config's flags are words
  cc -std=c11 -Wall -Wextra -Werror "$src" $(pkg-config --cflags --libs writelane) -Wl,-rpath,"$libdir" -o "$work/$name-shared"
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror "$src" $(pkg-config --static --cflags --libs writelane-static) -o "$work/$name-static"
  readelf -d "$work/$name-shared" | grep -q "NEEDED.*\[libwritelane.so.${version%%.*}\]" ||
    fail "$name-shared does not need libwritelane.so.${version%%.*}"
  if readelf -d "$work/$name-static" | grep -q 'NEEDED.*libwritelane'; then fail "$name-static needs libwritelane.so"; fi
  loaded="$(ldd "$work/$name-shared" | sed -n 's/.*libwritelane.so.[0-9]* => \([^ ]*\).*/\1/p')"
  [ "$(readlink -f "$loaded")" = "$(readlink -f "$prefix/lib/libwritelane.so.$version")" ] ||
    fail "$name-shared loads libwritelane from '$loaded', not the prefix"
  for kind in shared static; do
    out="$("$work/$name-$kind")"
    case "$out" in committed*) ok "$name ($kind): $out" ;; *) fail "$name ($kind) printed: $out" ;; esac
  done
done
unset PKG_CONFIG_PATH

step "Node: bindings-wasm/test-pack.sh over the npm tarball"
bash "$root/bindings-wasm/test-pack.sh" "$npm_tgz"
ok "test-pack.sh $(basename "$npm_tgz")"

echo
echo "test-dist.sh: $passed checks passed ($((SECONDS - start)) s)"
