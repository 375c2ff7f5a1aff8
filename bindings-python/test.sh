#!/usr/bin/env bash
# Builds the abi3 wheel with maturin, installs it into bindings-python/.venv, and runs every
# Python test (conformance vectors, boto3 against the IAM lab, strategy, errors, threads,
# typing, packaging, README, lease stores against redis-server and moto, shared lanes in
# one process and across processes), the lab's self-test, and smoke runs of the benchmarks.
# Run bindings-python/setup.sh first.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
py="$here/.venv/bin/python"
[ -x "$py" ] || { echo "test.sh: run bindings-python/setup.sh first" >&2; exit 1; }

# The extension crate must be lint-clean like the rest of the workspace.
(cd "$root" && cargo fmt -p writelane-python -- --check)
(cd "$root" && cargo clippy -p writelane-python --all-targets -- -D warnings)

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
# A smoke run of the benchmark keeps it working; its figures come from a full run.
"$py" "$here/bench/overhead.py" --quick
"$py" "$here/bench/shared.py" --quick
WRITELANE_WHEEL="$wheel" "$py" -m pytest -p no:cacheprovider -q "$here/tests" "$root/tests/iamlab"
