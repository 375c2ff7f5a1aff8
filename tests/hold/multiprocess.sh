#!/usr/bin/env bash
# Four `writelane hold` processes, each running a plain boto3 read-modify-write append
# (tests/hold/append.py: no writelane inside) ten times on one role of the IAM lab, per
# store. Passes when every store shows 0 ConcurrentModification and all 40 statements.
# A control run of the same appends without hold comes first, to show what hold prevents
# (reported, not judged: overlaps depend on timing).
#
#   bash tests/hold/multiprocess.sh                        file redis dynamodb s3
#   bash tests/hold/multiprocess.sh file                   any subset
#
# Then a mixed run per AWS store: two holds and two Python processes using
# `writelane.Lane(store=DynamoDBStore/S3Store)` (tests/hold/lane_append.py) on the same
# table or prefix and entity, ten appends each.
#
# Servers: redis-server and a moto server are started here unless WRITELANE_TEST_REDIS_URL
# and WRITELANE_TEST_MOTO_ENDPOINT name running ones (lane/test.sh sets both). Python:
# $PYTHON, else bindings-python/.venv/bin/python. Binary: $WRITELANE_BIN, else a release
# build with the stores' features.
set -euo pipefail
stores="${*:-file redis dynamodb s3}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

writers=4
appends=10

"$py" "$root/tests/iamlab/iamlab.py" --port 0 --service-ms 50 >"$tmp/lab.json" 2>"$tmp/lab.err" &
pids+=($!)
for _ in $(seq 300); do [ -s "$tmp/lab.json" ] && break; sleep 0.1; done
lab="$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$tmp/lab.json")"

lab_py() { "$py" - "$lab" "$@"; }

create_role() {
  lab_py "$1" <<'PY'
import json, sys, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1")
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
iam.create_role(RoleName=sys.argv[2], AssumeRolePolicyDocument=json.dumps(trust))
PY
  curl -s -X POST "$lab/_lab/reset" >/dev/null
}

# Prints "CONFLICTS PRESENT": ConcurrentModification answers since the reset, and how
# many of the expected statements the role's policy holds.
verdict() {
  lab_py "$1" "$writers" "$appends" <<'PY'
import json, sys, urllib.request, boto3
lab, role, writers, appends = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
stats = json.load(urllib.request.urlopen(lab + "/_lab/stats"))
iam = boto3.client("iam", endpoint_url=lab, region_name="us-east-1")
doc = iam.get_role_policy(RoleName=role, PolicyName="appended")["PolicyDocument"]
doc = json.loads(doc) if isinstance(doc, str) else doc
sids = {s["Sid"] for s in doc["Statement"]}
want = {f"W{w}N{n}" for w in range(1, writers + 1) for n in range(1, appends + 1)}
print(stats["conflicts"], len(want & sids))
PY
}

# One writer: APPENDS appends, each under hold when a store URL is given.
writer() {
  local role="$1" w="$2" url="$3" n failed=0
  for n in $(seq "$appends"); do
    if [ -n "$url" ]; then
      "$bin" hold --store "$url" "arn:aws:iam::123456789012:role/$role" -- \
        "$py" "$here/append.py" "$lab" "$role" "W${w}N${n}" 2>>"$tmp/$role.err" || failed=$((failed + 1))
    else
      "$py" "$here/append.py" "$lab" "$role" "W${w}N${n}" 2>>"$tmp/$role.err" || failed=$((failed + 1))
    fi
  done
  echo "$failed" >"$tmp/$role.w$w"
}

# One Python Lane writer: APPENDS appends in one process.
lane_writer() {
  local role="$1" w="$2" url="$3" kind="${3%%://*}" where
  where="${url#*://}"
  where="${where%%\?*}"
  if "$py" "$here/lane_append.py" "$lab" "$role" "W$w" "$appends" "$kind" "$where" \
    "$WRITELANE_TEST_MOTO_ENDPOINT" 2>>"$tmp/$role.err"; then
    echo 0 >"$tmp/$role.w$w"
  else
    echo 1 >"$tmp/$role.w$w"
  fi
}

# A run: writers 1..4 under hold (or bare for the control); with MIXED set, writers 3
# and 4 are Python Lanes on the same store instead.
run() {
  local label="$1" url="$2" role="mp-${1// /-}-$$" start ms w f failed=0 wpids=()
  create_role "$role"
  start=$(date +%s%N)
  for w in $(seq "$writers"); do
    if [ -n "${MIXED:-}" ] && [ "$w" -gt 2 ]; then
      lane_writer "$role" "$w" "$url" &
    else
      writer "$role" "$w" "$url" &
    fi
    wpids+=($!)
  done
  wait "${wpids[@]}"
  ms=$((($(date +%s%N) - start) / 1000000))
  read -r conflicts present < <(verdict "$role")
  for f in "$tmp/$role".w*; do failed=$((failed + $(cat "$f"))); done
  total=$((writers * appends))
  printf '%-16s %d writers x %d appends: %3d ConcurrentModification, %2d/%d statements present, %2d failed runs, %d.%01d s\n' \
    "$label" "$writers" "$appends" "$conflicts" "$present" "$total" "$failed" $((ms / 1000)) $((ms % 1000 / 100))
  if [ "$label" != control ] && { [ "$conflicts" -ne 0 ] || [ "$present" -ne "$total" ] || [ "$failed" -ne 0 ]; }; then
    echo "FAIL: $label: expected 0 conflicts, $total/$total statements, 0 failed runs" >&2
    sed 's/^/  /' "$tmp/$role.err" | head -20 >&2
    return 1
  fi
}

status=0
run control "" || true
for store in $stores; do
  url="$(store_url "$store")"
  run "$store" "$url" || status=1
done
for store in $stores; do
  case "$store" in dynamodb | s3) ;; *) continue ;; esac
  url="$(store_url "$store")"
  MIXED=1 run "$store mixed" "$url" || status=1
done
exit $status
