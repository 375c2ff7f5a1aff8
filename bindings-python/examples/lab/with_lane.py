# The same change through writelane.Lane. The runs are processes, so they share the lane
# through a lease store: a FileStore in the stress's scratch directory here, a
# DynamoDBStore or S3Store across machines.
import json, os, boto3, writelane
from writelane.stores import FileStore

role, policy = os.environ["WRITELANE_LAB_ROLE"], os.environ["WRITELANE_LAB_POLICY"]
sid = os.environ["WRITELANE_LAB_RUN"]  # Run1 ... RunN: this run's change
iam = boto3.client("iam")  # the lab's endpoint comes from AWS_ENDPOINT_URL_IAM
store = FileStore(os.path.join(os.environ["WRITELANE_LAB_DIR"], "leases.json"))
lane = writelane.Lane("iam", store=store, holder=sid)

def read():  # the policy's change token, before every attempt
    doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    return writelane.policy_token(doc)

def write(attempt):  # the same read-modify-write, one writer at a time
    doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    doc["Statement"].append({"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(doc))

lane.run(f"role/{role}", write, read=read)
