# Append this run's statement to a role's inline policy: read, modify, write.
import json, os, boto3

role, policy = os.environ["WRITELANE_LAB_ROLE"], os.environ["WRITELANE_LAB_POLICY"]
sid = os.environ["WRITELANE_LAB_RUN"]  # Run1 ... RunN: this run's change
iam = boto3.client("iam")  # the lab's endpoint comes from AWS_ENDPOINT_URL_IAM

doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
doc["Statement"].append({"Sid": sid, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(doc))
