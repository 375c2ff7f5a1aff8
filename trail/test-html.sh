#!/usr/bin/env bash
# The HTML report in headless Chromium: render reports from the fixtures and from a
# simulated trail, open each page in Debian's chromium (installed with apt-get when
# missing), take a screenshot, dump the DOM after the page's script ran, and check from
# the DOM that every entity of the JSON report has its timeline and every conflict,
# incident and replay its mark; the screenshot must be a non-empty PNG.
#
# Usage: trail/test-html.sh [OUT_DIR]   (default: a temporary directory, removed after)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-}
if [[ -z "$out" ]]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

if ! command -v chromium >/dev/null 2>&1; then
    echo "test-html: installing chromium" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

cargo build -q -p writelane-cli --manifest-path "$root/Cargo.toml"
wl="$root/target/debug/writelane"

"$wl" simulate --model iam --writers 8 --runs 2 --strategies immediate,aws-standard,writelane \
    --trail "$out/sim" >/dev/null 2>&1

check() {
    local name=$1
    shift
    # Two runs: the page as users make it (no --json), and the JSON to check it against.
    "$wl" trail "$@" --html "$out/$name.html" >/dev/null
    "$wl" trail "$@" --json >"$out/$name.json"
    # Chromium runs as root in containers only without its sandbox.
    local flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2400
        --user-data-dir="$out/profile-$name")
    chromium "${flags[@]}" --screenshot="$out/$name.png" "file://$out/$name.html" >/dev/null 2>&1
    chromium "${flags[@]}" --dump-dom "file://$out/$name.html" 2>/dev/null >"$out/$name.dom.html"
    python3 - "$out/$name.json" "$out/$name.dom.html" "$out/$name.png" <<'PY'
import json, sys
from html.parser import HTMLParser

report_path, dom_path, png_path = sys.argv[1:4]
report = json.load(open(report_path))

class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections = []      # data-entity of each timeline section
        self.marks = {}         # section -> {kind: count}
        self.current = None
        self.tip_div = False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "data-entity" in a:
            self.current = a["data-entity"]
            self.sections.append(self.current)
            self.marks[self.current] = {}
        if "data-mark" in a and self.current is not None:
            kind = a["data-mark"]
            self.marks[self.current][kind] = self.marks[self.current].get(kind, 0) + 1
            if kind in ("write", "conflict", "error", "incident", "replay") and not a.get("data-tip"):
                sys.exit("mark without details: %r" % (a,))
        if tag == "div" and a.get("id") == "tip":
            self.tip_div = True
    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None

dom = Dom()
dom.feed(open(dom_path, encoding="utf-8").read())
entities = report["entities"]
assert entities, "the report has entities"
shown = entities[:200]
assert dom.sections == [e["id"] for e in shown], (dom.sections[:5], [e["id"] for e in shown][:5])
budget = 50000  # trail/src/html.rs: MAX_MARKS per timeline, MAX_PAGE_MARKS per page
for e in shown:
    m = dom.marks[e["id"]]
    tl = e["timeline"][:min(5000, budget)]
    budget -= len(tl)
    want = {
        "write": sum(1 for t in tl if t["outcome"] == "ok"),
        "conflict": sum(1 for t in tl if t["outcome"] == "conflict"),
        "error": sum(1 for t in tl if t["outcome"] not in ("ok", "conflict")),
        "incident": len(e["incidents"]),
        "replay": len(e["replays"]),
        "replay-call": sum(1 for t in tl if t["replay"]),
        "fight": len(e["fights"]),
    }
    got = {k: m.get(k, 0) for k in want}
    assert got == want, (e["id"], got, want)
assert dom.tip_div, "the tooltip element is in the DOM"
if report["buckets"]:
    page = open(dom_path, encoding="utf-8").read()
    assert page.count('class="summary entity-buckets"') == sum(1 for e in shown if e["buckets"])
    assert 'class="summary bucket-table"' in page
png = open(png_path, "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, "screenshot is a PNG of %d bytes" % len(png)
t = report["totals"]
print("%s: %d entities, %d conflicts, %d incidents, %d replays drawn; screenshot %d bytes"
      % (report_path.rsplit("/", 1)[-1], len(shown), t["conflicts"], t["incidents"], t["replays"], len(png)))
PY
}

check fixtures "$root/trail/tests/fixtures"
check simulated "$out/sim" --bucket 1h
# The simulated trail must have something to mark, or the check above proves little.
python3 - "$out/simulated.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["totals"]
assert t["conflicts"] > 0 and t["incidents"] > 0 and t["replays"] > 0, t
PY
echo "test-html: ok"
