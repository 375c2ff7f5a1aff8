"""The same change as naive.py, through writelane.Lane.

The runs are separate processes, so they share a lane through a lease store: here a
FileStore in the stress's scratch directory (WRITELANE_LAB_DIR); across machines it would
be a DynamoDBStore or S3Store. One writer at a time per role, a fresh read before every
retry, and ConcurrentModification retried after a jittered back-off.
"""

import json
import os

import boto3

import writelane
from writelane.stores import FileStore

role = os.environ["WRITELANE_LAB_ROLE"]
policy = os.environ["WRITELANE_LAB_POLICY"]
sid = os.environ["WRITELANE_LAB_RUN"]  # this run's change: a statement with this Sid

iam = boto3.client("iam")  # the endpoint comes from AWS_ENDPOINT_URL_IAM
store = FileStore(os.path.join(os.environ["WRITELANE_LAB_DIR"], "leases.json"))
lane = writelane.Lane("iam", store=store, holder=sid)


def read():  # the policy's change token, before every attempt
    doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    return writelane.policy_token(doc)


def write(attempt):  # the same read-modify-write, one writer at a time
    doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    if not any(s.get("Sid") == sid for s in doc["Statement"]):
        doc["Statement"].append({"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
        iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(doc))
    attempt.set_token(writelane.policy_token(doc))


lane.run(f"role/{role}", write, read=read)
