#!/usr/bin/env bash
# Every test of bindings-c: the C ABI (Rust unit tests, the header and status-table
# checks, the conformance vectors and bad-input tests in C under plain, AddressSanitizer
# and valgrind builds, the examples and the README's example built through pkg-config),
# then the Go package (gofmt, go vet, go test -race, the README example) and its
# end-to-end tests with the AWS SDK for Go v2 against the IAM lab.
# Run from anywhere; set up first with bindings-c/setup.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
export PATH="$PATH:/usr/local/go/bin"
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
gotally() {
  local p f
  p=$(grep -cE -- '^\s*--- PASS' "$1" || true)
  f=$(grep -cE -- '^\s*--- FAIL' "$1" || true)
  passed=$((passed + p))
  failed=$((failed + f))
}
step() { echo; echo "== $*"; }

step "Rust unit tests of the C ABI (guard, busy and poison flags, versions, status table)"
cargo test -q -p writelane-c --locked 2>&1 | tee "$work/cargo.log"
tally "$work/cargo.log"

step "include/writelane.h is what the pinned cbindgen generates, and go/ has the same copy"
"$here/gen-header.sh" "$work/writelane.h"
diff -u "$here/include/writelane.h" "$work/writelane.h"
cmp "$here/include/writelane.h" "$here/go/writelane.h"
# The header stands alone as C99 and as C++.
echo '#include "writelane.h"' | cc -std=c99 -Wall -Wextra -Werror -pedantic -I"$here/include" -fsyntax-only -x c -
echo '#include "writelane.h"' | c++ -std=c++11 -Wall -Wextra -Werror -I"$here/include" -fsyntax-only -x c++ -
passed=$((passed + 4))
echo "header: 4 passed, 0 failed"

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

for variant in plain asan; do
  extra=()
  [ "$variant" = asan ] && extra=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  step "C tests ($variant build, -Wall -Wextra -Werror)"
  cc "${cflags[@]}" "${extra[@]}" "$here/tests/c/vectors.c" "$here/tests/c/json.c" "$lib" "${libs[@]}" -o "$work/vectors-$variant"
  cc "${cflags[@]}" "${extra[@]}" "$here/tests/c/bad_input.c" "$lib" "${libs[@]}" -o "$work/bad_input-$variant"
  for dir in "${vector_dirs[@]}"; do
    "$work/vectors-$variant" "$dir" | tee -a "$work/vectors-$variant.log"
  done
  "$work/bad_input-$variant" | tee "$work/bad_input-$variant.log"
  tally "$work/vectors-$variant.log"
  tally "$work/bad_input-$variant.log"
done

step "C tests under valgrind (no leaks, no invalid reads)"
vg=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --show-leak-kinds=definite,indirect,possible)
for dir in "${vector_dirs[@]}"; do
  "${vg[@]}" "$work/vectors-plain" "$dir" | tee -a "$work/vectors-vg.log"
done
"${vg[@]}" "$work/bad_input-plain" | tee "$work/bad_input-vg.log"
tally "$work/vectors-vg.log"
tally "$work/bad_input-vg.log"

step "install, then build the examples and the README's C example with pkg-config"
"$here/install.sh" "$work/prefix"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
libdir="$(pkg-config --variable=libdir writelane)"
awk '/<!-- c-example -->/ {on = 1; next} on && /^```c/ {grab = 1; next} grab && /^```/ {exit} grab {print}' \
  "$here/README.md" >"$work/readme_example.c"
[ -s "$work/readme_example.c" ] || { echo "README has no C example"; exit 1; }
for src in "$here/examples/write_role.c" "$work/readme_example.c"; do
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

step "Go: gofmt, go vet, go test -race (vectors, driver, concurrency, cancellation, Retryer, examples)"
cd "$here/go"
unformatted="$(gofmt -l . )"
[ -z "$unformatted" ] || { echo "gofmt would change: $unformatted"; exit 1; }
go vet ./...
go test -race -count=1 -v . 2>&1 | tee "$work/go.log" | grep -E '^(--- |ok|FAIL|PASS)' || true
grep -q '^ok' "$work/go.log" || { tail -40 "$work/go.log"; exit 1; }
gotally "$work/go.log"

step "Go: the README's examples"
for tag in go-example go-shared-example; do
  mkdir -p "$work/$tag"
  awk -v tag="<!-- $tag -->" '$0 == tag {on = 1; next} on && /^```go/ {grab = 1; next} grab && /^```/ {exit} grab {print}' \
    "$here/README.md" >"$work/$tag/main.go"
  [ -s "$work/$tag/main.go" ] || { echo "README has no $tag"; exit 1; }
  printf 'module readme\n\ngo 1.22\n\nrequire writelane v0.0.0\n\nreplace writelane => %s\n' "$here/go" >"$work/$tag/go.mod"
  out="$(cd "$work/$tag" && go run .)"
  echo "$tag: $out"
  case "$tag:$out" in
    go-example:*"committed on attempt 2"*) passed=$((passed + 1)) ;;
    go-shared-example:*'writing under epoch 1, held by "deploy pipeline, run 42"'*'done: <nil>'*) passed=$((passed + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done

step "Go end-to-end: AWS SDK for Go v2 against the IAM contention lab"
cd "$here/go/e2e"
go vet ./...
go test -count=1 -v ./... 2>&1 | tee "$work/e2e.log" | grep -E '^(--- |ok|FAIL|PASS|\s+e2e_test)' || true
grep -q '^ok' "$work/e2e.log" || { tail -40 "$work/e2e.log"; exit 1; }
gotally "$work/e2e.log"

step "Go: the DynamoDB lease store (AWS SDK for Go v2) against a moto server, same conformance suite"
cd "$here/go/dynamodbstore"
unformatted="$(gofmt -l . )"
[ -z "$unformatted" ] || { echo "gofmt would change: $unformatted"; exit 1; }
go vet ./...
go test -race -count=1 -v ./... 2>&1 | tee "$work/dynamodb.log" | grep -E '^(\s*--- |ok|FAIL|PASS)' || true
grep -q '^ok' "$work/dynamodb.log" || { tail -40 "$work/dynamodb.log"; exit 1; }
gotally "$work/dynamodb.log"

echo
echo "bindings-c: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
