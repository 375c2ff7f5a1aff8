"""Talking to a running lab, and starting one as a child process."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from typing import Any, Dict, Iterable, List, Optional

from .server import LabError

#: how long a lab may take to print its ready line (moto's first import is slow)
START_TIMEOUT_S = 60.0


class Lab:
    """A lab's endpoint, its control requests and boto3 clients aimed at it."""

    def __init__(self, endpoint: str, region: str = "us-east-1") -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region

    def _control(self, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.endpoint + path, data=data, method="GET" if body is None else "POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise LabError(f"{path}: HTTP {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise LabError(f"no IAM lab answers at {self.endpoint}: {exc.reason}") from None

    def stats(self) -> Dict[str, Any]:
        """The lab's counters (``GET /_lab/stats``)."""
        return self._control("/_lab/stats")  # type: ignore[no-any-return]

    @property
    def writes(self) -> int:
        """Writes accepted since the last reset."""
        return int(self.stats()["writes"])

    @property
    def conflicts(self) -> int:
        """Writes refused with ``ConcurrentModification`` since the last reset."""
        return int(self.stats()["conflicts"])

    def post(self, path: str, body: Dict[str, Any]) -> None:
        """POST a lab control request (``/_lab/reset``, ``/_lab/config``)."""
        self._control(path, body)

    def reset(self) -> None:
        """Zero the counters and pending injections (IAM state is kept)."""
        self._control("/_lab/reset", {})

    def config(self, service_ms: Optional[int] = None, inject_conflicts: Optional[int] = None) -> None:
        """Set the service time of later writes, and/or refuse the next N writes."""
        body: Dict[str, Any] = {}
        if service_ms is not None:
            body["service_ms"] = service_ms
        if inject_conflicts is not None:
            body["inject_conflicts"] = inject_conflicts
        self._control("/_lab/config", body)

    def client(self, service: str = "iam", access_key: str = "testing", **kwargs: Any) -> Any:
        """A real boto3 client aimed at the lab, with dummy credentials (``access_key``
        names the caller in the trail)."""
        import boto3  # type: ignore[import-untyped,unused-ignore]

        kwargs.setdefault("region_name", self.region)
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key="testing",
            **kwargs,
        )

    def statements(self, role: str, policy: str, access_key: str = "testing") -> List[Dict[str, Any]]:
        """The statements of a role's inline policy ([] when the policy does not exist)."""
        iam = self.client(access_key=access_key)
        try:
            doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        except iam.exceptions.NoSuchEntityException:
            return []
        if isinstance(doc, str):
            doc = json.loads(doc)
        stmts = doc.get("Statement", [])
        return [stmts] if isinstance(stmts, dict) else list(stmts)

    def lost_statements(
        self, role: str, policy: str, sids: Iterable[str], access_key: str = "testing"
    ) -> List[str]:
        """The Sids among ``sids`` that the role's inline policy does not hold: the
        changes lost to a read-modify-write race ([] when every one is there)."""
        present = {s.get("Sid") for s in self.statements(role, policy, access_key)}
        return [sid for sid in sids if sid not in present]


class LabProcess(Lab):
    """A lab run as a child process (``python -m writelane.lab serve``)."""

    def __init__(
        self,
        service_ms: int = 20,
        trail: Optional[str] = None,
        python: Optional[str] = None,
        port: int = 0,
    ) -> None:
        cmd = [python or sys.executable, "-m", "writelane.lab", "serve",
               "--port", str(port), "--service-ms", str(service_ms)]
        if trail is not None:
            cmd += ["--trail", trail]
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, text=True
        )
        line: List[str] = []
        reader = threading.Thread(
            target=lambda: line.append(self.proc.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(START_TIMEOUT_S)
        try:
            info = json.loads(line[0]) if line and line[0] else None
        except ValueError:
            info = None
        if not info or "endpoint" not in info:
            self.stop()
            self._stderr.seek(0)
            err = self._stderr.read().decode("utf-8", "replace").strip()
            raise LabError(f"the IAM lab did not start: {err or (line[0] if line else 'no output')}")
        super().__init__(info["endpoint"])
        self.moto = info.get("moto")

    def stop(self) -> int:
        """Stop the lab (SIGTERM, then SIGKILL after 10 s); its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode

    def __enter__(self) -> "LabProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_lab(service_ms: int = 20, trail: Optional[str] = None) -> LabProcess:
    """Start a lab as a child process of this Python; stop it with ``.stop()`` or ``with``."""
    return LabProcess(service_ms=service_ms, trail=trail)


__all__ = ["Lab", "LabProcess", "start_lab"]
