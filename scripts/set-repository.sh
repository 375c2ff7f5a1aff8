#!/usr/bin/env bash
# Changes the repository URL of the project, whose one source is `repository` (and
# `homepage`) in [workspace.package] of the root Cargo.toml, and everything derived from it:
# the Go module path (host/path + "/go") in every go.mod and Go import under go/, and the
# install lines and links of the READMEs. cli/tests/go_module_path.rs fails until they
# agree.
#
#   bash scripts/set-repository.sh https://github.com/OWNER/NAME
set -euo pipefail
url="${1:-}"
case "$url" in
  https://?*/?*) ;;
  *) echo "usage: bash scripts/set-repository.sh https://HOST/OWNER/NAME" >&2; exit 2 ;;
esac
url="${url%/}"
url="${url%.git}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
old="$(sed -n '/^\[workspace.package\]/,/^\[/ s/^repository = "\(.*\)"$/\1/p' Cargo.toml)"
[ -n "$old" ] || { echo "set-repository.sh: no repository in [workspace.package] of Cargo.toml" >&2; exit 1; }
[ "$old" != "$url" ] || { echo "the repository is already $url"; exit 0; }
# esc TEXT: TEXT as a literal in a sed pattern.
esc() { printf '%s' "$1" | sed 's/[.[\*^$/#]/\\&/g'; }
old_module="${old#https://}/go"
new_module="${url#https://}/go"
sed -i "/^\[workspace.package\]/,/^\[/ s#^\(repository\|homepage\) = \"$(esc "$old")\"#\1 = \"$url\"#" Cargo.toml
mapfile -t files < <(find go -name go.mod -o -name '*.go'; ls README.md go/README.md bindings-c/README.md bindings-python/README.md bindings-wasm/README.md 2>/dev/null)
sed -i -e "s#$(esc "$old_module")\b#$new_module#g" -e "s#$(esc "$old")\b#$url#g" "${files[@]}"
if command -v gofmt >/dev/null || [ -x /usr/local/go/bin/gofmt ]; then
  PATH="$PATH:/usr/local/go/bin" gofmt -w go
fi
echo "repository: $old -> $url"
echo "Go module:  $old_module -> $new_module"
