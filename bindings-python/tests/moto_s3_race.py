"""Whether a plain moto server's S3 conditional puts race: the measurement behind the S3
store tests running moto behind ``tests/iamlab/moto_atomic.py``.

Starts a threaded moto server with no lock added (in a process of its own, on a free
loopback port), then, ``--rounds`` times, has ``--threads`` threads put one new key at the
same moment with ``If-None-Match: *`` (a create) and then put one existing key with
``If-Match`` on its ETag (a swap). S3 lets exactly one of each through; a round with two or
more 200s means moto's check and store raced. Prints one JSON line of counts.

    python moto_s3_race.py --rounds 300
    python moto_s3_race.py --rounds 100 --switch-interval 1e-6   # threads switch often
    python moto_s3_race.py --rounds 30 --body-bytes 1048576

``--switch-interval`` sets the server's ``sys.setswitchinterval`` (Python's default is
0.005 s): moto is unchanged, only a thread switch between its check and its store becomes
likely.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Dict, List

from storekit import _wait_port, free_port

BUCKET = "race"


def serve(port: int, switch_interval: float) -> None:
    """Run a plain threaded moto server (the child process)."""
    sys.setswitchinterval(switch_interval)
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", port, DomainDispatcherApplication(create_backend_app), threaded=True)


def measure(endpoint: str, rounds: int, threads: int, body_bytes: int) -> Dict[str, Any]:
    """Race conditional puts; count the rounds with more than one winner."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"},
                    max_pool_connections=threads * 2)

    def client() -> Any:
        return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing", config=config)

    admin = client()
    admin.create_bucket(Bucket=BUCKET)
    clients = [client() for _ in range(threads)]
    pad = b"x" * body_bytes
    doubled = {"create": 0, "swap": 0}
    statuses: Dict[str, int] = {}
    for _ in range(rounds):
        key = uuid.uuid4().hex
        for mode in ("create", "swap"):
            condition: Dict[str, str] = {"IfNoneMatch": "*"}
            if mode == "swap":
                condition = {"IfMatch": admin.put_object(Bucket=BUCKET, Key=key, Body=b"base")["ETag"]}
            barrier = threading.Barrier(threads)
            results: List[str] = [""] * threads

            def one(i: int) -> None:
                barrier.wait()
                try:
                    clients[i].put_object(Bucket=BUCKET, Key=key, Body=b"%d" % i + pad, **condition)
                    results[i] = "200"
                except Exception as exc:  # noqa: BLE001 - counted by status
                    meta = getattr(exc, "response", {}).get("ResponseMetadata", {})
                    results[i] = str(meta.get("HTTPStatusCode", type(exc).__name__))

            workers = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            for r in results:
                statuses[f"{mode}:{r}"] = statuses.get(f"{mode}:{r}", 0) + 1
            if results.count("200") > 1:
                doubled[mode] += 1
    return {"rounds": rounds, "threads": threads, "body_bytes": body_bytes,
            "create_rounds_with_two_or_more_winners": doubled["create"],
            "swap_rounds_with_two_or_more_winners": doubled["swap"],
            "statuses": dict(sorted(statuses.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--body-bytes", type=int, default=0)
    parser.add_argument("--switch-interval", type=float, default=0.005)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.switch_interval)
        return
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--switch-interval", str(args.switch_interval)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, server, "moto server")
        started = time.monotonic()
        result = measure(f"http://127.0.0.1:{port}", args.rounds, args.threads, args.body_bytes)
        result["switch_interval"] = args.switch_interval
        result["seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps(result))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
