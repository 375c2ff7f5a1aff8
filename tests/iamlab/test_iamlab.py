"""Self-test of the IAM contention lab (``writelane.lab`` of the Python package): it must
record real conflicts, and the launcher ``iamlab.py`` must keep its command line.

Run with a Python that has the writelane wheel and moto (``bash bindings-python/test.sh``
does: ``bindings-python/.venv/bin/python -m pytest tests/iamlab``).
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
        [sys.executable, "-m", "writelane.lab", "serve", "--port", "0", "--service-ms", "20"],
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


def _fake_package(tmp: str, name: str, message: str) -> str:
    """A directory for PYTHONPATH whose package ``name`` fails to import."""
    pkg = os.path.join(tmp, name)
    os.makedirs(pkg)
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write(f"raise ImportError({message!r})\n")
    return tmp


def test_launcher_needs_no_extension(tmp_path: Any) -> None:
    """iamlab.py loads the lab from the checkout by path: a writelane that cannot be
    imported (no compiled extension) does not stop it, and it serves real conflicts."""
    path = _fake_package(str(tmp_path), "writelane", "no writelane here")
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "iamlab.py"), "--port", "0", "--service-ms", "20"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert set(info) == {"endpoint", "moto"}
        test_overlapping_writes_conflict(info)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_port_in_use_is_one_line(lab: Dict[str, str]) -> None:
    port = lab["endpoint"].rsplit(":", 1)[1]
    for cmd in ([sys.executable, os.path.join(HERE, "iamlab.py")],
                [sys.executable, "-m", "writelane.lab", "serve"]):
        out = subprocess.run(cmd + ["--port", port], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2
        assert out.stdout == ""
        assert f"port {port} is in use" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_moto_missing_names_the_extra(tmp_path: Any) -> None:
    path = _fake_package(str(tmp_path), "moto", "No module named 'moto'")
    env = dict(os.environ, PYTHONPATH=path)
    for cmd in ([sys.executable, os.path.join(HERE, "iamlab.py")],
                [sys.executable, "-m", "writelane.lab", "serve"]):
        out = subprocess.run(cmd + ["--port", "0"], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 2
        assert "pip install 'writelane[lab]'" in out.stderr and "Traceback" not in out.stderr, out.stderr
