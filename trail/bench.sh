#!/usr/bin/env bash
# Benchmark of `writelane trail` against the issue's targets, in one run on this machine:
#   - throughput in MB/s of uncompressed records through the whole analysis;
#   - peak resident memory, on the whole tree and on about half of it (flat in the input);
#   - against `zcat | jq` doing only the per-entity grouping of IAM writes on the same files.
#
# Usage: trail/bench.sh [SIZE_MB] [DIR]
#   SIZE_MB  uncompressed size of the generated tree (default 1100)
#   DIR      where the tree goes (default /tmp/writelane-trail-bench-SIZE_MB); it is
#            generated once (trail/examples/gen_trail.rs, seed 1) and reused after.
# Not part of the test suites. Needs jq (apt-get install jq) and GNU time (/usr/bin/time).
set -euo pipefail

SIZE_MB=${1:-1100}
DIR=${2:-/tmp/writelane-trail-bench-$SIZE_MB}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

command -v jq >/dev/null || { echo "bench.sh: jq is missing (apt-get install jq)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench.sh: GNU time is missing (apt-get install time)" >&2; exit 1; }

cargo build --release -q -p writelane-cli
cargo build --release -q -p writelane-trail --example gen_trail
WL=$ROOT/target/release/writelane

if [ ! -f "$DIR/MANIFEST" ]; then
  echo "generating $SIZE_MB MB of records in $DIR ..."
  rm -rf "$DIR"
  "$ROOT/target/release/examples/gen_trail" "$DIR" "$SIZE_MB" 1 >/dev/null
fi
BYTES=$(awk '/^bytes/ {print $2}' "$DIR/MANIFEST")
RECORDS=$(awk '/^records/ {print $2}' "$DIR/MANIFEST")
FILES=$(awk '/^files/ {print $2}' "$DIR/MANIFEST")
GZ_BYTES=$(du -sb "$DIR/AWSLogs" | cut -f1)
echo "tree: $DIR/AWSLogs: $FILES gzip files, $((BYTES / 1000000)) MB uncompressed ($((GZ_BYTES / 1000000)) MB gzipped), $RECORDS records; $(nproc) cores"

# Warm the page cache, so every contender reads from memory.
cat $(find "$DIR/AWSLogs" -type f) >/dev/null

# Run "$@" under GNU time; prints "SECONDS MAX_RSS_KB CPU_SECONDS" (CPU over wall time
# shows how many of the cores the run had: other work on the machine skews wall time).
measure() {
  local log
  log=$(mktemp)
  /usr/bin/time -f '%e %M %U %S' -o "$log" "$@" >/dev/null
  awk '{print $1, $2, $3 + $4}' "$log" > "$log.2" && mv "$log.2" "$log"
  cat "$log"
  rm -f "$log"
}

read -r WL_S WL_KB WL_CPU < <(measure "$WL" trail "$DIR/AWSLogs")
read -r JSON_S JSON_KB JSON_CPU < <(measure "$WL" trail --json "$DIR/AWSLogs")

# Flatness: the RSS on one account's files (a third of the tree) beside the whole tree's.
read -r PART_S PART_KB PART_CPU < <(measure "$WL" trail "$DIR/AWSLogs/111122223333")
PART_BYTES=$(( BYTES / 3 ))

# jq doing only the grouping: IAM writes counted per account + entity name.
JQ_PROG='reduce (inputs.Records[] | select(.eventSource == "iam.amazonaws.com" and .readOnly == false)) as $r
  ({}; .[$r.recipientAccountId + ":" + ($r.requestParameters.roleName // $r.requestParameters.userName // $r.requestParameters.policyArn // "?")] += 1)
  | length'
JQ_START=$(date +%s.%N)
JQ_ENTITIES=$(find "$DIR/AWSLogs" -type f -name '*.json.gz' -print0 | sort -z | xargs -0 zcat | jq -n "$JQ_PROG")
JQ_END=$(date +%s.%N)
JQ_S=$(echo "$JQ_END - $JQ_START" | bc -l)

ZCAT_START=$(date +%s.%N)
find "$DIR/AWSLogs" -type f -name '*.json.gz' -print0 | xargs -0 zcat | wc -c >/dev/null
ZCAT_END=$(date +%s.%N)
ZCAT_S=$(echo "$ZCAT_END - $ZCAT_START" | bc -l)

mbps() { echo "scale=1; $1 / 1000000 / $2" | bc -l; }
echo
echo "command: trail/bench.sh $SIZE_MB $DIR"
printf '%-44s %8s %10s %10s %8s\n' "run" "seconds" "MB/s" "peak RSS" "CPU s"
printf '%-44s %8.2f %10s %7d MB %8.2f\n' "writelane trail (terminal report)" "$WL_S" "$(mbps "$BYTES" "$WL_S")" $((WL_KB / 1024)) "$WL_CPU"
printf '%-44s %8.2f %10s %7d MB %8.2f\n' "writelane trail --json (with timelines)" "$JSON_S" "$(mbps "$BYTES" "$JSON_S")" $((JSON_KB / 1024)) "$JSON_CPU"
printf '%-44s %8.2f %10s %7d MB %8.2f\n' "writelane trail, one account (1/3 input)" "$PART_S" "$(mbps "$PART_BYTES" "$PART_S")" $((PART_KB / 1024)) "$PART_CPU"
printf '%-44s %8.2f %10s %11s\n' "zcat | jq, per-entity grouping only" "$JQ_S" "$(mbps "$BYTES" "$JQ_S")" "-"
printf '%-44s %8.2f %10s %11s\n' "zcat alone (one core)" "$ZCAT_S" "$(mbps "$BYTES" "$ZCAT_S")" "-"
echo
echo "jq grouped $JQ_ENTITIES entity names"
echo "speed-up over jq: $(echo "scale=1; $JQ_S / $WL_S" | bc -l)x (target >= 10x)"
echo "throughput: $(mbps "$BYTES" "$WL_S") MB/s (target >= 250)"
echo "peak RSS: $((WL_KB / 1024)) MB on $((BYTES / 1000000)) MB, $((PART_KB / 1024)) MB on $((PART_BYTES / 1000000)) MB (target <= 200 MB for 2 GB)"
