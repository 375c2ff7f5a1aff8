#!/usr/bin/env python3
"""Cost of the lane middleware of ``writelane.botocore.install(client, lane=lane)``.

Two measurements:

* overhead per call on a local lane (best of several repeats): the wrapped
  ``_make_api_call`` around a no-op stand-in for botocore's, against the no-op alone, for a
  write (``PutRolePolicy``: the entity lookup in the core's table and ``Lane.run``) and a
  read (``GetRole``: the lookup only); and the same two calls through a real boto3 client
  whose responses come from botocore's ``Stubber`` (no network), bare and wrapped.
  Target: <= 10 us per write against a call that takes milliseconds.
* with ``--stores``: the latency a shared store adds per call, the lease taken per call:
  sequential 100 ms writes (``--write-ms``) through the middleware with a lane on each
  store (memory, file, Redis, DynamoDB and S3 via moto), minus the median of the same
  write made bare (``bare write`` shows the sleep's own overshoot over ``--write-ms``).

Usage: python3 bench/middleware.py [--quick] [--json] [--stores] [--write-ms N] [--calls N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import timeit
from typing import Any, Callable, Dict, List

import boto3
from botocore.stub import Stubber

import writelane
import writelane.botocore

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

PARAMS = {"RoleName": "bench", "PolicyName": "p", "PolicyDocument": '{"Version":"2012-10-17","Statement":[]}'}


def best_ns(fn: Callable[[], Any], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e9


def client() -> Any:
    return boto3.client("iam", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def overhead(number: int, repeat: int) -> Dict[str, float]:
    out: Dict[str, float] = {}
    # The wrapper alone, around a no-op in place of botocore's _make_api_call.
    c = client()
    hook = writelane.botocore.install(c, lane=writelane.Lane())
    noop: Callable[[str, Dict[str, Any]], Any] = lambda op, params: None  # noqa: E731
    hook._original = noop
    out["noop_ns"] = best_ns(lambda: noop("PutRolePolicy", PARAMS), number, repeat)
    out["wrapped_write_ns"] = best_ns(lambda: hook._call("PutRolePolicy", PARAMS), number, repeat)
    out["wrapped_read_ns"] = best_ns(lambda: hook._call("GetRole", {"RoleName": "bench"}), number, repeat)
    out["keys_ns"] = best_ns(lambda: hook.keys("PutRolePolicy", PARAMS), number, repeat)
    # Through a boto3 client with stubbed responses.
    stub_number = max(number // 20, 50)
    results: Dict[str, float] = {}
    for name, lane in (("bare", None), ("wrapped", writelane.Lane())):
        c = client()
        writelane.botocore.install(c, lane=lane)
        stub = Stubber(c)
        stub.activate()

        def put(c: Any = c, stub: Any = stub) -> None:
            stub.add_response("put_role_policy", {})
            c.put_role_policy(**PARAMS)

        results[name] = best_ns(put, stub_number, repeat)
    out["boto3_stubbed_bare_ns"] = results["bare"]
    out["boto3_stubbed_wrapped_ns"] = results["wrapped"]
    out["write_overhead_us"] = (out["wrapped_write_ns"] - out["noop_ns"]) / 1000
    out["read_overhead_us"] = (out["wrapped_read_ns"] - out["noop_ns"]) / 1000
    out["boto3_stubbed_overhead_us"] = (results["wrapped"] - results["bare"]) / 1000
    return out


def per_store(write_ms: int, calls: int, quick: bool) -> Dict[str, Dict[str, float]]:
    import tempfile

    from storekit import MotoServer, RedisServer, open_store

    out: Dict[str, Dict[str, float]] = {}
    redis = RedisServer() if not quick else None
    moto = MotoServer(sys.executable) if not quick else None
    tmp = tempfile.mkdtemp(prefix="wl-mw-bench-")
    try:
        specs: Dict[str, Any] = {"local lanes (no store)": {"kind": "none"}, "memory store": {"kind": "memory"},
                                 "file store": {"kind": "file", "path": os.path.join(tmp, "leases.json")}}
        if redis is not None and moto is not None:
            specs["redis store"] = {"kind": "redis", "url": redis.url, "prefix": "mwbench:"}
            dynamo = {"kind": "dynamodb", "endpoint": moto.endpoint, "table": "mwbench"}
            open_store(dynamo).create_table()
            specs["dynamodb store (moto)"] = dynamo
            s3 = {"kind": "s3", "endpoint": moto.endpoint, "bucket": "mwbench", "prefix": "l/"}
            open_store(s3).client.create_bucket(Bucket="mwbench")
            specs["s3 store (moto)"] = s3
        bare: List[float] = []
        for _ in range(calls):
            started = time.perf_counter()
            time.sleep(write_ms / 1000)
            bare.append((time.perf_counter() - started) * 1000)
        base = statistics.median(bare)
        out["bare write"] = {"median_added_ms": base - write_ms, "mean_added_ms": statistics.fmean(bare) - write_ms,
                             "max_added_ms": max(bare) - write_ms, "calls": calls}
        for name, spec in specs.items():
            store = open_store(spec)
            lane = writelane.Lane(store=store) if store is not None else writelane.Lane()
            c = client()
            hook = writelane.botocore.install(c, lane=lane)
            hook._original = lambda op, params: time.sleep(write_ms / 1000)
            hook._call("PutRolePolicy", PARAMS)  # warm up (first lease record, connections)
            laps: List[float] = []
            for i in range(calls):
                params = dict(PARAMS, RoleName=f"bench{i % 4}")
                started = time.perf_counter()
                hook._call("PutRolePolicy", params)
                laps.append((time.perf_counter() - started) * 1000 - base)
            out[name] = {"median_added_ms": statistics.median(laps), "mean_added_ms": statistics.fmean(laps),
                         "max_added_ms": max(laps), "calls": calls}
    finally:
        if redis is not None:
            redis.stop()
        if moto is not None:
            moto.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--stores", action="store_true")
    parser.add_argument("--write-ms", type=int, default=100)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    number, repeat = (2000, 3) if args.quick else (20000, 7)
    result: Dict[str, Any] = {"overhead": overhead(number, repeat)}
    if args.stores:
        result["stores"] = per_store(args.write_ms, 3 if args.quick else args.calls, args.quick)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    o = result["overhead"]
    print(f"middleware overhead per call, local lane: write {o['write_overhead_us']:.2f} us, "
          f"read {o['read_overhead_us']:.2f} us (entity lookup alone {o['keys_ns'] / 1000:.2f} us)")
    print(f"boto3 put_role_policy with stubbed responses: bare {o['boto3_stubbed_bare_ns'] / 1000:.1f} us, "
          f"wrapped {o['boto3_stubbed_wrapped_ns'] / 1000:.1f} us ({o['boto3_stubbed_overhead_us']:+.1f} us)")
    for name, s in result.get("stores", {}).items():
        print(f"{name}: {args.write_ms} ms write + {s['median_added_ms']:.2f} ms median "
              f"({s['mean_added_ms']:.2f} mean, {s['max_added_ms']:.2f} max) over {s['calls']} calls")


if __name__ == "__main__":
    main()
