"""The README's Python examples run, against the IAM lab, exactly as written."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from typing import Any, Dict, List

import pytest

from conftest import HERE, Lab
from storekit import MotoServer

import writelane

README = os.path.join(HERE, "..", "README.md")


def _blocks() -> List[str]:
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_examples_run(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks()
    # blocks[7] and blocks[8] are the lab's example scripts, run under `stress` by
    # test_lab.py (which checks they are examples/lab/naive.py and with_lane.py);
    # blocks[9] is the OpenTelemetry example, blocks[10] group commit, blocks[11] the lane
    # middleware
    assert len(blocks) == 12
    # Aim an unmodified `boto3.client("iam")` at the lab.
    monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", lab.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = lab.client()
    client.create_role(RoleName="deploy", AssumeRolePolicyDocument="{}")
    client.put_role_policy(
        RoleName="deploy",
        PolicyName="inline",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "Base", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}),
    )
    lab.reset()
    namespace: Dict[str, Any] = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    doc = client.get_role_policy(RoleName="deploy", PolicyName="inline")["PolicyDocument"]
    assert len(doc["Statement"]) == 2
    assert lab.stats()["entities"]["role/deploy"]["writes"] == 1
    # The hook example, on the example's own client: an injected conflict is retried.
    exec(compile(blocks[1], "README.md", "exec"), namespace)
    lab.post("/_lab/config", {"inject_conflicts": 1})
    namespace["iam"].tag_role(RoleName="deploy", Tags=[{"Key": "k", "Value": "v"}])
    assert lab.stats()["conflicts"] == 1
    # The virtual clock: its own assertion checks the back-off in virtual time.
    exec(compile(blocks[2], "README.md", "exec"), namespace)
    assert namespace["clock"].now_ms() == 500
    # Shared lanes, with an unmodified DynamoDBStore aimed at a local DynamoDB.
    moto = MotoServer(sys.executable)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint)
        exec(compile(blocks[3], "README.md", "exec"), namespace)
        doc = client.get_role_policy(RoleName="deploy", PolicyName="inline")["PolicyDocument"]
        assert len(doc["Statement"]) == 3
        record = namespace["store"].get("role/deploy")
        assert record["owner"] == "" and record["epoch"] == 1
        # The reporting write: the record holds exactly what read() returns now, and the
        # next holder (another owner on the same table) writes on it without reading.
        exec(compile(blocks[4], "README.md", "exec"), namespace)
        doc = client.get_role_policy(RoleName="deploy", PolicyName="inline")["PolicyDocument"]
        assert len(doc["Statement"]) == 4
        record = namespace["store"].get("role/deploy")
        assert record["epoch"] == 2 and record["committed_token"] == namespace["read"]()
        reads: List[str] = []
        other = writelane.Lane("iam", store=namespace["store"], owner="other:1:x")
        base = other.run("role/deploy", lambda a: a.base_token, read=lambda: reads.append("read"))
        assert base == record["committed_token"] and reads == []
        # The S3 store, unmodified, aimed at the same server's S3 (the bucket must exist).
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint)
        import boto3

        boto3.client("s3", endpoint_url=moto.endpoint).create_bucket(Bucket="my-leases-bucket")
        exec(compile(blocks[5], "README.md", "exec"), namespace)
        doc = client.get_role_policy(RoleName="deploy", PolicyName="inline")["PolicyDocument"]
        assert len(doc["Statement"]) == 5
        leases = namespace["leases"]
        body = leases.client.get_object(Bucket="my-leases-bucket", Key="writelane/leases/role/deploy")["Body"].read()
        assert json.loads(body) == leases.get("role/deploy")
        assert leases.get("role/deploy")["owner"] == "" and leases.get("role/deploy")["epoch"] == 1
        # Force-release, as an operator would: the lease is free, so nothing is written.
        exec(compile(blocks[6], "README.md", "exec"), namespace)
        assert namespace["result"].result == "already_free"
        assert namespace["store"].get("role/deploy") == namespace["found"]
    finally:
        moto.stop()
    # OpenTelemetry: the write counted, under the entity's hash.
    lab.reset()
    exec(compile(blocks[9], "README.md", "exec"), namespace)
    assert lab.stats()["entities"]["role/deploy"]["writes"] == 1
    points = [p for rm in namespace["reader"].get_metrics_data().resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics if m.name == "writelane.writes" for p in m.data.data_points]
    digest = hashlib.sha256(b"role/deploy").hexdigest()[:16]
    assert [(dict(p.attributes), p.value) for p in points] == [({"writelane.entity.hash": digest}, 1)]
    # Group commit: 8 threads' statements in fewer writes than threads.
    lab.reset()
    exec(compile(blocks[10], "README.md", "exec"), namespace)
    doc = client.get_role_policy(RoleName="deploy", PolicyName="inline")["PolicyDocument"]
    assert {f"Reader{n}" for n in range(8)} <= {s.get("Sid") for s in doc["Statement"]}
    writes = lab.stats()["entities"]["role/deploy"]["writes"]
    assert 1 <= writes < 8, writes
    # The lane middleware: the plain call ran in the role's lane.
    lab.reset()
    exec(compile(blocks[11], "README.md", "exec"), namespace)
    assert lab.stats()["entities"]["role/deploy"] == {"writes": 1, "conflicts": 0}
    assert namespace["installed"].serialised == 1
    assert [e.entity for e in namespace["lane"].events() if e.type == "submitted"] == ["role/deploy"]
