"""Append one statement to a role's inline policy: read, modify, write. No discipline.

Under `python -m writelane.lab stress -- python naive.py` the runs overlap: some get
ConcurrentModification and fail, and some overwrite each other's statement unnoticed.
"""

import json
import os

import boto3

role = os.environ["WRITELANE_LAB_ROLE"]
policy = os.environ["WRITELANE_LAB_POLICY"]
sid = os.environ["WRITELANE_LAB_RUN"]  # this run's change: a statement with this Sid

iam = boto3.client("iam")  # the endpoint comes from AWS_ENDPOINT_URL_IAM

doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
doc["Statement"].append({"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(doc))
