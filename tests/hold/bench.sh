#!/usr/bin/env bash
# Benchmarks of `writelane hold`, measured in this run:
#   1. the overhead of `writelane hold --store file://... E -- true` over `true` alone;
#   2. the hand-off gap between two holds of one entity (the first command's exit to the
#      second command's start), per store, against the store's poll interval.
#
#   bash tests/hold/bench.sh                    file redis dynamodb
#   bash tests/hold/bench.sh file               any subset (s3 too)
#
# Servers, python and the binary as in multiprocess.sh ($WRITELANE_BIN, else a release
# build with the stores' features). RUNS (default 50) runs of each overhead case, TRIALS
# (default 15) hand-offs per store.
set -euo pipefail
stores="${*:-file redis dynamodb}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

runs="${RUNS:-50}"
trials="${TRIALS:-15}"

echo "binary: $bin"
echo "machine: $(nproc) cores, $(uname -sr)"

"$py" - "$bin" "file://$tmp/overhead.json" "$runs" <<'PY'
import statistics, subprocess, sys, time
bin, url, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def timed(argv):
    t = time.perf_counter_ns()
    subprocess.run(argv, check=True)
    return (time.perf_counter_ns() - t) / 1e6
plain = ["true"]
held = [bin, "hold", "--store", url, "bench/overhead", "--", "true"]
for _ in range(5):  # warm the page cache
    timed(plain); timed(held)
a, b = [], []
for _ in range(runs):  # interleaved, so drift hits both alike
    a.append(timed(plain)); b.append(timed(held))
def show(name, xs):
    xs = sorted(xs)
    print(f"  {name:<38} median {statistics.median(xs):6.2f} ms   p90 {xs[int(0.9 * len(xs)) - 1]:6.2f} ms   mean {statistics.mean(xs):6.2f} ms")
print(f"overhead ({runs} runs each, interleaved):")
show("true", a)
show("writelane hold --store file:// E -- true", b)
print(f"  overhead: median {statistics.median(b) - statistics.median(a):.2f} ms (target <= 20 ms)")
PY

# Hand-off: hold A runs `sleep 0.4` and stamps its exit; hold B, started while A holds,
# stamps its command's start. The gap is B's start minus A's exit (both stamps by `date`
# in a shell, so each side includes one shell start-up).
handoff() {
  local label="$1" url="$2" policy="$3"
  "$py" - "$bin" "$url" "$trials" "$tmp" "$label" "$policy" <<'PY'
import os, statistics, subprocess, sys, time
bin, url, trials, tmp, label, policy = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
def hold(entity, script):
    argv = [bin, "hold", "--store", url] + (["--policy", policy] if policy else []) + [entity, "--", "sh", "-c", script]
    return subprocess.Popen(argv, stderr=subprocess.DEVNULL)
gaps = []
for i in range(trials):
    entity = f"bench/handoff/{label.replace(' ', '/')}/{os.getpid()}/{i}"
    stem = "".join(c if c.isalnum() else "_" for c in label)
    started, exited, b_start = (os.path.join(tmp, f"{stem}-{i}-{n}") for n in ("a", "x", "b"))
    a = hold(entity, f"touch {started}; sleep 0.4; date +%s%N > {exited}")
    while not os.path.exists(started):
        if a.poll() is not None:
            sys.exit(f"{label}: the first hold exited {a.returncode} before its command started")
        time.sleep(0.005)
    b = hold(entity, f"date +%s%N > {b_start}")
    if a.wait() != 0 or b.wait() != 0:
        sys.exit(f"{label}: a hold failed")
    gaps.append((int(open(b_start).read()) - int(open(exited).read())) / 1e6)
gaps.sort()
print(f"  {label:<24} median {statistics.median(gaps):6.1f} ms   min {gaps[0]:6.1f}   max {gaps[-1]:6.1f}   ({trials} hand-offs)")
PY
}

echo "hand-off gap, first command's exit to the next command's start:"
echo "  (iam preset: poll_ms 100, a waiter re-reads every 50 to 100 ms)"
for store in $stores; do
  handoff "$store" "$(store_url "$store")" ""
done
fast='{"lease":{"poll_ms":20}}'
echo "  (poll_ms 20: a waiter re-reads every 10 to 20 ms)"
for store in $stores; do
  handoff "$store poll_ms=20" "$(store_url "$store")" "$fast"
done
