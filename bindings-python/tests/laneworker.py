"""A writer process of the multi-process tests: ``laneworker.py CONFIG_JSON``.

Runs ``count`` read-modify-write appends to one role's inline policy at the IAM lab
through a ``writelane.Lane`` whose lanes are shared through the lease store the config
names. Prints one JSON line per write (``{"n": j, "ok": true, "fence": F}`` or
``{"n": j, "gave_up": REASON}``) and a last line ``{"done": true, ...}``.

With ``"hang_at": j`` the worker prints ``{"writing": j, "fence": F}`` inside write ``j``
after reading the policy and before writing it, then sleeps (for the kill -9 test). With
``"stop_on_give_up": true`` it stops after the first write that gives up. With
``"times": true`` each ok line also carries ``t0`` and ``t1``, the ``time.time()`` at the
start and the end of the write (for the benchmark's hand-off gap).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Dict, List, Optional

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from storekit import open_store

import writelane

POLICY_NAME = "appended"


def out(obj: Dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    iam = boto3.client(
        "iam",
        endpoint_url=cfg["endpoint"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    role, me = cfg["role"], cfg["id"]
    store = open_store(cfg["spec"])
    policy = writelane.Policy.preset("iam", **cfg.get("policy", {}))
    if store is None:  # local lanes only: nothing coordinates the processes
        lane = writelane.Lane(policy)
    else:
        lane = writelane.Lane(policy, store=store, holder=f"laneworker {me}")

    def document() -> Optional[Dict[str, Any]]:
        try:
            doc = iam.get_role_policy(RoleName=role, PolicyName=POLICY_NAME)["PolicyDocument"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchEntity":
                return None
            raise
        return json.loads(doc) if isinstance(doc, str) else doc  # type: ignore[no-any-return]

    def read() -> Optional[str]:
        doc = document()
        return None if doc is None else writelane.policy_token(doc)

    pause = cfg.get("start", 0) - time.time()
    if pause > 0:
        time.sleep(pause)
    fences: List[int] = []
    for n in range(cfg["count"]):
        sid = f"W{me}N{n}"

        def write(attempt: writelane.Attempt) -> int:
            times.append(time.time())
            doc = document() or {"Version": "2012-10-17", "Statement": []}
            statements = doc["Statement"]
            if isinstance(statements, dict):
                statements = [statements]
            statements.append({"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
            doc["Statement"] = statements
            if cfg.get("hang_at") == n:
                out({"writing": n, "fence": attempt.fence})
                time.sleep(3600)
            iam.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(doc))
            times.append(time.time())
            return attempt.fence or 0

        times: List[float] = []
        try:
            fence = lane.run(f"role/{role}", write, read=read)
            fences.append(fence)
            line: Dict[str, Any] = {"n": n, "ok": True, "fence": fence}
            if cfg.get("times"):
                # The last attempt's start and end.
                line.update(t0=times[-2], t1=times[-1])
            out(line)
        except writelane.GaveUp as exc:
            out({"n": n, "gave_up": exc.reason})
            if cfg.get("stop_on_give_up"):
                break
    takeovers = sum(1 for e in lane.events() if e.type == "lease_acquired" and getattr(e, "takeover", False))
    out({"done": True, "id": me, "fences": fences, "takeovers": takeovers, "stats": lane.stats()["global"]})


if __name__ == "__main__":
    main()
