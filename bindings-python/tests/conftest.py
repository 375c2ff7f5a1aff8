"""Shared fixtures: the repository paths and the local IAM contention lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from typing import Any, Dict, Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
VECTORS = os.path.join(ROOT, "tests", "vectors")
LAB = os.path.join(ROOT, "tests", "iamlab", "iamlab.py")


class Lab:
    """A running IAM contention lab."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def stats(self) -> Dict[str, Any]:
        """The lab's counters."""
        with urllib.request.urlopen(self.endpoint + "/_lab/stats") as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    def post(self, path: str, body: Dict[str, Any]) -> None:
        """POST a lab control request."""
        req = urllib.request.Request(self.endpoint + path, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req) as resp:
            resp.read()

    def reset(self) -> None:
        """Zero the counters."""
        self.post("/_lab/reset", {})

    def client(self) -> Any:
        """A real boto3 IAM client aimed at the lab."""
        import boto3

        return boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The lab, started once for the session with a 20 ms service time."""
    proc = subprocess.Popen(
        [sys.executable, LAB, "--port", "0", "--service-ms", "20"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        info = json.loads(line)
    except ValueError:
        proc.kill()
        raise RuntimeError(f"the IAM lab did not start: {line!r}") from None
    yield Lab(info["endpoint"])
    proc.terminate()
    proc.wait(10)
