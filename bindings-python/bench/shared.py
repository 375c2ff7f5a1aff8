#!/usr/bin/env python3
"""Writers in separate processes appending to one role's inline policy at the IAM lab:
shared lanes (a lease in Redis, DynamoDB, S3 or a file) against processes that only have
their own local lanes (backoff alone keeps them apart), measured in the same run.

For each store it reports: successful appends, statements lost, IAM write calls per
successful write, ConcurrentModification conflicts, lease-store operations per write,
the hand-off gap (from the end of one write to the start of the next, across all
processes: median and 90th percentile), and the makespan, and the ratios to the
local-lanes baseline.

Targets (issue 6): with a lease, at most 1.05 IAM write calls per successful write, no
conflicts and no lost update.
Usage: python3 bench/shared.py [--processes 4] [--writes 10] [--quick] [--json] [--v1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests")
sys.path.insert(0, TESTS)

from conftest import Lab  # noqa: E402
from writelane.lab import LabProcess  # noqa: E402
from storekit import MotoServer, RedisServer, open_store  # noqa: E402
from test_e2e_boto3 import _sids  # noqa: E402

#: Lease timings of the benchmark: the defaults but a shorter poll interval.
POLICY = {"lease": {"poll_ms": 20}}


def run(lab: Lab, spec: Dict[str, Any], processes: int, writes: int) -> Dict[str, Any]:
    role = f"bench-{uuid.uuid4().hex[:10]}"
    lab.client().create_role(RoleName=role, AssumeRolePolicyDocument="{}")
    before = lab.stats()["entities"][f"role/{role}"]
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, os.path.join(TESTS, "laneworker.py"), json.dumps(
                {"spec": spec, "endpoint": lab.endpoint, "role": role, "count": writes, "id": i,
                 "start": start, "policy": POLICY, "times": True})],
            stdout=subprocess.PIPE, text=True, cwd=TESTS,
        )
        for i in range(processes)
    ]
    lines: List[Dict[str, Any]] = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise SystemExit(f"a writer failed with {p.returncode}")
        lines += [json.loads(x) for x in out.splitlines() if x.strip()]
    makespan = time.time() - start
    after = lab.stats()["entities"][f"role/{role}"]
    ok = sum(1 for x in lines if x.get("ok"))
    present = len(_sids(lab.client(), role)) if ok else 0
    writes_made = after["writes"] - before["writes"]
    conflicts = after["conflicts"] - before["conflicts"]
    store_ops = sum(x["stats"]["store_ops"] for x in lines if x.get("done"))
    # Writes in the order they started; a gap is the next start less the previous end.
    spans = sorted((x["t0"], x["t1"]) for x in lines if x.get("ok"))
    gaps = sorted(b[0] - a[1] for a, b in zip(spans, spans[1:]))
    return {
        "committed": ok,
        "lost": ok - present,
        "iam_calls_per_write": (writes_made + conflicts) / max(ok, 1),
        "conflicts": conflicts,
        "store_ops_per_write": store_ops / max(ok, 1),
        "makespan_s": makespan,
        "gap_ms_median": 1000 * gaps[len(gaps) // 2] if gaps else 0.0,
        "gap_ms_p90": 1000 * gaps[int(len(gaps) * 0.9)] if gaps else 0.0,
    }


def v1_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    """The store of ``spec`` in a namespace of its own, keeping only the six version 1
    fields of each record (storekit's ``"records": "v1"``)."""
    own = {"redis": {"prefix": "bench-v1:"}, "s3": {"prefix": "bench-v1/"}, "dynamodb": {"table": "bench-v1"},
           "file": {"path": str(spec.get("path", "")) + ".v1"}}[spec["kind"]]
    return {**spec, **own, "records": "v1"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--writes", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="2 processes x 2 writes, two stores")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--v1", action="store_true",
                        help="also each store keeping only the six version 1 fields (no queue: the version 1 baseline)")
    args = parser.parse_args()
    if args.quick:
        args.processes, args.writes = 2, 2
    lab = LabProcess(service_ms=20)
    redis = RedisServer()
    moto = MotoServer(sys.executable)
    try:
        open_store({"kind": "dynamodb", "endpoint": moto.endpoint, "table": "bench"}).create_table()
        s3 = {"kind": "s3", "endpoint": moto.endpoint, "bucket": "bench", "prefix": "bench/"}
        open_store(s3).client.create_bucket(Bucket="bench")
        specs = {
            "local lanes only": {"kind": "none"},
            "redis lease": {"kind": "redis", "url": redis.url, "prefix": "bench:"},
            "dynamodb lease": {"kind": "dynamodb", "endpoint": moto.endpoint, "table": "bench"},
            "s3 lease": s3,
            "file lease": {"kind": "file", "path": os.path.join(TESTS, f".bench-{os.getpid()}.json")},
        }
        if args.v1:
            # The same stores keeping only the six version 1 fields: no queue, writers poll.
            specs.update({f"{name}, v1": v1_spec(spec) for name, spec in list(specs.items()) if spec["kind"] != "none"})
            open_store({"kind": "dynamodb", "endpoint": moto.endpoint, "table": "bench-v1"}).create_table()
        if args.quick:
            specs = {k: v for k, v in specs.items() if k in ("local lanes only", "redis lease")}
        results = {name: run(lab, spec, args.processes, args.writes) for name, spec in specs.items()}
    finally:
        moto.stop()
        redis.stop()
        lab.stop()
        for suffix in ("", ".lock", ".v1", ".v1.lock"):
            try:
                os.unlink(os.path.join(TESTS, f".bench-{os.getpid()}.json{suffix}"))
            except OSError:
                pass
    if args.json:
        print(json.dumps(results, indent=2))
        return
    base = results["local lanes only"]

    def gap(name: str, ms: float) -> str:
        # Without a lease, writes overlap: there is no hand-off to measure.
        return "-" if name == "local lanes only" else f"{ms:.0f}ms"

    print(f"python {sys.version.split()[0]}, {args.processes} processes x {args.writes} appends to one role, lab service 20 ms")
    print(f"  {'':22} {'ok':>4} {'lost':>5} {'IAM calls/write':>16} {'conflicts':>10} {'store ops/write':>16}"
          f" {'gap median':>11} {'gap p90':>8} {'makespan':>9} {'vs local':>9}")
    for name, r in results.items():
        print(f"  {name:22} {r['committed']:>4} {r['lost']:>5} {r['iam_calls_per_write']:>16.2f} {r['conflicts']:>10}"
              f" {r['store_ops_per_write']:>16.1f} {gap(name, r['gap_ms_median']):>11} {gap(name, r['gap_ms_p90']):>8}"
              f" {r['makespan_s']:>8.2f}s {r['makespan_s'] / base['makespan_s']:>8.2f}x")
    leased = [r for n, r in results.items() if n != "local lanes only"]
    met = all(r["iam_calls_per_write"] <= 1.05 and r["lost"] == 0 and r["conflicts"] == 0 for r in leased)
    print(f"  targets (leases: <= 1.05 IAM calls per write, no conflict, nothing lost): {'met' if met else 'NOT MET'}")
    if not met:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
