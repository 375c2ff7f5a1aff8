"""Self-test of the IAM contention lab: it must record real conflicts.

Run with ``python3 -m pytest tests/iamlab``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from typing import Any, Dict, Iterator, List

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def lab() -> Iterator[Dict[str, str]]:
    """A running lab with a 20 ms service time."""
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "iamlab.py"), "--port", "0", "--service-ms", "20"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    yield info
    proc.terminate()
    assert proc.wait(10) == 0


def _post(url: str, body: Dict[str, Any]) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


def _stats(lab: Dict[str, str]) -> Any:
    with urllib.request.urlopen(lab["endpoint"] + "/_lab/stats") as resp:
        return json.loads(resp.read())


def _client(lab: Dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "iam",
        endpoint_url=lab["endpoint"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_overlapping_writes_conflict(lab: Dict[str, str]) -> None:
    from botocore.exceptions import ClientError

    client = _client(lab)
    client.create_role(RoleName="lab-a", AssumeRolePolicyDocument="{}")
    _post(lab["endpoint"] + "/_lab/reset", {})
    codes: List[Any] = []
    barrier = threading.Barrier(6)

    def put(i: int) -> None:
        barrier.wait()
        try:
            client.put_role_policy(RoleName="lab-a", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": f"S{i}", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
            codes.append("ok")
        except ClientError as exc:
            codes.append((exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conflicts = [c for c in codes if c != "ok"]
    assert conflicts and all(c == ("ConcurrentModification", 409) for c in conflicts)
    stats = _stats(lab)
    assert stats["conflicts"] == len(conflicts)
    assert stats["writes"] == codes.count("ok")
    assert stats["entities"]["role/lab-a"] == {"writes": codes.count("ok"), "conflicts": len(conflicts)}


def test_reads_are_not_held_and_inject(lab: Dict[str, str]) -> None:
    from botocore.exceptions import ClientError

    client = _client(lab)
    client.create_role(RoleName="lab-b", AssumeRolePolicyDocument="{}")
    _post(lab["endpoint"] + "/_lab/reset", {})
    client.get_role(RoleName="lab-b")
    client.list_roles()
    stats = _stats(lab)
    assert stats["calls"] == 2 and stats["writes"] == 0 and stats["reads"] == 2
    _post(lab["endpoint"] + "/_lab/config", {"inject_conflicts": 2, "service_ms": 1})
    for _ in range(2):
        with pytest.raises(ClientError) as info:
            client.tag_role(RoleName="lab-b", Tags=[{"Key": "k", "Value": "v"}])
        assert info.value.response["Error"]["Code"] == "ConcurrentModification"
    client.tag_role(RoleName="lab-b", Tags=[{"Key": "k", "Value": "v"}])
    stats = _stats(lab)
    assert stats["conflicts"] == 2 and stats["writes"] == 1 and stats["service_ms"] == 1
    _post(lab["endpoint"] + "/_lab/config", {"service_ms": 20})


def test_bad_config_is_refused(lab: Dict[str, str]) -> None:
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as info:
        _post(lab["endpoint"] + "/_lab/config", {"service_ms": -1})
    assert info.value.code == 400


def test_chunked_request_body(lab: Dict[str, str]) -> None:
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(lab["endpoint"])
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    body = b"Action=ListRoles&Version=2010-05-08"
    conn.putrequest("POST", "/")
    conn.putheader("Content-Type", "application/x-www-form-urlencoded")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader(
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=x",
    )
    conn.endheaders()
    conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    resp = conn.getresponse()
    data = resp.read()
    assert resp.status == 200, data
    assert b"ListRolesResponse" in data
