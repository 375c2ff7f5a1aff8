#!/usr/bin/env bash
# Every test of the C ABI of bindings-c: the Rust unit tests, the header and status-table
# checks (every macro and enum constant compiled in C and C++), the conformance vectors and
# bad-input tests in C under plain, AddressSanitizer and valgrind builds, the examples and
# the README's example built through pkg-config.
# The Go package has its own script, go/test.sh.
#
#   bash bindings-c/test.sh           everything
#   bash bindings-c/test.sh --quick   Rust unit tests, header and status-table checks, and the
#                                     C vectors and bad-input tests in the plain build only
#
# With WRITELANE_RUST_CHECKED=1 (scripts/test-all.sh sets it once its rust suite has passed,
# which ran `cargo test --workspace`) the Rust unit tests are not run again here.
# Run from anywhere; set up first with bindings-c/setup.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "usage: bash bindings-c/test.sh [--quick]" >&2; exit 2 ;;
  esac
done
target="${CARGO_TARGET_DIR:-$root/target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$root"

passed=0
failed=0
# tally LOG: add the "N passed, M failed" counts of a log (C programs, cargo, go -v).
tally() {
  local p f
  p=$(grep -hoE '([0-9]+) passed' "$1" | awk '{s += $1} END {print s + 0}')
  f=$(grep -hoE '([0-9]+) failed' "$1" | awk '{s += $1} END {print s + 0}')
  passed=$((passed + p))
  failed=$((failed + f))
}
step() { echo; echo "== $*"; }

step "Rust unit tests of the C ABI (guard, busy and poison flags, versions, status table)"
if [ "${WRITELANE_RUST_CHECKED:-}" = 1 ]; then
  echo "skipped: the rust suite of scripts/test-all.sh ran cargo test --workspace (WRITELANE_RUST_CHECKED=1)"
else
  cargo test -q -p writelane-c --locked 2>&1 | tee "$work/cargo.log"
  tally "$work/cargo.log"
fi

step "include/writelane.h is what the pinned cbindgen generates"
"$here/gen-header.sh" "$work/writelane.h"
diff -u "$here/include/writelane.h" "$work/writelane.h"
# The header stands alone as C99 and as C++.
echo '#include "writelane.h"' | cc -std=c99 -Wall -Wextra -Werror -pedantic -I"$here/include" -fsyntax-only -x c -
echo '#include "writelane.h"' | c++ -std=c++11 -Wall -Wextra -Werror -I"$here/include" -fsyntax-only -x c++ -
passed=$((passed + 4))
echo "header: 4 passed, 0 failed"

step "every macro and enum constant of the header compiles and evaluates, in C and C++"
# The list comes from the header itself, so a new #define or enum value is covered without
# editing this script. Only the include guard is left out (it has no value).
macros="$(grep -oE '^#define [A-Za-z_][A-Za-z0-9_]*' "$here/include/writelane.h" | awk '{print $2}' | grep -vx WRITELANE_H)"
enums="$(grep -oE '^ +WL_[A-Z0-9_]+( = -?[0-9]+)?,?$' "$here/include/writelane.h" | sed -E 's/^ +//; s/[ ,=].*//; s/,$//')"
[ -n "$macros" ] && [ -n "$enums" ] || { echo "found no macros or no enum constants in the header"; exit 1; }
{
  echo '#include <stdio.h>'
  echo '#include "writelane.h"'
  echo 'int main(void) {'
  echo '  unsigned long used = 0;'
  for name in $macros $enums; do
    echo "  (void)($name); used++;"
  done
  echo '  printf("header constants: %lu passed, 0 failed\n", used);'
  echo '  return 0;'
  echo '}'
} >"$work/constants.c"
cc -std=c11 -Wall -Wextra -Werror -pedantic -I"$here/include" "$work/constants.c" -o "$work/constants-c"
c++ -std=c++11 -Wall -Wextra -Werror -I"$here/include" -x c++ "$work/constants.c" -o "$work/constants-cxx"
"$work/constants-c" | tee "$work/constants.log"
"$work/constants-cxx" >/dev/null
tally "$work/constants.log"

step "status codes in the header match the committed table"
grep -oE 'WL_STATUS_[A-Z0-9_]+ = [0-9]+' "$here/include/writelane.h" | awk '{print $3 " " $1}' >"$work/status.txt"
grep -vE '^(#|$)' "$here/status-codes.txt" | diff -u - "$work/status.txt"
passed=$((passed + 1))
echo "status table: 1 passed, 0 failed"

step "build libwritelane (release: static and shared)"
cargo build --release -q -p writelane-c --locked
lib="$target/release/libwritelane.a"
libs=(-lgcc_s -lutil -lrt -lpthread -lm -ldl)
version="$(cargo pkgid -p writelane-c | sed 's/.*[#@]//')"
cflags=(-std=c11 -Wall -Wextra -Werror -g -O1 -I"$here/include" -DEXPECTED_VERSION="\"$version\"")
echo "writelane $version"

# The conformance vectors, and the shared-lane vectors while they live in a directory of
# their own (each directory must hold vectors: the runner fails on an empty one).
vector_dirs=("$root/tests/vectors")
[ -d "$root/tests/vectors-lease" ] && vector_dirs+=("$root/tests/vectors-lease")

variants=(plain asan)
[ "$quick" = 1 ] && variants=(plain)
for variant in "${variants[@]}"; do
  extra=()
  [ "$variant" = asan ] && extra=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  step "C tests ($variant build, -Wall -Wextra -Werror)"
  cc "${cflags[@]}" "${extra[@]}" "$here/tests/c/vectors.c" "$here/tests/c/json.c" "$lib" "${libs[@]}" -o "$work/vectors-$variant"
  cc "${cflags[@]}" "${extra[@]}" "$here/tests/c/bad_input.c" "$lib" "${libs[@]}" -o "$work/bad_input-$variant"
  cc "${cflags[@]}" "${extra[@]}" "$here/tests/c/update.c" "$lib" "${libs[@]}" -o "$work/update-$variant"
  cc "${cflags[@]}" "${extra[@]}" "$here/tests/c/entities.c" "$lib" "${libs[@]}" -o "$work/entities-$variant"
  for dir in "${vector_dirs[@]}"; do
    "$work/vectors-$variant" "$dir" | tee -a "$work/vectors-$variant.log"
  done
  "$work/bad_input-$variant" | tee "$work/bad_input-$variant.log"
  "$work/update-$variant" | tee "$work/update-$variant.log"
  "$work/entities-$variant" | tee "$work/entities-$variant.log"
  tally "$work/vectors-$variant.log"
  tally "$work/bad_input-$variant.log"
  tally "$work/update-$variant.log"
  tally "$work/entities-$variant.log"
done

if [ "$quick" = 1 ]; then
  echo
  echo "bindings-c (quick): ${passed} passed, ${failed} failed"
  [ "$failed" -eq 0 ]
  exit
fi

step "C tests under valgrind (no leaks, no invalid reads)"
vg=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --show-leak-kinds=definite,indirect,possible)
for dir in "${vector_dirs[@]}"; do
  "${vg[@]}" "$work/vectors-plain" "$dir" | tee -a "$work/vectors-vg.log"
done
"${vg[@]}" "$work/bad_input-plain" | tee "$work/bad_input-vg.log"
"${vg[@]}" "$work/update-plain" | tee "$work/update-vg.log"
"${vg[@]}" "$work/entities-plain" | tee "$work/entities-vg.log"
tally "$work/vectors-vg.log"
tally "$work/bad_input-vg.log"
tally "$work/update-vg.log"
tally "$work/entities-vg.log"

step "install, then build the examples and the README's C example with pkg-config"
"$here/install.sh" "$work/prefix"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
libdir="$(pkg-config --variable=libdir writelane)"
awk '/<!-- c-example -->/ {on = 1; next} on && /^```c/ {grab = 1; next} grab && /^```/ {exit} grab {print}' \
  "$here/README.md" >"$work/readme_example.c"
[ -s "$work/readme_example.c" ] || { echo "README has no C example"; exit 1; }
for src in "$here/examples/write_role.c" "$here/examples/update_role.c" "$work/readme_example.c"; do
  name="$(basename "$src" .c)"
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror "$src" $(pkg-config --cflags --libs writelane) -Wl,-rpath,"$libdir" -o "$work/$name-shared"
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror "$src" $(pkg-config --cflags --libs writelane-static) -o "$work/$name-static"
  for kind in shared static; do
    out="$("$work/$name-$kind")"
    echo "$name ($kind): $out"
    case "$out" in committed*) passed=$((passed + 1)) ;; *) failed=$((failed + 1)) ;; esac
  done
done
if ldd "$work/write_role-static" | grep -q writelane; then
  echo "the static example links libwritelane.so"
  exit 1
fi

echo
echo "bindings-c: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
