#!/usr/bin/env bash
# Makes the npm tarball of writelane, as it would be published, and prints its path.
#
#   bash bindings-wasm/pack.sh [DEST]      DEST defaults to dist/ at the repository root
#
# The WebAssembly module is built by build.sh under the workspace's `dist` profile (no
# debug info, LTO) without its name section, into a staging copy of the package, so the
# checkout's pkg/ (the tests' release build) is left as it is. The staging copy holds what
# package.json's "files" lists, package.json itself, and LICENSE when the repository has
# one; `npm pack` of it writes DEST/writelane-VERSION.tgz. Progress goes to stderr, the
# tarball's absolute path to stdout (scripts/dist.sh reads it). test-pack.sh checks it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
[ "$#" -le 1 ] || { echo "usage: bash bindings-wasm/pack.sh [DEST]" >&2; exit 2; }
dest="${1:-$repo/dist}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

stage="$(mktemp -d "${TMPDIR:-/tmp}/writelane-npm-stage.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

bash "$here/build.sh" --dist --out-dir "$stage/pkg" >&2

# Everything "files" names, except the glue and module build.sh just wrote.
(cd "$here" && node -e '
  const files = require("./package.json").files;
  for (const f of files) if (!f.startsWith("pkg/")) console.log(f);
') | while IFS= read -r file; do
  [ -f "$here/$file" ] || { echo "pack.sh: package.json lists $file, which is not a file" >&2; exit 1; }
  mkdir -p "$stage/$(dirname "$file")"
  cp "$here/$file" "$stage/$file"
done
cp "$here/package.json" "$stage/package.json"
if [ -f "$here/LICENSE" ]; then
  cp "$here/LICENSE" "$stage/LICENSE"
elif [ -f "$repo/LICENSE" ]; then
  cp "$repo/LICENSE" "$stage/LICENSE"
fi

wasm_bytes="$(wc -c <"$stage/pkg/writelane_wasm_bg.wasm")"
filename="$(cd "$stage" && npm pack --json --pack-destination "$dest" \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].filename))')"
tarball="$dest/$filename"
[ -f "$tarball" ] || { echo "pack.sh: npm pack wrote no $tarball" >&2; exit 1; }
echo "pack.sh: $tarball ($(wc -c <"$tarball") bytes; writelane_wasm_bg.wasm $wasm_bytes bytes)" >&2
echo "$tarball"
