"""A writer process of the shared-lease group-commit test: ``updateworker.py CONFIG_JSON``.

Runs ``threads`` threads of ``count`` ``Lane.update`` appends each (statement ``W{id}T{t}N{n}``
put by ``writelane.iam.put_statement``) to one role's inline policy at the IAM lab, through
a lane shared with the other processes by the lease store the config names: each process
batches its own queue under the lease. Prints ``{"done": true, "committed": N,
"gave_up": [...], "stats": {...}}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import boto3
from botocore.config import Config
from storekit import open_store

import writelane
from writelane import iam as shapes

POLICY_NAME = "grouped"


def main() -> None:
    cfg = json.loads(sys.argv[1])
    client = boto3.client("iam", endpoint_url=cfg["endpoint"], region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1}))
    role, me = cfg["role"], cfg["id"]
    lane = writelane.Lane(writelane.Policy.preset("iam", **cfg.get("policy", {})), store=open_store(cfg["spec"]),
                          holder=f"updateworker {me}")

    def read() -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
        doc = client.get_role_policy(RoleName=role, PolicyName=POLICY_NAME)["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        return doc, writelane.policy_token(doc)

    def write(doc: Dict[str, Any], attempt: writelane.Attempt) -> str:
        client.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(doc))
        return writelane.policy_token(doc)

    committed: List[str] = []
    gave_up: List[str] = []

    def body(t: int) -> None:
        for n in range(cfg["count"]):
            statement = {"Sid": f"W{me}T{t}N{n}", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
            try:
                lane.update(f"role/{role}", read=read, change=lambda doc, s=statement: shapes.put_statement(doc, s), write=write)
                committed.append(statement["Sid"])
            except writelane.GaveUp as exc:
                gave_up.append(f"{statement['Sid']}: {exc}")

    pause = cfg.get("start", 0) - time.time()
    if pause > 0:
        time.sleep(pause)
    threads = [threading.Thread(target=body, args=(t,)) for t in range(cfg["threads"])]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(json.dumps({"done": True, "committed": len(committed), "gave_up": gave_up, "stats": lane.stats()["global"]}), flush=True)


if __name__ == "__main__":
    main()
