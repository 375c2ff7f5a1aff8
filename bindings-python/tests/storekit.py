"""Test servers and store specs shared by the store tests, their worker processes and the
shared-lane benchmark.

A *spec* is a JSON-able dict naming a store so that another process can open the same
one: ``{"kind": "none"}`` (no store: local lanes only), ``{"kind": "memory"}``, ``{"kind": "file", "path": P}``,
``{"kind": "redis", "url": U, "prefix": X}``, ``{"kind": "dynamodb", "endpoint": E,
"table": T}``, ``{"kind": "s3", "endpoint": E, "bucket": B, "prefix": X}``. With
``"records": "v1"`` the store drops the version 2 fields of every record written (as an
adapter that knows only the six version 1 fields would): writers poll, no queue forms
(the benchmark's version 1 baseline).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from typing import Any, Dict, Optional

from writelane import stores


def open_store(spec: Dict[str, Any]) -> Any:
    """The adapter a spec names; ``timeout_ms`` bounds its requests as a lane's policy
    would (``lease.store_timeout_ms``)."""
    kind = spec["kind"]
    store: Any
    if kind == "none":
        return None
    if kind == "memory":
        return stores.MemoryStore()
    if kind == "file":
        store = stores.FileStore(spec["path"])
    elif kind == "redis":
        store = stores.RedisStore(spec["url"], prefix=spec.get("prefix", "writelane:lease:"))
    elif kind == "dynamodb":
        store = stores.DynamoDBStore(
            spec["table"],
            endpoint_url=spec["endpoint"],
            region="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    elif kind == "s3":
        store = stores.S3Store(
            spec["bucket"],
            spec.get("prefix", ""),
            endpoint_url=spec["endpoint"],
            region="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    else:
        raise ValueError(f"unknown store kind {kind!r}")
    if "timeout_ms" in spec:
        store.use_timeout_ms(spec["timeout_ms"])
    if spec.get("records") == "v1":
        return VersionOneOnly(store)
    return store


#: The fields of a version 1 lease record.
V1_FIELDS = ("owner", "epoch", "rvn", "lease_ms", "committed_token", "holder")


class VersionOneOnly:
    """A store that keeps only the six version 1 fields of the records written to it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def use_timeout_ms(self, timeout_ms: int) -> None:
        self.inner.use_timeout_ms(timeout_ms)

    def get(self, key: str) -> Any:
        return self.inner.get(key)

    def put_if_absent(self, key: str, record: Dict[str, Any]) -> Any:
        return self.inner.put_if_absent(key, {k: record[k] for k in V1_FIELDS})

    def compare_and_swap(self, key: str, expected_rvn: int, record: Dict[str, Any]) -> Any:
        return self.inner.compare_and_swap(key, expected_rvn, {k: record[k] for k in V1_FIELDS})


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: "subprocess.Popen[bytes]", what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on {port}")


class _Server:
    """A server process the tests started and stop."""

    proc: Optional["subprocess.Popen[bytes]"]

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class RedisServer(_Server):
    """A throwaway ``redis-server`` on a free loopback port, without persistence."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (run bindings-python/setup.sh)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, self.proc, "redis-server")
        self.url = f"redis://127.0.0.1:{self.port}/0"


# moto checks a DynamoDB condition (and an S3 If-None-Match or If-Match) and stores the
# item in separate steps without a lock; this launcher carries requests out one at a time,
# as DynamoDB's and S3's conditional writes are atomic. Shared with the Node and Go tests.
MOTO_ATOMIC = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "iamlab", "moto_atomic.py"
)


class MotoServer(_Server):
    """A moto server (DynamoDB, S3 and the rest) on a free loopback port, in its own
    process, with conditional writes made atomic."""

    def __init__(self, python: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [python, MOTO_ATOMIC, str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        _wait_port(self.port, self.proc, "moto server")
        self.endpoint = f"http://127.0.0.1:{self.port}"

