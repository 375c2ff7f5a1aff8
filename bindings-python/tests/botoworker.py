"""A writer process of the lane-middleware shared-lease test: ``botoworker.py CONFIG_JSON``.

Runs ``threads`` threads of ``count`` plain ``put_role_policy`` calls each (policy
``W{id}T{t}N{n}``) on one role at the IAM lab, through a boto3 client with
``writelane.botocore.install(client, lane=lane)``, the lane shared with the other processes
by the lease store the config names. Prints ``{"done": true, "ok": N, "failed": [...],
"serialised": N, "unserialised": {...}}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import List

import boto3
from botocore.config import Config
from storekit import open_store

import writelane
import writelane.botocore


def main() -> None:
    cfg = json.loads(sys.argv[1])
    client = boto3.client("iam", endpoint_url=cfg["endpoint"], region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing", config=Config(max_pool_connections=cfg["threads"]))
    role, me = cfg["role"], cfg["id"]
    lane = writelane.Lane(writelane.Policy.preset("iam", **cfg.get("policy", {})), store=open_store(cfg["spec"]),
                          holder=f"botoworker {me}")
    hook = writelane.botocore.install(client, lane=lane)
    ok: List[str] = []
    failed: List[str] = []

    def body(t: int) -> None:
        for n in range(cfg["count"]):
            name = f"W{me}T{t}N{n}"
            doc = {"Version": "2012-10-17", "Statement": [{"Sid": name, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
            try:
                client.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(doc))
                ok.append(name)
            except Exception as exc:  # noqa: BLE001 - reported to the test
                failed.append(f"{name}: {exc!r}")

    pause = cfg.get("start", 0) - time.time()
    if pause > 0:
        time.sleep(pause)
    threads = [threading.Thread(target=body, args=(t,)) for t in range(cfg["threads"])]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(json.dumps({"done": True, "ok": len(ok), "failed": failed, "serialised": hook.serialised,
                      "unserialised": hook.unserialised}), flush=True)


if __name__ == "__main__":
    main()
