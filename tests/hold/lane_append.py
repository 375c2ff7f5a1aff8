#!/usr/bin/env python3
"""A Python writer sharing the lease with `writelane hold`: N read-modify-write appends to
an IAM role's inline policy, each through `writelane.Lane(store=...)` on the same lease
table or bucket prefix and the same entity (the role's ARN) as the holds.

    lane_append.py LAB ROLE WRITER N dynamodb TABLE MOTO
    lane_append.py LAB ROLE WRITER N s3 BUCKET/PREFIX MOTO

Exits 0 when every append committed; prints each failure to stderr.
"""

import json
import sys

import boto3
from botocore.config import Config

import writelane
from writelane.stores import DynamoDBStore, S3Store

POLICY_NAME = "appended"


def main() -> int:
    lab, role, writer, n, kind, where, moto = sys.argv[1:8]
    if kind == "dynamodb":
        store = DynamoDBStore(where, endpoint_url=moto, region="us-east-1")
    else:
        bucket, prefix = where.split("/", 1)
        store = S3Store(bucket, prefix, endpoint_url=moto, region="us-east-1")
    iam = boto3.client(
        "iam",
        endpoint_url=lab,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    lane = writelane.Lane("iam", store=store, holder=f"python lane writer {writer}")
    entity = f"arn:aws:iam::123456789012:role/{role}"

    def document():
        try:
            doc = iam.get_role_policy(RoleName=role, PolicyName=POLICY_NAME)["PolicyDocument"]
        except iam.exceptions.NoSuchEntityException:
            return {"Version": "2012-10-17", "Statement": []}
        return json.loads(doc) if isinstance(doc, str) else doc

    def read():
        return writelane.policy_token(document())

    failed = 0
    for i in range(1, int(n) + 1):
        sid = f"{writer}N{i}"

        def write(attempt, sid=sid):
            doc = document()
            doc["Statement"].append(
                {"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{sid.lower()}/*"}
            )
            iam.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(doc))
            attempt.set_token(writelane.policy_token(doc))

        try:
            lane.run(entity, write, read=read)
        except writelane.Error as e:
            print(f"lane append {sid}: {e!r}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
