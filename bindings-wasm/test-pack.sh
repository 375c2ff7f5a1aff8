#!/usr/bin/env bash
# Checks an npm tarball of writelane (pack.sh makes one) as a user gets it:
#
#   bash bindings-wasm/test-pack.sh dist/writelane-VERSION.tgz
#
# 1. The README's CommonJS, ESM and TypeScript examples are the files in examples/cjs,
#    examples/esm and examples/ts, to the byte.
# 2. The tarball holds exactly what package.json's "files" lists, plus package.json,
#    README.md and LICENSE (when the repository has one), and `npm publish --dry-run --json`
#    in bindings-wasm (no registry write) lists the same set: no test/, src/, bench/,
#    node_modules or anything else.
# 3. In a fresh project outside the checkout, with no cargo or rustc on the PATH:
#    `npm init -y`, `npm install` of the tarball with typescript, @types/node and the AWS
#    SDK v3 client peers at the versions package.json's devDependencies pin (from the npm
#    cache or the registry); the CommonJS and ESM examples run, the TypeScript example is
#    compiled by `tsc --strict` against the types in the installed tarball and run; each
#    prints a run that committed on attempt 2 after one ConcurrentModification and the
#    PolicyError of a bad policy naming its field.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
[ "$#" -eq 1 ] || { echo "usage: bash bindings-wasm/test-pack.sh TGZ" >&2; exit 2; }
[ -f "$1" ] || { echo "test-pack.sh: no tarball at $1" >&2; exit 1; }
tgz="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"

passed=0
start=$SECONDS
step() { echo "== $* ($((SECONDS - start)) s)"; }
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/writelane-test-pack.XXXXXX")"
trap 'rm -rf "$work"' EXIT
case "$work/" in "$repo"/*) fail "the temporary project $work is inside the checkout" ;; esac

step "the README's examples are the files in examples/"
# The fenced block right after each marker, as in bindings-c/README.md's <!-- go-example -->.
readme_block() {
  awk -v tag="<!-- $1 -->" '$0 == tag {on = 1; next} on && /^```/ && !grab {grab = 1; next} grab && /^```/ {exit} grab {print}' \
    "$here/README.md"
}
for pair in node-example-cjs:cjs/example.cjs node-example-esm:esm/example.mjs node-example-ts:ts/example.ts; do
  tag="${pair%%:*}"
  file="$here/examples/${pair#*:}"
  readme_block "$tag" >"$work/$tag.txt"
  [ -s "$work/$tag.txt" ] || fail "README.md has no block after <!-- $tag -->"
  diff -u "$file" "$work/$tag.txt" || fail "README.md's <!-- $tag --> block differs from examples/${pair#*:}"
  ok "<!-- $tag --> is examples/${pair#*:}"
done

step "the tarball and npm publish --dry-run list the intended files only"
tar -xOzf "$tgz" package/package.json >"$work/package.json"
# intended LICENSE_PRESENT: package.json's "files", package.json, README.md, and LICENSE
# when LICENSE_PRESENT is 1; sorted.
intended() {
  node -e '
    const pkg = require(process.argv[1]);
    const set = new Set([...pkg.files, "package.json", "README.md"]);
    if (process.argv[2] === "1") set.add("LICENSE");
    console.log([...set].sort().join("\n"));
  ' "$work/package.json" "$1"
}
license=0
[ -f "$here/LICENSE" ] || [ -f "$repo/LICENSE" ] && license=1
intended "$license" >"$work/intended.txt"
tar -tzf "$tgz" | grep -v '/$' | sed 's|^package/||' | sort >"$work/tarball.txt"
diff -u "$work/intended.txt" "$work/tarball.txt" || fail "the tarball holds other files than the intended set"
ok "the tarball holds the $(wc -l <"$work/tarball.txt") intended files and nothing else"

[ -f "$here/pkg/writelane_wasm_bg.wasm" ] || fail "bindings-wasm/pkg/ is not built (bash bindings-wasm/build.sh)"
(cd "$here" && npm publish --dry-run --json 2>"$work/publish.err") >"$work/publish.json" \
  || { cat "$work/publish.err" >&2; fail "npm publish --dry-run failed"; }
node -e '
  const out = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  // npm 11 keys the result by package name; older versions print it bare.
  const info = Array.isArray(out) ? out[0] : out.files ? out : Object.values(out)[0];
  console.log(info.files.map((f) => f.path).sort().join("\n"));
' "$work/publish.json" >"$work/published.txt"
checkout_license=0
[ -f "$here/LICENSE" ] && checkout_license=1
intended "$checkout_license" >"$work/intended-checkout.txt"
diff -u "$work/intended-checkout.txt" "$work/published.txt" || fail "npm publish --dry-run in bindings-wasm lists other files than the intended set"
ok "npm publish --dry-run lists the $(wc -l <"$work/published.txt") intended files and nothing else"

step "a fresh project installs the tarball with no Rust toolchain on the PATH"
# The PATH without any directory that holds cargo or rustc.
clean_path=""
IFS=: read -r -a dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  [ -n "$dir" ] || continue
  if [ -e "$dir/cargo" ] || [ -e "$dir/rustc" ] || [ -e "$dir/rustup" ]; then continue; fi
  clean_path="${clean_path:+$clean_path:}$dir"
done
export PATH="$clean_path"
unset CARGO_TARGET_DIR CARGO_HOME RUSTUP_HOME NODE_PATH
if command -v cargo >/dev/null || command -v rustc >/dev/null; then fail "cargo or rustc is still on the PATH"; fi
command -v node >/dev/null && command -v npm >/dev/null || fail "node and npm must be on a PATH without cargo"

app="$work/app"
mkdir -p "$app"
cd "$app"
npm init -y >/dev/null
pins="$(node -e '
  const dev = require(process.argv[1]).devDependencies;
  const names = ["typescript", "@types/node", "@aws-sdk/client-dynamodb", "@aws-sdk/client-s3"];
  for (const n of names) {
    if (!dev || !dev[n]) { console.error(`package.json pins no ${n} in devDependencies`); process.exit(1); }
    console.log(`${n}@${dev[n]}`);
  }
' "$work/package.json")"
# shellcheck disable=SC2086 # one package spec a line, none with spaces
npm install --no-audit --no-fund --prefer-offline "$tgz" $pins >"$work/install.log" 2>&1 \
  || { cat "$work/install.log" >&2; fail "npm install of the tarball failed"; }
[ -d node_modules/writelane ] && [ ! -L node_modules/writelane ] || fail "node_modules/writelane is not an installed copy"
version="$(node -p 'require("./node_modules/writelane/package.json").version')"
[ "$version" = "$(node -p "require('$work/package.json').version")" ] || fail "installed writelane $version is not the tarball's"
resolved="$(node -p 'require.resolve("writelane")')"
[ "$resolved" = "$app/node_modules/writelane/js/index.js" ] || fail "require('writelane') resolves to $resolved"
links="$(find node_modules -type l -lname "$repo/*" | head -5)"
[ -z "$links" ] || fail "node_modules links into the checkout: $links"
ok "npm install of $(basename "$tgz") with $(echo $pins) ($((SECONDS - start)) s)"

expected="committed on attempt 2 after 1 conflict
ERR_WRITELANE_POLICY at retry.conflict.base_ms: expected a non-negative integer, found a negative number"
check_output() {
  local name="$1" out="$2"
  if [ "$out" != "$expected" ]; then
    printf '%s printed:\n%s\nexpected:\n%s\n' "$name" "$out" "$expected" >&2
    fail "$name"
  fi
  ok "$name: $(echo "$out" | head -1); a PolicyError naming retry.conflict.base_ms"
}

step "the CommonJS example: require('writelane')"
mkdir -p cjs esm ts
cp "$here/examples/cjs/example.cjs" cjs/
check_output "cjs/example.cjs" "$(node cjs/example.cjs)"

step "the ESM example: import from 'writelane'"
cp "$here/examples/esm/example.mjs" esm/
check_output "esm/example.mjs" "$(node esm/example.mjs)"

step "the TypeScript example: tsc --strict against the packaged types, then run"
cp "$here/examples/ts/example.ts" "$here/examples/ts/tsconfig.json" ts/
node_modules/.bin/tsc --strict -p ts --listFiles >"$work/tsc.txt" 2>&1 \
  || { grep -v '^/' "$work/tsc.txt" >&2; fail "tsc --strict"; }
types="$(grep '/writelane/' "$work/tsc.txt" || true)"
[ "$types" = "$app/node_modules/writelane/js/index.d.ts" ] || fail "tsc read writelane's types from '$types'"
ok "tsc --strict read writelane's types from node_modules/writelane/js/index.d.ts only"
check_output "ts/example.ts (compiled)" "$(node ts/out/example.js)"

echo "bindings-wasm/test-pack.sh: $passed passed in $((SECONDS - start)) s"
