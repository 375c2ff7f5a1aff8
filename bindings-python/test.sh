#!/usr/bin/env bash
# Builds the abi3 wheel with maturin, installs it into bindings-python/.venv, and runs every
# Python test (conformance vectors, boto3 against the IAM lab, strategy, errors, threads,
# typing, packaging, README, OpenTelemetry (writelane.otel with the SDK in memory, after runs
# against the IAM lab), lease stores against redis-server and moto (DynamoDB and S3,
# behind tests/iamlab/moto_atomic.py), shared lanes in
# one process and across processes), writelane.lab (tests/test_lab.py: the iam_lab
# fixture, the trail read by `writelane trail`, bad input) and its self-test (tests/iamlab),
# the lab's stress harness over examples/lab (the naive script must lose changes, the one
# with a lane must keep every one), the lane middleware of writelane.botocore against the
# lab (tests/test_botocore_lanes.py), and smoke runs of the benchmarks.
#
#   bash bindings-python/test.sh           everything
#   bash bindings-python/test.sh --quick   the wheel, then the unit tests and conformance
#                                          vectors only: no IAM lab, no redis-server, no moto,
#                                          no writer processes, no benchmarks
#
# With WRITELANE_RUST_CHECKED=1 (scripts/test-all.sh sets it once its rust suite, which runs
# fmt and clippy over the whole workspace, has passed) the crate's fmt and clippy checks
# are not run again here. Run bindings-python/setup.sh first.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        *) echo "usage: bash bindings-python/test.sh [--quick]" >&2; exit 2 ;;
    esac
done
py="$here/.venv/bin/python"
[ -x "$py" ] || { echo "test.sh: run bindings-python/setup.sh first" >&2; exit 1; }

# The extension crate must be lint-clean like the rest of the workspace.
if [ "${WRITELANE_RUST_CHECKED:-}" = 1 ]; then
    echo "test.sh: fmt and clippy skipped: the rust suite of scripts/test-all.sh ran them (WRITELANE_RUST_CHECKED=1)"
else
    (cd "$root" && cargo fmt -p writelane-python -- --check)
    (cd "$root" && cargo clippy -p writelane-python --all-targets -- -D warnings)
fi

rm -rf "$here/dist"
"$here/.venv/bin/maturin" build --release --quiet -i "$py" -m "$here/Cargo.toml" -o "$here/dist"
wheel="$(ls "$here"/dist/writelane-*.whl)"
echo "test.sh: built $(basename "$wheel")"
case "$(basename "$wheel")" in
    *-abi3-*) ;;
    *) echo "test.sh: the wheel is not abi3" >&2; exit 1 ;;
esac
"$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"

# Run from outside the source tree so that the installed wheel is what gets imported.
cd "$here/tests"
if [ "$quick" = 1 ]; then
    # Files that start no server and no process, plus the memory and file store cases of
    # the store and shared-lane files (-k drops their Redis, DynamoDB, S3 and process cases).
    quick_files=(test_vectors.py test_strategy.py test_errors.py test_lane.py test_threads.py
                 test_shared_lane.py test_stores.py test_packaging.py test_lane_vectors.py test_batch_vectors.py
                 test_event_schema.py)
    WRITELANE_WHEEL="$wheel" "$py" -m pytest -p no:cacheprovider -q \
        -k "not redis and not dynamodb and not s3_store and not processes" "${quick_files[@]}"
    exit
fi
# A smoke run of the benchmark keeps it working; its figures come from a full run.
"$py" "$here/bench/overhead.py" --quick
"$py" "$here/bench/shared.py" --quick
"$py" "$here/bench/middleware.py" --quick
WRITELANE_WHEEL="$wheel" "$py" -m pytest -p no:cacheprovider -q "$here/tests" "$root/tests/iamlab"

# The README's "Test your automation under contention": 8 concurrent runs of each script.
lab_out="$(mktemp -d)"
trap 'rm -rf "$lab_out"' EXIT
for script in naive with_lane; do
    echo "test.sh: python -m writelane.lab stress -n 8 -- python examples/lab/$script.py"
    set +e
    # Writes held 200 ms, so the naive runs overlap however unevenly a loaded machine
    # starts them.
    "$py" -m writelane.lab stress -n 8 --service-ms 200 -- "$py" "$here/examples/lab/$script.py" | tee "$lab_out/$script.txt"
    code="${PIPESTATUS[0]}"
    set -e
    echo "$code" >"$lab_out/$script.code"
done
"$py" - "$lab_out" <<'PY'
import re, sys
out = sys.argv[1]
def figures(name):
    text = open(f"{out}/{name}.txt").read()
    code = int(open(f"{out}/{name}.code").read())
    conflicts = int(re.search(r"conflicts \(ConcurrentModification\) (\d+)", text).group(1))
    present = int(re.search(r"(\d+) of 9 statements present", text).group(1))
    failed = int(re.search(r"runs that failed: (\d+)", text).group(1))
    return code, conflicts, present, failed
code, conflicts, present, failed = figures("naive")
assert code == 1 and (conflicts > 0 or present < 9), ("naive.py must show conflicts or lost changes", code, conflicts, present)
code, conflicts, present, failed = figures("with_lane")
assert code == 0 and present == 9 and failed == 0, ("with_lane.py must keep every change", code, present, failed)
print("test.sh: stress: naive.py loses changes, with_lane.py keeps all 9 statements")
PY
