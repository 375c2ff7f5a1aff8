#!/usr/bin/env python3
"""One plain read-modify-write of an IAM role's inline policy, with no writelane inside:
read the document, append a statement, put it back. Run under `writelane hold`, so
several of these never overlap; without it they lose statements or get
ConcurrentModification from the IAM lab.

    append.py ENDPOINT ROLE SID

Exits 0 on success, 3 on ConcurrentModification (printed), 1 on anything else. boto3's
retries are off, so a conflict is seen rather than retried away.
"""

import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

POLICY_NAME = "appended"


def main() -> int:
    endpoint, role, sid = sys.argv[1], sys.argv[2], sys.argv[3]
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    try:
        try:
            got = iam.get_role_policy(RoleName=role, PolicyName=POLICY_NAME)
            doc = got["PolicyDocument"]
            if isinstance(doc, str):
                doc = json.loads(doc)
        except ClientError as e:
            if e.response["Error"]["Code"] != "NoSuchEntity":
                raise
            doc = {"Version": "2012-10-17", "Statement": []}
        doc["Statement"].append(
            {"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{sid.lower()}/*"}
        )
        iam.put_role_policy(RoleName=role, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(doc))
    except ClientError as e:
        code = e.response["Error"]["Code"]
        print(f"append {sid}: {code}", file=sys.stderr)
        return 3 if code == "ConcurrentModification" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
